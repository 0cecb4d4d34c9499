// Exhaustive exploration of the named small worlds (cluster/include/tidal/cluster/
// explore_worlds.h): every schedule under every fault placement passes the world's
// checker, the explorer reports completeness, and the schedule count is pinned (it is
// deterministic: a change to it means the world, the simulator's draws or the explorer
// changed, and the new figure must be looked at, not just copied). With a planted bug the
// explorer finds a failing schedule, and replaying its choices fails the same way.
//
// Also the explorer's own parts: choice lists, the domain of a delay, replay of a draw
// recording through Tape::FromDraws, the bound that makes a result incomplete, PCT
// determinism, and the state hashing checked against no reduction at all.
#include <gtest/gtest.h>

#include <set>

#include "tidal/cluster/explore_worlds.h"
#include "tidal/sim/explore.h"
#include "tidal/sim/transfer_workload.h"

namespace tidal::sim {
namespace {

using cluster::ExploreWorldOptions;
using cluster::MakeExploreWorld;

ExploreResult ExploreWorld(const ExploreWorldOptions& o, ExploreBounds b = {}) {
  Result<ExploreWorldFn> w = MakeExploreWorld(o);
  EXPECT_TRUE(w.ok()) << w.status().ToString();
  if (!w.ok()) return {};
  return Explorer(b).Run(*w);
}

std::string Failures(const ExploreResult& r) {
  std::string s;
  for (const auto& f : r.first_failures) s += "[" + f.choices + "] " + f.failure + "\n";
  return s;
}

// ---- the explorer's parts --------------------------------------------------------------

TEST(ExploreChoices, RoundTripAndBadInput) {
  EXPECT_EQ(ChoicesToString({0, 1, 0, 2, 0, 0}), "0.1.0.2");
  EXPECT_EQ(ChoicesToString({0, 0}), "0");
  auto c = ParseChoices("0.1.0.2");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, (std::vector<uint32_t>{0, 1, 0, 2}));
  EXPECT_EQ(ParseChoices("0..1").code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ParseChoices("x").code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ParseChoices("").code(), ErrorCode::INVALID_PARAMS);
}

// A toy world of three draws: Below(3) in full, Below(1000) as {0, 999}, a ChancePpm as
// {no, yes}: 3 * 2 * 2 = 12 schedules, each outcome distinct, and a recording of each
// replays through Tape::FromDraws to the same values.
TEST(Explorer, EnumeratesEveryValueOfEveryDrawAndRecordingsReplay) {
  std::set<std::vector<uint64_t>> seen;
  ExploreBounds b;
  b.state_hashing = false;
  ExploreResult r = Explorer(b).Run([&](ExploreRun& run) {
    WorldOptions o;
    o.nodes = 1;
    o.max_clock_offset_ns = 0;
    o.scheduling = run.scheduling();
    World w(o);
    std::vector<uint64_t> v = {w.tape().Below(3), w.tape().Below(1000),
                               uint64_t{w.tape().ChancePpm(10)}};
    seen.insert(v);
    Tape replay = Tape::FromDraws(w.tape().recorded());
    std::vector<uint64_t> again = {replay.Below(3), replay.Below(1000),
                                   uint64_t{replay.ChancePpm(10)}};
    ScheduleVerdict verdict;
    verdict.passed = again == v;
    verdict.failure = "the recording does not replay";
    verdict.outcome = v[0] * 10000 + v[1] * 10 + v[2];
    return verdict;
  });
  EXPECT_TRUE(r.complete) << r.incomplete_because;
  EXPECT_EQ(r.schedules, 12u);
  EXPECT_EQ(r.pruned, 0u);
  EXPECT_EQ(r.failures, 0u) << Failures(r);
  EXPECT_EQ(seen.size(), 12u);
  EXPECT_TRUE(seen.count({2, 999, 1}));
  EXPECT_TRUE(seen.count({0, 0, 0}));
}

// Delay bounding: a world of four delay draws (each {0, 999}) and one draw in full
// (Below(3), never bounded). With at most k delays off their first value the tree is
// 3 * (C(4,0) + ... + C(4,k)) schedules, exactly those runs; no bound is all 3 * 16.
TEST(Explorer, ADelayBoundKeepsTheRunsWithAtMostThatManyLateEvents) {
  auto world = [](ExploreRun& run) {
    WorldOptions o;
    o.nodes = 1;
    o.max_clock_offset_ns = 0;
    o.scheduling = run.scheduling();
    World w(o);
    uint64_t outcome = w.tape().Below(3);
    int late = 0;
    for (int i = 0; i < 4; ++i) {
      const uint64_t d = w.tape().Below(1000);
      EXPECT_TRUE(d == 0 || d == 999) << d;
      late += d != 0;
      outcome = outcome * 1000 + d;
    }
    ScheduleVerdict v;
    v.outcome = outcome * 10 + static_cast<uint64_t>(late);
    return v;
  };
  const uint64_t expected[] = {3 * 1, 3 * 5, 3 * 11, 3 * 15, 3 * 16};
  for (uint64_t k = 0; k <= 4; ++k) {
    ExploreBounds b;
    b.state_hashing = false;
    b.max_delays = k;
    const ExploreResult r = Explorer(b).Run(world);
    EXPECT_TRUE(r.complete) << r.incomplete_because;
    EXPECT_EQ(r.schedules, expected[k]) << "k=" << k;
    EXPECT_EQ(r.outcomes.size(), expected[k]) << "k=" << k;
    for (uint64_t o : r.outcomes) EXPECT_LE(o % 10, k) << "k=" << k;
    EXPECT_NE(r.domains.find("at most " + std::to_string(k) + " timing draws"), std::string::npos)
        << r.domains;
  }
  ExploreBounds unbounded;
  unbounded.state_hashing = false;
  const ExploreResult all = Explorer(unbounded).Run(world);
  EXPECT_EQ(all.schedules, 48u);
  EXPECT_EQ(all.domains.find("delay bound"), std::string::npos) << all.domains;
}

TEST(Explorer, AHitBoundIsReportedAndNeverCalledComplete) {
  ExploreBounds b;
  b.state_hashing = false;
  b.max_choices = 2;
  auto world = [](ExploreRun& run) {
    uint64_t x = 0;
    for (int i = 0; i < 4; ++i) x = x * 2 + run.Pick(2);
    ScheduleVerdict v;
    v.outcome = x;
    return v;
  };
  ExploreResult r = Explorer(b).Run(world);
  EXPECT_FALSE(r.complete);
  EXPECT_EQ(r.schedules, 4u);  // only the first two choices branch
  EXPECT_NE(r.incomplete_because.find("max_choices"), std::string::npos) << r.incomplete_because;
  b.max_choices = 400;
  b.max_schedules = 5;
  r = Explorer(b).Run(world);
  EXPECT_FALSE(r.complete);
  EXPECT_EQ(r.schedules, 5u);
  EXPECT_NE(r.incomplete_because.find("max_schedules"), std::string::npos) << r.incomplete_because;
  b.max_schedules = 1000;
  r = Explorer(b).Run(world);
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(r.schedules, 16u);
  EXPECT_EQ(r.outcomes.size(), 16u);
}

// ---- the named small worlds -------------------------------------------------------------

// Every schedule of the world passes its checker; the explorer says complete, with the
// pinned count. Also: the outcomes found (a hash of each run's statuses and bytes).
void ExpectAllPass(const ExploreWorldOptions& o, const ExploreBounds& b, uint64_t schedules,
                   uint64_t pruned, size_t outcomes) {
  const ExploreResult r = ExploreWorld(o, b);
  EXPECT_TRUE(r.complete) << r.incomplete_because;
  EXPECT_EQ(r.incomplete_because, "");
  EXPECT_EQ(r.failures, 0u) << Failures(r);
  EXPECT_EQ(r.schedules, schedules);
  EXPECT_EQ(r.pruned, pruned);
  EXPECT_EQ(r.outcomes.size(), outcomes);
}

ExploreBounds CollBounds() {
  ExploreBounds b;
  b.delay_values = 1;  // delays at their minimum: the ties and the crash placements vary
  return b;
}

ExploreWorldOptions Coll(const char* world) {
  ExploreWorldOptions o;
  o.world = world;
  o.ranks = 3;
  o.stagger_ns = 3'000;
  return o;
}

// Delays at both extremes ({0, max} for every delay draw), every placement, time
// abstracted (the default).
TEST(ExploreWorlds, TransportFourOpsEveryPlacement) {
  ExploreWorldOptions o;
  o.world = "transport";
  o.ops = 4;
  ExpectAllPass(o, {}, 549u, 21883u, 20u);
}

TEST(ExploreWorlds, AllreduceThreeRanksWithAndWithoutACrash) {
  ExpectAllPass(Coll("allreduce"), CollBounds(), 260u, 2959u, 4u);
}

TEST(ExploreWorlds, AllgatherThreeRanksWithAndWithoutACrash) {
  ExpectAllPass(Coll("allgather"), CollBounds(), 260u, 2959u, 4u);
}

TEST(ExploreWorlds, BroadcastThreeRanksWithAndWithoutACrash) {
  ExpectAllPass(Coll("broadcast"), CollBounds(), 20u, 297u, 4u);
}

// Both delay extremes for every transfer, completion and notification of the broadcast,
// every crash placement, time abstracted (exact time: 494,635 schedules, about a minute).
TEST(ExploreWorlds, BroadcastThreeRanksDelayExtremesEveryPlacement) {
  ExpectAllPass(Coll("broadcast"), {}, 2556u, 20209u, 4u);
}

// Delay-bounded, both extremes: every schedule in which at most k timing draws (a
// chance taken, a delay at its longest) are off their first value, every crash
// placement, time abstracted, pruned runs halted. k = 0 is the delays-at-minimum tree
// above; k = 2 (18,258 schedules each, about a minute) and k = 3 are in docs/harness.md.
ExploreBounds DelayBounded(uint64_t k) {
  ExploreBounds b;
  b.max_delays = k;
  b.halt_pruned = true;
  b.max_schedules = 1'000'000'000;
  return b;
}

TEST(ExploreWorlds, AllreduceThreeRanksOneLateEventEveryPlacement) {
  ExpectAllPass(Coll("allreduce"), DelayBounded(1), 2568u, 32770u, 4u);
}

TEST(ExploreWorlds, AllgatherThreeRanksOneLateEventEveryPlacement) {
  ExpectAllPass(Coll("allgather"), DelayBounded(1), 2568u, 32770u, 4u);
}

TEST(ExploreWorlds, BroadcastThreeRanksTwoLateEventsEveryPlacement) {
  ExpectAllPass(Coll("broadcast"), DelayBounded(2), 327u, 2660u, 4u);
}

TEST(ExploreWorlds, DelayBoundAtZeroIsTheTreeOfDelaysAtTheirMinimum) {
  ExpectAllPass(Coll("allreduce"), DelayBounded(0), 260u, 2959u, 4u);
}

TEST(ExploreWorlds, StoreTwoClientsWithAShortReadOrACrash) {
  ExploreWorldOptions o;
  o.world = "store";
  ExpectAllPass(o, CollBounds(), 9u, 26u, 6u);
}

// Both reductions checked against none: the same outcomes, far fewer runs. Both extremes
// of every delay, every placement.
TEST(ExploreWorlds, StateHashingFindsEveryOutcomeOfTheFullTree) {
  ExploreWorldOptions o;
  o.world = "transport";
  o.ops = 2;
  ExploreBounds full;
  full.state_hashing = false;
  ExploreBounds exact;
  exact.abstract_time = false;
  ExploreBounds halted;
  halted.halt_pruned = true;
  const ExploreResult full_tree = ExploreWorld(o, full);
  const ExploreResult exact_time = ExploreWorld(o, exact);
  const ExploreResult abstracted = ExploreWorld(o);
  const ExploreResult abstracted_halted = ExploreWorld(o, halted);
  ASSERT_TRUE(full_tree.complete && exact_time.complete && abstracted.complete &&
              abstracted_halted.complete);
  EXPECT_EQ(full_tree.schedules, 40216u);
  EXPECT_EQ(full_tree.pruned, 0u);
  EXPECT_EQ(exact_time.schedules, 1826u);
  EXPECT_EQ(exact_time.pruned, 1110u);
  EXPECT_EQ(abstracted.schedules, 95u);
  EXPECT_EQ(abstracted.pruned, 2328u);
  // Halting changes no branch, only where a pruned run stops.
  EXPECT_EQ(abstracted_halted.schedules, 95u);
  EXPECT_EQ(abstracted_halted.pruned, 2328u);
  EXPECT_EQ(full_tree.outcomes.size(), 12u);
  EXPECT_EQ(exact_time.outcomes, full_tree.outcomes);
  EXPECT_EQ(abstracted.outcomes, full_tree.outcomes);
  EXPECT_EQ(abstracted_halted.outcomes, full_tree.outcomes);
}

// Under a delay bound as well: the transport world of 2 operations, at most 2 late
// events, reduced and not, finds the same outcomes (the late events spent are part of
// the state: a state with fewer left has fewer futures).
TEST(ExploreWorlds, StateHashingUnderADelayBoundFindsEveryOutcomeOfTheFullTree) {
  ExploreWorldOptions o;
  o.world = "transport";
  o.ops = 2;
  ExploreBounds full;
  full.state_hashing = false;
  full.max_delays = 2;
  ExploreBounds reduced;
  reduced.max_delays = 2;
  const ExploreResult full_tree = ExploreWorld(o, full);
  const ExploreResult r = ExploreWorld(o, reduced);
  ASSERT_TRUE(full_tree.complete && r.complete);
  EXPECT_EQ(full_tree.schedules, 4424u);
  EXPECT_EQ(r.schedules, 92u);
  EXPECT_EQ(r.pruned, 449u);
  EXPECT_EQ(full_tree.outcomes.size(), 10u);
  EXPECT_EQ(r.outcomes, full_tree.outcomes);
}

// The store world (delays at their minimum, every placement): every reduction finds the
// outcomes of the full tree, and the hash check finds no two merged states whose futures
// differ. Before pending events were hashed with their origin, two put requests due at the
// master at one instant, from client 0 then client 1 or the other way round, hashed equal
// (the same actor, time and place in line; only what they carry differs), so the halted
// exploration lost 2 of the 6 outcomes (where key a's replica went decides whether a get
// survives client 1's crash) and the hash check reported 3 conflicts.
TEST(ExploreWorlds, StoreStateHashingFindsEveryOutcomeOfTheFullTree) {
  ExploreWorldOptions o;
  o.world = "store";
  ExploreBounds full = CollBounds();
  full.state_hashing = false;
  ExploreBounds exact = CollBounds();
  exact.abstract_time = false;
  exact.halt_pruned = true;
  ExploreBounds halted = CollBounds();
  halted.halt_pruned = true;
  ExploreBounds checked = CollBounds();
  checked.check_hash = true;
  const ExploreResult full_tree = ExploreWorld(o, full);
  const ExploreResult exact_time = ExploreWorld(o, exact);
  const ExploreResult abstracted_halted = ExploreWorld(o, halted);
  const ExploreResult abstracted_checked = ExploreWorld(o, checked);
  ASSERT_TRUE(full_tree.complete && exact_time.complete && abstracted_halted.complete &&
              abstracted_checked.complete);
  EXPECT_EQ(full_tree.schedules, 41u);
  EXPECT_EQ(full_tree.outcomes.size(), 6u);
  EXPECT_EQ(exact_time.outcomes, full_tree.outcomes);
  EXPECT_EQ(abstracted_halted.outcomes, full_tree.outcomes);
  EXPECT_EQ(abstracted_checked.outcomes, full_tree.outcomes);
  EXPECT_EQ(abstracted_checked.hash_conflicts_seen, 0u);
  EXPECT_TRUE(abstracted_checked.hash_conflicts.empty());
  EXPECT_EQ(full_tree.failures + exact_time.failures + abstracted_halted.failures, 0u)
      << Failures(full_tree) << Failures(exact_time) << Failures(abstracted_halted);
}

// Two nodes each send node 0 a message at one instant; node 0 records whom each came
// from. The two pending deliveries share actor, time and place in line: only their
// origin tells "from 1, then from 2" from the other order. The halted exploration must
// still find both orders.
ScheduleVerdict TwoSenders(ExploreRun& run) {
  WorldOptions o;
  o.nodes = 3;
  o.max_clock_offset_ns = 0;
  o.scheduling = run.scheduling();
  World w(o);
  std::string received;
  for (uint64_t from : {1, 2}) {
    w.ScheduleAt(0, static_cast<int32_t>(from), [&w, &received, from] {
      w.ScheduleAt(5, 0, [&w, &received, from] {
        received += static_cast<char>('0' + from);
        w.Record(0, "recv", {{"from", from}});
      });
    });
  }
  w.RunUntilIdle();
  ScheduleVerdict v;
  v.outcome = std::hash<std::string>()(received);
  return v;
}

TEST(Explorer, PendingEventsAreToldApartByWhatTheyCarry) {
  ExploreBounds full;
  full.state_hashing = false;
  const ExploreResult full_tree = Explorer(full).Run(TwoSenders);
  ExploreBounds b;
  b.halt_pruned = true;
  const ExploreResult reduced = Explorer(b).Run(TwoSenders);
  ASSERT_TRUE(full_tree.complete && reduced.complete);
  EXPECT_EQ(full_tree.schedules, 2u);
  EXPECT_EQ(full_tree.outcomes.size(), 2u);
  EXPECT_EQ(reduced.outcomes, full_tree.outcomes);
  EXPECT_EQ(reduced.schedules, 2u);
}

// The hash check catches a hash that leaves state out: here the world's own state hash
// forgets the order in which two nodes appended to a shared string, so the states after
// "12" and "21" merge although what the third event sees differs. The halted exploration
// misses an outcome; the checked one reports the conflict with both schedules, and
// replaying them gives the two outcomes.
ScheduleVerdict ForgetfulHash(ExploreRun& run) {
  WorldOptions o;
  o.nodes = 3;
  o.max_clock_offset_ns = 0;
  o.scheduling = run.scheduling();
  World w(o);
  std::string order;
  run.SetStateHash([&] { return uint64_t{order.size()}; });  // the defect: size, not bytes
  w.ScheduleAt(0, 1, [&] { order += '1'; });
  w.ScheduleAt(0, 2, [&] { order += '2'; });
  uint64_t seen = 0;
  w.ScheduleAt(10, 0, [&] { seen = std::hash<std::string>()(order); });
  w.RunUntilIdle();
  ScheduleVerdict v;
  v.outcome = seen;
  return v;
}

TEST(Explorer, TheHashCheckReportsMergedStatesWhoseFuturesDiffer) {
  ExploreBounds full;
  full.state_hashing = false;
  const ExploreResult full_tree = Explorer(full).Run(ForgetfulHash);
  ExploreBounds halted;
  halted.halt_pruned = true;
  const ExploreResult reduced = Explorer(halted).Run(ForgetfulHash);
  ExploreBounds checked;
  checked.check_hash = true;
  const ExploreResult r = Explorer(checked).Run(ForgetfulHash);
  ASSERT_TRUE(full_tree.complete && reduced.complete && r.complete);
  EXPECT_EQ(full_tree.outcomes.size(), 2u);
  EXPECT_EQ(reduced.outcomes.size(), 1u);  // the unsound hash lost one
  EXPECT_EQ(r.schedules, 1u);
  EXPECT_EQ(r.pruned, 1u);
  EXPECT_EQ(r.hash_conflicts_seen, 1u);
  ASSERT_EQ(r.hash_conflicts.size(), 1u);
  const HashConflict& c = r.hash_conflicts[0];
  EXPECT_EQ(c.first, "0");
  EXPECT_EQ(c.pruned, "1");
  EXPECT_NE(c.first_outcome, c.pruned_outcome);
  Result<ScheduleVerdict> first = Explorer(checked).Replay(ForgetfulHash, c.first);
  Result<ScheduleVerdict> pruned = Explorer(checked).Replay(ForgetfulHash, c.pruned);
  ASSERT_TRUE(first.ok() && pruned.ok());
  EXPECT_EQ(first->outcome, c.first_outcome);
  EXPECT_EQ(pruned->outcome, c.pruned_outcome);
  EXPECT_EQ(r.outcomes, full_tree.outcomes);  // pruned runs ran on: their outcomes count
}

// A toy race that needs one delay at its maximum and then one order of three actors at
// one instant: node 0 sends at 0 with a delay drawn in [0, 5000] (a timing draw), nodes 1
// and 2 act at 5000, and the world fails when the delayed delivery runs last of the
// three (2 of the 8 schedules). Time abstraction still finds it (the delay's value is left out of
// the history, but the pending delivery's distance is not), with every outcome of the
// full tree, and the failing choices replay.
ScheduleVerdict ToyRace(ExploreRun& run) {
  WorldOptions o;
  o.nodes = 3;
  o.max_clock_offset_ns = 0;
  o.scheduling = run.scheduling();
  World w(o);
  std::string order;
  run.SetStateHash([&] { return std::hash<std::string>()(order); });
  w.ScheduleAt(0, 0, [&] {
    const uint64_t delay = w.tape().Between(0, 5'000);
    w.ScheduleAt(w.NowNs() + delay, -1, [&] { order += 'a'; });
  });
  w.ScheduleAt(5'000, 1, [&] { order += 'b'; });
  w.ScheduleAt(5'000, 2, [&] { order += 'c'; });
  w.RunUntilIdle();
  ScheduleVerdict v;
  v.passed = order != "bca" && order != "cba";
  v.failure = "the delayed delivery ran after node 1 and node 2: " + order;
  v.outcome = std::hash<std::string>()(order);
  return v;
}

TEST(Explorer, TimeAbstractionFindsAnInterleavingAndDelayRace) {
  ExploreBounds full;
  full.state_hashing = false;
  const ExploreResult full_tree = Explorer(full).Run(ToyRace);
  ExploreBounds b;
  b.halt_pruned = true;
  const ExploreResult reduced = Explorer(b).Run(ToyRace);
  ASSERT_TRUE(full_tree.complete && reduced.complete);
  // 'a' at 0 runs first (1 order of b, c); at 5000 the three actors take 6 orders.
  EXPECT_EQ(full_tree.schedules, 8u);
  EXPECT_EQ(full_tree.outcomes.size(), 6u);
  EXPECT_EQ(full_tree.failures, 2u);
  EXPECT_EQ(reduced.outcomes, full_tree.outcomes);
  EXPECT_EQ(reduced.failures, 2u) << Failures(reduced);
  ASSERT_FALSE(reduced.first_failures.empty());
  Result<ScheduleVerdict> again = Explorer(b).Replay(ToyRace, reduced.first_failures[0].choices);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_FALSE(again->passed);
  EXPECT_EQ(again->failure, reduced.first_failures[0].failure);
}

// A world's own pick (a fault placement) is state even before its rule matches: runs that
// differ only in it are never merged.
TEST(Explorer, PicksAreState) {
  ExploreResult r = Explorer(ExploreBounds{}).Run([](ExploreRun& run) {
    WorldOptions o;
    o.nodes = 1;
    o.max_clock_offset_ns = 0;
    o.scheduling = run.scheduling();
    World w(o);
    const uint64_t place = run.Pick(3);
    uint64_t seen = 0;
    w.ScheduleAt(10, 0, [] {});
    w.ScheduleAt(20, 0, [&] { seen = place; });
    w.RunUntilIdle();
    ScheduleVerdict v;
    v.outcome = seen;
    return v;
  });
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(r.schedules, 3u);
  EXPECT_EQ(r.pruned, 0u);
  EXPECT_EQ(r.outcomes, (std::set<uint64_t>{0, 1, 2}));
}

// The explorer's power: each planted bug is found, the failure names what broke, and the
// printed choices replay to the same failure (and pass without the bug).
void ExpectFound(ExploreWorldOptions o, const ExploreBounds& b, const std::string& placement,
                 const std::string& what) {
  Result<ExploreWorldFn> buggy = MakeExploreWorld(o);
  ASSERT_TRUE(buggy.ok()) << buggy.status().ToString();
  const ExploreResult r = Explorer(b).Run(*buggy);
  ASSERT_GT(r.failures, 0u) << "the explorer missed " << o.planted_bug;
  ASSERT_FALSE(r.first_failures.empty());
  const ExploreFailure& f = r.first_failures.front();
  EXPECT_NE(f.failure.find("placement " + placement + ":"), std::string::npos) << f.failure;
  EXPECT_NE(f.failure.find(what), std::string::npos) << f.failure;
  Result<ScheduleVerdict> again = Explorer(b).Replay(*buggy, f.choices);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_FALSE(again->passed);
  EXPECT_EQ(again->failure, f.failure);
  o.planted_bug.clear();
  Result<ExploreWorldFn> clean = MakeExploreWorld(o);
  ASSERT_TRUE(clean.ok());
  Result<ScheduleVerdict> without = Explorer(b).Replay(*clean, f.choices);
  ASSERT_TRUE(without.ok()) << without.status().ToString();
  EXPECT_TRUE(without->passed) << without->failure;
}

TEST(ExploreBugs, ShortAsCompleteIsFound) {
  ExploreWorldOptions o;
  o.world = "transport";
  o.ops = 1;
  o.planted_bug = "short_as_complete";
  ExpectFound(o, {}, "short op0", "COMPLETED but the target does not hold the source bytes");
}

TEST(ExploreBugs, StoreGetAcceptsShortReadIsFound) {
  ExploreWorldOptions o;
  o.world = "store";
  o.planted_bug = "store_get_accepts_short_read";
  ExpectFound(o, CollBounds(), "short read (first get)", "that are not the bytes put");
}

TEST(ExploreBugs, CollRootIgnoredIsFound) {
  ExploreWorldOptions o = Coll("broadcast");
  o.planted_bug = "coll_root_ignored";
  ExpectFound(o, CollBounds(), "none", "#wrong=");
}

TEST(ExploreBugs, BadWorldOptionsAreRefused) {
  ExploreWorldOptions o;
  o.world = "nope";
  EXPECT_EQ(MakeExploreWorld(o).code(), ErrorCode::INVALID_PARAMS);
  o.world = "transport";
  o.ops = 7;
  EXPECT_EQ(MakeExploreWorld(o).code(), ErrorCode::INVALID_PARAMS);
  o.ops = 2;
  o.planted_bug = "coll_fold_twice";
  EXPECT_EQ(MakeExploreWorld(o).code(), ErrorCode::INVALID_PARAMS);
  o.world = "allreduce";
  o.planted_bug.clear();
  o.ranks = 4;
  EXPECT_EQ(MakeExploreWorld(o).code(), ErrorCode::INVALID_PARAMS);
}

// PCT: the same seed gives the same run (digest), and the run differs from swarm's.
TEST(Pct, DeterministicPerSeedAndReplayable) {
  TransferWorkloadOptions o;
  o.seed = 7;
  o.nodes = 3;
  o.ops_per_node = 20;
  o.fault_mix = "all";
  uint64_t swarm_digest = 0, pct_digest = 0, pct_again = 0, pct_deeper = 0;
  {
    auto r = RunTransferWorkload(o);
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(r->passed) << r->violations.front();
    swarm_digest = r->digest;
  }
  SchedulingOptions s;
  s.mode = Scheduling::kPct;
  s.pct_depth = 3;
  s.pct_steps = 2000;
  for (uint64_t* out : {&pct_digest, &pct_again}) {
    ScopedScheduling scoped(s);
    auto r = RunTransferWorkload(o);
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(r->passed) << r->violations.front();
    *out = r->digest;
  }
  s.pct_depth = 5;
  {
    ScopedScheduling scoped(s);
    auto r = RunTransferWorkload(o);
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(r->passed) << r->violations.front();
    pct_deeper = r->digest;
  }
  EXPECT_EQ(pct_digest, pct_again);
  EXPECT_NE(pct_digest, swarm_digest);
  EXPECT_NE(pct_digest, pct_deeper);
  EXPECT_EQ(DefaultScheduling().mode, Scheduling::kSwarm);  // the scope ended
}

}  // namespace
}  // namespace tidal::sim
