// The TcpMessenger's wire frame and its streaming decoder.
//
// Every message between two TcpMessengers travels as one frame (little-endian, through
// the engine's byte codec):
//
//   offset size  field
//   0      4     magic 0x4D534D54 (the bytes "TMSM")
//   4      1     version (kTcpFrameVersion = 2; any other is refused)
//   5      1     kind: 1 message, 2 hello (the payload is the sender's "host:port")
//   6      2     from length, 1..kTcpMaxNameBytes
//   8      4     payload length, at most the receiver's max_payload_bytes
//   12     ...   from (the sending endpoint's name), then the payload
//
// The dialling side opens a connection with a hello and then sends its messages; the
// accepting side answers on the same connection (frames of its own, no hello), so a
// request and its answer cross one connection, as a Redis request does. Version 1 carried
// one direction per connection (the accepting side dialled back to answer); a version-1
// peer's frames are refused, as it would drop the answers on its connection.
//
// FrameDecoder validates the 12-byte header as soon as it has arrived, so an oversized or
// garbled frame is refused before a byte of its body is buffered; after the first error
// the decoder stays failed (the connection is closed). It is a fuzz target
// (fuzz/tcp_frame_fuzz.cc). Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "tidal/status.h"

namespace tidal::backends::tcp {

constexpr uint32_t kTcpFrameMagic = 0x4D534D54;  // "TMSM" little-endian
constexpr uint8_t kTcpFrameVersion = 2;
constexpr size_t kTcpFrameHeaderBytes = 12;
constexpr size_t kTcpMaxNameBytes = 255;
// The default payload limit: a store RPC frame with a full 64 MiB body, its header and a
// MessengerMux channel byte fit with room to spare.
constexpr uint32_t kTcpDefaultMaxPayload = (64u << 20) + 4096;

enum class TcpFrameKind : uint8_t { kMessage = 1, kHello = 2 };

struct TcpFrame {
  TcpFrameKind kind = TcpFrameKind::kMessage;
  std::string from;
  std::string payload;
};

// Encodes one frame. The caller keeps `from` within 1..kTcpMaxNameBytes and the payload
// within the u32 range (asserted).
std::string EncodeTcpFrame(TcpFrameKind kind, std::string_view from, std::string_view payload);

// Checks a name an endpoint may carry: 1..kTcpMaxNameBytes bytes. INVALID_PARAMS otherwise.
Status CheckEndpointName(std::string_view name);

// Parses "host:port" (an IPv4 or IPv6 literal, or "localhost"; port 0..65535; IPv6 in
// brackets: "[::1]:5000"). INVALID_PARAMS naming what is wrong.
struct HostPort {
  std::string host;
  uint16_t port = 0;
};
Result<HostPort> ParseHostPort(std::string_view text);

class FrameDecoder {
 public:
  explicit FrameDecoder(uint32_t max_payload_bytes = kTcpDefaultMaxPayload)
      : max_payload_(max_payload_bytes) {}

  // Appends bytes read from the connection.
  void Feed(std::string_view bytes);
  // The next complete frame, nullopt if more bytes are needed, or CORRUPT_INPUT naming the
  // field (magic, version, kind, from length, payload length, hello address). After an
  // error every later call returns the same error.
  Result<std::optional<TcpFrame>> Next();

  size_t buffered() const { return buf_.size() - pos_; }
  bool failed() const { return !error_.ok(); }

 private:
  Status Fail(std::string message);

  uint32_t max_payload_;
  std::string buf_;
  size_t pos_ = 0;  // start of the first unconsumed byte in buf_
  Status error_;
};

}  // namespace tidal::backends::tcp
