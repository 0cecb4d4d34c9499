// Shared test fixture: builds a fabric by backend name through the registry, with guard
// banded, registered buffers, and on failure prints the simulator's seed, digest and the
// command that replays the test. Backends that are not built, or cannot inject the fault
// a test needs, are skipped with the reason printed (never a silent pass).
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "tidal/backends/registry.h"
#include "tidal/sim/fault_plan.h"
#include "tidal/transfer_engine.h"

namespace tidal::testing {

constexpr uint8_t kGuard = 0xEE;
constexpr size_t kGuardBytes = 256;

// A registered buffer with unregistered guard bands on both sides.
struct GuardedBuffer {
  uint8_t* base = nullptr;   // start of the front guard band
  uint8_t* data = nullptr;   // start of the registered region
  size_t size = 0;           // registered bytes
  uint64_t rkey = 0;
  uint64_t addr() const { return reinterpret_cast<uint64_t>(data); }
  bool GuardsIntact() const {
    for (size_t i = 0; i < kGuardBytes; ++i) {
      if (base[i] != kGuard || data[size + i] != kGuard) return false;
    }
    return true;
  }
  void Fill(uint8_t seed) {
    for (size_t i = 0; i < size; ++i) data[i] = static_cast<uint8_t>(seed + i * 131 + (i >> 8));
  }
};

// Every backend the registry knows: the built ones run, the others skip out loud.
inline std::vector<std::string> AllFabricNames() {
  std::vector<std::string> names;
  for (const auto& b : backends::ListBackends()) names.push_back(b.name);
  return names;
}

class FabricTest : public ::testing::TestWithParam<std::string> {
 protected:
  // Builds the fabric; `faults` is a fault script (sim only: other backends skip).
  // Returns false (and marks the test skipped) when the backend cannot run it here.
  bool Build(size_t nodes, const std::string& faults = "", uint64_t seed = 1,
             TransferEngineOptions engine = {}) {
    backends::FabricSpec spec;
    spec.nodes = nodes;
    if (!faults.empty() && GetParam() != "sim") {
      skip_reason_ = "needs simulator fault injection";
      return false;
    }
    if (!faults.empty()) {
      auto plan = sim::FaultPlan::Parse(faults);
      EXPECT_TRUE(plan.ok()) << plan.status().ToString();
      spec.sim.world.faults = *plan;
    }
    spec.sim.world.seed = seed;
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    spec.sim.world.replay_command = std::string("ctest --output-on-failure -R '") +
                                    info->test_suite_name() + "." + info->name() + "'";
    spec.sim.engine = engine;
    auto f = backends::MakeFabric(GetParam(), std::move(spec));
    if (!f.ok()) {
      skip_reason_ = f.status().ToString();
      return false;
    }
    fabric_ = std::move(*f);
    return true;
  }

  void TearDown() override {
    if (HasFailure() && fabric_ && fabric_->simulated()) {
      auto* sf = static_cast<sim::SimFabric*>(fabric_.get());
      std::fprintf(stderr, "%s\n", sf->world().FailureBanner().c_str());
    }
  }

  sim::World* world() {
    return fabric_ && fabric_->simulated() ? &static_cast<sim::SimFabric*>(fabric_.get())->world()
                                           : nullptr;
  }

  GuardedBuffer Buffer(size_t node, size_t size, Location loc = Location::Host()) {
    GuardedBuffer b;
    b.size = size;
    b.base = static_cast<uint8_t*>(fabric_->Allocate(node, size + 2 * kGuardBytes, loc));
    b.data = b.base + kGuardBytes;
    std::memset(b.base, kGuard, size + 2 * kGuardBytes);
    std::memset(b.data, 0, size);
    auto rkey = fabric_->Run(fabric_->engine(node).RegisterMemory(b.data, size, loc));
    EXPECT_TRUE(rkey.ok()) << rkey.status().ToString();
    b.rkey = rkey.ok() ? *rkey : 0;
    return b;
  }

  SegmentHandle Open(size_t from, size_t to) {
    auto h = fabric_->Run(fabric_->engine(from).OpenSegment(Fabric::NodeName(to)));
    EXPECT_TRUE(h.ok()) << h.status().ToString();
    return h.ok() ? *h : SegmentHandle{};
  }

  std::vector<TransferStatus> Transfer(size_t node, std::vector<TransferRequest> requests) {
    return fabric_->Run(fabric_->engine(node).TransferSync(requests));
  }

  std::unique_ptr<Fabric> fabric_;
  std::string skip_reason_;
};

#define TIDAL_BUILD_OR_SKIP(...)                              \
  do {                                                        \
    if (!Build(__VA_ARGS__)) GTEST_SKIP() << skip_reason_;    \
  } while (0)

}  // namespace tidal::testing
