// Written by `tidal-sim shrink`: seed 1 of the mixed workload with engine_close_drops_every_holder planted, shrunk from
//   store=1 groups=0x3 handles=1 p2p=1 nodes=4 rounds=6 keep=0x3f crashes=1 count=3000 value=40000 timeout_ms=5000, 9094 non-zero draws, 5259 events, 0 faults
// to
//   store=1 groups=0x2 handles=1 p2p=1 nodes=4 rounds=1 keep=0x1 crashes=1 count=1 value=1 timeout_ms=1, 3 non-zero draws, 45 events, 0 faults.
// Invariant: p#p round # : unexpected COLLECTIVE_ABORTED: the group is broken by an earlier timeout or exclusion
// Its complaint: p2p round 0 (2488 bytes): unexpected COLLECTIVE_ABORTED(-5002): the group is broken by an earlier timeout or exclusion
// The tape is read draw by draw: a change to the order in which the simulator draws
// re-times the run. Then regenerate it:
//   tidal-sim shrink --workload mixed --seed 1 --plant-bug engine_close_drops_every_holder --out FILE.cc
#include <gtest/gtest.h>

#include "tidal/cluster/zoo.h"

namespace {

tidal::sim::Scale Seed1MixedEngineCloseDropsEveryHolderScale() {
  return {{"store", 1ull, 0ull},
          {"groups", 2ull, 0ull, true},
          {"handles", 1ull, 0ull},
          {"p2p", 1ull, 0ull},
          {"nodes", 4ull, 2ull},
          {"rounds", 1ull, 1ull},
          {"keep", 1ull, 1ull, true},
          {"crashes", 1ull, 0ull},
          {"count", 1ull, 1ull},
          {"value", 1ull, 1ull},
          {"timeout_ms", 1ull, 1ull}};
}

std::vector<uint64_t> Seed1MixedEngineCloseDropsEveryHolderDraws() {
  return {
      0ull, 0ull, 0ull, 0ull, 0ull, 0ull,
      0ull, 0ull, 0ull, 0ull, 0ull, 0ull,
      6452051665337041730ull, 7460617819096774474ull, 0ull, 0ull, 0ull, 0ull,
      0ull, 0ull, 7894450248801719761ull,
  };
}

// The checker catches engine_close_drops_every_holder on this run, and it is the same invariant.
TEST(ShrunkRegression, Seed1MixedEngineCloseDropsEveryHolderIsCaught) {
  tidal::sim::RunOutcome r = tidal::cluster::RunZooCandidate("mixed", "engine_close_drops_every_holder", 1, Seed1MixedEngineCloseDropsEveryHolderScale(), Seed1MixedEngineCloseDropsEveryHolderDraws());
  EXPECT_EQ(r.invariant, "p#p round # : unexpected COLLECTIVE_ABORTED: the group is broken by an earlier timeout or exclusion") << r.failure;
  EXPECT_EQ(r.events, 45u);
  EXPECT_EQ(r.faults, 0u);
}

// The same run without the planted bug passes.
TEST(ShrunkRegression, Seed1MixedEngineCloseDropsEveryHolderPasses) {
  tidal::sim::RunOutcome r = tidal::cluster::RunZooCandidate("mixed", "", 1, Seed1MixedEngineCloseDropsEveryHolderScale(), Seed1MixedEngineCloseDropsEveryHolderDraws());
  EXPECT_EQ(r.invariant, "") << r.failure;
}

}  // namespace
