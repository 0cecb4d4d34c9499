// Bounded exhaustive exploration: every schedule of a small simulated world.
//
// A world is a function of its tape, and every nondeterministic choice is one bounded
// draw (Tape::Below). The explorer runs the world again and again under Scheduling::kChoice
// (which ready actor runs is a draw), deciding each draw itself, and walks the tree of
// choices depth first (stateless: each schedule is a fresh run from the start, replaying
// the prefix it shares with the previous one, then taking the next untried branch).
//
// Domains. A draw with bound <= max_domain is enumerated in full (which actor runs, which
// fault placement, a yes/no). A larger draw is a delay or a rate: it takes delay_values
// values evenly spread over [0, bound) (2: {0, bound - 1}, the shortest and the longest;
// 1: only 0). ChancePpm is a Below(1'000'000), so it becomes {no, yes}. Unbounded draws
// (Tape::Next: keys, fill patterns) are data, fixed at 0. "Complete" is always relative
// to these domains, and the report names them.
//
// Reduction: state hashing. At every step boundary the explorer hashes the world
// (World::Fingerprint, plus the world's own observable state: its memory and what its
// drivers have seen so far, plus the world's own picks: a fault rule that has not matched
// yet leaves no other trace). A state met before, in new territory, is not expanded again:
// every later draw of that run takes its first value and the run is counted as pruned
// (with halt_pruned it stops there). Sound when equal hashes mean equal futures. The
// fingerprint holds each actor's history (the events it ran, the draws they made, the
// trace records they wrote), every pending event's time relative to now, actor, place in
// line and origin (the actor that created it and that actor's history up to the push:
// what a pending callback carries follows from where it came from, so two messages due
// at one node at one instant, one from each peer, are told apart in either order), and
// the world's own state.
//
// Time abstraction (abstract_time, the default). An actor's history leaves out when each
// event ran and the values of timing draws (a spread draw: a delay or the chance of one,
// which acts only through when some event runs); absolute time is not hashed, and what
// decides when later work runs is hashed relative to now (pending events, the links'
// busy-until times). So two runs whose messages took different delays but left every
// actor with the same steps, the same pending work at the same distances, merge: with
// delays at both extremes the trees of the collectives and transport worlds shrink by
// one to two orders of magnitude. Off (exact time), each event's virtual time is part of
// its actor's history.
//
// Assumed to follow from what is hashed, not hashed: a pending callback's content beyond
// its origin (it is a function of its creator's history and data draws), state
// a node keeps that another actor's event changed directly (a completion queued in a
// node's transport before the node polls it), memory a world does not hash, 64-bit
// collisions, and, under time abstraction, a time an actor stored and compares later
// other than through a pending timer (a deadline read on wake-up), and a spread draw
// whose value acts other than through time or what the run records (a swarm fault's
// chance is recorded: its injection writes a trace record). Exploration with
// state_hashing = false checks the assumption on a world: the reduced exploration must
// find the same set of outcomes (the explore test does so for both kinds of hashing).
// check_hash checks it on worlds too large for that: every pruned run runs on, and its
// outcome must be that of the run its state was merged into (HashConflict otherwise).
//
// Counts. `schedules` are runs that ended in new territory (distinct schedules up to the
// reduction), `pruned` runs that met a known state. A bound that cut the tree short (too
// many choices in one run, the schedule or time budget) makes the result NOT complete and
// says which; nothing is claimed complete that was not.
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "tidal/sim/tape.h"
#include "tidal/sim/world.h"

namespace tidal::sim {

struct ExploreBounds {
  uint64_t max_schedules = 200'000;  // runs in all (schedules + pruned)
  uint64_t max_choices = 400;        // choice points in one run (past it, every draw is 0)
  uint64_t max_domain = 8;           // a draw with a bound up to this is enumerated in full
  uint64_t delay_values = 2;         // values of a larger draw (1: {0}; 2: {0, bound - 1})
  // Delay bounding: at most this many timing draws of one run take a value other than
  // their first (a chance taken, a delay above its shortest); past it, every timing draw
  // takes its first value. The tree is then every schedule with at most max_delays late
  // events ("complete" is relative to it, and the report says so). UINT64_MAX: no bound.
  uint64_t max_delays = UINT64_MAX;
  bool state_hashing = true;
  // State hashing with time abstracted (World's SchedulingOptions::abstract_time): states
  // that differ only in when things happened merge. Needs state_hashing. Off: an actor's
  // history holds the virtual time of each of its events (exact time).
  bool abstract_time = true;
  // A pruned run stops at the known state (World::Halt) instead of running on with first
  // values: faster, and its cut-short verdict is not counted. Off: a pruned run still
  // runs to its end, and its outcome and verdict count (they cost a run, and they check
  // the hash: an outcome only a pruned run finds means two states hashed equal whose
  // futures differ).
  bool halt_pruned = false;
  // Checks the hash (needs state_hashing, not halt_pruned): each pruned run's outcome is
  // compared with that of the schedule that met its state first, replayed to that state
  // and then run on with first values (the future the pruned run was merged into). A
  // difference is a hash conflict: two states hashed equal whose futures differ. Costs
  // one replay per pruned run.
  bool check_hash = false;
  double max_seconds = 0;            // wall-clock budget (0: none)
  bool stop_at_first_failure = false;
};

// What the world's checker says about one schedule.
struct ScheduleVerdict {
  bool passed = true;
  std::string failure;   // the first violation (empty when passed)
  uint64_t outcome = 0;  // a hash of the run's observable result (statuses, bytes)
};

// What a world function sees while one schedule runs.
class ExploreRun final : public TapeChooser {
 public:
  // A choice the world makes itself (a fault placement): enumerated in full, [0, n).
  uint64_t Pick(uint64_t n);
  // The scheduling every world of this run must use (install it with ScopedScheduling,
  // or set WorldOptions::scheduling): kChoice, this run as the tape's chooser, and the
  // explorer's step hook.
  SchedulingOptions scheduling();
  // The world's own observable state (memory, what its drivers saw), hashed with the
  // world's fingerprint at every step boundary. Unset: the fingerprint alone.
  void SetStateHash(std::function<uint64_t()> fn) { state_hash_ = std::move(fn); }

  // Off: every draw takes its first value and is no choice point, and no state is hashed
  // (for set-up the world does not explore, such as a group's bootstrap). On by default.
  void SetExploring(bool on) { exploring_ = on; }

  // TapeChooser: a draw of a world's tape, in the domain the bounds give it.
  uint64_t Choose(uint64_t bound) override;
  // A spread draw (bound > max_domain: a delay, a rate, a chance) is timing.
  bool IsTiming(uint64_t bound) const override { return bound > bounds_->max_domain; }

 private:
  friend class Explorer;
  uint32_t Next(uint32_t domain);  // the next choice point's choice
  void BeforeStep(World& world);

  struct Point {
    uint32_t chosen;
    uint32_t domain;
  };
  const ExploreBounds* bounds_ = nullptr;
  const std::vector<uint32_t>* prefix_ = nullptr;
  std::unordered_set<uint64_t>* visited_ = nullptr;  // null: no state hashing
  // check_hash: the choices that first reached each state; the choices of this run up
  // to the state it was pruned at.
  std::unordered_map<uint64_t, std::vector<uint32_t>>* first_reached_ = nullptr;
  std::vector<uint32_t> pruned_at_;
  uint64_t pruned_state_ = 0;
  std::vector<Point> trail_;
  bool pruned_ = false;
  uint64_t picks_ = 0;  // a digest of every Pick so far (part of the state)
  uint64_t delays_used_ = 0;  // timing draws that took a value other than their first
  bool exploring_ = true;
  bool choices_bound_hit_ = false;
  bool replay_out_of_domain_ = false;
  std::function<uint64_t()> state_hash_;
};

using ExploreWorldFn = std::function<ScheduleVerdict(ExploreRun& run)>;

struct ExploreFailure {
  std::string choices;  // the schedule: its choices as "0.1.0.2" (trailing zeros dropped)
  std::string failure;
};

// check_hash: two schedules that reached one state hash and then, every later draw its
// first value, ended with different outcomes.
struct HashConflict {
  uint64_t state = 0;
  std::string first;   // choices that reached the state first (then first values)
  std::string pruned;  // choices of the run pruned there (then first values)
  uint64_t first_outcome = 0, pruned_outcome = 0;
};

struct ExploreProgress {
  uint64_t schedules = 0, pruned = 0, failures = 0, states = 0;
  uint64_t frontier_depth = 0;  // the depth at which the next schedule branches
  double seconds = 0;
};

struct ExploreResult {
  uint64_t schedules = 0;  // runs that ended in new territory
  uint64_t pruned = 0;     // runs cut at a known state
  uint64_t failures = 0;   // runs the checker failed (schedules or pruned)
  uint64_t states = 0;     // distinct states hashed
  uint64_t max_choices_seen = 0;  // the most choice points one run met
  bool complete = false;   // every branch of the bounded tree explored
  std::string incomplete_because;  // the bound that was hit (empty when complete)
  std::vector<ExploreFailure> first_failures;  // up to 5
  std::set<uint64_t> outcomes;  // distinct ScheduleVerdict::outcome values
  std::vector<HashConflict> hash_conflicts;  // check_hash: up to 5
  uint64_t hash_conflicts_seen = 0;          // check_hash: in all
  double seconds = 0;
  std::string domains;  // the domain policy, in words, for the report
};

class Explorer {
 public:
  explicit Explorer(ExploreBounds bounds) : bounds_(bounds) {}
  // Explores every schedule of `world` within the bounds. `progress` (optional) is called
  // after every run.
  ExploreResult Run(const ExploreWorldFn& world,
                    const std::function<void(const ExploreProgress&)>& progress = {});
  // Runs the one schedule `choices` names (as ExploreFailure::choices writes it).
  // INVALID_PARAMS for a malformed list or a choice outside its draw's domain.
  Result<ScheduleVerdict> Replay(const ExploreWorldFn& world, const std::string& choices);

 private:
  ExploreBounds bounds_;
};

std::string ChoicesToString(const std::vector<uint32_t>& choices);
Result<std::vector<uint32_t>> ParseChoices(const std::string& text);

}  // namespace tidal::sim
