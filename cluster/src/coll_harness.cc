// The collectives harness (see coll_harness.h).
#include "tidal/cluster/coll_harness.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "tidal/collectives/reduce_kernel.h"

namespace tidal::cluster {

using namespace tidal::coll;  // NOLINT: the harness speaks the collectives' vocabulary

ProcessGroupOptions TestOptions() {
  ProcessGroupOptions o;
  o.slot_bytes = 256;
  o.direct_max_bytes = 64;
  o.timeout_ns = 2'000'000'000ULL;
  o.peer_check_ns = 500'000;
  o.control_retry_ns = 500'000;
  return o;
}

namespace {

ClusterOptions ClusterOf(const GroupClusterOptions& o) {
  ClusterOptions co;
  co.backend = o.backend;
  co.nodes = static_cast<size_t>(o.ranks);
  co.sim.seed = o.seed;
  co.sim.faults = o.faults;
  co.sim.swarm = o.swarm;
  co.sim.link = o.link;
  co.sim.engine = o.engine;
  co.sim.contract_checker = o.contract_checker;
  co.sim.tape = o.tape;
  co.sim.record_tape = o.record_tape;
  co.sim.replay_command = "seed " + std::to_string(o.seed);
  return co;
}

}  // namespace

Result<std::unique_ptr<GroupCluster>> GroupCluster::Make(GroupClusterOptions options) {
  if (options.ranks <= 0) return Status(ErrorCode::INVALID_PARAMS, "a group needs ranks");
  Result<std::unique_ptr<Cluster>> cluster = Cluster::Make(ClusterOf(options));
  if (!cluster.ok()) return cluster.status();
  return std::make_unique<GroupCluster>(std::move(*cluster), options.pg);
}

GroupCluster::GroupCluster(GroupClusterOptions options) {
  Result<std::unique_ptr<Cluster>> cluster = Cluster::Make(ClusterOf(options));
  TIDAL_ASSERT_MSG(cluster.ok(), "GroupCluster: the cluster cannot be built (use Make)");
  cluster_ = std::move(*cluster);
  MakeGroup(options.pg);
}

GroupCluster::GroupCluster(std::unique_ptr<Cluster> cluster, ProcessGroupOptions pg)
    : cluster_(std::move(cluster)) {
  MakeGroup(pg);
}

void GroupCluster::MakeGroup(const ProcessGroupOptions& pg) {
  name_ = pg.group_name;
  for (size_t n = 0; n < cluster_->size(); ++n) nodes_.push_back(n);
  Status s = cluster_->NewGroup(nodes_, pg);
  TIDAL_ASSERT_MSG(s.ok(), "GroupCluster: the group cannot be made");
}

GroupCluster::~GroupCluster() = default;

bool GroupCluster::StartAll(std::string* error) {
  std::vector<Status> results(nodes_.size(), Status(ErrorCode::INTERNAL_ERROR, "did not run"));
  bool ok =
      RunRanks([this, &results](int r) -> Task<void> { results[r] = co_await pg(r).Start(); });
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

bool GroupCluster::RunRanks(std::function<Task<void>(int)> body, uint64_t max_ns) {
  // Rank r is node r (MakeGroup).
  return cluster_->RunEach(
      nodes_, [body = std::move(body)](size_t n) { return body(static_cast<int>(n)); }, max_ns);
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

}  // namespace tidal::cluster
