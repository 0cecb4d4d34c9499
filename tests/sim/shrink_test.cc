// The shrinker: from a failing tape to a small one that breaks the same invariant.
#include <gtest/gtest.h>

#include <algorithm>

#include "tidal/sim/shrink.h"
#include "tidal/sim/tape.h"

namespace tidal::sim {
namespace {

TEST(Shrink, FindsTheOneDrawThatMatters) {
  // Fails ("needle") whenever some draw is at least 500; 200 draws, three of them big.
  std::vector<uint64_t> tape(200);
  for (size_t i = 0; i < tape.size(); ++i) tape[i] = (i * 7919) % 400;
  tape[37] = 123456;
  tape[90] = 9999;
  tape[150] = 777;
  TapeRunFn run = [](const std::vector<uint64_t>& d) {
    return std::any_of(d.begin(), d.end(), [](uint64_t v) { return v >= 500; }) ? "needle" : "";
  };
  ShrinkResult r = ShrinkTape(tape, "needle", run);
  ASSERT_EQ(r.draws.size(), 1u);  // dropped to one draw, moved to the front
  EXPECT_GE(r.draws[0], 500u);     // lowered by halving while it still fails
  EXPECT_LT(r.draws[0], 1000u);
  EXPECT_EQ(r.invariant, "needle");
  EXPECT_EQ(r.original_length, 200u);
  EXPECT_FALSE(r.budget_exhausted);
  EXPECT_EQ(run(r.draws), "needle");
}

TEST(Shrink, NeverTradesTheInvariantForAnother) {
  // Short tapes fail too, but with another invariant: they must not be taken.
  TapeRunFn run = [](const std::vector<uint64_t>& d) -> std::string {
    if (d.size() < 3) return "other";
    return d[2] != 0 ? "needle" : "";
  };
  ShrinkResult r = ShrinkTape({5, 6, 7, 8, 9}, "needle", run);
  EXPECT_EQ(r.draws, (std::vector<uint64_t>{0, 0, 1}));
}

TEST(Shrink, StopsAtItsBudget) {
  std::vector<uint64_t> tape(1000, 1'000'000);
  TapeRunFn run = [](const std::vector<uint64_t>& d) { return d.empty() ? "" : "any"; };
  ShrinkOptions o;
  o.max_runs = 10;
  ShrinkResult r = ShrinkTape(tape, "any", run, o);
  EXPECT_TRUE(r.budget_exhausted);
  EXPECT_EQ(r.runs, 10u);
  EXPECT_EQ(run(r.draws), "any");
}

TEST(Shrink, InvariantNamesDropTheParticulars) {
  EXPECT_EQ(InvariantOf("bytes differ from what the statuses say: node0 offset 12"),
            "bytes differ from what the statuses say");
  EXPECT_EQ(InvariantOf("bad request not refused with REMOTE_ACCESS_DENIED: WRITE node1"),
            "bad request not refused with REMOTE_ACCESS_DENIED");
  EXPECT_EQ(InvariantOf("guard band of node3 changed"), "guard band of node# changed");
  EXPECT_EQ(InvariantOf("contract: transport 'sim' broke its contract: task 17: OK with 3 of 9 "
                        "bytes"),
            "contract: transport 'sim' broke its contract: task #: OK with # of # bytes");
}

TEST(Shrink, DrawsBecomeTheSameTapeAgain) {
  const std::vector<uint64_t> draws = {0, 1, 0xfedcba9876543210ULL, 42};
  std::vector<uint8_t> bytes = DrawsToBytes(draws);
  ASSERT_EQ(bytes.size(), 32u);
  Tape t = Tape::FromBytes(bytes);
  for (uint64_t d : draws) EXPECT_EQ(t.Next(), d);
  EXPECT_EQ(t.Next(), 0u);  // calm past the end
  EXPECT_EQ(DrawsToBytes({}), std::vector<uint8_t>(8, 0));  // never "use the seed"
}

TEST(Shrink, TransferFailureShrinksToAFewEvents) {
  TransferWorkloadOptions o;
  o.seed = 1;
  o.ops_per_node = 16;
  o.fault_mix = "all";
  o.planted_bug = PlantedBug::kIgnoreRemoteKey;
  ShrinkOptions so;
  so.max_runs = 400;
  Result<TransferShrinkResult> r = ShrinkTransferFailure(o, so);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->invariant, "a request with a stale remote key completed without a refresh");
  EXPECT_EQ(InvariantOf(r->violation), r->invariant);
  EXPECT_LT(r->shrunk_events, r->original_events / 5);
  EXPECT_LT(r->shrunk_faults, r->original_faults);
  EXPECT_LE(r->runs, 400u);
  // The shrunk options replay the failure, and without the plant the run passes.
  Result<TransferWorkloadResult> again = RunTransferWorkload(r->options);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->passed);
  TransferWorkloadOptions fixed = r->options;
  fixed.planted_bug = PlantedBug::kNone;
  EXPECT_TRUE(RunTransferWorkload(fixed)->passed);
}

// Scale and tape through one callback: the failure needs 3 nodes and one draw of at least
// 100; every node adds 10 events, every non-zero draw 1 event and one fault.
TEST(Shrink, ScaleThenTapeThroughOneCallback) {
  ScaledRunFn run = [](const Scale& scale, const std::vector<uint64_t>& draws) {
    RunOutcome r;
    const uint64_t nodes = KnobValue(scale, "nodes"), ops = KnobValue(scale, "ops");
    r.draws.assign(draws.begin(), draws.begin() + std::min<size_t>(draws.size(), nodes * ops));
    r.events = 10 * nodes;
    for (uint64_t d : r.draws) {
      r.events += d != 0;
      r.faults += d != 0;
    }
    const bool big = std::any_of(r.draws.begin(), r.draws.end(), [](uint64_t v) { return v >= 100; });
    if (nodes >= 3 && big) r.invariant = "needle";
    else if (nodes < 3 && big) r.invariant = "other";  // another invariant: never taken
    return r;
  };
  Scale scale = {{"nodes", 8, 2}, {"ops", 20, 1}};
  std::vector<uint64_t> draws(160);
  for (size_t i = 0; i < draws.size(); ++i) draws[i] = i % 7;
  draws[100] = 5000;
  RunOutcome first = run(scale, draws);
  ASSERT_EQ(first.invariant, "needle");
  ScaledShrinkResult r = ShrinkScaledFailure(scale, first, run);
  EXPECT_EQ(r.invariant, "needle");
  EXPECT_EQ(KnobValue(r.scale, "nodes"), 3u);
  EXPECT_EQ(r.draws.size(), 1u);  // the big draw, moved to the front
  EXPECT_GE(r.draws[0], 100u);
  EXPECT_LT(r.draws[0], 200u);
  EXPECT_EQ(r.shrunk_events, 31u);
  EXPECT_EQ(r.shrunk_faults, 1u);
  EXPECT_EQ(r.original_events, first.events);
  EXPECT_FALSE(r.budget_exhausted);
  EXPECT_EQ(run(r.scale, r.draws).invariant, "needle");
}

// A keep-mask knob drops single items (ddmin) and a numeric knob is bisected: the failure
// needs items 3 and 11 of 16 and a size of at least 37; every kept item and every unit of
// size is one event.
TEST(Shrink, AKeepMaskDropsSingleItemsAndASizeIsBisected) {
  uint64_t calls = 0;
  ScaledRunFn run = [&calls](const Scale& scale, const std::vector<uint64_t>& draws) {
    ++calls;
    RunOutcome r;
    r.draws = draws;
    const uint64_t keep = KnobValue(scale, "keep"), size = KnobValue(scale, "size");
    uint64_t kept = 0;
    for (uint64_t i = 0; i < 16; ++i) kept += Kept(keep, i);
    r.events = kept + size;
    if (Kept(keep, 3) && Kept(keep, 11) && size >= 37) r.invariant = "needle";
    return r;
  };
  Scale scale = {{"keep", KeepAll(16), 1, /*mask=*/true}, {"size", 1000, 1}};
  RunOutcome first = run(scale, {});
  ASSERT_EQ(first.invariant, "needle");
  ScaledShrinkResult r = ShrinkScaledFailure(scale, first, run);
  EXPECT_EQ(r.invariant, "needle");
  EXPECT_EQ(KnobValue(r.scale, "keep"), (1u << 3) | (1u << 11));
  EXPECT_EQ(KnobValue(r.scale, "size"), 37u);
  EXPECT_EQ(r.shrunk_events, 39u);
  EXPECT_EQ(r.original_events, 1016u);
  // ddmin over 16 items and a bisection over 1000 values: tens of runs, not thousands.
  EXPECT_LT(r.runs, 80u);
  EXPECT_EQ(r.runs + 1, calls);
  EXPECT_FALSE(r.budget_exhausted);
  EXPECT_TRUE(Kept(0, 64));  // items from 64 on are always kept
  EXPECT_EQ(KeepAll(64), ~0ull);
}

TEST(Shrink, ScaledShrinkingStopsAtItsTimeBudget) {
  uint64_t calls = 0;
  ScaledRunFn run = [&calls](const Scale& scale, const std::vector<uint64_t>& draws) {
    ++calls;
    RunOutcome r;
    r.draws = draws;
    r.invariant = "any";
    r.events = 1;
    return r;
  };
  ShrinkOptions o;
  o.max_seconds = 1e-9;  // spent before the first candidate
  ScaledShrinkResult r =
      ShrinkScaledFailure({{"nodes", 8, 2}}, run({}, {1, 2, 3}), run, o);
  EXPECT_TRUE(r.budget_exhausted);
  EXPECT_EQ(r.runs, 0u);
  EXPECT_EQ(calls, 1u);  // only the caller's own run
  EXPECT_EQ(r.draws, (std::vector<uint64_t>{1, 2, 3}));
}

TEST(Shrink, APassingRunHasNothingToShrink) {
  TransferWorkloadOptions o;
  o.ops_per_node = 5;
  EXPECT_EQ(ShrinkTransferFailure(o).code(), ErrorCode::INVALID_PARAMS);
}

}  // namespace
}  // namespace tidal::sim
