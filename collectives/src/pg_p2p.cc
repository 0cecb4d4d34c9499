// Point-to-point: Send, Recv and BatchIsendIrecv.
//
// Each peer has a send queue and a receive queue, each served in issue order by one
// worker coroutine, over the p2p channel class (its own slots, so unreceived messages
// never block collectives). Chunks carry the per-pair sequence number, the tag, the
// message size and the chunk offset; the receiver matches messages strictly in order.
// Different peers progress independently, which is what lets a batch exchange in both
// directions without deadlock.
#include <algorithm>
#include <cstring>

#include "pg_impl.h"

namespace tidal::coll {

std::shared_ptr<Work> ProcessGroup::Impl::SubmitP2P(std::span<const P2POp> ops) {
  if (!started_) return Refuse(Status(ErrorCode::INVALID_PARAMS, "Start() has not finished"));
  for (const P2POp& op : ops) {
    if (op.peer < 0 || op.peer >= size_ || op.peer == rank_) {
      return Refuse(Status(ErrorCode::INVALID_PARAMS,
                           "p2p peer " + std::to_string(op.peer) + " is not another rank"));
    }
    Status st = ValidateTensor(op.tensor, "p2p tensor");
    if (!st.ok()) return Refuse(st);
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
  return work;
}

void ProcessGroup::Impl::FinishP2P(const P2PItem& item, int peer, Status st) {
  P2PBatch& b = *item.batch;
  if (!st.ok()) {
    if (st.code() == ErrorCode::RANK_FAILED) {
      st = Status(ErrorCode::COLLECTIVE_ABORTED, "p2p peer " + std::to_string(peer) + " failed");
      b.failed |= Bit(peer);
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
    Status st = co_await SendMessage(peer, item);
    send_q_[peer].pop_front();
    FinishP2P(item, peer, st);
  }
  if (*alive) send_worker_[peer] = false;
}

Task<void> ProcessGroup::Impl::RecvWorker(int peer) {
  std::shared_ptr<bool> alive = alive_;
  while (*alive && !recv_q_[peer].empty()) {
    P2PItem item = recv_q_[peer].front();
    Status st = co_await RecvMessage(peer, item);
    recv_q_[peer].pop_front();
    FinishP2P(item, peer, st);
  }
  if (*alive) recv_worker_[peer] = false;
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

Task<Status> ProcessGroup::Impl::RecvMessage(int peer, const P2PItem& item) {
  if (dead(peer)) co_return Status(ErrorCode::RANK_FAILED, "peer is dead");
  const uint64_t want = item.op.tensor.bytes();
  uint8_t* dst = item.op.tensor.bytes_ptr();
  Status mismatch = Status::Ok();
  uint64_t total = 0;
  uint64_t got = 0;
  bool first = true;
  do {
    // Peek is not possible, so receive into the destination only when the header of the
    // message matches; a mismatching message is drained and discarded.
    uint64_t cap = mismatch.ok() && got < want ? want - got : 0;
    auto h = co_await RecvChunk(peer, ChannelClass::kP2p, 0, mismatch.ok() ? dst + got : nullptr,
                                cap, false, DataType::kU8, ReduceOp::kSum, item.deadline_ns);
    if (!h.ok()) co_return h.status();
    if (first) {
      first = false;
      total = h->total;
      if (h->offset != 0) co_return Status(ErrorCode::CORRUPT_INPUT, "p2p stream out of step");
      if (h->tag != item.op.tag || h->total != want) {
        mismatch = Status(ErrorCode::INVALID_PARAMS,
                          "p2p message from rank " + std::to_string(peer) + " has tag " +
                              std::to_string(h->tag) + " and " + std::to_string(h->total) +
                              " bytes; the receive expected tag " + std::to_string(item.op.tag) +
                              " and " + std::to_string(want));
      }
    } else if (h->offset != got) {
      co_return Status(ErrorCode::CORRUPT_INPUT, "p2p chunk out of order");
    }
    got += h->bytes;
  } while (got < total);
  co_return mismatch;
}

}  // namespace tidal::coll
