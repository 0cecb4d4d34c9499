// TransferEngine: the facade every user of tidal moves data through.
//
// One engine per node. It owns the node's transport, keeps the registry of registered
// memory, publishes the node's segment descriptor in the MetadataStore, opens peers'
// segments as validated handles, and runs batches of transfer requests: it validates
// each request, slices large ones, submits slices to the transport, drains completions,
// enforces deadlines and reports a final state per request.
//
// States: PENDING, then exactly one terminal state that never changes again:
//   COMPLETED  all `length` bytes arrived (for WRITE: visible at the target);
//   FAILED     `error` is the first failure of any of the request's slices (a short
//              slice is TRANSFER_INCOMPLETE);
//   TIMED_OUT  the deadline (options.transfer_timeout_ns) passed; error TRANSFER_TIMEOUT;
//   CANCELED   CancelBatch reached it first; error TRANSFER_CANCELED.
// `bytes_transferred` is always a prefix that truly arrived: bytes [0, n) of the request
// moved. For a one-slice request that is every byte that moved. Slices of a large request
// run in parallel, so bytes after that prefix may have moved too (each slice moved all of
// its bytes, a prefix of them, or none); callers must treat them as unknown.
//
// Sharing. One engine serves every user of its node (a store client, any number of
// process groups) in any start-up order:
//  * Segment handles are shared and counted: OpenSegment of a segment already open returns
//    the same handle and counts one more holder; CloseSegment drops one holder, and the
//    handle goes stale only when the last holder closed it (or the peer restarted). One
//    user closing and reopening never invalidates another user's handle.
//  * A peer republishes its descriptor with a higher `version` whenever it registers or
//    unregisters memory. An open handle's descriptor is refreshed in place, so the handle
//    stays valid: on RefreshSegment, and by the engine itself when a request's remote range
//    lies outside the cached regions or the peer answers REMOTE_ACCESS_DENIED (a region
//    registered, unregistered or re-registered since we looked). Such a request stays
//    PENDING while the engine looks the descriptor up again, then runs against the fresh
//    descriptor, or fails with REMOTE_ACCESS_DENIED if that also lacks the range (each
//    request is retried after a refresh once). A descriptor of another incarnation means
//    the peer restarted: the handle is marked dead (PEER_UNREACHABLE).
//  * Notifications travel on channels (a 64-bit id; 0 is the default): each channel has
//    its own handler and queue at the receiver, so several users never steal each
//    other's notifications.
//
// Threading: not thread-safe. Every method is called on the Env's executor (inside a
// coroutine, or through RunBlocking at the outermost API). Methods returning Task
// suspend; the others never block. The transport's on_ready callback alone may come from
// any thread (a backend's progress thread): it only posts to the executor, and it is safe
// to race with the engine's destruction.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "tidal/env.h"
#include "tidal/memory.h"
#include "tidal/metadata_store.h"
#include "tidal/planted.h"
#include "tidal/segment.h"
#include "tidal/status.h"
#include "tidal/task.h"
#include "tidal/transport.h"

namespace tidal {

// Handles are an index and a generation packed in 64 bits; a freed or stale handle is
// detected, never dereferenced. 0 is never a valid handle.
struct BatchId {
  uint64_t value = 0;
  bool operator==(const BatchId&) const = default;
};
struct SegmentHandle {
  uint64_t value = 0;
  bool operator==(const SegmentHandle&) const = default;
};

struct TransferRequest {
  TransferOp op = TransferOp::kRead;
  uint64_t local_addr = 0;
  uint64_t length = 0;
  SegmentHandle segment;
  uint64_t remote_addr = 0;
};

enum class TransferState : uint8_t { PENDING, COMPLETED, FAILED, TIMED_OUT, CANCELED };
std::string_view TransferStateName(TransferState s);

struct TransferStatus {
  TransferState state = TransferState::PENDING;
  uint64_t bytes_transferred = 0;
  ErrorCode error = ErrorCode::OK;
  bool operator==(const TransferStatus&) const = default;
};

struct TransferEngineOptions {
  uint64_t slice_bytes = 64 * 1024;                 // requests are cut into slices this size
  uint64_t transfer_timeout_ns = 5'000'000'000ULL;  // per Submit call
  size_t max_batches = 1 << 16;
  size_t max_batch_size = 1 << 16;
  uint64_t probe_timeout_ns = 100'000'000ULL;
  // Notifications kept for channels that have no handler yet (beyond this they are
  // dropped and counted in stats().notifications_dropped).
  size_t max_queued_notifications = 1 << 16;
  EngineBug planted_bug = EngineBug::kNone;  // the bug zoo only (tidal/planted.h)
};

struct TransferEngineStats {
  uint64_t requests_submitted = 0;
  uint64_t requests_completed = 0;
  uint64_t requests_failed = 0;
  uint64_t requests_timed_out = 0;
  uint64_t slices_submitted = 0;
  uint64_t bytes_completed = 0;
  uint64_t segment_refreshes = 0;         // descriptor look-ups of open segments
  uint64_t refresh_retries = 0;           // requests or slices re-run after a refresh
  uint64_t notifications_dropped = 0;     // queue full, or no channel header
  // Submits whose transport finished work inside its own Submit (UCX one-sided): their
  // completions were taken before Submit returned, without a turn of the event loop.
  uint64_t inline_drains = 0;
  // TransferSync requests the transport ran to their end inside TryCopyNow (UCX: a copy
  // through the peer's mapped memory): no batch, slice, completion or deadline timer.
  uint64_t copies_now = 0;
};

class TransferEngine {
 public:
  // `metadata` must outlive the engine. The transport is owned.
  TransferEngine(Env& env, std::unique_ptr<Transport> transport, MetadataStore& metadata,
                 std::string segment_name, TransferEngineOptions options = {});
  ~TransferEngine();
  TransferEngine(const TransferEngine&) = delete;
  TransferEngine& operator=(const TransferEngine&) = delete;

  // Installs the transport and publishes this node's segment descriptor.
  // Errors: whatever the transport's Install or the metadata store return.
  Task<Status> Start();
  // Withdraws the descriptor. Transfers in flight finish or time out as usual.
  Task<Status> Stop();

  // Registers [addr, addr+length) at `location` and republishes the descriptor.
  // Returns the region's remote key. INVALID_PARAMS (null, zero length, wrap, or called
  // before the first Start: the transport is not installed yet),
  // ADDRESS_OVERLAPPED, UNSUPPORTED (transport lacks the location),
  // REGISTRATION_FAILED (transport refused; nothing is registered).
  Task<Result<uint64_t>> RegisterMemory(void* addr, uint64_t length, Location location);
  // INVALID_PARAMS if no region starts at `addr`; BATCH_BUSY while transfers that use
  // it are in flight (the region stays registered).
  Task<Status> UnregisterMemory(void* addr);

  // Looks the segment up in the metadata store and connects to it. A segment already
  // open returns the same handle (one more holder). SEGMENT_NOT_FOUND if it is not
  // published; PEER_UNREACHABLE if this incarnation of it was found dead; CORRUPT_INPUT
  // for a descriptor that does not decode; INVALID_PARAMS before the first Start.
  Task<Result<SegmentHandle>> OpenSegment(std::string name);
  // Drops one holder; the handle goes stale when the last holder closes it.
  // INVALID_PARAMS for a handle that is not open.
  Status CloseSegment(SegmentHandle handle);
  // Looks the descriptor up again and updates the open handle in place (the handle stays
  // valid). OK when the cached descriptor is now the newest of its incarnation;
  // SEGMENT_NOT_FOUND for a stale handle or a withdrawn segment; PEER_UNREACHABLE when
  // the peer restarted (another incarnation: the handle is marked dead, OpenSegment gets
  // the new one); CORRUPT_INPUT for a descriptor that does not decode.
  Task<Status> RefreshSegment(SegmentHandle handle);
  // The descriptor behind an open handle (SEGMENT_NOT_FOUND if stale).
  Result<SegmentDescriptor> DescribeSegment(SegmentHandle handle) const;

  // A batch of up to `capacity` requests. INVALID_PARAMS for 0 or more than
  // options.max_batch_size; NO_AVAILABLE_HANDLE when max_batches are allocated.
  Result<BatchId> AllocateBatch(size_t capacity);
  // INVALID_PARAMS for a stale id; BATCH_BUSY while any request is PENDING.
  Status FreeBatch(BatchId batch);

  // Appends `requests` to the batch; request k gets index (previously submitted + k).
  // Returns one Status per request. A rejected request is recorded FAILED with that
  // error and moves nothing: INVALID_PARAMS (zero length, batch full, stale batch),
  // SEGMENT_NOT_FOUND (stale handle), PEER_UNREACHABLE (peer found dead),
  // ADDRESS_NOT_REGISTERED (local range), UNSUPPORTED (no path between the locations).
  // A remote range outside the cached descriptor is accepted and waits for a refresh
  // (see "Sharing" above): it fails later with REMOTE_ACCESS_DENIED if the peer does not
  // export it.
  std::vector<Status> Submit(BatchId batch, std::span<const TransferRequest> requests);

  // INVALID_PARAMS for a stale batch or an index never submitted.
  Result<TransferStatus> GetStatus(BatchId batch, size_t index) const;
  // Number of requests submitted to the batch so far.
  Result<size_t> BatchSize(BatchId batch) const;

  // Suspends until every request submitted to the batch is terminal. INVALID_PARAMS for
  // a stale id; otherwise OK (look at each request's status).
  Task<Status> WaitBatch(BatchId batch);
  // Cancels every PENDING request of the batch (state CANCELED).
  Status CancelBatch(BatchId batch);

  // Allocate, submit, wait, free: one TransferStatus per request. Where the transport has
  // a copy path (TransportCaps::copies_now), a valid one-slice request it can finish on
  // this thread without waiting (Transport::TryCopyNow: UCX's copy through the peer's
  // mapped memory) is run that way first, with no batch behind it; the others, and any the
  // transport declines, take one batch. The outcome is the same either way (COMPLETED with
  // every byte; any error, or a remote range outside the cached descriptor, goes the batch
  // path and is reported as there), except that a copied request needs no batch: where the
  // batch cannot be allocated (every handle taken, more than max_batch_size requests), only
  // the others fail with that error.
  Task<std::vector<TransferStatus>> TransferSync(std::span<const TransferRequest> requests);

  // Asks the transport whether the peer answers. OK, PEER_UNREACHABLE or
  // TRANSFER_TIMEOUT (no answer within options.probe_timeout_ns). A failed probe marks
  // the segment dead like a failed transfer does.
  Task<Status> Probe(SegmentHandle handle);

  // Sends a small notification on `channel` (default 0), delivered to the peer's handler
  // of the same channel after this node's completed writes to the peer. UNSUPPORTED
  // without transport support; SEGMENT_NOT_FOUND for a stale handle.
  Status Notify(SegmentHandle handle, std::string_view payload);
  Status Notify(SegmentHandle handle, uint64_t channel, std::string_view payload);
  // Receives the notifications of one channel (on the executor); nullptr removes the
  // handler. Without a handler they are queued (options.max_queued_notifications in all)
  // and handed to the next handler set, or returned by TakeNotifications.
  void SetNotifyHandler(std::function<void(Notification)> handler);
  void SetNotifyHandler(uint64_t channel, std::function<void(Notification)> handler);
  std::vector<Notification> TakeNotifications(uint64_t channel = 0);

  const std::string& segment_name() const { return segment_name_; }
  Env& env() { return env_; }
  Transport& transport() { return *transport_; }
  const TransferEngineOptions& options() const { return options_; }
  const TransferEngineStats& stats() const { return stats_; }
  const MemoryRegistry& registry() const { return registry_; }

 private:
  struct RequestState;
  struct Batch;
  struct Slice;
  struct SegmentEntry;
  struct Waiter;
  struct Parked;
  struct ReadyGate;
  struct BatchDone;

  Batch* FindBatch(BatchId id);
  const Batch* FindBatch(BatchId id) const;
  SegmentEntry* FindSegment(SegmentHandle h);
  const SegmentEntry* FindSegment(SegmentHandle h) const;
  Status ValidateRequest(const TransferRequest& r, const SegmentEntry** seg,
                         RegionInfo* local, const RegionInfo** remote) const;
  uint64_t AllocSlice();
  // Posts a Drain to the executor unless one is pending (on_ready, from any thread, does
  // this, except inside the engine's own Submit: see DrainInline).
  void PostDrain();
  // Takes the transport's completions and notifications (posted by PostDrain, or called
  // directly); notifications taken earlier by DrainInline go to their handlers first.
  void Drain();
  // Submit's own drain, when the transport signalled readiness inside its Submit on this
  // thread (a copy that finished inline): completions are taken now, so the request is
  // final when Submit returns (no loop turn, no deadline timer, no waiter to resume);
  // notifications are taken but handed to their handlers by a posted Drain, never inside
  // Submit, so they stay in order with every later one.
  void DrainInline();
  void DrainCompletions();
  // Moves the transport's notifications behind those already taken; with `deliver`, hands
  // them all to their handlers, in order; without, posts a Drain to do it.
  void TakeNotifies(bool deliver);
  void OnSliceDone(const TransportCompletion& c);
  void FinishRequest(Batch& b, uint32_t batch_index, RequestState& r, TransferState state,
                     ErrorCode error);
  void OnDeadline(uint64_t batch_value, uint32_t first, uint32_t count);
  void CancelSlices(const RequestState& r);
  void MarkPeerDead(uint32_t segment_index);
  // Invalidates the entry for every holder; its parked requests fail with `why`.
  void RetireSegment(uint32_t index, const Status& why);
  Task<Status> Publish();
  struct Outgoing;
  // Cuts a validated request (or, with only_slice >= 0, one slice of it, whose own ranges
  // `r` holds) into transport tasks appended to `out`.
  void BuildSlices(Batch& b, uint64_t batch_value, uint32_t index, const TransferRequest& r,
                   PeerId peer, const RegionInfo& local, const RegionInfo& remote,
                   int only_slice, Outgoing& out);
  // Hands `out` to the transport and accounts for the tasks it refused (their requests
  // fail; result[k], when given, gets the refusal of request first + k).
  void SendSlices(Batch& b, Outgoing& out, std::span<Status> result, uint32_t first);
  // Submit's body; `result`, when not empty, has one Status per request.
  void SubmitTo(BatchId batch, std::span<const TransferRequest> requests, std::span<Status> result);
  // TransferSync's first try: true when `r` is valid, one slice long, and the transport ran
  // it to its end in TryCopyNow (*st is then COMPLETED).
  bool CopyNow(const TransferRequest& r, TransferStatus* st);
  void Park(uint32_t segment_index, Parked p);
  Task<void> RefreshParked(uint32_t segment_index, uint32_t generation);
  Task<Status> LookUpAgain(uint32_t segment_index, uint32_t generation);
  // Runs a parked request or slice against the refreshed descriptor, or fails it with
  // `refreshed` when the refresh failed.
  void ResumeParked(Parked& p, const Status& refreshed);
  void Deliver(uint64_t channel, Notification n);

  Env& env_;
  std::unique_ptr<Transport> transport_;
  MetadataStore& metadata_;
  std::string segment_name_;
  TransferEngineOptions options_;
  TransferEngineStats stats_;
  MemoryRegistry registry_;
  uint64_t incarnation_ = 0;
  uint64_t descriptor_version_ = 0;
  bool started_ = false;    // published (Start .. Stop)
  bool installed_ = false;  // the transport was installed (by the first Start)
  std::atomic<bool> drain_posted_{false};  // on_ready may come from a backend thread
  bool inline_ready_ = false;  // on_ready came inside Submit's transport call, on this thread
  // (channel, notification) taken from the transport, not yet handed to a handler.
  std::vector<std::pair<uint64_t, Notification>> taken_notes_;
  std::shared_ptr<bool> alive_;  // posted work checks it (on the executor), so none runs
                                 // after destruction
  std::shared_ptr<ReadyGate> gate_;  // on_ready from any thread goes through it

  std::vector<std::unique_ptr<Batch>> batches_;
  std::vector<uint32_t> free_batches_;
  size_t live_batches_ = 0;
  std::vector<Slice> slices_;
  std::vector<uint32_t> free_slices_;
  std::vector<std::unique_ptr<SegmentEntry>> segments_;
  std::unordered_map<std::string, uint32_t> segment_by_name_;
  std::unordered_map<uint64_t, Waiter*> probes_;  // probe task id -> waiter
  std::map<uint64_t, std::shared_ptr<std::function<void(Notification)>>> notify_handlers_;
  std::map<uint64_t, std::vector<Notification>> queued_notifications_;   // no handler yet
  size_t queued_count_ = 0;
  std::vector<TransportCompletion> completion_buf_;
  // Submit's task list, kept between calls so a submit allocates nothing for it.
  std::unique_ptr<Outgoing> outgoing_;
  bool outgoing_in_use_ = false;  // Submit is building or sending it (checks re-entry)
};

}  // namespace tidal
