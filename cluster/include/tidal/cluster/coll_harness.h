// The collectives harness: a GroupCluster (a Cluster with one ProcessGroup over all of its
// nodes, rank r on node r) whose ranks each run a body in their own root coroutine, plus
// deterministic nccl-tests-style input values and the exact expected result of every
// collective (#wrong counts). The collectives' scenario tests, the campaign, the fuzz
// target and tidal-coll-bench share it; it works on any fabric of the registry, and its
// simulator-only parts (faults, swarm, link model, world(), CrashSoon) say so.
//
// Thread safety: none (see cluster.h).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tidal/cluster/cluster.h"
#include "tidal/cluster/values.h"
#include "tidal/collectives/process_group.h"

namespace tidal::cluster {

using coll::DataType;
using coll::OpType;
using coll::ProcessGroup;
using coll::ProcessGroupOptions;
using coll::ReduceOp;
using coll::Tensor;

struct GroupClusterOptions {
  std::string backend = "sim";
  int ranks = 4;
  ProcessGroupOptions pg;
  // Simulator only (another backend refuses faults and swarm: UNSUPPORTED).
  uint64_t seed = 1;
  std::string faults;  // a FaultPlan script
  bool contract_checker = true;
  sim::LinkModel link;
  TransferEngineOptions engine;
  sim::SwarmSettings swarm;  // per-seed probabilistic faults (see fault_plan.h)
  std::vector<uint8_t> tape;  // non-empty: the world's tape instead of the seed's
  bool record_tape = false;   // record every draw (shrinking)
};

// Small slots so that "larger than a slot" and "not a multiple of the chunk" are cheap.
ProcessGroupOptions TestOptions();

class GroupCluster {
 public:
  // A cluster of options.ranks nodes on options.backend with one group over all of them
  // (not started). Errors as Cluster::Make.
  static Result<std::unique_ptr<GroupCluster>> Make(GroupClusterOptions options);
  // As Make, for callers that know the options work (the simulator): aborts on an error.
  explicit GroupCluster(GroupClusterOptions options);
  // A group over every node of a cluster made elsewhere (a recorded tape, ...).
  GroupCluster(std::unique_ptr<Cluster> cluster, ProcessGroupOptions pg);
  ~GroupCluster();
  GroupCluster(const GroupCluster&) = delete;
  GroupCluster& operator=(const GroupCluster&) = delete;

  Cluster& cluster() { return *cluster_; }
  Fabric& fabric() { return cluster_->fabric(); }
  bool simulated() const { return cluster_->simulated(); }
  sim::World& world() { return cluster_->world(); }  // simulator only (asserts)
  ProcessGroup& pg(int r) { return *cluster_->group(name_, r); }
  int size() const { return static_cast<int>(cluster_->size()); }

  // Starts every rank (bootstrap). False with a message if any Start failed.
  bool StartAll(std::string* error);

  // Runs body(rank) on every live rank (own root task each) and drives the fabric until
  // every rank's body ended or its node crashed. False if the fabric ran dry or past
  // `max_ns` on the Env clock (virtual time in the simulator) first: a hang.
  bool RunRanks(std::function<Task<void>(int)> body, uint64_t max_ns = 0);
  bool alive(int r) { return cluster_->alive(static_cast<size_t>(r)); }

  // Crashes `node` now (UNSUPPORTED where the fabric cannot).
  Status Crash(int node) { return cluster_->Crash(static_cast<size_t>(node)); }
  // Crashes `node` as a world event at the current virtual time (safe from inside a
  // rank's coroutine: the node stops at its next suspension). UNSUPPORTED off the
  // simulator.
  Status CrashSoon(int node) { return cluster_->CrashSoon(static_cast<size_t>(node)); }

  // Seed, digest and replay hint for failure messages.
  std::string Banner() const { return cluster_->Banner(); }

 private:
  void MakeGroup(const ProcessGroupOptions& pg);

  std::unique_ptr<Cluster> cluster_;
  std::string name_;
  std::vector<size_t> nodes_;
};

// --- values -------------------------------------------------------------------------

// Element i of rank r's input for reduction `op` (small integers, exact in every dtype).
double InputValue(int rank, uint64_t i, ReduceOp op, DataType dt);
// Writes `v` (an integer-valued double) as element i of a dtype buffer (integers wrap).
// The exact reduction over `contributors` of InputValue(r, i, op, dt), stored as dtype.
void StoreReduced(DataType dt, void* base, uint64_t out_index, uint64_t in_index,
                  const std::vector<int>& contributors, ReduceOp op);

std::vector<uint8_t> Filled(int rank, uint64_t count, ReduceOp op, DataType dt,
                            uint64_t index_offset = 0);
Tensor View(std::vector<uint8_t>& buf, DataType dt);

// Counts elements that differ (bytewise) between two buffers of dtype.
uint64_t CountWrong(const std::vector<uint8_t>& got, const std::vector<uint8_t>& want, DataType dt);

// The expected output of `op` at rank `rank` given the ranks that contributed, the
// input count per block `c` and the root; `initial` is the output buffer's content before
// the op (ops that leave it unchanged return it).
std::vector<uint8_t> Expected(OpType op, int rank, int size, const std::vector<int>& members,
                              uint64_t c, int root, ReduceOp rop, DataType dt,
                              const std::vector<uint8_t>& initial);

// Runs `op` on this rank with inputs from Filled(): returns #wrong (or -1 when the Work
// failed) and stores the Work's status. `members` are the ranks expected to contribute.
struct CaseResult {
  Status status;
  std::vector<int> failed;
  int64_t wrong = 0;
};
Task<CaseResult> RunCase(ProcessGroup& pg, OpType op, uint64_t c, int root, ReduceOp rop,
                         DataType dt);
// Checks a finished case against the members that committed (all ranks minus failed).
int64_t CheckCase(OpType op, int rank, int size, const std::vector<int>& failed, uint64_t c,
                  int root, ReduceOp rop, DataType dt, const std::vector<uint8_t>& output,
                  const std::vector<uint8_t>& initial);

}  // namespace tidal::cluster
