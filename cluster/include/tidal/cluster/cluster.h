// Cluster: N nodes on any fabric of the backend registry, with a store master, store
// clients and process groups placed on them, so that tools, tests, examples and users get
// a working tidal deployment in one process without copying wiring code.
//
// Sharing. Each node has one TransferEngine and one Messenger endpoint (the fabric's).
// Everything placed on a node shares both: the endpoint is split into channels by a
// MessengerMux, and the channel numbers are assigned here and only here:
//   kStoreMasterChannel (1)   store RPC requests, client -> master
//   kStoreClientChannel (2)   store RPC answers, master -> client
//   kUserChannelFirst..Last   (8..15) free for the user's own protocols (channel())
//   kGroupChannelFirst + k    (16 + k) the k-th process group added to this Cluster
// Requests and answers travel on different channels, so the master and a client can live
// on the same node; every group has a channel of its own, so groups can share nodes.
//
// Order. The master, the store clients and the process groups can be created and started
// in any order, on any node: a client started before the master retries its registration
// (within its RPC timeout), and a group's ranks wait for each other in bootstrap.
//
// Fabrics. Everything above works on every fabric. Crash() works where the fabric can
// crash a node (UNSUPPORTED otherwise). The simulator's own powers (fault scripts, swarm
// settings, the recorded tape, crash points inside a coroutine, the World itself) exist
// only when simulated() is true: asking for them elsewhere is UNSUPPORTED (Make, CrashSoon)
// or a programming error (world()).
//
// Thread safety: none; one thread creates the Cluster, calls its methods and drives the
// fabric (every blocking method drives it until its work is done).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tidal/backends/registry.h"
#include "tidal/collectives/process_group.h"
#include "tidal/fabric.h"
#include "tidal/messenger_mux.h"
#include "tidal/sim/fault_plan.h"
#include "tidal/sim/sim_fabric.h"
#include "tidal/store/client.h"
#include "tidal/store/master.h"

namespace tidal::cluster {

inline constexpr uint8_t kStoreMasterChannel = 1;
inline constexpr uint8_t kStoreClientChannel = 2;
inline constexpr uint8_t kUserChannelFirst = 8;
inline constexpr uint8_t kUserChannelLast = 15;
inline constexpr uint8_t kGroupChannelFirst = 16;
inline constexpr size_t kMaxGroups = 256 - kGroupChannelFirst;

// Options only the simulator has. Another backend refuses faults, swarm and tape
// (UNSUPPORTED); it takes its own defaults for the rest.
struct SimOptions {
  uint64_t seed = 1;
  std::string faults;             // a fault script (sim/fault_plan.h); empty: none
  sim::SwarmSettings swarm;       // per-seed probabilistic faults
  std::vector<uint8_t> tape;      // non-empty: the tape to run from instead of the seed
  bool record_tape = false;       // record every draw (world().tape().recorded(): shrinking)
  sim::LinkModel link;            // latency and bandwidth
  TransferEngineOptions engine;   // every node's engine options
  bool contract_checker = true;   // wrap every transport in a ContractChecker
  std::string replay_command;     // printed in failure banners
};

struct ClusterOptions {
  std::string backend = "sim";  // a name from ListBackends()
  size_t nodes = 2;
  size_t master_node = 0;  // where the store master runs (clients talk to it from the start)
  SimOptions sim;
};

// The registry's backend names, in its order (for parameterized suites and --fabric).
std::vector<std::string> BackendNames();

class Cluster {
 public:
  // Builds the fabric through the registry. INVALID_PARAMS: no nodes, master_node out of
  // range, a fault script that does not parse, unknown backend. UNSUPPORTED: the backend
  // is not built or has no hardware here (the message says why), or simulator options
  // (faults, swarm, tape) were asked of another backend.
  static Result<std::unique_ptr<Cluster>> Make(ClusterOptions options);
  // Wraps a fabric made elsewhere (for example a SimFabric with options Make does not
  // expose). The Cluster owns it.
  explicit Cluster(std::unique_ptr<Fabric> fabric, size_t master_node = 0);
  // Ends the simulated world's coroutines first (they may point into the clients and
  // groups), then the groups, clients and master, then the fabric.
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  Fabric& fabric() { return *fabric_; }
  std::string_view backend() const { return fabric_->Name(); }
  bool simulated() const { return sim_ != nullptr; }
  size_t size() const { return fabric_->size(); }
  Env& env(size_t node) { return fabric_->env(node); }
  TransferEngine& engine(size_t node) { return fabric_->engine(node); }
  static std::string NodeName(size_t node) { return Fabric::NodeName(node); }
  // A user channel (kUserChannelFirst..kUserChannelLast) of the node's endpoint; the same
  // number on the peer receives it. Asserts the number is a user channel.
  Messenger& channel(size_t node, uint8_t number);
  // Zeroed memory on `node` that lives as long as the Cluster (not registered).
  void* Allocate(size_t node, size_t bytes, Location location = Location::Host()) {
    return fabric_->Allocate(node, bytes, location);
  }

  // --- store ---------------------------------------------------------------------------
  size_t master_node() const { return master_node_; }
  std::string master_endpoint() const { return NodeName(master_node_); }
  // Starts the master on master_node(). INVALID_PARAMS if it already runs. Never blocks.
  // With a `journal` (it must outlive the master) the master rebuilds its state from it
  // and journals to it (store::MasterState::Recover); a journal that does not read back
  // is its CORRUPT_INPUT, and no master runs.
  Status StartMaster(store::MasterOptions options = {}, store::MasterJournal* journal = nullptr);
  // Ends the master's process state (its MasterService: state, RPC answer cache, timers),
  // as a crash of the master process would; its endpoint stays and drops what arrives
  // until StartMaster runs a new one. INVALID_PARAMS if no master runs.
  Status StopMaster();
  store::MasterService* master() { return master_.get(); }  // nullptr until started
  // Creates the store client of `node` (one per node) talking to master_endpoint();
  // options.master is overwritten. Nothing is sent until its Start(). INVALID_PARAMS:
  // node out of range or already has a client.
  Result<store::StoreClient*> NewStoreClient(size_t node, store::StoreClientOptions options = {});
  store::StoreClient* store_client(size_t node);  // nullptr if the node has none
  // The client's start-up as a coroutine on its node: Start(), then, when segment_bytes
  // is non-zero, MountSegment() of fresh fabric memory of that size. Returns the first
  // error (RPC_TIMEOUT, REGISTRATION_FAILED, ...; INVALID_PARAMS: no client on node).
  Task<Status> StartStoreClient(size_t node, uint64_t segment_bytes);
  // Mounts [base, base + bytes) of the node's fabric memory as the client's segment (the
  // client's MountSegment, remembered for segment()). INVALID_PARAMS: no client on node.
  Task<Status> MountSegment(size_t node, uint8_t* base, uint64_t bytes);
  // NewStoreClient + StartStoreClient, driven to the end (blocks).
  Status AddStoreClient(size_t node, uint64_t segment_bytes = 64ull << 20,
                        store::StoreClientOptions options = {});
  // The segment mounted by StartStoreClient or MountSegment on `node`; nullptr if none.
  uint8_t* segment(size_t node);

  // --- process groups --------------------------------------------------------------------
  // Creates one ProcessGroup per node of `nodes` (rank i on nodes[i]) named
  // options.group_name, on the next free channel. Nothing moves until each rank's Start().
  // INVALID_PARAMS: empty or repeated nodes, a node out of range, a name already used,
  // more than kMaxGroups groups.
  Status NewGroup(const std::vector<size_t>& nodes, coll::ProcessGroupOptions options);
  // Rank `rank` of the group; nullptr if there is no such group or rank.
  coll::ProcessGroup* group(std::string_view name, int rank);
  // The nodes of the group, rank order (empty if there is no such group).
  std::vector<size_t> group_nodes(std::string_view name) const;
  // The channel the group uses (0 if there is no such group).
  uint8_t group_channel(std::string_view name) const;
  // NewGroup, then every rank's Start() at once, driven until all ended (blocks). The first
  // rank's error, or OPERATION_TIMEOUT (prefixed with the rank) if bootstrap never ended.
  Status AddGroup(const std::vector<size_t>& nodes, coll::ProcessGroupOptions options);

  // --- driving -------------------------------------------------------------------------
  // Drives the fabric until `task` (run on `node`) ends and returns its value. Only at the
  // outermost level, never from inside a coroutine. Aborts if nothing is left to run.
  template <typename T>
  T Run(size_t node, Task<T> task) {
    return RunBlocking(env(node), std::move(task));
  }
  // Starts `task` on `node` without waiting; the slot fills when it ends.
  template <typename T>
  std::shared_ptr<std::optional<T>> Start(size_t node, Task<T> task) {
    auto out = std::make_shared<std::optional<T>>();
    Spawn(env(node), Capture<T>(out, std::move(task)));
    return out;
  }
  // Runs `task` on `node` until it ends, or until the node crashed (nullopt).
  template <typename T>
  std::optional<T> TryRun(size_t node, Task<T> task) {
    auto slot = Start(node, std::move(task));
    RunUntil([&] { return slot->has_value() || !alive(node); });
    return std::move(*slot);
  }
  // Drives the fabric until `done()` holds; false if it never can (nothing left to run).
  bool RunUntil(const std::function<bool()>& done);
  // Runs body(node) on every live node of `nodes` (each its own root coroutine) and drives
  // the fabric until each ended or its node crashed. `max_ns` > 0 bounds the time this may
  // take on the Env clock (virtual in the simulator). False if a live node's body did not
  // end (the fabric ran dry, or past max_ns).
  bool RunEach(const std::vector<size_t>& nodes, std::function<Task<void>(size_t)> body,
               uint64_t max_ns = 0);
  // Lets `ns` pass on the Env clock with everything running meanwhile.
  void Advance(uint64_t ns);
  uint64_t NowNs() { return env(0).NowNs(); }

  // --- faults --------------------------------------------------------------------------
  // Crashes `node` (fail-stop) now. UNSUPPORTED where the fabric cannot.
  Status Crash(size_t node);
  // Crashes `node` as soon as the current event ends: safe from inside a coroutine of that
  // node (it stops at its next suspension). Simulator only: UNSUPPORTED elsewhere.
  Status CrashSoon(size_t node);
  // False once the node crashed (by Crash, CrashSoon or the simulator's fault plan).
  bool alive(size_t node);
  // The simulated world. Only when simulated() (asserts).
  sim::World& world();
  sim::SimFabric& sim_fabric();
  // For failure messages: the simulator's seed, digest and replay command; elsewhere the
  // fabric's name and size.
  std::string Banner() const;

 private:
  struct Node;
  struct Group;
  template <typename T>
  static Task<void> Capture(std::shared_ptr<std::optional<T>> out, Task<T> task) {
    out->emplace(co_await std::move(task));
  }
  Node& node(size_t i);
  Group* FindGroup(std::string_view name);
  const Group* FindGroup(std::string_view name) const;

  std::unique_ptr<Fabric> fabric_;
  sim::SimFabric* sim_ = nullptr;  // fabric_ when it is the simulator
  size_t master_node_ = 0;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::unique_ptr<store::MasterService> master_;
  std::vector<std::unique_ptr<Group>> groups_;
  std::vector<bool> crashed_;
  std::vector<bool> finished_;  // RunEach's per-node flags
  std::function<Task<void>(size_t)> body_;
  // Where groups without an allocator of their own get their buffers, when the fabric
  // needs it (ucx_proc: its shared arena); null otherwise.
  std::unique_ptr<coll::BufferAllocator> group_allocator_;
  // The same for store clients' own buffers (StoreClientOptions::allocator).
  std::unique_ptr<store::StoreBufferAllocator> store_allocator_;
};

}  // namespace tidal::cluster
