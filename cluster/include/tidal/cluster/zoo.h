// The bug zoo: planted bugs in every layer, switched on one at a time at run time (each
// layer's options carry a planted_bug field that defaults to none), and the campaign that
// should catch each. A zoo run measures the campaigns' power: per bug, whether a campaign
// caught it within a seed budget, after how many seeds and how much time, that the same
// seed passes without the bug (so the failure is the bug's), and the failing run shrunk
// to a small run that breaks the same invariant (the checker's complaint without its
// particulars): the transfer workload's by sim::ShrinkTransferFailure, every other
// workload (the store, collectives and mixed campaigns, and the zoo's own workloads of
// zoo_workloads.h: store-field, p2p, peer-loss) by sim::ShrinkScaledFailure over its
// scale knobs (ShrinkZooSeed) and its recorded tape. tidal-sim shrink writes either as a
// regression test.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tidal/status.h"
#include "tidal/sim/shrink.h"

namespace tidal::cluster {

struct ZooBug {
  std::string name;         // as the layer's Parse*Bug accepts it
  std::string layer;        // transport, engine, store, collectives
  std::string workload;     // transfer, store, collectives, mixed: the campaign that runs it
  std::string field_report; // the field bug or report it re-creates ("" if none)
  std::string what;         // one line
};

// Every bug of the zoo, in a fixed order.
std::vector<ZooBug> ZooBugs();

struct ZooOptions {
  uint64_t first_seed = 1;
  uint64_t max_seeds = 200;      // per bug
  bool shrink = true;
  uint64_t shrink_runs = 2000;   // per bug
  double shrink_seconds = 50;    // per bug: wall-time budget of its shrink (0: none)
  std::string only;              // run just this bug (empty: all)
  std::function<void(const std::string& bug, uint64_t seeds_tried)> progress;
};

struct ZooEntry {
  ZooBug bug;
  bool caught = false;
  uint64_t seed = 0;             // the first failing seed
  uint64_t seeds_needed = 0;     // seeds run until it failed (or the budget)
  double seconds_to_failure = 0; // wall time until the first failure
  std::string failure;           // the first line of what the checker said
  bool clean_seed_passes = false;  // the failing seed without the bug passes
  bool shrunk = false;
  uint64_t shrunk_events = 0, shrunk_faults = 0, original_events = 0;
  uint64_t original_faults = 0;
  // The shrunk run's scale ("ranks=2 steps=3 ..."), and candidate runs spent.
  std::string shrunk_scale;
  uint64_t shrink_runs = 0;
  bool shrink_budget_exhausted = false;
  double shrink_seconds = 0;
  std::string not_shrunk_because;  // when !shrunk and caught
};

// One seed of `bug`'s campaign, with the bug planted or not: the checker's first
// complaint, or an empty string when the seed passed.
std::string RunZooSeed(const ZooBug& bug, uint64_t seed, bool planted);

// --- shrinking the store, collectives, mixed, store-field, p2p and peer-loss workloads ---

// One candidate run of `workload` for seed `seed` with `bug` planted ("" for none) at
// `scale` (knobs as ShrinkZooSeed names them) on the tape `draws` (past its end every draw
// is 0). Its invariant is the checker's complaint without the seed's banner, up to the
// first '(' with numbers and quoted names blanked; events and faults as sim/shrink.h
// counts them. Deterministic.
sim::RunOutcome RunZooCandidate(const std::string& workload, const std::string& bug,
                                uint64_t seed, const sim::Scale& scale,
                                const std::vector<uint64_t>& draws);

struct ZooShrinkResult {
  std::string workload, bug;
  uint64_t seed = 0;
  std::string original_failure;  // the seed's complaint (first line)
  sim::ScaledShrinkResult shrunk;
  bool clean_passes = false;     // the shrunk run without the bug passes
};

// Shrinks seed `seed` of `workload` (store, collectives, mixed, store-field, p2p,
// peer-loss) with `bug` planted ("" for none): records its tape, then
// sim::ShrinkScaledFailure over the workload's knobs (a "keep" or "scenarios" knob is a
// keep-mask, sim/shrink.h: single operations dropped delta-debugging style) —
//   store        clients (floor 2), ops (per client, floor 1), keep (the operations,
//                client c's op i is item c * ops + i), value (largest value in bytes,
//                floor 1), durability (the end check, 0/1), scenarios (the targeted
//                scenarios in order), restarts (0/1), timeout_ms (the master's client
//                TTL, which the wait before the end check follows, floor 1)
//   collectives  ranks (floor 2), steps (the seed's first ones, floor 1), keep (which
//                of those run, at least 1), count (largest element count, floor 1),
//                direct (the direct-send limit in bytes, floor 1: smaller messages take
//                the ring), crashes, hangs, partitions (0/1), timeout_ms (the group's
//                operation timeout, floor 1)
//   mixed        store, handles, p2p (0/1), groups (bit 0 "world", bit 1 "sub"), nodes
//                (floor 2), rounds (floor 1), keep (which rounds run, at least 1),
//                crashes (0/1), count (largest allreduce, floor 1), value (largest put,
//                floor 1), timeout_ms (the groups' operation timeout, floor 1)
//   store-field  victim, fill (0/1), nodes (floor 1: 2 with the victim), ops (in all,
//                dealt round robin to the clients, floor 1), keep (op i is item i),
//                value (largest value, floor 1024), batch (most tensors of a
//                tensor-parallel batch put, floor 1), segment (each client's segment in
//                largest values, floor 1), timeout_ms (the master's put
//                timeout, which its quarantine, sweep and the wait after the writer's
//                crash follow, floor 1)
//   p2p          nodes (floor 2), ops (floor 1), timeout_us (the group's operation
//                timeout, floor 100)
//   peer-loss    nodes (floor 2), ops (floor 1)
// Every knob's default is the seed's own run; a smaller value keeps the seed's draws. A
// candidate that lowers a timeout (timeout_ms, timeout_us) or a store-field segment
// counts as breaking the invariant only when the same run without the bug passes: a short
// timeout or a small segment can fail a correct run too.
// INVALID_PARAMS for an unknown workload or bug, or a seed that passes.
Result<ZooShrinkResult> ShrinkZooSeed(const std::string& workload, const std::string& bug,
                                      uint64_t seed, const sim::ShrinkOptions& options);

// A ready-to-compile gtest file: the shrunk run still breaks the invariant with the bug,
// and (when it did at shrink time) passes without it.
std::string ZooRegressionTest(const ZooShrinkResult& r, const std::string& test_name);

// "name=value ..." of a scale.
std::string ScaleString(const sim::Scale& scale);

// INVALID_PARAMS-like failures (an unknown `only`) come back as a single entry whose
// failure says so and caught = false.
std::vector<ZooEntry> RunZoo(const ZooOptions& options);

}  // namespace tidal::cluster
