// FakeHca: the default behaviour behind a MockVerbsApi, a small in-memory HCA.
//
// A FakeWire joins the FakeHcas of one test. Each FakeHca has devices with ports, protection
// domains, memory regions (local and remote keys checked on every access), completion
// queues, UD and RC queue pairs with the real state machine's effects (an RC queue pair
// moves bytes only in RTS, to the queue pair it was connected to in RTR) and records what
// the transport did (modify_qp calls, posted work requests, registrations) for the tests
// to assert. Faults: a device whose path fails (RETRY_EXC_ERR), a dead HCA (the peer
// vanished), ENOMEM on post_send, a forced work-completion status, held work requests
// (in flight until Release), dropped UD messages.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "mock_verbs_api.h"

namespace tidal::backends::verbs {

struct FakeWire;

struct ModifyRecord {
  uint32_t qpn;
  ibv_qp_type type;
  ibv_qp_state state;
  int mask;
  ibv_qp_attr attr;
};

struct SendRecord {
  uint32_t qpn;
  ibv_wr_opcode opcode;
  unsigned flags;
  uint64_t local_addr;
  uint32_t length;
  uint32_t lkey;
  uint64_t remote_addr;
  uint32_t rkey;
};

class FakeHca {
 public:
  struct Port {
    bool active = true;
    uint16_t lid = 0;
  };
  struct Device {
    std::string name;
    std::vector<Port> ports;
    uint64_t max_mr_size = uint64_t{1} << 40;
  };

  FakeHca(FakeWire& wire, std::vector<Device> devices);
  ~FakeHca();
  // Installs the default actions on `api` (ON_CALL ... WillByDefault).
  void Bind(::testing::NiceMock<MockVerbsApi>& api);

  // ---- faults ----
  bool dead = false;                  // the whole HCA vanished: nothing answers
  std::set<std::string> failed_devices;  // RC work from these devices: RETRY_EXC_ERR
  int enomem_posts = 0;               // the next N post_send calls answer ENOMEM
  std::deque<ibv_wc_status> forced;   // statuses for the next RC work requests
  bool hold = false;                  // RC work requests stay in flight until Release()
  int drop_ud = 0;                    // the next N UD messages are lost
  void Release();                     // executes every held work request

  // ---- records ----
  std::vector<ModifyRecord> modifies;
  std::vector<SendRecord> sends;
  std::vector<std::pair<uint64_t, uint64_t>> registrations;  // (addr, length) per reg_mr
  int deregs = 0;
  size_t held() const;

  // Implementation (public for the wire).
  struct Qp;
  struct Cq {
    ibv_cq cq{};
    std::deque<ibv_wc> wcs;
  };
  struct Held {
    Qp* qp;
    ibv_send_wr wr;
    std::vector<ibv_sge> sge;
  };
  struct Qp {
    ibv_qp qp{};
    FakeHca* hca = nullptr;
    size_t device = 0;
    uint8_t port = 0;
    ibv_qp_state state = IBV_QPS_RESET;
    uint32_t dest_qpn = 0;
    Cq* send_cq = nullptr;
    Cq* recv_cq = nullptr;
    std::deque<std::pair<uint64_t, ibv_sge>> recvs;
  };
  void Execute(Qp& q, const ibv_send_wr& wr, const ibv_sge* sge);
  void Complete(Cq* cq, uint64_t wr_id, ibv_wc_status st, ibv_wc_opcode op, uint32_t len,
                uint32_t qpn);
  void Flush(Qp& q);
  bool LocalOk(const ibv_sge& sge) const;
  uint8_t* RemoteRange(uint32_t rkey, uint64_t addr, uint64_t len) const;

  FakeWire& wire_;
  std::vector<Device> devices_;
  std::vector<std::unique_ptr<ibv_device>> dev_objs_;
  std::vector<ibv_device*> list_;
  std::map<ibv_context*, size_t> contexts_;
  std::vector<std::unique_ptr<ibv_context>> ctx_objs_;
  std::vector<std::unique_ptr<ibv_pd>> pds_;
  std::map<ibv_mr*, std::unique_ptr<ibv_mr>> mrs_;
  std::map<ibv_cq*, std::unique_ptr<Cq>> cqs_;
  std::map<ibv_qp*, std::unique_ptr<Qp>> qps_;
  std::vector<std::unique_ptr<ibv_ah>> ahs_;
  std::deque<Held> held_;
};

struct FakeWire {
  uint32_t next_qpn = 0x100;
  uint32_t next_key = 0x1000;
  std::map<uint32_t, FakeHca::Qp*> qps;          // by QP number
  std::map<uint32_t, std::pair<FakeHca*, ibv_mr*>> rkeys;
};

}  // namespace tidal::backends::verbs
