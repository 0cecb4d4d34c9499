// The (path × fault) reach tables: counting, merging, the message naming required pairs a
// run never reached, and the store campaign's table when its scenarios do not run.
#include <gtest/gtest.h>

#include <algorithm>

#include "tidal/cluster/coll_campaign.h"
#include "tidal/cluster/reach_table.h"
#include "tidal/cluster/store_campaign.h"

namespace tidal::cluster {
namespace {

ReachTable Small() {
  ReachTable t({"get", "put"}, {"lease", "crash"});
  t.Set(0, 0, ReachTable::Cell::kRequired);
  t.Set(0, 1, ReachTable::Cell::kReported);
  t.Set(1, 1, ReachTable::Cell::kRequired);
  return t;
}

TEST(ReachTable, CountsMergesAndNamesTheMissingRequiredPairs) {
  ReachTable a = Small();
  EXPECT_EQ(a.Missing(), (std::vector<std::string>{"get × lease", "put × crash"}));
  EXPECT_EQ(a.MissingMessage("toy"),
            "toy campaign: 2 required (path × fault) pairs never reached over the seeds run: "
            "get × lease, put × crash");
  a.Hit(0, 1, 3);  // reported only: still missing both required pairs
  EXPECT_EQ(a.Missing().size(), 2u);
  ReachTable b = Small();
  b.Hit(1, 1);
  a.Merge(b);
  EXPECT_EQ(a.count(0, 1), 3u);
  EXPECT_EQ(a.count(1, 1), 1u);
  EXPECT_EQ(a.MissingMessage("toy"),
            "toy campaign: 1 required (path × fault) pair never reached over the seeds run: "
            "get × lease");
  EXPECT_EQ(a.Text(),
            "path   lease   crash\n"
            "get       0!       3\n"
            "put        .       1\n");
  EXPECT_EQ(a.Json(),
            "{\"paths\":[\"get\",\"put\"],\"faults\":[\"lease\",\"crash\"],"
            "\"counts\":[[0,3],[0,1]],\"required\":[[1,0],[-1,1]],"
            "\"missing\":[\"get × lease\"]}");
  a.Hit(0, 0);
  EXPECT_EQ(a.MissingMessage("toy"), "");
  ReachTable empty;  // a program's running sum starts empty and takes the first layout
  empty.Merge(a);
  EXPECT_EQ(empty.count(0, 0), 1u);
}

// Without its targeted scenarios the store campaign reaches none of its required pairs:
// the run fails, naming every one.
TEST(ReachTable, AStoreRunThatCannotReachItsRequiredPairsNamesThem) {
  StoreCampaignConfig cfg;
  cfg.scenarios = false;
  ReachTable sum = StoreReachLayout();
  for (uint64_t seed = 1; seed <= 2; ++seed) {
    StoreCampaignResult r = RunStoreCampaign(seed, cfg);
    ASSERT_TRUE(r.ok) << r.failure;
    sum.Merge(r.reach);
  }
  EXPECT_EQ(sum.MissingMessage("store"),
            "store campaign: 12 required (path × fault) pairs never reached over the seeds "
            "run: put × writer_died_mid_put, put_from × writer_died_mid_put, batch_put_from × "
            "writer_died_mid_put, put_tensor × writer_died_mid_put, tp_put × "
            "writer_died_mid_put, tp_put_from × writer_died_mid_put, get × lease_expiry_reuse, "
            "get_into × lease_expiry_reuse, batch_get_into × lease_expiry_reuse, get_tensor × "
            "lease_expiry_reuse, tp_get × lease_expiry_reuse, tp_get_into × lease_expiry_reuse");
}

// With them, a few dozen seeds reach every required pair (the main job runs 500).
TEST(ReachTable, TheStoreScenariosReachTheirPairs) {
  ReachTable sum = StoreReachLayout();
  for (uint64_t seed = 1; seed <= 30 && !sum.Missing().empty(); ++seed) {
    StoreCampaignResult r = RunStoreCampaign(seed, StoreCampaignConfig{});
    ASSERT_TRUE(r.ok) << r.failure;
    sum.Merge(r.reach);
  }
  EXPECT_EQ(sum.MissingMessage("store"), "") << sum.Text();
}

// A collectives run without partitions never reaches a (step × partition) pair: each is
// named as missing, and the run fails.
TEST(ReachTable, ACollectivesRunWithoutPartitionsNamesThePartitionPairs) {
  CollCampaignOptions o;
  o.partitions = false;
  ReachTable sum = CollReachLayout();
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    CollSeedResult r = RunCollCampaignSeed(seed, o);
    ASSERT_TRUE(r.ok) << r.error;
    sum.Merge(r.reach);
  }
  std::vector<std::string> missing = sum.Missing();
  for (const std::string& kind : sum.paths()) {
    EXPECT_NE(std::find(missing.begin(), missing.end(), kind + " × partition"), missing.end())
        << kind;
  }
  EXPECT_NE(sum.MissingMessage("collectives").find("never reached over the seeds run: "),
            std::string::npos);
  // With partitions, the same seeds strike steps with them.
  ReachTable with = CollReachLayout();
  for (uint64_t seed = 1; seed <= 40; ++seed) with.Merge(RunCollCampaignSeed(seed).reach);
  uint64_t partitioned = 0;
  for (size_t k = 0; k < with.paths().size(); ++k) partitioned += with.count(k, 2);
  EXPECT_GT(partitioned, 0u) << with.Text();
}

}  // namespace
}  // namespace tidal::cluster
