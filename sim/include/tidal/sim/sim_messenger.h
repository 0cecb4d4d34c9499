// SimMessenger: the simulator's Messenger. Messages travel on per-pair FIFO links with
// the World's message latency; the fault plan can delay (the whole link: order is kept),
// drop or duplicate them, partitions drop them, and a crashed endpoint neither sends
// nor receives. The receiver runs on the target node's Env.
#pragma once

#include <string>
#include <vector>

#include "tidal/messenger.h"

namespace tidal::sim {

class World;

class SimMessenger final : public Messenger {
 public:
  SimMessenger(World& world, uint32_t node, std::string name);
  ~SimMessenger() override;

  std::string_view LocalName() const override { return name_; }
  Status Send(std::string_view to, std::string payload) override;
  void SetReceiver(Receiver receiver) override { receiver_ = std::move(receiver); }

  uint32_t node() const { return node_; }
  uint64_t sent() const { return sent_; }
  uint64_t delivered() const { return delivered_; }
  // Per target node: the link's busy-until (last delivery) time (the explorer's fingerprint).
  const std::vector<uint64_t>& link_free_ns() const { return link_free_ns_; }

 private:
  void Deliver(std::string from, std::string payload);

  World& world_;
  uint32_t node_;
  std::string name_;
  Receiver receiver_;
  std::vector<uint64_t> link_free_ns_;  // per target node: last delivery time (FIFO)
  uint64_t sent_ = 0;
  uint64_t delivered_ = 0;
};

}  // namespace tidal::sim
