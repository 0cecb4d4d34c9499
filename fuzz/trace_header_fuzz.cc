// Fuzz target: the trace-file header decoder (ParseTransferWorkloadHeader), which
// `tidal-sim replay` uses to re-create a run from a trace file.
//
// Proves, for every input: the decoder either rejects with CORRUPT_INPUT (never throws
// or aborts on odd JSON, wrong types or huge numbers) or returns options that, written
// back with TransferWorkloadHeader, decode to the same options, and the written header
// is a fixed point (writing the re-decoded options gives the same text), so a replayed
// trace re-creates exactly the run it recorded.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "tidal/sim/transfer_workload.h"

namespace {

bool SameOptions(const tidal::sim::TransferWorkloadOptions& a,
                 const tidal::sim::TransferWorkloadOptions& b) {
  return a.seed == b.seed && a.nodes == b.nodes && a.ops_per_node == b.ops_per_node &&
         a.slots == b.slots && a.slot_bytes == b.slot_bytes && a.slice_bytes == b.slice_bytes &&
         a.transfer_timeout_ns == b.transfer_timeout_ns && a.fault_mix == b.fault_mix &&
         a.fault_script == b.fault_script && a.planted_bug == b.planted_bug;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  auto parsed = tidal::sim::ParseTransferWorkloadHeader(line);
  if (!parsed.ok()) {
    TIDAL_FUZZ_CHECK(parsed.code() == tidal::ErrorCode::CORRUPT_INPUT,
                     parsed.status().ToString());
    return 0;
  }
  const std::string header = tidal::sim::TransferWorkloadHeader(*parsed);
  auto again = tidal::sim::ParseTransferWorkloadHeader(header);
  TIDAL_FUZZ_CHECK(again.ok(), "a written header does not decode: " + header);
  TIDAL_FUZZ_CHECK(SameOptions(*parsed, *again), "decode->write->decode changed: " + header);
  TIDAL_FUZZ_CHECK(tidal::sim::TransferWorkloadHeader(*again) == header,
                   "the written header is not a fixed point: " + header);
  return 0;
}
