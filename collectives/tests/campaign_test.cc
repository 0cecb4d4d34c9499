// A few hundred campaign seeds in ctest (label sim); scripts/collectives-campaign.sh runs
// thousands. Each seed mixes collectives with transfer faults, control-message faults and
// rank crashes (tidal/cluster/coll_campaign.h); a failure prints the seed, digest and the replay command. A
// second test replays seeds and demands identical digests (determinism).
#include "tidal/cluster/coll_campaign.h"

#include <gtest/gtest.h>

#include <cstdio>

namespace tidal::cluster {
namespace {

constexpr uint64_t kSeeds = 300;

TEST(CollectivesCampaign, ThreeHundredSeedsWithFaults) {
  uint64_t failures = 0, ops = 0, crashes = 0, faults = 0;
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    CollSeedResult r = RunCollCampaignSeed(seed);
    ops += r.ops;
    crashes += r.crashes;
    faults += r.faults;
    if (!r.ok) {
      ++failures;
      if (failures <= 5) ADD_FAILURE() << r.error;
    }
  }
  std::printf(
      "campaign: %llu seeds, %llu rank-ops checked, %llu crashes, %llu faults injected, "
      "%llu failing seeds\n",
      static_cast<unsigned long long>(kSeeds), static_cast<unsigned long long>(ops),
      static_cast<unsigned long long>(crashes), static_cast<unsigned long long>(faults),
      static_cast<unsigned long long>(failures));
  EXPECT_EQ(failures, 0u);
  EXPECT_GT(crashes, kSeeds / 4);  // the campaign really injects what it claims
  EXPECT_GT(faults, kSeeds);
}

TEST(CollectivesCampaign, SameSeedSameDigest) {
  for (uint64_t seed : {3, 17, 99}) {
    CollSeedResult a = RunCollCampaignSeed(seed);
    CollSeedResult b = RunCollCampaignSeed(seed);
    EXPECT_EQ(a.digest, b.digest) << "seed " << seed;
    EXPECT_EQ(a.ops, b.ops);
  }
}

}  // namespace
}  // namespace tidal::cluster
