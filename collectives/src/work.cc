// Work: completion handle of a ProcessGroup operation.
#include "tidal/collectives/work.h"

#include <utility>

namespace tidal::coll {

Task<Status> Work::Wait() {
  if (!done_) {
    struct Awaiter {
      Work* self;
      bool await_ready() { return self->done_; }
      void await_suspend(std::coroutine_handle<> h) { self->waiters_.push_back(h); }
      void await_resume() noexcept {}
    };
    co_await Awaiter{this};
  }
  TIDAL_ASSERT(done_);
  co_return status_;
}

void Work::Complete(Status status, std::vector<int> failed_ranks) {
  if (done_) return;
  done_ = true;
  done_ns_ = env_->NowNs();
  status_ = std::move(status);
  failed_ranks_ = std::move(failed_ranks);
  auto waiters = std::move(waiters_);
  waiters_.clear();
  for (auto h : waiters) env_->Post([h]() { h.resume(); });
}

}  // namespace tidal::coll
