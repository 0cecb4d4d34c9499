#include "tidal/sim/sim_messenger.h"

#include <algorithm>
#include <memory>

#include "tidal/sim/world.h"

namespace tidal::sim {

SimMessenger::SimMessenger(World& world, uint32_t node, std::string name)
    : world_(world), node_(node), name_(std::move(name)) {
  TIDAL_ASSERT(node < world.size());
  link_free_ns_.assign(world.size(), 0);
  world_.Attach(node_, this);
}

SimMessenger::~SimMessenger() { world_.Detach(this); }

Status SimMessenger::Send(std::string_view to, std::string payload) {
  SimMessenger* target = world_.messenger_by_name(to);
  if (target == nullptr) {
    return Status(ErrorCode::SEGMENT_NOT_FOUND, "no messenger endpoint '" + std::string(to) + "'");
  }
  if (!world_.alive(node_)) return Status();  // a dead node sends nothing
  ++sent_;
  const uint32_t dst = target->node_;
  world_.Record(node_, "msg.send", {{"to", to}, {"len", uint64_t{payload.size()}}});
  uint64_t amount = 0;
  if (!world_.Linked(node_, dst)) {
    world_.Record(node_, "msg.lost", {{"to", to}, {"why", "partition"}});
    return Status();
  }
  if (world_.ShouldInject(FaultKind::kMessageDrop, node_, dst, &amount)) return Status();
  uint64_t at = world_.NowNs() + world_.options().link.message_latency_ns;
  if (world_.ShouldInject(FaultKind::kMessageDelay, node_, dst, &amount)) {
    at += amount != 0 ? amount : world_.tape().Between(10'000, 3'000'000);
  }
  // FIFO per pair: a message never overtakes an earlier one on the same link.
  at = std::max(at, link_free_ns_[dst] + 1);
  link_free_ns_[dst] = at;
  const bool duplicate = world_.ShouldInject(FaultKind::kMessageDuplicate, node_, dst, &amount);
  // The delivery belongs to the target node: a hung node receives it when it resumes (in
  // order: deferred events keep their order), a crashed one never.
  // One allocation per delivery: the payload moves in (a duplicate gets its own copy), and
  // the callback holds one pointer, so it stays inline in the event queue.
  struct Delivery {
    std::string target, from, payload;
  };
  auto deliver = [world = &world_](std::unique_ptr<Delivery> m) {
    return [world, m = std::move(m)]() {
      SimMessenger* t = world->messenger_by_name(m->target);
      if (t != nullptr) t->Deliver(std::move(m->from), std::move(m->payload));
    };
  };
  auto message = std::make_unique<Delivery>(Delivery{std::string(to), name_, std::move(payload)});
  std::unique_ptr<Delivery> copy;
  if (duplicate) copy = std::make_unique<Delivery>(*message);
  world_.ScheduleAt(at, static_cast<int32_t>(dst), deliver(std::move(message)));
  if (duplicate) {
    link_free_ns_[dst] = at + 1;
    world_.ScheduleAt(at + 1, static_cast<int32_t>(dst), deliver(std::move(copy)));  // right behind
  }
  return Status();
}

void SimMessenger::Deliver(std::string from, std::string payload) {
  if (!world_.alive(node_)) return;
  world_.Record(node_, "msg.deliver", {{"from", from}, {"to", name_},
                                       {"len", uint64_t{payload.size()}}});
  ++delivered_;
  if (receiver_) receiver_(from, std::move(payload));
}

}  // namespace tidal::sim
