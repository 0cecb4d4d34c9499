// Unit tests of the store's decoders: RPC frames (rpc.h), tensor buffers (tensor.h) and
// protocol bodies. They prove that encode/decode round-trips, that every header field is
// validated against the buffer (each truncation and each corrupted field is rejected
// with the documented code and a message naming the field), and that the tensor-parallel
// split cuts the right bytes. No simulator is involved.
#include <gtest/gtest.h>

#include <cstring>

#include "protocol.h"
#include "tidal/store/rpc.h"
#include "tidal/store/tensor.h"

namespace tidal::store {
namespace {

TEST(StoreFrameCodec, RoundTrip) {
  Frame f{static_cast<uint16_t>(MsgType::kPutStart), 0x1122334455667788ull, "body bytes"};
  std::string wire = EncodeFrame(f);
  ASSERT_EQ(wire.size(), kFrameHeaderBytes + 10);
  Result<Frame> d = DecodeFrame(wire);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->type, f.type);
  EXPECT_EQ(d->request_id, f.request_id);
  EXPECT_EQ(d->body, f.body);
  EXPECT_FALSE(d->is_response());
  Frame r{static_cast<uint16_t>(f.type | kResponseBit), 7, ""};
  Result<Frame> dr = DecodeFrame(EncodeFrame(r));
  ASSERT_TRUE(dr.ok());
  EXPECT_TRUE(dr->is_response());
  EXPECT_EQ(dr->msg(), MsgType::kPutStart);
}

TEST(StoreFrameCodec, EveryTruncationIsRejected) {
  std::string wire = EncodeFrame({static_cast<uint16_t>(MsgType::kStat), 1, "abc"});
  for (size_t n = 0; n < wire.size(); ++n) {
    Result<Frame> d = DecodeFrame(std::string_view(wire).substr(0, n));
    EXPECT_EQ(d.code(), ErrorCode::CORRUPT_INPUT) << n;
  }
  EXPECT_EQ(DecodeFrame(wire + "x").code(), ErrorCode::CORRUPT_INPUT);
}

TEST(StoreFrameCodec, EachFieldIsChecked) {
  std::string good = EncodeFrame({static_cast<uint16_t>(MsgType::kStat), 1, "abc"});
  auto with = [&](size_t at, uint8_t v) {
    std::string w = good;
    w[at] = static_cast<char>(v);
    return DecodeFrame(w);
  };
  Result<Frame> magic = with(0, 'X');
  EXPECT_NE(magic.status().message().find("magic"), std::string::npos);
  Result<Frame> version = with(4, 9);
  EXPECT_NE(version.status().message().find("version"), std::string::npos);
  Result<Frame> type = with(6, 0);
  EXPECT_NE(type.status().message().find("type"), std::string::npos);
  Result<Frame> type_high = with(6, 200);
  EXPECT_EQ(type_high.code(), ErrorCode::CORRUPT_INPUT);
  Result<Frame> len = with(16, 4);
  EXPECT_NE(len.status().message().find("body length"), std::string::npos);
  Result<Frame> huge = with(19, 0xFF);
  EXPECT_EQ(huge.code(), ErrorCode::CORRUPT_INPUT);
}

TEST(StoreTensorCodec, RoundTripAndHeaderSize) {
  std::vector<float> data = {1, 2, 3, 4, 5, 6};
  TensorView v{DType::kF32, {2, 3}, reinterpret_cast<const uint8_t*>(data.data()), 24};
  Result<std::string> enc = EncodeTensor(v);
  ASSERT_TRUE(enc.ok());
  EXPECT_EQ(enc->size(), TensorHeaderBytes(2) + 24);
  Result<TensorView> dec = DecodeTensor(*enc);
  ASSERT_TRUE(dec.ok()) << dec.status().ToString();
  EXPECT_EQ(dec->dtype, DType::kF32);
  EXPECT_EQ(dec->shape, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(dec->data_bytes, 24u);
  EXPECT_EQ(std::memcmp(dec->data, data.data(), 24), 0);
}

TEST(StoreTensorCodec, EveryTruncationIsRejectedNamingAField) {
  std::vector<int64_t> data = {1, 2, 3, 4};
  TensorView v{DType::kI64, {4}, reinterpret_cast<const uint8_t*>(data.data()), 32};
  std::string enc = *EncodeTensor(v);
  for (size_t n = 0; n < enc.size(); ++n) {
    Result<TensorView> d = DecodeTensor(std::string_view(enc).substr(0, n));
    ASSERT_EQ(d.code(), ErrorCode::INVALID_PARAMS) << n;
    EXPECT_NE(d.status().message().find("field '"), std::string::npos) << d.status().message();
  }
  EXPECT_EQ(DecodeTensor(enc + "x").code(), ErrorCode::INVALID_PARAMS);
}

TEST(StoreTensorCodec, BadFieldsAreNamed) {
  std::vector<uint8_t> data(6);
  TensorView v{DType::kU8, {2, 3}, data.data(), 6};
  std::string good = *EncodeTensor(v);
  auto message = [&](size_t at, uint8_t value) {
    std::string w = good;
    w[at] = static_cast<char>(value);
    return DecodeTensor(w).status().message();
  };
  EXPECT_NE(message(0, 0).find("'magic'"), std::string::npos);
  EXPECT_NE(message(4, 7).find("'version'"), std::string::npos);
  EXPECT_NE(message(6, 99).find("'dtype'"), std::string::npos);
  EXPECT_NE(message(7, 9).find("'ndim'"), std::string::npos);
  EXPECT_NE(message(8, 3).find("'data bytes'"), std::string::npos);   // shape[0] = 3
  EXPECT_NE(message(24, 7).find("'data bytes'"), std::string::npos);  // data bytes = 7
  // A shape whose element count overflows 64 bits.
  std::string w = good;
  uint64_t big = 1ull << 62;
  std::memcpy(w.data() + 8, &big, 8);
  std::memcpy(w.data() + 16, &big, 8);
  EXPECT_NE(DecodeTensor(w).status().message().find("overflows"), std::string::npos);
}

TEST(StoreTensorCodec, EncodeRejectsInconsistentViews) {
  std::vector<uint8_t> data(6);
  EXPECT_EQ(EncodeTensor({DType::kU8, {2, 3}, data.data(), 5}).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(EncodeTensor({static_cast<DType>(42), {6}, data.data(), 6}).code(),
            ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(EncodeTensor({DType::kU8, std::vector<uint64_t>(9, 1), data.data(), 1}).code(),
            ErrorCode::INVALID_PARAMS);
}

TEST(StoreTensorSplit, SplitsAlongEachDimension) {
  // [2, 4, 3] u8 with value = index.
  std::vector<uint8_t> data(24);
  for (size_t i = 0; i < 24; ++i) data[i] = static_cast<uint8_t>(i);
  TensorView full{DType::kU8, {2, 4, 3}, data.data(), 24};
  auto shards = SplitTensor(full, 1, 2);
  ASSERT_TRUE(shards.ok());
  ASSERT_EQ(shards->size(), 2u);
  TensorView s1 = *DecodeTensor((*shards)[1]);
  EXPECT_EQ(s1.shape, (std::vector<uint64_t>{2, 2, 3}));
  std::vector<uint8_t> got(s1.data, s1.data + s1.data_bytes);
  EXPECT_EQ(got, (std::vector<uint8_t>{6, 7, 8, 9, 10, 11, 18, 19, 20, 21, 22, 23}));
  auto last = SplitTensor(full, 2, 3);
  ASSERT_TRUE(last.ok());
  TensorView l2 = *DecodeTensor((*last)[2]);
  std::vector<uint8_t> got2(l2.data, l2.data + l2.data_bytes);
  EXPECT_EQ(got2, (std::vector<uint8_t>{2, 5, 8, 11, 14, 17, 20, 23}));
  auto first = SplitTensor(full, 0, 2);
  ASSERT_TRUE(first.ok());
  TensorView f0 = *DecodeTensor((*first)[0]);
  EXPECT_EQ(f0.data_bytes, 12u);
  EXPECT_EQ(f0.data[11], 11);
}

TEST(StoreTensorSplit, RejectsBadSplits) {
  std::vector<uint8_t> data(24);
  TensorView full{DType::kU8, {2, 4, 3}, data.data(), 24};
  EXPECT_EQ(SplitTensor(full, 1, 3).code(), ErrorCode::INVALID_PARAMS);  // 4 % 3
  EXPECT_EQ(SplitTensor(full, 3, 1).code(), ErrorCode::INVALID_PARAMS);  // dim out of range
  EXPECT_EQ(SplitTensor(full, 0, 0).code(), ErrorCode::INVALID_PARAMS);  // tp_size 0
  TensorView bad = full;
  bad.data_bytes = 23;
  EXPECT_EQ(SplitTensor(bad, 0, 2).code(), ErrorCode::INVALID_PARAMS);
}

TEST(StoreProtocol, RoundTripsAndRejectsTrailingBytes) {
  proto::PutStartReq req{"key", 123, {}};
  req.config.replica_num = 2;
  req.config.preferred_segments = {"node1", "node2"};
  req.config.hard_pin = true;
  req.config.soft_pin_ttl_ns = 55;
  std::string enc = proto::Encode(req);
  proto::PutStartReq back;
  ASSERT_TRUE(proto::Decode(enc, &back).ok());
  EXPECT_EQ(back.key, "key");
  EXPECT_EQ(back.size, 123u);
  EXPECT_EQ(back.config.preferred_segments, req.config.preferred_segments);
  EXPECT_TRUE(back.config.hard_pin);
  EXPECT_EQ(back.config.soft_pin_ttl_ns, 55u);
  EXPECT_EQ(proto::Decode(enc + "z", &back).code(), ErrorCode::CORRUPT_INPUT);
  for (size_t n = 0; n < enc.size(); ++n) {
    EXPECT_EQ(proto::Decode(enc.substr(0, n), &back).code(), ErrorCode::CORRUPT_INPUT) << n;
  }
  Result<std::string> failed =
      proto::ParseResponse(proto::Respond(Status(ErrorCode::OBJECT_HAS_LEASE, "leased")));
  EXPECT_EQ(failed.code(), ErrorCode::OBJECT_HAS_LEASE);
  EXPECT_EQ(failed.status().message(), "leased");
  Result<std::string> ok = proto::ParseResponse(proto::Respond(Status(), "payload"));
  EXPECT_EQ(ok.value(), "payload");
}

// The put-reservation messages: every field round-trips, and every cut is refused.
TEST(StoreProtocol, ReservationMessagesRoundTripAndRejectEveryCut) {
  proto::PutReserveReq req{4096, {}, 16, {7, 9}};
  req.config.replica_num = 2;
  req.config.preferred_segments = {"node1"};
  const std::string enc = proto::Encode(req);
  proto::PutReserveReq back;
  ASSERT_TRUE(proto::Decode(enc, &back).ok());
  EXPECT_EQ(back.size, 4096u);
  EXPECT_EQ(back.config.replica_num, 2u);
  EXPECT_EQ(back.config.preferred_segments, req.config.preferred_segments);
  EXPECT_EQ(back.count, 16u);
  EXPECT_EQ(back.release, (std::vector<uint64_t>{7, 9}));

  proto::PutReserveResp resp{
      5'000'000'000ull,
      {{11, {{"node1", 0x1000, 4096}, {"node2", 0x2000, 4096}}}, {12, {{"node1", 0x3000, 4096}}}}};
  const std::string renc = proto::Encode(resp);
  proto::PutReserveResp rback;
  ASSERT_TRUE(proto::Decode(renc, &rback).ok());
  EXPECT_EQ(rback.valid_ns, 5'000'000'000ull);
  ASSERT_EQ(rback.reservations.size(), 2u);
  EXPECT_EQ(rback.reservations[0].id, 11u);
  EXPECT_EQ(rback.reservations[0].replicas, resp.reservations[0].replicas);
  EXPECT_EQ(rback.reservations[1].replicas, resp.reservations[1].replicas);

  proto::PutCommitReq commit{"key", 11, 4096, {}};
  commit.config.hard_pin = true;
  const std::string cenc = proto::Encode(commit);
  proto::PutCommitReq cback;
  ASSERT_TRUE(proto::Decode(cenc, &cback).ok());
  EXPECT_EQ(cback.key, "key");
  EXPECT_EQ(cback.reservation, 11u);
  EXPECT_EQ(cback.size, 4096u);
  EXPECT_TRUE(cback.config.hard_pin);

  for (size_t n = 0; n < enc.size(); ++n) {
    EXPECT_EQ(proto::Decode(enc.substr(0, n), &back).code(), ErrorCode::CORRUPT_INPUT) << n;
  }
  for (size_t n = 0; n < renc.size(); ++n) {
    EXPECT_EQ(proto::Decode(renc.substr(0, n), &rback).code(), ErrorCode::CORRUPT_INPUT) << n;
  }
  for (size_t n = 0; n < cenc.size(); ++n) {
    EXPECT_EQ(proto::Decode(cenc.substr(0, n), &cback).code(), ErrorCode::CORRUPT_INPUT) << n;
  }
  EXPECT_EQ(proto::Decode(cenc + "z", &cback).code(), ErrorCode::CORRUPT_INPUT);
  // A reservation count the body cannot hold is refused before anything is allocated.
  std::string huge = proto::EncodeU64(1);
  huge += std::string("\xff\xff\x00\x00", 4);
  Status s = proto::Decode(huge, &rback);
  EXPECT_EQ(s.code(), ErrorCode::CORRUPT_INPUT);
  EXPECT_NE(s.message().find("reservation count"), std::string::npos) << s.ToString();
}

// A deterministic mini-fuzz (the libFuzzer targets live in fuzz/): random byte flips,
// truncations and extensions of valid inputs never crash a decoder (ASan/UBSan builds
// check the reads), and whatever a decoder accepts re-encodes to the same bytes.
uint64_t Next(uint64_t& x) {
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return x;
}

std::string Mutate(std::string in, uint64_t& x) {
  switch (Next(x) % 4) {
    case 0:
      if (!in.empty()) in[Next(x) % in.size()] ^= static_cast<char>(1 + Next(x) % 255);
      break;
    case 1:
      in.resize(Next(x) % (in.size() + 1));
      break;
    case 2:
      in.append(Next(x) % 9, static_cast<char>(Next(x)));
      break;
    default:
      if (in.size() >= 8) {
        uint64_t v = Next(x);
        std::memcpy(in.data() + Next(x) % (in.size() - 7), &v, 8);
      }
  }
  return in;
}

TEST(StoreDecoderFuzz, FramesTensorsAndBodiesSurviveMutation) {
  std::vector<uint8_t> data(4 * 6);
  const std::string frame = EncodeFrame({static_cast<uint16_t>(MsgType::kGetReplicaList), 9,
                                         proto::Encode(proto::KeyGen{"key", 3})});
  const std::string tensor = *EncodeTensor({DType::kI32, {2, 3}, data.data(), 24});
  proto::PutStartReq req{"key", 100, {}};
  req.config.preferred_segments = {"node1"};
  const std::string put = proto::Encode(req);
  proto::ReplicaListResp list{10, 2, 5, {{"node1", 0x1000, 10}, {"node2", 0x2000, 10}}};
  const std::string replicas = proto::Encode(list);
  uint64_t x = 0x9E3779B97F4A7C15ull;
  size_t accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string f = Mutate(frame, x);
    if (Result<Frame> d = DecodeFrame(f); d.ok()) {
      ++accepted;
      EXPECT_EQ(EncodeFrame(*d), f);
    }
    std::string t = Mutate(tensor, x);
    if (Result<TensorView> d = DecodeTensor(t); d.ok()) {
      ++accepted;
      EXPECT_EQ(*EncodeTensor(*d), t);
    }
    std::string p = Mutate(put, x);
    proto::PutStartReq pr;
    if (proto::Decode(p, &pr).ok()) {
      ++accepted;
      EXPECT_EQ(proto::Encode(pr), p);
    }
    std::string r = Mutate(replicas, x);
    proto::ReplicaListResp rr;
    if (proto::Decode(r, &rr).ok()) {
      ++accepted;
      EXPECT_EQ(proto::Encode(rr), r);
    }
  }
  EXPECT_GT(accepted, 0u);  // some mutations (e.g. in a payload byte) stay valid
}

}  // namespace
}  // namespace tidal::store
