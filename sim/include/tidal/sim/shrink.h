// Shrinking a failing tape: from the draws of a failing run to a small tape that still
// breaks the same invariant.
//
// A run is a function of its tape (every nondeterministic choice is one draw), and past
// the end of a tape every draw is 0, the calmest choice (no fault, no delay, the first
// ready task). So a shorter tape, or one with more zeros and smaller values, asks for a
// calmer run. The shrinker tries, in passes until nothing more helps or the budget is
// spent:
//   1. cutting the tape short (the tail becomes calm);
//   2. dropping spans of draws (what followed moves earlier), from half the tape down to
//      single draws (delta debugging);
//   3. zeroing spans of draws the same way;
//   4. lowering each remaining draw (halving it while the run still fails).
// A candidate is kept only if the run breaks the same invariant (its name, as the
// workload's checker reports it), never merely "fails somehow". The scale of the run
// (operations, nodes, bytes) is the caller's to shrink: it re-runs the tape with smaller
// options through the same RunFn (see tidal-sim shrink).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tidal/sim/transfer_workload.h"

namespace tidal::sim {

// Runs the workload on `draws` and returns the invariant it broke (a stable name), or an
// empty string when the run passed.
using TapeRunFn = std::function<std::string(const std::vector<uint64_t>& draws)>;

struct ShrinkOptions {
  uint64_t max_runs = 4000;  // budget of candidate runs
  // Budget of wall time in seconds (0: none): once spent, no further candidate is run and
  // the smallest failing run found so far is the result.
  double max_seconds = 0;
  // Called after every kept candidate and every pass (for a progress bar).
  std::function<void(uint64_t runs, size_t nonzero_draws, size_t length)> progress;
};

struct ShrinkResult {
  std::vector<uint64_t> draws;  // the smallest failing tape found (trailing zeros dropped)
  std::string invariant;        // what it breaks (the same as the input's)
  uint64_t runs = 0;            // candidates run
  uint64_t kept = 0;            // candidates that still broke the invariant
  size_t original_length = 0;
  size_t original_nonzero = 0;
  bool budget_exhausted = false;
};

// `draws` must break `invariant` (RunFn(draws) == invariant); asserts otherwise.
ShrinkResult ShrinkTape(std::vector<uint64_t> draws, const std::string& invariant,
                        const TapeRunFn& run, const ShrinkOptions& options = {});

// --- any workload: scale, then tape ---------------------------------------------------
//
// The same passes for every workload, through one callback that runs a candidate (a
// scale and a tape) and says what it broke, how long its trace was and how many faults
// it took. Every workload counts the same way: events are the simulator's trace records
// of the run (World::trace().events(): every delivered message, data step, completion,
// timer and fault the world recorded), faults are the faults the world injected, all
// kinds summed (World::injected: swarm faults, and crashes, hangs and partitions whether
// the swarm or the campaign's own plan struck them).

// What one run did.
struct RunOutcome {
  std::string invariant;        // what it broke (a stable name), "" when it passed
  std::string failure;          // the checker's first complaint (its first line)
  uint64_t events = 0;          // trace records
  uint64_t faults = 0;          // faults injected
  std::vector<uint64_t> draws;  // every draw the run made (its tape, recorded)
};

// One knob of a workload's scale (operations, nodes, rounds, bytes, a fault on or off):
// the shrinker lowers `value` towards `floor` while the run still breaks the invariant.
//
// A keep-mask knob (`mask`) is a set instead: bit i of `value` keeps the workload's item i
// (an operation, a step; items from 64 on are always kept), and the shrinker clears bits
// delta-debugging style (ddmin: spans of half the set bits down to single bits, each
// cleared while the run still breaks the invariant). Its `floor` is the fewest bits it
// leaves set.
struct ScaleKnob {
  std::string name;
  uint64_t value = 0;
  uint64_t floor = 0;
  bool mask = false;
};
// A keep-mask that keeps the first `n` items (every item from 64 on is kept anyway).
inline uint64_t KeepAll(uint64_t n) { return n >= 64 ? ~0ull : (1ull << n) - 1; }
// Whether keep-mask `mask` keeps item `i`.
inline bool Kept(uint64_t mask, uint64_t i) { return i >= 64 || ((mask >> i) & 1) != 0; }
using Scale = std::vector<ScaleKnob>;
// The value of knob `name` (asserts it exists).
uint64_t KnobValue(const Scale& scale, const std::string& name);

// The faults `world` injected so far, every kind summed (how RunOutcome counts them).
uint64_t InjectedFaults(const World& world);

// Runs the workload at `scale` on `draws` (an empty tape: every draw 0).
using ScaledRunFn =
    std::function<RunOutcome(const Scale& scale, const std::vector<uint64_t>& draws)>;

struct ScaledShrinkResult {
  Scale original_scale, scale;   // the shrunk run: scale and tape
  std::vector<uint64_t> draws;
  std::string invariant;
  std::string failure;           // the shrunk run's complaint
  uint64_t original_events = 0, shrunk_events = 0;
  uint64_t original_faults = 0, shrunk_faults = 0;
  size_t original_length = 0, shrunk_length = 0;    // draws
  size_t original_nonzero = 0, shrunk_nonzero = 0;
  uint64_t runs = 0;             // candidate runs
  double seconds = 0;            // wall time spent
  bool budget_exhausted = false;
};

// Shrinks a failing run (`failing` is what `run(scale, failing.draws)` gave; its invariant
// non-empty) in rounds until a fixed point or the budget: each knob in turn to the
// smallest value tried (the floor first, then bisection between the floor and the value;
// a keep-mask by ddmin over its set bits) that still breaks the invariant, each candidate
// on the best run's tape and, failing that, on the calm tape (a smaller run draws
// differently); then the tape (ShrinkTape), with three quarters of the budget left in
// every round but the last, so the next round's knobs still get their turn. A smaller
// scale is kept only when it breaks the same invariant with no more events and faults
// than the best so far; a simpler tape when it breaks the same invariant with no more
// events and faults than the input. So the result is never longer than the input.
ScaledShrinkResult ShrinkScaledFailure(const Scale& scale, const RunOutcome& failing,
                                       const ScaledRunFn& run, const ShrinkOptions& options = {});

// Draws as tape bytes (8 little-endian bytes each): WorldOptions::tape_bytes reads them
// back as the same draws. An empty tape becomes one zero draw (empty bytes would mean
// "use the seed").
std::vector<uint8_t> DrawsToBytes(const std::vector<uint64_t>& draws);

// The stable name of a checker violation: its text up to the first ':' (the part that
// names the broken rule, without the run's particulars).
std::string InvariantOf(const std::string& violation);

}  // namespace tidal::sim

// --- the transfer workload -------------------------------------------------------------

namespace tidal::sim {

struct TransferShrinkResult {
  TransferWorkloadOptions options;  // the shrunk run: smaller scale, tape_bytes set
  std::string invariant;
  std::string violation;            // the shrunk run's first violation of that invariant
  size_t original_nodes = 0, original_ops = 0;
  size_t original_nonzero = 0, original_length = 0;  // draws
  size_t shrunk_nonzero = 0, shrunk_length = 0;
  uint64_t original_events = 0, shrunk_events = 0;  // trace events of the run
  uint64_t original_faults = 0, shrunk_faults = 0;  // faults injected
  uint64_t runs = 0;                                 // workload runs spent shrinking
};

// Shrinks a failing transfer-workload run (`failing` must fail) in rounds: fewer batches
// per node, fewer nodes, single batches dropped (TransferWorkloadOptions::batch_mask, by
// ddmin once there are 64 or fewer; each candidate on the current tape and, failing that,
// on the calm one), then the tape (ShrinkTape, three quarters of the budget left in every
// round but the last). A step is kept only when the run still breaks the invariant of the
// original's first violation in no more events, with no more faults, than the best run so
// far. INVALID_PARAMS if `failing` passes.
Result<TransferShrinkResult> ShrinkTransferFailure(TransferWorkloadOptions failing,
                                                   const ShrinkOptions& options = {});

// A ready-to-compile gtest file holding the shrunk run: with the planted bug (if any) the
// run must still break the invariant, and without it the run must pass.
std::string TransferRegressionTest(const TransferShrinkResult& r, const std::string& test_name);

}  // namespace tidal::sim
