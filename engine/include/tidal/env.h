// Env: everything nondeterministic that engine, store and collectives use: the clock,
// randomness, the executor and timers. It is passed into constructors, never a global.
//
// The simulator's Env (sim/sim_env.h) is virtual time on one thread with every random
// draw taken from the World's tape; the real Env (backends/real_env.h) is the monotonic
// clock and an event loop. Code above the Env is the same for both.
//
// Thread safety: every method but Post is called on the Env's executor thread. Post is
// safe from any thread on the real Env (it is how a progress thread hands completions to
// the loop) and, in the simulator, there is only one thread.
#pragma once

#include <coroutine>
#include <cstdint>
#include <functional>
#include <string_view>
#include <unordered_set>

#include "tidal/callback.h"

namespace tidal {

using TimerId = uint64_t;

class Env {
 public:
  virtual ~Env() = default;

  // Nanoseconds on this node's clock. Monotonic; the origin is unspecified.
  virtual uint64_t NowNs() = 0;

  // A uniformly random 64-bit value (the simulator draws it from the tape).
  virtual uint64_t RandomU64() = 0;

  // Runs `fn` soon on the executor, after the caller returns (never inline).
  virtual void Post(Callback fn) = 0;

  // Runs `fn` on the executor no earlier than `delay_ns` from now. Returns an id for
  // CancelTimer; ids are never 0 and never reused.
  virtual TimerId ScheduleAfter(uint64_t delay_ns, Callback fn) = 0;

  // Cancels a timer that has not fired; returns false if it fired or never existed.
  virtual bool CancelTimer(TimerId id) = 0;

  // Drives the executor on the calling thread until `done()` is true. Returns false if
  // there was no more work that could ever make it true (a deadlock in the simulator),
  // true otherwise. Used only by RunBlocking at the outermost API.
  virtual bool RunUntil(const std::function<bool()>& done) = 0;

  // A short name for logs and traces ("node3").
  virtual std::string_view Name() const = 0;

  // Uniform in [0, bound); bound > 0.
  uint64_t RandomBelow(uint64_t bound);

  // Root coroutines started with Spawn are tracked here so a node that stops (a crash in
  // the simulator, shutdown in a real process) can destroy the frames that will never
  // be resumed. See task.h.
  void AddRoot(std::coroutine_handle<> h) { roots_.insert(h.address()); }
  void RemoveRoot(std::coroutine_handle<> h) { roots_.erase(h.address()); }
  // Destroys every root coroutine still suspended. Call only when nothing will resume
  // them again (the node crashed or its world is shutting down).
  void DestroyRoots();
  size_t RootCount() const { return roots_.size(); }

 private:
  std::unordered_set<void*> roots_;  // never iterated where order matters
};

}  // namespace tidal
