// Fuzz target: the store nemesis campaign (tidal/cluster/store_campaign.h) with the input
// bytes as the simulated world's tape, and the campaign's own history checker as the
// oracle.
//
// Input layout: the first 8 bytes (little-endian, zero-padded) are the campaign seed,
// which picks the run's shape the way a seeded campaign does: 3 or 4 clients, short or
// long leases, and whether and when the master crashes and restarts from its journal.
// The rest is the tape (sim/tape.h Tape::FromBytes): the schedule, every swarm fault
// (short reads and writes, completion delay/loss/reorder, stale keys, message
// delay/drop/duplicate, partitions, hangs, up to one client crash) and every workload
// choice (put, put-from, get, get-into, remove, batch, exists, tensor and TP calls, their
// keys, sizes and replica counts). Past the end of the input the tape continues with a
// fixed pseudo-random expansion of the input (4 MiB in all; see kTapeBytes).
//
// The property is the campaign's: every successful get returns exactly the bytes of one
// put of that key; every operation of a live client ends within its timeout; every
// acknowledged put that nothing removed, evicted or overwrote and that kept a live
// holder reads back exactly, at the generation it was acknowledged with, across master
// restarts; one whose holders all crashed is reported lost; the master's invariants hold
// (everything RunStoreCampaign checks). A failure aborts with the campaign's message. The
// same input gives the same digest (checked on a fixed quarter of the inputs).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_check.h"
#include "tidal/cluster/store_campaign.h"

namespace {

// Bytes of tape after the input: a fixed expansion of the input (splitmix64 of its hash).
// The campaign's workload picks distinct keys by drawing until they differ, which all-zero
// draws would never do, so the tape must not fall silent while the workload runs.
constexpr size_t kTapeBytes = 4u << 20;

tidal::cluster::StoreCampaignResult RunOnce(uint64_t seed, const uint8_t* tape, size_t size) {
  tidal::cluster::StoreCampaignConfig cfg;
  cfg.min_clients = 3;
  cfg.max_clients = 4;
  cfg.ops_per_client = 12;
  cfg.tape.assign(tape, tape + size);
  uint64_t x = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < size; ++i) x = (x ^ tape[i]) * 0x100000001b3ULL;
  cfg.tape.reserve(kTapeBytes);
  while (cfg.tape.size() < kTapeBytes) {
    uint64_t z = (x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    for (int b = 0; b < 8; ++b) cfg.tape.push_back(static_cast<uint8_t>(z >> (8 * b)));
  }
  return tidal::cluster::RunStoreCampaign(seed, cfg);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return -1;
  uint64_t seed = 0;
  const size_t head = size < 8 ? size : 8;
  std::memcpy(&seed, data, head);
  const tidal::cluster::StoreCampaignResult first = RunOnce(seed, data + head, size - head);
  TIDAL_FUZZ_CHECK(first.ok, "seed " + std::to_string(seed) + ": " + first.failure);
  if (std::getenv("TIDAL_FUZZ_VERBOSE") != nullptr) {
    std::fprintf(stderr,
                 "seed %llu: clients=%zu crashed=%zu master_restarts=%llu ops=%llu ok=%llu "
                 "gets_checked=%llu durable=%llu virtual_ms=%.3f\n",
                 static_cast<unsigned long long>(seed), first.clients, first.crashed,
                 static_cast<unsigned long long>(first.master_restarts),
                 static_cast<unsigned long long>(first.ops),
                 static_cast<unsigned long long>(first.ops_ok),
                 static_cast<unsigned long long>(first.gets_checked),
                 static_cast<unsigned long long>(first.durable_checked), first.virtual_ns / 1e6);
  }
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < size; ++i) h = (h ^ data[i]) * 0x100000001b3ULL;
  if (h % 4 != 0) return 0;
  const tidal::cluster::StoreCampaignResult second = RunOnce(seed, data + head, size - head);
  TIDAL_FUZZ_CHECK(first.digest == second.digest && first.virtual_ns == second.virtual_ns,
                   "same input, different run");
  return 0;
}
