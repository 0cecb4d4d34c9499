// MessengerMux: several users of one Messenger endpoint. Each channel is a Messenger of
// its own (same endpoint name) whose messages carry a one-byte channel tag, so a store
// client and a process group can share a node's endpoint. Channels on both ends must use
// the same number.
//
// Ownership: the mux installs itself as the underlying messenger's receiver; the
// underlying messenger must outlive the mux, and the mux its channels.
// Thread safety: as the underlying Messenger (its executor only).
#pragma once

#include <array>
#include <cstdint>
#include <memory>

#include "tidal/messenger.h"

namespace tidal {

class MessengerMux {
 public:
  explicit MessengerMux(Messenger& inner);
  ~MessengerMux();
  MessengerMux(const MessengerMux&) = delete;
  MessengerMux& operator=(const MessengerMux&) = delete;

  // The channel's Messenger (created on first use; the same object afterwards).
  Messenger& Channel(uint8_t channel);

  // Messages that arrived with a channel nobody opened, or with no channel byte at all.
  uint64_t dropped() const { return dropped_; }

 private:
  class Port;
  Messenger& inner_;
  std::array<std::unique_ptr<Port>, 256> ports_;
  uint64_t dropped_ = 0;
};

// A Messenger that sends on one channel and receives on another of the same endpoint.
// Request/answer protocols (the store's RPC, tidal-master's metadata) put requests and
// answers on different channels, so a server and a client can share one endpoint: each
// side sends on its peer's channel and receives on its own.
class DuplexMessenger final : public Messenger {
 public:
  DuplexMessenger(Messenger& send, Messenger& receive) : send_(send), receive_(receive) {}
  std::string_view LocalName() const override { return send_.LocalName(); }
  Status Send(std::string_view to, std::string payload) override {
    return send_.Send(to, std::move(payload));
  }
  void SetReceiver(Receiver receiver) override { receive_.SetReceiver(std::move(receiver)); }

 private:
  Messenger& send_;
  Messenger& receive_;
};

}  // namespace tidal
