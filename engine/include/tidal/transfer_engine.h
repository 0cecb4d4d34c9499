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
// Threading: not thread-safe. Every method is called on the Env's executor (inside a
// coroutine, or through RunBlocking at the outermost API). Methods returning Task
// suspend; the others never block.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "tidal/env.h"
#include "tidal/memory.h"
#include "tidal/metadata_store.h"
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
};

struct TransferEngineStats {
  uint64_t requests_submitted = 0;
  uint64_t requests_completed = 0;
  uint64_t requests_failed = 0;
  uint64_t requests_timed_out = 0;
  uint64_t slices_submitted = 0;
  uint64_t bytes_completed = 0;
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
  // Returns the region's remote key. INVALID_PARAMS (null, zero length, wrap),
  // ADDRESS_OVERLAPPED, UNSUPPORTED (transport lacks the location),
  // REGISTRATION_FAILED (transport refused; nothing is registered).
  Task<Result<uint64_t>> RegisterMemory(void* addr, uint64_t length, Location location);
  // INVALID_PARAMS if no region starts at `addr`; BATCH_BUSY while transfers that use
  // it are in flight (the region stays registered).
  Task<Status> UnregisterMemory(void* addr);

  // Looks the segment up in the metadata store and connects to it. A segment already
  // open returns the same handle. SEGMENT_NOT_FOUND if it is not published;
  // PEER_UNREACHABLE if this incarnation of it was found dead; CORRUPT_INPUT for a
  // descriptor that does not decode.
  Task<Result<SegmentHandle>> OpenSegment(std::string name);
  // INVALID_PARAMS for a handle that is not open.
  Status CloseSegment(SegmentHandle handle);
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
  // ADDRESS_NOT_REGISTERED (local range), REMOTE_ACCESS_DENIED (remote range outside
  // the peer's exported regions), UNSUPPORTED (no path between the locations).
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

  // Allocate, submit, wait, free: one TransferStatus per request.
  Task<std::vector<TransferStatus>> TransferSync(std::span<const TransferRequest> requests);

  // Asks the transport whether the peer answers. OK, PEER_UNREACHABLE or
  // TRANSFER_TIMEOUT (no answer within options.probe_timeout_ns). A failed probe marks
  // the segment dead like a failed transfer does.
  Task<Status> Probe(SegmentHandle handle);

  // Sends a small notification, delivered after this node's completed writes to the
  // peer. UNSUPPORTED without transport support; SEGMENT_NOT_FOUND for a stale handle.
  Status Notify(SegmentHandle handle, std::string_view payload);
  // Receives notifications (on the executor). Without a handler they are queued and
  // returned by TakeNotifications.
  void SetNotifyHandler(std::function<void(Notification)> handler);
  std::vector<Notification> TakeNotifications();

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

  Batch* FindBatch(BatchId id);
  const Batch* FindBatch(BatchId id) const;
  SegmentEntry* FindSegment(SegmentHandle h);
  const SegmentEntry* FindSegment(SegmentHandle h) const;
  Status ValidateRequest(const TransferRequest& r, const SegmentEntry** seg,
                         RegionInfo* local, const RegionInfo** remote) const;
  uint64_t AllocSlice();
  void OnReady();
  void Drain();
  void OnSliceDone(const TransportCompletion& c);
  void FinishRequest(Batch& b, uint32_t batch_index, RequestState& r, TransferState state,
                     ErrorCode error);
  void OnDeadline(uint64_t batch_value, uint32_t first, uint32_t count);
  void CancelSlices(const RequestState& r);
  void MarkPeerDead(uint32_t segment_index);
  Task<Status> Publish();

  Env& env_;
  std::unique_ptr<Transport> transport_;
  MetadataStore& metadata_;
  std::string segment_name_;
  TransferEngineOptions options_;
  TransferEngineStats stats_;
  MemoryRegistry registry_;
  uint64_t incarnation_ = 0;
  bool started_ = false;
  std::atomic<bool> drain_posted_{false};  // on_ready may come from a backend thread
  std::shared_ptr<bool> alive_;  // posted drains check it, so none runs after destruction

  std::vector<std::unique_ptr<Batch>> batches_;
  std::vector<uint32_t> free_batches_;
  size_t live_batches_ = 0;
  std::vector<Slice> slices_;
  std::vector<uint32_t> free_slices_;
  std::vector<std::unique_ptr<SegmentEntry>> segments_;
  std::unordered_map<std::string, uint32_t> segment_by_name_;
  std::unordered_map<uint64_t, Waiter*> probes_;  // probe task id -> waiter
  std::function<void(Notification)> notify_handler_;
  std::vector<Notification> notifications_;
  std::vector<TransportCompletion> completion_buf_;
};

}  // namespace tidal
