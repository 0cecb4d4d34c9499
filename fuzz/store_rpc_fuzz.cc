// Fuzz target: the store's RPC frame decoder (DecodeFrame) and the message-body decoders
// inside the frames (store/src/protocol.h), i.e. every byte a master or client accepts
// from the network.
//
// Proves, for every input:
//  * DecodeFrame rejects with CORRUPT_INPUT, or accepts a frame whose encoding is
//    canonical: EncodeFrame(decoded) is exactly the input, with a known message type;
//  * every body decoder, run on the frame's body (or on the whole input when it is not a
//    frame), rejects with CORRUPT_INPUT or accepts a message that re-encodes to bytes
//    that decode and re-encode to the same bytes (encode∘decode is a fixed point), and
//    lists stay within their documented bounds (replicas, keys);
//  * ParseResponse accepts a body only when it starts with a complete status, and the
//    status or payload it returns survives Respond -> ParseResponse unchanged.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "protocol.h"
#include "tidal/store/rpc.h"

namespace {

namespace proto = tidal::store::proto;

// Decode -> Encode -> Decode -> Encode: the two encodings are equal.
template <typename M>
void RoundTrip(std::string_view in, const char* what) {
  M m;
  tidal::Status s = proto::Decode(in, &m);
  if (!s.ok()) {
    TIDAL_FUZZ_CHECK(s.code() == tidal::ErrorCode::CORRUPT_INPUT, s.ToString());
    return;
  }
  const std::string once = proto::Encode(m);
  M again;
  tidal::Status s2 = proto::Decode(once, &again);
  TIDAL_FUZZ_CHECK(s2.ok(), std::string(what) + ": re-encoded message rejected: " + s2.ToString());
  TIDAL_FUZZ_CHECK(proto::Encode(again) == once, std::string(what) + ": not a fixed point");
}

template <typename T, typename Dec, typename Enc>
void RoundTripWith(std::string_view in, Dec dec, Enc enc, const char* what) {
  T v{};
  tidal::Status s = dec(in, &v);
  if (!s.ok()) {
    TIDAL_FUZZ_CHECK(s.code() == tidal::ErrorCode::CORRUPT_INPUT, s.ToString());
    return;
  }
  const std::string once = enc(v);
  T again{};
  tidal::Status s2 = dec(once, &again);
  TIDAL_FUZZ_CHECK(s2.ok(), std::string(what) + ": re-encoded value rejected: " + s2.ToString());
  TIDAL_FUZZ_CHECK(enc(again) == once, std::string(what) + ": not a fixed point");
}

void CheckBodies(std::string_view body) {
  RoundTrip<proto::MountReq>(body, "mount request");
  RoundTrip<proto::PutStartReq>(body, "put start request");
  RoundTrip<proto::KeyGen>(body, "key/generation");
  RoundTrip<proto::RemoveReq>(body, "remove request");
  RoundTrip<proto::PutReserveReq>(body, "put reserve request");
  RoundTrip<proto::PutCommitReq>(body, "put commit request");
  {
    proto::PutReserveResp m;
    if (proto::Decode(body, &m).ok()) {
      for (const auto& r : m.reservations) {
        TIDAL_FUZZ_CHECK(r.replicas.size() <= tidal::store::kMaxReplicas, "too many replicas");
      }
    }
    RoundTrip<proto::PutReserveResp>(body, "put reserve response");
  }
  {
    proto::PutStartResp m;
    if (proto::Decode(body, &m).ok()) {
      TIDAL_FUZZ_CHECK(m.replicas.size() <= tidal::store::kMaxReplicas, "too many replicas");
    }
    RoundTrip<proto::PutStartResp>(body, "put start response");
  }
  {
    proto::ReplicaListResp m;
    if (proto::Decode(body, &m).ok()) {
      TIDAL_FUZZ_CHECK(m.replicas.size() <= tidal::store::kMaxReplicas, "too many replicas");
    }
    RoundTrip<proto::ReplicaListResp>(body, "replica list response");
  }
  RoundTripWith<std::string>(
      body, [](std::string_view in, std::string* k) { return proto::DecodeKey(in, k); },
      [](const std::string& k) { return proto::EncodeKey(k); }, "key");
  RoundTripWith<uint64_t>(
      body, [](std::string_view in, uint64_t* v) { return proto::DecodeU64(in, v); },
      [](uint64_t v) { return proto::EncodeU64(v); }, "u64");
  RoundTripWith<std::vector<uint64_t>>(
      body, [](std::string_view in, std::vector<uint64_t>* v) { return proto::DecodeU64s(in, v); },
      [](const std::vector<uint64_t>& v) { return proto::EncodeU64s(v); }, "u64 list");
  RoundTripWith<std::vector<std::string>>(
      body,
      [](std::string_view in, std::vector<std::string>* v) { return proto::DecodeKeys(in, v); },
      [](const std::vector<std::string>& v) { return proto::EncodeKeys(v); }, "key list");
  RoundTripWith<std::vector<tidal::ErrorCode>>(
      body,
      [](std::string_view in, std::vector<tidal::ErrorCode>* v) {
        return proto::DecodeCodes(in, v);
      },
      [](const std::vector<tidal::ErrorCode>& v) { return proto::EncodeCodes(v); }, "code list");
  RoundTripWith<tidal::store::ObjectInfo>(
      body,
      [](std::string_view in, tidal::store::ObjectInfo* v) { return proto::DecodeInfo(in, v); },
      [](const tidal::store::ObjectInfo& v) { return proto::EncodeInfo(v); }, "object info");

  tidal::Result<std::string> response = proto::ParseResponse(body);
  if (response.ok()) {
    tidal::Result<std::string> again = proto::ParseResponse(proto::Respond(tidal::Status(), *response));
    TIDAL_FUZZ_CHECK(again.ok() && *again == *response, "an OK response's payload changed");
  } else if (response.code() != tidal::ErrorCode::RPC_FAIL ||
             response.status().message() != "store response: malformed status") {
    // The callee's own failure: it must travel back unchanged.
    tidal::Result<std::string> again = proto::ParseResponse(proto::Respond(response.status()));
    TIDAL_FUZZ_CHECK(!again.ok() && again.code() == response.code() &&
                         again.status().message() == response.status().message(),
                     "a failed response's status changed");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  tidal::Result<tidal::store::Frame> frame = tidal::store::DecodeFrame(bytes);
  if (!frame.ok()) {
    TIDAL_FUZZ_CHECK(frame.code() == tidal::ErrorCode::CORRUPT_INPUT, frame.status().ToString());
    CheckBodies(bytes);
    return 0;
  }
  const uint16_t msg = static_cast<uint16_t>(frame->msg());
  TIDAL_FUZZ_CHECK(msg >= 1 && msg <= static_cast<uint16_t>(tidal::store::MsgType::kMaxRequest),
                   "accepted an unknown message type");
  TIDAL_FUZZ_CHECK(tidal::store::EncodeFrame(*frame) == bytes, "decode->encode changed the frame");
  CheckBodies(frame->body);
  return 0;
}
