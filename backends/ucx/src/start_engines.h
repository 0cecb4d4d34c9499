// Starting and stopping a fabric's engines in node order (the in-process and the
// process-per-node UCX fabrics share these). Private to backends/ucx.
#pragma once

#include <memory>
#include <vector>

#include "tidal/status.h"
#include "tidal/task.h"
#include "tidal/transfer_engine.h"

namespace tidal::backends::ucx {

// Starts every engine in order; stops at the first failure and returns it.
inline Task<Status> StartEngines(std::vector<std::unique_ptr<TransferEngine>>& engines) {
  for (auto& e : engines) {
    Status s = co_await e->Start();
    if (!s.ok()) co_return s;
  }
  co_return Status();
}

// Stops every engine in order, whatever each answers.
inline Task<void> StopEngines(std::vector<std::unique_ptr<TransferEngine>>& engines) {
  for (auto& e : engines) (void)co_await e->Stop();
}

}  // namespace tidal::backends::ucx
