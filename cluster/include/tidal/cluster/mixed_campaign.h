// The mixed campaign: store traffic and collectives on the same nodes, sharing each node's
// TransferEngine and Messenger endpoint, started in random orders. One seed = one
// simulated world of 3..6 nodes with
//  * a store master on a random node and a store client (with a mounted segment) on every
//    node,
//  * two process groups: "world" over every node and "sub", a random subgroup of 2..n-1
//    nodes (c10d's new_group), each on its own notification and message channel,
//  * a start-up in which every start event (the master, each client, each group rank)
//    fires at its own random virtual time, so groups often start on engines that already
//    opened their peers' segments, and clients before the master,
//  * rounds in which each node interleaves random puts and gets of its own and other
//    nodes' keys with one allreduce per group it belongs to,
//  * in a third of the seeds one node (never the master's) crashes at a random round.
// Every choice comes from the world's tape or the seed, so a failing seed replays bit for
// bit (`tidal-mixed-campaign --seed N --verbose`).
//
// The checker (apart from the injector): every live rank finishes every round; the
// survivors of an allreduce agree on its status and failed ranks; the status is OK, or
// RANK_FAILED naming exactly the crashed node's rank (nothing else, and only once it
// crashed); every result is the exact sum over the members that committed; every put
// succeeds and every get of an acknowledged key returns its bytes exactly while no node
// has crashed, and after a crash an operation may fail but never returns wrong bytes; the
// final read of every acknowledged key is exact or (after a crash) an error.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tidal/collectives/process_group.h"
#include "tidal/planted.h"

namespace tidal::cluster {

struct MixedCampaignOptions {
  bool verbose = false;   // print each round's outcome
  uint32_t rounds = 6;    // allreduce rounds per group
  bool crashes = true;    // let a third of the seeds crash a node
  // 0: the seed picks 3..6 nodes; otherwise exactly this many (2..64).
  uint32_t nodes = 0;
  // 0: rounds run back to back. Otherwise round r begins no earlier than r * this after
  // start-up, so `rounds` rounds span rounds * round_period_ns of virtual time (a long-lived
  // world with idle time between bursts of traffic: heartbeats, leases and probes run on).
  uint64_t round_period_ns = 0;
  // 0: every acknowledged object is kept to the end. Otherwise a node that holds more than
  // this many of its own objects removes its oldest one after each put, so a long world's
  // store stays bounded (a get of an object being removed may then answer
  // OBJECT_NOT_FOUND; nothing else changes in the checker).
  uint32_t live_objects_per_node = 0;
  // The bug zoo only: a planted engine or collectives bug.
  EngineBug engine_bug = EngineBug::kNone;
  coll::CollBug coll_bug = coll::CollBug::kNone;
  // Shrinking (tidal-sim shrink, the zoo): the world's tape instead of the seed's, and
  // recording its draws into the result.
  std::vector<uint8_t> tape;
  bool record_tape = false;
  // Shrinking, smaller still (each default keeps the seed's run; the start-up delays are
  // drawn whatever starts): whether the store runs (master, clients, their puts and gets,
  // the final reads); which groups run (bit 0 "world", bit 1 "sub"; sub's point-to-point
  // needs sub); whether the other users' handle traffic and sub's point-to-point
  // exchange run; at most this many elements per allreduce and bytes per put (0: as
  // drawn).
  bool store = true;
  uint32_t group_mask = 3;
  bool handles = true;
  bool p2p = true;
  uint64_t max_count = 0;
  uint64_t max_value = 0;
  // A keep-mask over the rounds (sim/shrink.h; rounds from 64 on always run): a round left
  // out runs nothing on any node (no store operations, handle traffic, allreduce,
  // point-to-point exchange or crash) and draws nothing, and the checker skips it.
  uint64_t round_mask = ~0ull;
  // The groups' operation timeout (0: 5 s). A planted bug that leaves a group retrying
  // until its timeout fails sooner under a shorter one.
  uint64_t group_timeout_ns = 0;
};

struct MixedSeedResult {
  bool ok = true;
  std::string error;       // what the checker found, with the replay line
  uint64_t digest = 0;     // the world's trace digest
  uint32_t nodes = 0;
  std::string start_order; // the start events in the order they fired
  uint64_t puts = 0, gets = 0, collectives = 0, p2p = 0;
  uint32_t crashes = 0;
  uint64_t removes = 0;
  uint64_t virtual_ns = 0;
  std::string summary;     // one line
  uint64_t events = 0, faults = 0;  // trace records, faults injected (sim/shrink.h)
  std::vector<uint64_t> draws;      // the tape's draws (options.record_tape)
};

MixedSeedResult RunMixedCampaignSeed(uint64_t seed, const MixedCampaignOptions& options = {});

}  // namespace tidal::cluster
