// Collectives on the ucx fabric, seen from the UCX transports underneath: the process
// group's chunk channel (WRITE a chunk into the receiver's slot, notify, credit back) must
// cost one UCX WRITE per chunk when the group's engines are told to slice no finer than a
// slot, and the result must be exact. Before Cluster::Make passed ClusterOptions::sim.engine
// to every backend, GroupClusterOptions::engine never reached a ucx engine: each 256 KiB
// chunk went out as four 64 KiB WRITEs, each its own rendezvous and acknowledgement, which
// tidal-coll-bench could not change (docs/performance.md, "Collectives over UCX shared
// memory").
#include <gtest/gtest.h>

#include <cstdio>
#include <vector>

#include "tidal/backends/ucx/ucx_fabric.h"
#include "tidal/cluster/coll_harness.h"

namespace tidal::backends::ucx {
namespace {

using coll::DataType;
using coll::OpType;
using coll::ReduceOp;

TEST(UcxCollectives, OneWritePerChunkAndExactResults) {
  constexpr uint64_t kSlot = 256 * 1024;
  constexpr uint64_t kCount = 1 << 18;  // f32: 1 MiB, two slots per ring segment
  cluster::GroupClusterOptions o;
  o.backend = "ucx";
  o.ranks = 2;
  o.pg.slot_bytes = kSlot;
  o.pg.algorithm = coll::Algorithm::kRing;
  o.engine.slice_bytes = kSlot;
  auto made = cluster::GroupCluster::Make(o);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  cluster::GroupCluster& c = **made;
  std::string error;
  ASSERT_TRUE(c.StartAll(&error)) << error;
  auto* fabric = dynamic_cast<UcxFabric*>(&c.fabric());
  ASSERT_NE(fabric, nullptr);
  std::vector<UcxTransportStats> before;
  for (int r = 0; r < 2; ++r) before.push_back(fabric->ucx_transport(r).stats());

  std::vector<int64_t> wrong(2, -2);
  std::vector<std::string> status(2);
  ASSERT_TRUE(c.RunRanks([&](int r) -> Task<void> {
    std::vector<uint8_t> data = cluster::Filled(r, kCount, ReduceOp::kSum, DataType::kF32);
    const std::vector<uint8_t> initial = data;
    std::shared_ptr<coll::Work> w =
        c.pg(r).AllReduce(cluster::View(data, DataType::kF32), ReduceOp::kSum);
    Status st = co_await w->Wait();
    status[r] = st.ToString();
    wrong[r] = cluster::CheckCase(OpType::kAllReduce, r, 2, {}, kCount, 0, ReduceOp::kSum,
                                  DataType::kF32, data, initial);
  }));
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(status[r], Status().ToString()) << "rank " << r;
    EXPECT_EQ(wrong[r], 0) << "rank " << r;
    const UcxTransportStats after = fabric->ucx_transport(r).stats();
    // Ring allreduce over 2 ranks: a reduce-scatter step and an all-gather step, each
    // sending half the buffer (512 KiB = 2 slots) to the other rank: 4 chunks, 1 MiB.
    EXPECT_EQ(after.writes - before[r].writes, 4u) << "rank " << r;
    EXPECT_EQ(after.write_bytes - before[r].write_bytes, kCount * 4) << "rank " << r;
    // How the progress thread waited (informational: the counts depend on the machine).
    std::printf("rank %d: waits %llu, busy timeouts %llu, idle timeouts %llu, stalls %llu\n", r,
                static_cast<unsigned long long>(after.waits - before[r].waits),
                static_cast<unsigned long long>(after.busy_timeouts - before[r].busy_timeouts),
                static_cast<unsigned long long>(after.idle_timeouts - before[r].idle_timeouts),
                static_cast<unsigned long long>(after.stalls - before[r].stalls));
  }
}

}  // namespace
}  // namespace tidal::backends::ucx
