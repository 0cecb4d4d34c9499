// InProcessTransport: a Transport between nodes of one process that share one executor
// (one RealEnv), for tests that put real control-plane sockets (TcpMessenger,
// tidal-master) around a data plane that needs no hardware. Bytes move by memcpy when a
// task is submitted; registration, the remote window and its key are checked at the
// target exactly as transport.h says, so nothing moves on a bad range.
//
// Thread safety: every node's calls come on the one shared executor; nothing is guarded.
#pragma once

#include <deque>
#include <map>
#include <string>
#include <vector>

#include "tidal/memory.h"
#include "tidal/transport.h"

namespace tidal::testing {

class InProcessTransport;

// The nodes of one process, by address ("inproc:<segment>").
class InProcessHub {
 public:
  InProcessTransport* Find(const std::string& address) const {
    auto it = nodes_.find(address);
    return it == nodes_.end() ? nullptr : it->second;
  }

 private:
  friend class InProcessTransport;
  std::map<std::string, InProcessTransport*> nodes_;
};

class InProcessTransport final : public Transport {
 public:
  explicit InProcessTransport(InProcessHub& hub) : hub_(hub) {}
  ~InProcessTransport() override;

  std::string_view Name() const override { return "inproc"; }
  TransportCaps Capabilities() const override { return {true, false, false, true}; }
  Status Install(const TransportInstall& install) override;
  std::string LocalAddress() const override { return "inproc:" + install_.segment_name; }
  Result<uint64_t> RegisterMemory(uint64_t addr, uint64_t length, Location loc) override;
  Status UnregisterMemory(uint64_t addr, uint64_t length) override;
  Result<PeerId> Connect(const SegmentDescriptor& peer) override;
  void Submit(std::span<const TransportTask> tasks, std::span<Status> accepted) override;
  size_t PollCompletions(std::span<TransportCompletion> out) override;
  Status Cancel(uint64_t task_id) override;
  Status SendNotify(PeerId peer, std::string_view payload) override;
  size_t PollNotifies(std::vector<Notification>& out, size_t max) override;

 private:
  void Signal();

  InProcessHub& hub_;
  TransportInstall install_;
  MemoryRegistry registry_;
  std::vector<std::string> peers_;  // PeerId -> address
  std::deque<TransportCompletion> completions_;
  std::deque<Notification> notifies_;
};

}  // namespace tidal::testing
