// The memory registry enforces the registration rules of docs/architecture.md (Memory): zero length and null
// are INVALID_PARAMS, overlaps ADDRESS_OVERLAPPED, local ranges must lie wholly inside one
// region, remote access needs the window and the key, and a region in use cannot go.
#include <gtest/gtest.h>

#include "tidal/memory.h"
#include "tidal/segment.h"

namespace tidal {
namespace {

TEST(MemoryRegistry, RejectsZeroLengthNullAndWrap) {
  MemoryRegistry r;
  EXPECT_EQ(r.Add({0x1000, 0, {}, 1}).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(r.Add({0, 16, {}, 1}).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(r.Add({UINT64_MAX - 4, 16, {}, 1}).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(r.size(), 0u);
}

TEST(MemoryRegistry, RejectsEveryKindOfOverlap) {
  MemoryRegistry r;
  ASSERT_TRUE(r.Add({0x1000, 0x100, {}, 1}).ok());
  EXPECT_EQ(r.Add({0x1000, 0x100, {}, 2}).code(), ErrorCode::ADDRESS_OVERLAPPED);  // same
  EXPECT_EQ(r.Add({0x0f80, 0x81, {}, 2}).code(), ErrorCode::ADDRESS_OVERLAPPED);   // head
  EXPECT_EQ(r.Add({0x10ff, 0x10, {}, 2}).code(), ErrorCode::ADDRESS_OVERLAPPED);   // tail
  EXPECT_EQ(r.Add({0x1010, 0x10, {}, 2}).code(), ErrorCode::ADDRESS_OVERLAPPED);   // inside
  EXPECT_EQ(r.Add({0x0f00, 0x400, {}, 2}).code(), ErrorCode::ADDRESS_OVERLAPPED);  // around
  EXPECT_TRUE(r.Add({0x0f80, 0x80, {}, 2}).ok());  // touching is fine
  EXPECT_TRUE(r.Add({0x1100, 0x80, {}, 3}).ok());
  EXPECT_EQ(r.size(), 3u);
}

TEST(MemoryRegistry, LocalRangeMustLieInOneRegion) {
  MemoryRegistry r;
  ASSERT_TRUE(r.Add({0x1000, 0x100, {}, 1}).ok());
  ASSERT_TRUE(r.Add({0x1100, 0x100, {}, 2}).ok());
  EXPECT_TRUE(r.FindLocal(0x1000, 0x100).ok());
  EXPECT_EQ(r.FindLocal(0x1000, 0x100)->rkey, 1u);
  EXPECT_EQ(r.FindLocal(0x10f0, 0x20).code(), ErrorCode::ADDRESS_NOT_REGISTERED);  // spans two
  EXPECT_EQ(r.FindLocal(0x0fff, 2).code(), ErrorCode::ADDRESS_NOT_REGISTERED);
  EXPECT_EQ(r.FindLocal(0x11ff, 2).code(), ErrorCode::ADDRESS_NOT_REGISTERED);
  EXPECT_EQ(r.FindLocal(0x1000, 0).code(), ErrorCode::ADDRESS_NOT_REGISTERED);
}

TEST(MemoryRegistry, RemoteAccessNeedsWindowAndKey) {
  MemoryRegistry r;
  ASSERT_TRUE(r.Add({0x1000, 0x100, {}, 0xabc}).ok());
  EXPECT_TRUE(r.CheckRemote(0x1000, 0x100, 0xabc).ok());
  EXPECT_EQ(r.CheckRemote(0x1000, 0x100, 0xabd).code(), ErrorCode::REMOTE_ACCESS_DENIED);
  EXPECT_EQ(r.CheckRemote(0x1001, 0x100, 0xabc).code(), ErrorCode::REMOTE_ACCESS_DENIED);
}

TEST(MemoryRegistry, RegionInUseCannotBeRemoved) {
  MemoryRegistry r;
  ASSERT_TRUE(r.Add({0x1000, 0x100, {}, 1}).ok());
  r.AddInFlight(0x1000, +2);
  EXPECT_EQ(r.Remove(0x1000).code(), ErrorCode::BATCH_BUSY);
  r.AddInFlight(0x1000, -2);
  EXPECT_EQ(r.Remove(0x1010).code(), ErrorCode::INVALID_PARAMS);  // not a region start
  ASSERT_TRUE(r.Remove(0x1000).ok());
  EXPECT_EQ(r.FindLocal(0x1000, 1).code(), ErrorCode::ADDRESS_NOT_REGISTERED);
}

TEST(Location, ParsesAndPrints) {
  EXPECT_EQ(Location::Parse("host")->ToString(), "host");
  EXPECT_EQ(Location::Parse("cuda:3")->ToString(), "cuda:3");
  EXPECT_EQ(Location::Parse("cuda:").code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(Location::Parse("cuda:-1").code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(Location::Parse("gpu0").code(), ErrorCode::INVALID_PARAMS);
  EXPECT_NE(Location::Parse("gpu0").status().message().find("gpu0"), std::string::npos);
}

}  // namespace
}  // namespace tidal
