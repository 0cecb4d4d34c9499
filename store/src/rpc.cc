// RPC frames, client and server (see rpc.h).
#include "tidal/store/rpc.h"

#include <utility>

#include "tidal/codec.h"

namespace tidal::store {

std::string EncodeFrame(const Frame& frame) {
  TIDAL_ASSERT(frame.body.size() <= kFrameMaxBody);
  ByteWriter w;
  w.str().reserve(kFrameHeaderBytes + frame.body.size());
  w.U32(kFrameMagic);
  w.U16(kFrameVersion);
  w.U16(frame.type);
  w.U64(frame.request_id);
  w.U32(static_cast<uint32_t>(frame.body.size()));
  w.Bytes(frame.body);
  return w.Take();
}

Result<Frame> DecodeFrame(std::string_view bytes) {
  ByteReader r(bytes);
  uint32_t magic = 0, body_len = 0;
  uint16_t version = 0, type = 0;
  uint64_t id = 0;
  if (bytes.size() < kFrameHeaderBytes) {
    return Status(ErrorCode::CORRUPT_INPUT, "rpc frame: header: " + std::to_string(bytes.size()) +
                                                " bytes, need " +
                                                std::to_string(kFrameHeaderBytes));
  }
  // The size check above makes these reads succeed; they still report, never assert,
  // since the bytes are a peer's.
  if (!r.U32(&magic)) {
    return Status(ErrorCode::CORRUPT_INPUT, "rpc frame: field 'magic' is cut off");
  }
  if (!r.U16(&version)) {
    return Status(ErrorCode::CORRUPT_INPUT, "rpc frame: field 'version' is cut off");
  }
  if (!r.U16(&type)) return Status(ErrorCode::CORRUPT_INPUT, "rpc frame: field 'type' is cut off");
  if (!r.U64(&id)) {
    return Status(ErrorCode::CORRUPT_INPUT, "rpc frame: field 'request id' is cut off");
  }
  if (!r.U32(&body_len)) {
    return Status(ErrorCode::CORRUPT_INPUT, "rpc frame: field 'body length' is cut off");
  }
  if (magic != kFrameMagic) {
    return Status(ErrorCode::CORRUPT_INPUT, "rpc frame: field 'magic' is wrong");
  }
  if (version != kFrameVersion) {
    return Status(ErrorCode::CORRUPT_INPUT, "rpc frame: field 'version' is " +
                                                std::to_string(version) + ", expected " +
                                                std::to_string(kFrameVersion));
  }
  uint16_t msg = type & ~kResponseBit;
  if (msg == 0 || msg > static_cast<uint16_t>(MsgType::kMaxRequest)) {
    return Status(ErrorCode::CORRUPT_INPUT,
                  "rpc frame: field 'type' is unknown (" + std::to_string(type) + ")");
  }
  if (body_len > kFrameMaxBody || body_len != r.remaining()) {
    return Status(ErrorCode::CORRUPT_INPUT,
                  "rpc frame: field 'body length' is " + std::to_string(body_len) + " but " +
                      std::to_string(r.remaining()) + " bytes follow the header");
  }
  Frame f;
  f.type = type;
  f.request_id = id;
  f.body.assign(bytes.substr(kFrameHeaderBytes));
  return f;
}

// ---------------------------------------------------------------------------------------
// RpcClient

struct RpcClient::Pending {
  Pending(RpcClient* owner, uint64_t id) : owner(owner), id(id), done(owner->env_) {}
  ~Pending() {
    // A frame destroyed while waiting (its node crashed) unhooks itself, so no response
    // or timer ever touches it.
    if (owner != nullptr) {
      owner->pending_.erase(id);
      if (timer != 0) owner->env_.CancelTimer(timer);
    }
  }
  RpcClient* owner;
  uint64_t id;
  OneShot<Result<std::string>> done;
  std::string wire;
  uint64_t deadline_ns = 0;
  TimerId timer = 0;
};

RpcClient::RpcClient(Env& env, Messenger& messenger, std::string server, RpcOptions options)
    : env_(env),
      messenger_(messenger),
      server_(std::move(server)),
      options_(options),
      // A random base keeps a restarted client's ids apart from its previous life's.
      next_id_((env.RandomU64() >> 16) | 1),
      alive_(std::make_shared<bool>(true)) {
  messenger_.SetReceiver(
      [this](std::string_view from, std::string payload) { OnMessage(from, std::move(payload)); });
}

RpcClient::~RpcClient() {
  *alive_ = false;
  for (auto& [id, p] : pending_) p->owner = nullptr;
  messenger_.SetReceiver(nullptr);
}

Task<Result<std::string>> RpcClient::Call(MsgType type, std::string body, uint64_t timeout_ns) {
  if (timeout_ns == 0) timeout_ns = options_.timeout_ns;
  Pending p(this, next_id_++);
  p.wire = EncodeFrame(Frame{static_cast<uint16_t>(type), p.id, std::move(body)});
  p.deadline_ns = env_.NowNs() + timeout_ns;
  ++calls_;
  Status sent = messenger_.Send(server_, p.wire);
  if (!sent.ok()) {
    p.owner = nullptr;
    co_return Status(ErrorCode::RPC_FAIL, "rpc to '" + server_ + "': " + sent.ToString());
  }
  pending_[p.id] = &p;
  // One timer at a time: it either resends the frame or, at the deadline, fails the call.
  auto arm = [this](Pending& pending, auto& self) -> void {
    uint64_t now = env_.NowNs();
    uint64_t wait = pending.deadline_ns > now ? pending.deadline_ns - now : 0;
    if (wait > options_.retry_ns) wait = options_.retry_ns;
    pending.timer = env_.ScheduleAfter(wait, [this, id = pending.id, alive = alive_, self]() {
      if (!*alive) return;
      auto it = pending_.find(id);
      if (it == pending_.end()) return;
      Pending& q = *it->second;
      q.timer = 0;
      if (env_.NowNs() >= q.deadline_ns) {
        ++timeouts_;
        pending_.erase(it);
        q.done.Set(Result<std::string>(ErrorCode::RPC_TIMEOUT,
                                       "rpc to '" + server_ + "' got no answer in time"));
        return;
      }
      (void)messenger_.Send(server_, q.wire);
      self(q, self);
    });
  };
  arm(p, arm);
  Result<std::string> result = co_await p.done.Wait();
  co_return result;
}

void RpcClient::OnMessage(std::string_view from, std::string payload) {
  Result<Frame> f = DecodeFrame(payload);
  if (!f.ok() || !f->is_response() || from != server_) {
    ++ignored_;
    return;
  }
  auto it = pending_.find(f->request_id);
  if (it == pending_.end()) {
    ++ignored_;  // late (timed out) or duplicate
    return;
  }
  Pending& p = *it->second;
  pending_.erase(it);
  if (p.timer != 0) {
    env_.CancelTimer(p.timer);
    p.timer = 0;
  }
  p.done.Set(Result<std::string>(std::move(f->body)));
}

// ---------------------------------------------------------------------------------------
// RpcServer

RpcServer::RpcServer(Messenger& messenger, Handler handler, size_t dedupe_per_client)
    : messenger_(messenger), handler_(std::move(handler)), dedupe_per_client_(dedupe_per_client) {
  messenger_.SetReceiver(
      [this](std::string_view from, std::string payload) { OnMessage(from, std::move(payload)); });
}

void RpcServer::OnMessage(std::string_view from, std::string payload) {
  Result<Frame> f = DecodeFrame(payload);
  if (!f.ok() || f->is_response()) {
    ++malformed_;
    return;
  }
  auto cit = cache_.find(from);
  if (cit == cache_.end()) cit = cache_.emplace(std::string(from), ClientCache{}).first;
  auto& responses = cit->second.responses;
  if (auto it = responses.find(f->request_id); it != responses.end()) {
    ++duplicates_;
    (void)messenger_.Send(from, it->second);
    return;
  }
  ++requests_;
  std::string body = handler_(from, f->msg(), f->body);
  std::string wire = EncodeFrame(
      Frame{static_cast<uint16_t>(f->type | kResponseBit), f->request_id, std::move(body)});
  responses.emplace(f->request_id, wire);
  // Request ids grow, so the smallest cached id is the oldest answer.
  while (responses.size() > dedupe_per_client_) responses.erase(responses.begin());
  (void)messenger_.Send(from, std::move(wire));
}

}  // namespace tidal::store
