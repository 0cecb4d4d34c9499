// Lost messages: a chunk notification or credit that the fabric loses (a link that flaps,
// a partition that heals) must not end in the op timeout. The simulator's scripted
// `notify_drop` rule loses exactly the nth engine notification from one node to another,
// its sender none the wiser; the channel's retransmission (pg_channel.cc,
// "Retransmission") must bring the op to its exact result with nobody blamed. On two
// ranks the direction of a notification says what it is: in a Broadcast from rank 0 and
// in a Send from rank 1 to rank 0, every notification from the sender is a chunk's and
// every one from the receiver a credit. Each case also states that the rule really fired
// and that a retransmission happened, so none can pass by losing nothing.
//
// Without the retransmission every case below but the lost WRITE (which WriteChunk has
// always retried) ends in OPERATION_TIMEOUT and a broken group.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tidal/cluster/coll_harness.h"
#include "tidal/collectives/reduce_kernel.h"

namespace tidal::coll {
namespace {

using namespace tidal::cluster;  // NOLINT: the harness

constexpr uint64_t kTimeoutNs = 200'000'000;  // the op timeout here: a failure is quick

GroupClusterOptions Options(int ranks, std::string faults, uint64_t seed = 7) {
  GroupClusterOptions co;
  co.ranks = ranks;
  co.seed = seed;
  co.pg = TestOptions();  // 256-byte slots, two per channel
  co.pg.timeout_ns = kTimeoutNs;
  co.faults = std::move(faults);
  // A WRITE whose completion is lost surfaces as a failed transfer within 5 ms.
  co.engine.transfer_timeout_ns = 5'000'000;
  return co;
}

struct CollOutcome {
  std::vector<CaseResult> results;
  std::vector<std::vector<int>> dead;
  uint64_t resent = 0;  // notifications and credits sent again, over the ranks
  uint64_t notify_drops = 0;
  uint64_t completion_losses = 0;
  uint64_t elapsed_ns = 0;
};

CollOutcome RunCollective(OpType op, int ranks, uint64_t count, int root,
                          const std::string& faults) {
  GroupCluster c(Options(ranks, faults));
  std::string err;
  EXPECT_TRUE(c.StartAll(&err)) << err;
  CollOutcome out;
  out.results.resize(ranks);
  const uint64_t start = c.world().NowNs();
  EXPECT_TRUE(c.RunRanks([&](int r) -> Task<void> {
    out.results[r] = co_await RunCase(c.pg(r), op, count, root, ReduceOp::kSum, DataType::kI32);
  })) << c.Banner();
  out.elapsed_ns = c.world().NowNs() - start;
  for (int r = 0; r < ranks; ++r) {
    out.dead.push_back(c.pg(r).dead_ranks());
    out.resent += c.pg(r).stats().notifies_resent + c.pg(r).stats().credits_resent;
  }
  out.notify_drops = c.world().injected(sim::FaultKind::kNotifyDrop);
  out.completion_losses = c.world().injected(sim::FaultKind::kCompletionLoss);
  return out;
}

void ExpectExactAndNobodyBlamed(const CollOutcome& o, const std::string& what) {
  for (size_t r = 0; r < o.results.size(); ++r) {
    const CaseResult& k = o.results[r];
    EXPECT_TRUE(k.status.ok()) << what << " rank " << r << ": " << k.status.ToString();
    EXPECT_EQ(k.wrong, 0) << what << " rank " << r;
    EXPECT_TRUE(k.failed.empty()) << what << " rank " << r << " blames " << k.failed.size();
    EXPECT_TRUE(o.dead[r].empty()) << what << " rank " << r << " marked a peer dead";
  }
  EXPECT_LT(o.elapsed_ns, kTimeoutNs) << what;
}

// Broadcast of 400 i32 from rank 0 to rank 1: 1,600 bytes, seven chunks.
constexpr uint64_t kCount = 400;
constexpr uint64_t kChunks = 7;

TEST(CollLostMessages, ChunkNotificationLostMidStream) {
  CollOutcome o = RunCollective(OpType::kBroadcast, 2, kCount, 0, "notify_drop src=0 dst=1 nth=3\n");
  ExpectExactAndNobodyBlamed(o, "broadcast, 3rd chunk's notification lost");
  EXPECT_EQ(o.notify_drops, 1u);
  EXPECT_GT(o.resent, 0u);
}

TEST(CollLostMessages, LastChunkNotificationLost) {
  // The sender is done (in the agreement round) when its last notification is lost: the
  // receiver's re-sent credit is what brings it back.
  CollOutcome o = RunCollective(OpType::kBroadcast, 2, kCount, 0,
                                "notify_drop src=0 dst=1 nth=" + std::to_string(kChunks) + "\n");
  ExpectExactAndNobodyBlamed(o, "broadcast, last chunk's notification lost");
  EXPECT_EQ(o.notify_drops, 1u);
  EXPECT_GT(o.resent, 0u);
}

TEST(CollLostMessages, CreditsLost) {
  // Credits are cumulative, so with two slots one lost credit is always covered by the
  // next; two in a row leave the sender with no free slot and the receiver with nothing
  // to consume.
  CollOutcome o = RunCollective(OpType::kBroadcast, 2, kCount, 0,
                                "notify_drop src=1 dst=0 nth=1\nnotify_drop src=1 dst=0 nth=2\n");
  ExpectExactAndNobodyBlamed(o, "broadcast, first two credits lost");
  EXPECT_EQ(o.notify_drops, 2u);
  EXPECT_GT(o.resent, 0u);
}

TEST(CollLostMessages, RingAllReduceLosesANotificationEachWay) {
  // Three ranks, a ring all-reduce (chunks and credits both ways on every link): one
  // notification lost on 1 -> 2 and one on 2 -> 0; the sums must be exact.
  CollOutcome o = RunCollective(OpType::kAllReduce, 3, 600, 0,
                                "notify_drop src=1 dst=2 nth=4\nnotify_drop src=2 dst=0 nth=2\n");
  ExpectExactAndNobodyBlamed(o, "ring all-reduce, two notifications lost");
  EXPECT_EQ(o.notify_drops, 2u);
  EXPECT_GT(o.resent, 0u);
}

TEST(CollLostMessages, ChunkWriteWhoseCompletionIsLost) {
  // The 3rd WRITE's completion is lost (its data may or may not have landed): the engine
  // fails it after transfer_timeout_ns, the probe finds the receiver alive, and the chunk
  // is written again into the same slot (not yet returned, so nothing else is there)
  // before its notification. Each chunk is folded or copied once.
  CollOutcome o =
      RunCollective(OpType::kBroadcast, 2, kCount, 0, "completion_loss src=0 dst=1 nth=3\n");
  ExpectExactAndNobodyBlamed(o, "broadcast, a WRITE's completion lost");
  EXPECT_EQ(o.completion_losses, 1u);
}

TEST(CollLostMessages, DeviceSlotsRingAllReduceLosesNotifications) {
  // Device slots (the simulator's cuda:N memory, HostBackedReducer): up to two chunk
  // WRITEs in flight per peer, and a chunk's slot is credited only once its fold finished
  // (RecvWindowed), so a re-sent notification of a chunk still being folded must be
  // ignored, not answered with a credit that frees its slot early.
  GroupClusterOptions co =
      Options(3, "notify_drop src=0 dst=1 nth=3\nnotify_drop src=1 dst=2 nth=5\n");
  co.pg.slot_location_of = [](int rank) { return Location::Cuda(rank % 2); };
  co.pg.reducer = &HostBackedReducer::Default();
  GroupCluster c(co);
  std::string err;
  ASSERT_TRUE(c.StartAll(&err)) << err;
  constexpr uint64_t kN = 600;  // 2,400 bytes of i32 per rank: ten chunks
  const uint64_t bytes = kN * DataTypeSize(DataType::kI32);
  std::vector<std::vector<uint8_t>> initial(3);
  std::vector<uint8_t*> dev(3);
  std::vector<Status> st(3);
  std::vector<std::vector<int>> failed(3);
  for (int r = 0; r < 3; ++r) {
    initial[r] = Filled(r, kN, ReduceOp::kSum, DataType::kI32);
    dev[r] = static_cast<uint8_t*>(c.fabric().Allocate(r, bytes, Location::Cuda(r % 2)));
    c.fabric().CopyIn(dev[r], initial[r].data(), bytes);
  }
  const uint64_t start = c.world().NowNs();
  ASSERT_TRUE(c.RunRanks([&](int r) -> Task<void> {
    auto w = c.pg(r).AllReduce(Tensor{dev[r], DataType::kI32, kN, Location::Cuda(r % 2)},
                               ReduceOp::kSum);
    st[r] = co_await w->Wait();
    failed[r] = w->failed_ranks();
  })) << c.Banner();
  EXPECT_LT(c.world().NowNs() - start, kTimeoutNs);
  uint64_t resent = 0;
  for (int r = 0; r < 3; ++r) {
    EXPECT_TRUE(st[r].ok()) << "rank " << r << ": " << st[r].ToString();
    EXPECT_TRUE(failed[r].empty()) << "rank " << r;
    EXPECT_TRUE(c.pg(r).dead_ranks().empty()) << "rank " << r;
    std::vector<uint8_t> got(bytes);
    c.fabric().CopyOut(got.data(), dev[r], bytes);
    EXPECT_EQ(CheckCase(OpType::kAllReduce, r, 3, {}, kN, 0, ReduceOp::kSum, DataType::kI32, got,
                        initial[r]),
              0)
        << "rank " << r;
    resent += c.pg(r).stats().notifies_resent + c.pg(r).stats().credits_resent;
  }
  EXPECT_EQ(c.world().injected(sim::FaultKind::kNotifyDrop), 2u);
  EXPECT_GT(resent, 0u);
}

TEST(CollLostMessages, DeviceSlotsPulledAllToAllLosesAnOfferAndACredit) {
  // Pulled messages (device slots, direct_outputs, registered tensors): each rank's first
  // notification to the other is its pull offer, its second the credit that says it
  // finished READing the other's offer. Rank 0's offer is lost, and rank 1's credit: the
  // offer is re-sent (Resync) and READ once, the lost credit is answered again when the
  // offer comes back, and the op ends exact with nobody blamed; each rank READ exactly
  // one message (a re-sent offer is never READ twice).
  GroupClusterOptions co =
      Options(2, "notify_drop src=0 dst=1 nth=1\nnotify_drop src=1 dst=0 nth=2\n");
  co.pg.slot_location_of = [](int rank) { return Location::Cuda(rank); };
  co.pg.reducer = &HostBackedReducer::Default();
  co.pg.direct_outputs = true;
  GroupCluster c(co);
  std::string err;
  ASSERT_TRUE(c.StartAll(&err)) << err;
  constexpr uint64_t kN = 1000;  // i32 per rank: 500 per block, 2,000 bytes (8 slots' worth)
  const uint64_t bytes = kN * DataTypeSize(DataType::kI32);
  std::vector<std::vector<uint8_t>> input(2);
  std::vector<uint8_t*> in(2), out(2);
  for (int r = 0; r < 2; ++r) {
    input[r] = Filled(r, kN, ReduceOp::kSum, DataType::kI32);
    in[r] = static_cast<uint8_t*>(c.fabric().Allocate(r, bytes, Location::Cuda(r)));
    out[r] = static_cast<uint8_t*>(c.fabric().Allocate(r, bytes, Location::Cuda(r)));
    c.fabric().CopyIn(in[r], input[r].data(), bytes);
    std::vector<uint8_t> sentinel(bytes, 0x5A);
    c.fabric().CopyIn(out[r], sentinel.data(), bytes);
  }
  std::vector<Status> st(2);
  std::vector<std::vector<int>> failed(2);
  const uint64_t start = c.world().NowNs();
  ASSERT_TRUE(c.RunRanks([&](int r) -> Task<void> {
    Status reg = co_await c.pg(r).RegisterBuffer(in[r], bytes);
    if (reg.ok()) reg = co_await c.pg(r).RegisterBuffer(out[r], bytes);
    EXPECT_TRUE(reg.ok()) << reg.ToString();
    auto w = c.pg(r).AllToAll(Tensor{out[r], DataType::kI32, kN, Location::Cuda(r)},
                              Tensor{in[r], DataType::kI32, kN, Location::Cuda(r)});
    st[r] = co_await w->Wait();
    failed[r] = w->failed_ranks();
  })) << c.Banner();
  EXPECT_LT(c.world().NowNs() - start, kTimeoutNs);
  uint64_t resent = 0;
  for (int r = 0; r < 2; ++r) {
    EXPECT_TRUE(st[r].ok()) << "rank " << r << ": " << st[r].ToString();
    EXPECT_TRUE(failed[r].empty()) << "rank " << r;
    EXPECT_TRUE(c.pg(r).dead_ranks().empty()) << "rank " << r;
    std::vector<uint8_t> got(bytes), still(bytes);
    c.fabric().CopyOut(got.data(), out[r], bytes);
    std::vector<uint8_t> initial(bytes, 0x5A);
    EXPECT_EQ(CheckCase(OpType::kAllToAll, r, 2, {}, kN / 2, 0, ReduceOp::kSum, DataType::kI32,
                        got, initial),
              0)
        << "rank " << r;
    c.fabric().CopyOut(still.data(), in[r], bytes);
    EXPECT_EQ(still, input[r]) << "rank " << r << ": input written";
    const ProcessGroupStats& s = c.pg(r).stats();
    EXPECT_EQ(s.pulls_offered, 1u) << "rank " << r;
    EXPECT_EQ(s.pulls_read, 1u) << "rank " << r;
    EXPECT_EQ(s.chunks_sent, 0u) << "rank " << r;
    resent += s.notifies_resent + s.credits_resent;
  }
  EXPECT_EQ(c.world().injected(sim::FaultKind::kNotifyDrop), 2u);
  EXPECT_GT(resent, 0u);
}

// Point-to-point: rank 1 sends 100 i64 (800 bytes, four chunks) to rank 0.
struct P2POutcome {
  Status send, recv;
  std::vector<int> send_failed, recv_failed;
  std::vector<int64_t> got;
  uint64_t resent = 0;
  uint64_t notify_drops = 0;
  uint64_t elapsed_ns = 0;
};

P2POutcome RunSend(const std::string& faults, bool then_collective = true) {
  GroupCluster c(Options(2, faults));
  std::string err;
  EXPECT_TRUE(c.StartAll(&err)) << err;
  P2POutcome out;
  out.got.assign(100, -1);
  std::vector<int64_t> sent(100);
  for (int k = 0; k < 100; ++k) sent[k] = 1000 + 7 * k;
  const uint64_t start = c.world().NowNs();
  EXPECT_TRUE(c.RunRanks([&](int r) -> Task<void> {
    if (r == 1) {
      auto w = c.pg(1).Send(Tensor{sent.data(), DataType::kI64, sent.size(), Location::Host()}, 0, 5);
      out.send = co_await w->Wait();
      out.send_failed = w->failed_ranks();
    } else {
      auto w = c.pg(0).Recv(Tensor{out.got.data(), DataType::kI64, out.got.size(), Location::Host()},
                            1, 5);
      out.recv = co_await w->Wait();
      out.recv_failed = w->failed_ranks();
    }
    if (then_collective) {
      // The group is whole afterwards: a barrier over both ranks commits.
      Status b = co_await c.pg(r).Barrier()->Wait();
      EXPECT_TRUE(b.ok()) << "rank " << r << ": " << b.ToString();
    }
  })) << c.Banner();
  out.elapsed_ns = c.world().NowNs() - start;
  for (int r = 0; r < 2; ++r) {
    out.resent += c.pg(r).stats().notifies_resent + c.pg(r).stats().credits_resent;
    EXPECT_TRUE(c.pg(r).dead_ranks().empty()) << "rank " << r << " marked its peer dead";
  }
  out.notify_drops = c.world().injected(sim::FaultKind::kNotifyDrop);
  for (int k = 0; k < 100; ++k) {
    if (out.got[k] != sent[k]) {
      ADD_FAILURE() << "element " << k << " is " << out.got[k] << ", sent " << sent[k];
      break;
    }
  }
  return out;
}

void ExpectDelivered(const P2POutcome& o, const std::string& what) {
  EXPECT_TRUE(o.send.ok()) << what << ": send " << o.send.ToString();
  EXPECT_TRUE(o.recv.ok()) << what << ": recv " << o.recv.ToString();
  EXPECT_TRUE(o.send_failed.empty() && o.recv_failed.empty()) << what << ": blames a rank";
  EXPECT_LT(o.elapsed_ns, kTimeoutNs) << what;
  EXPECT_GT(o.resent, 0u) << what;
}

TEST(CollLostMessages, P2PChunkNotificationLost) {
  P2POutcome o = RunSend("notify_drop src=1 dst=0 nth=2\n");
  ExpectDelivered(o, "p2p, 2nd chunk's notification lost");
  EXPECT_EQ(o.notify_drops, 1u);
}

TEST(CollLostMessages, P2PLastChunkNotificationLost) {
  // The send completes (its last chunk is out) before the receiver has it: only the
  // receiver's wait, and its re-sent credit, can bring the notification back.
  P2POutcome o = RunSend("notify_drop src=1 dst=0 nth=4\n", /*then_collective=*/false);
  ExpectDelivered(o, "p2p, last chunk's notification lost");
  EXPECT_EQ(o.notify_drops, 1u);
}

TEST(CollLostMessages, P2PCreditsLost) {
  P2POutcome o = RunSend("notify_drop src=0 dst=1 nth=1\nnotify_drop src=0 dst=1 nth=2\n");
  ExpectDelivered(o, "p2p, first two credits lost");
  EXPECT_EQ(o.notify_drops, 2u);
}

}  // namespace
}  // namespace tidal::coll
