// tidal-mixed-campaign: runs the mixed campaign (tidal/cluster/mixed_campaign.h: store
// clients and process groups sharing every node's engine, started in random orders, with
// an occasional crash) over many seeds; prints progress and seeds per second, and on
// failure the seed, its digest and the command that replays it. Exit status 1 if any seed
// failed.
//
//   tidal-mixed-campaign --seeds 1..500 [--rounds 6] [--no-crashes] [--keep-going] [--json]
//   tidal-mixed-campaign --seed 42 --verbose          (one seed: the replay)
//   tidal-mixed-campaign --seeds 1..200 --nodes 8 --rounds 300 --virtual-seconds 60
//                        --live-objects 16              (long worlds: seeds per core-hour)
//
// The summary reports the CPU time the process used (getrusage: user + system) and the
// seeds per core-hour it implies, with the mean virtual time each world spanned.
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <iostream>

#include <sys/resource.h>

#include "tidal/cluster/mixed_campaign.h"

#include "../common/cli.h"
#include "../common/scheduling_cli.h"

namespace po = boost::program_options;

namespace {
double CpuSeconds() {  // user + system time of this process so far
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}
}  // namespace

int main(int argc, char** argv) {
  bool verbose = false, keep_going = false, no_crashes = false, json = false;
  uint32_t rounds = 6, nodes = 0, live_objects = 0;
  double virtual_seconds = 0;
  po::options_description desc(
      "tidal-mixed-campaign: store traffic and collectives on shared engines, random start-up\n"
      "orders, many seeds\n\n"
      "  tidal-mixed-campaign --seeds 1..500 --keep-going\n"
      "  tidal-mixed-campaign --seed 42 --verbose   (one seed: the replay)\n\nOptions");
  desc.add_options()("help,h", "show this help");
  tidal::tools::AddSeedOptions(desc, {1, 200}, /*single=*/true);
  tidal::tools::AddSchedulingOptions(desc);
  desc.add_options()("rounds", po::value(&rounds)->default_value(6),
                     "allreduce rounds per group (each with random store traffic)")(
      "nodes", po::value(&nodes)->default_value(0),
      "nodes per world, 3..64 (0: each seed picks 3..6)")(
      "virtual-seconds", po::value(&virtual_seconds)->default_value(0),
      "spread the rounds evenly over this much virtual time (0: back to back)")(
      "live-objects", po::value(&live_objects)->default_value(0),
      "each node keeps at most this many of its objects, removing the oldest (0: keep all)")(
      "no-crashes", po::bool_switch(&no_crashes), "never crash a node")(
      "verbose", po::bool_switch(&verbose), "print every seed's summary line")(
      "keep-going", po::bool_switch(&keep_going), "do not stop at the first failing seed")(
      "json", po::bool_switch(&json), "print the totals as one JSON object at the end");
  po::variables_map vm;
  if (auto exit_code = tidal::tools::ParseCommandLine(argc, argv, desc, &vm)) return *exit_code;
  const std::optional<tidal::tools::SeedRange> range =
      tidal::tools::SelectedSeeds(vm, "tidal-mixed-campaign");
  if (!range) return 2;
  const auto scheduling = tidal::tools::SchedulingFromFlags(vm, "tidal-mixed-campaign");
  if (!scheduling) return 2;
  tidal::sim::ScopedScheduling scoped_scheduling(*scheduling);  // every seed's world
  if (rounds == 0 || rounds > 100000) {
    std::fprintf(stderr, "tidal-mixed-campaign: --rounds %u is outside 1..100000\n", rounds);
    return 2;
  }
  if (nodes != 0 && (nodes < 3 || nodes > 64)) {
    std::fprintf(stderr, "tidal-mixed-campaign: --nodes %u is outside 3..64 (or 0)\n", nodes);
    return 2;
  }
  if (!(virtual_seconds >= 0 && virtual_seconds <= 86400)) {
    std::fprintf(stderr, "tidal-mixed-campaign: --virtual-seconds %g is outside 0..86400\n",
                 virtual_seconds);
    return 2;
  }
  tidal::cluster::MixedCampaignOptions options;
  options.verbose = verbose;
  options.rounds = rounds;
  options.crashes = !no_crashes;
  options.nodes = nodes;
  options.live_objects_per_node = live_objects;
  options.round_period_ns = static_cast<uint64_t>(virtual_seconds * 1e9 / rounds);
  const double cpu_start = CpuSeconds();
  using clock = std::chrono::steady_clock;  // wall time for the report only
  const auto start = clock::now();
  const uint64_t first = range->first, seeds = range->count();
  uint64_t failed = 0, done = 0, puts = 0, gets = 0, colls = 0, crashes = 0, removes = 0;
  uint64_t virtual_ns = 0;
  nlohmann::json failures = nlohmann::json::array();
  for (uint64_t i = 0; i < seeds; ++i) {  // by index: a range may end at UINT64_MAX
    const uint64_t seed = first + i;
    tidal::cluster::MixedSeedResult r = tidal::cluster::RunMixedCampaignSeed(seed, options);
    ++done;
    puts += r.puts;
    gets += r.gets;
    colls += r.collectives;
    crashes += r.crashes;
    removes += r.removes;
    virtual_ns += r.virtual_ns;
    if (verbose) {
      std::printf("%s; digest %016" PRIx64 ", %" PRIu64 " events\n", r.summary.c_str(), r.digest,
                  r.events);
    }
    if (!r.ok) {
      ++failed;
      failures.push_back({{"seed", seed}, {"digest", r.digest}, {"error", r.error}});
      std::fprintf(stderr, "\nFAILED seed %" PRIu64 ": %s\n", seed, r.error.c_str());
      if (!tidal::tools::ReplayFlags(*scheduling).empty()) {
        std::fprintf(stderr, "  (replay with%s)\n", tidal::tools::ReplayFlags(*scheduling).c_str());
      }
      if (!keep_going) break;
    }
    if (done % 20 == 0 || done == seeds) {
      const double wall = std::chrono::duration<double>(clock::now() - start).count();
      std::fprintf(stderr, "\r  seeds %" PRIu64 "/%" PRIu64 "  failed %" PRIu64 "  %.0f seeds/s ",
                   done, seeds, failed, done / std::max(wall, 1e-9));
    }
  }
  const double wall = std::chrono::duration<double>(clock::now() - start).count();
  const double cpu = CpuSeconds() - cpu_start;
  const double per_core_hour = done * 3600.0 / std::max(cpu, 1e-9);
  const double mean_virtual_s = done == 0 ? 0.0 : virtual_ns / 1e9 / static_cast<double>(done);
  std::printf("\nmixed campaign: %" PRIu64 " seeds (%" PRIu64 "..%" PRIu64
              ") in %.2f s, %.1f seeds/s; %" PRIu64 " puts, %" PRIu64 " gets, %" PRIu64
              " rank-allreduces checked, %" PRIu64 " crashes; %" PRIu64 " failing seeds\n",
              done, first, first + done - 1, wall, done / std::max(wall, 1e-9), puts, gets, colls,
              crashes, failed);
  std::printf("cpu %.2f s (user+sys) -> %.0f seeds per core-hour; %.2f virtual s per world, "
              "%" PRIu64 " removes\n",
              cpu, per_core_hour, mean_virtual_s, removes);
  if (json) {
    nlohmann::json j = {{"seeds", done},       {"first_seed", first}, {"wall_s", wall},
                        {"puts", puts},        {"gets", gets},        {"rank_allreduces", colls},
                        {"crashes", crashes},  {"failed", failed},    {"failures", failures},
                        {"cpu_s", cpu},        {"seeds_per_core_hour", per_core_hour},
                        {"mean_virtual_s", mean_virtual_s},           {"removes", removes},
                        {"nodes", nodes},      {"rounds", rounds}};
    std::cout << j.dump() << "\n";
  }
  return failed == 0 ? 0 : 1;
}
