// One seeded workload on the simulator and on a real backend, with the same outcome: every
// request's terminal status (state, error, bytes) and every byte of every node's memory.
//
// The workload is timing-free by construction: batches run one after another, and inside a
// batch no two requests touch the same bytes on any node, so the contract fixes every
// outcome; a difference is a bug in the simulator or in the backend. It includes requests
// the contract refuses: a remote range that runs past the peer's region
// (REMOTE_ACCESS_DENIED), a local range outside registered memory (ADDRESS_NOT_REGISTERED)
// and a zero length (INVALID_PARAMS). Instantiated for every real backend in the registry;
// those not built or without hardware here skip with the registry's reason.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tidal/backends/registry.h"
#include "tidal/fabric.h"

namespace tidal::testing {
namespace {

constexpr size_t kNodes = 3;
constexpr uint64_t kSlot = 64 * 1024;
constexpr uint64_t kSlots = 16;
constexpr uint64_t kRegion = kSlot * kSlots;  // 1 MiB per node
constexpr uint64_t kGuard = 4096;             // unregistered bytes after each region

uint64_t Mix(uint64_t& x) {
  x += 0x9e3779b97f4a7c15ULL;
  uint64_t z = x;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

struct Planned {
  size_t from = 0;
  TransferOp op = TransferOp::kWrite;
  size_t peer = 0;
  uint64_t local_off = 0, remote_off = 0, length = 0;
  bool local_outside = false;  // local range starts in the unregistered guard
};

struct Outcome {
  std::vector<TransferStatus> statuses;
  std::vector<std::vector<uint8_t>> memory;  // each node's region, after the run
};

// The workload: `batches` batches of 1..4 requests from one node, drawn from `seed`.
std::vector<std::vector<Planned>> Plan(uint64_t seed, size_t batches) {
  std::vector<std::vector<Planned>> out;
  uint64_t x = seed;
  for (size_t b = 0; b < batches; ++b) {
    std::vector<Planned> batch;
    const size_t from = Mix(x) % kNodes;
    // Slots in use in this batch, per node: no two requests share bytes.
    std::vector<std::vector<bool>> used(kNodes, std::vector<bool>(kSlots, false));
    const size_t n = 1 + Mix(x) % 4;
    for (size_t k = 0; k < n; ++k) {
      Planned p;
      p.from = from;
      p.op = Mix(x) % 2 == 0 ? TransferOp::kWrite : TransferOp::kRead;
      p.peer = Mix(x) % kNodes;
      const uint64_t kind = Mix(x) % 16;  // 0: zero length, 1: past the peer's region, 2: local outside
      const uint64_t ls = Mix(x) % kSlots;
      const uint64_t rs = kind == 1 ? kSlots - 1 : Mix(x) % kSlots;
      if (used[from][ls] || used[p.peer][rs] || (p.peer == from && ls == rs)) continue;
      used[from][ls] = used[p.peer][rs] = true;
      p.length = 2 + Mix(x) % (kSlot - 1);
      p.local_off = ls * kSlot + Mix(x) % (kSlot - p.length + 1);
      p.remote_off = rs * kSlot + Mix(x) % (kSlot - p.length + 1);
      if (kind == 0) p.length = 0;                                   // INVALID_PARAMS
      if (kind == 1) p.remote_off = kRegion - p.length / 2;          // REMOTE_ACCESS_DENIED
      if (kind == 2) p.local_outside = true;                         // ADDRESS_NOT_REGISTERED
      batch.push_back(p);
    }
    if (!batch.empty()) out.push_back(std::move(batch));
  }
  return out;
}

Task<std::vector<TransferStatus>> Sync(TransferEngine& e, std::vector<TransferRequest> reqs) {
  co_return co_await e.TransferSync(reqs);
}
Task<Result<SegmentHandle>> Open(TransferEngine& e, std::string name) {
  co_return co_await e.OpenSegment(std::move(name));
}
Task<Result<uint64_t>> Reg(TransferEngine& e, void* p, uint64_t n) {
  co_return co_await e.RegisterMemory(p, n, Location::Host());
}

// Runs the plan on a fabric; nullopt (with a gtest failure) if set-up failed.
std::optional<Outcome> RunOn(Fabric& f, const std::vector<std::vector<Planned>>& plan) {
  std::vector<uint8_t*> region(kNodes);
  for (size_t n = 0; n < kNodes; ++n) {
    region[n] = static_cast<uint8_t*>(f.Allocate(n, kRegion + kGuard, Location::Host()));
    std::vector<uint8_t> init(kRegion);
    for (uint64_t i = 0; i < kRegion; ++i) init[i] = static_cast<uint8_t>(n * 71 + i * 13 + (i >> 9));
    f.CopyIn(region[n], init.data(), kRegion);
    Result<uint64_t> key = f.Run(Reg(f.engine(n), region[n], kRegion));
    if (!key.ok()) {
      ADD_FAILURE() << f.Name() << ": register: " << key.status().ToString();
      return std::nullopt;
    }
  }
  std::vector<std::vector<SegmentHandle>> handle(kNodes, std::vector<SegmentHandle>(kNodes));
  for (size_t a = 0; a < kNodes; ++a) {
    for (size_t b = 0; b < kNodes; ++b) {
      Result<SegmentHandle> h = f.Run(Open(f.engine(a), Fabric::NodeName(b)));
      if (!h.ok()) {
        ADD_FAILURE() << f.Name() << ": open: " << h.status().ToString();
        return std::nullopt;
      }
      handle[a][b] = *h;
    }
  }
  Outcome out;
  for (const std::vector<Planned>& batch : plan) {
    std::vector<TransferRequest> reqs;
    for (const Planned& p : batch) {
      TransferRequest r;
      r.op = p.op;
      r.length = p.length;
      r.segment = handle[p.from][p.peer];
      r.local_addr = reinterpret_cast<uint64_t>(p.local_outside ? region[p.from] + kRegion
                                                                : region[p.from] + p.local_off);
      r.remote_addr = reinterpret_cast<uint64_t>(region[p.peer] + p.remote_off);
      reqs.push_back(r);
    }
    std::vector<TransferStatus> st = f.Run(Sync(f.engine(batch[0].from), std::move(reqs)));
    out.statuses.insert(out.statuses.end(), st.begin(), st.end());
  }
  for (size_t n = 0; n < kNodes; ++n) {
    out.memory.emplace_back(kRegion);
    f.CopyOut(out.memory.back().data(), region[n], kRegion);
  }
  return out;
}

class SimVsReal : public ::testing::TestWithParam<std::string> {};

TEST_P(SimVsReal, SameSeededWorkloadSameBytesAndStatuses) {
  backends::FabricSpec spec;
  spec.nodes = kNodes;
  Result<std::unique_ptr<Fabric>> real = backends::MakeFabric(GetParam(), spec);
  if (!real.ok()) GTEST_SKIP() << real.status().ToString();
  Result<std::unique_ptr<Fabric>> sim = backends::MakeFabric("sim", spec);
  ASSERT_TRUE(sim.ok()) << sim.status().ToString();
  for (uint64_t seed : {1u, 2u, 3u}) {
    const auto plan = Plan(seed, 60);
    std::optional<Outcome> a = RunOn(**sim, plan);
    std::optional<Outcome> b = RunOn(**real, plan);
    ASSERT_TRUE(a && b);
    ASSERT_EQ(a->statuses.size(), b->statuses.size());
    size_t completed = 0, refused = 0;
    for (size_t i = 0; i < a->statuses.size(); ++i) {
      EXPECT_EQ(a->statuses[i], b->statuses[i])
          << "seed " << seed << " request " << i << ": sim " << TransferStateName(a->statuses[i].state)
          << "/" << ErrorCodeName(a->statuses[i].error) << " vs " << GetParam() << " "
          << TransferStateName(b->statuses[i].state) << "/" << ErrorCodeName(b->statuses[i].error);
      completed += a->statuses[i].state == TransferState::COMPLETED;
      refused += a->statuses[i].state == TransferState::FAILED;
    }
    for (size_t n = 0; n < kNodes; ++n) {
      EXPECT_TRUE(a->memory[n] == b->memory[n]) << "seed " << seed << ": node " << n
                                                << "'s memory differs between sim and " << GetParam();
    }
    // The workload exercises both outcomes, or it proves little.
    EXPECT_GT(completed, 20u) << "seed " << seed;
    EXPECT_GT(refused, 0u) << "seed " << seed;
  }
}

std::vector<std::string> RealBackends() {
  std::vector<std::string> out;
  for (const auto& b : backends::ListBackends()) {
    if (b.name != "sim") out.push_back(b.name);
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(RealBackends, SimVsReal, ::testing::ValuesIn(RealBackends()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tidal::testing
