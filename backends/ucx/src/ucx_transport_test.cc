// UcxTransport's progress model (docs/ucx.md): requests leave on the caller's thread when
// the worker is free, and the bytes and completions are exactly those of the contract
// whichever thread sent them. Two transports in one process over the UCX_TLS of the
// environment (ctest runs it with tcp and with sm,self, label `ucx`).
#include "tidal/backends/ucx/ucx_transport.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "tidal/backends/real_env.h"

namespace tidal::backends::ucx {
namespace {

constexpr size_t kRegion = 64 << 10;
constexpr size_t kChunk = 4096;

struct Node {
  std::unique_ptr<UcxTransport> t = std::make_unique<UcxTransport>();
  std::vector<uint8_t> mem = std::vector<uint8_t>(kRegion);
  uint64_t rkey = 0;
  uint64_t addr() const { return reinterpret_cast<uint64_t>(mem.data()); }
};

class UcxProgress : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    for (size_t i = 0; i < 2; ++i) {
      TransportInstall in;
      in.env = &env_;
      in.segment_name = "n" + std::to_string(i);
      in.on_ready = [this] { env_.Post([] {}); };
      env_.AddPoster();
      ASSERT_TRUE(n_[i].t->Install(in).ok());
      Result<uint64_t> key = n_[i].t->RegisterMemory(n_[i].addr(), kRegion, Location::Host());
      ASSERT_TRUE(key.ok()) << key.status().ToString();
      n_[i].rkey = *key;
    }
    SegmentDescriptor d;
    d.name = "n1";
    d.transport = "ucx";
    d.address = n_[1].t->LocalAddress();
    Result<PeerId> p = n_[0].t->Connect(d);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    peer_ = *p;
  }
  void TearDown() override {
    for (Node& n : n_) {
      if (n.t && n.rkey != 0) (void)n.t->UnregisterMemory(n.addr(), kRegion);
      n.t.reset();
      env_.RemovePoster();
    }
  }
  // Submits one task from node 0 and drives the loop until its completion is polled.
  TransportCompletion RunOne(TransportTask t) {
    t.task_id = ++next_id_;
    t.peer = peer_;
    Status accepted;
    n_[0].t->Submit(std::span<const TransportTask>(&t, 1), std::span<Status>(&accepted, 1));
    EXPECT_TRUE(accepted.ok()) << accepted.ToString();
    TransportCompletion got{};
    bool done = false;
    const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    env_.RunUntil([&] {
      TransportCompletion c[4];
      const size_t k = n_[0].t->PollCompletions(c);
      for (size_t i = 0; i < k; ++i) {
        if (c[i].task_id == t.task_id) {
          got = c[i];
          done = true;
        }
      }
      if (!done && std::chrono::steady_clock::now() < limit) {
        env_.ScheduleAfter(1'000'000, [] {});  // look again within a millisecond
      }
      return done || std::chrono::steady_clock::now() >= limit;
    });
    EXPECT_TRUE(done) << "no completion for task " << t.task_id;
    return got;
  }

  RealEnv env_{"ucx-progress-test"};
  Node n_[2];
  PeerId peer_ = 0;
  uint64_t next_id_ = 0;
};

// Writes and reads one request at a time with the progress threads asleep in between:
// each request is sent on this thread (direct_calls counts them), lands byte for byte,
// and completes OK with its length; a write outside the window is still refused by the
// target, with nothing moved.
TEST_P(UcxProgress, RequestsSentOnTheCallersThreadLandExactly) {
  for (size_t i = 0; i < kRegion; ++i) n_[0].mem[i] = static_cast<uint8_t>(i * 131 + (i >> 9));
  const uint64_t before = n_[0].t->stats().direct_calls;
  constexpr size_t kRequests = 8;
  for (size_t i = 0; i < kRequests; ++i) {
    // Idle: the progress threads block on their event fds, the worker lock is free.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    TransportTask w;
    w.kind = TransportTask::Kind::kWrite;
    w.local_addr = n_[0].addr() + i * kChunk;
    w.remote_addr = n_[1].addr() + i * kChunk;
    w.length = kChunk;
    w.rkey = n_[1].rkey;
    TransportCompletion c = RunOne(w);
    EXPECT_EQ(c.code, ErrorCode::OK);
    EXPECT_EQ(c.bytes_transferred, kChunk);
  }
  EXPECT_EQ(std::memcmp(n_[0].mem.data(), n_[1].mem.data(), kRequests * kChunk), 0);
  // Read the written range back into the upper half of node 0's region.
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  TransportTask r;
  r.kind = TransportTask::Kind::kRead;
  r.local_addr = n_[0].addr() + kRegion / 2;
  r.remote_addr = n_[1].addr();
  r.length = kRequests * kChunk;
  r.rkey = n_[1].rkey;
  TransportCompletion rc = RunOne(r);
  EXPECT_EQ(rc.code, ErrorCode::OK);
  EXPECT_EQ(rc.bytes_transferred, kRequests * kChunk);
  EXPECT_EQ(std::memcmp(n_[0].mem.data(), n_[0].mem.data() + kRegion / 2, kRequests * kChunk), 0);
  // Beyond the window: refused by the target, nothing written past it.
  const std::vector<uint8_t> target_before = n_[1].mem;
  TransportTask bad;
  bad.kind = TransportTask::Kind::kWrite;
  bad.local_addr = n_[0].addr();
  bad.remote_addr = n_[1].addr() + kRegion - kChunk / 2;
  bad.length = kChunk;
  bad.rkey = n_[1].rkey;
  TransportCompletion bc = RunOne(bad);
  EXPECT_EQ(bc.code, ErrorCode::REMOTE_ACCESS_DENIED);
  EXPECT_EQ(bc.bytes_transferred, 0u);
  EXPECT_EQ(n_[1].mem, target_before);
  // With the progress thread asleep before each, the requests left on this thread.
  EXPECT_GE(n_[0].t->stats().direct_calls - before, 1u);
  EXPECT_EQ(n_[0].t->stats().outstanding, 0u);
}

INSTANTIATE_TEST_SUITE_P(Transport, UcxProgress, ::testing::Values(std::string("ucx")),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tidal::backends::ucx
