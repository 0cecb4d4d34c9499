// UcxProcessFabric (registry name "ucx_proc"): N nodes whose UCX transports live in
// separate OS processes.
//
// What runs where:
//  * The parent (the process that made the fabric) runs every node's TransferEngine, the
//    store, the process groups and the LoopbackMessenger control plane on one RealEnv, as
//    UcxFabric does.
//  * Each node's Transport is a UcxProxyTransport: it forwards every call to a child
//    process, `tidal-ucx-host`, over a socketpair (a framed, length-checked protocol,
//    below), and hands back the completions and notifications the child pushes.
//  * Each child owns a real UcxTransport (its own UCP context, worker and progress
//    thread) installed on its own RealEnv. Bytes between nodes move child to child
//    through UCX (UCX_TLS: tcp, or shared memory with sm,self / posix,self).
//  * Fabric memory is a SharedArena: a memfd mapped in the parent and in every child at
//    one fixed address (MAP_FIXED_NOREPLACE), so an address the parent allocated and
//    registered names the same bytes in every process. The parent fills and reads the
//    memory; the children register it with UCX and move it; the arena is never used to
//    copy between nodes.
//
// Crash(node) SIGKILLs the node's process and takes its messenger endpoint down: its
// peers see real UCX errors (PEER_UNREACHABLE, from UCX's failure detection or the probe
// deadline), and the killed node's proxy completes its outstanding tasks with
// PEER_UNREACHABLE and answers every later call with PEER_UNREACHABLE. A child that dies
// without Crash is reaped and reported on stderr (its pid and how it ended), with the
// same effect on its proxy. Children die with the parent (PR_SET_PDEATHSIG) and are
// killed and reaped by the fabric's destructor.
//
// Wire protocol (both directions): frames of `u32 length` (of what follows, at most
// kMaxFrame) then `u8 type, u64 id` and a type-specific body of little-endian integers
// and u32-length-prefixed strings. The parent sends requests (id > 0) and waits for the
// one reply with its id; the child pushes completions and notifications as events
// (id 0) whenever its transport signals them. Anything malformed ends the connection.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tidal/backends/loopback_messenger.h"
#include "tidal/backends/process_fabric.h"
#include "tidal/backends/real_env.h"
#include "tidal/backends/ucx/ucx_transport.h"
#include "tidal/fabric.h"
#include "tidal/transfer_engine.h"
#include "tidal/transport.h"

namespace tidal::backends::ucx {

// Memory shared by the parent and every node process at one address (a
// proc::ProcessArena at 32 TiB upwards, memfd "tidal-ucx-arena").
class SharedArena final : public proc::ProcessArena {
 public:
  // Maps `bytes` at the first free address of a fixed list (the same list in every
  // process). INTERNAL_ERROR names the addresses tried when none is free.
  static Result<std::unique_ptr<SharedArena>> Make(size_t bytes);

 private:
  using ProcessArena::ProcessArena;
};

// Where the node-process binary is: $TIDAL_UCX_HOST if set, else `tidal-ucx-host` next to
// the running executable, else the path the build configured. NOT_FOUND-style
// INVALID_PARAMS naming every place looked at when none exists.
Result<std::string> UcxHostPath();

struct UcxProcessOptions {
  UcxTransportOptions transport;  // the child's UcxTransport
  std::string host_path;          // empty: UcxHostPath()
  // How long a call waits for the child's answer before the node is declared lost.
  uint64_t call_timeout_ms = 30'000;
};

// The Transport of a node whose UcxTransport runs in a child process (see above). Spawns
// the child at Start; every Transport method is a round trip to it, except
// PollCompletions and PollNotifies, which drain what the child pushed.
class UcxProxyTransport final : public Transport, public proc::NodeProcess {
 public:
  // `arena` is mapped by the child at its address; `node` names the child in messages.
  UcxProxyTransport(UcxProcessOptions options, const SharedArena& arena, size_t node);
  ~UcxProxyTransport() override { Stop(); }
  UcxProxyTransport(const UcxProxyTransport&) = delete;
  UcxProxyTransport& operator=(const UcxProxyTransport&) = delete;

  // Spawns the child and waits for its hello. INTERNAL_ERROR with the child's reason
  // (arena address taken, UCX missing, binary not found) when it cannot start.
  Status Start();

  std::string_view Name() const override { return "ucx"; }
  TransportCaps Capabilities() const override;
  Status Install(const TransportInstall& install) override;
  std::string LocalAddress() const override { return local_address_; }
  Result<uint64_t> RegisterMemory(uint64_t addr, uint64_t length, Location loc) override;
  Status UnregisterMemory(uint64_t addr, uint64_t length) override;
  Result<PeerId> Connect(const SegmentDescriptor& peer) override;
  void Submit(std::span<const TransportTask> tasks, std::span<Status> accepted) override;
  size_t PollCompletions(std::span<TransportCompletion> out) override;
  Status Cancel(uint64_t task_id) override;
  Status SendNotify(PeerId peer, std::string_view payload) override;
  size_t PollNotifies(std::vector<Notification>& out, size_t max) override;

  // The child's transport counters (a round trip). PEER_UNREACHABLE once it is gone.
  Result<UcxTransportStats> Stats();

 private:
  UcxProcessOptions options_;
  const SharedArena& arena_;
  std::string local_address_;
  TransportCaps caps_;
};

struct UcxProcessFabricOptions {
  size_t nodes = 2;
  TransferEngineOptions engine;
  UcxProcessOptions process;
  bool contract_checker = true;          // wrap every proxy in a ContractChecker (aborts)
  size_t arena_bytes = size_t{1} << 30;  // virtual; pages cost only when touched
};

class UcxProcessFabric final : public Fabric {
 public:
  // INTERNAL_ERROR with the reason when the arena cannot be mapped or a node process or
  // engine cannot start.
  static Result<std::unique_ptr<UcxProcessFabric>> Make(UcxProcessFabricOptions options);
  ~UcxProcessFabric() override;

  std::string_view Name() const override { return "ucx_proc"; }
  bool simulated() const override { return false; }
  size_t size() const override { return engines_.size(); }
  Env& env(size_t) override { return env_; }
  TransferEngine& engine(size_t node) override { return *engines_[node]; }
  Messenger& messenger(size_t node) override { return *messengers_[node]; }
  MetadataStore& metadata() override { return metadata_; }
  // Arena memory (host memory whatever the location, as UcxFabric); aborts when the arena
  // is exhausted (UcxProcessFabricOptions::arena_bytes).
  void* Allocate(size_t node, size_t bytes, Location location) override;
  void CopyOut(void* host_target, const void* fabric_source, size_t bytes) override;
  void CopyIn(void* fabric_target, const void* host_source, size_t bytes) override;
  // SIGKILLs the node's process and takes its messenger endpoint down.
  Status Crash(size_t node) override;

  UcxProxyTransport& proxy(size_t node) { return *proxies_[node]; }
  // The memory every node process sees: buffers a layer registers on its own (process
  // group slots and staging) must come from here.
  SharedArena& arena() { return *arena_; }
  pid_t pid(size_t node) const { return proxies_[node]->pid(); }

 private:
  explicit UcxProcessFabric(UcxProcessFabricOptions options) : options_(std::move(options)) {}
  Status Start();

  UcxProcessFabricOptions options_;
  RealEnv env_{"ucx_proc"};
  InMemoryMetadataStore metadata_;
  std::unique_ptr<SharedArena> arena_;
  std::shared_ptr<LoopbackHub> hub_ = std::make_shared<LoopbackHub>();
  std::vector<UcxProxyTransport*> proxies_;  // owned by the engines
  std::vector<std::unique_ptr<LoopbackMessenger>> messengers_;
  std::vector<std::unique_ptr<TransferEngine>> engines_;
  int posters_ = 0;
};

// The node-process side: serves one parent over `sock` until it closes (tidal-ucx-host).
// Returns the process exit status.
int RunUcxHost(int sock, int arena_fd, uint64_t arena_addr, size_t arena_bytes, size_t node,
               UcxTransportOptions options);

}  // namespace tidal::backends::ucx
