// Importing a real run into the simulator (tidal-sim import).
//
// A run on a real backend records its transport calls with RecordingTransport
// (tidal/recording_transport.h): registrations, connections, every READ and WRITE task
// with its source bytes, every completion with its code, byte count and, for a READ, the
// bytes that arrived. ImportTrace turns such a trace into a TransferScript: the same
// operations, in the order they were submitted, on the same regions (mapped by their order
// of registration on each node), plus the faults that explain what the recording shows:
//   * a completion TRANSFER_INCOMPLETE with n bytes: a short write/read by (length - n);
//   * a WRITE reported OK whose bytes a later READ of the same range did not find from
//     offset p on: a short write by (length - p) that the transport reported complete.
// Failures the import cannot model (PEER_UNREACHABLE, refusals, ...) are listed in
// `notes` and replay without a fault.
//
// RunTransferScript runs a script on any fabric, one operation at a time, and checks the
// transport contract's promise about bytes: a WRITE reported COMPLETED has put every byte
// of its source at the target, and a READ reported COMPLETED has every byte of its source
// in its local range. RunTransferScriptOnSim runs it on the simulator with the script's
// faults (a short transfer reported complete is the simulator's planted transport bug
// short_as_complete, the only way the simulator misbehaves like that).
// ShrinkTransferScript removes operations and faults while the same invariant still fails.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tidal/fabric.h"
#include "tidal/status.h"
#include "tidal/transport.h"

namespace tidal::sim {

struct ScriptRegion {
  uint32_t node = 0;
  uint64_t size = 0;
};

struct ScriptOp {
  uint32_t node = 0;  // the node that submits
  TransferOp op = TransferOp::kWrite;
  uint32_t peer = 0;
  uint32_t local_region = 0, remote_region = 0;  // indices into TransferScript::regions
  uint64_t local_off = 0, remote_off = 0;
  uint64_t length = 0;
  std::string data;  // a WRITE's source bytes (raw)
  uint64_t t_ns = 0;  // when it was submitted in the recording, from the first event
  // The fault the recording showed on this operation: short by `short_by` bytes (0: none),
  // reported complete (OK) or TRANSFER_INCOMPLETE.
  uint64_t short_by = 0;
  bool reported_ok = false;
  std::string recorded;  // the recorded outcome ("OK 1024 bytes"), for reading
};

struct TransferScript {
  size_t nodes = 0;
  uint64_t seed = 1;  // the simulator's seed for the replay
  std::vector<ScriptRegion> regions;
  std::vector<ScriptOp> ops;
  std::string source;               // the trace it was imported from
  std::vector<std::string> notes;   // what the import saw and could not model

  size_t faults() const;
  // JSON (the scenario file tidal-sim import writes and reads back).
  std::string ToJson() const;
  // CORRUPT_INPUT naming the field that is missing or wrong.
  static Result<TransferScript> FromJson(const std::string& text);
  // The simulator fault script of the ops' faults (fault_plan.h format).
  std::string FaultScript() const;
};

// Reads a RecordingTransport trace (JSON lines). CORRUPT_INPUT naming the line and what is
// wrong (not JSON, a missing field, an address outside every registered region, a WRITE
// without its data); INVALID_PARAMS when the file cannot be read.
Result<TransferScript> ImportTrace(const std::string& path);

struct ScriptRun {
  bool passed = true;
  std::string invariant;  // the broken promise, without particulars ("" when passed)
  std::string violation;  // the first violation in full
  size_t ops_run = 0;
  size_t failed_ops = 0;  // operations that completed with an error
};

// Runs `script` on `fabric` (which has at least script.nodes nodes): allocates and
// registers every region (zeroed), then runs every operation in order and checks its
// bytes. Errors: a region that cannot be registered, a segment that cannot be opened.
Result<ScriptRun> RunTransferScript(Fabric& fabric, const TransferScript& script);
// The same on a fresh simulated world with the script's faults.
Result<ScriptRun> RunTransferScriptOnSim(const TransferScript& script);

struct ScriptShrinkResult {
  TransferScript script;  // the smallest script found that breaks the same invariant
  ScriptRun run;
  size_t original_ops = 0, original_faults = 0;
  uint64_t runs = 0;
  double seconds = 0;
};
// INVALID_PARAMS if the script passes on the simulator (nothing to shrink).
Result<ScriptShrinkResult> ShrinkTransferScript(const TransferScript& script,
                                                uint64_t max_runs = 2000);

}  // namespace tidal::sim
