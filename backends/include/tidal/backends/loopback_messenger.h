// LoopbackMessenger: the Messenger of several nodes in one process (the real fabrics'
// in-process control plane, e.g. UcxFabric). Endpoints join a shared LoopbackHub by name;
// Send hands the payload to the receiver's Env with Post, so delivery is reliable and
// ordered per pair (one FIFO executor queue) and never runs inside Send.
//
// An endpoint that is taken down (SetDown) neither sends nor receives: its messages are
// accepted and lost, as the Messenger contract says for an endpoint that is down.
//
// Thread safety: like every Messenger, called on the Env's executor; the hub is shared by
// the endpoints of one process and guarded for the delivery path.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "tidal/env.h"
#include "tidal/messenger.h"
#include "tidal/thread_annotations.h"

namespace tidal::backends {

class LoopbackMessenger;

class LoopbackHub {
 public:
  LoopbackHub() = default;

 private:
  friend class LoopbackMessenger;
  std::mutex mu_;
  std::map<std::string, LoopbackMessenger*, std::less<>> endpoints_ TIDAL_GUARDED_BY(mu_);
};

class LoopbackMessenger final : public Messenger {
 public:
  // Joins `hub` as `name` (which must be unique in the hub); deliveries run on `env`.
  LoopbackMessenger(std::shared_ptr<LoopbackHub> hub, Env& env, std::string name);
  ~LoopbackMessenger() override;

  std::string_view LocalName() const override { return name_; }
  // SEGMENT_NOT_FOUND if no endpoint of the hub has that name.
  Status Send(std::string_view to, std::string payload) override;
  void SetReceiver(Receiver receiver) override { receiver_ = std::move(receiver); }

  // Takes the endpoint down (fail-stop) or back up.
  void SetDown(bool down) { down_ = down; }

 private:
  void Deliver(const std::string& from, std::string payload);

  std::shared_ptr<LoopbackHub> hub_;
  Env& env_;
  std::string name_;
  Receiver receiver_;
  bool down_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace tidal::backends
