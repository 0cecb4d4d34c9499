// SimFabric: N simulated nodes, each with a started TransferEngine over a SimTransport
// (optionally wrapped in a ContractChecker), a SimMessenger and a shared in-memory
// MetadataStore, all in one World.
#pragma once

#include <cstdlib>
#include <memory>
#include <optional>
#include <vector>

#include "tidal/fabric.h"
#include "tidal/sim/sim_messenger.h"
#include "tidal/sim/sim_transport.h"
#include "tidal/sim/world.h"

namespace tidal {
class ContractChecker;
}

namespace tidal::sim {

struct SimFabricOptions {
  WorldOptions world;
  TransferEngineOptions engine;
  bool contract_checker = true;  // wrap every transport in a ContractChecker
  bool checker_aborts = true;    // a violation aborts (false: recorded, see violations())
};

class SimFabric final : public Fabric {
 public:
  explicit SimFabric(SimFabricOptions options);
  ~SimFabric() override;

  std::string_view Name() const override { return "sim"; }
  bool simulated() const override { return true; }
  size_t size() const override { return world_->size(); }
  Env& env(size_t node) override { return world_->env(node); }
  TransferEngine& engine(size_t node) override { return *engines_[node]; }
  Messenger& messenger(size_t node) override { return *messengers_[node]; }
  MetadataStore& metadata() override { return metadata_; }
  void* Allocate(size_t node, size_t bytes, Location location) override;
  void CopyOut(void* host_target, const void* fabric_source, size_t bytes) override;
  void CopyIn(void* fabric_target, const void* host_source, size_t bytes) override;
  Status Crash(size_t node) override;

  World& world() { return *world_; }
  SimTransport& sim_transport(size_t node) { return *sim_transports_[node]; }
  // Contract violations recorded by the checkers (with checker_aborts = false).
  std::vector<std::string> ContractViolations() const;

  // Drives `task` on `node` until it finishes, or until the node crashes or hangs for good
  // (then nullopt): RunBlocking for code that must survive node faults.
  template <typename T>
  std::optional<T> RunOn(size_t node, Task<T> task) {
    auto h = task.handle();
    world_->env(node).Post([h]() { h.resume(); });
    world_->RunUntil([&] { return h.done() || !world_->Responsive(node); });
    if (!h.done()) return std::nullopt;
    return task.TakeValue();
  }

 private:
  static Task<void> StartEngine(TransferEngine& engine, uint8_t* started);

  SimFabricOptions options_;
  std::unique_ptr<World> world_;
  InMemoryMetadataStore metadata_;
  std::vector<SimTransport*> sim_transports_;  // owned by the engines
  std::vector<ContractChecker*> checkers_;     // owned by the engines
  std::vector<std::unique_ptr<SimMessenger>> messengers_;
  std::vector<std::unique_ptr<TransferEngine>> engines_;
  struct FreeBlock {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::vector<std::unique_ptr<uint8_t, FreeBlock>> allocations_;  // calloc'ed
};

}  // namespace tidal::sim
