// The byte codec every binary format is built on: values come back as written, in
// little-endian order; the reader fails instead of reading past its input; lengths and
// element counts that the rest of the input cannot hold fail before anything is allocated.
#include "tidal/codec.h"

#include <gtest/gtest.h>

#include <string>

namespace tidal {
namespace {

TEST(Codec, WritesLittleEndianAndReadsBack) {
  ByteWriter w;
  w.U8(0x01);
  w.U16(0x0302);
  w.U32(0x07060504);
  w.U64(0x0f0e0d0c0b0a0908ULL);
  w.I32(-2);
  w.I64(-3);
  w.Str("ab");
  w.Bytes("xyz");
  const std::string bytes = w.Take();
  ASSERT_EQ(bytes.size(), 1u + 2 + 4 + 8 + 4 + 8 + 4 + 2 + 3);
  for (int i = 0; i < 15; ++i) EXPECT_EQ(static_cast<uint8_t>(bytes[i]), i + 1) << i;

  ByteReader r(bytes);
  uint8_t u8 = 0;
  uint16_t u16 = 0;
  uint32_t u32 = 0;
  uint64_t u64 = 0;
  int32_t i32 = 0;
  int64_t i64 = 0;
  std::string s;
  std::string_view raw;
  ASSERT_TRUE(r.U8(&u8) && r.U16(&u16) && r.U32(&u32) && r.U64(&u64));
  ASSERT_TRUE(r.I32(&i32) && r.I64(&i64) && r.Str(&s, 2));
  EXPECT_EQ(u8, 0x01);
  EXPECT_EQ(u16, 0x0302);
  EXPECT_EQ(u32, 0x07060504u);
  EXPECT_EQ(u64, 0x0f0e0d0c0b0a0908ULL);
  EXPECT_EQ(i32, -2);
  EXPECT_EQ(i64, -3);
  EXPECT_EQ(s, "ab");
  EXPECT_FALSE(r.done());
  ASSERT_TRUE(r.Bytes(&raw, 2));
  EXPECT_EQ(raw, "xy");
  EXPECT_EQ(r.Rest(), "z");
  EXPECT_TRUE(r.done());
  EXPECT_FALSE(r.U8(&u8));
}

TEST(Codec, NeverReadsPastTheInput) {
  const std::string three("\x01\x02\x03", 3);
  ByteReader r(three);
  uint32_t u32 = 0;
  EXPECT_FALSE(r.U32(&u32));
  EXPECT_EQ(r.position(), 0u);  // a failed read consumes nothing
  std::string_view raw;
  EXPECT_FALSE(r.Bytes(&raw, 4));
  EXPECT_TRUE(r.Bytes(&raw, 3));
}

TEST(Codec, StringLengthIsBoundedByTheLimitAndTheInput) {
  ByteWriter w;
  w.Str("hello");
  const std::string bytes = w.Take();
  std::string s;
  EXPECT_FALSE(ByteReader(bytes).Str(&s, 4));  // above the caller's bound
  EXPECT_FALSE(ByteReader(std::string_view(bytes).substr(0, 8)).Str(&s, 16));  // cut off
  EXPECT_TRUE(ByteReader(bytes).Str(&s, 5));
  EXPECT_EQ(s, "hello");
}

TEST(Codec, CountIsCheckedBeforeAnyAllocation) {
  ByteWriter w;
  w.U32(3);
  w.U64(1);
  w.U64(2);
  w.U64(3);
  const std::string bytes = w.Take();
  uint32_t n = 99;
  EXPECT_TRUE(ByteReader(bytes).Count(&n, 3, 8));
  EXPECT_EQ(n, 3u);
  n = 99;
  EXPECT_FALSE(ByteReader(bytes).Count(&n, 2, 8));  // above the bound
  EXPECT_FALSE(ByteReader(bytes).Count(&n, 3, 9));  // 27 bytes cannot follow in 24
  EXPECT_EQ(n, 99u);                                // left alone on failure

  ByteWriter huge;
  huge.U32(0xffffffffu);  // four bytes claiming four billion elements
  EXPECT_FALSE(ByteReader(huge.Take()).Count(&n, SIZE_MAX, 1));
}

}  // namespace
}  // namespace tidal
