#include "tidal/sim/shrink.h"

#include <algorithm>
#include <bit>
#include <chrono>

#include "tidal/assert.h"

namespace tidal::sim {
namespace {

size_t NonZero(const std::vector<uint64_t>& d) {
  return static_cast<size_t>(std::count_if(d.begin(), d.end(), [](uint64_t v) { return v != 0; }));
}

void TrimZeros(std::vector<uint64_t>& d) {
  while (!d.empty() && d.back() == 0) d.pop_back();
}

class Shrinker {
 public:
  Shrinker(std::vector<uint64_t> draws, std::string invariant, const TapeRunFn& run,
           const ShrinkOptions& o)
      : best_(std::move(draws)), invariant_(std::move(invariant)), run_(run), o_(o),
        start_(std::chrono::steady_clock::now()) {}

  ShrinkResult Run() {
    ShrinkResult r;
    r.original_length = best_.size();
    r.original_nonzero = NonZero(best_);
    const std::string first = run_(best_);
    ++runs_;
    TIDAL_ASSERT_MSG(first == invariant_, "shrink: the input tape does not break the invariant");
    TrimZeros(best_);
    bool progress = true;
    while (progress && !Exhausted()) {
      progress = false;
      progress |= Truncate();
      progress |= DropSpans();
      progress |= ZeroSpans();
      progress |= LowerDraws();
      Report();
    }
    r.draws = best_;
    r.invariant = invariant_;
    r.runs = runs_;
    r.kept = kept_;
    r.budget_exhausted = Exhausted();
    return r;
  }

 private:
  bool Exhausted() const {
    if (runs_ >= o_.max_runs) return true;
    if (o_.max_seconds <= 0) return false;
    const std::chrono::duration<double> spent = std::chrono::steady_clock::now() - start_;
    return spent.count() >= o_.max_seconds;
  }

  // Tries `candidate`; keeps it when it breaks the same invariant.
  bool Try(std::vector<uint64_t> candidate) {
    if (Exhausted()) return false;
    TrimZeros(candidate);
    if (candidate == best_) return false;
    ++runs_;
    if (run_(candidate) != invariant_) return false;
    best_ = std::move(candidate);
    ++kept_;
    Report();
    return true;
  }

  void Report() {
    if (o_.progress) o_.progress(runs_, NonZero(best_), best_.size());
  }

  // Cut the tail: the shortest prefix that still fails, halving the cut on a miss.
  bool Truncate() {
    bool any = false;
    size_t cut = best_.size() / 2;
    while (cut > 0 && !Exhausted()) {
      if (cut > best_.size()) cut = best_.size();
      std::vector<uint64_t> c(best_.begin(), best_.end() - static_cast<std::ptrdiff_t>(cut));
      if (Try(std::move(c))) {
        any = true;
      } else {
        cut /= 2;
      }
    }
    return any;
  }

  // Drop spans (later draws move earlier: a fault late in a long run can then happen in a
  // short one), from half the tape down to single draws.
  bool DropSpans() {
    bool any = false;
    for (size_t span = std::max<size_t>(best_.size() / 2, 1); !Exhausted(); span /= 2) {
      for (size_t at = 0; at < best_.size() && !Exhausted();) {
        const size_t end = std::min(best_.size(), at + span);
        std::vector<uint64_t> c;
        c.reserve(best_.size() - (end - at));
        c.insert(c.end(), best_.begin(), best_.begin() + static_cast<std::ptrdiff_t>(at));
        c.insert(c.end(), best_.begin() + static_cast<std::ptrdiff_t>(end), best_.end());
        if (Try(std::move(c))) {
          any = true;  // the next span now starts at `at`
        } else {
          at += span;
        }
      }
      if (span <= 1) break;
    }
    return any;
  }

  // Zero spans from half the tape down to single draws.
  bool ZeroSpans() {
    bool any = false;
    for (size_t span = std::max<size_t>(best_.size() / 2, 1); span >= 1 && !Exhausted();
         span /= 2) {
      for (size_t at = 0; at < best_.size() && !Exhausted(); at += span) {
        const size_t end = std::min(best_.size(), at + span);
        if (std::all_of(best_.begin() + at, best_.begin() + end, [](uint64_t v) { return v == 0; })) {
          continue;
        }
        std::vector<uint64_t> c = best_;
        std::fill(c.begin() + at, c.begin() + end, 0);
        any |= Try(std::move(c));
      }
      if (span == 1) break;
    }
    return any;
  }

  // Lower every non-zero draw: halve it while the run still breaks the invariant.
  bool LowerDraws() {
    bool any = false;
    for (size_t i = 0; i < best_.size() && !Exhausted(); ++i) {
      while (i < best_.size() && best_[i] > 1 && !Exhausted()) {
        std::vector<uint64_t> c = best_;
        c[i] >>= 1;
        if (!Try(std::move(c))) break;
        any = true;
      }
    }
    return any;
  }

  std::vector<uint64_t> best_;
  std::string invariant_;
  const TapeRunFn& run_;
  const ShrinkOptions& o_;
  uint64_t runs_ = 0;
  uint64_t kept_ = 0;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace

ShrinkResult ShrinkTape(std::vector<uint64_t> draws, const std::string& invariant,
                        const TapeRunFn& run, const ShrinkOptions& options) {
  Shrinker s(std::move(draws), invariant, run, options);
  return s.Run();
}

uint64_t InjectedFaults(const World& world) {
  uint64_t n = 0;
  for (size_t k = 0; k < kFaultKinds; ++k) n += world.injected(static_cast<FaultKind>(k));
  return n;
}

uint64_t KnobValue(const Scale& scale, const std::string& name) {
  for (const ScaleKnob& k : scale) {
    if (k.name == name) return k.value;
  }
  TIDAL_ASSERT_MSG(false, "shrink: no such scale knob");
  return 0;
}

ScaledShrinkResult ShrinkScaledFailure(const Scale& scale, const RunOutcome& failing,
                                       const ScaledRunFn& run, const ShrinkOptions& options) {
  TIDAL_ASSERT_MSG(!failing.invariant.empty(), "shrink: the input run passed");
  const auto start = std::chrono::steady_clock::now();
  auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  ScaledShrinkResult out;
  out.original_scale = scale;
  out.invariant = failing.invariant;
  out.original_events = failing.events;
  out.original_faults = failing.faults;
  out.original_length = failing.draws.size();
  out.original_nonzero = NonZero(failing.draws);

  Scale cur = scale;
  RunOutcome best = failing;
  TrimZeros(best.draws);
  uint64_t runs = 0;
  auto spent = [&] {
    return runs >= options.max_runs ||
           (options.max_seconds > 0 && seconds() >= options.max_seconds);
  };
  // A smaller scale is kept only when the same invariant breaks in no longer a run with no
  // more faults; a simpler tape (the tape shrinker proposes only shorter, calmer ones) when
  // the same invariant breaks in a run no longer, and with no more faults, than the input.
  auto better = [&](const RunOutcome& r) {
    return r.invariant == out.invariant && r.events <= best.events && r.faults <= best.faults;
  };
  auto simpler = [&](const RunOutcome& r) {
    return r.invariant == out.invariant && r.events <= failing.events &&
           r.faults <= failing.faults;
  };
  // Runs `smaller` on the best run's tape and keeps it when it is better. A smaller scale
  // draws differently (a part left out no longer draws), so the tape that made the larger
  // run fail may steer the smaller one elsewhere: failing that, the calm tape (every draw
  // 0) gets a chance too.
  auto attempt = [&](Scale smaller) {
    ++runs;
    RunOutcome r = run(smaller, best.draws);
    if (!better(r) && !best.draws.empty() && !spent()) {
      ++runs;
      r = run(smaller, {});
    }
    if (!better(r)) return false;
    cur = std::move(smaller);
    best = std::move(r);  // its draws: what the smaller run really drew
    TrimZeros(best.draws);
    return true;
  };
  // A keep-mask: ddmin over its set bits, spans of half of them down to single bits.
  auto shrink_mask = [&](size_t k) {
    bool any = false;
    auto set_bits = [&] {
      std::vector<int> bits;
      for (int b = 0; b < 64; ++b) {
        if ((cur[k].value >> b) & 1) bits.push_back(b);
      }
      return bits;
    };
    for (size_t span = std::max<size_t>(set_bits().size() / 2, 1); !spent(); span /= 2) {
      for (size_t at = 0; !spent();) {
        const std::vector<int> bits = set_bits();
        if (at >= bits.size()) break;
        const size_t end = std::min(bits.size(), at + span);
        if (bits.size() - (end - at) < cur[k].floor) {
          at += span;
          continue;
        }
        Scale smaller = cur;
        for (size_t i = at; i < end; ++i) smaller[k].value &= ~(1ull << bits[i]);
        if (attempt(std::move(smaller))) {
          any = true;  // the next span now starts at `at`
        } else {
          at += span;
        }
      }
      if (span <= 1) break;
    }
    return any;
  };
  for (int round = 0; round < 4 && !spent(); ++round) {
    bool scaled = false;
    for (size_t k = 0; k < cur.size() && !spent(); ++k) {
      if (cur[k].mask) {
        scaled |= shrink_mask(k);
        continue;
      }
      // The floor first; failing that, bisection between the floor (a value that did not
      // break the invariant) and the current value (one that did).
      uint64_t bad = cur[k].floor, good = cur[k].value;
      if (good <= bad) continue;
      auto try_value = [&](uint64_t t) {
        Scale smaller = cur;
        smaller[k].value = t;
        if (!attempt(std::move(smaller))) return false;
        scaled = true;
        return true;
      };
      if (try_value(bad)) continue;
      while (good - bad > 1 && !spent()) {
        const uint64_t mid = bad + (good - bad) / 2;
        if (try_value(mid)) {
          good = mid;
        } else {
          bad = mid;
        }
      }
    }
    if (options.progress) options.progress(runs, NonZero(best.draws), best.draws.size());
    if (spent()) break;
    // The tape at this scale. The callback remembers the best run it accepted.
    TapeRunFn tape_run = [&](const std::vector<uint64_t>& draws) -> std::string {
      RunOutcome r = run(cur, draws);
      if (draws == best.draws) return r.invariant;  // the input itself
      if (!simpler(r)) return r.invariant == out.invariant ? "(longer)" : r.invariant;
      r.draws = draws;  // the tape as given (it replays the same run)
      best = std::move(r);
      return out.invariant;
    };
    // Three quarters of the budget left (runs and seconds), so that the next round's scale
    // passes (which cut far more once the tape is short and calm) still get their turn; the
    // last round takes all of it.
    ShrinkOptions tape_options = options;
    const uint64_t runs_left = options.max_runs - std::min(options.max_runs - 1, runs);
    tape_options.max_runs = round < 3 ? std::max<uint64_t>(1, runs_left * 3 / 4) : runs_left;
    if (options.max_seconds > 0) {
      const double seconds_left = std::max(0.001, options.max_seconds - seconds());
      tape_options.max_seconds = round < 3 ? seconds_left * 3 / 4 : seconds_left;
    }
    const std::vector<uint64_t> before = best.draws;
    ShrinkResult shrunk = ShrinkTape(best.draws, out.invariant, tape_run, tape_options);
    runs += shrunk.runs;
    TIDAL_ASSERT_MSG(shrunk.draws == best.draws || (shrunk.draws.empty() && best.draws.empty()),
                     "shrink: the tape shrinker and the scale shrinker disagree");
    if (!scaled && best.draws == before) break;  // a fixed point
  }
  out.scale = cur;
  out.draws = best.draws;
  out.failure = best.failure;
  out.shrunk_events = best.events;
  out.shrunk_faults = best.faults;
  out.shrunk_length = best.draws.size();
  out.shrunk_nonzero = NonZero(best.draws);
  out.runs = runs;
  out.seconds = seconds();
  out.budget_exhausted = spent();
  return out;
}

std::vector<uint8_t> DrawsToBytes(const std::vector<uint64_t>& draws) {
  // Never empty: no tape bytes at all means "draw from the seed". One zero draw is the
  // calm tape (every draw past the end is 0 too).
  std::vector<uint8_t> out(std::max<size_t>(draws.size(), 1) * 8, 0);
  for (size_t i = 0; i < draws.size(); ++i) {
    for (size_t b = 0; b < 8; ++b) out[i * 8 + b] = static_cast<uint8_t>(draws[i] >> (8 * b));
  }
  return out;
}

std::string InvariantOf(const std::string& violation) {
  // Numbers (task ids, lengths, node numbers) are particulars: each run of digits is '#'.
  std::string shape;
  for (char ch : violation) {
    if (ch >= '0' && ch <= '9') {
      if (shape.empty() || shape.back() != '#') shape += '#';
    } else {
      shape += ch;
    }
  }
  // The rule is the text up to the first ':'; a contract violation names its clause after
  // "contract: transport 'x' broke its contract: task #:", so it keeps those parts.
  size_t colon = shape.find(':');
  if (shape.rfind("contract:", 0) == 0) {
    for (int parts = 0; parts < 3 && colon != std::string::npos; ++parts) {
      colon = shape.find(':', colon + 1);
    }
  }
  return colon == std::string::npos ? shape : shape.substr(0, colon);
}

}  // namespace tidal::sim

// --- the transfer workload -------------------------------------------------------------

namespace tidal::sim {
namespace {

// The invariant `r` breaks: `want` when any violation is of that invariant, else the
// first violation's, or "" when it passed.
std::string Broken(const TransferWorkloadResult& r, const std::string& want,
                   std::string* violation = nullptr) {
  if (r.passed) return "";
  for (const std::string& v : r.violations) {
    if (InvariantOf(v) == want) {
      if (violation != nullptr) *violation = v;
      return want;
    }
  }
  return r.violations.empty() ? std::string("?") : InvariantOf(r.violations.front());
}

}  // namespace

Result<TransferShrinkResult> ShrinkTransferFailure(TransferWorkloadOptions failing,
                                                   const ShrinkOptions& options) {
  failing.record_tape = true;
  failing.trace_lines = false;
  Result<TransferWorkloadResult> first = RunTransferWorkload(failing);
  if (!first.ok()) return first.status();
  if (first->passed) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "seed " + std::to_string(failing.seed) + " passes: nothing to shrink");
  }
  TransferShrinkResult out;
  out.invariant = InvariantOf(first->violations.front());
  out.original_nodes = failing.nodes;
  out.original_ops = failing.ops_per_node;
  out.original_length = first->tape.size();
  out.original_nonzero = NonZero(first->tape);
  out.original_events = first->events;
  out.original_faults = first->faults;

  // From here on every run reads its tape from bytes; the seed no longer matters.
  TransferWorkloadOptions cur = failing;
  std::vector<uint64_t> tape = first->tape;
  uint64_t runs = 1;
  const auto start = std::chrono::steady_clock::now();
  auto out_of_time = [&] {
    return options.max_seconds > 0 &&
           std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >=
               options.max_seconds;
  };
  // The best run so far: a candidate is kept only when it breaks the invariant in no more
  // events, with no more faults (as ShrinkScaledFailure keeps a smaller scale).
  uint64_t best_events = first->events, best_faults = first->faults;
  // A smaller scale on `draws`, and failing that on the calm tape (a smaller run draws
  // differently, so the tape that made the larger one fail may steer it elsewhere).
  auto attempt = [&](TransferWorkloadOptions o, const std::vector<uint64_t>& draws,
                     std::vector<uint64_t>* used) -> bool {
    for (int calm = 0; calm < 2; ++calm) {
      if (runs >= options.max_runs || out_of_time()) return false;
      if (calm == 1 && draws.empty()) return false;
      ++runs;
      o.tape_bytes = DrawsToBytes(calm == 1 ? std::vector<uint64_t>{} : draws);
      Result<TransferWorkloadResult> r = RunTransferWorkload(o);
      if (!r.ok() || Broken(*r, out.invariant) != out.invariant) continue;
      if (r->events > best_events || r->faults > best_faults) continue;
      best_events = r->events;
      best_faults = r->faults;
      if (used != nullptr) {
        *used = r->tape;  // what the smaller run really drew (past the end: zeros)
        TrimZeros(*used);
      }
      return true;
    }
    return false;
  };
  // Rounds of: the smallest scale that still fails (batches per node, then nodes, each
  // tried from the smallest up, on the current tape), then the tape itself.
  // A simpler tape is kept when it breaks the invariant in no more events, with no more
  // faults, than the tape pass's input (the best run at this scale).
  TapeRunFn run = [&](const std::vector<uint64_t>& draws) -> std::string {
    TransferWorkloadOptions o = cur;
    o.tape_bytes = DrawsToBytes(draws);
    Result<TransferWorkloadResult> r = RunTransferWorkload(o);
    if (!r.ok()) return "?";
    const std::string broken = Broken(*r, out.invariant);
    if (broken == out.invariant && (r->events > best_events || r->faults > best_faults)) {
      return "(longer)";
    }
    return broken;
  };
  ShrinkResult shrunk;
  shrunk.draws = tape;
  for (int round = 0; round < 4 && runs < options.max_runs && !out_of_time(); ++round) {
    bool scaled = false;
    // Batches per node: the smallest power of two that fails (small runs are cheap, so
    // from the bottom up), then bisection between it and the power below, which passed.
    auto try_ops = [&](size_t ops) {
      TransferWorkloadOptions smaller = cur;
      smaller.ops_per_node = ops;
      std::vector<uint64_t> used;
      if (!attempt(smaller, tape, &used)) return false;
      cur = smaller;
      tape = std::move(used);
      scaled = true;
      return true;
    };
    size_t bad = 0;
    for (size_t ops = 1; ops < cur.ops_per_node; ops *= 2) {
      if (try_ops(ops)) break;
      bad = ops;
    }
    if (bad > 0) {
      size_t good = cur.ops_per_node;
      while (good - bad > 1 && runs < options.max_runs && !out_of_time()) {
        const size_t mid = bad + (good - bad) / 2;
        if (try_ops(mid)) {
          good = mid;
        } else {
          bad = mid;
        }
      }
    }
    for (size_t nodes = 2; nodes < cur.nodes; ++nodes) {
      TransferWorkloadOptions smaller = cur;
      smaller.nodes = nodes;
      std::vector<uint64_t> used;
      if (!attempt(smaller, tape, &used)) continue;
      cur = smaller;
      tape = std::move(used);
      scaled = true;
      break;
    }
    // Single batches (batch_mask, a keep-mask): once the batches of every node number 64
    // or fewer in all, drop them delta-debugging style (ddmin: spans of half the kept
    // batches down to single ones), so the batch a bug needs survives without the ones
    // around it. Bits past the last batch name none and are cleared first.
    const uint64_t items = cur.nodes * cur.ops_per_node;
    if (items <= 64) {
      cur.batch_mask &= items == 64 ? ~0ull : (1ull << items) - 1;
      auto kept_bits = [&] {
        std::vector<int> bits;
        for (int b = 0; b < 64; ++b) {
          if ((cur.batch_mask >> b) & 1) bits.push_back(b);
        }
        return bits;
      };
      for (size_t span = std::max<size_t>(kept_bits().size() / 2, 1);
           runs < options.max_runs && !out_of_time(); span /= 2) {
        for (size_t at = 0; runs < options.max_runs && !out_of_time();) {
          const std::vector<int> bits = kept_bits();
          if (at >= bits.size() || bits.size() <= 1) break;
          const size_t end = std::min(bits.size(), at + span);
          if (end - at == bits.size()) {  // not every batch: one must remain
            at += span;
            continue;
          }
          TransferWorkloadOptions smaller = cur;
          for (size_t i = at; i < end; ++i) smaller.batch_mask &= ~(1ull << bits[i]);
          std::vector<uint64_t> used;
          if (attempt(smaller, tape, &used)) {
            cur = smaller;
            tape = std::move(used);
            scaled = true;  // the next span now starts at `at`
          } else {
            at += span;
          }
        }
        if (span <= 1) break;
      }
    }
    if (options.progress) options.progress(runs, NonZero(tape), tape.size());
    if (out_of_time() || runs >= options.max_runs) break;
    ShrinkOptions tape_options = options;
    // Three quarters of the budget left (runs and seconds), so that the next round's scale
    // passes (which cut far more once the tape is short and calm) still get their turn; the
    // last round takes all of it.
    const uint64_t left = options.max_runs > runs ? options.max_runs - runs : 1;
    tape_options.max_runs = round < 3 ? std::max<uint64_t>(1, left * 3 / 4) : left;
    if (options.max_seconds > 0) {
      const double seconds_left = std::max(
          0.001, options.max_seconds -
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      tape_options.max_seconds = round < 3 ? seconds_left * 3 / 4 : seconds_left;
    }
    const std::vector<uint64_t> before = tape;
    shrunk = ShrinkTape(tape, out.invariant, run, tape_options);
    runs += shrunk.runs;
    tape = shrunk.draws;
    if (tape != before && runs < options.max_runs) {  // bounds the next candidates
      TransferWorkloadOptions o = cur;
      o.tape_bytes = DrawsToBytes(tape);
      ++runs;
      Result<TransferWorkloadResult> r = RunTransferWorkload(o);
      if (r.ok()) {
        best_events = r->events;
        best_faults = r->faults;
      }
    }
    if (!scaled && tape == before) break;  // a fixed point
  }

  cur.tape_bytes = DrawsToBytes(shrunk.draws);
  cur.record_tape = false;
  Result<TransferWorkloadResult> last = RunTransferWorkload(cur);
  if (!last.ok()) return last.status();
  TIDAL_ASSERT_MSG(Broken(*last, out.invariant, &out.violation) == out.invariant,
                   "shrink: the shrunk tape no longer fails");
  out.options = cur;
  out.shrunk_length = shrunk.draws.size();
  out.shrunk_nonzero = NonZero(shrunk.draws);
  out.shrunk_events = last->events;
  out.shrunk_faults = last->faults;
  out.runs = runs;
  return out;
}

std::string TransferRegressionTest(const TransferShrinkResult& r, const std::string& test_name) {
  const TransferWorkloadOptions& o = r.options;
  std::string bytes;
  for (size_t i = 0; i < o.tape_bytes.size(); ++i) {
    bytes += (i % 16 == 0 ? "\n      " : " ") + std::to_string(o.tape_bytes[i]) + ",";
  }
  auto quoted = [](const std::string& s) {
    std::string q = "\"";
    for (char ch : s) {
      if (ch == '"' || ch == '\\') q += '\\';
      if (ch == '\n') {
        q += "\\n";
        continue;
      }
      q += ch;
    }
    return q + "\"";
  };
  const bool planted = o.planted_bug != PlantedBug::kNone || o.engine_bug != EngineBug::kNone;
  std::string t;
  t += "// Written by `tidal-sim shrink`: a failing transfer-workload run shrunk from " +
       std::to_string(r.original_nodes) + " nodes x " + std::to_string(r.original_ops) +
       " batches, " + std::to_string(r.original_nonzero) + " non-zero draws, " +
       std::to_string(r.original_events) + " events, " + std::to_string(r.original_faults) +
       " faults\n// to " + std::to_string(o.nodes) + " nodes x " +
       std::to_string(o.ops_per_node) + " batches" +
       (o.batch_mask != ~0ull ? " (" + std::to_string(std::popcount(o.batch_mask)) + " kept)"
                              : std::string()) +
       ", " + std::to_string(r.shrunk_nonzero) +
       " non-zero draws, " + std::to_string(r.shrunk_events) + " events, " +
       std::to_string(r.shrunk_faults) + " faults.\n// Invariant: " + r.invariant + "\n" +
       "// The tape is read draw by draw: a change to the order in which the simulator draws\n"
       "// re-times the run. Then regenerate it:\n//   tidal-sim shrink --seed " +
       std::to_string(o.seed) + " --nodes " + std::to_string(r.original_nodes) + " --ops " +
       std::to_string(r.original_ops) + " --faults " + o.fault_mix +
       (o.planted_bug != PlantedBug::kNone
            ? " --plant-bug " + std::string(PlantedBugName(o.planted_bug))
            : std::string()) +
       (o.engine_bug != EngineBug::kNone
            ? " --engine-bug " + std::string(EngineBugName(o.engine_bug))
            : std::string()) +
       " --out FILE.cc\n";
  t += "#include <gtest/gtest.h>\n\n#include \"tidal/sim/shrink.h\"\n#include "
       "\"tidal/sim/transfer_workload.h\"\n\nnamespace {\n\n";
  t += "tidal::sim::TransferWorkloadOptions " + test_name + "Run() {\n";
  t += "  tidal::sim::TransferWorkloadOptions o;\n";
  t += "  o.seed = " + std::to_string(o.seed) + ";\n";
  t += "  o.nodes = " + std::to_string(o.nodes) + ";\n";
  t += "  o.ops_per_node = " + std::to_string(o.ops_per_node) + ";\n";
  if (o.batch_mask != ~0ull) t += "  o.batch_mask = " + std::to_string(o.batch_mask) + "ull;\n";
  t += "  o.slots = " + std::to_string(o.slots) + ";\n";
  t += "  o.slot_bytes = " + std::to_string(o.slot_bytes) + ";\n";
  t += "  o.slice_bytes = " + std::to_string(o.slice_bytes) + ";\n";
  t += "  o.transfer_timeout_ns = " + std::to_string(o.transfer_timeout_ns) + ";\n";
  t += "  o.fault_mix = " + quoted(o.fault_mix) + ";\n";
  if (!o.fault_script.empty()) t += "  o.fault_script = " + quoted(o.fault_script) + ";\n";
  t += "  o.tape_bytes = {" + bytes + "\n  };\n  return o;\n}\n\n";
  if (planted) {
    t += "// With the bug planted, the checker still catches it on this tape, in the same run.\n";
    t += "TEST(ShrunkRegression, " + test_name + "IsCaught) {\n";
    t += "  tidal::sim::TransferWorkloadOptions o = " + test_name + "Run();\n";
    if (o.planted_bug != PlantedBug::kNone) {
      t += "  o.planted_bug = tidal::sim::ParsePlantedBug(" +
           quoted(std::string(PlantedBugName(o.planted_bug))) + ").value();\n";
    }
    if (o.engine_bug != EngineBug::kNone) {
      t += "  o.engine_bug = tidal::ParseEngineBug(" +
           quoted(std::string(EngineBugName(o.engine_bug))) + ").value();\n";
    }
    t += "  auto r = tidal::sim::RunTransferWorkload(o);\n  ASSERT_TRUE(r.ok());\n";
    t += "  ASSERT_FALSE(r->passed);\n  bool seen = false;\n";
    t += "  for (const auto& v : r->violations) seen |= tidal::sim::InvariantOf(v) == " +
         quoted(r.invariant) + ";\n";
    t += "  EXPECT_TRUE(seen) << r->violations.front();\n";
    // The same run, event for event: its trace records and faults as at shrink time.
    t += "  EXPECT_EQ(r->events, " + std::to_string(r.shrunk_events) + "u);\n";
    t += "  EXPECT_EQ(r->faults, " + std::to_string(r.shrunk_faults) + "u);\n}\n\n";
  }
  t += "// The same run without " + std::string(planted ? "the planted bug" : "the bug") +
       " passes" + (planted ? "" : " (this test holds the fix)") + ".\n";
  t += "TEST(ShrunkRegression, " + test_name + "Passes) {\n";
  t += "  auto r = tidal::sim::RunTransferWorkload(" + test_name + "Run());\n";
  t += "  ASSERT_TRUE(r.ok());\n";
  t += "  EXPECT_TRUE(r->passed) << (r->violations.empty() ? \"\" : r->violations.front());\n}\n";
  t += "\n}  // namespace\n";
  return t;
}

}  // namespace tidal::sim
