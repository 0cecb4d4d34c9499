#include "tidal/backends/registry.h"

#if TIDAL_HAVE_UCX
#include "tidal/backends/ucx/ucx_fabric.h"
#include "tidal/backends/ucx/ucx_process_fabric.h"
#endif
#if TIDAL_HAVE_VERBS
#include "tidal/backends/verbs/verbs_fabric.h"
#endif

#if TIDAL_HAVE_CUDA
#include "tidal/backends/cuda/cuda_fabric.h"
#include "tidal/backends/cuda/cuda_process_fabric.h"
#endif

namespace tidal::backends {

namespace {
Result<std::unique_ptr<Fabric>> MakeSim(FabricSpec spec) {
  spec.sim.world.nodes = spec.nodes;
  return std::unique_ptr<Fabric>(std::make_unique<sim::SimFabric>(std::move(spec.sim)));
}

#if TIDAL_HAVE_UCX
Result<std::unique_ptr<Fabric>> MakeUcx(FabricSpec spec) {
  ucx::UcxFabricOptions o;
  o.nodes = spec.nodes;
  o.engine = spec.sim.engine;  // the engine options every fabric takes from the spec
  Result<std::unique_ptr<ucx::UcxFabric>> f = ucx::UcxFabric::Make(std::move(o));
  if (!f.ok()) {
    return Status(ErrorCode::UNSUPPORTED, "backend 'ucx': UCX did not start here: " +
                                              f.status().ToString());
  }
  return std::unique_ptr<Fabric>(std::move(*f));
}

// Every node's UcxTransport in its own process (tidal-ucx-host), memory shared at one
// address (ucx_process_fabric.h).
Result<std::unique_ptr<Fabric>> MakeUcxProc(FabricSpec spec) {
  ucx::UcxProcessFabricOptions o;
  o.nodes = spec.nodes;
  o.engine = spec.sim.engine;
  Result<std::unique_ptr<ucx::UcxProcessFabric>> f = ucx::UcxProcessFabric::Make(std::move(o));
  if (!f.ok()) {
    return Status(ErrorCode::UNSUPPORTED, "backend 'ucx_proc': its node processes did not "
                                          "start here: " + f.status().ToString());
  }
  return std::unique_ptr<Fabric>(std::move(*f));
}
#endif

struct Entry {
  const char* name;
  bool built;
  const char* unavailable;
  Result<std::unique_ptr<Fabric>> (*make)(FabricSpec);
  std::string (*probe)() = nullptr;  // why the hardware is absent here ("" when present)
};

// The registry: one line per backend. Real backends join here behind their build option
// as their issues land (UcxFabric, CudaFabric, VerbsFabric); until then they are listed
// as not built, so a suite that asks for them says so instead of passing silently.
const Entry kBackends[] = {
    {"sim", true, "", &MakeSim},
#if TIDAL_HAVE_UCX
    {"ucx", true, "", &MakeUcx},
#else
    {"ucx", false, "UCX not built (TIDAL_UCX=OFF, or libucx-dev was not found)", nullptr},
#endif
#if TIDAL_HAVE_UCX
    {"ucx_proc", true, "", &MakeUcxProc},
#else
    {"ucx_proc", false, "UCX not built (TIDAL_UCX=OFF, or libucx-dev was not found)", nullptr},
#endif
#if TIDAL_HAVE_CUDA
    {"cuda", true, "", &cuda::MakeCudaFabric, &cuda::CudaFabricUnavailable},
#else
    {"cuda", false, "CUDA not built (TIDAL_CUDA=OFF, or nvcc was not found)", nullptr},
#endif
#if TIDAL_HAVE_CUDA
    // Every node's CudaTransport in its own process (tidal-cuda-host), one GPU each.
    {"cuda_proc", true, "", &cuda::MakeCudaProcessFabric, &cuda::CudaFabricUnavailable},
#else
    {"cuda_proc", false, "CUDA not built (TIDAL_CUDA=OFF, or nvcc was not found)", nullptr},
#endif
#if TIDAL_HAVE_VERBS
    {"verbs", true, "", &verbs::MakeVerbsFabricFromSpec, &verbs::VerbsFabricUnavailable},
#else
    {"verbs", false, "ibverbs not built (TIDAL_VERBS=OFF, or libibverbs-dev was not found)", nullptr},
#endif
};
}  // namespace

std::vector<BackendInfo> ListBackends() {
  std::vector<BackendInfo> out;
  for (const Entry& e : kBackends) {
    out.push_back({e.name, e.built, e.built && e.probe != nullptr ? e.probe() : e.unavailable});
  }
  return out;
}

Result<std::unique_ptr<Fabric>> MakeFabric(const std::string& name, FabricSpec spec) {
  for (const Entry& e : kBackends) {
    if (name != e.name) continue;
    if (!e.built || e.make == nullptr) {
      return Status(ErrorCode::UNSUPPORTED, "backend '" + name + "': " + e.unavailable);
    }
    if (e.probe != nullptr) {
      const std::string why = e.probe();
      if (!why.empty()) return Status(ErrorCode::UNSUPPORTED, "backend '" + name + "': " + why);
    }
    return e.make(std::move(spec));
  }
  return Status(ErrorCode::INVALID_PARAMS, "unknown backend '" + name + "'");
}

}  // namespace tidal::backends
