// The collectives campaign: one seed = one simulated world of 2..6 ranks running a
// random sequence of collectives (op, dtype, reduction, root, size) while the simulator
// injects a per-seed mix of transfer faults (short writes, stale keys, windows, lost or
// delayed completions), control-message faults (delay, drop, duplicate), 0..2 rank
// crashes and sometimes a rank hang (0.5..40 ms) at random times. Everything is drawn
// from the seed, so a failing seed replays bit for bit.
//
// The checker (kept apart from the injectors): every live, never-hung rank finishes every
// op within its timeout; those ranks agree on each op's status and failed ranks; a
// finished op's result is exact over its members (#wrong == 0); failed ranks are ranks
// that crashed or hung (a hang long enough to fail probe_attempts probes is a failure);
// COLLECTIVE_ABORTED only when a root failed. The hung rank itself may time out (it was
// excluded while frozen) but never returns a wrong result.
#pragma once

#include <cstdint>
#include <string>

#include "tidal/collectives/process_group.h"

namespace tidal::cluster {

struct CollCampaignOptions {
  bool verbose = false;  // print each op's outcome
  bool trace = false;    // keep the world's trace lines (for --trace-out)
  coll::CollBug planted_bug = coll::CollBug::kNone;  // the bug zoo only
};

struct CollSeedResult {
  bool ok = true;
  std::string error;    // what the checker found, with the replay line
  uint64_t digest = 0;  // the world's trace digest (same seed -> same digest)
  uint64_t ops = 0;     // collectives completed across ranks
  uint64_t crashes = 0;
  uint64_t faults = 0;  // faults the simulator injected
  uint64_t virtual_ns = 0;
  std::string summary;  // one line: ranks, ops, faults
};

// Runs one seed (on the simulator: the campaign is made of its faults).
CollSeedResult RunCollCampaignSeed(uint64_t seed, const CollCampaignOptions& options = {});

}  // namespace tidal::cluster
