// The store's RPC layer: versioned, length-checked frames over a Messenger, a client that
// retries with the same request id until its per-call timeout, and a server that answers
// each (client, request id) once and replays the answer to a retry.
//
// Frame layout (little-endian, 20-byte header then the body):
//   u32 magic "TSRP" | u16 version | u16 type | u64 request id | u32 body length | body
// DecodeFrame validates every field against the buffer (it is a fuzz target).
//
// Thread safety: RpcClient and RpcServer are called on their Env's executor only.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "tidal/env.h"
#include "tidal/messenger.h"
#include "tidal/status.h"
#include "tidal/task.h"

namespace tidal::store {

constexpr uint32_t kFrameMagic = 0x50525354;  // "TSRP" little-endian
constexpr uint16_t kFrameVersion = 1;
constexpr size_t kFrameHeaderBytes = 20;
constexpr uint32_t kFrameMaxBody = 64u << 20;

// Message types. A request of type T is answered by a frame of type T | kResponseBit.
// The numbers are part of the wire format and never change.
enum class MsgType : uint16_t {
  kRegisterClient = 1,
  kHeartbeat = 2,
  kMountSegment = 3,
  kUnmountSegment = 4,
  kPutStart = 5,
  kPutEnd = 6,
  kPutRevoke = 7,
  kGetReplicaList = 8,
  kStat = 9,
  kBatchExists = 10,
  kRemove = 11,
  kPutReserve = 12,  // put reservations: one RPC per put (client.h)
  kPutCommit = 13,
  kPutRelease = 14,
  kMaxRequest = 14,
};
constexpr uint16_t kResponseBit = 0x8000;

struct Frame {
  uint16_t type = 0;  // a MsgType, with kResponseBit set for responses
  uint64_t request_id = 0;
  std::string body;
  bool is_response() const { return (type & kResponseBit) != 0; }
  MsgType msg() const { return static_cast<MsgType>(type & ~kResponseBit); }
};

// Encodes a frame. The body must be at most kFrameMaxBody bytes (asserted).
std::string EncodeFrame(const Frame& frame);
// Decodes one frame that fills `bytes` exactly. CORRUPT_INPUT with a message naming the
// field (magic, version, type, body length) for anything malformed. Never reads past
// `bytes`; allocates only the body.
Result<Frame> DecodeFrame(std::string_view bytes);

struct RpcOptions {
  uint64_t timeout_ns = 2'000'000'000ULL;  // per call, unless the call passes its own
  uint64_t retry_ns = 100'000'000ULL;      // resend an unanswered request this often
};

// One client of one server endpoint. It owns the Messenger's receiver while it lives.
class RpcClient {
 public:
  // `env` and `messenger` must outlive the client.
  RpcClient(Env& env, Messenger& messenger, std::string server, RpcOptions options = {});
  ~RpcClient();
  RpcClient(const RpcClient&) = delete;
  RpcClient& operator=(const RpcClient&) = delete;

  // Sends a request and suspends until its response, resending it (same request id)
  // every options.retry_ns. Returns the response body (which carries the callee's own
  // status; see protocol.h). RPC_TIMEOUT when `timeout_ns` (0: options.timeout_ns)
  // passes without a response; RPC_FAIL if the server endpoint does not exist. Late or
  // duplicate responses are ignored.
  Task<Result<std::string>> Call(MsgType type, std::string body, uint64_t timeout_ns = 0);

  const std::string& server() const { return server_; }
  uint64_t calls() const { return calls_; }
  uint64_t timeouts() const { return timeouts_; }
  uint64_t ignored_responses() const { return ignored_; }

 private:
  struct Pending;
  void OnMessage(std::string_view from, std::string payload);

  Env& env_;
  Messenger& messenger_;
  std::string server_;
  RpcOptions options_;
  uint64_t next_id_;
  std::map<uint64_t, Pending*> pending_;
  std::shared_ptr<bool> alive_;
  uint64_t calls_ = 0, timeouts_ = 0, ignored_ = 0;
};

// A server endpoint. The handler answers synchronously (the master is a state machine),
// so a retried request is either answered from the cache or not yet seen.
class RpcServer {
 public:
  using Handler =
      std::function<std::string(std::string_view from, MsgType type, std::string_view body)>;
  // Installs itself as the messenger's receiver. `messenger` must outlive the server.
  RpcServer(Messenger& messenger, Handler handler, size_t dedupe_per_client = 1024);

  uint64_t requests() const { return requests_; }
  uint64_t duplicates() const { return duplicates_; }
  uint64_t malformed() const { return malformed_; }

 private:
  void OnMessage(std::string_view from, std::string payload);
  struct ClientCache {
    std::map<uint64_t, std::string> responses;  // request id -> encoded response frame
  };
  Messenger& messenger_;
  Handler handler_;
  size_t dedupe_per_client_;
  std::map<std::string, ClientCache, std::less<>> cache_;
  uint64_t requests_ = 0, duplicates_ = 0, malformed_ = 0;
};

}  // namespace tidal::store
