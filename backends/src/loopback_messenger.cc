#include "tidal/backends/loopback_messenger.h"

#include "tidal/assert.h"

namespace tidal::backends {

LoopbackMessenger::LoopbackMessenger(std::shared_ptr<LoopbackHub> hub, Env& env,
                                     std::string name)
    : hub_(std::move(hub)), env_(env), name_(std::move(name)) {
  std::lock_guard<std::mutex> lock(hub_->mu_);
  const bool added = hub_->endpoints_.emplace(name_, this).second;
  TIDAL_ASSERT_MSG(added, "LoopbackMessenger: endpoint name already in the hub");
}

LoopbackMessenger::~LoopbackMessenger() {
  *alive_ = false;
  std::lock_guard<std::mutex> lock(hub_->mu_);
  hub_->endpoints_.erase(name_);
}

Status LoopbackMessenger::Send(std::string_view to, std::string payload) {
  LoopbackMessenger* target = nullptr;
  {
    std::lock_guard<std::mutex> lock(hub_->mu_);
    auto it = hub_->endpoints_.find(to);
    if (it == hub_->endpoints_.end()) {
      return Status(ErrorCode::SEGMENT_NOT_FOUND, "no endpoint named '" + std::string(to) + "'");
    }
    target = it->second;
  }
  if (down_) return Status();  // a down endpoint's messages are lost
  target->env_.Post([target, alive = target->alive_, from = name_,
                     payload = std::move(payload)]() mutable {
    if (*alive) target->Deliver(from, std::move(payload));
  });
  return Status();
}

void LoopbackMessenger::Deliver(const std::string& from, std::string payload) {
  if (down_ || !receiver_) return;
  receiver_(from, std::move(payload));
}

}  // namespace tidal::backends
