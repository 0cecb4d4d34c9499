// Plain types shared by the store's master, client and protocol.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tidal::store {

// How an object is stored. Validated by the master: replica_num in [1, kMaxReplicas].
struct ReplicateConfig {
  uint32_t replica_num = 1;
  // Engine segment names ("node3") that should hold replicas, tried first and in this
  // order; the rest are placed by free space. A preferred segment that is not mounted or
  // full is skipped, never an error.
  std::vector<std::string> preferred_segments;
  // Never evicted; removed only by Remove(key, /*force=*/true).
  bool hard_pin = false;
  // Evicted only after every unpinned candidate, until the TTL (from PutEnd) lapses.
  // 0: no soft pin.
  uint64_t soft_pin_ttl_ns = 0;
};

constexpr uint32_t kMaxReplicas = 16;
constexpr size_t kMaxKeyBytes = 4096;

// Where one replica of an object lives: a range in a mounted segment.
struct ReplicaLocation {
  std::string segment;  // engine segment name of the holder ("node3")
  uint64_t addr = 0;    // remote address inside the holder's mounted range
  uint64_t size = 0;
  bool operator==(const ReplicaLocation&) const = default;
};

// What Stat reports about a complete object.
struct ObjectInfo {
  uint64_t size = 0;
  // Assigned by the master at PutStart (PutCommit) from one counter that never goes back, so a key
  // that is removed and put again always gets a larger generation (README: generations).
  uint64_t generation = 0;
};

}  // namespace tidal::store
