// The bug zoo's own campaign workloads (zoo.h): seeded, randomized runs on the simulator
// that drive paths the general campaigns do not reach, each with a checker that states
// the contract the field bug broke. Every seed draws its choices from the world's tape, so
// a failing seed replays bit for bit; a failure names the seed and the replay command.
//
//   store-field  store clients putting tensor-parallel tensors from registered buffers
//                (single and batch), re-putting keys and reading an older generation by
//                name, passing buffers the engine never registered, one writer crashing
//                in the middle of its puts, then every client filling the store past its
//                capacity with evictable objects. Checks: a zero-copy call on an
//                unregistered buffer fails ADDRESS_NOT_REGISTERED and stores nothing; a
//                well-formed tensor-parallel put never answers INVALID_PARAMS and every
//                shard reads back as the slice of the full tensor; a get naming a gone
//                generation never returns bytes; no key stays "being written" after its
//                writer died and the put timeout passed; a put never fails with
//                NO_AVAILABLE_HANDLE while evictable objects could make room.
//   p2p          a process group exchanging point-to-point messages in rings and running
//                all-reduces, where some ranks post a receive nobody sends to. Checks:
//                after a rank's operation timed out, every later operation of that rank
//                fails at once with COLLECTIVE_ABORTED (the group is broken).
//   peer-loss    engines sending single WRITEs to random peers while one node crashes.
//                Checks: once a request to a peer failed PEER_UNREACHABLE, every later
//                request to that handle fails at submit with PEER_UNREACHABLE (no wait).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "tidal/collectives/process_group.h"
#include "tidal/planted.h"
#include "tidal/store/client.h"
#include "tidal/store/master.h"

namespace tidal::cluster {

// Each returns the checker's first complaint (with the seed's banner, which carries
// `replay`, the command that replays the seed), or nullopt when the seed passed.
// Deterministic: the same seed and bugs give the same answer.
std::optional<std::string> RunStoreFieldSeed(uint64_t seed, store::StoreBug store_bug,
                                             store::MasterBug master_bug,
                                             const std::string& replay);
std::optional<std::string> RunP2pSeed(uint64_t seed, coll::CollBug bug, const std::string& replay);
std::optional<std::string> RunPeerLossSeed(uint64_t seed, EngineBug bug,
                                           const std::string& replay);

}  // namespace tidal::cluster
