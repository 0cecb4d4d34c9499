// MockVerbsApi: the gmock double of the VerbsApi seam. Tests set expectations on it and
// let FakeHca (fake_hca.h) supply the default behaviour of a small HCA.
#pragma once

#include <gmock/gmock.h>

#include "tidal/backends/verbs/verbs_api.h"

namespace tidal::backends::verbs {

class MockVerbsApi : public VerbsApi {
 public:
  MOCK_METHOD(ibv_device**, GetDeviceList, (int*), (override));
  MOCK_METHOD(void, FreeDeviceList, (ibv_device**), (override));
  MOCK_METHOD(std::string, DeviceName, (ibv_device*), (override));
  MOCK_METHOD(ibv_context*, OpenDevice, (ibv_device*), (override));
  MOCK_METHOD(int, CloseDevice, (ibv_context*), (override));
  MOCK_METHOD(int, QueryDevice, (ibv_context*, ibv_device_attr*), (override));
  MOCK_METHOD(int, QueryPort, (ibv_context*, uint8_t, ibv_port_attr*), (override));
  MOCK_METHOD(int, QueryGid, (ibv_context*, uint8_t, int, ibv_gid*), (override));
  MOCK_METHOD(ibv_pd*, AllocPd, (ibv_context*), (override));
  MOCK_METHOD(int, DeallocPd, (ibv_pd*), (override));
  MOCK_METHOD(ibv_mr*, RegMr, (ibv_pd*, void*, size_t, int), (override));
  MOCK_METHOD(int, DeregMr, (ibv_mr*), (override));
  MOCK_METHOD(ibv_cq*, CreateCq, (ibv_context*, int), (override));
  MOCK_METHOD(int, DestroyCq, (ibv_cq*), (override));
  MOCK_METHOD(int, PollCq, (ibv_cq*, int, ibv_wc*), (override));
  MOCK_METHOD(ibv_qp*, CreateQp, (ibv_pd*, ibv_qp_init_attr*), (override));
  MOCK_METHOD(int, ModifyQp, (ibv_qp*, ibv_qp_attr*, int), (override));
  MOCK_METHOD(int, DestroyQp, (ibv_qp*), (override));
  MOCK_METHOD(ibv_ah*, CreateAh, (ibv_pd*, ibv_ah_attr*), (override));
  MOCK_METHOD(int, DestroyAh, (ibv_ah*), (override));
  MOCK_METHOD(int, PostSend, (ibv_qp*, ibv_send_wr*, ibv_send_wr**), (override));
  MOCK_METHOD(int, PostRecv, (ibv_qp*, ibv_recv_wr*, ibv_recv_wr**), (override));
};

}  // namespace tidal::backends::verbs
