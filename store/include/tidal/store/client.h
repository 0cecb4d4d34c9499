// StoreClient: one node's handle on the store. It talks to the master over RPC (metadata)
// and moves object bytes itself, client to client, through its TransferEngine.
//
// Every call is a coroutine on the client's Env executor (co_await it, or RunBlocking at
// the outermost layer). The client is not thread-safe: call it from its Env only. Calls
// may run concurrently with each other (several coroutines), they share nothing but the
// RPC client.
//
// Ownership: arguments are taken by value; raw pointers (PutFrom, GetInto, the batch and
// tensor "From/Into" forms, TensorView data) must stay valid until the call finishes.
// Zero-copy calls need those buffers registered (RegisterBuffer, or inside a mounted
// segment); otherwise they fail with ADDRESS_NOT_REGISTERED and move nothing.
//
// Errors every data call can also return: RPC_TIMEOUT / RPC_FAIL (the master did not
// answer), OPERATION_TIMEOUT (the call outlived options.op_timeout_ns),
// CORRUPT_INPUT (a malformed answer). Each call lists its own codes below.
//
// Generations (field bug 7): every put gets a new, larger generation from the master.
// Stat returns it; GetInto/Get with GetOptions{.generation = g} fail with
// OBJECT_NOT_FOUND unless the stored object is still generation g, so a reader holding an
// old reference never reads a newer (or mixed) object. Independently, the master never
// reuses memory a running lease can read, and every get checks its lease after the read
// (LEASE_EXPIRED), so a successful get returns the complete bytes of one generation.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "tidal/env.h"
#include "tidal/messenger.h"
#include "tidal/status.h"
#include "tidal/store/rpc.h"
#include "tidal/store/tensor.h"
#include "tidal/store/types.h"
#include "tidal/task.h"
#include "tidal/transfer_engine.h"

namespace tidal::store {

// Planted bugs: deliberate defects the bug zoo (tidal-sim zoo) switches on one at a time
// through StoreClientOptions::planted_bug, to measure whether the campaigns catch them.
// Default kNone; nothing but the zoo and its tests sets it.
enum class StoreBug : uint8_t {
  kNone,
  kGetAcceptsShortRead,  // field bug 3: a short replica read is returned as the object
  kUnregisteredBuffer,   // field bug 4: put/get from a buffer the engine never registered
                         // go to the master (and the transport) instead of failing first
  kTpFromSlicesBytes,    // field bug 5: PutTensorWithTpFrom slices the serialized full
                         // tensor by bytes instead of splitting it along split_dim
  kTpBatchReportsInvalid,  // field bug 6: a successful tensor-parallel batch put leaves
                           // its slots at the initial INVALID_PARAMS
};
inline constexpr StoreBug kStoreBugs[] = {StoreBug::kNone, StoreBug::kGetAcceptsShortRead,
                                          StoreBug::kUnregisteredBuffer,
                                          StoreBug::kTpFromSlicesBytes,
                                          StoreBug::kTpBatchReportsInvalid};
std::string_view StoreBugName(StoreBug bug);
Result<StoreBug> ParseStoreBug(std::string_view name);

// Where a client's own buffers come from (the staging slots, and the temporary buffers of
// Put and Get for values that do not fit a slot). Without one (the default) the client
// uses the heap and registers a Put's value and a Get's result string in place. A fabric
// whose transport can only move memory it shares (ucx_proc: the nodes are processes that
// see one arena) gives one; the client then copies every value through memory from it.
// Host memory only. Must outlive the client.
class StoreBufferAllocator {
 public:
  virtual ~StoreBufferAllocator() = default;
  // `bytes` of host memory, or an error naming why not (the client passes it on).
  virtual Result<void*> Allocate(uint64_t bytes) = 0;
  // Gives back what Allocate returned, with the same size; the client unregistered it
  // first.
  virtual void Free(void* data, uint64_t bytes) = 0;
};

struct StoreClientOptions {
  std::string master = "master";               // the master's messenger endpoint
  RpcOptions rpc;                              // per-RPC timeout and resend interval
  uint64_t op_timeout_ns = 10'000'000'000ULL;  // whole-call deadline
  uint64_t heartbeat_interval_ns = 1'000'000'000ULL;
  uint64_t max_object_bytes = 1ULL << 40;  // larger puts are INVALID_PARAMS
  StoreBug planted_bug = StoreBug::kNone;  // the bug zoo only
  // Staging for Put and Get (the calls that copy): `staging_slots` slots of
  // `staging_slot_bytes` in one buffer the client registers with the engine once, on the
  // first call that fits a slot, and keeps until Stop(). A value that fits a slot is
  // copied through one instead of registering a temporary buffer per call (a registration
  // is a transport call and a descriptor publish, two round trips on a real node). A
  // slot whose read or write did not complete is not reused until the engine reports no
  // transfer on the staging buffer. 0 slots: off (every call registers its own buffer).
  // A client destroyed without Stop() leaves the buffer registered until the engine
  // goes, so set it only where the engine does not outlive the client (RealNode does).
  uint32_t staging_slots = 0;
  uint64_t staging_slot_bytes = 64ull << 10;
  // The client's own buffers (staging and temporaries) come from here; null: the heap.
  // Not owned; must outlive the client.
  StoreBufferAllocator* allocator = nullptr;
  // Cached gets (off by default). A get that read the object whole keeps the master's
  // replica list while the lease the master granted with it runs (measured, as always,
  // from when the client asked), up to `lease_cache_entries` keys. A later get of that key
  // (with no generation, or the cached one) reads the cached replicas without asking the
  // master. What such a read promises:
  //  - the complete bytes of exactly the cached generation, never torn or mixed: the
  //    master does not reuse memory a running lease can read, and the read counts only if
  //    the lease still runs when it has ended (the same guarantee as any get's read);
  //  - NOT the newest state: a Remove, or a Remove and a new Put, made by another client
  //    while this client's lease runs is seen only after that lease lapses (at most
  //    MasterOptions::lease_ttl_ns after this client last asked the master). This
  //    client's own Put and Remove of the key drop its entry. A get with
  //    GetOptions::generation = g may return g's bytes although g was removed meanwhile.
  //  - a cached read does not extend the master's lease;
  //  - a cached read that fails in any way (lease lapsed, a holder gone, refused, short)
  //    drops the entry and the get asks the master, as without the cache, so the codes a
  //    get returns are unchanged.
  bool cache_leased_replicas = false;
  uint32_t lease_cache_entries = 65536;
  // Put reservations (0: off, the default). A put of at most put_reservation_max_bytes
  // writes into memory the master placed before the key was known (a reservation) and
  // then makes the object complete with one RPC (PutCommit), instead of asking for a
  // placement (PutStart) before its WRITE and finishing it (PutEnd) after. The client asks
  // for one reservation the first time it puts a shape (size, replica count, preferred
  // segments), then for `put_reservations` at a time whenever it has none of that shape
  // left, and keeps what it did not use for the next puts of that shape. What does not
  // change: a put is acknowledged only after its bytes are written and the master made the
  // object complete, with a new generation; its codes are a put's codes. What does: the
  // first two puts of a shape take two RPCs each (reserve, commit), then one each until
  // the reservations run out; an OBJECT_ALREADY_EXISTS is found after the WRITE (into memory
  // no object uses); space is held by unused reservations (at most put_reservations per
  // shape) until they are used, given back at Stop(), or lapse (MasterState::Reserve).
  // A reservation is written only while it is valid (a WRITE starts in the first seven
  // eighths of its validity), and its WRITE is cancelled when it stops being valid; a put
  // that cannot use one (none granted, one reclaimed before the commit, a WRITE cut off by
  // the validity) takes the two-RPC path. A request that brought nothing usable (refused:
  // no room or the client's limit; failed; a validity too short to use) is not repeated
  // for 100 ms, for any shape: puts meanwhile take two RPCs, not three.
  uint32_t put_reservations = 0;
  uint64_t put_reservation_max_bytes = 64ull << 10;
};

struct GetOptions {
  uint64_t generation = 0;  // non-zero: fail with OBJECT_NOT_FOUND unless this generation
};

struct StoreClientStats {
  uint64_t replica_read_failures = 0;  // reads that fell over to the next replica
  uint64_t lease_expired = 0;
  uint64_t heartbeats = 0;
  uint64_t remounts = 0;
  uint64_t staged_calls = 0;   // Put/Get calls that went through a staging slot
  uint64_t slots_retired = 0;  // slots set aside after a transfer that did not complete
  uint64_t cached_gets = 0;          // gets served from a cached replica list (no master RPC)
  uint64_t cached_get_fallbacks = 0;  // cached reads that failed and asked the master
  uint64_t reserved_puts = 0;         // puts made complete by one PutCommit
  uint64_t reservation_requests = 0;  // PutReserve RPCs
  uint64_t kept_reservations_used = 0;  // puts that wrote into one kept from a request before
  uint64_t reservation_fallbacks = 0;  // puts that tried a reservation and took two RPCs
  // Where calls spend their time, on the Env clock: the master RPCs the calls made
  // (heartbeats not counted) and the transfer batches (a put's WRITEs, a get's READs), each
  // from its start to its answer. A call's time beyond the two is the client's own work and
  // its event loop's queue.
  uint64_t master_rpcs = 0;
  uint64_t master_rpc_ns = 0;
  uint64_t transfer_batches = 0;
  uint64_t transfer_ns = 0;
};

class StoreClient {
 public:
  // `env`, `engine` and `messenger` must outlive the client; the client owns the
  // messenger's receiver. The engine must be started.
  StoreClient(Env& env, TransferEngine& engine, Messenger& messenger,
              StoreClientOptions options = {});
  ~StoreClient();
  StoreClient(const StoreClient&) = delete;
  StoreClient& operator=(const StoreClient&) = delete;

  // Registers with the master and starts heartbeats. RPC_TIMEOUT / RPC_FAIL.
  Task<Status> Start();
  // Closes the client: unmounts every segment (gracefully, see UnmountSegment) and stops
  // heartbeats. Final (Start does not restart it); reads still work, but the master
  // forgets the client after its TTL, reclaiming any put it leaves unfinished. Waits for
  // running leases on its segments (up to MasterOptions::lease_ttl_ns). Returns the first
  // unmount error, if any.
  Task<Status> Stop();

  // Registers [base, base+size) with the engine and lends it to the store as a segment.
  // INVALID_PARAMS (null, size below 64 bytes), ADDRESS_OVERLAPPED, REGISTRATION_FAILED,
  // RPC errors (the registration is undone).
  Task<Status> MountSegment(void* base, uint64_t size, Location location = Location::Host());
  // Graceful: the master stops placing there, objects with replicas elsewhere stay
  // readable (field bug 9), objects whose only replicas were here are removed; the call
  // waits until running leases on the segment lapse, then unregisters the memory.
  // INVALID_PARAMS if no mount starts at `base`; RPC errors.
  Task<Status> UnmountSegment(void* base);

  // Registers a buffer for zero-copy calls. INVALID_PARAMS, ADDRESS_OVERLAPPED,
  // REGISTRATION_FAILED (see TransferEngine::RegisterMemory).
  Task<Status> RegisterBuffer(void* addr, uint64_t size, Location location = Location::Host());
  // INVALID_PARAMS (not registered here), BATCH_BUSY.
  Task<Status> UnregisterBuffer(void* addr);

  // Stores `value` under `key` (copies it into a temporary registered buffer).
  // OK, INVALID_KEY (empty/too long), INVALID_PARAMS (empty value, bad config),
  // OBJECT_ALREADY_EXISTS, NO_AVAILABLE_HANDLE, TRANSFER_FAIL (a replica write failed;
  // the put is revoked), OBJECT_NOT_FOUND (the master reclaimed the put meanwhile).
  Task<Status> Put(std::string key, std::string value, ReplicateConfig config = {});
  // The object's bytes. INVALID_KEY, OBJECT_NOT_FOUND, REPLICA_IS_NOT_READY,
  // TRANSFER_FAIL (no replica could be read whole), LEASE_EXPIRED.
  Task<Result<std::string>> Get(std::string key, GetOptions options = {});

  // Zero-copy put from a registered buffer. As Put, plus INVALID_PARAMS (null ptr, size 0
  // or above options.max_object_bytes) and ADDRESS_NOT_REGISTERED (checked before the
  // master is asked: nothing is allocated and nothing moves).
  Task<Status> PutFrom(std::string key, const void* ptr, uint64_t size,
                       ReplicateConfig config = {});
  // Zero-copy get into [ptr, ptr+capacity), which must be registered. Returns the object's
  // size, and only when every byte of it arrived (field bug 3). INVALID_PARAMS (null,
  // capacity 0, or capacity below the object's size: nothing is read),
  // ADDRESS_NOT_REGISTERED, plus Get's codes. On failure the buffer's contents are
  // unspecified.
  Task<Result<uint64_t>> GetInto(std::string key, void* ptr, uint64_t capacity,
                                 GetOptions options = {});
  // Size of a complete object. INVALID_KEY, OBJECT_NOT_FOUND, REPLICA_IS_NOT_READY.
  Task<Result<uint64_t>> GetSize(std::string key);
  // Size and generation of a complete object; codes as GetSize.
  Task<Result<ObjectInfo>> Stat(std::string key);

  // One result per key. Every slot starts as INVALID_PARAMS and only a real success
  // overwrites it; vectors of different lengths leave every slot INVALID_PARAMS.
  Task<std::vector<Status>> BatchPutFrom(std::vector<std::string> keys,
                                         std::vector<const void*> ptrs, std::vector<uint64_t> sizes,
                                         ReplicateConfig config = {});
  Task<std::vector<Result<uint64_t>>> BatchGetInto(std::vector<std::string> keys,
                                                   std::vector<void*> ptrs,
                                                   std::vector<uint64_t> capacities);

  // OK, INVALID_KEY, OBJECT_NOT_FOUND, REPLICA_IS_NOT_READY (being written; force removes
  // it), OBJECT_HAS_LEASE (a lease runs or it is hard-pinned; force removes it anyway, the
  // memory is reused only after the lease).
  Task<Status> Remove(std::string key, bool force = false);
  // True for a complete object, false if missing or being written. INVALID_KEY.
  Task<Result<bool>> Exists(std::string key);
  // One result per key (INVALID_KEY per bad key), in one RPC.
  Task<std::vector<Result<bool>>> BatchExists(std::vector<std::string> keys);

  // Tensors are stored serialized (tensor.h). The view's data must stay valid until the
  // call ends. PutTensor: INVALID_PARAMS (inconsistent view) plus Put's codes.
  Task<Status> PutTensor(std::string key, TensorView tensor, ReplicateConfig config = {});
  // INVALID_PARAMS if the stored bytes are not a valid serialized tensor, plus Get's codes.
  Task<Result<Tensor>> GetTensor(std::string key);
  // Splits the FULL tensor along split_dim into tp_size equal shards and stores every
  // shard as "<key>_tp_<rank>". INVALID_PARAMS (tp_size 0, split_dim >= rank, a dimension
  // that does not divide, bad view) before anything is stored; otherwise the first failing
  // shard's code (shards already stored stay).
  Task<Status> PutTensorWithTp(std::string key, TensorView full, uint32_t tp_size,
                               uint32_t split_dim, ReplicateConfig config = {});
  // The same from a registered buffer holding a serialized FULL tensor (header + data),
  // which is decoded and validated first (field bug 5). ADDRESS_NOT_REGISTERED,
  // INVALID_PARAMS (null, bad header, bad split) plus PutTensorWithTp's codes.
  Task<Status> PutTensorWithTpFrom(std::string key, const void* buffer, uint64_t size,
                                   uint32_t tp_size, uint32_t split_dim,
                                   ReplicateConfig config = {});
  // One result per key; each slot starts INVALID_PARAMS and a fully stored tensor reports
  // OK (field bug 6).
  Task<std::vector<Status>> BatchPutTensorWithTpFrom(std::vector<std::string> keys,
                                                     std::vector<const void*> buffers,
                                                     std::vector<uint64_t> sizes, uint32_t tp_size,
                                                     uint32_t split_dim,
                                                     ReplicateConfig config = {});
  // Reads shard tp_rank of a tensor put with tp_size shards. INVALID_PARAMS (tp_size 0,
  // tp_rank >= tp_size, bad stored bytes) plus GetTensor's codes.
  Task<Result<Tensor>> GetTensorWithTp(std::string key, uint32_t tp_rank, uint32_t tp_size);
  // The serialized shard into a registered buffer; returns its length. As GetInto, plus
  // INVALID_PARAMS for tp_size 0 / tp_rank >= tp_size or stored bytes that are not a tensor.
  Task<Result<uint64_t>> GetTensorWithTpInto(std::string key, uint32_t tp_rank, uint32_t tp_size,
                                             void* buffer, uint64_t capacity);

  static std::string TpKey(const std::string& key, uint32_t rank) {
    return key + "_tp_" + std::to_string(rank);
  }

  const StoreClientStats& stats() const { return stats_; }
  const std::string& name() const { return name_; }
  RpcClient& rpc() { return rpc_; }

 private:
  struct MountInfo {
    uint64_t size = 0;
    uint64_t id = 0;  // the master's mount id
    bool unmounting = false;
  };
  struct Deadline {
    uint64_t at_ns;
  };
  // A replica list and the lease under which it may be read.
  struct LeasedList {
    uint64_t size = 0;
    uint64_t generation = 0;
    uint64_t lease_deadline_ns = 0;  // the client's clock; never later than the master's
    std::vector<ReplicaLocation> replicas;
  };
  Deadline MakeDeadline() const { return {env_.NowNs() + options_.op_timeout_ns}; }
  Task<Result<std::string>> Call(MsgType type, std::string body, Deadline d);
  Task<std::vector<TransferStatus>> Transfer(std::vector<TransferRequest> requests, Deadline d);
  Task<Status> PutImpl(std::string key, const void* ptr, uint64_t size, ReplicateConfig config,
                       Deadline d);
  // Writes [ptr, ptr+size) to every replica (opening a replica's segment again once when
  // its view was stale). OK, or TRANSFER_FAIL / OPERATION_TIMEOUT naming the replica.
  Task<Status> WriteReplicas(const void* ptr, uint64_t size,
                             const std::vector<ReplicaLocation>& replicas, Deadline d);
  // The put through a reservation (options.put_reservations); nullopt when the put must
  // take the two-RPC path instead.
  Task<std::optional<Status>> PutReserved(const std::string& key, const void* ptr, uint64_t size,
                                          const ReplicateConfig& config, Deadline d);
  // Gives back every reservation the client holds (Stop).
  Task<void> ReleaseReservations();
  // Moves every kept reservation to the ids to give back.
  void SpendAllReservations();
  Task<Result<uint64_t>> GetImpl(std::string key, void* ptr, uint64_t capacity, GetOptions options,
                                 Deadline d);
  // Copies `data` into a temporary registered buffer and puts it.
  Task<Status> PutOwned(std::string key, std::string data, ReplicateConfig config, Deadline d);
  Task<Result<std::string>> GetOwned(std::string key, GetOptions options, Deadline d);
  // Reads the object of `list` into a staging slot or a temporary buffer and copies it out.
  Task<Result<std::string>> ReadOwned(std::string key, LeasedList list, bool cached, Deadline d);
  Task<Status> PutTpShards(std::string key, TensorView full, uint32_t tp_size, uint32_t split_dim,
                           ReplicateConfig config, Deadline d);
  Task<Result<uint64_t>> MountOnMaster(uint64_t base, uint64_t size, Deadline d);
  Task<Result<SegmentHandle>> Open(const std::string& segment, bool refresh);
  // The master's replica list (a new lease). CORRUPT_INPUT for a malformed answer.
  Task<Result<LeasedList>> Lookup(std::string key, uint64_t generation, Deadline d);
  // Reads one replica whole into [ptr, ptr+capacity); `cached`: the list came from the
  // cache (a lapsed lease is then not counted as a get's LEASE_EXPIRED).
  Task<Result<uint64_t>> ReadReplicas(std::string key, const LeasedList& list, void* ptr,
                                      uint64_t capacity, bool cached, Deadline d);
  // The cached list of `key` (options.cache_leased_replicas) whose lease still runs and
  // whose generation matches `generation` (0: any), or null.
  const LeasedList* CachedList(const std::string& key, uint64_t generation);
  void CacheList(const std::string& key, const LeasedList& list);
  Task<void> HeartbeatLoop(std::shared_ptr<bool> alive);
  // A temporary buffer: `keep` owns the memory (a std::string, or memory of
  // options.allocator freed by its deleter), `data` is where it starts.
  struct TempBuffer {
    std::shared_ptr<void> keep;
    void* data = nullptr;
  };
  // `bytes` from options.allocator, registered with the engine; the error names the step.
  Task<Result<TempBuffer>> AllocateTemp(uint64_t bytes);
  // Unregisters a temporary buffer; false when a transfer still holds it (it is kept
  // alive in the graveyard and released on a later heartbeat).
  Task<bool> ReleaseTemp(TempBuffer buffer);
  // A staging slot of at least `size` bytes, or nullptr (staging off, too large, every
  // slot taken, registration failed): the caller registers a buffer of its own.
  Task<uint8_t*> TakeSlot(uint64_t size);
  // Gives the slot back; `settled`: the call's transfers completed, so nothing else will
  // touch it.
  void GiveSlot(uint8_t* slot, bool settled);
  Task<void> ReleaseStaging();

  Env& env_;
  TransferEngine& engine_;
  std::string name_;
  StoreClientOptions options_;
  RpcClient rpc_;
  std::map<uint64_t, MountInfo> mounts_;                          // by base address
  // cache_leased_replicas: the cached lists, and the same keys by lease deadline (each
  // entry's position there kept beside it), so lapsed leases leave earliest first and a
  // full cache costs a lookup per get, not a pass over every entry.
  struct CachedLeasedList {
    LeasedList list;
    std::multimap<uint64_t, std::string>::iterator by_deadline;
  };
  std::unordered_map<std::string, CachedLeasedList> lease_cache_;
  std::multimap<uint64_t, std::string> lease_deadlines_;
  void DropCachedList(const std::string& key);
  void DropLapsedLists(uint64_t now);
  // options.put_reservations: unused reservations by put shape (size, replica count,
  // preferred segments), and ids to give back with the next request.
  struct PutReservation {
    uint64_t id = 0;
    std::vector<ReplicaLocation> replicas;
    uint64_t valid_until_ns = 0;   // the client's clock: never later than the master's
    uint64_t usable_until_ns = 0;  // a WRITE starts no later (an eighth of it to spare)
  };
  std::map<std::string, std::vector<PutReservation>> reservations_;
  // A request that brought nothing usable (refused for space or the limit, failed, or a
  // validity too short to use) is not repeated, for any shape, before then: puts take
  // two RPCs meanwhile, not three.
  uint64_t reserve_after_ns_ = 0;
  std::vector<uint64_t> spent_reservations_;
  std::vector<TempBuffer> graveyard_;  // busy temp buffers
  struct Staging {
    // staging_slots x staging_slot_bytes, from the heap or options.allocator.
    std::shared_ptr<uint8_t> memory;
    bool registered = false;
    bool registering = false;
    bool failed = false;             // registration failed: staging stays off
    std::vector<uint32_t> free;      // slot indices ready for use
    std::vector<uint32_t> retired;   // after an incomplete transfer
  };
  Staging staging_;
  // Cleared by the destructor: memory of options.allocator still alive then is registered
  // with the engine (staging, graveyard, suspended calls) and is not given back, so it
  // cannot be handed out and registered a second time; it goes with the allocator.
  std::shared_ptr<bool> give_back_ = std::make_shared<bool>(true);
  std::shared_ptr<bool> alive_;
  bool started_ = false;
  bool stopped_ = false;
  StoreClientStats stats_;
};

}  // namespace tidal::store
