// Written by `tidal-sim shrink`: a failing transfer-workload run shrunk from 4 nodes x 200 batches, 28635 non-zero draws, 3688 events, 46 faults
// to 4 nodes x 1 batches, 10 non-zero draws, 19 events, 1 faults.
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
  o.slots = 16;
  o.slot_bytes = 65536;
  o.slice_bytes = 16384;
  o.transfer_timeout_ns = 2000000;
  o.fault_mix = "transfer";
  o.tape_bytes = {
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 68, 132, 119, 94, 122, 128, 54, 231,
      53, 209, 66, 7, 110, 112, 230, 102, 177, 77, 80, 216, 33, 174, 3, 250,
      0, 0, 0, 0, 0, 0, 0, 0, 162, 170, 161, 190, 32, 173, 99, 250,
      0, 0, 0, 0, 0, 0, 0, 0, 48, 126, 112, 134, 27, 116, 50, 205,
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
      218, 59, 209, 246, 213, 103, 175, 25, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 75, 139, 201, 251, 207, 100, 7, 4,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      53, 91, 237, 200, 196, 215, 127, 5, 49, 49, 200, 241, 161, 112, 1, 213,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 156, 97, 237, 250, 84, 184, 138, 255,
  };
  return o;
}

// With the bug planted, the checker still catches it on this tape.
TEST(ShrunkRegression, Seed4ShortAsCompleteIsCaught) {
  tidal::sim::TransferWorkloadOptions o = Seed4ShortAsCompleteRun();
  o.planted_bug = tidal::sim::ParsePlantedBug("short_as_complete").value();
  auto r = tidal::sim::RunTransferWorkload(o);
  ASSERT_TRUE(r.ok());
  ASSERT_FALSE(r->passed);
  bool seen = false;
  for (const auto& v : r->violations) seen |= tidal::sim::InvariantOf(v) == "bytes differ from what the statuses say";
  EXPECT_TRUE(seen) << r->violations.front();
}

// The same run without the planted bug passes.
TEST(ShrunkRegression, Seed4ShortAsCompletePasses) {
  auto r = tidal::sim::RunTransferWorkload(Seed4ShortAsCompleteRun());
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->passed) << (r->violations.empty() ? "" : r->violations.front());
}

}  // namespace
