// First-fit range allocator (see allocator.h).
#include "tidal/store/allocator.h"

#include <iterator>

#include "tidal/assert.h"

namespace tidal::store {

RangeAllocator::RangeAllocator(uint64_t capacity) : capacity_(capacity & ~(kAlignment - 1)) {
  if (capacity_ > 0) free_.emplace(0, capacity_);
}

std::optional<uint64_t> RangeAllocator::Allocate(uint64_t size) {
  TIDAL_ASSERT(size > 0);
  if (size > capacity_) return std::nullopt;
  uint64_t need = Round(size);
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    if (it->second < need) continue;
    uint64_t offset = it->first;
    uint64_t rest = it->second - need;
    free_.erase(it);
    if (rest > 0) free_.emplace(offset + need, rest);
    allocated_.emplace(offset, need);
    used_ += need;
    TIDAL_ASSERT(used_ <= capacity_);
    return offset;
  }
  return std::nullopt;
}

bool RangeAllocator::AllocateAt(uint64_t offset, uint64_t size) {
  if (size == 0 || offset % kAlignment != 0 || offset > capacity_) return false;
  const uint64_t need = Round(size);
  if (need > capacity_ - offset) return false;
  // The free range that starts at or before `offset` must cover all of it.
  auto it = free_.upper_bound(offset);
  if (it == free_.begin()) return false;
  --it;
  const uint64_t start = it->first, length = it->second;
  if (start + length < offset + need) return false;
  free_.erase(it);
  if (offset > start) free_.emplace(start, offset - start);
  if (start + length > offset + need) free_.emplace(offset + need, start + length - offset - need);
  allocated_.emplace(offset, need);
  used_ += need;
  return true;
}

void RangeAllocator::Free(uint64_t offset, uint64_t size) {
  auto a = allocated_.find(offset);
  TIDAL_ASSERT_MSG(a != allocated_.end(), "RangeAllocator::Free of a range never allocated");
  TIDAL_ASSERT(a->second == Round(size));
  uint64_t length = a->second;
  allocated_.erase(a);
  used_ -= length;
  auto next = free_.lower_bound(offset);
  TIDAL_ASSERT(next == free_.end() || next->first >= offset + length);  // no double free
  if (next != free_.end() && next->first == offset + length) {
    length += next->second;
    next = free_.erase(next);
  }
  if (next != free_.begin()) {
    auto prev = std::prev(next);
    TIDAL_ASSERT(prev->first + prev->second <= offset);
    if (prev->first + prev->second == offset) {
      prev->second += length;
      return;
    }
  }
  free_.emplace(offset, length);
}

uint64_t RangeAllocator::largest_free() const {
  uint64_t best = 0;
  for (const auto& [offset, length] : free_) best = length > best ? length : best;
  return best;
}

}  // namespace tidal::store
