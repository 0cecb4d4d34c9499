// Written by `tidal-sim shrink`: seed 1 of the store-field workload with store_tp_batch_reports_invalid planted, shrunk from
//   victim=1 fill=1 nodes=4 ops=30 keep=0x3fffffff value=131072 batch=3 segment=16 timeout_ms=100, 318 non-zero draws, 298 events, 0 faults
// to
//   victim=0 fill=0 nodes=1 ops=4 keep=0x8 value=1024 batch=1 segment=1 timeout_ms=1, 0 non-zero draws, 35 events, 0 faults.
// Invariant: batch tensor-parallel put of well-formed '_' answered INVALID_PARAMS: batch slot not attempted
// Its complaint: batch tensor-parallel put of well-formed 'b0_3_0' answered INVALID_PARAMS(-600): batch slot not attempted
// The tape is read draw by draw: a change to the order in which the simulator draws
// re-times the run. Then regenerate it:
//   tidal-sim shrink --workload store-field --seed 1 --plant-bug store_tp_batch_reports_invalid --out FILE.cc
#include <gtest/gtest.h>

#include "tidal/cluster/zoo.h"

namespace {

tidal::sim::Scale Seed1StoreFieldStoreTpBatchReportsInvalidScale() {
  return {{"victim", 0ull, 0ull},
          {"fill", 0ull, 0ull},
          {"nodes", 1ull, 1ull},
          {"ops", 4ull, 1ull},
          {"keep", 8ull, 1ull, true},
          {"value", 1024ull, 1024ull},
          {"batch", 1ull, 1ull},
          {"segment", 1ull, 1ull},
          {"timeout_ms", 1ull, 1ull}};
}

std::vector<uint64_t> Seed1StoreFieldStoreTpBatchReportsInvalidDraws() {
  return {
  };
}

// The checker catches store_tp_batch_reports_invalid on this run, and it is the same invariant.
TEST(ShrunkRegression, Seed1StoreFieldStoreTpBatchReportsInvalidIsCaught) {
  tidal::sim::RunOutcome r = tidal::cluster::RunZooCandidate("store-field", "store_tp_batch_reports_invalid", 1, Seed1StoreFieldStoreTpBatchReportsInvalidScale(), Seed1StoreFieldStoreTpBatchReportsInvalidDraws());
  EXPECT_EQ(r.invariant, "batch tensor-parallel put of well-formed '_' answered INVALID_PARAMS: batch slot not attempted") << r.failure;
  EXPECT_EQ(r.events, 35u);
  EXPECT_EQ(r.faults, 0u);
}

// The same run without the planted bug passes.
TEST(ShrunkRegression, Seed1StoreFieldStoreTpBatchReportsInvalidPasses) {
  tidal::sim::RunOutcome r = tidal::cluster::RunZooCandidate("store-field", "", 1, Seed1StoreFieldStoreTpBatchReportsInvalidScale(), Seed1StoreFieldStoreTpBatchReportsInvalidDraws());
  EXPECT_EQ(r.invariant, "") << r.failure;
}

}  // namespace
