// Unit tests of the process group's wire formats and schedule math: every format round
// trips, every truncation or corruption is CORRUPT_INPUT (never a crash), partitions cover
// a buffer exactly, ring schedules end with each member owning its own segment, and the
// algorithm choice and busbw factors are the documented ones.
#include "wire.h"

#include <gtest/gtest.h>

#include <set>

#include "tidal/collectives/schedule.h"

namespace tidal::coll {
namespace {

TEST(Wire, DataHeaderRoundTripsAndRejectsCorruption) {
  DataHeader h;
  h.kind = DataHeader::Kind::kCredit;
  h.cls = ChannelClass::kP2p;
  h.from = 7;
  h.group = 0x1234;
  h.attempt = 99;
  h.seq = 5;
  h.bytes = 4096;
  h.tag = 3;
  h.total = 1 << 20;
  h.offset = 8192;
  std::string enc = EncodeDataHeader(h);
  auto dec = DecodeDataHeader(enc);
  ASSERT_TRUE(dec.ok());
  EXPECT_EQ(*dec, h);
  for (size_t n = 0; n < enc.size(); ++n) {
    EXPECT_EQ(DecodeDataHeader(enc.substr(0, n)).code(), ErrorCode::CORRUPT_INPUT) << n;
  }
  EXPECT_EQ(DecodeDataHeader(enc + "x").code(), ErrorCode::CORRUPT_INPUT);
  std::string bad = enc;
  bad[2] = 9;  // kind
  EXPECT_EQ(DecodeDataHeader(bad).code(), ErrorCode::CORRUPT_INPUT);
  bad[2] = 0;  // kind
  EXPECT_EQ(DecodeDataHeader(bad).code(), ErrorCode::CORRUPT_INPUT);
  bad[2] = 4;  // one past kPull
  EXPECT_EQ(DecodeDataHeader(bad).code(), ErrorCode::CORRUPT_INPUT);
  bad = enc;
  bad[3] = 5;  // class
  EXPECT_EQ(DecodeDataHeader(bad).code(), ErrorCode::CORRUPT_INPUT);
  // A pull offer (kind 3) round trips with its address in `offset`.
  DataHeader pull = h;
  pull.kind = DataHeader::Kind::kPull;
  pull.cls = ChannelClass::kColl;
  pull.offset = 0x7f00deadbe00;
  auto pulled = DecodeDataHeader(EncodeDataHeader(pull));
  ASSERT_TRUE(pulled.ok());
  EXPECT_EQ(*pulled, pull);
}

TEST(Wire, ControlRoundTripsAndRejectsCorruption) {
  ControlMessage m;
  m.kind = ControlMessage::Kind::kDecision;
  m.from = 3;
  m.group = 42;
  m.op = 1000;
  m.epoch = 2;
  m.done = true;
  m.commit = true;
  m.dead = 0b1010;
  m.view = 0b0101;
  std::string enc = EncodeControl(m);
  auto dec = DecodeControl(enc);
  ASSERT_TRUE(dec.ok());
  EXPECT_EQ(*dec, m);
  for (size_t n = 0; n < enc.size(); ++n) {
    EXPECT_EQ(DecodeControl(enc.substr(0, n)).code(), ErrorCode::CORRUPT_INPUT);
  }
  std::string bad = enc;
  bad[0] = 0;
  EXPECT_EQ(DecodeControl(bad).code(), ErrorCode::CORRUPT_INPUT);
  bad = enc;
  bad[3] = 0x10;  // unknown flag
  EXPECT_EQ(DecodeControl(bad).code(), ErrorCode::CORRUPT_INPUT);
}

TEST(Wire, BootstrapRoundTripsAndRejectsCorruption) {
  BootstrapRecord r{3, 8, 4096, 0x7f0000001000, 1 << 20, "node3", "node3"};
  std::string enc = EncodeBootstrap(r);
  auto dec = DecodeBootstrap(enc);
  ASSERT_TRUE(dec.ok());
  EXPECT_EQ(*dec, r);
  for (size_t n = 0; n < enc.size(); ++n) {
    EXPECT_EQ(DecodeBootstrap(enc.substr(0, n)).code(), ErrorCode::CORRUPT_INPUT);
  }
  EXPECT_EQ(DecodeBootstrap(enc + "z").code(), ErrorCode::CORRUPT_INPUT);
}

TEST(Wire, GroupHashSeparatesNames) {
  EXPECT_NE(GroupHash("a"), GroupHash("b"));
  EXPECT_EQ(GroupHash("default"), GroupHash("default"));
}

TEST(Schedule, PartitionCoversEveryElementOnce) {
  for (uint64_t count : {0, 1, 7, 8, 9, 1000, 1001}) {
    for (uint64_t parts = 1; parts <= 9; ++parts) {
      uint64_t next = 0;
      for (uint64_t j = 0; j < parts; ++j) {
        Span s = Partition(count, parts, j);
        EXPECT_EQ(s.offset, next);
        EXPECT_LE(s.count, count / parts + 1);
        EXPECT_GE(s.count, count / parts);
        next = s.offset + s.count;
      }
      EXPECT_EQ(next, count);
    }
  }
}

TEST(Schedule, ChunkCount) {
  EXPECT_EQ(ChunkCount(0, 256), 0u);
  EXPECT_EQ(ChunkCount(1, 256), 1u);
  EXPECT_EQ(ChunkCount(256, 256), 1u);
  EXPECT_EQ(ChunkCount(257, 256), 2u);
}

// Simulates which contributions each segment holds through the ring reduce-scatter
// schedule used by pg_algorithms.cc: member i must end with segment i holding all m.
TEST(Schedule, RingReduceScatterEndsWithOwnSegmentComplete) {
  for (uint64_t m = 2; m <= 8; ++m) {
    // have[i][seg] = set of contributions in member i's copy of seg
    std::vector<std::vector<std::set<uint64_t>>> have(m, std::vector<std::set<uint64_t>>(m));
    for (uint64_t i = 0; i < m; ++i) {
      for (uint64_t s = 0; s < m; ++s) have[i][s] = {i};
    }
    for (uint64_t step = 0; step + 1 < m; ++step) {
      auto before = have;
      for (uint64_t i = 0; i < m; ++i) {
        uint64_t prev = (i + m - 1) % m;
        uint64_t seg = RingSub(i, step + 2, m);
        // prev sends RingSub(prev, step + 1) which must be the segment i folds.
        ASSERT_EQ(RingSub(prev, step + 1, m), seg);
        for (auto c : before[prev][seg]) have[i][seg].insert(c);
      }
    }
    for (uint64_t i = 0; i < m; ++i) EXPECT_EQ(have[i][i].size(), m) << "m=" << m << " i=" << i;
  }
}

TEST(Schedule, AlgorithmChoiceBySize) {
  EXPECT_EQ(ChooseAlgorithm(OpType::kAllReduce, 1024, 4, Algorithm::kAuto, 65536),
            Algorithm::kDirect);
  EXPECT_EQ(ChooseAlgorithm(OpType::kAllReduce, 1 << 20, 4, Algorithm::kAuto, 65536),
            Algorithm::kRing);
  EXPECT_EQ(ChooseAlgorithm(OpType::kAllReduce, 1 << 20, 2, Algorithm::kAuto, 65536),
            Algorithm::kDirect);
  EXPECT_EQ(ChooseAlgorithm(OpType::kAllReduce, 1, 4, Algorithm::kRing, 65536), Algorithm::kRing);
  EXPECT_EQ(ChooseAlgorithm(OpType::kGather, 1 << 20, 4, Algorithm::kRing, 65536),
            Algorithm::kDirect);
  EXPECT_EQ(StepCount(OpType::kAllReduce, Algorithm::kRing, 4), 6u);
  EXPECT_EQ(StepCount(OpType::kReduce, Algorithm::kRing, 4), 4u);
  EXPECT_EQ(StepCount(OpType::kAllGather, Algorithm::kRing, 4), 3u);
  EXPECT_EQ(StepCount(OpType::kBarrier, Algorithm::kDirect, 4), 0u);
  EXPECT_EQ(StepCount(OpType::kAllReduce, Algorithm::kDirect, 1), 0u);
}

TEST(Schedule, SplitOnlyWhereItSplitsAndWithThreeOrMoreMembers) {
  for (OpType op : {OpType::kAllReduce, OpType::kReduce, OpType::kBroadcast}) {
    EXPECT_EQ(ChooseAlgorithm(op, 1 << 20, 3, Algorithm::kSplit, 65536), Algorithm::kSplit);
    EXPECT_EQ(ChooseAlgorithm(op, 1, 8, Algorithm::kSplit, 65536), Algorithm::kSplit);
    EXPECT_EQ(ChooseAlgorithm(op, 1 << 20, 2, Algorithm::kSplit, 65536), Algorithm::kDirect);
    EXPECT_EQ(StepCount(op, Algorithm::kSplit, 4), 2u);
    // Never chosen by kAuto.
    EXPECT_NE(ChooseAlgorithm(op, 1 << 20, 4, Algorithm::kAuto, 65536), Algorithm::kSplit);
  }
  for (OpType op : {OpType::kAllGather, OpType::kReduceScatter, OpType::kAllToAll, OpType::kGather,
                    OpType::kScatter}) {
    EXPECT_EQ(ChooseAlgorithm(op, 1 << 20, 4, Algorithm::kSplit, 65536), Algorithm::kDirect);
  }
  EXPECT_EQ(StepCount(OpType::kAllReduce, Algorithm::kSplit, 1), 0u);
  EXPECT_EQ(AlgorithmName(Algorithm::kSplit), "split");
  for (Algorithm a : {Algorithm::kAuto, Algorithm::kDirect, Algorithm::kRing, Algorithm::kSplit}) {
    Result<Algorithm> parsed = ParseAlgorithm(AlgorithmName(a));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, a);
  }
  Result<Algorithm> bad = ParseAlgorithm("tree");
  EXPECT_EQ(bad.code(), ErrorCode::INVALID_PARAMS);
  EXPECT_NE(bad.status().message().find("'tree'"), std::string::npos) << bad.status().ToString();
}

TEST(Schedule, BusBandwidthFactorsAreNcclTests) {
  EXPECT_DOUBLE_EQ(BusBandwidthFactor(OpType::kAllReduce, 8), 2.0 * 7 / 8);
  EXPECT_DOUBLE_EQ(BusBandwidthFactor(OpType::kAllGather, 8), 7.0 / 8);
  EXPECT_DOUBLE_EQ(BusBandwidthFactor(OpType::kReduceScatter, 4), 3.0 / 4);
  EXPECT_DOUBLE_EQ(BusBandwidthFactor(OpType::kAllToAll, 4), 3.0 / 4);
  EXPECT_DOUBLE_EQ(BusBandwidthFactor(OpType::kBroadcast, 4), 1.0);
  EXPECT_DOUBLE_EQ(BusBandwidthFactor(OpType::kReduce, 4), 1.0);
}

}  // namespace
}  // namespace tidal::coll
