// Unit tests of RangeAllocator: first fit, alignment, coalescing on free, exhaustion, and a
// randomized comparison against a byte map that proves no two live ranges ever overlap.
#include "tidal/store/allocator.h"

#include <gtest/gtest.h>

#include <map>
#include <vector>

namespace tidal::store {
namespace {

TEST(StoreRangeAllocator, FirstFitAlignedAndCoalescing) {
  RangeAllocator a(1024);
  EXPECT_EQ(a.Allocate(10), 0u);
  EXPECT_EQ(a.Allocate(64), 64u);
  EXPECT_EQ(a.Allocate(65), 128u);
  EXPECT_EQ(a.used(), 256u);
  a.Free(64, 64);
  EXPECT_EQ(a.Allocate(1), 64u);  // first fit reuses the hole
  a.Free(0, 10);
  a.Free(64, 1);
  a.Free(128, 65);
  EXPECT_EQ(a.used(), 0u);
  EXPECT_EQ(a.free_ranges(), 1u);
  EXPECT_EQ(a.largest_free(), 1024u);
}

TEST(StoreRangeAllocator, ExhaustionAndTooLarge) {
  RangeAllocator a(256);
  EXPECT_FALSE(a.Allocate(257).has_value());
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(a.Allocate(64).has_value());
  EXPECT_FALSE(a.Allocate(1).has_value());
}

TEST(StoreRangeAllocator, RandomNeverOverlaps) {
  RangeAllocator a(1 << 16);
  std::map<uint64_t, uint64_t> live;
  uint64_t x = 88172645463325252ull;
  auto next = [&] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  for (int step = 0; step < 5000; ++step) {
    if (live.empty() || next() % 3 != 0) {
      uint64_t size = 1 + next() % 3000;
      auto off = a.Allocate(size);
      if (!off) continue;
      EXPECT_EQ(*off % RangeAllocator::kAlignment, 0u);
      auto after = live.lower_bound(*off);
      if (after != live.end()) {
        EXPECT_GE(after->first, *off + size);
      }
      if (after != live.begin()) {
        auto before = std::prev(after);
        EXPECT_LE(before->first + before->second, *off);
      }
      live[*off] = size;
    } else {
      auto it = live.begin();
      std::advance(it, next() % live.size());
      a.Free(it->first, it->second);
      live.erase(it);
    }
  }
  for (auto& [off, size] : live) a.Free(off, size);
  EXPECT_EQ(a.used(), 0u);
  EXPECT_EQ(a.free_ranges(), 1u);
}

}  // namespace
}  // namespace tidal::store
