#include "tidal/backends/verbs/verbs_api.h"

#include <cerrno>
#include <cstring>

namespace tidal::backends::verbs {
namespace {

class RealVerbsApi final : public VerbsApi {
 public:
  ibv_device** GetDeviceList(int* n) override { return ibv_get_device_list(n); }
  void FreeDeviceList(ibv_device** list) override { ibv_free_device_list(list); }
  std::string DeviceName(ibv_device* d) override {
    const char* name = ibv_get_device_name(d);
    return name == nullptr ? std::string() : std::string(name);
  }
  ibv_context* OpenDevice(ibv_device* d) override { return ibv_open_device(d); }
  int CloseDevice(ibv_context* c) override { return ibv_close_device(c); }
  int QueryDevice(ibv_context* c, ibv_device_attr* a) override { return ibv_query_device(c, a); }
  int QueryPort(ibv_context* c, uint8_t port, ibv_port_attr* a) override {
    return ibv_query_port(c, port, a);
  }
  int QueryGid(ibv_context* c, uint8_t port, int index, ibv_gid* gid) override {
    return ibv_query_gid(c, port, index, gid);
  }
  ibv_pd* AllocPd(ibv_context* c) override { return ibv_alloc_pd(c); }
  int DeallocPd(ibv_pd* pd) override { return ibv_dealloc_pd(pd); }
  ibv_mr* RegMr(ibv_pd* pd, void* addr, size_t len, int access) override {
    return ibv_reg_mr(pd, addr, len, access);
  }
  int DeregMr(ibv_mr* mr) override { return ibv_dereg_mr(mr); }
  ibv_cq* CreateCq(ibv_context* c, int cqe) override {
    return ibv_create_cq(c, cqe, nullptr, nullptr, 0);
  }
  int DestroyCq(ibv_cq* cq) override { return ibv_destroy_cq(cq); }
  int PollCq(ibv_cq* cq, int n, ibv_wc* wc) override { return ibv_poll_cq(cq, n, wc); }
  ibv_qp* CreateQp(ibv_pd* pd, ibv_qp_init_attr* a) override { return ibv_create_qp(pd, a); }
  int ModifyQp(ibv_qp* qp, ibv_qp_attr* a, int mask) override { return ibv_modify_qp(qp, a, mask); }
  int DestroyQp(ibv_qp* qp) override { return ibv_destroy_qp(qp); }
  ibv_ah* CreateAh(ibv_pd* pd, ibv_ah_attr* a) override { return ibv_create_ah(pd, a); }
  int DestroyAh(ibv_ah* ah) override { return ibv_destroy_ah(ah); }
  int PostSend(ibv_qp* qp, ibv_send_wr* wr, ibv_send_wr** bad) override {
    return ibv_post_send(qp, wr, bad);
  }
  int PostRecv(ibv_qp* qp, ibv_recv_wr* wr, ibv_recv_wr** bad) override {
    return ibv_post_recv(qp, wr, bad);
  }
};

}  // namespace

std::unique_ptr<VerbsApi> MakeRealVerbsApi() { return std::make_unique<RealVerbsApi>(); }

std::string VerbsUnavailableReason(VerbsApi& api) {
  int n = 0;
  errno = 0;
  ibv_device** list = api.GetDeviceList(&n);
  if (list == nullptr) {
    const int err = errno;
    return std::string("no RDMA device found: ibv_get_device_list failed (") +
           (err == 0 ? "no verbs provider" : std::strerror(err)) + ")";
  }
  api.FreeDeviceList(list);
  if (n == 0) return "no RDMA device found: ibv_get_device_list returned 0 devices";
  return "";
}

}  // namespace tidal::backends::verbs
