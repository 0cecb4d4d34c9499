// TcpMessenger frames (see frame.h).
#include "tidal/backends/tcp/frame.h"

#include <charconv>

#include "tidal/codec.h"

namespace tidal::backends::tcp {

std::string EncodeTcpFrame(TcpFrameKind kind, std::string_view from, std::string_view payload) {
  TIDAL_ASSERT(!from.empty() && from.size() <= kTcpMaxNameBytes);
  TIDAL_ASSERT(payload.size() <= UINT32_MAX);
  ByteWriter w;
  w.str().reserve(kTcpFrameHeaderBytes + from.size() + payload.size());
  w.U32(kTcpFrameMagic);
  w.U8(kTcpFrameVersion);
  w.U8(static_cast<uint8_t>(kind));
  w.U16(static_cast<uint16_t>(from.size()));
  w.U32(static_cast<uint32_t>(payload.size()));
  w.Bytes(from);
  w.Bytes(payload);
  return w.Take();
}

Status CheckEndpointName(std::string_view name) {
  if (name.empty() || name.size() > kTcpMaxNameBytes) {
    return Status(ErrorCode::INVALID_PARAMS, "endpoint name must be 1.." +
                                                 std::to_string(kTcpMaxNameBytes) +
                                                 " bytes, got " + std::to_string(name.size()));
  }
  return Status();
}

Result<HostPort> ParseHostPort(std::string_view text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "address '" + std::string(text) + "' is not HOST:PORT");
  }
  std::string_view host = text.substr(0, colon);
  std::string_view port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "address '" + std::string(text) + "': an IPv6 host needs brackets");
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value > 65535) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "address '" + std::string(text) + "': port is not a number in 0..65535");
  }
  if (host.empty()) {
    return Status(ErrorCode::INVALID_PARAMS, "address '" + std::string(text) + "': empty host");
  }
  return HostPort{std::string(host), static_cast<uint16_t>(value)};
}

void FrameDecoder::Feed(std::string_view bytes) {
  if (failed()) return;
  // Drop what was consumed before growing, so the buffer holds at most one frame plus
  // one read's worth of bytes.
  if (pos_ > 0 && (pos_ == buf_.size() || pos_ >= (64u << 10))) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  buf_.append(bytes.data(), bytes.size());
}

Status FrameDecoder::Fail(std::string message) {
  error_ = Status(ErrorCode::CORRUPT_INPUT, "tcp frame: " + std::move(message));
  buf_.clear();
  pos_ = 0;
  return error_;
}

Result<std::optional<TcpFrame>> FrameDecoder::Next() {
  if (failed()) return error_;
  if (buffered() < kTcpFrameHeaderBytes) return std::optional<TcpFrame>();
  ByteReader r(std::string_view(buf_).substr(pos_));
  uint32_t magic = 0, payload_len = 0;
  uint8_t version = 0, kind = 0;
  uint16_t from_len = 0;
  // The size check above makes these reads succeed; a failure is still reported as input.
  if (!r.U32(&magic) || !r.U8(&version) || !r.U8(&kind) || !r.U16(&from_len) ||
      !r.U32(&payload_len)) {
    return Fail("header is cut off");
  }
  if (magic != kTcpFrameMagic) return Fail("field 'magic' is wrong");
  if (version != kTcpFrameVersion) {
    return Fail("field 'version' is " + std::to_string(version) + ", expected " +
                std::to_string(kTcpFrameVersion));
  }
  if (kind != static_cast<uint8_t>(TcpFrameKind::kMessage) &&
      kind != static_cast<uint8_t>(TcpFrameKind::kHello)) {
    return Fail("field 'kind' is unknown (" + std::to_string(kind) + ")");
  }
  if (from_len == 0 || from_len > kTcpMaxNameBytes) {
    return Fail("field 'from length' is " + std::to_string(from_len) + ", allowed 1.." +
                std::to_string(kTcpMaxNameBytes));
  }
  if (payload_len > max_payload_) {
    return Fail("field 'payload length' is " + std::to_string(payload_len) +
                ", above the limit of " + std::to_string(max_payload_));
  }
  if (kind == static_cast<uint8_t>(TcpFrameKind::kHello) && payload_len > kTcpMaxNameBytes) {
    return Fail("field 'payload length' of a hello is " + std::to_string(payload_len) +
                ", above " + std::to_string(kTcpMaxNameBytes));
  }
  if (r.remaining() < static_cast<size_t>(from_len) + payload_len) {
    return std::optional<TcpFrame>();  // the header is good; the body is still coming
  }
  TcpFrame f;
  f.kind = static_cast<TcpFrameKind>(kind);
  std::string_view from, payload;
  if (!r.Bytes(&from, from_len) || !r.Bytes(&payload, payload_len)) {
    return Fail("body is cut off");
  }
  if (f.kind == TcpFrameKind::kHello) {
    Result<HostPort> hp = ParseHostPort(payload);
    if (!hp.ok()) return Fail("hello address: " + hp.status().message());
  }
  f.from.assign(from);
  f.payload.assign(payload);
  pos_ += r.position();
  return std::optional<TcpFrame>(std::move(f));
}

}  // namespace tidal::backends::tcp
