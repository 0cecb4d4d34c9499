// InProcessTransport (see inprocess_transport.h).
#include "inprocess_transport.h"

#include <cstring>

namespace tidal::testing {

InProcessTransport::~InProcessTransport() {
  auto it = hub_.nodes_.find(LocalAddress());
  if (it != hub_.nodes_.end() && it->second == this) hub_.nodes_.erase(it);
}

Status InProcessTransport::Install(const TransportInstall& install) {
  install_ = install;
  hub_.nodes_[LocalAddress()] = this;
  return Status();
}

Result<uint64_t> InProcessTransport::RegisterMemory(uint64_t addr, uint64_t length, Location loc) {
  if (!loc.is_host()) return Status(ErrorCode::REGISTRATION_FAILED, "inproc: host memory only");
  uint64_t rkey = 0;
  while (rkey == 0) rkey = install_.env->RandomU64();
  TIDAL_RETURN_IF_ERROR(registry_.Add(RegionInfo{addr, length, loc, rkey}));
  return rkey;
}

Status InProcessTransport::UnregisterMemory(uint64_t addr, uint64_t length) {
  Result<RegionInfo> r = registry_.Remove(addr);
  return r.ok() ? Status() : r.status();
}

Result<PeerId> InProcessTransport::Connect(const SegmentDescriptor& peer) {
  if (hub_.Find(peer.address) == nullptr) {
    return Status(ErrorCode::PEER_UNREACHABLE, "inproc: no node at '" + peer.address + "'");
  }
  for (size_t i = 0; i < peers_.size(); ++i) {
    if (peers_[i] == peer.address) return static_cast<PeerId>(i);
  }
  peers_.push_back(peer.address);
  return static_cast<PeerId>(peers_.size() - 1);
}

void InProcessTransport::Submit(std::span<const TransportTask> tasks, std::span<Status> accepted) {
  for (size_t i = 0; i < tasks.size(); ++i) {
    const TransportTask& t = tasks[i];
    if (t.peer >= peers_.size()) {
      accepted[i] = Status(ErrorCode::INVALID_PARAMS, "inproc: unknown peer");
      continue;
    }
    TransportCompletion c{t.task_id, ErrorCode::OK, 0};
    InProcessTransport* target = hub_.Find(peers_[t.peer]);
    if (target == nullptr) {
      c.code = ErrorCode::PEER_UNREACHABLE;
    } else if (t.kind != TransportTask::Kind::kProbe) {
      if (!registry_.FindLocal(t.local_addr, t.length).ok()) {
        accepted[i] = Status(ErrorCode::ADDRESS_NOT_REGISTERED, "inproc: local range");
        continue;
      }
      Status remote = target->registry_.CheckRemote(t.remote_addr, t.length, t.rkey);
      if (!remote.ok()) {
        c.code = remote.code();
      } else {
        auto* local = reinterpret_cast<char*>(t.local_addr);
        auto* far = reinterpret_cast<char*>(t.remote_addr);
        if (t.kind == TransportTask::Kind::kRead) {
          std::memcpy(local, far, t.length);
        } else {
          std::memcpy(far, local, t.length);
        }
        c.bytes_transferred = t.length;
      }
    }
    accepted[i] = Status();
    completions_.push_back(c);
  }
  if (!completions_.empty()) Signal();
}

size_t InProcessTransport::PollCompletions(std::span<TransportCompletion> out) {
  size_t n = 0;
  while (n < out.size() && !completions_.empty()) {
    out[n++] = completions_.front();
    completions_.pop_front();
  }
  return n;
}

Status InProcessTransport::Cancel(uint64_t task_id) {
  for (const TransportCompletion& c : completions_) {
    if (c.task_id == task_id) return Status();  // finished; its completion is queued
  }
  return Status(ErrorCode::INVALID_PARAMS, "inproc: no outstanding task " + std::to_string(task_id));
}

Status InProcessTransport::SendNotify(PeerId peer, std::string_view payload) {
  InProcessTransport* target = peer < peers_.size() ? hub_.Find(peers_[peer]) : nullptr;
  if (target == nullptr) return Status(ErrorCode::PEER_UNREACHABLE, "inproc: peer is gone");
  target->notifies_.push_back(Notification{install_.segment_name, std::string(payload)});
  target->Signal();
  return Status();
}

size_t InProcessTransport::PollNotifies(std::vector<Notification>& out, size_t max) {
  size_t n = 0;
  while (n < max && !notifies_.empty()) {
    out.push_back(std::move(notifies_.front()));
    notifies_.pop_front();
    ++n;
  }
  return n;
}

void InProcessTransport::Signal() {
  if (install_.on_ready) install_.on_ready();
}

}  // namespace tidal::testing
