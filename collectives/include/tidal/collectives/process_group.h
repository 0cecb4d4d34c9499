// ProcessGroup: a fault-tolerant process group over the TransferEngine, in the shape of
// a PyTorch c10d backend (docs/architecture.md). One per rank; ranks 0..size-1.
//
// Data path. At Start() every rank registers two buffers with its TransferEngine: receive
// slots (per sender, per channel class, options.slots_per_channel slots of
// options.slot_bytes, default two: double buffering) and send staging of the same shape,
// and publishes their address in the bootstrap MetadataStore. A chunk travels as: wait
// for a free slot at the peer (a credit), copy into staging, one WRITE straight into the
// peer's slot, then an engine notification (delivered after the data, the "sync flag");
// the receiver copies or reduces the slot into its working buffer and returns a credit.
// Messages are cut into slot-sized chunks and up to slots_per_channel chunks per peer are
// unconsumed at once (pipelining). Groups whose buffers are on a GPU (slot_location)
// differ as README.md "GPU tensors" says. Algorithms: schedule.h and README.md.
//
// Fault tolerance. A rank is failed on evidence only: a Probe answers PEER_UNREACHABLE,
// or options.probe_attempts probes in a row time out. Probes are sent after a failed
// transfer or after options.peer_check_ns of silence (doubling); silence alone never
// fails a rank (field bug 10). Every collective ends with
// an agreement round through a coordinator (the lowest live member): all live members
// report, the coordinator commits the attempt or retries it over the survivors, so every
// survivor returns the same status, the same failed ranks and a result over the same
// members. Failed ranks are dropped for good: their segments are closed and nothing is
// sent to them again (field bug 11). Point-to-point messages between a pair carry
// per-pair sequence numbers and are matched in order.
//
// Threading and ownership: not thread-safe; every method is called on the Env executor
// of the rank's TransferEngine. The engine, messenger and bootstrap store must outlive
// the group. Operations never block: each returns a Work at once (Work::Wait suspends).
// Tensors are views the caller keeps alive, unmodified, until the Work is done; outputs
// are written only when the operation commits. Collectives must be issued in the same
// order with matching arguments on every rank (as with NCCL).
//
// Sharing an engine. Any number of groups (subgroups, as c10d's new_group makes) and a
// store client may share one TransferEngine, started in any order: each group receives
// its engine notifications on a channel of its own (derived from group_name, which must
// differ between groups that share engines), and segment handles and descriptors are
// shared and refreshed in place by the engine. The Messenger is not shared: each group
// takes the receiver of the Messenger it is given, so give each group its own endpoint or
// its own MessengerMux channel.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "tidal/collectives/reduce_kernel.h"
#include "tidal/collectives/types.h"
#include "tidal/collectives/work.h"
#include "tidal/messenger.h"
#include "tidal/metadata_store.h"
#include "tidal/status.h"
#include "tidal/task.h"
#include "tidal/transfer_engine.h"

namespace tidal::coll {

// Passed to options.step_hook at every step boundary (tests crash ranks there).
struct StepEvent {
  int rank = 0;
  OpType op = OpType::kBarrier;
  uint64_t op_seq = 0;    // collective sequence number, from 0
  uint32_t epoch = 0;     // attempt within the op (0 unless a failure forced a retry)
  uint64_t step = 0;      // boundary index inside the attempt: 0..steps
  uint64_t steps = 0;     // data steps of this attempt; boundary `steps` precedes agreement
  uint64_t boundary = 0;  // boundary index counted over all attempts of the op
};

// Planted bugs: deliberate defects the bug zoo (tidal-sim zoo) switches on one at a time
// through ProcessGroupOptions::planted_bug, to measure whether the campaigns catch them.
// Default kNone; nothing but the zoo and its tests sets it.
enum class CollBug : uint8_t {
  kNone,
  kRootIgnored,     // field bug 1: Broadcast and Reduce use rank 0 whatever the root (not
                    // Gather and Scatter: their buffers are sized by role, so the planted
                    // form would read past them rather than compute a wrong answer)
  kFoldTwice,       // a received chunk is folded into the result twice
  kSilenceIsDeath,  // field bug 10: a peer silent for peer_check_ns is failed unprobed
  kWriteBeforeMatch,  // field report C: a Recv that fails on a size mismatch has already
                      // written what fits of the message into its buffer
  kZeroAccumulator,   // field bug 2: a reduction's accumulator starts from zero (a guessed
                      // identity) and every contribution is folded into it
  kTimeoutKeepsGroup,  // field report D: after a point-to-point timeout the group carries
                       // on instead of failing every later operation with
                       // COLLECTIVE_ABORTED
};
inline constexpr CollBug kCollBugs[] = {CollBug::kNone,           CollBug::kRootIgnored,
                                        CollBug::kFoldTwice,      CollBug::kSilenceIsDeath,
                                        CollBug::kWriteBeforeMatch, CollBug::kZeroAccumulator,
                                        CollBug::kTimeoutKeepsGroup};
std::string_view CollBugName(CollBug bug);
Result<CollBug> ParseCollBug(std::string_view name);

// Allocates a group's buffers (receive slots, send staging, working memory) at its slot
// location. Allocate returns zeroed memory aligned to 64 bytes, or an error naming what
// failed; Free gives back what Allocate returned (same bytes and location). Called on the
// group's executor only. The default (HostBufferAllocator) is new[]/delete[]: right for
// host memory and for locations whose memory is host memory (the simulator's cuda:N);
// real device memory comes from the fabric's or backend's allocator (CudaBufferAllocator
// in tidal::collectives_cuda: cudaMalloc on the location's device).
class BufferAllocator {
 public:
  virtual ~BufferAllocator() = default;
  virtual Result<void*> Allocate(uint64_t bytes, Location location) = 0;
  virtual void Free(void* data, uint64_t bytes, Location location) = 0;
};

class HostBufferAllocator final : public BufferAllocator {
 public:
  Result<void*> Allocate(uint64_t bytes, Location location) override;
  void Free(void* data, uint64_t bytes, Location location) override;
  static HostBufferAllocator& Default();
};

struct ProcessGroupOptions {
  std::string group_name = "default";     // bootstrap keys are tidal/pg/<name>/<rank>
  uint64_t slot_bytes = 256 * 1024;  // chunk size; receive memory = size*2*slots*slot_bytes
  // Slots per (sender, class): chunks a sender may have in flight to one peer (2: double
  // buffering). More slots keep a fast link busy while the receiver folds (GPU groups).
  uint32_t slots_per_channel = 2;
  // Device slots only (ignored on host slots): one step's message to one peer is cut into
  // at least this many chunks (each at most slot_bytes, at least device_chunk_min_bytes,
  // a multiple of 64 KiB), so that the WRITE and the fold of successive chunks overlap
  // even when the message would fit one slot. 1: slot-sized chunks. Every rank must use
  // the same values (else chunks arrive with unexpected sizes: CORRUPT_INPUT).
  uint32_t device_chunks = 1;
  uint64_t device_chunk_min_bytes = 1 << 20;
  // Device slots only: a message cut into two or more chunks ends with a short one, half a
  // chunk (64 KiB multiples), the rest of the last chunk moving into the first (when that
  // still fits a slot): the copy or fold that follows a message's last byte, which nothing
  // overlaps, is then half as long (64 MiB in 2 chunks: 48 + 16 MiB instead of 32 + 32).
  // Every rank must use the same value, as for device_chunks.
  bool device_short_last_chunk = false;
  // Between two queued collectives, give the event loop one turn (Yield) before the next
  // starts. On a loop shared by several ranks (the cuda fabric: one process driving
  // several GPUs) the coordinator otherwise starts its next op before the other ranks have
  // taken its decision, and they start theirs one op setup later; on a loop of its own a
  // rank loses one turn. Off by default (the simulator's schedules stay as they are).
  bool yield_between_ops = false;
  // Out-of-place operations (output and input do not overlap) use the output tensor itself
  // as their working memory, as NCCL does: folds and received blocks land in the output
  // and there is no copy of the result when the operation commits. The input is never
  // written, so a retried attempt recomputes every output byte from it, and a Work that
  // completes OK or RANK_FAILED (finished over the survivors) leaves exactly the result
  // of the default. What changes is the failure contract: after a Work that completes
  // with any other error (COLLECTIVE_ABORTED, OPERATION_TIMEOUT, ...) once the operation
  // started moving data, the outputs are undefined (partially written), where by default
  // they are left unchanged; argument refusals still touch nothing. In-place operations
  // (output overlapping input: AllReduce(tensor), Broadcast(tensor), Reduce) keep the
  // working buffers and the default contract. Ranks may differ in it: it changes no
  // message, except that with device_pull (below) it lets a rank offer broadcast and
  // alltoall messages for pulling, which every receiver takes as it takes chunks.
  bool direct_outputs = false;
  // Pulling (device slots, with direct_outputs, out-of-place): a message a rank sends in
  // broadcast (direct algorithm: the root to every member) or alltoall (block j to rank j)
  // from a buffer of RegisterBuffer is not WRITTEN into the receiver's slots; the sender
  // notifies the address (a pull offer) and the receiver READs the message itself,
  // straight into its output when that is registered too (else through its receive
  // slots), then credits the offer. Every byte that lands in a rank's output is then
  // moved by a transfer that rank issued and joins before its attempt ends; the sender
  // leaves the step only once every reader credited (or failed, or the attempt was
  // aborted). The sender decides per message; receivers take either form, so ranks may
  // differ in this setting. false: always push (WRITE into the receiver's slots).
  bool device_pull = true;
  uint64_t direct_max_bytes = 64 * 1024;  // kAuto: direct up to this, ring above
  Algorithm algorithm = Algorithm::kAuto;
  uint64_t timeout_ns = 10'000'000'000ULL;  // per operation, from its start
  uint64_t peer_check_ns = 1'000'000;       // silence before a peer is probed
  uint64_t control_retry_ns = 2'000'000;    // agreement messages are re-sent this often
  uint64_t bootstrap_timeout_ns = 5'000'000'000ULL;
  // A failed WRITE to a peer that answers a Probe is retried at once this many times,
  // then every peer_check_ns until the op's deadline (a live peer is never excluded).
  uint32_t write_retries = 2;
  // A probe that answers PEER_UNREACHABLE fails the peer at once; one that only times out
  // (the engine's probe_timeout_ns) must do so this many times in a row. Failure
  // detection by timeout is only as good as this margin: see README "Limits".
  uint32_t probe_attempts = 3;
  // Point-to-point messages received before a Recv with their tag was posted are kept,
  // per peer, up to this many bytes; beyond that the pair's stream waits for a matching
  // Recv (and the oldest Recv from that peer may time out).
  uint64_t p2p_stash_bytes = 64ull << 20;
  CollBug planted_bug = CollBug::kNone;             // the bug zoo only
  Reducer* reducer = nullptr;                       // nullptr: CpuReducer::Default()
  // Where this rank's receive slots, send staging and working buffers live, and so where
  // its tensors must be: host (the default) or cuda:N (GPU-resident: chunks are WRITTEN
  // from GPU memory into the peer's GPU slots and copied or folded there by the reducer,
  // which must Support the location). slot_location_of, when set, chooses it per rank
  // (one options struct for every rank of a fabric that puts rank r on its own GPU) and
  // overrides slot_location. Point-to-point operations need host slots (UNSUPPORTED
  // otherwise).
  Location slot_location;
  std::function<Location(int rank)> slot_location_of;
  BufferAllocator* allocator = nullptr;  // nullptr: HostBufferAllocator::Default()
  std::function<void(const StepEvent&)> step_hook;  // tests only; may be empty
};

// One entry of BatchIsendIrecv.
struct P2POp {
  enum class Kind : uint8_t { kSend, kRecv };
  Kind kind = Kind::kSend;
  Tensor tensor;
  int peer = 0;
  uint32_t tag = 0;
};

struct ProcessGroupStats {
  uint64_t collectives = 0;
  uint64_t attempts = 0;  // > collectives when failures forced retries
  uint64_t chunks_sent = 0;
  uint64_t bytes_sent = 0;
  uint64_t write_failures = 0;
  uint64_t probes = 0;
  // Retransmissions after a probe found a peer alive but silent (lost notifications):
  uint64_t notifies_resent = 0;  // chunk notifications sent again
  uint64_t credits_resent = 0;   // credits sent again to a silent sender
  // Pulled messages (options.device_pull):
  uint64_t pulls_offered = 0;   // messages this rank offered instead of WRITing them
  uint64_t pulls_read = 0;      // offered messages this rank READ from their sender
  uint64_t bytes_pulled = 0;    // bytes of those READs (the last try of each chunk)
  uint64_t pulls_via_slots = 0;  // of pulls_read: READ into the slots (output unregistered)
  std::vector<uint64_t> writes_to;    // per rank: WRITEs submitted to it
  std::vector<uint64_t> notifies_to;  // per rank: notifications sent to it
  std::vector<uint64_t> messages_to;  // per rank: control messages sent to it
};

class ProcessGroup {
 public:
  // Keeps references to engine, messenger and bootstrap. Nothing happens until Start().
  ProcessGroup(int rank, int size, TransferEngine& engine, Messenger& messenger,
               MetadataStore& bootstrap, ProcessGroupOptions options = {});
  // Unhooks from the engine and messenger. Destroy a group only when none of its Works is
  // pending (or when its Env will run nothing more, as after a crash or world shutdown).
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  // Registers the slot buffers, publishes this rank's bootstrap record, waits for every
  // rank's record and opens their segments. Must finish before any operation is issued.
  // Errors: INVALID_PARAMS (rank/size/options out of range, size > 64, records that
  // disagree on size or slot_bytes), OPERATION_TIMEOUT (a rank never published within
  // bootstrap_timeout_ns), CORRUPT_INPUT (a record that does not decode), and whatever
  // RegisterMemory / OpenSegment / the store return.
  Task<Status> Start();

  // Device slots: registers caller memory at this rank's slot location (the buffers of the
  // tensors it will pass, as NCCL's ncclCommRegister) with the engine, so that chunks sent
  // from it are WRITTEN straight from it instead of being staged by a device copy first;
  // a tensor that also gets a copy of its own (allgather's own block) is copied while its
  // WRITE runs. Call between operations (none pending: else INVALID_PARAMS); the memory
  // must stay allocated until UnregisterBuffer, which the group does not call by itself.
  // Errors: INVALID_PARAMS (before Start, zero bytes, operations pending), UNSUPPORTED
  // (host slots: every chunk is copied into the send staging there anyway), and what the
  // engine's RegisterMemory returns (memory of another device, a range overlapping one
  // already registered).
  Task<Status> RegisterBuffer(void* data, uint64_t bytes);
  // Undoes RegisterBuffer(data, ...) (between operations, as above; INVALID_PARAMS for
  // memory this group did not register).
  Task<Status> UnregisterBuffer(void* data);

  // Collectives. Counts: AllReduce/Broadcast/Reduce use tensor.count elements;
  // AllGather: output.count == size * input.count (block r from rank r);
  // ReduceScatter: input.count == size * output.count (rank r gets block r reduced);
  // Gather: root's output.count == size * input.count (others' output is ignored);
  // Scatter: root's input.count == size * output.count; AllToAll: input.count ==
  // output.count == size * c, block j of input goes to rank j and block i of output
  // comes from rank i. Input and output may be the same memory (in place).
  // Each returns a Work; argument errors complete it at once with INVALID_PARAMS or
  // UNSUPPORTED. Reduce leaves non-root tensors unchanged.
  std::shared_ptr<Work> AllReduce(Tensor tensor, ReduceOp op);
  // Out of place (as ncclAllReduce / ncclBroadcast with two buffers): output gets the
  // result, input is only read (Broadcast: only the root's input is read; it must have
  // output's count there). Output and input must be the same memory (then as the one-
  // tensor forms) or not overlap at all (INVALID_PARAMS otherwise).
  std::shared_ptr<Work> AllReduce(Tensor output, Tensor input, ReduceOp op);
  std::shared_ptr<Work> AllGather(Tensor output, Tensor input);
  std::shared_ptr<Work> ReduceScatter(Tensor output, Tensor input, ReduceOp op);
  std::shared_ptr<Work> Broadcast(Tensor tensor, int root);
  std::shared_ptr<Work> Broadcast(Tensor output, Tensor input, int root);
  std::shared_ptr<Work> Reduce(Tensor tensor, int root, ReduceOp op);
  std::shared_ptr<Work> Gather(Tensor output, Tensor input, int root);
  std::shared_ptr<Work> Scatter(Tensor output, Tensor input, int root);
  std::shared_ptr<Work> AllToAll(Tensor output, Tensor input);
  std::shared_ptr<Work> Barrier();

  // Point-to-point, matched as in c10d: a Recv takes the oldest message from `peer` with
  // its `tag` (messages of one pair and tag arrive in send order; other tags may be
  // received in any order, and messages that arrive first are kept: p2p_stash_bytes). A
  // message whose byte count differs from the Recv's fails it with INVALID_PARAMS (the
  // message is consumed). A Recv writes its buffer only when it succeeds. A Send completes
  // when its data sits in the peer's slots or stash; a pair buffers two chunks before the
  // receiver takes them, so large exchanges in both directions need BatchIsendIrecv (all
  // its entries progress together). A dead peer: COLLECTIVE_ABORTED, failed_ranks =
  // {peer}. A point-to-point OPERATION_TIMEOUT breaks the group like a collective's: every
  // later operation (collective or point-to-point) fails at once with COLLECTIVE_ABORTED,
  // as c10d aborts a communicator after a timeout.
  std::shared_ptr<Work> Send(Tensor tensor, int peer, uint32_t tag = 0);
  std::shared_ptr<Work> Recv(Tensor tensor, int peer, uint32_t tag = 0);
  std::shared_ptr<Work> BatchIsendIrecv(std::span<const P2POp> ops);

  // Fail-stops this rank's group as a crash would, for tests and fault drills on fabrics
  // that cannot stop a node of their process (the cuda fabric): from now on it sends
  // nothing, drops what arrives, and its pending and later Works never complete. Call it
  // from options.step_hook (a step boundary: no chunk of this rank is in flight), and stop
  // the node's transport too, so that peers' transfers and probes fail: the evidence that
  // fails a rank (silence alone does not).
  void Halt();

  int rank() const;
  int size() const;
  // The members of the last committed collective (all ranks until one fails).
  std::vector<int> active_ranks() const;
  // Ranks this rank knows are dead (sorted).
  std::vector<int> dead_ranks() const;
  const ProcessGroupStats& stats() const;
  const ProcessGroupOptions& options() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tidal::coll
