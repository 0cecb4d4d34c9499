// The named small worlds of exhaustive exploration (tidal/sim/explore.h): worlds small
// enough that the explorer can walk every schedule, each with its own checker. A world's
// fault placement is its first choice (enumerated like every other), so "every schedule"
// means every schedule under every placement. Each function returns the world as an
// ExploreWorldFn; tidal-sim explore and the explore test run them.
//
//  * transport: 2 nodes, each running its share of up to 6 operations (node 0: WRITE,
//    NOTIFY, WRITE; node 1: WRITE, READ, NOTIFY, in the order of the table in the .cc)
//    through the TransferEngine over SimTransport with the contract checker on.
//    Placements: none; each transfer comes back short; each transfer meets an
//    unregistered (stale) remote key; node 1 crashes at 2 us or at 10 us. Checker: a
//    COMPLETED transfer moved exactly its bytes, a short one exactly its prefix, another
//    failure nothing; a TIMED_OUT one left every byte old or new; a notification arrives
//    after every write its sender completed before sending it (the bytes are there);
//    without a placement every transfer completes; guard bands intact; no contract
//    violation; every live node's operations end.
//  * allreduce, allgather, broadcast: 3 ranks (or 2), one collective of 4 int32 elements
//    (product; broadcast from rank 1), after a bootstrap that runs one fixed schedule.
//    Placements: none, or one rank other than 0 crashes at 0 us or at 20 us. Checker: every live rank's op ends; the survivors agree on status and failed
//    ranks; failed ranks are crashed ones; an OK result is exact over the members.
//  * store: master on node 0, 2 clients (1 replica each put), set up by one fixed
//    schedule: client 0 puts key a, then gets it, then removes it; client 1 puts key b,
//    gets a and b. Placements: none; the first replica read comes back 8 bytes short;
//    client 1's node (b's holder) crashes at 0 us or at 30 us. A remove refused with
//    OBJECT_HAS_LEASE (a get's lease still runs) is allowed. Checker: every get
//    that succeeds returns exactly the bytes put; every operation of a live client ends;
//    without a crash every put and every get of an acknowledged, unremoved key succeeds.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tidal/sim/explore.h"
#include "tidal/sim/world.h"

namespace tidal::cluster {

struct ExploreWorldOptions {
  std::string world = "transport";  // transport, allreduce, allgather, broadcast, store
  size_t ops = 4;                   // transport: operations from the table (1..6)
  int ranks = 3;                    // collectives: 2 or 3
  // Collectives: rank r enters the collective r * stagger_ns after rank 0 (0: together;
  // ranks that start at one instant race at every step, which multiplies the schedules).
  uint64_t stagger_ns = 0;
  bool placements = true;           // false: only the placement "none"
  // A planted bug from the zoo (tidal-sim zoo names): short_as_complete and the other
  // transport bugs for transport, coll_* for the collectives, store_* for store.
  std::string planted_bug;
};

std::vector<std::string> ExploreWorldNames();

// INVALID_PARAMS for an unknown world or bug, a bug that does not belong to the world,
// ops outside 1..6, or ranks outside 2..3.
Result<sim::ExploreWorldFn> MakeExploreWorld(const ExploreWorldOptions& options);

}  // namespace tidal::cluster
