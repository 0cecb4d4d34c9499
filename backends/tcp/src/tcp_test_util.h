// Test helpers for the TCP backend's suites (header-only; no production code uses it).
//
// Drive runs a RealEnv until a condition holds, with a generous safety limit so a broken
// build fails instead of hanging ctest; a test asserts the condition's outcome (bytes,
// codes, counts), never how long it took.
#pragma once

#include <cstdint>
#include <functional>

#include "tidal/backends/real_env.h"

namespace tidal::backends::tcp::testing {

constexpr uint64_t kDriveLimitNs = 30'000'000'000ULL;

// Runs `env` until `done()` or the safety limit; returns done(). A 1 ms tick re-checks
// `done()`, so conditions on state the IO thread changes without posting (stats) are seen.
inline bool Drive(RealEnv& env, const std::function<bool()>& done,
                  uint64_t limit_ns = kDriveLimitNs) {
  const uint64_t deadline = env.NowNs() + limit_ns;
  bool finished = false;
  TimerId tick = 0;
  std::function<void()> arm = [&]() {
    tick = env.ScheduleAfter(1'000'000, [&]() {
      tick = 0;
      if (!finished) arm();
    });
  };
  arm();
  env.RunUntil([&]() { return done() || env.NowNs() >= deadline; });
  finished = true;
  if (tick != 0) env.CancelTimer(tick);
  return done();
}

}  // namespace tidal::backends::tcp::testing
