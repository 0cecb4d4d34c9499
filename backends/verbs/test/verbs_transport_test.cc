// VerbsTransport driven through MockVerbsApi with a FakeHca behind it: the connection
// state machine, memory windows, slicing, work-completion errors, endpoint rebuilds, NIC
// failover, resource exhaustion, notifications, unregister and cancel, all without a
// device. No timing: the Env's clock moves only when a test advances it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <map>

#include "fake_hca.h"
#include "tidal/backends/verbs/verbs_transport.h"

namespace tidal::backends::verbs {
namespace {

using ::testing::NiceMock;
using ::testing::Return;

// An Env whose time moves only in Advance; posted work and due timers run there.
class FakeEnv final : public Env {
 public:
  uint64_t NowNs() override { return now_; }
  uint64_t RandomU64() override { return rng_ = rng_ * 6364136223846793005ULL + 1442695040888963407ULL; }
  void Post(Callback fn) override { posted_.push_back(std::move(fn)); }
  TimerId ScheduleAfter(uint64_t delay, Callback fn) override {
    timers_.emplace(std::make_pair(now_ + delay, next_), std::move(fn));
    return next_++;
  }
  bool CancelTimer(TimerId id) override {
    for (auto it = timers_.begin(); it != timers_.end(); ++it) {
      if (it->first.second == id) {
        timers_.erase(it);
        return true;
      }
    }
    return false;
  }
  bool RunUntil(const std::function<bool()>& done) override { return done(); }
  std::string_view Name() const override { return "fake"; }
  void Advance(uint64_t ns) {
    const uint64_t until = now_ + ns;
    while (!timers_.empty() && timers_.begin()->first.first <= until) {
      auto it = timers_.begin();
      now_ = it->first.first;
      Callback fn = std::move(it->second);
      timers_.erase(it);
      fn();
    }
    now_ = until;
  }

 private:
  uint64_t now_ = 1'000;
  uint64_t rng_ = 42;
  TimerId next_ = 1;
  std::deque<Callback> posted_;
  std::map<std::pair<uint64_t, TimerId>, Callback> timers_;
};

constexpr uint64_t kHandshake = 1'000'000;

VerbsOptions TestOptions() {
  VerbsOptions o;
  o.notify_bytes = 1024;  // control buffers fit a 16 KiB max_mr_size
  o.notify_slots = 4;
  o.recv_depth = 8;
  o.handshake_timeout_ns = kHandshake;
  o.handshake_attempts = 2;
  o.poll_interval_ns = 1'000'000'000'000ULL;  // the tests poll by hand
  return o;
}

struct Node {
  std::string name;
  FakeEnv env;
  std::unique_ptr<FakeHca> hca;
  NiceMock<MockVerbsApi>* api = nullptr;
  std::unique_ptr<VerbsTransport> t;
  std::vector<std::vector<uint8_t>> memory;
  int ready = 0;

  uint8_t* Alloc(size_t n) {
    memory.emplace_back(n, 0);
    return memory.back().data();
  }
};

class VerbsTransportTest : public ::testing::Test {
 protected:
  Node& Make(const std::string& name, std::vector<FakeHca::Device> devices,
             VerbsOptions options = TestOptions(), bool install = true) {
    auto n = std::make_unique<Node>();
    n->name = name;
    n->hca = std::make_unique<FakeHca>(wire_, std::move(devices));
    auto api = std::make_unique<NiceMock<MockVerbsApi>>();
    n->api = api.get();
    n->hca->Bind(*api);
    n->t = std::make_unique<VerbsTransport>(std::move(api), options);
    if (install) {
      TransportInstall in;
      in.env = &n->env;
      in.segment_name = name;
      Node* raw = n.get();
      in.on_ready = [raw] { ++raw->ready; };
      Status s = n->t->Install(in);
      EXPECT_TRUE(s.ok()) << s.ToString();
    }
    nodes_.push_back(std::move(n));
    return *nodes_.back();
  }
  static std::vector<FakeHca::Device> OneNic(std::string name = "mlx5_0",
                                            uint64_t max_mr = uint64_t{1} << 40) {
    return {FakeHca::Device{std::move(name), {FakeHca::Port{true, 1}}, max_mr}};
  }
  static SegmentDescriptor Desc(Node& n) {
    SegmentDescriptor d;
    d.name = n.name;
    d.transport = "verbs";
    d.address = n.t->LocalAddress();
    d.incarnation = 1;
    return d;
  }
  void Pump() {
    for (int round = 0; round < 8; ++round) {
      for (auto& n : nodes_) n->t->Progress();
    }
  }
  PeerId Connect(Node& a, Node& b) {
    Result<PeerId> p = a.t->Connect(Desc(b));
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    Pump();
    return p.ok() ? *p : 0;
  }
  struct Reg {
    uint8_t* data;
    uint64_t addr;
    uint64_t key;
  };
  Reg Register(Node& n, size_t size, uint8_t seed = 0) {
    uint8_t* p = n.Alloc(size);
    for (size_t i = 0; i < size; ++i) p[i] = static_cast<uint8_t>(seed + i * 7);
    Result<uint64_t> k = n.t->RegisterMemory(reinterpret_cast<uint64_t>(p), size, Location::Host());
    EXPECT_TRUE(k.ok()) << k.status().ToString();
    return {p, reinterpret_cast<uint64_t>(p), k.ok() ? *k : 0};
  }
  static TransportTask Write(uint64_t id, PeerId p, uint64_t local, uint64_t remote, uint64_t len,
                             uint64_t key, TransportTask::Kind kind = TransportTask::Kind::kWrite) {
    TransportTask t;
    t.task_id = id;
    t.kind = kind;
    t.peer = p;
    t.local_addr = local;
    t.remote_addr = remote;
    t.length = len;
    t.rkey = key;
    return t;
  }
  static Status Submit(Node& n, const TransportTask& t) {
    Status s;
    n.t->Submit(std::span<const TransportTask>(&t, 1), std::span<Status>(&s, 1));
    return s;
  }
  static std::map<uint64_t, TransportCompletion> Drain(Node& n) {
    std::map<uint64_t, TransportCompletion> out;
    TransportCompletion c[16];
    for (;;) {
      const size_t k = n.t->PollCompletions(c);
      if (k == 0) break;
      for (size_t i = 0; i < k; ++i) {
        EXPECT_EQ(out.count(c[i].task_id), 0u) << "a second completion of task " << c[i].task_id;
        out[c[i].task_id] = c[i];
      }
    }
    return out;
  }
  static std::vector<SendRecord> RdmaSends(const Node& n) {
    std::vector<SendRecord> out;
    for (const SendRecord& s : n.hca->sends) {
      if (s.opcode == IBV_WR_RDMA_WRITE || s.opcode == IBV_WR_RDMA_READ) out.push_back(s);
    }
    return out;
  }
  static std::vector<ModifyRecord> RcModifies(const Node& n) {
    std::vector<ModifyRecord> out;
    for (const ModifyRecord& m : n.hca->modifies) {
      if (m.type == IBV_QPT_RC) out.push_back(m);
    }
    return out;
  }

  FakeWire wire_;
  std::vector<std::unique_ptr<Node>> nodes_;
};

constexpr int kInitMask = IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS;
constexpr int kRtrMask = IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
                         IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER;
constexpr int kRtsMask = IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
                         IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC;
constexpr int kAccess = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ;

// ---- devices and ports ----

TEST_F(VerbsTransportTest, InstallWithoutDeviceIsUnsupportedWithReason) {
  Node& n = Make("a", {}, TestOptions(), false);
  TransportInstall in;
  in.env = &n.env;
  in.segment_name = "a";
  Status s = n.t->Install(in);
  EXPECT_EQ(s.code(), ErrorCode::UNSUPPORTED);
  EXPECT_EQ(s.message(), "no RDMA device found (ibv_get_device_list is empty)");
}

TEST_F(VerbsTransportTest, UnavailableReasonNamesTheEmptyDeviceList) {
  NiceMock<MockVerbsApi> api;
  ibv_device* none[1] = {nullptr};
  EXPECT_CALL(api, GetDeviceList(::testing::_))
      .WillOnce([&](int* n) {
        *n = 0;
        return none;
      });
  EXPECT_CALL(api, FreeDeviceList(none)).Times(1);
  EXPECT_EQ(VerbsUnavailableReason(api),
            "no RDMA device found: ibv_get_device_list returned 0 devices");
}

TEST_F(VerbsTransportTest, FirstActivePortIsUsedWhenPortOneIsDown) {
  Node& n = Make("a", {FakeHca::Device{"mlx5_0", {FakeHca::Port{false, 1}, FakeHca::Port{true, 2}}}});
  ASSERT_EQ(n.t->nic_count(), 1u);
  EXPECT_EQ(n.t->nic_name(0), "mlx5_0:2");
}

TEST_F(VerbsTransportTest, DeviceIsSelectedByName) {
  VerbsOptions o = TestOptions();
  o.device = "mlx5_1";
  Node& n = Make("a", {FakeHca::Device{"mlx5_0", {FakeHca::Port{true, 1}}},
                       FakeHca::Device{"mlx5_1", {FakeHca::Port{true, 7}}}},
                 o);
  ASSERT_EQ(n.t->nic_count(), 1u);
  EXPECT_EQ(n.t->nic_name(0), "mlx5_1:1");
}

// ---- connection state machine ----

TEST_F(VerbsTransportTest, ConnectionWalksInitRtrRtsWithExactMasks) {
  Node& a = Make("a", OneNic());
  Node& b = Make("b", OneNic());
  const PeerId p = Connect(a, b);
  EXPECT_TRUE(a.t->endpoint_ready(p));
  const auto am = RcModifies(a), bm = RcModifies(b);
  ASSERT_EQ(am.size(), 3u);
  ASSERT_EQ(bm.size(), 3u);
  const uint32_t aq = am[0].qpn, bq = bm[0].qpn;
  for (const auto* m : {&am, &bm}) {
    EXPECT_EQ((*m)[0].state, IBV_QPS_INIT);
    EXPECT_EQ((*m)[0].mask, kInitMask);
    EXPECT_EQ((*m)[0].attr.qp_access_flags, static_cast<unsigned>(kAccess));
    EXPECT_EQ((*m)[0].attr.port_num, 1);
    EXPECT_EQ((*m)[0].attr.pkey_index, 0);
    EXPECT_EQ((*m)[1].state, IBV_QPS_RTR);
    EXPECT_EQ((*m)[1].mask, kRtrMask);
    EXPECT_EQ((*m)[1].attr.path_mtu, IBV_MTU_4096);
    EXPECT_EQ((*m)[1].attr.max_dest_rd_atomic, 16);
    EXPECT_EQ((*m)[1].attr.min_rnr_timer, 12);
    EXPECT_EQ((*m)[1].attr.ah_attr.is_global, 1);
    EXPECT_EQ((*m)[1].attr.ah_attr.port_num, 1);
    EXPECT_EQ((*m)[2].state, IBV_QPS_RTS);
    EXPECT_EQ((*m)[2].mask, kRtsMask);
    EXPECT_EQ((*m)[2].attr.timeout, 14);
    EXPECT_EQ((*m)[2].attr.retry_cnt, 7);
    EXPECT_EQ((*m)[2].attr.rnr_retry, 7);
    EXPECT_EQ((*m)[2].attr.max_rd_atomic, 16);
  }
  // Each side's RTR names the other's queue pair and expects the PSN the other sends with.
  EXPECT_EQ(am[1].attr.dest_qp_num, bq);
  EXPECT_EQ(bm[1].attr.dest_qp_num, aq);
  EXPECT_EQ(am[1].attr.rq_psn, bm[2].attr.sq_psn);
  EXPECT_EQ(bm[1].attr.rq_psn, am[2].attr.sq_psn);
  // The passive side is ready (RTS) before the initiator leaves INIT.
  EXPECT_EQ(bm[2].state, IBV_QPS_RTS);
}

TEST_F(VerbsTransportTest, ConnectTwiceReturnsOnePeerIdAndOneQueuePair) {
  Node& a = Make("a", OneNic());
  Node& b = Make("b", OneNic());
  const PeerId p = Connect(a, b);
  Result<PeerId> q = a.t->Connect(Desc(b));
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(*q, p);
  Pump();
  EXPECT_EQ(RcModifies(a).size(), 3u);
}

TEST_F(VerbsTransportTest, ConnectToAForeignAddressIsSegmentNotFound) {
  Node& a = Make("a", OneNic());
  SegmentDescriptor d;
  d.name = "x";
  d.address = "sim:1";
  EXPECT_EQ(a.t->Connect(d).code(), ErrorCode::SEGMENT_NOT_FOUND);
}

TEST_F(VerbsTransportTest, LostHandshakeIsResentAfterTheTimeout) {
  Node& a = Make("a", OneNic());
  Node& b = Make("b", OneNic());
  a.hca->drop_ud = 1;  // the first REQ is lost
  Result<PeerId> p = a.t->Connect(Desc(b));
  ASSERT_TRUE(p.ok());
  Pump();
  EXPECT_FALSE(a.t->endpoint_ready(*p));
  a.env.Advance(kHandshake);
  Pump();
  EXPECT_TRUE(a.t->endpoint_ready(*p));
}

// ---- data ----

TEST_F(VerbsTransportTest, WriteAndReadMoveExactBytes) {
  Node& a = Make("a", OneNic());
  Node& b = Make("b", OneNic());
  Reg la = Register(a, 4096, 3), rb = Register(b, 4096, 0);
  const PeerId p = Connect(a, b);
  std::memset(rb.data, 0, 4096);
  ASSERT_TRUE(Submit(a, Write(1, p, la.addr + 100, rb.addr + 200, 1000, rb.key)).ok());
  Pump();
  auto c = Drain(a);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[1].code, ErrorCode::OK);
  EXPECT_EQ(c[1].bytes_transferred, 1000u);
  EXPECT_EQ(std::memcmp(rb.data + 200, la.data + 100, 1000), 0);
  EXPECT_EQ(rb.data[199], 0);
  EXPECT_EQ(rb.data[1200], 0);
  for (int i = 0; i < 64; ++i) rb.data[3000 + i] = static_cast<uint8_t>(0xA0 + i);
  ASSERT_TRUE(Submit(a, Write(2, p, la.addr, rb.addr + 3000, 64, rb.key,
                              TransportTask::Kind::kRead)).ok());
  Pump();
  c = Drain(a);
  EXPECT_EQ(c[2].code, ErrorCode::OK);
  EXPECT_EQ(c[2].bytes_transferred, 64u);
  EXPECT_EQ(la.data[0], 0xA0);
  EXPECT_EQ(la.data[63], 0xA0 + 63);
}

TEST_F(VerbsTransportTest, RegionLargerThanMaxMrSizeIsSplitIntoPublishedWindows) {
  Node& a = Make("a", OneNic("mlx5_0", 16384));
  Node& b = Make("b", OneNic("mlx5_0", 16384));
  Reg r = Register(b, 40960);
  ASSERT_EQ(b.hca->registrations.size(), 4u);  // the control buffer, then three windows
  EXPECT_EQ(b.hca->registrations[1], std::make_pair(r.addr, uint64_t{16384}));
  EXPECT_EQ(b.hca->registrations[2], std::make_pair(r.addr + 16384, uint64_t{16384}));
  EXPECT_EQ(b.hca->registrations[3], std::make_pair(r.addr + 32768, uint64_t{8192}));
  const auto w = b.t->windows(r.addr);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[2], std::make_pair(r.addr + 32768, uint64_t{8192}));
  // The descriptor carries every window's key: a read of each window's last byte uses it.
  const PeerId p = Connect(a, b);
  Reg l = Register(a, 4096);
  for (uint64_t k = 0; k < 3; ++k) {
    ASSERT_TRUE(Submit(a, Write(10 + k, p, l.addr, w[k].first + w[k].second - 1, 1, r.key,
                                TransportTask::Kind::kRead)).ok());
  }
  Pump();
  auto c = Drain(a);
  for (uint64_t k = 0; k < 3; ++k) EXPECT_EQ(c[10 + k].code, ErrorCode::OK);
  const auto sends = RdmaSends(a);
  ASSERT_EQ(sends.size(), 3u);
  std::set<uint32_t> keys;
  for (const auto& s : sends) keys.insert(s.rkey);
  EXPECT_EQ(keys.size(), 3u);
  for (size_t k = 0; k < 3; ++k) {
    EXPECT_EQ(wire_.rkeys.at(sends[k].rkey).second->addr,
              reinterpret_cast<void*>(w[k].first));
  }
}

TEST_F(VerbsTransportTest, WriteAcrossRemoteWindowsIsSlicedAtTheBoundaries) {
  Node& a = Make("a", OneNic());
  Node& b = Make("b", OneNic("mlx5_0", 16384));
  const PeerId p0 = Connect(a, b);
  Reg r = Register(b, 40960);
  std::memset(r.data, 0, 40960);
  Result<PeerId> p = a.t->Connect(Desc(b));  // the descriptor now lists the region
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, p0);
  Reg l = Register(a, 32768, 9);
  ASSERT_TRUE(Submit(a, Write(1, *p, l.addr, r.addr + 10240, 20480, r.key)).ok());
  Pump();
  auto c = Drain(a);
  EXPECT_EQ(c[1].code, ErrorCode::OK);
  EXPECT_EQ(c[1].bytes_transferred, 20480u);
  const auto s = RdmaSends(a);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].remote_addr, r.addr + 10240);
  EXPECT_EQ(s[0].length, 6144u);
  EXPECT_EQ(s[1].remote_addr, r.addr + 16384);
  EXPECT_EQ(s[1].length, 14336u);
  EXPECT_NE(s[0].rkey, s[1].rkey);
  EXPECT_EQ(std::memcmp(r.data + 10240, l.data, 20480), 0);
  EXPECT_EQ(r.data[10239], 0);
  EXPECT_EQ(r.data[30720], 0);
}

TEST_F(VerbsTransportTest, LocalWindowsSliceTheRequestToo) {
  Node& a = Make("a", OneNic("mlx5_0", 16384));
  Node& b = Make("b", OneNic());
  Reg r = Register(b, 32768);
  const PeerId p = Connect(a, b);
  Reg l = Register(a, 40960, 5);
  ASSERT_TRUE(Submit(a, Write(1, p, l.addr + 12288, r.addr, 12288, r.key)).ok());
  Pump();
  EXPECT_EQ(Drain(a)[1].code, ErrorCode::OK);
  const auto s = RdmaSends(a);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].local_addr, l.addr + 12288);
  EXPECT_EQ(s[0].length, 4096u);
  EXPECT_EQ(s[0].remote_addr, r.addr);
  EXPECT_EQ(s[1].local_addr, l.addr + 16384);
  EXPECT_EQ(s[1].length, 8192u);
  EXPECT_EQ(s[1].remote_addr, r.addr + 4096);
  EXPECT_NE(s[0].lkey, s[1].lkey);
  EXPECT_EQ(std::memcmp(r.data, l.data + 12288, 12288), 0);
}

TEST_F(VerbsTransportTest, WrongKeyOrRangePastTheRegionIsDeniedAndNothingIsPosted) {
  Node& a = Make("a", OneNic());
  Node& b = Make("b", OneNic());
  Reg r = Register(b, 4096);
  const PeerId p = Connect(a, b);
  Reg l = Register(a, 8192);
  ASSERT_TRUE(Submit(a, Write(1, p, l.addr, r.addr, 64, r.key ^ 0x100)).ok());
  ASSERT_TRUE(Submit(a, Write(2, p, l.addr, r.addr + 4000, 200, r.key)).ok());
  Pump();
  auto c = Drain(a);
  EXPECT_EQ(c[1].code, ErrorCode::REMOTE_ACCESS_DENIED);
  EXPECT_EQ(c[1].bytes_transferred, 0u);
  EXPECT_EQ(c[2].code, ErrorCode::REMOTE_ACCESS_DENIED);  // the target's HCA refused it
  EXPECT_EQ(c[2].bytes_transferred, 0u);
  const auto s = RdmaSends(a);
  ASSERT_EQ(s.size(), 1u);  // the wrong key never left; the long range hit the HCA's bound
  EXPECT_EQ(s[0].remote_addr, r.addr + 4000);
  EXPECT_EQ(b.hca->deregs, 0);
  EXPECT_EQ(r.data[4095], static_cast<uint8_t>(4095 * 7));  // nothing moved
}

TEST_F(VerbsTransportTest, RegionRegisteredAfterConnectIsReachedThroughItsKey) {
  Node& a = Make("a", OneNic());
  Node& b = Make("b", OneNic());
  const PeerId p = Connect(a, b);
  Reg r = Register(b, 4096);  // a's copy of b's blob does not list it
  std::memset(r.data, 0, 4096);
  Reg l = Register(a, 4096, 21);
  ASSERT_TRUE(Submit(a, Write(1, p, l.addr, r.addr + 8, 300, r.key)).ok());
  ASSERT_TRUE(Submit(a, Write(2, p, l.addr, r.addr, 64, r.key ^ 0x2)).ok());
  Pump();
  auto c = Drain(a);
  EXPECT_EQ(c[1].code, ErrorCode::OK);
  EXPECT_EQ(c[1].bytes_transferred, 300u);
  EXPECT_EQ(std::memcmp(r.data + 8, l.data, 300), 0);
  EXPECT_EQ(c[2].code, ErrorCode::REMOTE_ACCESS_DENIED);
  EXPECT_EQ(r.data[0], 0);
}

TEST_F(VerbsTransportTest, LocalRangeOutsideRegisteredMemoryIsRejected) {
  Node& a = Make("a", OneNic());
  Node& b = Make("b", OneNic());
  Reg r = Register(b, 4096);
  const PeerId p = Connect(a, b);
  Reg l = Register(a, 4096);
  EXPECT_EQ(Submit(a, Write(1, p, l.addr + 4000, r.addr, 200, r.key)).code(),
            ErrorCode::ADDRESS_NOT_REGISTERED);
  EXPECT_EQ(Submit(a, Write(2, p + 5, l.addr, r.addr, 20, r.key)).code(),
            ErrorCode::INVALID_PARAMS);
  Pump();
  EXPECT_TRUE(Drain(a).empty());
}

// ---- work-completion errors ----

TEST_F(VerbsTransportTest, WorkCompletionStatusTable) {
  const std::pair<ibv_wc_status, ErrorCode> table[] = {
      {IBV_WC_SUCCESS, ErrorCode::OK},
      {IBV_WC_REM_ACCESS_ERR, ErrorCode::REMOTE_ACCESS_DENIED},
      {IBV_WC_REM_INV_REQ_ERR, ErrorCode::REMOTE_ACCESS_DENIED},
      {IBV_WC_LOC_PROT_ERR, ErrorCode::ADDRESS_NOT_REGISTERED},
      {IBV_WC_LOC_ACCESS_ERR, ErrorCode::ADDRESS_NOT_REGISTERED},
      {IBV_WC_MW_BIND_ERR, ErrorCode::ADDRESS_NOT_REGISTERED},
      {IBV_WC_RETRY_EXC_ERR, ErrorCode::PEER_UNREACHABLE},
      {IBV_WC_RNR_RETRY_EXC_ERR, ErrorCode::PEER_UNREACHABLE},
      {IBV_WC_RESP_TIMEOUT_ERR, ErrorCode::PEER_UNREACHABLE},
      {IBV_WC_FATAL_ERR, ErrorCode::PEER_UNREACHABLE},
      {IBV_WC_LOC_LEN_ERR, ErrorCode::TRANSFER_FAIL},
      {IBV_WC_REM_OP_ERR, ErrorCode::TRANSFER_FAIL},
      {IBV_WC_LOC_QP_OP_ERR, ErrorCode::TRANSFER_FAIL},
      {IBV_WC_BAD_RESP_ERR, ErrorCode::TRANSFER_FAIL},
      {IBV_WC_GENERAL_ERR, ErrorCode::TRANSFER_FAIL},
  };
  for (auto [st, code] : table) EXPECT_EQ(WcStatusToError(st), code) << ibv_wc_status_str(st);
  EXPECT_TRUE(IsPathFailure(IBV_WC_RETRY_EXC_ERR));
  EXPECT_FALSE(IsPathFailure(IBV_WC_REM_ACCESS_ERR));
}

TEST_F(VerbsTransportTest, FailedWorkCompletionsCompleteTasksWithTheMappedCode) {
  Node& a = Make("a", OneNic());
  Node& b = Make("b", OneNic());
  Reg r = Register(b, 4096);
  const PeerId p = Connect(a, b);
  Reg l = Register(a, 4096);
  const std::pair<ibv_wc_status, ErrorCode> cases[] = {
      {IBV_WC_REM_ACCESS_ERR, ErrorCode::REMOTE_ACCESS_DENIED},
      {IBV_WC_LOC_PROT_ERR, ErrorCode::ADDRESS_NOT_REGISTERED},
      {IBV_WC_REM_OP_ERR, ErrorCode::TRANSFER_FAIL},
  };
  uint64_t id = 1;
  for (auto [st, code] : cases) {
    a.hca->forced.push_back(st);
    ASSERT_TRUE(Submit(a, Write(id, p, l.addr, r.addr, 128, r.key)).ok());
    Pump();
    auto c = Drain(a);
    ASSERT_EQ(c.count(id), 1u);
    EXPECT_EQ(c[id].code, code) << ibv_wc_status_str(st);
    EXPECT_EQ(c[id].bytes_transferred, 0u);
    ++id;
  }
}

TEST_F(VerbsTransportTest, QpErrorRebuildsTheEndpointAndLaterTasksSucceed) {
  Node& a = Make("a", OneNic());
  Node& b = Make("b", OneNic());
  Reg r = Register(b, 4096);
  const PeerId p = Connect(a, b);
  Reg l = Register(a, 4096, 1);
  const uint32_t first_qp = RcModifies(a)[0].qpn;
  a.hca->forced.push_back(IBV_WC_REM_ACCESS_ERR);
  ASSERT_TRUE(Submit(a, Write(1, p, l.addr, r.addr, 100, r.key)).ok());
  Pump();
  EXPECT_EQ(Drain(a)[1].code, ErrorCode::REMOTE_ACCESS_DENIED);
  EXPECT_EQ(a.t->endpoint_rebuilds(p), 1);
  EXPECT_TRUE(a.t->endpoint_ready(p));
  EXPECT_EQ(wire_.qps.count(first_qp), 0u);  // the broken queue pair was destroyed
  ASSERT_TRUE(Submit(a, Write(2, p, l.addr, r.addr, 100, r.key)).ok());
  Pump();
  auto c = Drain(a);
  EXPECT_EQ(c[2].code, ErrorCode::OK);
  EXPECT_EQ(c[2].bytes_transferred, 100u);
  EXPECT_EQ(std::memcmp(r.data, l.data, 100), 0);
  EXPECT_NE(RdmaSends(a).back().qpn, first_qp);
}

TEST_F(VerbsTransportTest, TasksFlushedByAnotherTasksErrorAreRepostedNotFailed) {
  Node& a = Make("a", OneNic());
  Node& b = Make("b", OneNic());
  Reg r = Register(b, 4096);
  const PeerId p = Connect(a, b);
  Reg l = Register(a, 4096, 2);
  a.hca->hold = true;
  a.hca->forced.push_back(IBV_WC_REM_ACCESS_ERR);
  for (uint64_t id = 1; id <= 3; ++id) {
    ASSERT_TRUE(Submit(a, Write(id, p, l.addr, r.addr + id * 100, 50, r.key)).ok());
  }
  a.hca->Release();
  a.hca->hold = false;
  Pump();
  auto c = Drain(a);
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[1].code, ErrorCode::REMOTE_ACCESS_DENIED);
  EXPECT_EQ(c[2].code, ErrorCode::OK);
  EXPECT_EQ(c[2].bytes_transferred, 50u);
  EXPECT_EQ(c[3].code, ErrorCode::OK);
  EXPECT_EQ(std::memcmp(r.data + 300, l.data, 50), 0);
}

TEST_F(VerbsTransportTest, PathFailureMovesTheEndpointToAnotherNic) {
  Node& a = Make("a", {FakeHca::Device{"mlx5_0", {FakeHca::Port{true, 1}}},
                       FakeHca::Device{"mlx5_1", {FakeHca::Port{true, 2}}}});
  Node& b = Make("b", OneNic());
  ASSERT_EQ(a.t->nic_count(), 2u);
  Reg r = Register(b, 4096);
  const PeerId p = Connect(a, b);
  EXPECT_EQ(a.t->endpoint_nic(p), 0);
  Reg l = Register(a, 4096, 4);
  a.hca->failed_devices.insert("mlx5_0");  // its link went down after the connection
  ASSERT_TRUE(Submit(a, Write(1, p, l.addr, r.addr, 256, r.key)).ok());
  Pump();
  auto c = Drain(a);
  EXPECT_EQ(c[1].code, ErrorCode::OK);
  EXPECT_EQ(c[1].bytes_transferred, 256u);
  EXPECT_EQ(a.t->endpoint_nic(p), 1);
  EXPECT_EQ(std::memcmp(r.data, l.data, 256), 0);
  // The retry used the second NIC's key for the local buffer.
  const auto s = RdmaSends(a);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_NE(s[0].lkey, s[1].lkey);
}

TEST_F(VerbsTransportTest, PeerVanishingMidTransferCompletesPeerUnreachable) {
  Node& a = Make("a", OneNic());
  Node& b = Make("b", OneNic());
  Reg r = Register(b, 4096);
  const PeerId p = Connect(a, b);
  Reg l = Register(a, 4096);
  a.hca->hold = true;
  ASSERT_TRUE(Submit(a, Write(1, p, l.addr, r.addr, 64, r.key)).ok());
  ASSERT_TRUE(Submit(a, Write(2, p, l.addr, r.addr + 64, 64, r.key,
                              TransportTask::Kind::kRead)).ok());
  b.hca->dead = true;
  a.hca->Release();
  a.hca->hold = false;
  std::map<uint64_t, TransportCompletion> c;
  for (int step = 0; step < 20 && c.size() < 2; ++step) {
    Pump();
    for (auto& [id, done] : Drain(a)) c[id] = done;
    a.env.Advance(kHandshake);
  }
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[1].code, ErrorCode::PEER_UNREACHABLE);
  EXPECT_EQ(c[1].bytes_transferred, 0u);
  EXPECT_EQ(c[2].code, ErrorCode::PEER_UNREACHABLE);
  EXPECT_EQ(c[2].bytes_transferred, 0u);
  EXPECT_FALSE(a.t->endpoint_ready(p));
  // Later work to the vanished peer fails too, once its handshake runs out.
  ASSERT_TRUE(Submit(a, Write(3, p, l.addr, r.addr, 8, r.key)).ok());
  c.clear();
  for (int step = 0; step < 20 && c.empty(); ++step) {
    a.env.Advance(kHandshake);
    Pump();
    c = Drain(a);
  }
  EXPECT_EQ(c[3].code, ErrorCode::PEER_UNREACHABLE);
}

// ---- resources ----

TEST_F(VerbsTransportTest, EnomemOnPostSendQueuesTheSliceAndRetries) {
  Node& a = Make("a", OneNic());
  Node& b = Make("b", OneNic());
  Reg r = Register(b, 4096);
  const PeerId p = Connect(a, b);
  Reg l = Register(a, 4096, 6);
  a.hca->enomem_posts = 2;
  ASSERT_TRUE(Submit(a, Write(1, p, l.addr, r.addr, 512, r.key)).ok());
  EXPECT_TRUE(RdmaSends(a).empty());
  EXPECT_TRUE(Drain(a).empty());  // the second ENOMEM: still waiting
  Pump();
  auto c = Drain(a);
  EXPECT_EQ(c[1].code, ErrorCode::OK);
  EXPECT_EQ(c[1].bytes_transferred, 512u);
  EXPECT_EQ(RdmaSends(a).size(), 1u);
}

TEST_F(VerbsTransportTest, FullCompletionQueueHoldsWorkUntilCompletionsFreeRoom) {
  VerbsOptions o = TestOptions();
  o.cq_depth = 8 + 2;  // eight UD receive buffers, room for two more
  Node& a = Make("a", OneNic(), o);
  Node& b = Make("b", OneNic());
  Reg r = Register(b, 4096);
  const PeerId p = Connect(a, b);
  Reg l = Register(a, 4096, 8);
  a.hca->hold = true;
  for (uint64_t id = 1; id <= 5; ++id) {
    ASSERT_TRUE(Submit(a, Write(id, p, l.addr, r.addr + id * 10, 10, r.key)).ok());
  }
  EXPECT_EQ(a.hca->held(), 2u);
  a.hca->Release();
  a.t->Progress();
  EXPECT_EQ(a.hca->held(), 2u);
  a.hca->Release();
  a.t->Progress();
  EXPECT_EQ(a.hca->held(), 1u);
  a.hca->Release();
  auto c = Drain(a);
  ASSERT_EQ(c.size(), 5u);
  for (auto& [id, done] : c) EXPECT_EQ(done.code, ErrorCode::OK) << id;
  EXPECT_EQ(RdmaSends(a).size(), 5u);
}

TEST_F(VerbsTransportTest, SendQueueDepthBoundsWorkInFlightPerQueuePair) {
  VerbsOptions o = TestOptions();
  o.max_send_wr = 3;
  Node& a = Make("a", OneNic(), o);
  Node& b = Make("b", OneNic());
  Reg r = Register(b, 4096);
  const PeerId p = Connect(a, b);
  Reg l = Register(a, 4096);
  a.hca->hold = true;
  for (uint64_t id = 1; id <= 7; ++id) {
    ASSERT_TRUE(Submit(a, Write(id, p, l.addr, r.addr, 16, r.key)).ok());
  }
  EXPECT_EQ(a.hca->held(), 3u);
  a.hca->Release();
  a.t->Progress();
  EXPECT_EQ(a.hca->held(), 3u);
  a.hca->Release();
  a.t->Progress();
  EXPECT_EQ(a.hca->held(), 1u);
  a.hca->Release();
  EXPECT_EQ(Drain(a).size(), 7u);
}

// ---- notifications ----

TEST_F(VerbsTransportTest, NotificationIsAFencedSendBehindTheWrites) {
  Node& a = Make("a", OneNic());
  Node& b = Make("b", OneNic());
  Reg r = Register(b, 4096);
  std::memset(r.data, 0, 4096);
  const PeerId p = Connect(a, b);
  Reg l = Register(a, 4096, 11);
  a.hca->hold = true;
  ASSERT_TRUE(Submit(a, Write(1, p, l.addr, r.addr, 2048, r.key)).ok());
  ASSERT_TRUE(a.t->SendNotify(p, "written").ok());
  const auto& s = a.hca->sends;
  ASSERT_GE(s.size(), 2u);
  EXPECT_EQ(s[s.size() - 2].opcode, IBV_WR_RDMA_WRITE);
  EXPECT_EQ(s.back().opcode, IBV_WR_SEND);
  EXPECT_EQ(s.back().flags, static_cast<unsigned>(IBV_SEND_SIGNALED | IBV_SEND_FENCE));
  std::vector<Notification> got;
  EXPECT_EQ(b.t->PollNotifies(got, 4), 0u);  // nothing before the write executes
  a.hca->Release();
  a.hca->hold = false;
  ASSERT_EQ(b.t->PollNotifies(got, 4), 1u);
  EXPECT_EQ(got[0].source, "a");
  EXPECT_EQ(got[0].payload, "written");
  EXPECT_EQ(std::memcmp(r.data, l.data, 2048), 0);  // the data was there first
  EXPECT_EQ(Drain(a)[1].code, ErrorCode::OK);
}

TEST_F(VerbsTransportTest, NotificationsKeepFlowingPastTheReceiveDepth) {
  VerbsOptions o = TestOptions();
  o.recv_depth = 2;
  Node& a = Make("a", OneNic());
  Node& b = Make("b", OneNic(), o);
  const PeerId p = Connect(a, b);
  std::vector<Notification> got;
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(a.t->SendNotify(p, "n" + std::to_string(i)).ok());
    Pump();
    b.t->PollNotifies(got, 8);
  }
  ASSERT_EQ(got.size(), 6u);
  EXPECT_EQ(got[5].payload, "n5");
  EXPECT_EQ(a.t->SendNotify(p, std::string(4097, 'x')).code(), ErrorCode::INVALID_PARAMS);
}

// ---- unregister, cancel, probe ----

TEST_F(VerbsTransportTest, UnregisterWithWorkInFlightIsRefused) {
  Node& a = Make("a", OneNic());
  Node& b = Make("b", OneNic());
  Reg r = Register(b, 4096);
  const PeerId p = Connect(a, b);
  Reg l = Register(a, 4096);
  a.hca->hold = true;
  ASSERT_TRUE(Submit(a, Write(1, p, l.addr, r.addr, 64, r.key)).ok());
  EXPECT_EQ(a.t->UnregisterMemory(l.addr, 4096).code(), ErrorCode::BATCH_BUSY);
  const int deregs = a.hca->deregs;
  EXPECT_EQ(deregs, 0);
  a.hca->Release();
  EXPECT_EQ(Drain(a)[1].code, ErrorCode::OK);
  EXPECT_TRUE(a.t->UnregisterMemory(l.addr, 4096).ok());
  EXPECT_EQ(a.hca->deregs, 1);
  EXPECT_EQ(a.t->UnregisterMemory(l.addr, 4096).code(), ErrorCode::INVALID_PARAMS);
}

TEST_F(VerbsTransportTest, CancelBeforeTheConnectionIsUpCompletesCanceled) {
  Node& a = Make("a", OneNic());
  Node& b = Make("b", OneNic());
  Reg r = Register(b, 4096);
  Result<PeerId> p = a.t->Connect(Desc(b));  // b never polls: no REP yet
  ASSERT_TRUE(p.ok());
  Reg l = Register(a, 4096);
  ASSERT_TRUE(Submit(a, Write(1, *p, l.addr, r.addr, 64, r.key)).ok());
  ASSERT_TRUE(a.t->Cancel(1).ok());
  auto c = Drain(a);
  EXPECT_EQ(c[1].code, ErrorCode::TRANSFER_CANCELED);
  EXPECT_EQ(c[1].bytes_transferred, 0u);
  EXPECT_TRUE(RdmaSends(a).empty());
  EXPECT_EQ(a.t->Cancel(1).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(a.t->Cancel(99).code(), ErrorCode::INVALID_PARAMS);
}

TEST_F(VerbsTransportTest, CancelOfPostedWorkFlushesItAndSparesTheOthers) {
  Node& a = Make("a", OneNic());
  Node& b = Make("b", OneNic());
  Reg r = Register(b, 4096);
  std::memset(r.data, 0, 4096);
  const PeerId p = Connect(a, b);
  Reg l = Register(a, 4096, 13);
  a.hca->hold = true;
  ASSERT_TRUE(Submit(a, Write(1, p, l.addr, r.addr, 64, r.key)).ok());
  ASSERT_TRUE(Submit(a, Write(2, p, l.addr, r.addr + 1024, 64, r.key)).ok());
  ASSERT_TRUE(a.t->Cancel(1).ok());
  const ModifyRecord& last = a.hca->modifies.back();
  EXPECT_EQ(last.state, IBV_QPS_ERR);
  EXPECT_EQ(last.mask, IBV_QP_STATE);
  a.hca->hold = false;
  Pump();
  auto c = Drain(a);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[1].code, ErrorCode::TRANSFER_CANCELED);
  EXPECT_EQ(c[1].bytes_transferred, 0u);
  EXPECT_EQ(r.data[0], 0);  // the canceled write never ran
  EXPECT_EQ(c[2].code, ErrorCode::OK);
  EXPECT_EQ(std::memcmp(r.data + 1024, l.data, 64), 0);
}

TEST_F(VerbsTransportTest, ProbeIsAZeroLengthWrite) {
  Node& a = Make("a", OneNic());
  Node& b = Make("b", OneNic());
  const PeerId p = Connect(a, b);
  TransportTask t;
  t.task_id = 5;
  t.kind = TransportTask::Kind::kProbe;
  t.peer = p;
  ASSERT_TRUE(Submit(a, t).ok());
  EXPECT_EQ(Drain(a)[5].code, ErrorCode::OK);
  const auto s = RdmaSends(a);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].opcode, IBV_WR_RDMA_WRITE);
  EXPECT_EQ(s[0].length, 0u);
}

}  // namespace
}  // namespace tidal::backends::verbs
