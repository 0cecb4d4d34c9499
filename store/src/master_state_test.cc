// Unit tests of the master's pure state machine (MasterState): placement on distinct
// segments with preferred segments first, the put/lease/remove state machine and its
// error codes, generations, eviction order (LRU, skipping leased, unfinished and
// hard-pinned objects, soft-pinned last), synchronous eviction when space runs out,
// reclaim of dead writers' and timed-out puts, and client death keeping objects that have
// another replica. Time is passed in, so every case is exact.
#include <gtest/gtest.h>

#include "tidal/store/master.h"

namespace tidal::store {
namespace {

constexpr uint64_t kS = 1'000'000'000;

class StoreMaster : public ::testing::Test {
 protected:
  void SetUp() override {
    opts_.lease_ttl_ns = 1 * kS;
    opts_.client_ttl_ns = 5 * kS;
    opts_.put_timeout_ns = 10 * kS;
    opts_.reclaim_quarantine_ns = 1 * kS;
    m_ = std::make_unique<MasterState>(opts_);
    for (int i = 1; i <= 3; ++i) {
      std::string c = "c" + std::to_string(i);
      ASSERT_TRUE(m_->Mount(c, "node" + std::to_string(i), 0x10000 * i, 4096, 0).ok());
    }
  }
  // Puts and ends a `size`-byte object; returns its generation.
  uint64_t Put(const std::string& key, uint64_t size, ReplicateConfig cfg = {}, uint64_t t = 0) {
    auto r = m_->PutStart("c1", key, size, cfg, t);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return 0;
    EXPECT_TRUE(m_->PutEnd("c1", key, r->first, t).ok());
    return r->first;
  }
  void TearDown() override {
    Status s = m_->CheckInvariants();
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  MasterOptions opts_;
  std::unique_ptr<MasterState> m_;
};

TEST_F(StoreMaster, PlacementDistinctAndPreferred) {
  ReplicateConfig cfg;
  cfg.replica_num = 3;
  cfg.preferred_segments = {"node3", "nodeX", "node2"};
  auto r = m_->PutStart("c1", "k", 100, cfg, 0);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->second.size(), 3u);
  EXPECT_EQ(r->second[0].segment, "node3");
  EXPECT_EQ(r->second[1].segment, "node2");
  EXPECT_EQ(r->second[2].segment, "node1");
  EXPECT_EQ(r->second[0].addr, 0x30000u);
  cfg.replica_num = 4;
  EXPECT_EQ(m_->PutStart("c1", "k2", 100, cfg, 0).code(), ErrorCode::NO_AVAILABLE_HANDLE);
}

TEST_F(StoreMaster, PutStateMachineCodes) {
  EXPECT_EQ(m_->PutStart("c1", "", 10, {}, 0).code(), ErrorCode::INVALID_KEY);
  EXPECT_EQ(m_->PutStart("c1", "k", 0, {}, 0).code(), ErrorCode::INVALID_PARAMS);
  auto r = m_->PutStart("c1", "k", 10, {}, 0);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(m_->PutStart("c2", "k", 10, {}, 0).code(), ErrorCode::OBJECT_ALREADY_EXISTS);
  EXPECT_EQ(m_->GetReplicaList("k", 0, 0).code(), ErrorCode::REPLICA_IS_NOT_READY);
  EXPECT_EQ(m_->Stat("k", 0).code(), ErrorCode::REPLICA_IS_NOT_READY);
  EXPECT_EQ(m_->Remove("k", false, 0).code(), ErrorCode::REPLICA_IS_NOT_READY);
  EXPECT_EQ(m_->PutEnd("c1", "k", r->first + 1, 0).code(), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_TRUE(m_->PutEnd("c1", "k", r->first, 0).ok());
  EXPECT_TRUE(m_->PutEnd("c1", "k", r->first, 0).ok());  // idempotent
  EXPECT_EQ(m_->PutRevoke("c1", "k", r->first, 0).code(), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(m_->PutStart("c2", "k", 10, {}, 0).code(), ErrorCode::OBJECT_ALREADY_EXISTS);
  EXPECT_EQ(m_->Stat("k", 0).value().size, 10u);
}

TEST_F(StoreMaster, RevokeFreesAfterQuarantine) {
  auto r = m_->PutStart("c1", "k", 4096, {}, 0);
  ASSERT_TRUE(r.ok());
  uint64_t used = m_->stats().used_bytes;
  EXPECT_TRUE(m_->PutRevoke("c1", "k", r->first, 0).ok());
  EXPECT_EQ(m_->stats().used_bytes, used);  // quarantined
  m_->Tick(2 * kS);
  EXPECT_EQ(m_->stats().used_bytes, used - 4096);
  EXPECT_EQ(m_->Stat("k", 0).code(), ErrorCode::OBJECT_NOT_FOUND);
}

TEST_F(StoreMaster, LeasesBlockRemoveAndDeferTheFree) {
  Put("k", 1000);
  auto g = m_->GetReplicaList("k", 0, 100);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(m_->Remove("k", false, 200).code(), ErrorCode::OBJECT_HAS_LEASE);
  uint64_t used = m_->stats().used_bytes;
  EXPECT_TRUE(m_->Remove("k", true, 200).ok());
  EXPECT_EQ(m_->stats().used_bytes, used);  // still leased memory
  m_->Tick(100 + kS + 1);
  EXPECT_EQ(m_->stats().used_bytes, used - 1024);
  Put("k2", 1000);
  ASSERT_TRUE(m_->GetReplicaList("k2", 0, 0).ok());
  EXPECT_TRUE(m_->Remove("k2", false, kS + 1).ok());  // lease over
}

TEST_F(StoreMaster, GenerationsGrowAndStaleOnesFail) {
  uint64_t g1 = Put("k", 10);
  EXPECT_TRUE(m_->Remove("k", true, 0).ok());
  uint64_t g2 = Put("k", 10);
  EXPECT_GT(g2, g1);
  EXPECT_EQ(m_->GetReplicaList("k", g1, 0).code(), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_TRUE(m_->GetReplicaList("k", g2, 0).ok());
}

TEST_F(StoreMaster, EvictionOrderSkipsLeasedPinnedUnfinishedSoftLast) {
  ReplicateConfig hard, soft;
  hard.hard_pin = true;
  soft.soft_pin_ttl_ns = 100 * kS;
  // 3 segments x 4096 bytes, 1024-byte objects: 12 slots.
  Put("soft", 1024, soft, 1);
  Put("hard", 1024, hard, 2);
  Put("old", 1024, {}, 3);
  Put("leased", 1024, {}, 4);
  ASSERT_TRUE(m_->GetReplicaList("leased", 0, 5).ok());
  ASSERT_TRUE(m_->PutStart("c1", "open", 1024, {}, 6).ok());
  for (int i = 0; i < 7; ++i) Put("f" + std::to_string(i), 1024, {}, 10 + i);
  // Full now: the next put evicts synchronously, the least recently used first.
  ASSERT_TRUE(m_->PutStart("c1", "n1", 1024, {}, 20).ok());
  EXPECT_EQ(m_->Stat("old", 20).code(), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_TRUE(m_->Stat("soft", 20).ok());
  EXPECT_TRUE(m_->Stat("hard", 20).ok());
  EXPECT_TRUE(m_->Stat("leased", 20).ok());
  EXPECT_EQ(m_->Stat("open", 20).code(), ErrorCode::REPLICA_IS_NOT_READY);
  EXPECT_GE(m_->stats().evicted, 1u);
}

TEST_F(StoreMaster, NoSpaceWhenEverythingIsProtected) {
  ReplicateConfig hard;
  hard.hard_pin = true;
  for (int i = 0; i < 3; ++i) Put("h" + std::to_string(i), 4096, hard);
  EXPECT_EQ(m_->PutStart("c1", "x", 64, {}, 0).code(), ErrorCode::NO_AVAILABLE_HANDLE);
}

TEST_F(StoreMaster, DeadWriterAndTimedOutPutsAreReclaimed) {
  ASSERT_TRUE(m_->PutStart("c2", "by_c2", 100, {}, 0).ok());
  ReplicateConfig on3;
  on3.preferred_segments = {"node3"};
  ASSERT_TRUE(m_->PutStart("c9", "slow", 100, on3, 0).ok());
  m_->Heartbeat("c1", 4 * kS);
  m_->Heartbeat("c3", 4 * kS);
  m_->Heartbeat("c9", 4 * kS);
  m_->Tick(6 * kS);  // c2 silent for 6 s: dead
  EXPECT_FALSE(m_->ClientAlive("c2"));
  EXPECT_EQ(m_->Stat("by_c2", 6 * kS).code(), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(m_->Stat("slow", 6 * kS).code(), ErrorCode::REPLICA_IS_NOT_READY);
  m_->Heartbeat("c1", 9 * kS);
  m_->Heartbeat("c3", 9 * kS);
  m_->Heartbeat("c9", 9 * kS);
  m_->Tick(11 * kS);  // past the put timeout
  EXPECT_EQ(m_->Stat("slow", 11 * kS).code(), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(m_->stats().puts_reclaimed, 2u);
}

TEST_F(StoreMaster, HolderDeathKeepsObjectsWithAnotherReplica) {
  ReplicateConfig two;
  two.replica_num = 2;
  two.preferred_segments = {"node2", "node3"};
  Put("both", 100, two);
  ReplicateConfig only2;
  only2.preferred_segments = {"node2"};
  Put("only", 100, only2);
  m_->Heartbeat("c1", 4 * kS);
  m_->Heartbeat("c3", 4 * kS);
  m_->Tick(6 * kS);  // c2 (node2) dead
  auto r = m_->GetReplicaList("both", 0, 6 * kS);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->second.size(), 1u);
  EXPECT_EQ(r->second[0].segment, "node3");
  EXPECT_EQ(m_->Stat("only", 6 * kS).code(), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(m_->stats().lost, 1u);
}

TEST_F(StoreMaster, UnmountIsGracefulAndReportsDrain) {
  ReplicateConfig two;
  two.replica_num = 2;
  two.preferred_segments = {"node1", "node2"};
  Put("k", 100, two);
  ASSERT_TRUE(m_->GetReplicaList("k", 0, 0).ok());
  EXPECT_EQ(m_->Unmount("c2", 1, 0).code(), ErrorCode::SEGMENT_NOT_FOUND);  // c1's mount
  auto drain = m_->Unmount("c1", 1, 100);
  ASSERT_TRUE(drain.ok());
  EXPECT_EQ(*drain, kS - 100);  // the lease granted at 0 runs 1 s
  auto r = m_->GetReplicaList("k", 0, 200);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->second.size(), 1u);
  EXPECT_EQ(m_->Heartbeat("c1", 300), std::vector<uint64_t>{});
}

TEST_F(StoreMaster, MountValidation) {
  EXPECT_EQ(m_->Mount("c1", "node1", 0, 4096, 0).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(m_->Mount("c1", "node1", 0x10000, 8192, 0).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(m_->Mount("c2", "node1", 0x10000, 4096, 0).code(), ErrorCode::INVALID_PARAMS);
  // The same client mounting the same range again is a retry: the same mount.
  EXPECT_EQ(m_->Mount("c1", "node1", 0x10000, 4096, 0).value(), m_->Heartbeat("c1", 0).at(0));
  EXPECT_EQ(m_->Mount("c1", "node1", 0x20000, 10, 0).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(m_->Mount("c1", "", 0x20000, 4096, 0).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_TRUE(m_->Mount("c1", "node1", 0x90000, 4096, 0).ok());
}

TEST_F(StoreMaster, FalselyDeadClientsMemoryIsFencedUntilItsLeasesEnd) {
  // c2 (node2) mounted at 0 and then went silent; its TTL is 5 s.
  ReplicateConfig on2;
  on2.preferred_segments = {"node2"};
  Put("k", 100, on2);
  const uint64_t grant = 4 * kS + kS / 2;
  ASSERT_TRUE(m_->GetReplicaList("k", 0, grant).ok());  // a reader's lease until 5.5 s
  m_->Heartbeat("c1", 5 * kS);
  m_->Heartbeat("c3", 5 * kS);
  m_->Tick(5 * kS + 10);
  EXPECT_FALSE(m_->ClientAlive("c2"));
  // c2 was alive after all: it mounts the same memory again while that lease still runs.
  // Nothing may be placed there before the lease ends.
  ASSERT_TRUE(m_->Mount("c2", "node2", 0x20000, 4096, 5 * kS + 20).ok());
  ReplicateConfig all3;
  all3.replica_num = 3;
  EXPECT_EQ(m_->PutStart("c1", "x", 100, all3, 5 * kS + 30).code(), ErrorCode::NO_AVAILABLE_HANDLE);
  EXPECT_TRUE(m_->PutStart("c1", "y", 100, all3, grant + kS + 1).ok());
}

TEST_F(StoreMaster, ForceRemoveOfAnUnfinishedPutFailsItsPutEnd) {
  auto r = m_->PutStart("c1", "k", 100, {}, 0);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(m_->Remove("k", true, 10).ok());
  EXPECT_EQ(m_->PutEnd("c1", "k", r->first, 20).code(), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(m_->Stat("k", 30).code(), ErrorCode::OBJECT_NOT_FOUND);
  auto again = m_->PutStart("c2", "k", 100, {}, 40);
  ASSERT_TRUE(again.ok());
  EXPECT_GT(again->first, r->first);
}

TEST_F(StoreMaster, SoftPinExpiresAndWatermarkEvicts) {
  ReplicateConfig soft;
  soft.soft_pin_ttl_ns = 10;
  // 12 KiB in all; 11 x 1 KiB objects put 91.7 % over the 90 % watermark.
  for (int i = 0; i < 10; ++i)
    Put("o" + std::to_string(i), 1024, i == 0 ? soft : ReplicateConfig{}, 100 + i);
  EXPECT_EQ(m_->stats().evicted, 0u);
  Put("o10", 1024, {}, 200);
  // Above the watermark: ceil(5 % of 11) = 1 object goes, the least recently used. o0's
  // soft pin (until 110) has lapsed by 200, so that is o0.
  EXPECT_EQ(m_->stats().evicted, 1u);
  EXPECT_EQ(m_->Stat("o0", 200).code(), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_TRUE(m_->Stat("o1", 200).ok());
}

}  // namespace
}  // namespace tidal::store
