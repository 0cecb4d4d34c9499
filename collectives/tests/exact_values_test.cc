// Exact-value checks in the style of nccl-tests: every collective x dtype x reduction x
// world size 1..8 x every root x sizes {0, 1 element, a count that is not a multiple of
// the chunk, a message larger than a slot}, on the simulator with 256-byte slots. Each
// case fills inputs with small integers (exact in every dtype), runs the op on every rank
// and counts elements that differ bytewise from the reference (#wrong must be 0).
//
// One cluster per (world size, op) runs all of that op's cases back to back, so the matrix
// stays fast; a failure names the case and prints the seed. Every case runs on each
// fabric of the registry (fabrics.h): one that cannot run here skips with the reason.
#include <gtest/gtest.h>

#include <sstream>

#include "fabrics.h"

namespace tidal::coll {
namespace {

using namespace tidal::cluster;  // NOLINT: the harness's values and checks

constexpr DataType kTypes[] = {DataType::kF32, DataType::kF64, DataType::kF16, DataType::kBF16,
                               DataType::kI8,  DataType::kU8,  DataType::kI32, DataType::kI64};
constexpr ReduceOp kOps[] = {ReduceOp::kSum, ReduceOp::kProd, ReduceOp::kMin, ReduceOp::kMax,
                             ReduceOp::kAvg};

bool IsReduction(OpType op) {
  return op == OpType::kAllReduce || op == OpType::kReduce || op == OpType::kReduceScatter;
}
bool IsRooted(OpType op) {
  return op == OpType::kBroadcast || op == OpType::kReduce || op == OpType::kGather ||
         op == OpType::kScatter;
}

// Per-block element counts: 0, 1, not a multiple of the 256-byte chunk, > 2 slots.
std::vector<uint64_t> Sizes(DataType dt) {
  uint64_t es = DataTypeSize(dt);
  return {0, 1, 37, 3 * 256 / es + 5};
}

struct Case {
  DataType dt;
  ReduceOp rop;
  int root;
  uint64_t c;
  std::string Name(OpType op) const {
    std::ostringstream s;
    s << OpTypeName(op) << " " << DataTypeName(dt) << " " << ReduceOpName(rop) << " root=" << root
      << " count=" << c;
    return s.str();
  }
};

std::vector<Case> Cases(OpType op, int n) {
  std::vector<Case> cases;
  for (DataType dt : kTypes) {
    for (ReduceOp rop : kOps) {
      if (!IsReduction(op) && rop != ReduceOp::kSum) continue;
      for (int root = 0; root < (IsRooted(op) ? n : 1); ++root) {
        for (uint64_t c : Sizes(dt)) cases.push_back({dt, rop, root, c});
      }
    }
  }
  return cases;
}

void RunMatrix(const std::string& backend, OpType op, int n, ProcessGroupOptions pg,
               std::vector<Case> cases) {
  GroupClusterOptions co;
  co.backend = backend;
  co.ranks = n;
  co.seed = 1000 + n * 16 + static_cast<int>(op);
  co.pg = pg;
  std::string skip;
  std::unique_ptr<GroupCluster> made = MakeOrSkip(co, &skip, /*start=*/false);
  if (!made) GTEST_SKIP() << skip;
  GroupCluster& cluster = *made;
  std::string err;
  ASSERT_TRUE(cluster.StartAll(&err)) << err << cluster.Banner();
  std::vector<std::string> failures;
  uint64_t checked = 0;
  bool ok = cluster.RunRanks([&](int r) -> Task<void> {
    for (const Case& k : cases) {
      CaseResult res = co_await RunCase(cluster.pg(r), op, k.c, k.root, k.rop, k.dt);
      ++checked;
      if (!res.status.ok() || res.wrong != 0) {
        std::ostringstream s;
        s << "rank " << r << " " << k.Name(op) << ": " << res.status.ToString()
          << " #wrong=" << res.wrong;
        if (failures.size() < 20) failures.push_back(s.str());
      }
    }
  });
  ASSERT_TRUE(ok) << "hung\n" << cluster.Banner();
  EXPECT_EQ(checked, cases.size() * n);
  for (const auto& f : failures) ADD_FAILURE() << f;
  if (!failures.empty()) ADD_FAILURE() << cluster.Banner();
}

class ExactValues : public ::testing::TestWithParam<std::tuple<std::string, int, OpType>> {};

TEST_P(ExactValues, AllTypesReductionsRootsSizes) {
  auto [backend, n, op] = GetParam();
  RunMatrix(backend, op, n, TestOptions(), Cases(op, n));
}

INSTANTIATE_TEST_SUITE_P(
    WorldSizes1To8, ExactValues,
    ::testing::Combine(AllFabrics(), ::testing::Range(1, 9),
                       ::testing::Values(OpType::kAllReduce, OpType::kAllGather,
                                         OpType::kReduceScatter, OpType::kBroadcast,
                                         OpType::kReduce, OpType::kGather, OpType::kScatter,
                                         OpType::kAllToAll, OpType::kBarrier)),
    [](const auto& info) {
      return std::string(OpTypeName(std::get<2>(info.param))) + "_w" +
             std::to_string(std::get<1>(info.param)) + "_" + std::get<0>(info.param);
    });

// The size-based choice above sends small messages direct and large ones around the
// ring; these force each algorithm onto the other sizes too.
class ForcedAlgorithm
    : public ::testing::TestWithParam<std::tuple<std::string, Algorithm, OpType>> {};

TEST_P(ForcedAlgorithm, AllSizesFiveRanks) {
  auto [backend, alg, op] = GetParam();
  ProcessGroupOptions pg = TestOptions();
  pg.algorithm = alg;
  std::vector<Case> cases;
  for (DataType dt : {DataType::kF32, DataType::kBF16, DataType::kI8, DataType::kI64}) {
    for (ReduceOp rop : kOps) {
      if (!IsReduction(op) && rop != ReduceOp::kSum) continue;
      for (uint64_t c : {uint64_t{0}, uint64_t{1}, uint64_t{3}, uint64_t{37}, uint64_t{700}}) {
        cases.push_back({dt, rop, IsRooted(op) ? 3 : 0, c});
      }
    }
  }
  RunMatrix(backend, op, 5, pg, cases);
}

INSTANTIATE_TEST_SUITE_P(DirectRingAndSplit, ForcedAlgorithm,
                         ::testing::Combine(AllFabrics(),
                                            ::testing::Values(Algorithm::kDirect, Algorithm::kRing,
                                                              Algorithm::kSplit),
                                            ::testing::Values(OpType::kAllReduce,
                                                              OpType::kAllGather,
                                                              OpType::kReduceScatter,
                                                              OpType::kBroadcast, OpType::kReduce)),
                         [](const auto& info) {
                           return std::string(AlgorithmName(std::get<1>(info.param))) + "_" +
                                  std::string(OpTypeName(std::get<2>(info.param))) + "_" +
                                  std::get<0>(info.param);
                         });

}  // namespace
}  // namespace tidal::coll
