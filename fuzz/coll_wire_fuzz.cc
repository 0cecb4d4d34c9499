// Fuzz target: the process group's three wire formats (collectives/src/wire.h): the data
// header that follows every chunk and credit, the agreement protocol's control message,
// and the bootstrap record each rank publishes. All three are remote bytes.
//
// Proves, for every input and each decoder: it rejects with CORRUPT_INPUT, or it accepts
// a value whose encoding is canonical (re-encoding gives back exactly the input) and that
// decodes again to an equal value. The formats start with distinct magic bytes, so at
// most one decoder accepts any input. GroupHash is checked against FNV-1a's definition.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "wire.h"

namespace {

template <typename T, typename Dec, typename Enc>
bool Check(std::string_view bytes, Dec dec, Enc enc, const char* what) {
  tidal::Result<T> v = dec(bytes);
  if (!v.ok()) {
    TIDAL_FUZZ_CHECK(v.code() == tidal::ErrorCode::CORRUPT_INPUT, v.status().ToString());
    return false;
  }
  const std::string encoded = enc(*v);
  TIDAL_FUZZ_CHECK(encoded == bytes, std::string(what) + ": decode->encode changed the bytes");
  tidal::Result<T> again = dec(encoded);
  TIDAL_FUZZ_CHECK(again.ok() && *again == *v, std::string(what) + ": decode again differs");
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  int accepted = 0;
  accepted += Check<tidal::coll::DataHeader>(
      bytes, tidal::coll::DecodeDataHeader,
      [](const tidal::coll::DataHeader& h) { return tidal::coll::EncodeDataHeader(h); },
      "data header");
  accepted += Check<tidal::coll::ControlMessage>(
      bytes, tidal::coll::DecodeControl,
      [](const tidal::coll::ControlMessage& m) { return tidal::coll::EncodeControl(m); },
      "control message");
  accepted += Check<tidal::coll::BootstrapRecord>(
      bytes, tidal::coll::DecodeBootstrap,
      [](const tidal::coll::BootstrapRecord& b) { return tidal::coll::EncodeBootstrap(b); },
      "bootstrap record");
  TIDAL_FUZZ_CHECK(accepted <= 1, "two formats accepted the same bytes");

  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ULL;
  TIDAL_FUZZ_CHECK(tidal::coll::GroupHash(bytes) == h, "GroupHash is not FNV-1a");
  return 0;
}
