// Field bugs 1, 2, 10 and 11 (docs/field-bugs.md) as named scenarios on the simulator. Each
// asserts the exact outcome (bytes, status, which ranks failed) and would fail on the
// original bug: rank-0-only roots (1), a wrongly initialised accumulator or reducing over
// rank indices instead of the active members (2), survivors blaming a healthy rank that
// was only waiting on the dead one (10), and nodes that keep sending to a dead peer (11).
#include <gtest/gtest.h>

#include "fabrics.h"

namespace tidal::coll {
namespace {

using namespace tidal::cluster;  // NOLINT: the harness

Tensor I64(std::vector<int64_t>& v) {
  return Tensor{v.data(), DataType::kI64, v.size(), Location::Host()};
}

GroupClusterOptions Options(const std::string& backend, int n,
                            ProcessGroupOptions pg = TestOptions(), uint64_t seed = 11,
                            sim::LinkModel link = {}) {
  GroupClusterOptions co;
  co.backend = backend;
  co.link = link;
  co.ranks = n;
  co.seed = seed;
  co.pg = std::move(pg);
  return co;
}

// Each scenario runs on every fabric of the registry (fabrics.h).
class CollectivesFieldBug : public ::testing::TestWithParam<std::string> {};

// Crashes `node` now, or skips the test where the fabric cannot crash one.
#define CRASH_OR_SKIP(cluster, node)                                   \
  do {                                                                 \
    Status crash_status = (cluster)->Crash(node);                      \
    if (crash_status.code() == ErrorCode::UNSUPPORTED) {               \
      GTEST_SKIP() << crash_status.ToString();                         \
    }                                                                  \
    ASSERT_TRUE(crash_status.ok()) << crash_status.ToString();         \
  } while (0)

// Bug 1: gather, scatter and reduce went to rank 0 whatever root was asked for.
TEST_P(CollectivesFieldBug, Bug1_GatherScatterReduceHonourRoot) {
  const int n = 4;
  for (int root : {3, 2, 1}) {
    TIDAL_CLUSTER_OR_SKIP(c, Options(GetParam(), n));
    std::vector<std::vector<int64_t>> gathered(n), reduced(n), scattered(n);
    ASSERT_TRUE(c->RunRanks([&](int r) -> Task<void> {
      auto& pg = c->pg(r);
      std::vector<int64_t> in = {100 + r};
      gathered[r].assign(n, -7);  // every rank passes a buffer; only the root's is written
      EXPECT_TRUE((co_await pg.Gather(I64(gathered[r]), I64(in), root)->Wait()).ok());
      reduced[r] = {r + 1, 10 * (r + 1)};
      EXPECT_TRUE((co_await pg.Reduce(I64(reduced[r]), root, ReduceOp::kSum)->Wait()).ok());
      std::vector<int64_t> src(n);
      for (int k = 0; k < n; ++k) src[k] = r == root ? 1000 + k : -1;
      scattered[r] = {-5};
      EXPECT_TRUE((co_await pg.Scatter(I64(scattered[r]), I64(src), root)->Wait()).ok());
    })) << c->Banner();
    for (int r = 0; r < n; ++r) {
      if (r == root) {
        EXPECT_EQ(gathered[r], (std::vector<int64_t>{100, 101, 102, 103}));
        EXPECT_EQ(reduced[r], (std::vector<int64_t>{10, 100}));
      } else {
        EXPECT_EQ(gathered[r], std::vector<int64_t>(n, -7)) << "root " << root << " rank " << r;
        EXPECT_EQ(reduced[r], (std::vector<int64_t>{r + 1, 10 * (r + 1)}));
      }
      EXPECT_EQ(scattered[r], std::vector<int64_t>{1000 + r});
    }
  }
}

// Bug 2: the CPU reduce started its accumulator wrong and mis-offset the active ranks.
// With rank 1 dead, MAX of negative values, PROD and AVG must be over {0, 2, 3} exactly.
TEST_P(CollectivesFieldBug, Bug2_AccumulatorAndActiveRanksAfterAFailure) {
  const int n = 4;
  for (Algorithm alg : {Algorithm::kDirect, Algorithm::kRing, Algorithm::kSplit}) {
    ProcessGroupOptions pg = TestOptions();
    pg.algorithm = alg;
    TIDAL_CLUSTER_OR_SKIP(c, Options(GetParam(), n, pg));
    CRASH_OR_SKIP(c, 1);
    std::vector<std::vector<int64_t>> mx(n), pr(n), av(n);
    std::vector<Status> st(n);
    std::vector<std::vector<int>> failed(n);
    ASSERT_TRUE(c->RunRanks([&](int r) -> Task<void> {
      auto& g = c->pg(r);
      mx[r] = {-10 - r, -20 - r, -30 - r};  // MAX from a 0 accumulator would give 0
      auto w = g.AllReduce(I64(mx[r]), ReduceOp::kMax);
      st[r] = co_await w->Wait();
      failed[r] = w->failed_ranks();
      pr[r] = {r + 1, -(r + 1), 2};
      EXPECT_EQ((co_await g.AllReduce(I64(pr[r]), ReduceOp::kProd)->Wait()).code(),
                ErrorCode::RANK_FAILED);
      av[r] = {3 * r, 7, 100 + r};
      EXPECT_EQ((co_await g.AllReduce(I64(av[r]), ReduceOp::kAvg)->Wait()).code(),
                ErrorCode::RANK_FAILED);
    })) << c->Banner();
    for (int r : {0, 2, 3}) {
      EXPECT_EQ(st[r].code(), ErrorCode::RANK_FAILED) << st[r].ToString();
      EXPECT_EQ(failed[r], std::vector<int>{1});
      EXPECT_EQ(mx[r], (std::vector<int64_t>{-10, -20, -30})) << "rank " << r;
      EXPECT_EQ(pr[r], (std::vector<int64_t>{1 * 3 * 4, -1 * -3 * -4, 8}));
      EXPECT_EQ(av[r], (std::vector<int64_t>{(0 + 6 + 9) / 3, 7, (100 + 102 + 103) / 3}));
      EXPECT_EQ(c->pg(r).active_ranks(), (std::vector<int>{0, 2, 3}));
    }
  }
}

// Bug 10: when one rank was killed, survivors wrongly declared a healthy rank failed and
// none continued. Rank 2 dies in the middle of a ring allreduce; rank 3 (waiting on 2)
// and rank 0 (waiting on 3) are silent for a while but healthy: only 2 may be blamed,
// every survivor must say so, and the group must go on working.
TEST_P(CollectivesFieldBug, Bug10_KilledRankDoesNotMakeSurvivorsBlameAHealthyOne) {
  TIDAL_SIM_ONLY(GetParam(), "crash points at step boundaries, a slow control link");
  const int n = 4;
  for (uint64_t boundary : {1, 2, 4}) {
    ProcessGroupOptions pg = TestOptions();
    pg.algorithm = Algorithm::kRing;
    pg.peer_check_ns = 20'000;  // probe silent peers early and often
    GroupCluster* cp = nullptr;
    pg.step_hook = [&cp, boundary](const StepEvent& e) {
      if (e.rank == 2 && e.op_seq == 0 && e.boundary == boundary) {
        EXPECT_TRUE(cp->CrashSoon(2).ok());
      }
    };
    // Control messages are slow, so news of rank 2's death reaches rank 0 long after
    // rank 0 has started to wonder about rank 3: a rank that blames silence fails here.
    sim::LinkModel link;
    link.message_latency_ns = 300'000;
    TIDAL_CLUSTER_OR_SKIP(c, Options(GetParam(), n, pg, 100 + boundary, link));
    cp = c.get();
    std::vector<CaseResult> first(n), second(n);
    ASSERT_TRUE(c->RunRanks([&](int r) -> Task<void> {
      first[r] =
          co_await RunCase(c->pg(r), OpType::kAllReduce, 500, 0, ReduceOp::kSum, DataType::kI32);
      second[r] =
          co_await RunCase(c->pg(r), OpType::kAllReduce, 500, 0, ReduceOp::kSum, DataType::kI32);
    })) << c->Banner();
    ASSERT_FALSE(c->alive(2));
    for (int r : {0, 1, 3}) {
      EXPECT_EQ(first[r].status.code(), ErrorCode::RANK_FAILED) << first[r].status.ToString();
      EXPECT_EQ(first[r].failed, std::vector<int>{2}) << "rank " << r << c->Banner();
      EXPECT_EQ(first[r].wrong, 0);
      EXPECT_EQ(second[r].status.code(), ErrorCode::RANK_FAILED);
      EXPECT_EQ(second[r].failed, std::vector<int>{2});
      EXPECT_EQ(second[r].wrong, 0);
      EXPECT_EQ(c->pg(r).dead_ranks(), std::vector<int>{2});
    }
  }
}

// Bug 11: a peer that disappeared stayed in every node's segment cache and every node
// kept sending to it. After the first op finds rank 3 dead, no survivor writes, notifies
// or messages it again, whatever ops follow.
TEST_P(CollectivesFieldBug, Bug11_DeadPeerIsDroppedAndNeverSentToAgain) {
  const int n = 4;
  TIDAL_CLUSTER_OR_SKIP(c, Options(GetParam(), n));
  CRASH_OR_SKIP(c, 3);
  std::vector<ProcessGroupStats> after_detect(n);
  ASSERT_TRUE(c->RunRanks([&](int r) -> Task<void> {
    auto res =
        co_await RunCase(c->pg(r), OpType::kAllReduce, 50, 0, ReduceOp::kSum, DataType::kF32);
    EXPECT_EQ(res.status.code(), ErrorCode::RANK_FAILED);
    EXPECT_EQ(res.failed, std::vector<int>{3});
    after_detect[r] = c->pg(r).stats();
    for (OpType op : {OpType::kAllReduce, OpType::kAllGather, OpType::kReduceScatter,
                      OpType::kBroadcast, OpType::kReduce, OpType::kGather, OpType::kScatter,
                      OpType::kAllToAll, OpType::kBarrier}) {
      auto k = co_await RunCase(c->pg(r), op, 300, 0, ReduceOp::kMax, DataType::kI64);
      EXPECT_EQ(k.status.code(), ErrorCode::RANK_FAILED) << OpTypeName(op);
      EXPECT_EQ(k.wrong, 0) << OpTypeName(op);
    }
    std::vector<int64_t> v = {1};
    auto w = c->pg(r).Send(I64(v), 3);
    EXPECT_EQ((co_await w->Wait()).code(), ErrorCode::COLLECTIVE_ABORTED);
    EXPECT_EQ(w->failed_ranks(), std::vector<int>{3});
  })) << c->Banner();
  for (int r = 0; r < 3; ++r) {
    const auto& now = c->pg(r).stats();
    EXPECT_EQ(now.writes_to[3], after_detect[r].writes_to[3]) << "rank " << r;
    EXPECT_EQ(now.notifies_to[3], after_detect[r].notifies_to[3]) << "rank " << r;
    EXPECT_EQ(now.messages_to[3], after_detect[r].messages_to[3]) << "rank " << r;
    EXPECT_GT(now.writes_to[(r + 1) % 3], after_detect[r].writes_to[(r + 1) % 3]);
    EXPECT_EQ(c->pg(r).dead_ranks(), std::vector<int>{3});
  }
}

INSTANTIATE_TEST_SUITE_P(Fabrics, CollectivesFieldBug, AllFabrics(),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tidal::coll
