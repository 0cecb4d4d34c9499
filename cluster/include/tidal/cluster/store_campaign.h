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
//
// Paths: every read and write call of the client, copying and zero-copy: put, put_from,
// batch_put_from, put_tensor, tp_put, tp_put_from; get, get_into, batch_get_into,
// get_tensor, tp_get, tp_get_into.
//
// After the random workload, two targeted scenarios per seed aim one fault at one path:
//   * lease_expiry_reuse (every read path in a seed with short leases, two in the
//     others): a holder puts X on its own segment; a
//     reader starts a get of X and pauses (a node hang) right after the master granted
//     its lease; the holder force-removes X and puts new objects of X's size on its
//     segment until one lands on X's memory: at once (a lease of 10 s: only a master that
//     frees leased memory hands it out), or after the lease ran out and the master swept
//     (a lease of 40 us). The reader then reads. It must return X's bytes or fail
//     (LEASE_EXPIRED) — never the newer object's bytes.
//   * writer_died_mid_put (write paths, one a seed): a writer starts a put and its node
//     crashes between the master's placement and the put's end. After the client TTL the
//     master must have reclaimed every key the writer left half-written; each then reads
//     OBJECT_NOT_FOUND, and a new put of the key by another client succeeds and reads back
//     exactly.
// Then one more per seed, declared_dead_and_back: a holder puts X on its own segment and
// stops answering (a node hang) past the master's client TTL and its next sweep. The
// master declares it dead and drops its segment; X, whose only replica was there, must
// read OBJECT_NOT_FOUND naming it lost. Awake, the holder's next heartbeat learns its
// mount was dropped and it lends the memory again (a remount); a new put preferring that
// segment lands there and reads back exactly once the fence of leases granted on the
// dropped memory has passed, and lands elsewhere before.
// The result's reach table counts, per (path × fault), the calls that really ran under
// the fault (the memory was reused before the read; the master held the key half-written
// when the writer died), and the transfer faults the swarm put under each call
// (transfer_fault: a replica read fell over, a put failed with TRANSFER_FAIL). Required:
// every read path × lease_expiry_reuse and every write path × writer_died_mid_put
// (StoreReachLayout); tidal-store-campaign fails when one is never reached.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tidal/cluster/reach_table.h"
#include "tidal/store/client.h"
#include "tidal/store/master.h"

namespace tidal::cluster {

struct StoreCampaignConfig {
  size_t min_clients = 4;
  size_t max_clients = 8;
  size_t ops_per_client = 24;
  std::string mix = "all";  // swarm fault mix (fault_plan.h SwarmMix)
  bool trace = false;       // keep JSON trace lines (for --trace-out)
  bool scenarios = true;    // run the targeted scenarios after the workload (see above)
  // A get of the lease scenario that outlives its timeout (plus the pause and the
  // checker's 6 ms slack: a hung node's timers are frozen) fails the seed; false counts
  // it in scenario_overruns instead. The get's own duration is measured, from its start
  // to its return (not to the end of the scenario, whose reuser may put on for longer).
  bool strict_scenario_deadlines = true;
  bool master_restarts = true;  // crash and restart the master in a third of the seeds
  // Every client caches replica lists under its leases (StoreClientOptions::
  // cache_leased_replicas); the checks are the same: a get returns the bytes of some put
  // of its key, an acknowledged put reads back at its generation.
  bool cached_gets = false;
  // Every client puts values of at most 64 KiB through put reservations, this many at a
  // time (StoreClientOptions::put_reservations; 0: off); the checks are the same. Half the
  // values are then blocks of 512 B, 4 KiB or 16 KiB, so that a client keeps reservations
  // of a shape between puts (and they lapse, and are reclaimed, while it holds them).
  uint32_t put_reservations = 0;
  // Non-empty: the world's tape (sim/tape.h Tape::FromBytes) instead of the seed's, so
  // every choice during the run comes from these bytes (fuzz/store_tape_fuzz.cc); the
  // seed still picks the run's shape (clients, lease length, master restarts).
  std::vector<uint8_t> tape;
  // Shrinking (tidal-sim shrink, the zoo): record the tape's draws into the result; a
  // client count instead of the seed's (0: the seed's; at least 2).
  bool record_tape = false;
  size_t clients = 0;
  // Shrinking, smaller still (each default keeps the seed's run): a keep-mask over the
  // workload's operations (client c's operation i is item c * ops_per_client + i; a
  // dropped one still draws its kind; items from 64 on are always kept); the largest
  // value in bytes (0: the seed's; every drawn size is capped, the draws the same);
  // whether the end-of-workload durability check (and the 400 ms before it) runs; a
  // keep-mask over the targeted scenarios in the order they run.
  uint64_t op_mask = ~0ull;
  uint64_t max_value = 0;
  bool durability = true;
  uint64_t scenario_mask = ~0ull;
  // The master's client TTL (0: 200 ms); the wait before the durability check is two of
  // it (400 ms by default), and the scenarios' waits follow it as they always do.
  uint64_t client_ttl_ns = 0;
  store::StoreBug planted_bug = store::StoreBug::kNone;  // the bug zoo only
  store::MasterBug master_bug = store::MasterBug::kNone;  // the bug zoo only
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
  uint64_t cached_gets = 0;  // gets served from a cached replica list (cached_gets)
  uint64_t reserved_puts = 0;          // puts made by one commit (put_reservations)
  uint64_t reservation_fallbacks = 0;  // puts that tried a reservation and took two RPCs
  uint64_t reservation_requests = 0;   // PutReserve RPCs (put_reservations)
  uint64_t kept_reservations_used = 0;  // puts into a reservation kept from an earlier request
  uint64_t virtual_ns = 0;
  uint64_t events = 0, faults = 0;  // trace records, faults injected (sim/shrink.h)
  std::vector<uint64_t> draws;      // the tape's draws (config.record_tape)
  ReachTable reach;  // this seed's (path × fault) counts, layout StoreReachLayout()
  uint64_t scenario_overruns = 0;  // lease-scenario gets that outlived their timeout
  uint64_t declared_dead = 0;  // declared-dead scenarios checked to their end
};

// The campaign's (path × fault) table, every count 0: which cells apply, which are required.
ReachTable StoreReachLayout();

// Runs one seed on the simulator (the campaign is made of its faults). Deterministic: the
// same seed and config give the same result.
StoreCampaignResult RunStoreCampaign(uint64_t seed, const StoreCampaignConfig& config);

}  // namespace tidal::cluster
