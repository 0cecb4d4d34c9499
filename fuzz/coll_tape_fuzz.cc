// Fuzz target: the process group on the simulator with the input bytes as the world's
// tape. The tape chooses the schedule, which fault kinds the swarm switches on and their
// rates, every delay, and the workload (2 to 5 collectives: op, dtype, reduction, root,
// size) drawn after bootstrap.
//
// The faults are the ones a healthy group must ride through without losing anyone:
// completion delay and reorder, message delay and duplication (no crash, hang, loss or
// partition, which legitimately fail ranks). So the property is exact: every rank
// finishes every collective with OK, no rank reported failed and #wrong == 0 against the
// exact expected values (tidal/cluster/coll_harness.h), the transport contract holds (the
// checker aborts), and the same tape gives the same digest (checked on a fixed quarter of
// the inputs). Past the end of the input every draw is 0, and a zero draw makes every
// enabled fault fire at every chance (Tape::ChancePpm), so short inputs are the harshest.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_check.h"
#include "tidal/cluster/coll_harness.h"
#include "tidal/sim/sim_fabric.h"

namespace {

using namespace tidal::coll;           // NOLINT: a fuzz target, names read better short
using namespace tidal::cluster;  // NOLINT

struct Step {
  OpType op;
  DataType dt;
  ReduceOp rop;
  int root;
  uint64_t count;
};

constexpr int kRanks = 3;

struct Outcome {
  uint64_t digest = 0;
  uint64_t virtual_ns = 0;
};

Outcome RunOnce(const uint8_t* data, size_t size) {
  tidal::sim::SimFabricOptions fo;
  fo.world.nodes = kRanks;
  fo.world.tape_bytes.assign(data, data + size);
  fo.world.replay_command = "feed this input to coll_tape_fuzz";
  for (auto k : {tidal::sim::FaultKind::kCompletionDelay, tidal::sim::FaultKind::kCompletionReorder,
                 tidal::sim::FaultKind::kMessageDelay, tidal::sim::FaultKind::kMessageDuplicate}) {
    fo.world.faults.swarm.enabled[static_cast<size_t>(k)] = true;
  }
  // The campaign's settings (cluster/src/coll_campaign.cc): a probe outwaits the longest
  // completion delay, so a slow but live peer is never excluded.
  fo.engine.transfer_timeout_ns = 5'000'000;
  fo.engine.probe_timeout_ns = 3'000'000;
  ProcessGroupOptions pg = TestOptions();
  pg.slot_bytes = 512;
  pg.direct_max_bytes = 256;
  pg.timeout_ns = 1'000'000'000ULL;
  pg.write_retries = 4;
  pg.probe_attempts = 8;
  // The cluster takes the prebuilt fabric (its options constructor has no tape); the world
  // is reached through our own pointer.
  auto fabric = std::make_unique<tidal::sim::SimFabric>(std::move(fo));
  tidal::sim::World& world = fabric->world();
  GroupCluster cluster(std::make_unique<Cluster>(std::move(fabric)), pg);

  std::string error;
  TIDAL_FUZZ_CHECK(cluster.StartAll(&error), "bootstrap failed: " + error);

  static constexpr OpType kOps[] = {OpType::kAllReduce, OpType::kAllGather,
                                    OpType::kReduceScatter, OpType::kBroadcast,
                                    OpType::kReduce, OpType::kGather,
                                    OpType::kScatter, OpType::kAllToAll, OpType::kBarrier};
  static constexpr DataType kTypes[] = {DataType::kF32, DataType::kF64, DataType::kF16,
                                        DataType::kBF16, DataType::kI8, DataType::kU8,
                                        DataType::kI32, DataType::kI64};
  static constexpr uint64_t kCounts[] = {0, 1, 7, 64, 300};
  tidal::sim::Tape& tape = world.tape();
  std::vector<Step> steps(2 + tape.Below(4));
  for (Step& s : steps) {
    s.op = kOps[tape.Below(std::size(kOps))];
    s.dt = kTypes[tape.Below(std::size(kTypes))];
    s.rop = static_cast<ReduceOp>(tape.Below(kReduceOps));
    s.root = static_cast<int>(tape.Below(kRanks));
    s.count = kCounts[tape.Below(std::size(kCounts))];
  }

  std::vector<std::vector<CaseResult>> results(kRanks);
  const bool finished = cluster.RunRanks(
      [&](int r) -> tidal::Task<void> {
        for (const Step& s : steps) {
          results[r].push_back(
              co_await RunCase(cluster.pg(r), s.op, s.count, s.root, s.rop, s.dt));
        }
      },
      (steps.size() + 1) * pg.timeout_ns);
  TIDAL_FUZZ_CHECK(finished, "a rank never finished\n" + world.FailureBanner());
  for (int r = 0; r < kRanks; ++r) {
    TIDAL_FUZZ_CHECK(results[r].size() == steps.size(), "rank " + std::to_string(r) +
                                                            " skipped ops\n" + world.FailureBanner());
    for (size_t j = 0; j < steps.size(); ++j) {
      const CaseResult& k = results[r][j];
      const std::string where = "op " + std::to_string(j) + " (" +
                                std::string(OpTypeName(steps[j].op)) + " " +
                                std::string(DataTypeName(steps[j].dt)) + " " +
                                std::string(ReduceOpName(steps[j].rop)) +
                                " root=" + std::to_string(steps[j].root) +
                                " count=" + std::to_string(steps[j].count) + ") rank " +
                                std::to_string(r) + ": ";
      TIDAL_FUZZ_CHECK(k.status.ok() && k.failed.empty() && k.wrong == 0,
                       where + k.status.ToString() + " failed=" +
                           std::to_string(k.failed.size()) + " wrong=" +
                           std::to_string(k.wrong) + "\n" + world.FailureBanner());
    }
  }
  if (std::getenv("TIDAL_FUZZ_VERBOSE") != nullptr) {
    std::fprintf(stderr, "%zu ops, %llu ns, %s\n", steps.size(),
                 static_cast<unsigned long long>(world.NowNs()), world.FailureBanner().c_str());
  }
  return {world.digest(), world.NowNs()};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return -1;
  const Outcome first = RunOnce(data, size);
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < size; ++i) h = (h ^ data[i]) * 0x100000001b3ULL;
  if (h % 4 != 0) return 0;
  const Outcome second = RunOnce(data, size);
  TIDAL_FUZZ_CHECK(first.digest == second.digest && first.virtual_ns == second.virtual_ns,
                   "same tape, different run");
  return 0;
}
