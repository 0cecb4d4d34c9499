// The collective runner and the agreement round.
//
// Collectives run one at a time, in issue order, as attempts (op, epoch) over a view (the
// members). An attempt moves data (pg_algorithms.cc) and then every live member reports
// to the coordinator, the lowest live member of the view. The coordinator waits for a
// report from every live member (querying and probing the silent ones), then decides:
// COMMIT when everyone finished cleanly and nobody in the view is dead, otherwise a retry
// over the view minus the dead. A member adopts the first decision it sees for the
// attempt; any member holding a decision answers reports and queries with it, so a
// coordinator that dies after telling only some members does not split the group. Every
// survivor therefore commits the same attempt over the same members and reports the same
// failed ranks (field bug 10).
#include <algorithm>
#include <cstring>

#include "pg_impl.h"
#include "tidal/reach.h"

namespace tidal::coll {
namespace {

bool NeedsRoot(OpType t) {
  return t == OpType::kBroadcast || t == OpType::kReduce || t == OpType::kGather ||
         t == OpType::kScatter;
}

int LowestRank(uint64_t mask) {
  return mask == 0 ? -1 : __builtin_ctzll(mask);
}

constexpr uint32_t kMaxFruitlessRetries = 3;

}  // namespace

Task<void> ProcessGroup::Impl::Runner() {
  std::shared_ptr<bool> alive = alive_;
  while (*alive && !queue_.empty()) {
    CollOp op = std::move(queue_.front());
    queue_.pop_front();
    co_await RunCollective(op);
    if (*alive && options_.yield_between_ops && !queue_.empty()) {
      co_await Yield(env_);  // the other ranks of this loop take the last decision first
    }
  }
  if (*alive) runner_active_ = false;
}

Task<Status> ProcessGroup::Impl::Boundary(CollOp& op, uint32_t epoch, uint64_t step,
                                          uint64_t steps) {
  if (!options_.step_hook) co_return Status::Ok();
  StepEvent e;
  e.rank = rank_;
  e.op = op.type;
  e.op_seq = op.seq;
  e.epoch = epoch;
  e.step = step;
  e.steps = steps;
  e.boundary = op.boundaries++;
  options_.step_hook(e);
  // Let whatever the hook scheduled (a crash) happen exactly at this boundary.
  co_await Yield(env_);
  if (halted_) co_await Park();  // the hook halted this rank (ProcessGroup::Halt)
  co_return Status::Ok();
}

Task<void> ProcessGroup::Impl::RunCollective(CollOp& op) {
  TIDAL_ASSERT(!in_attempt_);  // collectives run one at a time
  ++stats_.collectives;
  const uint64_t all = size_ >= 64 ? ~uint64_t{0} : Bit(size_) - 1;
  const uint64_t deadline = env_.NowNs() + options_.timeout_ns;
  auto failed_of = [all](uint64_t view) { return MaskToRanks(all & ~view); };
  if (broken_) {
    op.work->Complete(Status(ErrorCode::COLLECTIVE_ABORTED,
                             "the group is broken by an earlier timeout or exclusion"),
                      failed_of(active_mask_));
    co_return;
  }
  uint64_t view = active_mask_;
  uint32_t epoch = 0;
  uint32_t fruitless = 0;
  for (;;) {
    ++stats_.attempts;
    if (!(view & Bit(rank_))) {
      broken_ = true;
      op.work->Complete(Status(ErrorCode::COLLECTIVE_ABORTED, "this rank was excluded"),
                        failed_of(view));
      co_return;
    }
    if (NeedsRoot(op.type) && !(view & Bit(op.root))) {
      active_mask_ = view;
      op.work->Complete(
          Status(ErrorCode::COLLECTIVE_ABORTED, "root " + std::to_string(op.root) + " failed"),
          failed_of(view));
      co_return;
    }
    TIDAL_ASSERT(epoch < 256 && (view & ~active_mask_) == 0);  // retries only shrink the view
    in_attempt_ = true;
    cur_op_ = op.seq;
    cur_epoch_ = epoch;
    cur_view_ = view;
    attempt_aborted_ = false;
    report_ready_ = false;
    ResetCollChannels(AttemptKey(op.seq, epoch));

    std::vector<int> members = MaskToRanks(view);
    Status data = Status::Ok();
    if (view & dead_mask_) {
      // Known dead members: nothing is sent to them (field bug 11); go straight to the
      // agreement round, which retries over the survivors.
      data = Status(ErrorCode::RANK_FAILED, "a member is known dead");
    } else {
      data = co_await RunAlgorithm(op, members, epoch, deadline);
    }
    if (data.code() == ErrorCode::OPERATION_TIMEOUT) {
      in_attempt_ = false;
      broken_ = true;
      op.work->Complete(data, failed_of(view & ~dead_mask_));
      co_return;
    }
    if (!data.ok()) BroadcastAbort();  // stop the others' data phase at once

    auto decision = co_await Agree(op.seq, epoch, view, data.ok(), deadline);
    in_attempt_ = false;
    if (!decision.ok()) {
      broken_ = true;
      op.work->Complete(decision.status(), failed_of(view & ~dead_mask_));
      co_return;
    }
    // The decision came from another rank: a view it could not have decided is bad
    // input, not a broken invariant here. Nothing later can be trusted: the group breaks.
    if ((decision->commit && decision->view != view) || (decision->view & ~view) != 0) {
      broken_ = true;
      op.work->Complete(Status(ErrorCode::CORRUPT_INPUT,
                               "the coordinator's decision names members outside the attempt"),
                        failed_of(view & ~dead_mask_));
      co_return;
    }
    if (decision->commit) {
      active_mask_ = view;
      Status fin = co_await Finalize(op, view);
      std::vector<int> failed = failed_of(view);
      if (!fin.ok()) {
        op.work->Complete(fin, failed);
      } else if (failed.empty()) {
        op.work->Complete(Status::Ok(), {});
      } else {
        op.work->Complete(Status(ErrorCode::RANK_FAILED, "finished over the survivors"), failed);
      }
      co_return;
    }
    uint64_t next = decision->view;  // a retry never adds members (checked above)
    fruitless = next == view ? fruitless + 1 : 0;
    if (fruitless > kMaxFruitlessRetries) {
      broken_ = true;
      op.work->Complete(
          Status(ErrorCode::COLLECTIVE_ABORTED, "retries made no progress: " + data.ToString()),
          failed_of(next));
      co_return;
    }
    view = next;
    TIDAL_REACHABLE("coll.agreement_retry_over_survivors");
    ++epoch;
  }
}

Task<Result<ControlMessage>> ProcessGroup::Impl::Agree(uint64_t op, uint32_t epoch, uint64_t view,
                                                       bool done, uint64_t deadline_ns) {
  const uint64_t key = AttemptKey(op, epoch);
  my_report_ = ControlMessage{};
  my_report_.kind = ControlMessage::Kind::kReport;
  my_report_.op = op;
  my_report_.epoch = epoch;
  my_report_.done = done;
  report_ready_ = true;

  // Forget agreement state of long-finished ops.
  while (!decisions_.empty() && (decisions_.begin()->first >> 8) + 64 < op) {
    decisions_.erase(decisions_.begin());
  }
  while (!reports_.empty() && (reports_.begin()->first >> 8) + 64 < op) {
    reports_.erase(reports_.begin());
  }

  int coord = -1;
  uint64_t coord_since = 0;
  uint64_t next_send = 0;
  uint64_t probe_interval = options_.peer_check_ns;
  std::map<int, uint64_t> next_query;  // coordinator: per silent member

  for (;;) {
    if (halted_) co_await Park();
    auto d = decisions_.find(key);
    if (d != decisions_.end()) {
      ControlMessage decision = d->second;
      // Pass it on: members that lost the coordinator may still be waiting.
      for (int r : MaskToRanks((decision.commit ? view : decision.view) & ~dead_mask_)) {
        if (r != rank_ && reports_[key].count(r)) SendControl(r, decision);
      }
      co_return decision;
    }
    uint64_t now = env_.NowNs();
    if (now >= deadline_ns) {
      co_return Status(ErrorCode::OPERATION_TIMEOUT, "agreement timed out");
    }
    uint64_t live = view & ~dead_mask_;
    int c = LowestRank(live);
    TIDAL_ASSERT(c >= 0 && (live & Bit(rank_)));
    if (c != coord) {
      coord = c;
      coord_since = now;
      next_send = 0;
      probe_interval = options_.peer_check_ns;
    }
    my_report_.dead = dead_mask_;
    uint64_t wake = deadline_ns;
    if (coord == rank_) {
      uint64_t missing = 0;
      if (auto decision = TryDecide(op, epoch, view, &missing)) co_return *decision;
      for (int r : MaskToRanks(missing)) {
        uint64_t& at = next_query[r];
        if (at == 0) at = now + options_.control_retry_ns;  // give reports time to arrive
        if (now >= at) {
          ControlMessage q;
          q.kind = ControlMessage::Kind::kQuery;
          q.op = op;
          q.epoch = epoch;
          SendControl(r, q);
          // A member that stays silent is probed; only a failed probe excludes it.
          co_await ProbePeer(r);
          at = env_.NowNs() + probe_interval;
          probe_interval = std::min(probe_interval * 2, options_.peer_check_ns * 64);
        }
        wake = std::min(wake, at);
      }
    } else {
      if (now >= next_send) {
        SendControl(coord, my_report_);
        next_send = now + options_.control_retry_ns;
      }
      wake = std::min(wake, next_send);
      if (now >= coord_since + probe_interval) {
        co_await ProbePeer(coord);
        coord_since = env_.NowNs();
        probe_interval = std::min(probe_interval * 2, options_.peer_check_ns * 64);
        continue;
      }
      wake = std::min(wake, coord_since + probe_interval);
    }
    co_await changed_.Wait(wake);
  }
}

std::optional<ControlMessage> ProcessGroup::Impl::TryDecide(uint64_t op, uint32_t epoch,
                                                            uint64_t view, uint64_t* missing) {
  const uint64_t key = AttemptKey(op, epoch);
  const uint64_t live = view & ~dead_mask_;
  auto& reps = reports_[key];
  reps[rank_] = my_report_;
  *missing = 0;
  for (int r : MaskToRanks(live)) {
    if (!reps.count(r)) *missing |= Bit(r);
  }
  if (*missing != 0) return std::nullopt;
  uint64_t dead = dead_mask_;
  bool all_done = true;
  for (int r : MaskToRanks(live)) {
    dead |= reps[r].dead;
    all_done = all_done && reps[r].done;
  }
  for (int r : MaskToRanks(dead & ~dead_mask_ & ~Bit(rank_))) MarkDead(r, false);
  const uint64_t survivors = view & ~dead_mask_;
  TIDAL_ASSERT(survivors & Bit(rank_));
  ControlMessage decision;
  decision.kind = ControlMessage::Kind::kDecision;
  decision.op = op;
  decision.epoch = epoch;
  decision.commit = all_done && survivors == view;
  decision.view = decision.commit ? view : survivors;
  decisions_[key] = decision;
  for (int r : MaskToRanks(survivors)) SendControl(r, decision);
  return decision;
}

}  // namespace tidal::coll
