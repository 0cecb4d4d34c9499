// Every fault kind of the simulator, injected by a scripted rule, observed with its exact
// error code and its exact effect on bytes (or on messages). Each test builds a small
// SimFabric; on failure the seed, digest and replay command are printed.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "tidal/sim/sim_fabric.h"

namespace tidal::sim {
namespace {

struct Buf {
  uint8_t* data;
  size_t size;
  uint64_t addr() const { return reinterpret_cast<uint64_t>(data); }
};

class FaultKinds : public ::testing::Test {
 protected:
  void Make(const std::string& script, size_t nodes = 2, TransferEngineOptions engine = {}) {
    SimFabricOptions o;
    o.world.nodes = nodes;
    o.world.seed = 11;
    auto plan = FaultPlan::Parse(script);
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    o.world.faults = *plan;
    o.world.replay_command = std::string("ctest -R 'FaultKinds.") +
                             ::testing::UnitTest::GetInstance()->current_test_info()->name() + "'";
    o.engine = engine;
    f_ = std::make_unique<SimFabric>(std::move(o));
  }
  void TearDown() override {
    if (HasFailure() && f_) std::fprintf(stderr, "%s\n", f_->world().FailureBanner().c_str());
  }
  Buf Region(size_t node, size_t size, uint8_t fill) {
    auto* p = static_cast<uint8_t*>(f_->Allocate(node, size, Location::Host()));
    std::memset(p, fill, size);
    auto k = f_->Run(f_->engine(node).RegisterMemory(p, size, Location::Host()));
    EXPECT_TRUE(k.ok()) << k.status().ToString();
    return {p, size};
  }
  SegmentHandle Open(size_t from, size_t to) {
    auto h = f_->Run(f_->engine(from).OpenSegment(Fabric::NodeName(to)));
    EXPECT_TRUE(h.ok());
    return *h;
  }
  TransferStatus One(TransferOp op, Buf local, uint64_t len, SegmentHandle seg, Buf remote) {
    TransferRequest r{op, local.addr(), len, seg, remote.addr()};
    return f_->Run(f_->engine(0).TransferSync(std::span<const TransferRequest>(&r, 1)))[0];
  }
  static bool All(const Buf& b, uint8_t v) {
    for (size_t i = 0; i < b.size; ++i) {
      if (b.data[i] != v) return false;
    }
    return true;
  }
  World& world() { return f_->world(); }
  std::unique_ptr<SimFabric> f_;
};

TEST_F(FaultKinds, ShortRead) {
  Make("short_read src=0 dst=1 nth=1 by=1000\n");
  Buf a = Region(0, 4096, 0), b = Region(1, 4096, 7);
  EXPECT_EQ(One(TransferOp::kRead, a, 4096, Open(0, 1), b),
            (TransferStatus{TransferState::FAILED, 3096, ErrorCode::TRANSFER_INCOMPLETE}));
  for (size_t i = 0; i < 4096; ++i) ASSERT_EQ(a.data[i], i < 3096 ? 7 : 0) << i;
  EXPECT_EQ(world().injected(FaultKind::kShortRead), 1u);
}

TEST_F(FaultKinds, ShortWrite) {
  Make("short_write src=0 dst=1 nth=1 by=1\n");
  Buf a = Region(0, 4096, 9), b = Region(1, 4096, 0);
  EXPECT_EQ(One(TransferOp::kWrite, a, 4096, Open(0, 1), b),
            (TransferStatus{TransferState::FAILED, 4095, ErrorCode::TRANSFER_INCOMPLETE}));
  for (size_t i = 0; i < 4096; ++i) ASSERT_EQ(b.data[i], i < 4095 ? 9 : 0) << i;
}

TEST_F(FaultKinds, UnregisteredLocalAddress) {
  Make("unregistered_local src=0 dst=1 nth=1\n");
  Buf a = Region(0, 4096, 9), b = Region(1, 4096, 0);
  EXPECT_EQ(One(TransferOp::kWrite, a, 4096, Open(0, 1), b),
            (TransferStatus{TransferState::FAILED, 0, ErrorCode::ADDRESS_NOT_REGISTERED}));
  EXPECT_TRUE(All(b, 0));
}

// Every attempt presents a stale key: the engine looks the descriptor up again once, the
// re-run is refused too, and the request fails with nothing moved.
TEST_F(FaultKinds, StaleRemoteKey) {
  Make("stale_rkey src=0 dst=1\n");
  Buf a = Region(0, 4096, 0), b = Region(1, 4096, 5);
  EXPECT_EQ(One(TransferOp::kRead, a, 4096, Open(0, 1), b),
            (TransferStatus{TransferState::FAILED, 0, ErrorCode::REMOTE_ACCESS_DENIED}));
  EXPECT_TRUE(All(a, 0));
  EXPECT_TRUE(All(b, 5));
  EXPECT_EQ(f_->engine(0).stats().segment_refreshes, 1u);
  EXPECT_EQ(f_->engine(0).stats().refresh_retries, 1u);
}

// One stale key (the peer re-registered since we looked): the refresh finds the current
// key and the re-run completes with every byte.
TEST_F(FaultKinds, OneStaleRemoteKeyIsRefreshedAndRetried) {
  Make("stale_rkey src=0 dst=1 nth=1\n");
  Buf a = Region(0, 4096, 0), b = Region(1, 4096, 5);
  EXPECT_EQ(One(TransferOp::kRead, a, 4096, Open(0, 1), b),
            (TransferStatus{TransferState::COMPLETED, 4096, ErrorCode::OK}));
  EXPECT_TRUE(All(a, 5));
  EXPECT_EQ(f_->engine(0).stats().refresh_retries, 1u);
}

TEST_F(FaultKinds, AccessOutsideTheWindow) {
  Make("outside_window src=0 dst=1\n");
  // The target's region sits inside a larger block whose edges must not change.
  auto* block = static_cast<uint8_t*>(f_->Allocate(1, 8192, Location::Host()));
  std::memset(block, 0x33, 8192);
  ASSERT_TRUE(f_->Run(f_->engine(1).RegisterMemory(block + 2048, 4096, Location::Host())).ok());
  Buf a = Region(0, 4096, 1);
  Buf b{block + 2048, 4096};
  EXPECT_EQ(One(TransferOp::kWrite, a, 4096, Open(0, 1), b),
            (TransferStatus{TransferState::FAILED, 0, ErrorCode::REMOTE_ACCESS_DENIED}));
  for (size_t i = 0; i < 8192; ++i) ASSERT_EQ(block[i], 0x33) << i;
}

TEST_F(FaultKinds, RankCrash) {
  Make("crash node=1 at=1ms\n", 3);
  Buf a = Region(0, 4096, 1), b = Region(1, 4096, 0);
  SegmentHandle h = Open(0, 1);
  // node1 runs a coroutine that would write a marker after the crash time.
  bool ran_after_crash = false;
  Spawn(f_->env(1), [](Env& env, bool& flag) -> Task<void> {
    co_await SleepFor(env, 2'000'000);
    flag = true;
  }(f_->env(1), ran_after_crash));
  world().RunUntilTime(1'500'000);
  EXPECT_FALSE(world().alive(1));
  EXPECT_EQ(One(TransferOp::kWrite, a, 4096, h, b),
            (TransferStatus{TransferState::FAILED, 0, ErrorCode::PEER_UNREACHABLE}));
  EXPECT_TRUE(All(b, 0));
  world().RunUntilTime(5'000'000);
  EXPECT_FALSE(ran_after_crash);
  EXPECT_EQ(f_->env(1).RootCount(), 0u);  // its frames were freed at the crash
  // Messages to a crashed node vanish.
  int got = 0;
  f_->messenger(1).SetReceiver([&](std::string_view, std::string) { ++got; });
  ASSERT_TRUE(f_->messenger(0).Send("node1", "hello").ok());
  world().RunUntilTime(10'000'000);
  EXPECT_EQ(got, 0);
}

TEST_F(FaultKinds, RankHang) {
  TransferEngineOptions e;
  e.probe_timeout_ns = 500'000;
  Make("hang node=1 at=1ms for=3ms\n", 2, e);
  Buf a = Region(0, 4096, 4);
  Buf b = Region(1, 4096, 0);
  SegmentHandle h = Open(0, 1);
  world().RunUntilTime(1'100'000);
  ASSERT_TRUE(world().Hung(1));
  // One-sided writes still land in a hung node's memory (its NIC works)...
  EXPECT_EQ(One(TransferOp::kWrite, a, 4096, h, b),
            (TransferStatus{TransferState::COMPLETED, 4096, ErrorCode::OK}));
  EXPECT_TRUE(All(b, 4));
  // ...but the process does not answer a probe,
  EXPECT_EQ(f_->Run(f_->engine(0).Probe(h)).code(), ErrorCode::TRANSFER_TIMEOUT);
  // and its messages wait until it resumes.
  uint64_t delivered_at = 0;
  f_->messenger(1).SetReceiver([&](std::string_view, std::string) { delivered_at = world().NowNs(); });
  ASSERT_TRUE(f_->messenger(0).Send("node1", "x").ok());
  world().RunUntilTime(10'000'000);
  EXPECT_GE(delivered_at, 4'000'000u);
  EXPECT_TRUE(f_->Run(f_->engine(0).Probe(h)).ok());
}

TEST_F(FaultKinds, LinkPartition) {
  TransferEngineOptions e;
  e.transfer_timeout_ns = 1'000'000;
  Make("partition a=0 b=1 at=0 for=5ms\n", 2, e);
  world().RunUntilTime(1);
  Buf a = Region(0, 4096, 8), b = Region(1, 4096, 0);
  SegmentHandle h = Open(0, 1);
  EXPECT_EQ(One(TransferOp::kWrite, a, 4096, h, b),
            (TransferStatus{TransferState::TIMED_OUT, 0, ErrorCode::TRANSFER_TIMEOUT}));
  EXPECT_TRUE(All(b, 0));
  int got = 0;
  f_->messenger(1).SetReceiver([&](std::string_view, std::string) { ++got; });
  ASSERT_TRUE(f_->messenger(0).Send("node1", "lost").ok());
  world().RunUntilTime(6'000'000);
  EXPECT_EQ(got, 0);
  // Healed: traffic flows again.
  EXPECT_EQ(One(TransferOp::kWrite, a, 4096, h, b),
            (TransferStatus{TransferState::COMPLETED, 4096, ErrorCode::OK}));
  EXPECT_TRUE(All(b, 8));
  ASSERT_TRUE(f_->messenger(0).Send("node1", "ok").ok());
  world().RunUntilTime(7'000'000);
  EXPECT_EQ(got, 1);
}

TEST_F(FaultKinds, CompletionDelay) {
  Make("completion_delay src=0 dst=1 nth=1 by=2ms\n");
  Buf a = Region(0, 4096, 3), b = Region(1, 4096, 0);
  SegmentHandle h = Open(0, 1);
  const uint64_t t0 = world().NowNs();
  EXPECT_EQ(One(TransferOp::kWrite, a, 4096, h, b),
            (TransferStatus{TransferState::COMPLETED, 4096, ErrorCode::OK}));
  EXPECT_GE(world().NowNs() - t0, 2'000'000u);
  EXPECT_TRUE(All(b, 3));
}

TEST_F(FaultKinds, CompletionReorder) {
  // The first request's completion is held back 50 us: the second finishes first.
  Make("completion_reorder src=0 dst=1 nth=1 by=50us\n");
  Buf a = Region(0, 8192, 6), b = Region(1, 8192, 0);
  SegmentHandle h = Open(0, 1);
  auto& engine = f_->engine(0);
  auto b1 = engine.AllocateBatch(1), b2 = engine.AllocateBatch(1);
  std::vector<TransferRequest> r1 = {{TransferOp::kWrite, a.addr(), 4096, h, b.addr()}};
  std::vector<TransferRequest> r2 = {{TransferOp::kWrite, a.addr() + 4096, 4096, h, b.addr() + 4096}};
  ASSERT_TRUE(engine.Submit(*b1, r1)[0].ok());
  ASSERT_TRUE(engine.Submit(*b2, r2)[0].ok());
  f_->Run(engine.WaitBatch(*b2));
  EXPECT_EQ(engine.GetStatus(*b1, 0)->state, TransferState::PENDING);
  EXPECT_EQ(engine.GetStatus(*b2, 0)->state, TransferState::COMPLETED);
  f_->Run(engine.WaitBatch(*b1));
  EXPECT_EQ(*engine.GetStatus(*b1, 0), (TransferStatus{TransferState::COMPLETED, 4096, ErrorCode::OK}));
  EXPECT_TRUE(All(b, 6));
  EXPECT_TRUE(engine.FreeBatch(*b1).ok() && engine.FreeBatch(*b2).ok());
}

TEST_F(FaultKinds, CompletionLossBecomesATimeout) {
  TransferEngineOptions e;
  e.transfer_timeout_ns = 1'000'000;
  Make("completion_loss src=0 dst=1 nth=1\n", 2, e);
  Buf a = Region(0, 4096, 2), b = Region(1, 4096, 0);
  EXPECT_EQ(One(TransferOp::kWrite, a, 4096, Open(0, 1), b),
            (TransferStatus{TransferState::TIMED_OUT, 0, ErrorCode::TRANSFER_TIMEOUT}));
  // The data did land; only its completion was lost. The region is free again (the
  // engine canceled the task, which completed it for the in-flight accounting).
  EXPECT_TRUE(All(b, 2));
  EXPECT_TRUE(f_->Run(f_->engine(0).UnregisterMemory(a.data)).ok());
}

TEST_F(FaultKinds, MessageDelayKeepsOrder) {
  Make("message_delay from=0 to=1 nth=1 by=1ms\n");
  std::vector<std::string> got;
  std::vector<uint64_t> at;
  f_->messenger(1).SetReceiver([&](std::string_view from, std::string p) {
    EXPECT_EQ(from, "node0");
    got.push_back(p);
    at.push_back(world().NowNs());
  });
  const uint64_t t0 = world().NowNs();
  ASSERT_TRUE(f_->messenger(0).Send("node1", "a").ok());
  ASSERT_TRUE(f_->messenger(0).Send("node1", "b").ok());
  world().RunUntilTime(t0 + 5'000'000);
  ASSERT_EQ(got, (std::vector<std::string>{"a", "b"}));
  EXPECT_GE(at[0] - t0, 1'000'000u);
}

TEST_F(FaultKinds, MessageDrop) {
  Make("message_drop from=0 to=1 nth=2\n");
  std::vector<std::string> got;
  f_->messenger(1).SetReceiver([&](std::string_view, std::string p) { got.push_back(p); });
  for (const char* m : {"1", "2", "3"}) ASSERT_TRUE(f_->messenger(0).Send("node1", m).ok());
  world().RunUntilTime(world().NowNs() + 1'000'000);
  EXPECT_EQ(got, (std::vector<std::string>{"1", "3"}));
  EXPECT_EQ(f_->messenger(0).Send("nobody", "x").code(), ErrorCode::SEGMENT_NOT_FOUND);
}

TEST_F(FaultKinds, MessageDuplicate) {
  Make("message_duplicate from=0 to=1 nth=1\n");
  std::vector<std::string> got;
  f_->messenger(1).SetReceiver([&](std::string_view, std::string p) { got.push_back(p); });
  ASSERT_TRUE(f_->messenger(0).Send("node1", "once").ok());
  ASSERT_TRUE(f_->messenger(0).Send("node1", "next").ok());
  world().RunUntilTime(world().NowNs() + 1'000'000);
  EXPECT_EQ(got, (std::vector<std::string>{"once", "once", "next"}));
}

TEST_F(FaultKinds, RegistrationFailure) {
  Make("registration_failure node=0 nth=1\n");
  auto* p = static_cast<uint8_t*>(f_->Allocate(0, 4096, Location::Host()));
  auto k = f_->Run(f_->engine(0).RegisterMemory(p, 4096, Location::Host()));
  EXPECT_EQ(k.code(), ErrorCode::REGISTRATION_FAILED);
  EXPECT_EQ(f_->engine(0).registry().size(), 0u);
  auto d = DecodeSegment(*f_->Run(f_->metadata().Get(SegmentKey("node0"))));
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->regions.empty());
  // Nothing half-registered: the same range registers cleanly the second time.
  EXPECT_TRUE(f_->Run(f_->engine(0).RegisterMemory(p, 4096, Location::Host())).ok());
}

TEST(FaultPlanScript, ParsesEveryKindAndRoundTrips) {
  const std::string script =
      "short_read src=2 dst=0 nth=3 by=100\n"
      "crash node=3 at=5ms   # a comment\n"
      "hang node=1 at=1ms for=2ms\n"
      "partition a=0,1 b=2 at=1ms for=3ms\n"
      "message_drop from=0 to=1 nth=1\n";
  auto plan = FaultPlan::Parse(script);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  ASSERT_EQ(plan->rules.size(), 5u);
  EXPECT_EQ(plan->rules[0].kind, FaultKind::kShortRead);
  EXPECT_EQ(plan->rules[0].by, 100u);
  EXPECT_EQ(plan->rules[1].at_ns, 5'000'000u);
  EXPECT_EQ(plan->rules[3].side_a, (std::vector<int>{0, 1}));
  auto again = FaultPlan::Parse(plan->ToScript());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->ToScript(), plan->ToScript());
  for (size_t k = 0; k < kFaultKinds; ++k) {
    auto kind = ParseFaultKind(FaultKindName(static_cast<FaultKind>(k)));
    ASSERT_TRUE(kind.ok());
    EXPECT_EQ(static_cast<size_t>(*kind), k);
  }
}

TEST(FaultPlanScript, ErrorsNameTheLineAndField) {
  auto e = FaultPlan::Parse("short_read src=1\nbogus x=1\n");
  EXPECT_EQ(e.code(), ErrorCode::CORRUPT_INPUT);
  EXPECT_NE(e.status().message().find("line 2"), std::string::npos);
  e = FaultPlan::Parse("short_read by=lots\n");
  EXPECT_NE(e.status().message().find("'by'"), std::string::npos);
  EXPECT_EQ(FaultPlan::Parse("crash at=1ms\n").code(), ErrorCode::CORRUPT_INPUT);
  EXPECT_EQ(FaultPlan::Parse("partition a=0 at=1ms\n").code(), ErrorCode::CORRUPT_INPUT);
  EXPECT_EQ(SwarmMix("weird").code(), ErrorCode::INVALID_PARAMS);
  EXPECT_TRUE(SwarmMix("short_read,crash").ok());
}

}  // namespace
}  // namespace tidal::sim
