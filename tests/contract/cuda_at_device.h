// AtDevice: a Transport decorator for the CUDA conformance rigs. It registers the rig's
// regions (which TransportRig::Register registers as host) at a GPU (`cuda:<device>`), and
// passes every other call straight through.
#pragma once

#include <memory>

#include "../common/forwarding_transport.h"

namespace tidal::testing {

class AtDevice final : public ForwardingTransport {
 public:
  AtDevice(std::unique_ptr<Transport> inner, int device)
      : ForwardingTransport(std::move(inner)), device_(device) {}
  Result<uint64_t> RegisterMemory(uint64_t addr, uint64_t length, Location loc) override {
    return ForwardingTransport::RegisterMemory(addr, length,
                                               loc.is_host() ? Location::Cuda(device_) : loc);
  }

 private:
  int device_;
};

}  // namespace tidal::testing
