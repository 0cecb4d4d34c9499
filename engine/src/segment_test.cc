// Segment descriptors round-trip through their binary encoding, and the decoder rejects
// every truncation and every corrupted field with CORRUPT_INPUT (it is a fuzz target).
#include <gtest/gtest.h>

#include "tidal/metadata_store.h"
#include "tidal/segment.h"

namespace tidal {
namespace {

SegmentDescriptor Sample() {
  SegmentDescriptor d;
  d.name = "node3";
  d.transport = "sim";
  d.address = "sim:3";
  d.incarnation = 0x1234567;
  d.version = 42;
  d.regions.push_back({0x10000, 4096, Location::Host(), 0xdeadbeef});
  d.regions.push_back({0x20000, 8192, Location::Cuda(1), 0xfeed});
  return d;
}

TEST(Segment, RoundTrips) {
  const SegmentDescriptor d = Sample();
  Result<SegmentDescriptor> back = DecodeSegment(EncodeSegment(d));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, d);
  EXPECT_EQ(back->FindRegion(0x20000 + 100, 200)->rkey, 0xfeedu);
  EXPECT_EQ(back->FindRegion(0x10000 + 4000, 200), nullptr);
}

TEST(Segment, EveryTruncationIsRejected) {
  const std::string bytes = EncodeSegment(Sample());
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_EQ(DecodeSegment(bytes.substr(0, n)).code(), ErrorCode::CORRUPT_INPUT) << n;
  }
  EXPECT_EQ(DecodeSegment(bytes + "x").code(), ErrorCode::CORRUPT_INPUT);
}

TEST(Segment, CorruptFieldsAreNamed) {
  std::string bytes = EncodeSegment(Sample());
  std::string bad_magic = bytes;
  bad_magic[0] ^= 1;
  EXPECT_NE(DecodeSegment(bad_magic).status().message().find("magic"), std::string::npos);
  std::string bad_version = bytes;
  bad_version[4] = 9;
  EXPECT_NE(DecodeSegment(bad_version).status().message().find("version"), std::string::npos);
  // A region count far larger than the buffer can hold.
  SegmentDescriptor d = Sample();
  std::string enc = EncodeSegment(d);
  const size_t count_at = 4 + 2 + 2 + 8 + 8 + (4 + 5) + (4 + 3) + (4 + 5);
  enc[count_at + 3] = 0x7f;
  EXPECT_NE(DecodeSegment(enc).status().message().find("region count"), std::string::npos);
}

TEST(InMemoryMetadataStore, PutGetListDelete) {
  // The in-memory store's coroutines finish without suspending, so they can be driven
  // by hand here without an Env.
  InMemoryMetadataStore m;
  auto run = [](auto task) {
    auto h = task.handle();
    h.resume();
    EXPECT_TRUE(h.done());
    return task.TakeValue();
  };
  EXPECT_TRUE(run(m.Put("a/1", "x")).ok());
  EXPECT_TRUE(run(m.Put("a/2", "y")).ok());
  EXPECT_TRUE(run(m.Put("b/1", "z")).ok());
  EXPECT_EQ(run(m.Put("", "z")).code(), ErrorCode::INVALID_KEY);
  EXPECT_EQ(*run(m.Get("a/2")), "y");
  EXPECT_EQ(run(m.Get("a/3")).code(), ErrorCode::OBJECT_NOT_FOUND);
  KeyValues a = *run(m.List("a/"));
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].first, "a/1");
  EXPECT_EQ(a[1].second, "y");
  EXPECT_TRUE(run(m.Delete("a/1")).ok());
  EXPECT_EQ(run(m.Delete("a/1")).code(), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(m.size(), 2u);
}

}  // namespace
}  // namespace tidal
