// What each collective sends where, for one attempt over `members` (sorted ranks).
//
// Every attempt rebuilds its working buffer from the caller's input, which is untouched
// until commit (outputs are written by Finalize only), so a retried attempt starts clean
// even for in-place operations. With options.direct_outputs an out-of-place op's working
// buffer is its output (DirectOutputs): the input is still never written, every attempt
// still rewrites every output byte from it, and Finalize has nothing to copy. Direct algorithms
// receive every contribution into its own buffer and reduce in member order (identical results on
// every rank); ring algorithms fold incoming chunks into the working buffer as they arrive.
//
// Ring reduce-scatter over m members: at step s member i sends segment (i-s-1) mod m to
// the next member and folds segment (i-s-2) mod m from the previous one; after m-1 steps
// member i holds segment i reduced over all m. The ring all-gather then circulates the
// reduced segments for m-1 more steps.
//
// Split (Algorithm::kSplit, m >= 3): step 0 sends segment j of every member's input to
// member j, which reduces it in member order; step 1 sends each reduced segment straight
// to every member (AllReduce) or to the root (Reduce). Broadcast: step 0 the root sends
// part k of m-1 to the k-th other member, step 1 those members exchange their parts.
#include <algorithm>
#include <atomic>
#include <cstring>

#include "pg_impl.h"
#include "tidal/collectives/chunk_trace.h"

namespace tidal::coll {
namespace {

#define TIDAL_STEP(expr) TIDAL_CO_RETURN_IF_ERROR(co_await (expr))

uint64_t IndexOf(const std::vector<int>& mem, int rank) {
  uint64_t i = 0;
  while (mem[i] != rank) ++i;
  return i;
}

}  // namespace

Task<Status> ProcessGroup::Impl::RunAlgorithm(CollOp& op, const std::vector<int>& mem,
                                              uint32_t epoch, uint64_t deadline) {
  Trace(trace::Ev::kOpStart, op.seq);
  const uint64_t m = mem.size();
  const uint64_t i = IndexOf(mem, rank_);
  const DataType dt = op.type == OpType::kScatter ? op.out.dtype : op.in.dtype;
  Attempt a{op,    mem,      m,  i, mem[(i + 1) % m], mem[(i + m - 1) % m], dt, DataTypeSize(dt),
            epoch, deadline, {}, {}};
  op.parts.assign(m, nullptr);
  op.in_output = false;
  switch (op.type) {
    case OpType::kBarrier:
      TIDAL_STEP(Step(a, 0, 0));
      co_return Status::Ok();
    case OpType::kAllReduce:
    case OpType::kReduce:
      co_return co_await RunReduction(a);
    case OpType::kBroadcast:
      co_return co_await RunBroadcast(a);
    case OpType::kAllGather:
      co_return co_await RunAllGather(a);
    case OpType::kReduceScatter:
      co_return co_await RunReduceScatter(a);
    case OpType::kGather:
    case OpType::kScatter:
      co_return co_await RunRooted(a);
    case OpType::kAllToAll:
      co_return co_await RunAllToAll(a);
    default:
      co_return Status(ErrorCode::INTERNAL_ERROR, "not a collective");
  }
}

bool ProcessGroup::Impl::PullFrom(const CollOp& op, const uint8_t* data, uint64_t bytes) const {
  return !loc_.is_host() && options_.device_pull && !op.reads_no_input && DirectOutputs(op) &&
         bytes > 0 && InUserBuffer(data, bytes);
}

bool ProcessGroup::Impl::DirectOutputs(const CollOp& op) const {
  const uint64_t ob = op.out.bytes(), ib = op.in.bytes();
  if (!options_.direct_outputs || ob == 0) return false;
  if (op.reads_no_input) return true;
  const auto o = reinterpret_cast<uintptr_t>(op.out.data);
  const auto i = reinterpret_cast<uintptr_t>(op.in.data);
  return o + ob <= i || i + ib <= o;
}

Task<Status> ProcessGroup::Impl::Step(Attempt& a, uint64_t step, uint64_t steps) {
  return Boundary(a.op, a.epoch, step, steps);
}

Task<Status> ProcessGroup::Impl::Move(Attempt& a) {
  std::vector<SendSpec> sends = std::move(a.sends);
  std::vector<RecvSpec> recvs = std::move(a.recvs);
  a.sends.clear();
  a.recvs.clear();
  return RunStep(std::move(sends), std::move(recvs), a.dt, a.op.rop, a.deadline_ns);
}

std::vector<const void*> ProcessGroup::Impl::MemberInputs(const Attempt& a, const uint8_t* own) {
  std::vector<const void*> inputs(a.m);
  for (uint64_t j = 0; j < a.m; ++j) {
    inputs[j] = j == a.i ? static_cast<const void*>(own) : a.op.parts[j];
  }
  return inputs;
}

Status ProcessGroup::Impl::ReduceInOrder(Attempt& a, const uint8_t* own, uint8_t* out,
                                         uint64_t count) {
  const std::vector<const void*> inputs = MemberInputs(a, own);
  if (options_.planted_bug == CollBug::kZeroAccumulator && a.op.rop != ReduceOp::kAvg) {
    // Planted (field bug 2): start from zero and fold every contribution into it.
    const size_t bytes = count * DataTypeSize(a.dt);
    std::vector<uint8_t> acc(bytes, 0);
    for (const void* in : inputs) {
      TIDAL_RETURN_IF_ERROR(
          reducer_->Fold(acc.data(), in, count, a.dt, a.op.rop, Location::Host()));
    }
    if (bytes > 0) std::memcpy(out, acc.data(), bytes);
    return Status::Ok();
  }
  return reducer_->ReduceAll(out, inputs, count, a.dt, a.op.rop, loc_);
}

Task<Status> ProcessGroup::Impl::RunRingReduceScatter(Attempt& a, uint64_t n, uint64_t steps,
                                                      bool lazy) {
  uint8_t* buf = a.op.buf;
  const uint8_t* input = a.op.in.bytes_ptr();
  for (uint64_t s = 0; s + 1 < a.m; ++s) {
    TIDAL_STEP(Step(a, s, steps));
    Span out = Partition(n, a.m, RingSub(a.i, s + 1, a.m));
    Span in = Partition(n, a.m, RingSub(a.i, s + 2, a.m));
    // Lazy: the segment sent at step 0 is still the input's; each folded segment is
    // touched for the first time by its fold.
    const uint8_t* from = lazy && s == 0 ? input : buf;
    a.sends.push_back({a.next, from + out.offset * a.es, out.count * a.es});
    a.recvs.push_back({a.prev, buf + in.offset * a.es, in.count * a.es, true, -1,
                       lazy ? input + in.offset * a.es : nullptr});
    TIDAL_STEP(Move(a));
  }
  Span mine = Partition(n, a.m, a.i);
  if (a.op.rop == ReduceOp::kAvg) {
    TIDAL_CO_RETURN_IF_ERROR(
        reducer_->Scale(buf + mine.offset * a.es, mine.count, a.dt, a.m, loc_));
  }
  co_return Status::Ok();
}

Task<Status> ProcessGroup::Impl::RunReduction(Attempt& a) {
  CollOp& op = a.op;
  const uint64_t n = op.in.count;
  const uint64_t bytes = n * a.es;
  const bool is_reduce = op.type == OpType::kReduce;
  const uint64_t r = is_reduce ? IndexOf(a.mem, op.root) : 0;
  op.algorithm =
      ChooseAlgorithm(op.type, bytes, a.m, options_.algorithm, options_.direct_max_bytes);
  const uint64_t steps = StepCount(op.type, op.algorithm, a.m);
  if (op.algorithm == Algorithm::kSplit) co_return co_await RunSplitReduction(a, steps);
  const bool direct = op.algorithm == Algorithm::kDirect;
  // AllReduce(output, input) with direct_outputs: the output is the working buffer (Reduce
  // is in place and never qualifies).
  const bool into_out = DirectOutputs(op);
  TIDAL_CO_RETURN_IF_ERROR(co_await ReserveScratch(
      ScratchSize(bytes) * (direct ? a.m + 1 : (into_out ? 0 : 1))));
  op.buf = into_out ? op.out.bytes_ptr() : TakeScratch(bytes);
  op.in_output = into_out;
  // Device slots, two members, direct: the one contribution is folded chunk by chunk as it
  // arrives, into this rank's input copied in beside it (one step, no up-front copy).
  const bool fold_on_arrival = !loc_.is_host() && direct && a.m == 2;
  const bool lazy = !loc_.is_host() && (fold_on_arrival || (!direct && a.m >= 2));
  // Direct into the output: this rank's contribution is sent and reduced from the input,
  // and the reduction writes the output.
  const bool own_from_input = into_out && direct && !fold_on_arrival;
  if (!lazy && !own_from_input) {
    TIDAL_CO_RETURN_IF_ERROR(co_await CopyLocalAsync(op.buf, op.in.data, bytes));
  }
  if (fold_on_arrival) {
    TIDAL_STEP(Step(a, 0, steps));
    const uint64_t j = 1 - a.i;
    const bool gathers = !is_reduce || a.i == r;
    if (!is_reduce || !gathers) a.sends.push_back({a.mem[j], op.in.bytes_ptr(), bytes});
    if (gathers) {
      a.recvs.push_back({a.mem[j], op.buf, bytes, true, -1, op.in.bytes_ptr(), j < a.i});
    }
    TIDAL_STEP(Move(a));
    if (gathers && op.rop == ReduceOp::kAvg) {
      TIDAL_CO_RETURN_IF_ERROR(reducer_->Scale(op.buf, n, a.dt, a.m, loc_));
    }
    TIDAL_STEP(Step(a, steps, steps));
    co_return Status::Ok();
  }
  if (direct) {
    TIDAL_STEP(Step(a, 0, steps));
    const bool gathers = !is_reduce || a.i == r;  // this rank reduces
    const uint8_t* own = own_from_input ? op.in.bytes_ptr() : op.buf;
    for (uint64_t j = 0; j < a.m; ++j) {
      if (j == a.i) continue;
      if (!is_reduce) a.sends.push_back({a.mem[j], own, bytes});
      if (gathers) {
        op.parts[j] = TakeScratch(bytes);
        a.recvs.push_back({a.mem[j], op.parts[j], bytes, false, -1});
      }
    }
    if (!gathers) a.sends.push_back({op.root, own, bytes});
    TIDAL_STEP(Move(a));
    if (gathers) {
      uint8_t* result = own_from_input ? op.out.bytes_ptr() : TakeScratch(bytes);
      TIDAL_CO_RETURN_IF_ERROR(ReduceInOrder(a, own, result, n));
      op.buf = result;
    }
    TIDAL_STEP(Step(a, steps, steps));
    co_return Status::Ok();
  }
  TIDAL_STEP(RunRingReduceScatter(a, n, steps, lazy));
  TIDAL_STEP(Step(a, a.m - 1, steps));
  uint8_t* buf = op.buf;
  if (is_reduce) {
    // Gather the reduced segments at the root.
    for (uint64_t j = 0; j < a.m; ++j) {
      Span sj = Partition(n, a.m, j);
      if (a.i == r && j != a.i) {
        a.recvs.push_back({a.mem[j], buf + sj.offset * a.es, sj.count * a.es, false, -1});
      } else if (a.i != r && j == a.i) {
        a.sends.push_back({op.root, buf + sj.offset * a.es, sj.count * a.es});
      }
    }
    TIDAL_STEP(Move(a));
  } else {
    for (uint64_t s = 0; s + 1 < a.m; ++s) {  // ring all-gather of the reduced segments
      if (s > 0) TIDAL_STEP(Step(a, a.m - 1 + s, steps));
      Span out = Partition(n, a.m, RingSub(a.i, s, a.m));
      Span in = Partition(n, a.m, RingSub(a.i, s + 1, a.m));
      a.sends.push_back({a.next, buf + out.offset * a.es, out.count * a.es});
      a.recvs.push_back({a.prev, buf + in.offset * a.es, in.count * a.es, false, -1});
      TIDAL_STEP(Move(a));
    }
  }
  TIDAL_STEP(Step(a, steps, steps));
  co_return Status::Ok();
}

Task<Status> ProcessGroup::Impl::ReduceInOrderAsync(Attempt& a, const uint8_t* own, uint8_t* out,
                                                    uint64_t count) {
  if (loc_.is_host() || count == 0 || options_.planted_bug == CollBug::kZeroAccumulator) {
    co_return ReduceInOrder(a, own, out, count);
  }
  // Device: the m - 1 folds queued at once on the reducer's stream, in member order (the
  // first one writes `out` from the first two inputs), and one wait for the last.
  const std::vector<const void*> in = MemberInputs(a, own);
  Reducer* r = reducer_;
  const Location loc = loc_;
  const DataType dt = a.dt;
  const ReduceOp fold = a.op.rop == ReduceOp::kAvg ? ReduceOp::kSum : a.op.rop;
  std::function<void(Reducer::Done)> start = [=](Reducer::Done done) {
    struct Join {
      std::atomic<size_t> left;
      Status first;
      Reducer::Done done;
    };
    auto j = std::make_shared<Join>();
    j->left.store(in.size() - 1);
    j->done = std::move(done);
    auto each = [j](Status st) {
      if (!st.ok() && j->first.ok()) j->first = std::move(st);
      if (j->left.fetch_sub(1, std::memory_order_acq_rel) == 1) j->done(j->first);
    };
    r->FoldIntoAsync(out, in[0], in[1], count, dt, fold, loc, each);
    for (size_t k = 2; k < in.size(); ++k) r->FoldAsync(out, in[k], count, dt, fold, loc, each);
  };
  Status st = co_await AwaitReducer(start);
  if (st.ok() && a.op.rop == ReduceOp::kAvg) st = reducer_->Scale(out, count, dt, a.m, loc_);
  co_return st;
}

Task<Status> ProcessGroup::Impl::RunSplitReduction(Attempt& a, uint64_t steps) {
  CollOp& op = a.op;
  const uint64_t n = op.in.count;
  const uint64_t bytes = n * a.es;
  const bool is_reduce = op.type == OpType::kReduce;
  const uint64_t r = is_reduce ? IndexOf(a.mem, op.root) : 0;
  const bool into_out = DirectOutputs(op);
  auto seg = [&](uint64_t j) { return Partition(n, a.m, j); };
  const Span mine = seg(a.i);
  // The working buffer (the output with direct_outputs) and one receive buffer per peer
  // for its contribution to this rank's segment; the input is only read.
  TIDAL_CO_RETURN_IF_ERROR(co_await ReserveScratch((into_out ? 0 : ScratchSize(bytes)) +
                                                   ScratchSize(seg(0).count * a.es) * (a.m - 1)));
  op.buf = into_out ? op.out.bytes_ptr() : TakeScratch(bytes);
  op.in_output = into_out;
  const uint8_t* input = op.in.bytes_ptr();
  uint8_t* buf = op.buf;
  // Step 0: segment j of every member's input to member j, which reduces it in member
  // order into its working buffer.
  TIDAL_STEP(Step(a, 0, steps));
  for (uint64_t j = 0; j < a.m; ++j) {
    if (j == a.i) continue;
    const Span sj = seg(j);
    // Offered for pulling where the input may be (PullFrom): the reader READs it straight
    // into its receive buffer, with no slot and no copy out of it.
    const uint8_t* data = input + sj.offset * a.es;
    a.sends.push_back(
        {a.mem[j], data, sj.count * a.es, nullptr, PullFrom(op, data, sj.count * a.es)});
    op.parts[j] = TakeScratch(mine.count * a.es);
    a.recvs.push_back({a.mem[j], op.parts[j], mine.count * a.es, false, -1});
  }
  TIDAL_STEP(Move(a));
  TIDAL_CO_RETURN_IF_ERROR(co_await ReduceInOrderAsync(a, input + mine.offset * a.es,
                                                       buf + mine.offset * a.es, mine.count));
  // Step 1: the reduced segments to every member (AllReduce) or to the root (Reduce).
  TIDAL_STEP(Step(a, 1, steps));
  for (uint64_t j = 0; j < a.m; ++j) {
    if (j == a.i) continue;
    const Span sj = seg(j);
    if (!is_reduce || j == r) {
      a.sends.push_back({a.mem[j], buf + mine.offset * a.es, mine.count * a.es});
    }
    if (!is_reduce || a.i == r) {
      a.recvs.push_back({a.mem[j], buf + sj.offset * a.es, sj.count * a.es, false, -1});
    }
  }
  TIDAL_STEP(Move(a));
  TIDAL_STEP(Step(a, steps, steps));
  co_return Status::Ok();
}

Task<Status> ProcessGroup::Impl::RunBroadcast(Attempt& a) {
  CollOp& op = a.op;
  const uint64_t bytes = op.in.count * a.es;
  const uint64_t r = IndexOf(a.mem, op.root);
  const bool into_out = DirectOutputs(op);
  TIDAL_CO_RETURN_IF_ERROR(co_await ReserveScratch(into_out ? 0 : ScratchSize(bytes)));
  op.buf = into_out ? op.out.bytes_ptr() : TakeScratch(bytes);
  op.in_output = into_out;
  // Device slots: the root sends from its input, chunk by chunk through the staging slots
  // (in place its output is not written, so it needs no copy of its own; out of place
  // into the output, the copy runs while the chunks go).
  const uint8_t* from = loc_.is_host() ? op.buf : op.in.bytes_ptr();
  if (a.i == r && loc_.is_host()) {
    TIDAL_CO_RETURN_IF_ERROR(co_await CopyLocalAsync(op.buf, op.in.data, bytes));
  }
  std::shared_ptr<PendingCopy> root_copy;
  op.algorithm =
      ChooseAlgorithm(op.type, bytes, a.m, options_.algorithm, options_.direct_max_bytes);
  const uint64_t steps = StepCount(op.type, op.algorithm, a.m);
  TIDAL_STEP(Step(a, 0, steps));
  const bool split = op.algorithm == Algorithm::kSplit;  // its two steps: RunSplitBroadcast
  if (op.algorithm == Algorithm::kDirect) {
    // Registered input with direct outputs: every member READs it (pull offers).
    const bool pull = a.i == r && PullFrom(op, from, bytes);
    for (uint64_t j = 0; j < a.m && a.i == r; ++j) {
      if (j != a.i) a.sends.push_back({a.mem[j], from, bytes, nullptr, pull});
    }
    if (a.i != r) a.recvs.push_back({op.root, op.buf, bytes, false, -1});
  } else if (!split) {
    // A pipelined chain from the root around the ring: each chunk is passed on as soon
    // as it arrived.
    const uint64_t pos = RingSub(a.i, r, a.m);
    if (pos == 0) {
      a.sends.push_back({a.next, from, bytes});
    } else {
      a.recvs.push_back({a.prev, op.buf, bytes, false, pos + 1 < a.m ? a.next : -1});
    }
  }
  if (into_out && a.i == r && !loc_.is_host()) {
    root_copy = StartCopySoon(op.buf, op.in.data, bytes);
  }
  // (Two statements: GCC 12 miscompiles co_await inside a conditional expression.)
  Status moved;
  if (split) {
    moved = co_await RunSplitBroadcast(a, from, steps);
  } else {
    moved = co_await Move(a);
  }
  if (root_copy != nullptr) {
    Status copied = co_await JoinCopy(root_copy);
    if (moved.ok()) moved = copied;
  }
  TIDAL_CO_RETURN_IF_ERROR(moved);
  TIDAL_STEP(Step(a, steps, steps));
  co_return Status::Ok();
}

Task<Status> ProcessGroup::Impl::RunSplitBroadcast(Attempt& a, const uint8_t* from,
                                                   uint64_t steps) {
  CollOp& op = a.op;
  const uint64_t r = IndexOf(a.mem, op.root);
  // Part k of m - 1 belongs to the k-th member other than the root, in member order.
  auto part = [&](uint64_t j) { return Partition(op.in.count, a.m - 1, j < r ? j : j - 1); };
  // Step 0: the root sends each other member its part (pulled when the root's input may
  // be: PullFrom).
  for (uint64_t j = 0; j < a.m && a.i == r; ++j) {
    if (j == a.i) continue;
    const Span pj = part(j);
    const uint8_t* data = from + pj.offset * a.es;
    a.sends.push_back(
        {a.mem[j], data, pj.count * a.es, nullptr, PullFrom(op, data, pj.count * a.es)});
  }
  if (a.i != r) {
    const Span pi = part(a.i);
    a.recvs.push_back({op.root, op.buf + pi.offset * a.es, pi.count * a.es, false, -1});
  }
  TIDAL_STEP(Move(a));
  // Step 1: the members other than the root exchange their parts.
  TIDAL_STEP(Step(a, 1, steps));
  if (a.i != r) {
    const Span pi = part(a.i);
    for (uint64_t j = 0; j < a.m; ++j) {
      if (j == a.i || j == r) continue;
      const Span pj = part(j);
      a.sends.push_back({a.mem[j], op.buf + pi.offset * a.es, pi.count * a.es});
      a.recvs.push_back({a.mem[j], op.buf + pj.offset * a.es, pj.count * a.es, false, -1});
    }
  }
  TIDAL_STEP(Move(a));
  co_return Status::Ok();
}

Task<Status> ProcessGroup::Impl::RunAllGather(Attempt& a) {
  CollOp& op = a.op;
  const uint64_t bytes = op.in.count * a.es;
  const uint64_t total = static_cast<uint64_t>(size_) * bytes;
  const bool into_out = DirectOutputs(op);
  TIDAL_CO_RETURN_IF_ERROR(co_await ReserveScratch(into_out ? 0 : ScratchSize(total)));
  op.buf = into_out ? op.out.bytes_ptr() : TakeScratch(total);
  op.in_output = into_out;
  TIDAL_CO_RETURN_IF_ERROR(ZeroNonMembers(a, op.buf, bytes));  // failed ranks' blocks are 0
  op.algorithm =
      ChooseAlgorithm(op.type, a.m * bytes, a.m, options_.algorithm, options_.direct_max_bytes);
  const uint64_t steps = StepCount(op.type, op.algorithm, a.m);
  // Device slots, where this rank's block is sent exactly once (the ring's step 0, or
  // direct to the one other member): it is copied into place chunk by chunk as each
  // chunk is sent (stage_into), not up front.
  const bool own_in_flight =
      !loc_.is_host() && a.m >= 2 && (op.algorithm != Algorithm::kDirect || a.m == 2);
  if (!own_in_flight) {
    TIDAL_CO_RETURN_IF_ERROR(co_await CopyLocalAsync(op.buf + rank_ * bytes, op.in.data, bytes));
  }
  auto block = [&](uint64_t j) { return op.buf + a.mem[j] * bytes; };
  const SendSpec own{-1, own_in_flight ? op.in.bytes_ptr() : block(a.i), bytes,
                     own_in_flight ? block(a.i) : nullptr};
  if (op.algorithm == Algorithm::kDirect) {
    TIDAL_STEP(Step(a, 0, steps));
    for (uint64_t j = 0; j < a.m; ++j) {
      if (j == a.i) continue;
      a.sends.push_back({a.mem[j], own.data, bytes, own.stage_into});
      a.recvs.push_back({a.mem[j], block(j), bytes, false, -1});
    }
    TIDAL_STEP(Move(a));
  } else {
    for (uint64_t s = 0; s + 1 < a.m; ++s) {
      TIDAL_STEP(Step(a, s, steps));
      if (s == 0) {
        a.sends.push_back({a.next, own.data, bytes, own.stage_into});
      } else {
        a.sends.push_back({a.next, block(RingSub(a.i, s, a.m)), bytes});
      }
      a.recvs.push_back({a.prev, block(RingSub(a.i, s + 1, a.m)), bytes, false, -1});
      TIDAL_STEP(Move(a));
    }
  }
  TIDAL_STEP(Step(a, steps, steps));
  co_return Status::Ok();
}

Task<Status> ProcessGroup::Impl::RunReduceScatter(Attempt& a) {
  CollOp& op = a.op;
  const uint64_t c = op.out.count;
  const uint64_t bytes = c * a.es;
  const uint64_t total = static_cast<uint64_t>(size_) * bytes;
  op.algorithm =
      ChooseAlgorithm(op.type, a.m * bytes, a.m, options_.algorithm, options_.direct_max_bytes);
  const uint64_t steps = StepCount(op.type, op.algorithm, a.m);
  const bool direct = op.algorithm == Algorithm::kDirect;
  TIDAL_CO_RETURN_IF_ERROR(co_await ReserveScratch(
      ScratchSize(total) + (direct ? ScratchSize(bytes) * (a.m + 1) : 0)));
  op.buf = TakeScratch(total);
  // direct_outputs: this rank's block (the only one it keeps) is the output; the blocks
  // it reduces for others stay in working memory. The ring touches this rank's block only
  // with its last fold, the direct algorithms only with the final reduction.
  const bool into_out = DirectOutputs(op);
  op.in_output = into_out;
  // Device slots, two members, direct: the peer's block for us is folded as it arrives
  // (in member order), as RunReduction does.
  const bool fold_on_arrival = !loc_.is_host() && direct && a.m == 2;
  const bool lazy = !loc_.is_host() && (fold_on_arrival || (!direct && a.m >= 2));
  auto block = [&](uint64_t j) {
    return into_out && j == a.i ? op.out.bytes_ptr() : op.buf + a.mem[j] * bytes;
  };
  auto input = [&](uint64_t j) { return op.in.bytes_ptr() + a.mem[j] * bytes; };
  if (!lazy) {
    TIDAL_CO_RETURN_IF_ERROR(co_await CopyLocalAsync(op.buf, op.in.data, total));
    if (into_out) TIDAL_CO_RETURN_IF_ERROR(co_await CopyLocalAsync(block(a.i), input(a.i), bytes));
  }
  if (fold_on_arrival) {
    TIDAL_STEP(Step(a, 0, steps));
    const uint64_t j = 1 - a.i;
    a.sends.push_back({a.mem[j], input(j), bytes});
    a.recvs.push_back({a.mem[j], block(a.i), bytes, true, -1, input(a.i), j < a.i});
    TIDAL_STEP(Move(a));
    if (op.rop == ReduceOp::kAvg) {
      TIDAL_CO_RETURN_IF_ERROR(reducer_->Scale(block(a.i), c, a.dt, a.m, loc_));
    }
    TIDAL_STEP(Step(a, steps, steps));
    co_return Status::Ok();
  }
  if (direct) {
    TIDAL_STEP(Step(a, 0, steps));
    for (uint64_t j = 0; j < a.m; ++j) {
      if (j == a.i) continue;
      op.parts[j] = TakeScratch(bytes);
      a.sends.push_back({a.mem[j], block(j), bytes});
      a.recvs.push_back({a.mem[j], op.parts[j], bytes, false, -1});
    }
    TIDAL_STEP(Move(a));
    if (into_out) {
      TIDAL_CO_RETURN_IF_ERROR(ReduceInOrder(a, input(a.i), block(a.i), c));
    } else {
      uint8_t* result = TakeScratch(bytes);
      TIDAL_CO_RETURN_IF_ERROR(ReduceInOrder(a, block(a.i), result, c));
      TIDAL_CO_RETURN_IF_ERROR(co_await CopyLocalAsync(block(a.i), result, bytes));
    }
  } else {
    // The ring over members, where segment j is member j's block (failed ranks' blocks
    // are nobody's and are not reduced).
    for (uint64_t s = 0; s + 1 < a.m; ++s) {
      TIDAL_STEP(Step(a, s, steps));
      const uint64_t out = RingSub(a.i, s + 1, a.m), in = RingSub(a.i, s + 2, a.m);
      a.sends.push_back({a.next, lazy && s == 0 ? input(out) : block(out), bytes});
      a.recvs.push_back({a.prev, block(in), bytes, true, -1, lazy ? input(in) : nullptr});
      TIDAL_STEP(Move(a));
    }
    if (op.rop == ReduceOp::kAvg) {
      TIDAL_CO_RETURN_IF_ERROR(reducer_->Scale(block(a.i), c, a.dt, a.m, loc_));
    }
  }
  TIDAL_STEP(Step(a, steps, steps));
  co_return Status::Ok();
}

Task<Status> ProcessGroup::Impl::RunRooted(Attempt& a) {
  CollOp& op = a.op;
  const bool root = rank_ == op.root;
  TIDAL_STEP(Step(a, 0, 1));
  if (op.type == OpType::kGather) {
    const uint64_t bytes = op.in.count * a.es;
    if (root) {
      const uint64_t total = static_cast<uint64_t>(size_) * bytes;
      const bool into_out = DirectOutputs(op);
      TIDAL_CO_RETURN_IF_ERROR(co_await ReserveScratch(into_out ? 0 : ScratchSize(total)));
      op.buf = into_out ? op.out.bytes_ptr() : TakeScratch(total);
      op.in_output = into_out;
      TIDAL_CO_RETURN_IF_ERROR(ZeroNonMembers(a, op.buf, bytes));  // failed ranks' blocks are 0
      TIDAL_CO_RETURN_IF_ERROR(co_await CopyLocalAsync(op.buf + rank_ * bytes, op.in.data, bytes));
      for (uint64_t j = 0; j < a.m; ++j) {
        if (j == a.i) continue;
        a.recvs.push_back({a.mem[j], op.buf + a.mem[j] * bytes, bytes, false, -1});
      }
    } else {
      a.sends.push_back({op.root, op.in.bytes_ptr(), bytes});
    }
  } else {
    const uint64_t bytes = op.out.count * a.es;
    if (root) {
      for (uint64_t j = 0; j < a.m; ++j) {
        if (j != a.i) a.sends.push_back({a.mem[j], op.in.bytes_ptr() + a.mem[j] * bytes, bytes});
      }
    } else {
      const bool into_out = DirectOutputs(op);
      TIDAL_CO_RETURN_IF_ERROR(co_await ReserveScratch(into_out ? 0 : ScratchSize(bytes)));
      op.buf = into_out ? op.out.bytes_ptr() : TakeScratch(bytes);
      op.in_output = into_out;
      a.recvs.push_back({op.root, op.buf, bytes, false, -1});
    }
  }
  TIDAL_STEP(Move(a));
  TIDAL_STEP(Step(a, 1, 1));
  co_return Status::Ok();
}

Task<Status> ProcessGroup::Impl::RunAllToAll(Attempt& a) {
  CollOp& op = a.op;
  const uint64_t bytes = (op.in.count / static_cast<uint64_t>(size_)) * a.es;
  const uint64_t total = static_cast<uint64_t>(size_) * bytes;
  // direct_outputs: received blocks land in the output and this rank's own block is copied
  // straight into its output slot.
  const bool into_out = DirectOutputs(op);
  TIDAL_CO_RETURN_IF_ERROR(co_await ReserveScratch(into_out ? 0 : ScratchSize(total)));
  op.buf = into_out ? op.out.bytes_ptr() : TakeScratch(total);
  op.in_output = into_out;
  TIDAL_CO_RETURN_IF_ERROR(ZeroNonMembers(a, op.buf, bytes));  // failed ranks' blocks are 0
  uint8_t* own = op.buf + rank_ * bytes;
  const uint8_t* own_in = op.in.bytes_ptr() + rank_ * bytes;
  // Host slots copy this rank's own block up front; device slots copy it on the GPU while
  // the step's WRITEs run (joined before the step ends).
  if (loc_.is_host()) TIDAL_CO_RETURN_IF_ERROR(co_await CopyLocalAsync(own, own_in, bytes));
  TIDAL_STEP(Step(a, 0, 1));
  std::shared_ptr<PendingCopy> own_copy;
  if (!loc_.is_host()) own_copy = StartCopySoon(own, own_in, bytes);
  for (uint64_t j = 0; j < a.m; ++j) {
    if (j == a.i) continue;
    const uint8_t* block = op.in.bytes_ptr() + a.mem[j] * bytes;
    a.sends.push_back({a.mem[j], block, bytes, nullptr, PullFrom(op, block, bytes)});
    a.recvs.push_back({a.mem[j], op.buf + a.mem[j] * bytes, bytes, false, -1});
  }
  Status moved = co_await Move(a);
  if (own_copy != nullptr) {
    Status copied = co_await JoinCopy(own_copy);
    if (moved.ok()) moved = copied;
  }
  TIDAL_CO_RETURN_IF_ERROR(moved);
  TIDAL_STEP(Step(a, 1, 1));
  co_return Status::Ok();
}

Status ProcessGroup::Impl::ZeroNonMembers(Attempt& a, uint8_t* buf, uint64_t block_bytes) {
  // Members' blocks are all written by the attempt; only the others need zeros.
  for (int r = 0; r < size_; ++r) {
    if (!std::binary_search(a.mem.begin(), a.mem.end(), r)) {
      TIDAL_RETURN_IF_ERROR(ZeroLocal(buf + static_cast<uint64_t>(r) * block_bytes, block_bytes));
    }
  }
  return Status::Ok();
}

Task<Status> ProcessGroup::Impl::Finalize(CollOp& op, uint64_t view) {
  TIDAL_ASSERT(view & Bit(rank_));
  const uint8_t* src = nullptr;  // what the output gets, if anything
  const uint64_t out_bytes = op.out.bytes();
  const bool root = rank_ == op.root;
  switch (op.type) {
    case OpType::kAllReduce:
    case OpType::kAllGather:
    case OpType::kAllToAll:
      src = op.buf;
      break;
    case OpType::kBroadcast:
      if (!root) src = op.buf;
      break;
    case OpType::kReduce:
    case OpType::kGather:
      if (root) src = op.buf;
      break;
    case OpType::kReduceScatter:
      src = op.buf + rank_ * out_bytes;
      break;
    case OpType::kScatter:
      src = root ? op.in.bytes_ptr() + rank_ * out_bytes : op.buf;
      break;
    default:
      break;
  }
  if (op.in_output) src = nullptr;  // the attempt wrote the output itself
  if (op.type == OpType::kBroadcast && root && !op.in_output && op.in.data != op.out.data) {
    src = op.in.bytes_ptr();  // Broadcast(output, input) at the root, by default
  }
  Status st = Status::Ok();
  Trace(trace::Ev::kFinalizeStart, op.seq);
  if (src != nullptr) st = co_await CopyLocalAsync(op.out.data, src, out_bytes);
  Trace(trace::Ev::kFinalizeDone, op.seq);
  op.buf = nullptr;
  op.parts = {};
  co_return st;
}

}  // namespace tidal::coll
