// RealEnv: the Env of a real process. The clock is the monotonic clock, randomness comes
// from a generator seeded by the OS, and the executor is an event loop run on the thread
// that calls RunUntil (RunBlocking at the outermost API).
//
// Thread safety: Post may be called from any thread (a backend's progress thread hands
// its completions to the loop this way) and wakes a RunUntil that is waiting. Every other
// method, and every callback, runs on the thread driving RunUntil; only one thread may
// drive it at a time.
//
// Descriptors watched by the loop (AddWaitFd): a backend whose input arrives on a
// descriptor (the TCP messenger's inbound connections) lets the loop itself wait on it, so
// a message wakes the one thread that handles it instead of an IO thread that hands it
// over. While any is registered, a loop with nothing to run blocks in epoll on those
// descriptors and an eventfd that Post signals, rather than on a condition variable; it
// also looks at them (without blocking) whenever it runs out of ready work and after every
// kFdCheckEvery callbacks in a row, so a busy loop still reads its input.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>

#include "tidal/backends/timer_queue.h"
#include "tidal/env.h"
#include "tidal/status.h"
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
  // Post calls so far (from any thread).
  uint64_t posts() const { return posts_.load(std::memory_order_relaxed); }

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
  // A loop poller is called as a spin poller (idle = true), and also while the loop is
  // busy (idle = false): after every kPollEvery callbacks in a row and once each time the
  // ready work runs out, so a backend can leave its completions to a loop that is running
  // and keep its own thread off the shared state. `before_block`, if set, runs on the
  // loop's thread each time the loop is about to block (in epoll or on its condition
  // variable), after the spin, and when RunUntil returns: the backend hands the polling
  // back to its own thread there.
  // Both may Post (a post made from before_block is run before the loop blocks). Removed
  // with RemoveSpinPoller.
  uint64_t AddLoopPoller(std::function<void(bool idle)> poll,
                         std::function<void()> before_block = {});
  void RemoveSpinPoller(uint64_t id);
  // Loop poller calls made while the loop was busy, and before_block calls (for tests and
  // benchmarks).
  uint64_t busy_polls() const { return busy_polls_.load(std::memory_order_relaxed); }
  uint64_t block_handoffs() const { return block_handoffs_.load(std::memory_order_relaxed); }

  static constexpr int kPollEvery = 8;

  // Watches `fd` for input: `on_readable` runs on the loop's thread whenever the loop finds
  // it readable (level-triggered: it runs again on the next look while input is left, so it
  // may read only part). Loop thread only, like RemoveWaitFd; the callback may add and
  // remove descriptors, itself included. The caller keeps the descriptor open until it
  // removes it. INVALID_PARAMS with the system's reason if epoll refuses it. While one is
  // registered, RunUntil never reports a deadlock.
  Result<uint64_t> AddWaitFd(int fd, std::function<void()> on_readable);
  void RemoveWaitFd(uint64_t id);
  // Also runs the descriptor's callback while it is writable (level-triggered, as for
  // input), or stops that: a callback with output the socket did not take turns this on
  // and off again once it is written. Loop thread only. INVALID_PARAMS for an id not
  // watched, or with the system's reason if epoll refuses.
  Status WatchWritable(uint64_t id, bool writable);
  size_t wait_fds() const { return wait_fds_.size(); }
  // Loop wake-ups so far that came from a watched descriptor (the callbacks run).
  uint64_t fd_wakeups() const { return fd_wakeups_; }
  // Posts that had to write the eventfd to end a wait in epoll (the loop was blocked, not
  // running callbacks).
  uint64_t wake_writes() const { return wake_writes_.load(std::memory_order_relaxed); }

  static constexpr int kFdCheckEvery = 64;

 private:
  bool Run(const std::function<bool()>& done);  // RunUntil, less the hand-back at its end
  bool RunOne(std::unique_lock<std::mutex>& lock) TIDAL_REQUIRES(mu_);
  // Waits up to `timeout_ns` (0: only looks; UINT64_MAX: no bound) for a watched
  // descriptor or a Post, then runs the callbacks of the ready descriptors. Called with mu_
  // unlocked. Returns whether any callback ran.
  bool PollFds(uint64_t timeout_ns);
  void WakeFdWait();  // ends a PollFds blocked in epoll (the eventfd)
  struct WaitFd {
    int fd;
    std::shared_ptr<std::function<void()>> on_readable;  // held by a call in progress too
  };

  std::string name_;
  std::mt19937_64 rng_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Callback> ready_ TIDAL_GUARDED_BY(mu_);
  TimerQueue timers_ TIDAL_GUARDED_BY(mu_);
  std::atomic<int> posters_{0};
  std::atomic<uint64_t> spin_ns_{0};
  std::atomic<uint64_t> posts_{0};  // Post calls so far: what a spinning RunUntil watches
  std::mutex pollers_mu_;           // never held with mu_
  struct Poller {
    std::function<void(bool idle)> poll;
    std::function<void()> before_block;
    bool busy = false;  // also called while the loop is busy (a loop poller)
  };
  // Calls the pollers (only those that poll a busy loop unless `idle`); before_block hooks.
  void RunPollers(bool idle);
  void RunBeforeBlock();
  std::map<uint64_t, Poller> pollers_ TIDAL_GUARDED_BY(pollers_mu_);
  uint64_t next_poller_ TIDAL_GUARDED_BY(pollers_mu_) = 1;
  std::atomic<size_t> poller_count_{0};
  std::atomic<size_t> busy_poller_count_{0};  // loop pollers
  std::atomic<size_t> block_hook_count_{0};   // pollers with a before_block
  std::atomic<uint64_t> busy_polls_{0};
  std::atomic<uint64_t> block_handoffs_{0};
  // Watched descriptors (loop thread only), the epoll set and the eventfd Post signals
  // while the loop blocks in epoll (fd_waiting_).
  std::map<uint64_t, WaitFd> wait_fds_;
  uint64_t next_wait_fd_ = 1;
  uint64_t fd_wakeups_ = 0;
  std::atomic<uint64_t> wake_writes_{0};
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  bool fd_waiting_ TIDAL_GUARDED_BY(mu_) = false;
};

}  // namespace tidal::backends
