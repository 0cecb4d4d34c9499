// ForwardingTransport: a Transport decorator that passes every call to the transport it
// wraps. Test decorators derive from it and override only what they change (AtDevice the
// registration's location, the copy-path test's transport Submit and TryCopyNow).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tidal/transport.h"

namespace tidal::testing {

class ForwardingTransport : public Transport {
 public:
  explicit ForwardingTransport(std::unique_ptr<Transport> inner) : inner_(std::move(inner)) {}
  std::string_view Name() const override { return inner_->Name(); }
  TransportCaps Capabilities() const override { return inner_->Capabilities(); }
  Status Install(const TransportInstall& install) override { return inner_->Install(install); }
  std::string LocalAddress() const override { return inner_->LocalAddress(); }
  Result<uint64_t> RegisterMemory(uint64_t addr, uint64_t length, Location loc) override {
    return inner_->RegisterMemory(addr, length, loc);
  }
  Status UnregisterMemory(uint64_t addr, uint64_t length) override {
    return inner_->UnregisterMemory(addr, length);
  }
  Result<PeerId> Connect(const SegmentDescriptor& peer) override { return inner_->Connect(peer); }
  void Submit(std::span<const TransportTask> tasks, std::span<Status> accepted) override {
    inner_->Submit(tasks, accepted);
  }
  bool TryCopyNow(const TransportTask& task) override { return inner_->TryCopyNow(task); }
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
};

}  // namespace tidal::testing
