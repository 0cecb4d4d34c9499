#include "fake_hca.h"

#include <cerrno>
#include <cstring>

namespace tidal::backends::verbs {

using ::testing::_;
using ::testing::Invoke;

FakeHca::FakeHca(FakeWire& wire, std::vector<Device> devices)
    : wire_(wire), devices_(std::move(devices)) {
  for (size_t i = 0; i < devices_.size(); ++i) {
    dev_objs_.push_back(std::make_unique<ibv_device>());
    list_.push_back(dev_objs_.back().get());
  }
  list_.push_back(nullptr);
}

FakeHca::~FakeHca() {
  for (auto& [p, q] : qps_) wire_.qps.erase(q->qp.qp_num);
  for (auto& [p, m] : mrs_) wire_.rkeys.erase(m->rkey);
}

size_t FakeHca::held() const { return held_.size(); }

void FakeHca::Bind(::testing::NiceMock<MockVerbsApi>& api) {
  ON_CALL(api, GetDeviceList(_)).WillByDefault(Invoke([this](int* n) {
    *n = static_cast<int>(devices_.size());
    return list_.data();
  }));
  ON_CALL(api, DeviceName(_)).WillByDefault(Invoke([this](ibv_device* d) {
    for (size_t i = 0; i < dev_objs_.size(); ++i) {
      if (dev_objs_[i].get() == d) return devices_[i].name;
    }
    return std::string();
  }));
  ON_CALL(api, OpenDevice(_)).WillByDefault(Invoke([this](ibv_device* d) -> ibv_context* {
    for (size_t i = 0; i < dev_objs_.size(); ++i) {
      if (dev_objs_[i].get() != d) continue;
      ctx_objs_.push_back(std::make_unique<ibv_context>());
      contexts_[ctx_objs_.back().get()] = i;
      return ctx_objs_.back().get();
    }
    return nullptr;
  }));
  ON_CALL(api, QueryDevice(_, _)).WillByDefault(Invoke([this](ibv_context* c, ibv_device_attr* a) {
    const Device& d = devices_[contexts_.at(c)];
    *a = {};
    a->phys_port_cnt = static_cast<uint8_t>(d.ports.size());
    a->max_mr_size = d.max_mr_size;
    a->max_qp_rd_atom = 16;
    return 0;
  }));
  ON_CALL(api, QueryPort(_, _, _)).WillByDefault(
      Invoke([this](ibv_context* c, uint8_t port, ibv_port_attr* a) {
        const Device& d = devices_[contexts_.at(c)];
        if (port == 0 || port > d.ports.size()) return EINVAL;
        *a = {};
        a->state = d.ports[port - 1].active ? IBV_PORT_ACTIVE : IBV_PORT_DOWN;
        a->lid = d.ports[port - 1].lid;
        a->active_mtu = IBV_MTU_4096;
        a->max_msg_sz = 1u << 31;
        return 0;
      }));
  ON_CALL(api, QueryGid(_, _, _, _)).WillByDefault(
      Invoke([this](ibv_context* c, uint8_t port, int, ibv_gid* g) {
        std::memset(g->raw, 0, 16);
        g->raw[0] = 0xfe;
        g->raw[8] = static_cast<uint8_t>(reinterpret_cast<uintptr_t>(this) >> 4);
        g->raw[9] = static_cast<uint8_t>(reinterpret_cast<uintptr_t>(this) >> 12);
        g->raw[14] = static_cast<uint8_t>(contexts_.at(c));
        g->raw[15] = port;
        return 0;
      }));
  ON_CALL(api, AllocPd(_)).WillByDefault(Invoke([this](ibv_context* c) {
    pds_.push_back(std::make_unique<ibv_pd>());
    pds_.back()->context = c;
    return pds_.back().get();
  }));
  ON_CALL(api, RegMr(_, _, _, _)).WillByDefault(
      Invoke([this](ibv_pd* pd, void* addr, size_t len, int access) -> ibv_mr* {
        if (len > devices_[contexts_.at(pd->context)].max_mr_size) {
          errno = EINVAL;
          return nullptr;
        }
        auto mr = std::make_unique<ibv_mr>();
        mr->context = pd->context;
        mr->pd = pd;
        mr->addr = addr;
        mr->length = len;
        mr->lkey = wire_.next_key++;
        mr->rkey = (access & IBV_ACCESS_REMOTE_READ) != 0 ? wire_.next_key++ : 0;
        registrations.emplace_back(reinterpret_cast<uint64_t>(addr), len);
        ibv_mr* raw = mr.get();
        if (mr->rkey != 0) wire_.rkeys[mr->rkey] = {this, raw};
        mrs_[raw] = std::move(mr);
        return raw;
      }));
  ON_CALL(api, DeregMr(_)).WillByDefault(Invoke([this](ibv_mr* mr) {
    wire_.rkeys.erase(mr->rkey);
    mrs_.erase(mr);
    ++deregs;
    return 0;
  }));
  ON_CALL(api, CreateCq(_, _)).WillByDefault(Invoke([this](ibv_context* c, int cqe) {
    auto cq = std::make_unique<Cq>();
    cq->cq.context = c;
    cq->cq.cqe = cqe;
    ibv_cq* raw = &cq->cq;
    cqs_[raw] = std::move(cq);
    return raw;
  }));
  ON_CALL(api, PollCq(_, _, _)).WillByDefault(Invoke([this](ibv_cq* cq, int n, ibv_wc* wc) {
    Cq& c = *cqs_.at(cq);
    int k = 0;
    while (k < n && !c.wcs.empty()) {
      wc[k++] = c.wcs.front();
      c.wcs.pop_front();
    }
    return k;
  }));
  ON_CALL(api, CreateQp(_, _)).WillByDefault(Invoke([this](ibv_pd* pd, ibv_qp_init_attr* a) {
    auto q = std::make_unique<Qp>();
    q->hca = this;
    q->device = contexts_.at(pd->context);
    q->qp.context = pd->context;
    q->qp.pd = pd;
    q->qp.qp_num = wire_.next_qpn++;
    q->qp.qp_type = a->qp_type;
    q->send_cq = cqs_.at(a->send_cq).get();
    q->recv_cq = cqs_.at(a->recv_cq).get();
    ibv_qp* raw = &q->qp;
    wire_.qps[raw->qp_num] = q.get();
    qps_[raw] = std::move(q);
    return raw;
  }));
  ON_CALL(api, ModifyQp(_, _, _)).WillByDefault(Invoke([this](ibv_qp* qp, ibv_qp_attr* a, int mask) {
    Qp& q = *qps_.at(qp);
    modifies.push_back({qp->qp_num, qp->qp_type, a->qp_state, mask, *a});
    if ((mask & IBV_QP_PORT) != 0) q.port = a->port_num;
    if ((mask & IBV_QP_DEST_QPN) != 0) q.dest_qpn = a->dest_qp_num;
    q.state = a->qp_state;
    if (q.state == IBV_QPS_ERR) Flush(q);
    return 0;
  }));
  ON_CALL(api, DestroyQp(_)).WillByDefault(Invoke([this](ibv_qp* qp) {
    std::erase_if(held_, [&](const Held& h) { return &h.qp->qp == qp; });
    wire_.qps.erase(qp->qp_num);
    qps_.erase(qp);
    return 0;
  }));
  ON_CALL(api, CreateAh(_, _)).WillByDefault(Invoke([this](ibv_pd* pd, ibv_ah_attr*) {
    ahs_.push_back(std::make_unique<ibv_ah>());
    ahs_.back()->pd = pd;
    return ahs_.back().get();
  }));
  ON_CALL(api, PostRecv(_, _, _)).WillByDefault(
      Invoke([this](ibv_qp* qp, ibv_recv_wr* wr, ibv_recv_wr** bad) {
        Qp& q = *qps_.at(qp);
        for (; wr != nullptr; wr = wr->next) {
          if (q.state == IBV_QPS_ERR) {
            Complete(q.recv_cq, wr->wr_id, IBV_WC_WR_FLUSH_ERR, IBV_WC_RECV, 0, qp->qp_num);
            continue;
          }
          q.recvs.emplace_back(wr->wr_id, wr->sg_list[0]);
        }
        *bad = nullptr;
        return 0;
      }));
  ON_CALL(api, PostSend(_, _, _)).WillByDefault(
      Invoke([this](ibv_qp* qp, ibv_send_wr* wr, ibv_send_wr** bad) {
        Qp& q = *qps_.at(qp);
        for (; wr != nullptr; wr = wr->next) {
          if (enomem_posts > 0) {
            --enomem_posts;
            *bad = wr;
            return ENOMEM;
          }
          sends.push_back({qp->qp_num, wr->opcode, wr->send_flags,
                           wr->num_sge > 0 ? wr->sg_list[0].addr : 0,
                           wr->num_sge > 0 ? wr->sg_list[0].length : 0,
                           wr->num_sge > 0 ? wr->sg_list[0].lkey : 0, wr->wr.rdma.remote_addr,
                           wr->wr.rdma.rkey});
          if (q.state == IBV_QPS_ERR) {
            Complete(q.send_cq, wr->wr_id, IBV_WC_WR_FLUSH_ERR, IBV_WC_SEND, 0, qp->qp_num);
            continue;
          }
          Held h{&q, *wr, std::vector<ibv_sge>(wr->sg_list, wr->sg_list + wr->num_sge)};
          h.wr.next = nullptr;
          if (hold && qp->qp_type == IBV_QPT_RC) {
            held_.push_back(std::move(h));
            continue;
          }
          Execute(q, h.wr, h.sge.data());
        }
        *bad = nullptr;
        return 0;
      }));
}

void FakeHca::Release() {
  std::deque<Held> work = std::move(held_);
  held_.clear();
  for (Held& h : work) {
    if (h.qp->state == IBV_QPS_ERR) {
      Complete(h.qp->send_cq, h.wr.wr_id, IBV_WC_WR_FLUSH_ERR, IBV_WC_SEND, 0, h.qp->qp.qp_num);
      continue;
    }
    Execute(*h.qp, h.wr, h.sge.data());
  }
}

void FakeHca::Complete(Cq* cq, uint64_t wr_id, ibv_wc_status st, ibv_wc_opcode op, uint32_t len,
                       uint32_t qpn) {
  ibv_wc wc{};
  wc.wr_id = wr_id;
  wc.status = st;
  wc.opcode = op;
  wc.byte_len = len;
  wc.qp_num = qpn;
  cq->wcs.push_back(wc);
}

void FakeHca::Flush(Qp& q) {
  for (auto it = held_.begin(); it != held_.end();) {
    if (it->qp == &q) {
      Complete(q.send_cq, it->wr.wr_id, IBV_WC_WR_FLUSH_ERR, IBV_WC_SEND, 0, q.qp.qp_num);
      it = held_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [id, sge] : q.recvs) {
    Complete(q.recv_cq, id, IBV_WC_WR_FLUSH_ERR, IBV_WC_RECV, 0, q.qp.qp_num);
  }
  q.recvs.clear();
}

bool FakeHca::LocalOk(const ibv_sge& sge) const {
  for (const auto& [raw, mr] : mrs_) {
    const uint64_t a = reinterpret_cast<uint64_t>(mr->addr);
    if (mr->lkey == sge.lkey && sge.addr >= a && sge.addr + sge.length <= a + mr->length) {
      return true;
    }
  }
  return false;
}

uint8_t* FakeHca::RemoteRange(uint32_t rkey, uint64_t addr, uint64_t len) const {
  auto it = wire_.rkeys.find(rkey);
  if (it == wire_.rkeys.end()) return nullptr;
  const ibv_mr* mr = it->second.second;
  const uint64_t a = reinterpret_cast<uint64_t>(mr->addr);
  if (addr < a || addr + len > a + mr->length) return nullptr;
  return reinterpret_cast<uint8_t*>(addr);
}

void FakeHca::Execute(Qp& q, const ibv_send_wr& wr, const ibv_sge* sge) {
  const uint32_t len = wr.num_sge > 0 ? sge[0].length : 0;
  if (q.qp.qp_type == IBV_QPT_UD) {
    Complete(q.send_cq, wr.wr_id, IBV_WC_SUCCESS, IBV_WC_SEND, len, q.qp.qp_num);
    if (dead || failed_devices.count(devices_[q.device].name) != 0) return;
    if (drop_ud > 0) {
      --drop_ud;
      return;
    }
    auto t = wire_.qps.find(wr.wr.ud.remote_qpn);
    if (t == wire_.qps.end() || t->second->hca->dead || t->second->recvs.empty()) return;
    Qp& to = *t->second;
    auto [id, rs] = to.recvs.front();
    to.recvs.pop_front();
    std::memset(reinterpret_cast<void*>(rs.addr), 0, 40);
    std::memcpy(reinterpret_cast<void*>(rs.addr + 40), reinterpret_cast<void*>(sge[0].addr), len);
    to.hca->Complete(to.recv_cq, id, IBV_WC_SUCCESS, IBV_WC_RECV, 40 + len, to.qp.qp_num);
    return;
  }
  auto fail = [&](ibv_wc_status st) {
    Complete(q.send_cq, wr.wr_id, st, IBV_WC_SEND, 0, q.qp.qp_num);
    q.state = IBV_QPS_ERR;
    Flush(q);
  };
  if (q.state != IBV_QPS_RTS) return fail(IBV_WC_LOC_QP_OP_ERR);
  auto t = wire_.qps.find(q.dest_qpn);
  if (dead || failed_devices.count(devices_[q.device].name) != 0 || t == wire_.qps.end() ||
      t->second->hca->dead || t->second->dest_qpn != q.qp.qp_num) {
    return fail(IBV_WC_RETRY_EXC_ERR);
  }
  if (!forced.empty()) {
    const ibv_wc_status st = forced.front();
    forced.pop_front();
    if (st != IBV_WC_SUCCESS) return fail(st);
  }
  Qp& to = *t->second;
  for (int i = 0; i < wr.num_sge; ++i) {
    if (!LocalOk(sge[i])) return fail(IBV_WC_LOC_PROT_ERR);
  }
  switch (wr.opcode) {
    case IBV_WR_RDMA_WRITE:
    case IBV_WR_RDMA_READ: {
      if (len == 0) break;
      uint8_t* remote = to.hca->RemoteRange(wr.wr.rdma.rkey, wr.wr.rdma.remote_addr, len);
      if (remote == nullptr || wire_.rkeys.at(wr.wr.rdma.rkey).first != to.hca) {
        return fail(IBV_WC_REM_ACCESS_ERR);
      }
      auto* local = reinterpret_cast<uint8_t*>(sge[0].addr);
      if (wr.opcode == IBV_WR_RDMA_WRITE) std::memcpy(remote, local, len);
      if (wr.opcode == IBV_WR_RDMA_READ) std::memcpy(local, remote, len);
      break;
    }
    case IBV_WR_SEND: {
      if (to.recvs.empty()) return fail(IBV_WC_RNR_RETRY_EXC_ERR);
      auto [id, rs] = to.recvs.front();
      to.recvs.pop_front();
      if (len > 0) {
        std::memcpy(reinterpret_cast<void*>(rs.addr), reinterpret_cast<void*>(sge[0].addr), len);
      }
      to.hca->Complete(to.recv_cq, id, IBV_WC_SUCCESS, IBV_WC_RECV, len, to.qp.qp_num);
      break;
    }
    default: return fail(IBV_WC_REM_INV_REQ_ERR);
  }
  Complete(q.send_cq, wr.wr_id, IBV_WC_SUCCESS,
           wr.opcode == IBV_WR_RDMA_READ ? IBV_WC_RDMA_READ
           : wr.opcode == IBV_WR_SEND    ? IBV_WC_SEND
                                         : IBV_WC_RDMA_WRITE,
           len, q.qp.qp_num);
}

}  // namespace tidal::backends::verbs
