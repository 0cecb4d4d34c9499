#include "tidal/sim/sim_transport.h"

#include <algorithm>
#include <charconv>
#include <cstring>

#include "tidal/sim/world.h"

namespace tidal::sim {

namespace {
std::string_view KindName(TransportTask::Kind k) {
  switch (k) {
    case TransportTask::Kind::kRead: return "read";
    case TransportTask::Kind::kWrite: return "write";
    case TransportTask::Kind::kProbe: return "probe";
  }
  return "?";
}

// One allowance draw: with probability ppm, a delay in [1, max_ns]; else 0. An allowance
// that is off takes no draw, and a zero draw (the fuzzer's calm tape) is no delay.
uint64_t AllowanceDelay(Tape& tape, uint32_t ppm, uint64_t max_ns) {
  if (ppm == 0 || max_ns == 0 || !tape.ChancePpm(ppm)) return 0;
  return tape.Between(1, max_ns);
}
}  // namespace

SimTransport::SimTransport(World& world, uint32_t node) : world_(world), node_(node) {
  TIDAL_ASSERT(node < world.size());
}

SimTransport::~SimTransport() {
  if (installed_ && world_.transport(node_) == this) world_.Attach(node_, static_cast<SimTransport*>(nullptr));
}

TransportCaps SimTransport::Capabilities() const {
  return TransportCaps{true, true, true, true};
}

Status SimTransport::Install(const TransportInstall& install) {
  if (installed_) return Status(ErrorCode::INVALID_PARAMS, "sim transport already installed");
  if (install.env == nullptr || !install.on_ready) {
    return Status(ErrorCode::INVALID_PARAMS, "install needs an env and on_ready");
  }
  install_ = install;
  installed_ = true;
  link_free_ns_.assign(world_.size(), 0);
  world_.Attach(node_, this);
  return Status();
}

std::string SimTransport::LocalAddress() const { return "sim:" + std::to_string(node_); }

Result<uint64_t> SimTransport::RegisterMemory(uint64_t addr, uint64_t length, Location loc) {
  uint64_t amount = 0;
  if (world_.ShouldInject(FaultKind::kRegistrationFailure, node_, kAnyNode, &amount)) {
    return Status(ErrorCode::REGISTRATION_FAILED, "simulated registration failure");
  }
  // An unguessable key: a full 64-bit tape draw (never 0).
  const uint64_t rkey = world_.tape().Next() | 1;
  Status s = registry_.Add(RegionInfo{addr, length, loc, rkey});
  if (!s.ok()) return Status(ErrorCode::REGISTRATION_FAILED, s.message());
  world_.Record(node_, "mem.register", {{"len", length}, {"loc", loc.ToString()}});
  return rkey;
}

Status SimTransport::UnregisterMemory(uint64_t addr, uint64_t length) {
  Result<RegionInfo> r = registry_.Remove(addr);
  if (!r.ok()) return r.status();
  world_.Record(node_, "mem.unregister", {{"len", length}});
  return Status();
}

Result<PeerId> SimTransport::Connect(const SegmentDescriptor& peer) {
  std::string_view a = peer.address;
  uint32_t node = 0;
  if (a.substr(0, 4) != "sim:" ||
      std::from_chars(a.data() + 4, a.data() + a.size(), node).ec != std::errc() ||
      node >= world_.size()) {
    return Status(ErrorCode::SEGMENT_NOT_FOUND,
                  "sim address '" + peer.address + "' names no node of this world");
  }
  auto it = std::find(peers_.begin(), peers_.end(), node);
  if (it != peers_.end()) return static_cast<PeerId>(it - peers_.begin());
  peers_.push_back(node);
  return static_cast<PeerId>(peers_.size() - 1);
}

void SimTransport::Submit(std::span<const TransportTask> tasks, std::span<Status> accepted) {
  TIDAL_ASSERT(tasks.size() == accepted.size());
  const LinkModel& link = world_.options().link;
  for (size_t i = 0; i < tasks.size(); ++i) {
    const TransportTask& t = tasks[i];
    if (crashed_) {
      accepted[i] = Status(ErrorCode::PEER_UNREACHABLE, "this node has crashed");
      continue;
    }
    if (t.peer >= peers_.size()) {
      accepted[i] = Status(ErrorCode::INVALID_PARAMS, "unknown peer id");
      continue;
    }
    if (outstanding_.count(t.task_id) != 0) {
      accepted[i] = Status(ErrorCode::INVALID_PARAMS, "task id already outstanding");
      continue;
    }
    if (t.kind != TransportTask::Kind::kProbe) {
      if (t.length == 0) {
        accepted[i] = Status(ErrorCode::INVALID_PARAMS, "zero-length task");
        continue;
      }
      Result<RegionInfo> local = registry_.FindLocal(t.local_addr, t.length);
      if (!local.ok()) {
        accepted[i] = local.status();
        continue;
      }
    }
    const uint32_t dst = peers_[t.peer];
    uint64_t start = world_.NowNs();
    if (t.kind != TransportTask::Kind::kProbe) {
      // Serialize on the directed link: bandwidth is shared by the tasks on it.
      start = std::max(start, link_free_ns_[dst]) + t.length * 1000 / link.bytes_per_us;
      link_free_ns_[dst] = start;
    }
    outstanding_.emplace(t.task_id, Outstanding{t, false, false, {}});
    accepted[i] = Status();
    world_.Record(node_, "xfer.submit", {{"id", t.task_id},
                                         {"kind", KindName(t.kind)},
                                         {"dst", uint64_t{dst}},
                                         {"len", t.length}});
    // One event per task: the request travels (latency), the data lands, and the
    // acknowledgement travels back (latency) before the completion is reported. Data and
    // completion are modelled at the same instant to keep the event count low; only a
    // delayed completion takes a second event. The contract promises no order among
    // tasks, so an allowance draw may move this one behind tasks submitted after it.
    const SimAllowances& allow = world_.options().allowances;
    const uint64_t jitter =
        AllowanceDelay(world_.tape(), allow.task_jitter_ppm, allow.task_jitter_max_ns);
    world_.ScheduleAt(start + 2 * link.latency_ns + jitter, -1,
                      [this, id = t.task_id]() { Execute(id); });
  }
}

void SimTransport::Execute(uint64_t task_id) {
  if (crashed_) return;
  auto it = outstanding_.find(task_id);
  if (it == outstanding_.end() || it->second.executed) return;  // canceled first
  Outstanding& o = it->second;
  o.executed = true;
  const TransportTask& t = o.task;
  const uint32_t dst = peers_[t.peer];
  const LinkModel& link = world_.options().link;
  TransportCompletion c{task_id, ErrorCode::OK, 0};
  uint64_t deliver_after = 0;
  SimTransport* target = world_.transport(dst);
  uint64_t amount = 0;

  if (!world_.Linked(node_, dst)) {
    // Across a partition nothing arrives and nothing answers: only a timeout tells.
    o.completion_lost = true;
    o.result = {task_id, ErrorCode::PEER_UNREACHABLE, 0};
    world_.Record(node_, "xfer.lost", {{"id", task_id}, {"why", "partition"}});
    return;
  }
  if (target == nullptr || !world_.alive(dst) || target->crashed_) {
    c.code = ErrorCode::PEER_UNREACHABLE;
    deliver_after = link.unreachable_detect_ns;  // retries run out before the error
  } else if (t.kind == TransportTask::Kind::kProbe) {
    if (world_.Hung(dst)) {
      // A hung node's CPU does not answer; its NIC would, but a probe asks the process.
      o.completion_lost = true;
      o.result = {task_id, ErrorCode::PEER_UNREACHABLE, 0};
      world_.Record(node_, "xfer.lost", {{"id", task_id}, {"why", "hung"}});
      return;
    }
  } else if (world_.ShouldInject(FaultKind::kUnregisteredLocal, node_, dst, &amount)) {
    c.code = ErrorCode::ADDRESS_NOT_REGISTERED;
  } else {
    uint64_t remote_addr = t.remote_addr;
    uint64_t rkey = t.rkey;
    if (world_.ShouldInject(FaultKind::kStaleRemoteKey, node_, dst, &amount)) {
      rkey ^= (world_.tape().Next() | 1);  // a different, stale or foreign key
    }
    if (world_.ShouldInject(FaultKind::kOutsideWindow, node_, dst, &amount)) {
      // Shift the access so that it runs past the end of its region.
      Result<RegionInfo> r = target->registry_.FindLocal(remote_addr, t.length);
      if (r.ok()) remote_addr = r->addr + r->length - t.length / 2;
      if (t.length == 1 && r.ok()) remote_addr = r->addr + r->length;
    }
    Status remote = target->registry_.CheckRemote(remote_addr, t.length, rkey);
    if (world_.options().planted_bug == PlantedBug::kIgnoreRemoteKey &&
        remote.code() == ErrorCode::REMOTE_ACCESS_DENIED &&
        target->registry_.FindLocal(remote_addr, t.length).ok()) {
      remote = Status();  // planted bug: a wrong key is let through
    }
    uint64_t copy_limit = UINT64_MAX;  // bytes the planted window bug really copies
    if (world_.options().planted_bug == PlantedBug::kIgnoreWindow &&
        remote.code() == ErrorCode::REMOTE_ACCESS_DENIED) {
      // Planted bug: only the region the access starts in is checked (its key), not
      // whether the access ends inside it. It runs one byte past the window (into the
      // workload's guard band) and claims the rest: the simulator stays in bounds.
      Result<RegionInfo> start = target->registry_.FindLocal(remote_addr, 1);
      if (start.ok() && start->rkey == rkey) {
        remote = Status();
        copy_limit = start->addr + start->length + 1 - remote_addr;
      }
    }
    Result<RegionInfo> local = registry_.FindLocal(t.local_addr, t.length);
    if (!remote.ok()) {
      c.code = remote.code();
    } else if (!local.ok()) {
      c.code = ErrorCode::ADDRESS_NOT_REGISTERED;
    } else {
      const bool write = t.kind == TransportTask::Kind::kWrite;
      uint64_t moved = t.length;
      if (world_.ShouldInject(write ? FaultKind::kShortWrite : FaultKind::kShortRead, node_,
                              dst, &amount)) {
        const uint64_t by = amount != 0 ? std::min(amount, t.length)
                                        : world_.tape().Between(1, t.length);
        moved = t.length - by;
      }
      const PlantedBug bug = world_.options().planted_bug;
      if (moved > 0 && write && bug == PlantedBug::kWriteOffByOne) {
        // Planted bug: the data lands one byte late; its last byte is lost.
        std::memmove(reinterpret_cast<void*>(remote_addr + 1),
                     reinterpret_cast<const void*>(t.local_addr), moved - 1);
      } else if (moved > 0 && write && bug == PlantedBug::kCompleteBeforeVisible) {
        // Planted bug: the completion is reported now, the data lands 5 us later.
        std::vector<uint8_t> data(reinterpret_cast<const uint8_t*>(t.local_addr),
                                  reinterpret_cast<const uint8_t*>(t.local_addr) + moved);
        world_.ScheduleAt(world_.NowNs() + 5'000, -1,
                          [to = remote_addr, data = std::move(data)]() {
                            std::memcpy(reinterpret_cast<void*>(to), data.data(), data.size());
                          });
      } else if (moved > 0) {
        void* to = reinterpret_cast<void*>(write ? remote_addr : t.local_addr);
        const void* from = reinterpret_cast<const void*>(write ? t.local_addr : remote_addr);
        std::memmove(to, from, std::min(moved, copy_limit));
      }
      c.bytes_transferred = moved;
      c.code = moved == t.length ? ErrorCode::OK : ErrorCode::TRANSFER_INCOMPLETE;
      if (world_.options().planted_bug == PlantedBug::kShortAsComplete && moved < t.length) {
        // Planted bug: a short transfer claims every byte, as a TCP write once counted as
        // complete before the peer had it. Only a check of the bytes can see it.
        c.code = ErrorCode::OK;
        c.bytes_transferred = t.length;
      }
    }
  }
  world_.Record(node_, "xfer.exec", {{"id", task_id},
                                     {"moved", c.bytes_transferred},
                                     {"code", int64_t{static_cast<int32_t>(c.code)}}});
  o.result = c;
  if (world_.ShouldInject(FaultKind::kCompletionLoss, node_, dst, &amount)) {
    o.completion_lost = true;  // the work happened; its completion never comes
    return;
  }
  if (world_.ShouldInject(FaultKind::kCompletionDelay, node_, dst, &amount)) {
    deliver_after += amount != 0 ? amount : world_.tape().Between(10'000, 2'000'000);
  } else if (world_.ShouldInject(FaultKind::kCompletionReorder, node_, dst, &amount)) {
    deliver_after += amount != 0 ? amount : world_.tape().Below(20'000);
  }
  // The data is visible now; the contract lets its completion come later.
  const SimAllowances& allow = world_.options().allowances;
  deliver_after +=
      AllowanceDelay(world_.tape(), allow.completion_delay_ppm, allow.completion_delay_max_ns);
  if (deliver_after == 0) {
    Deliver(c);
    outstanding_.erase(it);
    return;
  }
  world_.ScheduleAt(world_.NowNs() + deliver_after, -1, [this, task_id]() { Complete(task_id); });
}

void SimTransport::Complete(uint64_t task_id) {
  if (crashed_) return;
  auto it = outstanding_.find(task_id);
  if (it == outstanding_.end()) return;  // canceled and completed already
  TIDAL_ASSERT(it->second.executed && !it->second.completion_lost);
  Deliver(it->second.result);
  outstanding_.erase(it);
}

void SimTransport::Deliver(const TransportCompletion& c) {
  completions_.push_back(c);
  Signal();
}

void SimTransport::Signal() {
  if (installed_ && !crashed_) install_.on_ready();
}

size_t SimTransport::PollCompletions(std::span<TransportCompletion> out) {
  size_t n = 0;
  while (n < out.size() && !completions_.empty()) {
    out[n++] = completions_.front();
    completions_.pop_front();
  }
  return n;
}

Status SimTransport::Cancel(uint64_t task_id) {
  auto it = outstanding_.find(task_id);
  if (it == outstanding_.end()) {
    // Finished, its completion queued but not yet polled: to the caller it is still
    // outstanding, and the completion that follows is the one already queued.
    for (const TransportCompletion& queued : completions_) {
      if (queued.task_id == task_id) return Status();
    }
    return Status(ErrorCode::INVALID_PARAMS, "no outstanding task " + std::to_string(task_id));
  }
  Outstanding& o = it->second;
  TransportCompletion c{task_id, ErrorCode::TRANSFER_CANCELED, 0};
  if (o.executed && !o.completion_lost) {
    c = o.result;  // it finished; only its completion was still on the way
  } else if (o.executed) {
    c.bytes_transferred = o.result.bytes_transferred;  // the truth about a lost completion
  }
  world_.Record(node_, "xfer.cancel", {{"id", task_id}, {"moved", c.bytes_transferred}});
  outstanding_.erase(it);
  Deliver(c);
  return Status();
}

Status SimTransport::SendNotify(PeerId peer, std::string_view payload) {
  if (peer >= peers_.size()) return Status(ErrorCode::INVALID_PARAMS, "unknown peer id");
  if (crashed_) return Status(ErrorCode::PEER_UNREACHABLE, "this node has crashed");
  const uint32_t dst = peers_[peer];
  world_.Record(node_, "notify.send", {{"dst", uint64_t{dst}}, {"len", uint64_t{payload.size()}}});
  if (!world_.Linked(node_, dst)) return Status();  // lost in the partition
  uint64_t amount = 0;
  if (world_.ShouldInject(FaultKind::kNotifyDrop, node_, dst, &amount)) return Status();  // lost
  // The contract asks only that the notification follow the data of every write already
  // completed to this peer, and in the simulator that data has landed by the time its
  // completion exists. So the notification may overtake the writes still in flight on the
  // link (an allowance draw), or, like a message on an RDMA queue pair, execute one
  // nanosecond after the last task already submitted on the link. Either way it takes a
  // jitter draw, so notifications to one peer and across peers arrive in any order.
  const uint64_t latency = world_.options().link.latency_ns;
  const SimAllowances& allow = world_.options().allowances;
  const bool overtake = allow.notify_overtake_ppm != 0 &&
                        world_.tape().ChancePpm(allow.notify_overtake_ppm);
  const uint64_t after = overtake ? world_.NowNs() : std::max(world_.NowNs(), link_free_ns_[dst]);
  const uint64_t jitter =
      allow.notify_jitter_max_ns == 0 ? 0 : world_.tape().Below(allow.notify_jitter_max_ns + 1);
  const uint64_t at = after + 2 * latency + 1 + jitter;
  Notification n{install_.segment_name, std::string(payload)};
  world_.ScheduleAt(at, -1,
                    [this, dst, n = std::move(n)]() mutable {
                      SimTransport* target = world_.transport(dst);
                      if (target != nullptr) target->DeliverNotify(std::move(n));
                    });
  return Status();
}

void SimTransport::DeliverNotify(Notification n) {
  if (crashed_ || !world_.alive(node_)) return;
  world_.Record(node_, "notify.deliver", {{"len", uint64_t{n.payload.size()}}});
  notifies_.push_back(std::move(n));
  Signal();
}

size_t SimTransport::PollNotifies(std::vector<Notification>& out, size_t max) {
  size_t n = 0;
  while (n < max && !notifies_.empty()) {
    out.push_back(std::move(notifies_.front()));
    notifies_.pop_front();
    ++n;
  }
  return n;
}

void SimTransport::OnCrash() {
  crashed_ = true;
  outstanding_.clear();
  completions_.clear();
  notifies_.clear();
}

}  // namespace tidal::sim
