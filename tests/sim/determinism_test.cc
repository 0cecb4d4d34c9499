// The determinism self-check. The same seed must give the same digest and a
// byte-identical trace; a batch of seeds run twice must give the same digests; and
// different seeds must explore different schedules (we count distinct digests). A
// failure prints the seed and the tidal-sim command that replays it.
#include <gtest/gtest.h>

#include <set>

#include "tidal/sim/transfer_workload.h"

namespace tidal::sim {
namespace {

TransferWorkloadOptions Options(uint64_t seed, size_t ops = 40) {
  TransferWorkloadOptions o;
  o.seed = seed;
  o.nodes = 4;
  o.ops_per_node = ops;
  o.fault_mix = "all";
  o.replay_command = "tidal-sim run --seed " + std::to_string(seed) + " --ops " +
                     std::to_string(ops) + " --faults all";
  return o;
}

TEST(Determinism, SameSeedSameDigestAndByteIdenticalTrace) {
  for (uint64_t seed : {1u, 7u, 12345u}) {
    TransferWorkloadOptions o = Options(seed, 100);
    o.trace_lines = true;
    auto a = RunTransferWorkload(o);
    auto b = RunTransferWorkload(o);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_TRUE(a->passed) << a->banner;
    EXPECT_EQ(a->digest, b->digest) << a->banner;
    EXPECT_EQ(a->events, b->events);
    ASSERT_EQ(a->trace.size(), b->trace.size());
    EXPECT_TRUE(a->trace == b->trace) << "traces differ for seed " << seed;
    EXPECT_GT(a->trace.size(), 100u);
  }
}

TEST(Determinism, TraceLinesDoNotChangeTheDigest) {
  TransferWorkloadOptions o = Options(99);
  auto quiet = RunTransferWorkload(o);
  o.trace_lines = true;
  auto traced = RunTransferWorkload(o);
  ASSERT_TRUE(quiet.ok() && traced.ok());
  EXPECT_EQ(quiet->digest, traced->digest);
}

TEST(Determinism, BatchOfSeedsTwiceGivesTheSameDigests) {
  std::vector<uint64_t> first;
  for (uint64_t seed = 1; seed <= 50; ++seed) {
    auto r = RunTransferWorkload(Options(seed));
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(r->passed) << r->banner;
    first.push_back(r->digest);
  }
  for (uint64_t seed = 1; seed <= 50; ++seed) {
    auto r = RunTransferWorkload(Options(seed));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->digest, first[seed - 1]) << "seed " << seed << " is not deterministic\n"
                                          << r->banner;
  }
}

TEST(Determinism, DifferentSeedsExploreDifferentSchedules) {
  // Without faults only the schedule (ready-work order, clock offsets, workload choices)
  // differs between seeds.
  std::set<uint64_t> digests;
  const uint64_t kSeeds = 1000;
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    TransferWorkloadOptions o = Options(seed, 3);
    o.fault_mix = "none";
    o.nodes = 3;
    auto r = RunTransferWorkload(o);
    ASSERT_TRUE(r.ok());
    ASSERT_TRUE(r->passed) << r->banner;
    digests.insert(r->digest);
  }
  std::printf("distinct digests over %llu seeds: %zu\n",
              static_cast<unsigned long long>(kSeeds), digests.size());
  EXPECT_GE(digests.size(), kSeeds * 99 / 100);
}

TEST(Determinism, TapeBytesDriveTheRunLikeASeed) {
  TransferWorkloadOptions o = Options(0, 20);
  o.tape_bytes = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13};
  auto a = RunTransferWorkload(o);
  auto b = RunTransferWorkload(o);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->digest, b->digest);
  EXPECT_TRUE(a->passed) << a->banner << ::testing::PrintToString(a->violations);
  o.tape_bytes.assign(64, 0xff);  // other draws: other choices
  auto c = RunTransferWorkload(o);
  ASSERT_TRUE(c.ok());
  EXPECT_NE(a->digest, c->digest);
}

}  // namespace
}  // namespace tidal::sim
