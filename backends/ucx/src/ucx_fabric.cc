#include "tidal/backends/ucx/ucx_fabric.h"

#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <cstring>

#include "tidal/contract_checker.h"
#include "tidal/recording_transport.h"

#include "start_engines.h"

namespace tidal::backends::ucx {

Result<std::unique_ptr<UcxFabric>> UcxFabric::Make(UcxFabricOptions options) {
  std::unique_ptr<UcxFabric> f(new UcxFabric(std::move(options)));
  Status s = f->Start();
  if (!s.ok()) return s;
  return f;
}

Status UcxFabric::Start() {
  std::string record = options_.record_path;
  if (const char* env = std::getenv("TIDAL_RECORD"); record.empty() && env != nullptr) record = env;
  std::shared_ptr<TraceSink> sink;
  if (!record.empty()) {
    Result<std::shared_ptr<TraceSink>> opened = TraceSink::Open(record);
    if (!opened.ok()) return opened.status();
    sink = *opened;
  }
  env_.SetSpinNs(options_.env_spin_ns);
  for (size_t i = 0; i < options_.nodes; ++i) {
    auto ucx = std::make_unique<UcxTransport>(options_.transport);
    transports_.push_back(ucx.get());
    std::unique_ptr<Transport> transport = std::move(ucx);
    if (sink != nullptr) {
      transport = std::make_unique<RecordingTransport>(std::move(transport), sink,
                                                       static_cast<uint32_t>(i));
    }
    if (options_.contract_checker) {
      transport = std::make_unique<ContractChecker>(std::move(transport), true);
    }
    engines_.push_back(std::make_unique<TransferEngine>(env_, std::move(transport), metadata_,
                                                        NodeName(i), options_.engine));
    messengers_.push_back(std::make_unique<LoopbackMessenger>(hub_, env_, NodeName(i)));
    // Each progress thread posts completions to the shared loop: while one runs, the loop
    // waits for its posts instead of reporting that nothing can happen.
    env_.AddPoster();
    ++posters_;
  }
  return RunBlocking(env_, StartEngines(engines_));
}

UcxFabric::~UcxFabric() {
  if (!engines_.empty()) RunBlocking(env_, StopEngines(engines_));
  // Coroutines left suspended may point at engines and messengers: destroy them first.
  env_.DestroyRoots();
  engines_.clear();  // stops every transport's progress thread and closes its worker
  messengers_.clear();
  for (; posters_ > 0; --posters_) env_.RemovePoster();
}

void* UcxFabric::Allocate(size_t node, size_t bytes, Location location) {
  TIDAL_ASSERT(node < size());
  // Host memory whatever the location: registering it as device memory is refused by the
  // engine (UNSUPPORTED), since this transport moves host memory only.
  (void)location;
  if (options_.transport_memory) {
    // Zeroed by the transport; it lives as long as the node's transport.
    Result<void*> p = transports_[node]->AllocateHostMemory(bytes == 0 ? 1 : bytes);
    if (!p.ok()) {
      std::fprintf(stderr, "UcxFabric::Allocate: node %zu, %zu bytes of transport memory: %s\n",
                   node, bytes, p.status().ToString().c_str());
      std::abort();
    }
    return *p;
  }
  auto block = std::make_unique<uint8_t[]>(bytes == 0 ? 1 : bytes);
  std::memset(block.get(), 0, bytes == 0 ? 1 : bytes);
  void* p = block.get();
  allocations_.push_back(std::move(block));
  return p;
}

void UcxFabric::CopyOut(void* host_target, const void* fabric_source, size_t bytes) {
  std::memcpy(host_target, fabric_source, bytes);
}

void UcxFabric::CopyIn(void* fabric_target, const void* host_source, size_t bytes) {
  std::memcpy(fabric_target, host_source, bytes);
}

Status UcxFabric::Crash(size_t node) {
  if (node >= size()) return Status(ErrorCode::INVALID_PARAMS, "no such node");
  return Status(ErrorCode::UNSUPPORTED,
                "the ucx fabric cannot crash one node: its nodes share one event loop");
}

}  // namespace tidal::backends::ucx
