// RealEnv: the Env of a real process. The clock is the monotonic clock, randomness comes
// from a generator seeded by the OS, and the executor is an event loop run on the thread
// that calls RunUntil (RunBlocking at the outermost API).
//
// Thread safety: Post may be called from any thread (a backend's progress thread hands
// its completions to the loop this way) and wakes a RunUntil that is waiting. Every other
// method, and every callback, runs on the thread driving RunUntil; only one thread may
// drive it at a time.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <string>

#include "tidal/env.h"
#include "tidal/thread_annotations.h"

namespace tidal::backends {

class RealEnv final : public Env {
 public:
  explicit RealEnv(std::string name = "real");
  ~RealEnv() override;

  uint64_t NowNs() override;
  uint64_t RandomU64() override;
  void Post(Callback fn) override;
  TimerId ScheduleAfter(uint64_t delay_ns, Callback fn) override;
  bool CancelTimer(TimerId id) override;
  // Runs ready work and due timers until done() holds. Returns false when no work is
  // queued, no timer is pending and no other thread can post (posts_expected() is 0):
  // nothing could ever make done() true.
  bool RunUntil(const std::function<bool()>& done) override;
  std::string_view Name() const override { return name_; }

  // Backends with their own threads announce them: while any is registered, RunUntil
  // waits for posts instead of reporting a deadlock.
  void AddPoster() { posters_.fetch_add(1); }
  void RemovePoster();
  int posts_expected() const { return posters_.load(); }

  // Before RunUntil blocks for a post from another thread, it polls for one for up to
  // `ns` (0, the default: block at once). A loop fed by GPU completions or by progress
  // threads spins instead of paying a wake-up per hand-off; it burns a core while it does.
  void SetSpinNs(uint64_t ns) { spin_ns_.store(ns); }

  // While the loop polls (SetSpinNs), it also calls these, on its own thread, between its
  // checks for a post: a backend whose completions come from polling (a UCX worker) lets
  // the waiting thread take them itself instead of handing them over from another thread.
  // A poller may Post; it must not call Add/RemoveSpinPoller. RemoveSpinPoller returns
  // after any call of that poller in progress; call it before what the poller uses goes.
  uint64_t AddSpinPoller(std::function<void()> fn);
  void RemoveSpinPoller(uint64_t id);

 private:
  bool RunOne(std::unique_lock<std::mutex>& lock) TIDAL_REQUIRES(mu_);

  std::string name_;
  std::mt19937_64 rng_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Callback> ready_ TIDAL_GUARDED_BY(mu_);
  std::map<std::pair<uint64_t, TimerId>, Callback> timers_ TIDAL_GUARDED_BY(mu_);  // by due
  std::map<TimerId, uint64_t> timer_due_ TIDAL_GUARDED_BY(mu_);
  TimerId next_timer_ TIDAL_GUARDED_BY(mu_) = 1;
  std::atomic<int> posters_{0};
  std::atomic<uint64_t> spin_ns_{0};
  std::atomic<uint64_t> posts_{0};  // Post calls so far: what a spinning RunUntil watches
  std::mutex pollers_mu_;           // never held with mu_
  std::map<uint64_t, std::function<void()>> pollers_ TIDAL_GUARDED_BY(pollers_mu_);
  uint64_t next_poller_ TIDAL_GUARDED_BY(pollers_mu_) = 1;
  std::atomic<size_t> poller_count_{0};
};

}  // namespace tidal::backends
