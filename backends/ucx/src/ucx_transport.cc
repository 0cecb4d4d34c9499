#include "tidal/backends/ucx/ucx_transport.h"

#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>
#include <ucp/api/ucp.h>

#include <boost/container/small_vector.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "tidal/assert.h"
#include "tidal/backends/real_env.h"
#include "tidal/codec.h"
#include "tidal/thread_annotations.h"

namespace tidal::backends::ucx {

namespace {

// A peer's region mapped into this process (one-sided mode) is entered in the page tables
// in a few calls, not one page fault per page on first touch: on a virtual machine a fault
// on shared memory cost more than the small put that took it. Best effort (the call needs
// Linux 5.14; without it the pages fault in as they are touched). Done off the worker, a
// chunk at a time (Impl::PrefaultLoop).
void Prefault(void* mapped, uint64_t length) {
  const auto page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t start = reinterpret_cast<uint64_t>(mapped) & ~(page - 1);
  const uint64_t end = reinterpret_cast<uint64_t>(mapped) + length;
#ifdef MADV_POPULATE_WRITE
  (void)madvise(reinterpret_cast<void*>(start), end - start, MADV_POPULATE_WRITE);
#else
  (void)start;
  (void)end;
#endif
}

// Active-message ids. A request names the initiator's operation by a sequence number of
// the initiator's own (never the caller's task id, which may be reused), and the answer
// carries it back.
enum AmId : unsigned {
  kWriteReq = 1,  // header ReqHeader, data: the bytes
  kWriteAck = 2,  // header AckHeader
  kReadReq = 3,   // header ReqHeader
  kReadResp = 4,  // header AckHeader, data: the bytes when code is OK
  kPing = 5,      // header AckHeader (code unused)
  kPong = 6,      // header AckHeader
  kNotify = 7,    // header none, data: Str(source) + payload
  // One-sided mode (UcxTransportOptions::one_sided).
  kKeyReq = 8,     // header KeyReqHeader
  kKeyResp = 9,    // header KeyRespHeader, data: the packed UCX rkey when code is OK
  kRevoke = 10,    // header RevokeHeader (uid: the target)
  kRevokeAck = 11  // header RevokeHeader (uid: the holder)
};

struct ReqHeader {
  uint64_t seq;
  uint64_t rkey;
  uint64_t addr;
  uint64_t length;
};
struct AckHeader {
  uint64_t seq;
  int32_t code;
  uint32_t reserved;
};

// One-sided mode: an initiator asks the target for the packed UCX rkey behind one of its
// keys (uid: the initiator; the data: its worker address, so the target can reach it on an
// endpoint of its own, with error handling, to revoke the key later).
struct KeyReqHeader {
  uint64_t rkey;
  uint64_t uid;
};
// The answer: the region's bounds (every range presented under this key must lie inside
// them) and, as the message's data, the packed rkey. uid: the target.
struct KeyRespHeader {
  uint64_t rkey;
  uint64_t uid;
  uint64_t base;
  uint64_t length;
  int32_t code;
  uint32_t reserved;
};
struct RevokeHeader {
  uint64_t rkey;
  uint64_t uid;
};
constexpr size_t kMaxPackedKey = 1 << 16;
// One-sided: the sizes UcxBug::kWriteDropsLastByte corrupts (what the active-message path
// receives eagerly, with its data, over the transports the test uses).
constexpr uint64_t kPlantedEagerMax = 8192;

constexpr uint32_t kAddressMagic = 0x58435554;  // "TUCX"
constexpr size_t kMaxWorkerAddress = 1 << 16;

// Whether UCX_TLS names only transports without a peer failure handler in UCX 1.13
// (shared memory, self), over which UCP refuses UCP_ERR_HANDLING_MODE_PEER, logging an
// ERROR line ("no peer failure handler") for each refusal.
bool SharedMemoryOnly(const char* tls) {
  if (tls == nullptr || *tls == '\0' || *tls == '^') return false;
  static constexpr std::string_view kNoPeerFailure[] = {"sm",   "shm", "posix", "sysv",
                                                        "self", "cma", "knem",  "xpmem"};
  std::string_view rest(tls);
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    std::string_view name = rest.substr(0, comma);
    while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    if (std::find(std::begin(kNoPeerFailure), std::end(kNoPeerFailure), name) ==
        std::end(kNoPeerFailure)) {
      return false;
    }
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
  }
  return true;
}

// Whether UCP accepts UCP_ERR_HANDLING_MODE_PEER over the transports UCX_TLS selects. Not
// asked where UCX_TLS names shared memory only (UCX would log its refusal as an ERROR in
// every such process); elsewhere learnt from the first refusal and shared by the process,
// so UCX logs the refusal once.
std::atomic<bool> peer_mode{!SharedMemoryOnly(std::getenv("UCX_TLS"))};

uint64_t MonoNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

// What a failed UCX request means for a task.
ErrorCode FromUcs(ucs_status_t s) {
  switch (s) {
    case UCS_OK: return ErrorCode::OK;
    case UCS_ERR_CANCELED: return ErrorCode::TRANSFER_CANCELED;
    case UCS_ERR_UNREACHABLE:
    case UCS_ERR_CONNECTION_RESET:
    case UCS_ERR_ENDPOINT_TIMEOUT:
    case UCS_ERR_REJECTED:
    case UCS_ERR_TIMED_OUT:
    case UCS_ERR_NOT_CONNECTED:
    case UCS_ERR_IO_ERROR: return ErrorCode::PEER_UNREACHABLE;
    default: return ErrorCode::TRANSFER_FAIL;
  }
}

std::string EncodeAddress(uint64_t uid, std::string_view worker) {
  ByteWriter w;
  w.U32(kAddressMagic);
  w.U64(uid);
  w.Str(worker);
  return w.Take();
}

bool DecodeAddress(std::string_view blob, uint64_t* uid, std::string* worker) {
  ByteReader r(blob);
  uint32_t magic = 0;
  return r.U32(&magic) && magic == kAddressMagic && r.U64(uid) &&
         r.Str(worker, kMaxWorkerAddress) && !worker->empty() && r.remaining() == 0;
}

}  // namespace

std::optional<bool> UcxTransportOptions::SwitchFromEnvironment(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return std::nullopt;
  if (std::string_view(v) == "1") return true;
  if (std::string_view(v) == "0") return false;
  return std::nullopt;
}

bool UcxTransportOptions::OneSidedFromEnvironment() {
  return SwitchFromEnvironment("TIDAL_UCX_ONE_SIDED").value_or(false);
}

bool UcxTransportOptions::LoopDrivesFromEnvironment() {
  if (std::optional<bool> set = SwitchFromEnvironment("TIDAL_UCX_LOOP_DRIVES")) return *set;
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  const int usable = sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : 0;
  return usable >= 4;
}

bool UcxTransportOptions::TransportMemoryFromEnvironment() {
  return SwitchFromEnvironment("TIDAL_UCX_TRANSPORT_MEMORY").value_or(false);
}

struct UcxTransport::Impl {
  struct Region {
    uint64_t addr = 0;
    uint64_t length = 0;
    uint64_t rkey = 0;
    ucp_mem_h memh = nullptr;
    uint64_t local_in_flight = 0;   // this node's tasks using it as their local range
    uint64_t remote_in_flight = 0;  // peers' WRITEs landing in it / READ answers from it
    // One-sided mode: the packed rkey peers are granted, and the peers it was granted to.
    std::string packed;
    struct Holder {
      uint64_t uid;  // a peer of this transport's (peers[]), reached on its own endpoint
    };
    std::vector<Holder> holders;
    bool owned = true;  // memh is this region's own (not an AllocateHostMemory block's)
  };
  // One-sided mode, at the initiator: a peer region's key as the peer granted it. While
  // `handle` is null the request for it is in flight and `waiting` holds the ops it holds
  // up. `in_flight` counts puts and gets UCX still has on it: a revoked key is dropped,
  // and the revocation acknowledged, when it reaches 0.
  struct RemoteKey {
    PeerId peer = 0;
    uint64_t rkey = 0;
    ucp_rkey_h handle = nullptr;
    uint64_t base = 0;
    uint64_t length = 0;
    uint64_t in_flight = 0;
    // Where the peer's memory is mapped into this process (ucp_rkey_ptr: a shared-memory
    // segment UCX allocated), the address of `base` here: the key is direct, a put or get
    // is a CPU copy. Null otherwise: the ops under this
    // key take the active-message path, checked by the target: where UCX has no direct
    // path to the memory it emulates RMA with active messages anyway (over tcp, and over
    // shared memory for heap memory between processes, where UCX 1.13's emulation also
    // trips its own assertion), and the rendezvous of the active-message path moves large
    // data zero-copy wherever UCX can.
    uint8_t* mapped = nullptr;
    bool revoked = false;
    ucp_ep_h ack_ep = nullptr;  // revoked: where the acknowledgement goes
    std::vector<uint64_t> waiting;
    // The task's remote range lies inside the region this key was granted for.
    bool Covers(const TransportTask& t) const {
      return t.remote_addr >= base && t.length <= length &&
             t.remote_addr - base <= length - t.length;
    }
  };
  struct Allocation {
    uint64_t length = 0;
    ucp_mem_h memh = nullptr;
  };
  struct Peer {
    uint64_t uid = 0;
    std::string worker_address;
    ucp_ep_h ep = nullptr;
    bool failed = false;
  };
  struct Op {
    TransportTask task;
    uint64_t seq = 0;
    uint64_t local_region = 0;  // start of the local region (0 for a probe)
    bool started = false;       // handed to UCX
    bool send_active = false;   // UCX may still read the source buffer (WRITE)
    bool receiving = false;     // UCX is writing the local buffer (READ)
    bool acked = false;         // WRITE: the target answered (one-sided: the flush ended)
    ErrorCode ack_code = ErrorCode::OK;
    bool canceled = false;
    void* request = nullptr;    // the active send or receive, for ucp_request_cancel
    uint64_t deadline_ns = 0;   // probes
  };
  // Context of one UCX operation (freed by its callback, or by the caller when UCX
  // completed it inline). It owns the active-message header and body: UCX reads them
  // until the send completes, not only during the call.
  struct Ctx {
    Ctx(Impl* i, uint64_t s, uint64_t r, ucp_ep_h e) : impl(i), seq(s), region(r), reply_ep(e) {}
    Impl* impl;
    uint64_t seq;        // initiator operation (a revocation: the holder's uid)
    uint64_t region;     // target region start (target-side callbacks; one-sided: key id)
    ucp_ep_h reply_ep;   // where the target answers
    ReqHeader req{};
    AckHeader ack{};
    std::string body;
  };
  struct EpCtx {
    Impl* impl;
    PeerId peer;
  };

  explicit Impl(UcxTransportOptions o) : options(o) {}
  ~Impl() {
    for (Ctx* c : spare_ctx) delete c;
  }

  // ---- set-up and the progress thread ---------------------------------------------
  Status Start(const TransportInstall& install);
  void Loop();
  void Stop();
  void Destroy();
  // Runs queued commands. Caller holds wmu.
  void RunCommands();
  // Queues `fn` for the progress thread and wakes it if it sleeps (or is about to): the
  // loop sets `sleeping` before it looks at the queue a last time, under mu, before it
  // blocks, so a command queued after that look sees `sleeping` and signals.
  void Post(std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> lock(mu);
      commands.push_back(std::move(fn));
      queued.fetch_add(1);
    }
    if (worker != nullptr && (sleeping.load() || stop.load())) {
      ucp_worker_signal(worker);
      signals.fetch_add(1, std::memory_order_relaxed);
    }
  }
  // Runs `fn` (worker calls) on the calling thread when the worker is free, after any
  // commands queued before it, so a request leaves without waking the progress thread
  // first; then wakes the progress thread if it sleeps, so the answer is progressed
  // while it travels. When the progress thread still holds the worker after TakeWorker's
  // bounded wait, `fn` is queued for it
  // (it is awake). Never called with wmu held (UCX callbacks use Post).
  template <class Fn>
  void Run(Fn&& fn) {
    std::unique_lock<std::mutex> wl;
    if (!TakeWorker(wl)) {
      Post(std::function<void()>(std::forward<Fn>(fn)));
      return;
    }
    fn();
    GiveWorker(wl);
  }
  static constexpr int kTakeWorkerSpins = 64;  // TakeWorker's bounded wait, in pauses
  static void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  }
  // Run's two halves, for a caller that decides what to do by whether it got the worker
  // (Submit): takes the worker if it is free and the transport is not stopping, and runs
  // the commands queued before; false leaves `wl` empty (the caller posts its work).
  bool TakeWorker(std::unique_lock<std::mutex>& wl) {
    wl = std::unique_lock<std::mutex>(wmu, std::try_to_lock);
    // The progress thread holds the worker for one round of progress at a time (it never
    // blocks holding it): wait that round out rather than hand the work over, which would
    // move the task's start and completion to the other thread (a cross-thread round trip
    // of microseconds) and keep that thread polling. Measured: an idle progress thread
    // waking for its idle_poll_ns round took the worker from 1.4 % of a 4 KiB WRITE loop's
    // Submits, each then many times slower. Bounded, for a round that is long (a large
    // copy) or a holder that lost its core.
    for (int i = 0; i < kTakeWorkerSpins && !wl.owns_lock(); ++i) {
      CpuRelax();
      (void)wl.try_lock();
    }
    if (!wl.owns_lock()) return false;
    if (stop.load()) {
      wl.unlock();
      return false;
    }
    RunCommands();
    return true;
  }
  // Gives the worker back after direct work, and wakes the progress thread if an answer
  // is to be waited for.
  void GiveWorker(std::unique_lock<std::mutex>& wl) {
    Bump(direct);
    wl.unlock();
    // Nothing left for UCX (a one-sided put into mapped memory, flushed and completed on
    // this thread): no answer to wait for, so the progress thread need not poll for one.
    if (busy.load() == 0) return;
    // The env's loop polls the worker between its callbacks (RealEnv::AddLoopPoller) and
    // hands the polling back before it blocks (LoopBlocks): the answer is left to it, and
    // the progress thread stands by meanwhile (Loop). Callers run on that loop.
    if (loop_polls.load(std::memory_order_relaxed)) {
      if (!loop_drives.load(std::memory_order_relaxed)) loop_drives.store(true);
      return;
    }
    // The answer (and anything UCX could not send inline: a rendezvous, a full send queue)
    // needs the progress thread.
    MarkActivity();
  }
  // Activity the progress thread is to poll for (a send's answer still to come): a thread
  // that is awake sees the time and polls for spin_ns more without being woken; one that
  // is going to sleep (or sleeps) is woken. Both sides use sequentially consistent accesses
  // (the time, then `sleeping`; `sleeping`, then the time), so at least one sees the other.
  void MarkActivity() {
    last_activity_ns.store(MonoNs());
    if (sleeping.load()) {
      ucp_worker_signal(worker);
      signals.fetch_add(1, std::memory_order_relaxed);
    }
  }
  // Ends the loop-driven stretch (LoopBlocks, Stop): the progress thread leaves its
  // standby wait.
  void EndLoopDrive() {
    loop_drives.store(false);
    { std::lock_guard<std::mutex> sl(standby_mu); }
    standby_cv.notify_one();
  }
  void Ready() {
    if (install.on_ready) install.on_ready();
  }
  // The install's RealEnv calls this while its loop polls for a post (RealEnv::
  // AddSpinPoller): the waiting caller progresses the worker itself when it is free, so
  // an answer is taken, and its completion posted, on the thread that waits for it.
  //
  // Only while this node has tasks of its own outstanding: the waiting thread is there for
  // their answers. A node that only serves peers' accesses (the target of a transfer) is
  // left to its progress thread, which copies their data in parallel with the caller
  // instead of behind it (in the ucx fabric every node's transport is on the same loop).
  //
  // The loop also calls it while it is busy (idle = false: every few callbacks, and when
  // its ready work runs out), and LoopBlocks before it blocks. From a direct send that
  // left an answer to wait for (GiveWorker) until then, the loop drives the worker
  // (loop_drives): it takes the answers, and its peers' requests, between its own
  // callbacks, while the progress thread stands by without touching the worker. Two
  // threads polling one worker made every call of a busy loop slower (the worker lock,
  // UCX's queues and the op tables moving between their cores): on the 16-core host,
  // sixteen sessions' 4 KiB gets over active messages spent 14.5 us of loop time each,
  // where the same calls one-sided (nothing for the progress thread) spent 7.8.
  void PollFromCaller(bool idle) {
    if (stop.load()) return;
    if (own_ops.load(std::memory_order_relaxed) == 0 &&
        !loop_drives.load(std::memory_order_relaxed)) {
      return;
    }
    caller_poll_calls.fetch_add(1, std::memory_order_relaxed);
    std::unique_lock<std::mutex> wl(wmu, std::try_to_lock);
    if (!wl.owns_lock()) return;
    RunCommands();
    bool any = false;
    while (ucp_worker_progress(worker) != 0) any = true;
    caller_polls.fetch_add(1, std::memory_order_relaxed);
    if (any) {
      if (!loop_drives.load(std::memory_order_relaxed)) last_activity_ns.store(MonoNs());
    } else if (idle) {
      // Nothing yet: let a thread that shares this core run (the peer's progress thread,
      // which produces the answer; on two cores three threads may be polling).
      wl.unlock();
      std::this_thread::yield();
    }
  }
  // The env's loop is about to block: the progress thread takes the worker back, and
  // polls for spin_ns as after a direct send if answers are still to come.
  void LoopBlocks() {
    if (!loop_drives.load(std::memory_order_relaxed)) return;
    EndLoopDrive();
    loop_handbacks.fetch_add(1, std::memory_order_relaxed);
    if (busy.load() != 0) MarkActivity();
  }

  // ---- initiator ------------------------------------------------------------------
  void StartOp(uint64_t seq);
  void SendRequest(uint64_t seq, const TransportTask& t, ucp_ep_h ep);
  ucp_ep_h EnsureEp(PeerId peer);
  void FailPeer(PeerId peer);
  // Completes the op (erases it) and queues its completion. Caller holds mu.
  void CompleteLocked(uint64_t seq, ErrorCode code, uint64_t bytes) TIDAL_REQUIRES(mu);
  void Complete(uint64_t seq, ErrorCode code, uint64_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu);
      CompleteLocked(seq, code, bytes);
    }
    Ready();
  }
  void CheckProbes();
  Region* FindLocalLocked(uint64_t addr, uint64_t length) TIDAL_REQUIRES(mu);

  // ---- one-sided mode (worker lock held by the caller of each) ------------------------
  // The op's key is known: check its range and issue the put or get; else ask for the key.
  void StartOneSided(uint64_t seq, ucp_ep_h ep);
  // The op's key is granted, direct, and its range inside the region: counts the op on
  // the key, marks UCX as holding its buffer, and returns the key. Else false (nothing
  // changed; IssueChecked decides).
  bool TakeDirectLocked(Op& op, uint64_t* key_id, ucp_rkey_h* handle) TIDAL_REQUIRES(mu);
  // The same check and count for a task Submit issues before recording it (no op yet), or
  // TryCopyNow copies (`mapped`, when given: the task's remote address in this process).
  bool TakeDirectKeyLocked(const TransportTask& t, uint64_t* key_id, ucp_rkey_h* handle,
                           uint8_t** mapped = nullptr) TIDAL_REQUIRES(mu);
  // A key's op ended: one fewer in flight on it; a revoked key nothing uses any more is
  // taken out of the table and returned in *drop (the caller drops it, unlocked).
  struct Dropped {
    bool drop = false;
    ucp_rkey_h handle = nullptr;
    ucp_ep_h ack_ep = nullptr;
    uint64_t rkey = 0;
  };
  void ReleaseKeyLocked(uint64_t key_id, Dropped* drop) TIDAL_REQUIRES(mu);
  // A task Submit issues directly, between its checks and its record: if UCX finished it
  // inside the call it is never recorded (its completion is queued at once, under one
  // lock); else it is recorded as an op (with UCX's request) before any other UCX call,
  // so its callback, which needs the worker, finds it.
  struct DirectStart {
    uint64_t seq = 0;
    uint64_t key_id = 0;
    ucp_ep_h ep = nullptr;
    ucp_rkey_h handle = nullptr;
    Region* region = nullptr;
    TransportTask task;
  };
  void IssueDirect(const DirectStart& d);
  void EndDirect(const DirectStart& d, ucs_status_t s, void* request);
  // The UCX calls of a one-sided op (IssueRma's and IssueDirect's). Returns UCX's request
  // when the op is still in flight (the get, or the flush after the put; RmaDone, its
  // callback, ends it), else nullptr with the op's final status in *status.
  void* RmaCalls(uint64_t seq, uint64_t key_id, ucp_ep_h ep, ucp_rkey_h handle,
                 const TransportTask& t, ucs_status_t* status);
  // A put's flush or a get ended (inside the call or in its callback): the op completes
  // and the key is released, under one lock.
  void RmaDone(uint64_t seq, uint64_t key_id, ucs_status_t s);
  ucp_request_param_t RmaDoneParams(uint64_t seq, uint64_t key_id, Ctx** ctx);
  // A get's or flush's context, and its return: both happen with the worker held (the
  // call that issues it, the callback inside progress), so they share a list of spares
  // under wmu and a put allocates nothing once the transport is warm.
  Ctx* NewRmaCtx(uint64_t seq, uint64_t key_id);
  void FreeRmaCtx(Ctx* c);
  void IssueChecked(uint64_t seq);
  void IssueRma(uint64_t seq, uint64_t key_id, ucp_ep_h ep, ucp_rkey_h handle,
                const TransportTask& t);
  // Prefaulting of peers' mapped regions, on a thread of its own (started with the first
  // mapped key): a key's grant queues its range, and the thread enters it in the page
  // tables 16 MiB at a time, each chunk under prefault_mu and only while the key is held
  // and not revoked. A key's UCX handle (which owns the mapping) is destroyed under
  // prefault_mu, so no chunk runs on a range UCX has unmapped. It used to run inside the
  // key's grant, on the thread holding the worker: for a 3 GiB holder segment that held
  // the worker, and the first put, for about a quarter of a second.
  void QueuePrefault(uint64_t key_id, void* mapped, uint64_t length);
  void PrefaultLoop();
  void StopPrefault();
  void DestroyRkey(ucp_rkey_h handle) {
    std::lock_guard<std::mutex> pl(prefault_mu);
    ucp_rkey_destroy(handle);
  }
  // Drops a revoked key nothing uses any more and acknowledges the revocation.
  void DropRevoked(ucp_rkey_h handle, ucp_ep_h ack_ep, uint64_t rkey);
  PeerId PeerByUidLocked(uint64_t uid, bool* found) TIDAL_REQUIRES(mu);
  void FailWaiting(std::vector<uint64_t> seqs, ErrorCode code);
  ucs_status_t OnKeyReq(const void* header, size_t header_length, void* data, size_t length,
                        const ucp_am_recv_param_t* param);
  ucs_status_t OnKeyResp(const void* header, size_t header_length, void* data, size_t length,
                         const ucp_am_recv_param_t* param);
  ucs_status_t OnRevoke(const void* header, size_t header_length);
  ucs_status_t OnRevokeAck(const void* header, size_t header_length);
  void DropHolder(uint64_t rkey, uint64_t uid);

  // ---- target and answers (AM handlers, on the progress thread) ---------------------
  ucs_status_t OnWriteReq(const void* header, size_t header_length, void* data, size_t length,
                          const ucp_am_recv_param_t* param);
  ucs_status_t OnReadReq(const void* header, size_t header_length,
                         const ucp_am_recv_param_t* param);
  ucs_status_t OnWriteAck(const void* header, size_t header_length);
  ucs_status_t OnReadResp(const void* header, size_t header_length, void* data, size_t length,
                          const ucp_am_recv_param_t* param);
  ucs_status_t OnPing(const void* header, size_t header_length, const ucp_am_recv_param_t* param);
  ucs_status_t OnPong(const void* header, size_t header_length);
  ucs_status_t OnNotify(void* data, size_t length);
  // Checks a peer's access against the region table; on success counts it in flight.
  ErrorCode Admit(const ReqHeader& h, uint64_t* region);
  void ReleaseRemote(uint64_t region);
  void SendAnswer(ucp_ep_h ep, unsigned id, uint64_t seq, ErrorCode code);
  // Sends an active message whose header and data live in `ctx` (UCX reads them until the
  // send completes), which is freed then; while UCX holds it, it counts in `busy`. Caller
  // holds the worker.
  void SendOwned(ucp_ep_h ep, unsigned id, Ctx* ctx, const void* header, size_t header_length,
                 const void* data, size_t length);
  void WriteLanded(uint64_t region, ucp_ep_h reply_ep, uint64_t seq, ErrorCode code);

  UcxTransportOptions options;
  TransportInstall install;
  uint64_t uid = 0;
  ucp_context_h context = nullptr;
  ucp_worker_h worker = nullptr;
  std::string worker_address;
  int efd = -1;
  std::thread thread;
  // Held by whichever thread calls UCP (the worker is UCS_THREAD_MODE_SERIALIZED): the
  // progress thread while it progresses, runs commands or arms; a caller submitting
  // directly (Run) or mapping memory. Order: wmu before mu.
  std::mutex wmu;
  std::vector<Ctx*> spare_ctx;  // under wmu (see NewRmaCtx)
  // See QueuePrefault. Order: prefault_mu before mu; never taken with mu held.
  std::mutex prefault_mu;
  std::condition_variable prefault_cv;
  struct PrefaultJob {
    uint64_t key_id = 0;
    uint64_t addr = 0;
    uint64_t length = 0;
  };
  std::deque<PrefaultJob> prefault_jobs TIDAL_GUARDED_BY(prefault_mu);
  bool prefault_stop TIDAL_GUARDED_BY(prefault_mu) = false;
  std::thread prefault_thread;  // started and joined under prefault_mu's protocol above
  // Counters only the holder of wmu writes (direct, puts, gets): a plain increment, no
  // locked instruction; stats() reads them from any thread.
  static void Bump(std::atomic<uint64_t>& c) {
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  std::atomic<bool> sleeping{false};  // the progress thread is (about to be) in poll
  std::atomic<uint64_t> direct{0};    // Run calls done on the caller's thread
  // The last direct send (Run): the progress thread polls for spin_ns after it, as after
  // its own last event, so the answer is taken without an event-fd wake-up.
  std::atomic<uint64_t> last_activity_ns{0};
  std::atomic<uint64_t> signals{0};   // direct sends that had to wake the progress thread
  std::atomic<uint64_t> own_ops{0};            // ops.size(), for PollFromCaller
  std::atomic<uint64_t> caller_poll_calls{0};  // PollFromCaller calls that polled
  std::atomic<uint64_t> caller_polls{0};  // PollFromCaller rounds that held the worker
  // The loop-driven mode (PollFromCaller): a loop poller is registered (loop_polls); the
  // loop drives the worker now (loop_drives, written on the loop's thread only); the
  // progress thread waits on standby_cv meanwhile, and looks every standby_ns anyway.
  std::atomic<bool> loop_polls{false};
  std::atomic<bool> loop_drives{false};
  std::mutex standby_mu;
  std::condition_variable standby_cv;
  std::atomic<uint64_t> standby_waits{0};   // the progress thread's waits while the loop drove
  std::atomic<uint64_t> standby_rounds{0};  // its rounds after such a wait ran out
  std::atomic<uint64_t> loop_handbacks{0};  // LoopBlocks calls that handed the worker back
  RealEnv* poll_env = nullptr;            // where PollFromCaller is registered
  uint64_t poller_id = 0;
  std::atomic<uint64_t> spin_rounds{0};  // progress rounds made while polling (not woken)
  std::atomic<bool> stop{false};
  std::atomic<bool> crashed{false};
  // Outstanding ops + target in-flight + answers and notifications UCX has not sent yet:
  // while non-zero the progress thread never blocks longer than busy_poll_ns.
  std::atomic<uint64_t> busy{0};

  mutable std::mutex mu;
  std::deque<std::function<void()>> commands TIDAL_GUARDED_BY(mu);
  std::atomic<uint64_t> queued{0};  // commands.size(), read without mu
  std::atomic<uint64_t> probes{0};  // outstanding probes (their deadlines need checking)
  std::map<uint64_t, Region> regions TIDAL_GUARDED_BY(mu);       // by start address
  std::unordered_map<uint64_t, uint64_t> region_by_key TIDAL_GUARDED_BY(mu);
  std::vector<Peer> peers TIDAL_GUARDED_BY(mu);
  std::vector<std::unique_ptr<EpCtx>> ep_ctx;                    // progress thread only
  std::map<uint64_t, Op> ops TIDAL_GUARDED_BY(mu);               // by seq
  std::unordered_map<uint64_t, uint64_t> seq_by_task TIDAL_GUARDED_BY(mu);
  // Task ids Submit is issuing directly, not yet recorded or completed (the worker's
  // holder's, at most one Submit's worth), and those of them Cancel asked to stop.
  std::vector<uint64_t> issuing TIDAL_GUARDED_BY(mu);
  std::vector<uint64_t> issuing_canceled TIDAL_GUARDED_BY(mu);
  std::deque<TransportCompletion> completions TIDAL_GUARDED_BY(mu);
  std::deque<Notification> notifies TIDAL_GUARDED_BY(mu);
  // Their sizes, read without mu: a poll that finds nothing takes no lock. Written under
  // mu before the Ready() that announces them, so a drain after that Ready sees them.
  std::atomic<size_t> completion_count{0};
  std::atomic<size_t> notify_count{0};
  // Nodes of finished ops kept for the next ones (at most kSpareNodes of each), so a
  // task's bookkeeping allocates nothing once the transport is warm.
  static constexpr size_t kSpareNodes = 64;
  std::vector<decltype(ops)::node_type> spare_ops TIDAL_GUARDED_BY(mu);
  std::vector<decltype(seq_by_task)::node_type> spare_seqs TIDAL_GUARDED_BY(mu);
  // Inserts (key, value) into `map` in a spare node if there is one.
  template <class Map>
  static typename Map::iterator InsertReusing(Map& map, std::vector<typename Map::node_type>& spares,
                                              typename Map::key_type key,
                                              typename Map::mapped_type value) {
    if (spares.empty()) return map.try_emplace(key, std::move(value)).first;
    typename Map::node_type node = std::move(spares.back());
    spares.pop_back();
    node.key() = key;
    node.mapped() = std::move(value);
    return map.insert(std::move(node)).position;
  }
  // Keeps a node taken out of its map for the next insert (up to kSpareNodes).
  template <class Node>
  static void KeepSpare(std::vector<Node>& spares, Node node) {
    if (node && spares.size() < kSpareNodes) spares.push_back(std::move(node));
  }
  uint64_t next_seq TIDAL_GUARDED_BY(mu) = 1;
  uint64_t target_in_flight TIDAL_GUARDED_BY(mu) = 0;
  std::atomic<uint64_t> notifies_sent{0};
  std::atomic<uint64_t> notifies_received{0};
  uint64_t writes TIDAL_GUARDED_BY(mu) = 0;
  uint64_t write_bytes TIDAL_GUARDED_BY(mu) = 0;
  std::atomic<uint64_t> waits{0};
  std::atomic<uint64_t> busy_timeouts{0};
  std::atomic<uint64_t> idle_timeouts{0};
  std::atomic<uint64_t> stalls{0};
  std::mt19937_64 keys{std::random_device{}()};
  // One-sided mode.
  std::unordered_map<uint64_t, RemoteKey> remote_keys TIDAL_GUARDED_BY(mu);      // by key id
  std::map<std::pair<PeerId, uint64_t>, uint64_t> key_ids TIDAL_GUARDED_BY(mu);  // current
  uint64_t next_key_id TIDAL_GUARDED_BY(mu) = 1;
  std::map<uint64_t, Allocation> allocations TIDAL_GUARDED_BY(mu);  // by start address
  std::atomic<uint64_t> key_fetches{0};
  std::atomic<uint64_t> puts{0};
  std::atomic<uint64_t> gets{0};
  std::atomic<uint64_t> copies{0};
  std::atomic<uint64_t> keys_revoked{0};
  std::atomic<uint64_t> revokes_sent{0};
};

// ---- set-up ---------------------------------------------------------------------------

namespace {
template <ucs_status_t (UcxTransport::Impl::*Fn)(const void*, size_t, void*, size_t,
                                                 const ucp_am_recv_param_t*)>
ucs_status_t AmWithData(void* arg, const void* header, size_t header_length, void* data,
                        size_t length, const ucp_am_recv_param_t* param) {
  return (static_cast<UcxTransport::Impl*>(arg)->*Fn)(header, header_length, data, length,
                                                       param);
}
}  // namespace

Status UcxTransport::Impl::Start(const TransportInstall& in) {
  install = in;
  uid = keys() | 1;
  ucp_config_t* config = nullptr;
  if (ucp_config_read(nullptr, nullptr, &config) != UCS_OK) {
    return Status(ErrorCode::INTERNAL_ERROR, "ucx: ucp_config_read failed");
  }
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_NAME;
  params.features = UCP_FEATURE_AM | UCP_FEATURE_WAKEUP;
  if (options.one_sided) params.features |= UCP_FEATURE_RMA;
  params.name = "tidal";
  ucs_status_t s = ucp_init(&params, config, &context);
  ucp_config_release(config);
  if (s != UCS_OK) {
    context = nullptr;
    return Status(ErrorCode::INTERNAL_ERROR,
                  std::string("ucx: ucp_init failed: ") + ucs_status_string(s));
  }
  ucp_worker_params_t wp{};
  wp.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  // Serialized by wmu: the progress thread, and callers that submit directly (Run).
  wp.thread_mode = UCS_THREAD_MODE_SERIALIZED;
  s = ucp_worker_create(context, &wp, &worker);
  if (s != UCS_OK) {
    worker = nullptr;
    return Status(ErrorCode::INTERNAL_ERROR,
                  std::string("ucx: ucp_worker_create failed: ") + ucs_status_string(s));
  }
  ucp_address_t* address = nullptr;
  size_t address_length = 0;
  s = ucp_worker_get_address(worker, &address, &address_length);
  if (s != UCS_OK) {
    return Status(ErrorCode::INTERNAL_ERROR,
                  std::string("ucx: ucp_worker_get_address failed: ") + ucs_status_string(s));
  }
  worker_address.assign(reinterpret_cast<const char*>(address), address_length);
  ucp_worker_release_address(worker, address);
  s = ucp_worker_get_efd(worker, &efd);
  if (s != UCS_OK) {
    return Status(ErrorCode::INTERNAL_ERROR,
                  std::string("ucx: ucp_worker_get_efd failed: ") + ucs_status_string(s));
  }

  struct Handler {
    unsigned id;
    ucp_am_recv_callback_t cb;
  };
  const Handler handlers[] = {
      {kWriteReq, &AmWithData<&Impl::OnWriteReq>},
      {kReadResp, &AmWithData<&Impl::OnReadResp>},
      {kReadReq,
       [](void* arg, const void* h, size_t hl, void*, size_t, const ucp_am_recv_param_t* p) {
         return static_cast<Impl*>(arg)->OnReadReq(h, hl, p);
       }},
      {kWriteAck,
       [](void* arg, const void* h, size_t hl, void*, size_t, const ucp_am_recv_param_t*) {
         return static_cast<Impl*>(arg)->OnWriteAck(h, hl);
       }},
      {kPing,
       [](void* arg, const void* h, size_t hl, void*, size_t, const ucp_am_recv_param_t* p) {
         return static_cast<Impl*>(arg)->OnPing(h, hl, p);
       }},
      {kPong,
       [](void* arg, const void* h, size_t hl, void*, size_t, const ucp_am_recv_param_t*) {
         return static_cast<Impl*>(arg)->OnPong(h, hl);
       }},
      {kNotify,
       [](void* arg, const void*, size_t, void* d, size_t l, const ucp_am_recv_param_t*) {
         return static_cast<Impl*>(arg)->OnNotify(d, l);
       }},
      {kKeyReq, &AmWithData<&Impl::OnKeyReq>},
      {kKeyResp, &AmWithData<&Impl::OnKeyResp>},
      {kRevoke,
       [](void* arg, const void* h, size_t hl, void*, size_t, const ucp_am_recv_param_t*) {
         return static_cast<Impl*>(arg)->OnRevoke(h, hl);
       }},
      {kRevokeAck,
       [](void* arg, const void* h, size_t hl, void*, size_t, const ucp_am_recv_param_t*) {
         return static_cast<Impl*>(arg)->OnRevokeAck(h, hl);
       }},
  };
  for (const Handler& h : handlers) {
    ucp_am_handler_param_t hp{};
    hp.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_CB |
                    UCP_AM_HANDLER_PARAM_FIELD_ARG | UCP_AM_HANDLER_PARAM_FIELD_FLAGS;
    hp.id = h.id;
    hp.cb = h.cb;
    hp.arg = this;
    hp.flags = UCP_AM_FLAG_WHOLE_MSG;
    s = ucp_worker_set_am_recv_handler(worker, &hp);
    if (s != UCS_OK) {
      return Status(ErrorCode::INTERNAL_ERROR, std::string("ucx: set_am_recv_handler failed: ") +
                                                   ucs_status_string(s));
    }
  }
  thread = std::thread([this] { Loop(); });
  pthread_setname_np(thread.native_handle(), "tidal-ucx");  // for ps -L, top -H
  if (auto* real = dynamic_cast<RealEnv*>(install.env)) {
    poll_env = real;
    if (options.loop_drives) {
      poller_id = real->AddLoopPoller([this](bool idle) { PollFromCaller(idle); },
                                      [this] { LoopBlocks(); });
      loop_polls.store(true);
    } else {
      poller_id = real->AddSpinPoller([this] { PollFromCaller(/*idle=*/true); });
    }
  }
  return Status();
}

void UcxTransport::Impl::RunCommands() {
  // Read without the state mutex first: a polling progress thread, and a waiting caller,
  // run this every round, and most rounds find nothing queued.
  if (queued.load() == 0) return;
  for (;;) {
    std::function<void()> fn;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (commands.empty()) return;
      fn = std::move(commands.front());
      commands.pop_front();
      queued.fetch_sub(1);
    }
    fn();
  }
}

// The progress loop: run queued commands, progress the worker, then either poll again
// (while operations are outstanding and events came recently) or arm the worker and block
// on its event fd until UCX or ucp_worker_signal wakes it.
void UcxTransport::Impl::Loop() {
  uint64_t last_event_ns = MonoNs();
  // While the loop drives the worker: a look of its own this often (a loop callback that
  // runs long, a loop that stopped running, a rendezvous step UCX did not signal).
  const uint64_t standby_ns = std::max<uint64_t>(options.busy_poll_ns, 50'000);
  bool timed_out_busy = false;  // the last wait ended at its busy_poll_ns bound
  bool was_polling = false;  // the last round was a poll within the spin window
  while (!stop.load()) {
    if (loop_drives.load()) {
      // The env's loop drives the worker (PollFromCaller): stand by until it hands it back
      // before blocking (LoopBlocks), but look every standby_ns in case one of its
      // callbacks runs long, or it stopped running.
      standby_waits.fetch_add(1, std::memory_order_relaxed);
      bool handed_back;
      {
        std::unique_lock<std::mutex> sl(standby_mu);
        handed_back = standby_cv.wait_for(sl, std::chrono::nanoseconds(standby_ns),
                                          [&] { return !loop_drives.load() || stop.load(); });
      }
      if (stop.load()) break;
      if (!handed_back) {
        standby_rounds.fetch_add(1, std::memory_order_relaxed);
        {
          std::unique_lock<std::mutex> wl(wmu, std::try_to_lock);
          if (wl.owns_lock()) {
            RunCommands();
            while (ucp_worker_progress(worker) != 0) {
            }
          }
        }
        CheckProbes();
        continue;
      }
      was_polling = false;  // handed back: a full round, then the window from its time
    }
    bool progressed = false;
    {
      // While polling, a caller that holds the worker (a direct send, or a waiting loop
      // progressing it) is not waited for: the round is skipped.
      std::unique_lock<std::mutex> wl(wmu, std::defer_lock);
      if (was_polling) {
        (void)wl.try_lock();
      } else {
        wl.lock();
      }
      if (wl.owns_lock()) {
        RunCommands();
        while (ucp_worker_progress(worker) != 0) progressed = true;
      }
    }
    was_polling = false;
    // A bounded wait that ran out while work was in flight, after which UCX had events to
    // progress: UCX did not signal the event fd for them (counted, see stats()).
    if (timed_out_busy && progressed) stalls.fetch_add(1, std::memory_order_relaxed);
    timed_out_busy = false;
    CheckProbes();
    const uint64_t now = MonoNs();
    if (progressed) last_event_ns = now;
    // Poll, do not block, for spin_ns after the last activity (an event progressed here or
    // a direct send from a caller), whether or not work is in flight: the answer to a
    // request, or a peer's next request, is taken without an event-fd wake-up. After that
    // window the thread arms and blocks, so an idle node costs at most spin_ns of CPU
    // after its last activity (and one progress round per idle_poll_ns).
    auto polling = [&](uint64_t t) {
      const uint64_t last = std::max(last_event_ns, last_activity_ns.load());
      return last > t || t - last < options.spin_ns;
    };
    if (polling(now)) {
      was_polling = true;
      spin_rounds.fetch_add(1, std::memory_order_relaxed);
      std::this_thread::yield();  // a direct submitter may want the worker; 2 cores
      continue;
    }
    sleeping.store(true);
    // A direct send that stored its time before `sleeping` was set is seen here (and one
    // that stores it later sees `sleeping` and signals).
    if (polling(MonoNs())) {
      sleeping.store(false);
      continue;
    }
    ucs_status_t armed;
    {
      std::lock_guard<std::mutex> wl(wmu);
      armed = ucp_worker_arm(worker);
    }
    if (armed == UCS_ERR_BUSY) {
      sleeping.store(false);
      continue;
    }
    // How long to block: until the nearest probe deadline, and while operations are
    // outstanding at most busy_poll_ns. UCX 1.13 does not signal the event fd for every
    // step of a rendezvous over shared memory (seen: both workers of a transfer asleep
    // for seconds, until a probe deadline woke one), so a node with work in flight never
    // sleeps longer than that; an idle node still blocks until an event.
    int64_t timeout_ns = -1;
    {
      std::lock_guard<std::mutex> lock(mu);
      // A command queued before the arm consumed its signal: run it now.
      if (!commands.empty()) {
        sleeping.store(false);
        continue;
      }
      for (const auto& [seq, op] : ops) {
        if (op.task.kind != TransportTask::Kind::kProbe || op.deadline_ns == 0) continue;
        const int64_t left = op.deadline_ns > now ? static_cast<int64_t>(op.deadline_ns - now) : 0;
        timeout_ns = timeout_ns < 0 ? left : std::min(timeout_ns, left);
      }
    }
    const bool in_flight = busy.load() != 0;
    {
      const auto cap =
          static_cast<int64_t>(in_flight ? options.busy_poll_ns : options.idle_poll_ns);
      if (cap > 0) timeout_ns = timeout_ns < 0 ? cap : std::min(timeout_ns, cap);
    }
    if (stop.load()) break;
    pollfd p{efd, POLLIN, 0};
    timespec ts{static_cast<time_t>(timeout_ns / 1'000'000'000),
                static_cast<long>(timeout_ns % 1'000'000'000)};
    waits.fetch_add(1, std::memory_order_relaxed);
    const int woke = ppoll(&p, 1, timeout_ns < 0 ? nullptr : &ts, nullptr);
    if (woke == 0) {
      (in_flight ? busy_timeouts : idle_timeouts).fetch_add(1, std::memory_order_relaxed);
      timed_out_busy = in_flight;
    }
    sleeping.store(false);
  }
}

void UcxTransport::Impl::QueuePrefault(uint64_t key_id, void* mapped, uint64_t length) {
  std::lock_guard<std::mutex> pl(prefault_mu);
  if (prefault_stop) return;
  if (!prefault_thread.joinable()) {
    prefault_thread = std::thread([this] { PrefaultLoop(); });
    pthread_setname_np(prefault_thread.native_handle(), "tidal-ucx-pf");
  }
  prefault_jobs.push_back(PrefaultJob{key_id, reinterpret_cast<uint64_t>(mapped), length});
  prefault_cv.notify_one();
}

void UcxTransport::Impl::PrefaultLoop() {
  constexpr uint64_t kChunk = 16 << 20;
  std::unique_lock<std::mutex> pl(prefault_mu);
  for (;;) {
    prefault_cv.wait(pl, [this]() TIDAL_REQUIRES(prefault_mu) {
      return prefault_stop || !prefault_jobs.empty();
    });
    if (prefault_stop) return;
    PrefaultJob& j = prefault_jobs.front();
    bool held = false;
    {
      std::lock_guard<std::mutex> lock(mu);
      auto k = remote_keys.find(j.key_id);
      held = k != remote_keys.end() && k->second.handle != nullptr && !k->second.revoked;
    }
    if (!held) {
      prefault_jobs.pop_front();
      continue;
    }
    const uint64_t n = std::min(kChunk, j.length);
    Prefault(reinterpret_cast<void*>(j.addr), n);
    j.addr += n;
    j.length -= n;
    if (j.length == 0) prefault_jobs.pop_front();
    // Between chunks a key's destruction (or Stop) gets the lock.
    pl.unlock();
    std::this_thread::yield();
    pl.lock();
  }
}

void UcxTransport::Impl::StopPrefault() {
  {
    std::lock_guard<std::mutex> pl(prefault_mu);
    prefault_stop = true;
    prefault_jobs.clear();
  }
  prefault_cv.notify_all();
  if (prefault_thread.joinable()) prefault_thread.join();
}

void UcxTransport::Impl::Stop() {
  if (poll_env != nullptr) {
    loop_polls.store(false);
    poll_env->RemoveSpinPoller(poller_id);  // returns after a poll in progress
    poll_env = nullptr;
  }
  StopPrefault();
  if (!thread.joinable()) return;
  stop.store(true);
  EndLoopDrive();
  ucp_worker_signal(worker);
  thread.join();
}

// Tears the worker down after the progress thread stopped. Endpoints are closed by force:
// their peers see the connection fail.
void UcxTransport::Impl::Destroy() {
  Stop();
  std::lock_guard<std::mutex> wl(wmu);
  RunCommands();  // anything left runs here, on the one thread that still uses the worker
  std::vector<ucp_ep_h> eps;
  std::vector<ucp_rkey_h> handles;
  {
    std::lock_guard<std::mutex> lock(mu);
    // Peers' keys go before the endpoints they were unpacked on.
    for (auto& [id, k] : remote_keys) {
      if (k.handle != nullptr) handles.push_back(k.handle);
    }
    remote_keys.clear();
    key_ids.clear();
    for (Peer& p : peers) {
      if (p.ep != nullptr) eps.push_back(p.ep);
      p.ep = nullptr;
    }
  }
  for (ucp_rkey_h h : handles) DestroyRkey(h);
  for (ucp_ep_h ep : eps) {
    ucp_request_param_t cp{};
    cp.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    cp.flags = UCP_EP_CLOSE_FLAG_FORCE;
    void* req = ucp_ep_close_nbx(ep, &cp);
    if (UCS_PTR_IS_PTR(req)) {
      while (ucp_request_check_status(req) == UCS_INPROGRESS) ucp_worker_progress(worker);
      ucp_request_free(req);
    }
  }
  // The worker goes before the regions: the endpoints UCX made for peers that connected
  // to this node (the reply endpoints of its answers) are not ours to close, and
  // destroying the worker completes their unsent answers, whose callbacks release the
  // regions they were admitted to (ReleaseRemote). With the regions cleared first, a
  // READ answer still queued to a peer that died made that release fail its assertion
  // at shutdown (seen in a holder process of the store benchmark over shared memory).
  if (worker != nullptr) {
    ucp_worker_destroy(worker);
    worker = nullptr;
  }
  std::vector<ucp_mem_h> memhs;
  {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& [addr, r] : regions) {
      if (r.owned) memhs.push_back(r.memh);
    }
    regions.clear();
    region_by_key.clear();
    for (auto& [addr, a] : allocations) memhs.push_back(a.memh);
    allocations.clear();
  }
  for (ucp_mem_h m : memhs) {
    if (m != nullptr) ucp_mem_unmap(context, m);
  }
  if (context != nullptr) {
    ucp_cleanup(context);
    context = nullptr;
  }
}

// ---- initiator ------------------------------------------------------------------------

UcxTransport::Impl::Region* UcxTransport::Impl::FindLocalLocked(uint64_t addr, uint64_t length) {
  auto it = regions.upper_bound(addr);
  if (it == regions.begin()) return nullptr;
  --it;
  Region& r = it->second;
  if (length > r.length || addr - r.addr > r.length - length) return nullptr;
  return &r;
}

void UcxTransport::Impl::CompleteLocked(uint64_t seq, ErrorCode code, uint64_t bytes) {
  auto it = ops.find(seq);
  TIDAL_ASSERT(it != ops.end());
  Op& op = it->second;
  TIDAL_ASSERT(!op.send_active && !op.receiving);
  if (op.local_region != 0) {
    auto r = regions.find(op.local_region);
    TIDAL_ASSERT(r != regions.end() && r->second.local_in_flight > 0);
    --r->second.local_in_flight;
  }
  if (op.task.kind == TransportTask::Kind::kProbe) probes.fetch_sub(1, std::memory_order_relaxed);
  completions.push_back(TransportCompletion{op.task.task_id, code, bytes});
  completion_count.store(completions.size(), std::memory_order_release);
  KeepSpare(spare_seqs, seq_by_task.extract(op.task.task_id));
  KeepSpare(spare_ops, ops.extract(it));
  own_ops.store(ops.size(), std::memory_order_relaxed);
  busy.fetch_sub(1);
}

ucp_ep_h UcxTransport::Impl::EnsureEp(PeerId peer) {
  std::string address;
  {
    std::lock_guard<std::mutex> lock(mu);
    Peer& p = peers[peer];
    if (p.failed) return nullptr;
    if (p.ep != nullptr) return p.ep;
    address = p.worker_address;
  }
  while (ep_ctx.size() <= peer) ep_ctx.push_back(nullptr);
  if (!ep_ctx[peer]) ep_ctx[peer] = std::make_unique<EpCtx>(EpCtx{this, peer});
  ucp_ep_params_t ep_params{};
  ep_params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS |
                         UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE | UCP_EP_PARAM_FIELD_ERR_HANDLER;
  ep_params.address = reinterpret_cast<const ucp_address_t*>(address.data());
  ep_params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
  ep_params.err_handler.cb = [](void* arg, ucp_ep_h, ucs_status_t) {
    auto* c = static_cast<EpCtx*>(arg);
    c->impl->FailPeer(c->peer);
  };
  ep_params.err_handler.arg = ep_ctx[peer].get();
  ucp_ep_h ep = nullptr;
  ucs_status_t s =
      peer_mode.load() ? ucp_ep_create(worker, &ep_params, &ep) : UCS_ERR_UNSUPPORTED;
  if (s != UCS_OK) {
    // UCX's shared-memory transports (posix, sysv, self) have no peer failure handler in
    // UCX 1.13, so UCP refuses UCP_ERR_HANDLING_MODE_PEER over them. Fall back to no error
    // handling: a dead peer is then found by the probe deadline (and the engine's transfer
    // deadline), not by a broken connection. Remembered, so the refusal is asked once, but
    // only when the mode was the problem (the peer is reachable without it): a peer that
    // cannot be reached at all (a killed node's refused tcp connection) must not turn error
    // handling off for this process's later endpoints, whose live peers keep theirs (UCX
    // then refuses the pair: "asymmetric endpoint configuration").
    ep_params.err_mode = UCP_ERR_HANDLING_MODE_NONE;
    ep_params.field_mask &= ~static_cast<uint64_t>(UCP_EP_PARAM_FIELD_ERR_HANDLER);
    s = ucp_ep_create(worker, &ep_params, &ep);
    if (s == UCS_OK) peer_mode.store(false);
  }
  std::lock_guard<std::mutex> lock(mu);
  if (s != UCS_OK) {
    peers[peer].failed = true;
    return nullptr;
  }
  peers[peer].ep = ep;
  return ep;
}

// The endpoint failed (the peer died or its connection broke): every task to it that UCX
// is not still completing itself completes PEER_UNREACHABLE now; those with a UCX request
// complete when UCX fails that request.
void UcxTransport::Impl::FailPeer(PeerId peer) {
  ucp_ep_h ep = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu);
    Peer& p = peers[peer];
    p.failed = true;
    ep = p.ep;
    p.ep = nullptr;
    // One-sided: a holder whose connection failed cannot use the keys it holds any more.
    for (auto& [addr, r] : regions) {
      std::erase_if(r.holders, [&](const Region::Holder& x) { return x.uid == p.uid; });
    }
    std::vector<uint64_t> dead;
    for (auto& [seq, op] : ops) {
      if (op.task.peer == peer && op.started && !op.send_active && !op.receiving) {
        dead.push_back(seq);
      }
    }
    for (uint64_t seq : dead) CompleteLocked(seq, ErrorCode::PEER_UNREACHABLE, 0);
  }
  if (ep != nullptr) {
    // Closed later, outside the error callback.
    Post([this, ep] {
      ucp_request_param_t cp{};
      cp.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
      cp.flags = UCP_EP_CLOSE_FLAG_FORCE;
      void* req = ucp_ep_close_nbx(ep, &cp);
      if (UCS_PTR_IS_PTR(req)) ucp_request_free(req);
    });
  }
  Ready();
}

void UcxTransport::Impl::StartOp(uint64_t seq) {
  TransportTask t;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = ops.find(seq);
    if (it == ops.end()) return;  // canceled before it started
    t = it->second.task;
  }
  ucp_ep_h ep = EnsureEp(t.peer);
  std::unique_lock<std::mutex> lock(mu);
  auto it = ops.find(seq);
  if (it == ops.end()) return;
  Op& op = it->second;
  if (ep == nullptr) {
    CompleteLocked(seq, ErrorCode::PEER_UNREACHABLE, 0);
    lock.unlock();
    Ready();
    return;
  }
  op.started = true;
  if (t.kind == TransportTask::Kind::kProbe) {
    op.deadline_ns = MonoNs() + options.probe_timeout_ns;
  } else if (options.one_sided) {
    // A key already granted on the direct path: issued now, with no more locking.
    uint64_t key_id = 0;
    ucp_rkey_h handle = nullptr;
    const bool direct = TakeDirectLocked(op, &key_id, &handle);
    lock.unlock();
    if (direct) {
      IssueRma(seq, key_id, ep, handle, t);
    } else {
      StartOneSided(seq, ep);
    }
    return;
  }
  lock.unlock();
  SendRequest(seq, t, ep);
}

// The active-message path: the request (with the data, for a WRITE) goes to the target,
// which checks it and answers.
void UcxTransport::Impl::SendRequest(uint64_t seq, const TransportTask& t, ucp_ep_h ep) {
  const bool write = t.kind == TransportTask::Kind::kWrite;
  if (write) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = ops.find(seq);
    if (it == ops.end()) return;
    it->second.send_active = true;
  }
  auto* ctx = new Ctx(this, seq, 0, nullptr);
  ctx->req = ReqHeader{seq, t.rkey, t.remote_addr, t.length};
  ctx->ack = AckHeader{seq, 0, 0};
  ucp_request_param_t p{};
  p.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA |
                   UCP_OP_ATTR_FIELD_FLAGS;
  p.flags = UCP_AM_SEND_FLAG_REPLY;
  p.user_data = ctx;
  if (write) {
    p.cb.send = [](void* req, ucs_status_t s, void* user) {
      auto* c = static_cast<Ctx*>(user);
      Impl* self = c->impl;
      {
        std::lock_guard<std::mutex> lock(self->mu);
        auto it = self->ops.find(c->seq);
        TIDAL_ASSERT(it != self->ops.end());
        Op& o = it->second;
        o.send_active = false;
        o.request = nullptr;
        if (s != UCS_OK) {
          self->CompleteLocked(c->seq, o.canceled && s == UCS_ERR_CANCELED
                                           ? ErrorCode::TRANSFER_CANCELED
                                           : FromUcs(s),
                               0);
        } else if (o.acked) {
          self->CompleteLocked(c->seq, o.ack_code, o.ack_code == ErrorCode::OK ? o.task.length : 0);
        }
      }
      ucp_request_free(req);
      delete c;
      self->Ready();
    };
  } else {
    // READ requests and pings: their send completes locally; the answer is what counts.
    p.cb.send = [](void* req, ucs_status_t, void* user) {
      delete static_cast<Ctx*>(user);
      ucp_request_free(req);
    };
  }
  void* req = nullptr;
  if (write) {
    req = ucp_am_send_nbx(ep, kWriteReq, &ctx->req, sizeof(ReqHeader),
                          reinterpret_cast<void*>(t.local_addr), t.length, &p);
  } else if (t.kind == TransportTask::Kind::kRead) {
    req = ucp_am_send_nbx(ep, kReadReq, &ctx->req, sizeof(ReqHeader), nullptr, 0, &p);
  } else {
    req = ucp_am_send_nbx(ep, kPing, &ctx->ack, sizeof(AckHeader), nullptr, 0, &p);
  }
  if (UCS_PTR_IS_PTR(req)) {
    if (write) {
      std::lock_guard<std::mutex> l(mu);
      auto o = ops.find(seq);
      if (o != ops.end() && o->second.send_active) o->second.request = req;
    }
    return;
  }
  delete ctx;
  const ucs_status_t s = UCS_PTR_STATUS(req);
  {
    std::lock_guard<std::mutex> l(mu);
    auto o = ops.find(seq);
    if (o == ops.end()) return;
    if (write) o->second.send_active = false;
    if (s != UCS_OK) {
      CompleteLocked(seq, FromUcs(s), 0);
    } else if (write && o->second.acked) {
      CompleteLocked(seq, o->second.ack_code,
                     o->second.ack_code == ErrorCode::OK ? t.length : 0);
    }
  }
  Ready();
}

void UcxTransport::Impl::CheckProbes() {
  if (probes.load(std::memory_order_relaxed) == 0) return;  // every round: no lock then
  const uint64_t now = MonoNs();
  bool any = false;
  {
    std::lock_guard<std::mutex> lock(mu);
    std::vector<uint64_t> late;
    for (const auto& [seq, op] : ops) {
      if (op.task.kind == TransportTask::Kind::kProbe && op.deadline_ns != 0 &&
          op.deadline_ns <= now) {
        late.push_back(seq);
      }
    }
    for (uint64_t seq : late) CompleteLocked(seq, ErrorCode::PEER_UNREACHABLE, 0);
    any = !late.empty();
  }
  if (any) Ready();
}

// ---- answers at the initiator -----------------------------------------------------------

ucs_status_t UcxTransport::Impl::OnWriteAck(const void* header, size_t header_length) {
  if (header_length != sizeof(AckHeader)) return UCS_OK;  // not ours: ignored
  AckHeader h;
  std::memcpy(&h, header, sizeof(h));
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = ops.find(h.seq);
    if (it == ops.end() || it->second.task.kind != TransportTask::Kind::kWrite) return UCS_OK;
    Op& op = it->second;
    const ErrorCode code = static_cast<ErrorCode>(h.code);
    op.acked = true;
    op.ack_code = code;
    if (op.send_active) return UCS_OK;  // completes when UCX is done with the source
    CompleteLocked(h.seq, code, code == ErrorCode::OK ? op.task.length : 0);
  }
  Ready();
  return UCS_OK;
}

ucs_status_t UcxTransport::Impl::OnReadResp(const void* header, size_t header_length, void* data,
                                            size_t length, const ucp_am_recv_param_t* param) {
  if (header_length != sizeof(AckHeader)) return UCS_OK;
  AckHeader h;
  std::memcpy(&h, header, sizeof(h));
  const bool rndv = (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) != 0;
  uint64_t local = 0;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = ops.find(h.seq);
    // Canceled (and completed) already: the answer is dropped and the buffer untouched.
    if (it == ops.end() || it->second.task.kind != TransportTask::Kind::kRead) return UCS_OK;
    Op& op = it->second;
    const ErrorCode code = static_cast<ErrorCode>(h.code);
    if (code != ErrorCode::OK || length != op.task.length) {
      CompleteLocked(h.seq, code != ErrorCode::OK ? code : ErrorCode::TRANSFER_FAIL, 0);
    } else if (!rndv) {
      std::memcpy(reinterpret_cast<void*>(op.task.local_addr), data, length);
      CompleteLocked(h.seq, ErrorCode::OK, length);
    } else {
      op.receiving = true;
      local = op.task.local_addr;
    }
  }
  if (local == 0) {
    Ready();
    return UCS_OK;
  }
  auto* ctx = new Ctx(this, h.seq, 0, nullptr);
  ucp_request_param_t p{};
  p.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  p.user_data = ctx;
  p.cb.recv_am = [](void* req, ucs_status_t s, size_t, void* user) {
    auto* c = static_cast<Ctx*>(user);
    Impl* self = c->impl;
    {
      std::lock_guard<std::mutex> lock(self->mu);
      auto it = self->ops.find(c->seq);
      TIDAL_ASSERT(it != self->ops.end());
      Op& o = it->second;
      o.receiving = false;
      o.request = nullptr;
      const ErrorCode code =
          s == UCS_OK ? ErrorCode::OK
                      : (o.canceled && s == UCS_ERR_CANCELED ? ErrorCode::TRANSFER_CANCELED
                                                             : FromUcs(s));
      self->CompleteLocked(c->seq, code, s == UCS_OK ? o.task.length : 0);
    }
    ucp_request_free(req);
    delete c;
    self->Ready();
  };
  void* req = ucp_am_recv_data_nbx(worker, data, reinterpret_cast<void*>(local), length, &p);
  if (UCS_PTR_IS_PTR(req)) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = ops.find(h.seq);
    if (it != ops.end() && it->second.receiving) it->second.request = req;
    return UCS_OK;
  }
  delete ctx;
  const ucs_status_t s = UCS_PTR_STATUS(req);
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = ops.find(h.seq);
    TIDAL_ASSERT(it != ops.end());
    it->second.receiving = false;
    CompleteLocked(h.seq, s == UCS_OK ? ErrorCode::OK : FromUcs(s), s == UCS_OK ? length : 0);
  }
  Ready();
  return UCS_OK;
}

ucs_status_t UcxTransport::Impl::OnPong(const void* header, size_t header_length) {
  if (header_length != sizeof(AckHeader)) return UCS_OK;
  AckHeader h;
  std::memcpy(&h, header, sizeof(h));
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = ops.find(h.seq);
    if (it == ops.end() || it->second.task.kind != TransportTask::Kind::kProbe) return UCS_OK;
    CompleteLocked(h.seq, ErrorCode::OK, 0);
  }
  Ready();
  return UCS_OK;
}

ucs_status_t UcxTransport::Impl::OnNotify(void* data, size_t length) {
  ByteReader r(std::string_view(static_cast<const char*>(data), length));
  Notification n;
  if (!r.Str(&n.source, kSegmentMaxString)) return UCS_OK;  // malformed: dropped
  n.payload = std::string(r.Rest());
  {
    std::lock_guard<std::mutex> lock(mu);
    notifies.push_back(std::move(n));
    notify_count.store(notifies.size(), std::memory_order_release);
  }
  notifies_received.fetch_add(1);
  Ready();
  return UCS_OK;
}

// ---- the target ---------------------------------------------------------------------------

// The one place a peer's access is judged: the key must name a region registered here now
// (an unregistered region's key is gone from the table, so a stale key is refused like a
// foreign one), and the range must lie wholly inside that region.
ErrorCode UcxTransport::Impl::Admit(const ReqHeader& h, uint64_t* region) {
  std::lock_guard<std::mutex> lock(mu);
  auto k = region_by_key.find(h.rkey);
  if (h.rkey == 0 || k == region_by_key.end()) return ErrorCode::REMOTE_ACCESS_DENIED;
  auto it = regions.find(k->second);
  TIDAL_ASSERT(it != regions.end() && it->second.rkey == h.rkey);
  Region& r = it->second;
  if (h.length == 0 || h.length > r.length || h.addr < r.addr ||
      h.addr - r.addr > r.length - h.length) {
    return ErrorCode::REMOTE_ACCESS_DENIED;
  }
  ++r.remote_in_flight;
  ++target_in_flight;
  busy.fetch_add(1);
  *region = r.addr;
  return ErrorCode::OK;
}

void UcxTransport::Impl::ReleaseRemote(uint64_t region) {
  std::lock_guard<std::mutex> lock(mu);
  auto it = regions.find(region);
  TIDAL_ASSERT(it != regions.end() && it->second.remote_in_flight > 0);
  --it->second.remote_in_flight;
  --target_in_flight;
  busy.fetch_sub(1);
}

void UcxTransport::Impl::SendOwned(ucp_ep_h ep, unsigned id, Ctx* ctx, const void* header,
                                   size_t header_length, const void* data, size_t length) {
  ucp_request_param_t p{};
  p.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  p.user_data = ctx;
  p.cb.send = [](void* req, ucs_status_t, void* user) {
    auto* c = static_cast<Ctx*>(user);
    c->impl->busy.fetch_sub(1);
    delete c;
    ucp_request_free(req);
  };
  void* req = ucp_am_send_nbx(ep, id, header, header_length, data, length, &p);
  // Inline completion or an error (the peer is gone, and so is the message's reader).
  if (!UCS_PTR_IS_PTR(req)) {
    delete ctx;
    return;
  }
  // Pending in UCX: counted as work in flight, so the progress thread keeps progressing
  // (UCX may not signal the event fd when it can send it).
  busy.fetch_add(1);
}

void UcxTransport::Impl::SendAnswer(ucp_ep_h ep, unsigned id, uint64_t seq, ErrorCode code) {
  // Stopping: the callbacks UCX runs while the worker is destroyed (a receive it cancels)
  // must not send on its endpoints; the peer's task ends by its own deadline.
  if (stop.load()) return;
  auto* ctx = new Ctx(this, seq, 0, nullptr);
  ctx->ack = AckHeader{seq, static_cast<int32_t>(code), 0};
  SendOwned(ep, id, ctx, &ctx->ack, sizeof(AckHeader), nullptr, 0);
}

void UcxTransport::Impl::WriteLanded(uint64_t region, ucp_ep_h reply_ep, uint64_t seq,
                                     ErrorCode code) {
  ReleaseRemote(region);
  SendAnswer(reply_ep, kWriteAck, seq, code);
}

ucs_status_t UcxTransport::Impl::OnWriteReq(const void* header, size_t header_length, void* data,
                                            size_t length, const ucp_am_recv_param_t* param) {
  if (header_length != sizeof(ReqHeader) ||
      (param->recv_attr & UCP_AM_RECV_ATTR_FIELD_REPLY_EP) == 0) {
    return UCS_OK;  // not a request of this protocol: dropped
  }
  ReqHeader h;
  std::memcpy(&h, header, sizeof(h));
  ucp_ep_h reply = param->reply_ep;
  uint64_t region = 0;
  ErrorCode code = h.length == length ? Admit(h, &region) : ErrorCode::REMOTE_ACCESS_DENIED;
  if (code != ErrorCode::OK) {
    SendAnswer(reply, kWriteAck, h.seq, code);
    return UCS_OK;  // a rendezvous is dropped: no byte is received
  }
  void* target = reinterpret_cast<void*>(h.addr);
  if ((param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) == 0) {
    const bool planted = options.planted_bug == UcxBug::kWriteDropsLastByte && length > 0;
    std::memcpy(target, data, planted ? length - 1 : length);  // planted: the last byte dropped
    WriteLanded(region, reply, h.seq, ErrorCode::OK);
    return UCS_OK;
  }
  auto* ctx = new Ctx(this, h.seq, region, reply);
  ucp_request_param_t p{};
  p.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  p.user_data = ctx;
  p.cb.recv_am = [](void* req, ucs_status_t s, size_t, void* user) {
    auto* c = static_cast<Ctx*>(user);
    c->impl->WriteLanded(c->region, c->reply_ep, c->seq,
                         s == UCS_OK ? ErrorCode::OK : ErrorCode::TRANSFER_FAIL);
    ucp_request_free(req);
    delete c;
  };
  void* req = ucp_am_recv_data_nbx(worker, data, target, length, &p);
  if (!UCS_PTR_IS_PTR(req)) {
    delete ctx;
    WriteLanded(region, reply, h.seq,
                UCS_PTR_STATUS(req) == UCS_OK ? ErrorCode::OK : ErrorCode::TRANSFER_FAIL);
  }
  return UCS_OK;
}

ucs_status_t UcxTransport::Impl::OnReadReq(const void* header, size_t header_length,
                                           const ucp_am_recv_param_t* param) {
  if (header_length != sizeof(ReqHeader) ||
      (param->recv_attr & UCP_AM_RECV_ATTR_FIELD_REPLY_EP) == 0) {
    return UCS_OK;
  }
  ReqHeader h;
  std::memcpy(&h, header, sizeof(h));
  uint64_t region = 0;
  const ErrorCode code = Admit(h, &region);
  if (code != ErrorCode::OK) {
    SendAnswer(param->reply_ep, kReadResp, h.seq, code);
    return UCS_OK;
  }
  auto* ctx = new Ctx(this, h.seq, region, nullptr);
  ctx->ack = AckHeader{h.seq, 0, 0};
  ucp_request_param_t p{};
  p.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  p.user_data = ctx;
  p.cb.send = [](void* req, ucs_status_t, void* user) {
    auto* c = static_cast<Ctx*>(user);
    c->impl->ReleaseRemote(c->region);
    ucp_request_free(req);
    delete c;
  };
  void* req = ucp_am_send_nbx(param->reply_ep, kReadResp, &ctx->ack, sizeof(AckHeader),
                              reinterpret_cast<void*>(h.addr), h.length, &p);
  if (!UCS_PTR_IS_PTR(req)) {
    delete ctx;
    ReleaseRemote(region);
  }
  return UCS_OK;
}

ucs_status_t UcxTransport::Impl::OnPing(const void* header, size_t header_length,
                                        const ucp_am_recv_param_t* param) {
  if (header_length != sizeof(AckHeader) ||
      (param->recv_attr & UCP_AM_RECV_ATTR_FIELD_REPLY_EP) == 0) {
    return UCS_OK;
  }
  AckHeader h;
  std::memcpy(&h, header, sizeof(h));
  SendAnswer(param->reply_ep, kPong, h.seq, ErrorCode::OK);
  return UCS_OK;
}

// ---- one-sided mode -----------------------------------------------------------------------
//
// Every function here runs with the worker lock held (inside Run, a queued command, or a
// UCX callback during progress), and makes its UCP calls with the state mutex released.

PeerId UcxTransport::Impl::PeerByUidLocked(uint64_t peer_uid, bool* found) {
  for (size_t i = 0; i < peers.size(); ++i) {
    if (peers[i].uid == peer_uid) {
      *found = true;
      return static_cast<PeerId>(i);
    }
  }
  *found = false;
  return 0;
}

void UcxTransport::Impl::FailWaiting(std::vector<uint64_t> seqs, ErrorCode code) {
  if (seqs.empty()) return;
  {
    std::lock_guard<std::mutex> lock(mu);
    for (uint64_t seq : seqs) {
      if (ops.count(seq) != 0) CompleteLocked(seq, code, 0);
    }
  }
  Ready();
}

void UcxTransport::Impl::StartOneSided(uint64_t seq, ucp_ep_h ep) {
  uint64_t rkey = 0;
  PeerId peer = 0;
  bool fetch = false;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = ops.find(seq);
    if (it == ops.end()) return;
    const TransportTask& t = it->second.task;
    auto id = key_ids.find({t.peer, t.rkey});
    if (id != key_ids.end()) {
      RemoteKey& k = remote_keys.at(id->second);
      if (k.handle == nullptr) {  // its request is in flight
        k.waiting.push_back(seq);
        return;
      }
    } else {
      // First use of this key: ask the target for it; the op waits for the answer.
      const uint64_t key_id = next_key_id++;
      RemoteKey k;
      k.peer = t.peer;
      k.rkey = t.rkey;
      k.waiting.push_back(seq);
      remote_keys.emplace(key_id, std::move(k));
      key_ids[{t.peer, t.rkey}] = key_id;
      rkey = t.rkey;
      peer = t.peer;
      fetch = true;
    }
  }
  if (!fetch) {
    IssueChecked(seq);
    return;
  }
  key_fetches.fetch_add(1, std::memory_order_relaxed);
  auto* ctx = new Ctx(this, 0, 0, nullptr);
  ctx->body.resize(sizeof(KeyReqHeader));
  const KeyReqHeader h{rkey, uid};
  std::memcpy(ctx->body.data(), &h, sizeof(h));
  ucp_request_param_t p{};
  p.op_attr_mask =
      UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FIELD_FLAGS;
  p.flags = UCP_AM_SEND_FLAG_REPLY;
  p.user_data = ctx;
  p.cb.send = [](void* req, ucs_status_t, void* user) {
    delete static_cast<Ctx*>(user);
    ucp_request_free(req);
  };
  ctx->body += worker_address;
  void* req = ucp_am_send_nbx(ep, kKeyReq, ctx->body.data(), sizeof(KeyReqHeader),
                              ctx->body.data() + sizeof(KeyReqHeader), worker_address.size(), &p);
  if (UCS_PTR_IS_PTR(req)) return;
  delete ctx;
  if (UCS_PTR_STATUS(req) == UCS_OK) return;
  // The request could not leave: the ops waiting for this key fail with the peer.
  std::vector<uint64_t> waiting;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto id = key_ids.find({peer, rkey});
    if (id != key_ids.end() && remote_keys.at(id->second).handle == nullptr) {
      waiting = std::move(remote_keys.at(id->second).waiting);
      remote_keys.erase(id->second);
      key_ids.erase(id);
    }
  }
  FailWaiting(std::move(waiting), FromUcs(UCS_PTR_STATUS(req)));
}

// The op's key is granted: its range must lie inside the region the target named, else it
// is refused here and nothing moves.
void UcxTransport::Impl::IssueChecked(uint64_t seq) {
  TransportTask t;
  uint64_t key_id = 0;
  ucp_rkey_h handle = nullptr;
  ucp_ep_h ep = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = ops.find(seq);
    if (it == ops.end()) return;  // canceled while it waited for the key
    Op& op = it->second;
    t = op.task;
    auto id = key_ids.find({t.peer, t.rkey});
    TIDAL_ASSERT(id != key_ids.end());
    RemoteKey& k = remote_keys.at(id->second);
    TIDAL_ASSERT(k.handle != nullptr);
    if (!k.Covers(t)) {
      CompleteLocked(seq, ErrorCode::REMOTE_ACCESS_DENIED, 0);
    } else if (peers[t.peer].failed || peers[t.peer].ep == nullptr) {
      CompleteLocked(seq, ErrorCode::PEER_UNREACHABLE, 0);
    } else if (k.mapped == nullptr) {
      ep = peers[t.peer].ep;  // the active-message path
    } else {
      ep = peers[t.peer].ep;
      TIDAL_ASSERT(TakeDirectLocked(op, &key_id, &handle));
    }
  }
  if (handle == nullptr && ep != nullptr) {
    SendRequest(seq, t, ep);
    return;
  }
  if (handle == nullptr) {
    Ready();
    return;
  }
  IssueRma(seq, key_id, ep, handle, t);
}

bool UcxTransport::Impl::TakeDirectKeyLocked(const TransportTask& t, uint64_t* key_id,
                                             ucp_rkey_h* handle, uint8_t** mapped) {
  // A revoked key has already left key_ids: the next use asks again.
  auto id = key_ids.find({t.peer, t.rkey});
  if (id == key_ids.end()) return false;
  RemoteKey& k = remote_keys.at(id->second);
  if (k.handle == nullptr || k.mapped == nullptr || !k.Covers(t)) return false;
  ++k.in_flight;
  *key_id = id->second;
  *handle = k.handle;
  if (mapped != nullptr) *mapped = k.mapped + (t.remote_addr - k.base);
  return true;
}

bool UcxTransport::Impl::TakeDirectLocked(Op& op, uint64_t* key_id, ucp_rkey_h* handle) {
  if (!TakeDirectKeyLocked(op.task, key_id, handle)) return false;
  if (op.task.kind == TransportTask::Kind::kWrite) {
    op.send_active = true;
  } else {
    op.receiving = true;
  }
  return true;
}

void UcxTransport::Impl::ReleaseKeyLocked(uint64_t key_id, Dropped* d) {
  auto k = remote_keys.find(key_id);
  if (k == remote_keys.end()) return;
  TIDAL_ASSERT(k->second.in_flight > 0);
  if (--k->second.in_flight == 0 && k->second.revoked) {
    d->handle = k->second.handle;
    d->ack_ep = k->second.ack_ep;
    d->rkey = k->second.rkey;
    d->drop = true;
    remote_keys.erase(k);
  }
}

void UcxTransport::Impl::RmaDone(uint64_t seq, uint64_t key_id, ucs_status_t s) {
  const ErrorCode code = FromUcs(s);  // UCS_ERR_CANCELED: TRANSFER_CANCELED
  Dropped d;
  {
    std::lock_guard<std::mutex> lock(mu);
    ReleaseKeyLocked(key_id, &d);
    auto it = ops.find(seq);
    if (it != ops.end()) {
      Op& o = it->second;
      o.send_active = false;
      o.receiving = false;
      o.request = nullptr;
      CompleteLocked(seq, code, code == ErrorCode::OK ? o.task.length : 0);
    }
  }
  if (d.drop) DropRevoked(d.handle, d.ack_ep, d.rkey);
  Ready();
}

UcxTransport::Impl::Ctx* UcxTransport::Impl::NewRmaCtx(uint64_t seq, uint64_t key_id) {
  if (spare_ctx.empty()) return new Ctx(this, seq, key_id, nullptr);
  Ctx* c = spare_ctx.back();
  spare_ctx.pop_back();
  c->seq = seq;
  c->region = key_id;
  return c;
}

void UcxTransport::Impl::FreeRmaCtx(Ctx* c) {
  if (spare_ctx.size() >= kSpareNodes) {
    delete c;
    return;
  }
  spare_ctx.push_back(c);
}

// The parameters of a get or a flush whose end is RmaDone; *ctx is freed by the callback,
// or by the caller when UCX finished inside the call.
ucp_request_param_t UcxTransport::Impl::RmaDoneParams(uint64_t seq, uint64_t key_id, Ctx** ctx) {
  *ctx = NewRmaCtx(seq, key_id);
  ucp_request_param_t p{};
  p.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  p.user_data = *ctx;
  p.cb.send = [](void* req, ucs_status_t s, void* user) {
    auto* c = static_cast<Ctx*>(user);
    Impl* self = c->impl;
    const uint64_t done_seq = c->seq, done_key = c->region;
    self->FreeRmaCtx(c);
    ucp_request_free(req);
    self->RmaDone(done_seq, done_key, s);
  };
  return p;
}

// A WRITE is a put followed by a flush of the endpoint: the flush ends when every put
// before it is in the target's memory, which is when the task completes (the contract's
// "visible at the target when reported", and what orders a later notification after it).
// A READ is a get, complete when its bytes are in the local buffer.
void* UcxTransport::Impl::RmaCalls(uint64_t seq, uint64_t key_id, ucp_ep_h ep, ucp_rkey_h handle,
                                   const TransportTask& t, ucs_status_t* status) {
  auto* lp = reinterpret_cast<void*>(t.local_addr);
  Ctx* ctx = nullptr;
  if (t.kind == TransportTask::Kind::kRead) {
    Bump(gets);
    const ucp_request_param_t p = RmaDoneParams(seq, key_id, &ctx);
    void* req = ucp_get_nbx(ep, lp, t.length, t.remote_addr, handle, &p);
    if (UCS_PTR_IS_PTR(req)) return req;
    FreeRmaCtx(ctx);
    *status = UCS_PTR_STATUS(req);
    return nullptr;
  }
  Bump(puts);
  // The put has no callback of its own: the flush after it ends only once the put is in
  // the target's memory (so also once UCX stopped reading the source), and that is when
  // the op completes. A request UCX returns for it is released at once.
  // Planted (tidal-sim import's test): an eager-sized WRITE loses its last byte and is
  // still reported whole, as the target of the active-message path does.
  const bool planted = options.planted_bug == UcxBug::kWriteDropsLastByte && t.length > 1 &&
                       t.length <= kPlantedEagerMax;
  ucp_request_param_t p{};
  void* req = ucp_put_nbx(ep, lp, planted ? t.length - 1 : t.length, t.remote_addr, handle, &p);
  if (UCS_PTR_IS_PTR(req)) {
    ucp_request_free(req);
  } else if (UCS_PTR_STATUS(req) != UCS_OK) {
    *status = UCS_PTR_STATUS(req);
    return nullptr;
  }
  const ucp_request_param_t fp = RmaDoneParams(seq, key_id, &ctx);
  void* freq = ucp_ep_flush_nbx(ep, &fp);
  if (UCS_PTR_IS_PTR(freq)) return freq;
  FreeRmaCtx(ctx);
  *status = UCS_PTR_STATUS(freq);
  return nullptr;
}

void UcxTransport::Impl::IssueRma(uint64_t seq, uint64_t key_id, ucp_ep_h ep, ucp_rkey_h handle,
                                  const TransportTask& t) {
  ucs_status_t s = UCS_OK;
  void* req = RmaCalls(seq, key_id, ep, handle, t, &s);
  if (req == nullptr) {
    RmaDone(seq, key_id, s);
    return;
  }
  if (t.kind == TransportTask::Kind::kRead) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = ops.find(seq);
    if (it != ops.end() && it->second.receiving) it->second.request = req;
  }
}

// Submit's direct issue: RmaCalls, with the end decided by EndDirect (see DirectStart).
void UcxTransport::Impl::IssueDirect(const DirectStart& d) {
  ucs_status_t s = UCS_OK;
  void* req = RmaCalls(d.seq, d.key_id, d.ep, d.handle, d.task, &s);
  EndDirect(d, s, req);
}

void UcxTransport::Impl::EndDirect(const DirectStart& d, ucs_status_t s, void* request) {
  Dropped dropped;
  bool cancel = false;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto i = std::find(issuing.begin(), issuing.end(), d.task.task_id);
    TIDAL_ASSERT(i != issuing.end());
    issuing.erase(i);
    auto c = std::find(issuing_canceled.begin(), issuing_canceled.end(), d.task.task_id);
    const bool cancel_asked = c != issuing_canceled.end();
    if (cancel_asked) issuing_canceled.erase(c);
    if (request == nullptr) {
      // UCX finished inside the call: the completion now (a Cancel that came meanwhile
      // was answered OK; this completion is the one it promised).
      ReleaseKeyLocked(d.key_id, &dropped);
      TIDAL_ASSERT(d.region->local_in_flight > 0);
      --d.region->local_in_flight;
      const ErrorCode code = FromUcs(s);
      completions.push_back(
          TransportCompletion{d.task.task_id, code, code == ErrorCode::OK ? d.task.length : 0});
      completion_count.store(completions.size(), std::memory_order_release);
    } else {
      Op fresh;
      fresh.task = d.task;
      fresh.seq = d.seq;
      fresh.local_region = d.region->addr;
      fresh.started = true;
      fresh.send_active = d.task.kind == TransportTask::Kind::kWrite;
      fresh.receiving = !fresh.send_active;
      // A get's request can be cancelled; a put's flush is not (as IssueRma records them).
      fresh.request = fresh.receiving ? request : nullptr;
      fresh.canceled = cancel_asked;
      InsertReusing(ops, spare_ops, d.seq, fresh);
      own_ops.store(ops.size(), std::memory_order_relaxed);
      InsertReusing(seq_by_task, spare_seqs, d.task.task_id, d.seq);
      busy.fetch_add(1);
      cancel = cancel_asked && fresh.receiving;
    }
  }
  if (request == nullptr) {
    if (dropped.drop) DropRevoked(dropped.handle, dropped.ack_ep, dropped.rkey);
    Ready();
    return;
  }
  // Still with the worker held: the callback cannot have run yet.
  if (cancel) ucp_request_cancel(worker, request);
}

void UcxTransport::Impl::DropRevoked(ucp_rkey_h handle, ucp_ep_h ack_ep, uint64_t rkey) {
  if (handle != nullptr) DestroyRkey(handle);
  if (ack_ep == nullptr || stop.load()) return;
  auto* ctx = new Ctx(this, 0, 0, nullptr);
  ctx->body.resize(sizeof(RevokeHeader));
  const RevokeHeader h{rkey, uid};
  std::memcpy(ctx->body.data(), &h, sizeof(h));
  SendOwned(ack_ep, kRevokeAck, ctx, ctx->body.data(), sizeof(RevokeHeader), nullptr, 0);
}

// The target grants a key: a key of a region registered here now (never one being
// revoked), with the region's bounds and its packed rkey; the asker is recorded as a holder.
ucs_status_t UcxTransport::Impl::OnKeyReq(const void* header, size_t header_length, void* data,
                                          size_t length, const ucp_am_recv_param_t* param) {
  if (header_length != sizeof(KeyReqHeader) ||
      (param->recv_attr & UCP_AM_RECV_ATTR_FIELD_REPLY_EP) == 0 ||
      (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) != 0 || length == 0 ||
      length > kMaxWorkerAddress) {
    return UCS_OK;
  }
  KeyReqHeader h;
  std::memcpy(&h, header, sizeof(h));
  KeyRespHeader resp{h.rkey, uid, 0, 0, static_cast<int32_t>(ErrorCode::REMOTE_ACCESS_DENIED), 0};
  std::string packed;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto k = region_by_key.find(h.rkey);
    if (h.rkey != 0 && k != region_by_key.end() && options.one_sided) {
      Region& r = regions.at(k->second);
      resp.base = r.addr;
      resp.length = r.length;
      resp.code = static_cast<int32_t>(ErrorCode::OK);
      packed = r.packed;
      const bool known = std::any_of(r.holders.begin(), r.holders.end(),
                                     [&](const Region::Holder& x) { return x.uid == h.uid; });
      if (!known) r.holders.push_back(Region::Holder{h.uid});
      // The holder becomes a peer of this node (if it is not one already): the revocation
      // goes out on an endpoint of this node's own, whose failure drops the holder.
      bool peer_known = false;
      (void)PeerByUidLocked(h.uid, &peer_known);
      if (!peer_known) {
        peers.push_back(
            Peer{h.uid, std::string(static_cast<const char*>(data), length), nullptr, false});
      }
    }
  }
  // The header and the packed key, both read by UCX until the send completes.
  auto* ctx = new Ctx(this, 0, 0, nullptr);
  ctx->body.resize(sizeof(resp));
  std::memcpy(ctx->body.data(), &resp, sizeof(resp));
  ctx->body += packed;
  SendOwned(param->reply_ep, kKeyResp, ctx, ctx->body.data(), sizeof(resp),
            ctx->body.data() + sizeof(resp), packed.size());
  return UCS_OK;
}

ucs_status_t UcxTransport::Impl::OnKeyResp(const void* header, size_t header_length, void* data,
                                           size_t length, const ucp_am_recv_param_t* param) {
  if (header_length != sizeof(KeyRespHeader) ||
      (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) != 0 || length > kMaxPackedKey) {
    return UCS_OK;
  }
  KeyRespHeader h;
  std::memcpy(&h, header, sizeof(h));
  PeerId peer = 0;
  uint64_t key_id = 0;
  ucp_ep_h ep = nullptr;
  std::vector<uint64_t> waiting;
  {
    std::lock_guard<std::mutex> lock(mu);
    bool found = false;
    peer = PeerByUidLocked(h.uid, &found);
    if (!found) return UCS_OK;
    auto id = key_ids.find({peer, h.rkey});
    if (id == key_ids.end()) return UCS_OK;
    RemoteKey& k = remote_keys.at(id->second);
    if (k.handle != nullptr) return UCS_OK;  // answered already
    key_id = id->second;
    ep = peers[peer].ep;
    const ErrorCode code = static_cast<ErrorCode>(h.code);
    if (code != ErrorCode::OK || ep == nullptr || length == 0) {
      // Refused (a wrong, foreign or stale key): every op waiting for it is refused, and
      // the next use of the key asks again.
      waiting = std::move(k.waiting);
      remote_keys.erase(id->second);
      key_ids.erase(id);
      for (uint64_t seq : waiting) {
        if (ops.count(seq) != 0) {
          CompleteLocked(seq, code != ErrorCode::OK ? code : ErrorCode::PEER_UNREACHABLE, 0);
        }
      }
      key_id = 0;
    }
  }
  if (key_id == 0) {
    Ready();
    return UCS_OK;
  }
  ucp_rkey_h handle = nullptr;
  const ucs_status_t s = ucp_ep_rkey_unpack(ep, data, &handle);
  void* mapped = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = remote_keys.find(key_id);
    TIDAL_ASSERT(it != remote_keys.end());
    RemoteKey& k = it->second;
    waiting = std::move(k.waiting);
    k.waiting.clear();
    if (s != UCS_OK) {
      remote_keys.erase(it);
      key_ids.erase({peer, h.rkey});
      for (uint64_t seq : waiting) {
        if (ops.count(seq) != 0) CompleteLocked(seq, ErrorCode::TRANSFER_FAIL, 0);
      }
      waiting.clear();
    } else {
      k.handle = handle;
      k.base = h.base;
      k.length = h.length;
      k.mapped =
          ucp_rkey_ptr(handle, h.base, &mapped) == UCS_OK ? static_cast<uint8_t*>(mapped) : nullptr;
    }
  }
  if (s != UCS_OK) {
    Ready();
    return UCS_OK;
  }
  if (mapped != nullptr) QueuePrefault(key_id, mapped, h.length);
  for (uint64_t seq : waiting) IssueChecked(seq);
  return UCS_OK;
}

// A holder is told to drop a key: it stops granting new accesses under it at once (the
// next use asks the target again, and is refused), and acknowledges once UCX has finished
// every put and get already issued on it.
ucs_status_t UcxTransport::Impl::OnRevoke(const void* header, size_t header_length) {
  if (header_length != sizeof(RevokeHeader)) return UCS_OK;
  if (options.planted_bug == UcxBug::kIgnoresRevocations) return UCS_OK;
  RevokeHeader h;
  std::memcpy(&h, header, sizeof(h));
  ucp_rkey_h handle = nullptr;
  ucp_ep_h ack_ep = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu);
    bool found = false;
    const PeerId peer = PeerByUidLocked(h.uid, &found);
    if (!found) return UCS_OK;  // not a peer of ours: nothing of its is held here
    ack_ep = peers[peer].ep;
    auto id = key_ids.find({peer, h.rkey});
    if (id != key_ids.end() && remote_keys.at(id->second).handle != nullptr) {
      keys_revoked.fetch_add(1, std::memory_order_relaxed);
      RemoteKey& k = remote_keys.at(id->second);
      k.revoked = true;
      k.ack_ep = ack_ep;
      const uint64_t key_id = id->second;
      key_ids.erase(id);
      if (k.in_flight != 0) return UCS_OK;  // acknowledged by the last RmaDone
      handle = k.handle;
      remote_keys.erase(key_id);
    }
  }
  DropRevoked(handle, ack_ep, h.rkey);
  return UCS_OK;
}

void UcxTransport::Impl::DropHolder(uint64_t rkey, uint64_t holder_uid) {
  std::lock_guard<std::mutex> lock(mu);
  for (auto& [addr, r] : regions) {
    if (r.rkey != rkey) continue;
    std::erase_if(r.holders, [&](const Region::Holder& x) { return x.uid == holder_uid; });
  }
}

ucs_status_t UcxTransport::Impl::OnRevokeAck(const void* header, size_t header_length) {
  if (header_length != sizeof(RevokeHeader)) return UCS_OK;
  RevokeHeader h;
  std::memcpy(&h, header, sizeof(h));
  DropHolder(h.rkey, h.uid);
  return UCS_OK;
}

// ---- UcxTransport -----------------------------------------------------------------------

UcxTransport::UcxTransport(UcxTransportOptions options)
    : impl_(std::make_unique<Impl>(options)) {}

UcxTransport::~UcxTransport() {
  if (!impl_->crashed.load()) impl_->Destroy();
}

TransportCaps UcxTransport::Capabilities() const {
  TransportCaps caps{true, false, false, true};
  caps.copies_now = impl_->options.one_sided && impl_->options.copy_now;
  return caps;
}

Status UcxTransport::Install(const TransportInstall& install) {
  if (impl_->worker != nullptr) {
    return Status(ErrorCode::INVALID_PARAMS, "ucx transport already installed");
  }
  if (install.env == nullptr || !install.on_ready) {
    return Status(ErrorCode::INVALID_PARAMS, "install needs an env and on_ready");
  }
  Status s = impl_->Start(install);
  if (!s.ok()) impl_->Destroy();
  return s;
}

std::string UcxTransport::LocalAddress() const {
  return EncodeAddress(impl_->uid, impl_->worker_address);
}

Result<uint64_t> UcxTransport::RegisterMemory(uint64_t addr, uint64_t length, Location loc) {
  Impl& m = *impl_;
  if (m.crashed.load() || m.worker == nullptr) {
    return Status(ErrorCode::REGISTRATION_FAILED, "ucx transport is not running");
  }
  if (!loc.is_host()) {
    return Status(ErrorCode::REGISTRATION_FAILED, "ucx transport registers host memory only");
  }
  // Registration with UCX pins and registers the range with every memory domain, so the
  // rendezvous protocol moves it zero-copy; the key peers present is ours, not UCX's.
  // On the calling thread, under the worker lock (UCP calls are serialized by it).
  std::lock_guard<std::mutex> wl(m.wmu);
  // Memory from AllocateHostMemory is mapped already: its block's handle serves.
  ucp_mem_h memh = nullptr;
  {
    std::lock_guard<std::mutex> lock(m.mu);
    auto a = m.allocations.upper_bound(addr);
    if (a != m.allocations.begin()) {
      --a;
      if (addr - a->first < a->second.length && length <= a->second.length - (addr - a->first)) {
        memh = a->second.memh;
      }
    }
  }
  const bool owned = memh == nullptr;
  if (owned) {
    ucp_mem_map_params_t mp{};
    mp.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH;
    mp.address = reinterpret_cast<void*>(addr);
    mp.length = length;
    if (ucp_mem_map(m.context, &mp, &memh) != UCS_OK || memh == nullptr) {
      return Status(ErrorCode::REGISTRATION_FAILED, "ucp_mem_map failed");
    }
  }
  std::string packed;
  if (m.options.one_sided) {
    void* buffer = nullptr;
    size_t size = 0;
    const ucs_status_t ps = ucp_rkey_pack(m.context, memh, &buffer, &size);
    if (ps != UCS_OK) {
      if (owned) ucp_mem_unmap(m.context, memh);
      return Status(ErrorCode::REGISTRATION_FAILED,
                    std::string("ucp_rkey_pack failed: ") + ucs_status_string(ps));
    }
    packed.assign(static_cast<const char*>(buffer), size);
    ucp_rkey_buffer_release(buffer);
  }
  std::lock_guard<std::mutex> lock(m.mu);
  if (m.FindLocalLocked(addr, 1) != nullptr || m.FindLocalLocked(addr + length - 1, 1) != nullptr ||
      m.regions.lower_bound(addr) != m.regions.lower_bound(addr + length)) {
    if (owned) ucp_mem_unmap(m.context, memh);
    return Status(ErrorCode::REGISTRATION_FAILED, "range overlaps a registered region");
  }
  uint64_t rkey = 0;
  do {
    rkey = m.keys();
  } while (rkey == 0 || m.region_by_key.count(rkey) != 0);
  Impl::Region region;
  region.addr = addr;
  region.length = length;
  region.rkey = rkey;
  region.memh = memh;
  region.packed = std::move(packed);
  region.owned = owned;
  m.regions[addr] = std::move(region);
  m.region_by_key[rkey] = addr;
  return rkey;
}

Status UcxTransport::UnregisterMemory(uint64_t addr, uint64_t length) {
  Impl& m = *impl_;
  ucp_mem_h memh = nullptr;
  bool owned = true;
  uint64_t rkey = 0;
  std::vector<Impl::Region::Holder> holders;
  {
    std::lock_guard<std::mutex> lock(m.mu);
    auto it = m.regions.find(addr);
    if (it == m.regions.end() || it->second.length != length) {
      return Status(ErrorCode::INVALID_PARAMS, "no region registered at this address");
    }
    if (it->second.local_in_flight != 0 || it->second.remote_in_flight != 0) {
      return Status(ErrorCode::BATCH_BUSY, "transfers in flight use this region");
    }
    // From here no new access is admitted (or, one-sided, no key granted): the key is gone
    // from the table.
    Impl::Region& r = it->second;
    m.region_by_key.erase(r.rkey);
    rkey = r.rkey;
    holders = r.holders;
  }
  if (!holders.empty() && !m.crashed.load()) {
    // One-sided: peers hold the packed rkey and reach the memory without asking. Each is
    // told to drop it, and answers once its puts and gets on it have ended; the worker is
    // progressed here (its answers, and over tcp the puts UCX emulates, need it).
    std::lock_guard<std::mutex> wl(m.wmu);
    for (const Impl::Region::Holder& h : holders) {
      PeerId peer = 0;
      {
        std::lock_guard<std::mutex> lock(m.mu);
        bool found = false;
        peer = m.PeerByUidLocked(h.uid, &found);
        TIDAL_ASSERT(found);
      }
      ucp_ep_h ep = m.EnsureEp(peer);
      if (ep == nullptr) {  // unreachable: it cannot reach us either
        m.DropHolder(rkey, h.uid);
        continue;
      }
      auto* ctx = new Impl::Ctx(&m, h.uid, 0, nullptr);
      ctx->body.resize(sizeof(RevokeHeader));
      const RevokeHeader rh{rkey, m.uid};
      std::memcpy(ctx->body.data(), &rh, sizeof(rh));
      ctx->req.rkey = rkey;
      ucp_request_param_t p{};
      p.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
      p.user_data = ctx;
      p.cb.send = [](void* req, ucs_status_t s, void* user) {
        auto* c = static_cast<Impl::Ctx*>(user);
        // A holder that cannot be reached (its connection failed) cannot reach us either.
        if (s != UCS_OK) c->impl->DropHolder(c->req.rkey, c->seq);
        delete c;
        ucp_request_free(req);
      };
      m.revokes_sent.fetch_add(1, std::memory_order_relaxed);
      void* req =
          ucp_am_send_nbx(ep, kRevoke, ctx->body.data(), sizeof(RevokeHeader), nullptr, 0, &p);
      if (!UCS_PTR_IS_PTR(req)) {
        if (UCS_PTR_STATUS(req) != UCS_OK) m.DropHolder(rkey, h.uid);
        delete ctx;
      }
    }
    const uint64_t deadline = MonoNs() + m.options.revoke_timeout_ns;
    for (;;) {
      m.RunCommands();
      const bool any = ucp_worker_progress(m.worker) != 0;
      {
        std::lock_guard<std::mutex> lock(m.mu);
        if (m.regions.at(addr).holders.empty()) break;
      }
      if (MonoNs() > deadline) break;
      if (!any) std::this_thread::yield();
    }
  }
  {
    std::lock_guard<std::mutex> lock(m.mu);
    auto it = m.regions.find(addr);
    TIDAL_ASSERT(it != m.regions.end());
    if (!it->second.holders.empty() && !m.crashed.load()) {
      return Status(ErrorCode::BATCH_BUSY,
                    std::to_string(it->second.holders.size()) +
                        " peer(s) holding this region's key did not release it within " +
                        std::to_string(m.options.revoke_timeout_ns / 1'000'000) +
                        " ms: the region stays registered (its key is no longer granted); "
                        "call again to ask them again");
    }
    memh = it->second.memh;
    owned = it->second.owned;
    m.regions.erase(it);
  }
  if (m.crashed.load() || !owned) return Status();
  std::lock_guard<std::mutex> wl(m.wmu);
  ucp_mem_unmap(m.context, memh);
  return Status();
}

Result<void*> UcxTransport::AllocateHostMemory(uint64_t length) {
  Impl& m = *impl_;
  if (m.crashed.load() || m.worker == nullptr) {
    return Status(ErrorCode::REGISTRATION_FAILED, "ucx transport is not running");
  }
  if (length == 0) return Status(ErrorCode::INVALID_PARAMS, "zero-length allocation");
  std::lock_guard<std::mutex> wl(m.wmu);
  ucp_mem_map_params_t mp{};
  mp.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH |
                  UCP_MEM_MAP_PARAM_FIELD_FLAGS;
  mp.address = nullptr;
  mp.length = length;
  mp.flags = UCP_MEM_MAP_ALLOCATE;
  ucp_mem_h memh = nullptr;
  const ucs_status_t s = ucp_mem_map(m.context, &mp, &memh);
  if (s != UCS_OK || memh == nullptr) {
    return Status(ErrorCode::REGISTRATION_FAILED,
                  std::string("ucp_mem_map(ALLOCATE) failed: ") + ucs_status_string(s));
  }
  ucp_mem_attr_t attr{};
  attr.field_mask = UCP_MEM_ATTR_FIELD_ADDRESS | UCP_MEM_ATTR_FIELD_LENGTH;
  if (ucp_mem_query(memh, &attr) != UCS_OK || attr.address == nullptr || attr.length < length) {
    ucp_mem_unmap(m.context, memh);
    return Status(ErrorCode::REGISTRATION_FAILED, "ucp_mem_query of an allocation failed");
  }
  std::memset(attr.address, 0, length);
  std::lock_guard<std::mutex> lock(m.mu);
  m.allocations[reinterpret_cast<uint64_t>(attr.address)] = Impl::Allocation{length, memh};
  return attr.address;
}

Result<PeerId> UcxTransport::Connect(const SegmentDescriptor& peer) {
  uint64_t uid = 0;
  std::string worker;
  if (!DecodeAddress(peer.address, &uid, &worker)) {
    return Status(ErrorCode::SEGMENT_NOT_FOUND,
                  "segment '" + peer.name + "' has no ucx address this transport can reach");
  }
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  for (size_t i = 0; i < m.peers.size(); ++i) {
    if (m.peers[i].uid == uid) return static_cast<PeerId>(i);
  }
  // The endpoint is created by the progress thread before this peer's first task.
  m.peers.push_back(Impl::Peer{uid, std::move(worker), nullptr, false});
  return static_cast<PeerId>(m.peers.size() - 1);
}

void UcxTransport::Submit(std::span<const TransportTask> tasks, std::span<Status> accepted) {
  TIDAL_ASSERT(tasks.size() == accepted.size());
  Impl& m = *impl_;
  // The worker, when free: the tasks then leave on this thread (as Run does), after the
  // commands queued before them.
  std::unique_lock<std::mutex> wl;
  const bool worker = m.TakeWorker(wl);
  // One-sided mode with the worker held: a task whose endpoint exists and whose key is
  // granted and direct is issued straight from here, its key counted in flight under the
  // lock that checks it, and recorded only if UCX did not finish it inside the call
  // (IssueDirect); any other is recorded now and started by StartOp. In submission order.
  struct Start {
    bool direct = false;
    Impl::DirectStart d;  // d.seq for every task; the rest only when direct
  };
  // Inline for the common batch sizes: no allocation on the way to UCX.
  boost::container::small_vector<Start, 8> started;
  {
    std::lock_guard<std::mutex> lock(m.mu);
    for (size_t i = 0; i < tasks.size(); ++i) {
      const TransportTask& t = tasks[i];
      if (m.crashed.load()) {
        accepted[i] = Status(ErrorCode::PEER_UNREACHABLE, "this node has crashed");
        continue;
      }
      if (t.peer >= m.peers.size()) {
        accepted[i] = Status(ErrorCode::INVALID_PARAMS, "unknown peer id");
        continue;
      }
      if (m.seq_by_task.count(t.task_id) != 0 ||
          std::find(m.issuing.begin(), m.issuing.end(), t.task_id) != m.issuing.end()) {
        accepted[i] = Status(ErrorCode::INVALID_PARAMS, "task id already outstanding");
        continue;
      }
      Impl::Region* region = nullptr;
      if (t.kind != TransportTask::Kind::kProbe) {
        if (t.length == 0) {
          accepted[i] = Status(ErrorCode::INVALID_PARAMS, "zero-length task");
          continue;
        }
        region = m.FindLocalLocked(t.local_addr, t.length);
        if (region == nullptr) {
          accepted[i] = Status(ErrorCode::ADDRESS_NOT_REGISTERED,
                               "local range is not inside one registered region");
          continue;
        }
        ++region->local_in_flight;
      }
      const uint64_t seq = m.next_seq++;
      if (t.kind == TransportTask::Kind::kWrite) {
        ++m.writes;
        m.write_bytes += t.length;
      }
      accepted[i] = Status();
      Start& st = started.emplace_back();
      st.d.seq = seq;
      if (worker && m.options.one_sided && t.kind != TransportTask::Kind::kProbe) {
        const Impl::Peer& p = m.peers[t.peer];
        if (!p.failed && p.ep != nullptr && m.TakeDirectKeyLocked(t, &st.d.key_id, &st.d.handle)) {
          st.direct = true;
          st.d.ep = p.ep;
          st.d.region = region;
          st.d.task = t;
          m.issuing.push_back(t.task_id);
          continue;
        }
      }
      Impl::Op fresh;
      fresh.task = t;
      fresh.seq = seq;
      fresh.local_region = region != nullptr ? region->addr : 0;
      Impl::InsertReusing(m.ops, m.spare_ops, seq, fresh);
      m.own_ops.store(m.ops.size(), std::memory_order_relaxed);
      Impl::InsertReusing(m.seq_by_task, m.spare_seqs, t.task_id, seq);
      if (t.kind == TransportTask::Kind::kProbe) m.probes.fetch_add(1, std::memory_order_relaxed);
      m.busy.fetch_add(1);
    }
  }
  if (started.empty()) return;
  if (!worker) {
    // The progress thread holds the worker (it is awake): it starts them.
    // A std::vector: a small_vector copied into the std::function trips GCC 12's
    // -Wstringop-overread.
    std::vector<uint64_t> seqs;
    seqs.reserve(started.size());
    for (const Start& st : started) seqs.push_back(st.d.seq);
    m.Post([&m, seqs = std::move(seqs)] {
      for (uint64_t seq : seqs) m.StartOp(seq);
    });
    return;
  }
  for (const Start& st : started) {
    if (st.direct) {
      m.IssueDirect(st.d);
    } else {
      m.StartOp(st.d.seq);
    }
  }
  m.GiveWorker(wl);
}

bool UcxTransport::TryCopyNow(const TransportTask& t) {
  Impl& m = *impl_;
  if (!m.options.one_sided || !m.options.copy_now || t.length == 0 ||
      t.kind == TransportTask::Kind::kProbe) {
    return false;
  }
  const bool write = t.kind == TransportTask::Kind::kWrite;
  uint64_t key_id = 0;
  ucp_rkey_h handle = nullptr;
  uint8_t* remote = nullptr;
  Impl::Region* region = nullptr;
  {
    std::lock_guard<std::mutex> lock(m.mu);
    if (m.crashed.load() || t.peer >= m.peers.size() || m.peers[t.peer].failed) return false;
    region = m.FindLocalLocked(t.local_addr, t.length);
    // The key counted in flight: a revocation drops it (and UCX unmaps) only after the copy.
    if (region == nullptr || !m.TakeDirectKeyLocked(t, &key_id, &handle, &remote)) return false;
    ++region->local_in_flight;
    if (write) {
      ++m.writes;
      m.write_bytes += t.length;
    }
  }
  auto* local = reinterpret_cast<uint8_t*>(t.local_addr);
  if (write) {
    // Planted (tidal-sim import's test): an eager-sized WRITE loses its last byte and is
    // still reported whole, as on the other paths.
    const bool planted = m.options.planted_bug == UcxBug::kWriteDropsLastByte && t.length > 1 &&
                         t.length <= kPlantedEagerMax;
    std::memcpy(remote, local, planted ? t.length - 1 : t.length);
    // The copy's stores before anything this thread stores later (a notification's, the
    // peer reads them after it; glibc ends its non-temporal copies with a store fence).
    std::atomic_thread_fence(std::memory_order_release);
  } else {
    std::memcpy(local, remote, t.length);
  }
  Impl::Bump(m.copies);
  Impl::Dropped dropped;
  {
    std::lock_guard<std::mutex> lock(m.mu);
    m.ReleaseKeyLocked(key_id, &dropped);
    TIDAL_ASSERT(region->local_in_flight > 0);
    --region->local_in_flight;
  }
  if (dropped.drop) {
    // The last use of a key the peer revoked meanwhile: dropped, and the revocation
    // acknowledged, with the worker held (UCX calls).
    m.Run([&m, dropped] { m.DropRevoked(dropped.handle, dropped.ack_ep, dropped.rkey); });
  }
  return true;
}

size_t UcxTransport::PollCompletions(std::span<TransportCompletion> out) {
  Impl& m = *impl_;
  if (m.completion_count.load(std::memory_order_acquire) == 0) return 0;
  std::lock_guard<std::mutex> lock(m.mu);
  size_t n = 0;
  while (n < out.size() && !m.completions.empty()) {
    out[n++] = m.completions.front();
    m.completions.pop_front();
  }
  m.completion_count.store(m.completions.size(), std::memory_order_release);
  return n;
}

Status UcxTransport::Cancel(uint64_t task_id) {
  Impl& m = *impl_;
  void* request = nullptr;
  {
    std::lock_guard<std::mutex> lock(m.mu);
    auto s = m.seq_by_task.find(task_id);
    if (s == m.seq_by_task.end()) {
      // Finished with its completion not yet polled: that queued completion is the one.
      for (const TransportCompletion& c : m.completions) {
        if (c.task_id == task_id) return Status();
      }
      // Being issued by Submit on the worker's holder: it completes (OK if UCX finished
      // it inside the call) or is recorded, and then cancelled as below.
      if (std::find(m.issuing.begin(), m.issuing.end(), task_id) != m.issuing.end()) {
        if (std::find(m.issuing_canceled.begin(), m.issuing_canceled.end(), task_id) ==
            m.issuing_canceled.end()) {
          m.issuing_canceled.push_back(task_id);  // at most once: a subset of `issuing`
        }
        return Status();
      }
      return Status(ErrorCode::INVALID_PARAMS, "no outstanding task " + std::to_string(task_id));
    }
    Impl::Op& op = m.ops.at(s->second);
    if (!op.send_active && !op.receiving) {
      // UCX holds neither buffer: the task completes now and a late answer is dropped.
      m.CompleteLocked(s->second, ErrorCode::TRANSFER_CANCELED, 0);
    } else {
      // UCX is reading the source or writing the target buffer: ask it to stop; the
      // completion follows when it lets go of the buffer.
      op.canceled = true;
      request = op.request;
    }
  }
  if (request != nullptr) {
    m.Run([&m, task_id] {
      void* req = nullptr;
      {
        std::lock_guard<std::mutex> lock(m.mu);
        auto s = m.seq_by_task.find(task_id);
        if (s == m.seq_by_task.end()) return;
        req = m.ops.at(s->second).request;
      }
      if (req != nullptr) ucp_request_cancel(m.worker, req);
    });
  } else {
    m.Ready();
  }
  return Status();
}

Status UcxTransport::SendNotify(PeerId peer, std::string_view payload) {
  Impl& m = *impl_;
  if (m.crashed.load()) return Status(ErrorCode::PEER_UNREACHABLE, "this node has crashed");
  {
    std::lock_guard<std::mutex> lock(m.mu);
    if (peer >= m.peers.size()) return Status(ErrorCode::INVALID_PARAMS, "unknown peer id");
    if (m.peers[peer].failed) return Status(ErrorCode::PEER_UNREACHABLE, "peer failed");
  }
  ByteWriter w;
  w.Str(m.install.segment_name);
  w.Bytes(payload);
  m.notifies_sent.fetch_add(1);
  // Every WRITE completed before this call was acknowledged by the target after its data
  // landed, so this message, sent later, arrives after that data.
  m.Run([&m, peer, body = w.Take()]() mutable {
    ucp_ep_h ep = m.EnsureEp(peer);
    if (ep == nullptr) return;  // the peer failed: the notification is lost with it
    auto* ctx = new Impl::Ctx(&m, 0, 0, nullptr);
    ctx->body = std::move(body);
    m.SendOwned(ep, kNotify, ctx, nullptr, 0, ctx->body.data(), ctx->body.size());
  });
  return Status();
}

size_t UcxTransport::PollNotifies(std::vector<Notification>& out, size_t max) {
  Impl& m = *impl_;
  if (m.notify_count.load(std::memory_order_acquire) == 0) return 0;
  std::lock_guard<std::mutex> lock(m.mu);
  size_t n = 0;
  while (n < max && !m.notifies.empty()) {
    out.push_back(std::move(m.notifies.front()));
    m.notifies.pop_front();
    ++n;
  }
  m.notify_count.store(m.notifies.size(), std::memory_order_release);
  return n;
}

void UcxTransport::Crash() {
  Impl& m = *impl_;
  if (m.crashed.exchange(true)) return;
  m.Destroy();
  std::lock_guard<std::mutex> lock(m.mu);
  m.ops.clear();
  m.own_ops.store(0);
  m.seq_by_task.clear();
  m.issuing.clear();
  m.issuing_canceled.clear();
  m.completions.clear();
  m.notifies.clear();
  m.completion_count.store(0);
  m.notify_count.store(0);
  m.commands.clear();
  m.queued.store(0);
  m.probes.store(0);
  m.busy.store(0);
}

UcxTransportStats UcxTransport::stats() const {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  UcxTransportStats s;
  s.outstanding = m.ops.size();
  s.target_in_flight = m.target_in_flight;
  s.notifies_sent = m.notifies_sent.load();
  s.notifies_received = m.notifies_received.load();
  s.direct_calls = m.direct.load();
  s.writes = m.writes;
  s.write_bytes = m.write_bytes;
  s.waits = m.waits.load();
  s.busy_timeouts = m.busy_timeouts.load();
  s.idle_timeouts = m.idle_timeouts.load();
  s.stalls = m.stalls.load();
  s.spin_rounds = m.spin_rounds.load();
  s.signals = m.signals.load();
  s.caller_poll_calls = m.caller_poll_calls.load();
  s.caller_polls = m.caller_polls.load();
  s.loop_driven = m.loop_polls.load();
  s.loop_handbacks = m.loop_handbacks.load();
  s.standby_waits = m.standby_waits.load();
  s.standby_rounds = m.standby_rounds.load();
  s.key_fetches = m.key_fetches.load();
  s.puts = m.puts.load();
  s.gets = m.gets.load();
  s.copies = m.copies.load();
  s.keys_revoked = m.keys_revoked.load();
  s.revokes_sent = m.revokes_sent.load();
  s.crashed = m.crashed.load();
  return s;
}

}  // namespace tidal::backends::ucx
