// The bug zoo: every planted bug is caught by its campaign within a small seed budget,
// the failing seed passes with the bug switched off, and transfer-workload failures shrink.
#include <gtest/gtest.h>

#include <bit>
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

// The first seed of `name`'s campaign that fails with the bug planted (0: none in 40).
uint64_t FirstFailingSeed(const std::string& name) {
  for (const ZooBug& b : ZooBugs()) {
    if (b.name != name) continue;
    for (uint64_t seed = 1; seed <= 40; ++seed) {
      if (!RunZooSeed(b, seed, /*planted=*/true).empty()) return seed;
    }
  }
  return 0;
}

// Shrinks `bug`'s first failing seed of `workload` with a small run budget and checks the
// result: the same invariant, a shorter run at a smaller scale, and re-running the shrunk
// scale and tape gives that very run (and, without the bug, a passing one).
void ExpectShrinks(const std::string& workload, const std::string& bug, uint64_t max_runs) {
  const uint64_t seed = FirstFailingSeed(bug);
  ASSERT_NE(seed, 0u) << bug;
  sim::ShrinkOptions so;
  so.max_runs = max_runs;
  Result<ZooShrinkResult> r = ShrinkZooSeed(workload, bug, seed, so);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const sim::ScaledShrinkResult& s = r->shrunk;
  EXPECT_FALSE(s.invariant.empty());
  EXPECT_LT(s.shrunk_events, s.original_events) << ScaleString(s.scale);
  EXPECT_LE(s.shrunk_faults, s.original_faults);
  EXPECT_LE(s.runs, max_runs);
  uint64_t smaller = 0;
  for (size_t k = 0; k < s.scale.size(); ++k) {
    EXPECT_LE(s.scale[k].value, s.original_scale[k].value) << s.scale[k].name;
    smaller += s.scale[k].value < s.original_scale[k].value;
  }
  EXPECT_GT(smaller, 0u) << ScaleString(s.scale);
  sim::RunOutcome again = RunZooCandidate(workload, bug, seed, s.scale, s.draws);
  EXPECT_EQ(again.invariant, s.invariant) << again.failure;
  EXPECT_EQ(again.events, s.shrunk_events);
  EXPECT_EQ(again.faults, s.shrunk_faults);
  EXPECT_TRUE(r->clean_passes);
  EXPECT_EQ(RunZooCandidate(workload, "", seed, s.scale, s.draws).invariant, "");
  // The regression test it writes names the run.
  const std::string test = ZooRegressionTest(*r, "Case");
  EXPECT_NE(test.find("TEST(ShrunkRegression, CaseIsCaught)"), std::string::npos);
  EXPECT_NE(test.find("TEST(ShrunkRegression, CasePasses)"), std::string::npos);
}

TEST(Zoo, AStoreCampaignFailureShrinksToTheSameInvariant) {
  ExpectShrinks("store", "master_frees_leased_memory", 60);
}

TEST(Zoo, ACollectivesCampaignFailureShrinksToTheSameInvariant) {
  ExpectShrinks("collectives", "coll_fold_twice", 60);
}

TEST(Zoo, AMixedCampaignFailureShrinksToTheSameInvariant) {
  ExpectShrinks("mixed", "engine_close_drops_every_holder", 80);
}

// A store-field failure that needs one operation: the crashing writer and the fill left
// out, one client, and of the seed's operations only the one that breaks the promise.
TEST(Zoo, AStoreFieldFailureShrinksToOneClientAndOneOperation) {
  ExpectShrinks("store-field", "master_ignores_generation", 200);
  const uint64_t seed = FirstFailingSeed("master_ignores_generation");
  sim::ShrinkOptions so;
  so.max_runs = 200;
  Result<ZooShrinkResult> r = ShrinkZooSeed("store-field", "master_ignores_generation", seed, so);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const sim::Scale& scale = r->shrunk.scale;
  EXPECT_EQ(sim::KnobValue(scale, "victim"), 0u);
  EXPECT_EQ(sim::KnobValue(scale, "fill"), 0u);
  EXPECT_EQ(sim::KnobValue(scale, "nodes"), 1u);
  const uint64_t keep = sim::KnobValue(scale, "keep");
  EXPECT_EQ(std::popcount(keep & sim::KeepAll(sim::KnobValue(scale, "ops"))), 1)
      << ScaleString(scale);
  EXPECT_EQ(sim::KnobValue(scale, "value"), 1024u);
  EXPECT_LE(r->shrunk.shrunk_events, 50u);
  EXPECT_EQ(r->shrunk.shrunk_faults, 0u);
  EXPECT_EQ(r->shrunk.invariant,
            "get of '_' naming removed generation # returned # bytes of the newer generation");
}

// The zoo's own workloads shrink the same way: fewer nodes and operations, then the tape.
TEST(Zoo, AZooWorkloadFailureShrinks) {
  ZooOptions o;
  o.only = "engine_dead_peer_stays_cached";
  o.max_seeds = 10;
  o.shrink_runs = 200;
  std::vector<ZooEntry> zoo = RunZoo(o);
  ASSERT_EQ(zoo.size(), 1u);
  ASSERT_TRUE(zoo[0].caught);
  ASSERT_TRUE(zoo[0].shrunk) << zoo[0].not_shrunk_because;
  EXPECT_LT(zoo[0].shrunk_events, zoo[0].original_events);
  EXPECT_EQ(zoo[0].shrunk_faults, 1u);  // the crash
  EXPECT_EQ(zoo[0].shrunk_scale.rfind("nodes=2 ", 0), 0u) << zoo[0].shrunk_scale;
}

TEST(Zoo, ShrinkingNamesABadWorkloadOrBug) {
  Result<ZooShrinkResult> r = ShrinkZooSeed("nosuch", "", 1, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::INVALID_PARAMS);
  EXPECT_NE(r.status().ToString().find("workload 'nosuch'"), std::string::npos);
  r = ShrinkZooSeed("store", "no_such_bug", 1, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().ToString().find("unknown bug 'no_such_bug'"), std::string::npos);
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
