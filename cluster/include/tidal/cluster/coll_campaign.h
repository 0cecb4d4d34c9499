// The collectives campaign: one seed = one simulated world of 2..6 ranks running a
// random sequence of steps — collectives (op, dtype, reduction, root, size) and
// point-to-point exchanges around the ring (each rank sends to the next and receives from
// the previous: Send + Recv, or one BatchIsendIrecv) — while the simulator injects a
// per-seed mix of transfer faults (short writes, stale keys, windows, lost or delayed
// completions), control-message faults (delay, drop, duplicate), 0..2 rank crashes,
// sometimes a rank hang (0.5..40 ms) and sometimes a network partition (a random split of
// the ranks for 0.2..10 ms, healed well before the probes could declare anyone dead) at
// random times. Everything is drawn from the seed, so a failing seed replays bit for bit.
//
// The checker (kept apart from the injectors): every live, never-hung rank finishes every
// op within its timeout; those ranks agree on each op's status and failed ranks; a
// finished op's result is exact over its members (#wrong == 0); failed ranks are ranks
// that crashed or hung (a hang long enough to fail probe_attempts probes is a failure);
// COLLECTIVE_ABORTED only when a root failed. The hung rank itself may time out (it was
// excluded while frozen) but never returns a wrong result. Point-to-point: a receive that
// succeeds holds exactly the bytes its peer sent; a send or receive fails only with
// COLLECTIVE_ABORTED naming its peer, and only when that peer crashed or hung; a failed
// receive leaves its buffer untouched.
//
// Reach: a step is under a fault when the fault (a crash, a hang, a partition) strikes
// while some rank is inside that step. The seed's table counts, per (step kind × fault),
// the steps that ran under it; every pair is required (CollReachLayout), and
// tidal-coll-campaign fails when one was never reached over the seeds it ran.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tidal/cluster/reach_table.h"
#include "tidal/collectives/process_group.h"

namespace tidal::cluster {

struct CollCampaignOptions {
  bool verbose = false;  // print each op's outcome
  bool trace = false;    // keep the world's trace lines (for --trace-out)
  coll::CollBug planted_bug = coll::CollBug::kNone;  // the bug zoo only
  bool partitions = true;  // false: no partitions (their required pairs then fail a run)
  // A partition loses the notifications and credits sent across it; the channels re-send
  // them once it heals (collectives/src/pg_channel.cc, "Retransmission"), so a healed
  // partition must not break the group: true fails a seed whose ranks time out or find the
  // group broken after one. False accepts that from the step that timed out on (results,
  // blame and received bytes still judged) and counts it in broken_by_partition.
  bool strict_partitions = true;
  // Shrinking (tidal-sim shrink, the zoo): the world's tape instead of the seed's (the seed
  // still picks the run's shape), recording its draws into the result, and a smaller
  // shape: 0 keeps the seed's ranks (at least 2) or steps (the seed's first `steps`);
  // false drops the seed's crashes or hang.
  std::vector<uint8_t> tape;
  bool record_tape = false;
  int ranks = 0;
  size_t steps = 0;
  size_t skip_steps = 0;  // then drops this many of the first steps (at most all but one)
  // Keeps step j of the seed's list (after `steps`) only when bit j is set (steps from 64
  // on are always kept; a mask that keeps none runs no step). Applied before
  // skip_steps; the seed's draws are the same whatever it keeps.
  uint64_t step_mask = ~0ull;
  // 0: each step's element count as the seed drew it; otherwise at most this many
  // (the same draws: a smaller cap keeps the steps, roots and reductions).
  uint64_t max_count = 0;
  bool crashes = true;
  bool hangs = true;
  // The group's operation timeout (0: 1 s). A planted bug that leaves a rank waiting until
  // its timeout fails sooner under a shorter one.
  uint64_t timeout_ns = 0;
  // The largest message sent directly rather than round the ring (0: 256 bytes). A smaller
  // one takes the ring's chunked path with fewer elements.
  uint64_t direct_max_bytes = 0;
  // The groups' algorithm (kAuto: direct up to direct_max_bytes, ring above). The seed's
  // draws are the same whatever it is.
  coll::Algorithm algorithm = coll::Algorithm::kAuto;
};

struct CollSeedResult {
  bool ok = true;
  std::string error;    // what the checker found, with the replay line
  uint64_t digest = 0;  // the world's trace digest (same seed -> same digest)
  uint64_t ops = 0;     // collectives completed across ranks
  uint64_t crashes = 0;
  uint64_t faults = 0;  // faults the simulator injected
  uint64_t events = 0;  // trace records of the run (sim/shrink.h)
  std::vector<uint64_t> draws;  // the tape's draws (options.record_tape)
  uint64_t virtual_ns = 0;
  std::string summary;  // one line: ranks, ops, faults
  ReachTable reach;     // (step kind × fault) counts, layout CollReachLayout()
  bool broken_by_partition = false;  // a rank timed out after the partition (see above)
};

// The campaign's (step kind × fault) table, every count 0, every pair required.
ReachTable CollReachLayout();

// Runs one seed (on the simulator: the campaign is made of its faults).
CollSeedResult RunCollCampaignSeed(uint64_t seed, const CollCampaignOptions& options = {});

}  // namespace tidal::cluster
