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

// Put reservations (MasterState::Reserve / PutCommit): memory placed before the key, an
// object made complete by one call.
class StoreMasterReservations : public StoreMaster {
 protected:
  static ReplicateConfig On(std::vector<std::string> segments, uint32_t replicas = 1) {
    ReplicateConfig cfg;
    cfg.replica_num = replicas;
    cfg.preferred_segments = std::move(segments);
    return cfg;
  }
  std::vector<uint64_t> Ids(const std::vector<MasterState::Reserved>& r) {
    std::vector<uint64_t> ids;
    for (const auto& x : r) ids.push_back(x.id);
    return ids;
  }
};

TEST_F(StoreMasterReservations, CommitMakesACompleteObjectAtTheReservedRange) {
  EXPECT_EQ(m_->reservation_valid_ns(), 1 * kS);  // min(put timeout, client TTL, lease TTL)
  auto r = m_->Reserve("c1", 1024, On({"node1"}), 3, {}, 0);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].replicas, (std::vector<ReplicaLocation>{{"node1", 0x10000, 1024}}));
  EXPECT_EQ((*r)[1].replicas[0].addr, 0x10400u);
  EXPECT_EQ((*r)[2].replicas[0].addr, 0x10800u);
  EXPECT_EQ(m_->stats().reservations, 3u);
  EXPECT_EQ(m_->stats().used_bytes, 3u * 1024);
  // Nothing is visible before the commit.
  EXPECT_EQ(m_->Stat("k", 0).code(), ErrorCode::OBJECT_NOT_FOUND);

  Result<uint64_t> g = m_->PutCommit("c1", "k", (*r)[0].id, 1024, On({"node1"}), 10);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_GT(*g, (*r)[2].id);  // ids and generations come from one counter
  EXPECT_EQ(m_->Stat("k", 10).value().generation, *g);
  auto list = m_->GetReplicaList("k", 0, 10);
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->second, (*r)[0].replicas);

  // Used up; another client's is not ours; a taken key keeps the reservation.
  EXPECT_EQ(m_->PutCommit("c1", "k2", (*r)[0].id, 1024, {}, 10).code(),
            ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(m_->PutCommit("c2", "k2", (*r)[1].id, 1024, {}, 10).code(),
            ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(m_->PutCommit("c1", "k", (*r)[1].id, 1024, {}, 10).code(),
            ErrorCode::OBJECT_ALREADY_EXISTS);
  EXPECT_EQ(m_->PutCommit("c1", "k2", (*r)[1].id, 1000, {}, 10).code(), ErrorCode::INVALID_PARAMS);
  ReplicateConfig two;
  two.replica_num = 2;
  EXPECT_EQ(m_->PutCommit("c1", "k2", (*r)[1].id, 1024, two, 10).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(m_->PutCommit("c1", "", (*r)[1].id, 1024, {}, 10).code(), ErrorCode::INVALID_KEY);
  EXPECT_TRUE(m_->PutCommit("c1", "k2", (*r)[1].id, 1024, {}, 10).ok());
  EXPECT_EQ(m_->stats().puts_committed, 2u);
  EXPECT_EQ(m_->stats().reservations, 1u);
  EXPECT_EQ(m_->stats().objects, 2u);
  EXPECT_EQ(m_->stats().used_bytes, 3u * 1024);
}

TEST_F(StoreMasterReservations, ValidationAndTheLimitPerClient) {
  EXPECT_EQ(m_->Reserve("c1", 0, {}, 1, {}, 0).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(m_->Reserve("c1", 64, On({}, 0), 1, {}, 0).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(m_->Reserve("c1", 64, {}, 0, {}, 0).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(m_->Reserve("c1", 64, {}, 65, {}, 0).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(m_->Reserve("c1", 64, On({}, 4), 1, {}, 0).code(), ErrorCode::NO_AVAILABLE_HANDLE);
  ASSERT_TRUE(m_->Mount("c4", "node4", 0x100000, 1 << 20, 0).ok());
  std::vector<uint64_t> held;
  for (int i = 0; i < 4; ++i) {
    auto r = m_->Reserve("c1", 64, On({"node4"}), 64, {}, 0);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(r->size(), 64u);
    for (uint64_t id : Ids(*r)) held.push_back(id);
  }
  Result<std::vector<MasterState::Reserved>> over = m_->Reserve("c1", 64, On({"node4"}), 1, {}, 0);
  EXPECT_EQ(over.code(), ErrorCode::NO_AVAILABLE_HANDLE);
  EXPECT_NE(over.status().message().find("holds 256"), std::string::npos)
      << over.status().ToString();
  // Giving two back (with the request) makes room for exactly two; another client's ids
  // are ignored.
  auto again = m_->Reserve("c1", 64, On({"node4"}), 64, {held[0], held[1]}, 0);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->size(), 2u);
  m_->ReleaseReservations("c2", {held[2]}, 0);
  EXPECT_EQ(m_->stats().reservations, 256u);
  EXPECT_EQ(m_->stats().reservations_released, 2u);
}

TEST_F(StoreMasterReservations, AnExpiredReservationIsReclaimedAndItsMemoryQuarantined) {
  auto r = m_->Reserve("c1", 4096, On({"node1"}), 1, {}, 0);
  ASSERT_TRUE(r.ok());
  m_->Tick(1 * kS);  // valid until 1 s: still held
  EXPECT_EQ(m_->stats().reservations, 1u);
  m_->Tick(1 * kS + 1);
  EXPECT_EQ(m_->stats().reservations, 0u);
  EXPECT_EQ(m_->stats().reservations_reclaimed, 1u);
  EXPECT_EQ(m_->PutCommit("c1", "k", (*r)[0].id, 4096, {}, 1 * kS + 2).code(),
            ErrorCode::OBJECT_NOT_FOUND);
  // A WRITE started while it was valid may still land: node1 is full until 1 s + 1 s.
  EXPECT_EQ(m_->PutStart("c1", "x", 4096, On({"node1"}, 3), 2 * kS).code(),
            ErrorCode::NO_AVAILABLE_HANDLE);
  m_->Tick(2 * kS + 1);
  auto put = m_->PutStart("c1", "x", 4096, On({"node1"}), 2 * kS + 1);
  ASSERT_TRUE(put.ok());
  EXPECT_EQ(put->second[0].addr, 0x10000u);
}

TEST_F(StoreMasterReservations, AReleasedReservationIsQuarantinedFromTheRelease) {
  auto r = m_->Reserve("c1", 4096, On({"node1"}), 1, {}, 0);
  ASSERT_TRUE(r.ok());
  m_->ReleaseReservations("c1", Ids(*r), kS / 2);
  EXPECT_EQ(m_->stats().reservations_released, 1u);
  EXPECT_EQ(m_->PutCommit("c1", "k", (*r)[0].id, 4096, {}, kS / 2).code(),
            ErrorCode::OBJECT_NOT_FOUND);
  m_->Tick(kS / 2 + kS - 1);
  EXPECT_EQ(m_->PutStart("c1", "x", 4096, On({"node1"}, 3), kS / 2 + kS - 1).code(),
            ErrorCode::NO_AVAILABLE_HANDLE);
  m_->Tick(kS / 2 + kS);
  EXPECT_TRUE(m_->PutStart("c1", "x", 4096, On({"node1"}, 3), kS / 2 + kS).ok());
}

TEST_F(StoreMasterReservations, DeadClientsAndDeadHoldersReservationsAreReclaimedAndFenced) {
  // c9 holds one on node1; c1 holds one on node1 and node2.
  ASSERT_TRUE(m_->Reserve("c9", 1024, On({"node1"}), 1, {}, 0).ok());
  auto both = m_->Reserve("c1", 1024, On({"node1", "node2"}, 2), 1, {}, 0);
  ASSERT_TRUE(both.ok());
  m_->Heartbeat("c1", 4 * kS);
  m_->Heartbeat("c3", 4 * kS);
  m_->Tick(6 * kS);  // c9 and c2 (node2's holder) silent for 6 s: dead
  EXPECT_FALSE(m_->ClientAlive("c9"));
  EXPECT_FALSE(m_->ClientAlive("c2"));
  EXPECT_EQ(m_->stats().reservations, 0u);
  EXPECT_EQ(m_->stats().reservations_reclaimed, 2u);
  EXPECT_EQ(m_->PutCommit("c1", "k", (*both)[0].id, 1024, On({}, 2), 6 * kS).code(),
            ErrorCode::OBJECT_NOT_FOUND);
  // node2's memory is fenced like leases would fence it: the reservation's validity ended
  // long ago, so the quarantine from now.
  EXPECT_EQ(m_->SegmentFenceNs("node2"), 7 * kS);
  // node1's two ranges are quarantined until 7 s as well.
  EXPECT_EQ(m_->stats().used_bytes, 2u * 1024);
  m_->Heartbeat("c1", 7 * kS + 1);
  m_->Heartbeat("c3", 7 * kS + 1);
  m_->Tick(7 * kS + 1);
  EXPECT_EQ(m_->stats().used_bytes, 0u);
}

// Reclaimed while still valid (a holder unmounted): the client may still write into the
// other replicas until the validity ends, so the quarantine runs from then, not from now.
TEST_F(StoreMasterReservations, ReclaimedWhileValidIsHeldUntilItsValidityAndTheQuarantine) {
  auto both = m_->Reserve("c1", 1024, On({"node1", "node2"}, 2), 1, {}, 0);
  ASSERT_TRUE(both.ok());
  ASSERT_TRUE(m_->Unmount("c2", 2, kS / 2).ok());  // node2's mount
  EXPECT_EQ(m_->stats().reservations_reclaimed, 1u);
  EXPECT_EQ(m_->PutCommit("c1", "k", (*both)[0].id, 1024, On({}, 2), kS / 2).code(),
            ErrorCode::OBJECT_NOT_FOUND);
  m_->Tick(kS / 2 + kS + 1);  // a quarantine after the reclaim: still held
  EXPECT_EQ(m_->stats().used_bytes, 1024u);
  m_->Tick(2 * kS);  // validity (1 s) + quarantine (1 s)
  EXPECT_EQ(m_->stats().used_bytes, 0u);
}

TEST_F(StoreMasterReservations, TheFirstReservationEvictsLikeAPut) {
  Put("old", 4096, On({"node1"}), 0);
  Put("new", 4096, On({"node2"}), 10);
  Put("newer", 4096, On({"node3"}), 20);
  // Everything is full: the first reservation evicts the least recently used object, the
  // rest take only free space (none).
  auto r = m_->Reserve("c1", 4096, {}, 4, {}, 30);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].replicas[0].segment, "node1");
  EXPECT_EQ(m_->Stat("old", 30).code(), ErrorCode::OBJECT_NOT_FOUND);
  // Then, as after a put, the store stands above its high watermark (all of it is used):
  // one more pass takes the next least recently used object.
  EXPECT_EQ(m_->Stat("new", 30).code(), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_TRUE(m_->Stat("newer", 30).ok());
  EXPECT_EQ(m_->stats().evicted, 2u);
}

}  // namespace
}  // namespace tidal::store
