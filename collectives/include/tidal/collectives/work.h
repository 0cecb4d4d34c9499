// Work: the handle every ProcessGroup operation returns (the shape of c10d's Work).
//
// A Work is shared between the group (which completes it) and the caller (who waits on
// it); hold it by the shared_ptr the group returns. It completes exactly once with:
//   OK                  the operation finished over every rank of the group;
//   RANK_FAILED         it finished over the surviving ranks with the documented result
//                       (README.md, "Fault semantics"); failed_ranks() lists every rank of
//                       the group that did not take part;
//   COLLECTIVE_ABORTED  it could not finish (a root or a p2p peer died, or this rank was
//                       excluded); outputs are unchanged; failed_ranks() says who failed;
//   OPERATION_TIMEOUT   it outlived options.timeout_ns (the group is then broken: later
//                       collectives fail with COLLECTIVE_ABORTED);
//   INVALID_PARAMS / UNSUPPORTED   the arguments were refused before anything moved.
//
// Thread safety: like the group, called on the group's Env executor only.
#pragma once

#include <coroutine>
#include <cstdint>
#include <vector>

#include "tidal/env.h"
#include "tidal/status.h"
#include "tidal/task.h"

namespace tidal::coll {

class Work {
 public:
  explicit Work(Env& env) : env_(&env) {}
  Work(const Work&) = delete;
  Work& operator=(const Work&) = delete;

  // True once the operation has completed (never blocks).
  bool done() const { return done_; }
  // The final status; OK before done() (check done() first).
  const Status& status() const { return status_; }
  // Ranks of the group that did not take part (sorted). Empty when OK.
  const std::vector<int>& failed_ranks() const { return failed_ranks_; }
  // Virtual/real nanoseconds from issue to completion (for benchmarks).
  uint64_t elapsed_ns() const { return done_ns_ - start_ns_; }

  // Suspends until done and returns status(). Several coroutines may wait.
  Task<Status> Wait();

  // For the group: completes the Work once (later calls are ignored).
  void Complete(Status status, std::vector<int> failed_ranks);
  void set_start_ns(uint64_t ns) { start_ns_ = ns; }

 private:
  Env* env_;
  bool done_ = false;
  Status status_;
  std::vector<int> failed_ranks_;
  uint64_t start_ns_ = 0;
  uint64_t done_ns_ = 0;
  std::vector<std::coroutine_handle<>> waiters_;
};

}  // namespace tidal::coll
