// A store and a process group on four simulated nodes, wired by tidal::cluster.
//
// Every node runs a store client (lending a 4 MiB segment) and rank i of the process group
// "workers"; node 0 also runs the store master. The nodes start up in a mixed order, all
// at once: odd nodes start their group rank first, even nodes their store client first,
// and the master is started after all of that was launched.
// Each node puts an object on its own segment and reads everyone's back; the group
// allreduces. Then node 3 crashes: the survivors' allreduce reports rank 3 failed and sums
// over the survivors only, and the objects on the other nodes stay readable. Prints what it
// did; exits 0 only if every check held.
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tidal/cluster/cluster.h"

namespace {

using tidal::ErrorCode;
using tidal::Status;
using tidal::Task;
using tidal::cluster::Cluster;

constexpr size_t kNodes = 4;
constexpr size_t kCount = 256;  // elements per allreduce
constexpr uint64_t kSegmentBytes = 4 << 20;
const char* const kGroup = "workers";

int failures = 0;

void Check(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "ok:  " : "FAIL:", what.c_str());
  if (!ok) ++failures;
}

std::string Value(size_t node) { return "object written by node" + std::to_string(node) + "!"; }

// One node's start-up: its group rank and its store client, in the order given.
Task<Status> StartNode(Cluster& c, size_t node, bool group_first) {
  tidal::coll::ProcessGroup* pg = c.group(kGroup, static_cast<int>(node));
  if (group_first) {
    Status s = co_await pg->Start();
    if (!s.ok()) co_return s;
    co_return co_await c.StartStoreClient(node, kSegmentBytes);
  }
  Status s = co_await c.StartStoreClient(node, kSegmentBytes);
  if (!s.ok()) co_return s;
  co_return co_await pg->Start();
}

// Allreduce (sum) of rank + 1 over the given nodes' ranks; fills status, failed and sums.
bool AllReduce(Cluster& c, const std::vector<size_t>& nodes, std::vector<Status>* status,
               std::vector<std::vector<int>>* failed, std::vector<std::vector<int64_t>>* sums) {
  status->assign(kNodes, Status(ErrorCode::INTERNAL_ERROR, "did not run"));
  failed->assign(kNodes, {});
  sums->assign(kNodes, {});
  return c.RunEach(nodes, [&](size_t node) -> Task<void> {
    std::vector<int64_t>& v = (*sums)[node];
    v.assign(kCount, static_cast<int64_t>(node) + 1);
    tidal::coll::Tensor t{v.data(), tidal::coll::DataType::kI64, v.size(),
                          tidal::Location::Host()};
    auto work = c.group(kGroup, static_cast<int>(node))->AllReduce(t, tidal::coll::ReduceOp::kSum);
    (*status)[node] = co_await work->Wait();
    (*failed)[node] = work->failed_ranks();
  });
}

}  // namespace

int main() {
  tidal::cluster::ClusterOptions options;
  options.backend = "sim";
  options.nodes = kNodes;
  options.master_node = 0;
  options.sim.seed = 7;
  auto made = Cluster::Make(options);
  if (!made.ok()) {
    std::fprintf(stderr, "cannot build the cluster: %s\n", made.status().ToString().c_str());
    return 1;
  }
  Cluster& c = **made;
  std::printf("cluster: %zu nodes on the '%s' fabric, master on node%zu\n", c.size(),
              std::string(c.backend()).c_str(), c.master_node());

  // Everything is created first (nothing moves yet), then started in a mixed order.
  std::vector<size_t> all = {0, 1, 2, 3};
  Check(c.NewGroup(all, [] {
           tidal::coll::ProcessGroupOptions o;
           o.group_name = kGroup;
           o.timeout_ns = 2'000'000'000ULL;
           return o;
         }()).ok(),
        "process group 'workers' over nodes 0-3 created");
  for (size_t n : all) Check(c.NewStoreClient(n).ok(), "store client on node" + std::to_string(n));
  std::vector<std::shared_ptr<std::optional<Status>>> started;
  for (size_t n : all) started.push_back(c.Start(n, StartNode(c, n, /*group_first=*/n % 2 == 1)));
  // The master is started last, after every node's start-up was launched.
  Check(c.StartMaster().ok(), "store master started on node0");
  bool ended = c.RunUntil([&] {
    for (const auto& s : started) {
      if (!s->has_value()) return false;
    }
    return true;
  });
  Check(ended, "every node finished its start-up");
  for (size_t n : all) {
    Status s = started[n]->value_or(Status(ErrorCode::INTERNAL_ERROR, "did not finish"));
    Check(s.ok(), "node" + std::to_string(n) + " started (" +
                      (n % 2 == 1 ? "group first" : "store first") + "): " + s.ToString());
  }
  if (failures != 0) {
    std::fprintf(stderr, "store_and_pg example: start-up failed\n");
    return 1;
  }

  // Puts: each node puts one object on its own segment; every node reads all of them.
  for (size_t n : all) {
    tidal::store::ReplicateConfig here;
    here.preferred_segments = {Cluster::NodeName(n)};
    Status s = c.Run(n, c.store_client(n)->Put("key" + std::to_string(n), Value(n), here));
    Check(s.ok(), "node" + std::to_string(n) + " puts key" + std::to_string(n) + ": " +
                      s.ToString());
  }
  for (size_t reader : all) {
    for (size_t n : all) {
      auto got = c.Run(reader, c.store_client(reader)->Get("key" + std::to_string(n)));
      Check(got.ok() && *got == Value(n), "node" + std::to_string(reader) + " gets key" +
                                              std::to_string(n) + " with the exact bytes");
    }
  }

  // Allreduce over all four ranks: sum of rank + 1 = 10.
  std::vector<Status> status;
  std::vector<std::vector<int>> failed;
  std::vector<std::vector<int64_t>> sums;
  Check(AllReduce(c, all, &status, &failed, &sums), "allreduce over 4 ranks finished");
  for (size_t n : all) {
    Check(status[n].ok() && sums[n] == std::vector<int64_t>(kCount, 10),
          "rank " + std::to_string(n) + " allreduce = 10: " + status[n].ToString());
  }

  // Node 3 crashes: the survivors go on.
  Status crashed = c.Crash(3);
  Check(crashed.ok(), "node3 crashed: " + crashed.ToString());
  std::vector<size_t> survivors = {0, 1, 2};
  Check(AllReduce(c, survivors, &status, &failed, &sums), "allreduce over survivors finished");
  for (size_t n : survivors) {
    Check(status[n].code() == ErrorCode::RANK_FAILED && failed[n] == std::vector<int>{3} &&
              sums[n] == std::vector<int64_t>(kCount, 1 + 2 + 3),
          "rank " + std::to_string(n) + " reports rank 3 failed and sums survivors = 6: " +
              status[n].ToString());
  }
  for (size_t n : survivors) {
    auto got = c.Run(1, c.store_client(1)->Get("key" + std::to_string(n)));
    Check(got.ok() && *got == Value(n),
          "after the crash node1 still reads key" + std::to_string(n) + " (on node" +
              std::to_string(n) + ")");
  }

  if (failures != 0) {
    std::fprintf(stderr, "store_and_pg example: %d check(s) failed\n", failures);
    return 1;
  }
  std::printf("store_and_pg example: every check held\n");
  return 0;
}
