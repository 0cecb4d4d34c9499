// The transfer workload: the simulated cluster campaign of tidal-sim (and the
// determinism and fault tests). Every node runs a driver coroutine that issues random
// batches of READ and WRITE requests to random peers through the TransferEngine, while
// the World injects the fault mix. A checker, kept apart from the injectors, judges the
// run by looking at memory:
//  * safety: every terminal status agrees with what happened to the bytes. COMPLETED
//    means the target range holds exactly the source bytes; TRANSFER_INCOMPLETE means
//    exactly `bytes_transferred` bytes (a prefix, in the simulator) moved and no more;
//    any other failure moved nothing; guard bands around every region never change; a
//    run with no fault injected completes every request.
//  * liveness: every request of a live node reaches a terminal state within its deadline
//    (plus the time the node was hung), and every live driver finishes.
// Byte expectations come from a shadow copy of every region with a per-byte "known"
// mask (a timed-out request may or may not have moved bytes: those become unknown).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tidal/planted.h"
#include "tidal/sim/fault_plan.h"
#include "tidal/sim/world.h"

namespace tidal::sim {

struct TransferWorkloadOptions {
  uint64_t seed = 1;
  size_t nodes = 4;
  size_t ops_per_node = 200;         // batches each driver submits
  // Shrinking: a keep-mask over the batches (sim/shrink.h): bit i keeps batch i, node n's
  // batch k being batch n * ops_per_node + k (batches from 64 on are always kept). A batch
  // left out draws nothing and submits nothing. The default keeps every batch.
  uint64_t batch_mask = ~0ull;
  size_t slots = 16;                 // per node
  size_t slot_bytes = 64 * 1024;
  uint64_t slice_bytes = 16 * 1024;  // so large requests are sliced
  uint64_t transfer_timeout_ns = 2'000'000;
  std::string fault_mix = "none";    // SwarmMix name or list of kinds
  std::string fault_script;          // scripted rules (FaultPlan::Parse)
  PlantedBug planted_bug = PlantedBug::kNone;   // the bug zoo: a transport bug
  EngineBug engine_bug = EngineBug::kNone;      // the bug zoo: an engine bug
  bool trace_lines = false;
  std::vector<uint8_t> tape_bytes;   // fuzzing and shrinking: the tape instead of the seed
  bool record_tape = false;          // keep every draw in the result (for the shrinker)
  std::string replay_command;
};

struct TransferWorkloadResult {
  bool passed = false;
  std::vector<std::string> violations;  // empty when passed (capped at 20)
  uint64_t digest = 0;
  uint64_t events = 0;
  uint64_t virtual_ns = 0;
  uint64_t requests = 0;
  uint64_t completed = 0;
  uint64_t failed = 0;
  uint64_t timed_out = 0;
  uint64_t bytes_moved = 0;
  std::vector<std::pair<std::string, uint64_t>> failures_by_code;  // sorted by name
  std::vector<std::pair<std::string, uint64_t>> faults_injected;   // sorted by kind order
  uint32_t crashed_nodes = 0;
  uint64_t faults = 0;               // every fault injected, all kinds
  std::vector<uint64_t> tape;        // the draws, when options.record_tape
  std::string banner;                // seed, digest, replay command
  std::vector<std::string> trace;    // JSON lines when trace_lines
  std::string trace_header;
};

// Runs one seed. Never aborts on a checker violation: it is reported in the result.
// INVALID_PARAMS for bad options (unknown fault mix, bad script, zero nodes...).
Result<TransferWorkloadResult> RunTransferWorkload(const TransferWorkloadOptions& options);

// The JSON header line of a trace file, holding everything needed to re-run it, and its
// parser (CORRUPT_INPUT names the bad field).
std::string TransferWorkloadHeader(const TransferWorkloadOptions& options);
Result<TransferWorkloadOptions> ParseTransferWorkloadHeader(std::string_view line);

}  // namespace tidal::sim
