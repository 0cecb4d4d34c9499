// The process-group cases users of other c10d backends check, exact integers, with roots
// other than 0: allreduce of rank+1 is the sum, product of 2 is 2^world, gather to the
// root is [0..world-1], scatter gives rank i the value i, ring send/recv, a 4-message
// ordering test that receives [0,1,2,3], a 1,200-message batch, and argument errors. Each
// runs on every fabric of the registry (fabrics.h); one that cannot run here skips.
#include <gtest/gtest.h>

#include <numeric>

#include "fabrics.h"

namespace tidal::coll {
namespace {

using namespace tidal::cluster;  // NOLINT: the harness

GroupClusterOptions Options(const std::string& backend, int n, uint64_t seed = 7) {
  GroupClusterOptions co;
  co.backend = backend;
  co.ranks = n;
  co.seed = seed;
  co.pg = TestOptions();
  return co;
}

// Every suite here is parameterized by the fabric (and for Reference, the world size).
class Reference : public ::testing::TestWithParam<std::tuple<std::string, int>> {
 protected:
  const std::string& backend() const { return std::get<0>(GetParam()); }
};
class ReferenceP2P : public ::testing::TestWithParam<std::string> {};
using ReferenceInPlace = ReferenceP2P;
using ReferenceArgs = ReferenceP2P;

Tensor I64(std::vector<int64_t>& v) {
  return Tensor{v.data(), DataType::kI64, v.size(), Location::Host()};
}


TEST_P(Reference, AllReduceSumOfRankPlusOne) {
  const int n = std::get<1>(GetParam());
  TIDAL_CLUSTER_OR_SKIP(c, Options(backend(), n));
  std::vector<std::vector<int64_t>> out(n);
  std::vector<Status> st(n);
  ASSERT_TRUE(c->RunRanks([&](int r) -> Task<void> {
    out[r].assign(1000, r + 1);
    st[r] = co_await c->pg(r).AllReduce(I64(out[r]), ReduceOp::kSum)->Wait();
  })) << c->Banner();
  for (int r = 0; r < n; ++r) {
    EXPECT_TRUE(st[r].ok()) << st[r].ToString();
    EXPECT_EQ(out[r], std::vector<int64_t>(1000, n * (n + 1) / 2)) << "rank " << r;
  }
}

TEST_P(Reference, AllReduceProductOfTwoIsTwoToTheWorld) {
  const int n = std::get<1>(GetParam());
  TIDAL_CLUSTER_OR_SKIP(c, Options(backend(), n));
  std::vector<std::vector<int64_t>> out(n);
  ASSERT_TRUE(c->RunRanks([&](int r) -> Task<void> {
    out[r].assign(100, 2);
    Status s = co_await c->pg(r).AllReduce(I64(out[r]), ReduceOp::kProd)->Wait();
    EXPECT_TRUE(s.ok()) << s.ToString();
  }));
  for (int r = 0; r < n; ++r) EXPECT_EQ(out[r], std::vector<int64_t>(100, int64_t{1} << n));
}

TEST_P(Reference, GatherToEveryRootIsRanks) {
  const int n = std::get<1>(GetParam());
  TIDAL_CLUSTER_OR_SKIP(c, Options(backend(), n));
  for (int root = 0; root < n; ++root) {
    std::vector<std::vector<int64_t>> out(n);
    ASSERT_TRUE(c->RunRanks([&](int r) -> Task<void> {
      std::vector<int64_t> in = {r};
      out[r].assign(r == root ? n : 0, -1);
      Status s = co_await c->pg(r).Gather(I64(out[r]), I64(in), root)->Wait();
      EXPECT_TRUE(s.ok()) << s.ToString();
    }));
    std::vector<int64_t> want(n);
    std::iota(want.begin(), want.end(), 0);
    EXPECT_EQ(out[root], want) << "root " << root;
  }
}

TEST_P(Reference, ScatterFromEveryRootGivesRankI) {
  const int n = std::get<1>(GetParam());
  TIDAL_CLUSTER_OR_SKIP(c, Options(backend(), n));
  for (int root = 0; root < n; ++root) {
    std::vector<int64_t> got(n, -1);
    ASSERT_TRUE(c->RunRanks([&](int r) -> Task<void> {
      std::vector<int64_t> in;
      if (r == root) {
        in.resize(n);
        std::iota(in.begin(), in.end(), 0);
      }
      std::vector<int64_t> out = {-1};
      Status s = co_await c->pg(r).Scatter(I64(out), I64(in), root)->Wait();
      EXPECT_TRUE(s.ok()) << s.ToString();
      got[r] = out[0];
    }));
    for (int r = 0; r < n; ++r) EXPECT_EQ(got[r], r) << "root " << root;
  }
}

TEST_P(Reference, BroadcastAndReduceHonourEveryRoot) {
  const int n = std::get<1>(GetParam());
  TIDAL_CLUSTER_OR_SKIP(c, Options(backend(), n));
  for (int root = 0; root < n; ++root) {
    std::vector<int64_t> b(n), red(n);
    ASSERT_TRUE(c->RunRanks([&](int r) -> Task<void> {
      std::vector<int64_t> v = {r == root ? 1000 + root : -1};
      EXPECT_TRUE((co_await c->pg(r).Broadcast(I64(v), root)->Wait()).ok());
      b[r] = v[0];
      std::vector<int64_t> x = {r + 1};
      EXPECT_TRUE((co_await c->pg(r).Reduce(I64(x), root, ReduceOp::kSum)->Wait()).ok());
      red[r] = x[0];
    }));
    for (int r = 0; r < n; ++r) {
      EXPECT_EQ(b[r], 1000 + root);
      EXPECT_EQ(red[r], r == root ? n * (n + 1) / 2 : r + 1) << "root " << root << " rank " << r;
    }
  }
}

TEST_P(Reference, RingSendRecv) {
  const int n = std::get<1>(GetParam());
  TIDAL_CLUSTER_OR_SKIP(c, Options(backend(), n));
  if (n == 1) {  // a ring of one: sending to oneself is refused, not deadlocked
    ASSERT_TRUE(c->RunRanks([&](int r) -> Task<void> {
      std::vector<int64_t> v = {0};
      EXPECT_EQ((co_await c->pg(0).Send(I64(v), 0)->Wait()).code(), ErrorCode::INVALID_PARAMS);
    }));
    return;
  }
  std::vector<int64_t> got(n, -1);
  ASSERT_TRUE(c->RunRanks([&](int r) -> Task<void> {
    std::vector<int64_t> mine = {r}, theirs = {-1};
    P2POp ops[2] = {{P2POp::Kind::kSend, I64(mine), (r + 1) % n, 0},
                    {P2POp::Kind::kRecv, I64(theirs), (r + n - 1) % n, 0}};
    Status s = co_await c->pg(r).BatchIsendIrecv(ops)->Wait();
    EXPECT_TRUE(s.ok()) << s.ToString();
    got[r] = theirs[0];
  }));
  for (int r = 0; r < n; ++r) EXPECT_EQ(got[r], (r + n - 1) % n);
}

INSTANTIATE_TEST_SUITE_P(WorldSizes, Reference,
                         ::testing::Combine(AllFabrics(), ::testing::Values(1, 2, 3, 4, 5, 8)),
                         [](const auto& info) {
                           return "w" + std::to_string(std::get<1>(info.param)) + "_" +
                                  std::get<0>(info.param);
                         });

TEST_P(ReferenceP2P, FourMessagesArriveInOrder) {
  TIDAL_CLUSTER_OR_SKIP(c, Options(GetParam(), 2));
  std::vector<int64_t> got;
  ASSERT_TRUE(c->RunRanks([&](int r) -> Task<void> {
    if (r == 0) {
      std::vector<std::shared_ptr<Work>> works;
      std::vector<std::vector<int64_t>> msgs(4);
      for (int k = 0; k < 4; ++k) {
        msgs[k] = {k};
        works.push_back(c->pg(0).Send(I64(msgs[k]), 1, /*tag=*/7));
      }
      for (auto& w : works) EXPECT_TRUE((co_await w->Wait()).ok());
    } else {
      for (int k = 0; k < 4; ++k) {
        std::vector<int64_t> v = {-1};
        Status s = co_await c->pg(1).Recv(I64(v), 0, 7)->Wait();
        EXPECT_TRUE(s.ok()) << s.ToString();
        got.push_back(v[0]);
      }
    }
  }));
  EXPECT_EQ(got, (std::vector<int64_t>{0, 1, 2, 3}));
}

TEST_P(ReferenceP2P, BatchOf1200MessagesBothWays) {
  GroupClusterOptions o = Options(GetParam(), 2);
  // The batch is one operation of 2400 messages. On ucx_proc every transport call is a
  // round trip to a node process: the batch took 0.6-2.1 s alone on the 2-core machine and
  // outlived TestOptions' 2 s (OPERATION_TIMEOUT, the last messages unreceived) with eight
  // copies running at once.
  o.pg.timeout_ns = 30'000'000'000ULL;
  TIDAL_CLUSTER_OR_SKIP(c, o);
  constexpr int kN = 1200;
  std::vector<std::vector<int64_t>> recv(2, std::vector<int64_t>(kN, -1));
  std::vector<std::vector<int64_t>> send(2, std::vector<int64_t>(kN));
  ASSERT_TRUE(c->RunRanks([&](int r) -> Task<void> {
    std::vector<P2POp> ops;
    for (int k = 0; k < kN; ++k) {
      send[r][k] = r * 100000 + k;
      ops.push_back({P2POp::Kind::kSend, Tensor{&send[r][k], DataType::kI64, 1, Location::Host()},
                     1 - r, static_cast<uint32_t>(k % 3)});
      ops.push_back({P2POp::Kind::kRecv, Tensor{&recv[r][k], DataType::kI64, 1, Location::Host()},
                     1 - r, static_cast<uint32_t>(k % 3)});
    }
    Status s = co_await c->pg(r).BatchIsendIrecv(ops)->Wait();
    EXPECT_TRUE(s.ok()) << s.ToString();
  })) << c->Banner();
  for (int r = 0; r < 2; ++r) {
    for (int k = 0; k < kN; ++k) ASSERT_EQ(recv[r][k], (1 - r) * 100000 + k) << r << " " << k;
  }
}

// Receives match by (peer, tag); a matched message whose size differs from the receive's
// fails it with INVALID_PARAMS and leaves its buffer as it was.
TEST_P(ReferenceP2P, LargeMessagesAndSizeMismatch) {
  TIDAL_CLUSTER_OR_SKIP(c, Options(GetParam(), 3));
  ASSERT_TRUE(c->RunRanks([&](int r) -> Task<void> {
    std::vector<int64_t> big(1000);
    if (r == 2) {
      std::iota(big.begin(), big.end(), 5);
      EXPECT_TRUE((co_await c->pg(2).Send(I64(big), 0, 1)->Wait()).ok());
      std::vector<int64_t> one = {9};
      EXPECT_TRUE((co_await c->pg(2).Send(I64(one), 0, 2)->Wait()).ok());
    } else if (r == 0) {
      Status s = co_await c->pg(0).Recv(I64(big), 2, 1)->Wait();
      EXPECT_TRUE(s.ok()) << s.ToString();
      for (int i = 0; i < 1000; ++i) EXPECT_EQ(big[i], i + 5);
      std::vector<int64_t> two = {-1, -2};
      s = co_await c->pg(0).Recv(I64(two), 2, /*tag=*/2)->Wait();
      EXPECT_EQ(s.code(), ErrorCode::INVALID_PARAMS) << s.ToString();
      EXPECT_EQ(two, (std::vector<int64_t>{-1, -2}));
    }
  })) << c->Banner();
}

// c10d-style in-place use: AllGather whose input is this rank's block of the output,
// ReduceScatter whose output is this rank's block of the input, AllReduce in place.
TEST_P(ReferenceInPlace, AllGatherAndReduceScatterAliasingTheirBuffers) {
  const int n = 4;
  for (Algorithm alg : {Algorithm::kDirect, Algorithm::kRing, Algorithm::kSplit}) {
    GroupClusterOptions co = Options(GetParam(), n, 1);
    co.pg.algorithm = alg;
    TIDAL_CLUSTER_OR_SKIP(made, co);
    GroupCluster& c = *made;
    const int64_t k = 100;  // elements per block: several chunks
    std::vector<std::vector<int64_t>> ag(n), rs(n);
    ASSERT_TRUE(c.RunRanks([&](int r) -> Task<void> {
      ag[r].assign(n * k, -1);
      for (int64_t i = 0; i < k; ++i) ag[r][r * k + i] = r * 1000 + i;
      Tensor out{ag[r].data(), DataType::kI64, static_cast<uint64_t>(n * k), Location::Host()};
      Tensor in{ag[r].data() + r * k, DataType::kI64, static_cast<uint64_t>(k), Location::Host()};
      EXPECT_TRUE((co_await c.pg(r).AllGather(out, in)->Wait()).ok());
      rs[r].assign(n * k, 0);
      for (int64_t i = 0; i < n * k; ++i) rs[r][i] = r + i;
      Tensor rin{rs[r].data(), DataType::kI64, static_cast<uint64_t>(n * k), Location::Host()};
      Tensor rout{rs[r].data() + r * k, DataType::kI64, static_cast<uint64_t>(k), Location::Host()};
      EXPECT_TRUE((co_await c.pg(r).ReduceScatter(rout, rin, ReduceOp::kSum)->Wait()).ok());
    })) << c.Banner();
    for (int r = 0; r < n; ++r) {
      for (int q = 0; q < n; ++q) {
        for (int64_t i = 0; i < k; ++i) ASSERT_EQ(ag[r][q * k + i], q * 1000 + i);
      }
      for (int64_t i = 0; i < k; ++i) {
        // sum over ranks q of (q + r*k + i)
        ASSERT_EQ(rs[r][r * k + i], n * (r * k + i) + n * (n - 1) / 2) << r << " " << i;
      }
    }
  }
}

TEST_P(ReferenceP2P, ZeroByteMessagesKeepTheirPlaceInOrder) {
  TIDAL_CLUSTER_OR_SKIP(c, Options(GetParam(), 2));
  std::vector<int64_t> got(3, -1);
  ASSERT_TRUE(c->RunRanks([&](int r) -> Task<void> {
    std::vector<int64_t> a = {7}, b = {9};
    Tensor empty{nullptr, DataType::kI64, 0, Location::Host()};
    if (r == 0) {
      auto w1 = c->pg(0).Send(I64(a), 1, 1);
      auto w2 = c->pg(0).Send(empty, 1, 2);
      auto w3 = c->pg(0).Send(I64(b), 1, 3);
      EXPECT_TRUE((co_await w1->Wait()).ok());
      EXPECT_TRUE((co_await w2->Wait()).ok());
      EXPECT_TRUE((co_await w3->Wait()).ok());
    } else {
      std::vector<int64_t> x = {0}, z = {0};
      EXPECT_TRUE((co_await c->pg(1).Recv(I64(x), 0, 1)->Wait()).ok());
      EXPECT_TRUE((co_await c->pg(1).Recv(empty, 0, 2)->Wait()).ok());
      EXPECT_TRUE((co_await c->pg(1).Recv(I64(z), 0, 3)->Wait()).ok());
      got = {x[0], 0, z[0]};
    }
  }));
  EXPECT_EQ(got, (std::vector<int64_t>{7, 0, 9}));
}

TEST_P(ReferenceArgs, RefusedBeforeAnythingMoves) {
  TIDAL_CLUSTER_OR_SKIP(c, Options(GetParam(), 2));
  ASSERT_TRUE(c->RunRanks([&](int r) -> Task<void> {
    std::vector<int64_t> v(4), w(3);
    auto& pg = c->pg(r);
    EXPECT_EQ((co_await pg.Broadcast(I64(v), 2)->Wait()).code(), ErrorCode::INVALID_PARAMS);
    EXPECT_EQ((co_await pg.Reduce(I64(v), -1, ReduceOp::kSum)->Wait()).code(),
              ErrorCode::INVALID_PARAMS);
    EXPECT_EQ((co_await pg.AllGather(I64(w), I64(v))->Wait()).code(), ErrorCode::INVALID_PARAMS);
    EXPECT_EQ((co_await pg.AllToAll(I64(w), I64(w))->Wait()).code(), ErrorCode::INVALID_PARAMS);
    EXPECT_EQ((co_await pg.Send(I64(v), r)->Wait()).code(), ErrorCode::INVALID_PARAMS);
    Tensor cuda{v.data(), DataType::kI64, 4, Location::Cuda(0)};
    EXPECT_EQ((co_await pg.AllReduce(cuda, ReduceOp::kSum)->Wait()).code(), ErrorCode::UNSUPPORTED);
    Tensor null{nullptr, DataType::kI64, 4, Location::Host()};
    EXPECT_EQ((co_await pg.AllReduce(null, ReduceOp::kSum)->Wait()).code(),
              ErrorCode::INVALID_PARAMS);
    // The group still works afterwards.
    EXPECT_TRUE((co_await pg.Barrier()->Wait()).ok());
  }));
}

auto FabricName = [](const auto& info) { return info.param; };
INSTANTIATE_TEST_SUITE_P(Fabrics, ReferenceP2P, AllFabrics(), FabricName);
INSTANTIATE_TEST_SUITE_P(Fabrics, ReferenceInPlace, AllFabrics(), FabricName);
INSTANTIATE_TEST_SUITE_P(Fabrics, ReferenceArgs, AllFabrics(), FabricName);

}  // namespace
}  // namespace tidal::coll
