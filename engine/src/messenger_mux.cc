#include "tidal/messenger_mux.h"

namespace tidal {

class MessengerMux::Port final : public Messenger {
 public:
  Port(Messenger& inner, uint8_t channel) : inner_(inner), channel_(channel) {}
  std::string_view LocalName() const override { return inner_.LocalName(); }
  Status Send(std::string_view to, std::string payload) override {
    payload.insert(payload.begin(), static_cast<char>(channel_));
    return inner_.Send(to, std::move(payload));
  }
  void SetReceiver(Receiver receiver) override { receiver_ = std::move(receiver); }
  bool Deliver(std::string_view from, std::string payload) {
    if (!receiver_) return false;
    receiver_(from, std::move(payload));
    return true;
  }

 private:
  Messenger& inner_;
  uint8_t channel_;
  Receiver receiver_;
};

MessengerMux::MessengerMux(Messenger& inner) : inner_(inner) {
  inner_.SetReceiver([this](std::string_view from, std::string payload) {
    if (payload.empty()) {
      ++dropped_;
      return;
    }
    const uint8_t channel = static_cast<uint8_t>(payload[0]);
    Port* port = ports_[channel].get();
    payload.erase(payload.begin());
    if (port == nullptr || !port->Deliver(from, std::move(payload))) ++dropped_;
  });
}

MessengerMux::~MessengerMux() { inner_.SetReceiver(nullptr); }

Messenger& MessengerMux::Channel(uint8_t channel) {
  if (!ports_[channel]) ports_[channel] = std::make_unique<Port>(inner_, channel);
  return *ports_[channel];
}

}  // namespace tidal
