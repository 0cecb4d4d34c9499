// Encoders and decoders of the store's RPC message bodies (see protocol.h).
#include "protocol.h"

#include "wire.h"

namespace tidal::store::proto {
namespace {

Status Corrupt(std::string_view what) {
  return Status(ErrorCode::CORRUPT_INPUT, "store message: " + std::string(what));
}
constexpr size_t kMaxList = 1 << 16;

void PutReplicas(wire::Writer& w, const std::vector<ReplicaLocation>& rs) {
  w.U32(static_cast<uint32_t>(rs.size()));
  for (const auto& r : rs) {
    w.Str(r.segment);
    w.U64(r.addr);
    w.U64(r.size);
  }
}
bool GetReplicas(wire::Reader& r, std::vector<ReplicaLocation>* rs) {
  uint32_t n = 0;
  // Each replica takes at least 20 bytes: refuse a count the buffer cannot hold before
  // allocating for it.
  if (!r.U32(&n) || n > kMaxReplicas || n * 20ull > r.remaining()) return false;
  rs->resize(n);
  for (auto& x : *rs) {
    if (!r.Str(&x.segment, 4096) || !r.U64(&x.addr) || !r.U64(&x.size)) return false;
  }
  return true;
}

}  // namespace

std::string Encode(const MountReq& m) {
  wire::Writer w;
  w.Str(m.segment);
  w.U64(m.base);
  w.U64(m.size);
  return w.Take();
}
Status Decode(std::string_view in, MountReq* m) {
  wire::Reader r(in);
  if (!r.Str(&m->segment, 4096) || !r.U64(&m->base) || !r.U64(&m->size) || !r.done()) {
    return Corrupt("mount request");
  }
  return Status();
}

std::string Encode(const PutStartReq& m) {
  wire::Writer w;
  w.Str(m.key);
  w.U64(m.size);
  w.U32(m.config.replica_num);
  w.U32(static_cast<uint32_t>(m.config.preferred_segments.size()));
  for (const auto& s : m.config.preferred_segments) w.Str(s);
  w.U8(m.config.hard_pin ? 1 : 0);
  w.U64(m.config.soft_pin_ttl_ns);
  return w.Take();
}
Status Decode(std::string_view in, PutStartReq* m) {
  wire::Reader r(in);
  uint32_t n = 0;
  uint8_t pin = 0;
  if (!r.Str(&m->key, kMaxKeyBytes) || !r.U64(&m->size) || !r.U32(&m->config.replica_num) ||
      !r.U32(&n) || n > kMaxList || n * 4ull > r.remaining()) {
    return Corrupt("put start request");
  }
  m->config.preferred_segments.resize(n);
  for (auto& s : m->config.preferred_segments) {
    if (!r.Str(&s, 4096)) return Corrupt("put start request: preferred segment");
  }
  if (!r.U8(&pin) || pin > 1 || !r.U64(&m->config.soft_pin_ttl_ns) || !r.done()) {
    return Corrupt("put start request: pin");
  }
  m->config.hard_pin = pin == 1;
  return Status();
}

std::string Encode(const PutStartResp& m) {
  wire::Writer w;
  w.U64(m.generation);
  PutReplicas(w, m.replicas);
  return w.Take();
}
Status Decode(std::string_view in, PutStartResp* m) {
  wire::Reader r(in);
  if (!r.U64(&m->generation) || !GetReplicas(r, &m->replicas) || !r.done()) {
    return Corrupt("put start response");
  }
  return Status();
}

std::string Encode(const KeyGen& m) {
  wire::Writer w;
  w.Str(m.key);
  w.U64(m.generation);
  return w.Take();
}
Status Decode(std::string_view in, KeyGen* m) {
  wire::Reader r(in);
  if (!r.Str(&m->key, kMaxKeyBytes) || !r.U64(&m->generation) || !r.done()) {
    return Corrupt("key/generation");
  }
  return Status();
}

std::string Encode(const ReplicaListResp& m) {
  wire::Writer w;
  w.U64(m.size);
  w.U64(m.generation);
  w.U64(m.lease_ttl_ns);
  PutReplicas(w, m.replicas);
  return w.Take();
}
Status Decode(std::string_view in, ReplicaListResp* m) {
  wire::Reader r(in);
  if (!r.U64(&m->size) || !r.U64(&m->generation) || !r.U64(&m->lease_ttl_ns) ||
      !GetReplicas(r, &m->replicas) || !r.done()) {
    return Corrupt("replica list response");
  }
  return Status();
}

std::string Encode(const RemoveReq& m) {
  wire::Writer w;
  w.Str(m.key);
  w.U8(m.force ? 1 : 0);
  return w.Take();
}
Status Decode(std::string_view in, RemoveReq* m) {
  wire::Reader r(in);
  uint8_t force = 0;
  if (!r.Str(&m->key, kMaxKeyBytes) || !r.U8(&force) || force > 1 || !r.done()) {
    return Corrupt("remove request");
  }
  m->force = force == 1;
  return Status();
}

std::string EncodeKey(std::string_view key) {
  wire::Writer w;
  w.Str(key);
  return w.Take();
}
Status DecodeKey(std::string_view in, std::string* key) {
  wire::Reader r(in);
  if (!r.Str(key, kMaxKeyBytes) || !r.done()) return Corrupt("key");
  return Status();
}

std::string EncodeU64(uint64_t v) {
  wire::Writer w;
  w.U64(v);
  return w.Take();
}
Status DecodeU64(std::string_view in, uint64_t* v) {
  wire::Reader r(in);
  if (!r.U64(v) || !r.done()) return Corrupt("u64");
  return Status();
}

std::string EncodeU64s(const std::vector<uint64_t>& v) {
  wire::Writer w;
  w.U32(static_cast<uint32_t>(v.size()));
  for (uint64_t x : v) w.U64(x);
  return w.Take();
}
Status DecodeU64s(std::string_view in, std::vector<uint64_t>* v) {
  wire::Reader r(in);
  uint32_t n = 0;
  if (!r.U32(&n) || n > kMaxList || n * 8ull != r.remaining()) return Corrupt("u64 list");
  v->resize(n);
  for (auto& x : *v) r.U64(&x);
  return Status();
}

std::string EncodeKeys(const std::vector<std::string>& keys) {
  wire::Writer w;
  w.U32(static_cast<uint32_t>(keys.size()));
  for (const auto& k : keys) w.Str(k);
  return w.Take();
}
Status DecodeKeys(std::string_view in, std::vector<std::string>* keys) {
  wire::Reader r(in);
  uint32_t n = 0;
  // Each key takes at least its 4-byte length: no allocation for a count the buffer
  // cannot hold (a 4-byte body must not make the master allocate megabytes).
  if (!r.U32(&n) || n > kMaxList || n * 4ull > r.remaining()) return Corrupt("key list");
  keys->resize(n);
  for (auto& k : *keys) {
    if (!r.Str(&k, kMaxKeyBytes)) return Corrupt("key list: key");
  }
  if (!r.done()) return Corrupt("key list: trailing bytes");
  return Status();
}

std::string EncodeCodes(const std::vector<ErrorCode>& codes) {
  wire::Writer w;
  w.U32(static_cast<uint32_t>(codes.size()));
  for (ErrorCode c : codes) w.I32(static_cast<int32_t>(c));
  return w.Take();
}
Status DecodeCodes(std::string_view in, std::vector<ErrorCode>* codes) {
  wire::Reader r(in);
  uint32_t n = 0;
  if (!r.U32(&n) || n > kMaxList || n * 4ull != r.remaining()) return Corrupt("code list");
  codes->resize(n);
  for (auto& c : *codes) {
    int32_t v = 0;
    r.I32(&v);
    c = static_cast<ErrorCode>(v);
  }
  return Status();
}

std::string EncodeInfo(const ObjectInfo& info) {
  wire::Writer w;
  w.U64(info.size);
  w.U64(info.generation);
  return w.Take();
}
Status DecodeInfo(std::string_view in, ObjectInfo* info) {
  wire::Reader r(in);
  if (!r.U64(&info->size) || !r.U64(&info->generation) || !r.done()) return Corrupt("info");
  return Status();
}

std::string Respond(const Status& status, std::string_view payload) {
  wire::Writer w;
  w.I32(static_cast<int32_t>(status.code()));
  w.Str(status.message());
  if (status.ok()) w.Bytes(payload);
  return w.Take();
}

Result<std::string> ParseResponse(std::string_view body) {
  wire::Reader r(body);
  int32_t code = 0;
  std::string message;
  if (!r.I32(&code) || !r.Str(&message, 1 << 16)) {
    return Status(ErrorCode::RPC_FAIL, "store response: malformed status");
  }
  if (code != 0) return Status(static_cast<ErrorCode>(code), std::move(message));
  return std::string(body.substr(r.position()));
}

}  // namespace tidal::store::proto
