// AtDevice: a Transport decorator for the CUDA conformance rigs. It registers the rig's
// regions (which TransportRig::Register registers as host) at a GPU (`cuda:<device>`), and
// passes every other call straight through.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tidal/transport.h"

namespace tidal::testing {

class AtDevice final : public Transport {
 public:
  AtDevice(std::unique_ptr<Transport> inner, int device)
      : inner_(std::move(inner)), device_(device) {}
  std::string_view Name() const override { return inner_->Name(); }
  TransportCaps Capabilities() const override { return inner_->Capabilities(); }
  Status Install(const TransportInstall& install) override { return inner_->Install(install); }
  std::string LocalAddress() const override { return inner_->LocalAddress(); }
  Result<uint64_t> RegisterMemory(uint64_t addr, uint64_t length, Location loc) override {
    return inner_->RegisterMemory(addr, length, loc.is_host() ? Location::Cuda(device_) : loc);
  }
  Status UnregisterMemory(uint64_t addr, uint64_t length) override {
    return inner_->UnregisterMemory(addr, length);
  }
  Result<PeerId> Connect(const SegmentDescriptor& peer) override { return inner_->Connect(peer); }
  void Submit(std::span<const TransportTask> tasks, std::span<Status> accepted) override {
    inner_->Submit(tasks, accepted);
  }
  size_t PollCompletions(std::span<TransportCompletion> out) override {
    return inner_->PollCompletions(out);
  }
  Status Cancel(uint64_t task_id) override { return inner_->Cancel(task_id); }
  Status SendNotify(PeerId peer, std::string_view payload) override {
    return inner_->SendNotify(peer, payload);
  }
  size_t PollNotifies(std::vector<Notification>& out, size_t max) override {
    return inner_->PollNotifies(out, max);
  }

 private:
  std::unique_ptr<Transport> inner_;
  int device_;
};

}  // namespace tidal::testing
