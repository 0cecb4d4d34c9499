// Task<T>: the coroutine type of engine, store and collectives.
//
// A Task is lazy: it starts when awaited (or when Spawn hands it to an Env). Awaiting a
// Task resumes the awaiter by symmetric transfer when the Task finishes. Tasks must not
// throw (tidal reports errors as Status); an escaping exception terminates.
//
// Helpers:
//   Spawn(env, task)      start a detached root task on the env's executor;
//   RunBlocking(env, t)   drive the env until `t` finishes and return its value: only at
//                         the outermost API, never from inside a coroutine;
//   SleepFor(env, ns)     suspend for virtual or real nanoseconds;
//   OneShot<T>            a value set once by a callback and awaited by one coroutine.
#pragma once

#include <coroutine>
#include <exception>
#include <optional>
#include <utility>

#include "tidal/assert.h"
#include "tidal/env.h"

namespace tidal {

template <typename T>
class Task;

namespace detail {

struct FinalAwaiter {
  bool await_ready() noexcept { return false; }
  template <typename P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
    auto next = h.promise().continuation;
    return next ? next : std::noop_coroutine();
  }
  void await_resume() noexcept {}
};

struct PromiseBase {
  std::coroutine_handle<> continuation;
  std::suspend_always initial_suspend() noexcept { return {}; }
  FinalAwaiter final_suspend() noexcept { return {}; }
  void unhandled_exception() noexcept { std::terminate(); }
};

}  // namespace detail

namespace detail {

template <typename T>
struct Promise : PromiseBase {
  std::optional<T> value;
  Task<T> get_return_object();
  template <typename U>
  void return_value(U&& v) {
    value.emplace(std::forward<U>(v));
  }
  T Take() {
    TIDAL_ASSERT(value.has_value());
    return std::move(*value);
  }
};

template <>
struct Promise<void> : PromiseBase {
  Task<void> get_return_object();
  void return_void() {}
  void Take() {}
};

}  // namespace detail

template <typename T>
class [[nodiscard]] Task {
 public:
  using promise_type = detail::Promise<T>;

  Task() = default;
  explicit Task(std::coroutine_handle<promise_type> h) : h_(h) {}
  Task(Task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  Task& operator=(Task&& o) noexcept {
    if (this != &o) {
      if (h_) h_.destroy();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  ~Task() {
    if (h_) h_.destroy();
  }

  bool valid() const { return static_cast<bool>(h_); }
  bool done() const { return h_ && h_.done(); }

  auto operator co_await() && noexcept {
    struct Awaiter {
      std::coroutine_handle<promise_type> h;
      bool await_ready() noexcept { return false; }
      std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiter) noexcept {
        h.promise().continuation = awaiter;
        return h;
      }
      T await_resume() { return h.promise().Take(); }
    };
    TIDAL_ASSERT(h_ && !h_.done());
    return Awaiter{h_};
  }

  // For RunBlocking and Spawn: the raw handle and the finished value.
  std::coroutine_handle<promise_type> handle() const { return h_; }
  T TakeValue() {
    TIDAL_ASSERT(h_ && h_.done());
    return h_.promise().Take();
  }

 private:
  std::coroutine_handle<promise_type> h_;
};

namespace detail {
template <typename T>
Task<T> Promise<T>::get_return_object() {
  return Task<T>(std::coroutine_handle<Promise<T>>::from_promise(*this));
}
inline Task<void> Promise<void>::get_return_object() {
  return Task<void>(std::coroutine_handle<Promise<void>>::from_promise(*this));
}
}  // namespace detail

namespace detail {

// The frame that owns a spawned Task: registered with the Env as a root until it ends.
struct RootTask {
  struct promise_type {
    Env* env = nullptr;
    RootTask get_return_object() {
      return RootTask{std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    auto final_suspend() noexcept {
      struct Final {
        bool await_ready() noexcept { return false; }
        void await_suspend(std::coroutine_handle<promise_type> h) noexcept {
          h.promise().env->RemoveRoot(h);
          h.destroy();
        }
        void await_resume() noexcept {}
      };
      return Final{};
    }
    void return_void() {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
  std::coroutine_handle<promise_type> h;
};

inline RootTask MakeRoot(Task<void> task) { co_await std::move(task); }

}  // namespace detail

// Starts `task` on `env`'s executor, detached. The frame lives until the task ends or
// the env destroys its roots (a crashed simulated node, a shut-down process).
inline void Spawn(Env& env, Task<void> task) {
  auto root = detail::MakeRoot(std::move(task));
  root.h.promise().env = &env;
  env.AddRoot(root.h);
  env.Post([h = root.h]() { h.resume(); });
}

// Drives `env` on the calling thread until `task` finishes; returns its value. Aborts if
// the env runs out of work first (a deadlock: in the simulator the assertion hook prints
// the seed and trace). Only for the outermost API, never inside a coroutine.
template <typename T>
T RunBlocking(Env& env, Task<T> task) {
  auto h = task.handle();
  TIDAL_ASSERT(h && !h.done());
  env.Post([h]() { h.resume(); });
  bool finished = env.RunUntil([h]() { return h.done(); });
  TIDAL_ASSERT_MSG(finished, "RunBlocking: the executor ran out of work before the task ended");
  return task.TakeValue();
}

// Suspends the calling coroutine for `delay_ns` on `env`'s clock.
inline auto SleepFor(Env& env, uint64_t delay_ns) {
  struct Awaiter {
    Env& env;
    uint64_t delay_ns;
    bool await_ready() noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) {
      env.ScheduleAfter(delay_ns, [h]() { h.resume(); });
    }
    void await_resume() noexcept {}
  };
  return Awaiter{env, delay_ns};
}

// Suspends until the executor has run the work already queued (a yield point).
inline auto Yield(Env& env) {
  struct Awaiter {
    Env& env;
    bool await_ready() noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) {
      env.Post([h]() { h.resume(); });
    }
    void await_resume() noexcept {}
  };
  return Awaiter{env};
}

// OneShot<T>: set at most once (by a completion or a timer), awaited by one coroutine.
// Setting resumes the awaiter through the Env (never inline), so the setter's stack never
// runs foreign code. The OneShot must outlive both sides; it is usually a member of the
// state both share, or a local of the awaiting coroutine.
template <typename T>
class OneShot {
 public:
  explicit OneShot(Env& env) : env_(&env) {}
  OneShot(const OneShot&) = delete;
  OneShot& operator=(const OneShot&) = delete;

  bool is_set() const { return value_.has_value(); }

  // Returns false (and changes nothing) if a value was already set.
  template <typename U>
  bool Set(U&& v) {
    if (value_.has_value()) return false;
    value_.emplace(std::forward<U>(v));
    if (waiter_) {
      auto h = std::exchange(waiter_, {});
      env_->Post([h]() { h.resume(); });
    }
    return true;
  }

  auto Wait() {
    struct Awaiter {
      OneShot* self;
      bool await_ready() noexcept { return self->value_.has_value(); }
      void await_suspend(std::coroutine_handle<> h) noexcept {
        TIDAL_ASSERT(!self->waiter_);
        self->waiter_ = h;
      }
      T await_resume() { return std::move(*self->value_); }
    };
    return Awaiter{this};
  }

 private:
  Env* env_;
  std::optional<T> value_;
  std::coroutine_handle<> waiter_;
};

}  // namespace tidal
