// Written by `tidal-sim shrink`: a failing transfer-workload run shrunk from 4 nodes x 200 batches, 28635 non-zero draws, 3688 events, 46 faults
// to 4 nodes x 1 batches (4 kept), 11 non-zero draws, 16 events, 1 faults.
// Invariant: bytes differ from what the statuses say
// The tape is read draw by draw: a change to the order in which the simulator draws
// re-times the run. Then regenerate it:
//   tidal-sim shrink --seed 4 --nodes 4 --ops 200 --faults transfer --plant-bug short_as_complete --out FILE.cc
#include <gtest/gtest.h>

#include "tidal/sim/shrink.h"
#include "tidal/sim/transfer_workload.h"

namespace {

tidal::sim::TransferWorkloadOptions Seed4ShortAsCompleteRun() {
  tidal::sim::TransferWorkloadOptions o;
  o.seed = 4;
  o.nodes = 4;
  o.ops_per_node = 1;
  o.batch_mask = 15ull;
  o.slots = 16;
  o.slot_bytes = 65536;
  o.slice_bytes = 16384;
  o.transfer_timeout_ns = 2000000;
  o.fault_mix = "transfer";
  o.tape_bytes = {
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 124, 182, 253, 63, 21, 144, 215, 222,
      24, 182, 241, 69, 152, 185, 86, 225, 0, 0, 0, 0, 0, 0, 0, 0,
      11, 193, 167, 13, 218, 84, 95, 189, 0, 0, 0, 0, 0, 0, 0, 0,
      105, 251, 107, 175, 91, 144, 37, 176, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 200, 226, 58, 173, 102, 121, 217, 2,
      214, 216, 180, 153, 150, 20, 243, 253, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      183, 195, 44, 15, 96, 71, 136, 243, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      191, 200, 82, 77, 31, 92, 97, 3, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 169, 165, 222, 108, 148, 205, 4, 7,
      250, 5, 226, 143, 193, 94, 90, 183, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 97, 246, 12, 51, 13, 226, 140, 236,
  };
  return o;
}

// With the bug planted, the checker still catches it on this tape, in the same run.
TEST(ShrunkRegression, Seed4ShortAsCompleteIsCaught) {
  tidal::sim::TransferWorkloadOptions o = Seed4ShortAsCompleteRun();
  o.planted_bug = tidal::sim::ParsePlantedBug("short_as_complete").value();
  auto r = tidal::sim::RunTransferWorkload(o);
  ASSERT_TRUE(r.ok());
  ASSERT_FALSE(r->passed);
  bool seen = false;
  for (const auto& v : r->violations) seen |= tidal::sim::InvariantOf(v) == "bytes differ from what the statuses say";
  EXPECT_TRUE(seen) << r->violations.front();
  EXPECT_EQ(r->events, 16u);
  EXPECT_EQ(r->faults, 1u);
}

// The same run without the planted bug passes.
TEST(ShrunkRegression, Seed4ShortAsCompletePasses) {
  auto r = tidal::sim::RunTransferWorkload(Seed4ShortAsCompleteRun());
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->passed) << (r->violations.empty() ? "" : r->violations.front());
}

}  // namespace
