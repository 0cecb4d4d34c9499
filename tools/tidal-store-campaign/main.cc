// tidal-store-campaign: runs the store nemesis campaign (store_campaign.h) over many
// seeds, prints progress and seeds per second, and for every failing seed its banner and
// the command that replays it. Wall-clock time is read here, in the outermost program,
// only to report speed; the runs themselves are simulated and deterministic.
//
// At the end it prints the (path × fault) reach table summed over the seeds and the
// reachability marks of the store and engine never reached, and fails (exit 1) when a
// required pair was never reached (store_campaign.h says which are required).
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>

#include "tidal/cluster/store_campaign.h"
#include "tidal/reach.h"

#include "../common/cli.h"
#include "../common/scheduling_cli.h"

namespace po = boost::program_options;
using CampaignConfig = tidal::cluster::StoreCampaignConfig;
using CampaignResult = tidal::cluster::StoreCampaignResult;

int main(int argc, char** argv) {
  CampaignConfig cfg;
  po::options_description desc(
      "tidal-store-campaign: store nemesis campaign on the simulator\n\n"
      "  tidal-store-campaign --seeds 1..2000 --mix all\n"
      "  tidal-store-campaign --seed 42          (one seed, described: the replay)\n\nOptions");
  desc.add_options()("help,h", "show this help");
  tidal::tools::AddSeedOptions(desc, {1, 2000}, /*single=*/true);
  tidal::tools::AddSchedulingOptions(desc);
  desc.add_options()(
      "mix", po::value(&cfg.mix)->default_value("all"),
      "swarm fault mix: none, transfer, messages, node, all, or a list of kinds")(
      "ops", po::value(&cfg.ops_per_client)->default_value(24), "operations per client")(
      "min-clients", po::value(&cfg.min_clients)->default_value(4), "fewest clients")(
      "max-clients", po::value(&cfg.max_clients)->default_value(8), "most clients")(
      "no-scenarios", "skip the targeted scenarios (their required pairs then fail the run)")(
      "strict-deadlines", "fail a seed whose lease-scenario get outlived its timeout (the "
                          "default)")(
      "lenient-deadlines", "count such seeds instead of failing them")(
      "no-master-restarts", "never crash and restart the master")(
      "cached-gets", "clients cache replica lists under their leases "
                     "(StoreClientOptions::cache_leased_replicas)")(
      "put-reservations", po::value(&cfg.put_reservations)->default_value(0),
      "clients put values of at most 64 KiB through this many put reservations at a time "
      "(StoreClientOptions::put_reservations; 0: off)")(
      "verbose,v", "print every seed's summary")("json", "print one JSON summary line at the end");
  po::variables_map vm;
  if (auto exit_code = tidal::tools::ParseCommandLine(argc, argv, desc, &vm)) return *exit_code;
  if (cfg.min_clients < 3 || cfg.max_clients < cfg.min_clients) {
    std::cerr << "need 3 <= min-clients <= max-clients\n";
    return 2;
  }
  const std::optional<tidal::tools::SeedRange> range =
      tidal::tools::SelectedSeeds(vm, "tidal-store-campaign");
  if (!range) return 2;
  const auto scheduling = tidal::tools::SchedulingFromFlags(vm, "tidal-store-campaign");
  if (!scheduling) return 2;
  tidal::sim::ScopedScheduling scoped_scheduling(*scheduling);  // every seed's world
  const uint64_t start = range->first, seeds = range->count();
  const bool verbose = vm.count("verbose") != 0 || vm.count("seed") != 0;
  auto wall = [] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  };
  cfg.scenarios = vm.count("no-scenarios") == 0;
  cfg.strict_scenario_deadlines = vm.count("lenient-deadlines") == 0;
  if (vm.count("strict-deadlines") != 0 && !cfg.strict_scenario_deadlines) {
    std::cerr << "tidal-store-campaign: --strict-deadlines and --lenient-deadlines conflict\n";
    return 2;
  }
  uint64_t overruns = 0;
  cfg.master_restarts = vm.count("no-master-restarts") == 0;
  cfg.cached_gets = vm.count("cached-gets") != 0;
  tidal::cluster::ReachTable reach = tidal::cluster::StoreReachLayout();
  const double t0 = wall();
  uint64_t failed = 0, ops = 0, gets = 0, durable = 0, crashed = 0, expired = 0, restarts = 0;
  uint64_t cached = 0, reserved = 0, fallbacks = 0, requests = 0, kept = 0;
  for (uint64_t i = 0; i < seeds; ++i) {  // by index: a range may end at UINT64_MAX
    const uint64_t seed = start + i;
    CampaignResult r = tidal::cluster::RunStoreCampaign(seed, cfg);
    ops += r.ops;
    gets += r.gets_checked;
    durable += r.durable_checked;
    crashed += r.crashed;
    expired += r.lease_expired;
    cached += r.cached_gets;
    reserved += r.reserved_puts;
    fallbacks += r.reservation_fallbacks;
    requests += r.reservation_requests;
    kept += r.kept_reservations_used;
    restarts += r.master_restarts;
    reach.Merge(r.reach);
    overruns += r.scenario_overruns;
    if (r.scenario_overruns > 0 && !cfg.strict_scenario_deadlines) {
      std::printf("seed %llu: a lease-scenario get outlived its timeout (counted: "
                  "--lenient-deadlines)\n",
                  (unsigned long long)seed);
    }
    if (verbose) {
      std::printf(
          "seed %llu: %s clients=%zu crashed=%zu left=%zu ops=%llu ok=%llu gets_checked=%llu "
          "durable=%llu lease_expired=%llu short_lease=%llu virtual_ms=%.3f "
          "digest=%016llx\n",
          (unsigned long long)seed, r.ok ? "ok" : "FAIL", r.clients, r.crashed, r.left,
          (unsigned long long)r.ops, (unsigned long long)r.ops_ok,
          (unsigned long long)r.gets_checked, (unsigned long long)r.durable_checked,
          (unsigned long long)r.lease_expired, (unsigned long long)r.short_leases,
          r.virtual_ns / 1e6, (unsigned long long)r.digest);
    }
    if (!r.ok) {
      ++failed;
      std::printf("FAILED seed %llu: %s\n", (unsigned long long)seed, r.failure.c_str());
      std::string flags = tidal::tools::ReplayFlags(*scheduling);
      if (cfg.cached_gets) flags += " --cached-gets";
      if (cfg.put_reservations > 0) {
        flags += " --put-reservations " + std::to_string(cfg.put_reservations);
      }
      std::printf("replay: %s --seed %llu --mix %s%s\n", argv[0], (unsigned long long)seed,
                  cfg.mix.c_str(), flags.c_str());
    }
    const uint64_t done = seed - start + 1;
    if (!verbose && done % 200 == 0) {
      std::printf("  %llu/%llu seeds, %.1f seeds/s, %llu failed\n", (unsigned long long)done,
                  (unsigned long long)seeds, done / std::max(wall() - t0, 1e-9),
                  (unsigned long long)failed);
      std::fflush(stdout);
    }
  }
  const double secs = wall() - t0;
  std::printf(
      "store campaign: %llu seeds (%llu..%llu), mix %s: %llu failed; %llu ops, %llu "
      "gets checked, %llu durable puts read back, %llu clients crashed, %llu leases "
      "expired mid-read; %.2f s, %.1f seeds/s\n",
      (unsigned long long)seeds, (unsigned long long)start, (unsigned long long)(start + seeds - 1),
      cfg.mix.c_str(), (unsigned long long)failed, (unsigned long long)ops,
      (unsigned long long)gets, (unsigned long long)durable, (unsigned long long)crashed,
      (unsigned long long)expired, secs, seeds / std::max(secs, 1e-9));
  std::printf("master restarts: %llu\n", (unsigned long long)restarts);
  if (cfg.put_reservations > 0) {
    std::printf(
        "puts made by one commit: %llu; reservation requests: %llu; puts into a "
        "reservation kept from an earlier request: %llu; puts that fell back to two "
        "RPCs: %llu\n",
        (unsigned long long)reserved, (unsigned long long)requests, (unsigned long long)kept,
        (unsigned long long)fallbacks);
  }
  if (cfg.cached_gets) {
    std::printf("gets served from a cached replica list: %llu\n", (unsigned long long)cached);
  }
  std::printf("lease-scenario gets that outlived their timeout: %llu\n",
              (unsigned long long)overruns);
  std::printf("reach (calls under each fault, summed over the seeds; 0! = required, never):\n%s",
              reach.Text().c_str());
  std::printf("%s", tidal::reach::Report({"store.", "engine."}).c_str());
  // One seed is a replay: it reaches what its scenarios aim at, not the whole table.
  const std::string missing = vm.count("seed") != 0 ? "" : reach.MissingMessage("store");
  if (!missing.empty()) std::printf("FAILED %s\n", missing.c_str());
  if (vm.count("json")) {
    std::printf(
        "{\"seeds\":%llu,\"start\":%llu,\"mix\":\"%s\",\"failed\":%llu,\"ops\":%llu,"
        "\"gets_checked\":%llu,\"durable_checked\":%llu,\"wall_seconds\":%.3f,"
        "\"seeds_per_second\":%.2f,\"reach\":%s}\n",
        (unsigned long long)seeds, (unsigned long long)start, cfg.mix.c_str(),
        (unsigned long long)failed, (unsigned long long)ops, (unsigned long long)gets,
        (unsigned long long)durable, secs, seeds / std::max(secs, 1e-9), reach.Json().c_str());
  }
  return failed == 0 && missing.empty() ? 0 : 1;
}
