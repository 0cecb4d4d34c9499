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
  co.sim.tape = o.tape;
  co.sim.record_tape = o.record_tape;
  return co;
}

bool Faulty(const StoreWorldOptions& o) {
  return !o.faults.empty() || o.swarm.enabled != sim::SwarmSettings{}.enabled || !o.tape.empty();
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

store::MasterService& StoreWorld::master() {
  TIDAL_ASSERT_MSG(cluster_->master() != nullptr, "StoreWorld: the master is down");
  return *cluster_->master();
}

Status StoreWorld::CrashMaster() {
  TIDAL_RETURN_IF_ERROR(cluster_->StopMaster());
  if (simulated()) world().Record(static_cast<int64_t>(cluster_->master_node()), "master_crash", {});
  return Status::Ok();
}

Status StoreWorld::RestartMaster() {
  TIDAL_RETURN_IF_ERROR(
      cluster_->StartMaster(options_.master, options_.durable_master ? &journal_ : nullptr));
  ++master_restarts_;
  if (observer_) cluster_->master()->state().SetObserver(observer_);
  if (simulated()) {
    world().Record(static_cast<int64_t>(cluster_->master_node()), "master_restart", {});
  }
  return Status::Ok();
}

void StoreWorld::ScheduleMasterRestart(uint64_t at_ns, uint64_t down_ns) {
  world().ScheduleAt(at_ns, -1, [this, down_ns, epoch = restart_epoch_]() {
    // Voided, or an earlier crash is still down: this one merges with it.
    if (epoch != restart_epoch_ || !master_up()) return;
    Status crashed = CrashMaster();
    TIDAL_ASSERT(crashed.ok());
    world().ScheduleAt(world().NowNs() + down_ns, -1, [this, epoch]() {
      if (epoch != restart_epoch_) return;
      Status restarted = RestartMaster();
      TIDAL_ASSERT_MSG(restarted.ok(), "StoreWorld: the master did not come back from its journal");
    });
  });
}

void StoreWorld::FinishMasterRestarts() {
  ++restart_epoch_;
  if (!master_up()) {
    Status restarted = RestartMaster();
    TIDAL_ASSERT_MSG(restarted.ok(), "StoreWorld: the master did not come back from its journal");
  }
}

void StoreWorld::SetMasterObserver(store::MasterState::Observer observer) {
  observer_ = std::move(observer);
  if (master_up()) state().SetObserver(observer_);
}

namespace {

// What a master restarted now would know, rebuilt from a copy of the journal.
std::unique_ptr<store::MasterState> Probe(const store::MemoryJournal& journal,
                                          const store::MasterOptions& options, uint64_t now_ns) {
  store::MemoryJournal copy;
  for (const auto& [k, v] : journal.Load()) copy.Put(k, v);
  auto probe = std::make_unique<store::MasterState>(options);
  Status s = probe->Recover(&copy, now_ns);
  TIDAL_ASSERT_MSG(s.ok(), "StoreWorld: the master's journal does not read back");
  return probe;
}

}  // namespace

std::vector<store::ReplicaLocation> StoreWorld::Replicas(const std::string& key) {
  if (master_up()) return state().Replicas(key);
  if (!options_.durable_master) return {};
  return Probe(journal_, options_.master, NowNs())->Replicas(key);
}

Result<store::ObjectInfo> StoreWorld::Stat(const std::string& key) {
  if (master_up()) return state().Stat(key, NowNs());
  if (!options_.durable_master) return Status(ErrorCode::RPC_FAIL, "the master is down");
  return Probe(journal_, options_.master, NowNs())->Stat(key, NowNs());
}

Status StoreWorld::SetUp() {
  Status s = cluster_->StartMaster(options_.master,
                                   options_.durable_master ? &journal_ : nullptr);
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
