// Schedule math (see schedule.h).
#include "tidal/collectives/schedule.h"

#include "tidal/assert.h"

namespace tidal::coll {

Span Partition(uint64_t count, uint64_t parts, uint64_t index) {
  TIDAL_ASSERT(parts > 0 && index < parts);
  uint64_t base = count / parts;
  uint64_t rem = count % parts;
  uint64_t offset = index * base + (index < rem ? index : rem);
  return Span{offset, base + (index < rem ? 1 : 0)};
}

uint64_t ChunkCount(uint64_t bytes, uint64_t chunk_bytes) {
  TIDAL_ASSERT(chunk_bytes > 0);
  return (bytes + chunk_bytes - 1) / chunk_bytes;
}

Algorithm ChooseAlgorithm(OpType op, uint64_t bytes, uint64_t members, Algorithm requested,
                          uint64_t direct_max_bytes) {
  switch (op) {
    case OpType::kAllReduce:
    case OpType::kAllGather:
    case OpType::kReduceScatter:
    case OpType::kBroadcast:
    case OpType::kReduce:
      if (requested == Algorithm::kSplit) {
        const bool splits =
            op == OpType::kAllReduce || op == OpType::kReduce || op == OpType::kBroadcast;
        return splits && members > 2 ? Algorithm::kSplit : Algorithm::kDirect;
      }
      if (requested != Algorithm::kAuto) return requested;
      if (members <= 2 || bytes <= direct_max_bytes) return Algorithm::kDirect;
      return Algorithm::kRing;
    default:
      return Algorithm::kDirect;
  }
}

uint64_t StepCount(OpType op, Algorithm algorithm, uint64_t members) {
  if (op == OpType::kBarrier || members <= 1) return 0;
  if (algorithm == Algorithm::kSplit) return 2;
  if (algorithm != Algorithm::kRing) return 1;
  switch (op) {
    case OpType::kAllReduce:
      return 2 * (members - 1);
    case OpType::kAllGather:
    case OpType::kReduceScatter:
      return members - 1;
    case OpType::kBroadcast:
      return 1;  // one pipelined chain
    case OpType::kReduce:
      return members;  // reduce-scatter, then a gather to the root
    default:
      return 1;
  }
}

double BusBandwidthFactor(OpType op, uint64_t n) {
  if (n == 0) return 0;
  double d = static_cast<double>(n);
  switch (op) {
    case OpType::kAllReduce:
      return 2.0 * (d - 1) / d;
    case OpType::kAllGather:
    case OpType::kReduceScatter:
    case OpType::kAllToAll:
    case OpType::kGather:
    case OpType::kScatter:
      return (d - 1) / d;
    default:
      return 1.0;
  }
}

}  // namespace tidal::coll
