#include "tidal/backends/verbs/verbs_transport.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "tidal/codec.h"

namespace tidal::backends::verbs {

namespace {

constexpr uint32_t kQkey = 0x7469da11;       // the UD handshake's Q_Key
constexpr uint32_t kUdSlots = 8;            // UD receive buffers (and as many send buffers)
constexpr uint32_t kUdMsg = 512;            // the largest handshake message
constexpr uint32_t kGrh = 40;               // a UD receive starts with the GRH
constexpr uint8_t kReq = 1;
constexpr uint8_t kRep = 2;
constexpr int kAccess = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ;

std::string GidKey(const uint8_t* gid, uint16_t lid, uint32_t qpn) {
  std::string k(reinterpret_cast<const char*>(gid), 16);
  k.append(reinterpret_cast<const char*>(&lid), 2);
  k.append(reinterpret_cast<const char*>(&qpn), 4);
  return k;
}

uint32_t Psn(uint64_t r) { return static_cast<uint32_t>(r) & 0xffffff; }

}  // namespace

ErrorCode WcStatusToError(ibv_wc_status status) {
  switch (status) {
    case IBV_WC_SUCCESS: return ErrorCode::OK;
    case IBV_WC_REM_ACCESS_ERR:
    case IBV_WC_REM_INV_REQ_ERR: return ErrorCode::REMOTE_ACCESS_DENIED;
    case IBV_WC_LOC_PROT_ERR:
    case IBV_WC_LOC_ACCESS_ERR:
    case IBV_WC_MW_BIND_ERR: return ErrorCode::ADDRESS_NOT_REGISTERED;
    case IBV_WC_RETRY_EXC_ERR:
    case IBV_WC_RNR_RETRY_EXC_ERR:
    case IBV_WC_RESP_TIMEOUT_ERR:
    case IBV_WC_FATAL_ERR: return ErrorCode::PEER_UNREACHABLE;
    default: return ErrorCode::TRANSFER_FAIL;
  }
}

bool IsPathFailure(ibv_wc_status status) {
  return WcStatusToError(status) == ErrorCode::PEER_UNREACHABLE;
}

// ---- state ------------------------------------------------------------------------

struct VerbsTransport::Nic {
  size_t index = 0;
  std::string device;
  ibv_context* ctx = nullptr;
  uint8_t port = 1;
  ibv_port_attr port_attr{};
  ibv_gid gid{};
  uint64_t max_mr_size = 0;
  uint32_t max_msg = 0;
  uint8_t rd_atomic = 1;
  ibv_pd* pd = nullptr;
  ibv_cq* cq = nullptr;
  ibv_qp* ud = nullptr;
  uint32_t psn = 0;
  std::vector<uint8_t> ctrl;  // UD receive slots, UD send slots, notification slots
  ibv_mr* ctrl_mr = nullptr;
  std::vector<uint32_t> free_ud_send;
  std::vector<uint32_t> free_notify;
  uint32_t cq_used = 0;  // posted work requests whose completions are not polled yet

  uint8_t* UdRecv(uint32_t i) { return ctrl.data() + i * (kGrh + kUdMsg); }
  uint8_t* UdSend(uint32_t i) { return ctrl.data() + kUdSlots * (kGrh + kUdMsg) + i * kUdMsg; }
  uint8_t* NotifySlot(uint32_t i, uint32_t bytes) {
    return ctrl.data() + kUdSlots * (kGrh + 2 * kUdMsg) + size_t{i} * bytes;
  }
};

struct VerbsTransport::Region {
  uint64_t addr = 0, length = 0, key = 0, window = 0;
  std::vector<std::vector<ibv_mr*>> mrs;  // [window][nic]
  uint64_t in_flight = 0;                  // accepted tasks using it
};

struct VerbsTransport::RemoteNic {
  std::string device;
  uint8_t port = 0;
  uint16_t lid = 0;
  uint8_t gid[16] = {};
  uint8_t mtu = 0;
  uint32_t ud_qpn = 0;
  uint32_t psn = 0;
};

struct VerbsTransport::RemoteRegion {
  uint64_t addr = 0, length = 0, key = 0, window = 0;
  std::vector<std::vector<uint32_t>> rkeys;  // [window][nic]
};

struct VerbsTransport::Endpoint {
  enum class State { kConnecting, kReady, kBroken, kFailed };
  PeerId id = 0;
  std::string key;
  std::string peer_name;
  std::vector<RemoteNic> rnics;
  std::vector<RemoteRegion> rregions;
  size_t lnic = 0, rnic = 0;  // the NIC pair in use
  size_t pairs_tried = 0;     // pairs whose handshake failed in a row
  ibv_qp* qp = nullptr;
  uint32_t psn = 0;
  State state = State::kConnecting;
  uint64_t req_id = 0;
  int attempts = 0;
  TimerId timer = 0;
  int path_retries = 0;
  int rebuilds = 0;
  bool path_cause = false;      // the break was a path failure
  bool retry_path = false;      // ... and its work is re-posted on the next pair
  uint32_t posted = 0;          // work requests outstanding on qp
  std::deque<std::pair<uint64_t, uint32_t>> waiting;  // (task, slice) not posted yet
  std::deque<std::string> notify_queue;
};

struct VerbsTransport::Passive {
  size_t nic = 0;
  std::string peer_name;
  std::string key;  // requester GID/LID/UD QPN
  uint64_t req_id = 0;
  ibv_qp* qp = nullptr;
  uint32_t psn = 0;
  std::vector<uint8_t> buffer;
  ibv_mr* mr = nullptr;
  uint32_t posted = 0;
  bool broken = false;
};

struct VerbsTransport::Slice {
  uint64_t local_addr = 0, remote_addr = 0, length = 0;
  uint32_t remote_window = 0;
  enum class State { kWaiting, kPosted, kDone } state = State::kWaiting;
};

struct VerbsTransport::TaskState {
  TransportTask task;
  Region* local = nullptr;
  RemoteRegion remote;  // copy: the endpoint's table may be replaced meanwhile
  std::vector<Slice> slices;
  uint32_t done = 0;
  uint64_t bytes = 0;
  ErrorCode code = ErrorCode::OK;
  bool canceled = false;
};

struct VerbsTransport::WrCtx {
  enum class Kind { kSlice, kNotify, kRecv, kUdRecv, kUdSend } kind = Kind::kSlice;
  size_t nic = 0;
  uint64_t task_id = 0;
  uint32_t slice = 0;
  uint32_t owner = 0;  // endpoint (kSlice, kNotify) or passive (kRecv)
  uint32_t slot = 0;
};

// ---- construction -----------------------------------------------------------------

VerbsTransport::VerbsTransport(std::unique_ptr<VerbsApi> api, VerbsOptions options)
    : api_(std::move(api)), options_(std::move(options)) {}

VerbsTransport::~VerbsTransport() {
  if (poll_timer_ != 0 && install_.env != nullptr) install_.env->CancelTimer(poll_timer_);
  for (auto& ep : endpoints_) {
    if (ep->timer != 0) install_.env->CancelTimer(ep->timer);
    if (ep->qp != nullptr) api_->DestroyQp(ep->qp);
  }
  for (auto& p : passives_) {
    if (p->qp != nullptr) api_->DestroyQp(p->qp);
    if (p->mr != nullptr) api_->DeregMr(p->mr);
  }
  for (auto& [k, ah] : ahs_) api_->DestroyAh(ah);
  for (auto& [a, r] : regions_) {
    for (auto& w : r->mrs) {
      for (ibv_mr* mr : w) api_->DeregMr(mr);
    }
  }
  for (auto& nic : nics_) CloseNic(*nic);
}

TransportCaps VerbsTransport::Capabilities() const {
  TransportCaps c;
  c.host_to_host = true;
  c.notifications = true;
  return c;
}

std::string VerbsTransport::nic_name(size_t i) const {
  return nics_[i]->device + ":" + std::to_string(nics_[i]->port);
}
int VerbsTransport::endpoint_nic(PeerId peer) const {
  return peer < endpoints_.size() ? static_cast<int>(endpoints_[peer]->lnic) : -1;
}
int VerbsTransport::endpoint_rebuilds(PeerId peer) const {
  return peer < endpoints_.size() ? endpoints_[peer]->rebuilds : -1;
}
bool VerbsTransport::endpoint_ready(PeerId peer) const {
  return peer < endpoints_.size() && endpoints_[peer]->state == Endpoint::State::kReady;
}
std::vector<std::pair<uint64_t, uint64_t>> VerbsTransport::windows(uint64_t addr) const {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  auto it = regions_.find(addr);
  if (it == regions_.end()) return out;
  const Region& r = *it->second;
  for (uint64_t off = 0; off < r.length; off += r.window) {
    out.emplace_back(r.addr + off, std::min(r.window, r.length - off));
  }
  return out;
}

Status VerbsTransport::Install(const TransportInstall& install) {
  if (installed_) return Status(ErrorCode::INVALID_PARAMS, "verbs transport installed twice");
  if (install.env == nullptr) return Status(ErrorCode::INVALID_PARAMS, "no Env");
  install_ = install;
  Status s = OpenNics();
  if (!s.ok()) {
    for (auto& nic : nics_) CloseNic(*nic);
    nics_.clear();
    return s;
  }
  installed_ = true;
  ArmPoll();
  return Status();
}

Status VerbsTransport::OpenNics() {
  int n = 0;
  ibv_device** list = api_->GetDeviceList(&n);
  if (list == nullptr || n == 0) {
    if (list != nullptr) api_->FreeDeviceList(list);
    return Status(ErrorCode::UNSUPPORTED, "no RDMA device found (ibv_get_device_list is empty)");
  }
  Status result;
  for (int d = 0; d < n && result.ok(); ++d) {
    const std::string name = api_->DeviceName(list[d]);
    if (!options_.device.empty() && name != options_.device) continue;
    ibv_context* probe = api_->OpenDevice(list[d]);
    if (probe == nullptr) continue;
    ibv_device_attr dev{};
    if (api_->QueryDevice(probe, &dev) != 0) {
      api_->CloseDevice(probe);
      continue;
    }
    for (uint8_t port = 1; port <= dev.phys_port_cnt && result.ok(); ++port) {
      if (options_.port != 0 && port != options_.port) continue;
      ibv_port_attr pa{};
      if (api_->QueryPort(probe, port, &pa) != 0 || pa.state != IBV_PORT_ACTIVE) continue;
      auto nic = std::make_unique<Nic>();
      nic->index = nics_.size();
      nic->device = name;
      nic->port = port;
      nic->port_attr = pa;
      nic->max_mr_size = dev.max_mr_size;
      nic->max_msg = pa.max_msg_sz == 0 ? (1u << 30) : pa.max_msg_sz;
      nic->rd_atomic = static_cast<uint8_t>(
          std::clamp<int>(std::min<int>(dev.max_qp_rd_atom, options_.max_rd_atomic), 1, 255));
      nic->ctx = api_->OpenDevice(list[d]);
      if (nic->ctx == nullptr) continue;
      if (api_->QueryGid(nic->ctx, port, options_.gid_index, &nic->gid) != 0) {
        api_->CloseDevice(nic->ctx);
        continue;
      }
      Status s = SetUpNic(*nic);
      if (!s.ok()) {
        CloseNic(*nic);
        result = s;
        break;
      }
      nics_.push_back(std::move(nic));
    }
    api_->CloseDevice(probe);
  }
  api_->FreeDeviceList(list);
  if (!result.ok()) return result;
  if (nics_.empty()) {
    return Status(ErrorCode::UNSUPPORTED,
                  "no active RDMA port" +
                      (options_.device.empty() ? std::string() : " on device " + options_.device));
  }
  return Status();
}

Status VerbsTransport::SetUpNic(Nic& nic) {
  nic.psn = Psn(install_.env->RandomU64());
  nic.pd = api_->AllocPd(nic.ctx);
  if (nic.pd == nullptr) return Status(ErrorCode::INTERNAL_ERROR, "ibv_alloc_pd failed on " + nic.device);
  nic.cq = api_->CreateCq(nic.ctx, static_cast<int>(options_.cq_depth));
  if (nic.cq == nullptr) return Status(ErrorCode::INTERNAL_ERROR, "ibv_create_cq failed on " + nic.device);
  nic.ctrl.assign(size_t{kUdSlots} * (kGrh + 2 * kUdMsg) +
                      size_t{options_.notify_slots} * options_.notify_bytes, 0);
  nic.ctrl_mr = api_->RegMr(nic.pd, nic.ctrl.data(), nic.ctrl.size(), IBV_ACCESS_LOCAL_WRITE);
  if (nic.ctrl_mr == nullptr) return Status(ErrorCode::INTERNAL_ERROR, "ibv_reg_mr (control) failed");
  for (uint32_t i = kUdSlots; i-- > 0;) nic.free_ud_send.push_back(i);
  for (uint32_t i = options_.notify_slots; i-- > 0;) nic.free_notify.push_back(i);

  ibv_qp_init_attr init{};
  init.send_cq = nic.cq;
  init.recv_cq = nic.cq;
  init.qp_type = IBV_QPT_UD;
  init.cap.max_send_wr = kUdSlots;
  init.cap.max_recv_wr = kUdSlots;
  init.cap.max_send_sge = 1;
  init.cap.max_recv_sge = 1;
  nic.ud = api_->CreateQp(nic.pd, &init);
  if (nic.ud == nullptr) return Status(ErrorCode::INTERNAL_ERROR, "ibv_create_qp (UD) failed");
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_INIT;
  a.pkey_index = 0;
  a.port_num = nic.port;
  a.qkey = kQkey;
  if (api_->ModifyQp(nic.ud, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_QKEY) != 0) {
    return Status(ErrorCode::INTERNAL_ERROR, "UD queue pair: INIT failed");
  }
  for (uint32_t i = 0; i < kUdSlots; ++i) PostUdRecv(nic, i);
  a = {};
  a.qp_state = IBV_QPS_RTR;
  if (api_->ModifyQp(nic.ud, &a, IBV_QP_STATE) != 0) {
    return Status(ErrorCode::INTERNAL_ERROR, "UD queue pair: RTR failed");
  }
  a = {};
  a.qp_state = IBV_QPS_RTS;
  a.sq_psn = nic.psn;
  if (api_->ModifyQp(nic.ud, &a, IBV_QP_STATE | IBV_QP_SQ_PSN) != 0) {
    return Status(ErrorCode::INTERNAL_ERROR, "UD queue pair: RTS failed");
  }
  return Status();
}

void VerbsTransport::CloseNic(Nic& nic) {
  if (nic.ud != nullptr) api_->DestroyQp(nic.ud);
  if (nic.ctrl_mr != nullptr) api_->DeregMr(nic.ctrl_mr);
  if (nic.cq != nullptr) api_->DestroyCq(nic.cq);
  if (nic.pd != nullptr) api_->DeallocPd(nic.pd);
  if (nic.ctx != nullptr) api_->CloseDevice(nic.ctx);
  nic.ud = nullptr;
  nic.ctrl_mr = nullptr;
  nic.cq = nullptr;
  nic.pd = nullptr;
  nic.ctx = nullptr;
}

void VerbsTransport::PostUdRecv(Nic& nic, uint32_t slot) {
  ibv_sge sge{};
  sge.addr = reinterpret_cast<uint64_t>(nic.UdRecv(slot));
  sge.length = kGrh + kUdMsg;
  sge.lkey = nic.ctrl_mr->lkey;
  ibv_recv_wr wr{};
  wr.wr_id = next_wr_id_++;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  ibv_recv_wr* bad = nullptr;
  if (api_->PostRecv(nic.ud, &wr, &bad) != 0) return;  // one buffer fewer; the rest serve
  WrCtx c;
  c.kind = WrCtx::Kind::kUdRecv;
  c.nic = nic.index;
  c.slot = slot;
  wrs_.emplace(wr.wr_id, c);
  ++nic.cq_used;
}

// ---- address blob -----------------------------------------------------------------

std::string VerbsTransport::LocalAddress() const {
  ByteWriter w;
  w.Bytes("tvb1");
  w.U32(static_cast<uint32_t>(nics_.size()));
  for (const auto& nic : nics_) {
    w.Str(nic->device);
    w.U8(nic->port);
    w.U16(nic->port_attr.lid);
    w.Bytes(std::string_view(reinterpret_cast<const char*>(nic->gid.raw), 16));
    w.U8(static_cast<uint8_t>(nic->port_attr.active_mtu));
    w.U32(nic->ud->qp_num);
    w.U32(nic->psn);
  }
  w.U32(static_cast<uint32_t>(regions_.size()));
  for (const auto& [a, r] : regions_) {
    w.U64(r->addr);
    w.U64(r->length);
    w.U64(r->key);
    w.U64(r->window);
    w.U32(static_cast<uint32_t>(r->mrs.size()));
    for (const auto& win : r->mrs) {
      for (ibv_mr* mr : win) w.U32(mr->rkey);
    }
  }
  return w.Take();
}

// ---- memory -----------------------------------------------------------------------

Result<uint64_t> VerbsTransport::RegisterMemory(uint64_t addr, uint64_t length, Location loc) {
  if (!installed_) return Status(ErrorCode::INVALID_PARAMS, "verbs transport not installed");
  if (!loc.is_host()) {
    return Status(ErrorCode::UNSUPPORTED, "the verbs transport registers host memory only");
  }
  if (length == 0) return Status(ErrorCode::INVALID_PARAMS, "zero-length region");
  auto next = regions_.lower_bound(addr);
  if ((next != regions_.end() && next->first < addr + length) ||
      (next != regions_.begin() && std::prev(next)->second->addr + std::prev(next)->second->length > addr)) {
    return Status(ErrorCode::REGISTRATION_FAILED, "range overlaps a registered region");
  }
  uint64_t window = UINT64_MAX;
  for (const auto& nic : nics_) window = std::min(window, nic->max_mr_size);
  if (options_.max_window_bytes != 0) window = std::min(window, options_.max_window_bytes);
  if (window >= 4096) window &= ~uint64_t{4095};  // windows end on page boundaries
  if (window == 0) return Status(ErrorCode::REGISTRATION_FAILED, "device reports max_mr_size 0");
  auto region = std::make_unique<Region>();
  region->addr = addr;
  region->length = length;
  region->window = window;
  for (uint64_t off = 0; off < length; off += window) {
    const uint64_t len = std::min(window, length - off);
    std::vector<ibv_mr*> per_nic;
    for (const auto& nic : nics_) {
      ibv_mr* mr = api_->RegMr(nic->pd, reinterpret_cast<void*>(addr + off), len, kAccess);
      if (mr == nullptr) {
        const int err = errno;
        for (ibv_mr* m : per_nic) api_->DeregMr(m);
        for (auto& w : region->mrs) {
          for (ibv_mr* m : w) api_->DeregMr(m);
        }
        return Status(ErrorCode::REGISTRATION_FAILED,
                      "ibv_reg_mr of " + std::to_string(len) + " bytes on " + nic->device +
                          " failed: " + std::strerror(err));
      }
      per_nic.push_back(mr);
    }
    region->mrs.push_back(std::move(per_nic));
  }
  // The key: a random tag above the first window's rkey on the first NIC, so a peer whose
  // copy of our blob predates this region can still reach its first window (the HCA bounds
  // that access).
  bool clash = true;
  while (clash) {
    region->key = ((install_.env->RandomU64() | 1) << 32) | region->mrs[0][0]->rkey;
    clash = false;
    for (const auto& [a, r] : regions_) clash = clash || r->key == region->key;
  }
  const uint64_t key = region->key;
  regions_.emplace(addr, std::move(region));
  return key;
}

Status VerbsTransport::UnregisterMemory(uint64_t addr, uint64_t length) {
  auto it = regions_.find(addr);
  if (it == regions_.end() || it->second->length != length) {
    return Status(ErrorCode::INVALID_PARAMS, "no region registered at this address and length");
  }
  if (it->second->in_flight != 0) {
    return Status(ErrorCode::BATCH_BUSY, std::to_string(it->second->in_flight) +
                                             " tasks still use this region");
  }
  for (auto& w : it->second->mrs) {
    for (ibv_mr* mr : w) api_->DeregMr(mr);
  }
  regions_.erase(it);
  return Status();
}

// ---- connections ------------------------------------------------------------------

Result<PeerId> VerbsTransport::Connect(const SegmentDescriptor& peer) {
  if (!installed_) return Status(ErrorCode::INVALID_PARAMS, "verbs transport not installed");
  ByteReader r(peer.address);
  std::string_view magic;
  uint32_t nn = 0;
  auto bad = [&]() {
    return Status(ErrorCode::SEGMENT_NOT_FOUND,
                  "segment '" + peer.name + "' has no valid verbs address");
  };
  if (!r.Bytes(&magic, 4) || magic != "tvb1" || !r.Count(&nn, 64, 28)) return bad();
  std::vector<RemoteNic> rnics(nn);
  for (RemoteNic& n : rnics) {
    std::string_view gid;
    if (!r.Str(&n.device, 64) || !r.U8(&n.port) || !r.U16(&n.lid) || !r.Bytes(&gid, 16) ||
        !r.U8(&n.mtu) || !r.U32(&n.ud_qpn) || !r.U32(&n.psn)) {
      return bad();
    }
    std::memcpy(n.gid, gid.data(), 16);
  }
  uint32_t nr = 0;
  if (!r.Count(&nr, kSegmentMaxRegions, 36)) return bad();
  std::vector<RemoteRegion> rregions(nr);
  for (RemoteRegion& g : rregions) {
    uint32_t nw = 0;
    if (!r.U64(&g.addr) || !r.U64(&g.length) || !r.U64(&g.key) || !r.U64(&g.window) ||
        g.window == 0 || !r.Count(&nw, 1u << 24, 4 * size_t{nn})) {
      return bad();
    }
    if (nw != (g.length + g.window - 1) / g.window) return bad();
    g.rkeys.assign(nw, std::vector<uint32_t>(nn));
    for (auto& w : g.rkeys) {
      for (uint32_t& k : w) {
        if (!r.U32(&k)) return bad();
      }
    }
  }
  if (!r.done()) return bad();
  if (rnics.empty()) {
    return Status(ErrorCode::PEER_UNREACHABLE, "segment '" + peer.name + "' publishes no NIC");
  }
  const std::string key = GidKey(rnics[0].gid, rnics[0].lid, rnics[0].ud_qpn);
  auto known = endpoint_by_key_.find(key);
  if (known != endpoint_by_key_.end()) {
    Endpoint& ep = *endpoints_[known->second];
    ep.rnics = std::move(rnics);
    ep.rregions = std::move(rregions);
    return ep.id;
  }
  auto ep = std::make_unique<Endpoint>();
  ep->id = static_cast<PeerId>(endpoints_.size());
  ep->key = key;
  ep->peer_name = peer.name;
  ep->rnics = std::move(rnics);
  ep->rregions = std::move(rregions);
  Endpoint& e = *ep;
  endpoints_.push_back(std::move(ep));
  endpoint_by_key_[key] = e.id;
  StartHandshake(e);
  return e.id;
}

ibv_qp* VerbsTransport::CreateRcQp(Nic& nic) {
  ibv_qp_init_attr init{};
  init.send_cq = nic.cq;
  init.recv_cq = nic.cq;
  init.qp_type = IBV_QPT_RC;
  init.sq_sig_all = 0;
  init.cap.max_send_wr = options_.max_send_wr;
  init.cap.max_recv_wr = options_.recv_depth;
  init.cap.max_send_sge = 1;
  init.cap.max_recv_sge = 1;
  return api_->CreateQp(nic.pd, &init);
}

Status VerbsTransport::ToInit(ibv_qp* qp, const Nic& nic) {
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_INIT;
  a.pkey_index = 0;
  a.port_num = nic.port;
  a.qp_access_flags = kAccess;
  if (api_->ModifyQp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT |
                                 IBV_QP_ACCESS_FLAGS) != 0) {
    return Status(ErrorCode::INTERNAL_ERROR, "queue pair RESET->INIT failed");
  }
  return Status();
}

Status VerbsTransport::ToRtr(ibv_qp* qp, const Nic& nic, const RemoteNic& remote, uint32_t qpn,
                             uint32_t psn, uint8_t mtu) {
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_RTR;
  a.path_mtu = static_cast<ibv_mtu>(std::min<int>(mtu, nic.port_attr.active_mtu));
  a.dest_qp_num = qpn;
  a.rq_psn = psn;
  a.max_dest_rd_atomic = nic.rd_atomic;
  a.min_rnr_timer = options_.min_rnr_timer;
  a.ah_attr.dlid = remote.lid;
  a.ah_attr.sl = 0;
  a.ah_attr.src_path_bits = 0;
  a.ah_attr.port_num = nic.port;
  static const uint8_t kZero[16] = {};
  if (std::memcmp(remote.gid, kZero, 16) != 0) {
    a.ah_attr.is_global = 1;
    std::memcpy(a.ah_attr.grh.dgid.raw, remote.gid, 16);
    a.ah_attr.grh.sgid_index = static_cast<uint8_t>(options_.gid_index);
    a.ah_attr.grh.hop_limit = 64;
  }
  if (api_->ModifyQp(qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
                                 IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC |
                                 IBV_QP_MIN_RNR_TIMER) != 0) {
    return Status(ErrorCode::PEER_UNREACHABLE, "queue pair INIT->RTR failed");
  }
  return Status();
}

Status VerbsTransport::ToRts(ibv_qp* qp, const Nic& nic, uint32_t psn) {
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_RTS;
  a.timeout = options_.timeout;
  a.retry_cnt = options_.retry_cnt;
  a.rnr_retry = options_.rnr_retry;
  a.sq_psn = psn;
  a.max_rd_atomic = nic.rd_atomic;
  if (api_->ModifyQp(qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
                                 IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC) != 0) {
    return Status(ErrorCode::PEER_UNREACHABLE, "queue pair RTR->RTS failed");
  }
  return Status();
}

void VerbsTransport::StartHandshake(Endpoint& ep) {
  ep.state = Endpoint::State::kConnecting;
  Nic& nic = *nics_[ep.lnic];
  ep.qp = CreateRcQp(nic);
  ep.posted = 0;
  ep.psn = Psn(install_.env->RandomU64());
  if (ep.qp == nullptr || !ToInit(ep.qp, nic).ok()) {
    if (ep.qp != nullptr) api_->DestroyQp(ep.qp);
    ep.qp = nullptr;
    FailEndpoint(ep, ErrorCode::PEER_UNREACHABLE);
    return;
  }
  ep.req_id = next_req_id_++;
  ep.attempts = 0;
  SendReq(ep);
}

void VerbsTransport::SendReq(Endpoint& ep) {
  Nic& nic = *nics_[ep.lnic];
  const RemoteNic& to = ep.rnics[ep.rnic];
  ByteWriter w;
  w.U8(kReq);
  w.U64(ep.req_id);
  w.Str(install_.segment_name.substr(0, 256));
  w.Bytes(std::string_view(reinterpret_cast<const char*>(nic.gid.raw), 16));
  w.U16(nic.port_attr.lid);
  w.U32(nic.ud->qp_num);
  w.U32(ep.qp->qp_num);
  w.U32(ep.psn);
  w.U8(static_cast<uint8_t>(nic.port_attr.active_mtu));
  ++ep.attempts;
  SendUd(nic, to, w.Take());
  const PeerId id = ep.id;
  const uint64_t req = ep.req_id;
  ep.timer = install_.env->ScheduleAfter(options_.handshake_timeout_ns,
                                         [this, id, req]() { HandshakeTimeout(id, req); });
}

void VerbsTransport::HandshakeTimeout(PeerId peer, uint64_t req_id) {
  Endpoint& ep = *endpoints_[peer];
  ep.timer = 0;
  if (ep.state != Endpoint::State::kConnecting || ep.req_id != req_id) return;
  if (ep.attempts < options_.handshake_attempts) {
    SendReq(ep);
    return;
  }
  // This NIC pair does not answer: the next one, until every pair was tried.
  api_->DestroyQp(ep.qp);
  ep.qp = nullptr;
  if (++ep.pairs_tried >= std::max(nics_.size(), ep.rnics.size())) {
    FailEndpoint(ep, ErrorCode::PEER_UNREACHABLE);
    return;
  }
  ep.lnic = (ep.lnic + 1) % nics_.size();
  ep.rnic = (ep.rnic + 1) % ep.rnics.size();
  ++ep.rebuilds;
  StartHandshake(ep);
}

void VerbsTransport::SendUd(Nic& nic, const RemoteNic& to, const std::string& msg) {
  if (nic.free_ud_send.empty() || msg.size() > kUdMsg) return;  // lost; the timer resends
  const std::string ak = std::to_string(nic.index) + "/" + GidKey(to.gid, to.lid, 0);
  ibv_ah* ah = nullptr;
  auto found = ahs_.find(ak);
  if (found != ahs_.end()) {
    ah = found->second;
  } else {
    ibv_ah_attr a{};
    a.dlid = to.lid;
    a.port_num = nic.port;
    static const uint8_t kZero[16] = {};
    if (std::memcmp(to.gid, kZero, 16) != 0) {
      a.is_global = 1;
      std::memcpy(a.grh.dgid.raw, to.gid, 16);
      a.grh.sgid_index = static_cast<uint8_t>(options_.gid_index);
      a.grh.hop_limit = 64;
    }
    ah = api_->CreateAh(nic.pd, &a);
    if (ah == nullptr) return;
    ahs_.emplace(ak, ah);
  }
  const uint32_t slot = nic.free_ud_send.back();
  std::memcpy(nic.UdSend(slot), msg.data(), msg.size());
  ibv_sge sge{};
  sge.addr = reinterpret_cast<uint64_t>(nic.UdSend(slot));
  sge.length = static_cast<uint32_t>(msg.size());
  sge.lkey = nic.ctrl_mr->lkey;
  ibv_send_wr wr{};
  wr.wr_id = next_wr_id_++;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = IBV_WR_SEND;
  wr.send_flags = IBV_SEND_SIGNALED;
  wr.wr.ud.ah = ah;
  wr.wr.ud.remote_qpn = to.ud_qpn;
  wr.wr.ud.remote_qkey = kQkey;
  ibv_send_wr* bad = nullptr;
  if (api_->PostSend(nic.ud, &wr, &bad) != 0) return;  // lost; the timer resends
  nic.free_ud_send.pop_back();
  WrCtx c;
  c.kind = WrCtx::Kind::kUdSend;
  c.nic = nic.index;
  c.slot = slot;
  wrs_.emplace(wr.wr_id, c);
  ++nic.cq_used;
}

void VerbsTransport::OnUdRecv(Nic& nic, const uint8_t* msg, size_t len) {
  if (len == 0) return;
  if (msg[0] == kReq) OnReq(nic, msg, len);
  if (msg[0] == kRep) OnRep(msg, len);
}

void VerbsTransport::OnReq(Nic& nic, const uint8_t* msg, size_t len) {
  ByteReader r(std::string_view(reinterpret_cast<const char*>(msg), len));
  uint8_t type = 0;
  RemoteNic from;
  std::string name;
  std::string_view gid;
  uint64_t req_id = 0;
  uint32_t qpn = 0, psn = 0;
  if (!r.U8(&type) || !r.U64(&req_id) || !r.Str(&name, 256) || !r.Bytes(&gid, 16) ||
      !r.U16(&from.lid) || !r.U32(&from.ud_qpn) || !r.U32(&qpn) || !r.U32(&psn) ||
      !r.U8(&from.mtu)) {
    return;
  }
  std::memcpy(from.gid, gid.data(), 16);
  const std::string key = GidKey(from.gid, from.lid, from.ud_qpn);
  Passive* p = nullptr;
  for (auto& q : passives_) {
    if (q->key == key && q->req_id == req_id && !q->broken) p = q.get();
  }
  if (p == nullptr) {
    auto fresh = std::make_unique<Passive>();
    fresh->nic = nic.index;
    fresh->peer_name = name;
    fresh->key = key;
    fresh->req_id = req_id;
    fresh->psn = Psn(install_.env->RandomU64());
    fresh->qp = CreateRcQp(nic);
    if (fresh->qp == nullptr) return;
    fresh->buffer.assign(size_t{options_.recv_depth} * options_.notify_bytes, 0);
    fresh->mr = api_->RegMr(nic.pd, fresh->buffer.data(), fresh->buffer.size(),
                            IBV_ACCESS_LOCAL_WRITE);
    if (fresh->mr == nullptr || !ToInit(fresh->qp, nic).ok() ||
        !ToRtr(fresh->qp, nic, from, qpn, psn, from.mtu).ok() ||
        !ToRts(fresh->qp, nic, fresh->psn).ok()) {
      api_->DestroyQp(fresh->qp);
      if (fresh->mr != nullptr) api_->DeregMr(fresh->mr);
      return;  // no REP: the requester tries again or gives up
    }
    p = fresh.get();
    passives_.push_back(std::move(fresh));
    PostRecvs(*p);
  }
  ByteWriter w;
  w.U8(kRep);
  w.U64(req_id);
  w.U32(p->qp->qp_num);
  w.U32(p->psn);
  w.U8(static_cast<uint8_t>(nic.port_attr.active_mtu));
  SendUd(nic, from, w.Take());
}

void VerbsTransport::OnRep(const uint8_t* msg, size_t len) {
  ByteReader r(std::string_view(reinterpret_cast<const char*>(msg), len));
  uint8_t type = 0, mtu = 0;
  uint64_t req_id = 0;
  uint32_t qpn = 0, psn = 0;
  if (!r.U8(&type) || !r.U64(&req_id) || !r.U32(&qpn) || !r.U32(&psn) || !r.U8(&mtu)) return;
  for (auto& e : endpoints_) {
    Endpoint& ep = *e;
    if (ep.state != Endpoint::State::kConnecting || ep.req_id != req_id) continue;
    if (ep.timer != 0) install_.env->CancelTimer(ep.timer);
    ep.timer = 0;
    Nic& nic = *nics_[ep.lnic];
    if (!ToRtr(ep.qp, nic, ep.rnics[ep.rnic], qpn, psn, mtu).ok() || !ToRts(ep.qp, nic, ep.psn).ok()) {
      HandshakeTimeout(ep.id, ep.req_id);  // counts as a failed attempt
      return;
    }
    ep.state = Endpoint::State::kReady;
    ep.pairs_tried = 0;
    PumpEndpoint(ep);
    return;
  }
}

void VerbsTransport::PostRecvs(Passive& p) {
  Nic& nic = *nics_[p.nic];
  for (uint32_t slot = 0; slot < options_.recv_depth; ++slot) {
    if (nic.cq_used >= options_.cq_depth) return;
    ibv_sge sge{};
    sge.addr = reinterpret_cast<uint64_t>(p.buffer.data() + size_t{slot} * options_.notify_bytes);
    sge.length = options_.notify_bytes;
    sge.lkey = p.mr->lkey;
    ibv_recv_wr wr{};
    wr.wr_id = next_wr_id_++;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    ibv_recv_wr* bad = nullptr;
    if (api_->PostRecv(p.qp, &wr, &bad) != 0) return;
    WrCtx c;
    c.kind = WrCtx::Kind::kRecv;
    c.nic = p.nic;
    c.slot = slot;
    for (uint32_t i = 0; i < passives_.size(); ++i) {
      if (passives_[i].get() == &p) c.owner = i;
    }
    wrs_.emplace(wr.wr_id, c);
    ++nic.cq_used;
    ++p.posted;
  }
}

// ---- tasks ------------------------------------------------------------------------

void VerbsTransport::Submit(std::span<const TransportTask> tasks, std::span<Status> accepted) {
  TIDAL_ASSERT(tasks.size() == accepted.size());
  std::vector<Endpoint*> touched;
  for (size_t i = 0; i < tasks.size(); ++i) {
    const TransportTask& t = tasks[i];
    if (!installed_) {
      accepted[i] = Status(ErrorCode::INVALID_PARAMS, "verbs transport not installed");
      continue;
    }
    if (t.peer >= endpoints_.size()) {
      accepted[i] = Status(ErrorCode::INVALID_PARAMS, "unknown peer id");
      continue;
    }
    if (tasks_.count(t.task_id) != 0) {
      accepted[i] = Status(ErrorCode::INVALID_PARAMS, "task id already outstanding");
      continue;
    }
    Endpoint& ep = *endpoints_[t.peer];
    auto st = std::make_unique<TaskState>();
    st->task = t;
    if (t.kind == TransportTask::Kind::kProbe) {
      st->slices.push_back(Slice{});
    } else {
      if (t.length == 0) {
        accepted[i] = Status(ErrorCode::INVALID_PARAMS, "zero-length task");
        continue;
      }
      auto it = regions_.upper_bound(t.local_addr);
      Region* local = nullptr;
      if (it != regions_.begin()) {
        Region* r = std::prev(it)->second.get();
        if (RegionInfo{r->addr, r->length, Location::Host(), r->key}.Contains(t.local_addr, t.length)) {
          local = r;
        }
      }
      if (local == nullptr) {
        accepted[i] = Status(ErrorCode::ADDRESS_NOT_REGISTERED,
                             "local range is not inside memory registered with verbs");
        continue;
      }
      st->local = local;
      const RemoteRegion* remote = nullptr;
      for (const RemoteRegion& g : ep.rregions) {
        if (RegionInfo{g.addr, g.length, Location::Host(), g.key}.Contains(t.remote_addr, t.length)) {
          remote = &g;
        }
      }
      RemoteRegion unlisted;
      if (remote == nullptr) {
        // A region registered after the blob we hold (or no region at all): its key names
        // the first window's rkey on the peer's first NIC; the target's HCA checks the
        // range against that window and denies anything outside it.
        unlisted.addr = t.remote_addr;
        unlisted.length = t.length;
        unlisted.key = t.rkey;
        unlisted.window = t.length;
        unlisted.rkeys.assign(1, std::vector<uint32_t>(ep.rnics.size(),
                                                       static_cast<uint32_t>(t.rkey)));
        remote = &unlisted;
      }
      if (remote->key != t.rkey) {
        // What the target's HCA would answer: nothing is posted, nothing moves.
        accepted[i] = Status();
        completions_.push_back({t.task_id, ErrorCode::REMOTE_ACCESS_DENIED, 0});
        Signal();
        continue;
      }
      st->remote = *remote;
      uint32_t max_msg = UINT32_MAX;
      for (const auto& nic : nics_) max_msg = std::min(max_msg, nic->max_msg);
      for (uint64_t off = 0; off < t.length;) {
        const uint64_t la = t.local_addr + off, ra = t.remote_addr + off;
        const uint64_t lend = local->addr + ((la - local->addr) / local->window + 1) * local->window;
        const uint64_t rw = (ra - remote->addr) / remote->window;
        const uint64_t rend = remote->addr + (rw + 1) * remote->window;
        const uint64_t len = std::min({t.length - off, lend - la, rend - ra, uint64_t{max_msg}});
        Slice s;
        s.local_addr = la;
        s.remote_addr = ra;
        s.length = len;
        s.remote_window = static_cast<uint32_t>(rw);
        st->slices.push_back(s);
        off += len;
      }
      ++local->in_flight;
    }
    for (uint32_t k = 0; k < st->slices.size(); ++k) ep.waiting.emplace_back(t.task_id, k);
    tasks_.emplace(t.task_id, std::move(st));
    accepted[i] = Status();
    if (ep.state == Endpoint::State::kFailed) {
      ep.pairs_tried = 0;
      StartHandshake(ep);  // the peer may be back; if not, the handshake fails again
    }
    if (std::find(touched.begin(), touched.end(), &ep) == touched.end()) touched.push_back(&ep);
  }
  for (Endpoint* ep : touched) PumpEndpoint(*ep);
  ArmPoll();
}

void VerbsTransport::PumpEndpoint(Endpoint& ep) {
  if (ep.state != Endpoint::State::kReady) return;
  Nic& nic = *nics_[ep.lnic];
  while (!ep.waiting.empty()) {
    if (ep.posted >= options_.max_send_wr || nic.cq_used >= options_.cq_depth) break;
    auto [task_id, k] = ep.waiting.front();
    auto it = tasks_.find(task_id);
    if (it == tasks_.end() || it->second->slices[k].state != Slice::State::kWaiting) {
      ep.waiting.pop_front();
      continue;
    }
    if (!PostSlice(ep, *it->second, k)) break;  // ENOMEM: the poll timer retries
    ep.waiting.pop_front();
  }
  PumpNotifies(ep);
}

bool VerbsTransport::PostSlice(Endpoint& ep, TaskState& st, uint32_t k) {
  Nic& nic = *nics_[ep.lnic];
  TaskState* owner = &st;
  Slice& s = st.slices[k];
  const TransportTask& t = owner->task;
  ibv_sge sge{};
  ibv_send_wr wr{};
  wr.wr_id = next_wr_id_++;
  wr.send_flags = IBV_SEND_SIGNALED;
  if (t.kind == TransportTask::Kind::kProbe) {
    wr.opcode = IBV_WR_RDMA_WRITE;  // zero bytes: the peer's HCA acknowledges it
    wr.num_sge = 0;
  } else {
    Region& local = *owner->local;
    const uint64_t lw = (s.local_addr - local.addr) / local.window;
    sge.addr = s.local_addr;
    sge.length = static_cast<uint32_t>(s.length);
    sge.lkey = local.mrs[lw][ep.lnic]->lkey;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    wr.opcode = t.kind == TransportTask::Kind::kWrite ? IBV_WR_RDMA_WRITE : IBV_WR_RDMA_READ;
    wr.wr.rdma.remote_addr = s.remote_addr;
    wr.wr.rdma.rkey = owner->remote.rkeys[s.remote_window][ep.rnic];
  }
  ibv_send_wr* bad = nullptr;
  const int rc = api_->PostSend(ep.qp, &wr, &bad);
  if (rc == ENOMEM || rc == EAGAIN) return false;
  if (rc != 0) {
    s.state = Slice::State::kDone;
    SliceDone(t.task_id, 0, ErrorCode::TRANSFER_FAIL);
    return true;
  }
  s.state = Slice::State::kPosted;
  WrCtx c;
  c.kind = WrCtx::Kind::kSlice;
  c.nic = nic.index;
  c.task_id = t.task_id;
  c.slice = k;
  c.owner = ep.id;
  wrs_.emplace(wr.wr_id, c);
  ++ep.posted;
  ++nic.cq_used;
  return true;
}

void VerbsTransport::PumpNotifies(Endpoint& ep) {
  if (ep.state != Endpoint::State::kReady) return;
  Nic& nic = *nics_[ep.lnic];
  while (!ep.notify_queue.empty() && !nic.free_notify.empty() &&
         ep.posted < options_.max_send_wr && nic.cq_used < options_.cq_depth) {
    const std::string& payload = ep.notify_queue.front();
    const uint32_t slot = nic.free_notify.back();
    uint8_t* buf = nic.NotifySlot(slot, options_.notify_bytes);
    std::memcpy(buf, payload.data(), payload.size());
    ibv_sge sge{};
    sge.addr = reinterpret_cast<uint64_t>(buf);
    sge.length = static_cast<uint32_t>(payload.size());
    sge.lkey = nic.ctrl_mr->lkey;
    ibv_send_wr wr{};
    wr.wr_id = next_wr_id_++;
    wr.sg_list = &sge;
    wr.num_sge = payload.empty() ? 0 : 1;
    wr.opcode = IBV_WR_SEND;
    wr.send_flags = IBV_SEND_SIGNALED | IBV_SEND_FENCE;
    ibv_send_wr* bad = nullptr;
    const int rc = api_->PostSend(ep.qp, &wr, &bad);
    if (rc == ENOMEM || rc == EAGAIN) return;
    ep.notify_queue.pop_front();
    if (rc != 0) continue;  // lost, like a notification to a peer that went away
    nic.free_notify.pop_back();
    WrCtx c;
    c.kind = WrCtx::Kind::kNotify;
    c.nic = nic.index;
    c.owner = ep.id;
    c.slot = slot;
    wrs_.emplace(wr.wr_id, c);
    ++ep.posted;
    ++nic.cq_used;
  }
}

// ---- completions ------------------------------------------------------------------

void VerbsTransport::Progress() {
  if (!installed_) return;
  ibv_wc wcs[16];
  for (auto& nic : nics_) {
    for (;;) {
      const int n = api_->PollCq(nic->cq, 16, wcs);
      if (n <= 0) break;
      for (int i = 0; i < n; ++i) HandleWc(*nic, wcs[i]);
    }
  }
  for (auto& ep : endpoints_) {
    if (ep->state == Endpoint::State::kBroken && ep->posted == 0) {
      RebuildEndpoint(*ep, ep->retry_path);
    }
  }
  for (auto& p : passives_) {
    if (p->broken && p->posted == 0 && p->qp != nullptr) {
      api_->DestroyQp(p->qp);
      api_->DeregMr(p->mr);
      p->qp = nullptr;
      p->mr = nullptr;
    }
  }
  for (auto& ep : endpoints_) PumpEndpoint(*ep);
}

void VerbsTransport::HandleWc(Nic& nic, const ibv_wc& wc) {
  auto it = wrs_.find(wc.wr_id);
  if (it == wrs_.end()) return;
  const WrCtx c = it->second;
  wrs_.erase(it);
  if (nic.cq_used > 0) --nic.cq_used;
  switch (c.kind) {
    case WrCtx::Kind::kUdSend:
      nic.free_ud_send.push_back(c.slot);
      return;
    case WrCtx::Kind::kUdRecv:
      if (wc.status == IBV_WC_SUCCESS && wc.byte_len > kGrh) {
        OnUdRecv(nic, nic.UdRecv(c.slot) + kGrh, wc.byte_len - kGrh);
      }
      if (wc.status != IBV_WC_WR_FLUSH_ERR) PostUdRecv(nic, c.slot);
      return;
    case WrCtx::Kind::kRecv: {
      Passive& p = *passives_[c.owner];
      --p.posted;
      if (wc.status != IBV_WC_SUCCESS) {
        p.broken = true;  // the requester rebuilds with a new handshake
        return;
      }
      const uint8_t* data = p.buffer.data() + size_t{c.slot} * options_.notify_bytes;
      notifies_.push_back(Notification{
          p.peer_name,
          std::string(reinterpret_cast<const char*>(data),
                      std::min<size_t>(wc.byte_len, options_.notify_bytes))});
      ibv_sge sge{};
      sge.addr = reinterpret_cast<uint64_t>(data);
      sge.length = options_.notify_bytes;
      sge.lkey = p.mr->lkey;
      ibv_recv_wr wr{};
      wr.wr_id = next_wr_id_++;
      wr.sg_list = &sge;
      wr.num_sge = 1;
      ibv_recv_wr* bad = nullptr;
      if (api_->PostRecv(p.qp, &wr, &bad) == 0) {
        WrCtx again = c;
        wrs_.emplace(wr.wr_id, again);
        ++nic.cq_used;
        ++p.posted;
      }
      Signal();
      return;
    }
    case WrCtx::Kind::kNotify: {
      nic.free_notify.push_back(c.slot);
      Endpoint& ep = *endpoints_[c.owner];
      --ep.posted;
      if (wc.status != IBV_WC_SUCCESS && wc.status != IBV_WC_WR_FLUSH_ERR &&
          ep.state == Endpoint::State::kReady) {
        BreakEndpoint(ep, wc.status, 0);
      }
      return;
    }
    case WrCtx::Kind::kSlice: {
      Endpoint& ep = *endpoints_[c.owner];
      --ep.posted;
      auto t = tasks_.find(c.task_id);
      if (t == tasks_.end()) return;
      TaskState& st = *t->second;
      Slice& s = st.slices[c.slice];
      if (wc.status == IBV_WC_SUCCESS) {
        s.state = Slice::State::kDone;
        if (ep.path_cause == false && ep.state == Endpoint::State::kReady) ep.path_retries = 0;
        SliceDone(c.task_id, s.length, ErrorCode::OK);
        return;
      }
      if (wc.status == IBV_WC_WR_FLUSH_ERR) {
        if (ep.state != Endpoint::State::kBroken) {
          // Flushed without a cause seen first (the QP broke under us): a path failure.
          BreakEndpoint(ep, IBV_WC_RETRY_EXC_ERR, 0);
        }
        if (st.canceled) {
          s.state = Slice::State::kDone;
          SliceDone(c.task_id, 0, ErrorCode::TRANSFER_CANCELED);
        } else if (!ep.path_cause || ep.retry_path) {
          s.state = Slice::State::kWaiting;  // innocent: re-posted on the rebuilt QP
          ep.waiting.emplace_back(c.task_id, c.slice);
        } else {
          s.state = Slice::State::kDone;
          SliceDone(c.task_id, 0, ErrorCode::PEER_UNREACHABLE);
        }
        return;
      }
      if (ep.state != Endpoint::State::kBroken) BreakEndpoint(ep, wc.status, c.task_id);
      if (IsPathFailure(wc.status) && ep.retry_path && !st.canceled) {
        s.state = Slice::State::kWaiting;
        ep.waiting.emplace_back(c.task_id, c.slice);
        return;
      }
      s.state = Slice::State::kDone;
      SliceDone(c.task_id, 0, st.canceled ? ErrorCode::TRANSFER_CANCELED
                                          : WcStatusToError(wc.status));
      return;
    }
  }
}

void VerbsTransport::BreakEndpoint(Endpoint& ep, ibv_wc_status cause, uint64_t culprit) {
  (void)culprit;
  ep.state = Endpoint::State::kBroken;
  ep.path_cause = IsPathFailure(cause);
  ep.retry_path = ep.path_cause && ep.path_retries < options_.max_path_retries;
  if (ep.path_cause) ++ep.path_retries;
  // The HCA moved the QP to the error state itself; doing it again is harmless and makes a
  // cancel flush what is still queued.
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_ERR;
  api_->ModifyQp(ep.qp, &a, IBV_QP_STATE);
  // Work that was never posted on a failed path with no retry left fails as well.
  if (ep.path_cause && !ep.retry_path) {
    std::deque<std::pair<uint64_t, uint32_t>> waiting = std::move(ep.waiting);
    ep.waiting.clear();
    for (auto [id, k] : waiting) {
      auto t = tasks_.find(id);
      if (t == tasks_.end() || t->second->slices[k].state != Slice::State::kWaiting) continue;
      t->second->slices[k].state = Slice::State::kDone;
      SliceDone(id, 0, ErrorCode::PEER_UNREACHABLE);
    }
  }
}

void VerbsTransport::RebuildEndpoint(Endpoint& ep, bool next_nic) {
  api_->DestroyQp(ep.qp);
  ep.qp = nullptr;
  ++ep.rebuilds;
  if (next_nic) {
    ep.lnic = (ep.lnic + 1) % nics_.size();
    ep.rnic = (ep.rnic + 1) % ep.rnics.size();
  }
  ep.path_cause = false;
  ep.retry_path = false;
  ep.pairs_tried = 0;
  StartHandshake(ep);
}

void VerbsTransport::FailEndpoint(Endpoint& ep, ErrorCode code) {
  ep.state = Endpoint::State::kFailed;
  if (ep.timer != 0) install_.env->CancelTimer(ep.timer);
  ep.timer = 0;
  ep.notify_queue.clear();
  std::deque<std::pair<uint64_t, uint32_t>> waiting = std::move(ep.waiting);
  ep.waiting.clear();
  for (auto [id, k] : waiting) {
    auto t = tasks_.find(id);
    if (t == tasks_.end() || t->second->slices[k].state != Slice::State::kWaiting) continue;
    t->second->slices[k].state = Slice::State::kDone;
    SliceDone(id, 0, code);
  }
}

void VerbsTransport::SliceDone(uint64_t task_id, uint64_t bytes, ErrorCode code) {
  auto it = tasks_.find(task_id);
  TIDAL_ASSERT(it != tasks_.end());
  TaskState& st = *it->second;
  st.bytes += bytes;
  if (code != ErrorCode::OK && st.code == ErrorCode::OK) st.code = code;
  if (++st.done < st.slices.size()) return;
  FinishTask(task_id, st.code);
}

void VerbsTransport::FinishTask(uint64_t task_id, ErrorCode code) {
  auto it = tasks_.find(task_id);
  TaskState& st = *it->second;
  if (st.local != nullptr) --st.local->in_flight;
  completions_.push_back({task_id, code, st.bytes});
  tasks_.erase(it);
  Signal();
}

size_t VerbsTransport::PollCompletions(std::span<TransportCompletion> out) {
  Progress();
  size_t n = 0;
  while (n < out.size() && !completions_.empty()) {
    out[n++] = completions_.front();
    completions_.pop_front();
  }
  return n;
}

Status VerbsTransport::Cancel(uint64_t task_id) {
  auto it = tasks_.find(task_id);
  if (it == tasks_.end()) {
    for (const TransportCompletion& c : completions_) {
      if (c.task_id == task_id) return Status();  // finished; its completion is queued
    }
    return Status(ErrorCode::INVALID_PARAMS, "no outstanding task " + std::to_string(task_id));
  }
  TaskState& st = *it->second;
  if (st.canceled) return Status();
  st.canceled = true;
  bool posted = false;
  uint32_t unposted = 0;
  for (Slice& s : st.slices) {
    if (s.state == Slice::State::kPosted) posted = true;
    if (s.state == Slice::State::kWaiting) {
      s.state = Slice::State::kDone;
      ++unposted;
    }
  }
  if (posted) {
    Endpoint& ep = *endpoints_[st.task.peer];
    if (ep.state != Endpoint::State::kBroken) BreakEndpoint(ep, IBV_WC_GENERAL_ERR, task_id);
  }
  for (uint32_t i = 0; i < unposted; ++i) SliceDone(task_id, 0, ErrorCode::TRANSFER_CANCELED);
  ArmPoll();
  return Status();
}

Status VerbsTransport::SendNotify(PeerId peer, std::string_view payload) {
  if (peer >= endpoints_.size()) return Status(ErrorCode::INVALID_PARAMS, "unknown peer id");
  if (payload.size() > options_.notify_bytes) {
    return Status(ErrorCode::INVALID_PARAMS, "notification larger than " +
                                                 std::to_string(options_.notify_bytes) + " bytes");
  }
  Endpoint& ep = *endpoints_[peer];
  if (ep.state == Endpoint::State::kFailed) {
    return Status(ErrorCode::PEER_UNREACHABLE, "peer '" + ep.peer_name + "' does not answer");
  }
  ep.notify_queue.emplace_back(payload);
  PumpEndpoint(ep);
  ArmPoll();
  return Status();
}

size_t VerbsTransport::PollNotifies(std::vector<Notification>& out, size_t max) {
  Progress();
  size_t n = 0;
  while (n < max && !notifies_.empty()) {
    out.push_back(std::move(notifies_.front()));
    notifies_.pop_front();
    ++n;
  }
  return n;
}

bool VerbsTransport::Busy() const {
  if (!tasks_.empty() || !passives_.empty()) return true;
  for (const auto& ep : endpoints_) {
    if (ep->state != Endpoint::State::kReady && ep->state != Endpoint::State::kFailed) return true;
    if (!ep->notify_queue.empty() || ep->posted != 0) return true;
  }
  return false;
}

void VerbsTransport::ArmPoll() {
  if (!installed_) return;
  const bool fast = Busy();
  if (poll_timer_ != 0) {
    if (poll_fast_ || !fast) return;
    install_.env->CancelTimer(poll_timer_);  // idle pace, but work arrived
    poll_timer_ = 0;
  }
  poll_fast_ = fast;
  // Busy: poll at options.poll_interval_ns. Idle, the UD queue pairs still take handshakes
  // from peers: poll every millisecond.
  const uint64_t delay = fast ? options_.poll_interval_ns : 1'000'000;
  poll_timer_ = install_.env->ScheduleAfter(delay, [this]() {
    poll_timer_ = 0;
    Progress();
    ArmPoll();
  });
}

void VerbsTransport::Signal() {
  if (installed_ && install_.on_ready) install_.on_ready();
}

}  // namespace tidal::backends::verbs
