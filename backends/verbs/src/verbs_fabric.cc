#include "tidal/backends/verbs/verbs_fabric.h"

#include <cstring>
#include <map>

#include "tidal/backends/real_env.h"
#include "tidal/metadata_store.h"

namespace tidal::backends::verbs {
namespace {

// Messages between the nodes of one process: delivered on the shared loop, in order.
class LoopbackMessenger final : public Messenger {
 public:
  LoopbackMessenger(Env& env, std::string name, std::map<std::string, LoopbackMessenger*>& all)
      : env_(env), name_(std::move(name)), all_(all) {
    all_[name_] = this;
  }
  ~LoopbackMessenger() override { all_.erase(name_); }
  std::string_view LocalName() const override { return name_; }
  Status Send(std::string_view to, std::string payload) override {
    auto it = all_.find(std::string(to));
    if (it == all_.end()) {
      return Status(ErrorCode::SEGMENT_NOT_FOUND, "no endpoint named '" + std::string(to) + "'");
    }
    env_.Post([target = std::string(to), from = name_, payload = std::move(payload),
               all = &all_]() mutable {
      auto found = all->find(target);
      if (found != all->end() && found->second->receiver_) {
        found->second->receiver_(from, std::move(payload));
      }
    });
    return Status();
  }
  void SetReceiver(Receiver receiver) override { receiver_ = std::move(receiver); }

 private:
  Env& env_;
  std::string name_;
  std::map<std::string, LoopbackMessenger*>& all_;
  Receiver receiver_;
};

class VerbsFabric final : public Fabric {
 public:
  std::string_view Name() const override { return "verbs"; }
  bool simulated() const override { return false; }
  size_t size() const override { return engines_.size(); }
  Env& env(size_t) override { return env_; }
  TransferEngine& engine(size_t node) override { return *engines_[node]; }
  Messenger& messenger(size_t node) override { return *messengers_[node]; }
  MetadataStore& metadata() override { return metadata_; }

  void* Allocate(size_t node, size_t bytes, Location location) override {
    TIDAL_ASSERT(node < size());
    TIDAL_ASSERT_MSG(location.is_host(), "VerbsFabric: the verbs transport moves host memory");
    auto block = std::make_unique<uint8_t[]>(bytes == 0 ? 1 : bytes);
    std::memset(block.get(), 0, bytes == 0 ? 1 : bytes);
    allocations_.push_back(std::move(block));
    return allocations_.back().get();
  }
  void CopyOut(void* host_target, const void* source, size_t bytes) override {
    std::memcpy(host_target, source, bytes);
  }
  void CopyIn(void* target, const void* host_source, size_t bytes) override {
    std::memcpy(target, host_source, bytes);
  }
  Status Crash(size_t) override {
    return Status(ErrorCode::UNSUPPORTED, "the verbs fabric cannot crash a node in-process");
  }

  Status Build(size_t nodes, const VerbsOptions& options, const TransferEngineOptions& engine) {
    for (size_t i = 0; i < nodes; ++i) {
      engines_.push_back(std::make_unique<TransferEngine>(
          env_, std::make_unique<VerbsTransport>(MakeRealVerbsApi(), options), metadata_,
          NodeName(i), engine));
      messengers_.push_back(std::make_unique<LoopbackMessenger>(env_, NodeName(i), directory_));
    }
    for (auto& e : engines_) {
      Status s = RunBlocking(env_, e->Start());
      if (!s.ok()) return s;
    }
    return Status();
  }

  ~VerbsFabric() override {
    engines_.clear();
    messengers_.clear();
  }

 private:
  RealEnv env_{"verbs"};
  InMemoryMetadataStore metadata_;
  std::map<std::string, LoopbackMessenger*> directory_;
  std::vector<std::unique_ptr<TransferEngine>> engines_;
  std::vector<std::unique_ptr<LoopbackMessenger>> messengers_;
  std::vector<std::unique_ptr<uint8_t[]>> allocations_;
};

}  // namespace

std::string VerbsFabricUnavailable() {
  std::unique_ptr<VerbsApi> api = MakeRealVerbsApi();
  return VerbsUnavailableReason(*api);
}

Result<std::unique_ptr<Fabric>> MakeVerbsFabric(size_t nodes, VerbsOptions options,
                                                TransferEngineOptions engine) {
  const std::string why = VerbsFabricUnavailable();
  if (!why.empty()) return Status(ErrorCode::UNSUPPORTED, why);
  auto fabric = std::make_unique<VerbsFabric>();
  Status s = fabric->Build(nodes, options, engine);
  if (!s.ok()) return s;
  return std::unique_ptr<Fabric>(std::move(fabric));
}

}  // namespace tidal::backends::verbs

namespace tidal::backends::verbs {

Result<std::unique_ptr<Fabric>> MakeVerbsFabricFromSpec(FabricSpec spec) {
  return MakeVerbsFabric(spec.nodes, VerbsOptions{}, spec.sim.engine);
}

}  // namespace tidal::backends::verbs
