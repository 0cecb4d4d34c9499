// RecordingTransport: a Transport decorator that writes every call and every completion
// of the transport it wraps as one JSON line, so that a run on a real backend can be
// turned into a simulator scenario (tidal-sim import) and replayed, checked and shrunk
// there. It works over any transport; the UCX fabric installs it when its record_path
// option (or the TIDAL_RECORD environment variable) names a file.
//
// One TraceSink is shared by the recorders of every node of a process; lines are written
// in the order the calls were made (a mutex orders the nodes' lines). Every line is an
// object with "ev", "node" and "t" (the node Env's clock, ns):
//   {"ev":"install","node":0,"t":..,"segment":"node0"}
//   {"ev":"register","node":0,"t":..,"addr":..,"len":..,"host":true,"rkey":..,"code":"OK"}
//   {"ev":"unregister","node":0,"t":..,"addr":..,"len":..,"code":"OK"}
//   {"ev":"connect","node":0,"t":..,"segment":"node1","peer":1,"code":"OK"}
//   {"ev":"submit","node":0,"t":..,"task":7,"kind":"write","peer":1,"local":..,
//    "remote":..,"len":..,"rkey":..,"code":"OK","data":"<hex of the source bytes>"}
//   {"ev":"complete","node":0,"t":..,"task":7,"code":"OK","bytes":..,
//    "data":"<hex of the bytes that arrived, for a READ>"}
//   {"ev":"notify","node":0,"t":..,"peer":1,"len":..,"code":"OK"}
// Addresses are the process's own. "data" is present for host memory only, and only for
// transfers of at most kMaxDataBytes (longer ones carry "data_truncated":true).
// TryCopyNow is not forwarded (and copies_now not claimed): under a recorder every task
// goes through Submit, so every one is in the trace.
//
// Thread safety: as the wrapped transport (calls on the node's executor); the sink is
// safe to share between nodes that run on different threads.
#pragma once

#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "tidal/transport.h"

namespace tidal {

class TraceSink {
 public:
  // Creates (truncates) `path`. INVALID_PARAMS naming the path when it cannot be opened.
  static Result<std::shared_ptr<TraceSink>> Open(const std::string& path);
  // Appends one line (a complete JSON object without its newline) and flushes it, so a
  // process that dies leaves every line it wrote.
  void Write(const std::string& line);
  const std::string& path() const { return path_; }

 private:
  explicit TraceSink(std::string path) : path_(std::move(path)) {}
  std::string path_;
  std::mutex mu_;
  std::ofstream out_;
};

class RecordingTransport final : public Transport {
 public:
  static constexpr uint64_t kMaxDataBytes = 64 * 1024;

  RecordingTransport(std::unique_ptr<Transport> inner, std::shared_ptr<TraceSink> sink,
                     uint32_t node);

  Transport& inner() { return *inner_; }

  std::string_view Name() const override { return inner_->Name(); }
  TransportCaps Capabilities() const override {
    TransportCaps caps = inner_->Capabilities();
    caps.copies_now = false;  // TryCopyNow is not forwarded (above)
    return caps;
  }
  Status Install(const TransportInstall& install) override;
  std::string LocalAddress() const override { return inner_->LocalAddress(); }
  Result<uint64_t> RegisterMemory(uint64_t addr, uint64_t length, Location loc) override;
  Status UnregisterMemory(uint64_t addr, uint64_t length) override;
  Result<PeerId> Connect(const SegmentDescriptor& peer) override;
  void Submit(std::span<const TransportTask> tasks, std::span<Status> accepted) override;
  size_t PollCompletions(std::span<TransportCompletion> out) override;
  Status Cancel(uint64_t task_id) override;
  Status SendNotify(PeerId peer, std::string_view payload) override;
  size_t PollNotifies(std::vector<Notification>& out, size_t max) override {
    return inner_->PollNotifies(out, max);
  }

 private:
  // The opening of a line: {"ev":"<ev>","node":N,"t":T
  std::string Begin(std::string_view ev) const;
  bool HostRange(uint64_t addr, uint64_t length) const;

  std::unique_ptr<Transport> inner_;
  std::shared_ptr<TraceSink> sink_;
  uint32_t node_;
  Env* env_ = nullptr;
  std::map<uint64_t, std::pair<uint64_t, bool>> regions_;  // addr -> (length, host)
  std::map<uint64_t, TransportTask> outstanding_;          // accepted tasks by id
};

}  // namespace tidal
