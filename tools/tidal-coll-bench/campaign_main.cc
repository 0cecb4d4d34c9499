// tidal-coll-campaign: runs the collectives campaign (tidal/cluster/coll_campaign.h) over
// many seeds, prints progress and seeds per second, and on failure the seed, its digest
// and the command that replays it. At the end: the (step kind × fault) reach table summed
// over the seeds and the collectives' and engine's reachability marks never reached.
// Exit status 1 if any seed failed, or if a required pair was never reached over a range
// of seeds (a single --seed is a replay and is not held to the table).
//
//   tidal-coll-campaign --seeds 1..2000 [--verbose] [--keep-going]
//   tidal-coll-campaign --seed 42 --verbose          (one seed: the replay)
#include <boost/program_options.hpp>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <iostream>

#include "tidal/cluster/coll_campaign.h"
#include "tidal/reach.h"

#include "../common/cli.h"
#include "../common/scheduling_cli.h"

namespace po = boost::program_options;

int main(int argc, char** argv) {
  bool verbose = false;
  bool keep_going = false;
  bool json = false;
  bool no_partitions = false;
  bool strict_partitions = false;
  bool lenient_partitions = false;
  po::options_description desc(
      "tidal-coll-campaign: collectives under simulated faults, many seeds\n\n"
      "  tidal-coll-campaign --seeds 1..2000 --keep-going\n"
      "  tidal-coll-campaign --seed 42 --verbose   (one seed: the replay)\n\nOptions");
  desc.add_options()("help,h", "show this help");
  tidal::tools::AddSeedOptions(desc, {1, 2000}, /*single=*/true);
  tidal::tools::AddSchedulingOptions(desc);
  desc.add_options()(
      "verbose", po::bool_switch(&verbose), "print every op's outcome per rank")(
      "keep-going", po::bool_switch(&keep_going), "do not stop at the first failing seed")(
      "no-partitions", po::bool_switch(&no_partitions),
      "inject no partitions (their required pairs then fail the run)")(
      "strict-partitions", po::bool_switch(&strict_partitions),
      "fail a seed whose healed partition broke the group by a timeout (the default)")(
      "lenient-partitions", po::bool_switch(&lenient_partitions),
      "count such seeds instead of failing them")(
      "json", po::bool_switch(&json), "print one JSON summary line at the end")(
      "algorithm", po::value<std::string>()->default_value("auto"),
      "the groups' algorithm: auto (direct for small messages, ring above), direct, ring or "
      "split");
  po::variables_map vm;
  if (auto exit_code = tidal::tools::ParseCommandLine(argc, argv, desc, &vm)) return *exit_code;
  const std::optional<tidal::tools::SeedRange> range =
      tidal::tools::SelectedSeeds(vm, "tidal-coll-campaign");
  if (!range) return 2;
  const auto scheduling = tidal::tools::SchedulingFromFlags(vm, "tidal-coll-campaign");
  if (!scheduling) return 2;
  tidal::sim::ScopedScheduling scoped_scheduling(*scheduling);  // every seed's world
  const uint64_t first = range->first, seeds = range->count();
  tidal::cluster::CollCampaignOptions options;
  options.verbose = verbose;
  options.partitions = !no_partitions;
  if (strict_partitions && lenient_partitions) {
    std::fprintf(stderr, "tidal-coll-campaign: --strict-partitions and --lenient-partitions conflict\n");
    return 2;
  }
  options.strict_partitions = !lenient_partitions;
  if (auto alg = tidal::coll::ParseAlgorithm(vm["algorithm"].as<std::string>()); alg.ok()) {
    options.algorithm = *alg;
  } else {
    std::fprintf(stderr, "tidal-coll-campaign: --algorithm: %s\n", alg.status().ToString().c_str());
    return 2;
  }
  tidal::cluster::ReachTable reach = tidal::cluster::CollReachLayout();
  using clock = std::chrono::steady_clock;  // wall time for the report only
  const auto start = clock::now();
  uint64_t failed = 0, ops = 0, crashes = 0, faults = 0, done = 0, broken = 0;
  for (uint64_t i = 0; i < seeds; ++i) {  // by index: a range may end at UINT64_MAX
    const uint64_t seed = first + i;
    auto r = tidal::cluster::RunCollCampaignSeed(seed, options);
    ++done;
    ops += r.ops;
    crashes += r.crashes;
    faults += r.faults;
    reach.Merge(r.reach);
    if (r.broken_by_partition) ++broken;
    if (verbose) std::printf("%s\n", r.summary.c_str());
    if (!r.ok) {
      ++failed;
      std::fprintf(stderr, "\nFAILED %s\n", r.error.c_str());
      if (!tidal::tools::ReplayFlags(*scheduling).empty()) {
        std::fprintf(stderr, "  (replay with%s)\n", tidal::tools::ReplayFlags(*scheduling).c_str());
      }
      if (!keep_going) break;
    }
    if (done % 100 == 0 || done == seeds) {
      double wall = std::chrono::duration<double>(clock::now() - start).count();
      std::fprintf(stderr, "\r  seeds %" PRIu64 "/%" PRIu64 "  failed %" PRIu64 "  %.0f seeds/s ",
                   done, seeds, failed, done / std::max(wall, 1e-9));
    }
  }
  double wall = std::chrono::duration<double>(clock::now() - start).count();
  std::printf("\ncollectives campaign: %" PRIu64 " seeds (%" PRIu64 "..%" PRIu64
              ") in %.2f s, "
              "%.1f seeds/s; %" PRIu64 " rank-ops checked, %" PRIu64 " crashes, %" PRIu64
              " faults injected; %" PRIu64 " failing seeds\n",
              done, first, first + done - 1, wall, done / std::max(wall, 1e-9), ops, crashes,
              faults, failed);
  if (!options.strict_partitions) {
    std::printf("%" PRIu64 " seeds where a healed partition broke the group (counted: "
                "--lenient-partitions)\n",
                broken);
  }
  std::printf("reach (steps under each fault, summed over the seeds; 0! = required, never):\n%s",
              reach.Text().c_str());
  std::printf("%s", tidal::reach::Report({"coll.", "engine."}).c_str());
  const std::string missing = vm.count("seed") != 0 ? "" : reach.MissingMessage("collectives");
  if (!missing.empty()) std::printf("FAILED %s\n", missing.c_str());
  if (json) {
    std::printf("{\"seeds\":%" PRIu64 ",\"start\":%" PRIu64 ",\"failed\":%" PRIu64
                ",\"rank_ops\":%" PRIu64 ",\"crashes\":%" PRIu64 ",\"faults\":%" PRIu64
                ",\"broken_by_partition\":%" PRIu64
                ",\"wall_seconds\":%.3f,\"seeds_per_second\":%.2f,\"reach\":%s}\n",
                done, first, failed, ops, crashes, faults, broken, wall, done / std::max(wall, 1e-9),
                reach.Json().c_str());
  }
  return failed == 0 && missing.empty() ? 0 : 1;
}
