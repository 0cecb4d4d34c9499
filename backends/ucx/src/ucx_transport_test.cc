// UcxTransport's progress model (docs/ucx.md): requests leave on the caller's thread when
// the worker is free, and the bytes and completions are exactly those of the contract
// whichever thread sent them. Two transports in one process over the UCX_TLS of the
// environment (ctest runs it with tcp and with sm,self, label `ucx`).
#include "tidal/backends/ucx/ucx_transport.h"

#include <gtest/gtest.h>
#include <ucp/api/ucp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
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

// Two transports with given options on a loop with a given polling window, and the
// helpers of UcxProgress (one WRITE at a time, driven to its completion).
struct Pair {
  RealEnv env{"ucx-spin-test"};
  std::unique_ptr<UcxTransport> t[2];
  std::vector<uint8_t> mem[2];
  uint64_t rkey[2] = {0, 0};
  PeerId peer = 0;
  uint64_t next_id = 0;

  uint8_t* base[2] = {nullptr, nullptr};  // each node's region: mem[i], or transport memory

  // `transport_memory`: each region is memory the node's transport allocated through UCX
  // (AllocateHostMemory) instead of mem[i]; `o1` (when given) is node 1's options.
  uint64_t region_bytes = kRegion;  // each node's region (the tests' chunks use kRegion)

  Pair(UcxTransportOptions o, uint64_t env_spin_ns, bool transport_memory = false,
       const UcxTransportOptions* o1 = nullptr, uint64_t region = kRegion)
      : region_bytes(region) {
    env.SetSpinNs(env_spin_ns);
    for (size_t i = 0; i < 2; ++i) {
      t[i] = std::make_unique<UcxTransport>(i == 1 && o1 != nullptr ? *o1 : o);
      TransportInstall in;
      in.env = &env;
      in.segment_name = "s" + std::to_string(i);
      in.on_ready = [this] { env.Post([] {}); };
      env.AddPoster();
      EXPECT_TRUE(t[i]->Install(in).ok());
      if (transport_memory) {
        Result<void*> p = t[i]->AllocateHostMemory(region_bytes);
        EXPECT_TRUE(p.ok()) << p.status().ToString();
        base[i] = p.ok() ? static_cast<uint8_t*>(*p) : nullptr;
      } else {
        mem[i].assign(region_bytes, 0);
        base[i] = mem[i].data();
      }
      Result<uint64_t> key = t[i]->RegisterMemory(addr(i), region_bytes, Location::Host());
      EXPECT_TRUE(key.ok()) << key.status().ToString();
      rkey[i] = key.ok() ? *key : 0;
    }
    SegmentDescriptor d;
    d.name = "s1";
    d.transport = "ucx";
    d.address = t[1]->LocalAddress();
    Result<PeerId> p = t[0]->Connect(d);
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    peer = p.ok() ? *p : 0;
  }
  ~Pair() {
    for (size_t i = 0; i < 2; ++i) {
      (void)t[i]->UnregisterMemory(addr(i), region_bytes);
      t[i].reset();
      env.RemovePoster();
    }
  }
  uint64_t addr(size_t i) const { return reinterpret_cast<uint64_t>(base[i]); }
  // WRITEs chunk `k` of node 0's region to the same place at node 1; its completion.
  TransportCompletion Write(size_t k) { return Do(TransportTask::Kind::kWrite, k, k, rkey[1]); }
  // Node 0's task between its chunk `local` and node 1's chunk `remote` under `key`.
  TransportCompletion Do(TransportTask::Kind kind, size_t local, size_t remote, uint64_t key) {
    TransportTask w;
    w.task_id = ++next_id;
    w.peer = peer;
    w.kind = kind;
    w.local_addr = addr(0) + local * kChunk;
    w.remote_addr = addr(1) + remote * kChunk;
    w.length = kChunk;
    w.rkey = key;
    Status accepted;
    t[0]->Submit(std::span<const TransportTask>(&w, 1), std::span<Status>(&accepted, 1));
    EXPECT_TRUE(accepted.ok()) << accepted.ToString();
    TransportCompletion got{};
    bool done = false;
    const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    env.RunUntil([&] {
      TransportCompletion c[4];
      const size_t n = t[0]->PollCompletions(c);
      for (size_t i = 0; i < n; ++i) {
        if (c[i].task_id == w.task_id) {
          got = c[i];
          done = true;
        }
      }
      if (!done && std::chrono::steady_clock::now() < limit) env.ScheduleAfter(1'000'000, [] {});
      return done || std::chrono::steady_clock::now() >= limit;
    });
    EXPECT_TRUE(done) << "no completion for task " << w.task_id;
    return got;
  }
  void Fill() {
    for (size_t i = 0; i < kRegion; ++i) base[0][i] = static_cast<uint8_t>(i * 7 + (i >> 11));
  }
  // WRITEs chunks 0..n-1 of node 0's region to node 1 in one Submit; their completions,
  // in chunk order, once all have come (30 s at most). `last` (if set) runs on the loop
  // when the last completion is taken, before RunUntil returns.
  std::vector<TransportCompletion> WriteBatch(size_t n, const std::function<void()>& last = {}) {
    std::vector<TransportTask> tasks(n);
    const uint64_t first = next_id + 1;
    for (size_t k = 0; k < n; ++k) {
      TransportTask& w = tasks[k];
      w.task_id = ++next_id;
      w.peer = peer;
      w.kind = TransportTask::Kind::kWrite;
      w.local_addr = addr(0) + k * kChunk;
      w.remote_addr = addr(1) + k * kChunk;
      w.length = kChunk;
      w.rkey = rkey[1];
    }
    std::vector<Status> accepted(n);
    t[0]->Submit(tasks, accepted);
    for (const Status& a : accepted) EXPECT_TRUE(a.ok()) << a.ToString();
    std::vector<TransportCompletion> got(n);
    size_t left = n;
    const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    env.RunUntil([&] {
      TransportCompletion c[16];
      for (size_t m; (m = t[0]->PollCompletions(c)) > 0;) {
        for (size_t i = 0; i < m; ++i) {
          if (c[i].task_id >= first && c[i].task_id < first + n) {
            got[c[i].task_id - first] = c[i];
            --left;
          }
        }
      }
      if (left > 0 && std::chrono::steady_clock::now() < limit) env.ScheduleAfter(1'000'000, [] {});
      if (left == 0 && last) last();
      return left == 0 || std::chrono::steady_clock::now() >= limit;
    });
    EXPECT_EQ(left, 0u) << "completions missing";
    return got;
  }
};

class UcxSpin : public ::testing::TestWithParam<std::string> {};

// spin_ns = 0: the progress threads never poll (every round ends armed on the event fd),
// and with the loop not polling either no caller progresses a worker; the bytes and
// completions are exact all the same.
TEST_P(UcxSpin, NoWindowMeansNoPolling) {
  UcxTransportOptions o;
  o.loop_drives = false;  // the progress thread polls after direct sends
  o.spin_ns = 0;
  Pair p(o, 0);
  p.Fill();
  for (size_t k = 0; k < 8; ++k) {
    TransportCompletion c = p.Write(k);
    EXPECT_EQ(c.code, ErrorCode::OK);
    EXPECT_EQ(c.bytes_transferred, kChunk);
  }
  EXPECT_EQ(std::memcmp(p.mem[0].data(), p.mem[1].data(), 8 * kChunk), 0);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(p.t[i]->stats().spin_rounds, 0u) << "node " << i;
    EXPECT_EQ(p.t[i]->stats().caller_poll_calls, 0u) << "node " << i;
  }
}

// A loop that polls (RealEnv::SetSpinNs) asks the transports installed on it to progress
// their workers while it waits, on the waiting thread, but only a transport with tasks of
// its own outstanding: node 0 (the initiator) is polled, node 1 (only a target) is left to
// its progress thread. The bytes are exact.
TEST_P(UcxSpin, WaitingLoopProgressesTheInitiatorsWorker) {
  UcxTransportOptions o;
  o.loop_drives = false;  // the progress thread polls after direct sends
  o.spin_ns = 0;
  Pair p(o, 10'000'000);
  p.Fill();
  // A WRITE is a round trip, so the loop usually waits for its completion (it may also
  // find the completion posted already each time it looks: hence up to 200 WRITEs, each
  // checked). Whether a poll found the worker free or its progress thread had it is a
  // race; caller_polls counts those that progressed it.
  size_t k = 0;
  for (; k < 200; ++k) {
    TransportCompletion c = p.Write(k % 16);
    ASSERT_EQ(c.code, ErrorCode::OK);
    ASSERT_EQ(c.bytes_transferred, kChunk);
    if (p.t[0]->stats().caller_poll_calls > 0) break;
  }
  EXPECT_EQ(std::memcmp(p.mem[0].data(), p.mem[1].data(), std::min<size_t>(k + 1, 16) * kChunk),
            0);
  EXPECT_GT(p.t[0]->stats().caller_poll_calls, 0u);
  EXPECT_EQ(p.t[1]->stats().caller_poll_calls, 0u);
  for (size_t i = 0; i < 2; ++i) EXPECT_EQ(p.t[i]->stats().spin_rounds, 0u) << "node " << i;
}

// Inside the window (here 10 s, longer than the test) the progress thread keeps polling
// after the first request: later requests (sent directly, or queued for it when it holds
// the worker) find it awake and never signal it.
TEST_P(UcxSpin, InsideTheWindowSendsDoNotWakeTheProgressThread) {
  UcxTransportOptions o;
  o.loop_drives = false;  // the progress thread polls after direct sends
  o.spin_ns = 10'000'000'000ULL;
  Pair p(o, 0);
  p.Fill();
  ASSERT_EQ(p.Write(0).code, ErrorCode::OK);
  const UcxTransportStats before = p.t[0]->stats();
  for (size_t k = 1; k < 9; ++k) {
    TransportCompletion c = p.Write(k);
    EXPECT_EQ(c.code, ErrorCode::OK);
    EXPECT_EQ(c.bytes_transferred, kChunk);
  }
  const UcxTransportStats after = p.t[0]->stats();
  EXPECT_EQ(std::memcmp(p.mem[0].data(), p.mem[1].data(), 9 * kChunk), 0);
  EXPECT_EQ(after.signals, before.signals);
  EXPECT_GT(after.spin_rounds, before.spin_rounds);
}

// The window is a bound: 2 ms after the last activity both progress threads stop polling
// and block on their event fds, and while the pair stays idle no polling round is made
// (the waits end at the idle bound, none at the busy one: nothing is in flight).
TEST_P(UcxSpin, IdleProgressThreadsBlockAfterTheWindow) {
  UcxTransportOptions o;
  o.loop_drives = false;  // the progress thread polls after direct sends
  o.spin_ns = 2'000'000;
  Pair p(o, 0);
  p.Fill();
  for (size_t k = 0; k < 4; ++k) ASSERT_EQ(p.Write(k).code, ErrorCode::OK);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // 50 windows
  UcxTransportStats before[2] = {p.t[0]->stats(), p.t[1]->stats()};
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  for (size_t i = 0; i < 2; ++i) {
    const UcxTransportStats after = p.t[i]->stats();
    EXPECT_EQ(after.spin_rounds, before[i].spin_rounds) << "node " << i;
    EXPECT_EQ(after.busy_timeouts, before[i].busy_timeouts) << "node " << i;
    EXPECT_GT(after.idle_timeouts, before[i].idle_timeouts) << "node " << i;
  }
}

// The loop-driven mode, one batch of 16 WRITEs sent while both progress threads sleep
// (their 1 ms windows long over): the send hands the worker to the env's loop, which
// takes the answers itself while it polls; the initiator's progress thread makes no
// polling round while the loop drives (woken by UCX or its idle bound, it stands by; a
// round already under way finishes), and the loop
// hands the worker back exactly once, when RunUntil returns. Bytes exact.
TEST_P(UcxSpin, TheLoopDrivesTheWorkerAndTheProgressThreadStandsBy) {
  UcxTransportOptions o;
  o.spin_ns = 1'000'000;
  o.loop_drives = true;
  Pair p(o, 10'000'000'000ULL);
  p.Fill();
  ASSERT_EQ(p.Write(0).code, ErrorCode::OK);  // the endpoint is wired up before the batch
  // The batch's Submit must find the worker free for the loop to drive it: a progress
  // thread still in a round (woken on its idle bound, or slowed on a loaded machine) past
  // TakeWorker's bounded wait makes Submit hand the sends to it instead, and then nothing
  // is driven or handed back. Such an attempt is checked for exactly that and tried again.
  UcxTransportStats before, at_last, after;  // at_last: when the loop took the last completion
  int attempts = 0;
  for (;;) {
    ASSERT_LT(attempts++, 20) << "Submit never found the worker free";
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::memset(p.mem[1].data(), 0, 16 * kChunk);
    before = p.t[0]->stats();
    for (const TransportCompletion& c : p.WriteBatch(16, [&] { at_last = p.t[0]->stats(); })) {
      EXPECT_EQ(c.code, ErrorCode::OK);
      EXPECT_EQ(c.bytes_transferred, kChunk);
    }
    after = p.t[0]->stats();
    EXPECT_EQ(std::memcmp(p.mem[0].data(), p.mem[1].data(), 16 * kChunk), 0);
    if (after.direct_calls != before.direct_calls) break;
    EXPECT_EQ(after.loop_handbacks, before.loop_handbacks) << "handed back, never driven";
  }
  EXPECT_TRUE(at_last.loop_driven);
  // Who took the answers is not asserted: on a fast host they can all arrive before the
  // send has handed the worker over, and a progress thread woken by them then takes them
  // in the one round it had begun (the 16-core host did, over shared memory).
  // At most a round under way when the send handed the worker over (a progress thread
  // awake on its idle bound); with the mode off it polls for the whole 1 ms window after
  // the send, hundreds of rounds. (After the hand-back it may poll again: not counted.)
  EXPECT_LE(at_last.spin_rounds - before.spin_rounds, 1u) << "the progress thread polled";
  EXPECT_EQ(at_last.signals, before.signals) << "a send woke the progress thread";
  EXPECT_EQ(at_last.loop_handbacks, before.loop_handbacks) << "handed back while driving";
  EXPECT_EQ(after.loop_handbacks - before.loop_handbacks, 1u);
}

// The loop-driven mode with a loop that blocks at once (no polling window): before it
// blocks it hands the worker back (once), and the progress thread, woken, takes the
// answers and posts their completions, which end the loop's wait. Bytes exact.
TEST_P(UcxSpin, ALoopAboutToBlockHandsTheWorkerBack) {
  UcxTransportOptions o;
  o.spin_ns = 1'000'000;
  o.loop_drives = true;
  Pair p(o, 0);
  p.Fill();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const UcxTransportStats before = p.t[0]->stats();
  const uint64_t blocks_before = p.env.block_handoffs();
  for (const TransportCompletion& c : p.WriteBatch(16)) {
    EXPECT_EQ(c.code, ErrorCode::OK);
    EXPECT_EQ(c.bytes_transferred, kChunk);
  }
  const UcxTransportStats after = p.t[0]->stats();
  EXPECT_EQ(std::memcmp(p.mem[0].data(), p.mem[1].data(), 16 * kChunk), 0);
  EXPECT_EQ(after.loop_handbacks - before.loop_handbacks, 1u);
  EXPECT_GT(p.env.block_handoffs(), blocks_before);
}

// A peer with a bare UCP worker of its own sends thousands of 4 KiB READ requests and then
// stops progressing, so the target's answers fill the way to it (the shared-memory FIFO, the
// tcp socket) and the rest wait inside UCX: the target counts them in flight on its
// region. Destroying the target completes those sends as its worker goes, and their
// callbacks release the region (ReleaseRemote): the regions must still be there then.
// They were cleared before the worker, and the release failed its assertion (a holder
// process of the store benchmark, whose client had died, aborted that way at shutdown).
TEST_P(UcxSpin, TargetDestroyedWithAnswersToAStuckPeerInFlight) {
  RealEnv env{"ucx-stuck-peer"};
  auto target = std::make_unique<UcxTransport>();
  TransportInstall in;
  in.env = &env;
  in.segment_name = "target";
  in.on_ready = [&env] { env.Post([] {}); };
  env.AddPoster();
  ASSERT_TRUE(target->Install(in).ok());
  std::vector<uint8_t> mem(1 << 20, 0x5a);
  const uint64_t addr = reinterpret_cast<uint64_t>(mem.data());
  Result<uint64_t> key = target->RegisterMemory(addr, mem.size(), Location::Host());
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  // The blob: u32 magic, u64 uid, u32 length, worker address.
  const std::string blob = target->LocalAddress();
  ASSERT_GT(blob.size(), 16u);
  const std::string worker_address = blob.substr(16);

  ucp_config_t* config = nullptr;
  ASSERT_EQ(ucp_config_read(nullptr, nullptr, &config), UCS_OK);
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES;
  params.features = UCP_FEATURE_AM;
  ucp_context_h context = nullptr;
  ASSERT_EQ(ucp_init(&params, config, &context), UCS_OK);
  ucp_config_release(config);
  ucp_worker_params_t wp{};
  ucp_worker_h worker = nullptr;
  ASSERT_EQ(ucp_worker_create(context, &wp, &worker), UCS_OK);
  ucp_am_handler_param_t hp{};  // answers (kReadResp = 4) are taken and dropped
  hp.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_CB;
  hp.id = 4;
  hp.cb = [](void*, const void*, size_t, void*, size_t, const ucp_am_recv_param_t*) {
    return UCS_OK;
  };
  ASSERT_EQ(ucp_worker_set_am_recv_handler(worker, &hp), UCS_OK);
  ucp_ep_params_t ep_params{};
  ep_params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE;
  ep_params.address = reinterpret_cast<const ucp_address_t*>(worker_address.data());
  ep_params.err_mode = UCP_ERR_HANDLING_MODE_NONE;
  ucp_ep_h ep = nullptr;
  ASSERT_EQ(ucp_ep_create(worker, &ep_params, &ep), UCS_OK);
  // kReadReq (3) with {seq, rkey, addr, length}, answered on the reply endpoint.
  constexpr size_t kRequests = 4000;  // 16 MiB of answers: more than a socket buffer
  std::vector<std::array<uint64_t, 4>> headers;
  headers.reserve(6 * kRequests);
  std::vector<void*> unsent;  // requests still pending in UCX when we stopped
  auto burst = [&](bool progress) {
    std::vector<void*> pending;
    for (size_t i = 0; i < kRequests; ++i) {
      const uint64_t n = headers.size();
      headers.push_back({n + 1, *key, addr + (n % 256) * 4096, 4096});
      ucp_request_param_t rp{};
      rp.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
      rp.flags = UCP_AM_SEND_FLAG_REPLY;
      void* req = ucp_am_send_nbx(ep, 3, headers.back().data(), 32, nullptr, 0, &rp);
      if (UCS_PTR_IS_PTR(req)) pending.push_back(req);
    }
    for (void* req : pending) {
      if (!progress) {
        unsent.push_back(req);
        continue;
      }
      while (ucp_request_check_status(req) == UCS_INPROGRESS) ucp_worker_progress(worker);
      ucp_request_free(req);
    }
  };
  // The first burst connects (progressing); later ones are sent without progressing.
  // From the end of the first burst this worker is never progressed, so answers wait.
  // Wait until the target's count of answers in flight is positive and stops changing;
  // if the answers all got through (the way to us had room), send another burst.
  burst(true);
  for (int round = 0; round < 5; ++round) {
    uint64_t last = ~0ull;
    int settled = 0;
    for (int i = 0; settled < 50 && i < 2000; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      const uint64_t now = target->stats().target_in_flight;
      settled = now == last ? settled + 1 : 0;
      last = now;
    }
    if (last > 0 && settled >= 50) break;
    burst(false);
  }
  ASSERT_GT(target->stats().target_in_flight, 0u);
  // While answers are in flight the region cannot go.
  EXPECT_EQ(target->UnregisterMemory(addr, mem.size()).code(), ErrorCode::BATCH_BUSY);
  target.reset();  // the worker, then the regions: no assertion
  env.RemovePoster();

  for (void* req : unsent) ucp_request_free(req);  // released by UCX when it lets go
  ucp_request_param_t cp{};
  cp.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
  cp.flags = UCP_EP_CLOSE_FLAG_FORCE;
  void* close = ucp_ep_close_nbx(ep, &cp);
  if (UCS_PTR_IS_PTR(close)) {
    while (ucp_request_check_status(close) == UCS_INPROGRESS) ucp_worker_progress(worker);
    ucp_request_free(close);
  }
  ucp_worker_destroy(worker);
  ucp_cleanup(context);
}

// ---- one-sided mode (UcxTransportOptions::one_sided, docs/ucx.md "One-sided mode") ----

class UcxOneSided : public ::testing::TestWithParam<std::string> {
 protected:
  // Whether UCX_TLS maps a peer's UCX-allocated memory into this process (its shared-memory
  // transports): only then is a key's path direct.
  static bool Mapped() {
    const char* tls = std::getenv("UCX_TLS");
    const std::string t = tls == nullptr ? "" : tls;
    return t.find("sm") != std::string::npos || t.find("posix") != std::string::npos ||
           t.find("sysv") != std::string::npos;
  }
  static UcxTransportOptions Options() {
    UcxTransportOptions o;
    o.one_sided = true;
    o.revoke_timeout_ns = 100'000'000;
    return o;
  }
};

// Eight WRITEs and eight READs under one key: the initiator asks the target for it once.
// On memory UCX allocated, over shared memory, each is a put or a get into the peer's
// mapped segment (no request reaches the target); elsewhere (tcp; heap memory) the ops take
// the target-checked active-message path. The bytes are exact either way.
TEST_P(UcxOneSided, OneKeyRequestThenPutsAndGetsWhereTheMemoryIsMapped) {
  for (const bool transport_memory : {true, false}) {
    SCOPED_TRACE(transport_memory ? "transport memory" : "heap memory");
    Pair p(Options(), 50'000, transport_memory);
    ASSERT_NE(p.base[0], nullptr);
    ASSERT_NE(p.base[1], nullptr);
    p.Fill();
    for (size_t k = 0; k < 8; ++k) {
      const TransportCompletion c = p.Write(k);
      EXPECT_EQ(c.code, ErrorCode::OK);
      EXPECT_EQ(c.bytes_transferred, kChunk);
    }
    EXPECT_EQ(std::memcmp(p.base[0], p.base[1], 8 * kChunk), 0);
    // Node 1's chunks 0..7 come back into node 0's chunks 8..15.
    for (size_t k = 0; k < 8; ++k) {
      const TransportCompletion c = p.Do(TransportTask::Kind::kRead, 8 + k, k, p.rkey[1]);
      EXPECT_EQ(c.code, ErrorCode::OK);
      EXPECT_EQ(c.bytes_transferred, kChunk);
    }
    EXPECT_EQ(std::memcmp(p.base[0] + 8 * kChunk, p.base[1], 8 * kChunk), 0);
    const UcxTransportStats s = p.t[0]->stats();
    EXPECT_EQ(s.key_fetches, 1u);
    const bool direct = transport_memory && Mapped();
    EXPECT_EQ(s.puts, direct ? 8u : 0u);
    EXPECT_EQ(s.gets, direct ? 8u : 0u);
    // A range outside the region the key names is refused at the initiator (direct) or the
    // target, and nothing moves.
    const auto before = std::vector<uint8_t>(p.base[1], p.base[1] + kRegion);
    const TransportCompletion out =
        p.Do(TransportTask::Kind::kWrite, 0, kRegion / kChunk, p.rkey[1]);
    EXPECT_EQ(out.code, ErrorCode::REMOTE_ACCESS_DENIED);
    EXPECT_EQ(out.bytes_transferred, 0u);
    EXPECT_EQ(std::memcmp(before.data(), p.base[1], kRegion), 0);
  }
}

// UnregisterMemory at the target revokes the key from the peer that holds it, and returns
// OK once that peer dropped it: the peer's next WRITE under the old key asks again, is
// refused, and moves nothing.
TEST_P(UcxOneSided, UnregisterRevokesTheKeyFromItsHolder) {
  Pair p(Options(), 50'000, true);
  p.Fill();
  ASSERT_EQ(p.Write(0).code, ErrorCode::OK);
  ASSERT_TRUE(p.t[1]->UnregisterMemory(p.addr(1), kRegion).ok());
  EXPECT_EQ(p.t[1]->stats().revokes_sent, 1u);
  EXPECT_EQ(p.t[0]->stats().keys_revoked, 1u);
  std::memset(p.base[0], 0xEE, kChunk);
  const auto before = std::vector<uint8_t>(p.base[1], p.base[1] + kRegion);
  const TransportCompletion c = p.Write(0);
  EXPECT_EQ(c.code, ErrorCode::REMOTE_ACCESS_DENIED);
  EXPECT_EQ(c.bytes_transferred, 0u);
  EXPECT_EQ(std::memcmp(before.data(), p.base[1], kRegion), 0);
  EXPECT_EQ(p.t[0]->stats().key_fetches, 2u);
}

// A holder that never answers the revocation (planted: it stands for a peer that stalls)
// keeps the region registered: BATCH_BUSY naming one peer, after revoke_timeout_ns, and
// again on the next call. The key is no longer granted to anyone meanwhile.
TEST_P(UcxOneSided, AHolderThatDoesNotReleaseTheKeyKeepsTheRegion) {
  UcxTransportOptions stalls = Options();
  stalls.planted_bug = UcxBug::kIgnoresRevocations;
  Pair p(stalls, 50'000, true, nullptr);
  p.Fill();
  ASSERT_EQ(p.Write(0).code, ErrorCode::OK);
  for (int call = 0; call < 2; ++call) {
    const auto t0 = std::chrono::steady_clock::now();
    const Status s = p.t[1]->UnregisterMemory(p.addr(1), kRegion);
    EXPECT_EQ(s.code(), ErrorCode::BATCH_BUSY) << s.ToString();
    EXPECT_NE(s.message().find("1 peer(s)"), std::string::npos) << s.ToString();
    EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(100));
  }
  EXPECT_EQ(p.t[1]->stats().revokes_sent, 2u);
  // Still registered at the target: registering an overlapping range is refused.
  EXPECT_EQ(p.t[1]->RegisterMemory(p.addr(1), kChunk, Location::Host()).code(),
            ErrorCode::REGISTRATION_FAILED);
}

// The holder dies. Over tcp its connection fails, so it counts as having released the key
// and UnregisterMemory returns OK. Over shared memory UCX 1.13 reports no peer failure: the
// target's endpoint to the dead holder fails to connect when the holder's FIFO is gone
// (released: OK), but when its file descriptor number was reused in this process UCX
// attaches to something else and nothing answers, and a dead holder cannot be told from
// one that stalls: the region stays (BATCH_BUSY naming the peer). Either is right there;
// nothing else is.
TEST_P(UcxOneSided, ADeadHolderReleasesTheKeyWhereItsFailureIsSeen) {
  Pair p(Options(), 50'000, true);
  p.Fill();
  ASSERT_EQ(p.Write(0).code, ErrorCode::OK);
  p.t[0]->Crash();
  const Status s = p.t[1]->UnregisterMemory(p.addr(1), kRegion);
  if (Mapped() && !s.ok()) {
    EXPECT_EQ(s.code(), ErrorCode::BATCH_BUSY) << s.ToString();
    EXPECT_NE(s.message().find("1 peer(s)"), std::string::npos) << s.ToString();
  } else {
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
}

// Submit issues a direct task before recording it (and never records one UCX finished
// inside the call). A thread cancelling the tasks of each batch while Submit issues them
// on another: every accepted task still completes exactly once, OK with its bytes exact or
// TRANSFER_CANCELED with none, nothing stays outstanding, and Cancel answers OK or (for a
// task already polled) INVALID_PARAMS, never anything else. Over tcp, or heap memory, the
// same tasks take the recorded paths.
TEST_P(UcxOneSided, CancelsRacingTheDirectIssueEndEachTaskOnce) {
  Pair p(Options(), 50'000, true);
  ASSERT_NE(p.base[0], nullptr);
  ASSERT_NE(p.base[1], nullptr);
  p.Fill();
  ASSERT_EQ(p.Write(0).code, ErrorCode::OK);  // the key, fetched once
  constexpr size_t kBatch = 4, kRounds = 3000;
  std::atomic<uint64_t> first{0};  // the current batch's first task id, 0 between batches
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> cancels_ok{0}, cancels_other{0};
  std::vector<std::string> odd;  // unexpected Cancel answers (the canceller's, read after join)
  std::thread canceller([&] {
    uint64_t turn = 0;
    while (!stop.load()) {
      const uint64_t f = first.load();
      if (f == 0) continue;
      const Status s = p.t[0]->Cancel(f + (turn++ % kBatch));
      if (s.ok()) {
        cancels_ok.fetch_add(1);
      } else if (s.code() == ErrorCode::INVALID_PARAMS) {
        cancels_other.fetch_add(1);
      } else {
        if (odd.size() < 4) odd.push_back(s.ToString());
        cancels_other.fetch_add(1);  // counted as a race; `odd` fails the test after it
      }
    }
  });
  size_t ok = 0, canceled = 0, rounds = 0;
  // At least kRounds batches, and on until the canceller has raced them 1000 times (on a
  // loaded machine it may not get a core before the first kRounds are done).
  const auto race_limit = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  auto raced = [&] { return cancels_ok.load() + cancels_other.load() >= 1000; };
  for (size_t round = 0;
       round < kRounds || (!raced() && std::chrono::steady_clock::now() < race_limit);
       ++round, ++rounds) {
    const bool read = round % 2 == 1;
    TransportTask tasks[kBatch];
    Status accepted[kBatch];
    const uint64_t base = p.next_id + 1;
    for (size_t k = 0; k < kBatch; ++k) {
      TransportTask& t = tasks[k];
      t.task_id = ++p.next_id;
      t.peer = p.peer;
      t.kind = read ? TransportTask::Kind::kRead : TransportTask::Kind::kWrite;
      // Writes: node 0's chunks 0..3 to node 1's 0..3; reads: node 1's 0..3 into 8..11.
      t.local_addr = p.addr(0) + (read ? 8 + k : k) * kChunk;
      t.remote_addr = p.addr(1) + k * kChunk;
      t.length = kChunk;
      t.rkey = p.rkey[1];
    }
    if (read) std::memset(p.base[0] + 8 * kChunk, 0, kBatch * kChunk);
    first.store(base);
    p.t[0]->Submit(tasks, accepted);
    for (const Status& a : accepted) ASSERT_TRUE(a.ok()) << a.ToString();
    size_t seen[kBatch] = {};
    size_t done = 0;
    const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (done < kBatch && std::chrono::steady_clock::now() < limit) {
      TransportCompletion c[8];
      const size_t n = p.t[0]->PollCompletions(c);
      for (size_t i = 0; i < n; ++i) {
        ASSERT_GE(c[i].task_id, base);
        ASSERT_LT(c[i].task_id, base + kBatch);
        const size_t k = c[i].task_id - base;
        ++seen[k];
        ++done;
        if (c[i].code == ErrorCode::OK) {
          ++ok;
          ASSERT_EQ(c[i].bytes_transferred, kChunk);
          const uint8_t* got = read ? p.base[0] + (8 + k) * kChunk : p.base[1] + k * kChunk;
          const uint8_t* want = read ? p.base[1] + k * kChunk : p.base[0] + k * kChunk;
          ASSERT_EQ(std::memcmp(got, want, kChunk), 0) << "task " << c[i].task_id;
        } else {
          ASSERT_EQ(c[i].code, ErrorCode::TRANSFER_CANCELED) << "task " << c[i].task_id;
          ASSERT_EQ(c[i].bytes_transferred, 0u);
          ++canceled;
        }
      }
      if (n == 0) std::this_thread::yield();
    }
    first.store(0);
    for (size_t k = 0; k < kBatch; ++k) {
      ASSERT_EQ(seen[k], 1u) << "round " << round << " task " << base + k;
    }
  }
  stop.store(true);
  canceller.join();
  EXPECT_TRUE(odd.empty()) << odd.front();
  EXPECT_EQ(ok + canceled, rounds * kBatch);
  EXPECT_GE(cancels_ok.load() + cancels_other.load(), 1000u);
  EXPECT_EQ(p.t[0]->stats().outstanding, 0u);
  if (Mapped()) {
    EXPECT_GT(p.t[0]->stats().puts, 0u);  // the direct path ran
  }
  std::printf(
      "%zu tasks: %zu OK, %zu canceled; Cancel answered OK %llu times, "
      "INVALID_PARAMS %llu\n",
      rounds * kBatch, ok, canceled, static_cast<unsigned long long>(cancels_ok.load()),
      static_cast<unsigned long long>(cancels_other.load()));
}

// Node 0's task between its chunk `local` and node 1's chunk `remote` under node 1's key,
// for TryCopyNow (the task id is ignored there).
TransportTask CopyTask(const Pair& p, TransportTask::Kind kind, uint64_t local, uint64_t remote,
                       uint64_t length = kChunk) {
  TransportTask t;
  t.kind = kind;
  t.peer = p.peer;
  t.local_addr = p.addr(0) + local;
  t.remote_addr = p.addr(1) + remote;
  t.length = length;
  t.rkey = p.rkey[1];
  return t;
}

// TryCopyNow: where node 1's region is mapped into this process (memory UCX allocated, over
// shared memory), a WRITE or READ under the granted key is a copy on the caller's thread,
// bytes exact, counted in `copies` (and a WRITE in `writes`), never in puts or gets. It is
// declined, having moved nothing, before the key is granted, for a range outside the key's
// region or outside the local registered memory, for a probe or an empty task, where the
// memory is not mapped (heap memory; tcp), with copy_now off, and once this node crashed.
TEST_P(UcxOneSided, CopiesNowOnlyUnderAGrantedKeyToMappedMemory) {
  using Kind = TransportTask::Kind;
  for (const bool transport_memory : {true, false}) {
    SCOPED_TRACE(transport_memory ? "transport memory" : "heap memory");
    Pair p(Options(), 50'000, transport_memory);
    ASSERT_NE(p.base[0], nullptr);
    ASSERT_NE(p.base[1], nullptr);
    p.Fill();
    EXPECT_FALSE(p.t[0]->TryCopyNow(CopyTask(p, Kind::kWrite, kChunk, kChunk)));  // no key yet
    EXPECT_NE(std::memcmp(p.base[0] + kChunk, p.base[1] + kChunk, kChunk), 0);
    ASSERT_EQ(p.Write(0).code, ErrorCode::OK);  // the key, granted
    const bool mapped = transport_memory && Mapped();
    const UcxTransportStats before = p.t[0]->stats();
    EXPECT_EQ(p.t[0]->TryCopyNow(CopyTask(p, Kind::kWrite, kChunk, kChunk)), mapped);
    EXPECT_EQ(std::memcmp(p.base[0] + kChunk, p.base[1] + kChunk, kChunk) == 0, mapped);
    for (size_t i = 0; i < kChunk; ++i) p.base[1][2 * kChunk + i] = static_cast<uint8_t>(i ^ 0x5A);
    EXPECT_EQ(p.t[0]->TryCopyNow(CopyTask(p, Kind::kRead, 10 * kChunk, 2 * kChunk, 1000)), mapped);
    EXPECT_EQ(std::memcmp(p.base[0] + 10 * kChunk, p.base[1] + 2 * kChunk, 1000) == 0, mapped);
    const UcxTransportStats after = p.t[0]->stats();
    EXPECT_EQ(after.copies - before.copies, mapped ? 2u : 0u);
    EXPECT_EQ(after.writes - before.writes, mapped ? 1u : 0u);
    EXPECT_EQ(after.puts, before.puts);
    EXPECT_EQ(after.gets, before.gets);
    // Declined, whatever the path: nothing moves at either side.
    const std::vector<uint8_t> there(p.base[1], p.base[1] + kRegion);
    const std::vector<uint8_t> here(p.base[0], p.base[0] + kRegion);
    EXPECT_FALSE(p.t[0]->TryCopyNow(CopyTask(p, Kind::kWrite, 0, kRegion - kChunk / 2)));
    EXPECT_FALSE(p.t[0]->TryCopyNow(CopyTask(p, Kind::kRead, kRegion - kChunk / 2, 0)));
    EXPECT_FALSE(p.t[0]->TryCopyNow(CopyTask(p, Kind::kProbe, 0, 0)));
    EXPECT_FALSE(p.t[0]->TryCopyNow(CopyTask(p, Kind::kWrite, 0, 0, 0)));
    TransportTask foreign = CopyTask(p, Kind::kWrite, 0, 0);
    foreign.rkey = p.rkey[1] + 1;  // a key never granted
    EXPECT_FALSE(p.t[0]->TryCopyNow(foreign));
    EXPECT_EQ(std::memcmp(there.data(), p.base[1], kRegion), 0);
    EXPECT_EQ(std::memcmp(here.data(), p.base[0], kRegion), 0);
    EXPECT_EQ(p.t[0]->stats().copies, after.copies);
    p.t[0]->Crash();
    EXPECT_FALSE(p.t[0]->TryCopyNow(CopyTask(p, Kind::kWrite, 3 * kChunk, 3 * kChunk)));
  }
  UcxTransportOptions off = Options();
  off.copy_now = false;
  Pair p(off, 50'000, true);
  p.Fill();
  ASSERT_EQ(p.Write(0).code, ErrorCode::OK);
  EXPECT_FALSE(p.t[0]->TryCopyNow(CopyTask(p, TransportTask::Kind::kWrite, kChunk, kChunk)));
  EXPECT_NE(std::memcmp(p.base[0] + kChunk, p.base[1] + kChunk, kChunk), 0);
  EXPECT_EQ(p.t[0]->stats().copies, 0u);
}

// A thread copying into node 1's mapped region without pause while node 1 unregisters it:
// the revocation waits for the copy in progress (the key counts it in flight), UCX unmaps
// only after it, UnregisterMemory returns OK, and from then on every copy is declined
// (the key is gone) and moves nothing.
TEST_P(UcxOneSided, CopiesRacingARevocationEndBeforeTheRegionIsUnmapped) {
  if (!Mapped()) GTEST_SKIP() << "UCX_TLS maps no peer memory here: nothing is copied";
  Pair p(Options(), 50'000, true);
  ASSERT_NE(p.base[0], nullptr);
  ASSERT_NE(p.base[1], nullptr);
  p.Fill();
  ASSERT_EQ(p.Write(0).code, ErrorCode::OK);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> copied{0}, declined{0};
  std::thread copier([&] {
    for (uint64_t k = 0; !stop.load(); ++k) {
      const uint64_t at = (1 + k % 8) * kChunk;
      if (p.t[0]->TryCopyNow(CopyTask(p, TransportTask::Kind::kWrite, at, at))) {
        copied.fetch_add(1);
      } else {
        declined.fetch_add(1);
      }
    }
  });
  const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (copied.load() < 1000 && std::chrono::steady_clock::now() < limit) {
    std::this_thread::yield();
  }
  ASSERT_GE(copied.load(), 1000u);
  const Status s = p.t[1]->UnregisterMemory(p.addr(1), kRegion);
  // Counted inside the call, before the key is released: final once the key is gone.
  const uint64_t at_return = p.t[0]->stats().copies;
  const uint64_t declined_at_return = declined.load();
  while (declined.load() < declined_at_return + 1000 && std::chrono::steady_clock::now() < limit) {
    std::this_thread::yield();
  }
  stop.store(true);
  copier.join();
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(p.t[0]->stats().keys_revoked, 1u);
  EXPECT_EQ(p.t[0]->stats().copies, at_return);  // nothing copied after the key went back
  EXPECT_EQ(copied.load(), at_return);
  EXPECT_GE(declined.load(), declined_at_return + 1000);
}

// A key granted for a 256 MiB region: over shared memory the initiator enters the mapped
// region in its page tables on a thread of its own, 16 MiB at a time, and destroys a key's
// handle only between chunks. A revocation that comes meanwhile is answered (no deadlock
// between the prefault, the state lock and the worker): the target's UnregisterMemory
// returns OK within its revoke timeout (100 ms here), the initiator counts the key revoked,
// and its next WRITE under the old key is refused and moves nothing.
TEST_P(UcxOneSided, ARevocationIsAnsweredWhileTheRegionIsPrefaulted) {
  if (!Mapped()) {
    // Nothing is prefaulted where UCX does not map the peer's memory (and over tcp the
    // two 256 MiB allocations alone took 5 s); UnregisterRevokesTheKeyFromItsHolder
    // covers the revocation there.
    GTEST_SKIP() << "UCX_TLS maps no peer memory here: no prefault to race";
  }
  constexpr uint64_t kBig = 256ull << 20;
  Pair p(Options(), 50'000, true, nullptr, kBig);
  ASSERT_NE(p.base[0], nullptr);
  ASSERT_NE(p.base[1], nullptr);
  p.Fill();
  ASSERT_EQ(p.Write(0).code, ErrorCode::OK);  // the grant, and the prefault it starts
  const Status s = p.t[1]->UnregisterMemory(p.addr(1), kBig);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(p.t[1]->stats().revokes_sent, 1u);
  EXPECT_EQ(p.t[0]->stats().keys_revoked, 1u);
  const auto before = std::vector<uint8_t>(p.base[1] + kChunk, p.base[1] + 2 * kChunk);
  std::memset(p.base[0] + kChunk, 0xEE, kChunk);
  const TransportCompletion c = p.Write(1);
  EXPECT_EQ(c.code, ErrorCode::REMOTE_ACCESS_DENIED);
  EXPECT_EQ(c.bytes_transferred, 0u);
  EXPECT_EQ(std::memcmp(before.data(), p.base[1] + kChunk, kChunk), 0);
}

INSTANTIATE_TEST_SUITE_P(Transport, UcxOneSided, ::testing::Values(std::string("ucx")),
                         [](const auto& info) { return info.param; });

INSTANTIATE_TEST_SUITE_P(Transport, UcxSpin, ::testing::Values(std::string("ucx")),
                         [](const auto& info) { return info.param; });

INSTANTIATE_TEST_SUITE_P(Transport, UcxProgress, ::testing::Values(std::string("ucx")),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tidal::backends::ucx
