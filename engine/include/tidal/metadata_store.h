// MetadataStore: a small key-value service for control-plane metadata (segment
// descriptors, process-group bootstrap). In-memory for the simulator and embedded use;
// served over TCP by tidal-master for real deployments.
//
// All calls are coroutines so a networked store never blocks the executor.
// Errors: OBJECT_NOT_FOUND for Get/Delete of a missing key, INVALID_KEY for an empty key,
// RPC_FAIL / RPC_TIMEOUT from networked implementations.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tidal/status.h"
#include "tidal/task.h"

namespace tidal {

using KeyValues = std::vector<std::pair<std::string, std::string>>;

class MetadataStore {
 public:
  virtual ~MetadataStore() = default;
  virtual Task<Status> Put(std::string key, std::string value) = 0;
  virtual Task<Result<std::string>> Get(std::string key) = 0;
  virtual Task<Status> Delete(std::string key) = 0;
  // Every key starting with `prefix`, in key order.
  virtual Task<Result<KeyValues>> List(std::string prefix) = 0;
};

// Shared by every node of one process (or one simulated world). Not thread-safe: in a
// real process, wrap it or use tidal-master.
class InMemoryMetadataStore final : public MetadataStore {
 public:
  Task<Status> Put(std::string key, std::string value) override;
  Task<Result<std::string>> Get(std::string key) override;
  Task<Status> Delete(std::string key) override;
  Task<Result<KeyValues>> List(std::string prefix) override;

  // Synchronous access for tests and tools.
  size_t size() const { return kv_.size(); }

 private:
  std::map<std::string, std::string> kv_;
};

}  // namespace tidal
