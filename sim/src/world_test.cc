// Unit tests of the simulator's core: the tape (seeded, byte-fed, recorded), the event
// queue (time then sequence order, timers that cancel, deadlock detection), hung nodes
// deferring their events in order, crashed nodes dropping theirs, and the trace digest.
#include <gtest/gtest.h>

#include <set>

#include "tidal/sim/tape.h"
#include "tidal/sim/trace.h"
#include "tidal/sim/world.h"

namespace tidal::sim {
namespace {

TEST(Tape, SameSeedSameDrawsDifferentSeedsDiffer) {
  Tape a = Tape::FromSeed(5), b = Tape::FromSeed(5), c = Tape::FromSeed(6);
  bool differs = false;
  for (int i = 0; i < 100; ++i) {
    const uint64_t x = a.Next();
    EXPECT_EQ(x, b.Next());
    differs |= x != c.Next();
  }
  EXPECT_TRUE(differs);
  EXPECT_EQ(a.position(), 100u);
}

TEST(Tape, BelowStaysInRangeAndCoversIt) {
  Tape t = Tape::FromSeed(1);
  std::set<uint64_t> seen;
  for (int i = 0; i < 1000; ++i) {
    const uint64_t v = t.Below(7);
    ASSERT_LT(v, 7u);
    seen.insert(v);
  }
  EXPECT_EQ(seen.size(), 7u);
  EXPECT_EQ(t.Below(1), 0u);
  for (int i = 0; i < 100; ++i) {
    const uint64_t v = t.Between(10, 12);
    ASSERT_TRUE(v >= 10 && v <= 12);
  }
}

TEST(Tape, BytesAreReadLittleEndianThenZero) {
  const uint8_t bytes[] = {1, 0, 0, 0, 0, 0, 0, 0, 2};
  Tape t = Tape::FromBytes(bytes);
  EXPECT_EQ(t.Next(), 1u);
  EXPECT_EQ(t.Next(), 2u);
  EXPECT_EQ(t.Next(), 0u);
}

TEST(Tape, RecordedDrawsReplayExactly) {
  Tape t = Tape::FromSeed(9);
  t.StartRecording();
  std::vector<uint64_t> want;
  for (int i = 0; i < 10; ++i) want.push_back(t.Below(1000));
  Tape r = Tape::FromDraws(t.recorded());
  for (int i = 0; i < 10; ++i) EXPECT_EQ(r.Below(1000), want[i]);
}

WorldOptions Quiet(size_t nodes) {
  WorldOptions o;
  o.nodes = nodes;
  o.schedule_jitter_ns = 0;
  o.max_clock_offset_ns = 0;
  return o;
}

TEST(World, EventsRunInTimeThenSubmissionOrder) {
  World w(Quiet(2));
  std::vector<int> order;
  w.ScheduleAt(200, 0, [&] { order.push_back(3); });
  w.ScheduleAt(100, 1, [&] { order.push_back(1); });
  w.ScheduleAt(100, 0, [&] { order.push_back(2); });
  EXPECT_TRUE(w.RunUntilIdle());
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(w.NowNs(), 200u);
}

TEST(World, TimersCancelOnce) {
  World w(Quiet(1));
  int fired = 0;
  TimerId a = w.env(0).ScheduleAfter(10, [&] { ++fired; });
  TimerId b = w.env(0).ScheduleAfter(20, [&] { fired += 10; });
  EXPECT_TRUE(w.env(0).CancelTimer(a));
  EXPECT_FALSE(w.env(0).CancelTimer(a));
  w.RunUntilIdle();
  EXPECT_EQ(fired, 10);
  EXPECT_FALSE(w.env(0).CancelTimer(b));  // it fired
}

TEST(World, RunUntilReportsADeadlock) {
  World w(Quiet(1));
  bool never = false;
  EXPECT_FALSE(w.RunUntil([&] { return never; }));
}

TEST(World, HungNodeDefersItsEventsInOrder) {
  World w(Quiet(2));
  w.Hang(1, 1000);
  std::vector<std::pair<int, uint64_t>> ran;
  w.ScheduleAt(10, 1, [&] { ran.emplace_back(1, w.NowNs()); });
  w.ScheduleAt(20, 1, [&] { ran.emplace_back(2, w.NowNs()); });
  w.ScheduleAt(30, 0, [&] { ran.emplace_back(3, w.NowNs()); });
  w.RunUntilIdle();
  ASSERT_EQ(ran.size(), 3u);
  EXPECT_EQ(ran[0], (std::pair<int, uint64_t>{3, 30}));
  EXPECT_EQ(ran[1], (std::pair<int, uint64_t>{1, 1000}));
  EXPECT_EQ(ran[2], (std::pair<int, uint64_t>{2, 1000}));
}

TEST(World, CrashedNodeRunsNothing) {
  World w(Quiet(2));
  int ran = 0;
  w.ScheduleAt(10, 1, [&] { ++ran; });
  w.ScheduleAt(10, 0, [&] { ++ran; });
  w.Crash(1);
  w.RunUntilIdle();
  EXPECT_EQ(ran, 1);
  EXPECT_FALSE(w.alive(1));
  EXPECT_EQ(w.injected(FaultKind::kCrash), 1u);
}

TEST(World, PartitionsCutBothWaysUntilTheyEnd) {
  World w(Quiet(3));
  w.Partition({0}, {1, 2}, 100);
  EXPECT_FALSE(w.Linked(0, 1));
  EXPECT_FALSE(w.Linked(2, 0));
  EXPECT_TRUE(w.Linked(1, 2));
  w.RunUntilTime(100);
  EXPECT_TRUE(w.Linked(0, 1));
}

TEST(World, ScriptedRuleFiresOnItsNthMatchOnly) {
  WorldOptions o = Quiet(3);
  o.faults = *FaultPlan::Parse("short_read src=1 dst=2 nth=2 by=5\n");
  World w(o);
  uint64_t amount = 0;
  EXPECT_FALSE(w.ShouldInject(FaultKind::kShortRead, 1, 2, &amount));
  EXPECT_FALSE(w.ShouldInject(FaultKind::kShortRead, 0, 2, &amount));  // not matching
  EXPECT_TRUE(w.ShouldInject(FaultKind::kShortRead, 1, 2, &amount));
  EXPECT_EQ(amount, 5u);
  EXPECT_FALSE(w.ShouldInject(FaultKind::kShortRead, 1, 2, &amount));
  EXPECT_FALSE(w.ShouldInject(FaultKind::kShortWrite, 1, 2, &amount));
}

TEST(Trace, DigestCoversEveryFieldAndLinesParse) {
  Trace a, b, c;
  a.EnableLines(true);
  a.Record(5, 1, "xfer.submit", 3, {{"id", uint64_t{7}}, {"kind", "read"}});
  b.Record(5, 1, "xfer.submit", 3, {{"id", uint64_t{7}}, {"kind", "read"}});
  c.Record(5, 1, "xfer.submit", 3, {{"id", uint64_t{8}}, {"kind", "read"}});
  EXPECT_EQ(a.digest(), b.digest());
  EXPECT_NE(a.digest(), c.digest());
  ASSERT_EQ(a.lines().size(), 1u);
  EXPECT_EQ(a.lines()[0], R"({"t":5,"node":1,"op":"xfer.submit","tape":3,"id":7,"kind":"read"})");
  auto e = Trace::ParseLine(a.lines()[0]);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->time_ns, 5u);
  EXPECT_EQ(e->op, "xfer.submit");
  EXPECT_EQ(e->args.size(), 2u);
  EXPECT_EQ(Trace::ParseLine(R"({"t":"x"})").code(), ErrorCode::CORRUPT_INPUT);
  EXPECT_EQ(Trace::ParseLine("[1,2]").code(), ErrorCode::CORRUPT_INPUT);
}

TEST(PlantedBugs, NamesRoundTrip) {
  for (PlantedBug b : {PlantedBug::kNone, PlantedBug::kShortAsComplete,
                       PlantedBug::kIgnoreRemoteKey}) {
    EXPECT_EQ(*ParsePlantedBug(PlantedBugName(b)), b);
  }
  EXPECT_EQ(ParsePlantedBug("nope").code(), ErrorCode::INVALID_PARAMS);
}

}  // namespace
}  // namespace tidal::sim
