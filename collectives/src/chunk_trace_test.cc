// The chunk timeline records nothing until enabled, keeps events in recording order with
// the timestamps the recorder passed, drops (and counts) what exceeds its capacity, and
// Take clears what it returns.
#include "tidal/collectives/chunk_trace.h"

#include <gtest/gtest.h>

namespace tidal::coll::trace {
namespace {

TEST(ChunkTrace, RecordsOnlyWhenEnabledInOrderAndCountsDrops) {
  Enable(0);
  EXPECT_FALSE(Enabled());
  Record(Ev::kOpStart, 0, 1, 5);
  EXPECT_TRUE(Take().empty());

  Enable(3);
  EXPECT_TRUE(Enabled());
  Record(Ev::kOpStart, 1, 7, 100);
  Record(Ev::kWriteStart, 1, 0, 150);
  Record(Ev::kWriteDone, 1, 0, 175);
  Record(Ev::kFinalizeDone, 1, 7, 200);  // past the capacity: dropped
  uint64_t dropped = 0;
  std::vector<Entry> got = Take(&dropped);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(dropped, 1u);
  EXPECT_EQ(got[0].ev, Ev::kOpStart);
  EXPECT_EQ(got[0].seq, 7u);
  EXPECT_EQ(got[0].rank, 1);
  EXPECT_EQ(got[1].ev, Ev::kWriteStart);
  EXPECT_EQ(got[2].ev, Ev::kWriteDone);
  EXPECT_EQ(got[0].ns, 100u);
  EXPECT_EQ(got[1].ns, 150u);
  EXPECT_EQ(got[2].ns, 175u);

  // Take cleared the buffer; recording goes on.
  EXPECT_TRUE(Take().empty());
  Record(Ev::kArrived, 0, 4, 300);
  got = Take(&dropped);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(dropped, 0u);
  EXPECT_EQ(got[0].ev, Ev::kArrived);
  EXPECT_EQ(got[0].ns, 300u);
  Enable(0);
  EXPECT_FALSE(Enabled());
}

}  // namespace
}  // namespace tidal::coll::trace
