// The fabric registry: every backend tidal can build, listed explicitly, one line each,
// guarded by its build option (never self-registered by static initializers).
//
// Tests and tools ask it for fabrics by name; a backend that is not built, or whose
// hardware is absent, is reported with the reason so suites can skip it out loud.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tidal/fabric.h"
#include "tidal/sim/sim_fabric.h"

namespace tidal::backends {

struct FabricSpec {
  size_t nodes = 2;
  sim::SimFabricOptions sim;  // used by the "sim" fabric (its world.nodes is set from nodes)
};

struct BackendInfo {
  std::string name;
  bool built = false;       // compiled into this binary
  std::string unavailable;  // why it cannot run here (empty: it can)
};

// Every backend tidal knows, in a fixed order, with whether it is built and usable here.
std::vector<BackendInfo> ListBackends();

// A fabric of `spec.nodes` nodes on backend `name`. INVALID_PARAMS for an unknown name,
// UNSUPPORTED (message says why) for a backend that is not built or has no hardware.
Result<std::unique_ptr<Fabric>> MakeFabric(const std::string& name, FabricSpec spec);

}  // namespace tidal::backends
