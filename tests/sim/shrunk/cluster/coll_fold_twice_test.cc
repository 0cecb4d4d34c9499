// Written by `tidal-sim shrink`: seed 1 of the collectives workload with coll_fold_twice planted, shrunk from
//   ranks=6 steps=11 keep=0x7ff count=1500 direct=256 crashes=1 hangs=1 partitions=1 timeout_ms=1000, 17972 non-zero draws, 6660 events, 0 faults
// to
//   ranks=3 steps=9 keep=0x100 count=1 direct=1 crashes=0 hangs=0 partitions=0 timeout_ms=1, 0 non-zero draws, 39 events, 0 faults.
// Invariant: op #  rank #: #wrong=#
// Its complaint: op 0 (allreduce f32 prod root=1 count=1) rank 0: #wrong=1; op 0 (allreduce f32 prod root=1 count=1) rank 1: #wrong=1; op 0 (allreduce f32 prod root=1 count=1...
// The tape is read draw by draw: a change to the order in which the simulator draws
// re-times the run. Then regenerate it:
//   tidal-sim shrink --workload collectives --seed 1 --plant-bug coll_fold_twice --out FILE.cc
#include <gtest/gtest.h>

#include "tidal/cluster/zoo.h"

namespace {

tidal::sim::Scale Seed1CollectivesCollFoldTwiceScale() {
  return {{"ranks", 3ull, 2ull},
          {"steps", 9ull, 1ull},
          {"keep", 256ull, 1ull, true},
          {"count", 1ull, 1ull},
          {"direct", 1ull, 1ull},
          {"crashes", 0ull, 0ull},
          {"hangs", 0ull, 0ull},
          {"partitions", 0ull, 0ull},
          {"timeout_ms", 1ull, 1ull}};
}

std::vector<uint64_t> Seed1CollectivesCollFoldTwiceDraws() {
  return {
  };
}

// The checker catches coll_fold_twice on this run, and it is the same invariant.
TEST(ShrunkRegression, Seed1CollectivesCollFoldTwiceIsCaught) {
  tidal::sim::RunOutcome r = tidal::cluster::RunZooCandidate("collectives", "coll_fold_twice", 1, Seed1CollectivesCollFoldTwiceScale(), Seed1CollectivesCollFoldTwiceDraws());
  EXPECT_EQ(r.invariant, "op #  rank #: #wrong=#") << r.failure;
  EXPECT_EQ(r.events, 39u);
  EXPECT_EQ(r.faults, 0u);
}

// The same run without the planted bug passes.
TEST(ShrunkRegression, Seed1CollectivesCollFoldTwicePasses) {
  tidal::sim::RunOutcome r = tidal::cluster::RunZooCandidate("collectives", "", 1, Seed1CollectivesCollFoldTwiceScale(), Seed1CollectivesCollFoldTwiceDraws());
  EXPECT_EQ(r.invariant, "") << r.failure;
}

}  // namespace
