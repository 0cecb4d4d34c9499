// Written by `tidal-sim shrink`: seed 1 of the store workload with master_frees_leased_memory planted, shrunk from
//   durability=1 scenarios=0xff restarts=1 clients=7 ops=24 keep=0xffffffffffffffff value=262144 timeout_ms=200, 3467 non-zero draws, 2104 events, 37 faults
// to
//   durability=0 scenarios=0x2 restarts=0 clients=2 ops=1 keep=0x0 value=1 timeout_ms=1, 0 non-zero draws, 58 events, 1 faults.
// Invariant: get of '_' returned # bytes as success that no put of that key wrote  
// Its complaint: get of 'lease1' returned 160 bytes as success that no put of that key wrote (wrong, partial or mixed) (lease scenario: get_tensor by client 1 paused 300000 n...
// The tape is read draw by draw: a change to the order in which the simulator draws
// re-times the run. Then regenerate it:
//   tidal-sim shrink --workload store --seed 1 --plant-bug master_frees_leased_memory --out FILE.cc
#include <gtest/gtest.h>

#include "tidal/cluster/zoo.h"

namespace {

tidal::sim::Scale Seed1StoreMasterFreesLeasedMemoryScale() {
  return {{"durability", 0ull, 0ull},
          {"scenarios", 2ull, 0ull, true},
          {"restarts", 0ull, 0ull},
          {"clients", 2ull, 2ull},
          {"ops", 1ull, 1ull},
          {"keep", 0ull, 0ull, true},
          {"value", 1ull, 1ull},
          {"timeout_ms", 1ull, 1ull}};
}

std::vector<uint64_t> Seed1StoreMasterFreesLeasedMemoryDraws() {
  return {
  };
}

// The checker catches master_frees_leased_memory on this run, and it is the same invariant.
TEST(ShrunkRegression, Seed1StoreMasterFreesLeasedMemoryIsCaught) {
  tidal::sim::RunOutcome r = tidal::cluster::RunZooCandidate("store", "master_frees_leased_memory", 1, Seed1StoreMasterFreesLeasedMemoryScale(), Seed1StoreMasterFreesLeasedMemoryDraws());
  EXPECT_EQ(r.invariant, "get of '_' returned # bytes as success that no put of that key wrote  ") << r.failure;
  EXPECT_EQ(r.events, 58u);
  EXPECT_EQ(r.faults, 1u);
}

// The same run without the planted bug passes.
TEST(ShrunkRegression, Seed1StoreMasterFreesLeasedMemoryPasses) {
  tidal::sim::RunOutcome r = tidal::cluster::RunZooCandidate("store", "", 1, Seed1StoreMasterFreesLeasedMemoryScale(), Seed1StoreMasterFreesLeasedMemoryDraws());
  EXPECT_EQ(r.invariant, "") << r.failure;
}

}  // namespace
