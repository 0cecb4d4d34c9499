// A transport that finishes a copy inside its own Submit (UCX's one-sided mode; here
// InProcessTransport, which copies at once and signals on_ready from Submit): the engine
// takes the completion before Submit returns, so the request is final without a turn of
// the event loop and no deadline timer is armed for it. Notifications the transport holds
// at that moment are not handed to their handlers inside Submit: they are delivered by the
// loop, before any that arrive later. A transport that completes later (the simulator's)
// is unchanged: its requests finish on the loop, as before.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "inprocess_transport.h"
#include "tidal/backends/real_env.h"
#include "tidal/metadata_store.h"
#include "tidal/task.h"
#include "tidal/transfer_engine.h"

namespace tidal {
namespace {

using backends::RealEnv;

struct Node {
  std::unique_ptr<TransferEngine> engine;
  std::vector<char> buf = std::vector<char>(1 << 16);
  uint64_t base() const { return reinterpret_cast<uint64_t>(buf.data()); }
};

class InlineCompletion : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 2; ++i) {
      Node& n = nodes_[i];
      n.engine = std::make_unique<TransferEngine>(
          env_, std::make_unique<testing::InProcessTransport>(hub_), metadata_,
          i == 0 ? "a" : "b");
      ASSERT_TRUE(RunBlocking(env_, n.engine->Start()).ok());
      Result<uint64_t> reg =
          RunBlocking(env_, n.engine->RegisterMemory(n.buf.data(), n.buf.size(), Location::Host()));
      ASSERT_TRUE(reg.ok()) << reg.status().ToString();
      for (size_t k = 0; k < n.buf.size(); ++k) n.buf[k] = static_cast<char>(k * 7 + i);
    }
    Result<SegmentHandle> ab = RunBlocking(env_, a().OpenSegment("b"));
    Result<SegmentHandle> ba = RunBlocking(env_, b().OpenSegment("a"));
    ASSERT_TRUE(ab.ok() && ba.ok());
    a_to_b_ = *ab;
    b_to_a_ = *ba;
  }
  void TearDown() override {
    for (Node& n : nodes_) {
      if (n.engine) (void)RunBlocking(env_, n.engine->Stop());
    }
  }
  TransferEngine& a() { return *nodes_[0].engine; }
  TransferEngine& b() { return *nodes_[1].engine; }

  RealEnv env_;
  InMemoryMetadataStore metadata_;
  testing::InProcessHub hub_;
  Node nodes_[2];
  SegmentHandle a_to_b_{}, b_to_a_{};
};

TEST_F(InlineCompletion, ARequestFinishedInsideSubmitIsFinalWhenSubmitReturns) {
  Result<BatchId> batch = a().AllocateBatch(2);
  ASSERT_TRUE(batch.ok());
  const uint64_t drains = a().stats().inline_drains;
  const TransferRequest reqs[2] = {
      {TransferOp::kWrite, nodes_[0].base() + 100, 4096, a_to_b_, nodes_[1].base() + 8192},
      {TransferOp::kRead, nodes_[0].base() + 20000, 1000, a_to_b_, nodes_[1].base() + 40000}};
  std::vector<Status> accepted = a().Submit(*batch, reqs);
  ASSERT_TRUE(accepted[0].ok() && accepted[1].ok());
  // No turn of the loop since Submit: both are final already, every byte in place.
  for (size_t i = 0; i < 2; ++i) {
    Result<TransferStatus> st = a().GetStatus(*batch, i);
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(st->state, TransferState::COMPLETED) << i;
    EXPECT_EQ(st->bytes_transferred, reqs[i].length) << i;
  }
  EXPECT_EQ(a().stats().inline_drains, drains + 1);  // one Submit, one drain
  EXPECT_EQ(std::memcmp(nodes_[1].buf.data() + 8192, nodes_[0].buf.data() + 100, 4096), 0);
  EXPECT_EQ(std::memcmp(nodes_[0].buf.data() + 20000, nodes_[1].buf.data() + 40000, 1000), 0);
  EXPECT_TRUE(RunBlocking(env_, a().WaitBatch(*batch)).ok());  // never suspends
  EXPECT_TRUE(a().FreeBatch(*batch).ok());
  // A refused request stays refused, and the batch's other request still completes inline.
  Result<BatchId> again = a().AllocateBatch(2);
  ASSERT_TRUE(again.ok());
  const TransferRequest mixed[2] = {
      {TransferOp::kWrite, nodes_[0].base(), 0, a_to_b_, nodes_[1].base()},
      {TransferOp::kWrite, nodes_[0].base(), 64, a_to_b_, nodes_[1].base()}};
  accepted = a().Submit(*again, mixed);
  EXPECT_EQ(accepted[0].code(), ErrorCode::INVALID_PARAMS);  // a zero length
  Result<TransferStatus> ok = a().GetStatus(*again, 1);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->state, TransferState::COMPLETED);
  EXPECT_TRUE(RunBlocking(env_, a().WaitBatch(*again)).ok());
  EXPECT_TRUE(a().FreeBatch(*again).ok());
}

// b holds a notification from a (its drain posted, not run) when b's own Submit finishes
// inline: the drain inside Submit takes it but does not call the handler there; the loop
// delivers it, then the one a sends after, in the order a sent them.
TEST_F(InlineCompletion, NotificationsHeldAtAnInlineDrainAreDeliveredByTheLoopInOrder) {
  std::vector<std::string> got;
  bool inside_submit = false;
  bool called_inside = false;
  b().SetNotifyHandler([&](Notification n) {
    if (inside_submit) called_inside = true;
    got.push_back(n.payload);
  });
  ASSERT_TRUE(a().Notify(a_to_b_, "n1").ok());
  Result<BatchId> batch = b().AllocateBatch(1);
  ASSERT_TRUE(batch.ok());
  const TransferRequest w{TransferOp::kWrite, nodes_[1].base(), 512, b_to_a_, nodes_[0].base()};
  inside_submit = true;
  std::vector<Status> accepted = b().Submit(*batch, std::span(&w, 1));
  inside_submit = false;
  ASSERT_TRUE(accepted[0].ok());
  EXPECT_EQ(b().GetStatus(*batch, 0)->state, TransferState::COMPLETED);
  EXPECT_FALSE(called_inside);
  EXPECT_TRUE(got.empty());
  ASSERT_TRUE(a().Notify(a_to_b_, "n2").ok());
  ASSERT_TRUE(env_.RunUntil([&] { return got.size() == 2; }));
  EXPECT_EQ(got, (std::vector<std::string>{"n1", "n2"}));
  EXPECT_TRUE(b().FreeBatch(*batch).ok());
}

}  // namespace
}  // namespace tidal
