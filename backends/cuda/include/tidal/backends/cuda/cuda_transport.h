// CudaTransport: the Transport contract (tidal/transport.h) for `cuda:N` and host memory
// between nodes of ONE process, over CUDA peer access (NVLink or PCIe) and host<->device
// copies.
//
// Model. Every transport of the process joins one in-process domain under its address
// ("cuda:<pid>:<serial>:<nonce>:<board fd>"). Connect resolves a peer of this process to
// its endpoint. The target side's window and key check runs against the peer's own region
// registry (the one its RegisterMemory fills), under the peer's lock, before any byte
// moves, and pins the target region until the copy completes: the peer's UnregisterMemory
// answers BATCH_BUSY meanwhile, so an unregistered range is never touched again.
//
// Across processes (one host). A peer in another process is reached through its *board*
// (src/cuda_ipc.h): a shared table of its regions that its RegisterMemory fills, mapped
// through /proc/<pid>/fd/<board fd>. The check and the pin run against that table under its
// process-shared robust mutex, as above. cudaMalloc memory carries its CUDA IPC handle
// there: the initiator opens it once (cudaIpcOpenMemHandle, one mapping per allocation and
// process, closed when the region is unregistered or registered again, and on close) and
// copies with the copy engines as below. Host memory of another process is reached with
// process_vm_readv/writev (needs ptrace permission over the peer: same user and Yama
// ptrace_scope 0, or CAP_SYS_PTRACE); a GPU range to or from it stages through a pinned
// bounce buffer. Notifications travel as datagrams on an abstract unix socket named after
// the transport; a peer whose process died is PEER_UNREACHABLE (its socket is gone), for
// probes, copies not yet reported and notifications alike.
//
// Data path. A READ or WRITE is one asynchronous copy on a stream of the initiating side
// (one stream per (device, peer)): cudaMemcpyPeerAsync when both ranges are cudaMalloc
// memory on two devices, cudaMemcpyAsync (unified addressing, cudaMemcpyDefault) when one
// side is host memory, managed memory or the same device, followed by a CUDA event. A
// host-to-host task is a memmove made by that progress thread (Submit never blocks on
// it). A progress thread owned by the transport polls
// the events of copies in flight; when one has completed, the data is visible at the
// target, the completion is queued and `on_ready` is called from that thread.
// The transport's streams do not wait for the caller's work: device memory a task reads
// must be complete when Submit is called (synchronize the stream or device that wrote it;
// a cudaMemcpy from pageable host memory may return before its DMA has landed).
//
// Completions: OK with every byte, or REMOTE_ACCESS_DENIED / ADDRESS_NOT_REGISTERED /
// PEER_UNREACHABLE moving nothing, or TRANSFER_FAIL when CUDA refused the copy (nothing
// was enqueued). A copy engine cannot abort a copy it started, so Cancel of a task whose
// copy is enqueued lets it finish (a bounded wait: length / link bandwidth) and reports
// OK with every byte, which the contract allows ("possibly OK if it had already
// finished").
//
// Notifications go straight into the peer's inbox and wake it with its on_ready. A WRITE
// is reported complete only after its event, so every write completed before a
// SendNotify is visible when the notification arrives.
//
// Thread safety: the Transport methods are called on the node's executor (one thread at
// a time); the progress thread and peers' threads touch only the mutex-guarded state.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tidal/transport.h"

namespace tidal::backends::cuda {

// The number of CUDA devices this process sees, or the reason there are none ("no CUDA
// device: ..."), as cudaGetDeviceCount answers.
Result<int> CudaDeviceCount();

class CudaTransport final : public Transport {
 public:
  CudaTransport();
  ~CudaTransport() override;
  CudaTransport(const CudaTransport&) = delete;
  CudaTransport& operator=(const CudaTransport&) = delete;

  std::string_view Name() const override { return "cuda"; }
  TransportCaps Capabilities() const override { return TransportCaps{true, true, true, true}; }
  Status Install(const TransportInstall& install) override;
  std::string LocalAddress() const override;
  // Validates the range with cudaPointerGetAttributes: `cuda:N` must be device or managed
  // memory of device N, host must not be device memory. REGISTRATION_FAILED otherwise.
  Result<uint64_t> RegisterMemory(uint64_t addr, uint64_t length, Location loc) override;
  // BATCH_BUSY while a copy (local or a peer's) uses the region.
  Status UnregisterMemory(uint64_t addr, uint64_t length) override;
  Result<PeerId> Connect(const SegmentDescriptor& peer) override;
  void Submit(std::span<const TransportTask> tasks, std::span<Status> accepted) override;
  size_t PollCompletions(std::span<TransportCompletion> out) override;
  Status Cancel(uint64_t task_id) override;
  Status SendNotify(PeerId peer, std::string_view payload) override;
  size_t PollNotifies(std::vector<Notification>& out, size_t max) override;

  // Fail-stop in the process: peers' probes, copies and notifications to this node fail
  // with PEER_UNREACHABLE from now on, and its own calls refuse. Copies already enqueued
  // finish (a DMA cannot be recalled) and their completions are dropped.
  void Crash();
  // True when no copy is in flight: every completion that will come has been queued.
  bool Idle() const;
  // How long the progress thread polls for a new copy after its last one completed before
  // it sleeps (default 50 us): a copy submitted within that time is watched at once
  // instead of after a wake-up. 0: sleep at once.
  void SetIdleSpinNs(uint64_t ns);
  // While copies run, the progress thread asks their events again after a pause of `ns`
  // spent without CUDA calls (default 0: after a yield).
  void SetPollGapNs(uint64_t ns);
  // Completion events: a copy of at least `bytes` gets an event of its own, recorded right
  // after it; smaller copies that one Submit queues on one stream share the event recorded
  // after the last of them (each reported when that event fires). 0: an event per copy.
  // The default, 2 MiB, is what measured best on 2 x H200 (docs/performance.md): 1 MiB
  // copies gain from sharing, 4 MiB and larger ones lose 3-10 % when they share.
  static constexpr uint64_t kDefaultEventBytes = 2ULL << 20;
  void SetEventBytes(uint64_t bytes);
  // Copies that share a completion event (under SetEventBytes' bytes, queued by one Submit
  // on one stream) are issued by one cudaMemcpyBatchAsync per stream (CUDA 12.8 and later)
  // instead of one cudaMemcpyPeerAsync / cudaMemcpyAsync each; a lone copy, and every copy
  // when that call fails, is issued on its own as before. The copies of one call may run in
  // any order, which the transport contract allows (tasks complete in any order). Default
  // on: a window of 32 x 1 MiB WRITEs ran at 1.07-1.16 x cudaMemcpyPeerAsync batched
  // against 0.89-0.95 x issued one by one (2 x H200, docs/performance.md); larger copies are
  // not batched. BatchCopiesSupported: whether this build has the call (else the setting
  // changes nothing).
  void SetBatchCopies(bool on);
  bool batch_copies() const;
  // With SetBatchCopies: the batched copies of one Submit to one stream go out in two calls,
  // the first as soon as a quarter of the Submit's tasks (at least 2) are checked and the rest
  // when the group's event is recorded, so the copy engine starts on the first ones while the
  // host still checks and issues the others (as with a loop of cudaMemcpyPeerAsync); off: one
  // call for the whole group after every task was checked, the copy engine idle meanwhile.
  // Default on: 1 MiB WRITEs in windows of 8 / 16 / 32 ran at 1.06 / 1.05 / 1.18 x
  // cudaMemcpyPeerAsync on average over six processes against 0.92 / 0.97 / 0.95 x with
  // one call (2 x H200, docs/performance.md).
  void SetBatchRamp(bool on);
  bool batch_ramp() const;
  // CUDA streams per (device, peer): copies of at least SetEventBytes' bytes take them in
  // turn, so two large copies to one peer can run at once on separate copy engines; smaller
  // copies stay on the first. Completion is per copy (its event), never by stream order
  // across lanes. Default 1 (one stream per device and peer, as before); 0 counts as 1.
  void SetStreamsPerPeer(uint32_t lanes);
  static bool BatchCopiesSupported();
  // Caller polling (default on; takes effect when the install's env is a RealEnv): while
  // that env's loop spins waiting for a post (RealEnv::SetSpinNs), it asks the completion
  // events of copies in flight itself (RealEnv::AddSpinPoller), and a finished copy's
  // completion is queued and run on that thread, without the progress thread's hand-off;
  // meanwhile (for 20 us after the loop last asked) the progress thread asks none, so the two
  // do not contend for the driver. When the loop does not spin (spin 0, or busy, or
  // asleep) the progress thread polls as before. Off: only the progress thread polls.
  void SetCallerPolling(bool on);
  bool caller_polling() const;
  // What the copy path has done since the transport was made (for benchmarks and tests):
  // copies queued on CUDA streams, completion events recorded (SetEventBytes) and event
  // queries made by the progress thread or the env's loop (each asks only the oldest
  // unfinished event of each stream, since a stream finishes its copies in order).
  struct Counters {
    uint64_t gpu_copies = 0;
    uint64_t events_recorded = 0;
    uint64_t event_queries = 0;
    uint64_t batch_calls = 0;  // cudaMemcpyBatchAsync calls that queued their copies
    uint64_t lane_copies = 0;  // copies on a stream other than the first of their pair
    uint64_t caller_groups = 0;  // completion events found fired by the env's loop (caller polling)
  };
  Counters counters() const;

  struct Endpoint;  // the state peers reach (registry, inbox, liveness)
  struct State;     // the copies in flight, completions, streams, the progress thread
  struct Remote;    // a peer in another process: its board, the IPC mappings opened
  struct Peer {
    std::shared_ptr<Endpoint> local;  // a peer of this process, or
    std::shared_ptr<Remote> remote;   // one of another process
  };

 private:
  void PollFromCaller();  // the env's spin poller (SetCallerPolling)

  std::shared_ptr<Endpoint> self_;
  std::unique_ptr<State> state_;
  std::vector<Peer> peers_;
  Env* env_ = nullptr;
  bool installed_ = false;
};

}  // namespace tidal::backends::cuda
