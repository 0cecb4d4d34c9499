#include "tidal/sim/sim_fabric.h"

#include <cstdlib>
#include <cstring>

#include "tidal/contract_checker.h"

namespace tidal::sim {

SimFabric::SimFabric(SimFabricOptions options) : options_(std::move(options)) {
  world_ = std::make_unique<World>(options_.world);
  const size_t n = world_->size();
  for (uint32_t i = 0; i < n; ++i) {
    auto sim = std::make_unique<SimTransport>(*world_, i);
    sim_transports_.push_back(sim.get());
    std::unique_ptr<Transport> transport = std::move(sim);
    if (options_.contract_checker) {
      auto checker =
          std::make_unique<ContractChecker>(std::move(transport), options_.checker_aborts);
      checkers_.push_back(checker.get());
      transport = std::move(checker);
    }
    engines_.push_back(std::make_unique<TransferEngine>(world_->env(i), std::move(transport),
                                                        metadata_, NodeName(i),
                                                        options_.engine));
    messengers_.push_back(std::make_unique<SimMessenger>(*world_, i, NodeName(i)));
  }
  // Start every engine (publishes its segment), all at once, and run the world until each
  // has started or its node went down: a fault plan may crash or hang a node at t=0, and
  // that is an ordinary fault, not a reason to stop.
  std::vector<uint8_t> started(n, 0);
  for (uint32_t i = 0; i < n; ++i) Spawn(world_->env(i), StartEngine(*engines_[i], &started[i]));
  world_->RunUntil([&] {
    for (uint32_t i = 0; i < n; ++i) {
      if (!started[i] && world_->Responsive(i)) return false;
    }
    return true;
  });
}

Task<void> SimFabric::StartEngine(TransferEngine& engine, uint8_t* started) {
  Status s = co_await engine.Start();
  TIDAL_ASSERT_MSG(s.ok(), "SimFabric: engine start failed");
  *started = 1;
}

SimFabric::~SimFabric() {
  // Coroutine frames may point at engines and messengers: destroy them first.
  world_->Shutdown();
  engines_.clear();
  messengers_.clear();
  world_.reset();
}

void* SimFabric::Allocate(size_t node, size_t bytes, Location location) {
  TIDAL_ASSERT(node < size());
  // Host memory stands in for simulated device memory: the transport only sees the tag.
  // Zeroed by calloc: a large block comes zeroed from the kernel, and its pages are
  // faulted in only where the node's memory is used.
  void* p = std::calloc(bytes == 0 ? 1 : bytes, 1);
  TIDAL_ASSERT_MSG(p != nullptr, "SimFabric: out of host memory");
  allocations_.emplace_back(static_cast<uint8_t*>(p));
  (void)location;
  return p;
}

void SimFabric::CopyOut(void* host_target, const void* fabric_source, size_t bytes) {
  std::memcpy(host_target, fabric_source, bytes);
}

void SimFabric::CopyIn(void* fabric_target, const void* host_source, size_t bytes) {
  std::memcpy(fabric_target, host_source, bytes);
}

std::vector<std::string> SimFabric::ContractViolations() const {
  std::vector<std::string> out;
  for (const ContractChecker* c : checkers_) {
    out.insert(out.end(), c->violations().begin(), c->violations().end());
  }
  return out;
}

Status SimFabric::Crash(size_t node) {
  if (node >= size()) return Status(ErrorCode::INVALID_PARAMS, "no such node");
  world_->Crash(static_cast<uint32_t>(node));
  return Status();
}

}  // namespace tidal::sim
