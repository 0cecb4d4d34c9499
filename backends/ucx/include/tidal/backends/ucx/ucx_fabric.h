// UcxFabric: N nodes in one process, each with a started TransferEngine over its own
// UcxTransport (own UCP context, worker and progress thread), a LoopbackMessenger
// endpoint, and one shared InMemoryMetadataStore.
//
// Every node shares one RealEnv: its event loop runs engine, store and collective
// coroutines of all nodes on the thread that drives Fabric::Run (as the simulator drives
// every node from one thread), while each transport's progress thread posts its
// completions to it. The UCX transports between nodes are real: bytes cross UCX over the
// transports UCX_TLS selects (tcp, or shared memory with posix,self / sm,self).
//
// Allocate gives zeroed host memory (heap, or UCX-mapped with transport_memory); Crash is
// UNSUPPORTED: the nodes share one executor, so one node's coroutines cannot be stopped alone (the
// raw-transport rig crashes a UcxTransport by itself instead).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tidal/backends/loopback_messenger.h"
#include "tidal/backends/real_env.h"
#include "tidal/backends/ucx/ucx_transport.h"
#include "tidal/fabric.h"
#include "tidal/transfer_engine.h"

namespace tidal::backends::ucx {

struct UcxFabricOptions {
  size_t nodes = 2;
  TransferEngineOptions engine;
  UcxTransportOptions transport;
  bool contract_checker = true;  // wrap every transport in a ContractChecker (aborts)
  // The shared loop polls this long for a progress thread's post before it blocks
  // (RealEnv::SetSpinNs), and progresses the nodes' UCX workers itself while it does
  // (UcxTransport registers a spin poller): a completion is taken and run on the waiting
  // thread without a thread hand-off or a futex wake-up. 0: block at once. Bounded: a
  // loop with nothing to wait for blocks after it, so an idle fabric uses no CPU.
  uint64_t env_spin_ns = 50'000;
  // Non-empty: every node's transport is wrapped in a RecordingTransport writing this
  // JSON-lines file (tidal-sim import reads it). Empty: the TIDAL_RECORD environment
  // variable, when set, names the file instead.
  std::string record_path;
  // Allocate hands out memory the node's transport allocated and mapped through UCX
  // (UcxTransport::AllocateHostMemory: on UCX's shared-memory transports a segment peers
  // map, which one-sided WRITEs fill with a CPU copy) instead of heap memory. Off unless
  // TIDAL_UCX_TRANSPORT_MEMORY=1 is in the environment (the ctest `ucx-1s` instances).
  bool transport_memory = UcxTransportOptions::TransportMemoryFromEnvironment();
};

class UcxFabric final : public Fabric {
 public:
  // INTERNAL_ERROR with UCX's reason when a node's transport or engine cannot start.
  static Result<std::unique_ptr<UcxFabric>> Make(UcxFabricOptions options);
  ~UcxFabric() override;

  std::string_view Name() const override { return "ucx"; }
  bool simulated() const override { return false; }
  size_t size() const override { return engines_.size(); }
  Env& env(size_t) override { return env_; }
  TransferEngine& engine(size_t node) override { return *engines_[node]; }
  Messenger& messenger(size_t node) override { return *messengers_[node]; }
  MetadataStore& metadata() override { return metadata_; }
  void* Allocate(size_t node, size_t bytes, Location location) override;
  void CopyOut(void* host_target, const void* fabric_source, size_t bytes) override;
  void CopyIn(void* fabric_target, const void* host_source, size_t bytes) override;
  Status Crash(size_t node) override;

  UcxTransport& ucx_transport(size_t node) { return *transports_[node]; }

 private:
  explicit UcxFabric(UcxFabricOptions options) : options_(std::move(options)) {}
  Status Start();

  UcxFabricOptions options_;
  RealEnv env_{"ucx"};
  InMemoryMetadataStore metadata_;
  std::shared_ptr<LoopbackHub> hub_ = std::make_shared<LoopbackHub>();
  std::vector<UcxTransport*> transports_;  // owned by the engines
  std::vector<std::unique_ptr<LoopbackMessenger>> messengers_;
  std::vector<std::unique_ptr<TransferEngine>> engines_;
  std::vector<std::unique_ptr<uint8_t[]>> allocations_;
  int posters_ = 0;
};

}  // namespace tidal::backends::ucx
