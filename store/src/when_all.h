// WhenAll: runs tasks concurrently on one Env and returns their results in order.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "tidal/task.h"

namespace tidal::store {
namespace detail {

template <typename T>
struct WhenAllState {
  WhenAllState(Env& env, size_t n) : left(n), out(n), done(env) {}
  size_t left;
  std::vector<std::optional<T>> out;
  OneShot<bool> done;
};

template <typename T>
Task<void> WhenAllRun(std::shared_ptr<WhenAllState<T>> state, size_t i, Task<T> task) {
  state->out[i].emplace(co_await std::move(task));
  TIDAL_ASSERT(state->left > 0);
  if (--state->left == 0) state->done.Set(true);
}

}  // namespace detail

// Each task runs as its own root on `env` (so they interleave); the awaiting coroutine
// resumes when the last one ends.
template <typename T>
Task<std::vector<T>> WhenAll(Env& env, std::vector<Task<T>> tasks) {
  std::vector<T> result;
  if (tasks.empty()) co_return result;
  auto state = std::make_shared<detail::WhenAllState<T>>(env, tasks.size());
  for (size_t i = 0; i < tasks.size(); ++i) {
    Spawn(env, detail::WhenAllRun<T>(state, i, std::move(tasks[i])));
  }
  co_await state->done.Wait();
  result.reserve(tasks.size());
  for (auto& o : state->out) {
    TIDAL_ASSERT(o.has_value());
    result.push_back(std::move(*o));
  }
  co_return result;
}

}  // namespace tidal::store
