// Written by `tidal-sim shrink`: a failing transfer-workload run shrunk from 4 nodes x 200 batches, 35926 non-zero draws, 4580 events, 287 faults
// to 4 nodes x 3 batches (4 kept), 9 non-zero draws, 20 events, 1 faults.
// Invariant: bytes differ from what the statuses say
// The tape is read draw by draw: a change to the order in which the simulator draws
// re-times the run. Then regenerate it:
//   tidal-sim shrink --seed 2 --nodes 4 --ops 200 --faults all --plant-bug short_as_complete --out FILE.cc
#include <gtest/gtest.h>

#include "tidal/sim/shrink.h"
#include "tidal/sim/transfer_workload.h"

namespace {

tidal::sim::TransferWorkloadOptions Seed2ShortAsCompleteRun() {
  tidal::sim::TransferWorkloadOptions o;
  o.seed = 2;
  o.nodes = 4;
  o.ops_per_node = 3;
  o.batch_mask = 1292ull;
  o.slots = 16;
  o.slot_bytes = 65536;
  o.slice_bytes = 16384;
  o.transfer_timeout_ns = 2000000;
  o.fault_mix = "all";
  o.tape_bytes = {
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 199, 44, 225, 150, 145, 107, 52, 174,
      237, 104, 240, 26, 252, 90, 244, 245, 0, 0, 0, 0, 0, 0, 0, 0,
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
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      112, 141, 169, 61, 32, 156, 138, 112, 0, 0, 0, 0, 0, 0, 0, 0,
      208, 245, 158, 72, 0, 154, 119, 29, 215, 56, 136, 126, 64, 64, 75, 47,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      224, 108, 57, 184, 45, 160, 17, 7, 249, 135, 70, 48, 156, 145, 63, 244,
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
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      98, 234, 106, 225, 252, 43, 58, 6, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 200, 173, 20, 246, 29, 117, 216, 232,
  };
  return o;
}

// With the bug planted, the checker still catches it on this tape, in the same run.
TEST(ShrunkRegression, Seed2ShortAsCompleteIsCaught) {
  tidal::sim::TransferWorkloadOptions o = Seed2ShortAsCompleteRun();
  o.planted_bug = tidal::sim::ParsePlantedBug("short_as_complete").value();
  auto r = tidal::sim::RunTransferWorkload(o);
  ASSERT_TRUE(r.ok());
  ASSERT_FALSE(r->passed);
  bool seen = false;
  for (const auto& v : r->violations) seen |= tidal::sim::InvariantOf(v) == "bytes differ from what the statuses say";
  EXPECT_TRUE(seen) << r->violations.front();
  EXPECT_EQ(r->events, 20u);
  EXPECT_EQ(r->faults, 1u);
}

// The same run without the planted bug passes.
TEST(ShrunkRegression, Seed2ShortAsCompletePasses) {
  auto r = tidal::sim::RunTransferWorkload(Seed2ShortAsCompleteRun());
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->passed) << (r->violations.empty() ? "" : r->violations.front());
}

}  // namespace
