// Reachability marks: counts, SOMETIMES true/false, and marks whose code never ran are
// registered anyway and listed as unreached.
#include <gtest/gtest.h>

#include "tidal/reach.h"

namespace tidal {
namespace {

void Twice() {
  TIDAL_REACHABLE("test.reach.twice");
}

void Sometimes(int x) { TIDAL_SOMETIMES(x > 2, "test.reach.above_two"); }

// Never called: its mark must still be registered, and listed as unreached.
[[maybe_unused]] void NeverCalled() { TIDAL_REACHABLE("test.reach.never"); }

void SharedA() { TIDAL_REACHABLE("test.reach.shared"); }
void SharedB() { TIDAL_REACHABLE("test.reach.shared"); }

reach::PointCount Find(const std::string& name) {
  for (const reach::PointCount& c : reach::Snapshot("test.reach.")) {
    if (c.name == name) return c;
  }
  ADD_FAILURE() << name << " is not registered";
  return {};
}

TEST(Reach, CountsHitsAndListsUnreachedMarks) {
  reach::Reset();
  // Every mark of this file is known before any of them ran.
  std::vector<reach::PointCount> before = reach::Snapshot("test.reach.");
  ASSERT_EQ(before.size(), 4u);
  EXPECT_EQ(before[0].name, "test.reach.above_two");
  EXPECT_EQ(before[1].name, "test.reach.never");
  EXPECT_EQ(before[2].name, "test.reach.shared");
  EXPECT_EQ(before[3].name, "test.reach.twice");
  EXPECT_EQ(reach::Unreached("test.reach.").size(), 4u);

  Twice();
  Twice();
  SharedA();
  SharedB();
  SharedA();
  EXPECT_EQ(Find("test.reach.twice").hits, 2u);
  EXPECT_TRUE(Find("test.reach.twice").reached());
  EXPECT_EQ(Find("test.reach.shared").hits, 3u);  // two sites, one point

  Sometimes(1);
  Sometimes(2);
  reach::PointCount s = Find("test.reach.above_two");
  EXPECT_TRUE(s.sometimes);
  EXPECT_EQ(s.hits, 2u);
  EXPECT_EQ(s.true_hits, 0u);
  EXPECT_FALSE(s.reached());  // ran, but its condition never held
  Sometimes(3);
  s = Find("test.reach.above_two");
  EXPECT_EQ(s.hits, 3u);
  EXPECT_EQ(s.true_hits, 1u);
  EXPECT_TRUE(s.reached());

  std::vector<reach::PointCount> un = reach::Unreached("test.reach.");
  ASSERT_EQ(un.size(), 1u);
  EXPECT_EQ(un[0].name, "test.reach.never");
  EXPECT_EQ(un[0].hits, 0u);
  EXPECT_EQ(reach::Report({"test.reach."}),
            "reach marks: 3 of 4 reached\n  never reached: test.reach.never (REACHABLE)\n");

  reach::Reset();
  EXPECT_EQ(Find("test.reach.twice").hits, 0u);
  EXPECT_EQ(reach::Unreached("test.reach.").size(), 4u);
  Sometimes(0);
  EXPECT_EQ(reach::Report({"test.reach.above"}),
            "reach marks: 0 of 1 reached\n  never reached: test.reach.above_two (SOMETIMES: ran "
            "1 times, never true)\n");
}

TEST(Reach, TheConditionIsEvaluatedOnce) {
  int evaluated = 0;
  TIDAL_SOMETIMES(++evaluated == 1, "test.once.evaluated");
  EXPECT_EQ(evaluated, 1);
  std::vector<reach::PointCount> once = reach::Snapshot("test.once.");
  ASSERT_EQ(once.size(), 1u);
  EXPECT_EQ(once[0].hits, 1u);
  EXPECT_EQ(once[0].true_hits, 1u);
}

}  // namespace
}  // namespace tidal
