// The bug zoo: every planted bug is caught by its campaign within a small seed budget,
// the failing seed passes with the bug switched off, and transfer-workload failures shrink.
#include <gtest/gtest.h>

#include <set>

#include "tidal/cluster/zoo.h"

namespace tidal::cluster {
namespace {

TEST(Zoo, EveryPlantedBugIsCaughtAndItsSeedPassesWithoutIt) {
  ZooOptions o;
  o.max_seeds = 40;
  o.shrink = false;
  std::vector<ZooEntry> zoo = RunZoo(o);
  ASSERT_EQ(zoo.size(), ZooBugs().size());
  std::set<std::string> layers;
  for (const ZooEntry& e : zoo) {
    // Every bug, master_frees_leased_memory included: the store campaign's lease scenario
    // reuses the memory of a removed object while a reader of it pauses mid-read.
    EXPECT_TRUE(e.caught) << e.bug.name << " was not caught in 40 seeds";
    EXPECT_TRUE(e.clean_seed_passes) << e.bug.name << ": seed " << e.seed
                                     << " fails without the bug too";
    EXPECT_FALSE(e.failure.empty()) << e.bug.name;
    layers.insert(e.bug.layer);
  }
  EXPECT_EQ(layers, (std::set<std::string>{"collectives", "engine", "store", "transport"}));
}

// The zoo's own workloads (store-field, p2p, peer-loss) never complain without a bug: a
// complaint is always the planted bug's.
TEST(Zoo, TheZooWorkloadsPassWithoutABug) {
  std::set<std::string> seen;
  for (const ZooBug& bug : ZooBugs()) {
    if (bug.workload != "store-field" && bug.workload != "p2p" && bug.workload != "peer-loss") {
      continue;
    }
    if (!seen.insert(bug.workload).second) continue;
    for (uint64_t seed = 1; seed <= 12; ++seed) {
      EXPECT_EQ(RunZooSeed(bug, seed, /*planted=*/false), "") << bug.workload << " seed " << seed;
    }
  }
  EXPECT_EQ(seen, (std::set<std::string>{"p2p", "peer-loss", "store-field"}));
}

// Every field bug of docs/field-bugs.md (1-12) and every field report (A-D) has its
// planted form in the zoo.
TEST(Zoo, EveryFieldBugAndReportIsPlanted) {
  std::set<std::string> reports;
  for (const ZooBug& bug : ZooBugs()) {
    if (!bug.field_report.empty()) reports.insert(bug.field_report);
  }
  std::set<std::string> want = {"report A", "report B", "report C", "report D"};
  for (int i = 1; i <= 12; ++i) want.insert(std::to_string(i));
  EXPECT_EQ(reports, want);
}

TEST(Zoo, ATransferBugShrinksToAFewEvents) {
  ZooOptions o;
  o.only = "write_off_by_one";
  o.max_seeds = 20;
  o.shrink_runs = 800;
  std::vector<ZooEntry> zoo = RunZoo(o);
  ASSERT_EQ(zoo.size(), 1u);
  ASSERT_TRUE(zoo[0].caught);
  ASSERT_TRUE(zoo[0].shrunk) << zoo[0].not_shrunk_because;
  EXPECT_LE(zoo[0].shrunk_events, 50u);
  EXPECT_LE(zoo[0].shrunk_faults, 3u);
  EXPECT_LT(zoo[0].shrunk_events, zoo[0].original_events);
}

// The zoo's own workloads shrink by scale: fewer operations and nodes, same invariant.
TEST(Zoo, AZooWorkloadFailureShrinksByScale) {
  ZooOptions o;
  o.only = "engine_dead_peer_stays_cached";
  o.max_seeds = 10;
  o.shrink_runs = 200;
  std::vector<ZooEntry> zoo = RunZoo(o);
  ASSERT_EQ(zoo.size(), 1u);
  ASSERT_TRUE(zoo[0].caught);
  ASSERT_TRUE(zoo[0].shrunk) << zoo[0].not_shrunk_because;
  EXPECT_LT(zoo[0].shrunk_events, zoo[0].original_events);
  EXPECT_LE(zoo[0].shrunk_events, 50u);
  EXPECT_EQ(zoo[0].shrunk_faults, 1u);  // the crash
  EXPECT_EQ(zoo[0].shrunk_nodes, 2u);
  // The shrunk run still fails with the bug and passes without it.
  ZooBug bug;
  for (const ZooBug& b : ZooBugs()) {
    if (b.name == o.only) bug = b;
  }
  EXPECT_NE(RunZooSeed(bug, zoo[0].seed, /*planted=*/true), "");
  EXPECT_EQ(RunZooSeed(bug, zoo[0].seed, /*planted=*/false), "");
}

TEST(Zoo, AnUnknownBugIsNamed) {
  ZooOptions o;
  o.only = "no_such_bug";
  std::vector<ZooEntry> zoo = RunZoo(o);
  ASSERT_EQ(zoo.size(), 1u);
  EXPECT_FALSE(zoo[0].caught);
  EXPECT_EQ(zoo[0].failure, "unknown bug 'no_such_bug'");
}

}  // namespace
}  // namespace tidal::cluster
