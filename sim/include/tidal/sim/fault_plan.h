// Fault plan: what a simulated world does wrong, and when.
//
// Two parts. Scripted rules fire at exact places ("the 3rd read from node 2 to node 0
// comes back 100 bytes short", "crash node 3 at 5 ms"). Swarm settings switch fault
// kinds on per seed with rates drawn from the tape, so a campaign over many seeds covers
// many mixes (swarm testing). A budget caps the faults the design claims to survive
// (crashes, hangs).
//
// Script format, one rule a line, '#' starts a comment; numbers take ns/us/ms/s:
//   short_read  src=2 dst=0 nth=3 by=100
//   crash node=3 at=5ms
//   hang node=1 at=1ms for=2ms
//   partition a=0,1 b=2 at=1ms for=3ms
//   message_drop from=0 to=1 nth=1
//   notify_drop src=1 dst=0 nth=2     # the 2nd engine notification from 1 to 0 is lost
// `src`, `dst`, `node`, `from`, `to` default to any node; `nth` (1-based, counted over
// the matching operations) defaults to every one.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tidal/status.h"

namespace tidal::sim {

enum class FaultKind : uint8_t {
  kShortRead,
  kShortWrite,
  kUnregisteredLocal,
  kStaleRemoteKey,
  kOutsideWindow,
  kCrash,
  kHang,
  kPartition,
  kCompletionDelay,
  kCompletionReorder,
  kCompletionLoss,
  kMessageDelay,
  kMessageDrop,
  kMessageDuplicate,
  kRegistrationFailure,
  // An engine notification lost on the wire (a link that flaps), its sender none the
  // wiser. Scripted rules only: no named mix switches it on, so a mix draws as before.
  kNotifyDrop,
  kCount,
};
constexpr size_t kFaultKinds = static_cast<size_t>(FaultKind::kCount);

std::string_view FaultKindName(FaultKind kind);
Result<FaultKind> ParseFaultKind(std::string_view name);

constexpr int kAnyNode = -1;

struct FaultRule {
  FaultKind kind = FaultKind::kShortRead;
  int src = kAnyNode;      // src / from / node
  int dst = kAnyNode;      // dst / to
  uint64_t nth = 0;        // 0: every matching operation
  uint64_t at_ns = 0;      // crash / hang / partition
  uint64_t for_ns = 0;     // hang / partition duration (0: forever)
  uint64_t by = 0;         // bytes short, or delay in ns
  std::vector<int> side_a, side_b;  // partition
  uint64_t matched = 0;    // runtime: how many operations matched so far
};

struct SwarmSettings {
  std::array<bool, kFaultKinds> enabled{};  // kinds the swarm may switch on
  uint32_t max_crashes = 1;
  uint32_t max_hangs = 1;
  uint32_t max_partitions = 1;
  uint64_t horizon_ns = 20'000'000;  // crashes, hangs, partitions start before this
  int immune_node = 0;  // never crashed or hung by the swarm (the driver); -1: none
};

// Named mixes for the command line: none, transfer, messages, node, all.
Result<SwarmSettings> SwarmMix(std::string_view name);
std::vector<std::string> SwarmMixNames();

struct FaultPlan {
  std::vector<FaultRule> rules;
  SwarmSettings swarm;
  // Parses a script (see the format above). CORRUPT_INPUT names the line and the field.
  static Result<FaultPlan> Parse(std::string_view script);
  // Writes the rules back in the script format (Parse(ToScript()) gives the same rules).
  std::string ToScript() const;
};

// The rates a particular seed drew for the swarm (ppm per operation) and the scheduled
// node faults; decided once, when the World starts.
struct SwarmDraw {
  std::array<uint32_t, kFaultKinds> ppm{};
};

}  // namespace tidal::sim
