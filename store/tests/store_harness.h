// StoreWorld: a simulated cluster with a store on it, shared by the scenario tests, the
// nemesis campaign and the benchmark. Node 0 runs the master (endpoint "master"); client
// i runs on node i + 1 with its own TransferEngine and messenger endpoint, and (unless
// told otherwise) mounts a segment of `segment_bytes`.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tidal/sim/sim_fabric.h"
#include "tidal/sim/sim_messenger.h"
#include "tidal/store/client.h"
#include "tidal/store/master.h"

namespace tidal::store::testing {

struct StoreWorldOptions {
  uint64_t seed = 1;
  size_t clients = 3;
  uint64_t segment_bytes = 8ull << 20;
  bool mount = true;
  MasterOptions master;
  StoreClientOptions client;
  TransferEngineOptions engine;
  std::string faults;  // a fault script (fault_plan.h); empty: none
  sim::SwarmSettings swarm;
  std::string replay_command;
};

template <typename T>
Task<void> Capture(std::shared_ptr<std::optional<T>> out, Task<T> task) {
  out->emplace(co_await std::move(task));
}

class StoreWorld {
 public:
  explicit StoreWorld(StoreWorldOptions options);
  ~StoreWorld();

  sim::SimFabric& fabric() { return *fabric_; }
  sim::World& world() { return fabric_->world(); }
  MasterService& master() { return *master_; }
  MasterState& state() { return master_->state(); }
  StoreClient& client(size_t i) { return *clients_[i]; }
  size_t clients() const { return clients_.size(); }
  static uint32_t NodeOf(size_t client) { return static_cast<uint32_t>(client + 1); }
  static std::string SegmentOf(size_t client) { return Fabric::NodeName(NodeOf(client)); }
  Env& env(size_t client) { return fabric_->env(NodeOf(client)); }
  TransferEngine& engine(size_t client) { return fabric_->engine(NodeOf(client)); }
  uint8_t* segment(size_t client) { return segments_[client]; }

  // Runs `task` on client `i`'s node until it ends (RunBlocking on that node's Env).
  template <typename T>
  T Run(size_t i, Task<T> task) {
    return RunBlocking(env(i), std::move(task));
  }
  // Starts `task` on client i's node without waiting; the slot fills when it ends.
  template <typename T>
  std::shared_ptr<std::optional<T>> Start(size_t i, Task<T> task) {
    auto out = std::make_shared<std::optional<T>>();
    Spawn(env(i), Capture<T>(out, std::move(task)));
    return out;
  }
  // Runs `task` on client i's node until it ends, or the node crashes (nullopt).
  template <typename T>
  std::optional<T> TryRun(size_t i, Task<T> task) {
    auto slot = Start(i, std::move(task));
    RunUntil([&] { return slot->has_value() || !world().alive(NodeOf(i)); });
    return std::move(*slot);
  }
  // Runs the world until `done()` holds; false if it never can.
  bool RunUntil(const std::function<bool()>& done) { return world().RunUntil(done); }
  // Memory on client i's node; registered with its engine when `registered` (retrying
  // injected registration failures; a crashed node's memory stays unregistered).
  uint8_t* Buffer(size_t i, size_t bytes, bool registered = true);
  // Advances virtual time by `ns` (everything runs meanwhile).
  void Advance(uint64_t ns);
  // Crashes client i's node.
  void Crash(size_t i);
  std::string Banner() const { return fabric_->world().FailureBanner(); }

 private:
  StoreWorldOptions options_;
  std::unique_ptr<sim::SimFabric> fabric_;
  std::unique_ptr<sim::SimMessenger> master_endpoint_;
  std::unique_ptr<MasterService> master_;
  std::vector<std::unique_ptr<StoreClient>> clients_;
  std::vector<uint8_t*> segments_;
};

// Deterministic test bytes: `size` bytes derived from `seed`.
std::string Pattern(uint64_t seed, size_t size);

}  // namespace tidal::store::testing
