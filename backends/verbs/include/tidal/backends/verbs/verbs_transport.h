// VerbsTransport: tidal::Transport over ibverbs reliable-connected queue pairs.
//
// NICs. At Install the transport opens the RDMA devices (all, or the one named in
// options.device) and uses their active ports (options.port, or every port whose state is
// IBV_PORT_ACTIVE). Each NIC (device + port) has its own protection domain, one
// completion queue shared by its queue pairs, a UD queue pair for the connection
// handshake and a registered control buffer (handshake messages, notification slots).
//
// Address blob (LocalAddress, published in the segment descriptor):
//   "tvb1" u32 nic_count, per NIC: str device, u8 port, u16 lid, 16-byte GID, u8 mtu,
//   u32 ud_qpn, u32 psn;
//   u32 region_count, per region: u64 addr, u64 length, u64 key, u64 window_bytes,
//   u32 window_count, per window: u32 rkey for each NIC (in NIC order).
// A region longer than the device's max_mr_size (or options.max_window_bytes) is
// registered as several windows of window_bytes each (the last may be shorter), every
// window its own memory region on every NIC. A peer never accesses across a window: a
// task whose range crosses windows (remote or local) is sliced at the boundaries, each
// slice one work request within one window under that window's key, so the target HCA
// bounds every access. The 64-bit key RegisterMemory returns is a random 32-bit tag above
// the first window's rkey on the first NIC. A task into a region the peer's blob lists must
// present that key (REMOTE_ACCESS_DENIED before anything is posted otherwise) and is sliced
// by the blob's windows. A task into a range the blob we hold does not list (a region the
// peer registered after our last Connect with its descriptor) is posted as one access
// under the key's rkey, which the target's HCA bounds to the region's first window:
// REMOTE_ACCESS_DENIED beyond it, or on another NIC of the peer. Connect again with the
// newer descriptor to reach every window.
//
// Connections. RC queue pairs need each other's QPN, which is per pair and cannot be in a
// blob published before the peer exists; so the blob publishes each NIC's GID, LID, MTU,
// PSN and a UD QPN, and Connect sends a REQ (segment name, RC QPN, PSN, GID, LID, MTU)
// to the peer's UD queue pair; the peer creates its RC queue pair (RESET→INIT→RTR→RTS),
// posts receive buffers for notifications and answers REP (its RC QPN and PSN); the
// initiator then moves its queue pair INIT→RTR→RTS. Tasks submitted meanwhile queue on
// the endpoint. A lost REQ or REP is resent every options.handshake_timeout_ns, up to
// options.handshake_attempts times; then the next NIC pair is tried, and when none is
// left the endpoint's tasks complete PEER_UNREACHABLE. Connect to an address already
// connected returns its PeerId and takes the blob's newer region table.
//
// Work completions. Each slice is one signaled work request; a task completes when all
// of its slices did: OK with every byte, or the first failing slice's code with the bytes
// of the slices that succeeded. The status of a failed work completion maps to:
//
//   IBV_WC_REM_ACCESS_ERR, IBV_WC_REM_INV_REQ_ERR    REMOTE_ACCESS_DENIED
//   IBV_WC_LOC_PROT_ERR, IBV_WC_LOC_ACCESS_ERR,
//   IBV_WC_MW_BIND_ERR                               ADDRESS_NOT_REGISTERED
//   IBV_WC_RETRY_EXC_ERR, IBV_WC_RNR_RETRY_EXC_ERR,
//   IBV_WC_RESP_TIMEOUT_ERR, IBV_WC_FATAL_ERR        PEER_UNREACHABLE
//   IBV_WC_LOC_LEN_ERR, IBV_WC_REM_OP_ERR,
//   IBV_WC_LOC_QP_OP_ERR, IBV_WC_BAD_RESP_ERR,
//   IBV_WC_GENERAL_ERR, anything else                TRANSFER_FAIL
//   IBV_WC_WR_FLUSH_ERR                              not an error of its own: the task
//                                                    takes the cause that broke the QP
//
// Any error moves the queue pair to the error state: the endpoint is rebuilt (a new
// queue pair, a new handshake) and later tasks run on it. Path failures (the
// PEER_UNREACHABLE row) rebuild on the next NIC pair and re-post every task that was in
// flight, up to options.max_path_retries times per endpoint, before those tasks complete
// PEER_UNREACHABLE. Tasks flushed by another task's own error (access, protection) are
// innocent and are re-posted on the rebuilt queue pair.
//
// Resources. At most options.max_send_wr work requests are outstanding per queue pair
// and options.cq_depth per completion queue; beyond that, and when post_send answers
// ENOMEM, slices wait on their endpoint and are posted as completions free room. Any
// other post_send error completes the task TRANSFER_FAIL with the errno.
//
// Notifications. SendNotify posts a fenced SEND on the endpoint's queue pair after every
// slice already posted there, so the receiver sees it after the data of the writes that
// completed before it (RC executes a queue pair's requests in order). Payloads are at
// most options.notify_bytes. The receiver keeps options.recv_depth receive buffers
// posted per queue pair.
//
// Probes send a zero-length RDMA WRITE: OK when the peer's HCA acknowledges it.
// Cancel: a task not posted yet completes TRANSFER_CANCELED at once; a posted one moves
// its queue pair to the error state, so the HCA stops and its completion (OK if it had
// finished, TRANSFER_CANCELED if flushed) follows; the other flushed tasks are re-posted.
// UnregisterMemory of a region a posted work request still uses is BATCH_BUSY.
//
// Progress: the transport polls its completion queues when PollCompletions is called and
// from a timer on the Env every options.poll_interval_ns while work is outstanding, and
// calls on_ready when completions or notifications are ready.
//
// Thread safety: every call on the node Env's executor.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tidal/backends/verbs/verbs_api.h"
#include "tidal/memory.h"
#include "tidal/transport.h"

namespace tidal::backends::verbs {

struct VerbsOptions {
  std::string device;          // "" = every device
  uint8_t port = 0;            // 0 = every active port
  int gid_index = 0;
  uint64_t max_window_bytes = 0;  // 0 = the device's max_mr_size
  uint32_t max_send_wr = 128;
  uint32_t recv_depth = 32;
  uint32_t cq_depth = 1024;
  uint32_t notify_bytes = 4096;
  uint32_t notify_slots = 64;  // notification sends in flight per NIC
  uint8_t timeout = 14;        // local ACK timeout, 4.096 us * 2^timeout
  uint8_t retry_cnt = 7;
  uint8_t rnr_retry = 7;
  uint8_t min_rnr_timer = 12;
  uint8_t max_rd_atomic = 16;
  uint64_t handshake_timeout_ns = 200'000'000;
  int handshake_attempts = 5;
  int max_path_retries = 2;
  uint64_t poll_interval_ns = 20'000;
};

// The error code of a work completion's status (the table above); OK for IBV_WC_SUCCESS.
ErrorCode WcStatusToError(ibv_wc_status status);
// True for the statuses that mean the path or the peer failed (PEER_UNREACHABLE row).
bool IsPathFailure(ibv_wc_status status);

class VerbsTransport final : public Transport {
 public:
  VerbsTransport(std::unique_ptr<VerbsApi> api, VerbsOptions options = {});
  ~VerbsTransport() override;

  std::string_view Name() const override { return "verbs"; }
  TransportCaps Capabilities() const override;
  Status Install(const TransportInstall& install) override;
  std::string LocalAddress() const override;
  Result<uint64_t> RegisterMemory(uint64_t addr, uint64_t length, Location loc) override;
  Status UnregisterMemory(uint64_t addr, uint64_t length) override;
  Result<PeerId> Connect(const SegmentDescriptor& peer) override;
  void Submit(std::span<const TransportTask> tasks, std::span<Status> accepted) override;
  size_t PollCompletions(std::span<TransportCompletion> out) override;
  Status Cancel(uint64_t task_id) override;
  Status SendNotify(PeerId peer, std::string_view payload) override;
  size_t PollNotifies(std::vector<Notification>& out, size_t max) override;

  // Polls the completion queues and posts what waits; called by the poll timer and by
  // PollCompletions/PollNotifies.
  void Progress();

  // Introspection for tests and tools.
  size_t nic_count() const { return nics_.size(); }
  std::string nic_name(size_t i) const;
  // The local NIC index an endpoint currently uses; the number of times it was rebuilt.
  int endpoint_nic(PeerId peer) const;
  int endpoint_rebuilds(PeerId peer) const;
  bool endpoint_ready(PeerId peer) const;
  // Windows of the local region starting at addr: (start, length) pairs.
  std::vector<std::pair<uint64_t, uint64_t>> windows(uint64_t addr) const;

 private:
  struct Nic;
  struct Region;
  struct RemoteNic;
  struct RemoteRegion;
  struct Endpoint;
  struct Passive;
  struct Slice;
  struct TaskState;
  struct WrCtx;

  Status OpenNics();
  Status SetUpNic(Nic& nic);
  void CloseNic(Nic& nic);
  ibv_qp* CreateRcQp(Nic& nic);
  Status ToInit(ibv_qp* qp, const Nic& nic);
  Status ToRtr(ibv_qp* qp, const Nic& nic, const RemoteNic& remote, uint32_t qpn,
               uint32_t psn, uint8_t mtu);
  Status ToRts(ibv_qp* qp, const Nic& nic, uint32_t psn);
  void StartHandshake(Endpoint& ep);
  void SendReq(Endpoint& ep);
  void OnUdRecv(Nic& nic, const uint8_t* msg, size_t len);
  void OnRep(const uint8_t* msg, size_t len);
  void OnReq(Nic& nic, const uint8_t* msg, size_t len);
  void SendUd(Nic& nic, const RemoteNic& to, const std::string& msg);
  void HandshakeTimeout(PeerId peer, uint64_t req_id);
  void PostRecvs(Passive& p);
  void PostUdRecv(Nic& nic, uint32_t slot);

  void PumpEndpoint(Endpoint& ep);
  bool PostSlice(Endpoint& ep, TaskState& st, uint32_t k);
  void HandleWc(Nic& nic, const ibv_wc& wc);
  void SliceDone(uint64_t task_id, uint64_t bytes, ErrorCode code);
  void FinishTask(uint64_t task_id, ErrorCode code);
  void BreakEndpoint(Endpoint& ep, ibv_wc_status cause, uint64_t culprit_task);
  void RebuildEndpoint(Endpoint& ep, bool next_nic);
  void FailEndpoint(Endpoint& ep, ErrorCode code);
  void PumpNotifies(Endpoint& ep);
  void ArmPoll();
  void Signal();
  bool Busy() const;

  std::unique_ptr<VerbsApi> api_;
  VerbsOptions options_;
  TransportInstall install_;
  bool installed_ = false;
  std::vector<std::unique_ptr<Nic>> nics_;
  std::map<uint64_t, std::unique_ptr<Region>> regions_;  // by start address
  std::vector<std::unique_ptr<Endpoint>> endpoints_;      // by PeerId
  std::map<std::string, PeerId> endpoint_by_key_;
  std::vector<std::unique_ptr<Passive>> passives_;
  std::map<uint64_t, std::unique_ptr<TaskState>> tasks_;  // outstanding, by task id
  std::map<uint64_t, WrCtx> wrs_;                          // posted, by wr_id
  uint64_t next_wr_id_ = 1;
  uint64_t next_req_id_ = 1;
  std::deque<TransportCompletion> completions_;
  std::deque<Notification> notifies_;
  TimerId poll_timer_ = 0;
  bool poll_fast_ = false;
  std::map<std::string, ibv_ah*> ahs_;  // by local NIC and remote GID/LID
};

}  // namespace tidal::backends::verbs
