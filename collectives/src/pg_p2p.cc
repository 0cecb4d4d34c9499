// Point-to-point: Send, Recv and BatchIsendIrecv.
//
// Each peer has a send queue and a receive queue, each served by one worker coroutine,
// over the p2p channel class (its own slots, so unreceived messages never block
// collectives). Sends to a peer go out in issue order; chunks carry the per-pair sequence
// number, the tag, the message size and the chunk offset. Receives match as in c10d: by
// (peer, tag), in send order within each pair and tag. A message whose tag no posted
// receive wants is received into a per-peer stash (bounded by options.p2p_stash_bytes)
// and handed to the first receive posted later with its tag. A message is committed to
// the receive's buffer only when all of it arrived and its size matches, so a failed
// receive leaves its buffer untouched. Different peers progress independently, which is
// what lets a batch exchange in both directions without deadlock.
//
// After a point-to-point OPERATION_TIMEOUT the group is broken, as after a collective's:
// the pair's stream may stand mid-message, so every later operation fails at once with
// COLLECTIVE_ABORTED (c10d aborts the communicator on a timeout too).
#include <algorithm>
#include <cstring>

#include "pg_impl.h"
#include "tidal/reach.h"

namespace tidal::coll {

std::shared_ptr<Work> ProcessGroup::Impl::SubmitP2P(std::span<const P2POp> ops) {
  if (!started_) return Refuse(Status(ErrorCode::INVALID_PARAMS, "Start() has not finished"));
  for (const P2POp& op : ops) {
    if (op.peer < 0 || op.peer >= size_ || op.peer == rank_) {
      return Refuse(Status(ErrorCode::INVALID_PARAMS,
                           "p2p peer " + std::to_string(op.peer) + " is not another rank"));
    }
    Status st = CheckTensor(op.tensor, "p2p tensor");
    if (!st.ok()) return Refuse(st);
    if (!loc_.is_host()) {
      // The p2p path stages whole messages in host memory (stash, commit on success).
      return Refuse(Status(ErrorCode::UNSUPPORTED, "point-to-point needs host slots; this rank's are at " + loc_.ToString()));
    }
  }
  if (broken_) {
    return Refuse(Status(ErrorCode::COLLECTIVE_ABORTED,
                         "the group is broken by an earlier timeout or exclusion"));
  }
  auto work = std::make_shared<Work>(env_);
  work->set_start_ns(env_.NowNs());
  if (ops.empty()) {
    work->Complete(Status::Ok(), {});
    return work;
  }
  auto batch = std::make_shared<P2PBatch>();
  batch->work = work;
  batch->remaining = ops.size();
  uint64_t deadline = env_.NowNs() + options_.timeout_ns;
  for (const P2POp& op : ops) {
    P2PItem item{op, deadline, batch};
    if (op.kind == P2POp::Kind::kSend) {
      send_q_[op.peer].push_back(item);
      if (!send_worker_[op.peer]) {
        send_worker_[op.peer] = true;
        Spawn(env_, SendWorker(op.peer));
      }
    } else {
      recv_q_[op.peer].push_back(item);
      if (!recv_worker_[op.peer]) {
        recv_worker_[op.peer] = true;
        Spawn(env_, RecvWorker(op.peer));
      }
    }
  }
  changed_.NotifyAll();  // a receive worker may be waiting for a match with the stash
  return work;
}

void ProcessGroup::Impl::FinishP2P(const P2PItem& item, int peer, Status st) {
  P2PBatch& b = *item.batch;
  if (!st.ok()) {
    if (st.code() == ErrorCode::RANK_FAILED) {
      st = Status(ErrorCode::COLLECTIVE_ABORTED, "p2p peer " + std::to_string(peer) + " failed");
      b.failed |= Bit(peer);
    } else if ((st.code() == ErrorCode::OPERATION_TIMEOUT &&
                options_.planted_bug != CollBug::kTimeoutKeepsGroup) ||
               st.code() == ErrorCode::CORRUPT_INPUT) {
      // The pair's stream may stand mid-message: nothing later can trust it.
      TIDAL_REACHABLE("coll.p2p_error_broke_group");
      broken_ = true;
      changed_.NotifyAll();
    }
    if (b.first_error.ok()) b.first_error = st;
  }
  TIDAL_ASSERT(b.remaining > 0);
  if (--b.remaining == 0) b.work->Complete(b.first_error, MaskToRanks(b.failed));
}

Task<void> ProcessGroup::Impl::SendWorker(int peer) {
  std::shared_ptr<bool> alive = alive_;
  while (*alive && !send_q_[peer].empty()) {
    P2PItem item = send_q_[peer].front();
    // (An if, not ?: around co_await: GCC 12 destroys such temporaries twice.)
    Status st = Status(ErrorCode::COLLECTIVE_ABORTED, "the group is broken by an earlier timeout");
    if (!broken_) st = co_await SendMessage(peer, item);
    if (!*alive) co_return;
    send_q_[peer].pop_front();
    FinishP2P(item, peer, st);
  }
  if (*alive) send_worker_[peer] = false;
}

Task<Status> ProcessGroup::Impl::SendMessage(int peer, const P2PItem& item) {
  if (dead(peer)) co_return Status(ErrorCode::RANK_FAILED, "peer is dead");
  const uint64_t total = item.op.tensor.bytes();
  const uint8_t* src = item.op.tensor.bytes_ptr();
  const uint64_t chunk = chunk_bytes();
  uint64_t off = 0;
  do {  // a zero-byte message is one empty chunk (a notification only)
    uint64_t len = std::min(chunk, total - off);
    TIDAL_CO_RETURN_IF_ERROR(co_await SendChunk(peer, ChannelClass::kP2p, 0, src + off, len,
                                                item.op.tag, total, off, item.deadline_ns));
    off += len;
  } while (off < total);
  co_return Status::Ok();
}

namespace {

Status SizeMismatch(int peer, uint32_t tag, uint64_t got, uint64_t want) {
  return Status(ErrorCode::INVALID_PARAMS,
                "p2p message from rank " + std::to_string(peer) + " with tag " +
                    std::to_string(tag) + " has " + std::to_string(got) +
                    " bytes; the receive expected " + std::to_string(want));
}

}  // namespace

bool ProcessGroup::Impl::StashMatchesPosted(int peer) const {
  for (const P2PItem& item : recv_q_[peer]) {
    for (const Stashed& m : stash_[peer]) {
      if (m.tag == item.op.tag) return true;
    }
  }
  return false;
}

bool ProcessGroup::Impl::MatchStashed(int peer) {
  bool matched = false;
  auto& posted = recv_q_[peer];
  auto& stash = stash_[peer];
  for (size_t i = 0; i < posted.size();) {
    auto m = std::find_if(stash.begin(), stash.end(),
                          [&](const Stashed& s) { return s.tag == posted[i].op.tag; });
    if (m == stash.end()) {
      ++i;
      continue;
    }
    P2PItem item = posted[i];
    posted.erase(posted.begin() + static_cast<std::ptrdiff_t>(i));
    const uint64_t want = item.op.tensor.bytes();
    Status st = Status::Ok();
    if (m->data.size() != want) {
      st = SizeMismatch(peer, m->tag, m->data.size(), want);
    } else if (want > 0) {
      std::memcpy(item.op.tensor.bytes_ptr(), m->data.data(), want);
    }
    TIDAL_REACHABLE("coll.p2p_recv_matched_from_stash");
    stash_bytes_[peer] -= m->data.size();
    stash.erase(m);
    FinishP2P(item, peer, st);
    matched = true;
  }
  return matched;
}

void ProcessGroup::Impl::FailPostedRecvs(int peer, const Status& st) {
  std::deque<P2PItem> posted = std::move(recv_q_[peer]);
  recv_q_[peer].clear();
  for (const P2PItem& item : posted) FinishP2P(item, peer, st);
}

Task<Status> ProcessGroup::Impl::ReceiveWhole(int peer, const DataHeader& first, uint8_t* dst,
                                              uint64_t deadline_ns) {
  const uint64_t total = first.total;
  // One chunk: copy straight from the slot (the receive commits right after). More: stage,
  // so that a failure halfway leaves `dst` untouched.
  const bool staged = dst != nullptr && total > first.bytes;
  std::vector<uint8_t> staging(staged ? total : 0);
  uint8_t* into = staged ? staging.data() : dst;
  uint64_t got = 0;
  do {
    const uint64_t cap = into != nullptr ? total - got : 0;
    auto h = co_await RecvChunk(peer, ChannelClass::kP2p, 0, into != nullptr ? into + got : nullptr,
                                cap, false, DataType::kU8, ReduceOp::kSum, deadline_ns);
    if (!h.ok()) co_return h.status();
    if (h->offset != got || h->total != total || h->tag != first.tag ||
        h->bytes > total - got || (h->bytes == 0 && total != 0)) {
      co_return Status(ErrorCode::CORRUPT_INPUT,
                       "p2p chunk from rank " + std::to_string(peer) + " out of step (offset " +
                           std::to_string(h->offset) + ", expected " + std::to_string(got) + ")");
    }
    got += h->bytes;
  } while (got < total);
  if (staged) std::memcpy(dst, staging.data(), total);
  co_return Status::Ok();
}

Task<void> ProcessGroup::Impl::RecvWorker(int peer) {
  std::shared_ptr<bool> alive = alive_;
  RecvChan& chan = recv_chan_[peer][static_cast<size_t>(ChannelClass::kP2p)];
  while (*alive && !recv_q_[peer].empty()) {
    if (broken_) {
      FailPostedRecvs(peer, Status(ErrorCode::COLLECTIVE_ABORTED,
                                   "the group is broken by an earlier timeout"));
      break;
    }
    if (MatchStashed(peer)) continue;
    if (recv_q_[peer].empty()) break;
    // The next message on the stream: wait for its first chunk's header (or for a newly
    // posted receive that a stashed message matches).
    const uint64_t deadline = recv_q_[peer].front().deadline_ns;
    const std::pair<uint64_t, uint64_t> key{0, chan.next};
    Status waited = co_await WaitPeer(peer, ChannelClass::kP2p, deadline, [&]() {
      return chan.pending.count(key) != 0 || StashMatchesPosted(peer) || broken_;
    });
    if (!*alive) co_return;
    if (!waited.ok()) {
      if (waited.code() == ErrorCode::OPERATION_TIMEOUT) {
        // The oldest receive ran out of time; the group breaks and the rest follow.
        P2PItem item = recv_q_[peer].front();
        recv_q_[peer].pop_front();
        FinishP2P(item, peer, waited);
      } else {
        FailPostedRecvs(peer, waited);
      }
      continue;
    }
    if (chan.pending.count(key) == 0) continue;  // a stash match or a break: loop
    const DataHeader first = chan.pending[key];
    if (first.offset != 0 || first.bytes > first.total) {
      FailPostedRecvs(peer, Status(ErrorCode::CORRUPT_INPUT,
                                   "p2p stream from rank " + std::to_string(peer) +
                                       " out of step"));
      continue;
    }
    auto& posted = recv_q_[peer];
    auto target = std::find_if(posted.begin(), posted.end(),
                               [&](const P2PItem& it) { return it.op.tag == first.tag; });
    if (target == posted.end()) {
      // Nobody wants this tag yet: stash it, unless the stash is full, in which case the
      // stream waits (its sender with it) until a matching receive is posted or the
      // oldest receive times out.
      if (stash_bytes_[peer] + first.total > options_.p2p_stash_bytes) {
        Status st = co_await WaitPeer(peer, ChannelClass::kP2p, deadline, [&]() {
          return broken_ || std::any_of(recv_q_[peer].begin(), recv_q_[peer].end(),
                                        [&](const P2PItem& it) {
                                          return it.op.tag == first.tag;
                                        }) ||
                 StashMatchesPosted(peer);
        });
        if (!*alive) co_return;
        if (!st.ok() && !recv_q_[peer].empty()) {
          if (st.code() == ErrorCode::OPERATION_TIMEOUT) {
            P2PItem item = recv_q_[peer].front();
            recv_q_[peer].pop_front();
            FinishP2P(item, peer,
                      Status(ErrorCode::OPERATION_TIMEOUT,
                             "p2p receive from rank " + std::to_string(peer) +
                                 " timed out behind unmatched messages (stash full)"));
          } else {
            FailPostedRecvs(peer, st);
          }
        }
        continue;
      }
      Stashed m;
      m.tag = first.tag;
      m.data.resize(first.total);
      stash_bytes_[peer] += first.total;
      Status st = co_await ReceiveWhole(peer, first, m.data.data(), deadline);
      if (!*alive) co_return;
      if (!st.ok()) {
        stash_bytes_[peer] -= first.total;
        FailPostedRecvs(peer, st);
        continue;
      }
      TIDAL_REACHABLE("coll.p2p_stash_used");
      stash_[peer].push_back(std::move(m));
      continue;
    }
    P2PItem item = *target;
    posted.erase(target);
    const uint64_t want = item.op.tensor.bytes();
    if (first.total != want) {
      // The message is consumed (as the sender's Send completes) and the receive fails;
      // its buffer is never written.
      std::vector<uint8_t> planted;  // the bug zoo: what fits lands in the buffer anyway
      const bool plant = options_.planted_bug == CollBug::kWriteBeforeMatch;
      if (plant) planted.resize(first.total);
      Status st = co_await ReceiveWhole(peer, first, plant ? planted.data() : nullptr,
                                        item.deadline_ns);
      if (plant && want > 0) {
        std::memcpy(item.op.tensor.bytes_ptr(), planted.data(), std::min(want, first.total));
      }
      if (!*alive) co_return;
      if (st.ok()) st = SizeMismatch(peer, first.tag, first.total, want);
      FinishP2P(item, peer, st);
      continue;
    }
    Status st = co_await ReceiveWhole(peer, first, item.op.tensor.bytes_ptr(), item.deadline_ns);
    if (!*alive) co_return;
    FinishP2P(item, peer, st);
  }
  if (*alive) recv_worker_[peer] = false;
}

}  // namespace tidal::coll
