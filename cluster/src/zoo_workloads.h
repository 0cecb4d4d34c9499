// The bug zoo's own campaign workloads (zoo.h): seeded, randomized runs on the simulator
// that drive paths the general campaigns do not reach, each with a checker that states
// the contract the field bug broke. Every seed draws its choices from the world's tape
// (store-field's list of operation kinds from the seed itself), so a failing seed replays
// bit for bit; a failure names the seed and the replay command.
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
#include <vector>

#include "tidal/collectives/process_group.h"
#include "tidal/planted.h"
#include "tidal/store/client.h"
#include "tidal/store/master.h"

namespace tidal::cluster {

// The size of one run: 0 keeps the seed's own choice. The zoo's shrinker lowers these
// while the same invariant still fails.
//   store-field  nodes: clients (at least 2: the crashing writer and one more); ops: the
//                operations before the fill, in all (0: ten per driving client), dealt
//                round robin to the driving clients; each one's kind comes from the
//                seed and its index
//   p2p          nodes: ranks (at least 2); ops: steps
//   peer-loss    nodes: nodes (at least 2); ops: WRITEs of each node
//   store-field also: keep, a keep-mask (sim/shrink.h) over those operations (item i is
//                operation i of the list); victim: whether the crashing writer runs
//                (without it one client is enough); fill: whether the fill runs; value:
//                the largest value in bytes (0: 128 KiB; the segment is 16 values unless
//                `segment` says otherwise, the victim's puts 2 values; the draws are the
//                same at any size)
struct ZooScale {
  size_t nodes = 0;
  size_t ops = 0;
  uint64_t keep = ~0ull;
  bool victim = true;
  bool fill = true;
  uint64_t value = 0;
  // store-field also: the most tensors of a tensor-parallel batch put (0: the seed's 2 or
  // 3; the draw is the same at any cap).
  uint64_t batch = 0;
  // store-field also: each client's segment in largest values (0: 16); the fill puts
  // about twice a segment's worth.
  uint64_t segment = 0;
  // store-field also: the master's put timeout in milliseconds (0: 100 ms); its reclaim
  // quarantine (1/5 of it), its sweep (1/20) and the wait after the writer crashed (4 of
  // it) follow it.
  uint64_t timeout_ms = 0;
  // p2p also: the group's operation timeout in microseconds (0: 20 ms).
  uint64_t timeout_us = 0;
  // The world's tape instead of the seed's (the seed still picks what the tape does not),
  // and recording the run's draws into ZooRun::draws: the tape shrinker's input.
  std::vector<uint8_t> tape;
  bool record_tape = false;
};

struct ZooRun {
  // The checker's first complaint (with the seed's banner, which carries `replay`, the
  // command that replays the seed), or nullopt when the seed passed.
  std::optional<std::string> failure;
  ZooScale scale;       // what ran (nodes and ops)
  // Counted as sim/shrink.h says for every workload: trace records, faults injected.
  uint64_t events = 0;
  uint64_t faults = 0;
  std::vector<uint64_t> draws;  // the tape's draws (scale.record_tape)
};

// Deterministic: the same seed, bugs and scale give the same run.
ZooRun RunStoreFieldSeed(uint64_t seed, store::StoreBug store_bug, store::MasterBug master_bug,
                         const std::string& replay, ZooScale scale = {});
ZooRun RunP2pSeed(uint64_t seed, coll::CollBug bug, const std::string& replay,
                  ZooScale scale = {});
ZooRun RunPeerLossSeed(uint64_t seed, EngineBug bug, const std::string& replay,
                       ZooScale scale = {});

}  // namespace tidal::cluster
