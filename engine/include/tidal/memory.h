// Memory locations and the registry of a node's registered regions.
//
// A region is [addr, addr+length) at a location (host or cuda:N) with a remote key that
// a peer must present. The registry enforces the memory contract (docs/architecture.md,
// "Memory"): zero length is INVALID_PARAMS, overlap with a registered region is
// ADDRESS_OVERLAPPED, a local range is usable only if it lies wholly inside one region,
// and a region with transfers in flight cannot be unregistered (BATCH_BUSY).
//
// Thread safety: none; owned and called by one TransferEngine on its executor.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tidal/status.h"

namespace tidal {

struct Location {
  enum class Kind : uint8_t { kHost = 0, kCuda = 1 };
  Kind kind = Kind::kHost;
  int32_t device = 0;  // the CUDA ordinal for kCuda, 0 for host

  static Location Host() { return {}; }
  static Location Cuda(int32_t device) { return {Kind::kCuda, device}; }
  bool is_host() const { return kind == Kind::kHost; }
  bool operator==(const Location&) const = default;

  // "host" or "cuda:N".
  std::string ToString() const;
  // Parses "host", "cpu" or "cuda:N"; INVALID_PARAMS names the bad text.
  static Result<Location> Parse(const std::string& text);
};

struct RegionInfo {
  uint64_t addr = 0;
  uint64_t length = 0;
  Location location;
  uint64_t rkey = 0;  // the remote key peers present; never 0 for a registered region
  bool operator==(const RegionInfo&) const = default;
  bool Contains(uint64_t a, uint64_t len) const {
    return len <= length && a >= addr && a - addr <= length - len;
  }
};

class MemoryRegistry {
 public:
  // Validates and records a region. INVALID_PARAMS for zero length, a null address or
  // a range that wraps; ADDRESS_OVERLAPPED if it overlaps a registered region.
  Status Add(const RegionInfo& region);

  // Checks that a region starting at `addr` could be added (same rules as Add) without
  // adding it, so a backend can be asked to register only valid ranges.
  Status CheckAdd(uint64_t addr, uint64_t length) const;

  // Removes the region that starts exactly at `addr`. INVALID_PARAMS if there is none,
  // BATCH_BUSY while transfers that use it are in flight.
  Result<RegionInfo> Remove(uint64_t addr);

  // The region that wholly contains [addr, addr+length), or ADDRESS_NOT_REGISTERED.
  Result<RegionInfo> FindLocal(uint64_t addr, uint64_t length) const;

  // For the target side: OK if [addr, addr+length) lies wholly inside one region whose
  // key is `rkey`; REMOTE_ACCESS_DENIED otherwise.
  Status CheckRemote(uint64_t addr, uint64_t length, uint64_t rkey) const;

  // In-flight accounting of the region starting at `region_addr`.
  void AddInFlight(uint64_t region_addr, int64_t delta);
  uint64_t InFlight(uint64_t region_addr) const;

  std::vector<RegionInfo> List() const;
  size_t size() const { return regions_.size(); }

 private:
  struct Entry {
    RegionInfo info;
    uint64_t in_flight = 0;
  };
  const Entry* FindEntry(uint64_t addr, uint64_t length) const;
  std::map<uint64_t, Entry> regions_;  // keyed by start address
};

}  // namespace tidal
