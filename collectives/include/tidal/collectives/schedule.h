// Schedule math of the process group: how a buffer is cut into ring segments and slot
// chunks, which algorithm an operation uses, how many step boundaries it has, and the
// bus-bandwidth factors of nccl-tests. Pure functions, thread-safe, never block.
//
// Algorithm choice (Algorithm::kAuto), for m members and a message of `bytes`:
//  * AllReduce, AllGather, ReduceScatter, Broadcast, Reduce: direct when m <= 2 or
//    bytes <= direct_max_bytes (one step: every rank writes straight into each peer's
//    slots; lowest latency), ring otherwise (bandwidth-optimal: each rank sends
//    2(m-1)/m of the buffer for AllReduce, (m-1)/m for AllGather/ReduceScatter, and a
//    pipelined chain for Broadcast).
//  * Gather, Scatter, AllToAll: always direct (every byte crosses one link once already).
//  * Barrier: no data step; the agreement round is the barrier.
// Algorithm::kSplit is never chosen by kAuto; asked for, it runs AllReduce, Reduce and
// Broadcast with three or more members in two steps over every link at once (for GPUs on
// one switch, where a ring leaves all links but one idle in every step):
//  * AllReduce / Reduce: member j gets every member's segment j (Partition(n, m, j)) and
//    reduces it in member order, then the reduced segments are exchanged directly (or sent
//    to the root). Each rank sends 2(m-1)/m of the buffer, as in the ring, in 2 steps
//    instead of 2(m-1).
//  * Broadcast: the root sends part k of m-1 to the k-th other member, then the others
//    exchange their parts. The root sends the buffer once instead of m-1 times.
//  Every other op, and any op with two members, runs kDirect.
// `bytes` is the size that decides: the tensor for AllReduce/Broadcast/Reduce, the whole
// gathered (or scattered) buffer for AllGather/ReduceScatter.
#pragma once

#include <cstdint>

#include "tidal/collectives/types.h"

namespace tidal::coll {

struct Span {
  uint64_t offset = 0;  // elements
  uint64_t count = 0;   // elements
  bool operator==(const Span&) const = default;
};

// Part `index` of `count` elements cut into `parts` nearly equal parts (the first
// count % parts parts get one more element). parts > 0, index < parts.
Span Partition(uint64_t count, uint64_t parts, uint64_t index);

// Number of slot-sized chunks a message of `bytes` travels in (0 for 0 bytes).
uint64_t ChunkCount(uint64_t bytes, uint64_t chunk_bytes);

// (a - b) mod m for ring positions.
inline uint64_t RingSub(uint64_t a, uint64_t b, uint64_t m) {
  return (a + m - b % m) % m;
}

// The algorithm an operation runs with `members` ranks (see the table above).
Algorithm ChooseAlgorithm(OpType op, uint64_t bytes, uint64_t members, Algorithm requested,
                          uint64_t direct_max_bytes);

// Data steps of one attempt (step boundaries are 0..StepCount, the last one just before
// the agreement round).
uint64_t StepCount(OpType op, Algorithm algorithm, uint64_t members);

// nccl-tests' bus-bandwidth factor: busbw = algbw * factor for n ranks.
double BusBandwidthFactor(OpType op, uint64_t n);

}  // namespace tidal::coll
