// Fuzz target: the simulated transfer workload with the input bytes as the simulator's
// tape (every nondeterministic choice is one draw from the tape, docs/architecture.md,
// "Simulator"; past the end of the input every draw is 0).
//
// The input chooses the whole run: which fault kinds the swarm switches on and their
// rates, hang/partition times, the schedule, and every request (peer, op, length,
// offsets, bad addresses, re-registrations). Proves, for every input:
//  * the run passes the workload's checker: every terminal status agrees with the bytes
//    in memory, guard bands are intact, no stale key gets through, every request of a
//    live node ends within its deadline, and the transport contract holds (a violation
//    aborts with the checker's report and the replay banner);
//  * the run is deterministic: the same bytes run again give the same digest, event
//    count and virtual end time (checked on a quarter of the inputs, see below).
// Three nodes and 20 batches each keep one execution at tens of milliseconds under ASan.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_check.h"
#include "tidal/sim/transfer_workload.h"

namespace {

// Every fault kind. (A crash at t=0, before SimFabric had started every engine, once
// aborted the process; this target found it. Reproducer: fuzz/regressions/
// transfer_tape_fuzz/ and sim/src/fabric_start_fault_test.cc.)
constexpr const char* kFaultMix = "all";

tidal::sim::TransferWorkloadOptions Options(const uint8_t* data, size_t size) {
  tidal::sim::TransferWorkloadOptions o;
  o.nodes = 3;
  o.ops_per_node = 20;
  // Small regions: the checker compares every byte after every request, and under the
  // fuzzer each comparison is instrumented.
  o.slots = 3;
  o.slot_bytes = 8 * 1024;
  o.slice_bytes = 2 * 1024;  // requests over 2 KiB are sliced
  o.fault_mix = kFaultMix;
  o.tape_bytes.assign(data, data + size);
  o.replay_command = "replay: feed this input to transfer_tape_fuzz";
  return o;
}

std::string Report(const tidal::sim::TransferWorkloadResult& r) {
  std::string s = r.banner;
  for (const std::string& v : r.violations) s += "\n  violation: " + v;
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Past 4 KiB the extra draws change little; a bound keeps every execution short.
  if (size > 4096) return -1;
  const tidal::sim::TransferWorkloadOptions o = Options(data, size);
  auto first = tidal::sim::RunTransferWorkload(o);
  TIDAL_FUZZ_CHECK(first.ok(), first.status().ToString());
  TIDAL_FUZZ_CHECK(first->passed, Report(*first));
  // Determinism is checked on a fixed quarter of the inputs (chosen by a hash of the
  // bytes, so the choice is itself deterministic): a second run doubles the cost, and a
  // source of nondeterminism shows on any input, not on rare ones.
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < size; ++i) h = (h ^ data[i]) * 0x100000001b3ULL;
  if (h % 4 != 0) return 0;
  auto second = tidal::sim::RunTransferWorkload(o);
  TIDAL_FUZZ_CHECK(second.ok() && second->passed, "the second run of the same tape failed");
  TIDAL_FUZZ_CHECK(first->digest == second->digest && first->events == second->events &&
                       first->virtual_ns == second->virtual_ns,
                   "same tape, different run: " + Report(*first) + " vs " + Report(*second));
  return 0;
}
