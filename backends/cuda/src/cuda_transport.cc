#include "tidal/backends/cuda/cuda_transport.h"

#include <cuda.h>  // types only: the driver is reached through cudaGetDriverEntryPoint
#include <cuda_runtime_api.h>
#include <cudaTypedefs.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <random>
#include <thread>

#include "cuda_ipc.h"
#include "tidal/assert.h"
#include "tidal/backends/real_env.h"
#include "tidal/codec.h"

namespace tidal::backends::cuda {

namespace {

std::string CudaError(const char* what, cudaError_t e) {
  return std::string(what) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
}

// Device memory (cudaMalloc) or managed memory: a copy must go through the GPU.
bool OnGpu(int type) { return type == cudaMemoryTypeDevice || type == cudaMemoryTypeManaged; }

// The process's transports by address. Endpoints are shared so a peer that goes away
// while another node still holds it is only marked dead, never freed under it.
struct Domain {
  std::mutex mu;
  std::map<std::string, std::weak_ptr<CudaTransport::Endpoint>> endpoints;
  std::atomic<uint64_t> serial{1};
  std::mutex peer_mu;
  std::set<std::pair<int, int>> peer_enabled;  // (from, to) device pairs with peer access
  // CUDA IPC mappings of other processes' allocations, one per allocation (a handle is
  // opened once per process), by the handle's bytes.
  std::mutex mapping_mu;
  std::map<std::string, std::weak_ptr<struct Mapping>> mappings;
};

Domain& TheDomain() {
  static Domain* d = new Domain();  // never destroyed: transports may outlive statics
  return *d;
}

// Enables peer access from device `a` to device `b` once per process (and keeps going
// without it where the pair cannot: cudaMemcpyPeerAsync then stages through the host).
void EnablePeerAccess(int a, int b) {
  if (a == b) return;
  Domain& d = TheDomain();
  std::lock_guard<std::mutex> lock(d.peer_mu);
  if (!d.peer_enabled.insert({a, b}).second) return;
  int can = 0;
  if (cudaDeviceCanAccessPeer(&can, a, b) != cudaSuccess || !can) return;
  int current = 0;
  cudaGetDevice(&current);
  cudaSetDevice(a);
  cudaError_t e = cudaDeviceEnablePeerAccess(b, 0);
  if (e == cudaErrorPeerAccessAlreadyEnabled) (void)cudaGetLastError();
  cudaSetDevice(current);
}

// The base of the allocation holding device address `p` (cuMemGetAddressRange, found
// through the runtime so that nothing links libcuda, which machines without a GPU lack).
bool AllocationBase(uint64_t p, uint64_t* base) {
  static PFN_cuMemGetAddressRange_v3020 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion("cuMemGetAddressRange", &f, 12000, cudaEnableDefault,
                                         &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess) {
      (void)cudaGetLastError();
      f = nullptr;
    }
    return reinterpret_cast<PFN_cuMemGetAddressRange_v3020>(f);
  }();
  if (fn == nullptr) return false;
  CUdeviceptr b = 0;
  size_t size = 0;
  if (fn(&b, &size, static_cast<CUdeviceptr>(p)) != CUDA_SUCCESS) return false;
  *base = static_cast<uint64_t>(b);
  return true;
}

// An allocation of another process opened with cudaIpcOpenMemHandle; closed when the last
// user lets go (the transports that cached it for a live region, and copies in flight).
struct Mapping {
  std::string key;
  void* base = nullptr;
  int device = 0;  // the GPU of this process whose context holds the mapping
  ~Mapping();
};

Mapping::~Mapping() {
  Domain& d = TheDomain();
  std::lock_guard<std::mutex> lock(d.mapping_mu);  // no reopen of the handle until closed
  int current = 0;
  cudaGetDevice(&current);
  cudaSetDevice(device);
  if (cudaIpcCloseMemHandle(base) != cudaSuccess) (void)cudaGetLastError();
  cudaSetDevice(current);
  auto it = d.mappings.find(key);
  if (it != d.mappings.end() && it->second.expired()) d.mappings.erase(it);
}

// The process's mapping of a peer's exported allocation, opened on first use in the context
// of `access_device` (the GPU whose copy engines will move its bytes: copies from there
// run at peer-to-peer speed; -1: the allocation's own GPU). A handle opens once per
// process, so a later copy from another GPU uses the mapping it has (cudaMemcpyPeerAsync).
Result<std::shared_ptr<Mapping>> OpenMapping(const ipc::Slot& slot, int access_device) {
  int device = access_device;
  if (device < 0) {
    cudaError_t e = cudaDeviceGetByPCIBusId(&device, slot.bus_id);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      return Status(ErrorCode::TRANSFER_FAIL, std::string("the peer's GPU ") + slot.bus_id +
                                                  " is not visible in this process: " +
                                                  CudaError("cudaDeviceGetByPCIBusId", e));
    }
  }
  std::string key(reinterpret_cast<const char*>(slot.handle), ipc::kIpcHandleBytes);
  Domain& d = TheDomain();
  std::lock_guard<std::mutex> lock(d.mapping_mu);
  auto it = d.mappings.find(key);
  if (it != d.mappings.end()) {
    if (std::shared_ptr<Mapping> m = it->second.lock()) return m;
  }
  cudaIpcMemHandle_t h;
  std::memcpy(&h, slot.handle, sizeof(h));
  int current = 0;
  cudaGetDevice(&current);
  cudaSetDevice(device);
  void* base = nullptr;
  cudaError_t e = cudaIpcOpenMemHandle(&base, h, cudaIpcMemLazyEnablePeerAccess);
  cudaSetDevice(current);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return Status(ErrorCode::TRANSFER_FAIL, CudaError("cudaIpcOpenMemHandle", e));
  }
  auto m = std::make_shared<Mapping>();
  m->key = key;
  m->base = base;
  m->device = device;
  d.mappings[key] = m;
  return m;
}

}  // namespace

Result<int> CudaDeviceCount() {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return Status(ErrorCode::UNSUPPORTED, "no CUDA device: " + CudaError("cudaGetDeviceCount", e));
  }
  if (n <= 0) {
    return Status(ErrorCode::UNSUPPORTED, "no CUDA device: cudaGetDeviceCount found 0 devices");
  }
  return n;
}

struct CudaTransport::Endpoint {
  std::string address;
  std::string name;  // the node's segment name, the source of its notifications
  std::mutex mu;
  MemoryRegistry regions;                 // guarded by mu; in-flight counts pin regions
  std::map<uint64_t, int> memory_type;    // region start -> cudaMemoryType; guarded by mu
  bool alive = true;                      // guarded by mu
  std::deque<Notification> inbox;         // guarded by mu
  std::function<void()> on_ready;         // set at Install, then constant
};

struct CudaTransport::Remote {
  std::string address;
  ipc::Identity who;
  ipc::Board* board = nullptr;
  // When a ping last found it alive (executor only): Submit pings at most once a
  // millisecond; a completion always pings (so a peer that died under a copy fails it).
  std::chrono::steady_clock::time_point alive_at{};
  // The mappings of its exported regions, by slot generation (executor only): dropped
  // when the generation leaves the board (unregistered, or registered again).
  std::map<uint64_t, std::shared_ptr<Mapping>> mappings;
  ~Remote() { ipc::CloseBoard(board); }
};

struct CudaTransport::State {
  // How a task moves its bytes: a copy on a CUDA stream (completion by event), or one the
  // progress thread makes: memmove between host ranges of this process, process_vm
  // between this process's host memory and another's, or staged through a pinned bounce
  // buffer between this process's GPU memory and another's host memory.
  enum class Op : uint8_t { kGpu, kHostMove, kVm, kStaged };
  struct InFlight {
    TransportTask task;
    int device = 0;
    uint64_t local_region = 0;
    std::shared_ptr<Endpoint> target;  // an in-process target, or
    uint64_t target_region = 0;
    std::shared_ptr<Remote> remote;    // a target in another process, pinned at
    int slot = -1;                     // this slot of its board
    std::shared_ptr<Mapping> mapping;  // the IPC mapping the copy uses (kept open)
    Op op = Op::kGpu;
    void* dst = nullptr;  // kHostMove
    const void* src = nullptr;
    void* local = nullptr;  // kVm, kStaged: the local range and the peer's address
    uint64_t remote_addr = 0;
    bool write = false;
  };
  // Copies one Submit queued on one stream, completed by one event recorded after the last
  // of them: a stream runs its copies in order, so when the event has fired every copy of
  // the group has finished (and every earlier group of that stream too).
  struct Group {
    cudaEvent_t event = nullptr;
    int device = 0;
    std::vector<uint64_t> tasks;  // in submission order
  };
  std::mutex mu;
  std::condition_variable cv;
  std::map<uint64_t, InFlight> in_flight;            // guarded by mu
  std::map<cudaStream_t, std::deque<Group>> groups;  // per stream, oldest first; guarded by mu
  std::deque<TransportCompletion> done;              // guarded by mu
  std::map<int, std::vector<cudaEvent_t>> free_events;  // by device; guarded by mu
  bool stop = false;                                 // guarded by mu
  bool crashed = false;                              // guarded by mu
  std::atomic<uint64_t> enqueued{0};                 // copies handed to the progress thread
  std::atomic<uint64_t> idle_spin_ns{50'000};
  std::atomic<uint64_t> n_copies{0}, n_events{0}, n_queries{0};  // Counters()
  std::atomic<uint64_t> n_batches{0};
  std::atomic<uint64_t> n_lane_copies{0};  // copies queued on a stream other than a pair's first
  std::atomic<bool> batch_copies{true};  // SetBatchCopies (default on)
  std::atomic<bool> batch_ramp{true};    // SetBatchRamp (default on)
  std::atomic<uint32_t> lanes{1};          // SetStreamsPerPeer
  std::atomic<uint64_t> event_bytes{kDefaultEventBytes};  // SetEventBytes
  std::atomic<uint64_t> poll_gap_ns{0};
  // Caller polling (SetCallerPolling): the env's loop, while it spins waiting for a post,
  // asks the events itself; the progress thread leaves them alone for kCallerWindowNs after
  // the loop last did, so the two do not contend for the driver.
  std::atomic<bool> caller_polling{true};
  std::atomic<uint64_t> caller_poll_ns{0};   // when the loop last asked (poll_env's clock)
  std::atomic<uint64_t> gpu_groups{0};        // groups in `groups`, for a lock-free skip
  std::atomic<uint64_t> n_caller_groups{0};   // groups the loop found finished (Counters)
  RealEnv* poll_env = nullptr;                // where the spin poller is registered
  uint64_t poller_id = 0;
  std::thread progress;
  // Executor only.
  // By (device, peer, lane): SetStreamsPerPeer's lanes of one device towards one peer.
  std::map<std::tuple<int, PeerId, uint32_t>, cudaStream_t> streams;
  std::map<std::pair<int, PeerId>, uint32_t> next_lane;  // the lane the next large copy takes
  // Cross-process: this transport's identity, board and socket (set at Install, then
  // constant), the receiver thread, and the progress thread's bounce buffer.
  ipc::Identity id;
  int board_fd = -1;
  ipc::Board* board = nullptr;
  int sock = -1;
  int wake_fd = -1;
  std::thread receiver;
  void* bounce = nullptr;  // progress thread only
  bool vm_denied_logged = false;  // progress thread only
};

namespace {

constexpr size_t kBounceBytes = 8 << 20;

bool RecentlyAlive(int sock, CudaTransport::Remote& r) {
  const auto now = std::chrono::steady_clock::now();
  if (now - r.alive_at < std::chrono::milliseconds(1)) return true;
  if (!ipc::Alive(sock, r.who)) return false;
  r.alive_at = now;
  return true;
}

// The progress thread's copies between this process and a peer process's host memory.
TransportCompletion RunCpuCopy(CudaTransport::State& st, const CudaTransport::State::InFlight& f);

// Lets go of the regions a copy pinned: the local one, and the target's (its registry, or
// its board's slot for a peer process).
void Unpin(CudaTransport::State& st, CudaTransport::Endpoint& self,
           const CudaTransport::State::InFlight& f);

}  // namespace

namespace {

void Unpin(CudaTransport::State& st, CudaTransport::Endpoint& self,
           const CudaTransport::State::InFlight& f) {
  {
    std::lock_guard<std::mutex> l(self.mu);
    self.regions.AddInFlight(f.local_region, -1);
  }
  if (f.target) {
    std::lock_guard<std::mutex> l(f.target->mu);
    f.target->regions.AddInFlight(f.target_region, -1);
  } else if (f.remote) {
    ipc::BoardLock l(f.remote->board);
    ipc::DropPin(f.remote->board->slots[f.slot], st.id);
  }
}

// Lets go of a finished copy's pins and queues its completion (st.mu held). Unpinning comes
// first, so an UnregisterMemory right after the completion is seen succeeds. A peer process
// that died (or crashed) took the target with it: what the copy moved is lost, whatever
// CUDA or process_vm said.
void FinishLocked(CudaTransport::State& st, CudaTransport::Endpoint& self,
                  const CudaTransport::State::InFlight& f, TransportCompletion c) {
  Unpin(st, self, f);
  if (f.remote && (c.code == ErrorCode::OK || c.code == ErrorCode::TRANSFER_INCOMPLETE)) {
    if (f.remote->board->alive.load() == 0 || !ipc::Alive(st.sock, f.remote->who)) {
      c = {f.task.task_id, ErrorCode::PEER_UNREACHABLE, 0};
    }
  }
  if (!st.crashed) st.done.push_back(c);
}

// How long after the env's loop last asked the events (caller polling) the progress thread
// leaves them to it: the loop stops asking while it runs a callback (a chunk's hand-off is
// about 10 us of it), and asks again when it spins; past this it is busy or asleep, and the
// progress thread asks again.
constexpr uint64_t kCallerWindowNs = 20'000;

bool CallerPolledRecently(const CudaTransport::State& st) {
  if (st.poll_env == nullptr || !st.caller_polling.load(std::memory_order_relaxed)) return false;
  return st.poll_env->NowNs() - st.caller_poll_ns.load(std::memory_order_relaxed) <
         kCallerWindowNs;
}

// The GPU half of a progress pass (st.mu held): each stream's oldest group, and the next ones
// while they have finished; one event query per stream when nothing has. `finish` gets every
// task of a finished group. Returns the groups that finished.
template <typename Finish>
size_t PollGroupsLocked(CudaTransport::State& st, Finish&& finish) {
  size_t n = 0;
  for (auto g = st.groups.begin(); g != st.groups.end();) {
    std::deque<CudaTransport::State::Group>& q = g->second;
    while (!q.empty()) {
      CudaTransport::State::Group& group = q.front();
      st.n_queries.fetch_add(1, std::memory_order_relaxed);
      const cudaError_t e = cudaEventQuery(group.event);
      if (e == cudaErrorNotReady) break;
      if (e != cudaSuccess) (void)cudaGetLastError();
      for (uint64_t id : group.tasks) {
        auto it = st.in_flight.find(id);
        TIDAL_ASSERT(it != st.in_flight.end());
        finish(it->second, e == cudaSuccess
                               ? TransportCompletion{id, ErrorCode::OK, it->second.task.length}
                               : TransportCompletion{id, ErrorCode::TRANSFER_FAIL, 0});
        st.in_flight.erase(it);
      }
      st.free_events[group.device].push_back(group.event);
      q.pop_front();
      st.gpu_groups.fetch_sub(1, std::memory_order_relaxed);
      ++n;
    }
    g = q.empty() ? st.groups.erase(g) : std::next(g);
  }
  return n;
}

TransportCompletion RunCpuCopy(CudaTransport::State& st, const CudaTransport::State::InFlight& f) {
  using Op = CudaTransport::State::Op;
  const TransportTask& t = f.task;
  if (f.op == Op::kHostMove) {
    std::memmove(f.dst, f.src, t.length);
    return {t.task_id, ErrorCode::OK, t.length};
  }
  const int pid = f.remote->who.pid;
  size_t moved = 0;
  int err = 0;
  bool cuda_failed = false;
  if (f.op == Op::kVm) {
    moved = ipc::VmCopy(pid, f.write, f.local, f.remote_addr, t.length, &err);
  } else {  // kStaged: this process's GPU range <-> the peer's host range
    cudaSetDevice(f.device);
    if (st.bounce == nullptr && cudaMallocHost(&st.bounce, kBounceBytes) != cudaSuccess) {
      (void)cudaGetLastError();
      st.bounce = nullptr;
      cuda_failed = true;
    }
    while (!cuda_failed && err == 0 && moved < t.length) {
      const size_t n = std::min<size_t>(kBounceBytes, t.length - moved);
      char* local = static_cast<char*>(f.local) + moved;
      size_t got = 0;
      if (f.write) {
        if (cudaMemcpy(st.bounce, local, n, cudaMemcpyDefault) != cudaSuccess) {
          (void)cudaGetLastError();
          cuda_failed = true;
          break;
        }
        got = ipc::VmCopy(pid, true, st.bounce, f.remote_addr + moved, n, &err);
      } else {
        got = ipc::VmCopy(pid, false, st.bounce, f.remote_addr + moved, n, &err);
        if (got > 0 && cudaMemcpy(local, st.bounce, got, cudaMemcpyDefault) != cudaSuccess) {
          (void)cudaGetLastError();
          cuda_failed = true;
          break;
        }
      }
      moved += got;
    }
  }
  if (moved == t.length) return {t.task_id, ErrorCode::OK, t.length};
  if (err == EPERM && !st.vm_denied_logged) {
    st.vm_denied_logged = true;
    std::fprintf(stderr,
                 "cuda transport: process_vm_%sv on process %d: not permitted (host memory of "
                 "another process needs ptrace permission over it: same user and Yama "
                 "ptrace_scope 0, or CAP_SYS_PTRACE)\n",
                 f.write ? "write" : "read", pid);
  }
  if (moved > 0) return {t.task_id, ErrorCode::TRANSFER_INCOMPLETE, moved};
  return {t.task_id, ErrorCode::TRANSFER_FAIL, 0};
}

}  // namespace

CudaTransport::CudaTransport() : self_(std::make_shared<Endpoint>()), state_(std::make_unique<State>()) {
  self_->address = "cuda:" + std::to_string(::getpid()) + ":" +
                   std::to_string(TheDomain().serial.fetch_add(1));
}

CudaTransport::~CudaTransport() {
  State& st = *state_;
  if (installed_) {
    if (st.poll_env != nullptr) st.poll_env->RemoveSpinPoller(st.poller_id);
    {
      std::lock_guard<std::mutex> lock(st.mu);
      st.stop = true;
    }
    st.cv.notify_all();
    st.progress.join();  // returns once every enqueued copy has completed
    {
      std::lock_guard<std::mutex> lock(self_->mu);
      self_->alive = false;
      self_->inbox.clear();
    }
    st.board->alive.store(0);
    const uint64_t one = 1;
    if (write(st.wake_fd, &one, sizeof(one)) != sizeof(one)) TIDAL_ASSERT_MSG(false, "eventfd");
    st.receiver.join();
    Domain& d = TheDomain();
    std::lock_guard<std::mutex> lock(d.mu);
    d.endpoints.erase(self_->address);
  }
  peers_.clear();  // unmaps peers' boards, lets go of IPC mappings
  for (auto& [key, stream] : st.streams) {
    cudaSetDevice(std::get<0>(key));
    cudaStreamDestroy(stream);
  }
  for (auto& [device, events] : st.free_events) {
    cudaSetDevice(device);
    for (cudaEvent_t e : events) cudaEventDestroy(e);
  }
  if (st.bounce != nullptr) cudaFreeHost(st.bounce);
  if (st.sock >= 0) close(st.sock);
  if (st.wake_fd >= 0) close(st.wake_fd);
  ipc::CloseBoard(st.board);
  if (st.board_fd >= 0) close(st.board_fd);
}

Status CudaTransport::Install(const TransportInstall& install) {
  if (installed_) return Status(ErrorCode::INVALID_PARAMS, "cuda transport already installed");
  if (install.env == nullptr || !install.on_ready) {
    return Status(ErrorCode::INVALID_PARAMS, "install needs an env and on_ready");
  }
  Result<int> devices = CudaDeviceCount();
  if (!devices.ok()) return devices.status();
  State* st = state_.get();
  // The cross-process half: identity, board, socket.
  st->id.pid = ::getpid();
  st->id.serial = static_cast<uint32_t>(TheDomain().serial.fetch_add(1));
  std::random_device rd;
  st->id.nonce = (static_cast<uint64_t>(rd()) << 32) ^ rd() ^ install.env->RandomU64();
  Status s = ipc::CreateBoard(st->id, &st->board_fd, &st->board);
  if (!s.ok()) return s;
  std::string error;
  st->sock = ipc::BindSocket(st->id, &error);
  if (st->sock < 0) return Status(ErrorCode::INTERNAL_ERROR, error);
  st->wake_fd = eventfd(0, EFD_CLOEXEC);
  if (st->wake_fd < 0) return Status(ErrorCode::INTERNAL_ERROR, "cuda transport: eventfd failed");
  env_ = install.env;
  self_->name = install.segment_name;
  self_->on_ready = install.on_ready;
  self_->address = ipc::FormatAddress(st->id, st->board_fd);
  {
    Domain& d = TheDomain();
    std::lock_guard<std::mutex> lock(d.mu);
    d.endpoints[self_->address] = self_;
  }
  installed_ = true;
  std::shared_ptr<Endpoint> self = self_;
  // Notifications from peer processes: one datagram each, into the inbox.
  st->receiver = std::thread([st, self]() {
    std::vector<char> buf(ipc::kMaxNotifyPayload + 8192);
    for (;;) {
      pollfd p[2] = {{st->sock, POLLIN, 0}, {st->wake_fd, POLLIN, 0}};
      if (poll(p, 2, -1) < 0) continue;  // EINTR
      if (p[1].revents != 0) return;
      if ((p[0].revents & POLLIN) == 0) continue;
      const ssize_t n = recv(st->sock, buf.data(), buf.size(), MSG_DONTWAIT);
      if (n <= 0) continue;
      ByteReader r(std::string_view(buf.data(), static_cast<size_t>(n)));
      uint8_t kind = 0;
      std::string source;
      if (!r.U8(&kind) || kind != ipc::kNotifyFrame || !r.Str(&source, kSegmentMaxString)) continue;
      std::string payload(r.Rest());
      bool delivered = false;
      {
        std::lock_guard<std::mutex> lock(self->mu);
        if (self->alive) {
          self->inbox.push_back(Notification{std::move(source), std::move(payload)});
          delivered = true;
        }
      }
      if (delivered) self->on_ready();
    }
  });
  st->progress = std::thread([st, self]() {
    std::unique_lock<std::mutex> lock(st->mu);
    for (;;) {
      if (st->in_flight.empty() && !st->stop) {
        // Poll for the next copy a while before sleeping (SetIdleSpinNs).
        const uint64_t seen = st->enqueued.load(std::memory_order_acquire);
        const auto until = std::chrono::steady_clock::now() +
                           std::chrono::nanoseconds(st->idle_spin_ns.load(std::memory_order_relaxed));
        lock.unlock();
        while (st->enqueued.load(std::memory_order_acquire) == seen &&
               std::chrono::steady_clock::now() < until) {
        }
        lock.lock();
      }
      st->cv.wait(lock, [st] { return st->stop || !st->in_flight.empty(); });
      if (st->in_flight.empty()) return;  // stop, and nothing left to wait for
      // Copies the CPU makes: here, off the executor, without the lock (their regions are
      // pinned, and only this thread erases in-flight entries).
      std::map<uint64_t, TransportCompletion> cpu_done;
      std::vector<State::InFlight> copies;
      for (auto& [id, f] : st->in_flight) {
        if (f.op != State::Op::kGpu) copies.push_back(f);
      }
      if (!copies.empty()) {
        lock.unlock();
        for (const State::InFlight& f : copies) cpu_done[f.task.task_id] = RunCpuCopy(*st, f);
        lock.lock();
      }
      size_t finished = 0;
      // Unpins both regions before the completion can be seen (so an UnregisterMemory right
      // after it succeeds), and queues it.
      auto finish = [&](const State::InFlight& f, TransportCompletion c) {
        FinishLocked(*st, *self, f, c);
        ++finished;
      };
      if (!cpu_done.empty()) {
        for (auto it = st->in_flight.begin(); it != st->in_flight.end();) {
          auto d = it->second.op == State::Op::kGpu ? cpu_done.end() : cpu_done.find(it->first);
          if (d == cpu_done.end()) {
            ++it;  // a GPU copy, or submitted while this pass copied: the next pass makes it
            continue;
          }
          finish(it->second, d->second);
          it = st->in_flight.erase(it);  // drops its hold on the IPC mapping
        }
      }
      // GPU copies: each stream's oldest group, and the next ones while they have finished;
      // one event query per stream when nothing has. Left to the caller while it polls.
      if (!CallerPolledRecently(*st)) PollGroupsLocked(*st, finish);
      if (finished > 0 && !st->crashed) {
        lock.unlock();
        self->on_ready();
        lock.lock();
      } else if (finished == 0) {
        // Between passes over copies still running, a pause without CUDA calls
        // (SetPollGapNs): a tight cudaEventQuery loop competes with the executor's CUDA calls.
        lock.unlock();
        const uint64_t gap = st->poll_gap_ns.load(std::memory_order_relaxed);
        if (gap == 0) {
          std::this_thread::yield();
        } else {
          const auto until = std::chrono::steady_clock::now() + std::chrono::nanoseconds(gap);
          while (std::chrono::steady_clock::now() < until) {
          }
        }
        lock.lock();
      }
    }
  });
  if (auto* real = dynamic_cast<RealEnv*>(install.env)) {
    st->poll_env = real;
    st->poller_id = real->AddSpinPoller([this] { PollFromCaller(); });
  }
  return Status();
}

// The env's loop, while it spins waiting for a post (RealEnv::AddSpinPoller): it asks the
// events of copies in flight itself and, when some finished, queues their completions and
// posts on_ready to itself, so the completion runs on the thread that waits for it with no
// hand-off from the progress thread. Skipped when the progress thread holds the lock.
void CudaTransport::PollFromCaller() {
  State& st = *state_;
  if (!st.caller_polling.load(std::memory_order_relaxed) ||
      st.gpu_groups.load(std::memory_order_relaxed) == 0) {
    return;
  }
  std::unique_lock<std::mutex> lock(st.mu, std::try_to_lock);
  if (!lock.owns_lock()) return;
  st.caller_poll_ns.store(st.poll_env->NowNs(), std::memory_order_relaxed);
  Endpoint& self = *self_;
  const size_t groups = PollGroupsLocked(
      st, [&](const State::InFlight& f, TransportCompletion c) { FinishLocked(st, self, f, c); });
  const bool crashed = st.crashed;
  lock.unlock();
  if (groups == 0) return;
  st.n_caller_groups.fetch_add(groups, std::memory_order_relaxed);
  if (!crashed) self.on_ready();
}

void CudaTransport::SetCallerPolling(bool on) { state_->caller_polling.store(on); }

bool CudaTransport::caller_polling() const { return state_->caller_polling.load(); }

std::string CudaTransport::LocalAddress() const { return self_->address; }

Result<uint64_t> CudaTransport::RegisterMemory(uint64_t addr, uint64_t length, Location loc) {
  if (!installed_) return Status(ErrorCode::INVALID_PARAMS, "cuda transport not installed");
  int type = cudaMemoryTypeUnregistered;
  int device = -1;
  for (uint64_t probe : {addr, addr + length - 1}) {
    cudaPointerAttributes a{};
    cudaError_t e = cudaPointerGetAttributes(&a, reinterpret_cast<const void*>(probe));
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      return Status(ErrorCode::REGISTRATION_FAILED, CudaError("cudaPointerGetAttributes", e));
    }
    if (probe != addr && (a.type != type || (OnGpu(a.type) && a.device != device))) {
      return Status(ErrorCode::REGISTRATION_FAILED,
                    "the range spans memory of different kinds or devices");
    }
    type = a.type;
    device = a.device;
  }
  if (loc.kind == Location::Kind::kCuda) {
    if (!OnGpu(type) || device != loc.device) {
      return Status(ErrorCode::REGISTRATION_FAILED,
                    "memory registered as " + loc.ToString() + " is not memory of that device" +
                        (OnGpu(type) ? " (it is on cuda:" + std::to_string(device) + ")" : ""));
    }
  } else if (OnGpu(type)) {
    return Status(ErrorCode::REGISTRATION_FAILED, "memory registered as host is on cuda:" +
                                                      std::to_string(device));
  }
  // What peers of other processes need: the IPC handle of a cudaMalloc allocation and the
  // region's offset in it (managed or VMM memory has no runtime IPC handle: in-process
  // peers only), or nothing more for host memory.
  ipc::Slot slot;
  slot.addr = addr;
  slot.length = length;
  slot.device = device;
  slot.kind = OnGpu(type) ? ipc::SlotKind::kUnexported : ipc::SlotKind::kHost;
  if (type == cudaMemoryTypeDevice) {
    int current = 0;
    cudaGetDevice(&current);
    cudaSetDevice(device);
    cudaIpcMemHandle_t h;
    uint64_t base = 0;
    if (cudaIpcGetMemHandle(&h, reinterpret_cast<void*>(addr)) == cudaSuccess &&
        AllocationBase(addr, &base) &&
        cudaDeviceGetPCIBusId(slot.bus_id, sizeof(slot.bus_id), device) == cudaSuccess) {
      slot.kind = ipc::SlotKind::kDevice;
      std::memcpy(slot.handle, &h, sizeof(h));
      slot.base_offset = addr - base;
    }
    (void)cudaGetLastError();
    cudaSetDevice(current);
  }
  const uint64_t rkey = env_->RandomU64() | 1;
  slot.rkey = rkey;
  std::lock_guard<std::mutex> lock(self_->mu);
  if (Status s = self_->regions.CheckAdd(addr, length); !s.ok()) {
    return Status(ErrorCode::REGISTRATION_FAILED, s.message());
  }
  ipc::Board* board = state_->board;
  ipc::BoardLock bl(board);
  ipc::Slot* free_slot = nullptr;
  for (ipc::Slot& s : board->slots) {
    if (s.generation == 0) {
      free_slot = &s;
      break;
    }
  }
  if (free_slot == nullptr) {
    return Status(ErrorCode::REGISTRATION_FAILED,
                  "cuda transport: more than " + std::to_string(ipc::kBoardRegions) +
                      " regions registered");
  }
  Status s = self_->regions.Add(RegionInfo{addr, length, loc, rkey});
  if (!s.ok()) return Status(ErrorCode::REGISTRATION_FAILED, s.message());
  self_->memory_type[addr] = type;
  slot.generation = board->next_generation++;
  *free_slot = slot;
  return rkey;
}

Status CudaTransport::UnregisterMemory(uint64_t addr, uint64_t length) {
  (void)length;
  std::lock_guard<std::mutex> lock(self_->mu);
  ipc::Slot* slot = nullptr;
  std::unique_ptr<ipc::BoardLock> bl;
  if (state_->board != nullptr) {
    bl = std::make_unique<ipc::BoardLock>(state_->board);
    for (ipc::Slot& s : state_->board->slots) {
      if (s.generation != 0 && s.addr == addr) slot = &s;
    }
  }
  if (slot != nullptr) {
    // A copy of a peer process is using the region, unless that process is gone.
    for (ipc::Pin& p : slot->pins) {
      if (p.count == 0) continue;
      if (!ipc::Alive(state_->sock, p.who)) {
        p.count = 0;
        continue;
      }
      return Status(ErrorCode::BATCH_BUSY, "a copy of process " + std::to_string(p.who.pid) +
                                               " uses the region");
    }
  }
  Result<RegionInfo> r = self_->regions.Remove(addr);
  if (!r.ok()) return r.status();
  self_->memory_type.erase(addr);
  if (slot != nullptr) *slot = ipc::Slot();  // peers' next look closes their mappings
  return Status();
}

Result<PeerId> CudaTransport::Connect(const SegmentDescriptor& peer) {
  for (size_t i = 0; i < peers_.size(); ++i) {
    const Peer& p = peers_[i];
    if ((p.local && p.local->address == peer.address) ||
        (p.remote && p.remote->address == peer.address)) {
      return static_cast<PeerId>(i);
    }
  }
  ipc::Identity who;
  int board_fd = -1;
  if (!ipc::ParseAddress(peer.address, &who, &board_fd)) {
    return Status(ErrorCode::SEGMENT_NOT_FOUND,
                  "'" + peer.address + "' is not the address of a cuda transport");
  }
  if (who.pid == ::getpid()) {
    std::shared_ptr<Endpoint> ep;
    {
      Domain& d = TheDomain();
      std::lock_guard<std::mutex> lock(d.mu);
      auto it = d.endpoints.find(peer.address);
      if (it != d.endpoints.end()) ep = it->second.lock();
    }
    if (!ep) {
      return Status(ErrorCode::SEGMENT_NOT_FOUND,
                    "cuda address '" + peer.address + "' names no transport of this process");
    }
    peers_.push_back(Peer{std::move(ep), nullptr});
    return static_cast<PeerId>(peers_.size() - 1);
  }
  if (!installed_) return Status(ErrorCode::INVALID_PARAMS, "cuda transport not installed");
  Result<ipc::Board*> board = ipc::OpenBoard(who, board_fd);
  if (!board.ok()) {
    return Status(board.code(), "cuda peer '" + peer.name + "' (" + peer.address +
                                    "): " + board.status().message());
  }
  auto remote = std::make_shared<Remote>();
  remote->address = peer.address;
  remote->who = who;
  remote->board = *board;
  if (remote->board->alive.load() == 0 || !ipc::Alive(state_->sock, who)) {
    return Status(ErrorCode::PEER_UNREACHABLE,
                  "cuda peer '" + peer.name + "' (" + peer.address + ") is not running");
  }
  peers_.push_back(Peer{nullptr, std::move(remote)});
  return static_cast<PeerId>(peers_.size() - 1);
}

void CudaTransport::Submit(std::span<const TransportTask> tasks, std::span<Status> accepted) {
  TIDAL_ASSERT(tasks.size() == accepted.size());
  State& st = *state_;
  bool signal = false;
  auto complete_now = [&](const TransportCompletion& c) {
    std::lock_guard<std::mutex> lock(st.mu);
    if (!st.crashed) st.done.push_back(c);
    signal = true;
  };
  auto enqueue = [&](State::InFlight f) {
    {
      std::lock_guard<std::mutex> lock(st.mu);
      st.in_flight.emplace(f.task.task_id, std::move(f));
    }
    st.enqueued.fetch_add(1, std::memory_order_release);
    st.cv.notify_one();
  };
  // The copies this call queues on CUDA streams, handed to the progress thread together at
  // the end (so it neither polls them nor takes the lock while they are being issued), in
  // groups that share one completion event: a copy of at least SetEventBytes' bytes gets
  // an event of its own right after it, smaller ones share the event recorded after the
  // last copy of their stream in this call.
  std::map<uint64_t, State::InFlight> copies;       // by task id
  std::map<cudaStream_t, State::Group> open;        // per stream: copies since its last event
  std::vector<std::pair<cudaStream_t, State::Group>> closed;  // events recorded, in order
  const uint64_t event_bytes = st.event_bytes.load(std::memory_order_relaxed);
  // SetBatchCopies: the copies of an open group that share its event, not yet issued; they
  // are issued together (one cudaMemcpyBatchAsync) when the group closes.
  struct Deferred {
    void* dst;
    int dst_device;
    const void* src;
    int src_device;
    bool peer;  // device to device across GPUs: cudaMemcpyPeerAsync when issued alone
    uint64_t task_id;
  };
  const bool batching = BatchCopiesSupported() && st.batch_copies.load(std::memory_order_relaxed);
  std::map<cudaStream_t, std::vector<Deferred>> deferred;
  auto issue_one = [](const Deferred& d, uint64_t length, cudaStream_t stream) {
    return d.peer ? cudaMemcpyPeerAsync(d.dst, d.dst_device, d.src, d.src_device, length, stream)
                  : cudaMemcpyAsync(d.dst, d.src, length, cudaMemcpyDefault, stream);
  };
  // Issues the deferred copies of `stream`, whose open group is `g` (its device current):
  // one cudaMemcpyBatchAsync for two or more, else (or when that call fails) one call each;
  // a copy CUDA refuses completes TRANSFER_FAIL and leaves the group.
  auto flush = [&](cudaStream_t stream, State::Group& g) {
    auto d = deferred.find(stream);
    if (d == deferred.end()) return;
    std::vector<Deferred> list = std::move(d->second);
    deferred.erase(d);
    bool queued = false;
#if CUDART_VERSION >= 12080
    if (list.size() >= 2) {
      std::vector<void*> dsts;
      std::vector<const void*> srcs;
      std::vector<size_t> sizes;
      for (const Deferred& c : list) {
        dsts.push_back(c.dst);
        srcs.push_back(c.src);
        sizes.push_back(copies.at(c.task_id).task.length);
      }
      cudaMemcpyAttributes attr{};
      attr.srcAccessOrder = cudaMemcpySrcAccessOrderStream;  // in stream order, as the rest
      size_t attr_index = 0;
#if CUDART_VERSION >= 13000
      cudaError_t be = cudaMemcpyBatchAsync(dsts.data(), srcs.data(), sizes.data(), list.size(),
                                            &attr, &attr_index, 1, stream);
#else
      size_t fail_index = 0;
      cudaError_t be = cudaMemcpyBatchAsync(dsts.data(), srcs.data(), sizes.data(), list.size(),
                                            &attr, &attr_index, 1, &fail_index, stream);
#endif
      if (be == cudaSuccess) {
        queued = true;
        st.n_batches.fetch_add(1, std::memory_order_relaxed);
      } else {
        (void)cudaGetLastError();  // nothing of the batch was queued: one by one below
      }
    }
#endif
    for (size_t k = 0; k < list.size() && !queued; ++k) {
      const Deferred& c = list[k];
      auto f = copies.find(c.task_id);
      if (issue_one(c, f->second.task.length, stream) == cudaSuccess) continue;
      (void)cudaGetLastError();  // this copy was not queued: nothing touches its ranges
      Unpin(st, *self_, f->second);
      complete_now({c.task_id, ErrorCode::TRANSFER_FAIL, 0});
      copies.erase(f);
      g.tasks.erase(std::find(g.tasks.begin(), g.tasks.end(), c.task_id));
    }
  };
  // SetBatchRamp: once a quarter of this Submit's tasks (at least 2) are deferred on a
  // stream, they are issued at once, so the copy engine starts on them while the others are
  // checked and issued; the rest go when the group closes. `ramped`: streams that had theirs.
  const bool ramping = batching && st.batch_ramp.load(std::memory_order_relaxed);
  const size_t quarter = std::max<size_t>(2, (tasks.size() + 3) / 4);
  std::set<cudaStream_t> ramped;
  auto close_group = [&](cudaStream_t stream) {
    auto it = open.find(stream);
    if (it == open.end()) return;
    State::Group g = std::move(it->second);
    open.erase(it);
    cudaError_t e = cudaSetDevice(g.device);
    if (e == cudaSuccess) {
      flush(stream, g);
      if (g.tasks.empty()) return;
    }
    deferred.erase(stream);  // when the device could not be set: never issued, failed below
    {
      std::lock_guard<std::mutex> lock(st.mu);
      auto& pool = st.free_events[g.device];
      if (!pool.empty()) {
        g.event = pool.back();
        pool.pop_back();
      }
    }
    if (e == cudaSuccess && g.event == nullptr) {
      e = cudaEventCreateWithFlags(&g.event, cudaEventDisableTiming);
    }
    if (e == cudaSuccess) e = cudaEventRecord(g.event, stream);
    if (e == cudaSuccess) {
      st.n_events.fetch_add(1, std::memory_order_relaxed);
      closed.emplace_back(stream, std::move(g));
      return;
    }
    // No event: wait for the stream, so the pins are released only when nothing can touch
    // the ranges any more, and fail the group's copies.
    (void)cudaGetLastError();
    cudaStreamSynchronize(stream);
    (void)cudaGetLastError();
    if (g.event != nullptr) cudaEventDestroy(g.event);
    for (uint64_t id : g.tasks) {
      auto c = copies.find(id);
      Unpin(st, *self_, c->second);
      complete_now({id, ErrorCode::TRANSFER_FAIL, 0});
      copies.erase(c);
    }
  };
  for (size_t i = 0; i < tasks.size(); ++i) {
    const TransportTask& t = tasks[i];
    if (!installed_) {
      accepted[i] = Status(ErrorCode::INVALID_PARAMS, "cuda transport not installed");
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(st.mu);
      if (st.crashed) {
        accepted[i] = Status(ErrorCode::PEER_UNREACHABLE, "this node has crashed");
        continue;
      }
      bool dup = st.in_flight.count(t.task_id) != 0;
      for (const TransportCompletion& c : st.done) dup = dup || c.task_id == t.task_id;
      dup = dup || copies.count(t.task_id) != 0;
      if (dup) {
        accepted[i] = Status(ErrorCode::INVALID_PARAMS, "task id already outstanding");
        continue;
      }
    }
    if (t.peer >= peers_.size()) {
      accepted[i] = Status(ErrorCode::INVALID_PARAMS, "unknown peer id");
      continue;
    }
    const std::shared_ptr<Endpoint>& target = peers_[t.peer].local;
    const std::shared_ptr<Remote>& remote = peers_[t.peer].remote;
    if (t.kind == TransportTask::Kind::kProbe) {
      bool alive;
      if (target) {
        std::lock_guard<std::mutex> lock(target->mu);
        alive = target->alive;
      } else {
        alive = remote->board->alive.load() != 0 && ipc::Alive(st.sock, remote->who);
      }
      accepted[i] = Status();
      complete_now({t.task_id, alive ? ErrorCode::OK : ErrorCode::PEER_UNREACHABLE, 0});
      continue;
    }
    if (t.length == 0) {
      accepted[i] = Status(ErrorCode::INVALID_PARAMS, "zero-length task");
      continue;
    }
    RegionInfo local;
    int local_type = cudaMemoryTypeUnregistered;
    {
      std::lock_guard<std::mutex> lock(self_->mu);
      Result<RegionInfo> r = self_->regions.FindLocal(t.local_addr, t.length);
      if (!r.ok()) {
        accepted[i] = r.status();
        continue;
      }
      local = *r;
      local_type = self_->memory_type[local.addr];
      self_->regions.AddInFlight(local.addr, 1);
    }
    accepted[i] = Status();
    auto unpin_local = [&] {
      std::lock_guard<std::mutex> lock(self_->mu);
      self_->regions.AddInFlight(local.addr, -1);
    };
    const bool write = t.kind == TransportTask::Kind::kWrite;
    // The target's check, on the target's registry (or its board, for a peer of another
    // process), before any byte moves; it pins the target region.
    RegionInfo remote_region;
    int remote_type = cudaMemoryTypeUnregistered;
    ipc::Slot slot;
    int slot_index = -1;
    ErrorCode refused = ErrorCode::OK;
    if (target) {
      std::lock_guard<std::mutex> lock(target->mu);
      if (!target->alive) {
        refused = ErrorCode::PEER_UNREACHABLE;
      } else if (Status s = target->regions.CheckRemote(t.remote_addr, t.length, t.rkey); !s.ok()) {
        refused = s.code();
      } else {
        remote_region = *target->regions.FindLocal(t.remote_addr, t.length);
        remote_type = target->memory_type[remote_region.addr];
        target->regions.AddInFlight(remote_region.addr, 1);
      }
    } else if (!RecentlyAlive(st.sock, *remote)) {
      refused = ErrorCode::PEER_UNREACHABLE;
    } else {
      ipc::BoardLock lock(remote->board);
      ipc::Board& b = *remote->board;
      if (b.alive.load() == 0) {
        refused = ErrorCode::PEER_UNREACHABLE;
      } else if ((slot_index = ipc::FindSlot(b, t.remote_addr, t.length, t.rkey)) < 0) {
        refused = ErrorCode::REMOTE_ACCESS_DENIED;
      } else if (b.slots[slot_index].kind == ipc::SlotKind::kUnexported ||
                 !ipc::AddPin(b.slots[slot_index], st.id)) {
        refused = ErrorCode::TRANSFER_FAIL;  // not reachable from here: nothing moves
      } else {
        slot = b.slots[slot_index];
      }
      // Mappings of regions that left the board (unregistered or registered again).
      for (auto it = remote->mappings.begin(); it != remote->mappings.end();) {
        bool live = false;
        for (const ipc::Slot& s : b.slots) live = live || s.generation == it->first;
        it = live ? std::next(it) : remote->mappings.erase(it);
      }
    }
    if (refused != ErrorCode::OK) {
      unpin_local();
      complete_now({t.task_id, refused, 0});
      continue;
    }
    auto unpin_remote = [&] {
      if (target) {
        std::lock_guard<std::mutex> lock(target->mu);
        target->regions.AddInFlight(remote_region.addr, -1);
      } else {
        ipc::BoardLock lock(remote->board);
        ipc::DropPin(remote->board->slots[slot_index], st.id);
      }
    };
    State::InFlight f;
    f.task = t;
    f.local_region = local.addr;
    f.target = target;
    f.target_region = remote_region.addr;
    f.remote = remote;
    f.slot = slot_index;
    f.write = write;
    // Where the target bytes are, as this process addresses them.
    uint64_t remote_ptr = t.remote_addr;
    int remote_device = remote_region.location.device;
    if (remote) {
      if (slot.kind == ipc::SlotKind::kHost) {
        // Host memory of the peer process: the progress thread moves it.
        f.op = OnGpu(local_type) ? State::Op::kStaged : State::Op::kVm;
        f.device = local.location.device;
        f.local = reinterpret_cast<void*>(t.local_addr);
        f.remote_addr = t.remote_addr;
        enqueue(std::move(f));
        continue;
      }
      auto m = remote->mappings.find(slot.generation);
      if (m == remote->mappings.end()) {
        Result<std::shared_ptr<Mapping>> opened =
            OpenMapping(slot, OnGpu(local_type) ? local.location.device : -1);
        if (!opened.ok()) {
          std::fprintf(stderr, "cuda transport: %s\n", opened.status().ToString().c_str());
          unpin_remote();
          unpin_local();
          complete_now({t.task_id, ErrorCode::TRANSFER_FAIL, 0});
          continue;
        }
        m = remote->mappings.emplace(slot.generation, *opened).first;
      }
      f.mapping = m->second;
      remote_ptr = reinterpret_cast<uint64_t>(m->second->base) + slot.base_offset +
                   (t.remote_addr - slot.addr);
      remote_type = cudaMemoryTypeDevice;
      remote_device = m->second->device;
    }
    void* dst = reinterpret_cast<void*>(write ? remote_ptr : t.local_addr);
    const void* src = reinterpret_cast<const void*>(write ? t.local_addr : remote_ptr);
    const int src_type = write ? local_type : remote_type;
    const int dst_type = write ? remote_type : local_type;
    const int src_device = write ? local.location.device : remote_device;
    const int dst_device = write ? remote_device : local.location.device;
    if (!OnGpu(src_type) && !OnGpu(dst_type)) {
      // Host to host: the progress thread copies, so Submit never blocks on a large copy.
      f.op = State::Op::kHostMove;
      f.dst = dst;
      f.src = src;
      enqueue(std::move(f));
      continue;
    }
    // The copy runs on a stream of the device that holds the source (a push over the
    // link), or of the destination when the source is host memory.
    const int device = OnGpu(src_type) ? src_device : dst_device;
    cudaError_t e = cudaSetDevice(device);
    cudaStream_t stream = nullptr;
    if (e == cudaSuccess) {
      // A copy of at least SetEventBytes' bytes (one with an event of its own) takes the
      // next of the peer's lanes in turn; smaller ones, which share events, stay on lane 0.
      uint32_t lane = 0;
      const uint32_t lanes = st.lanes.load(std::memory_order_relaxed);
      if (lanes > 1 && t.length >= event_bytes) {
        uint32_t& next = st.next_lane[std::make_pair(device, t.peer)];
        lane = next;
        next = (next + 1) % lanes;
        if (lane != 0) st.n_lane_copies.fetch_add(1, std::memory_order_relaxed);
      }
      auto key = std::make_tuple(device, t.peer, lane);
      auto it = st.streams.find(key);
      if (it == st.streams.end()) {
        e = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
        if (e == cudaSuccess) st.streams.emplace(key, stream);
      } else {
        stream = it->second;
      }
    }
    if (e == cudaSuccess) {
      const bool peer_copy = src_type == cudaMemoryTypeDevice &&
                             dst_type == cudaMemoryTypeDevice && src_device != dst_device;
      if (peer_copy) EnablePeerAccess(src_device, dst_device);
      const Deferred d{dst, dst_device, src, src_device, peer_copy, t.task_id};
      if (batching && t.length < event_bytes) {
        deferred[stream].push_back(d);  // issued by a flush: the ramp's, or close_group's
      } else {
        e = issue_one(d, t.length, stream);
      }
    }
    if (e != cudaSuccess) {
      (void)cudaGetLastError();  // the copy was not queued: nothing touches the ranges
      unpin_remote();
      unpin_local();
      complete_now({t.task_id, ErrorCode::TRANSFER_FAIL, 0});
      continue;
    }
    st.n_copies.fetch_add(1, std::memory_order_relaxed);
    f.op = State::Op::kGpu;
    f.device = device;
    copies.emplace(t.task_id, std::move(f));
    State::Group& g = open[stream];
    g.device = device;
    g.tasks.push_back(t.task_id);
    if (t.length >= event_bytes) {
      close_group(stream);
    } else if (ramping && deferred[stream].size() >= quarter && ramped.insert(stream).second) {
      flush(stream, g);
    }
  }
  while (!open.empty()) close_group(open.begin()->first);
  if (!closed.empty()) {
    {
      std::lock_guard<std::mutex> lock(st.mu);
      for (auto& [id, f] : copies) st.in_flight.emplace(id, std::move(f));
      for (auto& [stream, g] : closed) st.groups[stream].push_back(std::move(g));
      st.gpu_groups.fetch_add(closed.size(), std::memory_order_relaxed);
    }
    st.enqueued.fetch_add(1, std::memory_order_release);
    st.cv.notify_one();
  }
  if (signal) self_->on_ready();
}

size_t CudaTransport::PollCompletions(std::span<TransportCompletion> out) {
  std::lock_guard<std::mutex> lock(state_->mu);
  size_t n = 0;
  while (n < out.size() && !state_->done.empty()) {
    out[n++] = state_->done.front();
    state_->done.pop_front();
  }
  return n;
}

Status CudaTransport::Cancel(uint64_t task_id) {
  std::lock_guard<std::mutex> lock(state_->mu);
  // An enqueued copy cannot be recalled: it finishes and its completion (OK) follows.
  if (state_->in_flight.count(task_id) != 0) return Status();
  for (const TransportCompletion& c : state_->done) {
    if (c.task_id == task_id) return Status();  // finished, not yet polled
  }
  return Status(ErrorCode::INVALID_PARAMS, "no outstanding task " + std::to_string(task_id));
}

Status CudaTransport::SendNotify(PeerId peer, std::string_view payload) {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (state_->crashed) return Status(ErrorCode::PEER_UNREACHABLE, "this node has crashed");
  }
  if (peer >= peers_.size()) return Status(ErrorCode::INVALID_PARAMS, "unknown peer id");
  if (const std::shared_ptr<Remote>& remote = peers_[peer].remote) {
    if (payload.size() > ipc::kMaxNotifyPayload) {
      return Status(ErrorCode::INVALID_PARAMS,
                    "a notification to another process carries at most " +
                        std::to_string(ipc::kMaxNotifyPayload) + " bytes, not " +
                        std::to_string(payload.size()));
    }
    if (remote->board->alive.load() == 0) {
      return Status(ErrorCode::PEER_UNREACHABLE, "peer is down");
    }
    ByteWriter w;
    w.U8(ipc::kNotifyFrame);
    w.Str(self_->name);
    w.Bytes(payload);
    return ipc::SendDatagram(state_->sock, remote->who, w.str());
  }
  const std::shared_ptr<Endpoint>& target = peers_[peer].local;
  {
    std::lock_guard<std::mutex> lock(target->mu);
    if (!target->alive) return Status(ErrorCode::PEER_UNREACHABLE, "peer is down");
    target->inbox.push_back(Notification{self_->name, std::string(payload)});
  }
  target->on_ready();
  return Status();
}

size_t CudaTransport::PollNotifies(std::vector<Notification>& out, size_t max) {
  std::lock_guard<std::mutex> lock(self_->mu);
  size_t n = 0;
  while (n < max && !self_->inbox.empty()) {
    out.push_back(std::move(self_->inbox.front()));
    self_->inbox.pop_front();
    ++n;
  }
  return n;
}

void CudaTransport::Crash() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->crashed = true;
    state_->done.clear();
  }
  if (state_->board != nullptr) state_->board->alive.store(0);
  std::lock_guard<std::mutex> lock(self_->mu);
  self_->alive = false;
  self_->inbox.clear();
}

void CudaTransport::SetIdleSpinNs(uint64_t ns) { state_->idle_spin_ns.store(ns); }

void CudaTransport::SetPollGapNs(uint64_t ns) { state_->poll_gap_ns.store(ns); }

void CudaTransport::SetEventBytes(uint64_t bytes) { state_->event_bytes.store(bytes); }

void CudaTransport::SetBatchCopies(bool on) { state_->batch_copies.store(on); }

void CudaTransport::SetBatchRamp(bool on) { state_->batch_ramp.store(on); }

bool CudaTransport::batch_ramp() const { return state_->batch_ramp.load(); }

bool CudaTransport::batch_copies() const { return state_->batch_copies.load(); }

void CudaTransport::SetStreamsPerPeer(uint32_t lanes) {
  state_->lanes.store(std::max<uint32_t>(1, lanes));
}

bool CudaTransport::BatchCopiesSupported() {
#if CUDART_VERSION >= 12080
  return true;
#else
  return false;
#endif
}

CudaTransport::Counters CudaTransport::counters() const {
  return Counters{state_->n_copies.load(std::memory_order_relaxed),
                  state_->n_events.load(std::memory_order_relaxed),
                  state_->n_queries.load(std::memory_order_relaxed),
                  state_->n_batches.load(std::memory_order_relaxed),
                  state_->n_lane_copies.load(std::memory_order_relaxed),
                  state_->n_caller_groups.load(std::memory_order_relaxed)};
}

bool CudaTransport::Idle() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->in_flight.empty();
}

}  // namespace tidal::backends::cuda
