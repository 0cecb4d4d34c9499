// Unit tests of the master's durability (MasterState::Recover over a MemoryJournal): a
// master is destroyed (its process crashed) and a new one is rebuilt from the journal.
// Pinned: complete objects come back at the same replica ranges with the same generation;
// generations never go back; a put being written at the crash is reclaimed (its PutEnd
// fails, its memory is quarantined); leases are void but the memory they could read is
// not reused before lease_ttl after the restart; an object whose only holder died while
// the master was down is reported lost; a retried mount gets its id back; a journal that
// does not decode is CORRUPT_INPUT naming the record. Time is passed in: every case is exact.
#include <gtest/gtest.h>

#include "tidal/store/master.h"

namespace tidal::store {
namespace {

constexpr uint64_t kS = 1'000'000'000;

class StoreMasterRestart : public ::testing::Test {
 protected:
  void SetUp() override {
    opts_.lease_ttl_ns = 1 * kS;
    opts_.client_ttl_ns = 5 * kS;
    opts_.put_timeout_ns = 10 * kS;
    opts_.reclaim_quarantine_ns = 2 * kS;
    m_ = std::make_unique<MasterState>(opts_);
    ASSERT_TRUE(m_->Recover(&journal_, 0).ok());
    EXPECT_EQ(m_->incarnation(), 1u);
    for (int i = 1; i <= 3; ++i) {
      std::string c = "c" + std::to_string(i);
      ASSERT_TRUE(m_->Mount(c, "node" + std::to_string(i), 0x10000 * i, 4096, 0).ok());
    }
  }
  void TearDown() override {
    Status s = m_->CheckInvariants();
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  uint64_t Put(const std::string& key, uint64_t size, ReplicateConfig cfg = {}, uint64_t t = 0) {
    auto r = m_->PutStart("c1", key, size, cfg, t);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return 0;
    EXPECT_TRUE(m_->PutEnd("c1", key, r->first, t).ok());
    return r->first;
  }
  // The master process dies and a new one starts from the journal at `t`.
  void Restart(uint64_t t) {
    m_ = std::make_unique<MasterState>(opts_);
    Status s = m_->Recover(&journal_, t);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  static ReplicateConfig On(const std::string& segment, uint32_t replicas = 1) {
    ReplicateConfig cfg;
    cfg.replica_num = replicas;
    cfg.preferred_segments = {segment};
    return cfg;
  }
  MasterOptions opts_;
  MemoryJournal journal_;
  std::unique_ptr<MasterState> m_;
};

TEST_F(StoreMasterRestart, CompleteObjectSurvivesWithSameGenerationAndRanges) {
  const uint64_t g = Put("k", 100, On("node2", 2));
  const std::vector<ReplicaLocation> before = m_->Replicas("k");
  ASSERT_EQ(before.size(), 2u);
  Restart(3 * kS);
  EXPECT_EQ(m_->incarnation(), 2u);
  EXPECT_EQ(m_->stats().recovered_objects, 1u);
  auto r = m_->GetReplicaList("k", g, 3 * kS);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->first.generation, g);
  EXPECT_EQ(r->first.size, 100u);
  EXPECT_EQ(r->second, before);
  // A second restart keeps it too, and bumps the incarnation again.
  Restart(4 * kS);
  EXPECT_EQ(m_->incarnation(), 3u);
  EXPECT_EQ(m_->Stat("k", 4 * kS)->generation, g);
}

TEST_F(StoreMasterRestart, GenerationsNeverGoBack) {
  const uint64_t g1 = Put("k", 64);
  ASSERT_TRUE(m_->Remove("k", false, 0).ok());
  Restart(1 * kS);
  const uint64_t g2 = Put("k", 64, {}, 1 * kS);
  EXPECT_GT(g2, g1);
  Restart(2 * kS);
  const uint64_t g3 = Put("k2", 64, {}, 2 * kS);
  EXPECT_GT(g3, g2);
  // A reader holding g1's reference fails, naming the generations.
  auto r = m_->GetReplicaList("k", g1, 2 * kS);
  EXPECT_EQ(r.code(), ErrorCode::OBJECT_NOT_FOUND);
}

TEST_F(StoreMasterRestart, PutBeingWrittenIsReclaimedAndQuarantined) {
  auto started = m_->PutStart("c1", "k", 4096, On("node1"), 0);
  ASSERT_TRUE(started.ok());
  ASSERT_EQ(started->second[0].addr, 0x10000u);
  Restart(1 * kS);
  EXPECT_EQ(m_->stats().puts_reclaimed, 1u);
  // The writer's PutEnd (or its retry) fails: the put is not acknowledged.
  EXPECT_EQ(m_->PutEnd("c1", "k", started->first, 1 * kS).code(), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(m_->GetReplicaList("k", 0, 1 * kS).code(), ErrorCode::OBJECT_NOT_FOUND);
  // Its memory is quarantined against late writes: node1 is full until 1 s + 2 s.
  EXPECT_EQ(m_->PutStart("c1", "x", 4096, On("node1", 3), 2 * kS).code(),
            ErrorCode::NO_AVAILABLE_HANDLE);
  m_->Heartbeat("c1", 3 * kS + 1);
  m_->Heartbeat("c2", 3 * kS + 1);
  m_->Heartbeat("c3", 3 * kS + 1);
  m_->Tick(3 * kS + 1);
  auto again = m_->PutStart("c1", "k", 4096, On("node1"), 3 * kS + 1);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->second[0].addr, 0x10000u);
  EXPECT_GT(again->first, started->first);
}

TEST_F(StoreMasterRestart, LeaseOutstandingAtTheCrashFencesTheMemory) {
  const uint64_t g = Put("k", 4096, On("node1"));
  ASSERT_TRUE(m_->GetReplicaList("k", g, 0).ok());  // a reader holds a lease until 1 s
  Restart(500'000'000);
  // The lease is void: a plain remove is not refused...
  EXPECT_TRUE(m_->Remove("k", false, 500'000'000).ok());
  // ...but the memory the reader may still be reading is not reused before 0.5 s + 1 s.
  ReplicateConfig all3 = On("node1", 3);
  EXPECT_EQ(m_->PutStart("c1", "y", 4096, all3, 600'000'000).code(),
            ErrorCode::NO_AVAILABLE_HANDLE);
  m_->Tick(1'400'000'000);
  EXPECT_EQ(m_->PutStart("c1", "y", 4096, all3, 1'400'000'000).code(),
            ErrorCode::NO_AVAILABLE_HANDLE);
  m_->Tick(1'500'000'001);
  auto r = m_->PutStart("c1", "y", 4096, On("node1"), 1'500'000'001);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->second[0].addr, 0x10000u);
}

TEST_F(StoreMasterRestart, DeferredFreeSurvivesTheRestart) {
  const uint64_t g = Put("k", 4096, On("node1"));
  ASSERT_TRUE(m_->GetReplicaList("k", g, 0).ok());
  ASSERT_TRUE(m_->Remove("k", true, 0).ok());  // forced under a lease: freed at 1 s
  Restart(100'000'000);
  // Held past the restart, until the later of the quarantine and the lease fence.
  m_->Tick(1'100'000'001);
  EXPECT_EQ(m_->PutStart("c1", "y", 4096, On("node1", 3), 1'100'000'001).code(),
            ErrorCode::NO_AVAILABLE_HANDLE);
  m_->Tick(2'100'000'001);
  auto r = m_->PutStart("c1", "y", 4096, On("node1"), 2'100'000'001);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->second[0].addr, 0x10000u);
}

TEST_F(StoreMasterRestart, OnlyHolderDiedWhileDownIsReportedLost) {
  const uint64_t g = Put("k", 100, On("node2"));
  const uint64_t kept = Put("kept", 100, On("node3"));
  Restart(1 * kS);
  // c2 never comes back; c1 and c3 heart-beat. Every owner got a full TTL from the restart.
  m_->Tick(5 * kS);
  EXPECT_TRUE(m_->ClientAlive("c2"));
  m_->Heartbeat("c1", 5 * kS);
  m_->Heartbeat("c3", 5 * kS);
  m_->Tick(6 * kS + 1);
  EXPECT_FALSE(m_->ClientAlive("c2"));
  EXPECT_EQ(m_->stats().lost, 1u);
  auto r = m_->GetReplicaList("k", 0, 6 * kS + 1);
  ASSERT_EQ(r.code(), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_NE(r.status().message().find("generation " + std::to_string(g) + " was lost"),
            std::string::npos)
      << r.status().ToString();
  EXPECT_EQ(m_->GetReplicaList("kept", kept, 6 * kS + 1)->first.generation, kept);
  // The report survives another restart, and a new put of the key clears it.
  Restart(7 * kS);
  EXPECT_NE(m_->Stat("k", 7 * kS).status().message().find("was lost"), std::string::npos);
  const uint64_t g2 = Put("k", 100, On("node1"), 7 * kS);
  EXPECT_GT(g2, g);
  EXPECT_EQ(m_->Stat("k", 7 * kS)->generation, g2);
}

TEST_F(StoreMasterRestart, MountRetriedAcrossRestartKeepsItsId) {
  auto id = m_->Mount("c1", "node1", 0x90000, 4096, 0);
  ASSERT_TRUE(id.ok());
  Restart(1 * kS);
  auto again = m_->Mount("c1", "node1", 0x90000, 4096, 1 * kS);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *id);
  // Another client (or a different range) overlapping it is still refused.
  EXPECT_EQ(m_->Mount("c2", "node1", 0x90000, 4096, 1 * kS).code(), ErrorCode::INVALID_PARAMS);
  const std::vector<uint64_t> mine = m_->Heartbeat("c1", 1 * kS);
  EXPECT_EQ(mine.size(), 2u);
}

TEST_F(StoreMasterRestart, CorruptJournalIsNamed) {
  Put("k", 100);
  journal_.Put("o/k", "garbage");
  m_ = std::make_unique<MasterState>(opts_);
  Status s = m_->Recover(&journal_, 1 * kS);
  EXPECT_EQ(s.code(), ErrorCode::CORRUPT_INPUT);
  EXPECT_NE(s.message().find("'o/k'"), std::string::npos) << s.ToString();
  journal_.Put("o/k", "");
  journal_.Put("zz", "x");
  m_ = std::make_unique<MasterState>(opts_);
  s = m_->Recover(&journal_, 1 * kS);
  EXPECT_EQ(s.code(), ErrorCode::CORRUPT_INPUT);
  // Leave a usable state for TearDown.
  m_ = std::make_unique<MasterState>(opts_);
}

TEST_F(StoreMasterRestart, WithoutAJournalARestartStartsEmpty) {
  MasterState plain(opts_);
  ASSERT_TRUE(plain.Mount("c1", "node1", 0x10000, 4096, 0).ok());
  auto r = plain.PutStart("c1", "k", 64, {}, 0);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(plain.incarnation(), 1u);
  MasterState fresh(opts_);
  EXPECT_EQ(fresh.GetReplicaList("k", 0, 1).code(), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_TRUE(fresh.Heartbeat("c1", 1).empty());  // the client learns to mount again
}

}  // namespace
}  // namespace tidal::store

namespace tidal::store {
namespace {

// A reservation held at the crash is reclaimed by the restart: its commit fails, its memory
// waits out the quarantine (its validity is covered by the recovery fence), and ids handed
// out after the restart are new.
TEST_F(StoreMasterRestart, ReservationHeldAtTheCrashIsReclaimedAndItsIdNeverReturns) {
  auto r = m_->Reserve("c1", 4096, On("node1"), 1, {}, 0);
  ASSERT_TRUE(r.ok());
  const uint64_t id = (*r)[0].id;
  Restart(1 * kS);
  EXPECT_EQ(m_->stats().reservations, 0u);
  EXPECT_EQ(m_->stats().reservations_reclaimed, 1u);
  EXPECT_EQ(m_->PutCommit("c1", "k", id, 4096, {}, 1 * kS).code(), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(m_->PutStart("c1", "x", 4096, On("node1", 3), 3 * kS).code(),
            ErrorCode::NO_AVAILABLE_HANDLE);
  m_->Heartbeat("c1", 3 * kS + 1);
  m_->Heartbeat("c2", 3 * kS + 1);
  m_->Heartbeat("c3", 3 * kS + 1);
  m_->Tick(3 * kS + 1);
  auto again = m_->Reserve("c1", 4096, On("node1"), 1, {}, 3 * kS + 1);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ((*again)[0].replicas[0].addr, 0x10000u);
  EXPECT_GT((*again)[0].id, id);
  // A committed reservation survives as an object.
  ASSERT_TRUE(m_->PutCommit("c1", "k", (*again)[0].id, 4096, {}, 3 * kS + 1).ok());
  Restart(4 * kS);
  EXPECT_EQ(m_->GetReplicaList("k", 0, 4 * kS).value().second[0].addr, 0x10000u);
}

}  // namespace
}  // namespace tidal::store
