// Encoders and decoders of the store's RPC message bodies (see protocol.h).
#include "protocol.h"

#include "tidal/codec.h"

namespace tidal::store::proto {
namespace {

// `what` names the message and the field that is missing, cut off or out of range.
Status Corrupt(std::string_view what) {
  return Status(ErrorCode::CORRUPT_INPUT, "store message: " + std::string(what));
}
constexpr size_t kMaxList = 1 << 16;
constexpr size_t kMaxSegmentName = 4096;

void PutReplicas(ByteWriter& w, const std::vector<ReplicaLocation>& rs) {
  w.U32(static_cast<uint32_t>(rs.size()));
  for (const auto& r : rs) {
    w.Str(r.segment);
    w.U64(r.addr);
    w.U64(r.size);
  }
}
// Returns the name of the bad field, or nullptr when the list decoded.
const char* GetReplicas(ByteReader& r, std::vector<ReplicaLocation>* rs) {
  uint32_t n = 0;
  // Each replica takes at least 20 bytes: a count the buffer cannot hold is refused
  // before anything is allocated for it.
  if (!r.Count(&n, kMaxReplicas, 20)) return "replica count";
  rs->resize(n);
  for (auto& x : *rs) {
    if (!r.Str(&x.segment, kMaxSegmentName)) return "replica segment";
    if (!r.U64(&x.addr)) return "replica address";
    if (!r.U64(&x.size)) return "replica size";
  }
  return nullptr;
}

void PutConfig(ByteWriter& w, const ReplicateConfig& c) {
  w.U32(c.replica_num);
  w.U32(static_cast<uint32_t>(c.preferred_segments.size()));
  for (const auto& s : c.preferred_segments) w.Str(s);
  w.U8(c.hard_pin ? 1 : 0);
  w.U64(c.soft_pin_ttl_ns);
}
// Returns the name of the bad field, or nullptr when the config decoded.
const char* GetConfig(ByteReader& r, ReplicateConfig* c) {
  uint32_t n = 0;
  uint8_t pin = 0;
  if (!r.U32(&c->replica_num)) return "replica count";
  // Each preferred segment takes at least its 4-byte length.
  if (!r.Count(&n, kMaxList, 4)) return "preferred segment count";
  c->preferred_segments.resize(n);
  for (auto& s : c->preferred_segments) {
    if (!r.Str(&s, kMaxSegmentName)) return "preferred segment";
  }
  if (!r.U8(&pin) || pin > 1) return "hard pin";
  if (!r.U64(&c->soft_pin_ttl_ns)) return "soft pin ttl";
  c->hard_pin = pin == 1;
  return nullptr;
}

}  // namespace

std::string Encode(const MountReq& m) {
  ByteWriter w;
  w.Str(m.segment);
  w.U64(m.base);
  w.U64(m.size);
  return w.Take();
}
Status Decode(std::string_view in, MountReq* m) {
  ByteReader r(in);
  if (!r.Str(&m->segment, kMaxSegmentName)) return Corrupt("mount request: segment");
  if (!r.U64(&m->base)) return Corrupt("mount request: base");
  if (!r.U64(&m->size)) return Corrupt("mount request: size");
  if (!r.done()) return Corrupt("mount request: trailing bytes");
  return Status();
}

std::string Encode(const PutStartReq& m) {
  ByteWriter w;
  w.Str(m.key);
  w.U64(m.size);
  PutConfig(w, m.config);
  return w.Take();
}
Status Decode(std::string_view in, PutStartReq* m) {
  ByteReader r(in);
  if (!r.Str(&m->key, kMaxKeyBytes)) return Corrupt("put start request: key");
  if (!r.U64(&m->size)) return Corrupt("put start request: size");
  if (const char* bad = GetConfig(r, &m->config)) {
    return Corrupt(std::string("put start request: ") + bad);
  }
  if (!r.done()) return Corrupt("put start request: trailing bytes");
  return Status();
}

std::string Encode(const PutReserveReq& m) {
  ByteWriter w;
  w.U64(m.size);
  PutConfig(w, m.config);
  w.U32(m.count);
  w.U32(static_cast<uint32_t>(m.release.size()));
  for (uint64_t id : m.release) w.U64(id);
  return w.Take();
}
Status Decode(std::string_view in, PutReserveReq* m) {
  ByteReader r(in);
  uint32_t n = 0;
  if (!r.U64(&m->size)) return Corrupt("put reserve request: size");
  if (const char* bad = GetConfig(r, &m->config)) {
    return Corrupt(std::string("put reserve request: ") + bad);
  }
  if (!r.U32(&m->count)) return Corrupt("put reserve request: count");
  if (!r.Count(&n, kMaxList, 8)) return Corrupt("put reserve request: release count");
  m->release.resize(n);
  for (uint64_t& id : m->release) {
    if (!r.U64(&id)) return Corrupt("put reserve request: released id");
  }
  if (!r.done()) return Corrupt("put reserve request: trailing bytes");
  return Status();
}

std::string Encode(const PutReserveResp& m) {
  ByteWriter w;
  w.U64(m.valid_ns);
  w.U32(static_cast<uint32_t>(m.reservations.size()));
  for (const Reservation& res : m.reservations) {
    w.U64(res.id);
    PutReplicas(w, res.replicas);
  }
  return w.Take();
}
Status Decode(std::string_view in, PutReserveResp* m) {
  ByteReader r(in);
  uint32_t n = 0;
  if (!r.U64(&m->valid_ns)) return Corrupt("put reserve response: validity");
  // Each reservation takes at least its id and replica count.
  if (!r.Count(&n, kMaxList, 12)) return Corrupt("put reserve response: reservation count");
  m->reservations.resize(n);
  for (Reservation& res : m->reservations) {
    if (!r.U64(&res.id)) return Corrupt("put reserve response: reservation id");
    if (const char* bad = GetReplicas(r, &res.replicas)) {
      return Corrupt(std::string("put reserve response: ") + bad);
    }
  }
  if (!r.done()) return Corrupt("put reserve response: trailing bytes");
  return Status();
}

std::string Encode(const PutCommitReq& m) {
  ByteWriter w;
  w.Str(m.key);
  w.U64(m.reservation);
  w.U64(m.size);
  PutConfig(w, m.config);
  return w.Take();
}
Status Decode(std::string_view in, PutCommitReq* m) {
  ByteReader r(in);
  if (!r.Str(&m->key, kMaxKeyBytes)) return Corrupt("put commit request: key");
  if (!r.U64(&m->reservation)) return Corrupt("put commit request: reservation");
  if (!r.U64(&m->size)) return Corrupt("put commit request: size");
  if (const char* bad = GetConfig(r, &m->config)) {
    return Corrupt(std::string("put commit request: ") + bad);
  }
  if (!r.done()) return Corrupt("put commit request: trailing bytes");
  return Status();
}

std::string Encode(const PutStartResp& m) {
  ByteWriter w;
  w.U64(m.generation);
  PutReplicas(w, m.replicas);
  return w.Take();
}
Status Decode(std::string_view in, PutStartResp* m) {
  ByteReader r(in);
  if (!r.U64(&m->generation)) return Corrupt("put start response: generation");
  if (const char* bad = GetReplicas(r, &m->replicas)) {
    return Corrupt(std::string("put start response: ") + bad);
  }
  if (!r.done()) return Corrupt("put start response: trailing bytes");
  return Status();
}

std::string Encode(const KeyGen& m) {
  ByteWriter w;
  w.Str(m.key);
  w.U64(m.generation);
  return w.Take();
}
Status Decode(std::string_view in, KeyGen* m) {
  ByteReader r(in);
  if (!r.Str(&m->key, kMaxKeyBytes)) return Corrupt("key/generation: key");
  if (!r.U64(&m->generation)) return Corrupt("key/generation: generation");
  if (!r.done()) return Corrupt("key/generation: trailing bytes");
  return Status();
}

std::string Encode(const ReplicaListResp& m) {
  ByteWriter w;
  w.U64(m.size);
  w.U64(m.generation);
  w.U64(m.lease_ttl_ns);
  PutReplicas(w, m.replicas);
  return w.Take();
}
Status Decode(std::string_view in, ReplicaListResp* m) {
  ByteReader r(in);
  if (!r.U64(&m->size)) return Corrupt("replica list response: size");
  if (!r.U64(&m->generation)) return Corrupt("replica list response: generation");
  if (!r.U64(&m->lease_ttl_ns)) return Corrupt("replica list response: lease ttl");
  if (const char* bad = GetReplicas(r, &m->replicas)) {
    return Corrupt(std::string("replica list response: ") + bad);
  }
  if (!r.done()) return Corrupt("replica list response: trailing bytes");
  return Status();
}

std::string Encode(const RemoveReq& m) {
  ByteWriter w;
  w.Str(m.key);
  w.U8(m.force ? 1 : 0);
  return w.Take();
}
Status Decode(std::string_view in, RemoveReq* m) {
  ByteReader r(in);
  uint8_t force = 0;
  if (!r.Str(&m->key, kMaxKeyBytes)) return Corrupt("remove request: key");
  if (!r.U8(&force) || force > 1) return Corrupt("remove request: force");
  if (!r.done()) return Corrupt("remove request: trailing bytes");
  m->force = force == 1;
  return Status();
}

std::string EncodeKey(std::string_view key) {
  ByteWriter w;
  w.Str(key);
  return w.Take();
}
Status DecodeKey(std::string_view in, std::string* key) {
  ByteReader r(in);
  if (!r.Str(key, kMaxKeyBytes)) return Corrupt("key: key");
  if (!r.done()) return Corrupt("key: trailing bytes");
  return Status();
}

std::string EncodeU64(uint64_t v) {
  ByteWriter w;
  w.U64(v);
  return w.Take();
}
Status DecodeU64(std::string_view in, uint64_t* v) {
  ByteReader r(in);
  if (!r.U64(v)) return Corrupt("u64: value");
  if (!r.done()) return Corrupt("u64: trailing bytes");
  return Status();
}

std::string EncodeU64s(const std::vector<uint64_t>& v) {
  ByteWriter w;
  w.U32(static_cast<uint32_t>(v.size()));
  for (uint64_t x : v) w.U64(x);
  return w.Take();
}
Status DecodeU64s(std::string_view in, std::vector<uint64_t>* v) {
  ByteReader r(in);
  uint32_t n = 0;
  if (!r.Count(&n, kMaxList, 8)) return Corrupt("u64 list: count");
  v->resize(n);
  for (auto& x : *v) {
    if (!r.U64(&x)) return Corrupt("u64 list: value");
  }
  if (!r.done()) return Corrupt("u64 list: trailing bytes");
  return Status();
}

std::string EncodeKeys(const std::vector<std::string>& keys) {
  ByteWriter w;
  w.U32(static_cast<uint32_t>(keys.size()));
  for (const auto& k : keys) w.Str(k);
  return w.Take();
}
Status DecodeKeys(std::string_view in, std::vector<std::string>* keys) {
  ByteReader r(in);
  uint32_t n = 0;
  // Each key takes at least its 4-byte length: no allocation for a count the buffer
  // cannot hold (a 4-byte body must not make the master allocate megabytes).
  if (!r.Count(&n, kMaxList, 4)) return Corrupt("key list: count");
  keys->resize(n);
  for (auto& k : *keys) {
    if (!r.Str(&k, kMaxKeyBytes)) return Corrupt("key list: key");
  }
  if (!r.done()) return Corrupt("key list: trailing bytes");
  return Status();
}

std::string EncodeCodes(const std::vector<ErrorCode>& codes) {
  ByteWriter w;
  w.U32(static_cast<uint32_t>(codes.size()));
  for (ErrorCode c : codes) w.I32(static_cast<int32_t>(c));
  return w.Take();
}
Status DecodeCodes(std::string_view in, std::vector<ErrorCode>* codes) {
  ByteReader r(in);
  uint32_t n = 0;
  if (!r.Count(&n, kMaxList, 4)) return Corrupt("code list: count");
  codes->resize(n);
  for (auto& c : *codes) {
    int32_t v = 0;
    if (!r.I32(&v)) return Corrupt("code list: code");
    c = static_cast<ErrorCode>(v);
  }
  if (!r.done()) return Corrupt("code list: trailing bytes");
  return Status();
}

std::string EncodeInfo(const ObjectInfo& info) {
  ByteWriter w;
  w.U64(info.size);
  w.U64(info.generation);
  return w.Take();
}
Status DecodeInfo(std::string_view in, ObjectInfo* info) {
  ByteReader r(in);
  if (!r.U64(&info->size)) return Corrupt("object info: size");
  if (!r.U64(&info->generation)) return Corrupt("object info: generation");
  if (!r.done()) return Corrupt("object info: trailing bytes");
  return Status();
}

std::string Respond(const Status& status, std::string_view payload) {
  ByteWriter w;
  w.I32(static_cast<int32_t>(status.code()));
  w.Str(status.message());
  if (status.ok()) w.Bytes(payload);
  return w.Take();
}

Result<std::string> ParseResponse(std::string_view body) {
  ByteReader r(body);
  int32_t code = 0;
  std::string message;
  if (!r.I32(&code)) return Status(ErrorCode::RPC_FAIL, "store response: status code cut off");
  if (!r.Str(&message, 1 << 16)) {
    return Status(ErrorCode::RPC_FAIL, "store response: status message cut off or too long");
  }
  if (code != 0) return Status(static_cast<ErrorCode>(code), std::move(message));
  return std::string(r.Rest());
}

}  // namespace tidal::store::proto
