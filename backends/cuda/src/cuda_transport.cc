#include "tidal/backends/cuda/cuda_transport.h"

#include <cuda_runtime_api.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "tidal/assert.h"

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

struct CudaTransport::State {
  struct InFlight {
    TransportTask task;
    cudaEvent_t event = nullptr;  // null: a host-to-host copy the progress thread makes
    int device = 0;
    uint64_t local_region = 0;
    std::shared_ptr<Endpoint> target;
    uint64_t target_region = 0;
    void* dst = nullptr;  // host copies only
    const void* src = nullptr;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::map<uint64_t, InFlight> in_flight;            // guarded by mu
  std::deque<TransportCompletion> done;              // guarded by mu
  std::map<int, std::vector<cudaEvent_t>> free_events;  // by device; guarded by mu
  bool stop = false;                                 // guarded by mu
  bool crashed = false;                              // guarded by mu
  std::thread progress;
  // Executor only.
  std::map<std::pair<int, PeerId>, cudaStream_t> streams;
};

CudaTransport::CudaTransport() : self_(std::make_shared<Endpoint>()), state_(std::make_unique<State>()) {
  self_->address = "cuda:" + std::to_string(::getpid()) + ":" +
                   std::to_string(TheDomain().serial.fetch_add(1));
}

CudaTransport::~CudaTransport() {
  if (installed_) {
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      state_->stop = true;
    }
    state_->cv.notify_all();
    state_->progress.join();  // returns once every enqueued copy has completed
    {
      std::lock_guard<std::mutex> lock(self_->mu);
      self_->alive = false;
      self_->inbox.clear();
    }
    Domain& d = TheDomain();
    std::lock_guard<std::mutex> lock(d.mu);
    d.endpoints.erase(self_->address);
  }
  for (auto& [key, stream] : state_->streams) {
    cudaSetDevice(key.first);
    cudaStreamDestroy(stream);
  }
  for (auto& [device, events] : state_->free_events) {
    cudaSetDevice(device);
    for (cudaEvent_t e : events) cudaEventDestroy(e);
  }
}

Status CudaTransport::Install(const TransportInstall& install) {
  if (installed_) return Status(ErrorCode::INVALID_PARAMS, "cuda transport already installed");
  if (install.env == nullptr || !install.on_ready) {
    return Status(ErrorCode::INVALID_PARAMS, "install needs an env and on_ready");
  }
  Result<int> devices = CudaDeviceCount();
  if (!devices.ok()) return devices.status();
  env_ = install.env;
  self_->name = install.segment_name;
  self_->on_ready = install.on_ready;
  {
    Domain& d = TheDomain();
    std::lock_guard<std::mutex> lock(d.mu);
    d.endpoints[self_->address] = self_;
  }
  installed_ = true;
  State* st = state_.get();
  std::shared_ptr<Endpoint> self = self_;
  st->progress = std::thread([st, self]() {
    std::unique_lock<std::mutex> lock(st->mu);
    for (;;) {
      st->cv.wait(lock, [st] { return st->stop || !st->in_flight.empty(); });
      if (st->in_flight.empty()) return;  // stop, and nothing left to wait for
      // Host-to-host copies: made here, off the executor, without the lock (their regions
      // are pinned, and only this thread erases in-flight entries).
      std::vector<uint64_t> host_done;
      for (auto& [id, f] : st->in_flight) {
        if (f.event == nullptr) host_done.push_back(id);
      }
      if (!host_done.empty()) {
        std::vector<State::InFlight> copies;
        for (uint64_t id : host_done) copies.push_back(st->in_flight.at(id));
        lock.unlock();
        for (const State::InFlight& f : copies) std::memmove(f.dst, f.src, f.task.length);
        lock.lock();
      }
      size_t finished = 0;
      for (auto it = st->in_flight.begin(); it != st->in_flight.end();) {
        State::InFlight& f = it->second;
        cudaError_t e = cudaSuccess;
        if (f.event == nullptr) {
          if (std::find(host_done.begin(), host_done.end(), it->first) == host_done.end()) {
            ++it;  // submitted while this pass copied: the next pass makes it
            continue;
          }
        } else {
          e = cudaEventQuery(f.event);
          if (e == cudaErrorNotReady) {
            ++it;
            continue;
          }
        }
        // Unpin both regions before the completion can be seen, so an UnregisterMemory
        // right after it succeeds.
        {
          std::lock_guard<std::mutex> l(self->mu);
          self->regions.AddInFlight(f.local_region, -1);
        }
        {
          std::lock_guard<std::mutex> l(f.target->mu);
          f.target->regions.AddInFlight(f.target_region, -1);
        }
        TransportCompletion c{f.task.task_id, ErrorCode::OK, f.task.length};
        if (e != cudaSuccess) {
          (void)cudaGetLastError();
          c = {f.task.task_id, ErrorCode::TRANSFER_FAIL, 0};
        }
        if (f.event != nullptr) st->free_events[f.device].push_back(f.event);
        if (!st->crashed) st->done.push_back(c);
        it = st->in_flight.erase(it);
        ++finished;
      }
      if (finished > 0 && !st->crashed) {
        lock.unlock();
        self->on_ready();
        lock.lock();
      } else if (finished == 0) {
        lock.unlock();
        std::this_thread::yield();
        lock.lock();
      }
    }
  });
  return Status();
}

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
  const uint64_t rkey = env_->RandomU64() | 1;
  std::lock_guard<std::mutex> lock(self_->mu);
  Status s = self_->regions.Add(RegionInfo{addr, length, loc, rkey});
  if (!s.ok()) return Status(ErrorCode::REGISTRATION_FAILED, s.message());
  self_->memory_type[addr] = type;
  return rkey;
}

Status CudaTransport::UnregisterMemory(uint64_t addr, uint64_t length) {
  (void)length;
  std::lock_guard<std::mutex> lock(self_->mu);
  Result<RegionInfo> r = self_->regions.Remove(addr);
  if (!r.ok()) return r.status();
  self_->memory_type.erase(addr);
  return Status();
}

Result<PeerId> CudaTransport::Connect(const SegmentDescriptor& peer) {
  std::shared_ptr<Endpoint> ep;
  {
    Domain& d = TheDomain();
    std::lock_guard<std::mutex> lock(d.mu);
    auto it = d.endpoints.find(peer.address);
    if (it != d.endpoints.end()) ep = it->second.lock();
  }
  if (!ep) {
    const std::string mine = "cuda:" + std::to_string(::getpid()) + ":";
    if (peer.address.rfind("cuda:", 0) == 0 && peer.address.rfind(mine, 0) != 0) {
      return Status(ErrorCode::PEER_UNREACHABLE,
                    "cuda address '" + peer.address +
                        "' is in another process: cross-process CUDA IPC is not implemented");
    }
    return Status(ErrorCode::SEGMENT_NOT_FOUND,
                  "cuda address '" + peer.address + "' names no transport of this process");
  }
  for (size_t i = 0; i < peers_.size(); ++i) {
    if (peers_[i] == ep) return static_cast<PeerId>(i);
  }
  peers_.push_back(std::move(ep));
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
      if (dup) {
        accepted[i] = Status(ErrorCode::INVALID_PARAMS, "task id already outstanding");
        continue;
      }
    }
    if (t.peer >= peers_.size()) {
      accepted[i] = Status(ErrorCode::INVALID_PARAMS, "unknown peer id");
      continue;
    }
    const std::shared_ptr<Endpoint>& target = peers_[t.peer];
    if (t.kind == TransportTask::Kind::kProbe) {
      bool alive;
      {
        std::lock_guard<std::mutex> lock(target->mu);
        alive = target->alive;
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
    // The target's check, on the target's registry, before any byte moves.
    RegionInfo remote;
    int remote_type = cudaMemoryTypeUnregistered;
    ErrorCode refused = ErrorCode::OK;
    {
      std::lock_guard<std::mutex> lock(target->mu);
      if (!target->alive) {
        refused = ErrorCode::PEER_UNREACHABLE;
      } else if (Status s = target->regions.CheckRemote(t.remote_addr, t.length, t.rkey); !s.ok()) {
        refused = s.code();
      } else {
        remote = *target->regions.FindLocal(t.remote_addr, t.length);
        remote_type = target->memory_type[remote.addr];
        target->regions.AddInFlight(remote.addr, 1);
      }
    }
    if (refused != ErrorCode::OK) {
      unpin_local();
      complete_now({t.task_id, refused, 0});
      continue;
    }
    auto unpin_remote = [&] {
      std::lock_guard<std::mutex> lock(target->mu);
      target->regions.AddInFlight(remote.addr, -1);
    };
    const bool write = t.kind == TransportTask::Kind::kWrite;
    void* dst = reinterpret_cast<void*>(write ? t.remote_addr : t.local_addr);
    const void* src = reinterpret_cast<const void*>(write ? t.local_addr : t.remote_addr);
    const RegionInfo& src_region = write ? local : remote;
    const RegionInfo& dst_region = write ? remote : local;
    const int src_type = write ? local_type : remote_type;
    const int dst_type = write ? remote_type : local_type;
    if (!OnGpu(src_type) && !OnGpu(dst_type)) {
      // Host to host: the progress thread copies, so Submit never blocks on a large copy.
      State::InFlight f{t, nullptr, 0, local.addr, target, remote.addr};
      f.dst = dst;
      f.src = src;
      {
        std::lock_guard<std::mutex> lock(st.mu);
        st.in_flight.emplace(t.task_id, std::move(f));
      }
      st.cv.notify_one();
      continue;
    }
    // The copy runs on a stream of the device that holds the source (a push over the
    // link), or of the destination when the source is host memory.
    const int device = OnGpu(src_type) ? src_region.location.device : dst_region.location.device;
    cudaError_t e = cudaSetDevice(device);
    cudaStream_t stream = nullptr;
    if (e == cudaSuccess) {
      auto key = std::make_pair(device, t.peer);
      auto it = st.streams.find(key);
      if (it == st.streams.end()) {
        e = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
        if (e == cudaSuccess) st.streams.emplace(key, stream);
      } else {
        stream = it->second;
      }
    }
    if (e == cudaSuccess) {
      if (src_type == cudaMemoryTypeDevice && dst_type == cudaMemoryTypeDevice &&
          src_region.location.device != dst_region.location.device) {
        EnablePeerAccess(src_region.location.device, dst_region.location.device);
        e = cudaMemcpyPeerAsync(dst, dst_region.location.device, src, src_region.location.device,
                                t.length, stream);
      } else {
        e = cudaMemcpyAsync(dst, src, t.length, cudaMemcpyDefault, stream);
      }
    }
    cudaEvent_t event = nullptr;
    if (e == cudaSuccess) {
      {
        std::lock_guard<std::mutex> lock(st.mu);
        auto& pool = st.free_events[device];
        if (!pool.empty()) {
          event = pool.back();
          pool.pop_back();
        }
      }
      if (event == nullptr) e = cudaEventCreateWithFlags(&event, cudaEventDisableTiming);
      if (e == cudaSuccess) e = cudaEventRecord(event, stream);
    }
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      if (event != nullptr) {
        // The copy may have been enqueued before the event failed: wait for the stream so
        // the pins are released only when nothing can touch the ranges any more.
        if (stream != nullptr) cudaStreamSynchronize(stream);
        cudaEventDestroy(event);
      }
      unpin_remote();
      unpin_local();
      complete_now({t.task_id, ErrorCode::TRANSFER_FAIL, 0});
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(st.mu);
      st.in_flight.emplace(t.task_id,
                           State::InFlight{t, event, device, local.addr, target, remote.addr});
    }
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
  const std::shared_ptr<Endpoint>& target = peers_[peer];
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
  std::lock_guard<std::mutex> lock(self_->mu);
  self_->alive = false;
  self_->inbox.clear();
}

bool CudaTransport::Idle() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->in_flight.empty();
}

}  // namespace tidal::backends::cuda
