// The collectives campaign (see campaign.h).
#include "tidal/cluster/coll_campaign.h"

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <vector>

#include "tidal/cluster/coll_harness.h"
#include "tidal/sim/fault_plan.h"

namespace tidal::cluster {

using namespace tidal::coll;  // NOLINT: the campaign speaks the collectives' vocabulary
namespace {

// splitmix64: the campaign's workload generator, seeded by the seed alone (the world's
// tape drives the schedule and faults).
struct Draw {
  uint64_t s;
  uint64_t Next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  uint64_t Below(uint64_t n) { return Next() % n; }
};

struct Step {
  OpType op;
  DataType dt;
  ReduceOp rop;
  int root;
  uint64_t c;
};

constexpr OpType kOps[] = {OpType::kAllReduce, OpType::kAllGather, OpType::kReduceScatter,
                           OpType::kBroadcast, OpType::kReduce,    OpType::kGather,
                           OpType::kScatter,   OpType::kAllToAll,  OpType::kBarrier};
constexpr DataType kTypes[] = {DataType::kF32, DataType::kF64, DataType::kF16, DataType::kBF16,
                               DataType::kI8,  DataType::kU8,  DataType::kI32, DataType::kI64};

bool IsRooted(OpType op) {
  return op == OpType::kBroadcast || op == OpType::kReduce || op == OpType::kGather ||
         op == OpType::kScatter;
}

}  // namespace

CollSeedResult RunCollCampaignSeed(uint64_t seed, const CollCampaignOptions& options) {
  Draw d{seed * 0x2545F4914F6CDD1DULL + 1};
  const int n = 2 + static_cast<int>(d.Below(5));
  // Fault mix for this seed.
  sim::SwarmSettings swarm;
  const bool transfer_faults = d.Below(3) != 0;
  const bool message_faults = d.Below(2) != 0;
  auto on = [&](sim::FaultKind k) { swarm.enabled[static_cast<size_t>(k)] = true; };
  if (transfer_faults) {
    for (auto k : {sim::FaultKind::kShortWrite, sim::FaultKind::kStaleRemoteKey,
                   sim::FaultKind::kOutsideWindow, sim::FaultKind::kCompletionDelay,
                   sim::FaultKind::kCompletionReorder, sim::FaultKind::kCompletionLoss}) {
      if (d.Below(2)) on(k);
    }
  }
  if (message_faults) {
    for (auto k : {sim::FaultKind::kMessageDelay, sim::FaultKind::kMessageDrop,
                   sim::FaultKind::kMessageDuplicate}) {
      if (d.Below(2)) on(k);
    }
  }
  const int crashes = std::min<int>(static_cast<int>(d.Below(3)), n - 1);
  const bool hang = n >= 3 && d.Below(4) == 0;

  GroupClusterOptions co;
  co.ranks = n;
  co.seed = seed;
  co.pg = TestOptions();
  co.pg.slot_bytes = 512;
  co.pg.direct_max_bytes = 256;
  co.pg.timeout_ns = 1'000'000'000ULL;
  co.pg.planted_bug = options.planted_bug;
  co.pg.write_retries = 4;
  co.engine.transfer_timeout_ns = 5'000'000;  // lost completions surface as timeouts fast
  // Completions may be delayed up to 2 ms by the fault plan: a probe must outwait that,
  // and up to 10% of completions may be lost, so eight timeouts in a row are required
  // (five were not enough: 2 false exclusions in 30,000 seeds).
  co.engine.probe_timeout_ns = 3'000'000;
  co.pg.probe_attempts = 8;
  co.contract_checker = true;
  co.swarm = swarm;

  std::vector<Step> steps(4 + d.Below(8));
  for (auto& s : steps) {
    s.op = kOps[d.Below(std::size(kOps))];
    s.dt = kTypes[d.Below(std::size(kTypes))];
    s.rop = static_cast<ReduceOp>(d.Below(kReduceOps));
    s.root = static_cast<int>(d.Below(n));
    uint64_t sizes[] = {0, 1, 7, 64, 300, 1500};
    s.c = sizes[d.Below(std::size(sizes))];
  }
  std::vector<std::pair<int, uint64_t>> crash_plan;  // (rank, delay after bootstrap)
  for (int k = 0; k < crashes; ++k) {
    crash_plan.emplace_back(static_cast<int>(d.Below(n)), d.Below(150'000));
  }

  int hung_rank = -1;
  uint64_t hang_at = 0, hang_for = 0;
  if (hang) {
    hung_rank = static_cast<int>(d.Below(n));
    hang_at = d.Below(100'000);
    hang_for = 500'000 + d.Below(40'000'000);  // 0.5..40 ms: short ones are only slow
  }

  CollSeedResult out;
  std::ostringstream err;
  GroupCluster cluster(co);
  std::string boot;
  if (!cluster.StartAll(&boot)) {
    out.ok = false;
    out.error = "seed " + std::to_string(seed) + ": bootstrap failed: " + boot;
    return out;
  }
  // Crashes come after bootstrap (the campaign tests collectives, not Start); the
  // swarm rates were drawn by the World from the seed's tape at construction.
  for (auto [rank, delay] : crash_plan) {
    sim::World* w = &cluster.world();
    w->ScheduleAt(w->NowNs() + delay, -1, [w, rank = rank]() {
      if (w->alive(rank)) w->Crash(static_cast<uint32_t>(rank));
    });
  }
  if (hang) {
    sim::World* w = &cluster.world();
    w->ScheduleAt(w->NowNs() + hang_at, -1, [w, hung_rank, hang_for]() {
      if (w->alive(hung_rank)) w->Hang(static_cast<uint32_t>(hung_rank), hang_for);
    });
  }
  std::vector<std::vector<CaseResult>> results(n);
  bool finished = cluster.RunRanks(
      [&](int r) -> Task<void> {
        for (const Step& s : steps) {
          results[r].push_back(co_await RunCase(cluster.pg(r), s.op, s.c, s.root, s.rop, s.dt));
        }
      },
      static_cast<uint64_t>(steps.size() + 1) * co.pg.timeout_ns);

  std::vector<int> crashed;
  for (int r = 0; r < n; ++r) {
    if (!cluster.alive(r)) crashed.push_back(r);
  }
  out.crashes = crashed.size();
  if (!finished) err << "a live rank never finished (hang); ";
  for (size_t j = 0; j < steps.size(); ++j) {
    const Step& s = steps[j];
    const CaseResult* ref = nullptr;
    int ref_rank = -1;
    for (int r = 0; r < n; ++r) {
      if (!cluster.alive(r) || results[r].size() <= j) continue;
      const CaseResult& k = results[r][j];
      ++out.ops;
      std::ostringstream where;
      where << "op " << j << " (" << OpTypeName(s.op) << " " << DataTypeName(s.dt) << " "
            << ReduceOpName(s.rop) << " root=" << s.root << " count=" << s.c << ") rank " << r;
      if (options.verbose) {
        std::printf("  %s: %s failed=%zu wrong=%lld\n", where.str().c_str(),
                    k.status.ToString().c_str(), k.failed.size(), static_cast<long long>(k.wrong));
      }
      if (r == hung_rank) {
        // A rank that hung long enough was excluded by the others; it finds out by its
        // own timeout (OPERATION_TIMEOUT, then COLLECTIVE_ABORTED: the group is broken
        // for it). Whatever it reports, it must not have a wrong result.
        if (k.wrong > 0) err << where.str() << ": #wrong=" << k.wrong << "; ";
        continue;
      }
      if (k.wrong != 0) err << where.str() << ": #wrong=" << k.wrong << "; ";
      for (int f : k.failed) {
        bool was_crashed = std::find(crashed.begin(), crashed.end(), f) != crashed.end();
        if (!was_crashed && f != hung_rank) {
          err << where.str() << ": blames live rank " << f << "; ";
        }
      }
      switch (k.status.code()) {
        case ErrorCode::OK:
        case ErrorCode::RANK_FAILED:
          break;
        case ErrorCode::COLLECTIVE_ABORTED: {
          bool root_failed = IsRooted(s.op) &&
                             std::find(k.failed.begin(), k.failed.end(), s.root) != k.failed.end();
          if (!root_failed) {
            err << where.str() << ": aborted: " << k.status.ToString() << "; ";
          }
          break;
        }
        default:
          err << where.str() << ": " << k.status.ToString() << "; ";
      }
      if (ref == nullptr) {
        ref = &k;
        ref_rank = r;
      } else if (ref->status.code() != k.status.code() || ref->failed != k.failed) {
        err << where.str() << ": disagrees with rank " << ref_rank << " (" << k.status.ToString()
            << " vs " << ref->status.ToString() << "); ";
      }
    }
  }
  for (int r = 0; r < n; ++r) {
    if (cluster.alive(r) && r != hung_rank && results[r].size() != steps.size()) {
      err << "rank " << r << " finished " << results[r].size() << "/" << steps.size() << " ops; ";
    }
  }
  for (size_t k = 0; k < sim::kFaultKinds; ++k) {
    out.faults += cluster.world().injected(static_cast<sim::FaultKind>(k));
  }
  out.digest = cluster.world().digest();
  out.virtual_ns = cluster.world().NowNs();
  std::ostringstream sum;
  sum << "seed " << seed << ": ranks=" << n << " ops=" << steps.size() << " crashes=" << out.crashes
      << " hang="
      << (hang ? std::to_string(hung_rank) + "/" + std::to_string(hang_for / 1000) + "us" : "none")
      << " faults=" << out.faults << " digest=" << std::hex << out.digest;
  out.summary = sum.str();
  if (!err.str().empty()) {
    out.ok = false;
    out.error = out.summary + "\n  " + err.str() + "\n  " + cluster.Banner() +
                "\n  replay: tidal-coll-campaign --seed " + std::to_string(seed) + " --verbose";
  }
  return out;
}

}  // namespace tidal::cluster
