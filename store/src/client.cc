// StoreClient: lifecycle, segments, buffers, put and get (see client.h). Batch and tensor
// calls are in client_batch.cc.
#include "tidal/store/client.h"

#include <algorithm>
#include <cstring>

#include "protocol.h"
#include "tidal/reach.h"

namespace tidal::store {
namespace {

Status KeyCheck(const std::string& key) {
  if (key.empty()) return Status(ErrorCode::INVALID_KEY, "key is empty");
  if (key.size() > kMaxKeyBytes) {
    return Status(ErrorCode::INVALID_KEY, "key is longer than " + std::to_string(kMaxKeyBytes));
  }
  return Status();
}

uint64_t Addr(const void* p) { return reinterpret_cast<uint64_t>(p); }

bool StaleView(ErrorCode c) {
  return c == ErrorCode::REMOTE_ACCESS_DENIED || c == ErrorCode::SEGMENT_NOT_FOUND;
}

// Memory of a StoreBufferAllocator, given back when the last owner lets go (unless the
// client is gone: see StoreClient::give_back_).
std::shared_ptr<uint8_t> FromAllocator(StoreBufferAllocator* allocator, void* data,
                                       uint64_t bytes, std::shared_ptr<bool> give_back) {
  return std::shared_ptr<uint8_t>(static_cast<uint8_t*>(data),
                                  [allocator, bytes, give_back](uint8_t* p) {
                                    if (*give_back) allocator->Free(p, bytes);
                                  });
}

std::string Describe(const TransferStatus& s) {
  return std::string(TransferStateName(s.state)) + "/" + std::string(ErrorCodeName(s.error)) +
         " after " + std::to_string(s.bytes_transferred) + " bytes";
}

}  // namespace

std::string_view StoreBugName(StoreBug bug) {
  switch (bug) {
    case StoreBug::kNone: return "none";
    case StoreBug::kGetAcceptsShortRead: return "store_get_accepts_short_read";
    case StoreBug::kUnregisteredBuffer: return "store_unregistered_buffer";
    case StoreBug::kTpFromSlicesBytes: return "store_tp_from_slices_bytes";
    case StoreBug::kTpBatchReportsInvalid: return "store_tp_batch_reports_invalid";
  }
  return "unknown";
}

Result<StoreBug> ParseStoreBug(std::string_view name) {
  std::string known;
  for (StoreBug b : kStoreBugs) {
    if (StoreBugName(b) == name) return b;
    known += (known.empty() ? "" : ", ") + std::string(StoreBugName(b));
  }
  return Status(ErrorCode::INVALID_PARAMS,
                "unknown store bug '" + std::string(name) + "' (" + known + ")");
}

StoreClient::StoreClient(Env& env, TransferEngine& engine, Messenger& messenger,
                         StoreClientOptions options)
    : env_(env),
      engine_(engine),
      name_(messenger.LocalName()),
      options_(options),
      rpc_(env, messenger, options.master, options.rpc),
      alive_(std::make_shared<bool>(true)) {}

StoreClient::~StoreClient() {
  *alive_ = false;
  *give_back_ = false;
}

Task<Result<std::string>> StoreClient::Call(MsgType type, std::string body, Deadline d) {
  uint64_t now = env_.NowNs();
  if (now >= d.at_ns) {
    co_return Status(ErrorCode::OPERATION_TIMEOUT, "store call ran out of time");
  }
  uint64_t timeout = std::min(options_.rpc.timeout_ns, d.at_ns - now);
  Result<std::string> r = co_await rpc_.Call(type, std::move(body), timeout);
  if (type != MsgType::kHeartbeat) {
    ++stats_.master_rpcs;
    stats_.master_rpc_ns += env_.NowNs() - now;
  }
  if (!r.ok()) co_return r.status();
  co_return proto::ParseResponse(*r);
}

Task<std::vector<TransferStatus>> StoreClient::Transfer(std::vector<TransferRequest> requests,
                                                        Deadline d) {
  const uint64_t start = env_.NowNs();
  std::vector<TransferStatus> out(requests.size());
  Result<BatchId> batch = engine_.AllocateBatch(requests.size());
  if (!batch.ok()) {
    for (auto& s : out) s = {TransferState::FAILED, 0, batch.code()};
    co_return out;
  }
  (void)engine_.Submit(*batch, requests);  // rejected requests are recorded FAILED
  uint64_t now = env_.NowNs();
  // The call's deadline cancels what is still pending, so no call outlives it.
  TimerId timer = env_.ScheduleAfter(d.at_ns > now ? d.at_ns - now : 0,
                                     [engine = &engine_, b = *batch, alive = alive_]() {
                                       if (*alive) (void)engine->CancelBatch(b);
                                     });
  Status waited = co_await engine_.WaitBatch(*batch);
  env_.CancelTimer(timer);
  TIDAL_ASSERT(waited.ok());
  for (size_t i = 0; i < out.size(); ++i) {
    Result<TransferStatus> s = engine_.GetStatus(*batch, i);
    TIDAL_ASSERT(s.ok() && s->state != TransferState::PENDING);
    out[i] = *s;
  }
  Status freed = engine_.FreeBatch(*batch);
  TIDAL_ASSERT(freed.ok());
  ++stats_.transfer_batches;
  stats_.transfer_ns += env_.NowNs() - start;
  co_return out;
}

Task<Result<SegmentHandle>> StoreClient::Open(const std::string& segment, bool refresh) {
  Result<SegmentHandle> h = co_await engine_.OpenSegment(segment);
  if (!refresh || !h.ok()) co_return h;
  // Our cached descriptor may predate the peer's mount: look it up again, in place, so
  // other users of this engine (process groups) keep their handle.
  Status refreshed = co_await engine_.RefreshSegment(*h);
  TIDAL_SOMETIMES(refreshed.ok(), "store.client.segment_refreshed");
  if (refreshed.code() == ErrorCode::PEER_UNREACHABLE) {
    co_return co_await engine_.OpenSegment(segment);  // restarted: the new incarnation
  }
  if (!refreshed.ok()) co_return refreshed;
  co_return h;
}

Task<Result<uint64_t>> StoreClient::MountOnMaster(uint64_t base, uint64_t size, Deadline d) {
  // Arguments are built as named locals before co_await: GCC 12 destroys brace-initialized
  // temporaries inside a co_await expression twice.
  proto::MountReq req{engine_.segment_name(), base, size};
  std::string body = proto::Encode(req);
  Result<std::string> r = co_await Call(MsgType::kMountSegment, std::move(body), d);
  if (!r.ok()) co_return r.status();
  uint64_t id = 0;
  TIDAL_CO_RETURN_IF_ERROR(proto::DecodeU64(*r, &id));
  co_return id;
}

Task<Status> StoreClient::Start() {
  std::string body;
  Result<std::string> r = co_await Call(MsgType::kRegisterClient, std::move(body), MakeDeadline());
  if (!r.ok()) co_return r.status();
  if (!started_) {
    started_ = true;
    Spawn(env_, HeartbeatLoop(alive_));
  }
  co_return Status();
}

Task<Status> StoreClient::Stop() {
  stopped_ = true;
  std::vector<uint64_t> bases;
  for (const auto& [base, m] : mounts_) bases.push_back(base);
  Status first;
  for (uint64_t base : bases) {
    Status s = co_await UnmountSegment(reinterpret_cast<void*>(base));
    if (!s.ok() && first.ok()) first = s;
  }
  co_await ReleaseReservations();
  co_await ReleaseStaging();
  co_return first;
}

Task<void> StoreClient::HeartbeatLoop(std::shared_ptr<bool> alive) {
  while (true) {
    co_await SleepFor(env_, options_.heartbeat_interval_ns);
    if (!*alive || stopped_) co_return;
    std::string body;
    Deadline d{env_.NowNs() + options_.rpc.timeout_ns};
    Result<std::string> r = co_await Call(MsgType::kHeartbeat, std::move(body), d);
    if (!*alive) co_return;
    ++stats_.heartbeats;
    std::vector<uint64_t> known;
    if (!r.ok() || !proto::DecodeU64s(*r, &known).ok()) continue;
    // A master that declared us dead dropped our mounts: lend the memory again.
    std::vector<std::pair<uint64_t, uint64_t>> lost;
    for (const auto& [base, m] : mounts_) {
      if (!m.unmounting && std::find(known.begin(), known.end(), m.id) == known.end()) {
        lost.push_back({base, m.size});
      }
    }
    for (const auto& [base, size] : lost) {
      Result<uint64_t> id = co_await MountOnMaster(base, size, MakeDeadline());
      if (!*alive) co_return;
      auto it = mounts_.find(base);
      if (id.ok() && it != mounts_.end()) {
        it->second.id = *id;
        TIDAL_REACHABLE("store.client.remounted_after_declared_dead");
        ++stats_.remounts;
      }
    }
    std::vector<TempBuffer> graves = std::move(graveyard_);
    graveyard_.clear();
    for (auto& g : graves) co_await ReleaseTemp(std::move(g));
  }
}

Task<Status> StoreClient::MountSegment(void* base, uint64_t size, Location location) {
  if (base == nullptr || size < 64) {
    co_return Status(ErrorCode::INVALID_PARAMS, "mount: null base or size below 64 bytes");
  }
  Result<uint64_t> key = co_await engine_.RegisterMemory(base, size, location);
  if (!key.ok()) co_return key.status();
  Result<uint64_t> id = co_await MountOnMaster(Addr(base), size, MakeDeadline());
  if (!id.ok()) {
    (void)co_await engine_.UnregisterMemory(base);
    co_return id.status();
  }
  mounts_[Addr(base)] = MountInfo{size, *id, false};
  co_return Status();
}

Task<Status> StoreClient::UnmountSegment(void* base) {
  auto it = mounts_.find(Addr(base));
  if (it == mounts_.end() || it->second.unmounting) {
    co_return Status(ErrorCode::INVALID_PARAMS, "unmount: no mount starts at that address");
  }
  it->second.unmounting = true;
  std::string body = proto::EncodeU64(it->second.id);
  Result<std::string> r = co_await Call(MsgType::kUnmountSegment, std::move(body), MakeDeadline());
  uint64_t drain_ns = 0;
  if (r.ok()) {
    if (Status s = proto::DecodeU64(*r, &drain_ns); !s.ok()) r = s;
  }
  // SEGMENT_NOT_FOUND: the master already dropped it (we were declared dead); the memory
  // is ours again.
  if (!r.ok() && r.code() != ErrorCode::SEGMENT_NOT_FOUND) {
    if (auto again = mounts_.find(Addr(base)); again != mounts_.end()) {
      again->second.unmounting = false;
    }
    co_return r.status();
  }
  mounts_.erase(Addr(base));
  // Readers whose leases still run may be reading this memory: keep it registered.
  TIDAL_SOMETIMES(drain_ns > 0, "store.client.unmount_waited_for_leases");
  if (drain_ns > 0) co_await SleepFor(env_, drain_ns);
  Status s = co_await engine_.UnregisterMemory(base);
  for (int i = 0; s.code() == ErrorCode::BATCH_BUSY && i < 100; ++i) {
    co_await SleepFor(env_, 10'000'000);
    s = co_await engine_.UnregisterMemory(base);
  }
  co_return s;
}

Task<Status> StoreClient::RegisterBuffer(void* addr, uint64_t size, Location location) {
  Result<uint64_t> key = co_await engine_.RegisterMemory(addr, size, location);
  co_return key.status();
}

Task<Status> StoreClient::UnregisterBuffer(void* addr) {
  co_return co_await engine_.UnregisterMemory(addr);
}

Task<Result<StoreClient::TempBuffer>> StoreClient::AllocateTemp(uint64_t bytes) {
  TIDAL_ASSERT(options_.allocator != nullptr);
  Result<void*> mem = options_.allocator->Allocate(bytes);
  if (!mem.ok()) {
    co_return Status(mem.code(), "buffer of " + std::to_string(bytes) +
                                     " bytes from the client's allocator: " +
                                     mem.status().ToString());
  }
  TempBuffer t{FromAllocator(options_.allocator, *mem, bytes, give_back_), *mem};
  Result<uint64_t> reg = co_await engine_.RegisterMemory(t.data, bytes, Location::Host());
  if (!reg.ok()) co_return reg.status();  // `t` gives the memory back
  co_return t;
}

Task<bool> StoreClient::ReleaseTemp(TempBuffer buffer) {
  Status s = co_await engine_.UnregisterMemory(buffer.data);
  // Still in use by a transfer the engine has not let go of: keep the memory alive and
  // try again on the next heartbeat, never free it under the transport.
  if (s.code() == ErrorCode::BATCH_BUSY) {
    graveyard_.push_back(std::move(buffer));
    co_return false;
  }
  co_return true;
}

Task<uint8_t*> StoreClient::TakeSlot(uint64_t size) {
  const uint64_t slot_bytes = options_.staging_slot_bytes;
  if (options_.staging_slots == 0 || slot_bytes == 0 || size == 0 || size > slot_bytes ||
      staging_.failed || staging_.registering || stopped_) {
    co_return nullptr;
  }
  if (!staging_.registered) {
    staging_.registering = true;
    const uint64_t total = slot_bytes * options_.staging_slots;
    if (options_.allocator == nullptr) {
      staging_.memory = std::shared_ptr<uint8_t>(new uint8_t[total](), std::default_delete<uint8_t[]>());
    } else {
      Result<void*> mem = options_.allocator->Allocate(total);
      if (!mem.ok()) {
        staging_.registering = false;
        staging_.failed = true;  // temporaries from the allocator, as without staging
        co_return nullptr;
      }
      staging_.memory = FromAllocator(options_.allocator, *mem, total, give_back_);
    }
    Result<uint64_t> reg =
        co_await engine_.RegisterMemory(staging_.memory.get(), total, Location::Host());
    staging_.registering = false;
    if (!reg.ok()) {
      staging_.failed = true;  // the calls register their own buffers, as without staging
      staging_.memory.reset();
      co_return nullptr;
    }
    staging_.registered = true;
    for (uint32_t i = options_.staging_slots; i > 0; --i) staging_.free.push_back(i - 1);
  }
  // Slots set aside after an incomplete transfer come back once the engine holds no
  // transfer on the staging buffer at all.
  if (staging_.free.empty() && !staging_.retired.empty() &&
      engine_.registry().InFlight(Addr(staging_.memory.get())) == 0) {
    staging_.free.insert(staging_.free.end(), staging_.retired.begin(), staging_.retired.end());
    staging_.retired.clear();
  }
  if (staging_.free.empty()) co_return nullptr;
  const uint32_t i = staging_.free.back();
  staging_.free.pop_back();
  ++stats_.staged_calls;
  co_return staging_.memory.get() + static_cast<uint64_t>(i) * slot_bytes;
}

void StoreClient::GiveSlot(uint8_t* slot, bool settled) {
  const uint8_t* base = staging_.memory.get();
  TIDAL_ASSERT(base != nullptr && slot >= base);
  const auto i = static_cast<uint32_t>(static_cast<uint64_t>(slot - base) / options_.staging_slot_bytes);
  // Unsettled, but nothing of the engine's on the staging buffer any more: settled now.
  if (settled || engine_.registry().InFlight(Addr(base)) == 0) {
    staging_.free.push_back(i);
  } else {
    staging_.retired.push_back(i);
    ++stats_.slots_retired;
  }
}

Task<void> StoreClient::ReleaseStaging() {
  if (!staging_.registered ||
      staging_.free.size() + staging_.retired.size() != options_.staging_slots) {
    co_return;  // a call still holds a slot: stays registered until the engine goes
  }
  Status s = co_await engine_.UnregisterMemory(staging_.memory.get());
  if (!s.ok()) co_return;  // BATCH_BUSY: kept, as above
  staging_.registered = false;
  staging_.memory.reset();
  staging_.free.clear();
  staging_.retired.clear();
}

// ---------------------------------------------------------------------------------------
// Put

Task<Status> StoreClient::WriteReplicas(const void* ptr, uint64_t size,
                                        const std::vector<ReplicaLocation>& replicas, Deadline d) {
  Status failure;
  for (int attempt = 0; attempt < 2; ++attempt) {
    failure = Status();
    std::vector<TransferRequest> writes;
    for (const ReplicaLocation& rep : replicas) {
      Result<SegmentHandle> h = co_await Open(rep.segment, attempt > 0);
      if (!h.ok()) {
        failure = Status(ErrorCode::TRANSFER_FAIL,
                         "put: open " + rep.segment + ": " + h.status().ToString());
        break;
      }
      writes.push_back({TransferOp::kWrite, Addr(ptr), size, *h, rep.addr});
    }
    if (!failure.ok()) break;
    std::vector<TransferStatus> done = co_await Transfer(std::move(writes), d);
    bool stale = false;
    for (size_t i = 0; i < done.size(); ++i) {
      if (done[i].state == TransferState::COMPLETED && done[i].bytes_transferred == size) continue;
      stale = stale || StaleView(done[i].error);
      if (failure.ok()) {
        failure = Status(
            env_.NowNs() >= d.at_ns ? ErrorCode::OPERATION_TIMEOUT : ErrorCode::TRANSFER_FAIL,
            "put: replica on " + replicas[i].segment + ": " + Describe(done[i]));
      }
    }
    if (failure.ok() || !stale) break;
  }
  co_return failure;
}

namespace {
// Reservations are kept per put shape: size, replica count and preferred segments.
std::string ReservationShape(uint64_t size, const ReplicateConfig& config) {
  std::string shape = std::to_string(size) + "/" + std::to_string(config.replica_num);
  for (const std::string& s : config.preferred_segments) shape += '\0' + s;
  return shape;
}
}  // namespace

Task<std::optional<Status>> StoreClient::PutReserved(const std::string& key, const void* ptr,
                                                     uint64_t size, const ReplicateConfig& config,
                                                     Deadline d) {
  constexpr uint64_t kAskAgainAfterNs = 100'000'000;
  const std::string shape = ReservationShape(size, config);
  // A reservation is written only while it is valid (a WRITE starts in its first seven
  // eighths); lapsed ones go back to the master with the next request.
  auto take = [this, &shape]() -> std::optional<PutReservation> {
    auto it = reservations_.find(shape);
    if (it == reservations_.end()) return std::nullopt;
    const uint64_t now = env_.NowNs();
    std::vector<PutReservation>& pool = it->second;
    while (!pool.empty()) {
      PutReservation r = std::move(pool.back());
      pool.pop_back();
      if (now < r.usable_until_ns) return r;
      spent_reservations_.push_back(r.id);
    }
    return std::nullopt;
  };
  std::optional<PutReservation> res = take();
  if (res) ++stats_.kept_reservations_used;
  if (!res) {
    if (env_.NowNs() < reserve_after_ns_) co_return std::nullopt;
    // One for a shape not seen before (a workload of ever new sizes then holds nothing
    // unused), put_reservations once it comes back. The shapes seen are forgotten when
    // there are many.
    if (reservations_.size() > 1024) {
      std::erase_if(reservations_, [](const auto& kv) { return kv.second.empty(); });
    }
    const bool seen = reservations_.count(shape) != 0;
    proto::PutReserveReq req{size, config, seen ? options_.put_reservations : 1u,
                             std::move(spent_reservations_)};
    spent_reservations_.clear();
    const uint64_t sent_ns = env_.NowNs();
    std::string body = proto::Encode(req);
    ++stats_.reservation_requests;
    Result<std::string> r = co_await Call(MsgType::kPutReserve, std::move(body), d);
    proto::PutReserveResp granted;
    std::vector<PutReservation>& pool = reservations_[shape];
    // No reservation (no space, too many held, an old master): the two-RPC put finds
    // and names the error itself.
    if (!r.ok() || !proto::Decode(*r, &granted).ok()) {
      reserve_after_ns_ = env_.NowNs() + kAskAgainAfterNs;
      co_return std::nullopt;
    }
    for (proto::Reservation& g : granted.reservations) {
      if (g.replicas.size() != config.replica_num) {
        spent_reservations_.push_back(g.id);  // not what was asked: give it back
        continue;
      }
      const uint64_t valid_until = sent_ns + granted.valid_ns;
      pool.push_back(
          {g.id, std::move(g.replicas), valid_until, valid_until - granted.valid_ns / 8});
    }
    res = take();
    if (!res) {
      TIDAL_REACHABLE("store.client.reservations_lapsed_on_arrival");
      reserve_after_ns_ = env_.NowNs() + kAskAgainAfterNs;
      co_return std::nullopt;
    }
  }
  TIDAL_REACHABLE("store.client.put_through_a_reservation");
  // The WRITE ends (or is cancelled) by the reservation's validity, after which the master
  // may reclaim it.
  const Deadline write_by{std::min(d.at_ns, res->valid_until_ns)};
  Status failure = co_await WriteReplicas(ptr, size, res->replicas, write_by);
  if (!failure.ok()) {
    // What was written is garbage in memory no object uses: give it back.
    spent_reservations_.push_back(res->id);
    if (env_.NowNs() < d.at_ns && failure.code() == ErrorCode::OPERATION_TIMEOUT) {
      ++stats_.reservation_fallbacks;  // cut off by the validity, not the call's deadline
      co_return std::nullopt;
    }
    co_return failure;
  }
  proto::PutCommitReq req{key, res->id, size, config};
  std::string body = proto::Encode(req);
  Result<std::string> r = co_await Call(MsgType::kPutCommit, std::move(body), d);
  if (r.ok()) {
    ++stats_.reserved_puts;
    co_return Status();
  }
  switch (r.code()) {
    case ErrorCode::OBJECT_ALREADY_EXISTS:
    case ErrorCode::INVALID_KEY:
      // Refused, the reservation still ours and unused by any object: keep it.
      reservations_[shape].push_back(std::move(*res));
      co_return r.status();
    case ErrorCode::OBJECT_NOT_FOUND:
      // Reclaimed (we were declared dead, the master restarted, a holder went): so, most
      // likely, is every other one we keep. Forget them and put the two-RPC way.
      TIDAL_REACHABLE("store.client.reservation_reclaimed_before_commit");
      SpendAllReservations();
      ++stats_.reservation_fallbacks;
      co_return std::nullopt;
    default:
      // Unknown whether the commit happened (RPC errors): never write there again.
      co_return r.status();
  }
}

void StoreClient::SpendAllReservations() {
  for (auto& [shape, pool] : reservations_) {
    for (const PutReservation& r : pool) spent_reservations_.push_back(r.id);
  }
  reservations_.clear();
}

Task<void> StoreClient::ReleaseReservations() {
  SpendAllReservations();
  std::vector<uint64_t> ids = std::move(spent_reservations_);
  spent_reservations_.clear();
  if (ids.empty()) co_return;
  std::string body = proto::EncodeU64s(ids);
  (void)co_await Call(MsgType::kPutRelease, std::move(body), MakeDeadline());
}

Task<Status> StoreClient::PutImpl(std::string key, const void* ptr, uint64_t size,
                                  ReplicateConfig config, Deadline d) {
  TIDAL_CO_RETURN_IF_ERROR(KeyCheck(key));
  if (ptr == nullptr || size == 0 || size > options_.max_object_bytes) {
    co_return Status(ErrorCode::INVALID_PARAMS, "put: null buffer, size 0 or above the limit");
  }
  if (config.replica_num == 0 || config.replica_num > kMaxReplicas) {
    co_return Status(ErrorCode::INVALID_PARAMS, "put: replica_num out of range");
  }
  // Field bug 4: an unregistered source fails before anything is allocated or moved.
  Result<RegionInfo> local = engine_.registry().FindLocal(Addr(ptr), size);
  if (!local.ok() && options_.planted_bug != StoreBug::kUnregisteredBuffer) {
    co_return local.status();
  }

  DropCachedList(key);  // whatever this put finds, an older list is not ours to trust
  if (options_.put_reservations > 0 && size <= options_.put_reservation_max_bytes) {
    std::optional<Status> done = co_await PutReserved(key, ptr, size, config, d);
    if (done.has_value()) co_return *done;
  }
  proto::PutStartReq req{key, size, config};
  std::string body = proto::Encode(req);
  Result<std::string> r = co_await Call(MsgType::kPutStart, std::move(body), d);
  if (!r.ok()) co_return r.status();
  proto::PutStartResp placed;
  TIDAL_CO_RETURN_IF_ERROR(proto::Decode(*r, &placed));

  Status failure;
  // The placement is the master's answer, remote data: a replica count other than the one
  // asked for is corrupt input, and the placement is revoked below like any failed put.
  const bool placed_ok = placed.replicas.size() == config.replica_num;
  if (!placed_ok) {
    failure = Status(ErrorCode::CORRUPT_INPUT,
                     "put start response: field 'replicas' holds " +
                         std::to_string(placed.replicas.size()) + ", asked for " +
                         std::to_string(config.replica_num));
  }
  if (placed_ok) failure = co_await WriteReplicas(ptr, size, placed.replicas, d);
  proto::KeyGen kg{key, placed.generation};
  if (!failure.ok()) {
    TIDAL_REACHABLE("store.client.put_failed_and_revoked");
    if (env_.NowNs() < d.at_ns) {
      std::string body = proto::Encode(kg);
      (void)co_await Call(MsgType::kPutRevoke, std::move(body), d);
    }
    co_return failure;
  }
  std::string end_body = proto::Encode(kg);
  Result<std::string> end = co_await Call(MsgType::kPutEnd, std::move(end_body), d);
  co_return end.status();
}

Task<Status> StoreClient::PutFrom(std::string key, const void* ptr, uint64_t size,
                                  ReplicateConfig config) {
  co_return co_await PutImpl(std::move(key), ptr, size, std::move(config), MakeDeadline());
}

Task<Status> StoreClient::PutOwned(std::string key, std::string data, ReplicateConfig config,
                                   Deadline d) {
  TIDAL_CO_RETURN_IF_ERROR(KeyCheck(key));
  if (data.empty()) co_return Status(ErrorCode::INVALID_PARAMS, "put: empty value");
  uint8_t* slot = co_await TakeSlot(data.size());
  if (slot != nullptr) {
    std::memcpy(slot, data.data(), data.size());
    Status s = co_await PutImpl(std::move(key), slot, data.size(), std::move(config), d);
    GiveSlot(slot, s.ok());
    co_return s;
  }
  if (options_.allocator != nullptr) {
    // Only the allocator's memory can be moved: copy the value there.
    Result<TempBuffer> temp = co_await AllocateTemp(data.size());
    if (!temp.ok()) co_return temp.status();
    std::memcpy(temp->data, data.data(), data.size());
    Status s = co_await PutImpl(std::move(key), temp->data, data.size(), std::move(config), d);
    co_await ReleaseTemp(std::move(*temp));
    co_return s;
  }
  // The value's own memory is registered: no copy.
  auto buffer = std::make_shared<std::string>(std::move(data));
  Result<uint64_t> reg =
      co_await engine_.RegisterMemory(buffer->data(), buffer->size(), Location::Host());
  if (!reg.ok()) co_return reg.status();
  Status s = co_await PutImpl(std::move(key), buffer->data(), buffer->size(), std::move(config), d);
  TempBuffer temp{buffer, buffer->data()};  // a named local: GCC 12 and co_await
  co_await ReleaseTemp(std::move(temp));
  co_return s;
}

Task<Status> StoreClient::Put(std::string key, std::string value, ReplicateConfig config) {
  co_return co_await PutOwned(std::move(key), std::move(value), std::move(config), MakeDeadline());
}

// ---------------------------------------------------------------------------------------
// Get

Task<Result<StoreClient::LeasedList>> StoreClient::Lookup(std::string key, uint64_t generation,
                                                          Deadline d) {
  TIDAL_CO_RETURN_IF_ERROR(KeyCheck(key));
  proto::KeyGen req{key, generation};
  std::string body = proto::Encode(req);
  // The lease runs from when we asked (the master granted it no earlier), so its deadline
  // on our clock is never later than the master's.
  const uint64_t sent_ns = env_.NowNs();
  Result<std::string> r = co_await Call(MsgType::kGetReplicaList, std::move(body), d);
  if (!r.ok()) co_return r.status();
  proto::ReplicaListResp resp;
  TIDAL_CO_RETURN_IF_ERROR(proto::Decode(*r, &resp));
  LeasedList list;
  list.size = resp.size;
  list.generation = resp.generation;
  list.lease_deadline_ns = sent_ns + resp.lease_ttl_ns;
  list.replicas = std::move(resp.replicas);
  co_return list;
}

const StoreClient::LeasedList* StoreClient::CachedList(const std::string& key,
                                                       uint64_t generation) {
  if (!options_.cache_leased_replicas) return nullptr;
  auto it = lease_cache_.find(key);
  if (it == lease_cache_.end()) return nullptr;
  if (env_.NowNs() >= it->second.list.lease_deadline_ns) {
    DropCachedList(key);
    return nullptr;
  }
  if (generation != 0 && it->second.list.generation != generation) return nullptr;
  return &it->second.list;
}

void StoreClient::DropCachedList(const std::string& key) {
  auto it = lease_cache_.find(key);
  if (it == lease_cache_.end()) return;
  lease_deadlines_.erase(it->second.by_deadline);
  lease_cache_.erase(it);
}

void StoreClient::DropLapsedLists(uint64_t now) {
  while (!lease_deadlines_.empty() && lease_deadlines_.begin()->first <= now) {
    lease_cache_.erase(lease_deadlines_.begin()->second);
    lease_deadlines_.erase(lease_deadlines_.begin());
  }
}

void StoreClient::CacheList(const std::string& key, const LeasedList& list) {
  if (!options_.cache_leased_replicas) return;
  DropLapsedLists(env_.NowNs());  // each entry leaves once: no pass over the whole cache
  DropCachedList(key);
  if (lease_cache_.size() >= options_.lease_cache_entries) return;  // full of running leases
  auto at = lease_deadlines_.emplace(list.lease_deadline_ns, key);
  lease_cache_.emplace(key, CachedLeasedList{list, at});
}

Task<Result<uint64_t>> StoreClient::ReadReplicas(std::string key, const LeasedList& list,
                                                 void* ptr, uint64_t capacity, bool cached,
                                                 Deadline d) {
  if (list.size > capacity) {
    co_return Status(ErrorCode::INVALID_PARAMS, "get: capacity " + std::to_string(capacity) +
                                                    " is below the object's " +
                                                    std::to_string(list.size) + " bytes");
  }
  if (list.replicas.empty()) co_return Status(ErrorCode::OBJECT_NOT_FOUND, "get: no replica");
  const size_t n = list.replicas.size();
  const size_t start = env_.RandomBelow(n);
  std::string errors;
  for (size_t k = 0; k < n; ++k) {
    const ReplicaLocation& rep = list.replicas[(start + k) % n];
    TransferStatus st{TransferState::FAILED, 0, ErrorCode::INVALID_PARAMS};
    for (int attempt = 0; attempt < 2; ++attempt) {
      Result<SegmentHandle> h = co_await Open(rep.segment, attempt > 0);
      if (!h.ok()) {
        st = {TransferState::FAILED, 0, h.code()};
        break;
      }
      std::vector<TransferRequest> read{{TransferOp::kRead, Addr(ptr), list.size, *h, rep.addr}};
      std::vector<TransferStatus> done = co_await Transfer(std::move(read), d);
      st = done[0];
      if (!StaleView(st.error)) break;
    }
    // Field bug 3: success only when every byte arrived.
    const bool planted_short = options_.planted_bug == StoreBug::kGetAcceptsShortRead &&
                               st.error == ErrorCode::TRANSFER_INCOMPLETE;
    if ((st.state == TransferState::COMPLETED && st.bytes_transferred == list.size) ||
        planted_short) {
      if (env_.NowNs() > list.lease_deadline_ns) {
        if (!cached) {
          TIDAL_REACHABLE("store.client.lease_expired_mid_read");
          ++stats_.lease_expired;
        }
        co_return Status(ErrorCode::LEASE_EXPIRED,
                         "get '" + key + "': the lease lapsed before the read finished");
      }
      co_return list.size;
    }
    ++stats_.replica_read_failures;
    TIDAL_SOMETIMES(k + 1 < n, "store.client.read_fell_over_to_next_replica");
    errors += (errors.empty() ? "" : "; ") + rep.segment + ": " + Describe(st);
    if (env_.NowNs() >= d.at_ns) {
      co_return Status(ErrorCode::OPERATION_TIMEOUT, "get '" + key + "': " + errors);
    }
  }
  co_return Status(ErrorCode::TRANSFER_FAIL, "get '" + key + "': no replica read whole: " + errors);
}

Task<Result<uint64_t>> StoreClient::GetImpl(std::string key, void* ptr, uint64_t capacity,
                                            GetOptions options, Deadline d) {
  TIDAL_CO_RETURN_IF_ERROR(KeyCheck(key));
  if (ptr == nullptr || capacity == 0) {
    co_return Status(ErrorCode::INVALID_PARAMS, "get: null buffer or capacity 0");
  }
  Result<RegionInfo> local = engine_.registry().FindLocal(Addr(ptr), capacity);
  if (!local.ok() && options_.planted_bug != StoreBug::kUnregisteredBuffer) {
    co_return local.status();
  }
  if (const LeasedList* hit = CachedList(key, options.generation)) {
    LeasedList cached = *hit;  // the entry may go while the read is suspended
    Result<uint64_t> n = co_await ReadReplicas(key, cached, ptr, capacity, true, d);
    if (n.ok()) {
      ++stats_.cached_gets;
      co_return n;
    }
    // Whatever went wrong, the master decides, as without the cache.
    lease_cache_.erase(key);
    ++stats_.cached_get_fallbacks;
  }
  Result<LeasedList> list = co_await Lookup(key, options.generation, d);
  if (!list.ok()) co_return list.status();
  Result<uint64_t> n = co_await ReadReplicas(key, *list, ptr, capacity, false, d);
  if (n.ok()) CacheList(key, *list);
  co_return n;
}

Task<Result<uint64_t>> StoreClient::GetInto(std::string key, void* ptr, uint64_t capacity,
                                            GetOptions options) {
  co_return co_await GetImpl(std::move(key), ptr, capacity, options, MakeDeadline());
}

Task<Result<std::string>> StoreClient::ReadOwned(std::string key, LeasedList list, bool cached,
                                                 Deadline d) {
  if (list.size == 0 || list.size > options_.max_object_bytes) {
    co_return Status(ErrorCode::CORRUPT_INPUT, "get: the master reported a bad size");
  }
  uint8_t* slot = co_await TakeSlot(list.size);
  if (slot != nullptr) {
    Result<uint64_t> n = co_await ReadReplicas(key, list, slot, list.size, cached, d);
    Result<std::string> out =
        n.ok() ? Result<std::string>(std::string(reinterpret_cast<const char*>(slot), *n))
               : Result<std::string>(n.status());
    GiveSlot(slot, n.ok());
    co_return out;
  }
  if (options_.allocator != nullptr) {
    // Only the allocator's memory can be moved: read there, then copy out.
    Result<TempBuffer> temp = co_await AllocateTemp(list.size);
    if (!temp.ok()) co_return temp.status();
    Result<uint64_t> n = co_await ReadReplicas(key, list, temp->data, list.size, cached, d);
    Result<std::string> out =
        n.ok() ? Result<std::string>(std::string(static_cast<const char*>(temp->data), *n))
               : Result<std::string>(n.status());
    co_await ReleaseTemp(std::move(*temp));
    co_return out;
  }
  // Read straight into the string that is returned: no copy.
  auto buffer = std::make_shared<std::string>(list.size, '\0');
  Result<uint64_t> reg =
      co_await engine_.RegisterMemory(buffer->data(), buffer->size(), Location::Host());
  if (!reg.ok()) co_return reg.status();
  Result<uint64_t> n = co_await ReadReplicas(key, list, buffer->data(), buffer->size(), cached, d);
  if (!n.ok()) {
    TempBuffer temp{buffer, buffer->data()};  // a named local: GCC 12 and co_await
    co_await ReleaseTemp(std::move(temp));
    co_return n.status();
  }
  std::shared_ptr<std::string> keep = buffer;
  TempBuffer temp{std::move(buffer), keep->data()};
  const bool released = co_await ReleaseTemp(std::move(temp));
  // Still held by the engine (it is in the graveyard): hand out a copy instead.
  std::string out = released ? std::move(*keep) : keep->substr(0, *n);
  out.resize(*n);
  co_return out;
}

Task<Result<std::string>> StoreClient::GetOwned(std::string key, GetOptions options, Deadline d) {
  TIDAL_CO_RETURN_IF_ERROR(KeyCheck(key));
  if (const LeasedList* hit = CachedList(key, options.generation)) {
    LeasedList cached = *hit;  // the entry may go while the read is suspended
    Result<std::string> v = co_await ReadOwned(key, std::move(cached), true, d);
    if (v.ok()) {
      ++stats_.cached_gets;
      co_return v;
    }
    lease_cache_.erase(key);  // the master decides, as without the cache
    ++stats_.cached_get_fallbacks;
  }
  Result<LeasedList> list = co_await Lookup(key, options.generation, d);
  if (!list.ok()) co_return list.status();
  LeasedList got = *list;
  Result<std::string> v = co_await ReadOwned(key, std::move(got), false, d);
  if (v.ok()) CacheList(key, *list);
  co_return v;
}

Task<Result<std::string>> StoreClient::Get(std::string key, GetOptions options) {
  co_return co_await GetOwned(std::move(key), options, MakeDeadline());
}

Task<Result<ObjectInfo>> StoreClient::Stat(std::string key) {
  TIDAL_CO_RETURN_IF_ERROR(KeyCheck(key));
  std::string body = proto::EncodeKey(key);
  Result<std::string> r = co_await Call(MsgType::kStat, std::move(body), MakeDeadline());
  if (!r.ok()) co_return r.status();
  ObjectInfo info;
  TIDAL_CO_RETURN_IF_ERROR(proto::DecodeInfo(*r, &info));
  co_return info;
}

Task<Result<uint64_t>> StoreClient::GetSize(std::string key) {
  Result<ObjectInfo> info = co_await Stat(std::move(key));
  if (!info.ok()) co_return info.status();
  co_return info->size;
}

Task<Status> StoreClient::Remove(std::string key, bool force) {
  TIDAL_CO_RETURN_IF_ERROR(KeyCheck(key));
  lease_cache_.erase(key);
  proto::RemoveReq req{key, force};
  std::string body = proto::Encode(req);
  Result<std::string> r = co_await Call(MsgType::kRemove, std::move(body), MakeDeadline());
  co_return r.status();
}

Task<Result<bool>> StoreClient::Exists(std::string key) {
  Result<ObjectInfo> info = co_await Stat(std::move(key));
  if (info.ok()) co_return true;
  if (info.code() == ErrorCode::OBJECT_NOT_FOUND ||
      info.code() == ErrorCode::REPLICA_IS_NOT_READY) {
    co_return false;
  }
  co_return info.status();
}

}  // namespace tidal::store
