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
