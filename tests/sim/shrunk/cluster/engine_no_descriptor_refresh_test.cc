// Written by `tidal-sim shrink`: seed 1 of the mixed workload with engine_no_descriptor_refresh planted, shrunk from
//   store=1 groups=0x3 handles=1 p2p=1 nodes=4 rounds=6 keep=0x3f crashes=1 count=3000 value=40000 timeout_ms=5000, 31009 non-zero draws, 21677 events, 0 faults
// to
//   store=1 groups=0x3 handles=0 p2p=0 nodes=4 rounds=1 keep=0x1 crashes=1 count=1 value=1 timeout_ms=1, 4 non-zero draws, 141 events, 0 faults.
// Invariant: group world round # rank #: status OPERATION_TIMEOUT: write retries timed out with # failed ranks 
// Its complaint: group world round 0 rank 0: status OPERATION_TIMEOUT(-5003): write retries timed out with 0 failed ranks (crashed rank -1)
// The tape is read draw by draw: a change to the order in which the simulator draws
// re-times the run. Then regenerate it:
//   tidal-sim shrink --workload mixed --seed 1 --plant-bug engine_no_descriptor_refresh --out FILE.cc
#include <gtest/gtest.h>

#include "tidal/cluster/zoo.h"

namespace {

tidal::sim::Scale Seed1MixedEngineNoDescriptorRefreshScale() {
  return {{"store", 1ull, 0ull},
          {"groups", 3ull, 0ull, true},
          {"handles", 0ull, 0ull},
          {"p2p", 0ull, 0ull},
          {"nodes", 4ull, 2ull},
          {"rounds", 1ull, 1ull},
          {"keep", 1ull, 1ull, true},
          {"crashes", 1ull, 0ull},
          {"count", 1ull, 1ull},
          {"value", 1ull, 1ull},
          {"timeout_ms", 1ull, 1ull}};
}

std::vector<uint64_t> Seed1MixedEngineNoDescriptorRefreshDraws() {
  return {
      0ull, 0ull, 0ull, 0ull, 0ull, 0ull,
      0ull, 0ull, 0ull, 0ull, 0ull, 0ull,
      17206619296382044401ull, 12342657103067243573ull, 0ull, 0ull, 0ull, 0ull,
      0ull, 0ull, 8545088851120551825ull, 0ull, 0ull, 0ull,
      0ull, 0ull, 0ull, 0ull, 0ull, 0ull,
      0ull, 1016008008634247454ull,
  };
}

// The checker catches engine_no_descriptor_refresh on this run, and it is the same invariant.
TEST(ShrunkRegression, Seed1MixedEngineNoDescriptorRefreshIsCaught) {
  tidal::sim::RunOutcome r = tidal::cluster::RunZooCandidate("mixed", "engine_no_descriptor_refresh", 1, Seed1MixedEngineNoDescriptorRefreshScale(), Seed1MixedEngineNoDescriptorRefreshDraws());
  EXPECT_EQ(r.invariant, "group world round # rank #: status OPERATION_TIMEOUT: write retries timed out with # failed ranks ") << r.failure;
  EXPECT_EQ(r.events, 141u);
  EXPECT_EQ(r.faults, 0u);
}

// The same run without the planted bug passes.
TEST(ShrunkRegression, Seed1MixedEngineNoDescriptorRefreshPasses) {
  tidal::sim::RunOutcome r = tidal::cluster::RunZooCandidate("mixed", "", 1, Seed1MixedEngineNoDescriptorRefreshScale(), Seed1MixedEngineNoDescriptorRefreshDraws());
  EXPECT_EQ(r.invariant, "") << r.failure;
}

}  // namespace
