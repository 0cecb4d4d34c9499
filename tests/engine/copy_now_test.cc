// TransferSync's first try, Transport::TryCopyNow (UCX: a copy through the peer's mapped
// memory): a valid one-slice request the transport takes is COMPLETED with no batch,
// slice, completion or Submit behind it; every other request (invalid, longer than a
// slice, outside the cached descriptor, or declined by the transport) takes the batch path
// and is reported exactly as there, in its own place among the results.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "forwarding_transport.h"
#include "inprocess_transport.h"
#include "tidal/backends/real_env.h"
#include "tidal/metadata_store.h"
#include "tidal/recording_transport.h"
#include "tidal/task.h"
#include "tidal/transfer_engine.h"

namespace tidal {
namespace {

using backends::RealEnv;

// InProcessTransport with a copy path: TryCopyNow copies when `accept` says so (both
// nodes are in this process, so the remote address is this process's), and records every
// task it was offered.
class CopyingTransport final : public testing::ForwardingTransport {
 public:
  CopyingTransport(std::unique_ptr<Transport> inner,
                   std::function<bool(const TransportTask&)> accept)
      : ForwardingTransport(std::move(inner)), accept_(std::move(accept)) {}
  // Whether Capabilities() claims the copy path (the engine offers nothing otherwise).
  bool claims = true;
  TransportCaps Capabilities() const override {
    TransportCaps caps = ForwardingTransport::Capabilities();
    caps.copies_now = claims;
    return caps;
  }
  void Submit(std::span<const TransportTask> tasks, std::span<Status> accepted) override {
    submitted += tasks.size();
    ForwardingTransport::Submit(tasks, accepted);
  }
  bool TryCopyNow(const TransportTask& t) override {
    offered.push_back(t);
    if (!accept_(t)) return false;
    auto* local = reinterpret_cast<uint8_t*>(t.local_addr);
    auto* remote = reinterpret_cast<uint8_t*>(t.remote_addr);
    if (t.kind == TransportTask::Kind::kWrite) {
      std::memcpy(remote, local, t.length);
    } else {
      std::memcpy(local, remote, t.length);
    }
    return true;
  }

  std::vector<TransportTask> offered;
  size_t submitted = 0;

 private:
  std::function<bool(const TransportTask&)> accept_;
};

constexpr uint64_t kSlice = 4096;

class CopyNow : public ::testing::Test {
 protected:
  void SetUp() override {
    TransferEngineOptions o;
    o.slice_bytes = kSlice;
    o.max_batches = 2;  // WithEveryBatchHandleTakenOnlyTheUncopiedFail takes both
    for (int i = 0; i < 2; ++i) {
      auto t = std::make_unique<CopyingTransport>(
          std::make_unique<testing::InProcessTransport>(hub_),
          [this](const TransportTask& task) { return task.length != kDeclined; });
      transports_[i] = t.get();
      engines_[i] =
          std::make_unique<TransferEngine>(env_, std::move(t), metadata_, i == 0 ? "a" : "b", o);
      ASSERT_TRUE(RunBlocking(env_, engines_[i]->Start()).ok());
      ASSERT_TRUE(RunBlocking(env_, engines_[i]->RegisterMemory(buf_[i].data(), buf_[i].size(),
                                                                Location::Host()))
                      .ok());
      for (size_t k = 0; k < buf_[i].size(); ++k) buf_[i][k] = static_cast<char>(k * 7 + 3 * i);
    }
    Result<SegmentHandle> ab = RunBlocking(env_, a().OpenSegment("b"));
    ASSERT_TRUE(ab.ok());
    to_b_ = *ab;
  }
  void TearDown() override {
    for (auto& e : engines_) {
      if (e) (void)RunBlocking(env_, e->Stop());
    }
  }
  TransferEngine& a() { return *engines_[0]; }
  uint64_t at(int node, uint64_t offset) const {
    return reinterpret_cast<uint64_t>(buf_[node].data()) + offset;
  }
  bool Same(uint64_t a_offset, uint64_t b_offset, uint64_t length) const {
    return std::memcmp(buf_[0].data() + a_offset, buf_[1].data() + b_offset, length) == 0;
  }

  static constexpr uint64_t kDeclined = 1000;  // the transport declines tasks of this length
  RealEnv env_;
  InMemoryMetadataStore metadata_;
  testing::InProcessHub hub_;
  std::vector<char> buf_[2] = {std::vector<char>(1 << 16), std::vector<char>(1 << 16)};
  CopyingTransport* transports_[2] = {nullptr, nullptr};
  std::unique_ptr<TransferEngine> engines_[2];
  SegmentHandle to_b_{};
};

TEST_F(CopyNow, ACopiedRequestHasNoBatchBehindIt) {
  const TransferEngineStats before = a().stats();
  const TransferRequest w{TransferOp::kWrite, at(0, 100), kSlice, to_b_, at(1, 8192)};
  std::vector<TransferStatus> st = RunBlocking(env_, a().TransferSync(std::span(&w, 1)));
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(st[0], (TransferStatus{TransferState::COMPLETED, kSlice, ErrorCode::OK}));
  EXPECT_TRUE(Same(100, 8192, kSlice));
  const TransferRequest r{TransferOp::kRead, at(0, 30000), 512, to_b_, at(1, 50000)};
  st = RunBlocking(env_, a().TransferSync(std::span(&r, 1)));
  EXPECT_EQ(st[0], (TransferStatus{TransferState::COMPLETED, 512, ErrorCode::OK}));
  EXPECT_TRUE(Same(30000, 50000, 512));
  const TransferEngineStats& s = a().stats();
  EXPECT_EQ(s.copies_now - before.copies_now, 2u);
  EXPECT_EQ(s.requests_submitted - before.requests_submitted, 2u);
  EXPECT_EQ(s.requests_completed - before.requests_completed, 2u);
  EXPECT_EQ(s.bytes_completed - before.bytes_completed, kSlice + 512);
  EXPECT_EQ(s.inline_drains, before.inline_drains);  // no Submit, so no drain of one
  EXPECT_EQ(transports_[0]->submitted, 0u);
  ASSERT_EQ(transports_[0]->offered.size(), 2u);
  EXPECT_EQ(transports_[0]->offered[0].kind, TransportTask::Kind::kWrite);
  EXPECT_EQ(transports_[0]->offered[0].remote_addr, at(1, 8192));
  EXPECT_EQ(transports_[0]->offered[1].kind, TransportTask::Kind::kRead);
}

// Five requests in one call: copied, invalid (zero length), declined by the transport,
// longer than a slice, and outside every region b exports. Each gets the outcome the batch
// path gives it, in its own place; only the valid one-slice ones were offered for a copy.
TEST_F(CopyNow, TheRestTakeTheBatchPathInTheirPlaces) {
  const TransferEngineStats before = a().stats();
  const TransferRequest reqs[5] = {
      {TransferOp::kWrite, at(0, 0), 256, to_b_, at(1, 0)},
      {TransferOp::kWrite, at(0, 0), 0, to_b_, at(1, 0)},
      {TransferOp::kWrite, at(0, 1024), kDeclined, to_b_, at(1, 1024)},
      {TransferOp::kWrite, at(0, 4096), 3 * kSlice, to_b_, at(1, 4096)},
      {TransferOp::kWrite, at(0, 0), 64, to_b_, at(1, 0) + (1 << 20)}};
  std::vector<TransferStatus> st = RunBlocking(env_, a().TransferSync(reqs));
  ASSERT_EQ(st.size(), 5u);
  EXPECT_EQ(st[0], (TransferStatus{TransferState::COMPLETED, 256, ErrorCode::OK}));
  EXPECT_EQ(st[1], (TransferStatus{TransferState::FAILED, 0, ErrorCode::INVALID_PARAMS}));
  EXPECT_EQ(st[2], (TransferStatus{TransferState::COMPLETED, kDeclined, ErrorCode::OK}));
  EXPECT_EQ(st[3], (TransferStatus{TransferState::COMPLETED, 3 * kSlice, ErrorCode::OK}));
  EXPECT_EQ(st[4], (TransferStatus{TransferState::FAILED, 0, ErrorCode::REMOTE_ACCESS_DENIED}));
  EXPECT_TRUE(Same(0, 0, 256));
  EXPECT_TRUE(Same(1024, 1024, kDeclined));
  EXPECT_TRUE(Same(4096, 4096, 3 * kSlice));
  ASSERT_EQ(transports_[0]->offered.size(), 2u);
  EXPECT_EQ(transports_[0]->offered[0].length, 256u);
  EXPECT_EQ(transports_[0]->offered[1].length, kDeclined);
  EXPECT_EQ(a().stats().copies_now - before.copies_now, 1u);
  EXPECT_EQ(a().stats().requests_submitted - before.requests_submitted, 5u);
  // The declined one is one slice, the long one three: four slices through Submit.
  EXPECT_EQ(transports_[0]->submitted, 4u);
}

// A transport whose capabilities do not claim the copy path is never offered a request:
// everything takes the batch path, exactly as before the copy path existed.
TEST_F(CopyNow, ATransportWithoutTheCapabilityIsNeverOffered) {
  transports_[0]->claims = false;
  const TransferRequest w{TransferOp::kWrite, at(0, 0), 512, to_b_, at(1, 0)};
  std::vector<TransferStatus> st = RunBlocking(env_, a().TransferSync(std::span(&w, 1)));
  EXPECT_EQ(st[0], (TransferStatus{TransferState::COMPLETED, 512, ErrorCode::OK}));
  EXPECT_TRUE(Same(0, 0, 512));
  EXPECT_TRUE(transports_[0]->offered.empty());
  EXPECT_EQ(transports_[0]->submitted, 1u);
  EXPECT_EQ(a().stats().copies_now, 0u);
}

// A copied request needs no batch: with every batch handle taken, it still completes, and
// only the request that needs a batch fails, with NO_AVAILABLE_HANDLE, moving nothing.
TEST_F(CopyNow, WithEveryBatchHandleTakenOnlyTheUncopiedFail) {
  Result<BatchId> b1 = a().AllocateBatch(1), b2 = a().AllocateBatch(1);
  ASSERT_TRUE(b1.ok() && b2.ok());
  const std::vector<char> before = buf_[1];
  const TransferRequest reqs[2] = {
      {TransferOp::kWrite, at(0, 0), 256, to_b_, at(1, 0)},
      {TransferOp::kWrite, at(0, 2048), kDeclined, to_b_, at(1, 2048)}};
  std::vector<TransferStatus> st = RunBlocking(env_, a().TransferSync(reqs));
  EXPECT_EQ(st[0], (TransferStatus{TransferState::COMPLETED, 256, ErrorCode::OK}));
  EXPECT_EQ(st[1], (TransferStatus{TransferState::FAILED, 0, ErrorCode::NO_AVAILABLE_HANDLE}));
  EXPECT_TRUE(Same(0, 0, 256));
  EXPECT_EQ(std::memcmp(buf_[1].data() + 2048, before.data() + 2048, kDeclined), 0);
  EXPECT_EQ(transports_[0]->submitted, 0u);
  EXPECT_TRUE(a().FreeBatch(*b1).ok());
  EXPECT_TRUE(a().FreeBatch(*b2).ok());
}

// A recorder over a transport with the copy path neither claims nor forwards it: every task
// of a recorded run goes through Submit and so into the trace.
TEST(CopyNowRecorded, ARecorderKeepsEveryTaskOnSubmit) {
  testing::InProcessHub hub;
  auto copying =
      std::make_unique<CopyingTransport>(std::make_unique<testing::InProcessTransport>(hub),
                                         [](const TransportTask&) { return true; });
  CopyingTransport* inner = copying.get();
  ASSERT_TRUE(inner->Capabilities().copies_now);
  const std::string path = ::testing::TempDir() + "copy_now_recorded.jsonl";
  Result<std::shared_ptr<TraceSink>> sink = TraceSink::Open(path);
  ASSERT_TRUE(sink.ok()) << sink.status().ToString();
  RecordingTransport recorder(std::move(copying), *sink, 0);
  EXPECT_FALSE(recorder.Capabilities().copies_now);
  std::vector<char> from(64, 'a'), to(64, 'b');
  TransportTask t;
  t.kind = TransportTask::Kind::kWrite;
  t.local_addr = reinterpret_cast<uint64_t>(from.data());
  t.remote_addr = reinterpret_cast<uint64_t>(to.data());
  t.length = from.size();
  EXPECT_FALSE(recorder.TryCopyNow(t));
  EXPECT_TRUE(inner->offered.empty());
  EXPECT_EQ(to, std::vector<char>(64, 'b'));
  std::remove(path.c_str());
}

}  // namespace
}  // namespace tidal
