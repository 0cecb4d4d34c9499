// World: a deterministic simulated cluster on one thread.
//
// N nodes, each with its own Env (virtual time with a per-node clock offset), a
// SimTransport that moves real bytes between the nodes' memory with a latency/bandwidth
// model, and a SimMessenger. One event queue ordered by (virtual time, sequence) and one
// Tape behind every nondeterministic choice: same tape, same run, bit for bit. Faults
// come from a FaultPlan (scripted rules + per-seed swarm rates).
//
// Every event goes to the Trace (digest always, JSON lines when enabled). A failed
// TIDAL_ASSERT while a World runs prints the seed, the digest and the replay command.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <map>
#include <queue>
#include <unordered_set>
#include <string>
#include <vector>

#include "tidal/callback.h"
#include "tidal/env.h"
#include "tidal/sim/fault_plan.h"
#include "tidal/sim/tape.h"
#include "tidal/sim/trace.h"

namespace tidal::sim {

class World;
class SimTransport;
class SimMessenger;

struct LinkModel {
  uint64_t latency_ns = 2'000;          // one way
  uint64_t bytes_per_us = 25'000;       // 25 GB/s
  uint64_t message_latency_ns = 5'000;  // control messages
  uint64_t unreachable_detect_ns = 50'000;  // a transfer to a crashed peer fails after this
};

// Bugs the simulator can plant on purpose, so tests prove the checkers catch them (a
// checker that cannot fail is a defect). Each mirrors a bug seen in the field.
enum class PlantedBug : uint8_t {
  kNone,
  kShortAsComplete,  // a short transfer is reported OK (a write "complete" before it landed)
  kIgnoreRemoteKey,  // the target does not check the remote key or window
  kIgnoreWindow,     // the target checks the key of the region an access starts in, not
                     // whether the access ends inside it
  kWriteOffByOne,    // a WRITE lands one byte late (its last byte is lost), reported OK
  kCompleteBeforeVisible,  // a WRITE completes before its data lands at the target
};
inline constexpr PlantedBug kPlantedBugs[] = {
    PlantedBug::kNone,          PlantedBug::kShortAsComplete, PlantedBug::kIgnoreRemoteKey,
    PlantedBug::kIgnoreWindow,  PlantedBug::kWriteOffByOne,   PlantedBug::kCompleteBeforeVisible};
std::string_view PlantedBugName(PlantedBug bug);
Result<PlantedBug> ParsePlantedBug(std::string_view name);

// Freedoms the transport contract (transport.h, "Allowed") leaves a real backend, which
// SimTransport takes under tape draws so that code leaning on luck fails in the
// simulator first (docs/architecture.md: never kinder than the contract). A rate is the
// chance per task or notification in parts per million. Setting one to 0 is for bisecting a
// failure to one allowance, never for making a test pass.
struct SimAllowances {
  // A task's data step (and with it its completion) runs up to task_jitter_max_ns after
  // its place in the link's order: tasks on one link and across links land and complete
  // in any order.
  uint32_t task_jitter_ppm = 250'000;
  uint64_t task_jitter_max_ns = 20'000;
  // The completion is reported up to completion_delay_max_ns after the data landed.
  uint32_t completion_delay_ppm = 250'000;
  uint64_t completion_delay_max_ns = 30'000;
  // A notification is not queued behind the tasks in flight on its link: it may overtake
  // writes submitted before it that have not completed yet.
  uint32_t notify_overtake_ppm = 500'000;
  // Every notification takes an extra delay drawn in [0, this]: notifications to one peer
  // and across peers arrive in any order.
  uint64_t notify_jitter_max_ns = 20'000;
};

// How ready work is ordered (docs/harness.md, "Three ways to explore"). An actor is a
// node, or the world itself (its own events: data steps, completions, deliveries, faults).
enum class Scheduling : uint8_t {
  kSwarm,   // every Post draws a delay in [0, schedule_jitter_ns]: random interleavings
  kPct,     // PCT: each actor draws a priority, the highest-priority ready actor runs (its
            // oldest event first), and pct_depth - 1 change points, placed at random steps
            // among the first pct_steps, drop the running actor below every other
  kChoice,  // exploration: whenever two or more actors have work ready at one instant,
            // which of them runs is one tape draw (the explorer enumerates it)
};
std::string_view SchedulingName(Scheduling mode);
Result<Scheduling> ParseScheduling(std::string_view name);  // swarm, pct, choice

struct SchedulingOptions {
  Scheduling mode = Scheduling::kSwarm;
  uint32_t pct_depth = 3;       // d: the bugs of depth d are found with probability >= 1/(n k^(d-1))
  uint64_t pct_steps = 20'000;  // k: change points fall among the first k steps
  // Exploration only (explore.h): decides every bounded draw of the world's tape, and is
  // called at every step boundary (before the next event is picked; it may Halt the world).
  TapeChooser* chooser = nullptr;
  std::function<void(World&)> before_step;
  // Exploration only: the fingerprint abstracts time (explore.h, "time abstraction"). An
  // actor's history leaves out when its events ran and the values of timing draws
  // (TapeChooser::IsTiming); what is pending is hashed relative to now, as are the links'
  // busy-until times; absolute time is not hashed.
  bool abstract_time = false;
};
// What every WorldOptions made on this thread starts with: lets a tool pick the mode for
// campaigns that build their worlds inside (ScopedScheduling sets it for a scope).
const SchedulingOptions& DefaultScheduling();
class ScopedScheduling {
 public:
  explicit ScopedScheduling(SchedulingOptions options);
  ~ScopedScheduling();
  ScopedScheduling(const ScopedScheduling&) = delete;
  ScopedScheduling& operator=(const ScopedScheduling&) = delete;

 private:
  SchedulingOptions previous_;
};

struct WorldOptions {
  uint64_t seed = 1;
  size_t nodes = 2;
  LinkModel link;
  FaultPlan faults;
  uint64_t schedule_jitter_ns = 50;    // ready work is ordered by a tape draw in [0, j]
  uint64_t max_clock_offset_ns = 1'000;  // per-node clock offsets drawn in [0, this]
  uint64_t max_virtual_ns = 60'000'000'000ULL;  // RunUntil gives up past this
  bool trace_lines = false;            // keep JSON lines (for --trace-out)
  std::string replay_command;          // printed on failure
  // Replaces the seed with these bytes as the tape (fuzzing); empty: use the seed.
  std::vector<uint8_t> tape_bytes;
  // Records every draw from the first (tape().recorded()): the shrinker's input.
  bool record_tape = false;
  PlantedBug planted_bug = PlantedBug::kNone;
  SimAllowances allowances;
  SchedulingOptions scheduling = DefaultScheduling();
};

class SimEnv final : public Env {
 public:
  SimEnv(World& world, uint32_t node, uint64_t clock_offset_ns);
  uint64_t NowNs() override;
  uint64_t RandomU64() override;
  void Post(Callback fn) override;
  TimerId ScheduleAfter(uint64_t delay_ns, Callback fn) override;
  bool CancelTimer(TimerId id) override;
  bool RunUntil(const std::function<bool()>& done) override;
  std::string_view Name() const override { return name_; }
  uint32_t node() const { return node_; }

 private:
  World& world_;
  uint32_t node_;
  uint64_t clock_offset_ns_;
  std::string name_;
};

struct NodeState {
  bool crashed = false;
  uint64_t crashed_at_ns = 0;
  uint64_t hung_until_ns = 0;  // 0: not hung; UINT64_MAX: forever
  uint64_t incarnation = 1;
};

class World {
 public:
  explicit World(WorldOptions options);
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  const WorldOptions& options() const { return options_; }
  size_t size() const { return envs_.size(); }
  SimEnv& env(size_t node) { return *envs_[node]; }
  Tape& tape() { return tape_; }
  Trace& trace() { return trace_; }
  uint64_t NowNs() const { return now_ns_; }
  uint64_t digest() const { return trace_.digest(); }
  uint64_t events_run() const { return events_run_; }
  const NodeState& node_state(size_t node) const { return nodes_[node]; }
  bool alive(size_t node) const { return !nodes_[node].crashed; }

  // The event queue. `node` owns the event (-1 for world events); a crashed node's
  // events are dropped, a hung node's wait until it resumes.
  void ScheduleAt(uint64_t time_ns, int32_t node, Callback&& fn);
  // A timer that can be canceled (SimEnv::ScheduleAfter).
  TimerId ScheduleTimer(uint64_t time_ns, int32_t node, Callback&& fn);
  bool CancelTimer(TimerId id);

  // Runs events until `done()` holds. False if the queue drained first or virtual time
  // passed options.max_virtual_ns.
  bool RunUntil(const std::function<bool()>& done);
  // Runs every event up to virtual time `time_ns`.
  void RunUntilTime(uint64_t time_ns);
  // Runs until nothing is left (or max_virtual_ns).
  bool RunUntilIdle();
  // Destroys every node's root coroutines and drops all pending events. Call before
  // destroying what those coroutines use (SimFabric does this first in its destructor).
  void Shutdown();
  // Drops every pending event (not the roots): the run ends here, as if nothing were left
  // to do (RunUntil returns false). The explorer halts a run that met a known state.
  void Halt();

  // Node faults (also driven by the fault plan). Crash is fail-stop: the node's pending
  // work is dropped, its root coroutines destroyed, its transport and messenger stop
  // answering. Hang freezes the node's executor (its memory stays reachable by one-sided
  // transfers, as a real NIC's would). Partition cuts links in both directions.
  void Crash(uint32_t node);
  void Hang(uint32_t node, uint64_t duration_ns);  // 0: forever
  void Partition(const std::vector<int>& side_a, const std::vector<int>& side_b,
                 uint64_t duration_ns);  // 0: forever
  void Heal();
  bool Linked(uint32_t a, uint32_t b) const;  // false across an active partition
  bool Hung(uint32_t node) const;
  // Alive and not hung for good: the node will run its work eventually.
  bool Responsive(uint32_t node) const {
    return !nodes_[node].crashed && nodes_[node].hung_until_ns != UINT64_MAX;
  }

  // Transports and messengers register here so peers can find each other.
  void Attach(uint32_t node, SimTransport* transport);
  void Attach(uint32_t node, SimMessenger* messenger);
  void Detach(SimMessenger* messenger);
  SimTransport* transport(uint32_t node) const;
  SimMessenger* messenger_by_name(std::string_view name) const;

  // Fault decisions: scripted rules first, then swarm rates. Each call is a tape draw
  // when a swarm rate is on for that kind, so faults are part of the replayed tape.
  bool ShouldInject(FaultKind kind, int src, int dst, uint64_t* amount);
  const SwarmDraw& swarm() const { return swarm_; }
  uint64_t injected(FaultKind kind) const { return injected_[static_cast<size_t>(kind)]; }

  // Records an event in the trace at the current virtual time.
  void Record(int64_t node, std::string_view op, std::initializer_list<TraceField> fields);

  // Printed on a failed assertion and by failing tests: seed, digest, replay command.
  std::string FailureBanner() const;

  // A hash of the world's state at a step boundary, for the explorer's state hashing:
  // virtual time, node states, fault-rule counters, every pending event (time relative to
  // now, owner, order) and, per actor, a digest of everything it did: each event's time,
  // the tape draws and the trace records it made. Stable across runs in one process (no
  // addresses), and each pending event's origin (who created it, at which point of its
  // history: two events due at one instant for one actor are told apart by what they
  // carry, a message from one peer or from another). What it leaves out is the
  // explorer's assumption (explore.h). Under
  // SchedulingOptions::abstract_time: no absolute time and no event times (above).
  uint64_t Fingerprint() const;

 private:
  // The heap holds small keys; the callbacks wait in a slab, so sifting the heap never
  // moves a callback. A key is 16 bytes: the time, and the sequence number above the slab
  // index in one word, so (time, order) compares like (time, seq) (seq is unique).
  static constexpr unsigned kSlotBits = 28;  // at most 2^28 events pending at once
  static constexpr uint64_t kMaxSeq = (uint64_t{1} << (64 - kSlotBits)) - 1;  // 2^36 events
  struct Key {
    uint64_t time_ns;
    uint64_t order;  // seq << kSlotBits | slot
    uint64_t seq() const { return order >> kSlotBits; }
    uint32_t slot() const { return static_cast<uint32_t>(order & ((uint64_t{1} << kSlotBits) - 1)); }
    bool operator<(const Key& o) const {
      return time_ns != o.time_ns ? time_ns < o.time_ns : order < o.order;
    }
  };
  struct Slot {
    int32_t node = -1;
    uint32_t actor = 0;  // who the scheduler treats it as (ActorOf)
    TimerId timer = 0;  // 0 if not cancelable
    // Exploration only (0 otherwise): where the event came from, standing in for what its
    // callback holds (Fingerprint): the creating actor, its history so far, the data
    // draws its running event made before the push and the push's place in that event.
    uint64_t origin = 0;
    Callback fn;
  };
  // origin: 0 for a new event (exploration computes it), else the origin it keeps.
  void Push(uint64_t time_ns, int32_t node, TimerId timer, Callback&& fn, uint64_t origin = 0);
  struct PartitionState {
    std::vector<int> a, b;
    uint64_t until_ns;
  };
  bool Step();
  // Non-swarm scheduling: takes the event to run next off the queue (false: none left
  // to run at this step, only canceled timers or a dead node's work were dropped).
  bool PickReady(Key* out);
  void DrawPct();
  void DrawSwarm();
  void ScheduleNodeFaults();

  WorldOptions options_;
  Tape tape_;
  Trace trace_;
  uint64_t now_ns_ = 0;
  uint64_t seq_ = 0;
  uint64_t events_run_ = 0;
  TimerId next_timer_ = 1;
  // The event queue, in one of two layouts; both pop in (time, seq) order, which is unique,
  // so the layout never changes which event runs next. Canceled timers stay in it until
  // they come due (CancelTimer is O(1)); when they are most of it, Compact() drops them at
  // once, so long worlds full of canceled deadlines keep a small queue.
  //  - Swarm mode (`monotone`): a radix queue on time. Nothing is pushed before the time
  //    last popped (a push is at now or later), so a key goes to the bucket of the highest
  //    bit in which its time differs from that time: a push is an append, a pop takes the
  //    front of bucket 0 (the keys due at that time, kept in seq order) and, when it is
  //    empty, spreads the lowest non-empty bucket into lower ones. A key moves down at
  //    most 64 times in all, never sifting. A push earlier than the last pop (only after
  //    a canceled timer was popped ahead of now, or a look at top() past a RunUntilTime
  //    limit) re-buckets everything once: correct, and rare.
  //  - Otherwise (PCT, exploration, which pop a ready set and push back the rest): a
  //    4-ary min-heap on (time, seq) (a node's four children share a cache line).
  class EventQueue {
   public:
    explicit EventQueue(bool monotone) : monotone_(monotone) {}
    bool empty() const { return size_ == 0; }
    size_t size() const { return size_; }
    const Key& top() {
      if (!monotone_) return heap_.front();
      if (head_ == bucket0_.size()) Refill();
      return bucket0_[head_];
    }
    void clear() {
      heap_.clear();
      bucket0_.clear();
      head_ = 0;
      for (std::vector<Key>& b : buckets_) b.clear();
      least_.fill(UINT64_MAX);
      nonempty_ = 0;
      size_ = 0;
    }
    void push(const Key& k) {
      ++size_;
      if (!monotone_) {
        HeapPush(k);
        return;
      }
      if (k.time_ns < last_ns_) Rebucket(k.time_ns);
      Place(k);
    }
    void pop() {
      --size_;
      if (!monotone_) {
        HeapPop();
        return;
      }
      if (head_ == bucket0_.size()) Refill();
      if (++head_ == bucket0_.size()) {
        bucket0_.clear();
        head_ = 0;
      }
    }
    // Calls fn(key) for every key, in no particular order.
    template <typename Fn>
    void ForEach(Fn&& fn) const {
      for (const Key& k : heap_) fn(k);
      for (size_t i = head_; i < bucket0_.size(); ++i) fn(bucket0_[i]);
      for (const std::vector<Key>& b : buckets_) {
        for (const Key& k : b) fn(k);
      }
    }
    template <typename Pred>
    void RemoveIf(Pred pred) {
      if (!monotone_) {
        heap_.erase(std::remove_if(heap_.begin(), heap_.end(), pred), heap_.end());
        for (size_t i = heap_.size() / 4 + 1; i-- > 0;) SiftDown(i);  // heapify, O(n)
        size_ = heap_.size();
        return;
      }
      bucket0_.erase(bucket0_.begin(), bucket0_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
      bucket0_.erase(std::remove_if(bucket0_.begin(), bucket0_.end(), pred), bucket0_.end());
      size_ = bucket0_.size();
      for (size_t b = 0; b < buckets_.size(); ++b) {
        std::vector<Key>& v = buckets_[b];
        v.erase(std::remove_if(v.begin(), v.end(), pred), v.end());
        size_ += v.size();
        least_[b] = UINT64_MAX;
        for (const Key& k : v) least_[b] = std::min(least_[b], k.time_ns);
        if (v.empty()) nonempty_ &= ~(uint64_t{1} << b);
      }
    }

   private:
    // Bucket b (0..63) of buckets_ holds the keys whose time differs from last_ns_ first
    // in bit b; bucket0_ those due at last_ns_, from head_ on, in seq order.
    void Place(const Key& k) {
      const uint64_t diff = k.time_ns ^ last_ns_;
      if (diff == 0) {
        bucket0_.push_back(k);  // its seq is the newest: the order stays sorted
        return;
      }
      const unsigned b = 63 - static_cast<unsigned>(__builtin_clzll(diff));
      buckets_[b].push_back(k);
      least_[b] = std::min(least_[b], k.time_ns);
      nonempty_ |= uint64_t{1} << b;
    }
    void Refill() {
      // bucket0_ is used up: the lowest non-empty bucket holds the earliest keys.
      bucket0_.clear();
      head_ = 0;
      const unsigned b = static_cast<unsigned>(__builtin_ctzll(nonempty_));
      std::vector<Key> spread;
      spread.swap(buckets_[b]);
      nonempty_ &= ~(uint64_t{1} << b);
      last_ns_ = least_[b];
      least_[b] = UINT64_MAX;
      for (const Key& k : spread) Place(k);
      SortBucket0();
      spread.clear();
      spread.swap(buckets_[b]);  // keep the capacity (bucket b is empty now)
    }
    void Rebucket(uint64_t time_ns) {
      std::vector<Key> all(bucket0_.begin() + static_cast<std::ptrdiff_t>(head_), bucket0_.end());
      for (std::vector<Key>& b : buckets_) {
        all.insert(all.end(), b.begin(), b.end());
        b.clear();
      }
      bucket0_.clear();
      head_ = 0;
      least_.fill(UINT64_MAX);
      nonempty_ = 0;
      last_ns_ = time_ns;
      for (const Key& k : all) Place(k);
      SortBucket0();
    }
    void SortBucket0() {
      std::sort(bucket0_.begin(), bucket0_.end(),
                [](const Key& a, const Key& b) { return a.order < b.order; });
    }
    void HeapPush(const Key& k) {
      size_t i = heap_.size();
      heap_.push_back(k);
      while (i > 0) {
        const size_t parent = (i - 1) / 4;
        if (!(k < heap_[parent])) break;
        heap_[i] = heap_[parent];
        i = parent;
      }
      heap_[i] = k;
    }
    void HeapPop() {
      const Key last = heap_.back();
      heap_.pop_back();
      if (heap_.empty()) return;
      heap_[0] = last;
      SiftDown(0);
    }
    void SiftDown(size_t i) {
      const size_t n = heap_.size();
      if (i >= n) return;
      const Key k = heap_[i];
      for (;;) {
        const size_t first = 4 * i + 1;
        if (first >= n) break;
        size_t best = first;
        const size_t end = std::min(first + 4, n);
        for (size_t c = first + 1; c < end; ++c) {
          if (heap_[c] < heap_[best]) best = c;
        }
        if (!(heap_[best] < k)) break;
        heap_[i] = heap_[best];
        i = best;
      }
      heap_[i] = k;
    }

    bool monotone_;
    size_t size_ = 0;
    std::vector<Key> heap_;  // not monotone
    // Monotone: the radix buckets.
    uint64_t last_ns_ = 0;
    std::vector<Key> bucket0_;
    size_t head_ = 0;
    std::array<std::vector<Key>, 64> buckets_;
    std::array<uint64_t, 64> least_ = Unset();  // the earliest time in each bucket
    uint64_t nonempty_ = 0;  // bit b: buckets_[b] is not empty
    static std::array<uint64_t, 64> Unset() {
      std::array<uint64_t, 64> a;
      a.fill(UINT64_MAX);
      return a;
    }
  };
  void Compact();
  EventQueue queue_;
  uint64_t canceled_in_queue_ = 0;  // canceled timers still in queue_
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_slots_;
  // Timers scheduled, not fired, not canceled: one bit per timer id ever handed out (ids
  // are dense from 1), so arming and canceling a timer never allocates or hashes.
  std::vector<uint64_t> live_timers_;
  bool TimerLive(TimerId id) const {
    return id / 64 < live_timers_.size() && (live_timers_[id / 64] >> (id % 64) & 1) != 0;
  }
  void SetTimerLive(TimerId id) {
    if (id / 64 >= live_timers_.size()) live_timers_.resize(id / 64 + 1, 0);
    live_timers_[id / 64] |= uint64_t{1} << (id % 64);
  }
  bool ClearTimerLive(TimerId id) {  // false if it was not live
    if (!TimerLive(id)) return false;
    live_timers_[id / 64] &= ~(uint64_t{1} << (id % 64));
    return true;
  }
  std::vector<std::unique_ptr<SimEnv>> envs_;
  std::vector<NodeState> nodes_;
  std::vector<SimTransport*> transports_;
  std::map<std::string, SimMessenger*, std::less<>> messengers_;
  std::vector<PartitionState> partitions_;
  SwarmDraw swarm_;
  std::array<uint64_t, kFaultKinds> injected_{};
  std::array<bool, kFaultKinds> has_rules_{};
  AssertHookEntry previous_hook_;
  // Scheduling modes and the fingerprint.
  // Actors: 0 the world's own events, n + 1 node n, nodes + 1 + n the world events node n
  // set going (a transfer's data step and completion, a message's delivery) and those
  // they set going in turn. So work of unrelated lineages is told apart.
  uint32_t ActorFor(int32_t node) const;
  std::vector<uint64_t> actor_digest_;
  int64_t current_actor_ = -1;          // the actor whose event runs now (-1: none)
  // Exploration: an event's origin (Slot::origin). The running event's first draw and
  // pushes so far; pushes made outside any event (a driver's set-up) are counted apart.
  uint64_t OriginOfPush();
  uint64_t event_first_draw_ = 0;
  uint64_t event_pushes_ = 0;
  uint64_t outside_pushes_ = 0;
  std::vector<uint64_t> pct_priority_;  // per actor
  std::vector<uint64_t> pct_changes_;   // steps at which the running actor drops (sorted)
  size_t pct_next_change_ = 0;
  uint64_t steps_ = 0;
};

}  // namespace tidal::sim
