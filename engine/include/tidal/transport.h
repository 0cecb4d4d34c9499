// Transport: the plug every backend (simulator, UCX, ibverbs, CUDA) implements.
//
// Small and non-blocking. The TransferEngine facade owns one per node, installs it,
// registers memory through it, resolves peers from their segment descriptors, submits
// tasks (slices of transfer requests, probes) and drains completions when the transport
// signals that some are ready.
//
// The contract (checked on every call by ContractChecker in tests):
//  * Submit returns one Status per task. A task whose Status is not OK was rejected and
//    produces no completion and moves no bytes.
//  * Every accepted task produces exactly one completion, eventually: at the latest after
//    Cancel(task_id), which completes it with TRANSFER_CANCELED if it had not finished.
//  * A completion with code OK has bytes_transferred == length, and for a WRITE the bytes
//    are visible at the target when it is reported. Anything short is
//    TRANSFER_INCOMPLETE with the true count. A failed task other than a short one moves
//    nothing it reports: bytes_transferred is what really moved.
//  * The local range of a task lies in memory registered with this transport, else
//    ADDRESS_NOT_REGISTERED; the remote range must lie inside a region the peer exported
//    under the presented key, else REMOTE_ACCESS_DENIED; in both cases nothing moves.
//  * A notification to a peer is delivered after the data of every WRITE this node
//    completed to that peer before sending it.
//  * After UnregisterMemory returns OK the transport never touches that range again.
//  * Connecting twice to one address returns one PeerId; Cancel of an unknown id is
//    INVALID_PARAMS.
//
// Allowed (and done by the simulator, under tape draws: sim/include/tidal/sim/world.h,
// SimAllowances). Code above a transport must not lean on any of these not happening:
//  * Tasks land and complete in any order: on one peer's link and across peers, a task
//    submitted later may land and complete first, whatever their sizes.
//  * A completion may be reported later than its data became visible, by any delay.
//  * Notifications are not ordered among themselves: two to one peer, or to different
//    peers, may arrive in either order.
//  * A notification may overtake a write that had not completed when it was sent (one
//    merely submitted, or submitted after it): only writes completed before the send are
//    guaranteed visible on its arrival.
// (The Messenger, not this interface, is the reliable channel ordered per pair.)
//
// Thread safety: every call is made on the node Env's executor. The `on_ready` callback
// given at Install may be called from any thread (it only posts to the executor).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tidal/env.h"
#include "tidal/memory.h"
#include "tidal/segment.h"
#include "tidal/status.h"

namespace tidal {

enum class TransferOp : uint8_t { kRead = 0, kWrite = 1 };
std::string_view TransferOpName(TransferOp op);

using PeerId = uint32_t;

struct TransportCaps {
  bool host_to_host = false;
  bool host_to_cuda = false;
  bool cuda_to_cuda = false;
  bool notifications = false;
  // TryCopyNow may run a task (the engine offers TransferSync's requests to it only then).
  bool copies_now = false;
};

struct TransportTask {
  enum class Kind : uint8_t { kRead = 0, kWrite = 1, kProbe = 2 };
  uint64_t task_id = 0;  // chosen by the caller, unique among its outstanding tasks
  Kind kind = Kind::kRead;
  PeerId peer = 0;
  uint64_t local_addr = 0;
  uint64_t remote_addr = 0;
  uint64_t length = 0;
  uint64_t rkey = 0;
};

struct TransportCompletion {
  uint64_t task_id = 0;
  ErrorCode code = ErrorCode::OK;
  uint64_t bytes_transferred = 0;
};

struct Notification {
  std::string source;   // the sending segment's name
  std::string payload;
};

struct TransportInstall {
  Env* env = nullptr;
  std::string segment_name;   // this node's segment
  std::function<void()> on_ready;  // completions or notifications are ready to poll
};

class Transport {
 public:
  virtual ~Transport() = default;

  virtual std::string_view Name() const = 0;
  virtual TransportCaps Capabilities() const = 0;

  // Binds the transport to its node. Called once before anything else.
  virtual Status Install(const TransportInstall& install) = 0;
  // The address blob published in this node's segment descriptor.
  virtual std::string LocalAddress() const = 0;

  // Registers memory for local and remote access; returns the remote key (never 0).
  // REGISTRATION_FAILED if the backend refuses; the range is assumed valid (the facade
  // validated it).
  virtual Result<uint64_t> RegisterMemory(uint64_t addr, uint64_t length, Location loc) = 0;
  virtual Status UnregisterMemory(uint64_t addr, uint64_t length) = 0;

  // Resolves a peer from its descriptor. SEGMENT_NOT_FOUND / PEER_UNREACHABLE if the
  // address names nothing reachable. Connecting twice to one address returns one PeerId.
  virtual Result<PeerId> Connect(const SegmentDescriptor& peer) = 0;

  virtual void Submit(std::span<const TransportTask> tasks, std::span<Status> accepted) = 0;
  // Optional: runs a WRITE or READ to its end on the calling thread, when the backend can
  // do so without waiting for anything (UCX: a CPU copy through the peer's memory that UCX
  // mapped into this process). True: every byte moved (a WRITE's are visible at the target,
  // as a completion with OK says, and a notification sent after it is delivered after
  // them), and nothing follows: no completion, and task_id is ignored. False: nothing
  // moved and nothing was recorded; the caller Submits the task as usual. The contract's
  // range checks hold as for Submit: a range outside the registered memory or outside what
  // the peer exported is never copied (false, and Submit then reports it).
  virtual bool TryCopyNow(const TransportTask& task) {
    (void)task;
    return false;
  }
  // Moves up to out.size() completions into `out`; returns how many.
  virtual size_t PollCompletions(std::span<TransportCompletion> out) = 0;
  // Asks an outstanding task to finish now; its completion follows (possibly OK if it
  // had already finished). INVALID_PARAMS for an unknown id.
  virtual Status Cancel(uint64_t task_id) = 0;

  virtual Status SendNotify(PeerId peer, std::string_view payload) = 0;
  virtual size_t PollNotifies(std::vector<Notification>& out, size_t max) = 0;
};

}  // namespace tidal
