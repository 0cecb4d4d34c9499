// The store master: metadata only (objects, mounted segments, placement, leases, pins,
// eviction, reclaim, client liveness). It never touches object data.
//
// MasterState is the pure state machine: every call takes the current time and returns at
// once, so it is unit-tested without a simulator. MasterService serves it over a Messenger
// endpoint (rpc.h frames) on one Env and drives its periodic sweep with Env timers.
//
// Thread safety: neither class is thread-safe; both run on one Env's executor.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "tidal/env.h"
#include "tidal/messenger.h"
#include "tidal/status.h"
#include "tidal/store/allocator.h"
#include "tidal/store/rpc.h"
#include "tidal/store/types.h"

namespace tidal::store {

// Planted bugs: deliberate defects the bug zoo (tidal-sim zoo) switches on one at a time
// through MasterOptions::planted_bug. Default kNone; nothing but the zoo and its tests sets it.
enum class MasterBug : uint8_t {
  kNone,
  kHolderCloseLosesObject,  // field bug 9: a holder's unmount drops objects other
                            // replicas still hold
  kFreesLeasedMemory,       // Remove frees memory under a running lease at once
  kIgnoresGeneration,       // field bug 7: a get naming an older generation is answered
                            // with the current object's replicas
  kNeverReclaimsPuts,       // field bug 8: an unfinished put moves on only at PutEnd or
                            // PutRevoke (no reclaim for a dead writer or the put timeout)
  kNoEvictOnPut,            // field bug 12: a put that does not fit fails with
                            // NO_AVAILABLE_HANDLE instead of evicting until it fits
};
inline constexpr MasterBug kMasterBugs[] = {
    MasterBug::kNone,          MasterBug::kHolderCloseLosesObject, MasterBug::kFreesLeasedMemory,
    MasterBug::kIgnoresGeneration, MasterBug::kNeverReclaimsPuts,  MasterBug::kNoEvictOnPut};
std::string_view MasterBugName(MasterBug bug);
Result<MasterBug> ParseMasterBug(std::string_view name);

struct MasterOptions {
  uint64_t lease_ttl_ns = 10'000'000'000ULL;    // granted by every GetReplicaList
  double high_watermark = 0.90;                 // eviction starts above this use
  double evict_ratio = 0.05;                    // share of objects one eviction pass removes
  uint64_t client_ttl_ns = 5'000'000'000ULL;    // no heartbeat for this long: client dead
  uint64_t put_timeout_ns = 30'000'000'000ULL;  // an unfinished put is reclaimed after this
  // Memory of a reclaimed or revoked put is reused only after this, so a late write from
  // its writer can never land in a newer object.
  uint64_t reclaim_quarantine_ns = 1'000'000'000ULL;
  uint64_t sweep_interval_ns = 200'000'000ULL;  // liveness, reclaim, deferred frees
  MasterBug planted_bug = MasterBug::kNone;     // the bug zoo only
};

// Durable storage for the master's state, so that a restarted master rebuilds it (README:
// "Master restart"). A record is a key and opaque bytes. Put and Erase are synchronous:
// when they return, the change survives a crash of the master's process (a journal that
// cannot make a change durable must stop the process, never carry on without it).
//
// Implementations: MemoryJournal below (owned outside the master, it survives the master
// being destroyed and built again: the simulator's durable storage); FileJournal in
// tools/tidal-master/file_journal.h (an append-only file, for tidal-master --state-dir).
class MasterJournal {
 public:
  virtual ~MasterJournal() = default;
  virtual void Put(const std::string& key, std::string value) = 0;
  virtual void Erase(const std::string& key) = 0;
  // Every record, in key order.
  virtual std::map<std::string, std::string> Load() const = 0;
};

class MemoryJournal final : public MasterJournal {
 public:
  void Put(const std::string& key, std::string value) override {
    records_[key] = std::move(value);
    ++writes_;
  }
  void Erase(const std::string& key) override {
    records_.erase(key);
    ++writes_;
  }
  std::map<std::string, std::string> Load() const override { return records_; }
  size_t size() const { return records_.size(); }
  uint64_t writes() const { return writes_; }

 private:
  std::map<std::string, std::string> records_;
  uint64_t writes_ = 0;
};

struct MasterStats {
  uint64_t incarnation = 1;  // 1 + how many times the state was rebuilt from its journal
  uint64_t objects = 0;
  uint64_t puts_started = 0;
  uint64_t puts_ended = 0;
  uint64_t puts_revoked = 0;
  uint64_t puts_reclaimed = 0;  // writer died or put timed out
  uint64_t evicted = 0;
  uint64_t removed = 0;
  uint64_t leases_granted = 0;
  uint64_t lost = 0;  // objects whose last replica went with its holder
  uint64_t recovered_objects = 0;  // complete objects rebuilt from the journal
  uint64_t clients_died = 0;
  uint64_t reservations = 0;  // held now (put reservations)
  uint64_t reservations_granted = 0;
  uint64_t reservations_released = 0;   // given back by their client
  uint64_t reservations_reclaimed = 0;  // client dead, expired, mount gone, master restart
  uint64_t puts_committed = 0;          // one-RPC puts (PutCommit)
  uint64_t capacity_bytes = 0;  // of live mounts
  uint64_t used_bytes = 0;      // allocated, including frees deferred by leases
};

class MasterState {
 public:
  explicit MasterState(MasterOptions options = {});

  // Durability (README: "Master restart"). Rebuilds the state from `journal`'s records and
  // journals every change of durable state to it from then on. Call once, on a fresh
  // state, before anything else; an empty journal starts an empty store (incarnation 1).
  // What is rebuilt: mounts (and their owners, alive from `now_ns` on for a full
  // client_ttl_ns), complete objects at their exact replica ranges, generations (the
  // counter never goes back), frees still deferred, lost-object reports. What is not:
  // leases (void: the memory they could read is not reused before now_ns + lease_ttl_ns),
  // puts being written (reclaimed: their PutEnd fails with OBJECT_NOT_FOUND; their memory
  // is quarantined), the RPC answer cache. CORRUPT_INPUT naming the record when a record
  // does not decode or contradicts another (then the state is unusable).
  Status Recover(MasterJournal* journal, uint64_t now_ns);
  uint64_t incarnation() const { return incarnation_; }

  // Registers `client` (or refreshes it). Returns the ids of the mounts the master holds
  // for it, so a client that was declared dead learns it must mount again.
  std::vector<uint64_t> Heartbeat(const std::string& client, uint64_t now_ns);

  // Adds [base, base+size) of segment `segment` (an engine segment name) owned by
  // `client`. INVALID_PARAMS for size 0, base 0, a wrapping range, or an overlap with a
  // range already mounted for that segment.
  Result<uint64_t> Mount(const std::string& client, const std::string& segment, uint64_t base,
                         uint64_t size, uint64_t now_ns);
  // Graceful unmount: no new placements; objects keep their other replicas; objects whose
  // only replicas were here are removed. Returns how long (ns) the owner must keep the
  // memory registered for readers whose leases still run. SEGMENT_NOT_FOUND for a mount
  // id that `client` does not own.
  Result<uint64_t> Unmount(const std::string& client, uint64_t mount_id, uint64_t now_ns);

  // Places `replica_num` replicas on distinct segments and records the object as being
  // written. INVALID_KEY (empty or too long key), INVALID_PARAMS (size 0, replica_num 0 or
  // above kMaxReplicas), OBJECT_ALREADY_EXISTS (complete or being written),
  // NO_AVAILABLE_HANDLE (fewer segments than replicas, or no space even after eviction).
  Result<std::pair<uint64_t, std::vector<ReplicaLocation>>> PutStart(const std::string& client,
                                                                     const std::string& key,
                                                                     uint64_t size,
                                                                     const ReplicateConfig& config,
                                                                     uint64_t now_ns);
  // Put reservations: memory placed ahead of the key, so that a put is one RPC (PutCommit)
  // after its WRITE instead of PutStart and PutEnd around it. Reserve places up to `count`
  // reservations of `size` bytes, each with config.replica_num replicas on distinct
  // segments, for `client` (the first one evicting like PutStart when space is short, the
  // rest only where space is free; at most kMaxReservationsPerCall a call and
  // kMaxReservationsPerClient held). `release` gives back reservations of the client's it
  // will not use (others are ignored). A reservation is the client's to write until
  // reservation_valid_ns() after it asked; its memory is reused only after that plus
  // options.reclaim_quarantine_ns, however it ends (client dead, mount gone, master
  // restart), so a write the client started while it was valid never lands in a newer
  // object. INVALID_PARAMS (size 0, replica_num or count out of range),
  // NO_AVAILABLE_HANDLE (no room for even one, or the client holds the most it may).
  struct Reserved {
    uint64_t id = 0;  // unique for the life of the store, across restarts
    std::vector<ReplicaLocation> replicas;
  };
  static constexpr uint32_t kMaxReservationsPerCall = 64;
  static constexpr uint32_t kMaxReservationsPerClient = 256;
  Result<std::vector<Reserved>> Reserve(const std::string& client, uint64_t size,
                                        const ReplicateConfig& config, uint32_t count,
                                        const std::vector<uint64_t>& release, uint64_t now_ns);
  // How long after asking a client may write into a reservation: the shortest of the put
  // timeout, the client TTL and the lease TTL (what bounds a reclaim's quarantine).
  uint64_t reservation_valid_ns() const;
  // Makes `key` a complete object of `size` bytes at the reservation's replicas, with a new
  // generation (returned); the reservation is used up. INVALID_KEY; OBJECT_NOT_FOUND (the
  // reservation is not this client's: reclaimed, released, used or never granted);
  // INVALID_PARAMS (size or config.replica_num other than the reservation's);
  // OBJECT_ALREADY_EXISTS (the reservation stays the client's).
  Result<uint64_t> PutCommit(const std::string& client, const std::string& key,
                             uint64_t reservation, uint64_t size, const ReplicateConfig& config,
                             uint64_t now_ns);
  // Gives reservations back (ids that are not the client's are ignored); their memory is
  // reused after the quarantine.
  void ReleaseReservations(const std::string& client, const std::vector<uint64_t>& ids,
                           uint64_t now_ns);

  // Marks the object complete. OBJECT_NOT_FOUND if that generation is not being written
  // (it was reclaimed, revoked or removed). OK again for a generation already complete.
  Status PutEnd(const std::string& client, const std::string& key, uint64_t generation,
                uint64_t now_ns);
  // Drops an unfinished put. OBJECT_NOT_FOUND if that generation is not being written.
  Status PutRevoke(const std::string& client, const std::string& key, uint64_t generation,
                   uint64_t now_ns);

  // The complete object's replicas and a lease of options.lease_ttl_ns. OBJECT_NOT_FOUND
  // (missing, or `generation` != 0 and not the current one; for an object lost with the
  // last holder of its replicas the message says "lost" and names the generation, until
  // the key is put again), REPLICA_IS_NOT_READY (being written), INVALID_KEY.
  Result<std::pair<ObjectInfo, std::vector<ReplicaLocation>>> GetReplicaList(const std::string& key,
                                                                             uint64_t generation,
                                                                             uint64_t now_ns);
  // Size and generation of a complete object (no lease). OBJECT_NOT_FOUND,
  // REPLICA_IS_NOT_READY, INVALID_KEY.
  Result<ObjectInfo> Stat(const std::string& key, uint64_t now_ns) const;
  // OBJECT_NOT_FOUND; REPLICA_IS_NOT_READY (being written, not force); OBJECT_HAS_LEASE
  // (a lease runs or the object is hard-pinned, not force). Force removes anyway; memory
  // under a running lease is freed when the lease ends.
  Status Remove(const std::string& key, bool force, uint64_t now_ns);

  // Periodic work: dead clients, timed-out puts, deferred frees, watermark eviction.
  void Tick(uint64_t now_ns);

  // Checks the state's invariants: every replica lies inside a live mount; a complete
  // object has replicas, on distinct segments; every allocated byte of every mount belongs
  // to exactly one replica or deferred free. INTERNAL_ERROR naming the first violation.
  // O(objects + mounts); for tests, checkers and debug builds (Tick runs it under
  // TIDAL_DASSERT).
  Status CheckInvariants() const;

  // Called when an object leaves without a Remove: "evicted", "lost" (its last replica's
  // holder went away) or "reclaimed" (an unfinished put). For checkers and tools.
  using Observer =
      std::function<void(const std::string& key, uint64_t generation, std::string_view reason)>;
  void SetObserver(Observer observer) { observer_ = std::move(observer); }

  // Introspection for tests, checkers and tools.
  MasterStats stats() const;
  const MasterOptions& options() const { return options_; }
  // Replicas of a key (complete or not), or empty.
  std::vector<ReplicaLocation> Replicas(const std::string& key) const;
  bool ClientAlive(const std::string& client) const { return clients_.count(client) != 0; }
  // Until when memory of `segment` mounted again after its holder was declared dead stays
  // out of placement (the last lease on what the store held there); 0 when none.
  uint64_t SegmentFenceNs(const std::string& segment) const {
    auto it = fences_.find(segment);
    return it == fences_.end() ? 0 : it->second;
  }

 private:
  struct Replica {
    uint64_t mount = 0;
    uint64_t offset = 0;
  };
  struct Object {
    uint64_t size = 0;
    uint64_t generation = 0;
    bool complete = false;
    std::string writer;
    uint64_t started_ns = 0;
    std::vector<Replica> replicas;
    uint64_t lease_until_ns = 0;
    uint64_t last_access_ns = 0;
    bool hard_pin = false;
    uint64_t soft_pin_ttl_ns = 0;
    uint64_t soft_pin_until_ns = 0;
  };
  struct MountState {
    std::string client;
    std::string segment;
    uint64_t base = 0;
    uint64_t size = 0;
    RangeAllocator alloc;
    bool draining = false;
    // No placements before this: the memory may still be read under leases granted before
    // the client was (perhaps wrongly) declared dead and mounted it again.
    uint64_t usable_after_ns = 0;
  };
  struct Deferred {
    uint64_t id;
    uint64_t at_ns;
    uint64_t mount;
    uint64_t offset;
    uint64_t size;
  };
  struct Client {
    uint64_t last_seen_ns = 0;
    uint32_t reservations = 0;  // held
  };
  struct ReservationState {
    std::string client;
    uint64_t size = 0;
    uint64_t granted_ns = 0;
    std::vector<Replica> replicas;
  };

  void Touch(const std::string& client, uint64_t now_ns);
  void Notify(const std::string& key, uint64_t generation, std::string_view reason);
  std::vector<ReplicaLocation> Locations(const Object& o) const;
  std::vector<ReplicaLocation> Locations(const std::vector<Replica>& replicas, uint64_t size) const;
  // A put's (or reservation's) checks, in the order their codes take precedence:
  // INVALID_PARAMS for size 0 or replica_num out of range; OBJECT_ALREADY_EXISTS;
  // NO_AVAILABLE_HANDLE for fewer segments that can hold `size` than replicas asked.
  Status CheckShape(std::string_view what, uint64_t size, const ReplicateConfig& config) const;
  Status CheckKeyFree(const std::string& key) const;
  Status CheckFits(std::string_view what, uint64_t size, const ReplicateConfig& config,
                   uint64_t now_ns) const;
  // TryPlace, evicting one object at a time until it fits when `evict` (field bug 12).
  bool PlaceEvicting(uint64_t size, const ReplicateConfig& config, bool evict, uint64_t now_ns,
                     std::vector<Replica>* placed);
  // A new, unfinished object of `key` at `replicas` with the next generation (a lost
  // report of the key is dropped: it is put again).
  Object NewObject(const std::string& client, const std::string& key, uint64_t size,
                   const ReplicateConfig& config, std::vector<Replica> replicas, uint64_t now_ns);
  bool TryPlace(uint64_t size, const ReplicateConfig& config, uint64_t now_ns,
                std::vector<Replica>* out);
  size_t SegmentsThatFit(uint64_t size, uint64_t now_ns) const;
  // Frees the object's replicas now, or at `hold_until_ns` if that is later.
  void Release(const Object& o, uint64_t hold_until_ns, uint64_t now_ns);
  void ReleaseRanges(const std::vector<Replica>& replicas, uint64_t size, uint64_t hold_until_ns,
                     uint64_t now_ns);
  // Ends a reservation that was not committed; `reason` counts it as released by its client
  // (quarantine from now) or reclaimed (quarantine from the end of its validity).
  void DropReservation(std::map<uint64_t, ReservationState>::iterator it, bool released,
                       uint64_t now_ns);
  void JournalReservation(uint64_t id);
  // The next generation (journaling a new bound every kGenerationBlock).
  uint64_t NextGeneration();
  void Erase(std::map<std::string, Object>::iterator it, uint64_t hold_until_ns, uint64_t now_ns);
  bool Evictable(const Object& o, uint64_t now_ns) const;
  // Evicts up to `count` objects in approximate LRU order; returns how many went.
  size_t Evict(size_t count, uint64_t now_ns);
  void MaybeEvict(uint64_t now_ns);
  // Removes the replicas on `mount`; false when there were none.
  static bool DropReplicasOn(uint64_t mount, std::vector<Replica>* replicas);
  void DropMount(uint64_t mount, uint64_t now_ns, uint64_t* drain_until_ns);
  void ClientDied(const std::string& client, uint64_t now_ns);
  void RunDeferred(uint64_t now_ns);
  Status NotFound(const std::string& key) const;
  // Journal writes (no-ops without a journal).
  void JournalObject(const std::string& key, const Object& o);
  void JournalMount(uint64_t id);
  void JournalCounters();
  void JournalErase(const std::string& record);
  void MarkLost(const std::string& key, uint64_t generation);

  MasterOptions options_;
  std::map<std::string, Object> objects_;
  std::set<std::string> writing_;  // keys of the objects being written (!complete)
  std::map<uint64_t, MountState> mounts_;
  std::map<std::string, Client> clients_;
  std::vector<Deferred> deferred_;
  std::map<uint64_t, ReservationState> reservations_;  // by id (a generation number)
  std::map<std::string, uint64_t> fences_;  // segment name -> last lease on dropped memory
  uint64_t next_mount_ = 1;
  uint64_t next_generation_ = 1;
  uint64_t next_deferred_ = 1;
  MasterJournal* journal_ = nullptr;
  uint64_t incarnation_ = 1;
  // Generations below this are journaled as handed out; PutStart journals a new bound
  // every kGenerationBlock generations, and a restart continues from the bound.
  uint64_t generation_bound_ = 1;
  // Leases granted before a restart are unknown: memory is not reused before this.
  uint64_t recovery_fence_ns_ = 0;
  std::map<std::string, uint64_t> lost_;  // key -> generation lost with its holders
  MasterStats stats_;
  Observer observer_;
};

// Serves a MasterState at a Messenger endpoint. Start it once; it runs until destroyed.
class MasterService {
 public:
  // `env` and `messenger` must outlive the service. The service installs itself as the
  // messenger's receiver.
  // With a `journal` (which must outlive the service), the state is first rebuilt from
  // it and journaled to it (MasterState::Recover; recovery() says how that went).
  MasterService(Env& env, Messenger& messenger, MasterOptions options = {},
                MasterJournal* journal = nullptr);
  ~MasterService();
  MasterService(const MasterService&) = delete;
  MasterService& operator=(const MasterService&) = delete;

  // Starts the periodic sweep (client liveness, reclaim, deferred frees). Never blocks.
  void Start();

  MasterState& state() { return state_; }
  const RpcServer& server() const { return server_; }
  // OK, or why the journal could not be read back (the service must not be started).
  const Status& recovery() const { return recovery_; }
  std::string_view endpoint() const { return messenger_.LocalName(); }

 private:
  std::string Handle(std::string_view from, MsgType type, std::string_view body);
  void ArmSweep();

  Env& env_;
  Messenger& messenger_;
  MasterState state_;
  Status recovery_;
  RpcServer server_;
  std::shared_ptr<bool> alive_;
  TimerId sweep_ = 0;
};

}  // namespace tidal::store
