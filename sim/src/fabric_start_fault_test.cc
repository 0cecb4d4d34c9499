// A node fault in the first microsecond of virtual time, before SimFabric has started
// every engine (and before the transfer workload has registered its memory), must be an
// ordinary fault: the node is down, the run goes on, the checker judges it. It used to
// abort the process: SimFabric's constructor drove each engine's Start with RunBlocking,
// and a node crashed (or hung for good) at t=0 never finished it. Found by
// fuzz/transfer_tape_fuzz (draws past the end of a short input are 0, so a swarm crash
// landed at t=0); seed campaigns could hit it too, rarely.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "tidal/sim/transfer_workload.h"

namespace tidal::sim {
namespace {

TransferWorkloadOptions Small(std::string script) {
  TransferWorkloadOptions o;
  o.seed = 1;
  o.nodes = 3;
  o.ops_per_node = 20;
  o.fault_script = std::move(script);
  return o;
}

TEST(FabricStartFault, CrashAtTimeZeroIsAnOrdinaryCrash) {
  auto r = RunTransferWorkload(Small("crash node=1 at=0\n"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->passed) << r->banner;
  EXPECT_EQ(r->crashed_nodes, 1u);
}

TEST(FabricStartFault, CrashAt100nsIsAnOrdinaryCrash) {
  auto r = RunTransferWorkload(Small("crash node=2 at=100ns\n"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->passed) << r->banner;
  EXPECT_EQ(r->crashed_nodes, 1u);
}

TEST(FabricStartFault, HangForeverAtTimeZeroLeavesTheOthersRunning) {
  auto r = RunTransferWorkload(Small("hang node=1 at=0\n"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->passed) << r->banner;
  EXPECT_EQ(r->crashed_nodes, 0u);
}

// The tape the fuzz smoke test found, as transfer_tape_fuzz ran it then (fault mix "all").
TEST(FabricStartFault, FuzzTapeWithEarlyCrash) {
  // __FILE__ is this file's full path (CMake compiles sources by absolute path).
  const std::filesystem::path tape =
      std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() /
      "fuzz/regressions/transfer_tape_fuzz/crash-before-start.tape";
  std::ifstream in(tape, std::ios::binary);
  ASSERT_TRUE(in) << tape;
  TransferWorkloadOptions o;
  o.nodes = 3;
  o.ops_per_node = 20;
  o.slots = 4;
  o.slot_bytes = 16 * 1024;
  o.slice_bytes = 4 * 1024;
  o.fault_mix = "all";
  o.tape_bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  auto r = RunTransferWorkload(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->passed) << r->banner;
}

}  // namespace
}  // namespace tidal::sim
