// StoreWorld (see store_harness.h).
#include "store_harness.h"

#include <cstdio>
#include <cstring>

namespace tidal::store::testing {

StoreWorld::StoreWorld(StoreWorldOptions options) : options_(std::move(options)) {
  sim::SimFabricOptions fo;
  fo.world.seed = options_.seed;
  fo.world.nodes = options_.clients + 1;
  fo.world.replay_command = options_.replay_command;
  if (!options_.faults.empty()) {
    Result<sim::FaultPlan> plan = sim::FaultPlan::Parse(options_.faults);
    TIDAL_ASSERT_MSG(plan.ok(), "StoreWorld: bad fault script");
    fo.world.faults = *plan;
  }
  fo.world.faults.swarm = options_.swarm;
  fo.engine = options_.engine;
  fabric_ = std::make_unique<sim::SimFabric>(std::move(fo));
  master_endpoint_ = std::make_unique<sim::SimMessenger>(world(), 0, options_.client.master);
  master_ = std::make_unique<MasterService>(fabric_->env(0), *master_endpoint_, options_.master);
  master_->Start();
  for (size_t i = 0; i < options_.clients; ++i) {
    uint32_t node = NodeOf(i);
    clients_.push_back(std::make_unique<StoreClient>(fabric_->env(node), fabric_->engine(node),
                                                     fabric_->messenger(node), options_.client));
    segments_.push_back(nullptr);
    // Under swarm faults setup itself can meet message loss, registration failures and
    // crashes: retry what can be retried; a crashed client simply stays down.
    for (int attempt = 0; attempt < 50; ++attempt) {
      std::optional<Status> s = TryRun(i, clients_.back()->Start());
      if (!s || s->ok()) break;
    }
    if (!options_.mount) continue;
    uint8_t* seg =
        static_cast<uint8_t*>(fabric_->Allocate(node, options_.segment_bytes, Location::Host()));
    for (int attempt = 0; attempt < 50; ++attempt) {
      std::optional<Status> s =
          TryRun(i, clients_.back()->MountSegment(seg, options_.segment_bytes));
      if (!s) break;
      if (s->ok()) {
        segments_.back() = seg;
        break;
      }
      TIDAL_ASSERT_MSG(
          options_.swarm.enabled != sim::SwarmSettings{}.enabled || !options_.faults.empty(),
          "StoreWorld: mount failed without faults");
    }
  }
}

StoreWorld::~StoreWorld() {
  // Suspended coroutines may point into clients and the master: end them first, then the
  // objects they used, then the world.
  world().Shutdown();
  clients_.clear();
  master_.reset();
  master_endpoint_.reset();
  fabric_.reset();
}

uint8_t* StoreWorld::Buffer(size_t i, size_t bytes, bool registered) {
  uint8_t* p = static_cast<uint8_t*>(fabric_->Allocate(NodeOf(i), bytes, Location::Host()));
  for (int attempt = 0; registered && attempt < 50; ++attempt) {
    std::optional<Status> s = TryRun(i, clients_[i]->RegisterBuffer(p, bytes));
    if (!s || s->ok()) break;
    TIDAL_ASSERT_MSG(s->code() == ErrorCode::REGISTRATION_FAILED, "StoreWorld: register failed");
  }
  return p;
}

void StoreWorld::Advance(uint64_t ns) { world().RunUntilTime(world().NowNs() + ns); }

void StoreWorld::Crash(size_t i) { (void)fabric_->Crash(NodeOf(i)); }

std::string Pattern(uint64_t seed, size_t size) {
  std::string out(size, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < size; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    out[i] = static_cast<char>(x);
  }
  return out;
}

}  // namespace tidal::store::testing
