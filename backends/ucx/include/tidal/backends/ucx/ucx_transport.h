// UcxTransport: the Transport contract (engine/include/tidal/transport.h) on UCX's UCP
// layer. One UCP context and one worker per transport (one per node), driven by a progress
// thread the transport owns.
//
// How data moves. Every access is checked by the target, in software, against its own
// table of registered regions, so the contract's "remote range inside an exported window
// under the presented key, else REMOTE_ACCESS_DENIED, and nothing moves" holds on every
// UCX transport (tcp and shared memory do not check remote windows themselves, and UCX
// keeps no per-key window at all). A WRITE is one active message carrying
// {task, rkey, addr, length} and the data; the target looks the key up, checks the window,
// and receives the data straight into the registered range (zero-copy rendezvous for
// large messages; UCX packs its own one-transfer rkey into the rendezvous request), then
// acknowledges. A READ is a request the target checks the same way before it answers with
// the data from its registered range. A wrong, foreign, stale (unregistered) or zero key,
// or a range outside the key's window, is answered REMOTE_ACCESS_DENIED and no byte is
// received or sent. So no long-lived packed rkey ever leaves a node, and the segment
// descriptor's address blob carries only the worker address (docs/ucx.md). The one-sided
// mode (UcxTransportOptions::one_sided) hands packed rkeys out on request instead, and
// revokes them from their holders before UnregisterMemory unmaps; where the peer's memory
// is mapped into this process, WRITE and READ are then puts and gets.
//
// Target-side in-flight accounting: a region that is receiving a WRITE or sending a READ
// answer cannot be unregistered (BATCH_BUSY) until that finishes, so after
// UnregisterMemory returns OK neither UCX nor this transport touches the range again.
// The initiator keeps the same accounting for its local ranges.
//
// Completions: a WRITE completes when the target acknowledged that every byte is in its
// memory and UCX no longer reads the source buffer; a READ when every byte is in the local
// buffer. A notification is an active message sent after the acknowledgements of the
// writes it follows, so it arrives after their data (the contract's ordering clause).
// Probes are a ping answered by the peer's worker, with a deadline of their own.
// Endpoints use UCP_ERR_HANDLING_MODE_PEER: a peer that fails makes every task to it
// complete PEER_UNREACHABLE, never hang.
//
// Threading: every Transport method is called on the node Env's executor (the contract).
// The worker is UCS_THREAD_MODE_SERIALIZED under one lock of the transport's: the
// progress thread takes it to progress, run queued commands and arm; a method that sends
// (Submit, SendNotify, Cancel) takes it when it is free and makes the UCP calls on the
// caller's thread, so a request leaves without a thread hop; when the progress thread
// holds the lock the work is queued for it. RegisterMemory and UnregisterMemory map and
// unmap under the lock on the caller's thread. The progress thread polls the worker for
// spin_ns after the last activity (an event, or a caller's send) and then arms the worker
// and blocks on its event fd (at most busy_poll_ns with work in flight, idle_poll_ns
// without); a send wakes it (ucp_worker_signal) only if it sleeps. When the install's Env
// is a RealEnv, the transport registers a spin poller with it, so a loop that polls for a
// completion before blocking (RealEnv::SetSpinNs) progresses the worker itself. on_ready
// is called from the progress thread or from the caller's thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "tidal/transport.h"

namespace tidal::backends::ucx {

// Planted bugs: deliberate defects switched on at run time through
// UcxTransportOptions::planted_bug, to show that a failure recorded on UCX replays on the
// simulator (tidal-sim import), or to stand for a misbehaving peer. Default kNone; only
// tests set it.
enum class UcxBug : uint8_t {
  kNone,
  // The target of an eager WRITE (one that arrives with its data, small ones) stores all
  // but its last byte and acknowledges it OK. One-sided: a WRITE of up to 8 KiB puts all but
  // its last byte and completes OK.
  kWriteDropsLastByte,
  // One-sided: revocations are dropped unanswered, as by a holder that stalls (the target's
  // UnregisterMemory must then keep the region: ucx_transport_test).
  kIgnoresRevocations,
};

struct UcxTransportOptions {
  // A probe with no answer within this fails with PEER_UNREACHABLE (UCX's own failure
  // detection covers a closed connection; this covers a peer that stopped answering).
  uint64_t probe_timeout_ns = 1'000'000'000ULL;
  // The progress thread polls the worker (does not block) this long after the last
  // activity: an event it progressed, or a request a caller sent directly. Busy or not;
  // after it the thread arms the worker and blocks, so an idle node costs at most this
  // much CPU after its last activity. 0: block as soon as there is nothing to progress.
  uint64_t spin_ns = 50'000;
  // While operations are outstanding, the progress thread blocks on the event fd at most
  // this long before it progresses again (UCX does not signal every rendezvous step).
  uint64_t busy_poll_ns = 200'000;
  // With nothing in flight, at most this long (0: until an event). A peer's connection
  // set-up (wire-up) reaches an idle node without always signalling its event fd.
  uint64_t idle_poll_ns = 5'000'000;
  UcxBug planted_bug = UcxBug::kNone;  // tidal-sim import's UCX test only
  // The one-sided data path (docs/ucx.md, "One-sided mode"): WRITE and READ are
  // ucp_put_nbx / ucp_get_nbx on the target's packed UCX rkey, a WRITE completing when a
  // flush of the endpoint says its bytes are in the target's memory. The target still
  // decides who may access what: an initiator asks it for the packed key of a region the
  // first time it uses that region's key (the target refuses a wrong, foreign or stale
  // key; the initiator then checks every range against the region's bounds it was
  // given), and UnregisterMemory revokes the key from every peer holding it, waiting until
  // each has finished its accesses and dropped the key, before it unmaps. Off by default
  // (the target-checked active-message path); TIDAL_UCX_ONE_SIDED=1 in the environment
  // turns it on for options built without setting it (the ctest `ucx-1s` instances).
  bool one_sided = OneSidedFromEnvironment();
  // One-sided: how long UnregisterMemory waits for the peers holding the region's key to
  // release it. Past it the region stays registered, the key is no longer granted, and
  // BATCH_BUSY names how many peers did not answer (a later call asks them again). A peer
  // whose connection failed counts as released.
  uint64_t revoke_timeout_ns = 1'000'000'000ULL;
  // Where the node's env is a RealEnv: its event loop takes the worker's answers itself
  // while it runs (docs/ucx.md, "The loop drives the worker"): a direct send that leaves
  // an answer to wait for hands the worker to the loop, which progresses it between its
  // callbacks (RealEnv::AddLoopPoller), and the progress thread stands by until the loop is
  // about to block. Off: the progress thread polls after each direct send, beside a loop
  // that polls only while it waits. Default: on where this process may run on at least 4
  // CPUs (on 2 CPUs the progress thread's polling took answers while the loop's thread
  // was off its CPU, and the loop-driven mode measured slower); TIDAL_UCX_LOOP_DRIVES=1 or
  // =0 in the environment decides instead, for options built without setting it.
  bool loop_drives = LoopDrivesFromEnvironment();
  // One-sided, where a peer's region is mapped into this process (ucp_rkey_ptr: shared
  // memory UCX allocated): TryCopyNow runs a WRITE or READ as a CPU copy through the
  // mapping on the caller's thread, with no UCX call, request or completion (the engine's
  // TransferSync tries it first; docs/ucx.md, "Copies now"). Off: such tasks go through
  // Submit (ucp_put_nbx and a flush, or ucp_get_nbx). TIDAL_UCX_COPY_NOW=0 in the
  // environment turns it off for options built without setting it.
  bool copy_now = SwitchFromEnvironment("TIDAL_UCX_COPY_NOW").value_or(true);

  // An environment switch: true for "1", false for "0", nullopt when unset or anything else.
  static std::optional<bool> SwitchFromEnvironment(const char* name);
  static bool OneSidedFromEnvironment();
  static bool LoopDrivesFromEnvironment();
  // TIDAL_UCX_TRANSPORT_MEMORY=1: the default of the fabrics' and nodes' option to keep
  // their buffers in AllocateHostMemory blocks (UcxFabricOptions::transport_memory,
  // cluster::RealNodeOptions::transport_memory).
  static bool TransportMemoryFromEnvironment();
};

// Counters for tests and benchmarks (read from any thread).
struct UcxTransportStats {
  uint64_t outstanding = 0;        // accepted tasks not yet completed
  uint64_t target_in_flight = 0;   // WRITEs being received / READ answers being sent
  uint64_t notifies_sent = 0;
  uint64_t notifies_received = 0;
  uint64_t direct_calls = 0;       // sends made on the caller's thread (worker was free)
  uint64_t writes = 0;             // WRITE tasks accepted by Submit (one per engine slice)
  uint64_t write_bytes = 0;        // their bytes
  // The progress thread's blocking waits on the event fd, and how they ended: at the
  // busy_poll_ns bound with work in flight, at the idle_poll_ns bound with none. A stall
  // is a busy wait that ran out after which UCX had events to progress: work UCX did not
  // signal, which cost up to busy_poll_ns.
  uint64_t waits = 0;
  uint64_t busy_timeouts = 0;
  uint64_t idle_timeouts = 0;
  uint64_t stalls = 0;
  // Progress rounds the progress thread made while polling within spin_ns of the last
  // activity (instead of blocking), and the requests (sent directly or queued for it)
  // that found it asleep and woke it (ucp_worker_signal).
  uint64_t spin_rounds = 0;
  uint64_t signals = 0;
  // A waiting event loop's calls to progress the worker on its own thread (RealEnv spin
  // pollers; made only while this node has tasks outstanding), and the rounds among them
  // that found the worker free and progressed it.
  uint64_t caller_poll_calls = 0;
  uint64_t caller_polls = 0;
  // The loop-driven mode (docs/ucx.md): times the loop handed the worker back before it
  // blocked, the progress thread's waits while the loop drove it, and the rounds it made
  // of its own after such a wait ran out.
  bool loop_driven = false;  // the loop-driven mode is in use (options.loop_drives, a RealEnv)
  uint64_t loop_handbacks = 0;
  uint64_t standby_waits = 0;
  uint64_t standby_rounds = 0;
  // One-sided mode: key requests this node sent (one per peer region it started using),
  // puts and gets it issued, keys peers revoked from it, and the revocations this node
  // sent when it unregistered regions peers held.
  uint64_t key_fetches = 0;
  uint64_t puts = 0;
  uint64_t gets = 0;
  uint64_t keys_revoked = 0;
  uint64_t revokes_sent = 0;
  // TryCopyNow's copies through a peer's mapped memory (counted in writes and write_bytes
  // too, not in puts and gets, which are UCX calls).
  uint64_t copies = 0;
  bool crashed = false;
};

class UcxTransport final : public Transport {
 public:
  explicit UcxTransport(UcxTransportOptions options = {});
  ~UcxTransport() override;
  UcxTransport(const UcxTransport&) = delete;
  UcxTransport& operator=(const UcxTransport&) = delete;

  std::string_view Name() const override { return "ucx"; }
  TransportCaps Capabilities() const override;
  // Creates the UCP context and worker and starts the progress thread. INVALID_PARAMS when
  // installed twice or without env/on_ready; INTERNAL_ERROR when UCX cannot start (the
  // message carries UCX's reason).
  Status Install(const TransportInstall& install) override;
  std::string LocalAddress() const override;
  Result<uint64_t> RegisterMemory(uint64_t addr, uint64_t length, Location loc) override;
  Status UnregisterMemory(uint64_t addr, uint64_t length) override;
  Result<PeerId> Connect(const SegmentDescriptor& peer) override;
  void Submit(std::span<const TransportTask> tasks, std::span<Status> accepted) override;
  // One-sided with copy_now, a granted key whose region UCX mapped into this process, the
  // node not crashed and the peer not failed: the copy, on this thread (false otherwise,
  // having done nothing). The key is counted in flight meanwhile, so a revocation waits for
  // the copy before UCX unmaps the region.
  bool TryCopyNow(const TransportTask& task) override;
  size_t PollCompletions(std::span<TransportCompletion> out) override;
  Status Cancel(uint64_t task_id) override;
  Status SendNotify(PeerId peer, std::string_view payload) override;
  size_t PollNotifies(std::vector<Notification>& out, size_t max) override;

  // Host memory allocated and mapped by UCX (ucp_mem_map with UCP_MEM_MAP_ALLOCATE): on
  // UCX's shared-memory transports a segment peers map into their own address space, so a
  // one-sided WRITE into it is a copy by the initiator's CPU, with no kernel call (memory
  // of the caller's own is reached through process_vm_writev instead). Zero-filled;
  // register it (or ranges of it) with RegisterMemory as any memory. It lives until the
  // transport is destroyed. REGISTRATION_FAILED with UCX's reason when it cannot.
  Result<void*> AllocateHostMemory(uint64_t length);

  // Fail-stop: stops the progress thread and destroys the worker and its connections
  // (peers see their connections fail). Afterwards every call answers PEER_UNREACHABLE or
  // nothing. Called on the executor.
  void Crash();
  UcxTransportStats stats() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tidal::backends::ucx
