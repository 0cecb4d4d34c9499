#include "tidal/segment.h"

#include "tidal/codec.h"

namespace tidal {

const RegionInfo* SegmentDescriptor::FindRegion(uint64_t addr, uint64_t length) const {
  for (const RegionInfo& r : regions) {
    if (r.Contains(addr, length)) return &r;
  }
  return nullptr;
}

std::string EncodeSegment(const SegmentDescriptor& d) {
  ByteWriter w;
  w.U32(kSegmentMagic);
  w.U16(kSegmentVersion);
  w.U16(0);
  w.U64(d.incarnation);
  w.U64(d.version);
  w.Str(d.name);
  w.Str(d.transport);
  w.Str(d.address);
  w.U32(static_cast<uint32_t>(d.regions.size()));
  for (const RegionInfo& r : d.regions) {
    w.U64(r.addr);
    w.U64(r.length);
    w.U8(static_cast<uint8_t>(r.location.kind));
    w.I32(r.location.device);
    w.U64(r.rkey);
  }
  return w.Take();
}

namespace {
Status Corrupt(const std::string& field) {
  return Status(ErrorCode::CORRUPT_INPUT, "segment descriptor: bad or truncated " + field);
}
}  // namespace

Result<SegmentDescriptor> DecodeSegment(std::string_view bytes) {
  ByteReader r(bytes);
  uint32_t magic = 0;
  uint16_t version = 0, reserved = 0;
  if (!r.U32(&magic) || magic != kSegmentMagic) return Corrupt("magic");
  if (!r.U16(&version) || version != kSegmentVersion) return Corrupt("version");
  if (!r.U16(&reserved) || reserved != 0) return Corrupt("reserved field");
  SegmentDescriptor d;
  if (!r.U64(&d.incarnation)) return Corrupt("incarnation");
  if (!r.U64(&d.version)) return Corrupt("descriptor version");
  if (!r.Str(&d.name, kSegmentMaxString) || d.name.empty()) return Corrupt("name");
  if (!r.Str(&d.transport, kSegmentMaxString)) return Corrupt("transport");
  if (!r.Str(&d.address, kSegmentMaxString)) return Corrupt("address");
  uint32_t count = 0;
  // Each region takes 29 bytes, so a count the buffer cannot hold is rejected up front.
  if (!r.U32(&count) || count > kSegmentMaxRegions || count * 29ULL > r.remaining()) {
    return Corrupt("region count");
  }
  d.regions.resize(count);
  for (RegionInfo& region : d.regions) {
    uint8_t kind = 0;
    if (!r.U64(&region.addr) || !r.U64(&region.length)) return Corrupt("region range");
    if (region.length == 0 || region.addr + region.length < region.addr) {
      return Corrupt("region range");
    }
    if (!r.U8(&kind) || kind > 1) return Corrupt("region location kind");
    region.location.kind = static_cast<Location::Kind>(kind);
    if (!r.I32(&region.location.device) || region.location.device < 0) {
      return Corrupt("region device");
    }
    if (!r.U64(&region.rkey) || region.rkey == 0) return Corrupt("region rkey");
  }
  if (r.remaining() != 0) return Corrupt("trailing bytes");
  return d;
}

std::string SegmentKey(std::string_view name) {
  return "tidal/segments/" + std::string(name);
}

}  // namespace tidal
