// CudaProcessFabric (registry name "cuda_proc"): N nodes whose CudaTransports live in
// separate OS processes, one GPU each (node i on cuda:<i % D>, D = cudaGetDeviceCount).
//
// What runs where (the pattern of the ucx_proc fabric):
//  * The parent (the process that made the fabric) runs every node's TransferEngine, the
//    store, the process groups and the LoopbackMessenger control plane on one RealEnv.
//  * Each node's Transport is a CudaProxyTransport: it forwards every call to a child
//    process, `tidal-cuda-host`, over a socketpair (a framed, length-checked protocol),
//    and hands back the completions and notifications the child pushes.
//  * Each child owns a real CudaTransport on its own RealEnv, with its home GPU made
//    current. Bytes between nodes move child to child as CudaTransport moves them between
//    processes: GPU memory through CUDA IPC handles (peer to peer over NVLink), host
//    memory through process_vm_readv/writev (each child allows its peers to do so with
//    PR_SET_PTRACER; root or Yama ptrace_scope 0 need nothing); liveness and
//    notifications over the transport's abstract unix socket.
//  * Host memory (Allocate(node, n, host)) is a SharedArena: a memfd mapped in the parent
//    and in every child at one fixed address, so the parent fills and reads it directly.
//  * GPU memory (Allocate(node, n, cuda:N)) is cudaMalloc in the node's process, on
//    device N (zeroed). The parent never dereferences it: CopyIn/CopyOut of such a range
//    are round trips to its process (cudaMemcpy there). Two processes may be handed the
//    same device address; the fabric keeps every node's allocations disjoint (an
//    allocation that overlaps another node's is taken again, the overlapping one kept
//    aside until then), so an address names one node's memory.
//
// Crash(node) SIGKILLs the node's process and takes its messenger endpoint down: its
// peers' copies, probes and notifications fail PEER_UNREACHABLE (the socket is gone), the
// killed node's proxy completes its outstanding tasks with PEER_UNREACHABLE and answers
// every later call with PEER_UNREACHABLE. A child that dies without Crash is reaped and
// reported on stderr. Children die with the parent (PR_SET_PDEATHSIG) and are asked to
// leave, then killed and reaped, by the fabric's destructor.
//
// Make returns UNSUPPORTED "no CUDA device: ..." without a GPU (the registry's probe), and
// UNSUPPORTED naming the node and device when a node process cannot make its GPU current
// (say, a GPU in exclusive-process mode already taken), so suites skip saying which.
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
#include "tidal/backends/registry.h"
#include "tidal/fabric.h"
#include "tidal/transfer_engine.h"
#include "tidal/transport.h"

namespace tidal::backends::cuda {

// Host memory shared by the parent and every node process at one address (a
// proc::ProcessArena at 48 TiB upwards, memfd "tidal-cuda-arena").
class SharedHostArena final : public proc::ProcessArena {
 public:
  // Maps `bytes` at the first free address of a fixed list (the same list in every
  // process). INTERNAL_ERROR names the addresses tried when none is free.
  static Result<std::unique_ptr<SharedHostArena>> Make(size_t bytes);

 private:
  using ProcessArena::ProcessArena;
};

// Where the node-process binary is: $TIDAL_CUDA_HOST if set, else `tidal-cuda-host` next
// to the running executable, else the path the build configured. INVALID_PARAMS naming
// every place looked at when none exists.
Result<std::string> CudaHostPath();

struct CudaProcessOptions {
  std::string host_path;  // empty: CudaHostPath()
  // How long a call waits for the child's answer before the node is declared lost.
  uint64_t call_timeout_ms = 30'000;
};

// The Transport of a node whose CudaTransport runs in a child process (see above). Spawns
// the child at Start; every Transport method is a round trip to it, except
// PollCompletions and PollNotifies, which drain what the child pushed.
class CudaProxyTransport final : public Transport, public proc::NodeProcess {
 public:
  CudaProxyTransport(CudaProcessOptions options, const SharedHostArena& arena, size_t node,
                     int device);
  ~CudaProxyTransport() override { Stop(); }
  CudaProxyTransport(const CudaProxyTransport&) = delete;
  CudaProxyTransport& operator=(const CudaProxyTransport&) = delete;

  // Spawns the child and waits for its hello. INTERNAL_ERROR with the child's reason when
  // it cannot start; UNSUPPORTED when it cannot make its GPU current. Start is Launch (the
  // fork and exec) then AwaitHello: a fabric launches every node before it awaits any.
  Status Start();
  Status Launch();
  Status AwaitHello();

  std::string_view Name() const override { return "cuda"; }
  TransportCaps Capabilities() const override { return TransportCaps{true, true, true, true}; }
  Status Install(const TransportInstall& install) override;
  std::string LocalAddress() const override { return local_address_; }
  // Arena memory (host) or memory this node's process allocated (cuda:N); anything else
  // names unrelated memory in the child and is REGISTRATION_FAILED before it is asked.
  Result<uint64_t> RegisterMemory(uint64_t addr, uint64_t length, Location loc) override;
  Status UnregisterMemory(uint64_t addr, uint64_t length) override;
  Result<PeerId> Connect(const SegmentDescriptor& peer) override;
  void Submit(std::span<const TransportTask> tasks, std::span<Status> accepted) override;
  size_t PollCompletions(std::span<TransportCompletion> out) override;
  Status Cancel(uint64_t task_id) override;
  Status SendNotify(PeerId peer, std::string_view payload) override;
  size_t PollNotifies(std::vector<Notification>& out, size_t max) override;

  // GPU memory in the child: cudaMalloc of `bytes` on `device`, zeroed. Any thread.
  Result<uint64_t> DeviceAlloc(uint64_t bytes, int device);
  Status DeviceFree(uint64_t addr);
  // cudaMemcpy between the parent's bytes and the child's memory at `addr`.
  Status WriteMemory(uint64_t addr, const void* src, uint64_t bytes);
  Status ReadMemory(void* dst, uint64_t addr, uint64_t bytes);
  // True when [addr, +len) lies in one allocation DeviceAlloc returned.
  bool OwnsDevice(uint64_t addr, uint64_t len) const;
  // True when [addr, +len) shares a byte with an allocation DeviceAlloc returned.
  bool OverlapsDevice(uint64_t addr, uint64_t len) const;

  int device() const { return device_; }

 private:
  CudaProcessOptions options_;
  const SharedHostArena& arena_;
  int device_;
  std::string local_address_;
  std::map<uint64_t, uint64_t> allocations_;  // child allocations: addr -> bytes; mu_
};

struct CudaProcessFabricOptions {
  size_t nodes = 2;
  TransferEngineOptions engine;
  CudaProcessOptions process;
  bool contract_checker = true;          // wrap every proxy in a ContractChecker (aborts)
  size_t arena_bytes = size_t{1} << 30;  // virtual; pages cost only when touched
};

class CudaProcessFabric final : public Fabric {
 public:
  // UNSUPPORTED without a GPU or when a node process cannot get its GPU (naming it);
  // INTERNAL_ERROR with the reason when the arena cannot be mapped or a node process or
  // engine cannot start.
  static Result<std::unique_ptr<CudaProcessFabric>> Make(CudaProcessFabricOptions options);
  ~CudaProcessFabric() override;

  std::string_view Name() const override { return "cuda_proc"; }
  bool simulated() const override { return false; }
  size_t size() const override { return engines_.size(); }
  Env& env(size_t) override { return env_; }
  TransferEngine& engine(size_t node) override { return *engines_[node]; }
  Messenger& messenger(size_t node) override { return *messengers_[node]; }
  MetadataStore& metadata() override { return metadata_; }
  // Host: arena memory. cuda:N: cudaMalloc on device N in the node's process (disjoint
  // from every other node's). Aborts when the arena is exhausted or the child cannot
  // allocate (as the other fabrics abort on exhausted memory).
  void* Allocate(size_t node, size_t bytes, Location location) override;
  void CopyOut(void* host_target, const void* fabric_source, size_t bytes) override;
  void CopyIn(void* fabric_target, const void* host_source, size_t bytes) override;
  // SIGKILLs the node's process and takes its messenger endpoint down.
  Status Crash(size_t node) override;

  int device_count() const { return device_count_; }
  int home_device(size_t node) const { return static_cast<int>(node % device_count_); }
  CudaProxyTransport& proxy(size_t node) { return *proxies_[node]; }
  SharedHostArena& arena() { return *arena_; }
  pid_t pid(size_t node) const { return proxies_[node]->pid(); }

 private:
  CudaProcessFabric(CudaProcessFabricOptions options, int device_count)
      : options_(std::move(options)), device_count_(device_count) {}
  Status Start();
  CudaProxyTransport* Owner(uint64_t addr, uint64_t len) const;

  CudaProcessFabricOptions options_;
  int device_count_;
  RealEnv env_{"cuda_proc"};
  InMemoryMetadataStore metadata_;
  std::unique_ptr<SharedHostArena> arena_;
  std::shared_ptr<LoopbackHub> hub_ = std::make_shared<LoopbackHub>();
  std::vector<CudaProxyTransport*> proxies_;  // owned by the engines
  std::vector<std::unique_ptr<LoopbackMessenger>> messengers_;
  std::vector<std::unique_ptr<TransferEngine>> engines_;
  int posters_ = 0;
};

// The node-process side: maps the arena, makes `device` current and serves one parent over
// `sock` until it closes (tidal-cuda-host). Returns the process exit status.
int RunCudaHost(int sock, int arena_fd, uint64_t arena_addr, size_t arena_bytes, size_t node,
                int device);

// The registry's maker and probe ("" when a CUDA device is present).
Result<std::unique_ptr<Fabric>> MakeCudaProcessFabric(FabricSpec spec);

}  // namespace tidal::backends::cuda
