// One engine, many users: store clients and process groups share each node's
// TransferEngine, started in any order. Regression tests for four field reports:
//   A  GroupStartedAfterStoreTrafficWorks: a group started on an engine that had already
//      opened its peers' segments (any store put/get does) timed out on every operation,
//      because the cached descriptors lacked the group's later registrations.
//   B  AnotherUserReopeningAHandleFailsNoLiveRank: another user closing and reopening a
//      shared segment handle made the group declare a live rank dead.
//   C  FailedRecvLeavesItsBufferUntouched (and ...HalfSentMessage...): a failed Recv had
//      already overwritten the caller's buffer.
//   D  PointToPointTimeoutBreaksTheGroup: after a p2p timeout the group carried on,
//      although it promised to fail later operations at once with COLLECTIVE_ABORTED.
// Plus c10d's matching by (peer, tag), several groups per engine, and a store + groups
// campaign that starts everything in random orders (shared_engine_campaign_test).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "tidal/cluster/cluster.h"

namespace tidal::cluster {
namespace {

using coll::DataType;
using coll::ProcessGroup;
using coll::ProcessGroupOptions;
using coll::ReduceOp;
using coll::Tensor;

constexpr uint64_t kMs = 1'000'000;

ProcessGroupOptions Group(std::string name) {
  ProcessGroupOptions o;
  o.group_name = std::move(name);
  o.slot_bytes = 1024;           // small slots: multi-chunk messages are cheap
  o.timeout_ns = 200 * kMs;      // virtual time
  return o;
}

Tensor F32(std::vector<float>& v) { return Tensor{v.data(), DataType::kF32, v.size(), {}}; }
Tensor U8(std::vector<uint8_t>& v) { return Tensor{v.data(), DataType::kU8, v.size(), {}}; }

std::unique_ptr<Cluster> MakeCluster(size_t nodes, uint64_t seed = 1) {
  ClusterOptions o;
  o.nodes = nodes;
  o.sim.seed = seed;
  auto c = Cluster::Make(o);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? std::move(*c) : nullptr;
}

// AllReduce(SUM) of v_r[i] = r + 1 + i on every rank of `name`; returns each rank's status
// and checks the values exactly where it succeeded.
std::vector<Status> AllReduceEverywhere(Cluster& c, const std::string& name, size_t count) {
  const std::vector<size_t> nodes = c.group_nodes(name);
  const int size = static_cast<int>(nodes.size());
  std::vector<Status> statuses(nodes.size(), Status(ErrorCode::INTERNAL_ERROR, "did not run"));
  std::vector<std::vector<float>> bufs(nodes.size());
  for (int r = 0; r < size; ++r) {
    bufs[r].resize(count);
    for (size_t i = 0; i < count; ++i) bufs[r][i] = static_cast<float>(r + 1 + i % 97);
  }
  EXPECT_TRUE(c.RunEach(nodes, [&](size_t node) -> Task<void> {
    const int r = static_cast<int>(std::find(nodes.begin(), nodes.end(), node) - nodes.begin());
    auto w = c.group(name, r)->AllReduce(F32(bufs[r]), ReduceOp::kSum);
    statuses[r] = co_await w->Wait();
  })) << c.Banner();
  for (int r = 0; r < size; ++r) {
    if (!statuses[r].ok()) continue;
    size_t wrong = 0;
    for (size_t i = 0; i < count; ++i) {
      const float want = static_cast<float>(size * (size + 1) / 2 + size * (i % 97));
      if (bufs[r][i] != want) ++wrong;
    }
    EXPECT_EQ(wrong, 0u) << "group " << name << " rank " << r;
  }
  return statuses;
}

Status Put(Cluster& c, size_t node, const std::string& key, const std::string& value,
           const std::string& on_segment) {
  store::ReplicateConfig config;
  config.preferred_segments = {on_segment};
  return c.Run(node, c.store_client(node)->Put(key, value, config));
}

// --- A --------------------------------------------------------------------------------

TEST(SharedEngine, GroupStartedAfterStoreTrafficWorks) {
  auto c = MakeCluster(2);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->StartMaster().ok());
  ASSERT_TRUE(c->AddStoreClient(0, 1 << 20).ok());
  ASSERT_TRUE(c->AddStoreClient(1, 1 << 20).ok());
  // Each engine opens the other's segment (its descriptor is cached from now on).
  ASSERT_TRUE(Put(*c, 0, "a", std::string(5000, 'a'), Cluster::NodeName(1)).ok());
  ASSERT_TRUE(Put(*c, 1, "b", std::string(5000, 'b'), Cluster::NodeName(0)).ok());
  // The group registers its slots after that, then writes into the peer's slots.
  ASSERT_TRUE(c->AddGroup({0, 1}, Group("late")).ok());
  const std::vector<Status> st = AllReduceEverywhere(*c, "late", 3000);
  EXPECT_EQ(st[0].code(), ErrorCode::OK) << st[0].ToString();
  EXPECT_EQ(st[1].code(), ErrorCode::OK) << st[1].ToString();
  EXPECT_GE(c->engine(0).stats().segment_refreshes + c->engine(1).stats().segment_refreshes,
            1u);
  // The store keeps working beside the group.
  EXPECT_EQ(*c->Run(1, c->store_client(1)->Get("a")), std::string(5000, 'a'));
  EXPECT_EQ(*c->Run(0, c->store_client(0)->Get("b")), std::string(5000, 'b'));
}

// --- B --------------------------------------------------------------------------------

TEST(SharedEngine, AnotherUserReopeningAHandleFailsNoLiveRank) {
  auto c = MakeCluster(2);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->AddGroup({0, 1}, Group("g")).ok());
  ASSERT_EQ(AllReduceEverywhere(*c, "g", 100)[0].code(), ErrorCode::OK);
  // Another user of node 0's engine closes and reopens the shared handle of node 1 (the
  // store client used to do exactly this on REMOTE_ACCESS_DENIED).
  TransferEngine& e = c->engine(0);
  auto h = c->Run(0, e.OpenSegment(Cluster::NodeName(1)));
  ASSERT_TRUE(h.ok());
  ASSERT_TRUE(e.CloseSegment(*h).ok());
  ASSERT_TRUE(c->Run(0, e.OpenSegment(Cluster::NodeName(1))).ok());
  ASSERT_TRUE(e.CloseSegment(*h).ok());
  const std::vector<Status> st = AllReduceEverywhere(*c, "g", 5000);
  EXPECT_EQ(st[0].code(), ErrorCode::OK) << st[0].ToString();
  EXPECT_EQ(st[1].code(), ErrorCode::OK) << st[1].ToString();
  EXPECT_TRUE(c->group("g", 0)->dead_ranks().empty());
  EXPECT_TRUE(c->group("g", 1)->dead_ranks().empty());
}

// --- C --------------------------------------------------------------------------------

TEST(SharedEngine, FailedRecvLeavesItsBufferUntouched) {
  auto c = MakeCluster(2);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->AddGroup({0, 1}, Group("g")).ok());
  std::vector<uint8_t> sent(3000), got(2000, 0xAB);
  std::iota(sent.begin(), sent.end(), uint8_t{1});
  Status send_st, recv_st;
  ASSERT_TRUE(c->RunEach({0, 1}, [&](size_t node) -> Task<void> {
    if (node == 0) {
      send_st = co_await c->group("g", 0)->Send(U8(sent), 1, 7)->Wait();
    } else {
      recv_st = co_await c->group("g", 1)->Recv(U8(got), 0, 7)->Wait();  // 2000 != 3000
    }
  }));
  EXPECT_EQ(send_st.code(), ErrorCode::OK);
  EXPECT_EQ(recv_st.code(), ErrorCode::INVALID_PARAMS) << recv_st.ToString();
  EXPECT_TRUE(std::all_of(got.begin(), got.end(), [](uint8_t b) { return b == 0xAB; }));
  // The message was consumed; the pair goes on.
  std::vector<uint8_t> again(3000, 0);
  ASSERT_TRUE(c->RunEach({0, 1}, [&](size_t node) -> Task<void> {
    if (node == 0) {
      send_st = co_await c->group("g", 0)->Send(U8(sent), 1, 7)->Wait();
    } else {
      recv_st = co_await c->group("g", 1)->Recv(U8(again), 0, 7)->Wait();
    }
  }));
  EXPECT_EQ(recv_st.code(), ErrorCode::OK) << recv_st.ToString();
  EXPECT_EQ(again, sent);
}

TEST(SharedEngine, FailedRecvOfAHalfSentMessageLeavesItsBufferUntouched) {
  auto c = MakeCluster(2);
  ASSERT_NE(c, nullptr);
  ProcessGroupOptions o = Group("g");
  ASSERT_TRUE(c->AddGroup({0, 1}, o).ok());
  std::vector<uint8_t> sent(8 * 1024, 0x5A), got(8 * 1024, 0xAB);  // 8 chunks
  Status recv_st;
  std::vector<int> failed;
  uint64_t chunks_at_crash = 0;
  ASSERT_TRUE(c->RunEach({0, 1}, [&](size_t node) -> Task<void> {
    if (node == 0) {
      ProcessGroup& g = *c->group("g", 0);
      auto w = g.Send(U8(sent), 1, 3);
      while (g.stats().chunks_sent < 3) co_await SleepFor(c->env(0), 200);
      chunks_at_crash = g.stats().chunks_sent;  // some chunks are out, then the sender dies
      (void)c->CrashSoon(0);
      co_await w->Wait();
    } else {
      auto w = c->group("g", 1)->Recv(U8(got), 0, 3);
      recv_st = co_await w->Wait();
      failed = w->failed_ranks();
    }
  }));
  EXPECT_EQ(recv_st.code(), ErrorCode::COLLECTIVE_ABORTED) << recv_st.ToString();
  EXPECT_EQ(failed, std::vector<int>{0});
  EXPECT_GE(chunks_at_crash, 3u);
  EXPECT_LT(chunks_at_crash, 8u);
  EXPECT_TRUE(std::all_of(got.begin(), got.end(), [](uint8_t b) { return b == 0xAB; }));
}

// Receives match by (peer, tag) in send order within each pair and tag, as in c10d.
TEST(SharedEngine, ReceivesMatchByPeerAndTagInSendOrder) {
  auto c = MakeCluster(2);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->AddGroup({0, 1}, Group("g")).ok());
  std::vector<uint8_t> a(1500, 'a'), b(700, 'b'), a2(1500, 'A'), z(0);
  std::vector<uint8_t> got_b(700), got_a(1500), got_a2(1500), got_z(0);
  std::vector<Status> st(5);
  ASSERT_TRUE(c->RunEach({0, 1}, [&](size_t node) -> Task<void> {
    if (node == 0) {
      ProcessGroup& g = *c->group("g", 0);
      auto w1 = g.Send(U8(a), 1, 1);
      auto w2 = g.Send(U8(z), 1, 9);
      auto w3 = g.Send(U8(b), 1, 2);
      auto w4 = g.Send(U8(a2), 1, 1);
      st[0] = co_await w1->Wait();
      (void)co_await w2->Wait();
      (void)co_await w3->Wait();
      (void)co_await w4->Wait();
    } else {
      ProcessGroup& g = *c->group("g", 1);
      // Tag 2 first although it was sent third; then tag 1 twice, in send order.
      st[1] = co_await g.Recv(U8(got_b), 0, 2)->Wait();
      st[2] = co_await g.Recv(U8(got_a), 0, 1)->Wait();
      st[3] = co_await g.Recv(U8(got_a2), 0, 1)->Wait();
      st[4] = co_await g.Recv(U8(got_z), 0, 9)->Wait();
    }
  }));
  for (const Status& s : st) EXPECT_EQ(s.code(), ErrorCode::OK) << s.ToString();
  EXPECT_EQ(got_b, b);
  EXPECT_EQ(got_a, a);
  EXPECT_EQ(got_a2, a2);
}

// --- D --------------------------------------------------------------------------------

TEST(SharedEngine, PointToPointTimeoutBreaksTheGroup) {
  auto c = MakeCluster(2);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->AddGroup({0, 1}, Group("g")).ok());
  std::vector<uint8_t> buf(64, 0xAB);
  std::vector<float> t(16, 1.0f);
  Status recv_st, later_coll, later_p2p;
  uint64_t timed_out_at = 0, aborted_at = 0;
  ASSERT_TRUE(c->RunEach({1}, [&](size_t) -> Task<void> {
    ProcessGroup& g = *c->group("g", 1);
    const uint64_t start = c->NowNs();
    recv_st = co_await g.Recv(U8(buf), 0, 4)->Wait();  // rank 0 never sends
    timed_out_at = c->NowNs() - start;
    const uint64_t before = c->NowNs();
    later_coll = co_await g.AllReduce(F32(t), ReduceOp::kSum)->Wait();
    later_p2p = co_await g.Send(U8(buf), 0, 4)->Wait();
    aborted_at = c->NowNs() - before;
  }));
  EXPECT_EQ(recv_st.code(), ErrorCode::OPERATION_TIMEOUT) << recv_st.ToString();
  EXPECT_GE(timed_out_at, 200 * kMs);
  EXPECT_EQ(later_coll.code(), ErrorCode::COLLECTIVE_ABORTED) << later_coll.ToString();
  EXPECT_EQ(later_p2p.code(), ErrorCode::COLLECTIVE_ABORTED) << later_p2p.ToString();
  EXPECT_LT(aborted_at, kMs);  // at once: no timeout, no probe (virtual time)
  EXPECT_TRUE(std::all_of(buf.begin(), buf.end(), [](uint8_t x) { return x == 0xAB; }));
  EXPECT_EQ(t, std::vector<float>(16, 1.0f));
}

// --- several groups and a store on every engine ----------------------------------------

TEST(SharedEngine, TwoGroupsAndAStoreShareEveryEngine) {
  auto c = MakeCluster(4, 7);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->StartMaster().ok());
  ASSERT_TRUE(c->AddGroup({1, 3}, Group("pair")).ok());  // a subgroup first
  for (size_t n = 0; n < 4; ++n) ASSERT_TRUE(c->AddStoreClient(n, 1 << 20).ok());
  ASSERT_TRUE(c->AddGroup({0, 1, 2, 3}, Group("world")).ok());
  ASSERT_TRUE(Put(*c, 0, "k0", std::string(9000, 'x'), Cluster::NodeName(3)).ok());
  for (int round = 0; round < 3; ++round) {
    for (const std::string& g : {std::string("world"), std::string("pair")}) {
      for (const Status& s : AllReduceEverywhere(*c, g, 2000 + 500 * round)) {
        EXPECT_EQ(s.code(), ErrorCode::OK) << g << ": " << s.ToString();
      }
    }
    const std::string key = "r" + std::to_string(round);
    ASSERT_TRUE(Put(*c, 3, key, std::string(4000, 'a' + round), Cluster::NodeName(1)).ok());
    EXPECT_EQ(*c->Run(2, c->store_client(2)->Get(key)), std::string(4000, 'a' + round));
  }
  EXPECT_EQ(*c->Run(2, c->store_client(2)->Get("k0")), std::string(9000, 'x'));
}

}  // namespace
}  // namespace tidal::cluster
