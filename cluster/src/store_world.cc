// StoreWorld (see store_world.h).
#include "tidal/cluster/store_world.h"

#include <cstdio>
#include <cstring>

namespace tidal::cluster {

namespace {

ClusterOptions ClusterOf(const StoreWorldOptions& o) {
  ClusterOptions co;
  co.backend = o.backend;
  co.nodes = o.clients + 1;
  co.master_node = 0;
  co.sim.seed = o.seed;
  co.sim.faults = o.faults;
  co.sim.swarm = o.swarm;
  co.sim.engine = o.engine;
  co.sim.replay_command = o.replay_command;
  return co;
}

bool Faulty(const StoreWorldOptions& o) {
  return !o.faults.empty() || o.swarm.enabled != sim::SwarmSettings{}.enabled;
}

}  // namespace

Result<std::unique_ptr<StoreWorld>> StoreWorld::Make(StoreWorldOptions options) {
  Result<std::unique_ptr<Cluster>> cluster = Cluster::Make(ClusterOf(options));
  if (!cluster.ok()) return cluster.status();
  std::unique_ptr<StoreWorld> w(new StoreWorld(std::move(options), std::move(*cluster)));
  Status s = w->SetUp();
  if (!s.ok()) return s;
  return w;
}

StoreWorld::StoreWorld(StoreWorldOptions options, std::unique_ptr<Cluster> cluster)
    : options_(std::move(options)), cluster_(std::move(cluster)) {}

StoreWorld::StoreWorld(StoreWorldOptions options) : options_(std::move(options)) {
  Result<std::unique_ptr<Cluster>> cluster = Cluster::Make(ClusterOf(options_));
  TIDAL_ASSERT_MSG(cluster.ok(), "StoreWorld: the cluster cannot be built (use Make)");
  cluster_ = std::move(*cluster);
  Status s = SetUp();
  TIDAL_ASSERT_MSG(s.ok(), "StoreWorld: set-up failed without faults to blame (use Make)");
}

StoreWorld::~StoreWorld() = default;

Status StoreWorld::SetUp() {
  Status s = cluster_->StartMaster(options_.master);
  if (!s.ok()) return s;
  for (size_t i = 0; i < options_.clients; ++i) {
    const uint32_t node = NodeOf(i);
    Result<store::StoreClient*> client = cluster_->NewStoreClient(node, options_.client);
    if (!client.ok()) return client.status();
    // Under faults set-up itself can meet message loss, registration failures and crashes:
    // retry what can be retried; a crashed client simply stays down.
    for (int attempt = 0; attempt < 50; ++attempt) {
      std::optional<Status> started = TryRun(i, (*client)->Start());
      if (!started || started->ok()) break;
      if (!Faulty(options_)) return *started;
    }
    if (!options_.mount) continue;
    auto* seg = static_cast<uint8_t*>(cluster_->Allocate(node, options_.segment_bytes));
    for (int attempt = 0; attempt < 50; ++attempt) {
      std::optional<Status> mounted =
          TryRun(i, cluster_->MountSegment(node, seg, options_.segment_bytes));
      if (!mounted || mounted->ok()) break;
      if (!Faulty(options_)) return *mounted;
    }
  }
  return Status::Ok();
}

uint8_t* StoreWorld::Buffer(size_t i, size_t bytes, bool registered) {
  auto* p = static_cast<uint8_t*>(cluster_->Allocate(NodeOf(i), bytes));
  for (int attempt = 0; registered && attempt < 50; ++attempt) {
    std::optional<Status> s = TryRun(i, client(i).RegisterBuffer(p, bytes));
    if (!s || s->ok()) break;
    TIDAL_ASSERT_MSG(s->code() == ErrorCode::REGISTRATION_FAILED, "StoreWorld: register failed");
  }
  return p;
}

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

}  // namespace tidal::cluster
