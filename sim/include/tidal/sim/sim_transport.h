// SimTransport: the simulator's Transport. It moves real bytes (memcpy between the
// nodes' memory, which all lives in this process) after a modelled delay
// (latency + length / bandwidth, serialized per directed link), checks local
// registration and remote windows and keys exactly as docs/architecture.md says (the
// window and key at the target, when the data step runs, never trusting the initiator),
// and applies the World's faults: short reads and writes, unregistered local addresses,
// stale remote keys, accesses outside the window, completion delay / reorder / loss,
// crashed or partitioned peers, registration failures. It also takes every freedom the
// contract leaves a real transport (transport.h, "Allowed"; WorldOptions::allowances)
// under tape draws: tasks land and complete in any order, completions come late,
// notifications reorder and may overtake writes still in flight.
//
// Memory at location cuda:N is host memory tagged as device memory; the capabilities
// claim host<->cuda and cuda<->cuda so the facade's routing is exercised.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

#include "tidal/memory.h"
#include "tidal/transport.h"

namespace tidal::sim {

class World;

class SimTransport final : public Transport {
 public:
  SimTransport(World& world, uint32_t node);
  ~SimTransport() override;

  std::string_view Name() const override { return "sim"; }
  TransportCaps Capabilities() const override;
  Status Install(const TransportInstall& install) override;
  std::string LocalAddress() const override;
  Result<uint64_t> RegisterMemory(uint64_t addr, uint64_t length, Location loc) override;
  Status UnregisterMemory(uint64_t addr, uint64_t length) override;
  Result<PeerId> Connect(const SegmentDescriptor& peer) override;
  void Submit(std::span<const TransportTask> tasks, std::span<Status> accepted) override;
  size_t PollCompletions(std::span<TransportCompletion> out) override;
  Status Cancel(uint64_t task_id) override;
  Status SendNotify(PeerId peer, std::string_view payload) override;
  size_t PollNotifies(std::vector<Notification>& out, size_t max) override;

  uint32_t node() const { return node_; }
  const MemoryRegistry& registry() const { return registry_; }
  size_t outstanding() const { return outstanding_.size(); }
  // Per target node: the link's busy-until (last delivery) time (the explorer's fingerprint).
  const std::vector<uint64_t>& link_free_ns() const { return link_free_ns_; }

  // Called by the World when this node crashes: nothing of it runs again.
  void OnCrash();

 private:
  struct Outstanding {
    TransportTask task;
    bool executed = false;      // the data step ran (bytes moved or refused)
    bool completion_lost = false;
    TransportCompletion result;
  };
  void Execute(uint64_t task_id);
  void Complete(uint64_t task_id);
  void Deliver(const TransportCompletion& c);
  void Signal();
  void DeliverNotify(Notification n);

  World& world_;
  uint32_t node_;
  TransportInstall install_;
  bool installed_ = false;
  bool crashed_ = false;
  MemoryRegistry registry_;
  std::vector<uint32_t> peers_;                    // PeerId -> node
  std::unordered_map<uint64_t, Outstanding> outstanding_;  // looked up, never iterated
  std::vector<uint64_t> link_free_ns_;             // per target node: link busy until
  std::deque<TransportCompletion> completions_;
  std::deque<Notification> notifies_;
};

}  // namespace tidal::sim
