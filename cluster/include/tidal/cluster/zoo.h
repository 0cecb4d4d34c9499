// The bug zoo: planted bugs in every layer, switched on one at a time at run time (each
// layer's options carry a planted_bug field that defaults to none), and the campaign that
// should catch each. A zoo run measures the campaigns' power: per bug, whether a campaign
// caught it within a seed budget, after how many seeds and how much time, that the same
// seed passes without the bug (so the failure is the bug's), and the failing run shrunk:
// the transfer workload's by its tape (to a regression test: tidal-sim shrink), the zoo's
// own workloads (zoo_workloads.h: store-field, p2p, peer-loss) by scale (fewer operations,
// then fewer nodes, while the same invariant fails); the store, collectives and mixed
// campaigns are not shrunk yet.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

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
  // The zoo's own workloads shrink by scale: the nodes and operations of the shrunk run.
  uint64_t shrunk_nodes = 0, shrunk_ops = 0;
  double shrink_seconds = 0;
  std::string not_shrunk_because;  // when !shrunk and caught
};

// One seed of `bug`'s campaign, with the bug planted or not: the checker's first
// complaint, or an empty string when the seed passed.
std::string RunZooSeed(const ZooBug& bug, uint64_t seed, bool planted);

// INVALID_PARAMS-like failures (an unknown `only`) come back as a single entry whose
// failure says so and caught = false.
std::vector<ZooEntry> RunZoo(const ZooOptions& options);

}  // namespace tidal::cluster
