// Segment descriptors: what a node exports and peers need to reach it.
//
// A descriptor names the segment, the transport that serves it, the transport's address
// blob and the exported regions (each with its remote key), plus the incarnation (which
// node process published it) and the descriptor version (which publication within that
// incarnation). The binary encoding is versioned and length-checked; Decode validates every field against the buffer and
// never reads past it (it is a fuzz target).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tidal/memory.h"
#include "tidal/status.h"

namespace tidal {

struct SegmentDescriptor {
  std::string name;        // unique in the metadata store
  std::string transport;   // "sim", "ucx", ...
  std::string address;     // transport-specific address blob
  uint64_t incarnation = 0;  // changes every time the node (re)publishes after a restart
  // Grows by one every time the node republishes within one incarnation (a region was
  // registered or unregistered). Holders of a handle refresh their cached copy in place
  // when they see a newer version of the same incarnation.
  uint64_t version = 0;
  std::vector<RegionInfo> regions;

  bool operator==(const SegmentDescriptor&) const = default;

  // The exported region wholly containing [addr, addr+length), or nullptr.
  const RegionInfo* FindRegion(uint64_t addr, uint64_t length) const;
};

constexpr uint32_t kSegmentMagic = 0x54534547;  // "GEST" little-endian: tidal SEGment
constexpr uint16_t kSegmentVersion = 2;  // the encoding's format version
constexpr size_t kSegmentMaxRegions = 1 << 16;
constexpr size_t kSegmentMaxString = 4096;

std::string EncodeSegment(const SegmentDescriptor& d);
// CORRUPT_INPUT with a message naming the field for any malformed input.
Result<SegmentDescriptor> DecodeSegment(std::string_view bytes);

// The metadata-store key of a segment: "tidal/segments/<name>".
std::string SegmentKey(std::string_view name);

}  // namespace tidal
