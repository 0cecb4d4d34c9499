// Written by `tidal-sim shrink`: seed 2 of the mixed workload with coll_p2p_write_before_match planted, shrunk from
//   store=1 groups=0x3 handles=1 p2p=1 nodes=5 rounds=6 keep=0x3f crashes=1 count=3000 value=40000 timeout_ms=5000, 7924 non-zero draws, 2959 events, 0 faults
// to
//   store=0 groups=0x2 handles=0 p2p=1 nodes=2 rounds=3 keep=0x4 crashes=0 count=1 value=1 timeout_ms=1, 0 non-zero draws, 26 events, 0 faults.
// Invariant: p#p round # : a failed receive 
// Its complaint: p2p round 2 (3096 bytes, receive 8 bytes larger): a failed receive (INVALID_PARAMS(-600): p2p message from rank 0 with tag 2 has 3096 bytes; the receive expe...
// The tape is read draw by draw: a change to the order in which the simulator draws
// re-times the run. Then regenerate it:
//   tidal-sim shrink --workload mixed --seed 2 --plant-bug coll_p2p_write_before_match --out FILE.cc
#include <gtest/gtest.h>

#include "tidal/cluster/zoo.h"

namespace {

tidal::sim::Scale Seed2MixedCollP2pWriteBeforeMatchScale() {
  return {{"store", 0ull, 0ull},
          {"groups", 2ull, 0ull, true},
          {"handles", 0ull, 0ull},
          {"p2p", 1ull, 0ull},
          {"nodes", 2ull, 2ull},
          {"rounds", 3ull, 1ull},
          {"keep", 4ull, 1ull, true},
          {"crashes", 0ull, 0ull},
          {"count", 1ull, 1ull},
          {"value", 1ull, 1ull},
          {"timeout_ms", 1ull, 1ull}};
}

std::vector<uint64_t> Seed2MixedCollP2pWriteBeforeMatchDraws() {
  return {
  };
}

// The checker catches coll_p2p_write_before_match on this run, and it is the same invariant.
TEST(ShrunkRegression, Seed2MixedCollP2pWriteBeforeMatchIsCaught) {
  tidal::sim::RunOutcome r = tidal::cluster::RunZooCandidate("mixed", "coll_p2p_write_before_match", 2, Seed2MixedCollP2pWriteBeforeMatchScale(), Seed2MixedCollP2pWriteBeforeMatchDraws());
  EXPECT_EQ(r.invariant, "p#p round # : a failed receive ") << r.failure;
  EXPECT_EQ(r.events, 26u);
  EXPECT_EQ(r.faults, 0u);
}

// The same run without the planted bug passes.
TEST(ShrunkRegression, Seed2MixedCollP2pWriteBeforeMatchPasses) {
  tidal::sim::RunOutcome r = tidal::cluster::RunZooCandidate("mixed", "", 2, Seed2MixedCollP2pWriteBeforeMatchScale(), Seed2MixedCollP2pWriteBeforeMatchDraws());
  EXPECT_EQ(r.invariant, "") << r.failure;
}

}  // namespace
