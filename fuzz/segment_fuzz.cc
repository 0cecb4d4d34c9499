// Fuzz target: the segment descriptor decoder (DecodeSegment) and Location::Parse.
//
// Proves, for every input: the decoder never reads past its buffer (ASan) and either
// rejects the bytes with CORRUPT_INPUT and a message, or accepts them and then
//  * the encoding is canonical: EncodeSegment(decoded) gives back exactly the input
//    bytes (the format has no slack: reserved must be 0, no trailing bytes), and
//    decoding that again gives an equal descriptor;
//  * every accepted region satisfies the invariants peers rely on (non-empty, does not
//    wrap, non-zero rkey, device >= 0) and FindRegion finds a region for its own range.
// The input read as text also goes through Location::Parse: an accepted location prints
// (ToString) to text that parses back to the same location.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "tidal/segment.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);

  tidal::Result<tidal::SegmentDescriptor> decoded = tidal::DecodeSegment(bytes);
  if (!decoded.ok()) {
    TIDAL_FUZZ_CHECK(decoded.code() == tidal::ErrorCode::CORRUPT_INPUT,
                     decoded.status().ToString());
    TIDAL_FUZZ_CHECK(!decoded.status().message().empty(), "rejection without a message");
  } else {
    const tidal::SegmentDescriptor& d = *decoded;
    TIDAL_FUZZ_CHECK(!d.name.empty(), "accepted a descriptor without a name");
    for (const tidal::RegionInfo& r : d.regions) {
      TIDAL_FUZZ_CHECK(r.length > 0 && r.addr + r.length >= r.addr && r.rkey != 0 &&
                           r.location.device >= 0,
                       "accepted a region that breaks its invariants");
      const tidal::RegionInfo* found = d.FindRegion(r.addr, r.length);
      TIDAL_FUZZ_CHECK(found != nullptr && found->Contains(r.addr, r.length),
                       "FindRegion misses a region's own range");
    }
    const std::string encoded = tidal::EncodeSegment(d);
    TIDAL_FUZZ_CHECK(encoded == bytes, "decode->encode is not the identity");
    tidal::Result<tidal::SegmentDescriptor> again = tidal::DecodeSegment(encoded);
    TIDAL_FUZZ_CHECK(again.ok() && *again == d, "decode->encode->decode changed the value");
  }

  const std::string text(bytes);
  tidal::Result<tidal::Location> location = tidal::Location::Parse(text);
  if (!location.ok()) {
    TIDAL_FUZZ_CHECK(location.code() == tidal::ErrorCode::INVALID_PARAMS,
                     location.status().ToString());
  } else {
    tidal::Result<tidal::Location> again = tidal::Location::Parse(location->ToString());
    TIDAL_FUZZ_CHECK(again.ok() && *again == *location,
                     "Location::Parse(ToString()) changed '" + text + "'");
  }
  return 0;
}
