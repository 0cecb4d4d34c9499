// tidal-sim: runs simulated cluster campaigns and replays their traces.
//
//   tidal-sim run --seeds 1..1000 --nodes 4 --faults all
//   tidal-sim run --seed 42 --trace-out run.jsonl --chrome-trace run.json
//   tidal-sim replay run.jsonl
//
// Every run prints its seed, digest and verdict; a failing seed prints the command that
// replays it. Multi-seed runs show progress and end with a summary; --json prints the
// same as one JSON document on stdout.
#include <boost/program_options.hpp>
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>
#include <sstream>
#include <string>

#ifdef TIDAL_SIM_ZOO
#include <unistd.h>

#include "tidal/cluster/explore_worlds.h"
#include "tidal/cluster/zoo.h"
#include "tidal/sim/explore.h"
#include "tidal/sim/import.h"
#endif
#include "tidal/sim/shrink.h"
#include "tidal/sim/transfer_workload.h"

#include "../common/cli.h"
#include "../common/scheduling_cli.h"

namespace po = boost::program_options;
using tidal::Status;
using tidal::sim::TransferWorkloadOptions;
using tidal::sim::TransferWorkloadResult;

namespace {

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%016" PRIx64, v);
  return buf;
}

double WallSeconds() {
  using clock = std::chrono::steady_clock;
  static const auto start = clock::now();
  return std::chrono::duration<double>(clock::now() - start).count();
}

std::string ReplayCommand(const TransferWorkloadOptions& o, const std::string& script_path) {
  std::ostringstream c;
  c << "tidal-sim run --seed " << o.seed << " --nodes " << o.nodes << " --ops " << o.ops_per_node
    << " --faults " << o.fault_mix;
  if (!script_path.empty()) c << " --fault-script " << script_path;
  if (o.planted_bug != tidal::sim::PlantedBug::kNone) {
    c << " --plant-bug " << tidal::sim::PlantedBugName(o.planted_bug);
  }
  if (o.engine_bug != tidal::EngineBug::kNone) {
    c << " --engine-bug " << tidal::EngineBugName(o.engine_bug);
  }
  c << tidal::tools::ReplayFlags(tidal::sim::DefaultScheduling());
  c << " --trace-out seed-" << o.seed << ".jsonl";
  return c.str();
}

nlohmann::json ResultJson(const TransferWorkloadOptions& o, const TransferWorkloadResult& r,
                          const std::string& replay) {
  nlohmann::json j = {{"seed", o.seed},
                      {"verdict", r.passed ? "PASS" : "FAIL"},
                      {"digest", Hex(r.digest)},
                      {"events", r.events},
                      {"virtual_ns", r.virtual_ns},
                      {"requests", r.requests},
                      {"completed", r.completed},
                      {"failed", r.failed},
                      {"timed_out", r.timed_out},
                      {"bytes_moved", r.bytes_moved},
                      {"crashed_nodes", r.crashed_nodes},
                      {"violations", r.violations}};
  nlohmann::json faults = nlohmann::json::object();
  for (const auto& [k, v] : r.faults_injected) faults[k] = v;
  j["faults_injected"] = faults;
  nlohmann::json fails = nlohmann::json::object();
  for (const auto& [k, v] : r.failures_by_code) fails[k] = v;
  j["failures_by_code"] = fails;
  if (!r.passed) j["replay"] = replay;
  return j;
}

Status WriteTraces(const TransferWorkloadResult& r, const std::string& trace_out,
                   const std::string& chrome_out) {
  if (!trace_out.empty()) {
    TIDAL_RETURN_IF_ERROR(tidal::sim::Trace::WriteJsonLines(
        trace_out, r.trace_header, r.trace, r.events, r.digest, r.passed ? "PASS" : "FAIL"));
  }
  if (!chrome_out.empty()) TIDAL_RETURN_IF_ERROR(tidal::sim::Trace::WriteChromeTrace(r.trace, chrome_out));
  return Status();
}

void PrintOne(const TransferWorkloadOptions& o, const TransferWorkloadResult& r,
              const std::string& replay) {
  std::printf("seed %" PRIu64 "  digest %s  verdict %s\n", o.seed, Hex(r.digest).c_str(),
              r.passed ? "PASS" : "FAIL");
  std::printf("  requests %" PRIu64 ": completed %" PRIu64 ", failed %" PRIu64
              ", timed out %" PRIu64 "; %" PRIu64 " bytes moved; %" PRIu64
              " events over %.3f ms of virtual time; %u node(s) crashed\n",
              r.requests, r.completed, r.failed, r.timed_out, r.bytes_moved, r.events,
              r.virtual_ns / 1e6, r.crashed_nodes);
  if (!r.faults_injected.empty()) {
    std::printf("  faults injected:");
    for (const auto& [k, v] : r.faults_injected) std::printf(" %s=%" PRIu64, k.c_str(), v);
    std::printf("\n");
  }
  if (!r.failures_by_code.empty()) {
    std::printf("  failures by code:");
    for (const auto& [k, v] : r.failures_by_code) std::printf(" %s=%" PRIu64, k.c_str(), v);
    std::printf("\n");
  }
  for (const std::string& v : r.violations) std::printf("  VIOLATION: %s\n", v.c_str());
  if (!r.passed) std::printf("  replay: %s\n", replay.c_str());
  std::fflush(stdout);  // a long campaign's failures show up as they happen
}

// The workload options every command shares; nullopt (after a message) on bad input.
std::optional<TransferWorkloadOptions> WorkloadOptions(const po::variables_map& vm,
                                                       std::string* script_path) {
  TransferWorkloadOptions o;
  o.nodes = vm["nodes"].as<size_t>();
  o.ops_per_node = vm["ops"].as<size_t>();
  o.fault_mix = vm["faults"].as<std::string>();
  if (vm.count("fault-script")) {
    *script_path = vm["fault-script"].as<std::string>();
    std::ifstream in(*script_path);
    if (!in) {
      std::fprintf(stderr, "tidal-sim: cannot read fault script '%s'\n", script_path->c_str());
      return std::nullopt;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    o.fault_script = ss.str();
  }
  if (vm.count("plant-bug")) {
    auto bug = tidal::sim::ParsePlantedBug(vm["plant-bug"].as<std::string>());
    if (!bug.ok()) {
      std::fprintf(stderr, "tidal-sim: %s\n", bug.status().message().c_str());
      return std::nullopt;
    }
    o.planted_bug = *bug;
  }
  if (vm.count("engine-bug")) {
    auto bug = tidal::ParseEngineBug(vm["engine-bug"].as<std::string>());
    if (!bug.ok()) {
      std::fprintf(stderr, "tidal-sim: %s\n", bug.status().message().c_str());
      return std::nullopt;
    }
    o.engine_bug = *bug;
  }
  return o;
}

// tidal-sim shrink: the first failing seed of the range, shrunk to a small tape that breaks
// the same invariant, written as a gtest regression case with --out.
int Shrink(const po::variables_map& vm) {
  std::string script_path;
  std::optional<TransferWorkloadOptions> base = WorkloadOptions(vm, &script_path);
  if (!base) return 2;
  const std::optional<tidal::tools::SeedRange> seeds = tidal::tools::SelectedSeeds(vm, "tidal-sim");
  if (!seeds) return 2;
  const bool json = vm.count("json") != 0;
  TransferWorkloadOptions o = *base;
  bool found = false;
  for (uint64_t i = 0; i < seeds->count() && !found; ++i) {
    o.seed = seeds->first + i;
    auto r = tidal::sim::RunTransferWorkload(o);
    if (!r.ok()) {
      std::fprintf(stderr, "tidal-sim: %s\n", r.status().ToString().c_str());
      return 2;
    }
    found = !r->passed;
  }
  if (!found) {
    std::fprintf(stderr, "tidal-sim shrink: every seed of %s passes: nothing to shrink\n",
                 tidal::tools::ToString(*seeds).c_str());
    return 2;
  }
  tidal::sim::ShrinkOptions so;
  so.max_runs = vm["max-runs"].as<uint64_t>();
  const double start = WallSeconds();
  double last_print = 0;
  so.progress = [&](uint64_t runs, size_t nonzero, size_t length) {
    if (json || WallSeconds() - last_print < 0.25) return;
    last_print = WallSeconds();
    std::fprintf(stderr, "\r  shrinking seed %" PRIu64 ": %" PRIu64 "/%" PRIu64
                 " runs, tape %zu draws (%zu non-zero), %.1f s   ",
                 o.seed, runs, so.max_runs, length, nonzero, WallSeconds() - start);
  };
  auto shrunk = tidal::sim::ShrinkTransferFailure(o, so);
  const double wall = WallSeconds() - start;
  if (!json) std::fprintf(stderr, "\n");
  if (!shrunk.ok()) {
    std::fprintf(stderr, "tidal-sim shrink: %s\n", shrunk.status().ToString().c_str());
    return 2;
  }
  const tidal::sim::TransferShrinkResult& s = *shrunk;
  std::string name = "Seed" + std::to_string(o.seed);
  if (o.planted_bug != tidal::sim::PlantedBug::kNone || o.engine_bug != tidal::EngineBug::kNone) {
    std::string bug(o.planted_bug != tidal::sim::PlantedBug::kNone
                        ? tidal::sim::PlantedBugName(o.planted_bug)
                        : tidal::EngineBugName(o.engine_bug));
    bool up = true;
    for (char ch : bug) {
      if (ch == '_') {
        up = true;
        continue;
      }
      name += up ? static_cast<char>(std::toupper(static_cast<unsigned char>(ch))) : ch;
      up = false;
    }
  }
  if (vm.count("out")) {
    const std::string path = vm["out"].as<std::string>();
    std::ofstream out(path);
    out << tidal::sim::TransferRegressionTest(s, name);
    if (!out) {
      std::fprintf(stderr, "tidal-sim shrink: cannot write '%s'\n", path.c_str());
      return 2;
    }
  }
  // The batches the shrunk run submits: those its keep-mask keeps (from the 64th on, all).
  const uint64_t all_batches = s.options.nodes * s.options.ops_per_node;
  uint64_t batches_run = all_batches > 64 ? all_batches - 64 : 0;
  for (uint64_t i = 0; i < std::min<uint64_t>(all_batches, 64); ++i) {
    batches_run += (s.options.batch_mask >> i) & 1;
  }
  if (json) {
    nlohmann::json j = {{"seed", o.seed},
                        {"invariant", s.invariant},
                        {"violation", s.violation},
                        {"original", {{"nodes", s.original_nodes}, {"ops_per_node", s.original_ops},
                                      {"draws", s.original_length}, {"nonzero_draws", s.original_nonzero},
                                      {"events", s.original_events}, {"faults", s.original_faults}}},
                        {"shrunk", {{"nodes", s.options.nodes}, {"ops_per_node", s.options.ops_per_node},
                                    {"batch_mask", s.options.batch_mask}, {"batches", batches_run},
                                    {"draws", s.shrunk_length}, {"nonzero_draws", s.shrunk_nonzero},
                                    {"events", s.shrunk_events}, {"faults", s.shrunk_faults}}},
                        {"runs", s.runs},
                        {"wall_seconds", wall}};
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::printf("tidal-sim shrink: seed %" PRIu64 " breaks \"%s\"\n", o.seed, s.invariant.c_str());
  std::printf("  %-16s %12s %12s\n", "", "original", "shrunk");
  std::printf("  %-16s %12zu %12zu\n", "nodes", s.original_nodes, s.options.nodes);
  std::printf("  %-16s %12zu %12zu\n", "batches/node", s.original_ops, s.options.ops_per_node);
  std::printf("  %-16s %12zu %12" PRIu64 "\n", "batches run", s.original_nodes * s.original_ops,
              batches_run);
  std::printf("  %-16s %12zu %12zu\n", "tape draws", s.original_length, s.shrunk_length);
  std::printf("  %-16s %12zu %12zu\n", "non-zero draws", s.original_nonzero, s.shrunk_nonzero);
  std::printf("  %-16s %12" PRIu64 " %12" PRIu64 "\n", "trace events", s.original_events,
              s.shrunk_events);
  std::printf("  %-16s %12" PRIu64 " %12" PRIu64 "\n", "faults", s.original_faults,
              s.shrunk_faults);
  std::printf("  %" PRIu64 " runs in %.2f s\n  shrunk violation: %s\n", s.runs, wall,
              s.violation.c_str());
  if (vm.count("out")) {
    std::printf("  regression test written to %s (TEST ShrunkRegression.%s*)\n",
                vm["out"].as<std::string>().c_str(), name.c_str());
  }
  return 0;
}

// ---- import: a run recorded on a real backend, replayed on the simulator ----------------
// tidal-sim import TRACE.jsonl | --scenario FILE.json [--shrink] [--out FILE.json] [--json]
// Exit: 1 when the scenario fails on the simulator (the recorded failure reproduced), 0
// when it passes, 2 for bad input.
void AddImportOptions(po::options_description& d) {
  d.add_options()
      ("scenario", po::value<std::string>(),
       "import: replay a scenario file written by --out instead of importing a trace")
      ("shrink", "import: shrink the failing scenario (drop operations, then faults)");
}

int Import(const po::variables_map& vm) {
  tidal::Result<tidal::sim::TransferScript> script =
      Status(tidal::ErrorCode::INVALID_PARAMS, "no input");
  std::string from;
  if (vm.count("scenario")) {
    from = vm["scenario"].as<std::string>();
    std::ifstream in(from);
    if (!in) {
      std::fprintf(stderr, "tidal-sim import: cannot read scenario '%s'\n", from.c_str());
      return 2;
    }
    std::stringstream text;
    text << in.rdbuf();
    script = tidal::sim::TransferScript::FromJson(text.str());
  } else if (vm.count("arg")) {
    from = vm["arg"].as<std::string>();
    script = tidal::sim::ImportTrace(from);
  } else {
    std::fprintf(stderr, "tidal-sim import: needs a trace file (or --scenario FILE)\n");
    return 2;
  }
  if (!script.ok()) {
    std::fprintf(stderr, "tidal-sim import: %s\n", script.status().ToString().c_str());
    return 2;
  }
  tidal::Result<tidal::sim::ScriptRun> run = tidal::sim::RunTransferScriptOnSim(*script);
  if (!run.ok()) {
    std::fprintf(stderr, "tidal-sim import: replay: %s\n", run.status().ToString().c_str());
    return 2;
  }
  std::optional<tidal::sim::ScriptShrinkResult> shrunk;
  if (vm.count("shrink") && !run->passed) {
    tidal::Result<tidal::sim::ScriptShrinkResult> s =
        tidal::sim::ShrinkTransferScript(*script, vm["max-runs"].as<uint64_t>());
    if (!s.ok()) {
      std::fprintf(stderr, "tidal-sim import: shrink: %s\n", s.status().ToString().c_str());
      return 2;
    }
    shrunk = std::move(*s);
  }
  const tidal::sim::TransferScript& kept = shrunk ? shrunk->script : *script;
  if (vm.count("out")) {
    const std::string out = vm["out"].as<std::string>();
    std::ofstream f(out);
    f << kept.ToJson() << "\n";
    if (!f) {
      std::fprintf(stderr, "tidal-sim import: cannot write '%s'\n", out.c_str());
      return 2;
    }
  }
  size_t writes = 0;
  for (const auto& o : script->ops) writes += o.op == tidal::TransferOp::kWrite;
  if (vm.count("json")) {
    nlohmann::json j = {{"source", from},
                        {"nodes", script->nodes},
                        {"ops", script->ops.size()},
                        {"writes", writes},
                        {"faults", script->faults()},
                        {"fault_script", script->FaultScript()},
                        {"notes", script->notes},
                        {"verdict", run->passed ? "PASS" : "FAIL"},
                        {"invariant", run->invariant},
                        {"violation", run->violation}};
    if (shrunk) {
      j["shrunk"] = {{"ops", shrunk->script.ops.size()},
                     {"faults", shrunk->script.faults()},
                     {"runs", shrunk->runs},
                     {"seconds", shrunk->seconds},
                     {"violation", shrunk->run.violation},
                     {"fault_script", shrunk->script.FaultScript()}};
    }
    std::cout << j.dump(2) << "\n";
  } else {
    std::printf("import %s: %zu nodes, %zu operations (%zu WRITE, %zu READ), %zu faults\n",
                from.c_str(), script->nodes, script->ops.size(), writes,
                script->ops.size() - writes, script->faults());
    const std::string faults = script->FaultScript();
    if (!faults.empty()) std::printf("fault script:\n%s", faults.c_str());
    for (const std::string& n : script->notes) std::printf("  note: %s\n", n.c_str());
    std::printf("simulator: %s%s%s\n", run->passed ? "PASS" : "FAIL",
                run->passed ? "" : ": ", run->violation.c_str());
    if (shrunk) {
      std::printf("shrunk: %zu operations, %zu faults (from %zu and %zu) in %" PRIu64
                  " runs, %.2f s\n  %s\n",
                  shrunk->script.ops.size(), shrunk->script.faults(), shrunk->original_ops,
                  shrunk->original_faults, shrunk->runs, shrunk->seconds,
                  shrunk->run.violation.c_str());
      std::printf("fault script:\n%s", shrunk->script.FaultScript().c_str());
    }
    if (vm.count("out")) {
      std::printf("scenario written to %s (replay: tidal-sim import --scenario %s)\n",
                  vm["out"].as<std::string>().c_str(), vm["out"].as<std::string>().c_str());
    }
  }
  return run->passed ? 0 : 1;
}

#ifdef TIDAL_SIM_ZOO
// tidal-sim shrink --workload store|collectives|mixed|store-field|p2p|peer-loss: the first
// failing seed of the range (with --plant-bug B planted), shrunk by scale and tape to a
// small run that breaks the same invariant, written as a gtest case with --out.
int ShrinkWorkload(const po::variables_map& vm, const std::string& workload) {
  const std::optional<tidal::tools::SeedRange> seeds = tidal::tools::SelectedSeeds(vm, "tidal-sim");
  if (!seeds) return 2;
  const bool json = vm.count("json") != 0;
  std::string bug;
  if (vm.count("plant-bug")) bug = vm["plant-bug"].as<std::string>();
  if (vm.count("engine-bug")) bug = vm["engine-bug"].as<std::string>();
  tidal::sim::ShrinkOptions so;
  so.max_runs = vm["max-runs"].as<uint64_t>();
  so.max_seconds = vm["shrink-seconds"].as<double>();
  const double start = WallSeconds();
  double last_print = 0;
  uint64_t seed = 0;
  so.progress = [&](uint64_t runs, size_t nonzero, size_t length) {
    if (json || WallSeconds() - last_print < 0.25) return;
    last_print = WallSeconds();
    std::fprintf(stderr, "\r  shrinking seed %" PRIu64 ": %" PRIu64 "/%" PRIu64
                 " runs, tape %zu draws (%zu non-zero), %.1f s   ",
                 seed, runs, so.max_runs, length, nonzero, WallSeconds() - start);
  };
  std::optional<tidal::cluster::ZooShrinkResult> found;
  for (uint64_t i = 0; i < seeds->count() && !found; ++i) {
    seed = seeds->first + i;
    tidal::Result<tidal::cluster::ZooShrinkResult> r =
        tidal::cluster::ShrinkZooSeed(workload, bug, seed, so);
    if (r.ok()) {
      found = std::move(*r);
    } else if (r.status().ToString().find("passes: nothing to shrink") == std::string::npos) {
      std::fprintf(stderr, "tidal-sim shrink: %s\n", r.status().ToString().c_str());
      return 2;
    }
  }
  const double wall = WallSeconds() - start;
  if (!json) std::fprintf(stderr, "\n");
  if (!found) {
    std::fprintf(stderr, "tidal-sim shrink: every seed of %s passes: nothing to shrink\n",
                 tidal::tools::ToString(*seeds).c_str());
    return 2;
  }
  const tidal::sim::ScaledShrinkResult& s = found->shrunk;
  std::string name = "Seed" + std::to_string(seed);
  bool up = true;
  for (char ch : workload + "_" + bug) {
    if (ch == '_' || ch == '-') {
      up = true;
      continue;
    }
    name += up ? static_cast<char>(std::toupper(static_cast<unsigned char>(ch))) : ch;
    up = false;
  }
  if (vm.count("out")) {
    const std::string path = vm["out"].as<std::string>();
    std::ofstream out(path);
    out << tidal::cluster::ZooRegressionTest(*found, name);
    if (!out) {
      std::fprintf(stderr, "tidal-sim shrink: cannot write '%s'\n", path.c_str());
      return 2;
    }
  }
  if (json) {
    nlohmann::json j = {{"workload", workload},
                        {"bug", bug},
                        {"seed", seed},
                        {"invariant", s.invariant},
                        {"violation", s.failure},
                        {"original", {{"scale", tidal::cluster::ScaleString(s.original_scale)},
                                      {"draws", s.original_length}, {"nonzero_draws", s.original_nonzero},
                                      {"events", s.original_events}, {"faults", s.original_faults}}},
                        {"shrunk", {{"scale", tidal::cluster::ScaleString(s.scale)},
                                    {"draws", s.shrunk_length}, {"nonzero_draws", s.shrunk_nonzero},
                                    {"events", s.shrunk_events}, {"faults", s.shrunk_faults}}},
                        {"clean_passes", found->clean_passes},
                        {"runs", s.runs},
                        {"budget_exhausted", s.budget_exhausted},
                        {"wall_seconds", wall}};
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::printf("tidal-sim shrink: %s seed %" PRIu64 " breaks \"%s\"\n", workload.c_str(), seed,
              s.invariant.c_str());
  std::printf("  %-16s %s\n  %-16s %s\n", "original scale",
              tidal::cluster::ScaleString(s.original_scale).c_str(), "shrunk scale",
              tidal::cluster::ScaleString(s.scale).c_str());
  std::printf("  %-16s %12s %12s\n", "", "original", "shrunk");
  std::printf("  %-16s %12zu %12zu\n", "tape draws", s.original_length, s.shrunk_length);
  std::printf("  %-16s %12zu %12zu\n", "non-zero draws", s.original_nonzero, s.shrunk_nonzero);
  std::printf("  %-16s %12" PRIu64 " %12" PRIu64 "\n", "trace events", s.original_events,
              s.shrunk_events);
  std::printf("  %-16s %12" PRIu64 " %12" PRIu64 "\n", "faults", s.original_faults,
              s.shrunk_faults);
  std::printf("  %" PRIu64 " runs in %.2f s%s\n  shrunk violation: %s\n", s.runs, wall,
              s.budget_exhausted ? " (budget spent)" : "", s.failure.c_str());
  if (!bug.empty()) {
    std::printf("  without the bug the shrunk run %s\n", found->clean_passes ? "passes" : "FAILS");
  }
  if (vm.count("out")) {
    std::printf("  regression test written to %s (TEST ShrunkRegression.%s*)\n",
                vm["out"].as<std::string>().c_str(), name.c_str());
  }
  return 0;
}

// tidal-sim zoo: every planted bug against the campaign that should catch it.
int Zoo(const po::variables_map& vm) {
  const std::optional<tidal::tools::SeedRange> seeds = tidal::tools::SelectedSeeds(vm, "tidal-sim");
  if (!seeds) return 2;
  const bool json = vm.count("json") != 0;
  tidal::cluster::ZooOptions zo;
  zo.first_seed = seeds->first;
  zo.max_seeds = seeds->count();
  zo.shrink = vm.count("no-shrink") == 0;
  zo.shrink_runs = vm["max-runs"].as<uint64_t>();
  zo.shrink_seconds = vm["shrink-seconds"].as<double>();
  if (vm.count("bug")) zo.only = vm["bug"].as<std::string>();
  double last_print = 0;
  zo.progress = [&](const std::string& bug, uint64_t tried) {
    if (json || WallSeconds() - last_print < 0.25) return;
    last_print = WallSeconds();
    std::fprintf(stderr, "\r  %-34s seed %" PRIu64 "/%" PRIu64 "   ", bug.c_str(), tried + 1,
                 zo.max_seeds);
  };
  std::vector<tidal::cluster::ZooEntry> zoo = tidal::cluster::RunZoo(zo);
  if (!json) std::fprintf(stderr, "\r%80s\r", "");
  size_t caught = 0, clean = 0;
  std::vector<uint64_t> shrunk_events, shrunk_faults;
  double slowest_shrink = 0;
  for (const auto& e : zoo) {
    caught += e.caught;
    clean += e.caught && e.clean_seed_passes;
    if (e.shrunk) {
      shrunk_events.push_back(e.shrunk_events);
      shrunk_faults.push_back(e.shrunk_faults);
      slowest_shrink = std::max(slowest_shrink, e.shrink_seconds);
    }
  }
  // The ordinary median: the middle value, or the mean of the two middle values of an even
  // count.
  auto median = [](std::vector<uint64_t> v) -> double {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const size_t h = v.size() / 2;
    return v.size() % 2 == 1 ? static_cast<double>(v[h])
                             : (static_cast<double>(v[h - 1]) + static_cast<double>(v[h])) / 2;
  };
  const uint64_t most_faults =
      shrunk_faults.empty() ? 0 : *std::max_element(shrunk_faults.begin(), shrunk_faults.end());
  size_t shrunk_count = shrunk_events.size();
  if (json) {
    nlohmann::json bugs = nlohmann::json::array();
    for (const auto& e : zoo) {
      nlohmann::json b = {{"name", e.bug.name},
                          {"layer", e.bug.layer},
                          {"workload", e.bug.workload},
                          {"field_report", e.bug.field_report},
                          {"caught", e.caught},
                          {"seeds_needed", e.seeds_needed},
                          {"seconds_to_failure", e.seconds_to_failure},
                          {"failure", e.failure}};
      if (e.caught) {
        b["seed"] = e.seed;
        b["clean_seed_passes"] = e.clean_seed_passes;
      }
      if (e.shrunk) {
        b["shrunk_events"] = e.shrunk_events;
        b["shrunk_faults"] = e.shrunk_faults;
        b["original_events"] = e.original_events;
        b["original_faults"] = e.original_faults;
        b["shrink_seconds"] = e.shrink_seconds;
        b["shrink_runs"] = e.shrink_runs;
        b["shrink_budget_exhausted"] = e.shrink_budget_exhausted;
        b["shrunk_scale"] = e.shrunk_scale;
      } else if (!e.not_shrunk_because.empty()) {
        b["not_shrunk_because"] = e.not_shrunk_because;
      }
      bugs.push_back(b);
    }
    std::cout << nlohmann::json{{"bugs", bugs},
                                {"caught", caught},
                                {"total", zoo.size()},
                                {"shrunk", shrunk_count},
                                {"median_shrunk_events", median(shrunk_events)},
                                {"median_shrunk_faults", median(shrunk_faults)},
                                {"max_shrunk_faults", most_faults},
                                {"slowest_shrink_seconds", slowest_shrink}}
                     .dump(2)
              << "\n";
  } else {
    std::printf("tidal-sim zoo: %zu planted bugs, seeds %s each\n", zoo.size(),
                tidal::tools::ToString(*seeds).c_str());
    std::printf("  %-32s %-12s %-7s %-6s %6s %8s %6s %14s %8s\n", "bug", "layer", "field",
                "caught", "seeds", "time s", "clean", "shrunk events", "shrink s");
    for (const auto& e : zoo) {
      std::string shrunk = e.shrunk ? std::to_string(e.shrunk_events) + " (" +
                                          std::to_string(e.shrunk_faults) + "f)"
                                    : "-";
      std::printf("  %-32s %-12s %-7s %-6s %6" PRIu64 " %8.2f %6s %14s %8.1f\n", e.bug.name.c_str(),
                  e.bug.layer.c_str(), e.bug.field_report.empty() ? "-" : e.bug.field_report.c_str(),
                  e.caught ? "yes" : "NO", e.seeds_needed, e.seconds_to_failure,
                  e.caught ? (e.clean_seed_passes ? "yes" : "NO") : "-", shrunk.c_str(),
                  e.shrink_seconds);
    }
    std::printf("shrunk %zu: median %g events, %g faults (at most %" PRIu64
                "); slowest shrink %.1f s\n",
                shrunk_count, median(shrunk_events), median(shrunk_faults), most_faults,
                slowest_shrink);
    for (const auto& e : zoo) {
      if (e.caught) std::printf("  %s: %s\n", e.bug.name.c_str(), e.failure.c_str());
    }
    std::printf("caught %zu of %zu (the failing seed passes without the bug: %zu)\n", caught,
                zoo.size(), clean);
  }
  return caught == zoo.size() && clean == caught ? 0 : 1;
}
#endif

int Run(const po::variables_map& vm) {
  std::string script_path;
  std::optional<TransferWorkloadOptions> parsed = WorkloadOptions(vm, &script_path);
  if (!parsed) return 2;
  TransferWorkloadOptions o = *parsed;
  const bool json = vm.count("json") != 0;
  const std::optional<tidal::tools::SeedRange> seeds = tidal::tools::SelectedSeeds(vm, "tidal-sim");
  if (!seeds) return 2;
  const uint64_t first = seeds->first, last = seeds->last;
  const std::string trace_out = vm.count("trace-out") ? vm["trace-out"].as<std::string>() : "";
  const std::string chrome_out =
      vm.count("chrome-trace") ? vm["chrome-trace"].as<std::string>() : "";
  const uint64_t count = seeds->count();
  if (count > 1 && (!trace_out.empty() || !chrome_out.empty())) {
    std::fprintf(stderr, "tidal-sim: --trace-out and --chrome-trace take a single --seed\n");
    return 2;
  }
  o.trace_lines = !trace_out.empty() || !chrome_out.empty();

  std::map<std::string, uint64_t> faults, failures;
  std::set<uint64_t> digests;
  std::vector<uint64_t> failed_seeds;
  uint64_t passed = 0, requests = 0, completed = 0, failed = 0, timed_out = 0, crashed = 0;
  nlohmann::json per_seed = nlohmann::json::array();
  const double start = WallSeconds();
  double last_progress = start;
  for (uint64_t seed = first; seed <= last; ++seed) {
    o.seed = seed;
    o.replay_command = ReplayCommand(o, script_path);
    auto result = tidal::sim::RunTransferWorkload(o);
    if (!result.ok()) {
      std::fprintf(stderr, "tidal-sim: %s\n", result.status().ToString().c_str());
      return 2;
    }
    const TransferWorkloadResult& r = *result;
    digests.insert(r.digest);
    passed += r.passed;
    if (!r.passed) failed_seeds.push_back(seed);
    requests += r.requests;
    completed += r.completed;
    failed += r.failed;
    timed_out += r.timed_out;
    crashed += r.crashed_nodes;
    for (const auto& [k, v] : r.faults_injected) faults[k] += v;
    for (const auto& [k, v] : r.failures_by_code) failures[k] += v;
    if (count == 1) {
      if (!json) PrintOne(o, r, o.replay_command);
      if (Status s = WriteTraces(r, trace_out, chrome_out); !s.ok()) {
        std::fprintf(stderr, "tidal-sim: %s\n", s.ToString().c_str());
        return 2;
      }
      if (json) std::cout << ResultJson(o, r, o.replay_command).dump(2) << "\n";
      return r.passed ? 0 : 1;
    }
    if (!r.passed) {
      if (!json) PrintOne(o, r, o.replay_command);
      per_seed.push_back(ResultJson(o, r, o.replay_command));
    }
    const double now = WallSeconds();
    if (now - last_progress >= 1.0 || seed == last) {
      last_progress = now;
      std::fprintf(stderr, "\r  seeds %" PRIu64 "/%" PRIu64 "  pass %" PRIu64 "  fail %zu  %.0f seeds/s ",
                   seed - first + 1, count, passed, failed_seeds.size(),
                   (seed - first + 1) / std::max(now - start, 1e-9));
      if (seed == last) std::fprintf(stderr, "\n");
    }
  }
  const double wall = WallSeconds() - start;
  if (json) {
    nlohmann::json j = {{"workload", "transfer"}, {"nodes", o.nodes}, {"ops_per_node", o.ops_per_node},
                        {"faults", o.fault_mix}, {"first_seed", first}, {"last_seed", last},
                        {"seeds", count}, {"passed", passed}, {"failed", failed_seeds.size()},
                        {"failed_seeds", failed_seeds}, {"distinct_digests", digests.size()},
                        {"requests", requests}, {"completed", completed},
                        {"failed_requests", failed}, {"timed_out", timed_out},
                        {"crashed_nodes", crashed}, {"faults_injected", faults},
                        {"failures_by_code", failures}, {"wall_seconds", wall},
                        {"seeds_per_second", count / std::max(wall, 1e-9)},
                        {"failures", per_seed}};
    std::cout << j.dump(2) << "\n";
  } else {
    std::printf("\ntidal-sim campaign: workload transfer, %zu nodes, %zu batches per node, faults '%s'\n",
                o.nodes, o.ops_per_node, o.fault_mix.c_str());
    std::printf("  %-22s %" PRIu64 " (%" PRIu64 "..%" PRIu64 ")\n", "seeds", count, first, last);
    std::printf("  %-22s %" PRIu64 "\n", "passed", passed);
    std::printf("  %-22s %zu\n", "failed", failed_seeds.size());
    std::printf("  %-22s %zu of %" PRIu64 "\n", "distinct digests", digests.size(), count);
    std::printf("  %-22s %" PRIu64 " (completed %" PRIu64 ", failed %" PRIu64 ", timed out %" PRIu64 ")\n",
                "requests", requests, completed, failed, timed_out);
    std::printf("  %-22s %" PRIu64 "\n", "nodes crashed", crashed);
    for (const auto& [k, v] : faults) std::printf("  fault %-16s %" PRIu64 "\n", k.c_str(), v);
    for (const auto& [k, v] : failures) std::printf("  failure %-14s %" PRIu64 "\n", k.c_str(), v);
    std::printf("  %-22s %.2f s (%.1f seeds/s)\n", "wall time", wall, count / std::max(wall, 1e-9));
    std::printf("verdict: %s\n", failed_seeds.empty() ? "PASS" : "FAIL");
  }
  return failed_seeds.empty() ? 0 : 1;
}

int Replay(const std::string& path, const po::variables_map& vm) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "tidal-sim: cannot read trace '%s'\n", path.c_str());
    return 2;
  }
  std::string header, line, footer_line;
  std::getline(in, header);
  std::vector<std::string> recorded;
  while (std::getline(in, line)) {
    if (line.find("\"footer\":true") != std::string::npos) {
      footer_line = line;
    } else {
      recorded.push_back(line);
    }
  }
  auto parsed = tidal::sim::ParseTransferWorkloadHeader(header);
  if (!parsed.ok()) {
    std::fprintf(stderr, "tidal-sim: %s: %s\n", path.c_str(), parsed.status().ToString().c_str());
    return 2;
  }
  nlohmann::json footer = nlohmann::json::parse(footer_line, nullptr, false);
  if (footer.is_discarded() || !footer.contains("digest") || !footer["digest"].is_string() ||
      !footer.contains("verdict")) {
    std::fprintf(stderr, "tidal-sim: %s: the footer (digest, verdict) is missing or corrupt\n",
                 path.c_str());
    return 2;
  }
  TransferWorkloadOptions o = *parsed;
  o.trace_lines = true;
  o.replay_command = "tidal-sim replay " + path;
  auto result = tidal::sim::RunTransferWorkload(o);
  if (!result.ok()) {
    std::fprintf(stderr, "tidal-sim: %s\n", result.status().ToString().c_str());
    return 2;
  }
  const TransferWorkloadResult& r = *result;
  const std::string want_digest = footer["digest"].get<std::string>();
  const std::string want_verdict = footer["verdict"].get<std::string>();
  const bool same_digest = Hex(r.digest) == want_digest;
  const bool same_lines = r.trace == recorded;
  const std::string verdict = r.passed ? "PASS" : "FAIL";
  size_t first_diff = 0;
  while (first_diff < std::min(r.trace.size(), recorded.size()) &&
         r.trace[first_diff] == recorded[first_diff]) {
    ++first_diff;
  }
  if (vm.count("chrome-trace")) {
    if (Status s = WriteTraces(r, "", vm["chrome-trace"].as<std::string>()); !s.ok()) {
      std::fprintf(stderr, "tidal-sim: %s\n", s.ToString().c_str());
      return 2;
    }
  }
  const bool reproduced = same_digest && same_lines && verdict == want_verdict;
  if (vm.count("json")) {
    std::cout << nlohmann::json({{"trace", path}, {"seed", o.seed}, {"recorded_digest", want_digest},
                                 {"replayed_digest", Hex(r.digest)}, {"recorded_verdict", want_verdict},
                                 {"replayed_verdict", verdict}, {"identical_events", same_lines},
                                 {"reproduced", reproduced}, {"violations", r.violations}})
                     .dump(2)
              << "\n";
  } else {
    std::printf("replay %s: seed %" PRIu64 "\n", path.c_str(), o.seed);
    std::printf("  digest  recorded %s  replayed %s  %s\n", want_digest.c_str(), Hex(r.digest).c_str(),
                same_digest ? "same" : "DIFFERENT");
    std::printf("  events  %zu recorded, %zu replayed, %s\n", recorded.size(), r.trace.size(),
                same_lines ? "byte-identical"
                           : ("first difference at event " + std::to_string(first_diff)).c_str());
    std::printf("  verdict recorded %s  replayed %s\n", want_verdict.c_str(), verdict.c_str());
    for (const std::string& v : r.violations) std::printf("  VIOLATION: %s\n", v.c_str());
    std::printf("%s\n", reproduced ? "reproduced: the run replays bit for bit"
                                   : "NOT reproduced: the replay diverged");
  }
  if (!reproduced) return 3;
  return r.passed ? 0 : 1;
}


// ---- explore: every schedule of a small world (sim/include/tidal/sim/explore.h) ----------
#ifdef TIDAL_SIM_ZOO
void AddExploreOptions(po::options_description& d) {
  d.add_options()
      ("world", po::value<std::string>()->default_value("transport"),
       "explore: the small world (transport, allreduce, allgather, broadcast, store)")
      ("no-placements", "explore: only the fault placement 'none'")
      ("ranks", po::value<int>()->default_value(3), "explore: ranks of a collectives world (2, 3)")
      ("stagger-ns", po::value<uint64_t>()->default_value(0),
       "explore: collectives: rank r enters r * this after rank 0")
      ("max-schedules", po::value<uint64_t>()->default_value(200'000),
       "explore: bound on runs (schedules + pruned)")
      ("max-choices", po::value<uint64_t>()->default_value(400),
       "explore: bound on choice points in one run")
      ("max-domain", po::value<uint64_t>()->default_value(8),
       "explore: draws with a bound up to this are enumerated in full")
      ("delay-values", po::value<uint64_t>()->default_value(2),
       "explore: values of a larger draw (a delay): 1 = {0}, 2 = {0, max}, k evenly spread")
      ("max-delays", po::value<uint64_t>(),
       "explore: delay bound: at most this many timing draws of a run (a chance, a delay) take a "
       "value other than their first; the tree is every schedule with at most that many late events")
      ("max-seconds", po::value<double>()->default_value(0), "explore: time budget (0: none)")
      ("no-state-hashing", "explore: no reduction (every schedule of the tree runs)")
      ("exact-time", "explore: state hashing without time abstraction (histories keep when each event ran)")
      ("halt-pruned", "explore: a run that meets a known state stops there (faster; its verdict is not counted)")
      ("check-hash", "explore: replay, for every pruned run, the schedule that met its state first and report "
                     "any whose outcome differs (a hash conflict: states hashed equal, futures different)")
      ("replay-choices", po::value<std::string>(),
       "explore: run only the schedule these choices name (as a failure prints them)");
}

std::string ExploreFlags(const po::variables_map& vm) {
  std::ostringstream c;
  c << "--world " << vm["world"].as<std::string>();
  if (vm["world"].as<std::string>() == "transport") {
    c << " --ops " << (vm["ops"].defaulted() ? 4 : vm["ops"].as<size_t>());
  }
  if (vm["world"].as<std::string>() != "transport" && vm["world"].as<std::string>() != "store") {
    c << " --ranks " << vm["ranks"].as<int>() << " --stagger-ns " << vm["stagger-ns"].as<uint64_t>();
  }
  if (vm.count("no-placements")) c << " --no-placements";
  if (vm.count("plant-bug")) c << " --plant-bug " << vm["plant-bug"].as<std::string>();
  c << " --max-choices " << vm["max-choices"].as<uint64_t>() << " --max-domain "
    << vm["max-domain"].as<uint64_t>() << " --delay-values " << vm["delay-values"].as<uint64_t>();
  if (vm.count("max-delays")) c << " --max-delays " << vm["max-delays"].as<uint64_t>();
  return c.str();
}

int Explore(const po::variables_map& vm) {
  tidal::cluster::ExploreWorldOptions wo;
  wo.world = vm["world"].as<std::string>();
  wo.ops = vm["ops"].defaulted() ? 4 : vm["ops"].as<size_t>();
  wo.placements = !vm.count("no-placements");
  wo.ranks = vm["ranks"].as<int>();
  wo.stagger_ns = vm["stagger-ns"].as<uint64_t>();
  if (vm.count("plant-bug")) wo.planted_bug = vm["plant-bug"].as<std::string>();
  auto world = tidal::cluster::MakeExploreWorld(wo);
  if (!world.ok()) {
    std::fprintf(stderr, "tidal-sim explore: %s\n", world.status().message().c_str());
    return 2;
  }
  tidal::sim::ExploreBounds b;
  b.max_schedules = vm["max-schedules"].as<uint64_t>();
  b.max_choices = vm["max-choices"].as<uint64_t>();
  b.max_domain = vm["max-domain"].as<uint64_t>();
  b.delay_values = vm["delay-values"].as<uint64_t>();
  if (vm.count("max-delays")) b.max_delays = vm["max-delays"].as<uint64_t>();
  b.max_seconds = vm["max-seconds"].as<double>();
  b.state_hashing = !vm.count("no-state-hashing");
  b.abstract_time = !vm.count("exact-time");
  b.halt_pruned = vm.count("halt-pruned") != 0;
  b.check_hash = vm.count("check-hash") != 0;
  if (b.check_hash && (b.halt_pruned || !b.state_hashing)) {
    std::fprintf(stderr, "tidal-sim explore: --check-hash checks state hashing: it takes neither "
                         "--halt-pruned nor --no-state-hashing\n");
    return 2;
  }
  if (b.max_domain < 2 || b.delay_values < 1 || b.max_schedules < 1) {
    std::fprintf(stderr, "tidal-sim explore: --max-domain must be at least 2, --delay-values "
                         "and --max-schedules at least 1\n");
    return 2;
  }
  tidal::sim::Explorer explorer(b);
  const std::string flags = ExploreFlags(vm);
  const bool json = vm.count("json") != 0;
  if (vm.count("replay-choices")) {
    const std::string choices = vm["replay-choices"].as<std::string>();
    auto v = explorer.Replay(*world, choices);
    if (!v.ok()) {
      std::fprintf(stderr, "tidal-sim explore: %s\n", v.status().message().c_str());
      return 2;
    }
    if (json) {
      std::cout << nlohmann::json{{"world", wo.world}, {"choices", choices},
                                  {"verdict", v->passed ? "PASS" : "FAIL"}, {"failure", v->failure}}
                       .dump(2)
                << "\n";
    } else {
      std::printf("%s schedule %s: %s%s%s\n", wo.world.c_str(), choices.c_str(),
                  v->passed ? "PASS" : "FAIL", v->passed ? "" : ": ", v->failure.c_str());
    }
    return v->passed ? 0 : 1;
  }
  const bool tty = !json && isatty(fileno(stderr));
  double last_draw = -1;
  auto progress = [&](const tidal::sim::ExploreProgress& p) {
    if (!tty || p.seconds - last_draw < 0.2) return;
    last_draw = p.seconds;
    std::fprintf(stderr, "\r  %s: %" PRIu64 " schedules, %" PRIu64 " pruned, %" PRIu64
                         " failures, %" PRIu64 " states, branching at depth %" PRIu64 ", %.1f s   ",
                 wo.world.c_str(), p.schedules, p.pruned, p.failures, p.states, p.frontier_depth,
                 p.seconds);
  };
  const tidal::sim::ExploreResult r = explorer.Run(*world, progress);
  if (tty) std::fprintf(stderr, "\r%*s\r", 100, "");
  std::vector<std::string> replays;
  for (const auto& f : r.first_failures) {
    replays.push_back("tidal-sim explore " + flags + " --replay-choices " + f.choices);
  }
  if (json) {
    nlohmann::json fails = nlohmann::json::array();
    for (size_t i = 0; i < r.first_failures.size(); ++i) {
      fails.push_back({{"choices", r.first_failures[i].choices},
                       {"failure", r.first_failures[i].failure},
                       {"replay", replays[i]}});
    }
    nlohmann::json conflicts = nlohmann::json::array();
    for (const auto& c : r.hash_conflicts) {
      conflicts.push_back({{"state", c.state},
                           {"first", c.first},
                           {"pruned", c.pruned},
                           {"first_outcome", c.first_outcome},
                           {"pruned_outcome", c.pruned_outcome}});
    }
    std::cout << nlohmann::json{{"world", wo.world},
                                {"schedules", r.schedules},
                                {"pruned", r.pruned},
                                {"failures", r.failures},
                                {"states", r.states},
                                {"outcomes", r.outcomes.size()},
                                {"max_choices_seen", r.max_choices_seen},
                                {"complete", r.complete},
                                {"incomplete_because", r.incomplete_because},
                                {"seconds", r.seconds},
                                {"domains", r.domains},
                                {"hash_conflicts", r.hash_conflicts_seen},
                                {"first_hash_conflicts", conflicts},
                                {"first_failures", fails}}
                     .dump(2)
              << "\n";
  } else {
    std::printf("%-10s %10s %10s %9s %9s %9s\n", "world", "schedules", "pruned", "failures",
                "complete", "seconds");
    std::printf("%-10s %10" PRIu64 " %10" PRIu64 " %9" PRIu64 " %9s %9.2f\n", wo.world.c_str(),
                r.schedules, r.pruned, r.failures, r.complete ? "yes" : "NO", r.seconds);
    std::printf("domains: %s\n", r.domains.c_str());
    std::printf("%zu distinct outcomes, %" PRIu64 " states hashed, at most %" PRIu64
                " choice points in a run\n",
                r.outcomes.size(), r.states, r.max_choices_seen);
    if (r.complete) {
      std::printf("%" PRIu64 " schedules, all explored\n", r.schedules);
    } else {
      std::printf("exploration NOT complete: %s\n", r.incomplete_because.c_str());
    }
    for (size_t i = 0; i < r.first_failures.size(); ++i) {
      std::printf("FAIL %s\n  replay: %s\n", r.first_failures[i].failure.c_str(), replays[i].c_str());
    }
    if (b.check_hash) {
      std::printf("hash check: %" PRIu64 " conflicts (pruned runs whose outcome differs from the "
                  "future they were merged into)\n", r.hash_conflicts_seen);
    }
    for (const auto& c : r.hash_conflicts) {
      std::printf("HASH CONFLICT at state %016" PRIx64 ": outcome %016" PRIx64 " vs %016" PRIx64
                  "\n  first:  tidal-sim explore %s --replay-choices %s\n  pruned: tidal-sim "
                  "explore %s --replay-choices %s\n",
                  c.state, c.first_outcome, c.pruned_outcome, flags.c_str(), c.first.c_str(),
                  flags.c_str(), c.pruned.c_str());
    }
  }
  if (r.hash_conflicts_seen > 0) return 1;
  return r.failures > 0 ? 1 : (r.complete ? 0 : 3);
}
#endif
}  // namespace

int main(int argc, char** argv) {
  po::options_description general("tidal-sim: deterministic simulated-cluster campaigns\n\n"
                                  "Usage:\n  tidal-sim run [options]\n  tidal-sim replay TRACE.jsonl "
                                  "[--chrome-trace FILE] [--json]\n  tidal-sim shrink --seed N "
                                  "[--plant-bug B] [--out FILE.cc] [--json]\n  tidal-sim zoo [--seeds 1..200] [--bug B] "
                                  "[--no-shrink] [--json]\n  tidal-sim explore --world W [bounds] "
                                  "[--plant-bug B] [--replay-choices C] [--json]\n  tidal-sim import "
                                  "TRACE.jsonl | --scenario FILE [--shrink] [--out FILE] "
                                  "[--json]\n\nOptions");
  general.add_options()
      ("help,h", "print this help")
      ("workload", po::value<std::string>()->default_value("transfer"),
       "workload to run (transfer: random READ/WRITE batches checked byte for byte); shrink "
       "also takes store, collectives, mixed, store-field, p2p, peer-loss (with --plant-bug "
       "any zoo bug)")
      ("nodes,n", po::value<size_t>()->default_value(4), "simulated nodes")
      ("ops", po::value<size_t>()->default_value(200), "batches each node submits")
      ("faults", po::value<std::string>()->default_value("all"),
       "fault mix: none, transfer, messages, node, all, or a comma list of kinds")
      ("fault-script", po::value<std::string>(), "file of scripted fault rules")
      ("plant-bug", po::value<std::string>(),
       "plant a transport bug to see the checker catch it: short_as_complete, "
       "ignore_remote_key, ignore_window, write_off_by_one, complete_before_visible")
      ("trace-out", po::value<std::string>(), "write the JSON-lines trace (single seed)")
      ("chrome-trace", po::value<std::string>(), "write a Chrome/Perfetto trace (single seed)")
      ("engine-bug", po::value<std::string>(),
       "plant a transfer-engine bug (the bug zoo): engine_no_descriptor_refresh, "
       "engine_close_drops_every_holder, engine_prefix_overcount")
      ("out", po::value<std::string>(), "shrink: write the shrunk run as a gtest file")
      ("max-runs", po::value<uint64_t>()->default_value(4000), "shrink: budget of runs")
      ("shrink-seconds", po::value<double>()->default_value(50),
       "shrink (other workloads), zoo: wall-time budget of one shrink (0: none)")
      ("bug", po::value<std::string>(), "zoo: run only this planted bug")
      ("no-shrink", "zoo: do not shrink the failing runs")
      ("json", "print one JSON document instead of the table");
  AddImportOptions(general);
  tidal::tools::AddSeedOptions(general, {1, 1}, /*single=*/true);
  tidal::tools::AddSchedulingOptions(general);
#ifdef TIDAL_SIM_ZOO
  AddExploreOptions(general);
#endif
  po::options_description hidden;
  hidden.add_options()("command", po::value<std::string>())("arg", po::value<std::string>());
  po::positional_options_description pos;
  pos.add("command", 1).add("arg", 1);
  po::options_description all;
  all.add(general).add(hidden);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "tidal-sim: %s (see --help)\n", e.what());
    return 2;
  }
  if (vm.count("help") || !vm.count("command")) {
    std::cout << general << "\n";
    return vm.count("help") ? 0 : 2;
  }
  const std::string command = vm["command"].as<std::string>();
  const std::string workload = vm["workload"].as<std::string>();
  if (workload != "transfer") {
#ifdef TIDAL_SIM_ZOO
    if (command == "shrink") return ShrinkWorkload(vm, workload);
    std::fprintf(stderr, "tidal-sim: workload '%s' is for shrink only (run takes transfer)\n",
                 workload.c_str());
#else
    std::fprintf(stderr, "tidal-sim: unknown workload '%s' (known: transfer)\n",
                 workload.c_str());
#endif
    return 2;
  }
  // --mode: every world of this run (run, shrink, zoo) schedules this way.
  const std::optional<tidal::sim::SchedulingOptions> scheduling =
      tidal::tools::SchedulingFromFlags(vm, "tidal-sim");
  if (!scheduling) return 2;
  if (command == "shrink" && scheduling->mode != tidal::sim::Scheduling::kSwarm) {
    // The regression test it writes replays its tape under the default (swarm) scheduling.
    std::fprintf(stderr, "tidal-sim: shrink runs under --mode swarm only\n");
    return 2;
  }
  tidal::sim::ScopedScheduling scoped_scheduling(*scheduling);
  if (command == "run") return Run(vm);
  if (command == "shrink") return Shrink(vm);
#ifdef TIDAL_SIM_ZOO
  if (command == "zoo") return Zoo(vm);
  if (command == "explore") return Explore(vm);
#endif
  if (command == "import") return Import(vm);
  if (command == "replay") {
    if (!vm.count("arg")) {
      std::fprintf(stderr, "tidal-sim: replay needs a trace file\n");
      return 2;
    }
    return Replay(vm["arg"].as<std::string>(), vm);
  }
  std::fprintf(stderr, "tidal-sim: unknown command '%s' (run, replay, shrink, zoo, explore, import)\n", command.c_str());
  return 2;
}
