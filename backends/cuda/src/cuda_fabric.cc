#include "tidal/backends/cuda/cuda_fabric.h"

#include <cuda_runtime_api.h>

#include <cstring>
#include <map>

#include "tidal/contract_checker.h"

namespace tidal::backends::cuda {

// The in-process Messenger: endpoints by name; a message is a callback posted to the one
// event loop, so messages between a pair arrive once and in order.
struct MessengerHub {
  Env* env = nullptr;
  std::map<std::string, Messenger::Receiver, std::less<>> receivers;
};

class InProcessMessenger final : public Messenger {
 public:
  InProcessMessenger(std::shared_ptr<MessengerHub> hub, std::string name)
      : hub_(std::move(hub)), name_(std::move(name)) {
    hub_->receivers.emplace(name_, Receiver());
  }
  ~InProcessMessenger() override { hub_->receivers.erase(name_); }

  std::string_view LocalName() const override { return name_; }
  Status Send(std::string_view to, std::string payload) override {
    if (hub_->receivers.find(to) == hub_->receivers.end()) {
      return Status(ErrorCode::SEGMENT_NOT_FOUND, "no messenger endpoint '" + std::string(to) + "'");
    }
    hub_->env->Post([hub = hub_, to = std::string(to), from = name_,
                     payload = std::move(payload)]() mutable {
      auto it = hub->receivers.find(to);
      if (it != hub->receivers.end() && it->second) it->second(from, std::move(payload));
    });
    return Status();
  }
  void SetReceiver(Receiver receiver) override { hub_->receivers[name_] = std::move(receiver); }

 private:
  std::shared_ptr<MessengerHub> hub_;
  std::string name_;
};

namespace {
void CheckCuda(cudaError_t e, const char* what) {
  TIDAL_ASSERT_MSG(e == cudaSuccess, what);
}
}  // namespace

Result<std::unique_ptr<CudaFabric>> CudaFabric::Make(CudaFabricOptions options) {
  if (options.nodes == 0) return Status(ErrorCode::INVALID_PARAMS, "a fabric needs nodes");
  Result<int> devices = CudaDeviceCount();
  if (!devices.ok()) return devices.status();
  std::unique_ptr<CudaFabric> f(new CudaFabric(std::move(options), *devices));
  // Start every engine (each publishes its segment) on the one loop.
  const size_t n = f->engines_.size();
  std::vector<Status> results(n);
  std::unique_ptr<bool[]> started(new bool[n]());
  for (size_t i = 0; i < n; ++i) {
    Spawn(*f->env_, StartEngine(*f->engines_[i], &results[i], &started[i]));
  }
  f->env_->RunUntil([&] {
    for (size_t i = 0; i < n; ++i) {
      if (!started[i]) return false;
    }
    return true;
  });
  for (size_t i = 0; i < n; ++i) {
    if (!started[i]) return Status(ErrorCode::INTERNAL_ERROR, "cuda fabric: an engine never started");
    if (!results[i].ok()) return results[i];
  }
  return f;
}

CudaFabric::CudaFabric(CudaFabricOptions options, int device_count)
    : options_(std::move(options)), device_count_(device_count) {
  env_ = std::make_unique<RealEnv>("cuda");
  env_->AddPoster();  // the transports' progress threads post completions
  hub_ = std::make_shared<MessengerHub>();
  hub_->env = env_.get();
  for (size_t i = 0; i < options_.nodes; ++i) {
    auto t = std::make_unique<CudaTransport>();
    transports_.push_back(t.get());
    std::unique_ptr<Transport> transport = std::move(t);
    if (options_.contract_checker) {
      transport = std::make_unique<ContractChecker>(std::move(transport), /*abort=*/true);
    }
    engines_.push_back(std::make_unique<TransferEngine>(*env_, std::move(transport), metadata_,
                                                        NodeName(i), options_.engine));
    messengers_.push_back(std::make_unique<InProcessMessenger>(hub_, NodeName(i)));
  }
}

Task<void> CudaFabric::StartEngine(TransferEngine& engine, Status* result, bool* started) {
  *result = co_await engine.Start();
  *started = true;
}

CudaFabric::~CudaFabric() {
  // Coroutine frames may point at engines and messengers: destroy them first. The engines'
  // transports wait for their copies in flight before the memory below is freed.
  env_->DestroyRoots();
  engines_.clear();
  messengers_.clear();
  env_->RemovePoster();
  for (const Allocation& a : allocations_) {
    if (a.device) {
      cudaFree(a.ptr);
    } else {
      cudaFreeHost(a.ptr);
    }
  }
}

Env& CudaFabric::env(size_t node) {
  TIDAL_ASSERT(node < size());
  return *env_;
}

Messenger& CudaFabric::messenger(size_t node) { return *messengers_[node]; }

void* CudaFabric::Allocate(size_t node, size_t bytes, Location location) {
  TIDAL_ASSERT(node < size());
  const size_t n = bytes == 0 ? 1 : bytes;
  void* p = nullptr;
  if (location.kind == Location::Kind::kCuda) {
    TIDAL_ASSERT_MSG(location.device >= 0 && location.device < device_count_,
                     "CudaFabric::Allocate: no such CUDA device");
    CheckCuda(cudaSetDevice(location.device), "cudaSetDevice");
    CheckCuda(cudaMalloc(&p, n), "cudaMalloc");
    CheckCuda(cudaMemset(p, 0, n), "cudaMemset");
    allocations_.push_back({p, true});
  } else {
    CheckCuda(cudaMallocHost(&p, n), "cudaMallocHost");
    std::memset(p, 0, n);
    allocations_.push_back({p, false});
  }
  return p;
}

void CudaFabric::CopyOut(void* host_target, const void* fabric_source, size_t bytes) {
  if (bytes == 0) return;
  CheckCuda(cudaMemcpy(host_target, fabric_source, bytes, cudaMemcpyDefault), "cudaMemcpy");
}

void CudaFabric::CopyIn(void* fabric_target, const void* host_source, size_t bytes) {
  if (bytes == 0) return;
  CheckCuda(cudaMemcpy(fabric_target, host_source, bytes, cudaMemcpyDefault), "cudaMemcpy");
  // From pageable memory cudaMemcpy may return before its DMA has landed, and the streams
  // that read fabric memory next (the transport's, a reducer's) do not wait for it: the
  // bytes are in place when CopyIn returns.
  int current = 0;
  CheckCuda(cudaGetDevice(&current), "cudaGetDevice");
  for (int d = 0; d < device_count_; ++d) {
    CheckCuda(cudaSetDevice(d), "cudaSetDevice");
    CheckCuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  }
  CheckCuda(cudaSetDevice(current), "cudaSetDevice");
}

Status CudaFabric::Crash(size_t node) {
  (void)node;
  return Status(ErrorCode::UNSUPPORTED, "the cuda fabric cannot crash a node of its process");
}

std::string CudaFabricUnavailable() {
  Result<int> devices = CudaDeviceCount();
  return devices.ok() ? std::string() : devices.status().message();
}

Result<std::unique_ptr<Fabric>> MakeCudaFabric(FabricSpec spec) {
  CudaFabricOptions o;
  o.nodes = spec.nodes;
  o.engine = spec.sim.engine;
  o.contract_checker = spec.sim.contract_checker;
  Result<std::unique_ptr<CudaFabric>> f = CudaFabric::Make(std::move(o));
  if (!f.ok()) return f.status();
  return std::unique_ptr<Fabric>(std::move(*f));
}

}  // namespace tidal::backends::cuda
