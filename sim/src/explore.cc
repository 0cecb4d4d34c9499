#include "tidal/sim/explore.h"

#include <chrono>
#include <cstdlib>

namespace tidal::sim {

namespace {
uint64_t Mix(uint64_t h, uint64_t x) {
  uint64_t z = h ^ (x + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
constexpr size_t kMaxReportedFailures = 5;
}  // namespace

// ---- ExploreRun ---------------------------------------------------------------------

uint32_t ExploreRun::Next(uint32_t domain) {
  const size_t index = trail_.size();
  uint32_t c = 0;
  if (index < prefix_->size()) {
    c = (*prefix_)[index];
    if (c >= domain) {
      // Only a hand-written replay can ask for this (a DFS prefix never does).
      replay_out_of_domain_ = true;
      c = 0;
    }
  }
  trail_.push_back({c, domain});
  return c;
}

uint64_t ExploreRun::Pick(uint64_t n) {
  if (n <= 1 || !exploring_) return 0;
  uint32_t domain = static_cast<uint32_t>(std::min<uint64_t>(n, UINT32_MAX));
  if (pruned_) domain = 1;
  if (trail_.size() >= bounds_->max_choices) {
    choices_bound_hit_ = true;
    domain = 1;
  }
  const uint32_t c = Next(domain);
  picks_ = Mix(picks_, c);
  return c;
}

uint64_t ExploreRun::Choose(uint64_t bound) {
  // bound > 1 (the tape draws without asking for bound <= 1).
  if (!exploring_) return 0;
  const bool full = bound <= bounds_->max_domain;
  uint64_t values = full ? bound : std::max<uint64_t>(bounds_->delay_values, 1);
  values = std::min<uint64_t>(values, bound);
  uint32_t domain = static_cast<uint32_t>(values);
  if (pruned_) domain = 1;
  // Delay bounding: a run that spent its late events takes every later delay at its first.
  if (!full && delays_used_ >= bounds_->max_delays) domain = 1;
  if (domain > 1 && trail_.size() >= bounds_->max_choices) {
    choices_bound_hit_ = true;
    domain = 1;
  }
  const uint32_t c = Next(domain);
  if (!full && c != 0) ++delays_used_;
  if (full || values <= 1) return c;
  // values > 1 evenly spread over [0, bound - 1]: 0 first, bound - 1 last.
  return static_cast<uint64_t>(static_cast<unsigned __int128>(c) * (bound - 1) / (values - 1));
}

SchedulingOptions ExploreRun::scheduling() {
  SchedulingOptions s;
  s.mode = Scheduling::kChoice;
  s.chooser = this;
  s.before_step = [this](World& world) { BeforeStep(world); };
  s.abstract_time = bounds_->abstract_time && visited_ != nullptr;
  return s;
}

void ExploreRun::BeforeStep(World& world) {
  if (pruned_) {
    // Its future from the known state is the future the run that met it first took
    // (every later draw its first value): nothing of it is new, if the hash is sound.
    if (bounds_->halt_pruned) world.Halt();
    return;
  }
  if (visited_ == nullptr || !exploring_) return;
  // States met while the shared prefix replays were hashed by the run that first took
  // this path: only states after the last forced choice are new territory.
  if (trail_.size() < prefix_->size()) return;
  // The world's own picks (a fault placement) are state: a rule that has not matched yet
  // leaves no other trace.
  uint64_t h = Mix(world.Fingerprint(), picks_);
  // Under a delay bound the late events left decide which futures remain: state.
  if (bounds_->max_delays != UINT64_MAX) h = Mix(h, delays_used_);
  if (state_hash_) h = Mix(h, state_hash_());
  if (!visited_->insert(h).second) {
    pruned_ = true;
    if (first_reached_ != nullptr) {
      pruned_state_ = h;
      for (const Point& p : trail_) pruned_at_.push_back(p.chosen);
    }
    if (bounds_->halt_pruned) world.Halt();
  } else if (first_reached_ != nullptr) {
    std::vector<uint32_t>& first = (*first_reached_)[h];
    for (const Point& p : trail_) first.push_back(p.chosen);
  }
}

// ---- Explorer -----------------------------------------------------------------------

std::string ChoicesToString(const std::vector<uint32_t>& choices) {
  size_t n = choices.size();
  while (n > 0 && choices[n - 1] == 0) --n;
  if (n == 0) return "0";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    if (i > 0) s += '.';
    s += std::to_string(choices[i]);
  }
  return s;
}

Result<std::vector<uint32_t>> ParseChoices(const std::string& text) {
  std::vector<uint32_t> out;
  size_t i = 0;
  while (i <= text.size()) {
    const size_t dot = text.find('.', i);
    const std::string part = text.substr(i, dot == std::string::npos ? std::string::npos : dot - i);
    if (part.empty() || part.size() > 9 ||
        part.find_first_not_of("0123456789") != std::string::npos) {
      return Status(ErrorCode::INVALID_PARAMS,
                    "choices '" + text + "': expected numbers separated by dots, e.g. 0.1.0.2");
    }
    out.push_back(static_cast<uint32_t>(std::strtoul(part.c_str(), nullptr, 10)));
    if (dot == std::string::npos) break;
    i = dot + 1;
  }
  return out;
}

ExploreResult Explorer::Run(const ExploreWorldFn& world,
                            const std::function<void(const ExploreProgress&)>& progress) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  ExploreResult r;
  r.domains = "draws with a bound up to " + std::to_string(bounds_.max_domain) +
              " in full, larger draws (delays, rates) " +
              (bounds_.delay_values <= 1 ? std::string("{0}")
               : bounds_.delay_values == 2
                   ? std::string("{0, bound-1}")
                   : std::to_string(bounds_.delay_values) + " values evenly spread") +
              (bounds_.max_delays == UINT64_MAX
                   ? std::string()
                   : ", at most " + std::to_string(bounds_.max_delays) +
                         " timing draws of a run off their first value (delay bound)") +
              ", unbounded draws 0; reduction: " +
              (!bounds_.state_hashing ? "none"
               : bounds_.abstract_time ? "state hashing, time abstracted"
                                       : "state hashing");
  std::unordered_set<uint64_t> visited;
  std::unordered_map<uint64_t, std::vector<uint32_t>> first_reached;
  const bool check = bounds_.check_hash && bounds_.state_hashing && !bounds_.halt_pruned;
  std::vector<uint32_t> prefix;
  bool choices_bound_hit = false;
  for (;;) {
    ExploreRun run;
    run.bounds_ = &bounds_;
    run.prefix_ = &prefix;
    run.visited_ = bounds_.state_hashing ? &visited : nullptr;
    run.first_reached_ = check ? &first_reached : nullptr;
    const ScheduleVerdict v = world(run);
    TIDAL_ASSERT_MSG(run.trail_.size() >= prefix.size(),
                     "a world took fewer choices than the schedule it replays: it is not "
                     "deterministic in its tape");
    for (size_t i = 0; i < prefix.size(); ++i) {
      TIDAL_ASSERT_MSG(run.trail_[i].chosen == prefix[i],
                       "a replayed prefix diverged: the world is not deterministic in its tape");
    }
    choices_bound_hit |= run.choices_bound_hit_;
    r.max_choices_seen = std::max<uint64_t>(r.max_choices_seen, run.trail_.size());
    if (run.pruned_) {
      ++r.pruned;
    } else {
      ++r.schedules;
    }
    // A halted run's verdict is that of a run cut short: not an outcome of the world.
    const bool halted = run.pruned_ && bounds_.halt_pruned;
    if (!halted) r.outcomes.insert(v.outcome);
    if (!halted && !v.passed) {
      ++r.failures;
      if (r.first_failures.size() < kMaxReportedFailures) {
        std::vector<uint32_t> chosen;
        for (const auto& p : run.trail_) chosen.push_back(p.chosen);
        r.first_failures.push_back({ChoicesToString(chosen), v.failure});
      }
    }
    if (check && run.pruned_) {
      // The future this run was merged into: the first schedule's way to the state, then
      // every draw its first value (as this run ran on from it).
      const std::string first = ChoicesToString(first_reached.at(run.pruned_state_));
      Result<ScheduleVerdict> merged = Replay(world, first);
      TIDAL_ASSERT_MSG(merged.ok(), "the first way to a known state does not replay");
      if (merged->outcome != v.outcome) {
        ++r.hash_conflicts_seen;
        if (r.hash_conflicts.size() < kMaxReportedFailures) {
          r.hash_conflicts.push_back({run.pruned_state_, first, ChoicesToString(run.pruned_at_),
                                      merged->outcome, v.outcome});
        }
      }
    }
    // Backtrack: the deepest choice point with an untried value.
    size_t i = run.trail_.size();
    while (i > 0 && run.trail_[i - 1].chosen + 1 >= run.trail_[i - 1].domain) --i;
    const double seconds = std::chrono::duration<double>(clock::now() - start).count();
    r.states = visited.size();
    if (progress) progress({r.schedules, r.pruned, r.failures, r.states, i, seconds});
    if (i == 0) {
      r.complete = !choices_bound_hit;
      if (choices_bound_hit) {
        r.incomplete_because = "max_choices: a run met more than " +
                               std::to_string(bounds_.max_choices) +
                               " choice points; the draws past it were fixed at 0";
      }
      break;
    }
    if (!v.passed && bounds_.stop_at_first_failure) {
      r.incomplete_because = "stopped at the first failure";
      break;
    }
    if (r.schedules + r.pruned >= bounds_.max_schedules) {
      r.incomplete_because = "max_schedules: " + std::to_string(bounds_.max_schedules) +
                             " runs spent with branches left";
      break;
    }
    if (bounds_.max_seconds > 0 && seconds >= bounds_.max_seconds) {
      r.incomplete_because = "max_seconds: the time budget ran out with branches left";
      break;
    }
    prefix.resize(i);
    for (size_t k = 0; k < i; ++k) prefix[k] = run.trail_[k].chosen;
    ++prefix[i - 1];
  }
  r.seconds = std::chrono::duration<double>(clock::now() - start).count();
  return r;
}

Result<ScheduleVerdict> Explorer::Replay(const ExploreWorldFn& world, const std::string& choices) {
  Result<std::vector<uint32_t>> prefix = ParseChoices(choices);
  if (!prefix.ok()) return prefix.status();
  ExploreRun run;
  run.bounds_ = &bounds_;
  run.prefix_ = &*prefix;
  run.visited_ = nullptr;
  ScheduleVerdict v = world(run);
  if (run.replay_out_of_domain_ || run.trail_.size() < prefix->size()) {
    // Trailing zeros were dropped when the choices were written, so a shorter trail is
    // fine only if what it skipped was zeros.
    bool only_zeros = !run.replay_out_of_domain_;
    for (size_t i = run.trail_.size(); i < prefix->size(); ++i) only_zeros &= (*prefix)[i] == 0;
    if (!only_zeros) {
      return Status(ErrorCode::INVALID_PARAMS,
                    "choices '" + choices +
                        "' do not fit this world and bounds (a choice outside its draw's "
                        "domain, or more choices than the run makes)");
    }
  }
  return v;
}

}  // namespace tidal::sim
