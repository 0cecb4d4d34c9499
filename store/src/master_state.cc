// The master's state machine (see master.h). Pure: time comes in as an argument.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "tidal/codec.h"
#include "tidal/reach.h"

#include "tidal/store/master.h"

namespace tidal::store {
namespace {

Status KeyCheck(const std::string& key) {
  if (key.empty()) return Status(ErrorCode::INVALID_KEY, "key is empty");
  if (key.size() > kMaxKeyBytes) {
    return Status(ErrorCode::INVALID_KEY, "key is longer than " + std::to_string(kMaxKeyBytes));
  }
  return Status();
}

// Journal record keys (README: "Master restart").
constexpr std::string_view kCountersRecord = "n";  // incarnation, next mount, generation bound
constexpr std::string_view kMountPrefix = "m/";    // + id (16 hex digits) -> the mount
constexpr std::string_view kObjectPrefix = "o/";   // + key -> the object
constexpr std::string_view kDeferredPrefix = "d/";  // + id (16 hex digits) -> a deferred free
constexpr std::string_view kFencePrefix = "f/";    // + segment: a dead owner's memory, fenced
constexpr std::string_view kLostPrefix = "l/";     // + key -> the generation that was lost
constexpr std::string_view kReservationPrefix = "r/";  // + id (16 hex digits) -> a reservation
constexpr uint64_t kGenerationBlock = 1024;
constexpr size_t kMaxLostReports = 4096;

std::string Hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

bool ParseHex(std::string_view s, uint64_t* out) {
  if (s.size() != 16) return false;
  uint64_t v = 0;
  for (char c : s) {
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return false;
    v = v << 4 | static_cast<uint64_t>(d);
  }
  *out = v;
  return true;
}

Status BadRecord(const std::string& key, std::string_view what) {
  return Status(ErrorCode::CORRUPT_INPUT,
                "master journal: record '" + key + "': " + std::string(what));
}

// A journal record's replica ranges: count, then (mount, offset) each.
template <typename ReplicaT>
void PutRanges(ByteWriter& w, const std::vector<ReplicaT>& replicas) {
  w.U32(static_cast<uint32_t>(replicas.size()));
  for (const ReplicaT& r : replicas) {
    w.U64(r.mount);
    w.U64(r.offset);
  }
}
// nullptr when they decoded, else what was wrong.
template <typename ReplicaT>
const char* GetRanges(ByteReader& r, std::vector<ReplicaT>* replicas) {
  uint32_t n = 0;
  if (!r.Count(&n, kMaxReplicas, 16)) return "replica count does not decode";
  for (uint32_t i = 0; i < n; ++i) {
    ReplicaT rep;
    if (!r.U64(&rep.mount) || !r.U64(&rep.offset)) return "replica is cut off";
    replicas->push_back(rep);
  }
  return nullptr;
}

}  // namespace

std::string_view MasterBugName(MasterBug bug) {
  switch (bug) {
    case MasterBug::kNone: return "none";
    case MasterBug::kHolderCloseLosesObject: return "master_holder_close_loses_object";
    case MasterBug::kFreesLeasedMemory: return "master_frees_leased_memory";
    case MasterBug::kIgnoresGeneration: return "master_ignores_generation";
    case MasterBug::kNeverReclaimsPuts: return "master_never_reclaims_puts";
    case MasterBug::kNoEvictOnPut: return "master_no_evict_on_put";
  }
  return "unknown";
}

Result<MasterBug> ParseMasterBug(std::string_view name) {
  std::string known;
  for (MasterBug b : kMasterBugs) {
    if (MasterBugName(b) == name) return b;
    known += (known.empty() ? "" : ", ") + std::string(MasterBugName(b));
  }
  return Status(ErrorCode::INVALID_PARAMS,
                "unknown master bug '" + std::string(name) + "' (" + known + ")");
}

MasterState::MasterState(MasterOptions options) : options_(options) {}

void MasterState::Notify(const std::string& key, uint64_t generation, std::string_view reason) {
  if (observer_) observer_(key, generation, reason);
}

void MasterState::Touch(const std::string& client, uint64_t now_ns) {
  clients_[client].last_seen_ns = now_ns;
}

std::vector<uint64_t> MasterState::Heartbeat(const std::string& client, uint64_t now_ns) {
  Touch(client, now_ns);
  std::vector<uint64_t> ids;
  for (const auto& [id, m] : mounts_) {
    if (m.client == client && !m.draining) ids.push_back(id);
  }
  return ids;
}

Result<uint64_t> MasterState::Mount(const std::string& client, const std::string& segment,
                                    uint64_t base, uint64_t size, uint64_t now_ns) {
  Touch(client, now_ns);
  if (size < RangeAllocator::kAlignment || base == 0 || base + size < base) {
    return Status(ErrorCode::INVALID_PARAMS, "mount: base 0, size below 64 bytes or wrapping");
  }
  if (segment.empty()) return Status(ErrorCode::INVALID_PARAMS, "mount: empty segment name");
  // The same client mounting the same range again is its mount retried (the first answer
  // may have been lost with a master that restarted): the same id.
  for (const auto& [id, m] : mounts_) {
    if (m.client == client && m.segment == segment && m.base == base && m.size == size &&
        !m.draining) {
      return id;
    }
  }
  for (const auto& [id, m] : mounts_) {
    if (m.segment == segment && base < m.base + m.size && m.base < base + size) {
      return Status(ErrorCode::INVALID_PARAMS,
                    "mount: range overlaps mount " + std::to_string(id) + " of " + segment);
    }
  }
  uint64_t id = next_mount_++;
  MountState m{client, segment, base, size, RangeAllocator(size), false, 0};
  if (auto f = fences_.find(segment); f != fences_.end() && f->second > now_ns) {
    m.usable_after_ns = f->second;
  }
  mounts_.emplace(id, std::move(m));
  JournalCounters();
  JournalMount(id);
  return id;
}

bool MasterState::DropReplicasOn(uint64_t mount, std::vector<Replica>* replicas) {
  return std::erase_if(*replicas, [mount](const Replica& r) { return r.mount == mount; }) > 0;
}

void MasterState::DropMount(uint64_t mount, uint64_t now_ns, uint64_t* drain_until_ns) {
  TIDAL_ASSERT(mounts_.count(mount) == 1);
  const std::string segment = mounts_.at(mount).segment;
  uint64_t fence = 0;
  for (auto it = objects_.begin(); it != objects_.end();) {
    Object& o = it->second;
    // The replica goes with its segment (its memory is not ours to free any more).
    if (!DropReplicasOn(mount, &o.replicas)) {
      ++it;
      continue;
    }
    fence = std::max(fence, o.lease_until_ns);
    if (drain_until_ns != nullptr) *drain_until_ns = std::max(*drain_until_ns, o.lease_until_ns);
    if (!o.complete) {
      // A put that lost a target cannot finish: reclaim it; the writer's PutEnd fails.
      TIDAL_REACHABLE("store.master.reclaimed_put_that_lost_a_target");
      ++stats_.puts_reclaimed;
      Notify(it->first, o.generation, "reclaimed");
      Erase(it++, now_ns + options_.reclaim_quarantine_ns, now_ns);
    } else if (o.replicas.empty() ||
               options_.planted_bug == MasterBug::kHolderCloseLosesObject) {
      TIDAL_REACHABLE("store.master.lost_last_replica");
      ++stats_.lost;
      Notify(it->first, o.generation, "lost");
      MarkLost(it->first, o.generation);
      Erase(it++, now_ns, now_ns);
    } else {
      JournalObject(it->first, o);
      ++it;  // field bug 9: other replicas keep the object readable
    }
  }
  // Reservations with a replica here cannot be committed any more: the replica goes with
  // the segment, the others are reclaimed. After a death, writes the client may still
  // make into this memory fence it off like the leases.
  for (auto it = reservations_.begin(); it != reservations_.end();) {
    ReservationState& r = it->second;
    if (!DropReplicasOn(mount, &r.replicas)) {
      ++it;
      continue;
    }
    fence = std::max(fence, std::max(now_ns, r.granted_ns + reservation_valid_ns()) +
                                options_.reclaim_quarantine_ns);
    DropReservation(it++, /*released=*/false, now_ns);
  }
  // Leases granted before a restart are unknown: a graceful unmount waits them out too.
  fence = std::max(fence, recovery_fence_ns_);
  if (drain_until_ns != nullptr) *drain_until_ns = std::max(*drain_until_ns, recovery_fence_ns_);
  // After a death the memory comes back at once; what the store still held there (frees
  // deferred by leases, quarantined against late writes) stays fenced like the leases.
  for (const Deferred& d : deferred_) {
    if (d.mount == mount && drain_until_ns == nullptr) fence = std::max(fence, d.at_ns);
  }
  std::erase_if(deferred_, [this, mount](const Deferred& d) {
    if (d.mount != mount) return false;
    JournalErase(std::string(kDeferredPrefix) + Hex(d.id));
    return true;
  });
  mounts_.erase(mount);
  JournalErase(std::string(kMountPrefix) + Hex(mount));
  // A graceful unmount waits for these leases before it lets go of the memory; after a
  // death the owner may mount the same memory again at once, so fence it off until then.
  if (drain_until_ns == nullptr && fence > now_ns) {
    fences_[segment] = std::max(fences_[segment], fence);
    if (journal_ != nullptr) journal_->Put(std::string(kFencePrefix) + segment, "");
  }
}

Result<uint64_t> MasterState::Unmount(const std::string& client, uint64_t mount_id,
                                      uint64_t now_ns) {
  Touch(client, now_ns);
  auto it = mounts_.find(mount_id);
  if (it == mounts_.end() || it->second.client != client) {
    return Status(ErrorCode::SEGMENT_NOT_FOUND,
                  "unmount: mount " + std::to_string(mount_id) + " is not this client's");
  }
  uint64_t drain_until = now_ns;
  DropMount(mount_id, now_ns, &drain_until);
  return drain_until - now_ns;
}

size_t MasterState::SegmentsThatFit(uint64_t size, uint64_t now_ns) const {
  std::set<std::string> names;
  for (const auto& [id, m] : mounts_) {
    if (!m.draining && m.usable_after_ns <= now_ns && m.alloc.capacity() >= size) {
      names.insert(m.segment);
    }
  }
  return names.size();
}

bool MasterState::TryPlace(uint64_t size, const ReplicateConfig& config, uint64_t now_ns,
                           std::vector<Replica>* out) {
  out->clear();
  std::set<std::string> used;
  auto try_mount = [&](uint64_t id, MountState& m) {
    if (m.draining || m.usable_after_ns > now_ns || used.count(m.segment) != 0) return;
    std::optional<uint64_t> offset = m.alloc.Allocate(size);
    if (!offset) return;
    used.insert(m.segment);
    out->push_back({id, *offset});
  };
  for (const std::string& name : config.preferred_segments) {
    for (auto& [id, m] : mounts_) {
      if (out->size() == config.replica_num) break;
      if (m.segment == name) try_mount(id, m);
    }
  }
  // The rest by most free space, ties by mount id: spreads load, deterministic.
  std::vector<std::pair<uint64_t, uint64_t>> order;  // (-free, id)
  for (const auto& [id, m] : mounts_) order.push_back({m.alloc.capacity() - m.alloc.used(), id});
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  for (const auto& [free, id] : order) {
    if (out->size() == config.replica_num) break;
    try_mount(id, mounts_.at(id));
  }
  if (out->size() == config.replica_num) return true;
  for (const Replica& r : *out) mounts_.at(r.mount).alloc.Free(r.offset, size);
  out->clear();
  return false;
}

Result<std::pair<uint64_t, std::vector<ReplicaLocation>>> MasterState::PutStart(
    const std::string& client, const std::string& key, uint64_t size, const ReplicateConfig& config,
    uint64_t now_ns) {
  Touch(client, now_ns);
  TIDAL_RETURN_IF_ERROR(KeyCheck(key));
  TIDAL_RETURN_IF_ERROR(CheckShape("put", size, config));
  TIDAL_RETURN_IF_ERROR(CheckKeyFree(key));
  TIDAL_RETURN_IF_ERROR(CheckFits("put", size, config, now_ns));
  std::vector<Replica> placed;
  if (!PlaceEvicting(size, config, /*evict=*/true, now_ns, &placed)) {
    return Status(ErrorCode::NO_AVAILABLE_HANDLE,
                  "put: no space for " + std::to_string(size) +
                      " bytes; the rest is leased, pinned or being written");
  }
  Object o = NewObject(client, key, size, config, std::move(placed), now_ns);
  std::vector<ReplicaLocation> locations = Locations(o.replicas, size);
  uint64_t generation = o.generation;
  JournalObject(key, o);
  objects_.emplace(key, std::move(o));
  writing_.insert(key);
  ++stats_.puts_started;
  MaybeEvict(now_ns);
  return std::make_pair(generation, std::move(locations));
}

Status MasterState::CheckShape(std::string_view what, uint64_t size,
                               const ReplicateConfig& config) const {
  if (size == 0) return Status(ErrorCode::INVALID_PARAMS, std::string(what) + ": size is 0");
  if (config.replica_num == 0 || config.replica_num > kMaxReplicas) {
    return Status(ErrorCode::INVALID_PARAMS,
                  std::string(what) + ": replica_num " + std::to_string(config.replica_num) +
                      " not in [1, " + std::to_string(kMaxReplicas) + "]");
  }
  return Status();
}

Status MasterState::CheckKeyFree(const std::string& key) const {
  if (auto it = objects_.find(key); it != objects_.end()) {
    return Status(ErrorCode::OBJECT_ALREADY_EXISTS,
                  it->second.complete ? "put: key exists" : "put: key is being written");
  }
  return Status();
}

Status MasterState::CheckFits(std::string_view what, uint64_t size, const ReplicateConfig& config,
                              uint64_t now_ns) const {
  const size_t fit = SegmentsThatFit(size, now_ns);
  if (fit >= config.replica_num) return Status();
  return Status(ErrorCode::NO_AVAILABLE_HANDLE,
                std::string(what) + ": " + std::to_string(config.replica_num) +
                    " replicas asked, only " + std::to_string(fit) + " segments can hold " +
                    std::to_string(size) + " bytes");
}

bool MasterState::PlaceEvicting(uint64_t size, const ReplicateConfig& config, bool evict,
                                uint64_t now_ns, std::vector<Replica>* placed) {
  // Field bug 12: when space runs out, evict now (LRU order) until it fits, instead of
  // failing while a background pass catches up.
  while (!TryPlace(size, config, now_ns, placed)) {
    if (!evict || options_.planted_bug == MasterBug::kNoEvictOnPut || Evict(1, now_ns) == 0) {
      return false;
    }
  }
  return true;
}

MasterState::Object MasterState::NewObject(const std::string& client, const std::string& key,
                                           uint64_t size, const ReplicateConfig& config,
                                           std::vector<Replica> replicas, uint64_t now_ns) {
  if (auto l = lost_.find(key); l != lost_.end()) {  // the key is put again
    lost_.erase(l);
    JournalErase(std::string(kLostPrefix) + key);
  }
  Object o;
  o.size = size;
  o.generation = NextGeneration();
  o.writer = client;
  o.started_ns = now_ns;
  o.replicas = std::move(replicas);
  o.last_access_ns = now_ns;
  o.hard_pin = config.hard_pin;
  o.soft_pin_ttl_ns = config.soft_pin_ttl_ns;
  return o;
}

uint64_t MasterState::NextGeneration() {
  if (journal_ != nullptr && next_generation_ >= generation_bound_) {
    generation_bound_ = next_generation_ + kGenerationBlock;
    JournalCounters();
  }
  return next_generation_++;
}

uint64_t MasterState::reservation_valid_ns() const {
  return std::min({options_.put_timeout_ns, options_.client_ttl_ns, options_.lease_ttl_ns});
}

Result<std::vector<MasterState::Reserved>> MasterState::Reserve(
    const std::string& client, uint64_t size, const ReplicateConfig& config, uint32_t count,
    const std::vector<uint64_t>& release, uint64_t now_ns) {
  Touch(client, now_ns);
  ReleaseReservations(client, release, now_ns);
  TIDAL_RETURN_IF_ERROR(CheckShape("put reserve", size, config));
  if (count == 0 || count > kMaxReservationsPerCall) {
    return Status(ErrorCode::INVALID_PARAMS, "put reserve: count " + std::to_string(count) +
                                                 " not in [1, " +
                                                 std::to_string(kMaxReservationsPerCall) + "]");
  }
  Client& holder = clients_[client];
  if (holder.reservations >= kMaxReservationsPerClient) {
    return Status(ErrorCode::NO_AVAILABLE_HANDLE, "put reserve: the client holds " +
                                                      std::to_string(holder.reservations) +
                                                      " reservations, the most it may");
  }
  count = std::min(count, kMaxReservationsPerClient - holder.reservations);
  TIDAL_RETURN_IF_ERROR(CheckFits("put reserve", size, config, now_ns));
  std::vector<Reserved> out;
  std::vector<Replica> placed;
  // The first evicts like a put (field bug 12); the rest take only free space.
  while (out.size() < count && PlaceEvicting(size, config, out.empty(), now_ns, &placed)) {
    const uint64_t id = NextGeneration();
    Reserved granted{id, Locations(placed, size)};
    reservations_.emplace(id, ReservationState{client, size, now_ns, std::move(placed)});
    placed.clear();
    JournalReservation(id);
    ++holder.reservations;
    ++stats_.reservations_granted;
    out.push_back(std::move(granted));
  }
  if (out.empty()) {
    return Status(ErrorCode::NO_AVAILABLE_HANDLE,
                  "put reserve: no space for " + std::to_string(size) +
                      " bytes; the rest is leased, pinned or being written");
  }
  MaybeEvict(now_ns);
  return out;
}

Result<uint64_t> MasterState::PutCommit(const std::string& client, const std::string& key,
                                        uint64_t reservation, uint64_t size,
                                        const ReplicateConfig& config, uint64_t now_ns) {
  Touch(client, now_ns);
  TIDAL_RETURN_IF_ERROR(KeyCheck(key));
  auto it = reservations_.find(reservation);
  if (it == reservations_.end() || it->second.client != client) {
    return Status(ErrorCode::OBJECT_NOT_FOUND,
                  "put commit: reservation " + std::to_string(reservation) +
                      " is not this client's (reclaimed, released, used or never granted)");
  }
  ReservationState& r = it->second;
  if (size != r.size || config.replica_num != r.replicas.size()) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "put commit: " + std::to_string(size) + " bytes in " +
                      std::to_string(config.replica_num) + " replicas, but reservation " +
                      std::to_string(reservation) + " holds " + std::to_string(r.size) +
                      " bytes in " + std::to_string(r.replicas.size()));
  }
  TIDAL_RETURN_IF_ERROR(CheckKeyFree(key));
  Object o = NewObject(client, key, size, config, std::move(r.replicas), now_ns);
  o.complete = true;
  if (o.soft_pin_ttl_ns != 0) o.soft_pin_until_ns = now_ns + o.soft_pin_ttl_ns;
  const uint64_t generation = o.generation;
  // The object's record first: a crash between the two writes leaves the memory claimed
  // twice, which recovery refuses, never a reservation's bytes counted as free.
  JournalObject(key, o);
  JournalErase(std::string(kReservationPrefix) + Hex(reservation));
  --clients_[client].reservations;
  reservations_.erase(it);
  objects_.emplace(key, std::move(o));
  ++stats_.puts_committed;  // no eviction pass: the reservation's bytes were counted
  return generation;
}

void MasterState::ReleaseReservations(const std::string& client, const std::vector<uint64_t>& ids,
                                      uint64_t now_ns) {
  Touch(client, now_ns);
  for (uint64_t id : ids) {
    auto it = reservations_.find(id);
    if (it != reservations_.end() && it->second.client == client) {
      DropReservation(it, /*released=*/true, now_ns);
    }
  }
}

void MasterState::DropReservation(std::map<uint64_t, ReservationState>::iterator it, bool released,
                                  uint64_t now_ns) {
  const ReservationState& r = it->second;
  // A client may write into it until its validity ends; a released one it promised not to.
  const uint64_t writable_until =
      released ? now_ns : std::max(now_ns, r.granted_ns + reservation_valid_ns());
  ReleaseRanges(r.replicas, r.size, writable_until + options_.reclaim_quarantine_ns, now_ns);
  if (auto c = clients_.find(r.client); c != clients_.end() && c->second.reservations > 0) {
    --c->second.reservations;
  }
  JournalErase(std::string(kReservationPrefix) + Hex(it->first));
  if (released) {
    ++stats_.reservations_released;
  } else {
    TIDAL_REACHABLE("store.master.reservation_reclaimed");
    ++stats_.reservations_reclaimed;
  }
  reservations_.erase(it);
}

Status MasterState::PutEnd(const std::string& client, const std::string& key, uint64_t generation,
                           uint64_t now_ns) {
  Touch(client, now_ns);
  auto it = objects_.find(key);
  if (it == objects_.end() || it->second.generation != generation) {
    return Status(ErrorCode::OBJECT_NOT_FOUND,
                  "put end: generation " + std::to_string(generation) + " of '" + key +
                      "' is not being written (reclaimed, revoked or removed)");
  }
  Object& o = it->second;
  if (o.complete) return Status();
  TIDAL_ASSERT(!o.replicas.empty());
  o.complete = true;
  writing_.erase(key);
  o.last_access_ns = now_ns;
  if (o.soft_pin_ttl_ns != 0) o.soft_pin_until_ns = now_ns + o.soft_pin_ttl_ns;
  JournalObject(key, o);
  ++stats_.puts_ended;
  return Status();
}

Status MasterState::PutRevoke(const std::string& client, const std::string& key,
                              uint64_t generation, uint64_t now_ns) {
  Touch(client, now_ns);
  auto it = objects_.find(key);
  if (it == objects_.end() || it->second.generation != generation || it->second.complete) {
    return Status(ErrorCode::OBJECT_NOT_FOUND, "put revoke: generation " +
                                                   std::to_string(generation) + " of '" + key +
                                                   "' is not being written");
  }
  ++stats_.puts_revoked;
  Erase(it, now_ns + options_.reclaim_quarantine_ns, now_ns);
  return Status();
}

Result<std::pair<ObjectInfo, std::vector<ReplicaLocation>>> MasterState::GetReplicaList(
    const std::string& key, uint64_t generation, uint64_t now_ns) {
  TIDAL_RETURN_IF_ERROR(KeyCheck(key));
  auto it = objects_.find(key);
  if (it == objects_.end()) return NotFound(key);
  Object& o = it->second;
  if (generation != 0 && o.generation != generation &&
      options_.planted_bug != MasterBug::kIgnoresGeneration) {
    // Field bug 7: a reader holding an older generation's reference must fail.
    return Status(ErrorCode::OBJECT_NOT_FOUND,
                  "'" + key + "': generation " + std::to_string(generation) +
                      " is gone, current is " + std::to_string(o.generation));
  }
  if (!o.complete) return Status(ErrorCode::REPLICA_IS_NOT_READY, "'" + key + "' is being written");
  TIDAL_ASSERT(!o.replicas.empty());
  o.lease_until_ns = std::max(o.lease_until_ns, now_ns + options_.lease_ttl_ns);
  o.last_access_ns = now_ns;
  ++stats_.leases_granted;
  return std::make_pair(ObjectInfo{o.size, o.generation}, Locations(o));
}

Result<ObjectInfo> MasterState::Stat(const std::string& key, uint64_t now_ns) const {
  TIDAL_RETURN_IF_ERROR(KeyCheck(key));
  auto it = objects_.find(key);
  if (it == objects_.end()) return NotFound(key);
  if (!it->second.complete) {
    return Status(ErrorCode::REPLICA_IS_NOT_READY, "'" + key + "' is being written");
  }
  return ObjectInfo{it->second.size, it->second.generation};
}

Status MasterState::Remove(const std::string& key, bool force, uint64_t now_ns) {
  TIDAL_RETURN_IF_ERROR(KeyCheck(key));
  auto it = objects_.find(key);
  if (it == objects_.end()) return Status(ErrorCode::OBJECT_NOT_FOUND, "'" + key + "'");
  const Object& o = it->second;
  if (!force) {
    if (!o.complete) {
      return Status(ErrorCode::REPLICA_IS_NOT_READY, "'" + key + "' is being written");
    }
    if (o.lease_until_ns > now_ns) {
      return Status(ErrorCode::OBJECT_HAS_LEASE, "'" + key + "' has a running lease");
    }
    if (o.hard_pin) return Status(ErrorCode::OBJECT_HAS_LEASE, "'" + key + "' is hard-pinned");
  }
  // Readers under a running lease may still be reading: keep the memory until it ends.
  uint64_t hold =
      o.complete ? std::max(o.lease_until_ns, now_ns) : now_ns + options_.reclaim_quarantine_ns;
  if (options_.planted_bug == MasterBug::kFreesLeasedMemory && o.complete) hold = now_ns;
  TIDAL_SOMETIMES(hold > now_ns && o.complete, "store.master.remove_deferred_by_lease");
  ++stats_.removed;
  Erase(it, hold, now_ns);
  return Status();
}

std::vector<ReplicaLocation> MasterState::Locations(const Object& o) const {
  return Locations(o.replicas, o.size);
}

std::vector<ReplicaLocation> MasterState::Locations(const std::vector<Replica>& replicas,
                                                    uint64_t size) const {
  std::vector<ReplicaLocation> out;
  for (const Replica& r : replicas) {
    const MountState& m = mounts_.at(r.mount);
    out.push_back({m.segment, m.base + r.offset, size});
  }
  return out;
}

std::vector<ReplicaLocation> MasterState::Replicas(const std::string& key) const {
  auto it = objects_.find(key);
  return it == objects_.end() ? std::vector<ReplicaLocation>{} : Locations(it->second);
}

void MasterState::Release(const Object& o, uint64_t hold_until_ns, uint64_t now_ns) {
  ReleaseRanges(o.replicas, o.size, hold_until_ns, now_ns);
}

void MasterState::ReleaseRanges(const std::vector<Replica>& replicas, uint64_t size,
                                uint64_t hold_until_ns, uint64_t now_ns) {
  // Readers under leases granted before a restart are unknown: hold their memory too.
  hold_until_ns = std::max(hold_until_ns, recovery_fence_ns_);
  for (const Replica& r : replicas) {
    auto m = mounts_.find(r.mount);
    TIDAL_ASSERT(m != mounts_.end());
    if (hold_until_ns > now_ns) {
      const uint64_t id = next_deferred_++;
      deferred_.push_back({id, hold_until_ns, r.mount, r.offset, size});
      if (journal_ != nullptr) {
        ByteWriter w;
        w.U64(r.mount);
        w.U64(r.offset);
        w.U64(size);
        journal_->Put(std::string(kDeferredPrefix) + Hex(id), w.Take());
      }
    } else {
      m->second.alloc.Free(r.offset, size);
    }
  }
}

void MasterState::Erase(std::map<std::string, Object>::iterator it, uint64_t hold_until_ns,
                        uint64_t now_ns) {
  Release(it->second, hold_until_ns, now_ns);
  JournalErase(std::string(kObjectPrefix) + it->first);
  if (!it->second.complete) writing_.erase(it->first);
  objects_.erase(it);
}

bool MasterState::Evictable(const Object& o, uint64_t now_ns) const {
  return o.complete && !o.hard_pin && o.lease_until_ns <= now_ns;
}

size_t MasterState::Evict(size_t count, uint64_t now_ns) {
  // Approximate LRU: unpinned before soft-pinned, then least recently used first.
  struct Candidate {
    bool soft;
    uint64_t last;
    const std::string* key;
  };
  std::vector<Candidate> c;
  for (const auto& [key, o] : objects_) {
    if (Evictable(o, now_ns)) c.push_back({o.soft_pin_until_ns > now_ns, o.last_access_ns, &key});
  }
  size_t n = std::min(count, c.size());
  std::partial_sort(c.begin(), c.begin() + n, c.end(), [](const Candidate& a, const Candidate& b) {
    if (a.soft != b.soft) return !a.soft;
    if (a.last != b.last) return a.last < b.last;
    return *a.key < *b.key;
  });
  std::vector<std::string> victims;
  for (size_t i = 0; i < n; ++i) victims.push_back(*c[i].key);
  for (const std::string& key : victims) {
    auto it = objects_.find(key);
    TIDAL_ASSERT(it != objects_.end() && Evictable(it->second, now_ns));
    Notify(key, it->second.generation, "evicted");
    Erase(it, now_ns, now_ns);
    ++stats_.evicted;
  }
  return n;
}

void MasterState::MaybeEvict(uint64_t now_ns) {
  uint64_t capacity = 0, used = 0;
  for (const auto& [id, m] : mounts_) {
    capacity += m.alloc.capacity();
    used += m.alloc.used();
  }
  if (capacity == 0 || double(used) <= options_.high_watermark * double(capacity)) return;
  size_t count = std::max<size_t>(1, size_t(std::ceil(options_.evict_ratio * objects_.size())));
  Evict(count, now_ns);
}

void MasterState::ClientDied(const std::string& client, uint64_t now_ns) {
  ++stats_.clients_died;
  std::vector<uint64_t> mine;
  for (const auto& [id, m] : mounts_) {
    if (m.client == client) mine.push_back(id);
  }
  for (uint64_t id : mine) DropMount(id, now_ns, nullptr);
  // Field bug 8: puts whose writer died are reclaimed, so the key is usable again. Only
  // the puts being written are looked at (writing_, in key order).
  for (auto w = writing_.begin(); w != writing_.end();) {
    auto it = objects_.find(*w);
    ++w;  // Erase drops the key from writing_
    TIDAL_ASSERT(it != objects_.end() && !it->second.complete);
    if (it->second.writer == client && options_.planted_bug != MasterBug::kNeverReclaimsPuts) {
      TIDAL_REACHABLE("store.master.reclaimed_dead_writers_put");
      ++stats_.puts_reclaimed;
      Notify(it->first, it->second.generation, "reclaimed");
      Erase(it, now_ns + options_.reclaim_quarantine_ns, now_ns);
    }
  }
  for (auto it = reservations_.begin(); it != reservations_.end();) {
    if (it->second.client == client) {
      DropReservation(it++, /*released=*/false, now_ns);
    } else {
      ++it;
    }
  }
  clients_.erase(client);
}

void MasterState::RunDeferred(uint64_t now_ns) {
  std::vector<Deferred> keep;
  for (const Deferred& d : deferred_) {
    if (d.at_ns > now_ns) {
      keep.push_back(d);
      continue;
    }
    auto m = mounts_.find(d.mount);
    TIDAL_REACHABLE("store.master.deferred_free_ran");
    if (m != mounts_.end()) m->second.alloc.Free(d.offset, d.size);
    JournalErase(std::string(kDeferredPrefix) + Hex(d.id));
  }
  deferred_ = std::move(keep);
}

void MasterState::Tick(uint64_t now_ns) {
  std::vector<std::string> dead;
  for (const auto& [name, c] : clients_) {
    if (c.last_seen_ns + options_.client_ttl_ns < now_ns) dead.push_back(name);
  }
  for (const std::string& name : dead) ClientDied(name, now_ns);
  // Only the puts being written (writing_, in key order), not every object: a sweep costs
  // what is in flight, not what is stored.
  for (auto w = writing_.begin(); w != writing_.end();) {
    auto it = objects_.find(*w);
    ++w;  // Erase drops the key from writing_
    TIDAL_ASSERT(it != objects_.end() && !it->second.complete);
    if (it->second.started_ns + options_.put_timeout_ns < now_ns &&
        options_.planted_bug != MasterBug::kNeverReclaimsPuts) {
      TIDAL_REACHABLE("store.master.reclaimed_timed_out_put");
      ++stats_.puts_reclaimed;
      Notify(it->first, it->second.generation, "reclaimed");
      Erase(it, now_ns + options_.reclaim_quarantine_ns, now_ns);
    }
  }
  for (auto it = reservations_.begin(); it != reservations_.end();) {
    if (it->second.granted_ns + reservation_valid_ns() < now_ns) {
      DropReservation(it++, /*released=*/false, now_ns);  // expired: never committed
    } else {
      ++it;
    }
  }
  RunDeferred(now_ns);
  MaybeEvict(now_ns);
  TIDAL_DASSERT(CheckInvariants().ok());
}

Status MasterState::CheckInvariants() const {
  auto bad = [](std::string what) { return Status(ErrorCode::INTERNAL_ERROR, std::move(what)); };
  auto rounded = [](uint64_t size) {
    return (size + RangeAllocator::kAlignment - 1) & ~(RangeAllocator::kAlignment - 1);
  };
  std::map<uint64_t, uint64_t> owned;  // mount -> bytes held by replicas and deferred frees
  size_t writing = 0;
  for (const auto& [key, o] : objects_) {
    if (o.complete && o.replicas.empty()) return bad("complete '" + key + "' has no replica");
    if (!o.complete) {
      ++writing;
      if (writing_.count(key) == 0) return bad("'" + key + "' is being written but not indexed");
    }
    std::set<std::string> segments;
    for (const Replica& r : o.replicas) {
      auto m = mounts_.find(r.mount);
      if (m == mounts_.end()) return bad("'" + key + "' has a replica on a dropped mount");
      if (r.offset + o.size > m->second.size) return bad("'" + key + "' runs past its mount");
      if (!segments.insert(m->second.segment).second) {
        return bad("'" + key + "' has two replicas on " + m->second.segment);
      }
      owned[r.mount] += rounded(o.size);
    }
  }
  for (const auto& [id, r] : reservations_) {
    const std::string what = "reservation " + std::to_string(id);
    if (r.replicas.empty()) return bad(what + " has no replica");
    std::set<std::string> segments;
    for (const Replica& rep : r.replicas) {
      auto m = mounts_.find(rep.mount);
      if (m == mounts_.end()) return bad(what + " has a replica on a dropped mount");
      if (rep.offset + r.size > m->second.size) return bad(what + " runs past its mount");
      if (!segments.insert(m->second.segment).second) {
        return bad(what + " has two replicas on " + m->second.segment);
      }
      owned[rep.mount] += rounded(r.size);
    }
  }
  if (writing != writing_.size()) {
    return bad(std::to_string(writing_.size()) + " keys indexed as being written, " +
               std::to_string(writing) + " are");
  }
  for (const Deferred& d : deferred_) {
    if (mounts_.count(d.mount) == 0) return bad("a deferred free names a dropped mount");
    owned[d.mount] += rounded(d.size);
  }
  for (const auto& [id, m] : mounts_) {
    if (owned[id] != m.alloc.used()) {
      return bad("mount " + std::to_string(id) + " has " + std::to_string(m.alloc.used()) +
                 " bytes allocated but " + std::to_string(owned[id]) + " accounted for");
    }
  }
  return Status();
}

MasterStats MasterState::stats() const {
  MasterStats s = stats_;
  s.incarnation = incarnation_;
  s.objects = objects_.size();
  s.reservations = reservations_.size();
  for (const auto& [id, m] : mounts_) {
    s.capacity_bytes += m.alloc.capacity();
    s.used_bytes += m.alloc.used();
  }
  return s;
}

// ---------------------------------------------------------------------------------------
// Durability

Status MasterState::NotFound(const std::string& key) const {
  if (auto l = lost_.find(key); l != lost_.end()) {
    return Status(ErrorCode::OBJECT_NOT_FOUND,
                  "'" + key + "': generation " + std::to_string(l->second) +
                      " was lost: every node holding a replica went away");
  }
  return Status(ErrorCode::OBJECT_NOT_FOUND, "'" + key + "'");
}

void MasterState::MarkLost(const std::string& key, uint64_t generation) {
  lost_[key] = generation;
  if (journal_ != nullptr) {
    ByteWriter w;
    w.U64(generation);
    journal_->Put(std::string(kLostPrefix) + key, w.Take());
  }
  // Bounded: the oldest reports (smallest generation) go first.
  while (lost_.size() > kMaxLostReports) {
    auto oldest = std::min_element(lost_.begin(), lost_.end(), [](const auto& a, const auto& b) {
      return a.second < b.second;
    });
    JournalErase(std::string(kLostPrefix) + oldest->first);
    lost_.erase(oldest);
  }
}

void MasterState::JournalObject(const std::string& key, const Object& o) {
  if (journal_ == nullptr) return;
  ByteWriter w;
  w.U64(o.size);
  w.U64(o.generation);
  w.U8(o.complete ? 1 : 0);
  w.Str(o.writer);
  w.U8(o.hard_pin ? 1 : 0);
  w.U64(o.soft_pin_ttl_ns);
  PutRanges(w, o.replicas);
  journal_->Put(std::string(kObjectPrefix) + key, w.Take());
}

void MasterState::JournalReservation(uint64_t id) {
  if (journal_ == nullptr) return;
  const ReservationState& r = reservations_.at(id);
  ByteWriter w;
  w.Str(r.client);
  w.U64(r.size);
  PutRanges(w, r.replicas);
  journal_->Put(std::string(kReservationPrefix) + Hex(id), w.Take());
}

void MasterState::JournalMount(uint64_t id) {
  if (journal_ == nullptr) return;
  const MountState& m = mounts_.at(id);
  ByteWriter w;
  w.Str(m.client);
  w.Str(m.segment);
  w.U64(m.base);
  w.U64(m.size);
  journal_->Put(std::string(kMountPrefix) + Hex(id), w.Take());
}

void MasterState::JournalCounters() {
  if (journal_ == nullptr) return;
  ByteWriter w;
  w.U64(incarnation_);
  w.U64(next_mount_);
  w.U64(generation_bound_);
  journal_->Put(std::string(kCountersRecord), w.Take());
}

void MasterState::JournalErase(const std::string& record) {
  if (journal_ != nullptr) journal_->Erase(record);
}

Status MasterState::Recover(MasterJournal* journal, uint64_t now_ns) {
  TIDAL_ASSERT_MSG(journal_ == nullptr && objects_.empty() && mounts_.empty(),
                   "MasterState::Recover on a state in use");
  const std::map<std::string, std::string> records = journal->Load();
  const bool restart = !records.empty();
  std::vector<std::pair<std::string, Object>> unfinished;
  std::vector<std::pair<uint64_t, Deferred>> held;  // journaled deferred frees
  std::vector<std::pair<uint64_t, ReservationState>> reserved;  // journaled reservations
  for (const auto& [key, value] : records) {
    ByteReader r(value);
    if (key == kCountersRecord) {
      if (!r.U64(&incarnation_) || !r.U64(&next_mount_) || !r.U64(&generation_bound_) ||
          !r.done()) {
        return BadRecord(key, "counters do not decode");
      }
      next_generation_ = generation_bound_;
    } else if (key.rfind(kMountPrefix, 0) == 0) {
      uint64_t id = 0;
      MountState m{"", "", 0, 0, RangeAllocator(0), false, 0};
      if (!ParseHex(std::string_view(key).substr(kMountPrefix.size()), &id) ||
          !r.Str(&m.client, kMaxKeyBytes) || !r.Str(&m.segment, kMaxKeyBytes) || !r.U64(&m.base) ||
          !r.U64(&m.size) || !r.done() || m.size < RangeAllocator::kAlignment) {
        return BadRecord(key, "mount does not decode");
      }
      m.alloc = RangeAllocator(m.size);
      clients_[m.client].last_seen_ns = now_ns;  // a full TTL to show it is alive
      mounts_.emplace(id, std::move(m));
    } else if (key.rfind(kObjectPrefix, 0) == 0) {
      Object o;
      uint8_t complete = 0, hard = 0;
      uint32_t n = 0;
      if (!r.U64(&o.size) || !r.U64(&o.generation) || !r.U8(&complete) ||
          !r.Str(&o.writer, kMaxKeyBytes) || !r.U8(&hard) || !r.U64(&o.soft_pin_ttl_ns)) {
        return BadRecord(key, "object does not decode");
      }
      if (const char* bad = GetRanges(r, &o.replicas)) return BadRecord(key, bad);
      if (!r.done() || o.size == 0 || o.generation == 0) {
        return BadRecord(key, "object does not decode");
      }
      o.complete = complete != 0;
      o.hard_pin = hard != 0;
      o.started_ns = now_ns;
      o.last_access_ns = now_ns;
      if (o.complete && o.soft_pin_ttl_ns != 0) o.soft_pin_until_ns = now_ns + o.soft_pin_ttl_ns;
      std::string object_key = key.substr(kObjectPrefix.size());
      if (o.complete) {
        objects_.emplace(std::move(object_key), std::move(o));
      } else {
        unfinished.emplace_back(std::move(object_key), std::move(o));
      }
    } else if (key.rfind(kDeferredPrefix, 0) == 0) {
      Deferred d{0, 0, 0, 0, 0};
      if (!ParseHex(std::string_view(key).substr(kDeferredPrefix.size()), &d.id) ||
          !r.U64(&d.mount) || !r.U64(&d.offset) || !r.U64(&d.size) || !r.done() || d.size == 0) {
        return BadRecord(key, "deferred free does not decode");
      }
      held.emplace_back(d.id, d);
    } else if (key.rfind(kReservationPrefix, 0) == 0) {
      uint64_t id = 0;
      ReservationState res;
      if (!ParseHex(std::string_view(key).substr(kReservationPrefix.size()), &id) ||
          !r.Str(&res.client, kMaxKeyBytes) || !r.U64(&res.size)) {
        return BadRecord(key, "reservation does not decode");
      }
      if (const char* bad = GetRanges(r, &res.replicas)) return BadRecord(key, bad);
      if (!r.done() || res.size == 0 || id == 0) {
        return BadRecord(key, "reservation does not decode");
      }
      reserved.emplace_back(id, std::move(res));
    } else if (key.rfind(kFencePrefix, 0) == 0) {
      // Dead owners' memory: leases on it may have been granted just before the crash.
      fences_[key.substr(kFencePrefix.size())] = now_ns + options_.lease_ttl_ns;
    } else if (key.rfind(kLostPrefix, 0) == 0) {
      uint64_t generation = 0;
      if (!r.U64(&generation) || !r.done()) return BadRecord(key, "lost report does not decode");
      lost_[key.substr(kLostPrefix.size())] = generation;
    } else {
      return BadRecord(key, "unknown record");
    }
  }
  if (restart && !records.count(std::string(kCountersRecord))) {
    return BadRecord(std::string(kCountersRecord), "missing");
  }
  // Allocations come back at their exact ranges; generations must lie below the bound.
  auto take = [this](const std::string& what, uint64_t mount, uint64_t offset,
                     uint64_t size) -> Status {
    auto m = mounts_.find(mount);
    if (m == mounts_.end()) return BadRecord(what, "names mount " + std::to_string(mount));
    if (!m->second.alloc.AllocateAt(offset, size)) {
      return BadRecord(what, "range overlaps another or lies outside its mount");
    }
    return Status();
  };
  for (auto& [key, o] : objects_) {
    if (o.generation >= next_generation_) {
      return BadRecord(std::string(kObjectPrefix) + key, "generation above the journaled bound");
    }
    if (o.replicas.empty()) return BadRecord(std::string(kObjectPrefix) + key, "no replica");
    for (const Replica& rep : o.replicas) {
      TIDAL_RETURN_IF_ERROR(take(std::string(kObjectPrefix) + key, rep.mount, rep.offset, o.size));
    }
  }
  for (auto& [key, o] : unfinished) {
    for (const Replica& rep : o.replicas) {
      TIDAL_RETURN_IF_ERROR(take(std::string(kObjectPrefix) + key, rep.mount, rep.offset, o.size));
    }
  }
  for (auto& [id, res] : reserved) {
    if (id >= next_generation_) {
      return BadRecord(std::string(kReservationPrefix) + Hex(id), "id above the journaled bound");
    }
    for (const Replica& rep : res.replicas) {
      TIDAL_RETURN_IF_ERROR(
          take(std::string(kReservationPrefix) + Hex(id), rep.mount, rep.offset, res.size));
    }
  }
  for (auto& [id, d] : held) {
    TIDAL_RETURN_IF_ERROR(take(std::string(kDeferredPrefix) + Hex(id), d.mount, d.offset, d.size));
    next_deferred_ = std::max(next_deferred_, id + 1);
  }
  journal_ = journal;
  if (restart) {
    ++incarnation_;
    // Leases granted before the crash are void but may still be read under: nothing that
    // is freed from now on is reused before the longest of them has lapsed.
    recovery_fence_ns_ = now_ns + options_.lease_ttl_ns;
    for (auto& [id, d] : held) {
      d.at_ns = std::max(now_ns + options_.reclaim_quarantine_ns, recovery_fence_ns_);
      deferred_.push_back(d);
    }
  }
  JournalCounters();
  stats_.recovered_objects = objects_.size();
  // Puts being written when the master went down are reclaimed: the writer's PutEnd
  // fails, its memory is quarantined against its late writes.
  for (auto& [key, o] : unfinished) {
    TIDAL_REACHABLE("store.master.reclaimed_put_unfinished_at_restart");
    ++stats_.puts_reclaimed;
    Notify(key, o.generation, "reclaimed");
    Release(o, now_ns + options_.reclaim_quarantine_ns, now_ns);
    JournalErase(std::string(kObjectPrefix) + key);
  }
  // So are reservations: their writers' next PutCommit fails; the memory waits out the
  // recovery fence (at least a lease TTL, so at least their validity) and the quarantine.
  for (auto& [id, res] : reserved) {
    TIDAL_REACHABLE("store.master.reservation_reclaimed_at_restart");
    ++stats_.reservations_reclaimed;
    ReleaseRanges(res.replicas, res.size, now_ns + options_.reclaim_quarantine_ns, now_ns);
    JournalErase(std::string(kReservationPrefix) + Hex(id));
  }
  return CheckInvariants();
}

}  // namespace tidal::store
