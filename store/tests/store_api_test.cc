// Store API on every fabric of the registry: every call's success path and every error
// code its header (client.h) documents, including bad input (null and unregistered
// buffers, zero and oversized lengths, mismatched batch vectors, malformed tensor headers,
// bad split_dim / tp_size / tp_rank). Each test builds a StoreWorld (tidal/cluster: master
// on node 0, clients on nodes 1..n each lending a segment), runs calls to completion and
// asserts the exact codes and bytes. A fabric that is not built or has no hardware here
// skips with the reason; tests that inject faults, partitions or rely on simulated timing
// say so (SimOnly) and skip elsewhere. On failure the seed and replay command are printed.
#include <gtest/gtest.h>

#include <cstring>

#include "tidal/cluster/store_world.h"

namespace tidal::store {
namespace {

using cluster::Pattern;
using cluster::StoreWorld;
using cluster::StoreWorldOptions;

constexpr uint64_t kMs = 1'000'000;

std::string Bytes(const uint8_t* p, size_t n) {
  return std::string(reinterpret_cast<const char*>(p), n);
}

class StoreApi : public ::testing::TestWithParam<std::string> {
 protected:
  StoreWorldOptions Opts(size_t clients = 3) {
    StoreWorldOptions o;
    o.backend = GetParam();
    o.clients = clients;
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    o.replay_command = std::string("ctest --output-on-failure -R '") +
                       info->test_suite_name() + "." + info->name() + "'";
    return o;
  }
  // Builds the world; false (with skip_ set) when this fabric cannot run the test here.
  bool Make(StoreWorldOptions o) {
    auto w = StoreWorld::Make(std::move(o));
    if (!w.ok()) {
      EXPECT_EQ(w.code(), ErrorCode::UNSUPPORTED) << w.status().ToString();
      skip_ = w.status().ToString();
      return false;
    }
    w_ = std::move(*w);
    return true;
  }
  bool Make(size_t clients = 3) { return Make(Opts(clients)); }
  // The simulator's powers (faults, partitions, virtual time) this test needs.
  bool SimOnly(const char* what) {
    if (w_->simulated()) return true;
    skip_ = std::string("needs the simulator: ") + what;
    return false;
  }
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
  std::string skip_;
};

#define MAKE_OR_SKIP(...)                          \
  do {                                             \
    if (!Make(__VA_ARGS__)) GTEST_SKIP() << skip_; \
  } while (0)
#define SIM_ONLY(what)                         \
  do {                                         \
    if (!SimOnly(what)) GTEST_SKIP() << skip_; \
  } while (0)

TEST_P(StoreApi, PutThenGetFromAnotherClient) {
  MAKE_OR_SKIP(3);
  std::string v = Pattern(1, 10000);
  ASSERT_EQ(w().Run(0, c(0).Put("k", v)).code(), ErrorCode::OK);
  Result<std::string> got = w().Run(1, c(1).Get("k"));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, v);
}

// StoreClientStats counts the master RPCs and transfer batches calls wait for, and their
// time: a put without reservations is PutStart, one WRITE batch and PutEnd; a get is
// GetReplicaList and one READ batch; Exists is one RPC; heartbeats are not counted.
TEST_P(StoreApi, StatsCountTheRpcsAndTransfersCallsWaitFor) {
  StoreWorldOptions o = Opts();
  o.client.heartbeat_interval_ns = 10 * kMs;
  MAKE_OR_SKIP(o);
  const StoreClientStats put0 = c(0).stats(), get0 = c(1).stats();
  ASSERT_EQ(w().Run(0, c(0).Put("k", Pattern(2, 10000))).code(), ErrorCode::OK);
  const StoreClientStats put1 = c(0).stats();
  EXPECT_EQ(put1.master_rpcs - put0.master_rpcs, 2u);
  EXPECT_EQ(put1.transfer_batches - put0.transfer_batches, 1u);
  EXPECT_GT(put1.master_rpc_ns, put0.master_rpc_ns);
  EXPECT_GT(put1.transfer_ns, put0.transfer_ns);
  ASSERT_EQ(*w().Run(1, c(1).Get("k")), Pattern(2, 10000));
  const StoreClientStats get1 = c(1).stats();
  EXPECT_EQ(get1.master_rpcs - get0.master_rpcs, 1u);
  EXPECT_EQ(get1.transfer_batches - get0.transfer_batches, 1u);
  EXPECT_GT(get1.master_rpc_ns, get0.master_rpc_ns);
  EXPECT_GT(get1.transfer_ns, get0.transfer_ns);
  ASSERT_TRUE(*w().Run(1, c(1).Exists("k")));
  const StoreClientStats exists1 = c(1).stats();
  EXPECT_EQ(exists1.master_rpcs - get1.master_rpcs, 1u);
  EXPECT_EQ(exists1.transfer_batches, get1.transfer_batches);
  EXPECT_EQ(exists1.transfer_ns, get1.transfer_ns);
  // Heartbeats go on meanwhile (every 10 ms here) and are not among the RPCs.
  w().Advance(100 * kMs);
  const StoreClientStats idle = c(1).stats();
  EXPECT_GT(idle.heartbeats, exists1.heartbeats);
  EXPECT_EQ(idle.master_rpcs, exists1.master_rpcs);
  EXPECT_EQ(idle.master_rpc_ns, exists1.master_rpc_ns);
}

TEST_P(StoreApi, PutOnExistingKeyIsAlreadyExists) {
  MAKE_OR_SKIP(3);
  ASSERT_TRUE(w().Run(0, c(0).Put("k", "one")).ok());
  EXPECT_EQ(w().Run(1, c(1).Put("k", "two")).code(), ErrorCode::OBJECT_ALREADY_EXISTS);
  EXPECT_EQ(*w().Run(2, c(2).Get("k")), "one");
}

TEST_P(StoreApi, PutPlacesReplicasOnDistinctSegmentsHonouringPreferred) {
  MAKE_OR_SKIP(4);
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

TEST_P(StoreApi, PutBadInput) {
  MAKE_OR_SKIP(3);
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

TEST_P(StoreApi, PutLargerThanAnySegmentIsNoAvailableHandle) {
  StoreWorldOptions o = Opts();
  o.segment_bytes = 1 << 20;
  MAKE_OR_SKIP(o);
  EXPECT_EQ(w().Run(0, c(0).Put("big", Pattern(3, 2 << 20))).code(),
            ErrorCode::NO_AVAILABLE_HANDLE);
}

TEST_P(StoreApi, GetErrors) {
  MAKE_OR_SKIP(3);
  EXPECT_EQ(w().Run(0, c(0).Get("missing")).code(), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(w().Run(0, c(0).Get("")).code(), ErrorCode::INVALID_KEY);
}

TEST_P(StoreApi, PutFromGetIntoZeroCopy) {
  MAKE_OR_SKIP(3);
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

TEST_P(StoreApi, ZeroCopyBadInput) {
  MAKE_OR_SKIP(3);
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

TEST_P(StoreApi, RemoveAndLeases) {
  StoreWorldOptions o = Opts();
  // 500 ms: on a real fabric the remove below must come while the lease runs, and a
  // loaded 2-core machine stalled past a 50 ms lease (ucx-tcp, under ctest -j2).
  o.master.lease_ttl_ns = 500 * kMs;
  MAKE_OR_SKIP(o);
  ASSERT_TRUE(w().Run(0, c(0).Put("k", "value")).ok());
  ASSERT_TRUE(w().Run(1, c(1).Get("k")).ok());  // grants a 500 ms lease
  EXPECT_EQ(w().Run(0, c(0).Remove("k")).code(), ErrorCode::OBJECT_HAS_LEASE);
  w().Advance(600 * kMs);
  EXPECT_EQ(w().Run(0, c(0).Remove("k")).code(), ErrorCode::OK);
  EXPECT_EQ(w().Run(0, c(0).Remove("k")).code(), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(w().Run(0, c(0).Remove("")).code(), ErrorCode::INVALID_KEY);
  ASSERT_TRUE(w().Run(0, c(0).Put("k2", "value")).ok());
  ASSERT_TRUE(w().Run(1, c(1).Get("k2")).ok());
  EXPECT_EQ(w().Run(0, c(0).Remove("k2", /*force=*/true)).code(), ErrorCode::OK);
  EXPECT_EQ(w().Run(0, c(0).Exists("k2")).value(), false);
}

// StoreClientOptions::cache_leased_replicas: a second get of a key reads the replica list
// kept under the lease of the first (no master RPC: no new lease granted); another
// client's remove + put is not seen while that lease runs (the old generation's bytes,
// whole: its memory is not reused under the lease); a generation other than the cached
// one, an expired lease, and this client's own remove go to the master.
TEST_P(StoreApi, CachedGetsReadUnderTheLeaseAndFallBackToTheMaster) {
  StoreWorldOptions o = Opts();
  o.master.lease_ttl_ns = 2000 * kMs;  // room for a loaded machine between the gets
  o.client.cache_leased_replicas = true;
  MAKE_OR_SKIP(o);
  const std::string v1 = Pattern(11, 5000), v2 = Pattern(12, 7000), v3 = Pattern(13, 300);
  ASSERT_TRUE(w().Run(0, c(0).Put("k", v1)).ok());
  ASSERT_EQ(*w().Run(1, c(1).Get("k")), v1);  // from the master: a lease, then cached
  const uint64_t leases = w().state().stats().leases_granted;
  const ObjectInfo first = *w().Run(0, c(0).Stat("k"));
  EXPECT_EQ(c(1).stats().cached_gets, 0u);
  ASSERT_EQ(*w().Run(1, c(1).Get("k")), v1);
  EXPECT_EQ(c(1).stats().cached_gets, 1u);
  // GetInto through the same cache, with the cached generation.
  const uint64_t cap = 8192;
  uint8_t* buf = w().Buffer(1, cap);
  GetOptions same;
  same.generation = first.generation;
  ASSERT_EQ(*w().Run(1, c(1).GetInto("k", buf, cap, same)), v1.size());
  EXPECT_EQ(Bytes(buf, v1.size()), v1);
  EXPECT_EQ(c(1).stats().cached_gets, 2u);
  EXPECT_EQ(w().state().stats().leases_granted, leases);  // the master was not asked
  // Another generation than the cached one: the master answers.
  GetOptions other;
  other.generation = first.generation + 1000;
  EXPECT_EQ(w().Run(1, c(1).Get("k", other)).code(), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(c(1).stats().cached_gets, 2u);
  // Removed and put again by another client: client 1 still reads generation `first`,
  // every byte of it, while its lease runs.
  ASSERT_EQ(w().Run(0, c(0).Remove("k", /*force=*/true)).code(), ErrorCode::OK);
  ASSERT_TRUE(w().Run(0, c(0).Put("k", v2)).ok());
  ASSERT_EQ(*w().Run(1, c(1).Get("k")), v1);
  EXPECT_EQ(c(1).stats().cached_gets, 3u);
  // The lease lapses: the next get asks the master and reads the new generation.
  w().Advance(2100 * kMs);
  ASSERT_EQ(*w().Run(1, c(1).Get("k")), v2);
  EXPECT_EQ(c(1).stats().cached_gets, 3u);
  // One new lease: the get of another generation found none to lease.
  EXPECT_EQ(w().state().stats().leases_granted, leases + 1);
  // Client 1's own remove drops its entry: the key is gone for it at once.
  ASSERT_EQ(w().Run(1, c(1).Remove("k", /*force=*/true)).code(), ErrorCode::OK);
  EXPECT_EQ(w().Run(1, c(1).Get("k")).code(), ErrorCode::OBJECT_NOT_FOUND);
  ASSERT_TRUE(w().Run(0, c(0).Put("k", v3)).ok());
  EXPECT_EQ(*w().Run(1, c(1).Get("k")), v3);
  EXPECT_EQ(c(1).stats().cached_gets, 3u);
  EXPECT_EQ(c(1).stats().cached_get_fallbacks, 0u);
}

// A cached read that fails (here: a capacity below the object's size) drops the entry
// and the get asks the master, which gives the same answer as without the cache.
TEST_P(StoreApi, CachedGetThatFailsAsksTheMaster) {
  StoreWorldOptions o = Opts();
  o.master.lease_ttl_ns = 2000 * kMs;
  o.client.cache_leased_replicas = true;
  MAKE_OR_SKIP(o);
  const std::string v = Pattern(14, 3000);
  ASSERT_TRUE(w().Run(0, c(0).Put("k", v)).ok());
  ASSERT_EQ(*w().Run(1, c(1).Get("k")), v);
  const uint64_t leases = w().state().stats().leases_granted;
  uint8_t* small = w().Buffer(1, 1000);
  EXPECT_EQ(w().Run(1, c(1).GetInto("k", small, 1000)).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(c(1).stats().cached_gets, 0u);
  EXPECT_EQ(c(1).stats().cached_get_fallbacks, 1u);
  EXPECT_EQ(w().state().stats().leases_granted, leases + 1);  // the master was asked
  // The entry is gone: the next get asks the master again, and caches its answer.
  ASSERT_EQ(*w().Run(1, c(1).Get("k")), v);
  EXPECT_EQ(w().state().stats().leases_granted, leases + 2);
  ASSERT_EQ(*w().Run(1, c(1).Get("k")), v);
  EXPECT_EQ(c(1).stats().cached_gets, 1u);
  EXPECT_EQ(w().state().stats().leases_granted, leases + 2);
}

// StoreClientOptions::lease_cache_entries: a cache full of running leases takes no new
// key (its gets ask the master each time); once those leases lapse, the next list is
// cached again, and an entry already cached is replaced however full the cache is.
TEST_P(StoreApi, CachedListsStopAtTheLimitUntilLeasesLapse) {
  StoreWorldOptions o = Opts();
  o.master.lease_ttl_ns = 2000 * kMs;
  o.client.cache_leased_replicas = true;
  o.client.lease_cache_entries = 2;
  MAKE_OR_SKIP(o);
  const std::string a = Pattern(21, 900), b = Pattern(22, 1900), k3 = Pattern(23, 2900);
  ASSERT_TRUE(w().Run(0, c(0).Put("a", a)).ok());
  ASSERT_TRUE(w().Run(0, c(0).Put("b", b)).ok());
  ASSERT_TRUE(w().Run(0, c(0).Put("c", k3)).ok());
  ASSERT_EQ(*w().Run(1, c(1).Get("a")), a);  // cached
  ASSERT_EQ(*w().Run(1, c(1).Get("b")), b);  // cached: the cache is full
  ASSERT_EQ(*w().Run(1, c(1).Get("c")), k3);  // not cached
  const uint64_t leases = w().state().stats().leases_granted;
  ASSERT_EQ(*w().Run(1, c(1).Get("c")), k3);  // the master again
  EXPECT_EQ(w().state().stats().leases_granted, leases + 1);
  EXPECT_EQ(c(1).stats().cached_gets, 0u);
  ASSERT_EQ(*w().Run(1, c(1).Get("a")), a);
  ASSERT_EQ(*w().Run(1, c(1).Get("b")), b);
  EXPECT_EQ(c(1).stats().cached_gets, 2u);
  EXPECT_EQ(w().state().stats().leases_granted, leases + 1);
  // Every lease lapses: "c" is cached now, and read from the cache next.
  w().Advance(2100 * kMs);
  ASSERT_EQ(*w().Run(1, c(1).Get("c")), k3);
  EXPECT_EQ(w().state().stats().leases_granted, leases + 2);
  ASSERT_EQ(*w().Run(1, c(1).Get("c")), k3);
  EXPECT_EQ(c(1).stats().cached_gets, 3u);
  EXPECT_EQ(w().state().stats().leases_granted, leases + 2);
  // "a" from the master (its entry lapsed), cached beside "c": full again, "b" is not.
  ASSERT_EQ(*w().Run(1, c(1).Get("a")), a);
  ASSERT_EQ(*w().Run(1, c(1).Get("b")), b);
  ASSERT_EQ(*w().Run(1, c(1).Get("b")), b);
  EXPECT_EQ(w().state().stats().leases_granted, leases + 5);
  ASSERT_EQ(*w().Run(1, c(1).Get("a")), a);
  EXPECT_EQ(c(1).stats().cached_gets, 4u);
  EXPECT_EQ(c(1).stats().cached_get_fallbacks, 0u);
}

TEST_P(StoreApi, HardPinRemovedOnlyByForceAndNeverEvicted) {
  MAKE_OR_SKIP(3);
  ReplicateConfig pin;
  pin.hard_pin = true;
  ASSERT_TRUE(w().Run(0, c(0).Put("p", "pinned", pin)).ok());
  EXPECT_EQ(w().Run(0, c(0).Remove("p")).code(), ErrorCode::OBJECT_HAS_LEASE);
  EXPECT_EQ(w().Run(0, c(0).Remove("p", true)).code(), ErrorCode::OK);
}

TEST_P(StoreApi, ExistsAndBatchExists) {
  MAKE_OR_SKIP(3);
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

TEST_P(StoreApi, BatchPutFromAndBatchGetInto) {
  MAKE_OR_SKIP(3);
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

TEST_P(StoreApi, BatchMismatchedLengthsAreInvalidParamsEverywhere) {
  MAKE_OR_SKIP(3);
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

TEST_P(StoreApi, PutTensorGetTensor) {
  MAKE_OR_SKIP(3);
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

TEST_P(StoreApi, TensorParallelPutSplitsTheFullTensor) {
  MAKE_OR_SKIP(3);
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

TEST_P(StoreApi, TensorParallelFromBufferAndInto) {
  MAKE_OR_SKIP(3);
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

TEST_P(StoreApi, GetIntoStaleGenerationFails) {
  MAKE_OR_SKIP(3);
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

TEST_P(StoreApi, MountUnmountAndBuffers) {
  StoreWorldOptions o = Opts(2);
  o.mount = false;
  MAKE_OR_SKIP(o);
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

TEST_P(StoreApi, MasterUnreachableIsRpcTimeout) {
  StoreWorldOptions o = Opts(1);
  o.client.rpc.timeout_ns = 20 * kMs;
  o.client.rpc.retry_ns = 5 * kMs;
  MAKE_OR_SKIP(o);
  SIM_ONLY("link partitions");
  w().world().Partition({0}, {1}, 0);
  Status s = w().Run(0, c(0).Put("k", "v"));
  EXPECT_EQ(s.code(), ErrorCode::RPC_TIMEOUT) << s.ToString();
}

TEST_P(StoreApi, OperationTimeoutBoundsAGet) {
  StoreWorldOptions o = Opts(2);
  o.client.op_timeout_ns = 30 * kMs;
  o.faults = "completion_loss src=2\n";  // client 1's transfers never complete
  MAKE_OR_SKIP(o);
  ASSERT_TRUE(w().Run(0, c(0).Put("k", Pattern(7, 4096))).ok());
  uint64_t t0 = w().world().NowNs();
  Result<std::string> got = w().Run(1, c(1).Get("k"));
  uint64_t took = w().world().NowNs() - t0;
  EXPECT_EQ(got.code(), ErrorCode::OPERATION_TIMEOUT) << got.status().ToString();
  EXPECT_GE(took, 30 * kMs);
  EXPECT_LE(took, 31 * kMs);  // the deadline cancels the transfer; nothing waits longer
}

TEST_P(StoreApi, LeaseLapsingMidReadIsLeaseExpired) {
  StoreWorldOptions o = Opts(2);
  o.master.lease_ttl_ns = 20'000;  // 20 us; reading 4 MiB at 25 GB/s takes ~170 us
  MAKE_OR_SKIP(o);
  SIM_ONLY("a 20 us lease timed against the simulated link");
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
TEST_P(StoreApi, RpcLostRequestIsResent) {
  StoreWorldOptions o = Opts(2);
  o.faults = "message_drop from=1 to=0 nth=3\n";
  o.client.rpc.retry_ns = 5 * kMs;
  MAKE_OR_SKIP(o);
  ASSERT_EQ(w().Run(0, c(0).Put("k", "v")).code(), ErrorCode::OK);
  EXPECT_EQ(w().state().stats().puts_started, 1u);
  EXPECT_EQ(w().master().server().duplicates(), 0u);
  EXPECT_EQ(*w().Run(1, c(1).Get("k")), "v");
}

TEST_P(StoreApi, RpcDuplicatedRequestRunsOnce) {
  StoreWorldOptions o = Opts(2);
  o.faults = "message_duplicate from=1 to=0 nth=3\n";
  MAKE_OR_SKIP(o);
  ASSERT_EQ(w().Run(0, c(0).Put("k", "v")).code(), ErrorCode::OK);
  w().Advance(1 * kMs);
  EXPECT_EQ(w().state().stats().puts_started, 1u);  // not OBJECT_ALREADY_EXISTS to itself
  EXPECT_EQ(w().master().server().duplicates(), 1u);
  EXPECT_GE(c(0).rpc().ignored_responses(), 1u);  // the second answer is dropped
}

TEST_P(StoreApi, RpcLateResponseIsIgnoredAfterTimeout) {
  StoreWorldOptions o = Opts(2);
  o.faults = "message_delay from=0 to=1 nth=3 by=50ms\n";
  o.client.rpc.timeout_ns = 20 * kMs;
  o.client.rpc.retry_ns = 100 * kMs;
  MAKE_OR_SKIP(o);
  EXPECT_EQ(w().Run(0, c(0).Exists("k")).code(), ErrorCode::RPC_TIMEOUT);
  w().Advance(100 * kMs);
  EXPECT_EQ(c(0).rpc().timeouts(), 1u);
  EXPECT_GE(c(0).rpc().ignored_responses(), 1u);
  EXPECT_EQ(w().Run(0, c(0).Put("k", "v")).code(), ErrorCode::OK);
}

TEST_P(StoreApi, ClientDeclaredDeadRemountsItsSegment) {
  StoreWorldOptions o = Opts(2);
  o.master.client_ttl_ns = 50 * kMs;
  o.master.sweep_interval_ns = 10 * kMs;
  o.client.heartbeat_interval_ns = 10 * kMs;
  MAKE_OR_SKIP(o);
  SIM_ONLY("link partitions");
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
TEST_P(StoreApi, PeerMountedAfterWeOpenedItIsReachable) {
  StoreWorldOptions o = Opts(2);
  o.mount = false;
  MAKE_OR_SKIP(o);
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
TEST_P(StoreApi, ShortReplicaWriteFailsAndRevokesThePut) {
  StoreWorldOptions o = Opts(2);
  o.faults = "short_write src=1 nth=1 by=10\n";  // client 0's first write
  MAKE_OR_SKIP(o);
  ReplicateConfig on1;
  on1.preferred_segments = {StoreWorld::SegmentOf(1)};
  Status s = w().Run(0, c(0).Put("k", Pattern(30, 5000), on1));
  EXPECT_EQ(s.code(), ErrorCode::TRANSFER_FAIL) << s.ToString();
  EXPECT_EQ(w().state().stats().puts_revoked, 1u);
  EXPECT_EQ(w().Run(1, c(1).Exists("k")).value(), false);
  EXPECT_EQ(w().Run(0, c(0).Put("k", "again", on1)).code(), ErrorCode::OK);
}

// Node 1 registers its segment during setup; the 2nd registration is Put's staging buffer.
TEST_P(StoreApi, RegistrationFailureIsReported) {
  StoreWorldOptions o = Opts(2);
  o.faults = "registration_failure src=1 nth=2\n";
  MAKE_OR_SKIP(o);
  EXPECT_EQ(w().Run(0, c(0).Put("k", "v")).code(), ErrorCode::REGISTRATION_FAILED);
  EXPECT_EQ(w().state().stats().puts_started, 0u);
  EXPECT_EQ(w().Run(0, c(0).Put("k", "v")).code(), ErrorCode::OK);
}

// StoreClientOptions::staging_slots: a Put or Get whose value fits a slot copies through
// the staging buffer (registered once); a larger value registers its own buffer; the
// bytes are exact either way, a failed call gives its slot back, and after Stop no call
// takes a slot.
TEST_P(StoreApi, StagingSlotsCarrySmallValuesLargerOnesRegisterTheirOwn) {
  StoreWorldOptions o = Opts(2);
  o.client.staging_slots = 2;
  o.client.staging_slot_bytes = 4096;
  MAKE_OR_SKIP(o);
  ReplicateConfig on0;  // every replica on client 0's segment: client 1 may stop
  on0.preferred_segments = {StoreWorld::SegmentOf(0)};
  const std::vector<uint64_t> sizes = {1, 100, 4095, 4096, 4097, 70000};
  for (size_t i = 0; i < sizes.size(); ++i) {
    ASSERT_EQ(w().Run(0, c(0).Put("k" + std::to_string(i), Pattern(i, sizes[i]), on0)).code(),
              ErrorCode::OK) << sizes[i];
  }
  EXPECT_EQ(c(0).stats().staged_calls, 4u);  // the four values of at most 4096 bytes
  for (size_t i = 0; i < sizes.size(); ++i) {
    Result<std::string> got = w().Run(1, c(1).Get("k" + std::to_string(i)));
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(*got, Pattern(i, sizes[i])) << sizes[i];
  }
  EXPECT_EQ(c(1).stats().staged_calls, 4u);
  // A put that fails after taking a slot (the key exists) gives it back: both slots serve
  // the next calls.
  EXPECT_EQ(w().Run(0, c(0).Put("k0", "other")).code(), ErrorCode::OBJECT_ALREADY_EXISTS);
  EXPECT_EQ(c(0).stats().staged_calls, 5u);
  ASSERT_EQ(w().Run(0, c(0).Put("k10", "ten", on0)).code(), ErrorCode::OK);
  EXPECT_EQ(*w().Run(0, c(0).Get("k10")), "ten");
  EXPECT_EQ(c(0).stats().staged_calls, 7u);
  EXPECT_EQ(c(0).stats().slots_retired, 0u);
  // A get of a missing key fails at the master, before any slot is taken.
  EXPECT_EQ(w().Run(1, c(1).Get("missing")).code(), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(c(1).stats().staged_calls, 4u);
  // After Stop the staging buffer is released; reads still work, without slots.
  ASSERT_TRUE(w().Run(1, c(1).Stop()).ok());
  EXPECT_EQ(*w().Run(1, c(1).Get("k1")), Pattern(1, 100));
  EXPECT_EQ(c(1).stats().staged_calls, 4u);
}

// A staging buffer that cannot be registered turns staging off: the call registers a
// buffer of its own, as without staging, and succeeds.
TEST_P(StoreApi, StagingRegistrationFailureFallsBackToOwnBuffers) {
  StoreWorldOptions o = Opts(2);
  o.client.staging_slots = 2;
  o.faults = "registration_failure src=1 nth=2\n";  // the staging buffer's registration
  MAKE_OR_SKIP(o);
  ASSERT_EQ(w().Run(0, c(0).Put("k", "v")).code(), ErrorCode::OK);
  EXPECT_EQ(c(0).stats().staged_calls, 0u);
  EXPECT_EQ(*w().Run(0, c(0).Get("k")), "v");
  EXPECT_EQ(c(0).stats().staged_calls, 0u);
}

// StoreClientOptions::put_reservations: a put of at most put_reservation_max_bytes writes
// into a reservation and costs one RPC (PutCommit); the client asks for reservations per
// put shape, keeps a refused put's reservation, puts larger values the two-RPC way, and
// gives back what it holds at Stop. Bytes are exact on every path.
TEST_P(StoreApi, PutReservationsMakeSmallPutsOneRpc) {
  StoreWorldOptions o = Opts(2);
  o.client.put_reservations = 4;
  o.client.put_reservation_max_bytes = 4096;
  MAKE_OR_SKIP(o);
  ReplicateConfig on1;  // every replica on client 1's segment: client 0 may stop
  on1.preferred_segments = {StoreWorld::SegmentOf(1)};
  const uint64_t calls_before = c(0).rpc().calls();
  for (int i = 0; i < 6; ++i) {
    ASSERT_EQ(w().Run(0, c(0).Put("k" + std::to_string(i), Pattern(i, 1000), on1)).code(),
              ErrorCode::OK)
        << i;
  }
  // One for the new shape, then 4, then 4 more for the sixth put (3 left).
  EXPECT_EQ(c(0).stats().reservation_requests, 3u);
  EXPECT_EQ(c(0).stats().reserved_puts, 6u);
  EXPECT_EQ(c(0).rpc().calls() - calls_before, 9u);  // 3 reserves + 6 commits
  EXPECT_EQ(w().state().stats().puts_committed, 6u);
  EXPECT_EQ(w().state().stats().puts_started, 0u);
  EXPECT_EQ(w().state().stats().reservations, 3u);
  for (int i = 0; i < 6; ++i) {
    Result<std::string> got = w().Run(1, c(1).Get("k" + std::to_string(i)));
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(*got, Pattern(i, 1000)) << i;
  }
  // A taken key is refused after the WRITE; the reservation stays the client's and
  // serves the next put; the object keeps its bytes.
  EXPECT_EQ(w().Run(0, c(0).Put("k0", Pattern(99, 1000), on1)).code(),
            ErrorCode::OBJECT_ALREADY_EXISTS);
  EXPECT_EQ(*w().Run(1, c(1).Get("k0")), Pattern(0, 1000));
  EXPECT_EQ(w().state().stats().reservations, 3u);
  ASSERT_EQ(w().Run(0, c(0).Put("k6", Pattern(6, 1000), on1)).code(), ErrorCode::OK);
  EXPECT_EQ(c(0).stats().reservation_requests, 3u);
  // Above the limit: the two-RPC put. Another size: a reservation of its own.
  ASSERT_EQ(w().Run(0, c(0).Put("big", Pattern(7, 5000), on1)).code(), ErrorCode::OK);
  EXPECT_EQ(w().state().stats().puts_started, 1u);
  ASSERT_EQ(w().Run(0, c(0).Put("small", Pattern(8, 2000), on1)).code(), ErrorCode::OK);
  EXPECT_EQ(c(0).stats().reservation_requests, 4u);
  EXPECT_EQ(*w().Run(1, c(1).Get("big")), Pattern(7, 5000));
  EXPECT_EQ(*w().Run(1, c(1).Get("small")), Pattern(8, 2000));
  EXPECT_EQ(c(0).stats().reserved_puts, 8u);
  EXPECT_EQ(c(0).stats().kept_reservations_used, 5u);  // k3, k4, k5, the refused k0, k6
  EXPECT_EQ(c(0).stats().reservation_fallbacks, 0u);
  // Stop gives back the two of 1000 bytes left.
  EXPECT_EQ(w().state().stats().reservations, 2u);
  ASSERT_TRUE(w().Run(0, c(0).Stop()).ok());
  EXPECT_EQ(w().state().stats().reservations, 0u);
  EXPECT_EQ(w().state().stats().reservations_released, 2u);
  EXPECT_EQ(*w().Run(1, c(1).Get("k6")), Pattern(6, 1000));
}

// A reservation that lapsed in the client's pool is not written: the client asks again,
// giving the lapsed one back with the request. One the master reclaimed before the
// commit (here: the master restarted) makes the put take the two-RPC path.
TEST_P(StoreApi, LapsedOrReclaimedReservationsAreNeverWritten) {
  StoreWorldOptions o = Opts(2);
  o.client.put_reservations = 2;
  MAKE_OR_SKIP(o);
  SIM_ONLY("virtual time and a master restart");
  const uint64_t valid = w().state().reservation_valid_ns();
  ASSERT_EQ(w().Run(0, c(0).Put("a", Pattern(1, 512))).code(), ErrorCode::OK);   // 1 asked
  ASSERT_EQ(w().Run(0, c(0).Put("a2", Pattern(4, 512))).code(), ErrorCode::OK);  // 2 asked
  w().Advance(valid);
  ASSERT_EQ(w().Run(0, c(0).Put("b", Pattern(2, 512))).code(), ErrorCode::OK);
  EXPECT_EQ(c(0).stats().reservation_requests, 3u);
  EXPECT_EQ(c(0).stats().reserved_puts, 3u);
  // The lapsed one went back with the third request (or the master's sweep took it).
  const MasterStats after_lapse = w().state().stats();
  EXPECT_EQ(after_lapse.reservations_released + after_lapse.reservations_reclaimed, 1u);
  EXPECT_EQ(after_lapse.reservations, 1u);
  // The master restarts: the client's remaining reservation is reclaimed; its next put
  // writes there (still valid on the client's clock), the commit is refused, and the put
  // goes the two-RPC way.
  ASSERT_TRUE(w().CrashMaster().ok());
  ASSERT_TRUE(w().RestartMaster().ok());
  ASSERT_EQ(w().Run(0, c(0).Put("c", Pattern(3, 512))).code(), ErrorCode::OK);
  EXPECT_EQ(c(0).stats().reservation_fallbacks, 1u);
  EXPECT_EQ(c(0).stats().kept_reservations_used, 1u);  // "c": the lapsed one was not used
  EXPECT_EQ(w().state().stats().puts_started, 1u);
  for (const auto& [key, seed] :
       std::vector<std::pair<std::string, uint64_t>>{{"a", 1}, {"a2", 4}, {"b", 2}, {"c", 3}}) {
    Result<std::string> got = w().Run(1, c(1).Get(key));
    ASSERT_TRUE(got.ok()) << key << ": " << got.status().ToString();
    EXPECT_EQ(*got, Pattern(seed, 512)) << key;
  }
}

// A reservation request that brings nothing (here: no room, the store holds a hard-pinned
// object) is not repeated for 100 ms: the puts meanwhile take the two-RPC path, whose
// code they return, without a third RPC.
TEST_P(StoreApi, ARefusedReservationIsNotAskedAgainAtOnce) {
  StoreWorldOptions o = Opts(2);
  o.segment_bytes = 80 << 10;
  o.client.put_reservations = 4;
  MAKE_OR_SKIP(o);
  SIM_ONLY("virtual time");
  ReplicateConfig pinned;
  pinned.hard_pin = true;
  // Both segments full of hard-pinned objects (above 64 KiB: each put the two-RPC way).
  ASSERT_EQ(w().Run(0, c(0).Put("pin0", Pattern(1, 80 << 10), pinned)).code(), ErrorCode::OK);
  ASSERT_EQ(w().Run(0, c(0).Put("pin1", Pattern(2, 80 << 10), pinned)).code(), ErrorCode::OK);
  EXPECT_EQ(c(0).stats().reservation_requests, 0u);
  EXPECT_EQ(w().Run(0, c(0).Put("a", Pattern(3, 4096))).code(), ErrorCode::NO_AVAILABLE_HANDLE);
  EXPECT_EQ(c(0).stats().reservation_requests, 1u);
  EXPECT_EQ(w().Run(0, c(0).Put("b", Pattern(4, 4096))).code(), ErrorCode::NO_AVAILABLE_HANDLE);
  EXPECT_EQ(c(0).stats().reservation_requests, 1u);  // not asked again
  ASSERT_EQ(w().Run(0, c(0).Remove("pin0", /*force=*/true)).code(), ErrorCode::OK);
  w().Advance(100 * kMs);
  ASSERT_EQ(w().Run(0, c(0).Put("c", Pattern(5, 4096))).code(), ErrorCode::OK);
  EXPECT_EQ(c(0).stats().reservation_requests, 2u);
  EXPECT_EQ(c(0).stats().reserved_puts, 1u);
  EXPECT_EQ(*w().Run(1, c(1).Get("c")), Pattern(5, 4096));
}

INSTANTIATE_TEST_SUITE_P(Fabrics, StoreApi, ::testing::ValuesIn(cluster::BackendNames()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tidal::store
