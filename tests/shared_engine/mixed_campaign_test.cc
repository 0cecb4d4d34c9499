// The mixed campaign (store traffic and collectives on shared engines, random start-up
// orders, occasional crashes) passes on a batch of seeds and replays bit for bit.
#include <gtest/gtest.h>

#include "tidal/cluster/mixed_campaign.h"

namespace tidal::cluster {
namespace {

TEST(MixedCampaign, BatchOfSeedsPasses) {
  uint32_t crashes = 0;
  for (uint64_t seed = 1; seed <= 60; ++seed) {
    MixedSeedResult r = RunMixedCampaignSeed(seed);
    ASSERT_TRUE(r.ok) << "seed " << seed << ": " << r.error;
    EXPECT_GT(r.collectives, 0u);
    EXPECT_GT(r.puts, 0u);
    crashes += r.crashes;
  }
  EXPECT_GT(crashes, 5u);  // the crash path is exercised, not only the calm one
}

TEST(MixedCampaign, SameSeedSameRun) {
  MixedSeedResult a = RunMixedCampaignSeed(4242), b = RunMixedCampaignSeed(4242);
  ASSERT_TRUE(a.ok) << a.error;
  EXPECT_EQ(a.digest, b.digest);
  EXPECT_EQ(a.start_order, b.start_order);
  EXPECT_EQ(a.summary, b.summary);
  EXPECT_NE(a.digest, RunMixedCampaignSeed(4243).digest);
}

}  // namespace
}  // namespace tidal::cluster

namespace tidal::cluster {
namespace {

// The long-world form the seeds-per-core-hour figure uses: exactly 8 nodes, rounds spread
// over virtual time, and a bounded store (each node removes its oldest object).
TEST(MixedCampaign, LongWorldsSpanTheirVirtualTimeAndBoundTheStore) {
  MixedCampaignOptions o;
  o.nodes = 8;
  o.rounds = 24;
  o.round_period_ns = 250'000'000;  // 24 rounds over 6 virtual seconds
  o.live_objects_per_node = 2;
  o.crashes = false;  // every put and remove must then succeed (the checker fails otherwise)
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    MixedSeedResult r = RunMixedCampaignSeed(seed, o);
    ASSERT_TRUE(r.ok) << "seed " << seed << ": " << r.error;
    EXPECT_EQ(r.nodes, 8u);
    EXPECT_GE(r.virtual_ns, 23ull * 250'000'000);  // the last round began at 5.75 s
    EXPECT_GT(r.removes, 0u);
    // After every put a node holds at most 2 of its own objects: all but 2 per node
    // were removed.
    EXPECT_LE(r.puts - r.removes, 8u * 2) << "seed " << seed;
  }
  MixedSeedResult a = RunMixedCampaignSeed(3, o), b = RunMixedCampaignSeed(3, o);
  EXPECT_EQ(a.digest, b.digest);
}

}  // namespace
}  // namespace tidal::cluster
