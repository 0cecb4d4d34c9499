// The cluster wiring on every fabric of the registry: a store master and a store client on
// the same node (requests and answers on their own channels), two process groups sharing
// nodes (one channel each) next to the store, things started in any order, and the
// documented errors. Simulator-only powers are refused elsewhere with UNSUPPORTED. A
// fabric that is not built or has no hardware here skips with the reason.
#include "tidal/cluster/cluster.h"

#include <gtest/gtest.h>

#include <cstring>

namespace tidal::cluster {
namespace {

class ClusterTest : public ::testing::TestWithParam<std::string> {
 protected:
  bool Build(size_t nodes) {
    ClusterOptions o;
    o.backend = GetParam();
    o.nodes = nodes;
    auto c = Cluster::Make(o);
    if (!c.ok()) {
      EXPECT_EQ(c.code(), ErrorCode::UNSUPPORTED) << c.status().ToString();
      skip_ = c.status().ToString();
      return false;
    }
    c_ = std::move(*c);
    return true;
  }
  void TearDown() override {
    if (HasFailure() && c_) ADD_FAILURE() << c_->Banner();
  }
  std::unique_ptr<Cluster> c_;
  std::string skip_;
};

#define BUILD_OR_SKIP(n)                         \
  do {                                           \
    if (!Build(n)) GTEST_SKIP() << skip_;        \
  } while (0)

coll::ProcessGroupOptions Group(const std::string& name) {
  coll::ProcessGroupOptions o;
  o.group_name = name;
  o.slot_bytes = 1024;
  o.timeout_ns = 2'000'000'000ULL;
  return o;
}

// Sum over the group of (rank + 1), on every rank of `name` at once.
bool SumRanks(Cluster& c, const std::string& name, std::vector<int64_t>* out) {
  std::vector<size_t> nodes = c.group_nodes(name);
  out->assign(c.size(), -1);
  return c.RunEach(nodes, [&c, &name, &nodes, out](size_t node) -> Task<void> {
    int rank = static_cast<int>(std::find(nodes.begin(), nodes.end(), node) - nodes.begin());
    std::vector<int64_t> v = {rank + 1};
    coll::Tensor t{v.data(), coll::DataType::kI64, 1, Location::Host()};
    Status s = co_await c.group(name, rank)->AllReduce(t, coll::ReduceOp::kSum)->Wait();
    EXPECT_TRUE(s.ok()) << name << " rank " << rank << ": " << s.ToString();
    (*out)[node] = v[0];
  });
}

TEST_P(ClusterTest, MasterAndClientShareANodeAndGroupsShareNodes) {
  BUILD_OR_SKIP(4);
  ASSERT_TRUE(c_->StartMaster().ok());
  EXPECT_EQ(c_->StartMaster().code(), ErrorCode::INVALID_PARAMS);  // one master
  // Groups first on nodes 1-3, then the store clients, then a second group on 0-2.
  ASSERT_TRUE(c_->AddGroup({1, 2, 3}, Group("a")).ok());
  for (size_t n = 0; n < 4; ++n) {
    Status s = c_->AddStoreClient(n, 1 << 20);
    ASSERT_TRUE(s.ok()) << "node " << n << ": " << s.ToString();
  }
  ASSERT_TRUE(c_->AddGroup({2, 0, 1}, Group("b")).ok());  // rank 0 on node 2
  EXPECT_EQ(c_->group_channel("a"), kGroupChannelFirst);
  EXPECT_EQ(c_->group_channel("b"), kGroupChannelFirst + 1);
  EXPECT_EQ(c_->group_nodes("b"), (std::vector<size_t>{2, 0, 1}));
  EXPECT_NE(c_->segment(0), nullptr);

  // The client on the master's node stores and reads like any other.
  ASSERT_TRUE(c_->Run(0, c_->store_client(0)->Put("k0", "from node0")).ok());
  ASSERT_TRUE(c_->Run(3, c_->store_client(3)->Put("k3", "from node3")).ok());
  EXPECT_EQ(c_->Run(3, c_->store_client(3)->Get("k0")).value(), "from node0");
  EXPECT_EQ(c_->Run(0, c_->store_client(0)->Get("k3")).value(), "from node3");

  std::vector<int64_t> a, b;
  ASSERT_TRUE(SumRanks(*c_, "a", &a));
  ASSERT_TRUE(SumRanks(*c_, "b", &b));
  EXPECT_EQ(a, (std::vector<int64_t>{-1, 6, 6, 6}));
  EXPECT_EQ(b, (std::vector<int64_t>{6, 6, 6, -1}));
}

TEST_P(ClusterTest, ClientsStartedBeforeTheMasterRegisterOnceItRuns) {
  BUILD_OR_SKIP(3);
  std::vector<std::shared_ptr<std::optional<Status>>> started;
  for (size_t n : {1, 2}) {
    ASSERT_TRUE(c_->NewStoreClient(n).ok());
    started.push_back(c_->Start(n, c_->StartStoreClient(n, 1 << 20)));
  }
  c_->Advance(1'000'000);  // the clients' first registrations go unanswered
  EXPECT_FALSE(started[0]->has_value());
  ASSERT_TRUE(c_->StartMaster().ok());
  ASSERT_TRUE(c_->RunUntil([&] { return started[0]->has_value() && started[1]->has_value(); }));
  EXPECT_TRUE(started[0]->value().ok()) << started[0]->value().ToString();
  EXPECT_TRUE(started[1]->value().ok()) << started[1]->value().ToString();
  ASSERT_TRUE(c_->Run(1, c_->store_client(1)->Put("k", "v")).ok());
  EXPECT_EQ(c_->Run(2, c_->store_client(2)->Get("k")).value(), "v");
}

TEST_P(ClusterTest, UserChannelsCarryTheirOwnMessages) {
  BUILD_OR_SKIP(2);
  std::string got_from, got;
  c_->channel(1, kUserChannelFirst).SetReceiver([&](std::string_view from, std::string p) {
    got_from = std::string(from);
    got = std::move(p);
  });
  ASSERT_TRUE(c_->AddGroup({0, 1}, Group("g")).ok());  // the group's channel is separate
  ASSERT_TRUE(c_->channel(0, kUserChannelFirst).Send(Cluster::NodeName(1), "hello").ok());
  ASSERT_TRUE(c_->RunUntil([&] { return !got.empty(); }));
  EXPECT_EQ(got, "hello");
  EXPECT_EQ(got_from, Cluster::NodeName(0));
  std::vector<int64_t> sums;
  ASSERT_TRUE(SumRanks(*c_, "g", &sums));
  EXPECT_EQ(sums, (std::vector<int64_t>{3, 3}));
}

TEST_P(ClusterTest, BadArgumentsAreInvalidParams) {
  BUILD_OR_SKIP(2);
  EXPECT_EQ(c_->NewStoreClient(2).code(), ErrorCode::INVALID_PARAMS);
  ASSERT_TRUE(c_->NewStoreClient(1).ok());
  EXPECT_EQ(c_->NewStoreClient(1).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(c_->Run(0, c_->StartStoreClient(0, 0)).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(c_->NewGroup({}, Group("x")).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(c_->NewGroup({0, 2}, Group("x")).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(c_->NewGroup({1, 1}, Group("x")).code(), ErrorCode::INVALID_PARAMS);
  ASSERT_TRUE(c_->NewGroup({0, 1}, Group("x")).ok());
  EXPECT_EQ(c_->NewGroup({0, 1}, Group("x")).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(c_->group("x", 2), nullptr);
  EXPECT_EQ(c_->group("y", 0), nullptr);
  EXPECT_EQ(c_->Crash(5).code(), ErrorCode::INVALID_PARAMS);
  ClusterOptions o;
  o.backend = GetParam();
  o.nodes = 2;
  o.master_node = 2;
  EXPECT_EQ(Cluster::Make(o).code(), ErrorCode::INVALID_PARAMS);
  o.master_node = 0;
  o.nodes = 0;
  EXPECT_EQ(Cluster::Make(o).code(), ErrorCode::INVALID_PARAMS);
}

TEST_P(ClusterTest, SimulatorPowersOnlyOnTheSimulator) {
  BUILD_OR_SKIP(2);
  ClusterOptions o;
  o.backend = GetParam();
  o.nodes = 2;
  o.sim.faults = "short_read src=1 by=10\n";
  auto faulty = Cluster::Make(o);
  if (c_->simulated()) {
    EXPECT_TRUE(faulty.ok()) << faulty.status().ToString();
    EXPECT_TRUE(c_->CrashSoon(1).ok());
    c_->Advance(1);
    EXPECT_FALSE(c_->alive(1));
    o.sim.faults = "no_such_fault\n";
    EXPECT_EQ(Cluster::Make(o).code(), ErrorCode::INVALID_PARAMS);
  } else {
    EXPECT_EQ(faulty.code(), ErrorCode::UNSUPPORTED);
    EXPECT_EQ(c_->CrashSoon(1).code(), ErrorCode::UNSUPPORTED);
  }
}

TEST_P(ClusterTest, CrashStopsANodeWhereTheFabricCan) {
  BUILD_OR_SKIP(3);
  Status s = c_->Crash(2);
  if (s.code() == ErrorCode::UNSUPPORTED) GTEST_SKIP() << s.ToString();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(c_->alive(2));
  EXPECT_TRUE(c_->alive(0));
  EXPECT_TRUE(c_->alive(1));
  // RunEach skips a crashed node and ends when the live ones did.
  std::vector<size_t> ran;
  ASSERT_TRUE(c_->RunEach({0, 1, 2}, [&ran](size_t n) -> Task<void> {
    ran.push_back(n);
    co_return;
  }));
  std::sort(ran.begin(), ran.end());
  EXPECT_EQ(ran, (std::vector<size_t>{0, 1}));
}

INSTANTIATE_TEST_SUITE_P(Fabrics, ClusterTest, ::testing::ValuesIn(BackendNames()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tidal::cluster
