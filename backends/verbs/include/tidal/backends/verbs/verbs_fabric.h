// VerbsFabric: N tidal nodes in one process, each a TransferEngine on its own
// VerbsTransport (its own queue pairs, registrations and handshakes on the machine's RDMA
// devices), sharing one RealEnv event loop, one InMemoryMetadataStore and in-process
// messengers. Fabric::Run drives the shared loop, so every node progresses.
//
// VerbsFabricUnavailable says why this machine cannot run it ("" when it can): no RDMA
// device listed by ibv_get_device_list (the registry prints that reason and the suites
// skip), or no active port.
#pragma once

#include <memory>
#include <string>

#include "tidal/backends/verbs/verbs_transport.h"
#include "tidal/backends/registry.h"
#include "tidal/fabric.h"

namespace tidal::backends::verbs {

std::string VerbsFabricUnavailable();

// UNSUPPORTED with the reason when no RDMA device or active port is found.
Result<std::unique_ptr<Fabric>> MakeVerbsFabric(size_t nodes, VerbsOptions options = {},
                                                TransferEngineOptions engine = {});
// The registry's entry: spec.nodes nodes with the engine options of spec.sim.engine.
Result<std::unique_ptr<Fabric>> MakeVerbsFabricFromSpec(FabricSpec spec);

}  // namespace tidal::backends::verbs
