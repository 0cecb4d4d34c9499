// Test harness for the process group on the simulator (see harness.h).
#include "harness.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "tidal/collectives/reduce_kernel.h"
#include "tidal/sim/fault_plan.h"

namespace tidal::coll::testing {

ProcessGroupOptions TestOptions() {
  ProcessGroupOptions o;
  o.slot_bytes = 256;
  o.direct_max_bytes = 64;
  o.timeout_ns = 2'000'000'000ULL;
  o.peer_check_ns = 500'000;
  o.control_retry_ns = 500'000;
  return o;
}

Cluster::Cluster(ClusterOptions options) : options_(std::move(options)) {
  sim::SimFabricOptions fo;
  fo.world.nodes = static_cast<size_t>(options_.ranks);
  fo.world.seed = options_.seed;
  fo.contract_checker = options_.contract_checker;
  fo.world.link = options_.link;
  fo.engine = options_.engine;
  if (!options_.faults.empty()) {
    auto plan = sim::FaultPlan::Parse(options_.faults);
    TIDAL_ASSERT_MSG(plan.ok(), "bad fault script");
    fo.world.faults = *plan;
  }
  fo.world.faults.swarm = options_.swarm;
  fo.world.replay_command = "seed " + std::to_string(options_.seed);
  auto sim = std::make_unique<sim::SimFabric>(std::move(fo));
  sim_ = sim.get();
  fabric_ = std::move(sim);
  MakeGroups(options_.pg);
}

Cluster::Cluster(std::unique_ptr<Fabric> fabric, ProcessGroupOptions pg)
    : fabric_(std::move(fabric)) {
  options_.ranks = static_cast<int>(fabric_->size());
  options_.pg = pg;
  MakeGroups(pg);
}

void Cluster::MakeGroups(const ProcessGroupOptions& pg) {
  const int n = static_cast<int>(fabric_->size());
  for (int r = 0; r < n; ++r) {
    pgs_.push_back(std::make_unique<ProcessGroup>(r, n, fabric_->engine(r), fabric_->messenger(r),
                                                  fabric_->metadata(), pg));
  }
  finished_.assign(n, false);
}

Cluster::~Cluster() {
  // Groups first (they unhook from the engines), then the fabric.
  pgs_.clear();
  fabric_.reset();
}

bool Cluster::StartAll(std::string* error) {
  std::vector<Status> results(pgs_.size(), Status(ErrorCode::INTERNAL_ERROR, "did not run"));
  bool ok =
      RunRanks([this, &results](int r) -> Task<void> { results[r] = co_await pgs_[r]->Start(); });
  if (!ok) {
    *error = "bootstrap hung";
    return false;
  }
  for (size_t r = 0; r < results.size(); ++r) {
    if (!results[r].ok()) {
      *error = "rank " + std::to_string(r) + ": " + results[r].ToString();
      return false;
    }
  }
  return true;
}

namespace {

Task<void> RankRoot(std::function<Task<void>(int)>* body, int r, std::vector<bool>* finished) {
  co_await (*body)(r);
  (*finished)[r] = true;
}

}  // namespace

bool Cluster::RunRanks(std::function<Task<void>(int)> body, uint64_t max_virtual_ns) {
  body_ = std::move(body);
  std::fill(finished_.begin(), finished_.end(), false);
  for (int r = 0; r < size(); ++r) {
    if (alive(r)) Spawn(fabric_->env(r), RankRoot(&body_, r, &finished_));
  }
  Env& clock = fabric_->env(0);
  uint64_t limit = max_virtual_ns == 0 ? 0 : clock.NowNs() + max_virtual_ns;
  auto done = [this, limit, &clock]() {
    if (limit != 0 && clock.NowNs() > limit) return true;
    for (int r = 0; r < size(); ++r) {
      if (!finished_[r] && alive(r)) return false;
    }
    return true;
  };
  // The simulated world runs every node from one queue; other fabrics are driven
  // through node 0's Env, as Fabric::Run does.
  bool ok = sim_ != nullptr ? world().RunUntil(done) : clock.RunUntil(done);
  for (int r = 0; r < size(); ++r) {
    if (!finished_[r] && alive(r)) return false;
  }
  return ok || done();
}

void Cluster::CrashSoon(int node) {
  sim::World* w = &world();  // asserts a simulated fabric
  w->ScheduleAt(w->NowNs(), -1, [w, node]() {
    if (w->alive(node)) w->Crash(static_cast<uint32_t>(node));
  });
}

std::string Cluster::Banner() const {
  return sim_ != nullptr ? sim_->world().FailureBanner() : "fabric " + std::string(fabric_->Name());
}

// --- values ----------------------------------------------------------------------------

namespace {
bool IsSigned(DataType dt) {
  return dt != DataType::kU8;
}
bool IsFloat(DataType dt) {
  return dt == DataType::kF32 || dt == DataType::kF64 || dt == DataType::kF16 ||
         dt == DataType::kBF16;
}
}  // namespace

double InputValue(int rank, uint64_t i, ReduceOp op, DataType dt) {
  switch (op) {
    case ReduceOp::kProd:
      if (IsSigned(dt) && (rank + i) % 5 == 1) return -1;
      return (rank + i) % 3 == 0 ? 2 : 1;
    case ReduceOp::kMin:
    case ReduceOp::kMax:
      return static_cast<double>((rank * 7 + i * 3) % 11) - (IsSigned(dt) ? 5 : 0);
    default:
      return static_cast<double>(rank + 1) + static_cast<double>(i % 5);
  }
}

void StoreReduced(DataType dt, void* base, uint64_t out_index, uint64_t in_index,
                  const std::vector<int>& contributors, ReduceOp op) {
  TIDAL_ASSERT(!contributors.empty());
  // Integers: wrap like the kernel (products of +-1/2 stay tiny until they wrap).
  if (!IsFloat(dt)) {
    int64_t acc = static_cast<int64_t>(InputValue(contributors[0], in_index, op, dt));
    for (size_t k = 1; k < contributors.size(); ++k) {
      auto v = static_cast<int64_t>(InputValue(contributors[k], in_index, op, dt));
      switch (op) {
        case ReduceOp::kSum:
        case ReduceOp::kAvg:
          acc = static_cast<int64_t>(static_cast<uint64_t>(acc) + static_cast<uint64_t>(v));
          break;
        case ReduceOp::kProd:
          acc = static_cast<int64_t>(static_cast<uint64_t>(acc) * static_cast<uint64_t>(v));
          break;
        case ReduceOp::kMin:
          acc = std::min(acc, v);
          break;
        case ReduceOp::kMax:
          acc = std::max(acc, v);
          break;
        default:
          break;
      }
    }
    // Narrow to the element type first (wrap), then divide like the kernel does.
    std::vector<uint8_t> tmp(8);
    StoreValue(dt, tmp.data(), 0, static_cast<double>(acc));
    double narrowed = LoadValue(dt, tmp.data(), 0);
    if (op == ReduceOp::kAvg) {
      narrowed = std::trunc(narrowed / static_cast<double>(contributors.size()));
    }
    StoreValue(dt, base, out_index, narrowed);
    return;
  }
  double acc = InputValue(contributors[0], in_index, op, dt);
  for (size_t k = 1; k < contributors.size(); ++k) {
    double v = InputValue(contributors[k], in_index, op, dt);
    switch (op) {
      case ReduceOp::kSum:
      case ReduceOp::kAvg:
        acc += v;
        break;
      case ReduceOp::kProd:
        acc *= v;
        break;
      case ReduceOp::kMin:
        acc = std::min(acc, v);
        break;
      case ReduceOp::kMax:
        acc = std::max(acc, v);
        break;
      default:
        break;
    }
  }
  if (op == ReduceOp::kAvg) {
    double n = static_cast<double>(contributors.size());
    acc = dt == DataType::kF64 ? acc / n : static_cast<float>(acc) / static_cast<float>(n);
  }
  StoreValue(dt, base, out_index, acc);
}

std::vector<uint8_t> Filled(int rank, uint64_t count, ReduceOp op, DataType dt,
                            uint64_t index_offset) {
  std::vector<uint8_t> b(count * DataTypeSize(dt));
  for (uint64_t i = 0; i < count; ++i) {
    StoreValue(dt, b.data(), i, InputValue(rank, index_offset + i, op, dt));
  }
  return b;
}

Tensor View(std::vector<uint8_t>& buf, DataType dt) {
  return Tensor{buf.empty() ? nullptr : buf.data(), dt, buf.size() / DataTypeSize(dt),
                Location::Host()};
}

uint64_t CountWrong(const std::vector<uint8_t>& got, const std::vector<uint8_t>& want,
                    DataType dt) {
  size_t es = DataTypeSize(dt);
  if (got.size() != want.size()) return std::max(got.size(), want.size()) / es + 1;
  uint64_t wrong = 0;
  for (size_t i = 0; i + es <= got.size(); i += es) {
    if (std::memcmp(got.data() + i, want.data() + i, es) != 0) ++wrong;
  }
  return wrong;
}

namespace {

bool Contains(const std::vector<int>& v, int x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

constexpr uint8_t kSentinel = 0x5A;

}  // namespace

std::vector<uint8_t> Expected(OpType op, int rank, int size, const std::vector<int>& members,
                              uint64_t c, int root, ReduceOp rop, DataType dt,
                              const std::vector<uint8_t>& initial) {
  std::vector<uint8_t> out = initial;
  const uint64_t es = DataTypeSize(dt);
  auto zero_block = [&](int r) {
    if (c * es > 0) std::memset(out.data() + r * c * es, 0, c * es);
  };
  switch (op) {
    case OpType::kAllReduce:
      for (uint64_t i = 0; i < c; ++i) StoreReduced(dt, out.data(), i, i, members, rop);
      break;
    case OpType::kReduce:
      if (rank == root) {
        for (uint64_t i = 0; i < c; ++i) StoreReduced(dt, out.data(), i, i, members, rop);
      }
      break;
    case OpType::kBroadcast:
      for (uint64_t i = 0; i < c; ++i) {
        StoreValue(dt, out.data(), i, InputValue(root, i, ReduceOp::kSum, dt));
      }
      break;
    case OpType::kAllGather:
    case OpType::kGather:
      if (op == OpType::kGather && rank != root) break;
      for (int r = 0; r < size; ++r) {
        if (!Contains(members, r)) {
          zero_block(r);
          continue;
        }
        for (uint64_t i = 0; i < c; ++i) {
          StoreValue(dt, out.data(), r * c + i, InputValue(r, i, ReduceOp::kSum, dt));
        }
      }
      break;
    case OpType::kReduceScatter:
      for (uint64_t i = 0; i < c; ++i) {
        StoreReduced(dt, out.data(), i, rank * c + i, members, rop);
      }
      break;
    case OpType::kScatter:
      for (uint64_t i = 0; i < c; ++i) {
        StoreValue(dt, out.data(), i, InputValue(root, rank * c + i, ReduceOp::kSum, dt));
      }
      break;
    case OpType::kAllToAll:
      for (int r = 0; r < size; ++r) {
        if (!Contains(members, r)) {
          zero_block(r);
          continue;
        }
        for (uint64_t i = 0; i < c; ++i) {
          StoreValue(dt, out.data(), r * c + i, InputValue(r, rank * c + i, ReduceOp::kSum, dt));
        }
      }
      break;
    default:
      break;
  }
  return out;
}

int64_t CheckCase(OpType op, int rank, int size, const std::vector<int>& failed, uint64_t c,
                  int root, ReduceOp rop, DataType dt, const std::vector<uint8_t>& output,
                  const std::vector<uint8_t>& initial) {
  std::vector<int> members;
  for (int r = 0; r < size; ++r) {
    if (!Contains(failed, r)) members.push_back(r);
  }
  auto want = Expected(op, rank, size, members, c, root, rop, dt, initial);
  return static_cast<int64_t>(CountWrong(output, want, dt));
}

Task<CaseResult> RunCase(ProcessGroup& pg, OpType op, uint64_t c, int root, ReduceOp rop,
                         DataType dt) {
  const int rank = pg.rank();
  const int size = pg.size();
  const uint64_t es = DataTypeSize(dt);
  const bool reduction =
      op == OpType::kAllReduce || op == OpType::kReduce || op == OpType::kReduceScatter;
  const ReduceOp vop = reduction ? rop : ReduceOp::kSum;
  std::vector<uint8_t> in, out;
  std::shared_ptr<Work> w;
  bool in_place = false;
  switch (op) {
    case OpType::kAllReduce:
    case OpType::kReduce:
      out = Filled(rank, c, vop, dt);
      in_place = true;
      break;
    case OpType::kBroadcast:
      out = rank == root ? Filled(rank, c, vop, dt) : std::vector<uint8_t>(c * es, kSentinel);
      in_place = true;
      break;
    case OpType::kAllGather:
      in = Filled(rank, c, vop, dt);
      out.assign(size * c * es, kSentinel);
      break;
    case OpType::kGather:
      in = Filled(rank, c, vop, dt);
      if (rank == root) out.assign(size * c * es, kSentinel);
      break;
    case OpType::kReduceScatter:
      in = Filled(rank, size * c, vop, dt);
      out.assign(c * es, kSentinel);
      break;
    case OpType::kScatter:
      if (rank == root) in = Filled(rank, size * c, vop, dt);
      out.assign(c * es, kSentinel);
      break;
    case OpType::kAllToAll:
      in = Filled(rank, size * c, vop, dt);
      out.assign(size * c * es, kSentinel);
      break;
    default:
      break;
  }
  std::vector<uint8_t> initial = out;
  Tensor to = View(out, dt);
  Tensor ti = in_place ? to : View(in, dt);
  switch (op) {
    case OpType::kAllReduce:
      w = pg.AllReduce(to, rop);
      break;
    case OpType::kReduce:
      w = pg.Reduce(to, root, rop);
      break;
    case OpType::kBroadcast:
      w = pg.Broadcast(to, root);
      break;
    case OpType::kAllGather:
      w = pg.AllGather(to, ti);
      break;
    case OpType::kGather:
      w = pg.Gather(to, ti, root);
      break;
    case OpType::kReduceScatter:
      w = pg.ReduceScatter(to, ti, rop);
      break;
    case OpType::kScatter:
      w = pg.Scatter(to, ti, root);
      break;
    case OpType::kAllToAll:
      w = pg.AllToAll(to, ti);
      break;
    case OpType::kBarrier:
      w = pg.Barrier();
      break;
    default:
      break;
  }
  CaseResult res;
  res.status = co_await w->Wait();
  res.failed = w->failed_ranks();
  if (res.status.ok() || res.status.code() == ErrorCode::RANK_FAILED) {
    res.wrong = CheckCase(op, rank, size, res.failed, c, root, rop, dt, out, initial);
  } else if (res.status.code() == ErrorCode::COLLECTIVE_ABORTED) {
    res.wrong = static_cast<int64_t>(CountWrong(out, initial, dt));  // outputs unchanged
  } else {
    res.wrong = -1;
  }
  co_return res;
}

}  // namespace tidal::coll::testing
