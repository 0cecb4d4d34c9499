// Messenger: reliable, ordered messages between named endpoints, for control planes
// (store RPC, collectives' rendezvous). Simulator (sim/sim_messenger.h) and TCP
// implementations.
//
// "Reliable" is the contract of a healthy link: messages from A to B arrive once, in
// order. A crashed, hung or partitioned endpoint breaks it and callers detect that by
// their own timeouts (see store/rpc). The simulator can also delay, drop and duplicate
// messages to prove that callers cope.
//
// Thread safety: called on the Env's executor; the receiver runs there too.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "tidal/status.h"

namespace tidal {

class Messenger {
 public:
  using Receiver = std::function<void(std::string_view from, std::string payload)>;
  virtual ~Messenger() = default;

  virtual std::string_view LocalName() const = 0;
  // Queues `payload` for `to`. SEGMENT_NOT_FOUND if no endpoint has that name; a message
  // to an endpoint that is down is accepted and lost.
  virtual Status Send(std::string_view to, std::string payload) = 0;
  // Installs the receiver (replacing any previous one).
  virtual void SetReceiver(Receiver receiver) = 0;
};

}  // namespace tidal
