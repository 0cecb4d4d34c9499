// StoreWorld: a store deployed on a Cluster, shared by the store's scenario tests, the
// nemesis campaign and the benchmark, and usable by anyone who wants a working store in
// one process. Node 0 runs the master; client i runs on node i + 1 (its own TransferEngine
// and messenger endpoint) and, unless told otherwise, mounts a segment of `segment_bytes`.
//
// Any backend of the registry works (options.backend). Fault scripts and swarm settings
// need the simulator (Make says UNSUPPORTED elsewhere), and so does world().
//
// Thread safety: none (see cluster.h).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tidal/cluster/cluster.h"
#include "tidal/store/client.h"
#include "tidal/store/master.h"

namespace tidal::cluster {

struct StoreWorldOptions {
  std::string backend = "sim";
  uint64_t seed = 1;  // simulator
  size_t clients = 3;
  uint64_t segment_bytes = 8ull << 20;
  bool mount = true;
  store::MasterOptions master;
  // The master journals its state to a MemoryJournal the world owns, which outlives any
  // one master: RestartMaster rebuilds the state from it (README: "Master restart").
  // false: no journal; a restarted master starts empty.
  bool durable_master = true;
  store::StoreClientOptions client;
  TransferEngineOptions engine;  // simulator
  std::string faults;            // a fault script (fault_plan.h); empty: none (simulator)
  sim::SwarmSettings swarm;      // simulator
  std::string replay_command;    // simulator
  std::vector<uint8_t> tape;     // simulator: non-empty, the world's tape instead of the seed
  bool record_tape = false;      // simulator: record every draw (shrinking)
};

class StoreWorld {
 public:
  // Builds the cluster, starts the master and every client (mounting their segments).
  // Under faults, set-up retries what can be retried and a client whose node crashed
  // simply stays down. Errors: those of Cluster::Make, and a client that cannot start or
  // mount without faults to blame (its Status).
  static Result<std::unique_ptr<StoreWorld>> Make(StoreWorldOptions options);
  // As Make, for callers that know the options work: aborts on an error.
  explicit StoreWorld(StoreWorldOptions options);
  ~StoreWorld();
  StoreWorld(const StoreWorld&) = delete;
  StoreWorld& operator=(const StoreWorld&) = delete;

  Cluster& cluster() { return *cluster_; }
  Fabric& fabric() { return cluster_->fabric(); }
  bool simulated() const { return cluster_->simulated(); }
  sim::World& world() { return cluster_->world(); }  // simulator only (asserts)
  // The running master (asserts that one runs: see master_up()).
  store::MasterService& master();
  store::MasterState& state() { return master().state(); }

  // --- master crash and restart ---------------------------------------------------------
  // CrashMaster ends the master's process state now (Cluster::StopMaster: state, RPC
  // answer cache, timers; the endpoint drops what arrives). RestartMaster starts a new
  // master on the same endpoint, rebuilt from the journal (with durable_master), with the
  // observer of SetMasterObserver. INVALID_PARAMS if the master is already down / up;
  // RestartMaster: the journal's CORRUPT_INPUT.
  Status CrashMaster();
  Status RestartMaster();
  // Simulator: crashes the master at virtual time `at_ns` and restarts it `down_ns` later,
  // both as world events (so they land between any two events of the run). Asserts that
  // the restart succeeds.
  void ScheduleMasterRestart(uint64_t at_ns, uint64_t down_ns);
  // Cancels the scheduled crashes that have not happened yet, and restarts a master that
  // is down now (so that checks after a workload meet a running master).
  void FinishMasterRestarts();
  bool master_up() { return cluster_->master() != nullptr; }
  uint64_t master_restarts() const { return master_restarts_; }
  // Installed on the master now and on every restarted one (MasterState::SetObserver).
  void SetMasterObserver(store::MasterState::Observer observer);
  // The replicas the master records for `key`; while it is down, those its journal holds
  // (what a restarted master would know). Empty without a journal while down.
  std::vector<store::ReplicaLocation> Replicas(const std::string& key);
  // As Replicas, for MasterState::Stat.
  Result<store::ObjectInfo> Stat(const std::string& key);
  store::MemoryJournal& journal() { return journal_; }
  store::StoreClient& client(size_t i) { return *cluster_->store_client(NodeOf(i)); }
  size_t clients() const { return options_.clients; }
  const StoreWorldOptions& options() const { return options_; }
  static uint32_t NodeOf(size_t client) { return static_cast<uint32_t>(client + 1); }
  static std::string SegmentOf(size_t client) { return Fabric::NodeName(NodeOf(client)); }
  Env& env(size_t client) { return cluster_->env(NodeOf(client)); }
  TransferEngine& engine(size_t client) { return cluster_->engine(NodeOf(client)); }
  uint8_t* segment(size_t client) { return cluster_->segment(NodeOf(client)); }
  uint64_t NowNs() { return cluster_->NowNs(); }

  // Runs `task` on client `i`'s node until it ends (RunBlocking on that node's Env).
  template <typename T>
  T Run(size_t i, Task<T> task) {
    return cluster_->Run(NodeOf(i), std::move(task));
  }
  // Starts `task` on client i's node without waiting; the slot fills when it ends.
  template <typename T>
  std::shared_ptr<std::optional<T>> Start(size_t i, Task<T> task) {
    return cluster_->Start(NodeOf(i), std::move(task));
  }
  // Runs `task` on client i's node until it ends, or the node crashes (nullopt).
  template <typename T>
  std::optional<T> TryRun(size_t i, Task<T> task) {
    return cluster_->TryRun(NodeOf(i), std::move(task));
  }
  // Drives the cluster until `done()` holds; false if it never can.
  bool RunUntil(const std::function<bool()>& done) { return cluster_->RunUntil(done); }
  // Memory on client i's node; registered with its engine when `registered` (retrying
  // injected registration failures; a crashed node's memory stays unregistered).
  uint8_t* Buffer(size_t i, size_t bytes, bool registered = true);
  // Lets `ns` pass (everything runs meanwhile).
  void Advance(uint64_t ns) { cluster_->Advance(ns); }
  // Crashes client i's node. UNSUPPORTED where the fabric cannot crash a node.
  Status Crash(size_t i) { return cluster_->Crash(NodeOf(i)); }
  bool alive(size_t i) { return cluster_->alive(NodeOf(i)); }
  std::string Banner() const { return cluster_->Banner(); }

 private:
  StoreWorld(StoreWorldOptions options, std::unique_ptr<Cluster> cluster);
  Status SetUp();

  StoreWorldOptions options_;
  store::MemoryJournal journal_;  // declared before the cluster: outlives every master
  std::unique_ptr<Cluster> cluster_;
  store::MasterState::Observer observer_;
  uint64_t master_restarts_ = 0;
  uint64_t restart_epoch_ = 0;  // FinishMasterRestarts voids events of earlier epochs
};

// Deterministic test bytes: `size` bytes derived from `seed`.
std::string Pattern(uint64_t seed, size_t size);

}  // namespace tidal::cluster
