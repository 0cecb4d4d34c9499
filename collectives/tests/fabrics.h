// The collectives suites run on every fabric of the registry: these helpers build a
// GroupCluster (tidal/cluster) on the test's fabric, or skip the test with the reason when
// that fabric is not built or has no hardware here, and skip tests that need the
// simulator's powers (crash points, link models, virtual time) elsewhere, saying which.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "tidal/cluster/coll_harness.h"

namespace tidal::coll {

inline auto AllFabrics() { return ::testing::ValuesIn(cluster::BackendNames()); }

// A GroupCluster from `options` (started when `start`), or nullptr with *skip saying why
// the fabric cannot run here. Any error but UNSUPPORTED fails the test as well.
inline std::unique_ptr<cluster::GroupCluster> MakeOrSkip(cluster::GroupClusterOptions options,
                                                         std::string* skip, bool start = true) {
  auto c = cluster::GroupCluster::Make(std::move(options));
  if (!c.ok()) {
    EXPECT_EQ(c.code(), ErrorCode::UNSUPPORTED) << c.status().ToString();
    *skip = c.status().ToString();
    return nullptr;
  }
  std::string err;
  if (start) {
    EXPECT_TRUE((*c)->StartAll(&err)) << err;
  }
  return std::move(*c);
}

// Empty when `backend` is the simulator here; otherwise why a test that needs the
// simulator's `what` cannot run on it.
inline std::string NeedsSimulator(const std::string& backend, const std::string& what) {
  cluster::GroupClusterOptions probe;
  probe.backend = backend;
  probe.ranks = 1;
  std::string skip;
  auto c = MakeOrSkip(probe, &skip, /*start=*/false);
  if (!c) return skip;
  return c->simulated() ? "" : "needs the simulator: " + what;
}

}  // namespace tidal::coll

// Declares `var`, a started GroupCluster from the options, or skips the test.
#define TIDAL_CLUSTER_OR_SKIP(var, options)                              \
  std::string var##_skip;                                                \
  std::unique_ptr<::tidal::cluster::GroupCluster> var =                  \
      ::tidal::coll::MakeOrSkip(options, &var##_skip);                   \
  if (!var) GTEST_SKIP() << var##_skip

// Skips the test unless `backend` is the simulator, naming the power it needs.
#define TIDAL_SIM_ONLY(backend, what)                                           \
  do {                                                                          \
    std::string why_not_ = ::tidal::coll::NeedsSimulator(backend, what);        \
    if (!why_not_.empty()) GTEST_SKIP() << why_not_;                            \
  } while (0)
