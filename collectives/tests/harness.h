// Test harness for the process group on the simulator: a SimFabric with one
// ProcessGroup per rank, each rank's body running in its own spawned root task, the world
// driven until every live rank is done; plus deterministic nccl-tests-style values and the
// exact expected result of every collective (#wrong counts).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tidal/collectives/process_group.h"
#include "tidal/sim/fault_plan.h"
#include "tidal/sim/sim_fabric.h"
#include "values.h"

namespace tidal::coll::testing {

struct ClusterOptions {
  int ranks = 4;
  uint64_t seed = 1;
  std::string faults;  // a FaultPlan script
  ProcessGroupOptions pg;
  bool contract_checker = true;
  sim::LinkModel link;
  TransferEngineOptions engine;
  sim::SwarmSettings swarm;  // per-seed probabilistic faults (see fault_plan.h)
};

// Small slots so that "larger than a slot" and "not a multiple of the chunk" are cheap.
ProcessGroupOptions TestOptions();

class Cluster {
 public:
  // A SimFabric built from `options`.
  explicit Cluster(ClusterOptions options);
  // Any fabric (the benchmark on other backends): no crash injection, no world.
  Cluster(std::unique_ptr<Fabric> fabric, ProcessGroupOptions pg);
  ~Cluster();

  Fabric& fabric() { return *fabric_; }
  bool simulated() const { return sim_ != nullptr; }
  sim::World& world() {
    TIDAL_ASSERT(sim_ != nullptr);
    return sim_->world();
  }
  ProcessGroup& pg(int r) { return *pgs_[r]; }
  int size() const { return static_cast<int>(pgs_.size()); }

  // Starts every group (bootstrap). False with a message if any Start failed.
  bool StartAll(std::string* error);

  // Runs body(rank) on every live rank (own root task each) and drives the world until
  // every rank's body ended or its node crashed. False if the world ran dry or past
  // `max_virtual_ns` first (a hang).
  bool RunRanks(std::function<Task<void>(int)> body, uint64_t max_virtual_ns = 0);
  bool finished(int r) const { return finished_[r]; }
  bool alive(int r) { return sim_ == nullptr || sim_->world().alive(r); }

  // Crashes `node` as a world event at the current virtual time (safe from inside a
  // rank's coroutine: the node stops at its next suspension).
  void CrashSoon(int node);

  // Seed, digest and replay hint for failure messages.
  std::string Banner() const;

 private:
  void MakeGroups(const ProcessGroupOptions& pg);

  ClusterOptions options_;
  std::unique_ptr<Fabric> fabric_;
  sim::SimFabric* sim_ = nullptr;  // fabric_ when it is a SimFabric
  std::vector<std::unique_ptr<ProcessGroup>> pgs_;
  std::function<Task<void>(int)> body_;
  std::vector<bool> finished_;
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

}  // namespace tidal::coll::testing
