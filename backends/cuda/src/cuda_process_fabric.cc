// CudaProcessFabric, CudaProxyTransport, SharedHostArena and the node-process side
// (RunCudaHost). The design is in cuda_process_fabric.h and backends/cuda/README.md
// ("Nodes as processes"); the framing follows the ucx_proc fabric's.
#include "tidal/backends/cuda/cuda_process_fabric.h"

#include "tidal/backends/cuda/cuda_transport.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <cuda_runtime_api.h>

#include "tidal/contract_checker.h"


#ifndef TIDAL_CUDA_HOST_BUILD_PATH
#define TIDAL_CUDA_HOST_BUILD_PATH ""
#endif

namespace tidal::backends::cuda {

namespace {

// ---- framing -----------------------------------------------------------------------------

using proc::DescribeWait;
using proc::Hex;
using proc::kMaxFrame;
using proc::Reader;
using proc::RecvFrame;
using proc::SendFrame;
using proc::Writer;

using enum proc::FrameType;
enum OwnFrame : uint8_t {
  kAlloc = kFirstOwn,  // cudaMalloc in the child
  kFree,
  kWrite,              // parent bytes -> child memory
  kRead,               // child memory -> parent bytes
};

// CopyIn/CopyOut of child memory move at most this much per round trip.
constexpr uint64_t kCopyChunk = 16u << 20;

// The fixed addresses an arena may take, tried in order (the same in every process):
// 48 TiB upwards, far below where Linux places mmap areas, libraries and stacks.
constexpr proc::ArenaPlacement kArenaPlacement = {
    .first = uint64_t{0x3000} << 32,
    .stride = uint64_t{0x100} << 32,  // 1 TiB apart
    .slots = 64,
    .memfd_name = "tidal-cuda-arena",
    .class_name = "SharedHostArena",
};

}  // namespace

// ---- SharedHostArena --------------------------------------------------------------------

Result<std::unique_ptr<SharedHostArena>> SharedHostArena::Make(size_t bytes) {
  int fd = -1;
  void* base = nullptr;
  Status mapped = MapNew(&bytes, kArenaPlacement, &fd, &base);
  if (!mapped.ok()) return mapped;
  return std::unique_ptr<SharedHostArena>(new SharedHostArena(fd, base, bytes, kArenaPlacement.class_name));
}

Result<std::string> CudaHostPath() {
  return proc::FindHostBinary({"tidal-cuda-host", "TIDAL_CUDA_HOST", TIDAL_CUDA_HOST_BUILD_PATH});
}

// ---- CudaProxyTransport -------------------------------------------------------------------

CudaProxyTransport::CudaProxyTransport(CudaProcessOptions options, const SharedHostArena& arena,
                                       size_t node, int device)
    : NodeProcess(node, "tidal-cuda-host", options.call_timeout_ms),
      options_(std::move(options)),
      arena_(arena),
      device_(device) {}

Status CudaProxyTransport::Start() {
  Status s = Launch();
  if (!s.ok()) return s;
  return AwaitHello();
}

Status CudaProxyTransport::Launch() {
  return NodeProcess::Launch(options_.host_path, &CudaHostPath,
                             {"--arena-addr", std::to_string(arena_.base()), "--arena-bytes",
                              std::to_string(arena_.size()), "--node", std::to_string(node_),
                              "--device", std::to_string(device_)},
                             arena_.fd());
}

Status CudaProxyTransport::AwaitHello() {
  return NodeProcess::AwaitHello(/*unsupported_is_kept=*/true);
}

Status CudaProxyTransport::Install(const TransportInstall& install) {
  if (install.env == nullptr || !install.on_ready) {
    return Status(ErrorCode::INVALID_PARAMS, "install needs an env and on_ready");
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    on_ready_ = install.on_ready;
  }
  Writer w;
  w.Str(install.segment_name);
  Result<std::string> reply = Call(kInstall, w.out());
  if (!reply.ok()) return reply.status();
  Reader r(*reply);
  Status s = r.St();
  std::string address = r.Str();
  if (!r.done()) return Status(ErrorCode::INTERNAL_ERROR, "malformed install reply");
  if (!s.ok()) return s;
  local_address_ = std::move(address);
  return Status();
}

Result<uint64_t> CudaProxyTransport::RegisterMemory(uint64_t addr, uint64_t length, Location loc) {
  // Only the arena and the child's own allocations are memory in the child: any other
  // address names unrelated memory there (or none), so it is refused before it is asked.
  if (length > 0 && !arena_.Contains(addr, length) && !OwnsDevice(addr, length)) {
    return Status(ErrorCode::REGISTRATION_FAILED,
                  "range [" + Hex(addr) + ", +" + std::to_string(length) +
                      ") is neither in the shared arena [" + Hex(arena_.base()) + ", +" +
                      std::to_string(arena_.size()) + ") nor GPU memory of node " +
                      std::to_string(node_) +
                      "'s process: allocate it with Fabric::Allocate on this node");
  }
  return ForwardRegister(addr, length, loc);
}

Status CudaProxyTransport::UnregisterMemory(uint64_t addr, uint64_t length) {
  return ForwardUnregister(addr, length);
}

Result<PeerId> CudaProxyTransport::Connect(const SegmentDescriptor& peer) {
  return ForwardConnect(peer);
}

void CudaProxyTransport::Submit(std::span<const TransportTask> tasks, std::span<Status> accepted) {
  ForwardSubmit(tasks, accepted);
}

size_t CudaProxyTransport::PollCompletions(std::span<TransportCompletion> out) {
  return DrainCompletions(out);
}

Status CudaProxyTransport::Cancel(uint64_t task_id) {
  return ForwardCancel(task_id);
}

Status CudaProxyTransport::SendNotify(PeerId peer, std::string_view payload) {
  return ForwardNotify(peer, payload);
}

size_t CudaProxyTransport::PollNotifies(std::vector<Notification>& out, size_t max) {
  return DrainNotifies(out, max);
}

bool CudaProxyTransport::OverlapsDevice(uint64_t addr, uint64_t len) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = allocations_.lower_bound(addr + len);  // the first allocation starting past the range
  if (it == allocations_.begin()) return false;
  --it;  // the last one starting inside or before it
  return it->first + it->second > addr;
}

bool CudaProxyTransport::OwnsDevice(uint64_t addr, uint64_t len) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = allocations_.upper_bound(addr);
  if (it == allocations_.begin()) return false;
  --it;
  return addr - it->first <= it->second && len <= it->second - (addr - it->first);
}

Result<uint64_t> CudaProxyTransport::DeviceAlloc(uint64_t bytes, int device) {
  Writer w;
  w.U64(bytes);
  w.I32(device);
  Result<std::string> reply = Call(kAlloc, w.out());
  if (!reply.ok()) return reply.status();
  Reader r(*reply);
  Status s = r.St();
  const uint64_t addr = r.U64();
  if (!r.done()) return Status(ErrorCode::INTERNAL_ERROR, "malformed alloc reply");
  if (!s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  allocations_[addr] = bytes;
  return addr;
}

Status CudaProxyTransport::DeviceFree(uint64_t addr) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (allocations_.erase(addr) == 0) {
      return Status(ErrorCode::INVALID_PARAMS, Hex(addr) + " is no allocation of node " +
                                                   std::to_string(node_) + "'s process");
    }
  }
  Writer w;
  w.U64(addr);
  Result<std::string> reply = Call(kFree, w.out());
  if (!reply.ok()) return reply.status();
  Reader r(*reply);
  Status s = r.St();
  if (!r.done()) return Status(ErrorCode::INTERNAL_ERROR, "malformed free reply");
  return s;
}

Status CudaProxyTransport::WriteMemory(uint64_t addr, const void* src, uint64_t bytes) {
  if (!OwnsDevice(addr, bytes)) {
    return Status(ErrorCode::INVALID_PARAMS, "[" + Hex(addr) + ", +" + std::to_string(bytes) +
                                                 ") is not GPU memory of node " +
                                                 std::to_string(node_) + "'s process");
  }
  for (uint64_t done = 0; done < bytes;) {
    const uint64_t n = std::min<uint64_t>(kCopyChunk, bytes - done);
    Writer w;
    w.U64(addr + done);
    w.Str(std::string_view(static_cast<const char*>(src) + done, n));
    Result<std::string> reply = Call(kWrite, w.out());
    if (!reply.ok()) return reply.status();
    Reader r(*reply);
    Status s = r.St();
    if (!r.done()) return Status(ErrorCode::INTERNAL_ERROR, "malformed write reply");
    if (!s.ok()) return s;
    done += n;
  }
  return Status();
}

Status CudaProxyTransport::ReadMemory(void* dst, uint64_t addr, uint64_t bytes) {
  if (!OwnsDevice(addr, bytes)) {
    return Status(ErrorCode::INVALID_PARAMS, "[" + Hex(addr) + ", +" + std::to_string(bytes) +
                                                 ") is not GPU memory of node " +
                                                 std::to_string(node_) + "'s process");
  }
  for (uint64_t done = 0; done < bytes;) {
    const uint64_t n = std::min<uint64_t>(kCopyChunk, bytes - done);
    Writer w;
    w.U64(addr + done);
    w.U64(n);
    Result<std::string> reply = Call(kRead, w.out());
    if (!reply.ok()) return reply.status();
    Reader r(*reply);
    Status s = r.St();
    std::string data = r.Str();
    if (!r.done()) return Status(ErrorCode::INTERNAL_ERROR, "malformed read reply");
    if (!s.ok()) return s;
    if (data.size() != n) return Status(ErrorCode::INTERNAL_ERROR, "short read reply");
    std::memcpy(static_cast<char*>(dst) + done, data.data(), n);
    done += n;
  }
  return Status();
}

// ---- the node process --------------------------------------------------------------------

namespace {

std::string CudaWhy(cudaError_t e) {
  return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}

// One node process: a CudaTransport served by proc::NodeHost, with its home GPU current;
// its own requests allocate, free, write and read GPU memory of this process.
class Host final : public proc::NodeHost {
 public:
  Host(int sock, int device) : NodeHost(sock, "tidal-cuda-host", "cuda-host"), device_(device) {
    transport_ = cuda_.get();
  }
  ~Host() override {
    cuda_.reset();
    for (const auto& [addr, bytes] : allocations_) {
      (void)bytes;
      cudaFree(reinterpret_cast<void*>(addr));
    }
  }

 private:
  // [addr, +len) inside one allocation of this process.
  bool Owns(uint64_t addr, uint64_t len) const {
    auto it = allocations_.upper_bound(addr);
    if (it == allocations_.begin()) return false;
    --it;
    return addr - it->first <= it->second && len <= it->second - (addr - it->first);
  }

  Status NotOwned(uint64_t addr, uint64_t len) const {
    return Status(ErrorCode::INVALID_PARAMS, "[" + Hex(addr) + ", +" + std::to_string(len) +
                                                 ") is no GPU allocation of this process");
  }

  bool HandleOwn(uint8_t type, Reader& r, Writer& w, const std::string& body) override {
    (void)body;
    switch (type) {
      case kAlloc: {
        const uint64_t bytes = r.U64();
        const int device = r.I32();
        if (!r.done()) return false;
        void* p = nullptr;
        cudaError_t e = cudaSetDevice(device);
        if (e == cudaSuccess) e = cudaMalloc(&p, std::max<uint64_t>(bytes, 1));
        if (e == cudaSuccess) e = cudaMemset(p, 0, std::max<uint64_t>(bytes, 1));
        if (e == cudaSuccess) e = cudaDeviceSynchronize();
        (void)cudaSetDevice(device_);  // the home GPU stays current
        if (e != cudaSuccess) {
          if (p != nullptr) cudaFree(p);
          w.St(Status(ErrorCode::INTERNAL_ERROR, "cudaMalloc of " + std::to_string(bytes) +
                                                     " bytes on cuda:" + std::to_string(device) +
                                                     ": " + CudaWhy(e)));
          w.U64(0);
          break;
        }
        allocations_[reinterpret_cast<uint64_t>(p)] = std::max<uint64_t>(bytes, 1);
        w.St(Status());
        w.U64(reinterpret_cast<uint64_t>(p));
        return true;
      }
      case kFree: {
        const uint64_t addr = r.U64();
        if (!r.done()) return false;
        auto it = allocations_.find(addr);
        if (it == allocations_.end()) {
          w.St(NotOwned(addr, 1));
          break;
        }
        allocations_.erase(it);
        const cudaError_t e = cudaFree(reinterpret_cast<void*>(addr));
        w.St(e == cudaSuccess ? Status()
                              : Status(ErrorCode::INTERNAL_ERROR, "cudaFree: " + CudaWhy(e)));
        return true;
      }
      case kWrite: {
        const uint64_t addr = r.U64();
        const std::string data = r.Str();
        if (!r.done()) return false;
        if (!Owns(addr, data.size())) {
          w.St(NotOwned(addr, data.size()));
          break;
        }
        const cudaError_t e =
            cudaMemcpy(reinterpret_cast<void*>(addr), data.data(), data.size(), cudaMemcpyDefault);
        w.St(e == cudaSuccess ? Status()
                              : Status(ErrorCode::INTERNAL_ERROR, "cudaMemcpy: " + CudaWhy(e)));
        return true;
      }
      case kRead: {
        const uint64_t addr = r.U64(), len = r.U64();
        if (!r.done()) return false;
        if (len > kCopyChunk || !Owns(addr, len)) {
          w.St(len > kCopyChunk ? Status(ErrorCode::INVALID_PARAMS, "read larger than a chunk")
                                : NotOwned(addr, len));
          w.Str("");
          break;
        }
        std::string data(len, '\0');
        const cudaError_t e =
            cudaMemcpy(data.data(), reinterpret_cast<void*>(addr), len, cudaMemcpyDefault);
        w.St(e == cudaSuccess ? Status()
                              : Status(ErrorCode::INTERNAL_ERROR, "cudaMemcpy: " + CudaWhy(e)));
        w.Str(e == cudaSuccess ? data : std::string());
        return true;
      }
      default:
        return Unknown(type);
    }
    return true;  // answered with an error status
  }

  int device_;
  std::unique_ptr<CudaTransport> cuda_ = std::make_unique<CudaTransport>();
  std::map<uint64_t, uint64_t> allocations_;  // cudaMalloc'd here: addr -> bytes
};

}  // namespace

int RunCudaHost(int sock, int arena_fd, uint64_t arena_addr, size_t arena_bytes, size_t node,
                int device) {
  // The arena first, before CUDA reserves its address ranges in this process.
  Status ready = SharedHostArena::MapAt(arena_fd, arena_addr, arena_bytes);
  if (ready.ok()) {
    cudaError_t e = cudaSetDevice(device);
    if (e == cudaSuccess) e = cudaFree(nullptr);  // creates the context: the GPU is ours
    if (e != cudaSuccess) {
      ready = Status(ErrorCode::UNSUPPORTED, "cannot make cuda:" + std::to_string(device) +
                                                 " current in this process: " + CudaWhy(e));
    }
  }
  // Peers copy this process's host memory with process_vm_readv/writev: under Yama
  // ptrace_scope 1 a sibling needs this process's leave.
  (void)::prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
  Writer hello;
  hello.St(ready);
  if (!SendFrame(sock, kHello, 0, hello.out())) return 2;
  if (!ready.ok()) {
    std::fprintf(stderr, "tidal-cuda-host: node %zu: %s\n", node, ready.ToString().c_str());
    return 2;
  }
  Host host(sock, device);
  return host.Run();
}

// ---- CudaProcessFabric -------------------------------------------------------------------

Result<std::unique_ptr<CudaProcessFabric>> CudaProcessFabric::Make(
    CudaProcessFabricOptions options) {
  Result<int> devices = CudaDeviceCount();
  if (!devices.ok()) return devices.status();
  std::unique_ptr<CudaProcessFabric> f(new CudaProcessFabric(std::move(options), *devices));
  Status s = f->Start();
  if (!s.ok()) return s;
  return f;
}

Status CudaProcessFabric::Start() {
  Result<std::unique_ptr<SharedHostArena>> arena = SharedHostArena::Make(options_.arena_bytes);
  if (!arena.ok()) return arena.status();
  arena_ = std::move(*arena);
  // Every node process starts at once (each creates a CUDA context, the slow part), then
  // each one's hello is awaited in node order.
  std::vector<std::unique_ptr<CudaProxyTransport>> started;
  for (size_t i = 0; i < options_.nodes; ++i) {
    started.push_back(
        std::make_unique<CudaProxyTransport>(options_.process, *arena_, i, home_device(i)));
    if (Status s = started.back()->Launch(); !s.ok()) return s;
  }
  for (auto& proxy : started) {
    if (Status s = proxy->AwaitHello(); !s.ok()) return s;
  }
  for (size_t i = 0; i < options_.nodes; ++i) {
    std::unique_ptr<CudaProxyTransport> proxy = std::move(started[i]);
    proxies_.push_back(proxy.get());
    std::unique_ptr<Transport> transport = std::move(proxy);
    if (options_.contract_checker) {
      transport = std::make_unique<ContractChecker>(std::move(transport), true);
    }
    engines_.push_back(std::make_unique<TransferEngine>(env_, std::move(transport), metadata_,
                                                        NodeName(i), options_.engine));
    messengers_.push_back(std::make_unique<LoopbackMessenger>(hub_, env_, NodeName(i)));
    // Each proxy's reader thread posts completions to the shared loop.
    env_.AddPoster();
    ++posters_;
  }
  return RunBlocking(env_, [](std::vector<std::unique_ptr<TransferEngine>>& engines)
                               -> Task<Status> {
    for (auto& e : engines) {
      Status s = co_await e->Start();
      if (!s.ok()) co_return s;
    }
    co_return Status();
  }(engines_));
}

CudaProcessFabric::~CudaProcessFabric() {
  if (!engines_.empty()) {
    RunBlocking(env_, [](std::vector<std::unique_ptr<TransferEngine>>& engines) -> Task<void> {
      for (auto& e : engines) (void)co_await e->Stop();
    }(engines_));
  }
  env_.DestroyRoots();
  engines_.clear();  // each proxy asks its child to leave and reaps it
  messengers_.clear();
  for (; posters_ > 0; --posters_) env_.RemovePoster();
}

CudaProxyTransport* CudaProcessFabric::Owner(uint64_t addr, uint64_t len) const {
  for (CudaProxyTransport* p : proxies_) {
    if (p->OwnsDevice(addr, len)) return p;
  }
  return nullptr;
}

void* CudaProcessFabric::Allocate(size_t node, size_t bytes, Location location) {
  TIDAL_ASSERT(node < size());
  if (location.kind != Location::Kind::kCuda) {
    void* p = arena_->Allocate(bytes);
    TIDAL_ASSERT_MSG(p != nullptr,
                     "CudaProcessFabric: the shared arena is exhausted "
                     "(CudaProcessFabricOptions::arena_bytes)");
    return p;
  }
  TIDAL_ASSERT_MSG(location.device >= 0 && location.device < device_count_,
                   "CudaProcessFabric::Allocate: no such CUDA device");
  // Another process may have been handed the same device addresses: an allocation that
  // overlaps another node's is kept aside and taken again (at most 16 times).
  std::vector<uint64_t> aside;
  uint64_t got = 0;
  for (int attempt = 0; attempt < 16 && got == 0; ++attempt) {
    Result<uint64_t> a = proxies_[node]->DeviceAlloc(std::max<size_t>(bytes, 1), location.device);
    if (!a.ok()) {
      std::fprintf(stderr, "CudaProcessFabric::Allocate on node %zu: %s\n", node,
                   a.status().ToString().c_str());
      break;
    }
    bool clash = false;
    for (size_t other = 0; other < size() && !clash; ++other) {
      clash = other != node && proxies_[other]->OverlapsDevice(*a, std::max<size_t>(bytes, 1));
    }
    if (clash) {
      aside.push_back(*a);
    } else {
      got = *a;
    }
  }
  for (uint64_t a : aside) (void)proxies_[node]->DeviceFree(a);
  TIDAL_ASSERT_MSG(got != 0, "CudaProcessFabric::Allocate: the node process could not allocate "
                             "GPU memory disjoint from the other nodes' (see stderr)");
  return reinterpret_cast<void*>(got);
}

void CudaProcessFabric::CopyOut(void* host_target, const void* fabric_source, size_t bytes) {
  const uint64_t src = reinterpret_cast<uint64_t>(fabric_source);
  if (bytes == 0 || arena_->Contains(src, bytes)) {
    std::memcpy(host_target, fabric_source, bytes);
    return;
  }
  CudaProxyTransport* owner = Owner(src, bytes);
  TIDAL_ASSERT_MSG(owner != nullptr, "CudaProcessFabric::CopyOut: not fabric memory");
  const Status s = owner->ReadMemory(host_target, src, bytes);
  TIDAL_ASSERT_MSG(s.ok(), "CudaProcessFabric::CopyOut: the node process failed the copy");
}

void CudaProcessFabric::CopyIn(void* fabric_target, const void* host_source, size_t bytes) {
  const uint64_t dst = reinterpret_cast<uint64_t>(fabric_target);
  if (bytes == 0 || arena_->Contains(dst, bytes)) {
    std::memcpy(fabric_target, host_source, bytes);
    return;
  }
  CudaProxyTransport* owner = Owner(dst, bytes);
  TIDAL_ASSERT_MSG(owner != nullptr, "CudaProcessFabric::CopyIn: not fabric memory");
  const Status s = owner->WriteMemory(dst, host_source, bytes);
  TIDAL_ASSERT_MSG(s.ok(), "CudaProcessFabric::CopyIn: the node process failed the copy");
}

Status CudaProcessFabric::Crash(size_t node) {
  if (node >= size()) return Status(ErrorCode::INVALID_PARAMS, "no such node");
  proxies_[node]->Kill();
  messengers_[node]->SetDown(true);
  return Status();
}

Result<std::unique_ptr<Fabric>> MakeCudaProcessFabric(FabricSpec spec) {
  CudaProcessFabricOptions o;
  o.nodes = spec.nodes;
  o.engine = spec.sim.engine;
  o.contract_checker = spec.sim.contract_checker;
  Result<std::unique_ptr<CudaProcessFabric>> f = CudaProcessFabric::Make(std::move(o));
  if (!f.ok()) {
    if (f.code() == ErrorCode::UNSUPPORTED) return f.status();
    return Status(ErrorCode::UNSUPPORTED, "backend 'cuda_proc': its node processes did not "
                                          "start here: " + f.status().ToString());
  }
  return std::unique_ptr<Fabric>(std::move(*f));
}

}  // namespace tidal::backends::cuda
