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

}  // namespace tidal
