// The store nemesis campaign: one seed = one simulated cluster (master on node 0, 4-8
// clients) running a random workload of puts, gets, removes, batch and tensor calls
// under swarm faults (short reads and writes, completion delay/loss, stale keys, message
// delay/drop/duplicate, partitions, hangs, crashes of replica holders, short leases).
// A history checker, kept apart from the fault injection, judges the run:
//   * every get that succeeds returns exactly the bytes of one put of that key (never
//     wrong, partial or mixed bytes);
//   * every operation of a live client ends, within its timeout (plus the longest hang
//     the swarm can inject, during which the client's own clock cannot fire);
//   * every acknowledged put with k replicas, fewer than k of them on crashed nodes or on
//     clients that closed (at most one client closes gracefully per seed), that
//     nothing removed, evicted or overwrote, reads back with exact bytes at the end, at
//     the generation it was acknowledged with; one whose every holder crashed reads
//     OBJECT_NOT_FOUND reported "lost".
// In a third of the seeds the master crashes once or twice (1-61 ms in) and restarts
// from its journal 1-81 ms later (StoreWorld::ScheduleMasterRestart): the same checks
// hold across it (README of store/: "Master restart").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tidal/store/client.h"
#include "tidal/store/master.h"

namespace tidal::cluster {

struct StoreCampaignConfig {
  size_t min_clients = 4;
  size_t max_clients = 8;
  size_t ops_per_client = 24;
  std::string mix = "all";  // swarm fault mix (fault_plan.h SwarmMix)
  bool trace = false;       // keep JSON trace lines (for --trace-out)
  store::StoreBug planted_bug = store::StoreBug::kNone;  // the bug zoo only
  store::MasterBug master_bug = store::MasterBug::kNone;  // the bug zoo only
  bool master_restarts = true;  // crash and restart the master in a third of the seeds
  // Non-empty: the world's tape (sim/tape.h Tape::FromBytes) instead of the seed's, so
  // every choice during the run comes from these bytes (fuzz/store_tape_fuzz.cc); the
  // seed still picks the run's shape (clients, lease length, master restarts).
  std::vector<uint8_t> tape;
};

struct StoreCampaignResult {
  uint64_t seed = 0;
  bool ok = true;
  std::string failure;  // the first violation, with the seed's banner
  uint64_t digest = 0;
  size_t clients = 0;
  size_t crashed = 0;
  size_t left = 0;  // clients that closed gracefully
  uint64_t master_restarts = 0;
  uint64_t ops = 0, ops_ok = 0, gets_checked = 0, durable_checked = 0;
  uint64_t lease_expired = 0, short_leases = 0;
  uint64_t virtual_ns = 0;
};

// Runs one seed on the simulator (the campaign is made of its faults). Deterministic: the
// same seed and config give the same result.
StoreCampaignResult RunStoreCampaign(uint64_t seed, const StoreCampaignConfig& config);

}  // namespace tidal::cluster
