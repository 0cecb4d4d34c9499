// Cluster (see cluster.h).
#include "tidal/cluster/cluster.h"

#include <algorithm>
#include <utility>

#if TIDAL_HAVE_UCX
#include "tidal/backends/ucx/ucx_process_fabric.h"
#endif
#if TIDAL_HAVE_CUDA
#include "tidal/backends/cuda/cuda_process_fabric.h"
#endif

namespace tidal::cluster {

namespace {

// The store's RPC needs one Messenger per side: a DuplexMessenger (messenger_mux.h) sends
// on its peer's channel and receives on its own.
using DuplexPort = DuplexMessenger;

bool SwarmEnabled(const sim::SwarmSettings& swarm) {
  return std::any_of(swarm.enabled.begin(), swarm.enabled.end(), [](bool on) { return on; });
}

Task<void> NodeRoot(std::function<Task<void>(size_t)>* body, size_t node,
                    std::vector<bool>* finished) {
  co_await (*body)(node);
  (*finished)[node] = true;
}

#if TIDAL_HAVE_UCX
// Process-group buffers on the ucx_proc fabric: from its shared arena, the only memory its
// node processes see.
class ArenaBufferAllocator final : public coll::BufferAllocator {
 public:
  explicit ArenaBufferAllocator(backends::ucx::SharedArena& arena) : arena_(arena) {}
  Result<void*> Allocate(uint64_t bytes, Location location) override {
    if (!location.is_host()) {
      return Status(ErrorCode::UNSUPPORTED, "ucx_proc: group buffers at " + location.ToString() +
                                                ": its transport moves host memory only");
    }
    void* p = arena_.Allocate(bytes);
    if (p == nullptr) {
      return Status(ErrorCode::BUFFER_OVERFLOW, "ucx_proc: the shared arena has no free " +
                                                    std::to_string(bytes) + " bytes");
    }
    return p;
  }
  void Free(void* data, uint64_t bytes, Location) override { arena_.Free(data, bytes); }

 private:
  backends::ucx::SharedArena& arena_;
};

// Store clients' staging and temporary buffers on ucx_proc: from the arena too.
class ArenaStoreAllocator final : public store::StoreBufferAllocator {
 public:
  explicit ArenaStoreAllocator(backends::ucx::SharedArena& arena) : arena_(arena) {}
  Result<void*> Allocate(uint64_t bytes) override {
    void* p = arena_.Allocate(bytes);
    if (p == nullptr) {
      return Status(ErrorCode::BUFFER_OVERFLOW, "ucx_proc: the shared arena has no free " +
                                                    std::to_string(bytes) + " bytes");
    }
    return p;
  }
  void Free(void* data, uint64_t bytes) override { arena_.Free(data, bytes); }

 private:
  backends::ucx::SharedArena& arena_;
};
#endif

#if TIDAL_HAVE_CUDA
// Process-group buffers on the cuda_proc fabric: host memory from its shared arena, the
// only host memory its node processes see (GPU slots would be memory of this process).
class CudaArenaBufferAllocator final : public coll::BufferAllocator {
 public:
  explicit CudaArenaBufferAllocator(backends::cuda::SharedHostArena& arena) : arena_(arena) {}
  Result<void*> Allocate(uint64_t bytes, Location location) override {
    if (!location.is_host()) {
      return Status(ErrorCode::UNSUPPORTED,
                    "cuda_proc: group buffers at " + location.ToString() +
                        ": its node processes see only the host memory of the shared arena");
    }
    void* p = arena_.Allocate(bytes);
    if (p == nullptr) {
      return Status(ErrorCode::BUFFER_OVERFLOW, "cuda_proc: the shared arena has no free " +
                                                    std::to_string(bytes) + " bytes");
    }
    return p;
  }
  void Free(void* data, uint64_t bytes, Location) override { arena_.Free(data, bytes); }

 private:
  backends::cuda::SharedHostArena& arena_;
};
#endif

}  // namespace

struct Cluster::Node {
  std::unique_ptr<MessengerMux> mux;
  std::unique_ptr<DuplexPort> master_port;  // the master's side (master_node only)
  std::unique_ptr<DuplexPort> client_port;  // the store client's side
  std::unique_ptr<store::StoreClient> client;
  uint8_t* segment = nullptr;
};

struct Cluster::Group {
  std::string name;
  uint8_t channel = 0;
  std::vector<size_t> nodes;
  std::vector<std::unique_ptr<coll::ProcessGroup>> ranks;
};

std::vector<std::string> BackendNames() {
  std::vector<std::string> names;
  for (const backends::BackendInfo& b : backends::ListBackends()) names.push_back(b.name);
  return names;
}

Result<std::unique_ptr<Cluster>> Cluster::Make(ClusterOptions options) {
  if (options.nodes == 0) return Status(ErrorCode::INVALID_PARAMS, "a cluster needs nodes");
  if (options.master_node >= options.nodes) {
    return Status(ErrorCode::INVALID_PARAMS, "master_node " +
                                                 std::to_string(options.master_node) +
                                                 " is not one of the " +
                                                 std::to_string(options.nodes) + " nodes");
  }
  // A backend that cannot run here says so first, whatever else was asked of it.
  for (const backends::BackendInfo& b : backends::ListBackends()) {
    if (b.name == options.backend && (!b.built || !b.unavailable.empty())) {
      return Status(ErrorCode::UNSUPPORTED, "backend '" + b.name + "': " + b.unavailable);
    }
  }
  backends::FabricSpec spec;
  spec.nodes = options.nodes;
  const SimOptions& so = options.sim;
  spec.sim.engine = so.engine;  // every fabric's engines take them (registry.cc)
  if (options.backend == "sim") {
    spec.sim.world.seed = so.seed;
    spec.sim.world.tape_bytes = so.tape;
    spec.sim.world.record_tape = so.record_tape;
    spec.sim.world.link = so.link;
    spec.sim.world.replay_command = so.replay_command;
    if (!so.faults.empty()) {
      Result<sim::FaultPlan> plan = sim::FaultPlan::Parse(so.faults);
      if (!plan.ok()) {
        return Status(ErrorCode::INVALID_PARAMS, "fault script: " + plan.status().ToString());
      }
      spec.sim.world.faults = *plan;
    }
    spec.sim.world.faults.swarm = so.swarm;
    spec.sim.contract_checker = so.contract_checker;
  } else if (!so.faults.empty() || SwarmEnabled(so.swarm) || !so.tape.empty()) {
    return Status(ErrorCode::UNSUPPORTED, "backend '" + options.backend +
                                              "': fault scripts, swarm faults and tapes need "
                                              "the simulator");
  }
  Result<std::unique_ptr<Fabric>> fabric = backends::MakeFabric(options.backend, std::move(spec));
  if (!fabric.ok()) return fabric.status();
  return std::make_unique<Cluster>(std::move(*fabric), options.master_node);
}

Cluster::Cluster(std::unique_ptr<Fabric> fabric, size_t master_node)
    : fabric_(std::move(fabric)), master_node_(master_node) {
  TIDAL_ASSERT(fabric_ != nullptr && master_node_ < fabric_->size());
  // Name() "sim" is the registry's promise that the fabric is a SimFabric.
  if (fabric_->simulated()) sim_ = static_cast<sim::SimFabric*>(fabric_.get());
  for (size_t i = 0; i < fabric_->size(); ++i) nodes_.push_back(std::make_unique<Node>());
  crashed_.assign(fabric_->size(), false);
  finished_.assign(fabric_->size(), false);
#if TIDAL_HAVE_UCX
  if (fabric_->Name() == "ucx_proc") {
    auto& arena = static_cast<backends::ucx::UcxProcessFabric*>(fabric_.get())->arena();
    group_allocator_ = std::make_unique<ArenaBufferAllocator>(arena);
    store_allocator_ = std::make_unique<ArenaStoreAllocator>(arena);
  }
#endif
#if TIDAL_HAVE_CUDA
  if (fabric_->Name() == "cuda_proc") {
    group_allocator_ = std::make_unique<CudaArenaBufferAllocator>(
        static_cast<backends::cuda::CudaProcessFabric*>(fabric_.get())->arena());
  }
#endif
}

Cluster::~Cluster() {
  // Suspended coroutines may point into the groups, clients and master: a simulated world
  // ends them first. (A real fabric stops its nodes' loops in its own destructor.)
  if (sim_ != nullptr) sim_->world().Shutdown();
  groups_.clear();
  for (auto& n : nodes_) n->client.reset();
  master_.reset();
  nodes_.clear();  // ports before the muxes, muxes before the fabric's messengers
  fabric_.reset();
}

Cluster::Node& Cluster::node(size_t i) {
  TIDAL_ASSERT(i < nodes_.size());
  Node& n = *nodes_[i];
  if (!n.mux) n.mux = std::make_unique<MessengerMux>(fabric_->messenger(i));
  return n;
}

Messenger& Cluster::channel(size_t node_index, uint8_t number) {
  TIDAL_ASSERT_MSG(number >= kUserChannelFirst && number <= kUserChannelLast,
                   "Cluster::channel: not a user channel");
  return node(node_index).mux->Channel(number);
}

// --- store ------------------------------------------------------------------------------

Status Cluster::StartMaster(store::MasterOptions options, store::MasterJournal* journal) {
  if (master_) return Status(ErrorCode::INVALID_PARAMS, "the master already runs");
  if (fabric_->Name() == "cuda_proc") {
    // Its node processes see only the shared arena; the store client registers staging
    // buffers of its own. (The store with GPU buffers across processes: cuda.store_xproc.)
    return Status(ErrorCode::UNSUPPORTED,
                  "backend 'cuda_proc': the store client registers memory of its own, which "
                  "the node processes cannot see");
  }
  Node& n = node(master_node_);
  n.master_port.reset();
  n.master_port = std::make_unique<DuplexPort>(n.mux->Channel(kStoreClientChannel),
                                               n.mux->Channel(kStoreMasterChannel));
  master_ = std::make_unique<store::MasterService>(env(master_node_), *n.master_port,
                                                   std::move(options), journal);
  if (Status s = master_->recovery(); !s.ok()) {
    master_.reset();
    return s;
  }
  master_->Start();
  return Status::Ok();
}

Status Cluster::StopMaster() {
  if (!master_) return Status(ErrorCode::INVALID_PARAMS, "no master runs");
  master_.reset();
  return Status::Ok();
}

Result<store::StoreClient*> Cluster::NewStoreClient(size_t node_index,
                                                    store::StoreClientOptions options) {
  if (node_index >= size()) {
    return Status(ErrorCode::INVALID_PARAMS, "no node " + std::to_string(node_index));
  }
  Node& n = node(node_index);
  if (n.client) {
    return Status(ErrorCode::INVALID_PARAMS,
                  NodeName(node_index) + " already has a store client");
  }
  options.master = master_endpoint();
  // ucx_proc: the client's own buffers from the arena its node processes share.
  if (options.allocator == nullptr) options.allocator = store_allocator_.get();
  n.client_port = std::make_unique<DuplexPort>(n.mux->Channel(kStoreMasterChannel),
                                               n.mux->Channel(kStoreClientChannel));
  n.client = std::make_unique<store::StoreClient>(env(node_index), engine(node_index),
                                                  *n.client_port, std::move(options));
  return n.client.get();
}

store::StoreClient* Cluster::store_client(size_t node_index) {
  return node_index < nodes_.size() ? nodes_[node_index]->client.get() : nullptr;
}

uint8_t* Cluster::segment(size_t node_index) {
  return node_index < nodes_.size() ? nodes_[node_index]->segment : nullptr;
}

Task<Status> Cluster::StartStoreClient(size_t node_index, uint64_t segment_bytes) {
  store::StoreClient* client = store_client(node_index);
  if (client == nullptr) {
    co_return Status(ErrorCode::INVALID_PARAMS, NodeName(node_index) + " has no store client");
  }
  Status s = co_await client->Start();
  if (!s.ok() || segment_bytes == 0) co_return s;
  auto* seg = static_cast<uint8_t*>(Allocate(node_index, segment_bytes));
  co_return co_await MountSegment(node_index, seg, segment_bytes);
}

Task<Status> Cluster::MountSegment(size_t node_index, uint8_t* base, uint64_t bytes) {
  store::StoreClient* client = store_client(node_index);
  if (client == nullptr) {
    co_return Status(ErrorCode::INVALID_PARAMS, NodeName(node_index) + " has no store client");
  }
  Status s = co_await client->MountSegment(base, bytes);
  if (s.ok()) nodes_[node_index]->segment = base;
  co_return s;
}

Status Cluster::AddStoreClient(size_t node_index, uint64_t segment_bytes,
                               store::StoreClientOptions options) {
  Result<store::StoreClient*> client = NewStoreClient(node_index, std::move(options));
  if (!client.ok()) return client.status();
  return Run(node_index, StartStoreClient(node_index, segment_bytes));
}

// --- process groups -----------------------------------------------------------------------

Cluster::Group* Cluster::FindGroup(std::string_view name) {
  for (auto& g : groups_) {
    if (g->name == name) return g.get();
  }
  return nullptr;
}

const Cluster::Group* Cluster::FindGroup(std::string_view name) const {
  for (const auto& g : groups_) {
    if (g->name == name) return g.get();
  }
  return nullptr;
}

Status Cluster::NewGroup(const std::vector<size_t>& nodes, coll::ProcessGroupOptions options) {
  if (nodes.empty()) return Status(ErrorCode::INVALID_PARAMS, "a group needs nodes");
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i] >= size()) {
      return Status(ErrorCode::INVALID_PARAMS, "no node " + std::to_string(nodes[i]));
    }
    if (std::find(nodes.begin(), nodes.begin() + i, nodes[i]) != nodes.begin() + i) {
      return Status(ErrorCode::INVALID_PARAMS, "node " + std::to_string(nodes[i]) + " twice");
    }
  }
  if (FindGroup(options.group_name) != nullptr) {
    return Status(ErrorCode::INVALID_PARAMS, "group '" + options.group_name + "' exists");
  }
  if (groups_.size() >= kMaxGroups) {
    return Status(ErrorCode::INVALID_PARAMS, "every group channel is taken");
  }
  if (options.allocator == nullptr) options.allocator = group_allocator_.get();
  auto g = std::make_unique<Group>();
  g->name = options.group_name;
  g->channel = static_cast<uint8_t>(kGroupChannelFirst + groups_.size());
  g->nodes = nodes;
  const int n = static_cast<int>(nodes.size());
  for (int r = 0; r < n; ++r) {
    Node& at = node(nodes[r]);
    g->ranks.push_back(std::make_unique<coll::ProcessGroup>(
        r, n, engine(nodes[r]), at.mux->Channel(g->channel), fabric_->metadata(), options));
  }
  groups_.push_back(std::move(g));
  return Status::Ok();
}

coll::ProcessGroup* Cluster::group(std::string_view name, int rank) {
  Group* g = FindGroup(name);
  if (g == nullptr || rank < 0 || rank >= static_cast<int>(g->ranks.size())) return nullptr;
  return g->ranks[rank].get();
}

std::vector<size_t> Cluster::group_nodes(std::string_view name) const {
  const Group* g = FindGroup(name);
  return g == nullptr ? std::vector<size_t>{} : g->nodes;
}

uint8_t Cluster::group_channel(std::string_view name) const {
  const Group* g = FindGroup(name);
  return g == nullptr ? 0 : g->channel;
}

Status Cluster::AddGroup(const std::vector<size_t>& nodes, coll::ProcessGroupOptions options) {
  const std::string name = options.group_name;
  Status made = NewGroup(nodes, std::move(options));
  if (!made.ok()) return made;
  Group* g = FindGroup(name);
  std::vector<Status> results(size(), Status(ErrorCode::OPERATION_TIMEOUT, "did not finish"));
  std::vector<int> rank_of(size(), -1);
  for (size_t r = 0; r < nodes.size(); ++r) rank_of[nodes[r]] = static_cast<int>(r);
  RunEach(nodes, [g, &results, &rank_of](size_t at) -> Task<void> {
    results[at] = co_await g->ranks[rank_of[at]]->Start();
  });
  for (size_t r = 0; r < nodes.size(); ++r) {
    const Status& s = results[nodes[r]];
    if (!s.ok()) {
      return Status(s.code(), "group '" + name + "' rank " + std::to_string(r) + ": " +
                                  s.ToString());
    }
  }
  return Status::Ok();
}

// --- driving ------------------------------------------------------------------------------

bool Cluster::RunUntil(const std::function<bool()>& done) {
  // Node 0's Env drives the whole fabric (Fabric::Run); in the simulator it is the World.
  return env(0).RunUntil(done);
}

bool Cluster::RunEach(const std::vector<size_t>& nodes, std::function<Task<void>(size_t)> body,
                      uint64_t max_ns) {
  body_ = std::move(body);
  std::fill(finished_.begin(), finished_.end(), false);
  for (size_t n : nodes) {
    TIDAL_ASSERT(n < size());
    if (alive(n)) Spawn(env(n), NodeRoot(&body_, n, &finished_));
  }
  Env& clock = env(0);
  const uint64_t limit = max_ns == 0 ? 0 : clock.NowNs() + max_ns;
  // nodes[0, ended) have finished or died, and neither is ever undone: each check after an
  // event starts where the last one stopped.
  size_t ended = 0;
  auto all_ended = [this, &nodes, &ended]() {
    while (ended < nodes.size() && (finished_[nodes[ended]] || !alive(nodes[ended]))) ++ended;
    return ended == nodes.size();
  };
  RunUntil([&] { return (limit != 0 && clock.NowNs() > limit) || all_ended(); });
  return all_ended();
}

void Cluster::Advance(uint64_t ns) {
  if (sim_ != nullptr) {
    // Everything scheduled up to and at the deadline runs, as the simulator defines it.
    sim_->world().RunUntilTime(sim_->world().NowNs() + ns);
    return;
  }
  Run(0, [](Env& e, uint64_t wait_ns) -> Task<void> { co_await SleepFor(e, wait_ns); }(env(0), ns));
}

// --- faults -------------------------------------------------------------------------------

Status Cluster::Crash(size_t node_index) {
  if (node_index >= size()) {
    return Status(ErrorCode::INVALID_PARAMS, "no node " + std::to_string(node_index));
  }
  Status s = fabric_->Crash(node_index);
  if (s.ok()) crashed_[node_index] = true;
  return s;
}

Status Cluster::CrashSoon(size_t node_index) {
  if (sim_ == nullptr) {
    return Status(ErrorCode::UNSUPPORTED, "crash points inside a coroutine need the simulator");
  }
  if (node_index >= size()) {
    return Status(ErrorCode::INVALID_PARAMS, "no node " + std::to_string(node_index));
  }
  sim::World* w = &sim_->world();
  w->ScheduleAt(w->NowNs(), -1, [w, node_index]() {
    if (w->alive(node_index)) w->Crash(static_cast<uint32_t>(node_index));
  });
  return Status::Ok();
}

bool Cluster::alive(size_t node_index) {
  if (crashed_[node_index]) return false;
  // The simulator's fault plan crashes nodes on its own; only the World knows.
  return sim_ == nullptr || sim_->world().alive(node_index);
}

sim::World& Cluster::world() {
  TIDAL_ASSERT_MSG(sim_ != nullptr, "Cluster::world: the fabric is not the simulator");
  return sim_->world();
}

sim::SimFabric& Cluster::sim_fabric() {
  TIDAL_ASSERT_MSG(sim_ != nullptr, "Cluster::sim_fabric: the fabric is not the simulator");
  return *sim_;
}

std::string Cluster::Banner() const {
  if (sim_ != nullptr) return sim_->world().FailureBanner();
  return "fabric " + std::string(fabric_->Name()) + ", " + std::to_string(fabric_->size()) +
         " nodes";
}

}  // namespace tidal::cluster
