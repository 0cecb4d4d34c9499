// Signal: the one wake-up primitive of the process group (private).
//
// Coroutines wait on it with a deadline and re-check their own condition when woken;
// every incoming notification, message and finished child task calls NotifyAll. With a
// handful of waiters per rank this "broadcast and re-check" is simpler and safer than a
// condition per event, and it makes every wait a timed wait: nothing can sleep forever.
#pragma once

#include <algorithm>
#include <coroutine>
#include <cstdint>
#include <limits>
#include <vector>

#include "tidal/env.h"

namespace tidal::coll {

constexpr uint64_t kNoDeadline = std::numeric_limits<uint64_t>::max();

class Signal {
  struct Node {
    std::coroutine_handle<> h;
    TimerId timer = 0;
    bool woken = false;
  };

 public:
  explicit Signal(Env& env) : env_(&env) {}
  Signal(const Signal&) = delete;
  Signal& operator=(const Signal&) = delete;

  // Suspends until the next NotifyAll or until the Env clock reaches deadline_ns
  // (kNoDeadline: no timer). Resumption always goes through the executor.
  auto Wait(uint64_t deadline_ns) {
    struct Awaiter : Node {
      Signal* self;
      uint64_t deadline_ns;
      Awaiter(Signal* s, uint64_t d) : self(s), deadline_ns(d) {}
      bool await_ready() { return self->env_->NowNs() >= deadline_ns; }
      void await_suspend(std::coroutine_handle<> handle) {
        this->h = handle;
        self->waiters_.push_back(this);
        if (deadline_ns != kNoDeadline) {
          uint64_t now = self->env_->NowNs();
          this->timer = self->env_->ScheduleAfter(deadline_ns - now, [this]() { OnTimer(); });
        }
      }
      void await_resume() noexcept {}
      void OnTimer() {
        if (this->woken) return;
        this->woken = true;
        auto& w = self->waiters_;
        w.erase(std::remove(w.begin(), w.end(), static_cast<Node*>(this)), w.end());
        this->h.resume();
      }
    };
    return Awaiter(this, deadline_ns);
  }

  void NotifyAll() {
    if (waiters_.empty()) return;
    // The waiters are taken out first (a NotifyAll reached from inside this one sees a
    // fresh list); waiters_ gets the spare buffer back, so steady waiting never allocates.
    std::vector<Node*> list;
    list.swap(spare_);
    list.swap(waiters_);
    for (Node* n : list) {
      n->woken = true;
      if (n->timer != 0) env_->CancelTimer(n->timer);
      env_->Post([h = n->h]() { h.resume(); });
    }
    list.clear();
    if (spare_.capacity() == 0) spare_.swap(list);
  }

  size_t waiters() const { return waiters_.size(); }

 private:
  Env* env_;
  std::vector<Node*> waiters_;
  std::vector<Node*> spare_;  // empty; a buffer NotifyAll hands back to waiters_
};

}  // namespace tidal::coll
