// Written by `tidal-sim shrink`: seed 5 of the store-field workload with master_never_reclaims_puts planted, shrunk from
//   victim=1 fill=1 nodes=5 ops=40 keep=0xffffffffff value=131072 batch=3 segment=16 timeout_ms=100, 3999 non-zero draws, 4379 events, 1 faults
// to
//   victim=1 fill=0 nodes=1 ops=1 keep=0x8000000000 value=1024 batch=1 segment=2 timeout_ms=1, 0 non-zero draws, 92 events, 1 faults.
// Invariant: key '_' is still being written # ms after its writer crashed 
// Its complaint: key 'v4' is still being written 4 ms after its writer crashed (REPLICA_IS_NOT_READY(-703): 'v4' is being written)
// The tape is read draw by draw: a change to the order in which the simulator draws
// re-times the run. Then regenerate it:
//   tidal-sim shrink --workload store-field --seed 5 --plant-bug master_never_reclaims_puts --out FILE.cc
#include <gtest/gtest.h>

#include "tidal/cluster/zoo.h"

namespace {

tidal::sim::Scale Seed5StoreFieldMasterNeverReclaimsPutsScale() {
  return {{"victim", 1ull, 0ull},
          {"fill", 0ull, 0ull},
          {"nodes", 1ull, 1ull},
          {"ops", 1ull, 1ull},
          {"keep", 549755813888ull, 1ull, true},
          {"value", 1024ull, 1024ull},
          {"batch", 1ull, 1ull},
          {"segment", 2ull, 1ull},
          {"timeout_ms", 1ull, 1ull}};
}

std::vector<uint64_t> Seed5StoreFieldMasterNeverReclaimsPutsDraws() {
  return {
  };
}

// The checker catches master_never_reclaims_puts on this run, and it is the same invariant.
TEST(ShrunkRegression, Seed5StoreFieldMasterNeverReclaimsPutsIsCaught) {
  tidal::sim::RunOutcome r = tidal::cluster::RunZooCandidate("store-field", "master_never_reclaims_puts", 5, Seed5StoreFieldMasterNeverReclaimsPutsScale(), Seed5StoreFieldMasterNeverReclaimsPutsDraws());
  EXPECT_EQ(r.invariant, "key '_' is still being written # ms after its writer crashed ") << r.failure;
  EXPECT_EQ(r.events, 92u);
  EXPECT_EQ(r.faults, 1u);
}

// The same run without the planted bug passes.
TEST(ShrunkRegression, Seed5StoreFieldMasterNeverReclaimsPutsPasses) {
  tidal::sim::RunOutcome r = tidal::cluster::RunZooCandidate("store-field", "", 5, Seed5StoreFieldMasterNeverReclaimsPutsScale(), Seed5StoreFieldMasterNeverReclaimsPutsDraws());
  EXPECT_EQ(r.invariant, "") << r.failure;
}

}  // namespace
