// Written by `tidal-sim shrink`: seed 1 of the store-field workload with store_unregistered_buffer planted, shrunk from
//   victim=1 fill=1 nodes=4 ops=30 keep=0x3fffffff value=131072 batch=3 segment=16 timeout_ms=100, 124 non-zero draws, 111 events, 0 faults
// to
//   victim=0 fill=0 nodes=1 ops=1 keep=0x1 value=1024 batch=1 segment=1 timeout_ms=1, 0 non-zero draws, 18 events, 0 faults.
// Invariant: put_from of '_' from an unregistered buffer answered TRANSFER_FAIL: put: replica on node#: FAILED/ADDRESS_NOT_REGISTERED after # bytes, not ADDRESS_NOT_REGISTERED
// Its complaint: put_from of 'u0_0' from an unregistered buffer answered TRANSFER_FAIL(-800): put: replica on node1: FAILED/ADDRESS_NOT_REGISTERED after 0 bytes, not ADDRESS_...
// The tape is read draw by draw: a change to the order in which the simulator draws
// re-times the run. Then regenerate it:
//   tidal-sim shrink --workload store-field --seed 1 --plant-bug store_unregistered_buffer --out FILE.cc
#include <gtest/gtest.h>

#include "tidal/cluster/zoo.h"

namespace {

tidal::sim::Scale Seed1StoreFieldStoreUnregisteredBufferScale() {
  return {{"victim", 0ull, 0ull},
          {"fill", 0ull, 0ull},
          {"nodes", 1ull, 1ull},
          {"ops", 1ull, 1ull},
          {"keep", 1ull, 1ull, true},
          {"value", 1024ull, 1024ull},
          {"batch", 1ull, 1ull},
          {"segment", 1ull, 1ull},
          {"timeout_ms", 1ull, 1ull}};
}

std::vector<uint64_t> Seed1StoreFieldStoreUnregisteredBufferDraws() {
  return {
  };
}

// The checker catches store_unregistered_buffer on this run, and it is the same invariant.
TEST(ShrunkRegression, Seed1StoreFieldStoreUnregisteredBufferIsCaught) {
  tidal::sim::RunOutcome r = tidal::cluster::RunZooCandidate("store-field", "store_unregistered_buffer", 1, Seed1StoreFieldStoreUnregisteredBufferScale(), Seed1StoreFieldStoreUnregisteredBufferDraws());
  EXPECT_EQ(r.invariant, "put_from of '_' from an unregistered buffer answered TRANSFER_FAIL: put: replica on node#: FAILED/ADDRESS_NOT_REGISTERED after # bytes, not ADDRESS_NOT_REGISTERED") << r.failure;
  EXPECT_EQ(r.events, 18u);
  EXPECT_EQ(r.faults, 0u);
}

// The same run without the planted bug passes.
TEST(ShrunkRegression, Seed1StoreFieldStoreUnregisteredBufferPasses) {
  tidal::sim::RunOutcome r = tidal::cluster::RunZooCandidate("store-field", "", 1, Seed1StoreFieldStoreUnregisteredBufferScale(), Seed1StoreFieldStoreUnregisteredBufferDraws());
  EXPECT_EQ(r.invariant, "") << r.failure;
}

}  // namespace
