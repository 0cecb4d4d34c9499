// Written by `tidal-sim shrink`: seed 5 of the collectives workload with coll_silence_is_death planted, shrunk from
//   ranks=4 steps=5 keep=0x1f count=1500 direct=256 crashes=1 hangs=1 partitions=1 timeout_ms=1000, 1000 non-zero draws, 561 events, 11 faults
// to
//   ranks=4 steps=3 keep=0x7 count=1 direct=1 crashes=0 hangs=0 partitions=1 timeout_ms=10, 3 non-zero draws, 187 events, 2 faults.
// Invariant: op #  rank #: #wrong=-#
// Its complaint: op 0 (broadcast i8 avg root=3 count=1) rank 1: #wrong=-1; op 0 (broadcast i8 avg root=3 count=1) rank 1: OPERATION_TIMEOUT(-5003): agreement timed out; op 0 ...
// The tape is read draw by draw: a change to the order in which the simulator draws
// re-times the run. Then regenerate it:
//   tidal-sim shrink --workload collectives --seed 5 --plant-bug coll_silence_is_death --out FILE.cc
#include <gtest/gtest.h>

#include "tidal/cluster/zoo.h"

namespace {

tidal::sim::Scale Seed5CollectivesCollSilenceIsDeathScale() {
  return {{"ranks", 4ull, 2ull},
          {"steps", 3ull, 1ull},
          {"keep", 7ull, 1ull, true},
          {"count", 1ull, 1ull},
          {"direct", 1ull, 1ull},
          {"crashes", 0ull, 0ull},
          {"hangs", 0ull, 0ull},
          {"partitions", 1ull, 0ull},
          {"timeout_ms", 10ull, 1ull}};
}

std::vector<uint64_t> Seed5CollectivesCollSilenceIsDeathDraws() {
  return {
      0ull, 0ull, 0ull, 0ull, 9531689329179025993ull, 14471912560152521095ull,
      0ull, 0ull, 0ull, 0ull, 0ull, 0ull,
      0ull, 0ull, 0ull, 0ull, 0ull, 0ull,
      0ull, 0ull, 0ull, 0ull, 0ull, 0ull,
      0ull, 0ull, 0ull, 0ull, 0ull, 0ull,
      0ull, 0ull, 0ull, 0ull, 0ull, 0ull,
      0ull, 0ull, 0ull, 0ull, 0ull, 0ull,
      0ull, 0ull, 0ull, 0ull, 0ull, 0ull,
      0ull, 0ull, 0ull, 0ull, 0ull, 0ull,
      0ull, 0ull, 0ull, 18129868882122986391ull,
  };
}

// The checker catches coll_silence_is_death on this run, and it is the same invariant.
TEST(ShrunkRegression, Seed5CollectivesCollSilenceIsDeathIsCaught) {
  tidal::sim::RunOutcome r = tidal::cluster::RunZooCandidate("collectives", "coll_silence_is_death", 5, Seed5CollectivesCollSilenceIsDeathScale(), Seed5CollectivesCollSilenceIsDeathDraws());
  EXPECT_EQ(r.invariant, "op #  rank #: #wrong=-#") << r.failure;
  EXPECT_EQ(r.events, 187u);
  EXPECT_EQ(r.faults, 2u);
}

// The same run without the planted bug passes.
TEST(ShrunkRegression, Seed5CollectivesCollSilenceIsDeathPasses) {
  tidal::sim::RunOutcome r = tidal::cluster::RunZooCandidate("collectives", "", 5, Seed5CollectivesCollSilenceIsDeathScale(), Seed5CollectivesCollSilenceIsDeathDraws());
  EXPECT_EQ(r.invariant, "") << r.failure;
}

}  // namespace
