// RangeAllocator: hands out ranges of one mounted segment (offsets from its base).
//
// First fit over an ordered free list, with coalescing on free; every range is aligned to
// kAlignment. Deterministic: the same calls give the same offsets.
//
// Thread safety: none; owned by the master's state machine.
#pragma once

#include <cstdint>
#include <map>
#include <optional>

namespace tidal::store {

class RangeAllocator {
 public:
  static constexpr uint64_t kAlignment = 64;

  explicit RangeAllocator(uint64_t capacity);

  // An offset of `size` (> 0) bytes, or nullopt if no free range fits.
  std::optional<uint64_t> Allocate(uint64_t size);
  // Takes exactly [offset, offset + size) (size rounded up as Allocate does), for a master
  // that rebuilds its allocations from its journal. False, changing nothing, if that range
  // is not wholly free or is unaligned.
  bool AllocateAt(uint64_t offset, uint64_t size);
  // Returns a range given by Allocate (same offset and size; asserted).
  void Free(uint64_t offset, uint64_t size);

  uint64_t capacity() const { return capacity_; }
  uint64_t used() const { return used_; }
  uint64_t largest_free() const;
  size_t free_ranges() const { return free_.size(); }

 private:
  static uint64_t Round(uint64_t size) { return (size + kAlignment - 1) & ~(kAlignment - 1); }
  uint64_t capacity_;
  uint64_t used_ = 0;
  std::map<uint64_t, uint64_t> free_;       // offset -> length
  std::map<uint64_t, uint64_t> allocated_;  // offset -> rounded length (checks Free)
};

}  // namespace tidal::store
