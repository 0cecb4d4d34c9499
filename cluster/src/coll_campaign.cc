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

// A step's kind: a collective (kOps order), or one of the point-to-point exchanges.
enum Kind : size_t { kSendRecv = 9, kBatchP2P = 10, kKinds = 11 };
constexpr const char* kKindNames[kKinds] = {
    "all_reduce", "all_gather", "reduce_scatter", "broadcast", "reduce",
    "gather",     "scatter",    "all_to_all",     "barrier",   "send_recv",
    "batch_isend_irecv"};
enum Fault : size_t { kCrashFault, kHangFault, kPartitionFault, kFaultCount };
constexpr const char* kFaultNames[kFaultCount] = {"crash", "hang", "partition"};

struct Step {
  size_t kind;  // index into kKindNames
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

// The bytes `rank` sends in the point-to-point step `tag` of seed `seed`.
std::vector<uint8_t> P2PBytes(uint64_t seed, uint32_t tag, int rank, uint64_t bytes) {
  Draw d{seed * 0x9E3779B97F4A7C15ULL + tag * 0x100000001B3ULL + static_cast<uint64_t>(rank)};
  std::vector<uint8_t> out(bytes);
  for (auto& b : out) b = static_cast<uint8_t>(d.Next());
  return out;
}

constexpr uint8_t kUntouched = 0xEE;

struct P2PResult {
  Status send, recv;  // a batch: both hold the batch's status
  std::vector<int> send_failed, recv_failed;
  bool exact = false;      // the receive buffers hold the previous rank's bytes
  bool untouched = false;  // no failed receive wrote its buffer
};

// The second message of an out-of-order send/recv step: its own tag and length.
constexpr uint32_t kSecondTag = 1u << 16;
uint64_t SecondBytes(uint64_t bytes) {
  return bytes / 2 + 3;
}

// Rank r sends to r+1 and receives from r-1 (mod size), as Send + Recv or one batch.
Task<P2PResult> RunP2P(ProcessGroup& pg, size_t kind, uint64_t c, uint32_t tag, uint64_t seed) {
  const int n = pg.size(), r = pg.rank(), next = (r + 1) % n, prev = (r + n - 1) % n;
  const uint64_t bytes = 1 + 4 * c;
  std::vector<uint8_t> out = P2PBytes(seed, tag, r, bytes);
  std::vector<uint8_t> in(bytes, kUntouched);
  Tensor ts{out.data(), DataType::kU8, bytes, Location::Host()};
  Tensor tr{in.data(), DataType::kU8, bytes, Location::Host()};
  P2PResult res;
  if (kind == kSendRecv && tag % 2 == 1) {
    // Out of order: two messages (tag, then tag | kSecondTag) and their receives posted in
    // the other order, the first only after the second completed. The first message has
    // to wait in the stash for a receive that is posted after it arrived
    // (coll.p2p_stash_used, coll.p2p_recv_matched_from_stash).
    const uint32_t tag2 = tag | kSecondTag;
    const uint64_t bytes2 = SecondBytes(bytes);
    std::vector<uint8_t> out2 = P2PBytes(seed, tag2, r, bytes2);
    std::vector<uint8_t> in2(bytes2, kUntouched);
    Tensor ts2{out2.data(), DataType::kU8, bytes2, Location::Host()};
    Tensor tr2{in2.data(), DataType::kU8, bytes2, Location::Host()};
    std::shared_ptr<coll::Work> ws = pg.Send(ts, next, tag);
    std::shared_ptr<coll::Work> ws2 = pg.Send(ts2, next, tag2);
    std::shared_ptr<coll::Work> wr2 = pg.Recv(tr2, prev, tag2);
    Status recv2 = co_await wr2->Wait();
    std::shared_ptr<coll::Work> wr = pg.Recv(tr, prev, tag);
    res.recv = co_await wr->Wait();
    res.send = co_await ws->Wait();
    Status send2 = co_await ws2->Wait();
    res.send_failed = ws->failed_ranks();
    res.recv_failed = wr->failed_ranks();
    if (res.send.ok() && !send2.ok()) {
      res.send = send2;
      res.send_failed = ws2->failed_ranks();
    }
    const bool exact1 = in == P2PBytes(seed, tag, prev, bytes);
    const bool exact2 = in2 == P2PBytes(seed, tag2, prev, bytes2);
    auto clean = [](const std::vector<uint8_t>& v) {
      return std::all_of(v.begin(), v.end(), [](uint8_t b) { return b == kUntouched; });
    };
    res.untouched = (res.recv.ok() || clean(in)) && (recv2.ok() || clean(in2));
    if (res.recv.ok() && !recv2.ok()) {
      res.recv = recv2;
      res.recv_failed = wr2->failed_ranks();
    }
    res.exact = exact1 && exact2;
    co_return res;
  }
  if (kind == kSendRecv) {
    std::shared_ptr<coll::Work> ws = pg.Send(ts, next, tag);
    std::shared_ptr<coll::Work> wr = pg.Recv(tr, prev, tag);
    res.send = co_await ws->Wait();
    res.recv = co_await wr->Wait();
    res.send_failed = ws->failed_ranks();
    res.recv_failed = wr->failed_ranks();
  } else {
    std::vector<coll::P2POp> ops(2);
    ops[0] = {coll::P2POp::Kind::kSend, ts, next, tag};
    ops[1] = {coll::P2POp::Kind::kRecv, tr, prev, tag};
    std::shared_ptr<coll::Work> w = pg.BatchIsendIrecv(ops);
    res.send = co_await w->Wait();
    res.recv = res.send;
    res.send_failed = w->failed_ranks();
    res.recv_failed = res.send_failed;
  }
  res.exact = in == P2PBytes(seed, tag, prev, bytes);
  res.untouched = std::all_of(in.begin(), in.end(), [](uint8_t b) { return b == kUntouched; });
  co_return res;
}

}  // namespace

CollSeedResult RunCollCampaignSeed(uint64_t seed, const CollCampaignOptions& options) {
  Draw d{seed * 0x2545F4914F6CDD1DULL + 1};
  int n = 2 + static_cast<int>(d.Below(5));
  if (options.ranks > 0) n = std::max(2, options.ranks);
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
  bool hang = n >= 3 && d.Below(4) == 0;

  GroupClusterOptions co;
  co.ranks = n;
  co.seed = seed;
  co.pg = TestOptions();
  co.pg.slot_bytes = 512;
  co.pg.direct_max_bytes = options.direct_max_bytes > 0 ? options.direct_max_bytes : 256;
  co.pg.algorithm = options.algorithm;
  co.pg.timeout_ns = options.timeout_ns > 0 ? options.timeout_ns : 1'000'000'000ULL;
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
  co.tape = options.tape;
  co.record_tape = options.record_tape;

  std::vector<Step> steps(4 + d.Below(8));
  for (auto& s : steps) {
    s.kind = d.Below(kKinds);
    s.op = s.kind < std::size(kOps) ? kOps[s.kind] : OpType::kBarrier;
    s.dt = kTypes[d.Below(std::size(kTypes))];
    s.rop = static_cast<ReduceOp>(d.Below(kReduceOps));
    s.root = static_cast<int>(d.Below(n));
    uint64_t sizes[] = {0, 1, 7, 64, 300, 1500};
    s.c = sizes[d.Below(std::size(sizes))];
    if (options.max_count > 0) s.c = std::min(s.c, options.max_count);
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
  if (options.steps > 0 && options.steps < steps.size()) steps.resize(options.steps);
  if (options.step_mask != ~0ull) {
    std::vector<Step> kept;
    for (size_t j = 0; j < steps.size(); ++j) {
      if (j >= 64 || ((options.step_mask >> j) & 1) != 0) kept.push_back(steps[j]);
    }
    steps = std::move(kept);
  }
  if (!steps.empty()) {
    steps.erase(steps.begin(), steps.begin() + static_cast<std::ptrdiff_t>(
                                                    std::min(options.skip_steps, steps.size() - 1)));
  }
  if (!options.crashes) crash_plan.clear();
  if (!options.hangs) hang = false;
  // A partition in a third of the seeds: a random split, 0.2..10 ms long, healed well
  // before probe_attempts probes (8 x 3 ms) could time out in a row: nobody may be blamed.
  const bool partition = options.partitions && d.Below(3) == 0;
  std::vector<int> side_a, side_b;
  uint64_t partition_at = 0, partition_for = 0;
  if (partition) {
    const int cut = 1 + static_cast<int>(d.Below(n - 1));  // side a: `cut` ranks
    std::vector<int> order(n);
    for (int r = 0; r < n; ++r) order[r] = r;
    for (int r = n - 1; r > 0; --r) std::swap(order[r], order[d.Below(r + 1)]);
    side_a.assign(order.begin(), order.begin() + cut);
    side_b.assign(order.begin() + cut, order.end());
    partition_at = d.Below(150'000);
    partition_for = 200'000 + d.Below(9'800'000);
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
  // swarm rates were drawn by the World from the seed's tape at construction. Each fault
  // notes when it struck, for the reach table.
  struct Struck {
    size_t fault;
    int rank;  // crash: the rank; else -1
    uint64_t from_ns, until_ns;
  };
  std::vector<Struck> struck;
  sim::World* w = &cluster.world();
  for (auto [rank, delay] : crash_plan) {
    w->ScheduleAt(w->NowNs() + delay, -1, [w, rank = rank, &struck]() {
      if (!w->alive(rank)) return;
      struck.push_back({kCrashFault, rank, w->NowNs(), w->NowNs()});
      w->Crash(static_cast<uint32_t>(rank));
    });
  }
  if (hang) {
    w->ScheduleAt(w->NowNs() + hang_at, -1, [w, hung_rank, hang_for, &struck]() {
      if (!w->alive(hung_rank)) return;
      struck.push_back({kHangFault, -1, w->NowNs(), w->NowNs() + hang_for});
      w->Hang(static_cast<uint32_t>(hung_rank), hang_for);
    });
  }
  if (partition) {
    w->ScheduleAt(w->NowNs() + partition_at, -1, [&, w]() {
      struck.push_back({kPartitionFault, -1, w->NowNs(), w->NowNs() + partition_for});
      w->Partition(side_a, side_b, partition_for);
    });
  }
  std::vector<std::vector<CaseResult>> results(n);
  std::vector<std::vector<P2PResult>> p2p(n, std::vector<P2PResult>(steps.size()));
  // When each rank entered and left each step (0: never).
  std::vector<std::vector<std::pair<uint64_t, uint64_t>>> spans(
      n, std::vector<std::pair<uint64_t, uint64_t>>(steps.size()));
  bool finished = cluster.RunRanks(
      [&](int r) -> Task<void> {
        for (size_t j = 0; j < steps.size(); ++j) {
          const Step& s = steps[j];
          spans[r][j].first = w->NowNs();
          CaseResult k;
          if (s.kind >= std::size(kOps)) {
            p2p[r][j] = co_await RunP2P(cluster.pg(r), s.kind, s.c, static_cast<uint32_t>(j), seed);
            const P2PResult& p = p2p[r][j];
            k.status = !p.send.ok() ? p.send : p.recv;
            k.failed = !p.send.ok() ? p.send_failed : p.recv_failed;
          } else {
            k = co_await RunCase(cluster.pg(r), s.op, s.c, s.root, s.rop, s.dt);
          }
          spans[r][j].second = w->NowNs();
          results[r].push_back(std::move(k));
        }
      },
      static_cast<uint64_t>(steps.size() + 1) * co.pg.timeout_ns);

  std::vector<int> crashed;
  for (int r = 0; r < n; ++r) {
    if (!cluster.alive(r)) crashed.push_back(r);
  }
  out.crashes = crashed.size();
  if (!finished) err << "a live rank never finished (hang); ";
  // Reach: a step is under a fault when the fault struck while some rank was inside it (a
  // crashed rank's last step ends at its crash).
  out.reach = CollReachLayout();
  std::vector<uint64_t> crashed_at(n, UINT64_MAX);
  for (const Struck& f : struck) {
    if (f.fault == kCrashFault) crashed_at[f.rank] = f.from_ns;
  }
  for (size_t j = 0; j < steps.size(); ++j) {
    for (const Struck& f : struck) {
      bool inside = false;
      for (int r = 0; r < n && !inside; ++r) {
        auto [from, until] = spans[r][j];
        if (from == 0) continue;  // never entered
        if (until == 0) until = crashed_at[r] == UINT64_MAX ? UINT64_MAX : crashed_at[r];
        inside = from <= f.until_ns && f.from_ns <= until;
      }
      if (inside) out.reach.Hit(steps[j].kind, f.fault);
    }
  }
  // A partition loses the notifications and credits sent across it; the channels re-send
  // them after it heals, so by default (options.strict_partitions) a timeout or a broken
  // group after a healed partition fails the seed like any other. Lenient, from the first
  // step a rank timed out in or found its group broken after the partition struck,
  // OPERATION_TIMEOUT and a broken group are accepted (results are still judged, and
  // nobody live may be blamed) and the seed is counted.
  auto down = [&](int rank) { return rank == hung_rank || crashed_at[rank] != UINT64_MAX; };
  // A timeout, or an abort that names no live rank (a broken group lists the dead it knew).
  auto breaks = [&](const Status& st, const std::vector<int>& failed) {
    return (st.code() == ErrorCode::OPERATION_TIMEOUT ||
            st.code() == ErrorCode::COLLECTIVE_ABORTED) &&
           std::all_of(failed.begin(), failed.end(), down);
  };
  size_t broken_from = SIZE_MAX;
  if (partition && !options.strict_partitions) {
    uint64_t struck_at = UINT64_MAX;
    for (const Struck& f : struck) {
      if (f.fault == kPartitionFault) struck_at = f.from_ns;
    }
    for (size_t j = 0; j < steps.size() && broken_from == SIZE_MAX; ++j) {
      for (int r = 0; r < n; ++r) {
        if (results[r].size() <= j || spans[r][j].second < struck_at) continue;
        const CaseResult& k = results[r][j];
        if (k.status.code() == ErrorCode::OPERATION_TIMEOUT ||
            (k.status.code() == ErrorCode::COLLECTIVE_ABORTED && breaks(k.status, k.failed) &&
             k.status.message().find("broken") != std::string::npos)) {
          broken_from = j;
        }
      }
    }
  }
  out.broken_by_partition = broken_from != SIZE_MAX;
  auto broken = [&](size_t j, const Status& st, const std::vector<int>& failed) {
    return j >= broken_from && breaks(st, failed);
  };
  for (size_t j = 0; j < steps.size(); ++j) {
    const Step& s = steps[j];
    const CaseResult* ref = nullptr;
    int ref_rank = -1;
    const bool is_p2p = s.kind >= std::size(kOps);
    for (int r = 0; r < n; ++r) {
      if (!cluster.alive(r) || results[r].size() <= j) continue;
      if (is_p2p) {
        ++out.ops;
        const P2PResult& p = p2p[r][j];
        const int next = (r + 1) % n, prev = (r + n - 1) % n;
        std::ostringstream where;
        where << "step " << j << " (" << kKindNames[s.kind] << " " << (1 + 4 * s.c)
              << " bytes, to " << next << ", from " << prev << ") rank " << r;
        if (options.verbose) {
          std::printf("  %s: send %s recv %s exact=%d untouched=%d\n", where.str().c_str(),
                      p.send.ToString().c_str(), p.recv.ToString().c_str(), p.exact, p.untouched);
        }
        auto peer_down = [&](int peer) {
          return peer == hung_rank || crashed_at[peer] != UINT64_MAX;
        };
        // A failure names only peers that crashed or hung.
        auto judge = [&](const Status& st, const std::vector<int>& failed, const char* what) {
          if (st.ok() || broken(j, st, failed)) return;
          bool named_down = !failed.empty() && std::all_of(failed.begin(), failed.end(), [&](int f) {
            return (f == next || f == prev) && peer_down(f);
          });
          if (st.code() != ErrorCode::COLLECTIVE_ABORTED || !named_down) {
            err << where.str() << ": " << what << " " << st.ToString() << " (failed ranks";
            for (int f : failed) err << " " << f;
            err << "); ";
          }
        };
        if (p.recv.ok() && !p.exact) err << where.str() << ": received bytes differ; ";
        if (!p.recv.ok() && !p.untouched && !(s.kind == kBatchP2P && p.exact)) {
          err << where.str() << ": a failed receive wrote its buffer; ";
        }
        if (r == hung_rank) continue;  // excluded while frozen: only its bytes are judged
        judge(p.send, p.send_failed, "send");
        if (s.kind == kSendRecv) judge(p.recv, p.recv_failed, "receive");
        continue;
      }
      const CaseResult& k = results[r][j];
      ++out.ops;
      std::ostringstream where;
      where << "op " << j << " (" << OpTypeName(s.op) << " " << DataTypeName(s.dt) << " "
            << ReduceOpName(s.rop) << " root=" << s.root << " count=" << s.c << ") rank " << r;
      if (options.verbose) {
        std::printf("  %s: %s failed=%zu wrong=%lld\n", where.str().c_str(),
                    k.status.ToString().c_str(), k.failed.size(), static_cast<long long>(k.wrong));
      }
      if (broken(j, k.status, k.failed)) {
        if (k.wrong > 0) err << where.str() << ": #wrong=" << k.wrong << "; ";
        continue;
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
  out.events = cluster.world().trace().events();
  if (options.record_tape) out.draws = cluster.world().tape().recorded();
  out.virtual_ns = cluster.world().NowNs();
  std::ostringstream sum;
  sum << "seed " << seed << ": ranks=" << n << " ops=" << steps.size() << " crashes=" << out.crashes
      << " hang="
      << (hang ? std::to_string(hung_rank) + "/" + std::to_string(hang_for / 1000) + "us" : "none")
      << " partition=" << (partition ? std::to_string(side_a.size()) + "|" +
                                           std::to_string(side_b.size()) + "/" +
                                           std::to_string(partition_for / 1000) + "us"
                                     : "none")
      << " faults=" << out.faults << " digest=" << std::hex << out.digest;
  out.summary = sum.str();
  if (!err.str().empty()) {
    out.ok = false;
    out.error = out.summary + "\n  " + err.str() + "\n  " + cluster.Banner() +
                "\n  replay: tidal-coll-campaign --seed " + std::to_string(seed) +
                (options.algorithm != coll::Algorithm::kAuto
                     ? " --algorithm " + std::string(coll::AlgorithmName(options.algorithm))
                     : std::string()) +
                " --verbose";
  }
  return out;
}

ReachTable CollReachLayout() {
  ReachTable t(std::vector<std::string>(kKindNames, kKindNames + kKinds),
               std::vector<std::string>(kFaultNames, kFaultNames + kFaultCount));
  for (size_t k = 0; k < kKinds; ++k) {
    for (size_t f = 0; f < kFaultCount; ++f) t.Set(k, f, ReachTable::Cell::kRequired);
  }
  return t;
}

}  // namespace tidal::cluster
