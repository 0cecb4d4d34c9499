// Encoders and decoders of the process group's wire formats (see wire.h).
#include "wire.h"

#include <cstring>

namespace tidal::coll {
namespace {

constexpr uint8_t kVersion = 1;

class Writer {
 public:
  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void U32(uint32_t v) {
    for (int i = 0; i < 4; ++i) U8(static_cast<uint8_t>(v >> (8 * i)));
  }
  void U64(uint64_t v) {
    for (int i = 0; i < 8; ++i) U8(static_cast<uint8_t>(v >> (8 * i)));
  }
  void Str(std::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool U8(uint8_t* v) {
    if (pos_ + 1 > in_.size()) return false;
    *v = static_cast<uint8_t>(in_[pos_++]);
    return true;
  }
  bool U32(uint32_t* v) {
    if (pos_ + 4 > in_.size()) return false;
    *v = 0;
    for (int i = 0; i < 4; ++i)
      *v |= static_cast<uint32_t>(static_cast<uint8_t>(in_[pos_ + i])) << (8 * i);
    pos_ += 4;
    return true;
  }
  bool U64(uint64_t* v) {
    if (pos_ + 8 > in_.size()) return false;
    *v = 0;
    for (int i = 0; i < 8; ++i)
      *v |= static_cast<uint64_t>(static_cast<uint8_t>(in_[pos_ + i])) << (8 * i);
    pos_ += 8;
    return true;
  }
  bool Str(std::string* s, size_t max) {
    uint32_t n = 0;
    if (!U32(&n) || n > max || pos_ + n > in_.size()) return false;
    s->assign(in_.substr(pos_, n));
    pos_ += n;
    return true;
  }
  bool AtEnd() const { return pos_ == in_.size(); }

 private:
  std::string_view in_;
  size_t pos_ = 0;
};

Status Corrupt(const char* what) {
  return Status(ErrorCode::CORRUPT_INPUT, std::string("collectives wire: ") + what);
}

}  // namespace

std::string EncodeDataHeader(const DataHeader& h) {
  Writer w;
  w.U8(kDataMagic);
  w.U8(kVersion);
  w.U8(static_cast<uint8_t>(h.kind));
  w.U8(static_cast<uint8_t>(h.cls));
  w.U32(h.from);
  w.U64(h.group);
  w.U64(h.attempt);
  w.U64(h.seq);
  w.U64(h.bytes);
  w.U32(h.tag);
  w.U64(h.total);
  w.U64(h.offset);
  return w.Take();
}

Result<DataHeader> DecodeDataHeader(std::string_view bytes) {
  Reader r(bytes);
  uint8_t magic = 0, version = 0, kind = 0, cls = 0;
  DataHeader h;
  if (!r.U8(&magic) || magic != kDataMagic) return Corrupt("data header: bad magic");
  if (!r.U8(&version) || version != kVersion) return Corrupt("data header: bad version");
  if (!r.U8(&kind) || (kind != 1 && kind != 2)) return Corrupt("data header: bad kind");
  if (!r.U8(&cls) || cls >= kChannelClasses) return Corrupt("data header: bad class");
  h.kind = static_cast<DataHeader::Kind>(kind);
  h.cls = static_cast<ChannelClass>(cls);
  if (!r.U32(&h.from) || !r.U64(&h.group) || !r.U64(&h.attempt) || !r.U64(&h.seq) ||
      !r.U64(&h.bytes) || !r.U32(&h.tag) || !r.U64(&h.total) || !r.U64(&h.offset)) {
    return Corrupt("data header: truncated");
  }
  if (!r.AtEnd()) return Corrupt("data header: trailing bytes");
  return h;
}

std::string EncodeControl(const ControlMessage& m) {
  Writer w;
  w.U8(kControlMagic);
  w.U8(kVersion);
  w.U8(static_cast<uint8_t>(m.kind));
  w.U8(static_cast<uint8_t>((m.done ? 1 : 0) | (m.commit ? 2 : 0)));
  w.U32(m.from);
  w.U64(m.group);
  w.U64(m.op);
  w.U32(m.epoch);
  w.U64(m.dead);
  w.U64(m.view);
  return w.Take();
}

Result<ControlMessage> DecodeControl(std::string_view bytes) {
  Reader r(bytes);
  uint8_t magic = 0, version = 0, kind = 0, flags = 0;
  ControlMessage m;
  if (!r.U8(&magic) || magic != kControlMagic) return Corrupt("control: bad magic");
  if (!r.U8(&version) || version != kVersion) return Corrupt("control: bad version");
  if (!r.U8(&kind) || kind < 1 || kind > 4) return Corrupt("control: bad kind");
  if (!r.U8(&flags) || (flags & ~3u) != 0) return Corrupt("control: bad flags");
  m.kind = static_cast<ControlMessage::Kind>(kind);
  m.done = (flags & 1) != 0;
  m.commit = (flags & 2) != 0;
  if (!r.U32(&m.from) || !r.U64(&m.group) || !r.U64(&m.op) || !r.U32(&m.epoch) || !r.U64(&m.dead) ||
      !r.U64(&m.view)) {
    return Corrupt("control: truncated");
  }
  if (!r.AtEnd()) return Corrupt("control: trailing bytes");
  return m;
}

std::string EncodeBootstrap(const BootstrapRecord& b) {
  Writer w;
  w.U8(kBootstrapMagic);
  w.U8(kVersion);
  w.U32(b.rank);
  w.U32(b.size);
  w.U64(b.slot_bytes);
  w.U64(b.recv_addr);
  w.U64(b.recv_bytes);
  w.Str(b.segment);
  w.Str(b.endpoint);
  return w.Take();
}

Result<BootstrapRecord> DecodeBootstrap(std::string_view bytes) {
  Reader r(bytes);
  uint8_t magic = 0, version = 0;
  BootstrapRecord b;
  if (!r.U8(&magic) || magic != kBootstrapMagic) return Corrupt("bootstrap: bad magic");
  if (!r.U8(&version) || version != kVersion) return Corrupt("bootstrap: bad version");
  if (!r.U32(&b.rank) || !r.U32(&b.size) || !r.U64(&b.slot_bytes) || !r.U64(&b.recv_addr) ||
      !r.U64(&b.recv_bytes) || !r.Str(&b.segment, 4096) || !r.Str(&b.endpoint, 4096)) {
    return Corrupt("bootstrap: truncated");
  }
  if (!r.AtEnd()) return Corrupt("bootstrap: trailing bytes");
  if (b.size == 0 || b.rank >= b.size) return Corrupt("bootstrap: rank outside the group size");
  return b;
}

uint64_t GroupHash(std::string_view name) {
  uint64_t h = 1469598103934665603ULL;
  for (char c : name) {
    h ^= static_cast<uint8_t>(c);
    h *= 1099511628211ULL;
  }
  return h;
}

}  // namespace tidal::coll
