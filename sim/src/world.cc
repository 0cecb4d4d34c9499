#include "tidal/sim/world.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <tuple>

#include "tidal/sim/sim_messenger.h"
#include "tidal/sim/sim_transport.h"

namespace tidal::sim {

// ---- SimEnv -----------------------------------------------------------------------

SimEnv::SimEnv(World& world, uint32_t node, uint64_t clock_offset_ns)
    : world_(world), node_(node), clock_offset_ns_(clock_offset_ns),
      name_("node" + std::to_string(node)) {}

uint64_t SimEnv::NowNs() { return world_.NowNs() + clock_offset_ns_; }

uint64_t SimEnv::RandomU64() { return world_.tape().Next(); }

void SimEnv::Post(Callback fn) {
  // Which ready work runs first is a tape draw: ties at one instant are broken by a
  // small random delay, so different seeds explore different interleavings.
  // (Under PCT and exploration the order is the scheduler's: World::PickReady.)
  const uint64_t j = world_.options().scheduling.mode == Scheduling::kSwarm
                         ? world_.options().schedule_jitter_ns
                         : 0;
  const uint64_t delay = j == 0 ? 0 : world_.tape().Below(j + 1);
  world_.ScheduleAt(world_.NowNs() + delay, static_cast<int32_t>(node_), std::move(fn));
}

TimerId SimEnv::ScheduleAfter(uint64_t delay_ns, Callback fn) {
  return world_.ScheduleTimer(world_.NowNs() + delay_ns, static_cast<int32_t>(node_),
                              std::move(fn));
}

bool SimEnv::CancelTimer(TimerId id) { return world_.CancelTimer(id); }

bool SimEnv::RunUntil(const std::function<bool()>& done) { return world_.RunUntil(done); }

std::string_view PlantedBugName(PlantedBug bug) {
  switch (bug) {
    case PlantedBug::kNone: return "none";
    case PlantedBug::kShortAsComplete: return "short_as_complete";
    case PlantedBug::kIgnoreRemoteKey: return "ignore_remote_key";
    case PlantedBug::kIgnoreWindow: return "ignore_window";
    case PlantedBug::kWriteOffByOne: return "write_off_by_one";
    case PlantedBug::kCompleteBeforeVisible: return "complete_before_visible";
  }
  return "unknown";
}

Result<PlantedBug> ParsePlantedBug(std::string_view name) {
  for (PlantedBug b : kPlantedBugs) {
    if (PlantedBugName(b) == name) return b;
  }
  std::string known;
  for (PlantedBug b : kPlantedBugs) known += (known.empty() ? "" : ", ") + std::string(PlantedBugName(b));
  return Status(ErrorCode::INVALID_PARAMS,
                "unknown planted bug '" + std::string(name) + "' (" + known + ")");
}

// ---- Scheduling modes -------------------------------------------------------------

std::string_view SchedulingName(Scheduling mode) {
  switch (mode) {
    case Scheduling::kSwarm: return "swarm";
    case Scheduling::kPct: return "pct";
    case Scheduling::kChoice: return "choice";
  }
  return "unknown";
}

Result<Scheduling> ParseScheduling(std::string_view name) {
  for (Scheduling m : {Scheduling::kSwarm, Scheduling::kPct, Scheduling::kChoice}) {
    if (SchedulingName(m) == name) return m;
  }
  return Status(ErrorCode::INVALID_PARAMS,
                "unknown scheduling mode '" + std::string(name) + "' (swarm, pct, choice)");
}

namespace {
thread_local SchedulingOptions g_default_scheduling;
// What an event adds to its actor's history when time is abstracted (in place of its time).
constexpr uint64_t kAbstractEvent = 0x7e57ab1e5ca1ab1eULL;

uint64_t Mix(uint64_t h, uint64_t x) {
  uint64_t z = h ^ (x + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
uint64_t MixString(uint64_t h, std::string_view s) {
  uint64_t f = 0xcbf29ce484222325ULL;
  for (char c : s) f = (f ^ static_cast<uint8_t>(c)) * 0x100000001b3ULL;
  return Mix(h, f);
}
}  // namespace

const SchedulingOptions& DefaultScheduling() { return g_default_scheduling; }

ScopedScheduling::ScopedScheduling(SchedulingOptions options)
    : previous_(std::move(g_default_scheduling)) {
  g_default_scheduling = std::move(options);
}

ScopedScheduling::~ScopedScheduling() { g_default_scheduling = std::move(previous_); }

// ---- World ------------------------------------------------------------------------

namespace {
void WorldAssertHook(void* context) {
  const World* w = static_cast<const World*>(context);
  std::fprintf(stderr, "%s\n", w->FailureBanner().c_str());
}
}  // namespace

World::World(WorldOptions options)
    : options_(std::move(options)),
      tape_(options_.tape_bytes.empty() ? Tape::FromSeed(options_.seed)
                                        : Tape::FromBytes(options_.tape_bytes)),
      queue_(options_.scheduling.mode == Scheduling::kSwarm) {
  TIDAL_ASSERT(options_.nodes > 0 && options_.nodes <= 4096);
  // The explorer reads the draws each event made (Fingerprint): record from the first.
  if (options_.record_tape || options_.scheduling.chooser != nullptr) tape_.StartRecording();
  tape_.SetChooser(options_.scheduling.chooser);
  actor_digest_.assign(2 * options_.nodes + 1, 0);
  TIDAL_ASSERT_MSG(options_.scheduling.mode != Scheduling::kPct || options_.scheduling.pct_depth >= 1,
                   "PCT needs a depth of at least 1");
  trace_.EnableLines(options_.trace_lines);
  nodes_.resize(options_.nodes);
  transports_.assign(options_.nodes, nullptr);
  for (uint32_t n = 0; n < options_.nodes; ++n) {
    const uint64_t offset =
        options_.max_clock_offset_ns == 0 ? 0 : tape_.Below(options_.max_clock_offset_ns + 1);
    envs_.push_back(std::make_unique<SimEnv>(*this, n, offset));
  }
  for (const FaultRule& r : options_.faults.rules) has_rules_[static_cast<size_t>(r.kind)] = true;
  previous_hook_ = SetAssertHook({&WorldAssertHook, this});
  Record(-1, "world.start", {{"seed", options_.seed}, {"nodes", uint64_t{options_.nodes}}});
  DrawPct();
  DrawSwarm();
  ScheduleNodeFaults();
  // What the world drew before its first step (clock offsets, priorities, swarm rates).
  for (uint64_t v : tape_.recorded()) actor_digest_[0] = Mix(actor_digest_[0], v);
}

void World::DrawPct() {
  if (options_.scheduling.mode != Scheduling::kPct) return;
  const size_t actors = actor_digest_.size();
  const uint64_t d = options_.scheduling.pct_depth;
  // A random permutation of d .. d + actors - 1 (Fisher-Yates on the tape); change point
  // i (1-based) later sets the running actor's priority to d - i, below every other.
  std::vector<uint64_t> perm(actors);
  for (size_t a = 0; a < actors; ++a) perm[a] = a;
  for (size_t a = actors - 1; a > 0; --a) std::swap(perm[a], perm[tape_.Below(a + 1)]);
  pct_priority_.resize(actors);
  for (size_t a = 0; a < actors; ++a) pct_priority_[a] = d + perm[a];
  for (uint64_t i = 1; i < d; ++i) {
    pct_changes_.push_back(tape_.Below(std::max<uint64_t>(options_.scheduling.pct_steps, 1)));
  }
  std::sort(pct_changes_.begin(), pct_changes_.end());
  Record(-1, "world.pct", {{"depth", d}, {"steps", options_.scheduling.pct_steps}});
}

bool World::PickReady(Key* out) {
  // The ready set: every event due at the earliest pending instant (under PCT, within
  // schedule_jitter_ns of it, the window swarm mode reorders in). Canceled timers and a
  // crashed node's work are dropped here, as Step would.
  const bool pct = options_.scheduling.mode == Scheduling::kPct;
  const uint64_t t0 = queue_.top().time_ns;
  const uint64_t limit = pct ? t0 + options_.schedule_jitter_ns : t0;
  std::vector<Key> ready;
  while (!queue_.empty() && queue_.top().time_ns <= limit) {
    const Key k = queue_.top();
    queue_.pop();
    Slot& s = slots_[k.slot()];
    const bool canceled = s.timer != 0 && !TimerLive(s.timer);
    const bool dead = s.node >= 0 && nodes_[s.node].crashed;
    if (canceled) --canceled_in_queue_;
    if (canceled || dead) {
      s.fn = Callback();
      free_slots_.push_back(k.slot());
      continue;
    }
    ready.push_back(k);
  }
  if (ready.empty()) return false;
  std::sort(ready.begin(), ready.end());
  auto actor_of = [&](const Key& k) { return static_cast<size_t>(slots_[k.slot()].actor); };
  size_t chosen = actor_of(ready.front());
  if (pct) {
    auto best = [&]() {
      size_t a = actor_of(ready.front());
      for (const Key& k : ready) {
        if (pct_priority_[actor_of(k)] > pct_priority_[a]) a = actor_of(k);
      }
      return a;
    };
    chosen = best();
    while (pct_next_change_ < pct_changes_.size() && pct_changes_[pct_next_change_] == steps_) {
      ++pct_next_change_;
      pct_priority_[chosen] = options_.scheduling.pct_depth - pct_next_change_;
      Record(static_cast<int64_t>(chosen) - 1, "world.pct_change",
             {{"step", steps_}, {"priority", pct_priority_[chosen]}});
      chosen = best();
    }
  } else {
    std::vector<size_t> actors;
    for (const Key& k : ready) actors.push_back(actor_of(k));
    std::sort(actors.begin(), actors.end());
    actors.erase(std::unique(actors.begin(), actors.end()), actors.end());
    if (actors.size() > 1) chosen = actors[tape_.Below(actors.size())];
  }
  ++steps_;
  bool taken = false;
  for (const Key& k : ready) {
    if (!taken && actor_of(k) == chosen) {
      *out = k;
      taken = true;
    } else {
      queue_.push(k);
    }
  }
  return true;
}

World::~World() {
  Shutdown();
  SetAssertHook(previous_hook_);
}

void World::Shutdown() {
  for (auto& env : envs_) env->DestroyRoots();
  queue_.clear();
  canceled_in_queue_ = 0;
  slots_.clear();
  free_slots_.clear();
  live_timers_.clear();
}

void World::Halt() {
  // The callbacks are destroyed once the queue is empty and consistent: a capture's
  // destructor may cancel a timer or schedule more work (dropped at the next step).
  std::vector<Slot> dropped = std::move(slots_);
  queue_.clear();
  canceled_in_queue_ = 0;
  slots_.clear();
  free_slots_.clear();
  live_timers_.clear();
  dropped.clear();
}

void World::Push(uint64_t time_ns, int32_t node, TimerId timer, Callback&& fn, uint64_t origin) {
  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = static_cast<uint32_t>(slots_.size());
    TIDAL_ASSERT_MSG(slot < (uint32_t{1} << kSlotBits), "too many events pending at once");
    slots_.emplace_back();
  }
  Slot& s = slots_[slot];
  s.node = node;
  s.actor = ActorFor(node);
  s.timer = timer;
  if (options_.scheduling.chooser != nullptr) s.origin = origin != 0 ? origin : OriginOfPush();
  s.fn = std::move(fn);
  TIDAL_ASSERT_MSG(seq_ < kMaxSeq, "event sequence numbers exhausted");
  queue_.push(Key{std::max(time_ns, now_ns_), seq_++ << kSlotBits | slot});
}

uint64_t World::OriginOfPush() {
  if (current_actor_ < 0) return Mix(0x0075151deULL, ++outside_pushes_);
  // The creator's history up to its running event (Step adds that event when it ends),
  // the data draws the event made so far, and which of its pushes this is.
  uint64_t o = Mix(actor_digest_[current_actor_], static_cast<uint64_t>(current_actor_));
  const bool abstract = options_.scheduling.abstract_time;
  const std::vector<uint64_t>& drawn = tape_.recorded();
  for (size_t i = event_first_draw_; i < drawn.size(); ++i) {
    if (!abstract || !tape_.recorded_timing(i)) o = Mix(o, drawn[i]);
  }
  return Mix(o, ++event_pushes_);
}

uint32_t World::ActorFor(int32_t node) const {
  if (node >= 0) return static_cast<uint32_t>(node) + 1;
  if (current_actor_ < 0) return 0;
  const uint32_t current = static_cast<uint32_t>(current_actor_);
  return current >= 1 && current <= options_.nodes ? current + static_cast<uint32_t>(options_.nodes)
                                                   : current;
}

void World::ScheduleAt(uint64_t time_ns, int32_t node, Callback&& fn) {
  Push(time_ns, node, 0, std::move(fn));
}

TimerId World::ScheduleTimer(uint64_t time_ns, int32_t node, Callback&& fn) {
  const TimerId id = next_timer_++;
  SetTimerLive(id);
  Push(time_ns, node, id, std::move(fn));
  return id;
}

bool World::CancelTimer(TimerId id) {
  if (!ClearTimerLive(id)) return false;
  ++canceled_in_queue_;
  if (canceled_in_queue_ >= 1024 && canceled_in_queue_ * 2 > queue_.size()) Compact();
  return true;
}

void World::Compact() {
  // The dropped callbacks are destroyed only once the heap is whole again: a capture's
  // destructor may cancel another timer and so come back here.
  std::vector<Callback> dropped;
  queue_.RemoveIf([&](const Key& k) {
    Slot& s = slots_[k.slot()];
    if (s.timer == 0 || TimerLive(s.timer)) return false;
    dropped.push_back(std::move(s.fn));
    s.fn = Callback();
    free_slots_.push_back(k.slot());
    return true;
  });
  canceled_in_queue_ = 0;
}

bool World::Step() {
  if (queue_.empty()) return false;
  if (options_.scheduling.before_step) {
    options_.scheduling.before_step(*this);
    if (queue_.empty()) return false;  // halted
  }
  Key key;
  if (options_.scheduling.mode == Scheduling::kSwarm) {
    key = queue_.top();
    queue_.pop();
  } else if (!PickReady(&key)) {
    return true;
  }
  Slot& slot = slots_[key.slot()];
  const int32_t node = slot.node;
  const uint32_t actor = slot.actor;
  const TimerId timer = slot.timer;
  const uint64_t origin = slot.origin;
  Callback fn = std::move(slot.fn);
  free_slots_.push_back(key.slot());
  if (timer != 0 && !ClearTimerLive(timer)) {  // canceled
    --canceled_in_queue_;
    return true;
  }
  now_ns_ = std::max(now_ns_, key.time_ns);
  if (node >= 0) {
    const NodeState& st = nodes_[node];
    if (st.crashed) return true;  // a dead node runs nothing
    if (st.hung_until_ns > now_ns_) {
      if (st.hung_until_ns != UINT64_MAX) {
        if (timer != 0) SetTimerLive(timer);
        Push(st.hung_until_ns, node, timer, std::move(fn), origin);  // the same event
      }
      return true;
    }
  }
  ++events_run_;
  const uint64_t first_draw = tape_.position();
  event_first_draw_ = first_draw;
  event_pushes_ = 0;
  current_actor_ = actor;
  fn();
  current_actor_ = -1;
  if (options_.scheduling.chooser != nullptr) {
    // The fingerprint's per-actor history: this event's time and the draws it made.
    // Time abstracted: that an event ran, not when, and only the draws that are data.
    uint64_t& d = actor_digest_[actor];
    const bool abstract = options_.scheduling.abstract_time;
    d = Mix(d, abstract ? kAbstractEvent : now_ns_);
    const std::vector<uint64_t>& drawn = tape_.recorded();
    for (size_t i = first_draw; i < drawn.size(); ++i) {
      if (!abstract || !tape_.recorded_timing(i)) d = Mix(d, drawn[i]);
    }
  }
  return true;
}

uint64_t World::Fingerprint() const {
  const bool abstract = options_.scheduling.abstract_time;
  uint64_t h = Mix(0, abstract ? 0 : now_ns_);
  if (abstract) {
    // Time a link stays busy is state that decides when later work runs: relative to now.
    auto ahead = [&](uint64_t t) { return t > now_ns_ ? t - now_ns_ : 0; };
    for (const SimTransport* t : transports_) {
      if (t == nullptr) continue;
      for (uint64_t free : t->link_free_ns()) h = Mix(h, ahead(free));
    }
    for (const auto& [name, m] : messengers_) {
      h = MixString(h, name);
      for (uint64_t free : m->link_free_ns()) h = Mix(h, ahead(free));
    }
  }
  for (uint64_t d : actor_digest_) h = Mix(h, d);
  for (const NodeState& st : nodes_) {
    h = Mix(h, st.crashed);
    h = Mix(h, st.hung_until_ns > now_ns_ ? st.hung_until_ns - now_ns_ : 0);
  }
  for (const FaultRule& r : options_.faults.rules) h = Mix(h, r.matched);
  for (const PartitionState& p : partitions_) h = Mix(h, p.until_ns > now_ns_ ? p.until_ns - now_ns_ : 0);
  // Pending work in the order the scheduler sees it: by time, then by actor (which actor
  // goes first at one instant is the scheduler's choice, not the queue's), each actor's
  // own events first in, first out.
  struct Pending {
    uint64_t time, actor, seq, origin;
    bool timer;
  };
  std::vector<Pending> pending;
  queue_.ForEach([&](const Key& k) {
    const Slot& s = slots_[k.slot()];
    if (s.timer != 0 && !TimerLive(s.timer)) return;  // canceled
    pending.push_back({k.time_ns, s.actor, k.seq(), s.origin, s.timer != 0});
  });
  std::sort(pending.begin(), pending.end(), [](const Pending& a, const Pending& b) {
    return std::tie(a.time, a.actor, a.seq) < std::tie(b.time, b.actor, b.seq);
  });
  for (const Pending& p : pending) {
    h = Mix(h, p.time - std::min(p.time, now_ns_));
    h = Mix(h, p.actor);
    h = Mix(h, p.origin);
    h = Mix(h, p.timer);
  }
  return h;
}

bool World::RunUntil(const std::function<bool()>& done) {
  for (;;) {
    if (done()) return true;
    if (queue_.empty()) return false;
    if (queue_.top().time_ns > options_.max_virtual_ns) return false;
    Step();
  }
}

void World::RunUntilTime(uint64_t time_ns) {
  while (!queue_.empty() && queue_.top().time_ns <= time_ns) Step();
  now_ns_ = std::max(now_ns_, time_ns);
}

bool World::RunUntilIdle() {
  while (!queue_.empty()) {
    if (queue_.top().time_ns > options_.max_virtual_ns) return false;
    Step();
  }
  return true;
}

void World::DrawSwarm() {
  const SwarmSettings& s = options_.faults.swarm;
  static constexpr uint32_t kRates[] = {200, 2'000, 20'000, 100'000};
  for (size_t k = 0; k < kFaultKinds; ++k) {
    const FaultKind kind = static_cast<FaultKind>(k);
    if (!s.enabled[k] || kind == FaultKind::kCrash || kind == FaultKind::kHang ||
        kind == FaultKind::kPartition) {
      continue;
    }
    if (tape_.Below(2) == 1) swarm_.ppm[k] = kRates[tape_.Below(4)];
  }
  const size_t n = options_.nodes;
  auto pick_node = [&]() -> int {
    const int node = static_cast<int>(tape_.Below(n));
    return node == s.immune_node ? -1 : node;
  };
  if (s.enabled[static_cast<size_t>(FaultKind::kCrash)]) {
    const uint64_t count = tape_.Below(s.max_crashes + 1);
    for (uint64_t i = 0; i < count; ++i) {
      const int node = pick_node();
      const uint64_t at = tape_.Below(s.horizon_ns);
      if (node < 0) continue;
      ScheduleAt(at, -1, [this, node]() { Crash(node); });
    }
  }
  if (s.enabled[static_cast<size_t>(FaultKind::kHang)]) {
    const uint64_t count = tape_.Below(s.max_hangs + 1);
    for (uint64_t i = 0; i < count; ++i) {
      const int node = pick_node();
      const uint64_t at = tape_.Below(s.horizon_ns);
      const uint64_t duration = tape_.Between(100'000, 5'000'000);
      if (node < 0) continue;
      ScheduleAt(at, -1, [this, node, duration]() { Hang(node, duration); });
    }
  }
  if (s.enabled[static_cast<size_t>(FaultKind::kPartition)] && n > 1) {
    const uint64_t count = tape_.Below(s.max_partitions + 1);
    for (uint64_t i = 0; i < count; ++i) {
      std::vector<int> a, b;
      for (size_t node = 0; node < n; ++node) {
        (tape_.Below(2) == 0 ? a : b).push_back(static_cast<int>(node));
      }
      const uint64_t at = tape_.Below(s.horizon_ns);
      const uint64_t duration = tape_.Between(100'000, 5'000'000);
      if (a.empty() || b.empty()) continue;
      ScheduleAt(at, -1, [this, a, b, duration]() { Partition(a, b, duration); });
    }
  }
  for (size_t k = 0; k < kFaultKinds; ++k) {
    if (swarm_.ppm[k] != 0) {
      Record(-1, "swarm.rate", {{"kind", FaultKindName(static_cast<FaultKind>(k))},
                                {"ppm", uint64_t{swarm_.ppm[k]}}});
    }
  }
}

void World::ScheduleNodeFaults() {
  for (const FaultRule& r : options_.faults.rules) {
    switch (r.kind) {
      case FaultKind::kCrash:
        ScheduleAt(r.at_ns, -1, [this, node = r.src]() { Crash(node); });
        break;
      case FaultKind::kHang:
        ScheduleAt(r.at_ns, -1, [this, node = r.src, d = r.for_ns]() { Hang(node, d); });
        break;
      case FaultKind::kPartition:
        ScheduleAt(r.at_ns, -1, [this, a = r.side_a, b = r.side_b, d = r.for_ns]() {
          Partition(a, b, d);
        });
        break;
      default:
        break;
    }
  }
}

void World::Crash(uint32_t node) {
  TIDAL_ASSERT(node < nodes_.size());
  NodeState& st = nodes_[node];
  if (st.crashed) return;
  st.crashed = true;
  st.crashed_at_ns = now_ns_;
  ++injected_[static_cast<size_t>(FaultKind::kCrash)];
  Record(node, "fault.crash", {});
  if (transports_[node] != nullptr) transports_[node]->OnCrash();
  // Nothing will resume the node's coroutines again: free their frames now.
  envs_[node]->DestroyRoots();
}

void World::Hang(uint32_t node, uint64_t duration_ns) {
  TIDAL_ASSERT(node < nodes_.size());
  NodeState& st = nodes_[node];
  if (st.crashed) return;
  st.hung_until_ns = duration_ns == 0 ? UINT64_MAX : now_ns_ + duration_ns;
  ++injected_[static_cast<size_t>(FaultKind::kHang)];
  Record(node, "fault.hang", {{"for_ns", duration_ns}});
}

void World::Partition(const std::vector<int>& side_a, const std::vector<int>& side_b,
                      uint64_t duration_ns) {
  partitions_.push_back(
      {side_a, side_b, duration_ns == 0 ? UINT64_MAX : now_ns_ + duration_ns});
  ++injected_[static_cast<size_t>(FaultKind::kPartition)];
  Record(-1, "fault.partition", {{"a", uint64_t{side_a.size()}},
                                 {"b", uint64_t{side_b.size()}},
                                 {"for_ns", duration_ns}});
}

void World::Heal() {
  partitions_.clear();
  Record(-1, "fault.heal", {});
}

bool World::Linked(uint32_t a, uint32_t b) const {
  for (const PartitionState& p : partitions_) {
    if (p.until_ns <= now_ns_) continue;
    const auto in = [](const std::vector<int>& v, uint32_t x) {
      return std::find(v.begin(), v.end(), static_cast<int>(x)) != v.end();
    };
    if ((in(p.a, a) && in(p.b, b)) || (in(p.b, a) && in(p.a, b))) return false;
  }
  return true;
}

bool World::Hung(uint32_t node) const { return nodes_[node].hung_until_ns > now_ns_; }

void World::Attach(uint32_t node, SimTransport* transport) {
  TIDAL_ASSERT(node < transports_.size());
  transports_[node] = transport;
}

void World::Attach(uint32_t node, SimMessenger* messenger) {
  TIDAL_ASSERT(node < nodes_.size());
  auto [it, inserted] = messengers_.emplace(std::string(messenger->LocalName()), messenger);
  TIDAL_ASSERT_MSG(inserted, "two messenger endpoints with one name");
}

void World::Detach(SimMessenger* messenger) {
  auto it = messengers_.find(messenger->LocalName());
  if (it != messengers_.end() && it->second == messenger) messengers_.erase(it);
}

SimTransport* World::transport(uint32_t node) const {
  return node < transports_.size() ? transports_[node] : nullptr;
}

SimMessenger* World::messenger_by_name(std::string_view name) const {
  auto it = messengers_.find(name);
  return it == messengers_.end() ? nullptr : it->second;
}

bool World::ShouldInject(FaultKind kind, int src, int dst, uint64_t* amount) {
  const size_t k = static_cast<size_t>(kind);
  *amount = 0;
  if (!has_rules_[k] && swarm_.ppm[k] == 0) return false;  // the common case: no draw
  bool inject = false;
  for (FaultRule& r : options_.faults.rules) {
    if (r.kind != kind) continue;
    if (r.src != kAnyNode && r.src != src) continue;
    if (r.dst != kAnyNode && r.dst != dst) continue;
    ++r.matched;
    if (!inject && (r.nth == 0 || r.matched == r.nth)) {
      inject = true;
      *amount = r.by;
    }
  }
  if (!inject && swarm_.ppm[k] != 0 && tape_.ChancePpm(swarm_.ppm[k])) inject = true;
  if (inject) {
    ++injected_[k];
    Record(src, "fault.inject",
           {{"kind", FaultKindName(kind)}, {"dst", int64_t{dst}}, {"amount", *amount}});
  }
  return inject;
}

void World::Record(int64_t node, std::string_view op, std::initializer_list<TraceField> fields) {
  trace_.Record(now_ns_, node, op, tape_.position(), fields);
  if (options_.scheduling.chooser != nullptr && current_actor_ >= 0) {
    uint64_t& d = actor_digest_[current_actor_];
    d = MixString(Mix(d, static_cast<uint64_t>(node + 1)), op);
    for (const TraceField& f : fields) {
      d = MixString(d, f.key);
      d = f.is_string ? MixString(d, f.s) : Mix(d, f.u);
    }
  }
}

std::string World::FailureBanner() const {
  char buf[160];
  std::snprintf(buf, sizeof(buf),
                "tidal-sim: seed=%" PRIu64 " digest=%016" PRIx64 " events=%" PRIu64
                " virtual_time_ns=%" PRIu64,
                options_.seed, trace_.digest(), trace_.events(), now_ns_);
  std::string banner = buf;
  banner += "\nreplay: ";
  banner += options_.replay_command.empty()
                ? "tidal-sim run --seed " + std::to_string(options_.seed) + " (see the test)"
                : options_.replay_command;
  return banner;
}

}  // namespace tidal::sim
