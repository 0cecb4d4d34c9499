// Master crash and restart on the simulator (README: "Master restart"), end to end through
// StoreClients: the master's process state is destroyed (StoreWorld::CrashMaster) and a
// new master is rebuilt from its journal (RestartMaster) while the clients keep running.
// Pinned, with exact codes and bytes:
//   * an object put before the restart reads back after it: same bytes, same generation;
//   * while the master is down a call fails with RPC_TIMEOUT, and works again after;
//   * a put whose PutStart reached the master before the crash fails (OBJECT_NOT_FOUND:
//     the restarted master reclaimed it) and leaves nothing readable, never torn bytes;
//   * a get whose lease was granted before the crash still returns the complete object,
//     and the object's memory is not reused under it;
//   * an object whose only holder died while the master was down is reported lost.
#include <gtest/gtest.h>

#include "tidal/cluster/store_world.h"

namespace tidal::store {
namespace {

using cluster::Pattern;
using cluster::StoreWorld;
using cluster::StoreWorldOptions;

constexpr uint64_t kMs = 1'000'000;

StoreWorldOptions Opts(size_t clients) {
  StoreWorldOptions o;
  o.clients = clients;
  o.master.client_ttl_ns = 100 * kMs;
  o.master.sweep_interval_ns = 10 * kMs;
  o.client.heartbeat_interval_ns = 10 * kMs;
  o.client.rpc.timeout_ns = 20 * kMs;
  o.client.rpc.retry_ns = 2 * kMs;
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  o.replay_command = std::string("ctest --output-on-failure -R '") + info->test_suite_name() +
                     "." + info->name() + "'";
  return o;
}

ReplicateConfig On(size_t client) {
  ReplicateConfig cfg;
  cfg.preferred_segments = {StoreWorld::SegmentOf(client)};
  return cfg;
}

#define BANNER(w) \
  ::testing::ScopedTrace banner_trace(__FILE__, __LINE__, "replay information:\n" + (w).Banner())

TEST(StoreRestart, ObjectPutBeforeRestartReadsBackWithItsGeneration) {
  StoreWorld w(Opts(3));
  BANNER(w);
  const std::string v = Pattern(1, 5000);
  ASSERT_EQ(w.Run(0, w.client(0).Put("k", v, On(1))).code(), ErrorCode::OK);
  const uint64_t g = w.Run(0, w.client(0).Stat("k")).value().generation;
  ASSERT_TRUE(w.CrashMaster().ok());
  EXPECT_EQ(w.CrashMaster().code(), ErrorCode::INVALID_PARAMS);
  // Down: the master answers nothing.
  EXPECT_EQ(w.Run(2, w.client(2).Get("k")).code(), ErrorCode::RPC_TIMEOUT);
  ASSERT_TRUE(w.RestartMaster().ok());
  EXPECT_EQ(w.state().incarnation(), 2u);
  Result<std::string> got = w.Run(2, w.client(2).Get("k", {.generation = g}));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, v);
  EXPECT_EQ(w.Run(2, w.client(2).Stat("k")).value().generation, g);
  // The store takes new puts, with larger generations, and the clients stay registered.
  ASSERT_EQ(w.Run(1, w.client(1).Put("k2", Pattern(2, 100))).code(), ErrorCode::OK);
  EXPECT_GT(w.Run(1, w.client(1).Stat("k2")).value().generation, g);
  w.Advance(300 * kMs);  // well past the client TTL: every client heart-beats the new master
  EXPECT_EQ(w.state().stats().clients_died, 0u);
  EXPECT_EQ(w.Run(0, w.client(0).Get("k")).value(), v);
  EXPECT_TRUE(w.state().CheckInvariants().ok());
}

TEST(StoreRestart, PutInFlightAtTheCrashFailsAndLeavesNothing) {
  StoreWorld w(Opts(3));
  BANNER(w);
  const size_t n = 4 << 20;
  uint8_t* src = w.Buffer(0, n);
  const std::string v = Pattern(3, n);
  std::memcpy(src, v.data(), n);
  auto put = w.Start(0, w.client(0).PutFrom("k", src, n, On(1)));
  // PutStart answered: the replica write is under way (4 MiB take ~170 us at 25 GB/s).
  ASSERT_TRUE(w.RunUntil([&] { return !w.state().Replicas("k").empty(); }));
  w.Advance(20'000);
  ASSERT_FALSE(put->has_value());
  ASSERT_TRUE(w.CrashMaster().ok());
  w.Advance(1 * kMs);
  ASSERT_TRUE(w.RestartMaster().ok());
  EXPECT_EQ(w.state().stats().puts_reclaimed, 1u);
  ASSERT_TRUE(w.RunUntil([&] { return put->has_value(); }));
  EXPECT_EQ(put->value().code(), ErrorCode::OBJECT_NOT_FOUND) << put->value().ToString();
  EXPECT_EQ(w.Run(2, w.client(2).Get("k")).code(), ErrorCode::OBJECT_NOT_FOUND);
  // The key is free again; the new put is whole.
  ASSERT_EQ(w.Run(0, w.client(0).PutFrom("k", src, n, On(1))).code(), ErrorCode::OK);
  EXPECT_EQ(w.Run(2, w.client(2).Get("k")).value(), v);
}

TEST(StoreRestart, GetUnderALeaseFromBeforeTheCrashReadsOneGeneration) {
  StoreWorldOptions o = Opts(3);
  o.master.lease_ttl_ns = 50 * kMs;
  o.segment_bytes = 4 << 20;  // one 4 MiB object fills a segment: reuse would be visible
  StoreWorld w(o);
  BANNER(w);
  const size_t n = 4 << 20;
  const std::string v = Pattern(4, n);
  ASSERT_EQ(w.Run(0, w.client(0).Put("k", v, On(1))).code(), ErrorCode::OK);
  auto get = w.Start(2, w.client(2).Get("k"));
  ASSERT_TRUE(w.RunUntil([&] { return w.state().stats().leases_granted == 1; }));
  ASSERT_TRUE(w.CrashMaster().ok());
  ASSERT_TRUE(w.RestartMaster().ok());
  // The lease is void: the object can be removed at once, but its memory is held.
  ASSERT_EQ(w.Run(0, w.client(0).Remove("k")).code(), ErrorCode::OK);
  ReplicateConfig there = On(1);
  EXPECT_EQ(w.Run(0, w.client(0).Put("k2", Pattern(5, n), there)).code(), ErrorCode::OK);
  EXPECT_NE(w.state().Replicas("k2").at(0).segment, StoreWorld::SegmentOf(1));
  ASSERT_TRUE(w.RunUntil([&] { return get->has_value(); }));
  ASSERT_TRUE(get->value().ok()) << get->value().status().ToString();
  EXPECT_EQ(*get->value(), v);
  // After the lease fence, node 2's segment takes objects again.
  w.Advance(60 * kMs);
  ASSERT_EQ(w.Run(0, w.client(0).Put("k3", Pattern(6, n), there)).code(), ErrorCode::OK);
  EXPECT_EQ(w.state().Replicas("k3").at(0).segment, StoreWorld::SegmentOf(1));
}

TEST(StoreRestart, OnlyHolderDiedWhileTheMasterWasDownIsReportedLost) {
  StoreWorld w(Opts(3));
  BANNER(w);
  ASSERT_EQ(w.Run(0, w.client(0).Put("k", Pattern(7, 300), On(1))).code(), ErrorCode::OK);
  ASSERT_EQ(w.Run(0, w.client(0).Put("kept", Pattern(8, 300), On(2))).code(), ErrorCode::OK);
  const uint64_t g = w.Run(0, w.client(0).Stat("k")).value().generation;
  ASSERT_TRUE(w.CrashMaster().ok());
  ASSERT_TRUE(w.Crash(1).ok());
  w.Advance(5 * kMs);
  ASSERT_TRUE(w.RestartMaster().ok());
  w.Advance(150 * kMs);  // past the TTL the restart gave every owner
  EXPECT_EQ(w.state().stats().lost, 1u);
  Result<std::string> got = w.Run(0, w.client(0).Get("k"));
  ASSERT_EQ(got.code(), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_NE(got.status().message().find("generation " + std::to_string(g) + " was lost"),
            std::string::npos)
      << got.status().ToString();
  EXPECT_EQ(w.Run(0, w.client(0).Get("kept")).value(), Pattern(8, 300));
}

TEST(StoreRestart, CallsWhileTheMasterIsDownEndWithinTheirTimeout) {
  StoreWorldOptions o = Opts(3);
  o.client.op_timeout_ns = 200 * kMs;
  o.client.rpc.timeout_ns = 50 * kMs;
  o.client.rpc.retry_ns = 5 * kMs;
  StoreWorld w(o);
  BANNER(w);
  ASSERT_EQ(w.Run(0, w.client(0).Put("k", Pattern(11, 1000), On(1))).code(), ErrorCode::OK);
  uint8_t* buf = w.Buffer(2, 3 * 4096);
  ASSERT_TRUE(w.CrashMaster().ok());
  uint64_t t0 = w.NowNs();
  std::vector<Result<uint64_t>> batch = w.Run(
      2, w.client(2).BatchGetInto({"k", "x", "y"}, {buf, buf + 4096, buf + 8192}, {4096, 4096, 4096}));
  EXPECT_LE(w.NowNs() - t0, 200 * kMs);
  for (const auto& r : batch) EXPECT_EQ(r.code(), ErrorCode::RPC_TIMEOUT) << r.status().ToString();
  t0 = w.NowNs();
  EXPECT_EQ(w.Run(1, w.client(1).Put("p", Pattern(12, 1000))).code(), ErrorCode::RPC_TIMEOUT);
  EXPECT_LE(w.NowNs() - t0, 200 * kMs);
  ASSERT_TRUE(w.RestartMaster().ok());
  batch = w.Run(
      2, w.client(2).BatchGetInto({"k", "x", "y"}, {buf, buf + 4096, buf + 8192}, {4096, 4096, 4096}));
  EXPECT_EQ(batch[0].value(), 1000u);
  EXPECT_EQ(batch[1].code(), ErrorCode::OBJECT_NOT_FOUND);
}

TEST(StoreRestart, WithoutAJournalClientsMountAgainAndObjectsAreGone) {
  StoreWorldOptions o = Opts(2);
  o.durable_master = false;
  StoreWorld w(o);
  BANNER(w);
  ASSERT_EQ(w.Run(0, w.client(0).Put("k", Pattern(9, 100))).code(), ErrorCode::OK);
  ASSERT_TRUE(w.CrashMaster().ok());
  ASSERT_TRUE(w.RestartMaster().ok());
  EXPECT_EQ(w.state().incarnation(), 1u);
  w.Advance(50 * kMs);  // heartbeats: the empty master lists no mounts; clients mount again
  EXPECT_EQ(w.client(0).stats().remounts, 1u);
  EXPECT_EQ(w.client(1).stats().remounts, 1u);
  EXPECT_EQ(w.Run(1, w.client(1).Get("k")).code(), ErrorCode::OBJECT_NOT_FOUND);
  ASSERT_EQ(w.Run(1, w.client(1).Put("k", Pattern(10, 100))).code(), ErrorCode::OK);
  EXPECT_EQ(w.Run(0, w.client(0).Get("k")).value(), Pattern(10, 100));
}

}  // namespace
}  // namespace tidal::store
