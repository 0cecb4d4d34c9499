// Fuzz target: the TcpMessenger's streaming frame decoder (backends/tcp/frame.h) and the
// metadata service's request and response decoders (backends/tcp/metadata_rpc.h), i.e.
// every byte tidal-master and a TcpMessenger accept from a socket.
//
// The first input byte picks a chunk size; the rest is the byte stream. Proves:
//  * fed in chunks or all at once, the decoder yields the same frames and the same final
//    verdict (it depends on the bytes, never on how they arrived);
//  * a rejection is CORRUPT_INPUT and is final; the decoder then holds no bytes;
//  * every accepted frame is canonical: EncodeTcpFrame(decoded) is exactly the bytes it
//    consumed, its name is 1..255 bytes, its payload within the limit, a hello carries a
//    HOST:PORT;
//  * the buffer never holds more than one frame's worth plus one chunk (no bytes of a
//    refused frame are kept);
//  * each message payload (and the raw stream) given to DecodeMetaRequest /
//    DecodeMetaResponse is rejected with CORRUPT_INPUT, or re-encodes to bytes that decode
//    and re-encode to the same bytes (encode∘decode is a fixed point).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "tidal/backends/tcp/frame.h"
#include "tidal/backends/tcp/metadata_rpc.h"

namespace {

namespace tcp = tidal::backends::tcp;
constexpr uint32_t kMaxPayload = 4096;

struct Outcome {
  std::vector<tcp::TcpFrame> frames;
  tidal::Status error;
};

Outcome DecodeStream(std::string_view stream, size_t chunk) {
  tcp::FrameDecoder d(kMaxPayload);
  Outcome out;
  size_t consumed_before = 0;
  for (size_t pos = 0; pos < stream.size() && out.error.ok(); pos += chunk) {
    d.Feed(stream.substr(pos, chunk));
    TIDAL_FUZZ_CHECK(d.buffered() <= tcp::kTcpFrameHeaderBytes + tcp::kTcpMaxNameBytes +
                                         kMaxPayload + chunk,
                     "decoder buffers more than one frame and one chunk");
    for (;;) {
      auto next = d.Next();
      if (!next.ok()) {
        TIDAL_FUZZ_CHECK(next.code() == tidal::ErrorCode::CORRUPT_INPUT, next.status().ToString());
        TIDAL_FUZZ_CHECK(d.failed() && d.buffered() == 0, "a failed decoder keeps bytes");
        TIDAL_FUZZ_CHECK(d.Next().code() == tidal::ErrorCode::CORRUPT_INPUT, "error not final");
        out.error = next.status();
        break;
      }
      if (!next->has_value()) break;
      tcp::TcpFrame& f = **next;
      const std::string wire = tcp::EncodeTcpFrame(f.kind, f.from, f.payload);
      TIDAL_FUZZ_CHECK(stream.substr(consumed_before, wire.size()) == wire,
                       "an accepted frame is not the bytes it came from");
      consumed_before += wire.size();
      TIDAL_FUZZ_CHECK(!f.from.empty() && f.from.size() <= tcp::kTcpMaxNameBytes, "name size");
      TIDAL_FUZZ_CHECK(f.payload.size() <= kMaxPayload, "payload above the limit");
      if (f.kind == tcp::TcpFrameKind::kHello) {
        TIDAL_FUZZ_CHECK(tcp::ParseHostPort(f.payload).ok(), "hello without HOST:PORT");
      }
      out.frames.push_back(std::move(f));
    }
  }
  return out;
}

void CheckMeta(std::string_view bytes) {
  auto q = tcp::DecodeMetaRequest(bytes);
  if (q.ok()) {
    const std::string once = tcp::EncodeMetaRequest(*q);
    auto again = tcp::DecodeMetaRequest(once);
    TIDAL_FUZZ_CHECK(again.ok(), "re-encoded request rejected: " + again.status().ToString());
    TIDAL_FUZZ_CHECK(tcp::EncodeMetaRequest(*again) == once, "request is not a fixed point");
  } else {
    TIDAL_FUZZ_CHECK(q.code() == tidal::ErrorCode::CORRUPT_INPUT, q.status().ToString());
  }
  auto r = tcp::DecodeMetaResponse(bytes);
  if (r.ok()) {
    TIDAL_FUZZ_CHECK(r->entries.size() <= tcp::kMetaMaxListEntries, "list above its bound");
    const std::string once = tcp::EncodeMetaResponse(*r);
    auto again = tcp::DecodeMetaResponse(once);
    TIDAL_FUZZ_CHECK(again.ok(), "re-encoded response rejected: " + again.status().ToString());
    TIDAL_FUZZ_CHECK(tcp::EncodeMetaResponse(*again) == once, "response is not a fixed point");
  } else {
    TIDAL_FUZZ_CHECK(r.code() == tidal::ErrorCode::CORRUPT_INPUT, r.status().ToString());
  }
}

bool SameFrames(const std::vector<tcp::TcpFrame>& a, const std::vector<tcp::TcpFrame>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].kind != b[i].kind || a[i].from != b[i].from || a[i].payload != b[i].payload) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t chunk = 1 + data[0] % 64;
  const std::string_view stream(reinterpret_cast<const char*>(data) + 1, size - 1);
  const Outcome chunked = DecodeStream(stream, chunk);
  const Outcome whole = DecodeStream(stream, stream.size() == 0 ? 1 : stream.size());
  TIDAL_FUZZ_CHECK(SameFrames(chunked.frames, whole.frames),
                   "frames depend on how the bytes arrived");
  TIDAL_FUZZ_CHECK(chunked.error.code() == whole.error.code() &&
                       chunked.error.message() == whole.error.message(),
                   "verdict depends on how the bytes arrived: '" + chunked.error.ToString() +
                       "' vs '" + whole.error.ToString() + "'");
  for (const tcp::TcpFrame& f : whole.frames) {
    if (f.kind == tcp::TcpFrameKind::kMessage) {
      CheckMeta(f.payload);
      // Behind a MessengerMux the first byte is the channel.
      if (!f.payload.empty()) CheckMeta(std::string_view(f.payload).substr(1));
    }
  }
  CheckMeta(stream);
  return 0;
}
