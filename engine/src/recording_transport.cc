#include "tidal/recording_transport.h"

#include <algorithm>
#include <vector>

namespace tidal {
namespace {

std::string Hex(const uint8_t* p, uint64_t n) {
  static const char* kDigits = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (uint64_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[p[i] >> 4];
    out[2 * i + 1] = kDigits[p[i] & 15];
  }
  return out;
}

// Segment names are the engine's ("node3"); escaped anyway so a line is always JSON.
std::string Quoted(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string Field(std::string_view name, uint64_t v) {
  return ",\"" + std::string(name) + "\":" + std::to_string(v);
}

std::string Code(ErrorCode c) { return ",\"code\":\"" + std::string(ErrorCodeName(c)) + "\""; }

std::string_view KindName(TransportTask::Kind k) {
  switch (k) {
    case TransportTask::Kind::kRead: return "read";
    case TransportTask::Kind::kWrite: return "write";
    case TransportTask::Kind::kProbe: return "probe";
  }
  return "unknown";
}

}  // namespace

Result<std::shared_ptr<TraceSink>> TraceSink::Open(const std::string& path) {
  std::shared_ptr<TraceSink> sink(new TraceSink(path));
  sink->out_.open(path, std::ios::out | std::ios::trunc);
  if (!sink->out_) {
    return Status(ErrorCode::INVALID_PARAMS, "trace: cannot open '" + path + "' for writing");
  }
  return sink;
}

void TraceSink::Write(const std::string& line) {
  std::lock_guard<std::mutex> lock(mu_);
  out_ << line << '\n';
  out_.flush();
}

RecordingTransport::RecordingTransport(std::unique_ptr<Transport> inner,
                                       std::shared_ptr<TraceSink> sink, uint32_t node)
    : inner_(std::move(inner)), sink_(std::move(sink)), node_(node) {}

std::string RecordingTransport::Begin(std::string_view ev) const {
  return "{\"ev\":\"" + std::string(ev) + "\"" + Field("node", node_) +
         Field("t", env_ != nullptr ? env_->NowNs() : 0);
}

bool RecordingTransport::HostRange(uint64_t addr, uint64_t length) const {
  auto it = regions_.upper_bound(addr);
  if (it == regions_.begin()) return false;
  --it;
  return it->second.second && addr + length <= it->first + it->second.first;
}

Status RecordingTransport::Install(const TransportInstall& install) {
  env_ = install.env;
  Status s = inner_->Install(install);
  sink_->Write(Begin("install") + ",\"segment\":" + Quoted(install.segment_name) + Code(s.code()) +
               "}");
  return s;
}

Result<uint64_t> RecordingTransport::RegisterMemory(uint64_t addr, uint64_t length, Location loc) {
  Result<uint64_t> r = inner_->RegisterMemory(addr, length, loc);
  if (r.ok()) regions_[addr] = {length, loc.is_host()};
  sink_->Write(Begin("register") + Field("addr", addr) + Field("len", length) +
               ",\"host\":" + (loc.is_host() ? "true" : "false") +
               Field("rkey", r.ok() ? *r : 0) + Code(r.code()) + "}");
  return r;
}

Status RecordingTransport::UnregisterMemory(uint64_t addr, uint64_t length) {
  Status s = inner_->UnregisterMemory(addr, length);
  if (s.ok()) regions_.erase(addr);
  sink_->Write(Begin("unregister") + Field("addr", addr) + Field("len", length) + Code(s.code()) +
               "}");
  return s;
}

Result<PeerId> RecordingTransport::Connect(const SegmentDescriptor& peer) {
  Result<PeerId> r = inner_->Connect(peer);
  sink_->Write(Begin("connect") + ",\"segment\":" + Quoted(peer.name) +
               Field("peer", r.ok() ? *r : 0) + Code(r.code()) + "}");
  return r;
}

void RecordingTransport::Submit(std::span<const TransportTask> tasks, std::span<Status> accepted) {
  // The source bytes of a WRITE are read before the transport may start moving them.
  std::vector<std::string> data(tasks.size());
  for (size_t i = 0; i < tasks.size(); ++i) {
    const TransportTask& t = tasks[i];
    if (t.kind != TransportTask::Kind::kWrite) continue;
    if (t.length > kMaxDataBytes) {
      data[i] = ",\"data_truncated\":true";
    } else if (HostRange(t.local_addr, t.length)) {
      data[i] = ",\"data\":\"" + Hex(reinterpret_cast<const uint8_t*>(t.local_addr), t.length) +
                "\"";
    }
  }
  inner_->Submit(tasks, accepted);
  for (size_t i = 0; i < tasks.size(); ++i) {
    const TransportTask& t = tasks[i];
    if (accepted[i].ok()) outstanding_[t.task_id] = t;
    sink_->Write(Begin("submit") + Field("task", t.task_id) + ",\"kind\":\"" +
                 std::string(KindName(t.kind)) + "\"" + Field("peer", t.peer) +
                 Field("local", t.local_addr) + Field("remote", t.remote_addr) +
                 Field("len", t.length) + Field("rkey", t.rkey) + Code(accepted[i].code()) +
                 data[i] + "}");
  }
}

size_t RecordingTransport::PollCompletions(std::span<TransportCompletion> out) {
  const size_t n = inner_->PollCompletions(out);
  for (size_t i = 0; i < n; ++i) {
    const TransportCompletion& c = out[i];
    std::string data;
    auto it = outstanding_.find(c.task_id);
    if (it != outstanding_.end()) {
      const TransportTask& t = it->second;
      const uint64_t arrived = std::min(c.bytes_transferred, t.length);
      if (t.kind == TransportTask::Kind::kRead && arrived > 0) {
        if (arrived > kMaxDataBytes) {
          data = ",\"data_truncated\":true";
        } else if (HostRange(t.local_addr, arrived)) {
          data = ",\"data\":\"" + Hex(reinterpret_cast<const uint8_t*>(t.local_addr), arrived) +
                 "\"";
        }
      }
      outstanding_.erase(it);
    }
    sink_->Write(Begin("complete") + Field("task", c.task_id) + Code(c.code) +
                 Field("bytes", c.bytes_transferred) + data + "}");
  }
  return n;
}

Status RecordingTransport::Cancel(uint64_t task_id) {
  Status s = inner_->Cancel(task_id);
  sink_->Write(Begin("cancel") + Field("task", task_id) + Code(s.code()) + "}");
  return s;
}

Status RecordingTransport::SendNotify(PeerId peer, std::string_view payload) {
  Status s = inner_->SendNotify(peer, payload);
  sink_->Write(Begin("notify") + Field("peer", peer) + Field("len", payload.size()) +
               Code(s.code()) + "}");
  return s;
}

}  // namespace tidal
