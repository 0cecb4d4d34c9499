// ContractChecker: a Transport decorator that asserts the transport contract
// (transport.h) on every call it forwards. Tests wrap every transport in one.
//
// It checks what one side can see: task ids unique among outstanding tasks; rejected
// tasks never complete; each accepted task completes exactly once with a known id;
// bytes_transferred <= length; OK means exactly `length` bytes; a short completion is
// TRANSFER_INCOMPLETE with fewer bytes; a refused access (ADDRESS_NOT_REGISTERED,
// REMOTE_ACCESS_DENIED) moved nothing; Cancel of an unknown id is INVALID_PARAMS; remote
// keys are never 0; no completion is reported for a task after Cancel's completion;
// TryCopyNow copies only a READ or WRITE of at least a byte.
// The contract suite checks the bytes themselves with guard bands.
//
// A violation is recorded and, unless abort_on_violation is false, aborts through
// TIDAL_ASSERT (in the simulator that prints the seed and the replay command).
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "tidal/transport.h"

namespace tidal {

class ContractChecker final : public Transport {
 public:
  explicit ContractChecker(std::unique_ptr<Transport> inner, bool abort_on_violation = true);

  std::string_view Name() const override { return inner_->Name(); }
  TransportCaps Capabilities() const override { return inner_->Capabilities(); }
  Status Install(const TransportInstall& install) override;
  std::string LocalAddress() const override { return inner_->LocalAddress(); }
  Result<uint64_t> RegisterMemory(uint64_t addr, uint64_t length, Location loc) override;
  Status UnregisterMemory(uint64_t addr, uint64_t length) override;
  Result<PeerId> Connect(const SegmentDescriptor& peer) override { return inner_->Connect(peer); }
  void Submit(std::span<const TransportTask> tasks, std::span<Status> accepted) override;
  // Forwarded (a wrapped UCX transport keeps its copy path under test); a probe or an
  // empty task reported copied is a violation.
  bool TryCopyNow(const TransportTask& task) override;
  size_t PollCompletions(std::span<TransportCompletion> out) override;
  Status Cancel(uint64_t task_id) override;
  Status SendNotify(PeerId peer, std::string_view payload) override {
    return inner_->SendNotify(peer, payload);
  }
  size_t PollNotifies(std::vector<Notification>& out, size_t max) override {
    return inner_->PollNotifies(out, max);
  }

  Transport& inner() { return *inner_; }
  const std::vector<std::string>& violations() const { return violations_; }
  size_t outstanding() const { return outstanding_.size(); }

 private:
  void Violation(std::string what);
  std::unique_ptr<Transport> inner_;
  bool abort_on_violation_;
  std::unordered_map<uint64_t, TransportTask> outstanding_;  // lookups only
  std::vector<std::string> violations_;
};

}  // namespace tidal
