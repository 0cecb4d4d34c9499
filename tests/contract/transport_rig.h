// TransportRig: N raw transports of one backend, installed and connectable, with no
// TransferEngine above them, for the conformance suite (transport_conformance_test.cc).
//
// The engine facade checks registrations and windows itself, so a suite that goes through
// it cannot tell whether the transport does. A rig hands out the bare transports: the
// suite submits tasks straight to them, with bad keys and out-of-window ranges, polls
// their completions and looks at the memory on both sides.
//
// MakeTransportRig takes its backend names from the fabric registry: "sim" builds a World
// of SimTransports; a backend the registry lists as not built or without hardware is
// UNSUPPORTED with the registry's reason, so the suite skips it out loud. A real backend
// joins by adding its rig here when its fabric lands.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tidal/backends/real_env.h"
#include "tidal/env.h"
#include "tidal/segment.h"
#include "tidal/status.h"
#include "tidal/transport.h"

namespace tidal::testing {

struct RigOptions {
  size_t nodes = 2;
  uint64_t seed = 1;
  // A simulator fault script (sim/include/tidal/sim/fault_plan.h). A backend that cannot
  // inject faults refuses a rig with one (UNSUPPORTED), and the clause needing it skips.
  std::string faults;
  // Wraps each node's transport before it is installed (the planted-bug decorator).
  std::function<std::unique_ptr<Transport>(size_t node, std::unique_ptr<Transport>)> wrap;
};

// A registered region with unregistered guard bands on both sides, in a node's memory.
struct RigRegion {
  static constexpr uint8_t kGuard = 0xEE;
  static constexpr size_t kGuardBytes = 256;
  uint8_t* base = nullptr;  // the front guard band
  uint8_t* data = nullptr;  // the registered bytes
  size_t size = 0;
  uint64_t rkey = 0;
  uint64_t addr() const { return reinterpret_cast<uint64_t>(data); }
  // The whole allocation, guards included, as it is now.
  std::vector<uint8_t> Snapshot() const { return {base, data + size + kGuardBytes}; }
  bool Unchanged(const std::vector<uint8_t>& before) const {
    return std::equal(before.begin(), before.end(), base);
  }
  void Fill(uint8_t seed) {
    for (size_t i = 0; i < size; ++i) data[i] = static_cast<uint8_t>(seed + i * 131 + (i >> 8));
  }
};

class TransportRig {
 public:
  virtual ~TransportRig() = default;

  virtual std::string_view backend() const = 0;
  virtual size_t size() const = 0;
  // The installed transport of `node` (the decorated one when options.wrap is set).
  virtual Transport& transport(size_t node) = 0;
  // Drives every node until done() holds. False if nothing left could make it hold.
  virtual bool RunUntil(const std::function<bool()>& done) = 0;
  // Drives until nothing is in flight anywhere: every completion and notification that
  // will ever come has come. A duplicate completion would be visible after this.
  virtual void Settle() = 0;
  // Crashes a node (fail-stop). UNSUPPORTED where the backend cannot.
  virtual Status Crash(size_t node) = 0;
  // Printed with a violation: seed, digest and the replay command for the simulator.
  virtual std::string Banner() const = 0;

  // Allocates `size` bytes with guard bands on `node`, registers them with its transport
  // and exports them in its descriptor. The data starts zeroed.
  Result<RigRegion> Register(size_t node, size_t size);
  // Unregisters a region and removes it from the node's descriptor.
  Status Unregister(size_t node, const RigRegion& region);
  // The descriptor peers connect with: segment name, address and exported regions.
  const SegmentDescriptor& Descriptor(size_t node) const { return descriptors_[node]; }
  // transport(from).Connect(Descriptor(to)).
  Result<PeerId> Connect(size_t from, size_t to) {
    return transport(from).Connect(descriptors_[to]);
  }

 protected:
  virtual uint8_t* Allocate(size_t node, size_t bytes) = 0;
  std::vector<SegmentDescriptor> descriptors_;
};

// A rig of real transports: one per node, all posting to one RealEnv whose loop the suite
// drives (the UCX, verbs and CUDA rigs). Subclasses make the transports (Add), and say how
// to settle and crash; Allocate gives host memory unless a subclass knows better.
class RealRig : public TransportRig {
 public:
  ~RealRig() override;
  const Status& status() const { return status_; }
  size_t size() const override { return transports_.size(); }
  Transport& transport(size_t node) override { return *transports_[node]; }
  bool RunUntil(const std::function<bool()>& done) override { return Drive(done); }

 protected:
  explicit RealRig(std::string env_name) : env_(std::move(env_name)) {}
  // Installs `t` (decorated by options.wrap) as the next node; a failure lands in status().
  void Add(const RigOptions& options, std::unique_ptr<Transport> t);
  // Destroys the transports (they stop touching memory) before a subclass frees it.
  void ReleaseTransports();
  uint8_t* Allocate(size_t node, size_t bytes) override;
  // Drives the loop until done() holds, looking again every millisecond (some of what
  // done() reads changes on progress threads without a completion), for at most 30 s of
  // wall time, so a transport that never completes fails the check instead of hanging.
  bool Drive(const std::function<bool()>& done);

  backends::RealEnv env_;
  Status status_;

 private:
  size_t installed_ = 0;
  std::vector<std::unique_ptr<uint8_t[]>> memory_;
  std::vector<std::unique_ptr<Transport>> transports_;
};

// Every backend the registry knows, in its order.
std::vector<std::string> RigBackendNames();
// A rig of options.nodes installed transports of `backend`; UNSUPPORTED with the reason
// when that backend cannot run here (or cannot inject options.faults).
Result<std::unique_ptr<TransportRig>> MakeTransportRig(const std::string& backend,
                                                       RigOptions options);

}  // namespace tidal::testing
