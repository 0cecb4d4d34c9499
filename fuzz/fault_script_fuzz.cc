// Fuzz target: the fault-script decoder (FaultPlan::Parse) and its writer (ToScript).
//
// Proves, for every input: Parse either rejects with CORRUPT_INPUT naming the line
// ("fault script line N: ...") or accepts, and then the accepted rules obey the rules of
// the format (crash and hang name a node, a partition has two non-empty sides, 'at' only
// on node faults, node numbers in range) and ToScript writes a script that parses to the
// same rules and is a fixed point of Parse∘ToScript. That is what lets a shrunk failing
// run be saved as a script and replayed. The input also goes through SwarmMix, which
// must accept it only as a mix name or a list of fault kinds.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "tidal/sim/fault_plan.h"

namespace {

using tidal::sim::FaultKind;
using tidal::sim::FaultRule;

bool SameRule(const FaultRule& a, const FaultRule& b) {
  return a.kind == b.kind && a.src == b.src && a.dst == b.dst && a.nth == b.nth &&
         a.at_ns == b.at_ns && a.for_ns == b.for_ns && a.by == b.by && a.side_a == b.side_a &&
         a.side_b == b.side_b;
}

bool ValidNode(int node) { return node == tidal::sim::kAnyNode || (node >= 0 && node <= 4096); }

void CheckRule(const FaultRule& r) {
  const bool timed =
      r.kind == FaultKind::kCrash || r.kind == FaultKind::kHang || r.kind == FaultKind::kPartition;
  TIDAL_FUZZ_CHECK(static_cast<size_t>(r.kind) < tidal::sim::kFaultKinds, "kind out of range");
  TIDAL_FUZZ_CHECK(ValidNode(r.src) && ValidNode(r.dst), "node out of range");
  TIDAL_FUZZ_CHECK(timed || r.at_ns == 0, "'at' on a fault that is not a node fault");
  if (r.kind == FaultKind::kCrash || r.kind == FaultKind::kHang) {
    TIDAL_FUZZ_CHECK(r.src != tidal::sim::kAnyNode, "crash/hang without a node");
  }
  if (r.kind == FaultKind::kPartition) {
    TIDAL_FUZZ_CHECK(!r.side_a.empty() && !r.side_b.empty(), "partition without two sides");
  }
  for (int n : r.side_a) TIDAL_FUZZ_CHECK(n >= 0 && n <= 4096, "side node out of range");
  for (int n : r.side_b) TIDAL_FUZZ_CHECK(n >= 0 && n <= 4096, "side node out of range");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view script(reinterpret_cast<const char*>(data), size);
  auto plan = tidal::sim::FaultPlan::Parse(script);
  if (!plan.ok()) {
    TIDAL_FUZZ_CHECK(plan.code() == tidal::ErrorCode::CORRUPT_INPUT, plan.status().ToString());
    TIDAL_FUZZ_CHECK(plan.status().message().rfind("fault script line ", 0) == 0,
                     "a rejection that names no line: " + plan.status().message());
  } else {
    for (const FaultRule& r : plan->rules) CheckRule(r);
    const std::string written = plan->ToScript();
    auto again = tidal::sim::FaultPlan::Parse(written);
    TIDAL_FUZZ_CHECK(again.ok(), "ToScript wrote a script Parse rejects: " +
                                     again.status().ToString() + "\n" + written);
    TIDAL_FUZZ_CHECK(again->rules.size() == plan->rules.size(), "rule count changed\n" + written);
    for (size_t i = 0; i < plan->rules.size(); ++i) {
      TIDAL_FUZZ_CHECK(SameRule(plan->rules[i], again->rules[i]),
                       "rule " + std::to_string(i) + " changed\n" + written);
    }
    TIDAL_FUZZ_CHECK(again->ToScript() == written, "ToScript is not a fixed point\n" + written);
  }

  auto mix = tidal::sim::SwarmMix(script);
  if (!mix.ok()) {
    TIDAL_FUZZ_CHECK(mix.code() == tidal::ErrorCode::INVALID_PARAMS, mix.status().ToString());
  } else {
    // Accepted: a named mix, or kinds that each parse, so some kind is on unless the
    // mix is "none" or empty (an empty list of kinds).
    bool any = false;
    for (bool on : mix->enabled) any = any || on;
    TIDAL_FUZZ_CHECK(any == !(script == "none" || script.empty()),
                     "mix '" + std::string(script) + "'");
  }
  return 0;
}
