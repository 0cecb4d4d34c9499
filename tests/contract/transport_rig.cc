#include "transport_rig.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>

#include "tidal/backends/registry.h"
#include "tidal/fabric.h"
#include "tidal/sim/fault_plan.h"
#include "tidal/sim/sim_transport.h"
#include "tidal/sim/world.h"

#if TIDAL_HAVE_UCX
#include "tidal/backends/ucx/ucx_process_fabric.h"
#include "tidal/backends/ucx/ucx_transport.h"
#endif
#if TIDAL_HAVE_VERBS
#include "tidal/backends/verbs/verbs_api.h"
#include "tidal/backends/verbs/verbs_transport.h"
#endif

namespace tidal::testing {

RealRig::~RealRig() { ReleaseTransports(); }

void RealRig::ReleaseTransports() {
  transports_.clear();  // progress threads and poll timers stop before the env goes
  for (; installed_ > 0; --installed_) env_.RemovePoster();
}

void RealRig::Add(const RigOptions& options, std::unique_ptr<Transport> t) {
  const size_t i = transports_.size();
  if (options.wrap) t = options.wrap(i, std::move(t));
  TransportInstall install;
  install.env = &env_;
  install.segment_name = Fabric::NodeName(i);
  // Wakes the loop so the suite's done() looks again (it polls every transport).
  install.on_ready = [this] { env_.Post([] {}); };
  env_.AddPoster();
  ++installed_;
  Status s = t->Install(install);
  if (!s.ok()) {
    status_ = s;
    return;
  }
  SegmentDescriptor d;
  d.name = Fabric::NodeName(i);
  d.transport = std::string(t->Name());
  d.address = t->LocalAddress();
  d.incarnation = 1;
  descriptors_.push_back(std::move(d));
  transports_.push_back(std::move(t));
}

uint8_t* RealRig::Allocate(size_t node, size_t bytes) {
  TIDAL_ASSERT(node < size());
  memory_.push_back(std::make_unique<uint8_t[]>(bytes));
  return memory_.back().get();
}

bool RealRig::Drive(const std::function<bool()>& done) {
  const uint64_t give_up = env_.NowNs() + 30'000'000'000ULL;
  for (;;) {
    bool tick = false;
    const TimerId id = env_.ScheduleAfter(1'000'000, [&tick] { tick = true; });
    bool finished = false;
    env_.RunUntil([&] {
      finished = done();
      return finished || tick;
    });
    env_.CancelTimer(id);
    if (finished) return true;
    if (env_.NowNs() > give_up) return false;
  }
}

Result<RigRegion> TransportRig::Register(size_t node, size_t size) {
  TIDAL_ASSERT(node < size_t{this->size()} && size > 0);
  RigRegion r;
  r.size = size;
  r.base = Allocate(node, size + 2 * RigRegion::kGuardBytes);
  r.data = r.base + RigRegion::kGuardBytes;
  std::memset(r.base, RigRegion::kGuard, size + 2 * RigRegion::kGuardBytes);
  std::memset(r.data, 0, size);
  Result<uint64_t> key = transport(node).RegisterMemory(r.addr(), size, Location::Host());
  if (!key.ok()) return key.status();
  r.rkey = *key;
  descriptors_[node].regions.push_back(RegionInfo{r.addr(), size, Location::Host(), *key});
  ++descriptors_[node].version;
  return r;
}

Status TransportRig::Unregister(size_t node, const RigRegion& region) {
  Status s = transport(node).UnregisterMemory(region.addr(), region.size);
  if (!s.ok()) return s;
  std::erase_if(descriptors_[node].regions,
                [&](const RegionInfo& r) { return r.addr == region.addr(); });
  ++descriptors_[node].version;
  return s;
}

namespace {

// The simulator's rig: one World, one SimTransport per node, no engines. Test code calls
// the transports from outside the world's events, which on one thread is the same as
// calling them on the executor.
class SimRig final : public TransportRig {
 public:
  SimRig(RigOptions options, sim::FaultPlan plan) {
    sim::WorldOptions w;
    w.seed = options.seed;
    w.nodes = options.nodes;
    w.faults = std::move(plan);
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    w.replay_command = info == nullptr
                           ? std::string("(not in a test)")
                           : std::string("ctest --output-on-failure -R '") +
                                 info->test_suite_name() + "." + info->name() + "'";
    world_ = std::make_unique<sim::World>(std::move(w));
    for (uint32_t i = 0; i < options.nodes; ++i) {
      std::unique_ptr<Transport> t = std::make_unique<sim::SimTransport>(*world_, i);
      if (options.wrap) t = options.wrap(i, std::move(t));
      TransportInstall install;
      install.env = &world_->env(i);
      install.segment_name = Fabric::NodeName(i);
      install.on_ready = [] {};  // the suite polls after every step of the world
      Status s = t->Install(install);
      TIDAL_ASSERT_MSG(s.ok(), "SimRig: install failed");
      SegmentDescriptor d;
      d.name = Fabric::NodeName(i);
      d.transport = std::string(t->Name());
      d.address = t->LocalAddress();
      d.incarnation = 1;
      descriptors_.push_back(std::move(d));
      transports_.push_back(std::move(t));
    }
  }
  ~SimRig() override {
    world_->Shutdown();
    transports_.clear();  // before the world they point at
  }

  std::string_view backend() const override { return "sim"; }
  size_t size() const override { return transports_.size(); }
  Transport& transport(size_t node) override { return *transports_[node]; }
  bool RunUntil(const std::function<bool()>& done) override { return world_->RunUntil(done); }
  void Settle() override { world_->RunUntilIdle(); }
  Status Crash(size_t node) override {
    world_->Crash(static_cast<uint32_t>(node));
    return Status();
  }
  std::string Banner() const override { return world_->FailureBanner(); }

 protected:
  uint8_t* Allocate(size_t node, size_t bytes) override {
    TIDAL_ASSERT(node < size());
    memory_.push_back(std::make_unique<uint8_t[]>(bytes));
    return memory_.back().get();
  }

 private:
  std::unique_ptr<sim::World> world_;
  std::vector<std::unique_ptr<uint8_t[]>> memory_;
  std::vector<std::unique_ptr<Transport>> transports_;
};

#if TIDAL_HAVE_UCX
// The UCX rig: one UcxTransport per node (each its own UCP context, worker and progress
// thread). The bytes cross real UCX over whatever UCX_TLS selects. Crash is the
// transport's fail-stop (worker destroyed, its connections closed by force).
class UcxRig final : public RealRig {
 public:
  explicit UcxRig(RigOptions options) : RealRig("ucx-rig") {
    backends::ucx::UcxTransportOptions o;
    // A crashed peer on shared memory has no connection to break, so only the probe's own
    // deadline finds it: keep that short for the suite.
    o.probe_timeout_ns = 200'000'000;
    for (size_t i = 0; i < options.nodes && status_.ok(); ++i) {
      auto ucx = std::make_unique<backends::ucx::UcxTransport>(o);
      raw_.push_back(ucx.get());
      Add(options, std::move(ucx));
    }
  }

  std::string_view backend() const override { return "ucx"; }
  void Settle() override {
    Drive([&] {
      uint64_t sent = 0, received = 0;
      for (backends::ucx::UcxTransport* t : raw_) {
        const backends::ucx::UcxTransportStats s = t->stats();
        if (s.outstanding != 0 || s.target_in_flight != 0) return false;
        sent += s.notifies_sent;
        received += s.notifies_received;
      }
      return sent == received;
    });
  }
  Status Crash(size_t node) override {
    raw_[node]->Crash();
    return Status();
  }
  std::string Banner() const override {
    const char* tls = std::getenv("UCX_TLS");
    return std::string("ucx rig, UCX_TLS=") + (tls == nullptr ? "(unset)" : tls) +
           (one_sided_ ? ", one-sided" : "") + (transport_memory_ ? ", transport memory" : "");
  }

 protected:
  // With TIDAL_UCX_TRANSPORT_MEMORY=1 (the `ucx-1s` instances) regions live in memory the
  // node's transport allocated through UCX, which one-sided peers reach directly.
  uint8_t* Allocate(size_t node, size_t bytes) override {
    if (!transport_memory_) return RealRig::Allocate(node, bytes);
    Result<void*> p = raw_[node]->AllocateHostMemory(bytes);
    TIDAL_ASSERT(p.ok());
    return static_cast<uint8_t*>(*p);
  }

 private:
  std::vector<backends::ucx::UcxTransport*> raw_;
  const bool one_sided_ = backends::ucx::UcxTransportOptions::OneSidedFromEnvironment();
  const bool transport_memory_ =
      backends::ucx::UcxTransportOptions::TransportMemoryFromEnvironment();
};

// The ucx_proc rig: each node's UcxTransport in its own process (tidal-ucx-host), driven
// through a UcxProxyTransport; the rig's memory is a SharedArena mapped at one address in
// every process, so the suite reads and writes what the children move. Crash SIGKILLs the
// node's process.
class UcxProcRig final : public RealRig {
 public:
  explicit UcxProcRig(RigOptions options) : RealRig("ucx-proc-rig") {
    Result<std::unique_ptr<backends::ucx::SharedArena>> arena =
        backends::ucx::SharedArena::Make(64 << 20);
    if (!arena.ok()) {
      status_ = arena.status();
      return;
    }
    arena_ = std::move(*arena);
    backends::ucx::UcxProcessOptions o;
    o.transport.probe_timeout_ns = 200'000'000;  // as the ucx rig: shared memory needs it
    for (size_t i = 0; i < options.nodes && status_.ok(); ++i) {
      auto proxy = std::make_unique<backends::ucx::UcxProxyTransport>(o, *arena_, i);
      if (Status s = proxy->Start(); !s.ok()) {
        status_ = s;
        return;
      }
      raw_.push_back(proxy.get());
      Add(options, std::move(proxy));
    }
  }
  ~UcxProcRig() override { ReleaseTransports(); }  // the children go before the arena

  std::string_view backend() const override { return "ucx_proc"; }
  void Settle() override {
    Drive([&] {
      uint64_t sent = 0, received = 0;
      for (backends::ucx::UcxProxyTransport* t : raw_) {
        // A stats answer comes after every completion its child had ready.
        Result<backends::ucx::UcxTransportStats> s = t->Stats();
        if (!s.ok()) continue;  // a killed node
        if (s->outstanding != 0 || s->target_in_flight != 0) return false;
        sent += s->notifies_sent;
        received += s->notifies_received;
      }
      return sent == received;
    });
  }
  Status Crash(size_t node) override {
    raw_[node]->Kill();
    return Status();
  }
  std::string Banner() const override {
    const char* tls = std::getenv("UCX_TLS");
    return std::string("ucx_proc rig (a process per node), UCX_TLS=") +
           (tls == nullptr ? "(unset)" : tls);
  }

 protected:
  uint8_t* Allocate(size_t node, size_t bytes) override {
    TIDAL_ASSERT(node < size());
    auto* p = static_cast<uint8_t*>(arena_->Allocate(bytes));
    TIDAL_ASSERT_MSG(p != nullptr, "ucx_proc rig: the shared arena is exhausted");
    return p;
  }

 private:
  std::unique_ptr<backends::ucx::SharedArena> arena_;
  std::vector<backends::ucx::UcxProxyTransport*> raw_;
};
#endif

#if TIDAL_HAVE_VERBS
// The verbs rig: one VerbsTransport per node over the real libibverbs (RC queue pairs on
// the host's RDMA devices; loopback between nodes of one host). Without a device the
// registry reports the backend unavailable and the rig is never made. The transport has
// no fail-stop of its own, so Crash is UNSUPPORTED, and Settle drives the loop for a
// quiet period (the transport exposes no in-flight counters).
class VerbsRig final : public RealRig {
 public:
  explicit VerbsRig(RigOptions options) : RealRig("verbs-rig") {
    for (size_t i = 0; i < options.nodes && status_.ok(); ++i) {
      Add(options, std::make_unique<backends::verbs::VerbsTransport>(backends::verbs::MakeRealVerbsApi()));
    }
  }

  std::string_view backend() const override { return "verbs"; }
  void Settle() override {
    const uint64_t until = env_.NowNs() + 100'000'000;  // 100 ms without new work
    Drive([&] { return env_.NowNs() >= until; });
  }
  Status Crash(size_t) override {
    return Status(ErrorCode::UNSUPPORTED, "the verbs rig cannot crash one node in process");
  }
  std::string Banner() const override { return "verbs rig (libibverbs)"; }
};
#endif

}  // namespace

std::vector<std::string> RigBackendNames() {
  std::vector<std::string> names;
  for (const auto& b : backends::ListBackends()) names.push_back(b.name);
  return names;
}

Result<std::unique_ptr<TransportRig>> MakeTransportRig(const std::string& backend,
                                                       RigOptions options) {
  for (const backends::BackendInfo& b : backends::ListBackends()) {
    if (b.name != backend) continue;
    if (backend == "sim") {
      Result<sim::FaultPlan> plan = sim::FaultPlan::Parse(options.faults);
      if (!plan.ok()) return plan.status();
      return std::unique_ptr<TransportRig>(std::make_unique<SimRig>(std::move(options), *plan));
    }
    if (!b.built || !b.unavailable.empty()) {
      return Status(ErrorCode::UNSUPPORTED, "backend '" + backend + "': " + b.unavailable);
    }
#if TIDAL_HAVE_UCX
    if (backend == "ucx") {
      if (!options.faults.empty()) {
        return Status(ErrorCode::UNSUPPORTED,
                      "backend 'ucx' cannot inject faults: this clause needs the simulator");
      }
      auto rig = std::make_unique<UcxRig>(std::move(options));
      if (!rig->status().ok()) {
        return Status(ErrorCode::UNSUPPORTED,
                      "backend 'ucx': UCX did not start here: " + rig->status().ToString());
      }
      return std::unique_ptr<TransportRig>(std::move(rig));
    }
    if (backend == "ucx_proc") {
      if (!options.faults.empty()) {
        return Status(ErrorCode::UNSUPPORTED,
                      "backend 'ucx_proc' cannot inject faults: this clause needs the simulator");
      }
      auto rig = std::make_unique<UcxProcRig>(std::move(options));
      if (!rig->status().ok()) {
        return Status(ErrorCode::UNSUPPORTED, "backend 'ucx_proc': its node processes did not "
                                              "start here: " + rig->status().ToString());
      }
      return std::unique_ptr<TransportRig>(std::move(rig));
    }
#endif
#if TIDAL_HAVE_VERBS
    if (backend == "verbs") {
      if (!options.faults.empty()) {
        return Status(ErrorCode::UNSUPPORTED,
                      "backend 'verbs' cannot inject faults: this clause needs the simulator");
      }
      auto rig = std::make_unique<VerbsRig>(std::move(options));
      if (!rig->status().ok()) {
        return Status(ErrorCode::UNSUPPORTED,
                      "backend 'verbs': the transport did not start: " + rig->status().ToString());
      }
      return std::unique_ptr<TransportRig>(std::move(rig));
    }
#endif
    // A built backend without a raw-transport rig here: say so rather than pass.
    return Status(ErrorCode::UNSUPPORTED,
                  "backend '" + backend + "' has no transport rig in the conformance suite");
  }
  return Status(ErrorCode::INVALID_PARAMS, "unknown backend '" + backend + "'");
}

}  // namespace tidal::testing
