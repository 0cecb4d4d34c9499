#include "tidal/cluster/zoo.h"

#include <cctype>
#include <chrono>
#include <optional>

#include "tidal/cluster/coll_campaign.h"
#include "tidal/cluster/mixed_campaign.h"
#include "tidal/cluster/store_campaign.h"
#include "tidal/collectives/process_group.h"
#include "tidal/planted.h"
#include "tidal/sim/shrink.h"
#include "tidal/sim/transfer_workload.h"
#include "tidal/store/client.h"
#include "tidal/store/master.h"
#include "zoo_workloads.h"

namespace tidal::cluster {
namespace {

double Wall() {
  using clock = std::chrono::steady_clock;  // the zoo reports wall time
  static const auto start = clock::now();
  return std::chrono::duration<double>(clock::now() - start).count();
}

std::string FirstLine(const std::string& s) {
  const size_t nl = s.find('\n');
  std::string line = nl == std::string::npos ? s : s.substr(0, nl);
  return line.size() > 160 ? line.substr(0, 157) + "..." : line;
}

// One seed of the bug's workload, with the bug planted or not: the checker's complaint,
// or nullopt when the seed passed.
struct SeedRun {
  std::optional<std::string> failure;
  sim::TransferWorkloadOptions transfer;  // for the transfer workload: what ran
  ZooRun zoo;                             // for the zoo's own workloads: what ran
};

bool OwnWorkload(const ZooBug& bug) {
  return bug.workload == "store-field" || bug.workload == "p2p" || bug.workload == "peer-loss";
}

// What a failure broke, without its particulars: the first line without the seed's prefix,
// up to the first '(' (where codes and details start), quoted names and numbers blanked.
std::string Invariant(const std::string& failure) {
  std::string line = failure.substr(0, failure.find('\n'));
  if (line.rfind("seed ", 0) == 0 && line.find(": ") != std::string::npos) {
    line = line.substr(line.find(": ") + 2);
  }
  line = line.substr(0, line.find('('));
  std::string out;
  bool quoted = false;
  for (char c : line) {
    if (c == '\'') {
      quoted = !quoted;
      if (quoted) out += "'_'";
      continue;
    }
    if (quoted) continue;
    if (std::isdigit(static_cast<unsigned char>(c))) {
      if (out.empty() || out.back() != '#') out += '#';
      continue;
    }
    out += c;
  }
  return out;
}

SeedRun RunSeed(const ZooBug& bug, uint64_t seed, bool planted, ZooScale scale = {}) {
  SeedRun out;
  if (bug.workload == "transfer") {
    sim::TransferWorkloadOptions o;
    o.seed = seed;
    o.fault_mix = "all";
    if (planted) {
      if (Result<sim::PlantedBug> b = sim::ParsePlantedBug(bug.name); b.ok()) o.planted_bug = *b;
      if (Result<EngineBug> b = ParseEngineBug(bug.name); b.ok()) o.engine_bug = *b;
    }
    out.transfer = o;
    Result<sim::TransferWorkloadResult> r = sim::RunTransferWorkload(o);
    if (!r.ok()) {
      out.failure = r.status().ToString();
    } else if (!r->passed) {
      out.failure = r->violations.empty() ? "failed" : r->violations.front();
    }
    return out;
  }
  if (bug.workload == "store") {
    StoreCampaignConfig cfg;
    if (planted) {
      if (Result<store::StoreBug> b = store::ParseStoreBug(bug.name); b.ok()) cfg.planted_bug = *b;
      if (Result<store::MasterBug> b = store::ParseMasterBug(bug.name); b.ok()) cfg.master_bug = *b;
    }
    StoreCampaignResult r = RunStoreCampaign(seed, cfg);
    if (!r.ok) out.failure = r.failure;
    return out;
  }
  if (bug.workload == "collectives") {
    CollCampaignOptions o;
    if (planted) o.planted_bug = coll::ParseCollBug(bug.name).value();
    CollSeedResult r = RunCollCampaignSeed(seed, o);
    if (!r.ok) {
      // The first line is the seed's summary; the checker's words follow.
      const size_t nl = r.error.find('\n');
      out.failure = nl == std::string::npos ? r.error : r.error.substr(nl + 1);
      size_t start = out.failure->find_first_not_of(' ');
      if (start != std::string::npos) out.failure = out.failure->substr(start);
    }
    return out;
  }
  const std::string replay = "tidal-sim zoo --bug " + bug.name + " --seeds " +
                             std::to_string(seed) + ".." + std::to_string(seed);
  if (bug.workload == "store-field") {
    store::StoreBug sb = store::StoreBug::kNone;
    store::MasterBug mb = store::MasterBug::kNone;
    if (planted) {
      if (Result<store::StoreBug> b = store::ParseStoreBug(bug.name); b.ok()) sb = *b;
      if (Result<store::MasterBug> b = store::ParseMasterBug(bug.name); b.ok()) mb = *b;
    }
    out.zoo = RunStoreFieldSeed(seed, sb, mb, replay, scale);
    out.failure = out.zoo.failure;
    return out;
  }
  if (bug.workload == "p2p") {
    out.zoo = RunP2pSeed(
        seed, planted ? coll::ParseCollBug(bug.name).value() : coll::CollBug::kNone, replay,
        scale);
    out.failure = out.zoo.failure;
    return out;
  }
  if (bug.workload == "peer-loss") {
    out.zoo = RunPeerLossSeed(
        seed, planted ? ParseEngineBug(bug.name).value() : EngineBug::kNone, replay, scale);
    out.failure = out.zoo.failure;
    return out;
  }
  MixedCampaignOptions o;  // mixed
  if (planted) {
    if (Result<EngineBug> b = ParseEngineBug(bug.name); b.ok()) o.engine_bug = *b;
    if (Result<coll::CollBug> b = coll::ParseCollBug(bug.name); b.ok()) o.coll_bug = *b;
  }
  MixedSeedResult r = RunMixedCampaignSeed(seed, o);
  if (!r.ok) out.failure = r.error;
  return out;
}

}  // namespace

std::vector<ZooBug> ZooBugs() {
  return {
      {"short_as_complete", "transport", "transfer", "",
       "a short transfer reports OK with every byte"},
      {"ignore_remote_key", "transport", "transfer", "",
       "the target lets a wrong remote key through"},
      {"ignore_window", "transport", "transfer", "",
       "the target checks where an access starts, not where it ends"},
      {"write_off_by_one", "transport", "transfer", "", "a WRITE lands one byte late"},
      {"complete_before_visible", "transport", "transfer", "",
       "a WRITE completes before its data is visible at the target"},
      {"engine_prefix_overcount", "engine", "transfer", "",
       "a failed request's bytes_transferred counts slices past the arrived prefix"},
      {"engine_no_descriptor_refresh", "engine", "mixed", "report A",
       "a range missing from the cached descriptor fails at once, no refresh"},
      {"engine_close_drops_every_holder", "engine", "mixed", "report B",
       "closing a shared segment handle invalidates it for every holder"},
      {"coll_root_ignored", "collectives", "collectives", "1",
       "Broadcast and Reduce use rank 0 whatever the root"},
      {"coll_fold_twice", "collectives", "collectives", "",
       "a received chunk is folded into the result twice"},
      {"coll_silence_is_death", "collectives", "collectives", "10",
       "a silent peer is failed without a probe"},
      {"coll_p2p_write_before_match", "collectives", "mixed", "report C",
       "a Recv failing on a size mismatch has already written its buffer"},
      {"store_get_accepts_short_read", "store", "store", "3",
       "a short replica read is returned as the object"},
      {"master_holder_close_loses_object", "store", "store", "9",
       "an object goes when one holder unmounts, though other replicas hold it"},
      {"master_frees_leased_memory", "store", "store", "",
       "Remove frees an object's memory under a running lease"},
      {"coll_zero_accumulator", "collectives", "collectives", "2",
       "a reduction starts from zero instead of the first contribution"},
      {"store_unregistered_buffer", "store", "store-field", "4",
       "put_from / get_into on an unregistered buffer go ahead instead of failing first"},
      {"store_tp_from_slices_bytes", "store", "store-field", "5",
       "tensor-parallel put_from cuts the serialized full tensor by bytes"},
      {"store_tp_batch_reports_invalid", "store", "store-field", "6",
       "a successful tensor-parallel batch put reports INVALID_PARAMS per entry"},
      {"master_ignores_generation", "store", "store-field", "7",
       "a get naming a removed generation is served the current object"},
      {"master_never_reclaims_puts", "store", "store-field", "8",
       "a put whose writer crashed stays 'being written' forever"},
      {"engine_dead_peer_stays_cached", "engine", "peer-loss", "11",
       "a peer found unreachable stays cached; later requests wait for their timeout"},
      {"master_no_evict_on_put", "store", "store-field", "12",
       "a put that does not fit fails NO_AVAILABLE_HANDLE instead of evicting"},
      {"coll_p2p_timeout_keeps_group", "collectives", "p2p", "report D",
       "after a point-to-point timeout the group carries on instead of aborting"},
  };
}

std::string RunZooSeed(const ZooBug& bug, uint64_t seed, bool planted) {
  SeedRun run = RunSeed(bug, seed, planted);
  return run.failure.value_or("");
}

std::vector<ZooEntry> RunZoo(const ZooOptions& options) {
  std::vector<ZooEntry> out;
  bool matched = options.only.empty();
  for (const ZooBug& bug : ZooBugs()) {
    if (!options.only.empty() && bug.name != options.only) continue;
    matched = true;
    ZooEntry e;
    e.bug = bug;
    const double start = Wall();
    for (uint64_t i = 0; i < options.max_seeds; ++i) {
      const uint64_t seed = options.first_seed + i;
      if (options.progress) options.progress(bug.name, i);
      SeedRun run = RunSeed(bug, seed, /*planted=*/true);
      if (!run.failure) continue;
      e.caught = true;
      e.seed = seed;
      e.seeds_needed = i + 1;
      e.seconds_to_failure = Wall() - start;
      e.failure = FirstLine(*run.failure);
      e.clean_seed_passes = !RunSeed(bug, seed, /*planted=*/false).failure.has_value();
      if (!options.shrink) break;
      if (OwnWorkload(bug)) {
        // Scale shrinking: fewer operations (halving, then one less), then fewer nodes,
        // until neither keeps the same invariant failing or the run budget is spent.
        const double shrink_start = Wall();
        const std::string invariant = Invariant(*run.failure);
        ZooRun best = run.zoo;
        e.original_events = best.events;
        uint64_t runs = 0;
        auto same = [&](ZooScale s) {
          if (runs >= options.shrink_runs) return false;
          ++runs;
          SeedRun r = RunSeed(bug, seed, /*planted=*/true, s);
          if (!r.failure || Invariant(*r.failure) != invariant) return false;
          best = r.zoo;
          return true;
        };
        for (bool progress = true; progress;) {
          progress = false;
          while (best.scale.ops > 1 && same({best.scale.nodes, best.scale.ops / 2})) progress = true;
          while (best.scale.ops > 1 && same({best.scale.nodes, best.scale.ops - 1})) progress = true;
          while (best.scale.nodes > 2 && same({best.scale.nodes - 1, best.scale.ops})) progress = true;
        }
        e.shrunk = true;
        e.shrunk_events = best.events;
        e.shrunk_faults = best.faults;
        e.shrunk_nodes = best.scale.nodes;
        e.shrunk_ops = best.scale.ops;
        e.shrink_seconds = Wall() - shrink_start;
        break;
      }
      if (bug.workload != "transfer") {
        e.not_shrunk_because = "the " + bug.workload + " campaign has no tape shrinker yet";
        break;
      }
      const double shrink_start = Wall();
      sim::ShrinkOptions so;
      so.max_runs = options.shrink_runs;
      Result<sim::TransferShrinkResult> s = sim::ShrinkTransferFailure(run.transfer, so);
      e.shrink_seconds = Wall() - shrink_start;
      if (s.ok()) {
        e.shrunk = true;
        e.shrunk_events = s->shrunk_events;
        e.shrunk_faults = s->shrunk_faults;
        e.original_events = s->original_events;
      } else {
        e.not_shrunk_because = s.status().ToString();
      }
      break;
    }
    if (!e.caught) {
      e.seeds_needed = options.max_seeds;
      e.seconds_to_failure = Wall() - start;
    }
    out.push_back(std::move(e));
  }
  if (!matched) {
    ZooEntry e;
    e.bug.name = options.only;
    e.failure = "unknown bug '" + options.only + "'";
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace tidal::cluster
