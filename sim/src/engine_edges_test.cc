// Edges of the TransferEngine facade that the contract suite does not walk, run on the
// simulator: stopping twice, describing and notifying through a closed or stale handle,
// batch ids that were never allocated, and every TransferState name. Each asserts the
// exact error code the public header promises.
#include <gtest/gtest.h>

#include <algorithm>

#include "tidal/sim/sim_fabric.h"

namespace tidal::sim {
namespace {

class EngineEdges : public ::testing::Test {
 protected:
  EngineEdges() {
    SimFabricOptions o;
    o.world.nodes = 2;
    o.world.seed = 21;
    f_ = std::make_unique<SimFabric>(std::move(o));
  }
  TransferEngine& engine(size_t i) { return f_->engine(i); }
  std::unique_ptr<SimFabric> f_;
};

// The transport is bound to its node by Start: nothing may reach it before.
TEST_F(EngineEdges, RegisterAndOpenBeforeStartAreInvalidParams) {
  InMemoryMetadataStore metadata;
  TransferEngine fresh(f_->env(0), std::make_unique<SimTransport>(f_->world(), 0), metadata,
                       "unstarted");
  uint8_t buf[64] = {};
  auto reg = f_->Run(fresh.RegisterMemory(buf, sizeof(buf), Location::Host()));
  EXPECT_EQ(reg.code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(reg.status().message(),
            "RegisterMemory before Start: the engine's transport is not installed yet");
  EXPECT_EQ(f_->Run(fresh.OpenSegment(Fabric::NodeName(1))).code(), ErrorCode::INVALID_PARAMS);
}

TEST_F(EngineEdges, StopTwiceIsInvalidParams) {
  EXPECT_TRUE(f_->Run(engine(1).Stop()).ok());
  Status again = f_->Run(engine(1).Stop());
  EXPECT_EQ(again.code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(again.message(), "engine not started");
}

TEST_F(EngineEdges, ClosedHandlesAreStaleEverywhere) {
  auto h = f_->Run(engine(0).OpenSegment(Fabric::NodeName(1)));
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  auto desc = engine(0).DescribeSegment(*h);
  ASSERT_TRUE(desc.ok());
  EXPECT_EQ(desc->name, Fabric::NodeName(1));
  EXPECT_EQ(desc->transport, "sim");
  ASSERT_TRUE(engine(0).CloseSegment(*h).ok());
  EXPECT_EQ(engine(0).DescribeSegment(*h).code(), ErrorCode::SEGMENT_NOT_FOUND);
  EXPECT_EQ(engine(0).Notify(*h, "hello").code(), ErrorCode::SEGMENT_NOT_FOUND);
  EXPECT_EQ(engine(0).DescribeSegment(SegmentHandle{}).code(), ErrorCode::SEGMENT_NOT_FOUND);
}

TEST_F(EngineEdges, NotificationsQueueUntilAHandlerIsSet) {
  auto h = f_->Run(engine(0).OpenSegment(Fabric::NodeName(1)));
  ASSERT_TRUE(h.ok());
  ASSERT_TRUE(engine(0).Notify(*h, "first").ok());
  ASSERT_TRUE(engine(0).Notify(*h, "second").ok());
  f_->world().RunUntilTime(f_->world().NowNs() + 1'000'000);
  std::vector<std::string> seen;
  engine(1).SetNotifyHandler([&](Notification n) { seen.push_back(n.source + ":" + n.payload); });
  // Notifications are not ordered among themselves (transport.h), and the simulator
  // reorders them: both arrive, in either order.
  std::sort(seen.begin(), seen.end());
  const std::vector<std::string> want = {Fabric::NodeName(0) + ":first",
                                         Fabric::NodeName(0) + ":second"};
  EXPECT_EQ(seen, want);
  EXPECT_TRUE(engine(1).TakeNotifications().empty());
}

TEST_F(EngineEdges, UnknownBatchIdsAreInvalidParams) {
  const BatchId never{12345};
  EXPECT_EQ(engine(0).BatchSize(never).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(engine(0).GetStatus(never, 0).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(engine(0).FreeBatch(never).code(), ErrorCode::INVALID_PARAMS);
  auto b = engine(0).AllocateBatch(3);
  ASSERT_TRUE(b.ok());
  auto size = engine(0).BatchSize(*b);
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(*size, 0u);
  EXPECT_TRUE(engine(0).FreeBatch(*b).ok());
  EXPECT_EQ(engine(0).BatchSize(*b).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(engine(0).AllocateBatch(0).code(), ErrorCode::INVALID_PARAMS);
}

TEST(TransferStateNames, EveryStateHasItsName) {
  EXPECT_EQ(TransferStateName(TransferState::PENDING), "PENDING");
  EXPECT_EQ(TransferStateName(TransferState::COMPLETED), "COMPLETED");
  EXPECT_EQ(TransferStateName(TransferState::FAILED), "FAILED");
  EXPECT_EQ(TransferStateName(TransferState::TIMED_OUT), "TIMED_OUT");
  EXPECT_EQ(TransferStateName(TransferState::CANCELED), "CANCELED");
  EXPECT_EQ(TransferStateName(static_cast<TransferState>(77)), "UNKNOWN");
}

}  // namespace
}  // namespace tidal::sim
