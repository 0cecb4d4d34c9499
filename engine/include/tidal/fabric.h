// Fabric: the one place where N connected nodes are wired on one backend, for tests,
// tools and benchmarks. SimFabric (sim/), and later UcxFabric, CudaFabric, VerbsFabric.
//
// Every node has an Env, a started TransferEngine (segment "node<i>") and a Messenger
// endpoint (named "node<i>"); all share one MetadataStore. Tests written against Fabric
// run unchanged on every backend that is built.
#pragma once

#include <cstddef>
#include <string>

#include "tidal/env.h"
#include "tidal/messenger.h"
#include "tidal/metadata_store.h"
#include "tidal/task.h"
#include "tidal/transfer_engine.h"

namespace tidal {

class Fabric {
 public:
  virtual ~Fabric() = default;
  virtual std::string_view Name() const = 0;
  virtual bool simulated() const = 0;
  virtual size_t size() const = 0;
  virtual Env& env(size_t node) = 0;
  virtual TransferEngine& engine(size_t node) = 0;
  virtual Messenger& messenger(size_t node) = 0;
  virtual MetadataStore& metadata() = 0;

  // Allocates `bytes` of memory at `location` on `node` that stays valid for the
  // fabric's life (host memory, simulated device memory, or real device memory), zeroed.
  virtual void* Allocate(size_t node, size_t bytes, Location location) = 0;
  // Copies between fabric memory and host memory (a cudaMemcpy for real device memory).
  virtual void CopyOut(void* host_target, const void* fabric_source, size_t bytes) = 0;
  virtual void CopyIn(void* fabric_target, const void* host_source, size_t bytes) = 0;

  // Crashes a node (fail-stop) if the backend can; UNSUPPORTED otherwise.
  virtual Status Crash(size_t node) = 0;

  // Drives the fabric until `task` finishes (RunBlocking on node 0's Env, which in a
  // simulated world drives every node).
  template <typename T>
  T Run(Task<T> task) {
    return RunBlocking(env(0), std::move(task));
  }

  static std::string NodeName(size_t node) { return "node" + std::to_string(node); }
};

}  // namespace tidal
