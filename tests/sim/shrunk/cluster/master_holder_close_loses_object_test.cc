// Written by `tidal-sim shrink`: seed 5 of the store workload with master_holder_close_loses_object planted, shrunk from
//   durability=1 scenarios=0xff restarts=1 clients=5 ops=24 keep=0xffffffffffffffff value=262144 timeout_ms=200, 1281 non-zero draws, 782 events, 8 faults
// to
//   durability=1 scenarios=0x0 restarts=0 clients=5 ops=6 keep=0x41040 value=1 timeout_ms=20, 7 non-zero draws, 118 events, 1 faults.
// Invariant: acknowledged put of '_' 
// Its complaint: acknowledged put of 'k1' (holders at ack: node4 node3 (node1 left); 2 replicas, 1 holders crashed) does not read back: OBJECT_NOT_FOUND(-704): 'k1': generati...
// The tape is read draw by draw: a change to the order in which the simulator draws
// re-times the run. Then regenerate it:
//   tidal-sim shrink --workload store --seed 5 --plant-bug master_holder_close_loses_object --out FILE.cc
#include <gtest/gtest.h>

#include "tidal/cluster/zoo.h"

namespace {

tidal::sim::Scale Seed5StoreMasterHolderCloseLosesObjectScale() {
  return {{"durability", 1ull, 0ull},
          {"scenarios", 0ull, 0ull, true},
          {"restarts", 0ull, 0ull},
          {"clients", 5ull, 2ull},
          {"ops", 6ull, 1ull},
          {"keep", 266304ull, 0ull, true},
          {"value", 1ull, 1ull},
          {"timeout_ms", 20ull, 1ull}};
}

std::vector<uint64_t> Seed5StoreMasterHolderCloseLosesObjectDraws() {
  return {
      0ull, 0ull, 0ull, 0ull, 0ull, 0ull,
      0ull, 0ull, 0ull, 0ull, 0ull, 0ull,
      0ull, 0ull, 0ull, 0ull, 0ull, 10398934446509737290ull,
      0ull, 6963919735352370914ull, 11665095717210774463ull, 646414500681561105ull, 10752003046866628919ull, 0ull,
      0ull, 0ull, 0ull, 0ull, 0ull, 0ull,
      0ull, 0ull, 0ull, 0ull, 0ull, 0ull,
      0ull, 0ull, 0ull, 0ull, 0ull, 0ull,
      0ull, 0ull, 0ull, 0ull, 0ull, 0ull,
      0ull, 0ull, 0ull, 0ull, 0ull, 0ull,
      0ull, 0ull, 0ull, 0ull, 0ull, 0ull,
      0ull, 0ull, 0ull, 0ull, 0ull, 0ull,
      0ull, 0ull, 0ull, 0ull, 0ull, 0ull,
      0ull, 0ull, 0ull, 0ull, 0ull, 0ull,
      0ull, 0ull, 0ull, 0ull, 0ull, 0ull,
      0ull, 0ull, 0ull, 0ull, 0ull, 0ull,
      0ull, 0ull, 0ull, 0ull, 0ull, 0ull,
      0ull, 0ull, 0ull, 0ull, 0ull, 0ull,
      0ull, 0ull, 0ull, 0ull, 0ull, 0ull,
      0ull, 0ull, 0ull, 0ull, 0ull, 0ull,
      0ull, 0ull, 0ull, 0ull, 0ull, 1113126485142348710ull,
      0ull, 0ull, 9094732928903528438ull,
  };
}

// The checker catches master_holder_close_loses_object on this run, and it is the same invariant.
TEST(ShrunkRegression, Seed5StoreMasterHolderCloseLosesObjectIsCaught) {
  tidal::sim::RunOutcome r = tidal::cluster::RunZooCandidate("store", "master_holder_close_loses_object", 5, Seed5StoreMasterHolderCloseLosesObjectScale(), Seed5StoreMasterHolderCloseLosesObjectDraws());
  EXPECT_EQ(r.invariant, "acknowledged put of '_' ") << r.failure;
  EXPECT_EQ(r.events, 118u);
  EXPECT_EQ(r.faults, 1u);
}

// The same run without the planted bug passes.
TEST(ShrunkRegression, Seed5StoreMasterHolderCloseLosesObjectPasses) {
  tidal::sim::RunOutcome r = tidal::cluster::RunZooCandidate("store", "", 5, Seed5StoreMasterHolderCloseLosesObjectScale(), Seed5StoreMasterHolderCloseLosesObjectDraws());
  EXPECT_EQ(r.invariant, "") << r.failure;
}

}  // namespace
