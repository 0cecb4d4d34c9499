// The transfer campaign in CI: a few hundred seeds with every fault kind switched on
// per seed by the swarm, each judged by the byte-exact checker; planted bugs must be
// caught (a checker that cannot fail is a defect); and a failing run's trace replays and
// fails the same way, byte for byte. Longer campaigns: scripts/sim-campaign.sh.
#include <gtest/gtest.h>

#include <fstream>

#include "tidal/sim/transfer_workload.h"

namespace tidal::sim {
namespace {

TEST(Campaign, SwarmOfSeedsWithEveryFaultKindPasses) {
  uint64_t failed = 0, requests = 0, crashed = 0;
  std::map<std::string, uint64_t> faults;
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    TransferWorkloadOptions o;
    o.seed = seed;
    o.nodes = 4;
    o.ops_per_node = 60;
    o.fault_mix = "all";
    o.replay_command = "tidal-sim run --seed " + std::to_string(seed) +
                       " --nodes 4 --ops 60 --faults all --trace-out seed.jsonl";
    auto r = RunTransferWorkload(o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    if (!r->passed) {
      ++failed;
      ADD_FAILURE() << r->banner << "\n" << ::testing::PrintToString(r->violations);
    }
    requests += r->requests;
    crashed += r->crashed_nodes;
    for (const auto& [k, v] : r->faults_injected) faults[k] += v;
  }
  EXPECT_EQ(failed, 0u);
  // The swarm really injected every kind somewhere in the campaign (message faults act
  // on the Messenger, which this workload does not use: the store and collectives
  // campaigns and fault_kinds_test cover them).
  for (size_t k = 0; k < kFaultKinds; ++k) {
    const FaultKind kind = static_cast<FaultKind>(k);
    if (kind == FaultKind::kMessageDelay || kind == FaultKind::kMessageDrop ||
        kind == FaultKind::kMessageDuplicate || kind == FaultKind::kNotifyDrop) {
      continue;  // (notify_drop: scripted rules only, no mix switches it on)
    }
    const std::string name(FaultKindName(kind));
    EXPECT_GT(faults[name], 0u) << name << " was never injected";
  }
  EXPECT_GT(crashed, 0u);
  std::printf("campaign: 300 seeds, %llu requests, %llu nodes crashed\n",
              static_cast<unsigned long long>(requests), static_cast<unsigned long long>(crashed));
}

uint64_t CountFailingSeeds(PlantedBug bug, uint64_t seeds) {
  uint64_t failing = 0;
  for (uint64_t seed = 1; seed <= seeds; ++seed) {
    TransferWorkloadOptions o;
    o.seed = seed;
    o.ops_per_node = 60;
    o.fault_mix = "transfer";
    o.planted_bug = bug;
    auto r = RunTransferWorkload(o);
    EXPECT_TRUE(r.ok());
    failing += r.ok() && !r->passed;
  }
  return failing;
}

TEST(Campaign, PlantedShortAsCompleteIsCaught) {
  // A short transfer reported as complete (a write counted before the peer had it).
  EXPECT_GE(CountFailingSeeds(PlantedBug::kShortAsComplete, 40), 10u);
}

TEST(Campaign, PlantedIgnoredRemoteKeyIsCaught) {
  EXPECT_GE(CountFailingSeeds(PlantedBug::kIgnoreRemoteKey, 20), 15u);
}

TEST(Campaign, AFailingRunReplaysAndFailsTheSameWay) {
  TransferWorkloadOptions o;
  o.ops_per_node = 60;
  o.fault_mix = "transfer";
  o.planted_bug = PlantedBug::kShortAsComplete;
  o.trace_lines = true;
  // Find a failing seed.
  Result<TransferWorkloadResult> first(ErrorCode::INTERNAL_ERROR, "none yet");
  for (o.seed = 1; o.seed < 100; ++o.seed) {
    first = RunTransferWorkload(o);
    ASSERT_TRUE(first.ok());
    if (!first->passed) break;
  }
  ASSERT_FALSE(first->passed);
  // Write the trace, read its header back as `tidal-sim replay` does, and re-run.
  const std::string path = ::testing::TempDir() + "/failing.jsonl";
  ASSERT_TRUE(Trace::WriteJsonLines(path, first->trace_header, first->trace, first->events,
                                    first->digest, "FAIL")
                  .ok());
  std::ifstream in(path);
  std::string header;
  std::getline(in, header);
  auto parsed = ParseTransferWorkloadHeader(header);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->seed, o.seed);
  EXPECT_EQ(parsed->planted_bug, PlantedBug::kShortAsComplete);
  parsed->trace_lines = true;
  auto again = RunTransferWorkload(*parsed);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->passed);
  EXPECT_EQ(again->digest, first->digest);
  EXPECT_EQ(again->violations, first->violations);
  EXPECT_TRUE(again->trace == first->trace);
  // Every line of the file parses as a trace event.
  std::string line;
  size_t events = 0;
  while (std::getline(in, line)) {
    if (line.find("\"footer\"") != std::string::npos) break;
    ASSERT_TRUE(Trace::ParseLine(line).ok()) << line;
    ++events;
  }
  EXPECT_EQ(events, first->trace.size());
}

// Seeds that once failed, kept as regression tests (8 nodes, 100 batches, all faults):
//  37: a slice canceled at a deadline still counted as in flight when its owner
//      unregistered the region right after (the engine now reaps queued completions first);
//  311, 619: the simulated transport refused Cancel of a task whose completion was queued
//      but not yet polled, which the contract calls outstanding.
TEST(Campaign, RegressionSeeds) {
  for (uint64_t seed : {37u, 311u, 619u}) {
    TransferWorkloadOptions o;
    o.seed = seed;
    o.nodes = 8;
    o.ops_per_node = 100;
    o.fault_mix = "all";
    auto r = RunTransferWorkload(o);
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(r->passed) << r->banner << "\n" << ::testing::PrintToString(r->violations);
  }
}

TEST(Campaign, BadHeadersAreRejectedByName) {
  EXPECT_EQ(ParseTransferWorkloadHeader("not json").code(), ErrorCode::CORRUPT_INPUT);
  auto r = ParseTransferWorkloadHeader(R"({"tidal_trace":1,"workload":"transfer","seed":"x"})");
  EXPECT_EQ(r.code(), ErrorCode::CORRUPT_INPUT);
  EXPECT_NE(r.status().message().find("'seed'"), std::string::npos);
}

}  // namespace
}  // namespace tidal::sim
