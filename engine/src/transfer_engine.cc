#include "tidal/transfer_engine.h"
#include "tidal/reach.h"

#include <algorithm>
#include <atomic>
#include <mutex>

namespace tidal {

std::string_view TransferOpName(TransferOp op) {
  return op == TransferOp::kRead ? "READ" : "WRITE";
}

std::string_view EngineBugName(EngineBug bug) {
  switch (bug) {
    case EngineBug::kNone: return "none";
    case EngineBug::kNoDescriptorRefresh: return "engine_no_descriptor_refresh";
    case EngineBug::kCloseDropsEveryHolder: return "engine_close_drops_every_holder";
    case EngineBug::kPrefixOvercount: return "engine_prefix_overcount";
    case EngineBug::kDeadPeerStaysCached: return "engine_dead_peer_stays_cached";
  }
  return "unknown";
}

Result<EngineBug> ParseEngineBug(std::string_view name) {
  std::string known;
  for (EngineBug b : kEngineBugs) {
    if (EngineBugName(b) == name) return b;
    known += (known.empty() ? "" : ", ") + std::string(EngineBugName(b));
  }
  return Status(ErrorCode::INVALID_PARAMS,
                "unknown engine bug '" + std::string(name) + "' (" + known + ")");
}

std::string_view TransferStateName(TransferState s) {
  switch (s) {
    case TransferState::PENDING: return "PENDING";
    case TransferState::COMPLETED: return "COMPLETED";
    case TransferState::FAILED: return "FAILED";
    case TransferState::TIMED_OUT: return "TIMED_OUT";
    case TransferState::CANCELED: return "CANCELED";
  }
  return "UNKNOWN";
}

namespace {
constexpr uint64_t kProbeBatch = 0;  // the batch value of a probe's slice

uint64_t Pack(uint32_t index, uint32_t generation) {
  return (static_cast<uint64_t>(generation) << 32) | index;
}
uint32_t IndexOf(uint64_t v) { return static_cast<uint32_t>(v & 0xffffffffu); }
uint32_t GenerationOf(uint64_t v) { return static_cast<uint32_t>(v >> 32); }

// Every engine notification starts with its channel, 8 bytes little-endian.
constexpr size_t kChannelBytes = 8;
std::string WithChannel(uint64_t channel, std::string_view payload) {
  std::string out(kChannelBytes + payload.size(), '\0');
  for (size_t i = 0; i < kChannelBytes; ++i) out[i] = static_cast<char>(channel >> (8 * i));
  std::copy(payload.begin(), payload.end(), out.begin() + kChannelBytes);
  return out;
}
uint64_t ChannelOf(std::string_view bytes) {
  uint64_t v = 0;
  for (size_t i = 0; i < kChannelBytes; ++i) {
    v |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[i])) << (8 * i);
  }
  return v;
}
}  // namespace

struct TransferEngine::RequestState {
  TransferStatus status;
  uint64_t length = 0;
  uint32_t outstanding = 0;         // slices accepted by the transport, not yet completed
  ErrorCode first_error = ErrorCode::OK;
  bool refreshed = false;           // parked once for a descriptor refresh (whole request)
  uint64_t single_task = 0;         // the slice of a one-slice request
  std::vector<uint64_t> tasks;      // the slices of a multi-slice request
  std::vector<uint64_t> moved;      // per slice of a multi-slice request: bytes, or kNotDone

  static constexpr uint64_t kNotDone = UINT64_MAX;
  // The bytes known to have arrived as one prefix of the request: every slice up to the
  // first that did not fully complete, plus what that one moved (its own prefix).
  uint64_t Prefix(uint64_t slice_bytes) const {
    uint64_t total = 0;
    for (size_t i = 0; i < moved.size(); ++i) {
      const uint64_t want = std::min(slice_bytes, length - i * slice_bytes);
      if (moved[i] == kNotDone) break;
      total += moved[i];
      if (moved[i] != want) break;
    }
    return total;
  }
};

struct TransferEngine::Batch {
  uint32_t generation = 1;
  bool live = false;
  size_t capacity = 0;
  uint32_t pending = 0;
  std::vector<RequestState> requests;
  std::vector<TimerId> timers;
  std::vector<std::coroutine_handle<>> waiters;
};

struct TransferEngine::Slice {
  uint32_t generation = 1;
  bool live = false;
  uint64_t batch = 0;          // packed BatchId, kProbeBatch for a probe
  uint32_t request = 0;
  uint32_t segment = 0;        // segment index
  uint64_t local_region = 0;   // start of the local region (in-flight accounting), 0: none
  uint64_t length = 0;
  uint32_t index = 0;          // which slice of its request
  TransportTask::Kind kind = TransportTask::Kind::kRead;
  uint64_t local_addr = 0;     // the slice's own ranges, to re-run it after a refresh
  uint64_t remote_addr = 0;
  bool retried = false;        // already re-run once after a refresh
};

// A request (slice < 0) or one slice of a request waiting for its segment's descriptor
// to be looked up again. `range` holds the request's, or the slice's, own ranges.
struct TransferEngine::Parked {
  uint64_t batch = 0;
  uint32_t request = 0;
  int slice = -1;
  TransferRequest range;
};

// on_ready may come from a backend thread at any time, also while the engine is being
// destroyed on the executor: it reaches the engine only through this gate. `owner` is
// the engine it was made for (never cleared); `engine` is it while it lives.
struct TransferEngine::ReadyGate {
  explicit ReadyGate(TransferEngine* e) : owner(e), engine(e) {}
  TransferEngine* const owner;
  std::mutex mu;
  TransferEngine* engine;
};

struct TransferEngine::Outgoing {
  std::vector<TransportTask> tasks;
  std::vector<uint32_t> request;  // batch index of each task's request
  std::vector<Status> accepted;   // the transport's answer for each task
};

// Resumes its awaiter once every request of the batch is terminal.
struct TransferEngine::BatchDone {
  Batch* b;
  bool await_ready() noexcept { return b->pending == 0; }
  void await_suspend(std::coroutine_handle<> h) { b->waiters.push_back(h); }
  void await_resume() noexcept {}
};

namespace {
// The engine whose Submit is inside its transport's Submit on this thread, if any: its
// on_ready, coming from there, asks for DrainInline instead of a posted Drain.
thread_local TransferEngine* tl_submitting = nullptr;
}  // namespace

struct TransferEngine::SegmentEntry {
  uint32_t generation = 1;
  bool live = false;
  bool dead = false;           // a transfer or probe found the peer unreachable
  uint32_t holders = 0;        // OpenSegment calls not yet balanced by CloseSegment
  bool refreshing = false;     // a RefreshParked task runs for this entry
  std::vector<Parked> parked;  // waiting for that refresh
  SegmentDescriptor desc;
  PeerId peer = 0;
};

struct TransferEngine::Waiter {
  OneShot<Status> done;
  TimerId timer = 0;
  explicit Waiter(Env& env) : done(env) {}
};

TransferEngine::TransferEngine(Env& env, std::unique_ptr<Transport> transport,
                               MetadataStore& metadata, std::string segment_name,
                               TransferEngineOptions options)
    : env_(env),
      transport_(std::move(transport)),
      metadata_(metadata),
      segment_name_(std::move(segment_name)),
      options_(options),
      alive_(std::make_shared<bool>(true)),
      gate_(std::make_shared<ReadyGate>(this)),
      outgoing_(std::make_unique<Outgoing>()) {
  TIDAL_ASSERT(transport_ != nullptr);
  TIDAL_ASSERT(options_.slice_bytes > 0);
  batches_.emplace_back();  // index 0 is never handed out, so no handle packs to 0
  segments_.emplace_back();
  slices_.emplace_back();
  completion_buf_.resize(64);
}

TransferEngine::~TransferEngine() {
  {
    std::lock_guard<std::mutex> lock(gate_->mu);
    gate_->engine = nullptr;  // a backend thread inside on_ready finishes before this
  }
  *alive_ = false;
}

Task<Status> TransferEngine::Start() {
  if (started_) co_return Status(ErrorCode::INVALID_PARAMS, "engine already started");
  TransportInstall install;
  install.env = &env_;
  install.segment_name = segment_name_;
  install.on_ready = [gate = gate_]() {
    // Inside the engine's own Submit on this thread (a copy the transport finished
    // inline): the engine is alive, as its Submit is on this stack, so no lock is needed.
    if (tl_submitting == gate->owner) {
      gate->owner->inline_ready_ = true;
      return;
    }
    // May run on a backend thread: only flip the flag and post, under the gate's lock so
    // the engine cannot be destroyed meanwhile.
    std::lock_guard<std::mutex> lock(gate->mu);
    if (gate->engine != nullptr) gate->engine->PostDrain();
  };
  TIDAL_CO_RETURN_IF_ERROR(transport_->Install(install));
  installed_ = true;
  incarnation_ = env_.RandomU64() | 1;  // never 0
  started_ = true;
  co_return co_await Publish();
}

Task<Status> TransferEngine::Stop() {
  if (!started_) co_return Status(ErrorCode::INVALID_PARAMS, "engine not started");
  started_ = false;
  co_return co_await metadata_.Delete(SegmentKey(segment_name_));
}

Task<Status> TransferEngine::Publish() {
  SegmentDescriptor d;
  d.name = segment_name_;
  d.transport = std::string(transport_->Name());
  d.address = transport_->LocalAddress();
  d.incarnation = incarnation_;
  d.version = ++descriptor_version_;
  d.regions = registry_.List();
  co_return co_await metadata_.Put(SegmentKey(segment_name_), EncodeSegment(d));
}

Task<Result<uint64_t>> TransferEngine::RegisterMemory(void* addr, uint64_t length,
                                                      Location location) {
  const uint64_t a = reinterpret_cast<uint64_t>(addr);
  if (!installed_) {
    // The transport is bound to its node by Start; it may not be called before.
    co_return Status(ErrorCode::INVALID_PARAMS, "RegisterMemory before Start: the engine's "
                                                "transport is not installed yet");
  }
  TIDAL_CO_RETURN_IF_ERROR(registry_.CheckAdd(a, length));
  const TransportCaps caps = transport_->Capabilities();
  if (!location.is_host() && !caps.host_to_cuda && !caps.cuda_to_cuda) {
    co_return Status(ErrorCode::UNSUPPORTED, std::string(transport_->Name()) +
                                                 " transport cannot reach " + location.ToString());
  }
  Result<uint64_t> rkey = transport_->RegisterMemory(a, length, location);
  if (!rkey.ok()) co_return rkey.status();
  TIDAL_ASSERT(*rkey != 0);
  Status added = registry_.Add(RegionInfo{a, length, location, *rkey});
  TIDAL_ASSERT(added.ok());  // CheckAdd passed and nothing ran in between
  if (started_) {
    Status published = co_await Publish();
    if (!published.ok()) {
      // All or nothing: a region peers cannot see is not registered.
      (void)registry_.Remove(a);
      (void)transport_->UnregisterMemory(a, length);
      co_return published;
    }
  }
  co_return *rkey;
}

Task<Status> TransferEngine::UnregisterMemory(void* addr) {
  const uint64_t a = reinterpret_cast<uint64_t>(addr);
  // Completions already waiting in the transport (say, of slices canceled at a deadline)
  // release the region: reap them before deciding it is busy.
  if (registry_.InFlight(a) > 0) Drain();
  Result<RegionInfo> removed = registry_.Remove(a);
  if (!removed.ok()) co_return removed.status();
  Status s = transport_->UnregisterMemory(a, removed->length);
  if (!s.ok()) {
    Status restored = registry_.Add(*removed);
    TIDAL_ASSERT(restored.ok());
    co_return s;
  }
  if (started_) co_return co_await Publish();
  co_return Status();
}

Task<Result<SegmentHandle>> TransferEngine::OpenSegment(std::string name) {
  if (!installed_) {
    co_return Status(ErrorCode::INVALID_PARAMS, "OpenSegment before Start: the engine's "
                                                "transport is not installed yet");
  }
  auto cached = segment_by_name_.find(name);
  uint64_t dead_incarnation = 0;
  if (cached != segment_by_name_.end()) {
    SegmentEntry& e = *segments_[cached->second];
    if (!e.dead) {
      ++e.holders;
      co_return SegmentHandle{Pack(cached->second, e.generation)};
    }
    dead_incarnation = e.desc.incarnation;
  }
  Result<std::string> blob = co_await metadata_.Get(SegmentKey(name));
  if (!blob.ok()) {
    if (blob.code() == ErrorCode::OBJECT_NOT_FOUND) {
      co_return Status(ErrorCode::SEGMENT_NOT_FOUND, "segment '" + name + "' is not published");
    }
    co_return blob.status();
  }
  Result<SegmentDescriptor> desc = DecodeSegment(*blob);
  if (!desc.ok()) co_return desc.status();
  if (desc->name != name) {
    co_return Status(ErrorCode::CORRUPT_INPUT, "descriptor under '" + name + "' names '" +
                                                   desc->name + "'");
  }
  if (dead_incarnation != 0 && desc->incarnation == dead_incarnation) {
    co_return Status(ErrorCode::PEER_UNREACHABLE,
                     "segment '" + name + "' was found unreachable and has not restarted");
  }
  // The lookup suspended: another coroutine may have opened it meanwhile.
  cached = segment_by_name_.find(name);
  if (cached != segment_by_name_.end()) {
    SegmentEntry& e = *segments_[cached->second];
    if (!e.dead && e.desc.incarnation == desc->incarnation) {
      if (desc->version > e.desc.version) e.desc = std::move(*desc);
      ++e.holders;
      co_return SegmentHandle{Pack(cached->second, e.generation)};
    }
    // The peer restarted (or was found dead): the old entry goes for every holder.
    RetireSegment(cached->second, Status(ErrorCode::PEER_UNREACHABLE,
                                         "segment '" + name + "' restarted"));
  }
  Result<PeerId> peer = transport_->Connect(*desc);
  if (!peer.ok()) co_return peer.status();
  uint32_t index = 0;
  for (uint32_t i = 1; i < segments_.size(); ++i) {
    if (!segments_[i]->live) {
      index = i;
      break;
    }
  }
  if (index == 0) {
    index = static_cast<uint32_t>(segments_.size());
    segments_.push_back(std::make_unique<SegmentEntry>());
  }
  SegmentEntry& e = *segments_[index];
  e.live = true;
  e.dead = false;
  e.holders = 1;
  e.refreshing = false;
  e.parked.clear();
  e.desc = std::move(*desc);
  e.peer = *peer;
  segment_by_name_[name] = index;
  co_return SegmentHandle{Pack(index, e.generation)};
}

TransferEngine::SegmentEntry* TransferEngine::FindSegment(SegmentHandle h) {
  const uint32_t i = IndexOf(h.value);
  if (i == 0 || i >= segments_.size()) return nullptr;
  SegmentEntry* e = segments_[i].get();
  return e->live && e->generation == GenerationOf(h.value) ? e : nullptr;
}
const TransferEngine::SegmentEntry* TransferEngine::FindSegment(SegmentHandle h) const {
  return const_cast<TransferEngine*>(this)->FindSegment(h);
}

Status TransferEngine::CloseSegment(SegmentHandle handle) {
  SegmentEntry* e = FindSegment(handle);
  if (e == nullptr) return Status(ErrorCode::INVALID_PARAMS, "segment handle is not open");
  TIDAL_ASSERT(e->holders > 0);
  if (--e->holders > 0 && options_.planted_bug != EngineBug::kCloseDropsEveryHolder) {
    return Status();  // other holders keep it open
  }
  RetireSegment(IndexOf(handle.value),
                Status(ErrorCode::SEGMENT_NOT_FOUND, "segment handle was closed"));
  return Status();
}

void TransferEngine::RetireSegment(uint32_t index, const Status& why) {
  SegmentEntry& e = *segments_[index];
  TIDAL_ASSERT(e.live);
  auto it = segment_by_name_.find(e.desc.name);
  if (it != segment_by_name_.end() && it->second == index) segment_by_name_.erase(it);
  std::vector<Parked> parked = std::move(e.parked);
  e.parked.clear();
  e.live = false;
  e.dead = false;
  e.holders = 0;
  e.refreshing = false;  // a RefreshParked task still running sees the new generation
  ++e.generation;
  for (Parked& p : parked) ResumeParked(p, why);
}

Result<SegmentDescriptor> TransferEngine::DescribeSegment(SegmentHandle handle) const {
  const SegmentEntry* e = FindSegment(handle);
  if (e == nullptr) return Status(ErrorCode::SEGMENT_NOT_FOUND, "segment handle is stale");
  return e->desc;
}

void TransferEngine::MarkPeerDead(uint32_t segment_index) {
  if (segment_index == 0 || segment_index >= segments_.size()) return;
  SegmentEntry& e = *segments_[segment_index];
  if (!e.live || options_.planted_bug == EngineBug::kDeadPeerStaysCached) return;
  // Field bug 11: a vanished peer must not stay in the cache as if healthy. Requests to
  // this handle now fail at once, and OpenSegment looks the segment up afresh.
  e.dead = true;
}

Result<BatchId> TransferEngine::AllocateBatch(size_t capacity) {
  if (capacity == 0 || capacity > options_.max_batch_size) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "batch capacity " + std::to_string(capacity) + " is outside [1, " +
                      std::to_string(options_.max_batch_size) + "]");
  }
  if (live_batches_ >= options_.max_batches) {
    return Status(ErrorCode::NO_AVAILABLE_HANDLE,
                  "all " + std::to_string(options_.max_batches) + " batches are allocated");
  }
  uint32_t index;
  if (!free_batches_.empty()) {
    index = free_batches_.back();
    free_batches_.pop_back();
  } else {
    index = static_cast<uint32_t>(batches_.size());
    batches_.push_back(std::make_unique<Batch>());
  }
  Batch& b = *batches_[index];
  TIDAL_ASSERT(!b.live && b.pending == 0 && b.waiters.empty());
  b.live = true;
  b.capacity = capacity;
  b.requests.clear();
  b.requests.reserve(std::min<size_t>(capacity, 1024));
  ++live_batches_;
  return BatchId{Pack(index, b.generation)};
}

TransferEngine::Batch* TransferEngine::FindBatch(BatchId id) {
  const uint32_t i = IndexOf(id.value);
  if (i == 0 || i >= batches_.size()) return nullptr;
  Batch* b = batches_[i].get();
  return b->live && b->generation == GenerationOf(id.value) ? b : nullptr;
}
const TransferEngine::Batch* TransferEngine::FindBatch(BatchId id) const {
  return const_cast<TransferEngine*>(this)->FindBatch(id);
}

Status TransferEngine::FreeBatch(BatchId batch) {
  Batch* b = FindBatch(batch);
  if (b == nullptr) return Status(ErrorCode::INVALID_PARAMS, "batch id is not allocated");
  if (b->pending > 0) {
    return Status(ErrorCode::BATCH_BUSY,
                  std::to_string(b->pending) + " requests of the batch are still PENDING");
  }
  TIDAL_ASSERT(b->waiters.empty());
  for (TimerId t : b->timers) env_.CancelTimer(t);
  b->timers.clear();
  b->live = false;
  ++b->generation;  // every outstanding BatchId of it is now stale
  b->requests.clear();
  free_batches_.push_back(IndexOf(batch.value));
  --live_batches_;
  return Status();
}

Status TransferEngine::ValidateRequest(const TransferRequest& r, const SegmentEntry** seg,
                                       RegionInfo* local, const RegionInfo** remote) const {
  if (r.length == 0) return Status(ErrorCode::INVALID_PARAMS, "request length is zero");
  *seg = FindSegment(r.segment);
  if (*seg == nullptr) return Status(ErrorCode::SEGMENT_NOT_FOUND, "segment handle is stale");
  if ((*seg)->dead) {
    return Status(ErrorCode::PEER_UNREACHABLE,
                  "segment '" + (*seg)->desc.name + "' was found unreachable");
  }
  Result<RegionInfo> l = registry_.FindLocal(r.local_addr, r.length);
  if (!l.ok()) return l.status();
  *local = *l;
  *remote = (*seg)->desc.FindRegion(r.remote_addr, r.length);
  if (*remote == nullptr) {
    return Status(ErrorCode::REMOTE_ACCESS_DENIED,
                  "remote range is outside every region segment '" + (*seg)->desc.name +
                      "' exports");
  }
  const TransportCaps caps = transport_->Capabilities();
  const bool lh = local->location.is_host(), rh = (*remote)->location.is_host();
  const bool path = (lh && rh) ? caps.host_to_host
                    : (lh != rh) ? caps.host_to_cuda
                                 : caps.cuda_to_cuda;
  if (!path) {
    return Status(ErrorCode::UNSUPPORTED, std::string(transport_->Name()) + " has no path " +
                                              local->location.ToString() + " -> " +
                                              (*remote)->location.ToString());
  }
  return Status();
}

uint64_t TransferEngine::AllocSlice() {
  uint32_t index;
  if (!free_slices_.empty()) {
    index = free_slices_.back();
    free_slices_.pop_back();
  } else {
    index = static_cast<uint32_t>(slices_.size());
    slices_.emplace_back();
  }
  Slice& s = slices_[index];
  TIDAL_ASSERT(!s.live);
  s.live = true;
  return Pack(index, s.generation);
}

void TransferEngine::BuildSlices(Batch& b, uint64_t batch_value, uint32_t index,
                                 const TransferRequest& r, PeerId peer,
                                 const RegionInfo& local, const RegionInfo& remote,
                                 int only_slice, Outgoing& out) {
  RequestState& state = b.requests[index];
  const uint64_t slices =
      only_slice >= 0 ? 1 : (r.length + options_.slice_bytes - 1) / options_.slice_bytes;
  const bool many = state.length > options_.slice_bytes;
  for (uint64_t s = 0; s < slices; ++s) {
    const uint64_t offset = only_slice >= 0 ? 0 : s * options_.slice_bytes;
    const uint32_t slice_index = only_slice >= 0 ? static_cast<uint32_t>(only_slice)
                                                 : static_cast<uint32_t>(s);
    const uint64_t id = AllocSlice();
    Slice& slice = slices_[IndexOf(id)];
    slice.batch = batch_value;
    slice.request = index;
    slice.segment = IndexOf(r.segment.value);
    slice.local_region = local.addr;
    slice.length = std::min(options_.slice_bytes, r.length - offset);
    slice.index = slice_index;
    slice.kind = r.op == TransferOp::kRead ? TransportTask::Kind::kRead
                                           : TransportTask::Kind::kWrite;
    slice.local_addr = r.local_addr + offset;
    slice.remote_addr = r.remote_addr + offset;
    slice.retried = only_slice >= 0 || state.refreshed;
    registry_.AddInFlight(local.addr, +1);
    TransportTask t;
    t.task_id = id;
    t.kind = slice.kind;
    t.peer = peer;
    t.local_addr = slice.local_addr;
    t.remote_addr = slice.remote_addr;
    t.length = slice.length;
    t.rkey = remote.rkey;
    out.tasks.push_back(t);
    out.request.push_back(index);
    if (!many) {
      state.single_task = id;
    } else if (only_slice >= 0) {
      TIDAL_ASSERT(slice_index < state.tasks.size());
      state.tasks[slice_index] = id;
    } else {
      state.tasks.push_back(id);
      state.moved.push_back(RequestState::kNotDone);
    }
    ++state.outstanding;
  }
}

void TransferEngine::SendSlices(Batch& b, Outgoing& out, std::span<Status> result, uint32_t first) {
  if (out.tasks.empty()) return;
  std::vector<Status>& accepted = out.accepted;
  accepted.assign(out.tasks.size(), Status());
  transport_->Submit(out.tasks, accepted);
  stats_.slices_submitted += out.tasks.size();
  // A slice the transport refused never completes: account for it now.
  for (size_t t = 0; t < out.tasks.size(); ++t) {
    if (accepted[t].ok()) continue;
    Slice& slice = slices_[IndexOf(out.tasks[t].task_id)];
    registry_.AddInFlight(slice.local_region, -1);
    slice.live = false;
    ++slice.generation;
    free_slices_.push_back(IndexOf(out.tasks[t].task_id));
    RequestState& state = b.requests[out.request[t]];
    if (state.first_error == ErrorCode::OK) state.first_error = accepted[t].code();
    if (!result.empty()) {
      // Only the requests past capacity lack a slot, and they come last, so batch index
      // first + k is request k.
      const size_t k = out.request[t] - first;
      if (k < result.size() && result[k].ok()) result[k] = accepted[t];
    }
    TIDAL_ASSERT(state.outstanding > 0);
    if (--state.outstanding == 0) {
      FinishRequest(b, out.request[t], state, TransferState::FAILED, state.first_error);
    }
  }
}

std::vector<Status> TransferEngine::Submit(BatchId batch,
                                           std::span<const TransferRequest> requests) {
  std::vector<Status> result(requests.size());
  SubmitTo(batch, requests, result);
  return result;
}

void TransferEngine::SubmitTo(BatchId batch, std::span<const TransferRequest> requests,
                              std::span<Status> result) {
  Batch* b = FindBatch(batch);
  if (b == nullptr) {
    for (Status& s : result) s = Status(ErrorCode::INVALID_PARAMS, "batch id is not allocated");
    return;
  }
  const uint32_t first = static_cast<uint32_t>(b->requests.size());
  // The kept task list: nothing inside Submit submits again (handlers and waiters are
  // posted), which the flag checks.
  TIDAL_ASSERT_MSG(!outgoing_in_use_, "Submit re-entered from inside Submit");
  outgoing_in_use_ = true;
  Outgoing& out = *outgoing_;
  out.tasks.clear();
  out.request.clear();
  for (size_t k = 0; k < requests.size(); ++k) {
    const TransferRequest& r = requests[k];
    if (b->requests.size() >= b->capacity) {
      if (!result.empty()) {
        result[k] = Status(ErrorCode::INVALID_PARAMS,
                           "batch is full (capacity " + std::to_string(b->capacity) + ")");
      }
      continue;  // no slot: nothing is recorded for it
    }
    const uint32_t index = static_cast<uint32_t>(b->requests.size());
    RequestState& state = b->requests.emplace_back();
    state.length = r.length;
    ++stats_.requests_submitted;
    const SegmentEntry* seg = nullptr;
    RegionInfo local;
    const RegionInfo* remote = nullptr;
    Status valid = ValidateRequest(r, &seg, &local, &remote);
    if (valid.code() == ErrorCode::REMOTE_ACCESS_DENIED &&
        options_.planted_bug != EngineBug::kNoDescriptorRefresh) {
      // Our copy of the peer's descriptor may predate a region it registered since: the
      // request waits (PENDING, under its deadline) for the descriptor to be looked up
      // again, and fails only if the fresh one lacks the range too.
      ++b->pending;
      state.outstanding = 1;  // the parked request itself
      state.refreshed = true;
      Park(IndexOf(r.segment.value), Parked{batch.value, index, -1, r});
      continue;
    }
    if (!valid.ok()) {
      state.status = {TransferState::FAILED, 0, valid.code()};
      ++stats_.requests_failed;
      if (!result.empty()) result[k] = std::move(valid);
      continue;
    }
    ++b->pending;
    BuildSlices(*b, batch.value, index, r, seg->peer, local, *remote, -1, out);
  }
  // A transport that finishes a copy inside its Submit (UCX's one-sided mode) signals
  // readiness from there: take the completions now rather than after a loop turn.
  TransferEngine* const outer = tl_submitting;
  tl_submitting = this;
  SendSlices(*b, out, result, first);
  tl_submitting = outer;
  outgoing_in_use_ = false;
  if (inline_ready_) {
    inline_ready_ = false;
    DrainInline();
    b = FindBatch(batch);
    if (b == nullptr) return;
  }
  if (b->live && b->pending > 0) {
    const uint32_t count = static_cast<uint32_t>(b->requests.size()) - first;
    const uint64_t value = batch.value;
    std::weak_ptr<bool> alive = alive_;
    TimerId t = env_.ScheduleAfter(options_.transfer_timeout_ns, [this, alive, value, first, count]() {
      auto a = alive.lock();
      if (a && *a) OnDeadline(value, first, count);
    });
    b->timers.push_back(t);
  }
}

void TransferEngine::Park(uint32_t segment_index, Parked p) {
  SegmentEntry& e = *segments_[segment_index];
  TIDAL_ASSERT(e.live);
  ++stats_.refresh_retries;
  e.parked.push_back(std::move(p));
  if (e.refreshing) return;  // the running refresh takes it on its next round
  e.refreshing = true;
  Spawn(env_, RefreshParked(segment_index, e.generation));
}

Task<void> TransferEngine::RefreshParked(uint32_t segment_index, uint32_t generation) {
  std::shared_ptr<bool> alive = alive_;
  for (;;) {
    SegmentEntry* e = FindSegment(SegmentHandle{Pack(segment_index, generation)});
    if (e == nullptr) co_return;  // retired: RetireSegment failed what was parked
    // What is parked now is resolved by this look-up; what parks while it runs may have
    // seen a newer registration, so it waits for the next round.
    std::vector<Parked> mine = std::move(e->parked);
    e->parked.clear();
    Status refreshed = co_await LookUpAgain(segment_index, generation);
    if (!*alive) co_return;
    for (Parked& p : mine) ResumeParked(p, refreshed);
    e = FindSegment(SegmentHandle{Pack(segment_index, generation)});
    if (e == nullptr) co_return;
    if (e->parked.empty()) {
      e->refreshing = false;
      co_return;
    }
  }
}

Task<Status> TransferEngine::LookUpAgain(uint32_t segment_index, uint32_t generation) {
  std::shared_ptr<bool> alive = alive_;
  const SegmentHandle handle{Pack(segment_index, generation)};
  SegmentEntry* e = FindSegment(handle);
  if (e == nullptr) co_return Status(ErrorCode::SEGMENT_NOT_FOUND, "segment handle is stale");
  const std::string name = e->desc.name;
  ++stats_.segment_refreshes;
  Result<std::string> blob = co_await metadata_.Get(SegmentKey(name));
  if (!*alive) co_return Status(ErrorCode::INTERNAL_ERROR, "engine destroyed");
  e = FindSegment(handle);
  if (e == nullptr) {
    co_return Status(ErrorCode::SEGMENT_NOT_FOUND, "segment '" + name + "' was closed");
  }
  if (e->dead) {
    co_return Status(ErrorCode::PEER_UNREACHABLE, "segment '" + name + "' was found unreachable");
  }
  if (!blob.ok()) {
    if (blob.code() == ErrorCode::OBJECT_NOT_FOUND) {
      co_return Status(ErrorCode::SEGMENT_NOT_FOUND, "segment '" + name + "' was withdrawn");
    }
    co_return blob.status();
  }
  Result<SegmentDescriptor> desc = DecodeSegment(*blob);
  if (!desc.ok()) co_return desc.status();
  if (desc->name != name) {
    co_return Status(ErrorCode::CORRUPT_INPUT,
                     "descriptor under '" + name + "' names '" + desc->name + "'");
  }
  if (desc->incarnation != e->desc.incarnation) {
    // The node behind the handle is gone; its successor is another peer. Never a stale
    // success: the handle is dead and OpenSegment finds the new incarnation.
    MarkPeerDead(segment_index);
    co_return Status(ErrorCode::PEER_UNREACHABLE, "segment '" + name + "' restarted");
  }
  if (desc->version > e->desc.version) e->desc = std::move(*desc);
  co_return Status();
}

Task<Status> TransferEngine::RefreshSegment(SegmentHandle handle) {
  if (FindSegment(handle) == nullptr) {
    co_return Status(ErrorCode::SEGMENT_NOT_FOUND, "segment handle is stale");
  }
  co_return co_await LookUpAgain(IndexOf(handle.value), GenerationOf(handle.value));
}

void TransferEngine::ResumeParked(Parked& p, const Status& refreshed) {
  Batch* b = FindBatch(BatchId{p.batch});
  if (b == nullptr) return;  // freed after it timed out or was canceled
  TIDAL_ASSERT(p.request < b->requests.size());
  RequestState& r = b->requests[p.request];
  if (r.status.state != TransferState::PENDING) return;
  TIDAL_ASSERT(r.outstanding > 0);
  const SegmentEntry* seg = nullptr;
  RegionInfo local;
  const RegionInfo* remote = nullptr;
  Status valid = refreshed;
  TIDAL_SOMETIMES(refreshed.ok(), "engine.stale_request_resumed_after_refresh");
  if (valid.ok()) valid = ValidateRequest(p.range, &seg, &local, &remote);
  if (!valid.ok()) {
    if (p.slice >= 0 && !r.moved.empty()) {
      r.moved[p.slice] = 0;  // a denied slice moved nothing
      r.status.bytes_transferred = r.Prefix(options_.slice_bytes);
    }
    if (r.first_error == ErrorCode::OK) r.first_error = valid.code();
    if (--r.outstanding == 0) {
      FinishRequest(*b, p.request, r, TransferState::FAILED, r.first_error);
    }
    return;
  }
  if (p.slice < 0) r.outstanding = 0;  // the parked request becomes its slices
  else --r.outstanding;                 // the parked slice becomes its re-run
  Outgoing out;
  BuildSlices(*b, p.batch, p.request, p.range, seg->peer, local, *remote, p.slice, out);
  SendSlices(*b, out, {}, 0);
}

void TransferEngine::FinishRequest(Batch& b, uint32_t batch_index, RequestState& r,
                                   TransferState state, ErrorCode error) {
  TIDAL_ASSERT(r.status.state == TransferState::PENDING);
  TIDAL_ASSERT(state != TransferState::PENDING);
  TIDAL_ASSERT((state == TransferState::COMPLETED) == (error == ErrorCode::OK));
  TIDAL_ASSERT(state != TransferState::COMPLETED || r.status.bytes_transferred == r.length);
  r.status.state = state;
  r.status.error = error;
  switch (state) {
    case TransferState::COMPLETED:
      ++stats_.requests_completed;
      stats_.bytes_completed += r.length;
      break;
    case TransferState::TIMED_OUT: ++stats_.requests_timed_out; break;
    default: ++stats_.requests_failed; break;
  }
  TIDAL_ASSERT(b.pending > 0);
  if (--b.pending == 0) {
    for (TimerId t : b.timers) env_.CancelTimer(t);
    b.timers.clear();
    for (auto h : b.waiters) env_.Post([h]() { h.resume(); });
    b.waiters.clear();
  }
  (void)batch_index;
}

void TransferEngine::OnDeadline(uint64_t batch_value, uint32_t first, uint32_t count) {
  Batch* b = FindBatch(BatchId{batch_value});
  if (b == nullptr) return;
  for (uint32_t i = first; i < first + count && i < b->requests.size(); ++i) {
    RequestState& r = b->requests[i];
    if (r.status.state != TransferState::PENDING) continue;
    TIDAL_REACHABLE("engine.request_timed_out");
    FinishRequest(*b, i, r, TransferState::TIMED_OUT, ErrorCode::TRANSFER_TIMEOUT);
    CancelSlices(r);
  }
}

void TransferEngine::CancelSlices(const RequestState& r) {
  // The slices still complete (after Cancel at the latest) for the in-flight accounting;
  // their results no longer change the request.
  auto cancel = [this](uint64_t id) {
    const Slice& s = slices_[IndexOf(id)];
    if (s.live && s.generation == GenerationOf(id)) (void)transport_->Cancel(id);
  };
  if (r.tasks.empty()) {
    cancel(r.single_task);
  } else {
    for (uint64_t id : r.tasks) cancel(id);
  }
}

Result<TransferStatus> TransferEngine::GetStatus(BatchId batch, size_t index) const {
  const Batch* b = FindBatch(batch);
  if (b == nullptr) return Status(ErrorCode::INVALID_PARAMS, "batch id is not allocated");
  if (index >= b->requests.size()) {
    return Status(ErrorCode::INVALID_PARAMS, "request index " + std::to_string(index) +
                                                 " was never submitted to this batch");
  }
  return b->requests[index].status;
}

Result<size_t> TransferEngine::BatchSize(BatchId batch) const {
  const Batch* b = FindBatch(batch);
  if (b == nullptr) return Status(ErrorCode::INVALID_PARAMS, "batch id is not allocated");
  return b->requests.size();
}

Task<Status> TransferEngine::WaitBatch(BatchId batch) {
  Batch* b = FindBatch(batch);
  if (b == nullptr) co_return Status(ErrorCode::INVALID_PARAMS, "batch id is not allocated");
  if (b->pending > 0) co_await BatchDone{b};
  co_return Status();
}

Status TransferEngine::CancelBatch(BatchId batch) {
  Batch* b = FindBatch(batch);
  if (b == nullptr) return Status(ErrorCode::INVALID_PARAMS, "batch id is not allocated");
  for (uint32_t i = 0; i < b->requests.size() && b->live; ++i) {
    RequestState& r = b->requests[i];
    if (r.status.state != TransferState::PENDING) continue;
    TIDAL_REACHABLE("engine.pending_request_canceled");
    FinishRequest(*b, i, r, TransferState::CANCELED, ErrorCode::TRANSFER_CANCELED);
    CancelSlices(r);
  }
  return Status();
}

bool TransferEngine::CopyNow(const TransferRequest& r, TransferStatus* st) {
  if (r.length == 0 || r.length > options_.slice_bytes) return false;
  const SegmentEntry* seg = nullptr;
  RegionInfo local;
  const RegionInfo* remote = nullptr;
  if (!ValidateRequest(r, &seg, &local, &remote).ok()) return false;  // reported there
  TransportTask t;
  t.kind = r.op == TransferOp::kRead ? TransportTask::Kind::kRead : TransportTask::Kind::kWrite;
  t.peer = seg->peer;
  t.local_addr = r.local_addr;
  t.remote_addr = r.remote_addr;
  t.length = r.length;
  t.rkey = remote->rkey;
  if (!transport_->TryCopyNow(t)) return false;
  ++stats_.requests_submitted;
  ++stats_.slices_submitted;
  ++stats_.requests_completed;
  ++stats_.copies_now;
  stats_.bytes_completed += r.length;
  *st = TransferStatus{TransferState::COMPLETED, r.length, ErrorCode::OK};
  return true;
}

Task<std::vector<TransferStatus>> TransferEngine::TransferSync(
    std::span<const TransferRequest> requests) {
  std::vector<TransferStatus> out(requests.size());
  if (requests.empty()) co_return out;
  // Each request the transport can finish now is run that way; the rest, in their order,
  // take one batch.
  size_t copied = 0;
  if (transport_->Capabilities().copies_now) {
    for (size_t i = 0; i < requests.size(); ++i) copied += CopyNow(requests[i], &out[i]) ? 1 : 0;
  }
  if (copied == requests.size()) co_return out;
  std::span<const TransferRequest> todo = requests;
  std::vector<TransferRequest> rest;
  std::vector<size_t> at;  // where each of `rest` goes in `out`
  if (copied != 0) {
    for (size_t i = 0; i < requests.size(); ++i) {
      if (out[i].state == TransferState::COMPLETED) continue;
      rest.push_back(requests[i]);
      at.push_back(i);
    }
    todo = rest;
  }
  Result<BatchId> batch = AllocateBatch(todo.size());
  if (!batch.ok()) {
    for (size_t i = 0; i < todo.size(); ++i) {
      out[at.empty() ? i : at[i]] = {TransferState::FAILED, 0, batch.code()};
    }
    co_return out;
  }
  SubmitTo(*batch, todo, {});
  // Awaited here rather than through WaitBatch: no second coroutine frame per call.
  if (Batch* b = FindBatch(*batch); b != nullptr && b->pending > 0) co_await BatchDone{b};
  for (size_t i = 0; i < todo.size(); ++i) {
    Result<TransferStatus> s = GetStatus(*batch, i);
    TIDAL_ASSERT(s.ok());
    TIDAL_ASSERT(s->state != TransferState::PENDING);
    out[at.empty() ? i : at[i]] = *s;
  }
  Status freed = FreeBatch(*batch);
  TIDAL_ASSERT(freed.ok());
  co_return out;
}

Task<Status> TransferEngine::Probe(SegmentHandle handle) {
  SegmentEntry* e = FindSegment(handle);
  if (e == nullptr) co_return Status(ErrorCode::SEGMENT_NOT_FOUND, "segment handle is stale");
  if (e->dead) co_return Status(ErrorCode::PEER_UNREACHABLE, "peer was found unreachable");
  const uint64_t id = AllocSlice();
  Slice& slice = slices_[IndexOf(id)];
  slice.batch = kProbeBatch;
  slice.segment = IndexOf(handle.value);
  slice.local_region = 0;
  TransportTask t;
  t.task_id = id;
  t.kind = TransportTask::Kind::kProbe;
  t.peer = e->peer;
  Status accepted;
  transport_->Submit(std::span<const TransportTask>(&t, 1), std::span<Status>(&accepted, 1));
  if (!accepted.ok()) {
    slice.live = false;
    ++slice.generation;
    free_slices_.push_back(IndexOf(id));
    co_return accepted;
  }
  Waiter waiter(env_);
  probes_[id] = &waiter;
  std::weak_ptr<bool> alive = alive_;
  waiter.timer = env_.ScheduleAfter(options_.probe_timeout_ns, [this, alive, id]() {
    auto a = alive.lock();
    if (!a || !*a) return;
    auto it = probes_.find(id);
    if (it == probes_.end()) return;
    Waiter* w = it->second;
    probes_.erase(it);
    TIDAL_REACHABLE("engine.probe_timed_out");
    w->done.Set(Status(ErrorCode::TRANSFER_TIMEOUT, "peer did not answer the probe in time"));
    (void)transport_->Cancel(id);
  });
  Status result = co_await waiter.done.Wait();
  if (result.code() == ErrorCode::PEER_UNREACHABLE) MarkPeerDead(IndexOf(handle.value));
  co_return result;
}

Status TransferEngine::Notify(SegmentHandle handle, std::string_view payload) {
  return Notify(handle, 0, payload);
}

Status TransferEngine::Notify(SegmentHandle handle, uint64_t channel, std::string_view payload) {
  if (!transport_->Capabilities().notifications) {
    return Status(ErrorCode::UNSUPPORTED, "transport has no notifications");
  }
  SegmentEntry* e = FindSegment(handle);
  if (e == nullptr) return Status(ErrorCode::SEGMENT_NOT_FOUND, "segment handle is stale");
  if (e->dead) return Status(ErrorCode::PEER_UNREACHABLE, "peer was found unreachable");
  return transport_->SendNotify(e->peer, WithChannel(channel, payload));
}

void TransferEngine::SetNotifyHandler(std::function<void(Notification)> handler) {
  SetNotifyHandler(0, std::move(handler));
}

void TransferEngine::SetNotifyHandler(uint64_t channel,
                                      std::function<void(Notification)> handler) {
  if (!handler) {
    notify_handlers_.erase(channel);
    return;
  }
  notify_handlers_[channel] =
      std::make_shared<std::function<void(Notification)>>(std::move(handler));
  auto queued = queued_notifications_.find(channel);
  if (queued == queued_notifications_.end()) return;
  std::vector<Notification> pending = std::move(queued->second);
  queued_notifications_.erase(queued);
  queued_count_ -= pending.size();
  for (Notification& n : pending) Deliver(channel, std::move(n));
}

std::vector<Notification> TransferEngine::TakeNotifications(uint64_t channel) {
  auto queued = queued_notifications_.find(channel);
  if (queued == queued_notifications_.end()) return {};
  std::vector<Notification> out = std::move(queued->second);
  queued_notifications_.erase(queued);
  queued_count_ -= out.size();
  return out;
}

void TransferEngine::Deliver(uint64_t channel, Notification n) {
  auto h = notify_handlers_.find(channel);
  if (h != notify_handlers_.end()) {
    // A copy of the pointer: the handler may replace or remove itself.
    std::shared_ptr<std::function<void(Notification)>> handler = h->second;
    (*handler)(std::move(n));
    return;
  }
  if (queued_count_ >= options_.max_queued_notifications) {
    ++stats_.notifications_dropped;
    return;
  }
  queued_notifications_[channel].push_back(std::move(n));
  ++queued_count_;
}

void TransferEngine::PostDrain() {
  if (drain_posted_.exchange(true)) return;
  std::weak_ptr<bool> alive = alive_;
  env_.Post([this, alive]() {
    auto a = alive.lock();
    if (!a || !*a) return;
    drain_posted_.store(false);
    Drain();
  });
}

void TransferEngine::Drain() {
  DrainCompletions();
  TakeNotifies(/*deliver=*/true);
}

void TransferEngine::DrainInline() {
  ++stats_.inline_drains;
  DrainCompletions();
  TakeNotifies(/*deliver=*/false);
}

void TransferEngine::DrainCompletions() {
  for (;;) {
    const size_t n = transport_->PollCompletions(completion_buf_);
    for (size_t i = 0; i < n; ++i) OnSliceDone(completion_buf_[i]);
    if (n < completion_buf_.size()) break;
  }
}

void TransferEngine::TakeNotifies(bool deliver) {
  std::vector<Notification> incoming;
  transport_->PollNotifies(incoming, SIZE_MAX);
  for (Notification& n : incoming) {
    if (n.payload.size() < kChannelBytes) {
      ++stats_.notifications_dropped;  // not from an engine: no channel header
      continue;
    }
    const uint64_t channel = ChannelOf(n.payload);
    n.payload.erase(0, kChannelBytes);
    taken_notes_.emplace_back(channel, std::move(n));
  }
  if (taken_notes_.empty()) return;
  if (!deliver) {
    PostDrain();  // the loop hands them over, before anything taken after them
    return;
  }
  std::vector<std::pair<uint64_t, Notification>> notes = std::move(taken_notes_);
  taken_notes_.clear();
  for (auto& [channel, n] : notes) Deliver(channel, std::move(n));
}

void TransferEngine::OnSliceDone(const TransportCompletion& c) {
  const uint32_t index = IndexOf(c.task_id);
  TIDAL_ASSERT(index != 0 && index < slices_.size());
  Slice& slice = slices_[index];
  TIDAL_ASSERT_MSG(slice.live && slice.generation == GenerationOf(c.task_id),
                   "completion for a task that is not outstanding");
  const Slice done = slice;
  slice.live = false;
  ++slice.generation;
  free_slices_.push_back(index);
  if (done.local_region != 0) registry_.AddInFlight(done.local_region, -1);
  if (c.code == ErrorCode::PEER_UNREACHABLE) MarkPeerDead(done.segment);

  if (done.batch == kProbeBatch) {
    auto it = probes_.find(c.task_id);
    if (it == probes_.end()) return;  // timed out already
    Waiter* w = it->second;
    probes_.erase(it);
    env_.CancelTimer(w->timer);
    w->done.Set(c.code == ErrorCode::OK ? Status()
                                        : Status(c.code, "probe failed"));
    return;
  }
  Batch* b = FindBatch(BatchId{done.batch});
  if (b == nullptr) return;  // freed after it timed out or was canceled
  TIDAL_ASSERT(done.request < b->requests.size());
  RequestState& r = b->requests[done.request];
  if (r.status.state != TransferState::PENDING) return;
  TIDAL_ASSERT(r.outstanding > 0);
  if (c.code == ErrorCode::REMOTE_ACCESS_DENIED && !done.retried &&
      options_.planted_bug != EngineBug::kNoDescriptorRefresh) {
    // The peer refused the key or the window: it may have unregistered or re-registered
    // the region since we copied its descriptor. Look it up again and re-run this slice
    // once; it stays outstanding meanwhile.
    SegmentEntry* e = done.segment < segments_.size() ? segments_[done.segment].get() : nullptr;
    if (e != nullptr && e->live && !e->dead) {
      TransferRequest range;
      range.op = done.kind == TransportTask::Kind::kRead ? TransferOp::kRead : TransferOp::kWrite;
      range.local_addr = done.local_addr;
      range.length = done.length;
      range.segment = SegmentHandle{Pack(done.segment, e->generation)};
      range.remote_addr = done.remote_addr;
      Park(done.segment, Parked{done.batch, done.request, static_cast<int>(done.index), range});
      return;
    }
  }
  // A transport that breaks its contract (more bytes than asked, OK with fewer) must not
  // make a request look complete: clamp and call it short. ContractChecker reports it.
  const uint64_t moved = std::min(c.bytes_transferred, done.length);
  ErrorCode code = c.code;
  if (code == ErrorCode::OK && moved != done.length) code = ErrorCode::TRANSFER_INCOMPLETE;
  if (r.moved.empty()) {
    r.status.bytes_transferred = moved;
  } else {
    TIDAL_ASSERT(done.index < r.moved.size() && r.moved[done.index] == RequestState::kNotDone);
    r.moved[done.index] = moved;
    r.status.bytes_transferred = r.Prefix(options_.slice_bytes);
    if (options_.planted_bug == EngineBug::kPrefixOvercount) {
      uint64_t sum = 0;  // planted: every slice that moved, wherever it sits
      for (uint64_t m : r.moved) sum += m == RequestState::kNotDone ? 0 : m;
      r.status.bytes_transferred = sum;
    }
  }
  TIDAL_ASSERT(r.status.bytes_transferred <= r.length);
  if (code != ErrorCode::OK && r.first_error == ErrorCode::OK) r.first_error = code;
  if (--r.outstanding > 0) return;
  if (r.first_error == ErrorCode::OK) {
    FinishRequest(*b, done.request, r, TransferState::COMPLETED, ErrorCode::OK);
  } else {
    FinishRequest(*b, done.request, r, TransferState::FAILED, r.first_error);
  }
}

}  // namespace tidal
