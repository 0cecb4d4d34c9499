// The scheduling flags every simulated campaign takes (sim/include/tidal/sim/world.h,
// Scheduling): `--mode swarm|pct`, `--pct-depth D`, `--pct-steps K`. The tool installs the
// result with sim::ScopedScheduling for the whole run, so every World a campaign builds
// uses it, and appends ReplayFlags to the replay commands it prints.
#pragma once

#include <boost/program_options.hpp>
#include <cstdint>
#include <optional>
#include <string>

#include "tidal/sim/world.h"

namespace tidal::tools {

inline void AddSchedulingOptions(boost::program_options::options_description& d) {
  namespace po = boost::program_options;
  d.add_options()
      ("mode", po::value<std::string>()->default_value("swarm"),
       "scheduling of ready work: swarm (a random delay per posted task) or pct (random "
       "actor priorities with pct-depth - 1 change points; deterministic per seed)")
      ("pct-depth", po::value<uint32_t>()->default_value(3),
       "pct: the bug depth d (d - 1 priority change points)")
      ("pct-steps", po::value<uint64_t>()->default_value(20'000),
       "pct: change points fall among the first this many steps");
}

// nullopt after printing what was wrong (the mode "choice" belongs to the explorer).
inline std::optional<sim::SchedulingOptions> SchedulingFromFlags(
    const boost::program_options::variables_map& vm, const char* tool) {
  sim::SchedulingOptions s;
  const std::string mode = vm["mode"].as<std::string>();
  if (mode != "swarm" && mode != "pct") {
    std::fprintf(stderr, "%s: --mode must be swarm or pct, not '%s'\n", tool, mode.c_str());
    return std::nullopt;
  }
  s.mode = mode == "pct" ? sim::Scheduling::kPct : sim::Scheduling::kSwarm;
  s.pct_depth = vm["pct-depth"].as<uint32_t>();
  s.pct_steps = vm["pct-steps"].as<uint64_t>();
  if (s.pct_depth < 1 || s.pct_steps < 1) {
    std::fprintf(stderr, "%s: --pct-depth and --pct-steps must be at least 1\n", tool);
    return std::nullopt;
  }
  return s;
}

// " --mode pct --pct-depth D --pct-steps K" under PCT, "" under swarm.
inline std::string ReplayFlags(const sim::SchedulingOptions& s) {
  if (s.mode != sim::Scheduling::kPct) return "";
  return " --mode pct --pct-depth " + std::to_string(s.pct_depth) + " --pct-steps " +
         std::to_string(s.pct_steps);
}

}  // namespace tidal::tools
