// tidal-coll-bench: the nccl-tests table for tidal's process group on a fabric (the
// simulator by default, any backend of the registry with --fabric): for each message size, the
// average time per operation, the algorithm bandwidth (size / time), the bus bandwidth (algbw times
// nccl-tests' factor: 2(n-1)/n for allreduce, (n-1)/n for allgather, reducescatter, alltoall,
// gather, scatter, 1 for broadcast and reduce) and #wrong, the elements that differ from the exact
// result.
//
// On the simulator, times are virtual time (its latency/bandwidth model: LinkModel), so the
// figures describe the algorithms on the modelled links, deterministically; on other
// fabrics they are the Env clock. Sizes follow
// nccl-tests: the total buffer (for allgather the gathered output, for reducescatter the
// input), count = size / sizeof(type). Benchmarks print figures; they never assert.
//
//   tidal-coll-bench --op allreduce --ranks 8 -b 8 -e 16M -f 2 [--json out.json]
#include <boost/program_options.hpp>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>
#include <algorithm>
#include <chrono>
#include <cstring>

#include "tidal/cluster/coll_harness.h"
#include "tidal/collectives/schedule.h"
#if TIDAL_HAVE_UCX
#include "tidal/backends/ucx/ucx_fabric.h"
#endif

#include "../common/cli.h"

namespace po = boost::program_options;
using namespace tidal;
using namespace tidal::coll;

namespace {

Result<uint64_t> ParseBytes(const std::string& text) {
  if (text.empty()) return Status(ErrorCode::INVALID_PARAMS, "empty size");
  size_t pos = 0;
  uint64_t v = 0;
  try {
    v = std::stoull(text, &pos);
  } catch (...) {
    return Status(ErrorCode::INVALID_PARAMS, "bad size '" + text + "'");
  }
  std::string unit = text.substr(pos);
  if (unit == "K" || unit == "k")
    v <<= 10;
  else if (unit == "M" || unit == "m")
    v <<= 20;
  else if (unit == "G" || unit == "g")
    v <<= 30;
  else if (!unit.empty())
    return Status(ErrorCode::INVALID_PARAMS, "bad unit in '" + text + "'");
  return v;
}

Result<OpType> ParseOp(const std::string& s) {
  for (size_t i = 0; i < static_cast<size_t>(OpType::kBarrier); ++i) {
    if (OpTypeName(static_cast<OpType>(i)) == s) return static_cast<OpType>(i);
  }
  return Status(ErrorCode::INVALID_PARAMS, "unknown op '" + s + "'");
}

bool IsRooted(OpType op) {
  return op == OpType::kBroadcast || op == OpType::kReduce || op == OpType::kGather ||
         op == OpType::kScatter;
}
bool IsReduction(OpType op) {
  return op == OpType::kAllReduce || op == OpType::kReduce || op == OpType::kReduceScatter;
}
// Whether nccl-tests' size is n blocks of the per-rank count.
bool Blocked(OpType op) {
  return op == OpType::kAllGather || op == OpType::kReduceScatter || op == OpType::kGather ||
         op == OpType::kScatter || op == OpType::kAllToAll;
}

struct Row {
  uint64_t size, count;
  double time_us, algbw, busbw;
  int64_t wrong;
  std::string status;
  // On the ucx fabric, summed over the nodes' transports for the whole size (warm-up and
  // timed iterations): WRITEs, progress-thread waits, waits that ended at the busy and at
  // the idle bound, and stalls (UcxTransportStats). -1: not a ucx fabric.
  int64_t writes = -1, waits = -1, busy_timeouts = -1, idle_timeouts = -1, stalls = -1;
};

// A fresh cluster of n nodes with one group: the simulator by default, any backend of the
// registry by name (GroupCluster::Make says why one cannot run here).
Result<std::unique_ptr<cluster::GroupCluster>> MakeCluster(const std::string& fabric, int n,
                                                           const ProcessGroupOptions& pg,
                                                           uint64_t slice_bytes, uint64_t seed) {
  cluster::GroupClusterOptions co;
  co.backend = fabric;
  co.ranks = n;
  co.seed = seed;
  co.pg = pg;
  co.contract_checker = false;
  if (slice_bytes != 0) co.engine.slice_bytes = slice_bytes;
  return cluster::GroupCluster::Make(co);
}

// One timed op on this rank: the inputs are made (cluster::Filled) and every rank meets at
// a barrier before the clock starts; after its own Wait the rank stops its clock and meets
// the others at a second barrier, and only then checks the result (cluster::CheckCase).
// So neither making nor checking inputs overlaps any rank's timed region: on a fabric whose
// ranks share one executor (ucx, sim) a rank that finished first would otherwise check its
// 16 MiB result on that executor while the others' collective waits behind it (measured:
// up to 70 ms of a 16 MiB allreduce's time was the other rank's check). The caller takes
// the group's time of the op from every rank's start and end (Measure).
struct Timed {
  uint64_t start_ns = 0;  // Env clock when this rank called the collective
  uint64_t end_ns = 0;    // when its Wait returned
  cluster::CaseResult result;
};
Task<Timed> TimedCase(ProcessGroup& pg, Env& env, OpType op, uint64_t c, int root, ReduceOp rop,
                      DataType dt) {
  constexpr uint8_t kUnset = 0x5A;
  const int rank = pg.rank();
  const int size = pg.size();
  const uint64_t es = DataTypeSize(dt);
  const bool reduction =
      op == OpType::kAllReduce || op == OpType::kReduce || op == OpType::kReduceScatter;
  const ReduceOp vop = reduction ? rop : ReduceOp::kSum;
  std::vector<uint8_t> in, out;
  bool in_place = false;
  switch (op) {
    case OpType::kAllReduce:
    case OpType::kReduce:
      out = cluster::Filled(rank, c, vop, dt);
      in_place = true;
      break;
    case OpType::kBroadcast:
      out = rank == root ? cluster::Filled(rank, c, vop, dt) : std::vector<uint8_t>(c * es, kUnset);
      in_place = true;
      break;
    case OpType::kAllGather:
      in = cluster::Filled(rank, c, vop, dt);
      out.assign(size * c * es, kUnset);
      break;
    case OpType::kGather:
      in = cluster::Filled(rank, c, vop, dt);
      if (rank == root) out.assign(size * c * es, kUnset);
      break;
    case OpType::kReduceScatter:
      in = cluster::Filled(rank, size * c, vop, dt);
      out.assign(c * es, kUnset);
      break;
    case OpType::kScatter:
      if (rank == root) in = cluster::Filled(rank, size * c, vop, dt);
      out.assign(c * es, kUnset);
      break;
    case OpType::kAllToAll:
      in = cluster::Filled(rank, size * c, vop, dt);
      out.assign(size * c * es, kUnset);
      break;
    default:
      break;
  }
  const std::vector<uint8_t> initial = out;
  Tensor to = cluster::View(out, dt);
  Tensor ti = in_place ? to : cluster::View(in, dt);
  Timed t;
  std::shared_ptr<Work> ready = pg.Barrier();
  Status met = co_await ready->Wait();
  if (!met.ok()) {
    t.result.status = met;
    t.result.wrong = -1;
    co_return t;
  }
  t.start_ns = env.NowNs();
  std::shared_ptr<Work> w;
  switch (op) {
    case OpType::kAllReduce: w = pg.AllReduce(to, rop); break;
    case OpType::kReduce: w = pg.Reduce(to, root, rop); break;
    case OpType::kBroadcast: w = pg.Broadcast(to, root); break;
    case OpType::kAllGather: w = pg.AllGather(to, ti); break;
    case OpType::kGather: w = pg.Gather(to, ti, root); break;
    case OpType::kReduceScatter: w = pg.ReduceScatter(to, ti, rop); break;
    case OpType::kScatter: w = pg.Scatter(to, ti, root); break;
    case OpType::kAllToAll: w = pg.AllToAll(to, ti); break;
    default: w = pg.Barrier(); break;
  }
  t.result.status = co_await w->Wait();
  t.end_ns = env.NowNs();
  t.result.failed = w->failed_ranks();
  if (t.result.status.ok()) {
    // Every rank's clock has stopped before any rank checks (see above).
    std::shared_ptr<Work> after = pg.Barrier();
    Status met_after = co_await after->Wait();
    if (!met_after.ok()) t.result.status = met_after;
  }
  if (t.result.status.ok() || t.result.status.code() == ErrorCode::RANK_FAILED) {
    t.result.wrong = cluster::CheckCase(op, rank, size, t.result.failed, c, root, rop, dt, out,
                                        initial);
  } else {
    t.result.wrong = -1;
  }
  co_return t;
}

// The time of one op is the group's: from the first rank's call to the last rank's return
// (every rank's clock is the same Env clock here: one process). On a fabric whose ranks
// share an executor, a rank leaving the start barrier first runs its own part of the op
// before the others are resumed; timing each rank from its own start would leave that
// skew out.
Row Measure(const std::string& fabric, OpType op, int n, uint64_t size, DataType dt, ReduceOp rop,
            int root, int warmup, int iters, const ProcessGroupOptions& pg, uint64_t slice_bytes,
            uint64_t seed) {
  const uint64_t es = DataTypeSize(dt);
  uint64_t count = size / es;
  uint64_t block = Blocked(op) ? count / n : count;
  count = Blocked(op) ? block * n : count;
  Row row{count * es, count, 0, 0, 0, 0, "OK"};
  auto made = MakeCluster(fabric, n, pg, slice_bytes, seed);
  if (!made.ok()) {
    row.status = made.status().ToString();
    row.wrong = -1;
    return row;
  }
  cluster::GroupCluster& cluster = **made;
  std::string err;
  if (!cluster.StartAll(&err)) {
    row.status = err;
    row.wrong = -1;
    return row;
  }
#if TIDAL_HAVE_UCX
  auto* ucx = dynamic_cast<backends::ucx::UcxFabric*>(&cluster.fabric());
  auto ucx_totals = [&](backends::ucx::UcxTransportStats* sum) {
    for (int r = 0; r < n; ++r) {
      const backends::ucx::UcxTransportStats s = ucx->ucx_transport(r).stats();
      sum->writes += s.writes;
      sum->waits += s.waits;
      sum->busy_timeouts += s.busy_timeouts;
      sum->idle_timeouts += s.idle_timeouts;
      sum->stalls += s.stalls;
    }
  };
  backends::ucx::UcxTransportStats ucx_before;
  if (ucx != nullptr) ucx_totals(&ucx_before);
#endif
  std::vector<std::vector<uint64_t>> starts(n, std::vector<uint64_t>(iters, 0));
  std::vector<std::vector<uint64_t>> ends(n, std::vector<uint64_t>(iters, 0));
  std::vector<int64_t> wrong(n, 0);
  std::vector<std::string> bad(n);
  bool ok = cluster.RunRanks([&](int r) -> Task<void> {
    Env& env = cluster.fabric().env(r);
    for (int k = 0; k < warmup; ++k) {
      co_await TimedCase(cluster.pg(r), env, op, block, root, rop, dt);
    }
    for (int k = 0; k < iters; ++k) {
      Timed t = co_await TimedCase(cluster.pg(r), env, op, block, root, rop, dt);
      starts[r][k] = t.start_ns;
      ends[r][k] = t.end_ns;
      if (t.result.wrong != 0 && wrong[r] == 0) wrong[r] = t.result.wrong;
      if (!t.result.status.ok() && bad[r].empty()) bad[r] = t.result.status.ToString();
    }
  });
  if (!ok) {
    row.status = "hung";
    row.wrong = -1;
    return row;
  }
#if TIDAL_HAVE_UCX
  if (ucx != nullptr) {
    backends::ucx::UcxTransportStats after;
    ucx_totals(&after);
    row.writes = static_cast<int64_t>(after.writes - ucx_before.writes);
    row.waits = static_cast<int64_t>(after.waits - ucx_before.waits);
    row.busy_timeouts = static_cast<int64_t>(after.busy_timeouts - ucx_before.busy_timeouts);
    row.idle_timeouts = static_cast<int64_t>(after.idle_timeouts - ucx_before.idle_timeouts);
    row.stalls = static_cast<int64_t>(after.stalls - ucx_before.stalls);
  }
#endif
  uint64_t total = 0;
  for (int k = 0; k < iters; ++k) {
    uint64_t first = UINT64_MAX, last = 0;
    for (int r = 0; r < n; ++r) {
      first = std::min(first, starts[r][k]);
      last = std::max(last, ends[r][k]);
    }
    total += last - first;
  }
  for (int r = 0; r < n; ++r) {
    row.wrong += wrong[r] < 0 ? 0 : wrong[r];
    if (!bad[r].empty()) row.status = bad[r];
  }
  double ns = static_cast<double>(total) / iters;
  row.time_us = ns / 1000.0;
  row.algbw = ns > 0 ? static_cast<double>(row.size) / ns : 0;  // bytes/ns == GB/s
  row.busbw = row.algbw * BusBandwidthFactor(op, n);
  return row;
}

}  // namespace

// memcpy bandwidth (GB/s, 1e9) of `bytes` between two buffers, best of a few runs.
double MemcpyGBps(uint64_t bytes) {
  bytes = std::max<uint64_t>(bytes, 1 << 20);
  std::vector<uint8_t> a(bytes, 1), b(bytes, 0);
  double best = 0;
  for (int run = 0; run < 5; ++run) {
    const auto start = std::chrono::steady_clock::now();  // wall time: a benchmark
    std::memcpy(b.data(), a.data(), bytes);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (s > 0) best = std::max(best, static_cast<double>(bytes) / s / 1e9);
    a[run] = b[bytes - 1 - run];  // the copy is used
  }
  return best;
}

// The whole tool; `tidal-bench coll ARGS` runs it too (tools/tidal-bench, compiled with
// TIDAL_COLL_BENCH_NO_MAIN).
int RunCollBench(int argc, char** argv) {
  std::string fabric = "sim";
  std::string op_name = "allreduce", type_name = "f32", redop_name = "sum", algo = "auto";
  std::string min_text = "8", max_text = "4M", json_path, slot_text = "auto", direct_text = "64K";
  std::string slice_text = "auto";
  int ranks = 8, root = 0, iters = 5, warmup = 1;
  double factor = 2;
  uint64_t seed = 1;
  po::options_description desc(
      "tidal-coll-bench (also `tidal-bench coll`): nccl-tests style table on a fabric");
  desc.add_options()("help,h", "show this help")(
      "fabric", po::value(&fabric)->default_value(fabric),
      "backend from the registry (sim, ucx, ...); sim reports virtual time")(
      "op,o", po::value(&op_name)->default_value(op_name),
      "allreduce allgather reducescatter broadcast reduce gather scatter alltoall, or all")(
      "ranks,n", po::value(&ranks)->default_value(ranks), "ranks (1..64)")(
      "minbytes,b", po::value(&min_text)->default_value(min_text), "smallest size (K/M/G)")(
      "maxbytes,e", po::value(&max_text)->default_value(max_text), "largest size (K/M/G)")(
      "stepfactor,f", po::value(&factor)->default_value(factor), "size multiplier")(
      "datatype,d", po::value(&type_name)->default_value(type_name),
      "f32 f64 f16 bf16 i8 u8 i32 i64")("redop", po::value(&redop_name)->default_value(redop_name),
                                        "sum prod min max avg")(
      "root,r", po::value(&root)->default_value(root), "root of rooted ops")(
      "iters,i", po::value(&iters)->default_value(iters), "timed iterations per size")(
      "warmup,w", po::value(&warmup)->default_value(warmup), "untimed iterations per size")(
      "algorithm", po::value(&algo)->default_value(algo), "auto, direct, ring or split")(
      "slot-bytes", po::value(&slot_text)->default_value(slot_text),
      "chunk/slot size; auto: 256K on sim, 1M on a real fabric")(
      "slice-bytes", po::value(&slice_text)->default_value(slice_text),
      "the engine's slice size; auto: the engine's default on sim, the slot size on a real "
      "fabric (one WRITE per chunk)")(
      "direct-max", po::value(&direct_text)->default_value(direct_text),
      "auto: direct up to this size")("seed", po::value(&seed)->default_value(seed),
                                      "simulator seed")(
      "json", po::value(&json_path), "also write the rows as JSON to this file ('-': stdout)");
  po::variables_map vm;
  if (auto exit_code = tidal::tools::ParseCommandLine(argc, argv, desc, &vm)) return *exit_code;
  auto dt = ParseDataType(type_name);
  auto rop = ParseReduceOp(redop_name);
  auto lo = ParseBytes(min_text), hi = ParseBytes(max_text);
  const bool real = fabric != "sim";
  auto slot = ParseBytes(slot_text == "auto" ? (real ? "1M" : "256K") : slot_text);
  auto direct = ParseBytes(direct_text);
  Result<uint64_t> slice = uint64_t{0};
  if (slice_text != "auto") {
    slice = ParseBytes(slice_text);
  } else if (real && slot.ok()) {
    slice = *slot;
  }
  for (const Status& s : {dt.status(), rop.status(), lo.status(), hi.status(), slot.status(),
                          direct.status(), slice.status()}) {
    if (!s.ok()) {
      std::cerr << s.ToString() << "\n";
      return 2;
    }
  }
  std::vector<OpType> ops;
  if (op_name == "all") {
    for (OpType o :
         {OpType::kAllReduce, OpType::kAllGather, OpType::kReduceScatter, OpType::kBroadcast,
          OpType::kReduce, OpType::kGather, OpType::kScatter, OpType::kAllToAll}) {
      ops.push_back(o);
    }
  } else {
    auto o = ParseOp(op_name);
    if (!o.ok()) {
      std::cerr << o.status().ToString() << "\n";
      return 2;
    }
    ops.push_back(*o);
  }
  if (ranks < 1 || ranks > 64 || root < 0 || root >= ranks || iters < 1 || warmup < 0 ||
      factor <= 1.0 || *lo == 0 || *hi < *lo) {
    std::cerr << "bad arguments (ranks 1..64, 0 <= root < ranks, iters >= 1, factor > 1, "
                 "0 < minbytes <= maxbytes)\n";
    return 2;
  }
  ProcessGroupOptions pg;
  pg.slot_bytes = *slot;
  pg.direct_max_bytes = *direct;
  if (auto a = ParseAlgorithm(algo); a.ok()) {
    pg.algorithm = *a;
  } else {
    std::cerr << "--algorithm: " << a.status().ToString() << "\n";
    return 2;
  }
  pg.timeout_ns = 600'000'000'000ULL;

  if (auto probe = MakeCluster(fabric, ranks, pg, *slice, seed); !probe.ok()) {
    std::fprintf(stderr, "fabric '%s' cannot run here: %s\n", fabric.c_str(),
                 probe.status().ToString().c_str());
    return 2;
  }

  nlohmann::json doc;
  doc["fabric"] = fabric;
  doc["ranks"] = ranks;
  doc["datatype"] = std::string(DataTypeName(*dt));
  doc["algorithm"] = algo;
  doc["slot_bytes"] = *slot;
  doc["slice_bytes"] = *slice;  // 0: the engine's default
  doc["time_base"] = fabric == "sim" ? "simulator virtual time" : "Env clock";
  doc["results"] = nlohmann::json::array();
  int64_t total_wrong = 0;
  std::printf("# tidal-coll-bench: %d ranks on the %s fabric, %s, algorithm %s, slot %" PRIu64
              " B, engine slice %s\n",
              ranks, fabric.c_str(), std::string(DataTypeName(*dt)).c_str(), algo.c_str(), *slot,
              *slice == 0 ? "default" : (std::to_string(*slice) + " B").c_str());
  if (fabric != "sim") {
    // The ceiling on a real fabric of one host: this machine's memcpy bandwidth at the
    // largest size (a collective moves at least its bytes through memory once).
    const double ceiling = MemcpyGBps(*hi);
    std::printf("# memcpy ceiling of this machine at %" PRIu64 " B: %.2f GB/s\n", *hi, ceiling);
    doc["memcpy_gbps"] = ceiling;
  }
  std::printf("#\n");
  for (OpType op : ops) {
    std::printf("# %s\n", std::string(OpTypeName(op)).c_str());
    std::printf("#%13s %13s %6s %6s %5s %10s %8s %8s %7s\n", "size", "count", "type", "redop",
                "root", "time", "algbw", "busbw", "#wrong");
    std::printf("#%13s %13s %6s %6s %5s %10s %8s %8s %7s\n", "(B)", "(elements)", "", "", "",
                "(us)", "(GB/s)", "(GB/s)", "");
    for (double size = static_cast<double>(*lo); size <= static_cast<double>(*hi); size *= factor) {
      Row row = Measure(fabric, op, ranks, static_cast<uint64_t>(size), *dt, *rop, root, warmup,
                        iters, pg, *slice, seed);
      std::string redop = IsReduction(op) ? std::string(ReduceOpName(*rop)) : "none";
      int shown_root = IsRooted(op) ? root : -1;
      std::printf(" %13" PRIu64 " %13" PRIu64 " %6s %6s %5d %10.2f %8.2f %8.2f %7" PRId64 "%s\n",
                  row.size, row.count, std::string(DataTypeName(*dt)).c_str(), redop.c_str(),
                  shown_root, row.time_us, row.algbw, row.busbw, row.wrong,
                  row.status == "OK" ? "" : ("  " + row.status).c_str());
      if (row.waits >= 0) {
        std::printf("#   ucx transports: %" PRId64 " WRITEs, %" PRId64 " waits, %" PRId64
                    " at the busy bound, %" PRId64 " at the idle bound, %" PRId64 " stalls\n",
                    row.writes, row.waits, row.busy_timeouts, row.idle_timeouts, row.stalls);
      }
      std::fflush(stdout);
      total_wrong += row.wrong;
      doc["results"].push_back({{"op", std::string(OpTypeName(op))},
                                {"size", row.size},
                                {"count", row.count},
                                {"type", std::string(DataTypeName(*dt))},
                                {"redop", redop},
                                {"root", shown_root},
                                {"time_us", row.time_us},
                                {"algbw_gbps", row.algbw},
                                {"busbw_gbps", row.busbw},
                                {"wrong", row.wrong},
                                {"status", row.status}});
      if (row.waits >= 0) {
        doc["results"].back()["ucx"] = {{"writes", row.writes},
                                        {"waits", row.waits},
                                        {"busy_timeouts", row.busy_timeouts},
                                        {"idle_timeouts", row.idle_timeouts},
                                        {"stalls", row.stalls}};
      }
    }
  }
  std::printf("# Out of bounds values : %" PRId64 " %s\n", total_wrong,
              total_wrong == 0 ? "OK" : "FAILED");
  if (!json_path.empty()) {
    if (json_path == "-") {
      std::cout << doc.dump(2) << "\n";
    } else {
      std::ofstream f(json_path);
      f << doc.dump(2) << "\n";
      if (!f) {
        std::cerr << "cannot write " << json_path << "\n";
        return 1;
      }
    }
  }
  return total_wrong == 0 ? 0 : 1;
}

#ifndef TIDAL_COLL_BENCH_NO_MAIN
int main(int argc, char** argv) { return RunCollBench(argc, argv); }
#endif
