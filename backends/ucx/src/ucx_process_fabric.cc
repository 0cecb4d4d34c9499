// UcxProcessFabric, UcxProxyTransport, SharedArena and the node-process side (RunUcxHost).
// The design is in ucx_process_fabric.h and docs/ucx.md ("Nodes as processes").
#include "tidal/backends/ucx/ucx_process_fabric.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "tidal/contract_checker.h"

#include "start_engines.h"

#ifndef TIDAL_UCX_HOST_BUILD_PATH
#define TIDAL_UCX_HOST_BUILD_PATH ""
#endif

namespace tidal::backends::ucx {

namespace {

// ---- framing -----------------------------------------------------------------------------

using proc::DescribeWait;
using proc::Hex;
using proc::kMaxFrame;
using proc::Reader;
using proc::RecvFrame;
using proc::SendFrame;
using proc::Writer;

using enum proc::FrameType;
enum OwnFrame : uint8_t {
  kStats = kFirstOwn,
};

// The fixed addresses an arena may take, tried in order (the same in every process):
// 32 TiB upwards, far below where Linux places mmap areas, libraries and stacks.
constexpr proc::ArenaPlacement kArenaPlacement = {
    .first = uint64_t{0x2000} << 32,
    .stride = uint64_t{0x100} << 32,  // 1 TiB apart
    .slots = 64,
    .memfd_name = "tidal-ucx-arena",
    .class_name = "SharedArena",
};

}  // namespace

// ---- SharedArena ------------------------------------------------------------------------

Result<std::unique_ptr<SharedArena>> SharedArena::Make(size_t bytes) {
  int fd = -1;
  void* base = nullptr;
  Status mapped = MapNew(&bytes, kArenaPlacement, &fd, &base);
  if (!mapped.ok()) return mapped;
  return std::unique_ptr<SharedArena>(new SharedArena(fd, base, bytes, kArenaPlacement.class_name));
}

Result<std::string> UcxHostPath() {
  return proc::FindHostBinary({"tidal-ucx-host", "TIDAL_UCX_HOST", TIDAL_UCX_HOST_BUILD_PATH});
}

// ---- UcxProxyTransport -------------------------------------------------------------------

UcxProxyTransport::UcxProxyTransport(UcxProcessOptions options, const SharedArena& arena,
                                     size_t node)
    : NodeProcess(node, "tidal-ucx-host", options.call_timeout_ms),
      options_(std::move(options)),
      arena_(arena) {}

Status UcxProxyTransport::Start() {
  Status launched = Launch(options_.host_path, &UcxHostPath,
                           {"--arena-addr", std::to_string(arena_.base()), "--arena-bytes",
                            std::to_string(arena_.size()), "--node", std::to_string(node_),
                            "--probe-timeout-ns",
                            std::to_string(options_.transport.probe_timeout_ns), "--spin-ns",
                            std::to_string(options_.transport.spin_ns), "--busy-poll-ns",
                            std::to_string(options_.transport.busy_poll_ns)},
                           arena_.fd());
  if (!launched.ok()) return launched;
  return AwaitHello(/*unsupported_is_kept=*/false);
}

TransportCaps UcxProxyTransport::Capabilities() const {
  return caps_;
}

Status UcxProxyTransport::Install(const TransportInstall& install) {
  if (install.env == nullptr || !install.on_ready) {
    return Status(ErrorCode::INVALID_PARAMS, "install needs an env and on_ready");
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    on_ready_ = install.on_ready;
  }
  Writer w;
  w.Str(install.segment_name);
  Result<std::string> reply = Call(kInstall, w.out());
  if (!reply.ok()) return reply.status();
  Reader r(*reply);
  Status s = r.St();
  std::string address = r.Str();
  const uint8_t caps = r.U8();
  if (!r.done()) return Status(ErrorCode::INTERNAL_ERROR, "malformed install reply");
  if (!s.ok()) return s;
  local_address_ = std::move(address);
  caps_.host_to_host = (caps & 1) != 0;
  caps_.host_to_cuda = (caps & 2) != 0;
  caps_.cuda_to_cuda = (caps & 4) != 0;
  caps_.notifications = (caps & 8) != 0;
  return Status();
}

Result<uint64_t> UcxProxyTransport::RegisterMemory(uint64_t addr, uint64_t length, Location loc) {
  // Only the arena is the same memory in the child: any other address names unrelated
  // memory there (or none), so it is refused before the child is asked.
  if (addr < arena_.base() || length > arena_.size() ||
      addr - arena_.base() > arena_.size() - length) {
    return Status(ErrorCode::REGISTRATION_FAILED,
                  "range [" + Hex(addr) + ", +" + std::to_string(length) +
                      ") is not in the shared arena [" + Hex(arena_.base()) + ", +" +
                      std::to_string(arena_.size()) +
                      ") that node processes map: allocate it with Fabric::Allocate");
  }
  return ForwardRegister(addr, length, loc);
}

Status UcxProxyTransport::UnregisterMemory(uint64_t addr, uint64_t length) {
  return ForwardUnregister(addr, length);
}

Result<PeerId> UcxProxyTransport::Connect(const SegmentDescriptor& peer) {
  return ForwardConnect(peer);
}

void UcxProxyTransport::Submit(std::span<const TransportTask> tasks, std::span<Status> accepted) {
  ForwardSubmit(tasks, accepted);
}

size_t UcxProxyTransport::PollCompletions(std::span<TransportCompletion> out) {
  return DrainCompletions(out);
}

Status UcxProxyTransport::Cancel(uint64_t task_id) {
  return ForwardCancel(task_id);
}

Status UcxProxyTransport::SendNotify(PeerId peer, std::string_view payload) {
  return ForwardNotify(peer, payload);
}

size_t UcxProxyTransport::PollNotifies(std::vector<Notification>& out, size_t max) {
  return DrainNotifies(out, max);
}

Result<UcxTransportStats> UcxProxyTransport::Stats() {
  Result<std::string> reply = Call(kStats, "");
  if (!reply.ok()) return reply.status();
  Reader r(*reply);
  UcxTransportStats s;
  s.outstanding = r.U64();
  s.target_in_flight = r.U64();
  s.notifies_sent = r.U64();
  s.notifies_received = r.U64();
  s.direct_calls = r.U64();
  s.crashed = r.U8() != 0;
  if (!r.done()) return Status(ErrorCode::INTERNAL_ERROR, "malformed stats reply");
  return s;
}

// ---- the node process --------------------------------------------------------------------

namespace {

// One node process: a UcxTransport served by proc::NodeHost; its own request is kStats,
// and its install reply carries the transport's capabilities.
class Host final : public proc::NodeHost {
 public:
  Host(int sock, UcxTransportOptions options)
      : NodeHost(sock, "tidal-ucx-host", "ucx-host"), ucx_(options) {
    transport_ = &ucx_;
  }

 private:
  void InstallReply(Writer& w) override {
    const TransportCaps c = ucx_.Capabilities();
    w.U8(static_cast<uint8_t>((c.host_to_host ? 1 : 0) | (c.host_to_cuda ? 2 : 0) |
                              (c.cuda_to_cuda ? 4 : 0) | (c.notifications ? 8 : 0)));
  }

  bool HandleOwn(uint8_t type, Reader& r, Writer& w, const std::string& body) override {
    (void)body;
    switch (type) {
      case kStats: {
        if (!r.done()) return false;
        // Counters first, then what is ready: everything they count as received is
        // queued before the reply goes (notifications are queued before they are counted).
        const UcxTransportStats s = ucx_.stats();
        Drain();
        w.U64(s.outstanding);
        w.U64(s.target_in_flight);
        w.U64(s.notifies_sent);
        w.U64(s.notifies_received);
        w.U64(s.direct_calls);
        w.U8(s.crashed ? 1 : 0);
        return true;
      }
      default:
        return Unknown(type);
    }
  }

  UcxTransport ucx_;
};

}  // namespace

int RunUcxHost(int sock, int arena_fd, uint64_t arena_addr, size_t arena_bytes, size_t node,
               UcxTransportOptions options) {
  Status mapped = SharedArena::MapAt(arena_fd, arena_addr, arena_bytes);
  Writer hello;
  hello.St(mapped);
  if (!SendFrame(sock, kHello, 0, hello.out())) return 2;
  if (!mapped.ok()) {
    std::fprintf(stderr, "tidal-ucx-host: node %zu: %s\n", node, mapped.ToString().c_str());
    return 2;
  }
  Host host(sock, options);
  return host.Run();
}

// ---- UcxProcessFabric --------------------------------------------------------------------

Result<std::unique_ptr<UcxProcessFabric>> UcxProcessFabric::Make(UcxProcessFabricOptions options) {
  std::unique_ptr<UcxProcessFabric> f(new UcxProcessFabric(std::move(options)));
  Status s = f->Start();
  if (!s.ok()) return s;
  return f;
}

Status UcxProcessFabric::Start() {
  Result<std::unique_ptr<SharedArena>> arena = SharedArena::Make(options_.arena_bytes);
  if (!arena.ok()) return arena.status();
  arena_ = std::move(*arena);
  for (size_t i = 0; i < options_.nodes; ++i) {
    auto proxy = std::make_unique<UcxProxyTransport>(options_.process, *arena_, i);
    if (Status s = proxy->Start(); !s.ok()) return s;
    proxies_.push_back(proxy.get());
    std::unique_ptr<Transport> transport = std::move(proxy);
    if (options_.contract_checker) {
      transport = std::make_unique<ContractChecker>(std::move(transport), true);
    }
    engines_.push_back(std::make_unique<TransferEngine>(env_, std::move(transport), metadata_,
                                                        NodeName(i), options_.engine));
    messengers_.push_back(std::make_unique<LoopbackMessenger>(hub_, env_, NodeName(i)));
    // Each proxy's reader thread posts completions to the shared loop.
    env_.AddPoster();
    ++posters_;
  }
  return RunBlocking(env_, StartEngines(engines_));
}

UcxProcessFabric::~UcxProcessFabric() {
  if (!engines_.empty()) RunBlocking(env_, StopEngines(engines_));
  env_.DestroyRoots();
  engines_.clear();  // each proxy asks its child to leave and reaps it
  messengers_.clear();
  for (; posters_ > 0; --posters_) env_.RemovePoster();
}

void* UcxProcessFabric::Allocate(size_t node, size_t bytes, Location location) {
  TIDAL_ASSERT(node < size());
  (void)location;  // host memory, as UcxFabric: the transport moves host memory only
  void* p = arena_->Allocate(bytes);
  TIDAL_ASSERT_MSG(p != nullptr,
                   "UcxProcessFabric: the shared arena is exhausted "
                   "(UcxProcessFabricOptions::arena_bytes)");
  return p;
}

void UcxProcessFabric::CopyOut(void* host_target, const void* fabric_source, size_t bytes) {
  std::memcpy(host_target, fabric_source, bytes);
}

void UcxProcessFabric::CopyIn(void* fabric_target, const void* host_source, size_t bytes) {
  std::memcpy(fabric_target, host_source, bytes);
}

Status UcxProcessFabric::Crash(size_t node) {
  if (node >= size()) return Status(ErrorCode::INVALID_PARAMS, "no such node");
  proxies_[node]->Kill();
  messengers_[node]->SetDown(true);
  return Status();
}

}  // namespace tidal::backends::ucx
