#include "buggy_transport.h"

#include <algorithm>
#include <cstring>

namespace tidal::testing {

namespace {
constexpr PeerId kNoPeer = UINT32_MAX;  // an id no transport hands out
}  // namespace

std::string_view TransportBugName(TransportBug bug) {
  switch (bug) {
    case TransportBug::kNone: return "None";
    case TransportBug::kCompleteRejected: return "CompleteRejected";
    case TransportBug::kMoveBytesOnRejected: return "MoveBytesOnRejected";
    case TransportBug::kDropCompletion: return "DropCompletion";
    case TransportBug::kCompleteTwice: return "CompleteTwice";
    case TransportBug::kCancelDropsCompletion: return "CancelDropsCompletion";
    case TransportBug::kOkBeforeVisible: return "OkBeforeVisible";
    case TransportBug::kOkOnShort: return "OkOnShort";
    case TransportBug::kSkipLocalCheck: return "SkipLocalCheck";
    case TransportBug::kSkipWindowCheck: return "SkipWindowCheck";
    case TransportBug::kSkipKeyCheck: return "SkipKeyCheck";
    case TransportBug::kNotifyBeforeData: return "NotifyBeforeData";
    case TransportBug::kTouchAfterUnregister: return "TouchAfterUnregister";
    case TransportBug::kDistinctPeerIds: return "DistinctPeerIds";
    case TransportBug::kCancelUnknownOk: return "CancelUnknownOk";
    case TransportBug::kProbeAlwaysOk: return "ProbeAlwaysOk";
  }
  return "Unknown";
}

std::vector<TransportBug> AllTransportBugs() {
  std::vector<TransportBug> out;
  for (int b = 1; b <= static_cast<int>(TransportBug::kProbeAlwaysOk); ++b) {
    out.push_back(static_cast<TransportBug>(b));
  }
  return out;
}

BuggyTransport::BuggyTransport(std::unique_ptr<Transport> inner, TransportBug bug,
                               std::shared_ptr<BuggyBus> bus)
    : inner_(std::move(inner)), bug_(bug), bus_(std::move(bus)) {
  TIDAL_ASSERT(inner_ != nullptr && bus_ != nullptr);
}

BuggyTransport::~BuggyTransport() {
  auto it = bus_->by_segment.find(install_.segment_name);
  if (it != bus_->by_segment.end() && it->second == this) bus_->by_segment.erase(it);
}

Status BuggyTransport::Install(const TransportInstall& install) {
  install_ = install;
  bus_->by_segment[install.segment_name] = this;
  return inner_->Install(install);
}

Result<uint64_t> BuggyTransport::RegisterMemory(uint64_t addr, uint64_t length, Location loc) {
  Result<uint64_t> r = inner_->RegisterMemory(addr, length, loc);
  if (r.ok()) local_.push_back(RegionInfo{addr, length, loc, *r});
  return r;
}

Status BuggyTransport::UnregisterMemory(uint64_t addr, uint64_t length) {
  // The bug: a lazy deregistration (an MR cache) that says OK and keeps the range live.
  if (bug_ == TransportBug::kTouchAfterUnregister) return Status();
  Status s = inner_->UnregisterMemory(addr, length);
  if (s.ok()) {
    std::erase_if(local_, [addr](const RegionInfo& r) { return r.addr == addr; });
  }
  return s;
}

Result<PeerId> BuggyTransport::Connect(const SegmentDescriptor& peer) {
  Result<PeerId> r = inner_->Connect(peer);
  if (!r.ok()) return r;
  peers_[*r] = peer;
  if (bug_ != TransportBug::kDistinctPeerIds) {
    auto it = std::find(outer_to_inner_.begin(), outer_to_inner_.end(), *r);
    if (it != outer_to_inner_.end()) return static_cast<PeerId>(it - outer_to_inner_.begin());
  }
  outer_to_inner_.push_back(*r);
  return static_cast<PeerId>(outer_to_inner_.size() - 1);
}

PeerId BuggyTransport::Inner(PeerId outer) const {
  return outer < outer_to_inner_.size() ? outer_to_inner_[outer] : kNoPeer;
}

bool BuggyTransport::LocalRegistered(uint64_t addr, uint64_t length) const {
  return std::any_of(local_.begin(), local_.end(),
                     [&](const RegionInfo& r) { return r.Contains(addr, length); });
}

std::pair<uint64_t, uint64_t> BuggyTransport::Clip(const std::vector<RegionInfo>& regions,
                                                   uint64_t addr, uint64_t length) {
  for (const RegionInfo& r : regions) {
    const uint64_t lo = std::max(addr, r.addr);
    const uint64_t hi = std::min(addr + length, r.addr + r.length);
    if (lo < hi) return {lo - addr, hi - lo};
  }
  return {0, 0};
}

void BuggyTransport::Submit(std::span<const TransportTask> tasks, std::span<Status> accepted) {
  TIDAL_ASSERT(tasks.size() == accepted.size());
  std::vector<TransportTask> fwd;
  std::vector<size_t> fwd_index;  // fwd[j] is tasks[fwd_index[j]]
  for (size_t i = 0; i < tasks.size(); ++i) {
    TransportTask t = tasks[i];
    t.peer = Inner(t.peer);
    const bool data = t.kind != TransportTask::Kind::kProbe;
    auto peer = peers_.find(t.peer);
    const SegmentDescriptor* desc = peer == peers_.end() ? nullptr : &peer->second;
    if (data && bug_ == TransportBug::kSkipKeyCheck && desc != nullptr) {
      if (const RegionInfo* r = desc->FindRegion(t.remote_addr, t.length)) t.rkey = r->rkey;
    }
    if (data && bug_ == TransportBug::kSkipWindowCheck && desc != nullptr &&
        desc->FindRegion(t.remote_addr, t.length) == nullptr) {
      auto [off, len] = Clip(desc->regions, t.remote_addr, t.length);
      if (len > 0) {
        t.remote_addr += off;
        t.local_addr += off;
        t.length = len;
        claim_ok_.insert(t.task_id);
      }
    }
    if (data && bug_ == TransportBug::kSkipLocalCheck && t.length > 0 &&
        !LocalRegistered(t.local_addr, t.length)) {
      auto [off, len] = Clip(local_, t.local_addr, t.length);
      if (len == 0) {
        accepted[i] = Status();  // nothing registered at all: claim it went through
        tasks_[t.task_id] = tasks[i];
        extra_.push_back({t.task_id, ErrorCode::OK, t.length});
        continue;
      }
      t.remote_addr += off;
      t.local_addr += off;
      t.length = len;
      claim_ok_.insert(t.task_id);
    }
    if (bug_ == TransportBug::kNotifyBeforeData && t.kind == TransportTask::Kind::kWrite &&
        desc != nullptr && desc->FindRegion(t.remote_addr, t.length) != nullptr) {
      const auto* p = reinterpret_cast<const uint8_t*>(t.remote_addr);
      before_[t.task_id] = std::vector<uint8_t>(p, p + t.length);
    }
    fwd.push_back(t);
    fwd_index.push_back(i);
  }
  std::vector<Status> fwd_status(fwd.size());
  inner_->Submit(fwd, fwd_status);
  for (size_t j = 0; j < fwd.size(); ++j) {
    const TransportTask& t = tasks[fwd_index[j]];
    accepted[fwd_index[j]] = fwd_status[j];
    if (fwd_status[j].ok()) {
      tasks_[t.task_id] = t;
      if (bug_ == TransportBug::kOkBeforeVisible && t.kind == TransportTask::Kind::kWrite) {
        extra_.push_back({t.task_id, ErrorCode::OK, t.length});
        swallow_.insert(t.task_id);
      }
      continue;
    }
    claim_ok_.erase(t.task_id);
    before_.erase(t.task_id);
    if (bug_ == TransportBug::kCompleteRejected) {
      extra_.push_back({t.task_id, fwd_status[j].code(), 0});
    }
    if (bug_ == TransportBug::kMoveBytesOnRejected && t.kind != TransportTask::Kind::kProbe &&
        fwd_status[j].code() == ErrorCode::ADDRESS_NOT_REGISTERED) {
      // Moves the registered part of the refused range, as a backend that posts the
      // work request before its range check fails would.
      auto [off, len] = Clip(local_, t.local_addr, t.length);
      if (len > 0) {
        TransportTask part = fwd[j];
        part.task_id = next_internal_id_++;
        part.local_addr += off;
        part.remote_addr += off;
        part.length = len;
        Status s;
        inner_->Submit(std::span<const TransportTask>(&part, 1), std::span<Status>(&s, 1));
        if (s.ok()) internal_.insert(part.task_id);
      }
    }
  }
  if (!extra_.empty()) Signal();
}

bool BuggyTransport::Filter(TransportCompletion& c) {
  if (internal_.erase(c.task_id) != 0) return false;
  auto it = tasks_.find(c.task_id);
  if (swallow_.erase(c.task_id) != 0) {
    if (it != tasks_.end()) tasks_.erase(it);
    return false;
  }
  if (it == tasks_.end()) return true;  // not ours to judge: pass it on as it is
  const TransportTask t = it->second;
  tasks_.erase(it);
  const bool data = t.kind != TransportTask::Kind::kProbe;
  if (bug_ == TransportBug::kDropCompletion && data && !dropped_one_) {
    dropped_one_ = true;
    return false;
  }
  if (claim_ok_.erase(c.task_id) != 0 ||
      (bug_ == TransportBug::kOkOnShort && c.code == ErrorCode::TRANSFER_INCOMPLETE)) {
    c.code = ErrorCode::OK;
    c.bytes_transferred = t.length;
  }
  if (bug_ == TransportBug::kProbeAlwaysOk && !data) {
    c.code = ErrorCode::OK;
    c.bytes_transferred = 0;
  }
  auto before = before_.find(c.task_id);
  if (before != before_.end()) {
    if (c.code == ErrorCode::OK) {
      landed_[Inner(t.peer)].emplace_back(t.remote_addr, std::move(before->second));
    }
    before_.erase(before);
  }
  if (bug_ == TransportBug::kCompleteTwice) extra_.push_back(c);
  return true;
}

size_t BuggyTransport::PollCompletions(std::span<TransportCompletion> out) {
  size_t n = 0;
  for (;;) {
    while (n < out.size() && !extra_.empty()) {
      out[n++] = extra_.front();
      extra_.pop_front();
    }
    if (n == out.size()) break;
    TransportCompletion c;
    if (inner_->PollCompletions(std::span<TransportCompletion>(&c, 1)) == 0) break;
    if (Filter(c)) out[n++] = c;
  }
  return n;
}

Status BuggyTransport::Cancel(uint64_t task_id) {
  Status s = inner_->Cancel(task_id);
  if (bug_ == TransportBug::kCancelUnknownOk && s.code() == ErrorCode::INVALID_PARAMS) {
    return Status();
  }
  if (bug_ == TransportBug::kCancelDropsCompletion && s.ok()) swallow_.insert(task_id);
  return s;
}

Status BuggyTransport::SendNotify(PeerId peer, std::string_view payload) {
  const PeerId inner = Inner(peer);
  auto landed = landed_.find(inner);
  auto desc = peers_.find(inner);
  if (bug_ == TransportBug::kNotifyBeforeData && landed != landed_.end() &&
      desc != peers_.end()) {
    auto receiver = bus_->by_segment.find(desc->second.name);
    if (receiver != bus_->by_segment.end()) {
      // Puts back what the target held before each completed write and gives the
      // receiver the true bytes to apply only after it has seen this notification.
      for (auto& [addr, before] : landed->second) {
        auto* p = reinterpret_cast<uint8_t*>(addr);
        Hidden h{addr, std::vector<uint8_t>(p, p + before.size()), false};
        std::memcpy(p, before.data(), before.size());
        receiver->second->hidden_[install_.segment_name].push_back(std::move(h));
      }
      landed->second.clear();
    }
  }
  return inner_->SendNotify(inner, payload);
}

size_t BuggyTransport::PollNotifies(std::vector<Notification>& out, size_t max) {
  for (auto& [source, list] : hidden_) {
    for (const Hidden& h : list) {
      if (h.handed_out) std::memcpy(reinterpret_cast<void*>(h.addr), h.bytes.data(), h.bytes.size());
    }
    std::erase_if(list, [](const Hidden& h) { return h.handed_out; });
  }
  const size_t first = out.size();
  const size_t n = inner_->PollNotifies(out, max);
  for (size_t i = first; i < out.size(); ++i) {
    auto it = hidden_.find(out[i].source);
    if (it == hidden_.end()) continue;
    for (Hidden& h : it->second) h.handed_out = true;
  }
  return n;
}

void BuggyTransport::Signal() {
  if (install_.on_ready) install_.on_ready();
}

}  // namespace tidal::testing
