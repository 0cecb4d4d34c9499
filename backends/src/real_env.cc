#include "tidal/backends/real_env.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <memory>
#include <vector>

namespace tidal::backends {

RealEnv::RealEnv(std::string name) : name_(std::move(name)), rng_(std::random_device{}()) {}

RealEnv::~RealEnv() {
  DestroyRoots();
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

uint64_t RealEnv::NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

uint64_t RealEnv::RandomU64() { return rng_(); }

void RealEnv::Post(Callback fn) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ready_.push_back(std::move(fn));
    wake = fd_waiting_;
  }
  posts_.fetch_add(1, std::memory_order_release);
  if (wake) {
    WakeFdWait();
  } else {
    cv_.notify_one();
  }
}

void RealEnv::WakeFdWait() {
  wake_writes_.fetch_add(1, std::memory_order_relaxed);
  const uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
}

TimerId RealEnv::ScheduleAfter(uint64_t delay_ns, Callback fn) {
  const uint64_t due = NowNs() + delay_ns;
  std::lock_guard<std::mutex> lock(mu_);
  return timers_.Add(due, std::move(fn));
}

bool RealEnv::CancelTimer(TimerId id) {
  Callback fn;  // destroyed after the lock is released
  std::lock_guard<std::mutex> lock(mu_);
  fn = timers_.Cancel(id);
  return static_cast<bool>(fn);
}

uint64_t RealEnv::AddSpinPoller(std::function<void()> fn) {
  std::lock_guard<std::mutex> lock(pollers_mu_);
  const uint64_t id = next_poller_++;
  pollers_.emplace(id, Poller{[fn = std::move(fn)](bool) { fn(); }, {}, false});
  poller_count_.store(pollers_.size());
  return id;
}

uint64_t RealEnv::AddLoopPoller(std::function<void(bool idle)> poll,
                                std::function<void()> before_block) {
  std::lock_guard<std::mutex> lock(pollers_mu_);
  const uint64_t id = next_poller_++;
  if (before_block) block_hook_count_.fetch_add(1);
  busy_poller_count_.fetch_add(1);
  pollers_.emplace(id, Poller{std::move(poll), std::move(before_block), true});
  poller_count_.store(pollers_.size());
  return id;
}

void RealEnv::RemoveSpinPoller(uint64_t id) {
  std::lock_guard<std::mutex> lock(pollers_mu_);
  auto it = pollers_.find(id);
  if (it == pollers_.end()) return;
  if (it->second.busy) busy_poller_count_.fetch_sub(1);
  if (it->second.before_block) block_hook_count_.fetch_sub(1);
  pollers_.erase(it);
  poller_count_.store(pollers_.size());
}

void RealEnv::RunPollers(bool idle) {
  std::lock_guard<std::mutex> pl(pollers_mu_);
  for (auto& [id, p] : pollers_) {
    if (!idle && !p.busy) continue;
    p.poll(idle);
  }
  if (!idle) busy_polls_.fetch_add(1, std::memory_order_relaxed);
}

void RealEnv::RunBeforeBlock() {
  std::lock_guard<std::mutex> pl(pollers_mu_);
  for (auto& [id, p] : pollers_) {
    if (p.before_block) p.before_block();
  }
  block_handoffs_.fetch_add(1, std::memory_order_relaxed);
}

void RealEnv::RemovePoster() {
  posters_.fetch_sub(1);
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    wake = fd_waiting_;
  }
  if (wake) WakeFdWait();
  cv_.notify_all();
}

Result<uint64_t> RealEnv::AddWaitFd(int fd, std::function<void()> on_readable) {
  if (epoll_fd_ < 0) {
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) {
      return Status(ErrorCode::INVALID_PARAMS,
                    std::string("epoll_create1: ") + std::strerror(errno));
    }
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) {
      const int err = errno;
      ::close(epoll_fd_);
      epoll_fd_ = -1;
      return Status(ErrorCode::INVALID_PARAMS, std::string("eventfd: ") + std::strerror(err));
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = 0;  // the wake-up descriptor
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  }
  const uint64_t id = next_wait_fd_++;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = id;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    return Status(ErrorCode::INVALID_PARAMS, "cannot watch descriptor " + std::to_string(fd) +
                                                 ": epoll_ctl: " + std::strerror(errno));
  }
  wait_fds_.emplace(id,
                    WaitFd{fd, std::make_shared<std::function<void()>>(std::move(on_readable))});
  return id;
}

Status RealEnv::WatchWritable(uint64_t id, bool writable) {
  auto it = wait_fds_.find(id);
  if (it == wait_fds_.end()) {
    return Status(ErrorCode::INVALID_PARAMS, "no watched descriptor " + std::to_string(id));
  }
  epoll_event ev{};
  ev.events = EPOLLIN | (writable ? EPOLLOUT : 0u);
  ev.data.u64 = id;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, it->second.fd, &ev) != 0) {
    return Status(ErrorCode::INVALID_PARAMS, "cannot watch descriptor " +
                                                 std::to_string(it->second.fd) +
                                                 ": epoll_ctl: " + std::strerror(errno));
  }
  return Status();
}

void RealEnv::RemoveWaitFd(uint64_t id) {
  auto it = wait_fds_.find(id);
  if (it == wait_fds_.end()) return;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, it->second.fd, nullptr);
  wait_fds_.erase(it);
}

bool RealEnv::PollFds(uint64_t timeout_ns) {
  if (epoll_fd_ < 0) return false;
  constexpr int kMaxEvents = 64;
  epoll_event events[kMaxEvents];
  int n = 0;
  if (timeout_ns == 0) {
    n = ::epoll_wait(epoll_fd_, events, kMaxEvents, 0);
  } else {
    // epoll_pwait2 takes nanoseconds; a kernel without it (before 5.11) gets epoll_wait
    // with the timeout rounded up to whole milliseconds.
    static std::atomic<bool> have_pwait2{true};
    timespec ts{};
    timespec* tsp = nullptr;
    if (timeout_ns != UINT64_MAX) {
      ts.tv_sec = static_cast<time_t>(timeout_ns / 1'000'000'000u);
      ts.tv_nsec = static_cast<long>(timeout_ns % 1'000'000'000u);
      tsp = &ts;
    }
    bool pwait2 = have_pwait2.load(std::memory_order_relaxed);
    if (pwait2) {
      n = ::epoll_pwait2(epoll_fd_, events, kMaxEvents, tsp, nullptr);
      if (n < 0 && errno == ENOSYS) have_pwait2.store(pwait2 = false, std::memory_order_relaxed);
    }
    if (!pwait2) {
      const int ms =
          timeout_ns == UINT64_MAX
              ? -1
              : static_cast<int>(std::min<uint64_t>((timeout_ns + 999'999) / 1'000'000, INT32_MAX));
      n = ::epoll_wait(epoll_fd_, events, kMaxEvents, ms);
    }
  }
  if (timeout_ns != 0) {
    // The blocking wait is over: a Post from the callbacks below (or another thread) finds
    // the loop about to look at its queue, so it need not write the eventfd (a write here
    // and a read by the next epoll, per request, when tidal-master slept between them).
    std::lock_guard<std::mutex> lock(mu_);
    fd_waiting_ = false;
  }
  if (n <= 0) return false;  // nothing, or EINTR: the caller looks again
  bool ran = false;
  for (int i = 0; i < n; ++i) {
    const uint64_t id = events[i].data.u64;
    if (id == 0) {
      uint64_t count = 0;
      (void)!::read(wake_fd_, &count, sizeof count);
      continue;
    }
    auto it = wait_fds_.find(id);
    if (it == wait_fds_.end()) continue;  // removed by an earlier callback of this batch
    std::shared_ptr<std::function<void()>> fn = it->second.on_readable;  // may remove itself
    (*fn)();
    ran = true;
  }
  if (ran && timeout_ns != 0) ++fd_wakeups_;
  return ran;
}

// Runs one ready callback or one due timer (unlocking while it runs). Returns false if
// there was nothing to run now.
bool RealEnv::RunOne(std::unique_lock<std::mutex>& lock) {
  Callback fn;
  if (!ready_.empty()) {
    fn = std::move(ready_.front());
    ready_.pop_front();
  } else if (!timers_.empty() && timers_.next_due() <= NowNs()) {
    fn = timers_.PopFirst();
  } else {
    return false;
  }
  lock.unlock();
  fn();
  lock.lock();
  return true;
}

bool RealEnv::RunUntil(const std::function<bool()>& done) {
  const bool finished = Run(done);
  // The loop stops running: its loop pollers hand their polling back, as before a block.
  if (block_hook_count_.load(std::memory_order_relaxed) != 0) RunBeforeBlock();
  return finished;
}

bool RealEnv::Run(const std::function<bool()>& done) {
  std::unique_lock<std::mutex> lock(mu_);
  int streak = 0;  // callbacks run in a row without a look at the watched descriptors
  int poll_streak = 0;  // callbacks run in a row without a call of the loop pollers
  for (;;) {
    lock.unlock();
    const bool finished = done();
    lock.lock();
    if (finished) return true;
    if (!wait_fds_.empty() && streak >= kFdCheckEvery) {
      streak = 0;
      lock.unlock();
      PollFds(0);
      lock.lock();
      continue;
    }
    if (RunOne(lock)) {
      ++streak;
      if (++poll_streak >= kPollEvery && busy_poller_count_.load(std::memory_order_relaxed) != 0) {
        poll_streak = 0;
        lock.unlock();
        RunPollers(/*idle=*/false);
        lock.lock();
      }
      continue;
    }
    streak = 0;
    if (busy_poller_count_.load(std::memory_order_relaxed) != 0 && poll_streak != 0) {
      // The ready work ran out: one look at what the loop pollers hold before the spin.
      poll_streak = 0;
      lock.unlock();
      RunPollers(/*idle=*/false);
      lock.lock();
      if (!ready_.empty()) continue;
    }
    if (!wait_fds_.empty()) {
      lock.unlock();
      const bool ran = PollFds(0);
      lock.lock();
      if (ran) continue;
    }
    if (timers_.empty() && posters_.load() == 0 && wait_fds_.empty()) {
      return false;  // nothing can happen
    }
    if (const uint64_t spin = spin_ns_.load(std::memory_order_relaxed); spin > 0) {
      // Poll for a post (or the first timer) for up to `spin`, then block as before.
      const uint64_t seen = posts_.load(std::memory_order_acquire);
      const uint64_t start = NowNs();
      uint64_t until = start + spin;
      if (!timers_.empty()) until = std::min(until, timers_.next_due());
      lock.unlock();
      bool fds_ran = false;
      while (posts_.load(std::memory_order_acquire) == seen && NowNs() < until) {
        if (!wait_fds_.empty() && PollFds(0)) {
          fds_ran = true;
          break;
        }
        if (poller_count_.load(std::memory_order_relaxed) == 0) continue;
        RunPollers(/*idle=*/true);
      }
      lock.lock();
      if (fds_ran || !ready_.empty() || (!timers_.empty() && timers_.next_due() <= NowNs())) {
        continue;
      }
    }
    if (block_hook_count_.load(std::memory_order_relaxed) != 0) {
      // About to block: the loop pollers hand their polling back to their own threads. A
      // post they make (or one from another thread meanwhile) is run first.
      lock.unlock();
      RunBeforeBlock();
      lock.lock();
      if (!ready_.empty() || (!timers_.empty() && timers_.next_due() <= NowNs())) continue;
    }
    if (!wait_fds_.empty()) {
      // Block in epoll on the watched descriptors and the eventfd Post signals.
      uint64_t timeout = UINT64_MAX;
      if (!timers_.empty()) {
        const uint64_t due = timers_.next_due();
        const uint64_t now = NowNs();
        if (due <= now) continue;
        timeout = due - now;
      }
      if (!ready_.empty()) continue;
      fd_waiting_ = true;
      lock.unlock();
      PollFds(timeout);
      lock.lock();
      fd_waiting_ = false;
      continue;
    }
    if (timers_.empty()) {
      cv_.wait(lock, [&] { return !ready_.empty() || posters_.load() == 0; });
    } else {
      const uint64_t due = timers_.next_due();
      const uint64_t now = NowNs();
      if (due > now) {
        cv_.wait_for(lock, std::chrono::nanoseconds(due - now),
                     [&] { return !ready_.empty(); });
      }
    }
  }
}

}  // namespace tidal::backends
