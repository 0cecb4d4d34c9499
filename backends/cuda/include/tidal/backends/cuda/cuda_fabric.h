// CudaFabric: N nodes of one process on the CUDA transport (cuda_transport.h).
//
// Placement: node i's home GPU is device i % D, where D is cudaGetDeviceCount: N nodes are
// N GPUs when N <= D, and nodes share GPUs round-robin when N > D (two nodes on one GPU
// copy device-to-device on it). The home GPU is only a default for users that need one
// (home_device); Allocate honours the location it is given: `cuda:N` is cudaMalloc on
// device N (zeroed), host is pinned memory from cudaMallocHost (zeroed), so host<->GPU
// copies run at DMA speed. CopyIn/CopyOut are cudaMemcpy (cudaMemcpyDefault).
//
// Every node runs on one RealEnv (one event loop, like the simulator's one thread): the
// thread in Run drives every node's coroutines, and the transports' progress threads post
// their completions to it. Messages between nodes go through an in-process Messenger on
// that loop (ordered per pair, never lost). The MetadataStore is in memory.
//
// Make returns UNSUPPORTED "no CUDA device: ..." when cudaGetDeviceCount fails or finds
// none, so suites skip with that reason. Crash is UNSUPPORTED (a node of a process cannot
// fail-stop on its own).
#pragma once

#include <memory>
#include <vector>

#include "tidal/backends/cuda/cuda_transport.h"
#include "tidal/backends/real_env.h"
#include "tidal/backends/registry.h"
#include "tidal/fabric.h"

namespace tidal::backends::cuda {

struct CudaFabricOptions {
  size_t nodes = 2;
  TransferEngineOptions engine;
  bool contract_checker = true;  // wrap every transport in a ContractChecker (tests)
};

class InProcessMessenger;
struct MessengerHub;

class CudaFabric final : public Fabric {
 public:
  static Result<std::unique_ptr<CudaFabric>> Make(CudaFabricOptions options);
  ~CudaFabric() override;

  std::string_view Name() const override { return "cuda"; }
  bool simulated() const override { return false; }
  size_t size() const override { return engines_.size(); }
  Env& env(size_t node) override;
  TransferEngine& engine(size_t node) override { return *engines_[node]; }
  Messenger& messenger(size_t node) override;
  MetadataStore& metadata() override { return metadata_; }
  void* Allocate(size_t node, size_t bytes, Location location) override;
  void CopyOut(void* host_target, const void* fabric_source, size_t bytes) override;
  void CopyIn(void* fabric_target, const void* host_source, size_t bytes) override;
  Status Crash(size_t node) override;

  int device_count() const { return device_count_; }
  int home_device(size_t node) const { return static_cast<int>(node % device_count_); }
  CudaTransport& cuda_transport(size_t node) { return *transports_[node]; }

 private:
  CudaFabric(CudaFabricOptions options, int device_count);
  static Task<void> StartEngine(TransferEngine& engine, Status* result, bool* started);

  CudaFabricOptions options_;
  int device_count_ = 0;
  std::unique_ptr<RealEnv> env_;
  InMemoryMetadataStore metadata_;
  std::shared_ptr<MessengerHub> hub_;
  std::vector<std::unique_ptr<InProcessMessenger>> messengers_;
  std::vector<CudaTransport*> transports_;  // owned by the engines
  std::vector<std::unique_ptr<TransferEngine>> engines_;
  struct Allocation {
    void* ptr;
    bool device;
  };
  std::vector<Allocation> allocations_;
};

// The registry's maker: spec.nodes nodes, spec.sim.engine as the engines' options and
// spec.sim.contract_checker (the fields every fabric of the registry takes).
Result<std::unique_ptr<Fabric>> MakeCudaFabric(FabricSpec spec);
// The registry's probe: "" when a CUDA device is present, else "no CUDA device: ...".
std::string CudaFabricUnavailable();

}  // namespace tidal::backends::cuda
