#include "tidal/sim/world.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

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
  const uint64_t j = world_.options().schedule_jitter_ns;
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
                                        : Tape::FromBytes(options_.tape_bytes)) {
  TIDAL_ASSERT(options_.nodes > 0 && options_.nodes <= 4096);
  if (options_.record_tape) tape_.StartRecording();
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
  DrawSwarm();
  ScheduleNodeFaults();
}

World::~World() {
  Shutdown();
  SetAssertHook(previous_hook_);
}

void World::Shutdown() {
  for (auto& env : envs_) env->DestroyRoots();
  while (!queue_.empty()) queue_.pop();
  slots_.clear();
  free_slots_.clear();
  live_timers_.clear();
}

void World::Push(uint64_t time_ns, int32_t node, TimerId timer, Callback fn) {
  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  Slot& s = slots_[slot];
  s.node = node;
  s.timer = timer;
  s.fn = std::move(fn);
  queue_.push(Key{std::max(time_ns, now_ns_), seq_++, slot});
}

void World::ScheduleAt(uint64_t time_ns, int32_t node, Callback fn) {
  Push(time_ns, node, 0, std::move(fn));
}

TimerId World::ScheduleTimer(uint64_t time_ns, int32_t node, Callback fn) {
  const TimerId id = next_timer_++;
  live_timers_.insert(id);
  Push(time_ns, node, id, std::move(fn));
  return id;
}

bool World::CancelTimer(TimerId id) { return live_timers_.erase(id) != 0; }

bool World::Step() {
  if (queue_.empty()) return false;
  const Key key = queue_.top();
  queue_.pop();
  Slot& slot = slots_[key.slot];
  const int32_t node = slot.node;
  const TimerId timer = slot.timer;
  Callback fn = std::move(slot.fn);
  free_slots_.push_back(key.slot);
  if (timer != 0 && live_timers_.erase(timer) == 0) return true;  // canceled
  now_ns_ = std::max(now_ns_, key.time_ns);
  if (node >= 0) {
    const NodeState& st = nodes_[node];
    if (st.crashed) return true;  // a dead node runs nothing
    if (st.hung_until_ns > now_ns_) {
      if (st.hung_until_ns != UINT64_MAX) {
        if (timer != 0) live_timers_.insert(timer);
        Push(st.hung_until_ns, node, timer, std::move(fn));
      }
      return true;
    }
  }
  ++events_run_;
  fn();
  return true;
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
