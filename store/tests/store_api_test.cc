// Store API on the simulator: every call's success path and every error code its header
// (client.h) documents, including bad input (null and unregistered buffers, zero and
// oversized lengths, mismatched batch vectors, malformed tensor headers, bad split_dim /
// tp_size / tp_rank). Each test builds a StoreWorld (master on node 0, clients on nodes
// 1..n each lending a segment), runs calls to completion in virtual time and asserts the
// exact codes and bytes. On failure the seed and replay command are printed.
#include <gtest/gtest.h>

#include <cstring>

#include "store_harness.h"

namespace tidal::store::testing {
namespace {

constexpr uint64_t kMs = 1'000'000;

StoreWorldOptions Opts(size_t clients = 3) {
  StoreWorldOptions o;
  o.clients = clients;
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  o.replay_command = std::string("ctest --output-on-failure -R '") + info->test_suite_name() + "." +
                     info->name() + "'";
  return o;
}

std::string Bytes(const uint8_t* p, size_t n) {
  return std::string(reinterpret_cast<const char*>(p), n);
}

class StoreApi : public ::testing::Test {
 protected:
  void Make(StoreWorldOptions o) { w_ = std::make_unique<StoreWorld>(std::move(o)); }
  void Make(size_t clients = 3) { Make(Opts(clients)); }
  void TearDown() override {
    if (w_) {
      Status inv = w_->state().CheckInvariants();
      EXPECT_TRUE(inv.ok()) << inv.ToString();
    }
    if (HasFailure() && w_) ADD_FAILURE() << "replay information:\n" << w_->Banner();
  }
  StoreWorld& w() { return *w_; }
  StoreClient& c(size_t i) { return w_->client(i); }
  std::unique_ptr<StoreWorld> w_;
};

TEST_F(StoreApi, PutThenGetFromAnotherClient) {
  Make();
  std::string v = Pattern(1, 10000);
  ASSERT_EQ(w().Run(0, c(0).Put("k", v)).code(), ErrorCode::OK);
  Result<std::string> got = w().Run(1, c(1).Get("k"));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, v);
}

TEST_F(StoreApi, PutOnExistingKeyIsAlreadyExists) {
  Make();
  ASSERT_TRUE(w().Run(0, c(0).Put("k", "one")).ok());
  EXPECT_EQ(w().Run(1, c(1).Put("k", "two")).code(), ErrorCode::OBJECT_ALREADY_EXISTS);
  EXPECT_EQ(*w().Run(2, c(2).Get("k")), "one");
}

TEST_F(StoreApi, PutPlacesReplicasOnDistinctSegmentsHonouringPreferred) {
  Make(4);
  ReplicateConfig cfg;
  cfg.replica_num = 3;
  cfg.preferred_segments = {StoreWorld::SegmentOf(3), StoreWorld::SegmentOf(1)};
  ASSERT_TRUE(w().Run(0, c(0).Put("k", Pattern(2, 4096), cfg)).ok());
  std::vector<ReplicaLocation> reps = w().state().Replicas("k");
  ASSERT_EQ(reps.size(), 3u);
  EXPECT_EQ(reps[0].segment, StoreWorld::SegmentOf(3));
  EXPECT_EQ(reps[1].segment, StoreWorld::SegmentOf(1));
  EXPECT_NE(reps[2].segment, reps[0].segment);
  EXPECT_NE(reps[2].segment, reps[1].segment);
}

TEST_F(StoreApi, PutBadInput) {
  Make();
  EXPECT_EQ(w().Run(0, c(0).Put("", "v")).code(), ErrorCode::INVALID_KEY);
  EXPECT_EQ(w().Run(0, c(0).Put(std::string(kMaxKeyBytes + 1, 'k'), "v")).code(),
            ErrorCode::INVALID_KEY);
  EXPECT_EQ(w().Run(0, c(0).Put("k", "")).code(), ErrorCode::INVALID_PARAMS);
  ReplicateConfig zero;
  zero.replica_num = 0;
  EXPECT_EQ(w().Run(0, c(0).Put("k", "v", zero)).code(), ErrorCode::INVALID_PARAMS);
  ReplicateConfig many;
  many.replica_num = kMaxReplicas + 1;
  EXPECT_EQ(w().Run(0, c(0).Put("k", "v", many)).code(), ErrorCode::INVALID_PARAMS);
  ReplicateConfig four;
  four.replica_num = 4;  // only three segments
  EXPECT_EQ(w().Run(0, c(0).Put("k", "v", four)).code(), ErrorCode::NO_AVAILABLE_HANDLE);
  EXPECT_EQ(w().Run(0, c(0).Exists("k")).value(), false);
}

TEST_F(StoreApi, PutLargerThanAnySegmentIsNoAvailableHandle) {
  StoreWorldOptions o = Opts();
  o.segment_bytes = 1 << 20;
  Make(o);
  EXPECT_EQ(w().Run(0, c(0).Put("big", Pattern(3, 2 << 20))).code(),
            ErrorCode::NO_AVAILABLE_HANDLE);
}

TEST_F(StoreApi, GetErrors) {
  Make();
  EXPECT_EQ(w().Run(0, c(0).Get("missing")).code(), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(w().Run(0, c(0).Get("")).code(), ErrorCode::INVALID_KEY);
}

TEST_F(StoreApi, PutFromGetIntoZeroCopy) {
  Make();
  const size_t n = 300000;
  uint8_t* src = w().Buffer(0, n);
  std::string v = Pattern(4, n);
  std::memcpy(src, v.data(), n);
  ASSERT_EQ(w().Run(0, c(0).PutFrom("z", src, n)).code(), ErrorCode::OK);
  uint8_t* dst = w().Buffer(1, n + 100);
  Result<uint64_t> got = w().Run(1, c(1).GetInto("z", dst, n + 100));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, n);
  EXPECT_EQ(Bytes(dst, n), v);
  EXPECT_EQ(*w().Run(2, c(2).GetSize("z")), n);
}

TEST_F(StoreApi, ZeroCopyBadInput) {
  Make();
  uint8_t* reg = w().Buffer(0, 4096);
  uint8_t* unreg = w().Buffer(0, 4096, /*registered=*/false);
  EXPECT_EQ(w().Run(0, c(0).PutFrom("k", nullptr, 10)).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(w().Run(0, c(0).PutFrom("k", reg, 0)).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(w().Run(0, c(0).PutFrom("k", reg, 1ull << 41)).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(w().Run(0, c(0).PutFrom("k", unreg, 100)).code(), ErrorCode::ADDRESS_NOT_REGISTERED);
  EXPECT_EQ(w().Run(0, c(0).PutFrom("k", reg, 8192)).code(), ErrorCode::ADDRESS_NOT_REGISTERED);
  ASSERT_TRUE(w().Run(0, c(0).Put("k", Pattern(5, 1000))).ok());
  EXPECT_EQ(w().Run(0, c(0).GetInto("k", nullptr, 10)).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(w().Run(0, c(0).GetInto("k", reg, 0)).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(w().Run(0, c(0).GetInto("k", reg, 999)).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(w().Run(0, c(0).GetInto("k", unreg, 1000)).code(), ErrorCode::ADDRESS_NOT_REGISTERED);
  EXPECT_EQ(w().Run(0, c(0).GetInto("missing", reg, 1000)).code(), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(w().Run(0, c(0).GetSize("missing")).code(), ErrorCode::OBJECT_NOT_FOUND);
}

TEST_F(StoreApi, RemoveAndLeases) {
  StoreWorldOptions o = Opts();
  o.master.lease_ttl_ns = 50 * kMs;
  Make(o);
  ASSERT_TRUE(w().Run(0, c(0).Put("k", "value")).ok());
  ASSERT_TRUE(w().Run(1, c(1).Get("k")).ok());  // grants a 50 ms lease
  EXPECT_EQ(w().Run(0, c(0).Remove("k")).code(), ErrorCode::OBJECT_HAS_LEASE);
  w().Advance(60 * kMs);
  EXPECT_EQ(w().Run(0, c(0).Remove("k")).code(), ErrorCode::OK);
  EXPECT_EQ(w().Run(0, c(0).Remove("k")).code(), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(w().Run(0, c(0).Remove("")).code(), ErrorCode::INVALID_KEY);
  ASSERT_TRUE(w().Run(0, c(0).Put("k2", "value")).ok());
  ASSERT_TRUE(w().Run(1, c(1).Get("k2")).ok());
  EXPECT_EQ(w().Run(0, c(0).Remove("k2", /*force=*/true)).code(), ErrorCode::OK);
  EXPECT_EQ(w().Run(0, c(0).Exists("k2")).value(), false);
}

TEST_F(StoreApi, HardPinRemovedOnlyByForceAndNeverEvicted) {
  Make();
  ReplicateConfig pin;
  pin.hard_pin = true;
  ASSERT_TRUE(w().Run(0, c(0).Put("p", "pinned", pin)).ok());
  EXPECT_EQ(w().Run(0, c(0).Remove("p")).code(), ErrorCode::OBJECT_HAS_LEASE);
  EXPECT_EQ(w().Run(0, c(0).Remove("p", true)).code(), ErrorCode::OK);
}

TEST_F(StoreApi, ExistsAndBatchExists) {
  Make();
  ASSERT_TRUE(w().Run(0, c(0).Put("a", "1")).ok());
  EXPECT_EQ(w().Run(1, c(1).Exists("a")).value(), true);
  EXPECT_EQ(w().Run(1, c(1).Exists("b")).value(), false);
  EXPECT_EQ(w().Run(1, c(1).Exists("")).code(), ErrorCode::INVALID_KEY);
  auto r = w().Run(1, c(1).BatchExists({"a", "b", ""}));
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].value(), true);
  EXPECT_EQ(r[1].value(), false);
  EXPECT_EQ(r[2].code(), ErrorCode::INVALID_KEY);
}

TEST_F(StoreApi, BatchPutFromAndBatchGetInto) {
  Make();
  const size_t n = 5000;
  uint8_t* src = w().Buffer(0, 3 * n);
  std::vector<std::string> vals = {Pattern(10, n), Pattern(11, n), Pattern(12, n)};
  for (size_t i = 0; i < 3; ++i) std::memcpy(src + i * n, vals[i].data(), n);
  ASSERT_TRUE(w().Run(0, c(0).Put("b1", "taken")).ok());
  auto put =
      w().Run(0, c(0).BatchPutFrom({"b0", "b1", "b2"}, {src, src + n, src + 2 * n}, {n, n, n}));
  ASSERT_EQ(put.size(), 3u);
  EXPECT_EQ(put[0].code(), ErrorCode::OK);
  EXPECT_EQ(put[1].code(), ErrorCode::OBJECT_ALREADY_EXISTS);
  EXPECT_EQ(put[2].code(), ErrorCode::OK);
  uint8_t* dst = w().Buffer(1, 3 * n);
  auto got =
      w().Run(1, c(1).BatchGetInto({"b0", "b2", "nope"}, {dst, dst + n, dst + 2 * n}, {n, n, n}));
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].value(), n);
  EXPECT_EQ(got[1].value(), n);
  EXPECT_EQ(got[2].code(), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(Bytes(dst, n), vals[0]);
  EXPECT_EQ(Bytes(dst + n, n), vals[2]);
}

TEST_F(StoreApi, BatchMismatchedLengthsAreInvalidParamsEverywhere) {
  Make();
  uint8_t* src = w().Buffer(0, 100);
  auto put = w().Run(0, c(0).BatchPutFrom({"x", "y"}, {src}, {10, 10}));
  ASSERT_EQ(put.size(), 2u);
  for (auto& s : put) EXPECT_EQ(s.code(), ErrorCode::INVALID_PARAMS);
  auto got = w().Run(0, c(0).BatchGetInto({"x"}, {src, src}, {10}));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].code(), ErrorCode::INVALID_PARAMS);
  auto tp = w().Run(0, c(0).BatchPutTensorWithTpFrom({"x", "y"}, {src, src}, {10}, 2, 0));
  ASSERT_EQ(tp.size(), 2u);
  for (auto& s : tp) EXPECT_EQ(s.code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(w().Run(0, c(0).Exists("x")).value(), false);
}

Tensor MakeTensor(std::vector<uint64_t> shape, uint64_t seed) {
  Tensor t;
  t.dtype = DType::kI32;
  t.shape = shape;
  uint64_t n = 1;
  for (auto d : shape) n *= d;
  t.data.resize(n * 4);
  for (uint64_t i = 0; i < n; ++i) {
    int32_t v = static_cast<int32_t>(seed * 1000 + i);
    std::memcpy(t.data.data() + i * 4, &v, 4);
  }
  return t;
}

TEST_F(StoreApi, PutTensorGetTensor) {
  Make();
  Tensor t = MakeTensor({3, 4}, 1);
  ASSERT_TRUE(w().Run(0, c(0).PutTensor("t", t.view())).ok());
  Result<Tensor> got = w().Run(1, c(1).GetTensor("t"));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, t);
  ASSERT_TRUE(w().Run(0, c(0).Put("not_tensor", "hello")).ok());
  EXPECT_EQ(w().Run(1, c(1).GetTensor("not_tensor")).code(), ErrorCode::INVALID_PARAMS);
  TensorView bad = t.view();
  bad.data_bytes -= 4;
  EXPECT_EQ(w().Run(0, c(0).PutTensor("t2", bad)).code(), ErrorCode::INVALID_PARAMS);
}

TEST_F(StoreApi, TensorParallelPutSplitsTheFullTensor) {
  Make();
  // Shape [4, 6] split along dim 1 into 3 shards of [4, 2].
  Tensor full = MakeTensor({4, 6}, 2);
  ASSERT_TRUE(w().Run(0, c(0).PutTensorWithTp("w", full.view(), 3, 1)).ok());
  for (uint32_t r = 0; r < 3; ++r) {
    Result<Tensor> shard = w().Run(1, c(1).GetTensorWithTp("w", r, 3));
    ASSERT_TRUE(shard.ok()) << shard.status().ToString();
    EXPECT_EQ(shard->shape, (std::vector<uint64_t>{4, 2}));
    for (uint64_t row = 0; row < 4; ++row) {
      for (uint64_t col = 0; col < 2; ++col) {
        int32_t v;
        std::memcpy(&v, shard->data.data() + (row * 2 + col) * 4, 4);
        EXPECT_EQ(v, int32_t(2000 + row * 6 + r * 2 + col)) << r << " " << row << " " << col;
      }
    }
  }
  EXPECT_EQ(w().Run(0, c(0).PutTensorWithTp("w2", full.view(), 4, 1)).code(),
            ErrorCode::INVALID_PARAMS);  // 6 does not divide by 4
  EXPECT_EQ(w().Run(0, c(0).PutTensorWithTp("w2", full.view(), 0, 0)).code(),
            ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(w().Run(0, c(0).PutTensorWithTp("w2", full.view(), 2, 2)).code(),
            ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(w().Run(0, c(0).Exists("w2_tp_0")).value(), false);
  EXPECT_EQ(w().Run(1, c(1).GetTensorWithTp("w", 3, 3)).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(w().Run(1, c(1).GetTensorWithTp("w", 0, 0)).code(), ErrorCode::INVALID_PARAMS);
}

TEST_F(StoreApi, TensorParallelFromBufferAndInto) {
  Make();
  Tensor full = MakeTensor({8, 3}, 3);
  std::string ser = *EncodeTensor(full.view());
  uint8_t* src = w().Buffer(0, ser.size());
  std::memcpy(src, ser.data(), ser.size());
  ASSERT_TRUE(w().Run(0, c(0).PutTensorWithTpFrom("f", src, ser.size(), 2, 0)).ok());
  std::vector<std::string> shards = *SplitTensor(full.view(), 0, 2);
  uint8_t* dst = w().Buffer(1, 4096);
  Result<uint64_t> n = w().Run(1, c(1).GetTensorWithTpInto("f", 1, 2, dst, 4096));
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(Bytes(dst, *n), shards[1]);
  EXPECT_EQ(w().Run(1, c(1).GetTensorWithTpInto("f", 2, 2, dst, 4096)).code(),
            ErrorCode::INVALID_PARAMS);
  uint8_t* unreg = w().Buffer(0, ser.size(), false);
  std::memcpy(unreg, ser.data(), ser.size());
  EXPECT_EQ(w().Run(0, c(0).PutTensorWithTpFrom("g", unreg, ser.size(), 2, 0)).code(),
            ErrorCode::ADDRESS_NOT_REGISTERED);
  EXPECT_EQ(w().Run(0, c(0).PutTensorWithTpFrom("g", nullptr, 10, 2, 0)).code(),
            ErrorCode::INVALID_PARAMS);
  src[0] ^= 0xFF;  // magic
  Status bad = w().Run(0, c(0).PutTensorWithTpFrom("g", src, ser.size(), 2, 0));
  EXPECT_EQ(bad.code(), ErrorCode::INVALID_PARAMS);
  EXPECT_NE(bad.message().find("magic"), std::string::npos) << bad.message();
  EXPECT_EQ(w().Run(0, c(0).Exists("g_tp_0")).value(), false);
}

TEST_F(StoreApi, GetIntoStaleGenerationFails) {
  Make();
  ASSERT_TRUE(w().Run(0, c(0).Put("g", "first")).ok());
  Result<ObjectInfo> first = w().Run(1, c(1).Stat("g"));
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(w().Run(1, c(1).Get("g", {first->generation})).value(), "first");
  ASSERT_TRUE(w().Run(0, c(0).Remove("g", true)).ok());
  ASSERT_TRUE(w().Run(0, c(0).Put("g", "second")).ok());
  Result<ObjectInfo> second = w().Run(1, c(1).Stat("g"));
  ASSERT_TRUE(second.ok());
  EXPECT_GT(second->generation, first->generation);
  EXPECT_EQ(w().Run(1, c(1).Get("g", {first->generation})).code(), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(w().Run(1, c(1).Get("g", {second->generation})).value(), "second");
}

TEST_F(StoreApi, MountUnmountAndBuffers) {
  StoreWorldOptions o = Opts(2);
  o.mount = false;
  Make(o);
  ReplicateConfig one;
  EXPECT_EQ(w().Run(0, c(0).Put("k", "v", one)).code(), ErrorCode::NO_AVAILABLE_HANDLE);
  uint8_t* seg = w().Buffer(1, 1 << 20, false);
  EXPECT_EQ(w().Run(1, c(1).MountSegment(nullptr, 100)).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(w().Run(1, c(1).MountSegment(seg, 10)).code(), ErrorCode::INVALID_PARAMS);
  ASSERT_EQ(w().Run(1, c(1).MountSegment(seg, 1 << 20)).code(), ErrorCode::OK);
  EXPECT_EQ(w().Run(1, c(1).MountSegment(seg, 1 << 20)).code(), ErrorCode::ADDRESS_OVERLAPPED);
  ASSERT_TRUE(w().Run(0, c(0).Put("k", "v", one)).ok());
  EXPECT_EQ(w().Run(1, c(1).UnmountSegment(seg + 64)).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(w().Run(1, c(1).UnmountSegment(seg)).code(), ErrorCode::OK);
  EXPECT_EQ(w().Run(0, c(0).Exists("k")).value(), false);  // its only replica went
  uint8_t* buf = w().Buffer(0, 4096, false);
  EXPECT_EQ(w().Run(0, c(0).RegisterBuffer(buf, 0)).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(w().Run(0, c(0).RegisterBuffer(buf, 4096)).code(), ErrorCode::OK);
  EXPECT_EQ(w().Run(0, c(0).RegisterBuffer(buf, 4096)).code(), ErrorCode::ADDRESS_OVERLAPPED);
  EXPECT_EQ(w().Run(0, c(0).UnregisterBuffer(buf)).code(), ErrorCode::OK);
  EXPECT_EQ(w().Run(0, c(0).UnregisterBuffer(buf)).code(), ErrorCode::INVALID_PARAMS);
}

TEST_F(StoreApi, MasterUnreachableIsRpcTimeout) {
  StoreWorldOptions o = Opts(1);
  o.client.rpc.timeout_ns = 20 * kMs;
  o.client.rpc.retry_ns = 5 * kMs;
  Make(o);
  w().world().Partition({0}, {1}, 0);
  Status s = w().Run(0, c(0).Put("k", "v"));
  EXPECT_EQ(s.code(), ErrorCode::RPC_TIMEOUT) << s.ToString();
}

TEST_F(StoreApi, OperationTimeoutBoundsAGet) {
  StoreWorldOptions o = Opts(2);
  o.client.op_timeout_ns = 30 * kMs;
  o.faults = "completion_loss src=2\n";  // client 1's transfers never complete
  Make(o);
  ASSERT_TRUE(w().Run(0, c(0).Put("k", Pattern(7, 4096))).ok());
  uint64_t t0 = w().world().NowNs();
  Result<std::string> got = w().Run(1, c(1).Get("k"));
  uint64_t took = w().world().NowNs() - t0;
  EXPECT_EQ(got.code(), ErrorCode::OPERATION_TIMEOUT) << got.status().ToString();
  EXPECT_GE(took, 30 * kMs);
  EXPECT_LE(took, 31 * kMs);  // the deadline cancels the transfer; nothing waits longer
}

TEST_F(StoreApi, LeaseLapsingMidReadIsLeaseExpired) {
  StoreWorldOptions o = Opts(2);
  o.master.lease_ttl_ns = 20'000;  // 20 us; reading 4 MiB at 25 GB/s takes ~170 us
  Make(o);
  const size_t n = 4 << 20;
  ASSERT_TRUE(w().Run(0, c(0).Put("k", Pattern(8, n))).ok());
  uint8_t* dst = w().Buffer(1, n);
  EXPECT_EQ(w().Run(1, c(1).GetInto("k", dst, n)).code(), ErrorCode::LEASE_EXPIRED);
  EXPECT_EQ(c(1).stats().lease_expired, 1u);
  EXPECT_TRUE(w().Run(1, c(1).Get("small")).code() == ErrorCode::OBJECT_NOT_FOUND);
  ASSERT_TRUE(w().Run(0, c(0).Put("small", "tiny")).ok());
  EXPECT_EQ(*w().Run(1, c(1).Get("small")), "tiny");  // a short read fits its lease
}

// RPC layer: a lost request is resent under the same id, a duplicated request is answered
// once (the server's dedupe), duplicate and late responses are ignored.
// Node 1 (client 0) sends RegisterClient and MountSegment during setup, so its 3rd message
// to the master (node 0) is the put's PutStart.
TEST_F(StoreApi, RpcLostRequestIsResent) {
  StoreWorldOptions o = Opts(2);
  o.faults = "message_drop from=1 to=0 nth=3\n";
  o.client.rpc.retry_ns = 5 * kMs;
  Make(o);
  ASSERT_EQ(w().Run(0, c(0).Put("k", "v")).code(), ErrorCode::OK);
  EXPECT_EQ(w().state().stats().puts_started, 1u);
  EXPECT_EQ(w().master().server().duplicates(), 0u);
  EXPECT_EQ(*w().Run(1, c(1).Get("k")), "v");
}

TEST_F(StoreApi, RpcDuplicatedRequestRunsOnce) {
  StoreWorldOptions o = Opts(2);
  o.faults = "message_duplicate from=1 to=0 nth=3\n";
  Make(o);
  ASSERT_EQ(w().Run(0, c(0).Put("k", "v")).code(), ErrorCode::OK);
  w().Advance(1 * kMs);
  EXPECT_EQ(w().state().stats().puts_started, 1u);  // not OBJECT_ALREADY_EXISTS to itself
  EXPECT_EQ(w().master().server().duplicates(), 1u);
  EXPECT_GE(c(0).rpc().ignored_responses(), 1u);  // the second answer is dropped
}

TEST_F(StoreApi, RpcLateResponseIsIgnoredAfterTimeout) {
  StoreWorldOptions o = Opts(2);
  o.faults = "message_delay from=0 to=1 nth=3 by=50ms\n";
  o.client.rpc.timeout_ns = 20 * kMs;
  o.client.rpc.retry_ns = 100 * kMs;
  Make(o);
  EXPECT_EQ(w().Run(0, c(0).Exists("k")).code(), ErrorCode::RPC_TIMEOUT);
  w().Advance(100 * kMs);
  EXPECT_EQ(c(0).rpc().timeouts(), 1u);
  EXPECT_GE(c(0).rpc().ignored_responses(), 1u);
  EXPECT_EQ(w().Run(0, c(0).Put("k", "v")).code(), ErrorCode::OK);
}

TEST_F(StoreApi, ClientDeclaredDeadRemountsItsSegment) {
  StoreWorldOptions o = Opts(2);
  o.master.client_ttl_ns = 50 * kMs;
  o.master.sweep_interval_ns = 10 * kMs;
  o.client.heartbeat_interval_ns = 10 * kMs;
  Make(o);
  // Cut client 0 off from the master long enough to be declared dead, then heal.
  w().world().Partition({0}, {1}, 100 * kMs);
  w().Advance(150 * kMs);
  EXPECT_GE(w().state().stats().clients_died, 1u);
  w().Advance(50 * kMs);
  EXPECT_GE(c(0).stats().remounts, 1u);
  ReplicateConfig two;
  two.replica_num = 2;  // needs client 0's segment back
  EXPECT_EQ(w().Run(1, c(1).Put("k", "v", two)).code(), ErrorCode::OK);
}

// The engine caches a peer's segment descriptor when it first opens it; a segment the peer
// mounts later is outside that cached view (REMOTE_ACCESS_DENIED at submit). The client
// looks the descriptor up again and retries once, so the put lands.
TEST_F(StoreApi, PeerMountedAfterWeOpenedItIsReachable) {
  StoreWorldOptions o = Opts(2);
  o.mount = false;
  Make(o);
  uint8_t* small = w().Buffer(1, 64 << 10, false);
  ASSERT_TRUE(w().Run(1, c(1).MountSegment(small, 64 << 10)).ok());
  ASSERT_TRUE(w().Run(0, c(0).Put("first", Pattern(20, 60 << 10))).ok());  // opens node2
  uint8_t* big = w().Buffer(1, 1 << 20, false);
  ASSERT_TRUE(w().Run(1, c(1).MountSegment(big, 1 << 20)).ok());
  std::string v = Pattern(21, 512 << 10);
  Status s = w().Run(0, c(0).Put("second", v));
  ASSERT_EQ(s.code(), ErrorCode::OK) << s.ToString();
  EXPECT_EQ(w().state().Replicas("second")[0].addr, reinterpret_cast<uint64_t>(big));
  EXPECT_EQ(*w().Run(1, c(1).Get("second")), v);
}

// A replica write that comes back short fails the put (TRANSFER_FAIL) and revokes it: the
// key is free again and nothing half-written is ever readable.
TEST_F(StoreApi, ShortReplicaWriteFailsAndRevokesThePut) {
  StoreWorldOptions o = Opts(2);
  o.faults = "short_write src=1 nth=1 by=10\n";  // client 0's first write
  Make(o);
  ReplicateConfig on1;
  on1.preferred_segments = {StoreWorld::SegmentOf(1)};
  Status s = w().Run(0, c(0).Put("k", Pattern(30, 5000), on1));
  EXPECT_EQ(s.code(), ErrorCode::TRANSFER_FAIL) << s.ToString();
  EXPECT_EQ(w().state().stats().puts_revoked, 1u);
  EXPECT_EQ(w().Run(1, c(1).Exists("k")).value(), false);
  EXPECT_EQ(w().Run(0, c(0).Put("k", "again", on1)).code(), ErrorCode::OK);
}

// Node 1 registers its segment during setup; the 2nd registration is Put's staging buffer.
TEST_F(StoreApi, RegistrationFailureIsReported) {
  StoreWorldOptions o = Opts(2);
  o.faults = "registration_failure src=1 nth=2\n";
  Make(o);
  EXPECT_EQ(w().Run(0, c(0).Put("k", "v")).code(), ErrorCode::REGISTRATION_FAILED);
  EXPECT_EQ(w().state().stats().puts_started, 0u);
  EXPECT_EQ(w().Run(0, c(0).Put("k", "v")).code(), ErrorCode::OK);
}

}  // namespace
}  // namespace tidal::store::testing
