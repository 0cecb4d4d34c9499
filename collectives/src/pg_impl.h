// ProcessGroup::Impl: the state behind a process group (private to collectives/).
//
// Split by concern over several files: process_group.cc (API, bootstrap, incoming
// messages, failure marking), pg_channel.cc (chunks, credits, waits, probes, steps),
// pg_collective.cc (the op runner, the agreement round) and pg_algorithms.cc (what
// each collective sends where), pg_p2p.cc (point-to-point).
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "pg_signal.h"
#include "tidal/collectives/chunk_trace.h"
#include "tidal/collectives/process_group.h"
#include "tidal/collectives/schedule.h"
#include "wire.h"

namespace tidal::coll {

inline uint64_t Bit(int r) {
  return uint64_t{1} << r;
}
inline uint64_t AttemptKey(uint64_t op, uint32_t epoch) {
  return (op << 8) | epoch;
}
std::vector<int> MaskToRanks(uint64_t mask);
// Bytes one TakeScratch(bytes) uses of the arena (pieces are 256-byte aligned).
inline uint64_t ScratchSize(uint64_t bytes) {
  return (bytes + 255) & ~uint64_t{255};
}

// One collective as issued, plus its scratch buffers.
struct CollOp {
  OpType type = OpType::kBarrier;
  Tensor out;  // AllReduce/Broadcast/Reduce: the tensor; else the output
  Tensor in;   // the input (== out for the single-tensor ops)
  ReduceOp rop = ReduceOp::kSum;
  int root = -1;
  uint64_t seq = 0;
  std::shared_ptr<Work> work;
  // Attempt state, rebuilt by every attempt from the caller's (untouched) input. Both
  // point into the group's working memory (Impl::TakeScratch), at the slot location.
  uint8_t* buf = nullptr;      // working buffer / result
  std::vector<uint8_t*> parts;  // direct algorithms: one per member
  // options.direct_outputs: this attempt's result is already in `out` (its working memory
  // was the output), so Finalize copies nothing.
  bool in_output = false;
  bool reads_no_input = false;  // Broadcast(output, input, root) at a non-root rank
  Algorithm algorithm = Algorithm::kDirect;
  uint64_t boundaries = 0;  // step boundaries passed, over all attempts
};

struct SendSpec {
  int peer = -1;
  const uint8_t* data = nullptr;
  uint64_t bytes = 0;
  // Device slots only: working memory that must end up holding `data` (an op's own block):
  // each chunk is copied there and WRITTEN from there, so the copy is not made up front.
  uint8_t* stage_into = nullptr;
  // Device slots: offer the message for pulling (options.device_pull; `data` lies in a
  // buffer of RegisterBuffer that no attempt writes) instead of WRITing it.
  bool pull = false;
};
struct RecvSpec {
  int peer = -1;
  uint8_t* data = nullptr;
  uint64_t bytes = 0;
  bool reduce = false;  // fold into data instead of copying
  int forward = -1;     // ring broadcast: pass every chunk on to this rank
  // Device slots only: data's first contents, copied in chunk by chunk just before the
  // fold (on the reducer's stream), so the input is not copied up front.
  const uint8_t* init = nullptr;
  // With init: data = chunk op init (the sender's value is the accumulator) instead of
  // init op chunk, so that two members fold in member order.
  bool peer_first = false;
};

struct P2PBatch {
  std::shared_ptr<Work> work;
  size_t remaining = 0;
  Status first_error;
  uint64_t failed = 0;
};
struct P2PItem {
  P2POp op;
  uint64_t deadline_ns = 0;
  std::shared_ptr<P2PBatch> batch;
};

struct ProcessGroup::Impl {
  Impl(int rank, int size, TransferEngine& engine, Messenger& messenger, MetadataStore& bootstrap,
       ProcessGroupOptions options);
  ~Impl();

  // --- process_group.cc ---
  Task<Status> Start();
  void OnNotification(Notification n);
  void OnMessage(std::string from, std::string payload);
  void HandleControl(int from, const ControlMessage& m);
  void MarkDead(int peer, bool broadcast);
  void SendControl(int to, ControlMessage m);
  void BroadcastAbort();
  std::shared_ptr<Work> Enqueue(CollOp op);
  std::shared_ptr<Work> Refuse(Status status);
  bool dead(int r) const { return (dead_mask_ & Bit(r)) != 0; }
  // Halt(): parks the calling coroutine for good (a halted rank never resumes its work).
  Task<void> Park();
  bool halted_ = false;

  // --- pg_channel.cc ---
  uint64_t SlotOffset(int sender, ChannelClass cls, uint64_t slot) const;
  uint64_t chunk_bytes() const { return options_.slot_bytes; }
  // The chunk size of one step's message of `bytes` to one peer (sender and receiver
  // compute the same from the same message size): slot-sized, or on device slots with
  // options.device_chunks > 1, that many pieces (at least device_chunk_min_bytes, 64 KiB
  // multiples).
  uint64_t ChunkFor(uint64_t bytes) const;
  // The length of the chunk at `off` of a `bytes`-byte message cut by ChunkFor's `chunk`
  // (sender and receiver walk the same offsets): min(chunk, bytes - off), except with
  // options.device_short_last_chunk on device slots, where the first chunk is longer and
  // the last one half a chunk.
  uint64_t ChunkLen(uint64_t bytes, uint64_t off, uint64_t chunk) const;
  template <typename Pred>
  Task<Status> WaitPeer(int peer, ChannelClass cls, uint64_t deadline_ns, Pred pred);
  Task<bool> ProbePeer(int peer);
  Task<Status> SendChunk(int peer, ChannelClass cls, uint64_t attempt, const uint8_t* src,
                         uint64_t len, uint32_t tag, uint64_t total, uint64_t offset,
                         uint64_t deadline_ns);
  // The second half of SendChunk: stages (or not) and WRITEs chunk `seq`, then notifies.
  // Device slots: a chunk from outside working memory is copied to `stage_into` (a range
  // of working memory) instead of the send staging slot when one is given.
  Task<Status> WriteChunk(int peer, ChannelClass cls, uint64_t attempt, uint64_t seq,
                          const uint8_t* src, uint64_t len, uint32_t tag, uint64_t total,
                          uint64_t offset, uint64_t deadline_ns, uint8_t* stage_into = nullptr);
  // Notifies `h` (a chunk's notification or a pull offer) to `peer` and keeps it until a
  // credit covers it (Resync re-sends it); RANK_FAILED when the notify fails and a probe
  // finds the peer dead.
  Task<Status> NotifyKept(int peer, const DataHeader& h);
  // Runs `reqs` against `peer` (a chunk's WRITE, a pulled message's READs), the failed ones
  // again after a probe that answers; RANK_FAILED after one that does not.
  Task<Status> TransferRetried(int peer, ChannelClass cls, uint64_t seq,
                               std::vector<TransferRequest> reqs, uint64_t deadline_ns);
  // A collective send of device slots: up to slots_ chunk WRITEs in flight at once; or,
  // with s.pull, the pull offer (OfferPull).
  Task<Status> SendWindowed(SendSpec s, uint64_t attempt, uint64_t chunk, uint64_t deadline_ns);
  // Pulled messages (pg_channel.cc, "Pulled messages"). The sender: notifies the offer
  // and waits until the reader's credit covers it.
  Task<Status> OfferPull(const SendSpec& s, uint64_t attempt, uint64_t deadline_ns);
  // The reader: READs the offered message `h` into dst (straight, when dst is registered
  // memory, else through this sender's receive slots and a copy), joined before it returns.
  Task<Status> PullMessage(int peer, const DataHeader& h, uint8_t* dst, uint64_t bytes,
                           uint64_t chunk, uint64_t deadline_ns);
  // Receives the next chunk from `peer` into `dst` (copy or fold). Returns the header.
  Task<Result<DataHeader>> RecvChunk(int peer, ChannelClass cls, uint64_t attempt, uint8_t* dst,
                                     uint64_t capacity, bool reduce, DataType dtype, ReduceOp rop,
                                     uint64_t deadline_ns);
  Task<Status> RunStep(std::vector<SendSpec> sends, std::vector<RecvSpec> recvs, DataType dtype,
                       ReduceOp rop, uint64_t deadline_ns);
  void ResetCollChannels(uint64_t attempt);

  // Buffers at loc_: copies and zero fills through the reducer (memcpy/memset on host).
  Status CopyLocal(void* dst, const void* src, uint64_t bytes);
  Status ZeroLocal(void* dst, uint64_t bytes);
  // CopyLocal without holding the executor: device copies are awaited (ranks that share
  // one executor, as on the cuda fabric, copy on their GPUs at the same time).
  Task<Status> CopyLocalAsync(void* dst, const void* src, uint64_t bytes);
  // The reducer's asynchronous forms, awaited (the executor keeps running meanwhile).
  Task<Status> FoldAsync(void* acc, const void* in, uint64_t count, DataType dtype, ReduceOp rop);
  Task<Status> CopyAsync(void* dst, const void* src, uint64_t bytes);
  // `start` is called before the first suspension (a named local of the caller).
  Task<Status> AwaitReducer(const std::function<void(Reducer::Done)>& start);
  // Starts reducer work; `then` runs on the executor once it finished (not after the
  // group is gone).
  void StartReducer(std::function<void(Reducer::Done)> start, std::function<void(Status)> then);
  // One event of the chunk timeline (chunk_trace.h) at this rank's Env time; a load and a
  // branch when the timeline is off.
  void Trace(trace::Ev ev, uint64_t seq) {
    if (trace::Enabled()) trace::Record(ev, rank_, seq, env_.NowNs());
  }
  // Returns slots: tells `peer` this rank consumed `consumed` chunks of the attempt.
  void SendCredit(int peer, ChannelClass cls, uint64_t attempt, uint64_t consumed);
  // Lost notifications (a link that flapped, a healed partition): after a probe found
  // `peer` alive but silent, re-sends this rank's notifications of the chunks `peer` has
  // not consumed and its latest credit to `peer` (see pg_channel.cc, "Retransmission").
  void Resync(int peer, ChannelClass cls);
  void ResendUnacked(int peer, ChannelClass cls);
  // A notification of the current attempt came from `from` after this rank gave the
  // attempt up (its abort may have been lost): tells it again.
  void AnswerGivenUpAttempt(int from, const DataHeader& h);
  // A collective receive into device slots: the copy or fold of each chunk is queued
  // at once and its slot returned when it finished, while the next chunk is taken.
  Task<Status> RecvWindowed(RecvSpec r, uint64_t attempt, uint64_t chunk, DataType dtype,
                            ReduceOp rop, uint64_t deadline_ns);
  // Working memory: one grow-only arena at loc_ (registered with the engine for device
  // locations, so chunks are written straight from it), handed out by TakeScratch after
  // ReserveScratch(total) at the start of an attempt.
  Task<Status> ReserveScratch(uint64_t bytes);
  uint8_t* TakeScratch(uint64_t bytes);
  bool InScratch(const uint8_t* p, uint64_t len) const;
  // Device slots: whether [p, p+len) lies in one buffer of RegisterBuffer (WRITTEN from
  // where it is, without a staging copy).
  bool InUserBuffer(const uint8_t* p, uint64_t len) const;
  Task<Status> RegisterBuffer(void* data, uint64_t bytes);
  Task<Status> UnregisterBuffer(void* data);
  // A device copy started without waiting for it (JoinCopy waits); on host slots the copy
  // is made at once.
  struct PendingCopy {
    bool done = false;
    Status status;
  };
  std::shared_ptr<PendingCopy> StartCopy(void* dst, const void* src, uint64_t bytes);
  void StartCopyInto(std::shared_ptr<PendingCopy> copy, void* dst, const void* src,
                     uint64_t bytes);
  // StartCopy from the executor's next turn (device slots): a copy that runs beside a
  // step's WRITEs is queued on the GPU after the caller submitted them, so it does not
  // delay the first WRITE (measured 7-20 us at 64 MiB when queued first).
  std::shared_ptr<PendingCopy> StartCopySoon(void* dst, const void* src, uint64_t bytes);
  Task<Status> JoinCopy(std::shared_ptr<PendingCopy> copy);

  // --- pg_collective.cc ---
  Task<void> Runner();
  Task<void> RunCollective(CollOp& op);
  Task<Result<ControlMessage>> Agree(uint64_t op, uint32_t epoch, uint64_t view, bool done,
                                     uint64_t deadline_ns);
  // Coordinator: decides the attempt once every live member reported (else sets
  // *missing to the silent members and returns nothing).
  std::optional<ControlMessage> TryDecide(uint64_t op, uint32_t epoch, uint64_t view,
                                          uint64_t* missing);
  Task<Status> Boundary(CollOp& op, uint32_t epoch, uint64_t step, uint64_t steps);

  // --- pg_algorithms.cc ---
  // What one attempt of an op needs to know about its members.
  struct Attempt {
    CollOp& op;
    const std::vector<int>& mem;  // sorted member ranks
    uint64_t m;                   // members
    uint64_t i;                   // this rank's index in mem
    int next, prev;               // ring neighbours
    DataType dt;
    uint64_t es;  // element size
    uint32_t epoch;
    uint64_t deadline_ns;
    std::vector<SendSpec> sends;  // the step being built
    std::vector<RecvSpec> recvs;
  };
  Task<Status> RunAlgorithm(CollOp& op, const std::vector<int>& members, uint32_t epoch,
                            uint64_t deadline_ns);
  Task<Status> Step(Attempt& a, uint64_t step, uint64_t steps);  // a boundary
  Task<Status> Move(Attempt& a);                                 // run a.sends / a.recvs
  Task<Status> RunReduction(Attempt& a);                         // AllReduce, Reduce
  // lazy: buf starts empty; step 0 sends from the input and every fold copies its target
  // from the input first (device groups, m >= 2).
  Task<Status> RunRingReduceScatter(Attempt& a, uint64_t n, uint64_t steps, bool lazy);
  // Algorithm::kSplit (schedule.h): AllReduce and Reduce in two steps over every link.
  Task<Status> RunSplitReduction(Attempt& a, uint64_t steps);
  // ReduceInOrder of this rank's segment; on device slots the folds are queued at once and
  // waited for together.
  Task<Status> ReduceInOrderAsync(Attempt& a, const uint8_t* own, uint8_t* out, uint64_t count);
  Task<Status> RunBroadcast(Attempt& a);
  // Algorithm::kSplit broadcast from `from` (the root's data): its two data steps.
  Task<Status> RunSplitBroadcast(Attempt& a, const uint8_t* from, uint64_t steps);
  Task<Status> RunAllGather(Attempt& a);
  Task<Status> RunReduceScatter(Attempt& a);
  Task<Status> RunRooted(Attempt& a);  // Gather, Scatter
  Task<Status> RunAllToAll(Attempt& a);
  Status ReduceInOrder(Attempt& a, const uint8_t* own, uint8_t* out, uint64_t count);
  // The m contributions in member order: `own` at this rank's index, a.op.parts elsewhere.
  static std::vector<const void*> MemberInputs(const Attempt& a, const uint8_t* own);
  Status CheckTensor(const Tensor& t, std::string_view what) const;
  // options.direct_outputs and an op whose output does not overlap its input (and has
  // bytes): the output is the attempt's working memory (see ProcessGroupOptions).
  bool DirectOutputs(const CollOp& op) const;
  // Whether this rank offers `bytes` at `data` (its input) for pulling: device slots,
  // options.device_pull, DirectOutputs(op) with an input (so no attempt writes it), and
  // the range in one buffer of RegisterBuffer.
  bool PullFrom(const CollOp& op, const uint8_t* data, uint64_t bytes) const;
  Task<Status> Finalize(CollOp& op, uint64_t view);
  // Zeroes the blocks (block_bytes each, by rank) of the ranks that are not members.
  Status ZeroNonMembers(Attempt& a, uint8_t* buf, uint64_t block_bytes);

  // --- pg_p2p.cc ---
  std::shared_ptr<Work> SubmitP2P(std::span<const P2POp> ops);
  Task<void> SendWorker(int peer);
  Task<void> RecvWorker(int peer);
  Task<Status> SendMessage(int peer, const P2PItem& item);
  // Completes posted receives from `peer` that a stashed message matches; true if any.
  bool MatchStashed(int peer);
  bool StashMatchesPosted(int peer) const;
  // Receives the message whose first chunk header is `first` into `dst` (nullptr:
  // discard), committing to `dst` only once every chunk arrived.
  Task<Status> ReceiveWhole(int peer, const DataHeader& first, uint8_t* dst,
                            uint64_t deadline_ns);
  void FailPostedRecvs(int peer, const Status& st);
  void FinishP2P(const P2PItem& item, int peer, Status st);

  // --- configuration ---
  int rank_;
  int size_;
  TransferEngine& engine_;
  Env& env_;
  Messenger& messenger_;
  MetadataStore& store_;
  ProcessGroupOptions options_;
  Reducer* reducer_;
  Location loc_;  // slot location: slots, staging, working memory and tensors
  BufferAllocator* alloc_;
  uint64_t slots_;  // options_.slots_per_channel
  uint64_t group_hash_;
  ProcessGroupStats stats_;
  Signal changed_;
  std::shared_ptr<bool> alive_;

  // --- bootstrap and peers ---
  bool started_ = false;
  bool start_called_ = false;
  uint8_t* recv_base_ = nullptr;  // from alloc_, freed with the group
  uint8_t* send_base_ = nullptr;
  uint64_t region_bytes_ = 0;
  uint8_t* scratch_ = nullptr;
  uint64_t scratch_bytes_ = 0;
  uint64_t scratch_used_ = 0;
  bool scratch_registered_ = false;
  std::map<const uint8_t*, uint64_t> user_buffers_;  // RegisterBuffer: start -> bytes
  struct Peer {
    SegmentHandle seg;
    bool open = false;
    uint64_t recv_addr = 0;
    std::string segment, endpoint;
  };
  std::vector<Peer> peers_;
  std::map<std::string, int, std::less<>> rank_by_segment_, rank_by_endpoint_;
  std::vector<Notification> early_notifies_;
  std::vector<std::pair<std::string, std::string>> early_messages_;
  uint64_t dead_mask_ = 0;
  uint64_t active_mask_ = 0;

  // --- channels: [peer][class] ---
  struct SendChan {
    uint64_t attempt = 0;
    uint64_t sent = 0;
    uint64_t consumed = 0;
    // Notifications sent (their WRITEs completed) of chunks not yet credited, by seq:
    // what Resync re-sends.
    std::map<uint64_t, DataHeader> unacked;
  };
  struct RecvChan {
    uint64_t attempt = 0;
    uint64_t next = 0;      // chunks taken (copies or folds may still be reading slots)
    uint64_t credited = 0;  // chunks consumed and credited (<= next): the latest credit
    std::map<std::pair<uint64_t, uint64_t>, DataHeader> pending;  // (attempt, seq)
  };
  std::vector<std::array<SendChan, kChannelClasses>> send_chan_;
  std::vector<std::array<RecvChan, kChannelClasses>> recv_chan_;

  // --- collectives ---
  std::deque<CollOp> queue_;
  bool runner_active_ = false;
  bool broken_ = false;
  uint64_t next_op_seq_ = 0;
  bool in_attempt_ = false;
  uint64_t cur_op_ = 0;
  uint32_t cur_epoch_ = 0;
  uint64_t cur_view_ = 0;
  bool attempt_aborted_ = false;
  bool report_ready_ = false;
  ControlMessage my_report_;
  std::map<uint64_t, ControlMessage> decisions_;               // attempt key -> decision
  std::map<uint64_t, std::map<int, ControlMessage>> reports_;  // attempt key -> reports

  // --- point-to-point: per peer ---
  std::vector<std::deque<P2PItem>> send_q_, recv_q_;
  std::vector<bool> send_worker_, recv_worker_;
  // Messages that arrived before a receive with their tag was posted, in arrival order.
  struct Stashed {
    uint32_t tag = 0;
    std::vector<uint8_t> data;
  };
  std::vector<std::deque<Stashed>> stash_;
  std::vector<uint64_t> stash_bytes_;
  // The channel of this group's engine notifications (never 0, the engine's default).
  uint64_t notify_channel_ = 0;
};

template <typename Pred>
Task<Status> ProcessGroup::Impl::WaitPeer(int peer, ChannelClass cls, uint64_t deadline_ns,
                                          Pred pred) {
  uint64_t interval = options_.peer_check_ns;
  uint64_t next_check = env_.NowNs() + interval;
  for (;;) {
    if (halted_) co_await Park();
    if (pred()) co_return Status::Ok();
    if (dead(peer)) {
      co_return Status(ErrorCode::RANK_FAILED, "rank " + std::to_string(peer) + " failed");
    }
    if (cls == ChannelClass::kColl && attempt_aborted_) {
      co_return Status(ErrorCode::COLLECTIVE_ABORTED, "attempt aborted");
    }
    uint64_t now = env_.NowNs();
    if (now >= deadline_ns) {
      co_return Status(ErrorCode::OPERATION_TIMEOUT,
                       "waiting for rank " + std::to_string(peer) + " timed out");
    }
    if (now >= next_check && options_.planted_bug == CollBug::kSilenceIsDeath) {
      MarkDead(peer, /*broadcast=*/true);  // planted: silence taken for death, unprobed
      continue;
    }
    if (now >= next_check) {
      // Silence is not evidence (field bug 10): only a probe that fails marks the peer.
      // A peer that answers but stays silent may have lost what we sent it, or we what
      // it sent: both sides re-send (Resync), so a healed link does not end in a timeout.
      const bool alive = co_await ProbePeer(peer);
      if (alive) Resync(peer, cls);
      interval = std::min(interval * 2, options_.peer_check_ns * 64);
      next_check = env_.NowNs() + interval;
      continue;
    }
    co_await changed_.Wait(std::min(deadline_ns, next_check));
  }
}

}  // namespace tidal::coll
