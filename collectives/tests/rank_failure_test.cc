// Rank-failure suite: for every collective, world sizes 3 and 4, a direct-sized and a
// ring-sized message, crash one rank and then two ranks at EVERY step boundary
// (enumerated from a fault-free run, not sampled). Survivors must all finish within the
// op timeout, agree on status and failed ranks, and either
//  * RANK_FAILED with failed_ranks == exactly the crashed ranks and the documented result
//    over the survivors (#wrong == 0), or
//  * COLLECTIVE_ABORTED (only when a root died) with outputs unchanged.
// A step boundary is each rank's StepEvent::boundary of the op (data steps of every
// attempt plus the point just before the agreement round); the second crash is also
// placed in the retry attempt. Point-to-point gets its own dead-peer checks. The suites are
// instantiated over the registry's fabrics; crash points need the simulator, so other
// fabrics skip them with that reason (fabrics.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>

#include "fabrics.h"

namespace tidal::coll {
namespace {

using namespace tidal::cluster;  // NOLINT: the harness

bool IsRooted(OpType op) {
  return op == OpType::kBroadcast || op == OpType::kReduce || op == OpType::kGather ||
         op == OpType::kScatter;
}

Tensor I64Of(std::vector<int64_t>& v) {
  return Tensor{v.data(), DataType::kI64, v.size(), Location::Host()};
}

struct Plan {
  GroupCluster* cluster = nullptr;
  std::map<int, uint64_t> crash_at;  // rank -> boundary
  std::vector<uint64_t> boundaries;  // per rank: boundaries seen in the op under test
};

struct Outcome {
  bool finished = false;
  std::string error;
  std::vector<int> crashed;
};

constexpr uint64_t kTimeoutNs = 200'000'000;  // op timeout in this suite: 200 ms

// Runs `op` once with the crash plan; returns boundaries seen per rank (fault-free run).
Outcome RunOnce(const std::string& backend, OpType op, int n, uint64_t c, Plan& plan, uint64_t seed,
                Algorithm alg = Algorithm::kAuto) {
  ProcessGroupOptions pg = TestOptions();
  pg.algorithm = alg;
  pg.timeout_ns = kTimeoutNs;
  pg.peer_check_ns = 100'000;
  pg.step_hook = [&plan](const StepEvent& e) {
    if (e.op_seq != 0) return;
    plan.boundaries[e.rank] = std::max(plan.boundaries[e.rank], e.boundary + 1);
    auto it = plan.crash_at.find(e.rank);
    if (it != plan.crash_at.end() && it->second == e.boundary) {
      EXPECT_TRUE(plan.cluster->CrashSoon(e.rank).ok());
    }
  };
  GroupClusterOptions co;
  co.backend = backend;
  co.ranks = n;
  co.seed = seed;
  co.pg = pg;
  GroupCluster cluster(co);  // the caller checked that the backend is the simulator
  plan.cluster = &cluster;
  plan.boundaries.assign(n, 0);
  Outcome out;
  std::string err;
  if (!cluster.StartAll(&err)) {
    out.error = "bootstrap: " + err;
    return out;
  }
  const int root = 1;
  const uint64_t start = cluster.world().NowNs();
  std::vector<CaseResult> res(n);
  std::vector<bool> done(n, false);
  bool ok = cluster.RunRanks(
      [&](int r) -> Task<void> {
        res[r] = co_await RunCase(cluster.pg(r), op, c, root, ReduceOp::kSum, DataType::kI32);
        done[r] = true;
      },
      2 * kTimeoutNs);
  const uint64_t elapsed = cluster.world().NowNs() - start;
  std::ostringstream why;
  std::vector<int> crashed;
  for (int r = 0; r < n; ++r) {
    if (!cluster.alive(r)) crashed.push_back(r);
  }
  if (!ok) why << "hung; ";
  std::vector<int> survivors;
  for (int r = 0; r < n; ++r) {
    if (cluster.alive(r)) survivors.push_back(r);
  }
  for (int r : survivors) {
    if (!done[r]) {
      why << "rank " << r << " never finished; ";
      continue;
    }
    const CaseResult& k = res[r];
    const CaseResult& first = res[survivors[0]];
    if (k.status.code() != first.status.code() || k.failed != first.failed) {
      why << "rank " << r << " disagrees: " << k.status.ToString() << " vs "
          << first.status.ToString() << "; ";
    }
    bool root_dead = IsRooted(op) && !cluster.alive(root);
    if (k.status.code() == ErrorCode::RANK_FAILED || k.status.ok()) {
      if (k.failed != crashed) {
        why << "rank " << r << " failed_ranks wrong (" << k.failed.size() << " vs "
            << crashed.size() << "); ";
      }
      if (root_dead) why << "rank " << r << " finished although the root died; ";
    } else if (k.status.code() == ErrorCode::COLLECTIVE_ABORTED) {
      if (!root_dead) why << "rank " << r << " aborted although the root lives; ";
      if (std::find(k.failed.begin(), k.failed.end(), root) == k.failed.end()) {
        why << "rank " << r << " aborted without naming the root; ";
      }
    } else {
      why << "rank " << r << " unexpected status " << k.status.ToString() << "; ";
    }
    if (k.wrong != 0) why << "rank " << r << " #wrong=" << k.wrong << "; ";
  }
  if (elapsed > kTimeoutNs + 10'000'000) why << "took " << elapsed << " ns; ";
  out.finished = true;
  out.crashed = crashed;
  out.error = why.str();
  if (!out.error.empty()) out.error += cluster.Banner();
  return out;
}

std::string Describe(const Plan& p) {
  std::ostringstream s;
  for (auto [r, b] : p.crash_at) s << "rank " << r << "@" << b << " ";
  return s.str();
}

class RankFailure : public ::testing::TestWithParam<std::tuple<std::string, OpType, int>> {};

TEST_P(RankFailure, CrashOneThenTwoAtEveryStepBoundary) {
  auto [backend, op, n] = GetParam();
  TIDAL_SIM_ONLY(backend, "crash points at every step boundary");
  int runs = 0;
  int crashed_twice = 0;
  // Direct-sized, ring-sized (3 chunks), and where the op splits (Algorithm::kSplit) the
  // ring-sized message split in two steps.
  const bool splits = op == OpType::kAllReduce || op == OpType::kReduce || op == OpType::kBroadcast;
  std::vector<std::pair<uint64_t, Algorithm>> shapes = {{1, Algorithm::kAuto},
                                                        {150, Algorithm::kAuto}};
  if (splits) shapes.push_back({150, Algorithm::kSplit});
  for (auto [c, alg] : shapes) {
    Plan clean;
    Outcome base = RunOnce(backend, op, n, c, clean, 1, alg);
    ASSERT_TRUE(base.error.empty()) << "fault-free run: " << base.error;
    const std::vector<uint64_t> bounds = clean.boundaries;
    // One rank.
    for (int v = 0; v < n; ++v) {
      for (uint64_t b = 0; b < bounds[v]; ++b) {
        Plan p;
        p.crash_at[v] = b;
        Outcome o = RunOnce(backend, op, n, c, p, 2 + runs, alg);
        ++runs;
        ASSERT_TRUE(o.error.empty()) << "count " << c << " " << AlgorithmName(alg) << " crash "
                                     << Describe(p) << ": " << o.error;
        ASSERT_EQ(o.crashed, std::vector<int>{v}) << Describe(p);
      }
    }
    // Two ranks: both at the same boundary, and the second one in the retry attempt.
    for (int a = 0; a < n; ++a) {
      for (int v = a + 1; v < n; ++v) {
        uint64_t common = std::min(bounds[a], bounds[v]);
        for (uint64_t b = 0; b < common; ++b) {
          for (uint64_t d : {uint64_t{0}, bounds[v]}) {
            Plan p;
            p.crash_at[a] = b;
            p.crash_at[v] = b + d;
            Outcome o = RunOnce(backend, op, n, c, p, 2 + runs, alg);
            ++runs;
            ASSERT_TRUE(o.error.empty()) << "count " << c << " " << AlgorithmName(alg) << " crash "
                                         << Describe(p) << ": " << o.error;
            ASSERT_FALSE(o.crashed.empty()) << Describe(p);
            ASSERT_EQ(o.crashed[0], a) << Describe(p);
            if (d == 0) {
              ASSERT_EQ(o.crashed, (std::vector<int>{a, v})) << Describe(p);
            }
            crashed_twice += o.crashed.size() == 2;
          }
        }
      }
    }
  }
  EXPECT_GT(crashed_twice, 0);
  RecordProperty("runs", runs);
  std::printf("%s: %d crash runs, %d with two crashes\n",
              ::testing::UnitTest::GetInstance()->current_test_info()->name(), runs, crashed_twice);
}

INSTANTIATE_TEST_SUITE_P(
    EveryOp, RankFailure,
    ::testing::Combine(AllFabrics(),
                       ::testing::Values(OpType::kAllReduce, OpType::kAllGather,
                                         OpType::kReduceScatter, OpType::kBroadcast,
                                         OpType::kReduce, OpType::kGather, OpType::kScatter,
                                         OpType::kAllToAll, OpType::kBarrier),
                       ::testing::Values(3, 4)),
    [](const auto& info) {
      return std::string(OpTypeName(std::get<1>(info.param))) + "_w" +
             std::to_string(std::get<2>(info.param)) + "_" + std::get<0>(info.param);
    });

// Point-to-point with a dead peer: every pending and later send/recv to it completes
// with COLLECTIVE_ABORTED naming it, within the timeout, and others are unaffected.
class RankFailureP2P : public ::testing::TestWithParam<std::string> {};

TEST_P(RankFailureP2P, DeadPeerAbortsItsMessagesOnly) {
  GroupClusterOptions co;
  co.backend = GetParam();
  co.ranks = 3;
  co.pg = TestOptions();
  co.pg.timeout_ns = kTimeoutNs;
  TIDAL_CLUSTER_OR_SKIP(made, co);
  GroupCluster& c = *made;
  Status crashed = c.Crash(2);
  if (crashed.code() == ErrorCode::UNSUPPORTED) GTEST_SKIP() << crashed.ToString();
  ASSERT_TRUE(crashed.ok()) << crashed.ToString();
  std::vector<Status> st(3);
  std::vector<std::vector<int>> failed(3);
  ASSERT_TRUE(c.RunRanks([&](int r) -> Task<void> {
    std::vector<int64_t> a(100, r), b(100, -1);
    Tensor ta{a.data(), DataType::kI64, 100, Location::Host()};
    Tensor tb{b.data(), DataType::kI64, 100, Location::Host()};
    P2POp ops[3] = {{P2POp::Kind::kSend, ta, 1 - r, 0},
                    {P2POp::Kind::kRecv, tb, 1 - r, 0},
                    {P2POp::Kind::kRecv, tb, 2, 0}};
    auto w = c.pg(r).BatchIsendIrecv(ops);
    st[r] = co_await w->Wait();
    failed[r] = w->failed_ranks();
    EXPECT_EQ(b[0], 1 - r);  // the live pair exchanged
    auto s2 = c.pg(r).Send(ta, 2);
    EXPECT_EQ((co_await s2->Wait()).code(), ErrorCode::COLLECTIVE_ABORTED);
  })) << c.Banner();
  for (int r : {0, 1}) {
    EXPECT_EQ(st[r].code(), ErrorCode::COLLECTIVE_ABORTED) << st[r].ToString();
    EXPECT_EQ(failed[r], std::vector<int>{2});
  }
}

// A peer that crashes in the middle of a 1,200-message exchange: the survivor's batch
// ends with COLLECTIVE_ABORTED naming it (well within the timeout), whatever had arrived
// before the crash is intact, and the survivor's other peer is unaffected.
TEST_P(RankFailureP2P, PeerCrashesInTheMiddleOfABatch) {
  TIDAL_SIM_ONLY(GetParam(), "a crash at a chosen virtual time");
  for (uint64_t crash_after_ns : {20'000, 200'000, 1'000'000}) {
    GroupClusterOptions co;
    co.backend = GetParam();
    co.ranks = 3;
    co.seed = crash_after_ns;
    co.pg = TestOptions();
    co.pg.timeout_ns = kTimeoutNs;
    GroupCluster c(co);
    std::string err;
    ASSERT_TRUE(c.StartAll(&err)) << err;
    sim::World* w = &c.world();
    w->ScheduleAt(w->NowNs() + crash_after_ns, -1, [w]() { w->Crash(1); });
    constexpr int kN = 1200;
    std::vector<std::vector<int64_t>> got(3, std::vector<int64_t>(kN, -1));
    std::vector<std::vector<int64_t>> sent(3, std::vector<int64_t>(kN));
    std::vector<Status> st(3);
    std::vector<std::vector<int>> failed(3);
    const uint64_t start = w->NowNs();
    ASSERT_TRUE(c.RunRanks([&](int r) -> Task<void> {
      if (r == 2) {
        std::vector<int64_t> v = {0};
        EXPECT_TRUE((co_await c.pg(2).Recv(I64Of(v), 0)->Wait()).ok());
        EXPECT_EQ(v[0], 42);
        co_return;
      }
      int peer = 1 - r;
      std::vector<P2POp> ops;
      for (int k = 0; k < kN; ++k) {
        sent[r][k] = 1000 * r + k;
        ops.push_back({P2POp::Kind::kSend, Tensor{&sent[r][k], DataType::kI64, 1, Location::Host()},
                       peer, 0});
        ops.push_back(
            {P2POp::Kind::kRecv, Tensor{&got[r][k], DataType::kI64, 1, Location::Host()}, peer, 0});
      }
      auto work = c.pg(r).BatchIsendIrecv(ops);
      st[r] = co_await work->Wait();
      failed[r] = work->failed_ranks();
      std::vector<int64_t> v = {42};
      // The live pair 0 <-> 2 still works.
      if (r == 0) {
        EXPECT_TRUE((co_await c.pg(0).Send(I64Of(v), 2)->Wait()).ok());
      }
    })) << c.Banner();
    EXPECT_EQ(st[0].code(), ErrorCode::COLLECTIVE_ABORTED) << st[0].ToString();
    EXPECT_EQ(failed[0], std::vector<int>{1});
    EXPECT_LT(w->NowNs() - start, kTimeoutNs);
    int received = 0;
    for (int k = 0; k < kN; ++k) {
      if (got[0][k] == -1) continue;
      EXPECT_EQ(got[0][k], 1000 + k);
      ++received;
    }
    EXPECT_LT(received, kN);
  }
}

INSTANTIATE_TEST_SUITE_P(Fabrics, RankFailureP2P, AllFabrics(),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tidal::coll
