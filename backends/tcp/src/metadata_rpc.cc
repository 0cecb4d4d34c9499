// MetadataStore over a Messenger (see metadata_rpc.h).
#include "tidal/backends/tcp/metadata_rpc.h"

#include <cstdio>
#include <utility>

#include "tidal/codec.h"

namespace tidal::backends::tcp {

namespace {

constexpr size_t kMaxMessageBytes = 64u << 10;   // an error message in a response
constexpr size_t kMaxAnswerBytes = 64u << 20;    // a whole response (a long list)

Status Corrupt(std::string_view what, std::string_view field) {
  return Status(ErrorCode::CORRUPT_INPUT,
                std::string(what) + ": field '" + std::string(field) + "' is malformed");
}

bool ValidOp(uint8_t op) {
  return op >= static_cast<uint8_t>(MetaOp::kPut) && op <= static_cast<uint8_t>(MetaOp::kStatus);
}

}  // namespace

std::string EncodeMetaRequest(const MetaRequest& request) {
  ByteWriter w;
  w.U8(kMetaVersion);
  w.U8(static_cast<uint8_t>(request.op));
  w.U64(request.id);
  w.Str(request.key);
  w.Str(request.value);
  return w.Take();
}

Result<MetaRequest> DecodeMetaRequest(std::string_view bytes) {
  constexpr std::string_view kWhat = "metadata request";
  ByteReader r(bytes);
  uint8_t version = 0, op = 0;
  MetaRequest m;
  if (!r.U8(&version) || version != kMetaVersion) return Corrupt(kWhat, "version");
  if (!r.U8(&op) || !ValidOp(op)) return Corrupt(kWhat, "op");
  m.op = static_cast<MetaOp>(op);
  if (!r.U64(&m.id)) return Corrupt(kWhat, "request id");
  if (!r.Str(&m.key, kMetaMaxKeyBytes)) return Corrupt(kWhat, "key");
  if (!r.Str(&m.value, kMetaMaxValueBytes)) return Corrupt(kWhat, "value");
  if (!r.done()) return Corrupt(kWhat, "trailing bytes");
  return m;
}

std::string EncodeMetaResponse(const MetaResponse& response) {
  ByteWriter w;
  w.U8(kMetaVersion);
  w.U8(static_cast<uint8_t>(response.op) | kMetaResponseBit);
  w.U64(response.id);
  w.I32(static_cast<int32_t>(response.status.code()));
  const std::string& message = response.status.message();
  w.Str(std::string_view(message).substr(0, kMaxMessageBytes));
  if (response.status.ok()) {
    if (response.op == MetaOp::kGet || response.op == MetaOp::kStatus) w.Str(response.value);
    if (response.op == MetaOp::kList) {
      w.U32(static_cast<uint32_t>(response.entries.size()));
      for (const auto& [k, v] : response.entries) {
        w.Str(k);
        w.Str(v);
      }
    }
  }
  return w.Take();
}

Result<MetaResponse> DecodeMetaResponse(std::string_view bytes) {
  constexpr std::string_view kWhat = "metadata response";
  ByteReader r(bytes);
  uint8_t version = 0, op = 0;
  int32_t code = 0;
  std::string message;
  MetaResponse m;
  if (!r.U8(&version) || version != kMetaVersion) return Corrupt(kWhat, "version");
  if (!r.U8(&op) || (op & kMetaResponseBit) == 0 || !ValidOp(op & ~kMetaResponseBit)) {
    return Corrupt(kWhat, "op");
  }
  m.op = static_cast<MetaOp>(op & ~kMetaResponseBit);
  if (!r.U64(&m.id)) return Corrupt(kWhat, "request id");
  if (!r.I32(&code)) return Corrupt(kWhat, "code");
  if (!r.Str(&message, kMaxMessageBytes)) return Corrupt(kWhat, "message");
  if (code != 0) {
    m.status = Status(static_cast<ErrorCode>(code), std::move(message));
  } else if (m.op == MetaOp::kGet) {
    if (!r.Str(&m.value, kMetaMaxValueBytes)) return Corrupt(kWhat, "value");
  } else if (m.op == MetaOp::kStatus) {
    if (!r.Str(&m.value, kMaxAnswerBytes)) return Corrupt(kWhat, "status");
  } else if (m.op == MetaOp::kList) {
    uint32_t n = 0;
    if (!r.Count(&n, kMetaMaxListEntries, 8)) return Corrupt(kWhat, "entry count");
    m.entries.reserve(n);
    for (uint32_t i = 0; i < n; ++i) {
      std::string k, v;
      if (!r.Str(&k, kMetaMaxKeyBytes)) return Corrupt(kWhat, "entry key");
      if (!r.Str(&v, kMetaMaxValueBytes)) return Corrupt(kWhat, "entry value");
      m.entries.emplace_back(std::move(k), std::move(v));
    }
  }
  if (!r.done()) return Corrupt(kWhat, "trailing bytes");
  return m;
}

// ---------------------------------------------------------------------------------------
// MetadataService

MetadataService::MetadataService(Env& env, Messenger& messenger, MetadataStore& backing,
                                 StatusFn status_json)
    : env_(env),
      messenger_(messenger),
      backing_(backing),
      status_json_(std::move(status_json)),
      alive_(std::make_shared<bool>(true)) {
  messenger_.SetReceiver(
      [this](std::string_view from, std::string payload) { OnMessage(from, std::move(payload)); });
}

MetadataService::~MetadataService() {
  *alive_ = false;
  messenger_.SetReceiver(nullptr);
}

void MetadataService::OnMessage(std::string_view from, std::string payload) {
  Result<MetaRequest> request = DecodeMetaRequest(payload);
  if (!request.ok()) {
    ++stats_.malformed;
    std::fprintf(stderr, "tidal metadata service: malformed request from '%.*s': %s\n",
                 static_cast<int>(from.size()), from.data(), request.status().ToString().c_str());
    // Answer when the header names a request the sender waits for.
    ByteReader r(payload);
    uint8_t version = 0, op = 0;
    uint64_t id = 0;
    if (r.U8(&version) && version == kMetaVersion && r.U8(&op) && ValidOp(op) && r.U64(&id)) {
      Answer(std::string(from), MetaResponse{static_cast<MetaOp>(op), id, request.status(), {}, {}});
    }
    return;
  }
  ++stats_.requests;
  Spawn(env_, Serve(this, alive_, std::string(from), std::move(*request)));
}

Task<void> MetadataService::Serve(MetadataService* self, std::shared_ptr<bool> alive,
                                  std::string from, MetaRequest request) {
  MetaResponse response;
  response.op = request.op;
  response.id = request.id;
  MetadataStore& store = self->backing_;
  switch (request.op) {
    case MetaOp::kPut:
      response.status = co_await store.Put(std::move(request.key), std::move(request.value));
      break;
    case MetaOp::kGet: {
      Result<std::string> v = co_await store.Get(std::move(request.key));
      if (v.ok()) {
        response.value = std::move(*v);
      } else {
        response.status = v.status();
      }
      break;
    }
    case MetaOp::kDelete:
      response.status = co_await store.Delete(std::move(request.key));
      break;
    case MetaOp::kList: {
      Result<KeyValues> v = co_await store.List(std::move(request.key));
      if (v.ok()) {
        response.entries = std::move(*v);
      } else {
        response.status = v.status();
      }
      break;
    }
    case MetaOp::kStatus: {
      if (!self->status_json_) {
        response.value = "{}";
        break;
      }
      Result<KeyValues> all = co_await store.List("");
      if (!*alive) co_return;
      response.value = self->status_json_(all.ok() ? &*all : nullptr);
      break;
    }
  }
  if (!*alive) co_return;
  self->Answer(from, response);
}

void MetadataService::Answer(const std::string& to, const MetaResponse& response) {
  std::string wire = EncodeMetaResponse(response);
  if (wire.size() > kMaxAnswerBytes) {
    wire = EncodeMetaResponse(MetaResponse{
        response.op, response.id,
        Status(ErrorCode::BUFFER_OVERFLOW,
               "answer of " + std::to_string(wire.size()) + " bytes is above the limit"),
        {}, {}});
  }
  Status sent = messenger_.Send(to, std::move(wire));
  if (!sent.ok()) {
    ++stats_.answer_failures;
    std::fprintf(stderr, "tidal metadata service: cannot answer '%s': %s\n", to.c_str(),
                 sent.ToString().c_str());
  }
}

// ---------------------------------------------------------------------------------------
// MasterMetadataStore

struct MasterMetadataStore::Pending {
  Pending(MasterMetadataStore* o, uint64_t i) : owner(o), id(i), done(o->env_) {}
  ~Pending() {
    // A frame destroyed while waiting unhooks itself, so no answer or timer touches it.
    if (owner != nullptr) {
      owner->pending_.erase(id);
      if (timer != 0) owner->env_.CancelTimer(timer);
    }
  }
  MasterMetadataStore* owner;
  uint64_t id;
  OneShot<Result<MetaResponse>> done;
  TimerId timer = 0;
};

MasterMetadataStore::MasterMetadataStore(Env& env, Messenger& messenger,
                                         MasterMetadataStoreOptions options)
    : env_(env),
      messenger_(messenger),
      options_(std::move(options)),
      // A random base keeps a restarted client's ids apart from its previous life's.
      next_id_((env.RandomU64() >> 16) | 1),
      alive_(std::make_shared<bool>(true)) {
  messenger_.SetReceiver(
      [this](std::string_view from, std::string payload) { OnMessage(from, std::move(payload)); });
}

MasterMetadataStore::~MasterMetadataStore() {
  *alive_ = false;
  for (auto& [id, p] : pending_) {
    if (p->timer != 0) env_.CancelTimer(p->timer);
    p->owner = nullptr;
  }
  messenger_.SetReceiver(nullptr);
}

Task<Result<MetaResponse>> MasterMetadataStore::Call(MetaOp op, std::string key,
                                                     std::string value) {
  if (key.size() > kMetaMaxKeyBytes) {
    co_return Status(ErrorCode::INVALID_KEY, "metadata key of " + std::to_string(key.size()) +
                                                 " bytes is above " +
                                                 std::to_string(kMetaMaxKeyBytes));
  }
  if (value.size() > kMetaMaxValueBytes) {
    co_return Status(ErrorCode::INVALID_PARAMS, "metadata value of " +
                                                    std::to_string(value.size()) +
                                                    " bytes is above " +
                                                    std::to_string(kMetaMaxValueBytes));
  }
  Pending p(this, next_id_++);
  Status sent = messenger_.Send(
      options_.server, EncodeMetaRequest(MetaRequest{op, p.id, std::move(key), std::move(value)}));
  if (!sent.ok()) {
    p.owner = nullptr;
    co_return Status(ErrorCode::RPC_FAIL,
                     "metadata request to '" + options_.server + "': " + sent.ToString());
  }
  pending_[p.id] = &p;
  p.timer = env_.ScheduleAfter(options_.timeout_ns, [this, alive = alive_, id = p.id]() {
    if (!*alive) return;
    auto it = pending_.find(id);
    if (it == pending_.end()) return;
    Pending& q = *it->second;
    q.timer = 0;
    pending_.erase(it);
    q.done.Set(Result<MetaResponse>(ErrorCode::RPC_TIMEOUT, "metadata request to '" +
                                                                options_.server +
                                                                "' got no answer in time"));
  });
  Result<MetaResponse> response = co_await p.done.Wait();
  co_return response;
}

void MasterMetadataStore::OnMessage(std::string_view from, std::string payload) {
  Result<MetaResponse> response = DecodeMetaResponse(payload);
  if (!response.ok() || from != options_.server) {
    ++ignored_;
    return;
  }
  auto it = pending_.find(response->id);
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
  p.done.Set(std::move(response));
}

namespace {
// A response to another op than asked is the server's fault: RPC_FAIL.
Status CheckOp(const MetaResponse& r, MetaOp op) {
  if (r.op != op) {
    return Status(ErrorCode::RPC_FAIL, "metadata answer is for another operation");
  }
  return r.status;
}
}  // namespace

Task<Status> MasterMetadataStore::Put(std::string key, std::string value) {
  Result<MetaResponse> r = co_await Call(MetaOp::kPut, std::move(key), std::move(value));
  if (!r.ok()) co_return r.status();
  co_return CheckOp(*r, MetaOp::kPut);
}

Task<Result<std::string>> MasterMetadataStore::Get(std::string key) {
  Result<MetaResponse> r = co_await Call(MetaOp::kGet, std::move(key), {});
  if (!r.ok()) co_return r.status();
  TIDAL_CO_RETURN_IF_ERROR(CheckOp(*r, MetaOp::kGet));
  co_return std::move(r->value);
}

Task<Status> MasterMetadataStore::Delete(std::string key) {
  Result<MetaResponse> r = co_await Call(MetaOp::kDelete, std::move(key), {});
  if (!r.ok()) co_return r.status();
  co_return CheckOp(*r, MetaOp::kDelete);
}

Task<Result<KeyValues>> MasterMetadataStore::List(std::string prefix) {
  Result<MetaResponse> r = co_await Call(MetaOp::kList, std::move(prefix), {});
  if (!r.ok()) co_return r.status();
  TIDAL_CO_RETURN_IF_ERROR(CheckOp(*r, MetaOp::kList));
  co_return std::move(r->entries);
}

Task<Result<std::string>> MasterMetadataStore::ServerStatus() {
  Result<MetaResponse> r = co_await Call(MetaOp::kStatus, {}, {});
  if (!r.ok()) co_return r.status();
  TIDAL_CO_RETURN_IF_ERROR(CheckOp(*r, MetaOp::kStatus));
  co_return std::move(r->value);
}

}  // namespace tidal::backends::tcp
