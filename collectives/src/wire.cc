// Encoders and decoders of the process group's wire formats (see wire.h).
#include "wire.h"

#include "tidal/codec.h"

namespace tidal::coll {
namespace {

constexpr uint8_t kVersion = 1;
constexpr size_t kMaxName = 4096;  // bootstrap segment and endpoint names

Status Corrupt(const char* what) {
  return Status(ErrorCode::CORRUPT_INPUT, std::string("collectives wire: ") + what);
}

}  // namespace

std::string EncodeDataHeader(const DataHeader& h) {
  ByteWriter w;
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
  ByteReader r(bytes);
  uint8_t magic = 0, version = 0, kind = 0, cls = 0;
  DataHeader h;
  if (!r.U8(&magic) || magic != kDataMagic) return Corrupt("data header: bad magic");
  if (!r.U8(&version) || version != kVersion) return Corrupt("data header: bad version");
  if (!r.U8(&kind) || (kind < 1 || kind > 3)) return Corrupt("data header: bad kind");
  if (!r.U8(&cls) || cls >= kChannelClasses) return Corrupt("data header: bad class");
  h.kind = static_cast<DataHeader::Kind>(kind);
  h.cls = static_cast<ChannelClass>(cls);
  if (!r.U32(&h.from)) return Corrupt("data header: from cut off");
  if (!r.U64(&h.group)) return Corrupt("data header: group cut off");
  if (!r.U64(&h.attempt)) return Corrupt("data header: attempt cut off");
  if (!r.U64(&h.seq)) return Corrupt("data header: seq cut off");
  if (!r.U64(&h.bytes)) return Corrupt("data header: bytes cut off");
  if (!r.U32(&h.tag)) return Corrupt("data header: tag cut off");
  if (!r.U64(&h.total)) return Corrupt("data header: total cut off");
  if (!r.U64(&h.offset)) return Corrupt("data header: offset cut off");
  if (!r.done()) return Corrupt("data header: trailing bytes");
  return h;
}

std::string EncodeControl(const ControlMessage& m) {
  ByteWriter w;
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
  ByteReader r(bytes);
  uint8_t magic = 0, version = 0, kind = 0, flags = 0;
  ControlMessage m;
  if (!r.U8(&magic) || magic != kControlMagic) return Corrupt("control: bad magic");
  if (!r.U8(&version) || version != kVersion) return Corrupt("control: bad version");
  if (!r.U8(&kind) || kind < 1 || kind > 4) return Corrupt("control: bad kind");
  if (!r.U8(&flags) || (flags & ~3u) != 0) return Corrupt("control: bad flags");
  m.kind = static_cast<ControlMessage::Kind>(kind);
  m.done = (flags & 1) != 0;
  m.commit = (flags & 2) != 0;
  if (!r.U32(&m.from)) return Corrupt("control: from cut off");
  if (!r.U64(&m.group)) return Corrupt("control: group cut off");
  if (!r.U64(&m.op)) return Corrupt("control: op cut off");
  if (!r.U32(&m.epoch)) return Corrupt("control: epoch cut off");
  if (!r.U64(&m.dead)) return Corrupt("control: dead set cut off");
  if (!r.U64(&m.view)) return Corrupt("control: view cut off");
  if (!r.done()) return Corrupt("control: trailing bytes");
  return m;
}

std::string EncodeBootstrap(const BootstrapRecord& b) {
  ByteWriter w;
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
  ByteReader r(bytes);
  uint8_t magic = 0, version = 0;
  BootstrapRecord b;
  if (!r.U8(&magic) || magic != kBootstrapMagic) return Corrupt("bootstrap: bad magic");
  if (!r.U8(&version) || version != kVersion) return Corrupt("bootstrap: bad version");
  if (!r.U32(&b.rank)) return Corrupt("bootstrap: rank cut off");
  if (!r.U32(&b.size)) return Corrupt("bootstrap: size cut off");
  if (!r.U64(&b.slot_bytes)) return Corrupt("bootstrap: slot bytes cut off");
  if (!r.U64(&b.recv_addr)) return Corrupt("bootstrap: receive address cut off");
  if (!r.U64(&b.recv_bytes)) return Corrupt("bootstrap: receive bytes cut off");
  // Str checks the length against its bound and the rest of the input before it copies.
  if (!r.Str(&b.segment, kMaxName)) return Corrupt("bootstrap: segment cut off or too long");
  if (!r.Str(&b.endpoint, kMaxName)) return Corrupt("bootstrap: endpoint cut off or too long");
  if (!r.done()) return Corrupt("bootstrap: trailing bytes");
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
