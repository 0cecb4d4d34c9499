// Written by `tidal-sim shrink`: seed 1 of the p2p workload with coll_p2p_timeout_keeps_group planted, shrunk from
//   nodes=3 ops=8 timeout_us=20000, 821 non-zero draws, 377 events, 0 faults
// to
//   nodes=2 ops=1 timeout_us=100, 0 non-zero draws, 14 events, 0 faults.
// Invariant: rank #: operation #, posted after a timeout, answered OK, not COLLECTIVE_ABORTED 
// Its complaint: seed 1: rank 0: operation 1, posted after a timeout, answered OK(0), not COLLECTIVE_ABORTED (the group is broken by the timeout)
// The tape is read draw by draw: a change to the order in which the simulator draws
// re-times the run. Then regenerate it:
//   tidal-sim shrink --workload p2p --seed 1 --plant-bug coll_p2p_timeout_keeps_group --out FILE.cc
#include <gtest/gtest.h>

#include "tidal/cluster/zoo.h"

namespace {

tidal::sim::Scale Seed1P2pCollP2pTimeoutKeepsGroupScale() {
  return {{"nodes", 2ull, 2ull},
          {"ops", 1ull, 1ull},
          {"timeout_us", 100ull, 100ull}};
}

std::vector<uint64_t> Seed1P2pCollP2pTimeoutKeepsGroupDraws() {
  return {
  };
}

// The checker catches coll_p2p_timeout_keeps_group on this run, and it is the same invariant.
TEST(ShrunkRegression, Seed1P2pCollP2pTimeoutKeepsGroupIsCaught) {
  tidal::sim::RunOutcome r = tidal::cluster::RunZooCandidate("p2p", "coll_p2p_timeout_keeps_group", 1, Seed1P2pCollP2pTimeoutKeepsGroupScale(), Seed1P2pCollP2pTimeoutKeepsGroupDraws());
  EXPECT_EQ(r.invariant, "rank #: operation #, posted after a timeout, answered OK, not COLLECTIVE_ABORTED ") << r.failure;
  EXPECT_EQ(r.events, 14u);
  EXPECT_EQ(r.faults, 0u);
}

// The same run without the planted bug passes.
TEST(ShrunkRegression, Seed1P2pCollP2pTimeoutKeepsGroupPasses) {
  tidal::sim::RunOutcome r = tidal::cluster::RunZooCandidate("p2p", "", 1, Seed1P2pCollP2pTimeoutKeepsGroupScale(), Seed1P2pCollP2pTimeoutKeepsGroupDraws());
  EXPECT_EQ(r.invariant, "") << r.failure;
}

}  // namespace
