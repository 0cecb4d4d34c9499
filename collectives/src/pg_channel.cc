// The chunk channels of the process group: credits, WRITE + notify, receive, probes, and
// RunStep, which moves one step's sends and receives concurrently.
//
// A channel is one direction of one pair in one class (collective or p2p). The receiver
// owns options.slots_per_channel slots (S, default 2) per sender; chunk `seq` goes to slot
// seq % S. The sender may have at most S chunks unconsumed (sent - consumed < S); the receiver returns a
// credit carrying its consumed count after it has copied or folded a slot. Collective
// channels restart at every attempt (op, epoch): chunks and credits of other attempts
// are ignored, so a retried attempt never reads a stale slot as its own.
//
// Retransmission. A notification or a credit can be lost (a partition that heals, a link
// that flaps); a completed WRITE cannot (its completion means the data landed), and a
// failed one is retried by WriteChunk. So the sender keeps the header of every chunk it
// notified until a credit covers it (SendChan::unacked), and whenever a rank probes a peer
// that answers but stays silent (WaitPeer, after peer_check_ns), Resync re-sends both what
// that peer may have lost: this rank's uncredited notifications and its latest credit.
// The receiver dedupes by (attempt, seq): a chunk it already credited is answered with its
// current credit (never read again), one it has taken but not yet credited (a fold still
// reading the slot) is ignored, and one it holds is kept once. A credit equal to what the
// sender already has is the receiver asking again: the sender re-sends its uncredited
// notifications. Credits only grow, so a re-sent one never frees a slot early, and a slot
// is never written again before the credit that returns it. A rank that gave up the
// current attempt answers its peers' notifications of that attempt with its abort again.
//
// Pulled messages (options.device_pull). A sender whose message lies in a registered
// buffer that no attempt writes (the input of an out-of-place op with direct outputs)
// may send, instead of chunks, one pull offer: a notification of kind kPull that takes
// one sequence number (and counts against the slots like a chunk) and carries the
// message's address. The receiver, meeting it where the message's first chunk was due,
// READs the whole message itself (straight into its destination when that is registered
// memory, else chunk by chunk through this sender's slots, which are all free: earlier
// chunks were consumed in order, and the sender sends nothing more before the credit),
// joins every READ it issued, and only then credits the offer's sequence number. So every
// byte that lands in a rank's output was moved by a transfer of that rank, finished
// before its attempt ends: nothing of a rank that left the view can land there later, and
// a retry rewrites every byte. The sender keeps its input as it is (it does not return)
// until the credit, the reader's failure, or the attempt's abort; it never waits past the
// op's deadline. The offer is retransmitted and deduplicated like a chunk notification.
// A READ from a dead sender fails, a probe confirms it, and the reader's step ends with
// RANK_FAILED. The sender decides per message; a receiver takes either form.
#include <algorithm>
#include <atomic>
#include <cstring>

#include "pg_impl.h"
#include "tidal/reach.h"

namespace tidal::coll {

uint64_t ProcessGroup::Impl::SlotOffset(int sender, ChannelClass cls, uint64_t slot) const {
  uint64_t index = (static_cast<uint64_t>(sender) * kChannelClasses + static_cast<uint64_t>(cls)) *
                       slots_ +
                   slot;
  return index * options_.slot_bytes;
}

void ProcessGroup::Impl::ResetCollChannels(uint64_t attempt) {
  auto cls = static_cast<size_t>(ChannelClass::kColl);
  for (int p = 0; p < size_; ++p) {
    send_chan_[p][cls] = SendChan{attempt, 0, 0, {}};
    RecvChan& rc = recv_chan_[p][cls];
    rc.attempt = attempt;
    rc.next = 0;
    rc.credited = 0;
    for (auto it = rc.pending.begin(); it != rc.pending.end();) {
      it = it->first.first < attempt ? rc.pending.erase(it) : std::next(it);
    }
  }
}

Status ProcessGroup::Impl::CopyLocal(void* dst, const void* src, uint64_t bytes) {
  if (bytes == 0 || dst == src) return Status::Ok();
  if (loc_.is_host()) {
    std::memmove(dst, src, bytes);
    return Status::Ok();
  }
  return reducer_->Copy(dst, src, bytes, loc_);
}

Task<Status> ProcessGroup::Impl::CopyLocalAsync(void* dst, const void* src, uint64_t bytes) {
  if (bytes == 0 || dst == src) co_return Status::Ok();
  if (loc_.is_host()) {
    std::memmove(dst, src, bytes);
    co_return Status::Ok();
  }
  Status st = co_await CopyAsync(dst, src, bytes);
  co_return st;
}

Status ProcessGroup::Impl::ZeroLocal(void* dst, uint64_t bytes) {
  if (bytes == 0) return Status::Ok();
  if (loc_.is_host()) {
    std::memset(dst, 0, bytes);
    return Status::Ok();
  }
  // u8 SUM's identity is 0: every byte zero.
  return reducer_->Identity(dst, bytes, DataType::kU8, ReduceOp::kSum, loc_);
}

namespace {
struct ReducerCall {
  bool done = false;
  Status status;
};

// One asynchronous reducer call. `phase` decides, without asking which thread runs, who
// hands the status to `then`: a completion that arrives while `start` is still running
// (inline, or from a device callback thread before `start` returned) leaves it for the
// caller, which runs `then` on the executor as soon as `start` returns; a later one posts
// it to the executor.
struct PendingReducer {
  enum : int { kCalling = 0, kFinishedDuringCall = 1, kReturned = 2 };
  std::atomic<int> phase{kCalling};
  Status status;  // written before phase leaves kCalling
  std::function<void(Status)> then;
};
}  // namespace

void ProcessGroup::Impl::StartReducer(std::function<void(Reducer::Done)> start,
                                      std::function<void(Status)> then) {
  auto pending = std::make_shared<PendingReducer>();
  pending->then = std::move(then);
  std::weak_ptr<bool> alive = alive_;
  Env* env = &env_;
  start([pending, alive, env](Status st) {
    pending->status = std::move(st);
    int expected = PendingReducer::kCalling;
    if (pending->phase.compare_exchange_strong(expected, PendingReducer::kFinishedDuringCall)) {
      return;  // the caller is still inside start(): it runs `then`
    }
    env->Post([pending, alive] {
      if (!alive.expired()) pending->then(std::move(pending->status));
    });
  });
  int expected = PendingReducer::kCalling;
  if (!pending->phase.compare_exchange_strong(expected, PendingReducer::kReturned)) {
    if (!alive.expired()) pending->then(std::move(pending->status));
  }
}

Task<Status> ProcessGroup::Impl::AwaitReducer(const std::function<void(Reducer::Done)>& start) {
  auto call = std::make_shared<ReducerCall>();
  StartReducer(start, [call, this](Status st) {
    call->status = std::move(st);
    call->done = true;
    changed_.NotifyAll();
  });
  // Device work always finishes (it never waits on a peer), so this wait needs no deadline.
  while (!call->done) co_await changed_.Wait(kNoDeadline);
  co_return call->status;
}

void ProcessGroup::Impl::SendCredit(int peer, ChannelClass cls, uint64_t attempt,
                                    uint64_t consumed) {
  RecvChan& rc = recv_chan_[peer][static_cast<size_t>(cls)];
  if (rc.attempt == attempt) rc.credited = std::max(rc.credited, consumed);
  if (dead(peer) || !peers_[peer].open || halted_) return;
  DataHeader credit;
  credit.kind = DataHeader::Kind::kCredit;
  credit.cls = cls;
  credit.from = static_cast<uint32_t>(rank_);
  credit.group = group_hash_;
  credit.attempt = attempt;
  credit.seq = consumed;
  ++stats_.notifies_to[peer];
  (void)engine_.Notify(peers_[peer].seg, notify_channel_, EncodeDataHeader(credit));
}

void ProcessGroup::Impl::ResendUnacked(int peer, ChannelClass cls) {
  SendChan& c = send_chan_[peer][static_cast<size_t>(cls)];
  if (dead(peer) || !peers_[peer].open || halted_) return;
  for (const auto& [seq, h] : c.unacked) {
    ++stats_.notifies_to[peer];
    ++stats_.notifies_resent;
    (void)engine_.Notify(peers_[peer].seg, notify_channel_, EncodeDataHeader(h));
  }
}

void ProcessGroup::Impl::Resync(int peer, ChannelClass cls) {
  TIDAL_REACHABLE("coll.channel_resynced_after_silence");
  ResendUnacked(peer, cls);
  const RecvChan& rc = recv_chan_[peer][static_cast<size_t>(cls)];
  // Even a credit of 0 asks: the first notification may be the one lost.
  ++stats_.credits_resent;
  SendCredit(peer, cls, rc.attempt, rc.credited);
}

void ProcessGroup::Impl::AnswerGivenUpAttempt(int from, const DataHeader& h) {
  if (h.cls != ChannelClass::kColl || !in_attempt_ ||
      h.attempt != AttemptKey(cur_op_, cur_epoch_)) {
    return;
  }
  if (!attempt_aborted_ && !(report_ready_ && !my_report_.done)) return;
  TIDAL_REACHABLE("coll.abort_resent_to_waiting_peer");
  ControlMessage m;
  m.kind = ControlMessage::Kind::kAbort;
  m.op = cur_op_;
  m.epoch = cur_epoch_;
  m.dead = dead_mask_;
  SendControl(from, m);
}

uint64_t ProcessGroup::Impl::ChunkFor(uint64_t bytes) const {
  const uint64_t slot = options_.slot_bytes;
  const uint64_t floor = options_.device_chunk_min_bytes;
  if (loc_.is_host() || options_.device_chunks <= 1 || bytes <= floor) return slot;
  constexpr uint64_t kGrain = 64 << 10;  // a multiple of every element size
  uint64_t piece = (bytes + options_.device_chunks - 1) / options_.device_chunks;
  piece = std::max<uint64_t>((piece + kGrain - 1) / kGrain * kGrain, floor);
  return std::min(piece, slot);
}

uint64_t ProcessGroup::Impl::ChunkLen(uint64_t bytes, uint64_t off, uint64_t chunk) const {
  const uint64_t len = std::min(chunk, bytes - off);
  if (!options_.device_short_last_chunk || loc_.is_host() || bytes <= chunk) return len;
  constexpr uint64_t kGrain = 64 << 10;  // a multiple of every element size
  const uint64_t half = chunk / 2 / kGrain * kGrain;
  const uint64_t last = bytes - (bytes - 1) / chunk * chunk;  // the last of uniform chunks
  if (half == 0 || last <= half) return len;
  const uint64_t shift = last - half;  // moved from the last chunk into the first
  if (chunk + shift > options_.slot_bytes) return len;
  // Chunks at [0, chunk + shift), then `chunk` each from there, the last `half` long.
  return off == 0 ? chunk + shift : len;
}

Task<Status> ProcessGroup::Impl::RecvWindowed(RecvSpec r, uint64_t attempt, uint64_t chunk,
                                              DataType dtype, ReduceOp rop,
                                              uint64_t deadline_ns) {
  struct Window {
    size_t running = 0;
    Status first_error;
  };
  auto w = std::make_shared<Window>();
  RecvChan& c = recv_chan_[r.peer][static_cast<size_t>(ChannelClass::kColl)];
  const size_t es = DataTypeSize(dtype);
  Status st = Status::Ok();
  for (uint64_t off = 0, len = 0; off < r.bytes; off += len) {
    len = ChunkLen(r.bytes, off, chunk);
    std::pair<uint64_t, uint64_t> key{attempt, c.next};
    auto arrived = [&c, key]() { return c.pending.count(key) != 0; };
    st = co_await WaitPeer(r.peer, ChannelClass::kColl, deadline_ns, arrived);
    if (st.ok()) st = w->first_error;
    if (!st.ok()) break;
    DataHeader h = c.pending[key];
    c.pending.erase(key);
    const uint8_t* slot = recv_base_ + SlotOffset(r.peer, ChannelClass::kColl, c.next % slots_);
    const uint64_t consumed = ++c.next;
    if (h.kind == DataHeader::Kind::kPull) {
      // The whole message, READ by this rank (see "Pulled messages"); credited only once
      // every READ finished. Offered in place of the first chunk, of a copied message.
      if (off != 0 || h.bytes != r.bytes || r.reduce || r.init != nullptr) {
        st = Status(ErrorCode::CORRUPT_INPUT, "pull offer where a chunk was expected");
        break;
      }
      Trace(trace::Ev::kArrived, consumed - 1);
      st = co_await PullMessage(r.peer, h, r.data, r.bytes, chunk, deadline_ns);
      if (st.ok()) SendCredit(r.peer, ChannelClass::kColl, attempt, consumed);
      break;
    }
    if (h.bytes != len) {
      st = Status(ErrorCode::CORRUPT_INPUT, "chunk of unexpected size");
      break;
    }
    // Queued on the reducer's stream in order, so completions (and credits) come in order;
    // the slot is returned only once the copy or fold has read it.
    ++w->running;
    Reducer* red = reducer_;
    Location loc = loc_;
    uint8_t* dst = r.data + off;
    const uint8_t* init = r.init != nullptr ? r.init + off : nullptr;
    const bool reduce = r.reduce;
    const bool twice = reduce && options_.planted_bug == CollBug::kFoldTwice;  // planted
    const bool peer_first = reduce && init != nullptr && r.peer_first;
    auto init_error = std::make_shared<Status>();
    Trace(trace::Ev::kArrived, consumed - 1);
    Trace(trace::Ev::kFoldStart, consumed - 1);
    StartReducer(
        [=](Reducer::Done done) {
          if (reduce && init != nullptr) {
            // One pass: dst = init (op) chunk, or chunk (op) init when the sender's value is
            // the accumulator (peer_first).
            const void* acc = peer_first ? static_cast<const void*>(slot) : init;
            const void* in = peer_first ? static_cast<const void*>(init) : slot;
            if (twice) {
              red->FoldIntoAsync(dst, acc, in, len / es, dtype, rop, loc,
                                 [init_error](Status st) {
                                   if (!st.ok()) *init_error = st;
                                 });
              red->FoldAsync(dst, in, len / es, dtype, rop, loc, std::move(done));
            } else {
              red->FoldIntoAsync(dst, acc, in, len / es, dtype, rop, loc, std::move(done));
            }
            return;
          }
          if (init != nullptr) {
            // Queued ahead of the fold on the same stream: the fold sees the copy.
            red->CopyAsync(dst, init, len, loc, [init_error](Status st) {
              if (!st.ok()) *init_error = st;
            });
          }
          if (twice) {
            red->FoldAsync(dst, slot, len / es, dtype, rop, loc, [init_error](Status st) {
              if (!st.ok()) *init_error = st;
            });
          }
          if (reduce) {
            red->FoldAsync(dst, slot, len / es, dtype, rop, loc, std::move(done));
          } else {
            red->CopyAsync(dst, slot, len, loc, std::move(done));
          }
        },
        [this, w, peer = r.peer, attempt, consumed, init_error](Status done) {
          Trace(trace::Ev::kFoldDone, consumed - 1);
          if (done.ok()) done = *init_error;
          if (!done.ok() && w->first_error.ok()) w->first_error = done;
          SendCredit(peer, ChannelClass::kColl, attempt, consumed);
          --w->running;
          changed_.NotifyAll();
        });
  }
  while (w->running > 0) co_await changed_.Wait(kNoDeadline);
  if (st.ok()) st = w->first_error;
  co_return st;
}

Task<Status> ProcessGroup::Impl::FoldAsync(void* acc, const void* in, uint64_t count,
                                           DataType dtype, ReduceOp rop) {
  if (count == 0) co_return Status::Ok();
  Reducer* r = reducer_;
  Location loc = loc_;
  std::function<void(Reducer::Done)> start = [=](Reducer::Done done) {
    r->FoldAsync(acc, in, count, dtype, rop, loc, std::move(done));
  };
  Status st = co_await AwaitReducer(start);
  co_return st;
}

Task<Status> ProcessGroup::Impl::CopyAsync(void* dst, const void* src, uint64_t bytes) {
  if (bytes == 0 || dst == src) co_return Status::Ok();
  Reducer* r = reducer_;
  Location loc = loc_;
  std::function<void(Reducer::Done)> start = [=](Reducer::Done done) {
    r->CopyAsync(dst, src, bytes, loc, std::move(done));
  };
  Status st = co_await AwaitReducer(start);
  co_return st;
}

Task<Status> ProcessGroup::Impl::ReserveScratch(uint64_t bytes) {
  scratch_used_ = 0;
  if (bytes <= scratch_bytes_) co_return Status::Ok();
  // Grow: nothing is in flight between attempts, so the old arena can go.
  if (scratch_registered_) {
    TIDAL_CO_RETURN_IF_ERROR(co_await engine_.UnregisterMemory(scratch_));
    scratch_registered_ = false;
  }
  if (scratch_ != nullptr) alloc_->Free(scratch_, scratch_bytes_, loc_);
  scratch_ = nullptr;
  scratch_bytes_ = 0;
  // Round up (to 1 MiB past 1 MiB) so that slowly growing ops do not reallocate each time.
  uint64_t want = bytes < (1u << 20) ? bytes : ((bytes + (1u << 20) - 1) & ~uint64_t{(1u << 20) - 1});
  auto got = alloc_->Allocate(want, loc_);
  if (!got.ok()) co_return got.status();
  scratch_ = static_cast<uint8_t*>(*got);
  scratch_bytes_ = want;
  if (!loc_.is_host()) {
    auto reg = co_await engine_.RegisterMemory(scratch_, scratch_bytes_, loc_);
    if (!reg.ok()) co_return reg.status();
    scratch_registered_ = true;
  }
  co_return Status::Ok();
}

uint8_t* ProcessGroup::Impl::TakeScratch(uint64_t bytes) {
  uint64_t aligned = (bytes + 255) & ~uint64_t{255};
  TIDAL_ASSERT(scratch_used_ + aligned <= scratch_bytes_ || bytes == 0);
  uint8_t* p = scratch_ + scratch_used_;
  scratch_used_ += bytes == 0 ? 0 : aligned;
  return p;
}

bool ProcessGroup::Impl::InScratch(const uint8_t* p, uint64_t len) const {
  if (!scratch_registered_ || p < scratch_) return false;
  uint64_t off = static_cast<uint64_t>(p - scratch_);
  return off <= scratch_bytes_ && len <= scratch_bytes_ - off;
}

bool ProcessGroup::Impl::InUserBuffer(const uint8_t* p, uint64_t len) const {
  if (user_buffers_.empty() || loc_.is_host()) return false;
  auto it = user_buffers_.upper_bound(p);
  if (it == user_buffers_.begin()) return false;
  --it;
  const uint64_t off = static_cast<uint64_t>(p - it->first);
  return off <= it->second && len <= it->second - off;
}

Task<Status> ProcessGroup::Impl::RegisterBuffer(void* data, uint64_t bytes) {
  if (!started_) co_return Status(ErrorCode::INVALID_PARAMS, "RegisterBuffer before Start");
  if (loc_.is_host()) {
    co_return Status(ErrorCode::UNSUPPORTED, "RegisterBuffer: host slots stage every chunk");
  }
  if (data == nullptr || bytes == 0) {
    co_return Status(ErrorCode::INVALID_PARAMS, "RegisterBuffer: no memory given");
  }
  if (!queue_.empty() || runner_active_) {
    co_return Status(ErrorCode::INVALID_PARAMS, "RegisterBuffer: operations are pending");
  }
  auto reg = co_await engine_.RegisterMemory(data, bytes, loc_);
  if (!reg.ok()) co_return reg.status();
  user_buffers_[static_cast<const uint8_t*>(data)] = bytes;
  co_return Status::Ok();
}

Task<Status> ProcessGroup::Impl::UnregisterBuffer(void* data) {
  auto it = user_buffers_.find(static_cast<const uint8_t*>(data));
  if (it == user_buffers_.end()) {
    co_return Status(ErrorCode::INVALID_PARAMS,
                     "UnregisterBuffer: not a buffer of this group's RegisterBuffer");
  }
  if (!queue_.empty() || runner_active_) {
    co_return Status(ErrorCode::INVALID_PARAMS, "UnregisterBuffer: operations are pending");
  }
  TIDAL_CO_RETURN_IF_ERROR(co_await engine_.UnregisterMemory(data));
  user_buffers_.erase(it);
  co_return Status::Ok();
}

std::shared_ptr<ProcessGroup::Impl::PendingCopy> ProcessGroup::Impl::StartCopy(void* dst,
                                                                             const void* src,
                                                                             uint64_t bytes) {
  auto copy = std::make_shared<PendingCopy>();
  StartCopyInto(copy, dst, src, bytes);
  return copy;
}

void ProcessGroup::Impl::StartCopyInto(std::shared_ptr<PendingCopy> copy, void* dst,
                                       const void* src, uint64_t bytes) {
  if (bytes == 0 || dst == src || loc_.is_host()) {
    copy->status = CopyLocal(dst, src, bytes);
    copy->done = true;
    return;
  }
  Reducer* r = reducer_;
  Location loc = loc_;
  StartReducer([=](Reducer::Done done) { r->CopyAsync(dst, src, bytes, loc, std::move(done)); },
               [copy, this](Status st) {
                 copy->status = std::move(st);
                 copy->done = true;
                 changed_.NotifyAll();
               });
}

std::shared_ptr<ProcessGroup::Impl::PendingCopy> ProcessGroup::Impl::StartCopySoon(
    void* dst, const void* src, uint64_t bytes) {
  if (bytes == 0 || dst == src || loc_.is_host()) return StartCopy(dst, src, bytes);
  auto copy = std::make_shared<PendingCopy>();
  std::weak_ptr<bool> alive = alive_;
  env_.Post([this, alive, copy, dst, src, bytes] {
    if (!alive.expired()) StartCopyInto(copy, dst, src, bytes);
  });
  return copy;
}

Task<Status> ProcessGroup::Impl::JoinCopy(std::shared_ptr<PendingCopy> copy) {
  // Device work always finishes (it never waits on a peer): no deadline.
  while (!copy->done) co_await changed_.Wait(kNoDeadline);
  co_return copy->status;
}

Task<bool> ProcessGroup::Impl::ProbePeer(int peer) {
  // PEER_UNREACHABLE (or a segment the engine has dropped) is proof; a probe that only
  // timed out may have met a slow link, so it takes probe_attempts of those in a row.
  for (uint32_t attempt = 0; attempt < std::max<uint32_t>(options_.probe_attempts, 1); ++attempt) {
    if (dead(peer)) co_return false;
    ++stats_.probes;
    Status st = co_await engine_.Probe(peers_[peer].seg);
    if (st.ok()) co_return true;
    if (st.code() == ErrorCode::PEER_UNREACHABLE || st.code() == ErrorCode::SEGMENT_NOT_FOUND) {
      break;
    }
  }
  TIDAL_REACHABLE("coll.peer_failed_by_probe");
  MarkDead(peer, /*broadcast=*/true);
  co_return false;
}

Task<Status> ProcessGroup::Impl::SendChunk(int peer, ChannelClass cls, uint64_t attempt,
                                           const uint8_t* src, uint64_t len, uint32_t tag,
                                           uint64_t total, uint64_t offset, uint64_t deadline_ns) {
  TIDAL_ASSERT(peer != rank_ && len <= options_.slot_bytes);
  SendChan& c = send_chan_[peer][static_cast<size_t>(cls)];
  TIDAL_ASSERT(cls == ChannelClass::kP2p || c.attempt == attempt);
  TIDAL_CO_RETURN_IF_ERROR(co_await WaitPeer(
      peer, cls, deadline_ns, [&c, this]() { return c.sent - c.consumed < slots_; }));
  uint64_t seq = c.sent++;
  co_return co_await WriteChunk(peer, cls, attempt, seq, src, len, tag, total, offset,
                                deadline_ns);
}

// Runs `reqs` (the WRITE of one chunk, or the READs of a pulled message) against `peer`,
// retried as WriteChunk describes until every one completed or the peer failed, the
// attempt was aborted or the deadline passed. Only the failed requests run again: a WRITE
// of a chunk and a READ into this rank's own memory move the same bytes twice.
Task<Status> ProcessGroup::Impl::TransferRetried(int peer, ChannelClass cls, uint64_t seq,
                                                 std::vector<TransferRequest> reqs,
                                                 uint64_t deadline_ns) {
  for (uint32_t attempt_no = 0;; ++attempt_no) {
    if (dead(peer)) {
      co_return Status(ErrorCode::RANK_FAILED, "rank " + std::to_string(peer) + " failed");
    }
    bool writes = false;
    for (TransferRequest& r : reqs) {
      r.segment = peers_[peer].seg;
      if (r.op == TransferOp::kWrite) {
        writes = true;
        ++stats_.writes_to[peer];
      }
    }
    Trace(trace::Ev::kWriteStart, seq);
    auto result = co_await engine_.TransferSync(std::span<const TransferRequest>(reqs));
    Trace(trace::Ev::kWriteDone, seq);
    std::vector<TransferRequest> failed;
    for (size_t k = 0; k < reqs.size(); ++k) {
      if (k >= result.size() || result[k].state != TransferState::COMPLETED) {
        failed.push_back(reqs[k]);
      }
    }
    if (failed.empty()) co_return Status::Ok();
    reqs = std::move(failed);
    ++stats_.write_failures;
    if (writes) TIDAL_REACHABLE("coll.write_failed_and_probed");
    // Failure evidence: a failed transfer plus a probe that does not answer.
    bool alive = co_await ProbePeer(peer);
    if (!alive) {
      co_return Status(ErrorCode::RANK_FAILED, "rank " + std::to_string(peer) + " failed");
    }
    if (attempt_no >= options_.write_retries) {
      // The peer answers probes but refuses data: back off and keep trying until the
      // deadline. Excluding a live rank here would split the group.
      co_await SleepFor(env_, options_.peer_check_ns);
    }
    if (cls == ChannelClass::kColl && attempt_aborted_) {
      co_return Status(ErrorCode::COLLECTIVE_ABORTED, "attempt aborted");
    }
    if (env_.NowNs() >= deadline_ns) {
      co_return Status(ErrorCode::OPERATION_TIMEOUT,
                       writes ? "write retries timed out" : "read retries timed out");
    }
  }
}

Task<Status> ProcessGroup::Impl::WriteChunk(int peer, ChannelClass cls, uint64_t attempt,
                                            uint64_t seq, const uint8_t* src, uint64_t len,
                                            uint32_t tag, uint64_t total, uint64_t offset,
                                            uint64_t deadline_ns, uint8_t* stage_into) {
  uint64_t slot = seq % slots_;
  if (len > 0) {
    uint8_t* stage = send_base_ + SlotOffset(peer, cls, slot);
    // stage_into in registered memory (working memory, or an output of RegisterBuffer with
    // options.direct_outputs) can be WRITTEN from, so it serves as the staging.
    if (!loc_.is_host() && stage_into != nullptr &&
        (InScratch(stage_into, len) || InUserBuffer(stage_into, len))) {
      stage = stage_into;
    }
    const uint8_t* from = stage;
    std::shared_ptr<PendingCopy> beside;  // stage_into's copy, made while the WRITE runs
    if (loc_.is_host()) {
      std::memcpy(stage, src, len);
    } else if (InScratch(src, len) || InUserBuffer(src, len)) {
      // Registered working memory or a buffer of RegisterBuffer: WRITE straight from it,
      // no staging copy.
      from = src;
      if (stage_into != nullptr) beside = StartCopySoon(stage_into, src, len);
    } else {
      Trace(trace::Ev::kStageStart, seq);
      TIDAL_CO_RETURN_IF_ERROR(co_await CopyAsync(stage, src, len));
      Trace(trace::Ev::kStageDone, seq);
      // stage_into not registered (an output of direct_outputs): its copy besides.
      if (stage_into != nullptr && stage != stage_into) beside = StartCopy(stage_into, src, len);
    }
    TransferRequest req;
    req.op = TransferOp::kWrite;
    req.local_addr = reinterpret_cast<uint64_t>(from);
    req.length = len;
    req.remote_addr = peers_[peer].recv_addr + SlotOffset(rank_, cls, slot);
    std::vector<TransferRequest> reqs{req};
    Status written = co_await TransferRetried(peer, cls, seq, std::move(reqs), deadline_ns);
    if (beside != nullptr) {  // joined whatever the WRITE did: the copy reads `src`
      Status copied = co_await JoinCopy(beside);
      if (written.ok()) written = copied;
    }
    TIDAL_CO_RETURN_IF_ERROR(written);
  }
  DataHeader h;
  h.kind = DataHeader::Kind::kData;
  h.cls = cls;
  h.from = static_cast<uint32_t>(rank_);
  h.group = group_hash_;
  h.attempt = attempt;
  h.seq = seq;
  h.bytes = len;
  h.tag = tag;
  h.total = total;
  h.offset = offset;
  ++stats_.chunks_sent;
  stats_.bytes_sent += len;
  co_return co_await NotifyKept(peer, h);
}

Task<Status> ProcessGroup::Impl::NotifyKept(int peer, const DataHeader& h) {
  ++stats_.notifies_to[peer];
  // Kept until a credit covers it: Resync re-sends it if the peer stays silent.
  SendChan& c = send_chan_[peer][static_cast<size_t>(h.cls)];
  if ((h.cls == ChannelClass::kP2p || c.attempt == h.attempt) && h.seq >= c.consumed) {
    c.unacked[h.seq] = h;
  }
  Status st = engine_.Notify(peers_[peer].seg, notify_channel_, EncodeDataHeader(h));
  if (!st.ok()) {
    bool alive = co_await ProbePeer(peer);
    if (!alive)
      co_return Status(ErrorCode::RANK_FAILED, "rank " + std::to_string(peer) + " failed");
    // What it announces is in place; it is re-sent when the peer asks (Resync).
  }
  co_return Status::Ok();
}

Task<Status> ProcessGroup::Impl::OfferPull(const SendSpec& s, uint64_t attempt,
                                           uint64_t deadline_ns) {
  SendChan& c = send_chan_[s.peer][static_cast<size_t>(ChannelClass::kColl)];
  const uint64_t slots = slots_;
  auto slot_free = [&c, slots]() { return c.sent - c.consumed < slots; };
  TIDAL_CO_RETURN_IF_ERROR(co_await WaitPeer(s.peer, ChannelClass::kColl, deadline_ns, slot_free));
  const uint64_t seq = c.sent++;
  DataHeader h;
  h.kind = DataHeader::Kind::kPull;
  h.cls = ChannelClass::kColl;
  h.from = static_cast<uint32_t>(rank_);
  h.group = group_hash_;
  h.attempt = attempt;
  h.seq = seq;
  h.bytes = s.bytes;
  h.total = s.bytes;
  h.offset = reinterpret_cast<uint64_t>(s.data);
  ++stats_.pulls_offered;
  TIDAL_CO_RETURN_IF_ERROR(co_await NotifyKept(s.peer, h));
  // The message must stay as it is until the reader has finished: its credit of `seq`.
  auto read = [&c, seq]() { return c.consumed > seq; };
  TIDAL_CO_RETURN_IF_ERROR(co_await WaitPeer(s.peer, ChannelClass::kColl, deadline_ns, read));
  co_return Status::Ok();
}

Task<Status> ProcessGroup::Impl::PullMessage(int peer, const DataHeader& h, uint8_t* dst,
                                             uint64_t bytes, uint64_t chunk,
                                             uint64_t deadline_ns) {
  auto read = [&](uint64_t off, uint64_t len, uint8_t* into) {
    TransferRequest req;
    req.op = TransferOp::kRead;
    req.local_addr = reinterpret_cast<uint64_t>(into);
    req.length = len;
    req.remote_addr = h.offset + off;
    return req;
  };
  if (InUserBuffer(dst, bytes) || InScratch(dst, bytes)) {
    // Straight into the destination: every chunk's READ at once, in one batch.
    std::vector<TransferRequest> reqs;
    for (uint64_t off = 0; off < bytes; off += chunk) {
      reqs.push_back(read(off, std::min(chunk, bytes - off), dst + off));
    }
    TIDAL_CO_RETURN_IF_ERROR(
        co_await TransferRetried(peer, ChannelClass::kColl, h.seq, std::move(reqs), deadline_ns));
  } else {
    // The destination is not registered: up to slots_ chunks READ into this sender's
    // receive slots, then copied out (joined before the slots are read into again).
    ++stats_.pulls_via_slots;
    for (uint64_t off = 0; off < bytes;) {
      std::vector<TransferRequest> reqs;
      std::vector<std::pair<uint8_t*, uint64_t>> copies;  // slot, length
      const uint64_t first = off;
      for (uint64_t k = 0; k < slots_ && off < bytes; ++k, off += chunk) {
        uint8_t* slot = recv_base_ + SlotOffset(peer, ChannelClass::kColl, k);
        const uint64_t len = std::min(chunk, bytes - off);
        reqs.push_back(read(off, len, slot));
        copies.emplace_back(slot, len);
      }
      TIDAL_CO_RETURN_IF_ERROR(
        co_await TransferRetried(peer, ChannelClass::kColl, h.seq, std::move(reqs), deadline_ns));
      std::vector<std::shared_ptr<PendingCopy>> pending;
      uint64_t at = first;
      for (const auto& [slot, len] : copies) {
        pending.push_back(StartCopy(dst + at, slot, len));
        at += len;
      }
      Status copied = Status::Ok();
      for (auto& p : pending) {
        Status one = co_await JoinCopy(p);
        if (copied.ok()) copied = one;
      }
      TIDAL_CO_RETURN_IF_ERROR(copied);
    }
  }
  ++stats_.pulls_read;
  stats_.bytes_pulled += bytes;
  co_return Status::Ok();
}

Task<Status> ProcessGroup::Impl::SendWindowed(SendSpec s, uint64_t attempt, uint64_t chunk,
                                              uint64_t deadline_ns) {
  if (s.pull) {
    Status offered = co_await OfferPull(s, attempt, deadline_ns);
    co_return offered;
  }
  struct Window {
    size_t running = 0;
    Status first_error;
  };
  auto w = std::make_shared<Window>();
  auto write = [](Impl* self, std::shared_ptr<Window> w, SendSpec s, uint64_t attempt,
                  uint64_t seq, uint64_t off, uint64_t len, uint64_t deadline) -> Task<void> {
    uint8_t* stage_into = s.stage_into != nullptr ? s.stage_into + off : nullptr;
    Status st = co_await self->WriteChunk(s.peer, ChannelClass::kColl, attempt, seq,
                                          s.data + off, len, 0, s.bytes, off, deadline,
                                          stage_into);
    if (!st.ok() && w->first_error.ok()) w->first_error = st;
    --w->running;
    self->changed_.NotifyAll();
  };
  SendChan& c = send_chan_[s.peer][static_cast<size_t>(ChannelClass::kColl)];
  Status st = Status::Ok();
  for (uint64_t off = 0, len = 0; off < s.bytes; off += len) {
    len = ChunkLen(s.bytes, off, chunk);
    // A named predicate with plain captures (GCC 12: no temporaries with non-trivial
    // members inside a co_await expression).
    Window* win = w.get();
    const uint64_t slots = slots_;
    auto slot_free = [&c, win, slots]() {
      return !win->first_error.ok() || c.sent - c.consumed < slots;
    };
    st = co_await WaitPeer(s.peer, ChannelClass::kColl, deadline_ns, slot_free);
    if (st.ok()) st = w->first_error;
    if (!st.ok()) break;
    uint64_t seq = c.sent++;
    ++w->running;
    Spawn(env_, write(this, w, s, attempt, seq, off, len, deadline_ns));
  }
  // Join every WRITE started (each ends: completed, failed, or its retries gave up).
  while (w->running > 0) co_await changed_.Wait(kNoDeadline);
  if (st.ok()) st = w->first_error;
  co_return st;
}

Task<Result<DataHeader>> ProcessGroup::Impl::RecvChunk(int peer, ChannelClass cls, uint64_t attempt,
                                                       uint8_t* dst, uint64_t capacity, bool reduce,
                                                       DataType dtype, ReduceOp rop,
                                                       uint64_t deadline_ns) {
  TIDAL_ASSERT(peer != rank_);
  RecvChan& c = recv_chan_[peer][static_cast<size_t>(cls)];
  TIDAL_ASSERT(cls == ChannelClass::kP2p || c.attempt == attempt);
  std::pair<uint64_t, uint64_t> key{attempt, c.next};
  Status st =
      co_await WaitPeer(peer, cls, deadline_ns, [&c, key]() { return c.pending.count(key) != 0; });
  if (!st.ok()) co_return st;
  DataHeader h = c.pending[key];
  TIDAL_ASSERT(h.seq == c.next && h.attempt == attempt);
  c.pending.erase(key);
  if (h.kind == DataHeader::Kind::kPull) {
    // Offers are sent only where the receiver takes messages whole (RecvWindowed).
    ++c.next;
    co_return Status(ErrorCode::CORRUPT_INPUT, "pull offer on a chunk-by-chunk channel");
  }
  const uint8_t* slot = recv_base_ + SlotOffset(peer, cls, c.next % slots_);
  ++c.next;
  Status result = Status::Ok();
  if (h.bytes > options_.slot_bytes) {
    result = Status(ErrorCode::CORRUPT_INPUT, "chunk larger than a slot");
  } else if (dst != nullptr && loc_.is_host()) {
    uint64_t n = std::min(h.bytes, capacity);
    if (reduce) {
      size_t es = DataTypeSize(dtype);
      result = reducer_->Fold(dst, slot, n / es, dtype, rop, loc_);
      if (result.ok() && options_.planted_bug == CollBug::kFoldTwice) {
        result = reducer_->Fold(dst, slot, n / es, dtype, rop, loc_);  // planted
      }
    } else if (n > 0) {
      std::memcpy(dst, slot, n);
    }
  } else if (dst != nullptr) {
    // Device slots: the reducer's kernels or copies run asynchronously; the slot is
    // returned (credit below) only once they finished reading it.
    uint64_t n = std::min(h.bytes, capacity);
    if (reduce) {
      size_t es = DataTypeSize(dtype);
      result = co_await FoldAsync(dst, slot, n / es, dtype, rop);
      if (result.ok() && options_.planted_bug == CollBug::kFoldTwice) {
        result = co_await FoldAsync(dst, slot, n / es, dtype, rop);  // planted
      }
    } else if (n > 0) {
      result = co_await CopyAsync(dst, slot, n);
    }
  }
  // Return the slot: the credit says how many chunks of this attempt we consumed.
  SendCredit(peer, cls, attempt, c.next);
  if (!result.ok()) co_return result;
  co_return h;
}

namespace {

// A spawned child of RunStep: runs `body` and reports into the shared counters.
struct StepJoin {
  size_t finished = 0;
  Status first_error;
};

}  // namespace

Task<Status> ProcessGroup::Impl::RunStep(std::vector<SendSpec> sends, std::vector<RecvSpec> recvs,
                                         DataType dtype, ReduceOp rop, uint64_t deadline_ns) {
  const uint64_t attempt = AttemptKey(cur_op_, cur_epoch_);
  const size_t es = DataTypeSize(dtype);
  StepJoin join;
  size_t children = 0;
  auto record = [this, &join](Status st) {
    if (!st.ok() && join.first_error.ok()) join.first_error = st;
    if (!st.ok()) attempt_aborted_ = true;  // the other children stop at their next wait
    ++join.finished;
    changed_.NotifyAll();
  };
  auto send_child = [](Impl* self, SendSpec s, uint64_t attempt, uint64_t chunk, uint64_t deadline,
                       std::function<void(Status)>* done) -> Task<void> {
    Status st = Status::Ok();
    if (self->loc_.is_host()) {
      // One chunk in flight at a time (the receiver still holds up to S).
      for (uint64_t off = 0, len = 0; off < s.bytes && st.ok(); off += len) {
        len = self->ChunkLen(s.bytes, off, chunk);
        st = co_await self->SendChunk(s.peer, ChannelClass::kColl, attempt, s.data + off, len, 0,
                                      s.bytes, off, deadline);
      }
    } else {
      // Device slots: up to S chunk WRITEs in flight at once (one per free slot), so the
      // link never waits for a completion to be seen and the next WRITE to be issued.
      // Slots are taken in offset order; each chunk's notification follows its own data.
      st = co_await self->SendWindowed(s, attempt, chunk, deadline);
    }
    (*done)(st);
  };
  auto recv_child = [](Impl* self, RecvSpec r, uint64_t attempt, uint64_t chunk, size_t es,
                       DataType dtype, ReduceOp rop, uint64_t deadline,
                       std::function<void(Status)>* done) -> Task<void> {
    Status st = Status::Ok();
    TIDAL_ASSERT(r.init == nullptr || !self->loc_.is_host());
    if (!self->loc_.is_host() && r.forward < 0) {
      // Device slots: the copy or fold of chunk k runs while chunk k+1 is taken.
      st = co_await self->RecvWindowed(r, attempt, chunk, dtype, rop, deadline);
      (*done)(st);
      co_return;
    }
    for (uint64_t off = 0, len = 0; off < r.bytes && st.ok(); off += len) {
      len = self->ChunkLen(r.bytes, off, chunk);
      auto got = co_await self->RecvChunk(r.peer, ChannelClass::kColl, attempt, r.data + off, len,
                                          r.reduce, dtype, rop, deadline);
      if (!got.ok()) {
        st = got.status();
      } else if (got->bytes != len) {
        st = Status(ErrorCode::CORRUPT_INPUT, "chunk of unexpected size");
      } else if (r.forward >= 0) {
        st = co_await self->SendChunk(r.forward, ChannelClass::kColl, attempt, r.data + off, len, 0,
                                      r.bytes, off, deadline);
      }
    }
    (void)es;
    (*done)(st);
  };
  std::function<void(Status)> done = record;
  for (const SendSpec& s : sends) {
    if (s.bytes == 0) continue;
    ++children;
    Spawn(env_, send_child(this, s, attempt, ChunkFor(s.bytes), deadline_ns, &done));
  }
  for (const RecvSpec& r : recvs) {
    if (r.bytes == 0) continue;
    TIDAL_ASSERT(!r.reduce || r.bytes % es == 0);
    ++children;
    Spawn(env_, recv_child(this, r, attempt, ChunkFor(r.bytes), es, dtype, rop, deadline_ns,
                           &done));
  }
  while (join.finished < children) co_await changed_.Wait(kNoDeadline);
  TIDAL_ASSERT(join.finished == children);
  co_return join.first_error;
}

}  // namespace tidal::coll
