#include "tidal/backends/real_env.h"

#include <algorithm>
#include <chrono>

namespace tidal::backends {

RealEnv::RealEnv(std::string name) : name_(std::move(name)), rng_(std::random_device{}()) {}

RealEnv::~RealEnv() { DestroyRoots(); }

uint64_t RealEnv::NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

uint64_t RealEnv::RandomU64() { return rng_(); }

void RealEnv::Post(Callback fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ready_.push_back(std::move(fn));
  }
  posts_.fetch_add(1, std::memory_order_release);
  cv_.notify_one();
}

TimerId RealEnv::ScheduleAfter(uint64_t delay_ns, Callback fn) {
  std::lock_guard<std::mutex> lock(mu_);
  const TimerId id = next_timer_++;
  const uint64_t due = NowNs() + delay_ns;
  timers_.emplace(std::make_pair(due, id), std::move(fn));
  timer_due_.emplace(id, due);
  return id;
}

bool RealEnv::CancelTimer(TimerId id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = timer_due_.find(id);
  if (it == timer_due_.end()) return false;
  timers_.erase(std::make_pair(it->second, id));
  timer_due_.erase(it);
  return true;
}

uint64_t RealEnv::AddSpinPoller(std::function<void()> fn) {
  std::lock_guard<std::mutex> lock(pollers_mu_);
  const uint64_t id = next_poller_++;
  pollers_.emplace(id, std::move(fn));
  poller_count_.store(pollers_.size());
  return id;
}

void RealEnv::RemoveSpinPoller(uint64_t id) {
  std::lock_guard<std::mutex> lock(pollers_mu_);
  pollers_.erase(id);
  poller_count_.store(pollers_.size());
}

void RealEnv::RemovePoster() {
  posters_.fetch_sub(1);
  cv_.notify_all();
}

// Runs one ready callback or one due timer (unlocking while it runs). Returns false if
// there was nothing to run now.
bool RealEnv::RunOne(std::unique_lock<std::mutex>& lock) {
  Callback fn;
  if (!ready_.empty()) {
    fn = std::move(ready_.front());
    ready_.pop_front();
  } else if (!timers_.empty() && timers_.begin()->first.first <= NowNs()) {
    auto it = timers_.begin();
    timer_due_.erase(it->first.second);
    fn = std::move(it->second);
    timers_.erase(it);
  } else {
    return false;
  }
  lock.unlock();
  fn();
  lock.lock();
  return true;
}

bool RealEnv::RunUntil(const std::function<bool()>& done) {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    lock.unlock();
    const bool finished = done();
    lock.lock();
    if (finished) return true;
    if (RunOne(lock)) continue;
    if (timers_.empty() && posters_.load() == 0) return false;  // nothing can happen
    if (const uint64_t spin = spin_ns_.load(std::memory_order_relaxed); spin > 0) {
      // Poll for a post (or the first timer) for up to `spin`, then block as before.
      const uint64_t seen = posts_.load(std::memory_order_acquire);
      const uint64_t start = NowNs();
      uint64_t until = start + spin;
      if (!timers_.empty()) until = std::min(until, timers_.begin()->first.first);
      lock.unlock();
      while (posts_.load(std::memory_order_acquire) == seen && NowNs() < until) {
        if (poller_count_.load(std::memory_order_relaxed) == 0) continue;
        std::lock_guard<std::mutex> pl(pollers_mu_);
        for (auto& [id, fn] : pollers_) fn();
      }
      lock.lock();
      if (!ready_.empty() || (!timers_.empty() && timers_.begin()->first.first <= NowNs())) {
        continue;
      }
    }
    if (timers_.empty()) {
      cv_.wait(lock, [&] { return !ready_.empty() || posters_.load() == 0; });
    } else {
      const uint64_t due = timers_.begin()->first.first;
      const uint64_t now = NowNs();
      if (due > now) {
        cv_.wait_for(lock, std::chrono::nanoseconds(due - now),
                     [&] { return !ready_.empty(); });
      }
    }
  }
}

}  // namespace tidal::backends
