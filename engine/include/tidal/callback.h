// Callback: a move-only `void()` function with inline storage, the unit of work an Env
// executor runs. Captures up to kInlineBytes live inline (a coroutine handle, a few
// pointers), so posting work on the hot path does not allocate.
#pragma once

#include <cstddef>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

#include "tidal/assert.h"

namespace tidal {

class Callback {
 public:
  static constexpr size_t kInlineBytes = 48;

  Callback() = default;
  template <typename F, typename = std::enable_if_t<!std::is_same_v<std::decay_t<F>, Callback>>>
  Callback(F&& f) {  // NOLINT: implicit from any callable
    using Fn = std::decay_t<F>;
    if constexpr (sizeof(Fn) <= kInlineBytes && alignof(Fn) <= alignof(std::max_align_t) &&
                  std::is_nothrow_move_constructible_v<Fn>) {
      new (storage_) Fn(std::forward<F>(f));
      ops_ = &InlineOps<Fn>::kOps;
    } else {
      *reinterpret_cast<Fn**>(storage_) = new Fn(std::forward<F>(f));
      ops_ = &HeapOps<Fn>::kOps;
    }
  }
  Callback(Callback&& other) noexcept { MoveFrom(other); }
  Callback& operator=(Callback&& other) noexcept {
    if (this != &other) {
      Reset();
      MoveFrom(other);
    }
    return *this;
  }
  Callback(const Callback&) = delete;
  Callback& operator=(const Callback&) = delete;
  ~Callback() { Reset(); }

  explicit operator bool() const { return ops_ != nullptr; }
  void operator()() {
    TIDAL_ASSERT(ops_ != nullptr);
    ops_->call(storage_);
  }
  void Reset() {
    if (ops_ != nullptr) ops_->destroy(storage_);
    ops_ = nullptr;
  }

 private:
  struct Ops {
    void (*call)(void*);
    void (*move)(void* target, void* source);  // move-constructs target, destroys source
    void (*destroy)(void*);
  };
  template <typename Fn>
  struct InlineOps {
    static constexpr Ops kOps = {
        [](void* p) { (*static_cast<Fn*>(p))(); },
        [](void* t, void* s) {
          new (t) Fn(std::move(*static_cast<Fn*>(s)));
          static_cast<Fn*>(s)->~Fn();
        },
        [](void* p) { static_cast<Fn*>(p)->~Fn(); }};
  };
  template <typename Fn>
  struct HeapOps {
    static constexpr Ops kOps = {
        [](void* p) { (**static_cast<Fn**>(p))(); },
        [](void* t, void* s) { std::memcpy(t, s, sizeof(Fn*)); },
        [](void* p) { delete *static_cast<Fn**>(p); }};
  };
  void MoveFrom(Callback& other) {
    ops_ = other.ops_;
    if (ops_ != nullptr) ops_->move(storage_, other.storage_);
    other.ops_ = nullptr;
  }

  alignas(std::max_align_t) unsigned char storage_[kInlineBytes];
  const Ops* ops_ = nullptr;
};

}  // namespace tidal
