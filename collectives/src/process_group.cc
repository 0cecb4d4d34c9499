// ProcessGroup: construction, bootstrap, incoming notifications and control messages,
// failure marking, and the public API (which only validates and enqueues).
#include "tidal/collectives/process_group.h"

#include <algorithm>
#include <cstring>
#include <new>

#include "pg_impl.h"

namespace tidal::coll {

std::string_view CollBugName(CollBug bug) {
  switch (bug) {
    case CollBug::kNone: return "none";
    case CollBug::kRootIgnored: return "coll_root_ignored";
    case CollBug::kFoldTwice: return "coll_fold_twice";
    case CollBug::kSilenceIsDeath: return "coll_silence_is_death";
    case CollBug::kWriteBeforeMatch: return "coll_p2p_write_before_match";
    case CollBug::kZeroAccumulator: return "coll_zero_accumulator";
    case CollBug::kTimeoutKeepsGroup: return "coll_p2p_timeout_keeps_group";
  }
  return "unknown";
}

Result<CollBug> ParseCollBug(std::string_view name) {
  std::string known;
  for (CollBug b : kCollBugs) {
    if (CollBugName(b) == name) return b;
    known += (known.empty() ? "" : ", ") + std::string(CollBugName(b));
  }
  return Status(ErrorCode::INVALID_PARAMS,
                "unknown collectives bug '" + std::string(name) + "' (" + known + ")");
}

std::vector<int> MaskToRanks(uint64_t mask) {
  std::vector<int> out;
  for (int r = 0; r < 64; ++r) {
    if (mask & Bit(r)) out.push_back(r);
  }
  return out;
}

namespace {

std::string BootstrapKey(const std::string& group, int rank) {
  return "tidal/pg/" + group + "/" + std::to_string(rank);
}

uint64_t AllMask(int size) {
  return size >= 64 ? ~uint64_t{0} : Bit(size) - 1;
}

}  // namespace

ProcessGroup::Impl::Impl(int rank, int size, TransferEngine& engine, Messenger& messenger,
                         MetadataStore& bootstrap, ProcessGroupOptions options)
    : rank_(rank),
      size_(size),
      engine_(engine),
      env_(engine.env()),
      messenger_(messenger),
      store_(bootstrap),
      options_(std::move(options)),
      reducer_(options_.reducer != nullptr ? options_.reducer : &CpuReducer::Default()),
      loc_(options_.slot_location_of ? options_.slot_location_of(rank) : options_.slot_location),
      alloc_(options_.allocator != nullptr ? options_.allocator : &HostBufferAllocator::Default()),
      slots_(options_.slots_per_channel),
      group_hash_(GroupHash(options_.group_name)),
      changed_(engine.env()),
      alive_(std::make_shared<bool>(true)) {
  int n = std::max(size_, 0);
  stats_.writes_to.assign(n, 0);
  stats_.notifies_to.assign(n, 0);
  stats_.messages_to.assign(n, 0);
  peers_.resize(n);
  send_chan_.resize(n);
  recv_chan_.resize(n);
  send_q_.resize(n);
  recv_q_.resize(n);
  send_worker_.assign(n, false);
  recv_worker_.assign(n, false);
  stash_.resize(n);
  stash_bytes_.assign(n, 0);
  notify_channel_ = group_hash_ != 0 ? group_hash_ : 1;
  if (size_ > 0 && size_ <= 64) active_mask_ = AllMask(size_);
}

ProcessGroup::Impl::~Impl() {
  *alive_ = false;
  if (start_called_) {
    engine_.SetNotifyHandler(notify_channel_, nullptr);
    messenger_.SetReceiver(nullptr);
  }
  if (recv_base_ != nullptr) alloc_->Free(recv_base_, region_bytes_, loc_);
  if (send_base_ != nullptr) alloc_->Free(send_base_, region_bytes_, loc_);
  if (scratch_ != nullptr) alloc_->Free(scratch_, scratch_bytes_, loc_);
}

Result<void*> HostBufferAllocator::Allocate(uint64_t bytes, Location) {
  if (bytes == 0) return Status(ErrorCode::INVALID_PARAMS, "allocate: zero bytes");
  void* p = ::operator new[](bytes, std::align_val_t{64}, std::nothrow);
  if (p == nullptr) {
    return Status(ErrorCode::INTERNAL_ERROR, "allocate: out of host memory (" +
                                                 std::to_string(bytes) + " bytes)");
  }
  std::memset(p, 0, bytes);
  return p;
}

void HostBufferAllocator::Free(void* data, uint64_t, Location) {
  ::operator delete[](data, std::align_val_t{64});
}

HostBufferAllocator& HostBufferAllocator::Default() {
  static HostBufferAllocator allocator;
  return allocator;
}

Task<Status> ProcessGroup::Impl::Start() {
  if (start_called_) co_return Status(ErrorCode::INVALID_PARAMS, "Start called twice");
  if (size_ < 1 || size_ > 64 || rank_ < 0 || rank_ >= size_) {
    co_return Status(ErrorCode::INVALID_PARAMS, "rank/size out of range (size 1..64)");
  }
  if (options_.slot_bytes < 64 || options_.slot_bytes % 8 != 0) {
    co_return Status(ErrorCode::INVALID_PARAMS, "slot_bytes must be >= 64 and a multiple of 8");
  }
  if (options_.slots_per_channel < 2 || options_.slots_per_channel > 64) {
    co_return Status(ErrorCode::INVALID_PARAMS, "slots_per_channel must be 2..64");
  }
  if (options_.device_chunks < 1 || options_.device_chunks > 64) {
    co_return Status(ErrorCode::INVALID_PARAMS, "device_chunks must be 1..64");
  }
  if (options_.device_chunk_min_bytes == 0 || options_.device_chunk_min_bytes % (64 << 10) != 0) {
    co_return Status(ErrorCode::INVALID_PARAMS,
                     "device_chunk_min_bytes must be a positive multiple of 64 KiB");
  }
  if (options_.timeout_ns == 0 || options_.peer_check_ns == 0 || options_.control_retry_ns == 0) {
    co_return Status(ErrorCode::INVALID_PARAMS, "timeouts must be positive");
  }
  if (!reducer_->Supports(loc_)) {
    co_return Status(ErrorCode::UNSUPPORTED, "the group's reducer cannot touch its slot location " +
                                                 loc_.ToString());
  }
  start_called_ = true;
  // Handlers first: a fast peer may write and notify before our Start finishes; what
  // arrives before we know the peers is kept and replayed.
  std::weak_ptr<bool> alive = alive_;
  engine_.SetNotifyHandler(notify_channel_, [this, alive](Notification n) {
    if (alive.expired()) return;
    OnNotification(std::move(n));
  });
  messenger_.SetReceiver([this, alive](std::string_view from, std::string payload) {
    if (alive.expired()) return;
    OnMessage(std::string(from), std::move(payload));
  });

  region_bytes_ =
      static_cast<uint64_t>(size_) * kChannelClasses * slots_ * options_.slot_bytes;
  // Slots and staging at the slot location (zeroed by the allocator).
  auto recv = alloc_->Allocate(region_bytes_, loc_);
  if (!recv.ok()) co_return recv.status();
  recv_base_ = static_cast<uint8_t*>(*recv);
  auto send = alloc_->Allocate(region_bytes_, loc_);
  if (!send.ok()) co_return send.status();
  send_base_ = static_cast<uint8_t*>(*send);
  auto rr = co_await engine_.RegisterMemory(recv_base_, region_bytes_, loc_);
  if (!rr.ok()) co_return rr.status();
  auto sr = co_await engine_.RegisterMemory(send_base_, region_bytes_, loc_);
  if (!sr.ok()) co_return sr.status();

  BootstrapRecord mine;
  mine.rank = static_cast<uint32_t>(rank_);
  mine.size = static_cast<uint32_t>(size_);
  mine.slot_bytes = options_.slot_bytes;
  mine.recv_addr = reinterpret_cast<uint64_t>(recv_base_);
  mine.recv_bytes = region_bytes_;
  mine.segment = engine_.segment_name();
  mine.endpoint = std::string(messenger_.LocalName());
  TIDAL_CO_RETURN_IF_ERROR(
      co_await store_.Put(BootstrapKey(options_.group_name, rank_), EncodeBootstrap(mine)));

  uint64_t deadline = env_.NowNs() + options_.bootstrap_timeout_ns;
  for (int p = 0; p < size_; ++p) {
    BootstrapRecord rec;
    if (p == rank_) {
      rec = mine;
    } else {
      for (;;) {
        auto got = co_await store_.Get(BootstrapKey(options_.group_name, p));
        if (got.ok()) {
          auto dec = DecodeBootstrap(*got);
          if (!dec.ok()) co_return dec.status();
          rec = std::move(*dec);
          break;
        }
        if (got.code() != ErrorCode::OBJECT_NOT_FOUND) co_return got.status();
        if (env_.NowNs() >= deadline) {
          co_return Status(ErrorCode::OPERATION_TIMEOUT,
                           "bootstrap: rank " + std::to_string(p) + " never published");
        }
        co_await SleepFor(env_, 100'000);
      }
      if (rec.rank != static_cast<uint32_t>(p) || rec.size != mine.size ||
          rec.slot_bytes != mine.slot_bytes || rec.recv_bytes != region_bytes_) {
        co_return Status(ErrorCode::INVALID_PARAMS,
                         "bootstrap: rank " + std::to_string(p) + " disagrees on size/slots");
      }
      auto seg = co_await engine_.OpenSegment(rec.segment);
      if (!seg.ok()) co_return seg.status();
      peers_[p].seg = *seg;
      peers_[p].open = true;
    }
    peers_[p].recv_addr = rec.recv_addr;
    peers_[p].segment = rec.segment;
    peers_[p].endpoint = rec.endpoint;
    rank_by_segment_[rec.segment] = p;
    rank_by_endpoint_[rec.endpoint] = p;
  }
  started_ = true;
  auto notifies = std::move(early_notifies_);
  auto messages = std::move(early_messages_);
  for (auto& n : notifies) OnNotification(std::move(n));
  for (auto& [from, payload] : messages) OnMessage(from, std::move(payload));
  co_return Status::Ok();
}

Task<void> ProcessGroup::Impl::Park() {
  for (;;) co_await changed_.Wait(kNoDeadline);
}

void ProcessGroup::Impl::OnNotification(Notification n) {
  if (halted_) return;
  if (!started_) {
    early_notifies_.push_back(std::move(n));
    return;
  }
  auto it = rank_by_segment_.find(n.source);
  if (it == rank_by_segment_.end()) return;
  int from = it->second;
  auto dec = DecodeDataHeader(n.payload);
  if (!dec.ok() || dec->group != group_hash_ || dec->from != static_cast<uint32_t>(from)) return;
  if (dead(from) || from == rank_) return;
  const DataHeader& h = *dec;
  if (h.kind == DataHeader::Kind::kPull && h.cls != ChannelClass::kColl) return;  // never sent
  auto cls = static_cast<size_t>(h.cls);
  // Retransmissions (pg_channel.cc): duplicates are answered, never consumed twice.
  if (h.kind == DataHeader::Kind::kCredit) {
    SendChan& c = send_chan_[from][cls];
    if (h.cls == ChannelClass::kP2p || h.attempt == c.attempt) {
      if (h.seq > c.consumed) {
        c.consumed = h.seq;
        c.unacked.erase(c.unacked.begin(), c.unacked.lower_bound(c.consumed));
      } else if (h.seq == c.consumed && !c.unacked.empty()) {
        ResendUnacked(from, h.cls);  // the receiver asks again: it may have lost them
      }
    }
  } else {
    RecvChan& c = recv_chan_[from][cls];
    bool stale = h.cls == ChannelClass::kColl ? h.attempt < c.attempt : false;
    if (h.attempt == c.attempt && h.seq < c.next) {
      stale = true;  // a duplicate
      // Credited already: our credit was lost, so say it again. Taken but not credited
      // (its fold still reads the slot): the credit is on its way.
      if (h.seq < c.credited) SendCredit(from, h.cls, c.attempt, c.credited);
    }
    if (!stale) c.pending[{h.attempt, h.seq}] = h;
  }
  AnswerGivenUpAttempt(from, h);
  changed_.NotifyAll();
}

void ProcessGroup::Impl::OnMessage(std::string from, std::string payload) {
  if (halted_) return;
  if (!started_) {
    early_messages_.emplace_back(std::move(from), std::move(payload));
    return;
  }
  auto it = rank_by_endpoint_.find(from);
  if (it == rank_by_endpoint_.end()) return;
  auto dec = DecodeControl(payload);
  if (!dec.ok() || dec->group != group_hash_ || dec->from != static_cast<uint32_t>(it->second)) {
    return;
  }
  if (dead(it->second) || it->second == rank_) return;
  HandleControl(it->second, *dec);
  changed_.NotifyAll();
}

void ProcessGroup::Impl::HandleControl(int from, const ControlMessage& m) {
  uint64_t key = AttemptKey(m.op, m.epoch);
  auto merge_dead = [&](uint64_t mask) {
    mask &= ~Bit(rank_);
    for (int r : MaskToRanks(mask & ~dead_mask_)) {
      if (r < size_) MarkDead(r, /*broadcast=*/false);
    }
  };
  switch (m.kind) {
    case ControlMessage::Kind::kAbort:
      merge_dead(m.dead);
      if (in_attempt_ && m.op == cur_op_ && m.epoch == cur_epoch_) attempt_aborted_ = true;
      break;
    case ControlMessage::Kind::kReport: {
      merge_dead(m.dead);
      reports_[key][from] = m;
      auto d = decisions_.find(key);
      if (d != decisions_.end()) SendControl(from, d->second);
      break;
    }
    case ControlMessage::Kind::kQuery: {
      auto d = decisions_.find(key);
      if (d != decisions_.end()) {
        SendControl(from, d->second);
      } else if (report_ready_ && m.op == my_report_.op && m.epoch == my_report_.epoch) {
        my_report_.dead = dead_mask_;
        SendControl(from, my_report_);
      }
      break;
    }
    case ControlMessage::Kind::kDecision:
      if (!decisions_.count(key)) decisions_[key] = m;
      if (!m.commit) {
        // Ranks a decision leaves out were found dead by its coordinator.
        uint64_t all = size_ >= 64 ? ~uint64_t{0} : Bit(size_) - 1;
        merge_dead(all & ~m.view & active_mask_);
      }
      break;
  }
}

void ProcessGroup::Impl::MarkDead(int peer, bool broadcast) {
  if (peer == rank_ || peer < 0 || peer >= size_ || dead(peer)) return;
  dead_mask_ |= Bit(peer);
  // Field bug 11: a dead peer is dropped for good: its segment is closed, its pending
  // chunks are discarded and nothing is ever sent to it again.
  if (peers_[peer].open) {
    (void)engine_.CloseSegment(peers_[peer].seg);
    peers_[peer].open = false;
  }
  for (auto& c : recv_chan_[peer]) c.pending.clear();
  if (in_attempt_ && (cur_view_ & Bit(peer))) {
    attempt_aborted_ = true;
    if (broadcast) BroadcastAbort();
  }
  changed_.NotifyAll();
}

void ProcessGroup::Impl::BroadcastAbort() {
  ControlMessage m;
  m.kind = ControlMessage::Kind::kAbort;
  m.op = cur_op_;
  m.epoch = cur_epoch_;
  m.dead = dead_mask_;
  for (int r : MaskToRanks(cur_view_ & ~dead_mask_)) {
    if (r != rank_) SendControl(r, m);
  }
}

void ProcessGroup::Impl::SendControl(int to, ControlMessage m) {
  if (to == rank_ || dead(to) || !started_ || halted_) return;
  m.from = static_cast<uint32_t>(rank_);
  m.group = group_hash_;
  ++stats_.messages_to[to];
  (void)messenger_.Send(peers_[to].endpoint, EncodeControl(m));
}

std::shared_ptr<Work> ProcessGroup::Impl::Refuse(Status status) {
  auto w = std::make_shared<Work>(env_);
  w->set_start_ns(env_.NowNs());
  w->Complete(std::move(status), {});
  return w;
}

std::shared_ptr<Work> ProcessGroup::Impl::Enqueue(CollOp op) {
  if (!started_) return Refuse(Status(ErrorCode::INVALID_PARAMS, "Start() has not finished"));
  auto w = std::make_shared<Work>(env_);
  w->set_start_ns(env_.NowNs());
  op.work = w;
  op.seq = next_op_seq_++;
  queue_.push_back(std::move(op));
  if (!runner_active_) {
    runner_active_ = true;
    Spawn(env_, Runner());
  }
  return w;
}

Status ProcessGroup::Impl::CheckTensor(const Tensor& t, std::string_view what) const {
  // Shape first (ValidateTensor's checks on a host view), then the location.
  Tensor shape = t;
  shape.location = Location::Host();
  TIDAL_RETURN_IF_ERROR(ValidateTensor(shape, what));
  if (!reducer_->Supports(t.location)) {
    return Status(ErrorCode::UNSUPPORTED, std::string(what) + ": the group's reducer cannot touch " +
                                              t.location.ToString());
  }
  if (t.location != loc_) {
    return Status(ErrorCode::UNSUPPORTED, std::string(what) + " at " + t.location.ToString() +
                                              ", but this rank's buffers are at " +
                                              loc_.ToString());
  }
  return Status::Ok();
}

// --- public API ------------------------------------------------------------------------

ProcessGroup::ProcessGroup(int rank, int size, TransferEngine& engine, Messenger& messenger,
                           MetadataStore& bootstrap, ProcessGroupOptions options)
    : impl_(std::make_unique<Impl>(rank, size, engine, messenger, bootstrap, std::move(options))) {}

ProcessGroup::~ProcessGroup() = default;

Task<Status> ProcessGroup::Start() {
  return impl_->Start();
}

Task<Status> ProcessGroup::RegisterBuffer(void* data, uint64_t bytes) {
  return impl_->RegisterBuffer(data, bytes);
}

Task<Status> ProcessGroup::UnregisterBuffer(void* data) {
  return impl_->UnregisterBuffer(data);
}

namespace {

Status CheckRoot(int root, int size) {
  if (root < 0 || root >= size) {
    return Status(ErrorCode::INVALID_PARAMS, "root " + std::to_string(root) + " out of range");
  }
  return Status::Ok();
}

Status CheckCount(const Tensor& t, uint64_t want, const char* what) {
  if (t.count != want) {
    return Status(ErrorCode::INVALID_PARAMS, std::string(what) + ": expected " +
                                                 std::to_string(want) + " elements, got " +
                                                 std::to_string(t.count));
  }
  return Status::Ok();
}

Status CheckOp(ReduceOp op) {
  if (static_cast<size_t>(op) >= kReduceOps) return Status(ErrorCode::INVALID_PARAMS, "bad op");
  return Status::Ok();
}

Status SameType(const Tensor& a, const Tensor& b) {
  if (a.dtype != b.dtype) return Status(ErrorCode::INVALID_PARAMS, "dtypes differ");
  return Status::Ok();
}

#define TIDAL_REFUSE_IF_ERROR(expr)                     \
  do {                                                  \
    ::tidal::Status tidal_s_ = (expr);                  \
    if (!tidal_s_.ok()) return impl_->Refuse(tidal_s_); \
  } while (0)

}  // namespace

std::shared_ptr<Work> ProcessGroup::AllReduce(Tensor tensor, ReduceOp op) {
  TIDAL_REFUSE_IF_ERROR(impl_->CheckTensor(tensor, "tensor"));
  TIDAL_REFUSE_IF_ERROR(CheckOp(op));
  CollOp c;
  c.type = OpType::kAllReduce;
  c.out = c.in = tensor;
  c.rop = op;
  return impl_->Enqueue(std::move(c));
}

namespace {
// The two-tensor forms of the one-tensor ops: the same memory (in place) or disjoint.
Status SameOrDisjoint(const Tensor& output, const Tensor& input) {
  const uint8_t* o = output.bytes_ptr();
  const uint8_t* i = input.bytes_ptr();
  if (o == i || o + output.bytes() <= i || i + input.bytes() <= o) return Status::Ok();
  return Status(ErrorCode::INVALID_PARAMS,
                "output and input overlap without being the same memory");
}
}  // namespace

std::shared_ptr<Work> ProcessGroup::AllReduce(Tensor output, Tensor input, ReduceOp op) {
  TIDAL_REFUSE_IF_ERROR(impl_->CheckTensor(output, "output"));
  TIDAL_REFUSE_IF_ERROR(impl_->CheckTensor(input, "input"));
  TIDAL_REFUSE_IF_ERROR(SameType(output, input));
  TIDAL_REFUSE_IF_ERROR(CheckOp(op));
  TIDAL_REFUSE_IF_ERROR(CheckCount(output, input.count, "output"));
  TIDAL_REFUSE_IF_ERROR(SameOrDisjoint(output, input));
  CollOp c;
  c.type = OpType::kAllReduce;
  c.out = output;
  c.in = input;
  c.rop = op;
  return impl_->Enqueue(std::move(c));
}

std::shared_ptr<Work> ProcessGroup::AllGather(Tensor output, Tensor input) {
  TIDAL_REFUSE_IF_ERROR(impl_->CheckTensor(output, "output"));
  TIDAL_REFUSE_IF_ERROR(impl_->CheckTensor(input, "input"));
  TIDAL_REFUSE_IF_ERROR(SameType(output, input));
  TIDAL_REFUSE_IF_ERROR(CheckCount(output, input.count * size(), "output"));
  CollOp c;
  c.type = OpType::kAllGather;
  c.out = output;
  c.in = input;
  return impl_->Enqueue(std::move(c));
}

std::shared_ptr<Work> ProcessGroup::ReduceScatter(Tensor output, Tensor input, ReduceOp op) {
  TIDAL_REFUSE_IF_ERROR(impl_->CheckTensor(output, "output"));
  TIDAL_REFUSE_IF_ERROR(impl_->CheckTensor(input, "input"));
  TIDAL_REFUSE_IF_ERROR(SameType(output, input));
  TIDAL_REFUSE_IF_ERROR(CheckOp(op));
  TIDAL_REFUSE_IF_ERROR(CheckCount(input, output.count * size(), "input"));
  CollOp c;
  c.type = OpType::kReduceScatter;
  c.out = output;
  c.in = input;
  c.rop = op;
  return impl_->Enqueue(std::move(c));
}

std::shared_ptr<Work> ProcessGroup::Broadcast(Tensor tensor, int root) {
  TIDAL_REFUSE_IF_ERROR(impl_->CheckTensor(tensor, "tensor"));
  TIDAL_REFUSE_IF_ERROR(CheckRoot(root, size()));
  CollOp c;
  c.type = OpType::kBroadcast;
  c.out = c.in = tensor;
  c.root = options().planted_bug == CollBug::kRootIgnored ? 0 : root;
  return impl_->Enqueue(std::move(c));
}

std::shared_ptr<Work> ProcessGroup::Broadcast(Tensor output, Tensor input, int root) {
  TIDAL_REFUSE_IF_ERROR(impl_->CheckTensor(output, "output"));
  TIDAL_REFUSE_IF_ERROR(CheckRoot(root, size()));
  CollOp c;
  c.type = OpType::kBroadcast;
  c.out = output;
  c.in = output;  // only the root's input is read
  c.reads_no_input = true;
  c.root = options().planted_bug == CollBug::kRootIgnored ? 0 : root;
  if (rank() == c.root) {
    TIDAL_REFUSE_IF_ERROR(impl_->CheckTensor(input, "input"));
    TIDAL_REFUSE_IF_ERROR(SameType(output, input));
    TIDAL_REFUSE_IF_ERROR(CheckCount(output, input.count, "output"));
    TIDAL_REFUSE_IF_ERROR(SameOrDisjoint(output, input));
    c.in = input;
    c.reads_no_input = false;
  }
  return impl_->Enqueue(std::move(c));
}

std::shared_ptr<Work> ProcessGroup::Reduce(Tensor tensor, int root, ReduceOp op) {
  TIDAL_REFUSE_IF_ERROR(impl_->CheckTensor(tensor, "tensor"));
  TIDAL_REFUSE_IF_ERROR(CheckRoot(root, size()));
  TIDAL_REFUSE_IF_ERROR(CheckOp(op));
  CollOp c;
  c.type = OpType::kReduce;
  c.out = c.in = tensor;
  c.root = options().planted_bug == CollBug::kRootIgnored ? 0 : root;
  c.rop = op;
  return impl_->Enqueue(std::move(c));
}

std::shared_ptr<Work> ProcessGroup::Gather(Tensor output, Tensor input, int root) {
  TIDAL_REFUSE_IF_ERROR(impl_->CheckTensor(input, "input"));
  TIDAL_REFUSE_IF_ERROR(CheckRoot(root, size()));
  if (rank() == root) {
    TIDAL_REFUSE_IF_ERROR(impl_->CheckTensor(output, "output"));
    TIDAL_REFUSE_IF_ERROR(SameType(output, input));
    TIDAL_REFUSE_IF_ERROR(CheckCount(output, input.count * size(), "output"));
  }
  CollOp c;
  c.type = OpType::kGather;
  c.out = output;
  c.in = input;
  c.root = root;
  return impl_->Enqueue(std::move(c));
}

std::shared_ptr<Work> ProcessGroup::Scatter(Tensor output, Tensor input, int root) {
  TIDAL_REFUSE_IF_ERROR(impl_->CheckTensor(output, "output"));
  TIDAL_REFUSE_IF_ERROR(CheckRoot(root, size()));
  if (rank() == root) {
    TIDAL_REFUSE_IF_ERROR(impl_->CheckTensor(input, "input"));
    TIDAL_REFUSE_IF_ERROR(SameType(output, input));
    TIDAL_REFUSE_IF_ERROR(CheckCount(input, output.count * size(), "input"));
  }
  CollOp c;
  c.type = OpType::kScatter;
  c.out = output;
  c.in = input;
  c.root = root;
  return impl_->Enqueue(std::move(c));
}

std::shared_ptr<Work> ProcessGroup::AllToAll(Tensor output, Tensor input) {
  TIDAL_REFUSE_IF_ERROR(impl_->CheckTensor(output, "output"));
  TIDAL_REFUSE_IF_ERROR(impl_->CheckTensor(input, "input"));
  TIDAL_REFUSE_IF_ERROR(SameType(output, input));
  TIDAL_REFUSE_IF_ERROR(CheckCount(output, input.count, "output"));
  if (input.count % static_cast<uint64_t>(size()) != 0) {
    return impl_->Refuse(Status(ErrorCode::INVALID_PARAMS, "count is not a multiple of size"));
  }
  CollOp c;
  c.type = OpType::kAllToAll;
  c.out = output;
  c.in = input;
  return impl_->Enqueue(std::move(c));
}

std::shared_ptr<Work> ProcessGroup::Barrier() {
  CollOp c;
  c.type = OpType::kBarrier;
  return impl_->Enqueue(std::move(c));
}

std::shared_ptr<Work> ProcessGroup::Send(Tensor tensor, int peer, uint32_t tag) {
  P2POp op{P2POp::Kind::kSend, tensor, peer, tag};
  return impl_->SubmitP2P(std::span<const P2POp>(&op, 1));
}

std::shared_ptr<Work> ProcessGroup::Recv(Tensor tensor, int peer, uint32_t tag) {
  P2POp op{P2POp::Kind::kRecv, tensor, peer, tag};
  return impl_->SubmitP2P(std::span<const P2POp>(&op, 1));
}

std::shared_ptr<Work> ProcessGroup::BatchIsendIrecv(std::span<const P2POp> ops) {
  return impl_->SubmitP2P(ops);
}

void ProcessGroup::Halt() {
  impl_->halted_ = true;
  impl_->changed_.NotifyAll();
}

int ProcessGroup::rank() const {
  return impl_->rank_;
}
int ProcessGroup::size() const {
  return impl_->size_;
}
std::vector<int> ProcessGroup::active_ranks() const {
  return MaskToRanks(impl_->active_mask_);
}
std::vector<int> ProcessGroup::dead_ranks() const {
  return MaskToRanks(impl_->dead_mask_);
}
const ProcessGroupStats& ProcessGroup::stats() const {
  return impl_->stats_;
}
const ProcessGroupOptions& ProcessGroup::options() const {
  return impl_->options_;
}

}  // namespace tidal::coll
