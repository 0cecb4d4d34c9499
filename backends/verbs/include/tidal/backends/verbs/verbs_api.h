// VerbsApi: the seam between VerbsTransport and libibverbs.
//
// Every libibverbs call the transport makes goes through this interface, one method per
// verb, with the verb's own types and return conventions (a null pointer or a non-zero
// errno-style int on failure). RealVerbsApi calls libibverbs; the tests drive the
// transport through a gmock MockVerbsApi (backends/verbs/test/mock_verbs_api.h) behind
// which a small fake HCA moves bytes, so the verbs logic is proven without a device.
//
// The transport only reads plain fields of the objects returned here (ibv_mr::lkey/rkey,
// ibv_qp::qp_num, ...); it never calls an inline verb (ibv_post_send, ibv_poll_cq, ...)
// itself, since those dereference the provider's function table.
//
// Thread safety: whatever libibverbs promises (its calls are thread-safe); the transport
// calls the seam from its node's executor only.
#pragma once

#include <infiniband/verbs.h>

#include <memory>
#include <string>

namespace tidal::backends::verbs {

class VerbsApi {
 public:
  virtual ~VerbsApi() = default;

  virtual ibv_device** GetDeviceList(int* num_devices) = 0;
  virtual void FreeDeviceList(ibv_device** list) = 0;
  virtual std::string DeviceName(ibv_device* device) = 0;
  virtual ibv_context* OpenDevice(ibv_device* device) = 0;
  virtual int CloseDevice(ibv_context* context) = 0;

  virtual int QueryDevice(ibv_context* context, ibv_device_attr* attr) = 0;
  virtual int QueryPort(ibv_context* context, uint8_t port, ibv_port_attr* attr) = 0;
  virtual int QueryGid(ibv_context* context, uint8_t port, int index, ibv_gid* gid) = 0;

  virtual ibv_pd* AllocPd(ibv_context* context) = 0;
  virtual int DeallocPd(ibv_pd* pd) = 0;
  virtual ibv_mr* RegMr(ibv_pd* pd, void* addr, size_t length, int access) = 0;
  virtual int DeregMr(ibv_mr* mr) = 0;

  virtual ibv_cq* CreateCq(ibv_context* context, int cqe) = 0;
  virtual int DestroyCq(ibv_cq* cq) = 0;
  // Returns the number of completions written to wc (0..num_entries), negative on error.
  virtual int PollCq(ibv_cq* cq, int num_entries, ibv_wc* wc) = 0;

  virtual ibv_qp* CreateQp(ibv_pd* pd, ibv_qp_init_attr* attr) = 0;
  virtual int ModifyQp(ibv_qp* qp, ibv_qp_attr* attr, int attr_mask) = 0;
  virtual int DestroyQp(ibv_qp* qp) = 0;
  virtual ibv_ah* CreateAh(ibv_pd* pd, ibv_ah_attr* attr) = 0;
  virtual int DestroyAh(ibv_ah* ah) = 0;

  // 0 or an errno value (ENOMEM when the send queue is full); *bad_wr names the first
  // work request that was not posted.
  virtual int PostSend(ibv_qp* qp, ibv_send_wr* wr, ibv_send_wr** bad_wr) = 0;
  virtual int PostRecv(ibv_qp* qp, ibv_recv_wr* wr, ibv_recv_wr** bad_wr) = 0;
};

// The libibverbs implementation.
std::unique_ptr<VerbsApi> MakeRealVerbsApi();

// Why this machine cannot run the verbs backend ("" when at least one RDMA device is
// listed by ibv_get_device_list).
std::string VerbsUnavailableReason(VerbsApi& api);

}  // namespace tidal::backends::verbs
