// TcpMessenger frames: the encoder's exact bytes, the streaming decoder over any split of
// its input, and the refusal (CORRUPT_INPUT naming the field) of every malformed header,
// oversized length and bad hello before any of the body is buffered.
#include "tidal/backends/tcp/frame.h"

#include <gtest/gtest.h>

#include <string>

namespace tidal::backends::tcp {
namespace {

TEST(TcpFrame, EncodesTheDocumentedLayout) {
  const std::string f = EncodeTcpFrame(TcpFrameKind::kMessage, "ab", std::string("x\0y", 3));
  const std::string expected(
      "TMSM\x02\x01\x02\x00\x03\x00\x00\x00"
      "abx\0y",
      17);
  EXPECT_EQ(f, expected);
}

TEST(TcpFrame, DecodesFramesSplitAtEveryByte) {
  std::string stream = EncodeTcpFrame(TcpFrameKind::kHello, "node1", "127.0.0.1:5000") +
                       EncodeTcpFrame(TcpFrameKind::kMessage, "node1", "") +
                       EncodeTcpFrame(TcpFrameKind::kMessage, "node1", std::string(300, '\xff'));
  for (size_t split = 0; split <= stream.size(); ++split) {
    FrameDecoder d(1024);
    d.Feed(std::string_view(stream).substr(0, split));
    std::vector<TcpFrame> got;
    auto drain = [&]() {
      for (;;) {
        auto n = d.Next();
        ASSERT_TRUE(n.ok()) << n.status().ToString();
        if (!n->has_value()) break;
        got.push_back(std::move(**n));
      }
    };
    drain();
    d.Feed(std::string_view(stream).substr(split));
    drain();
    ASSERT_EQ(got.size(), 3u) << "split " << split;
    EXPECT_EQ(got[0].kind, TcpFrameKind::kHello);
    EXPECT_EQ(got[0].payload, "127.0.0.1:5000");
    EXPECT_EQ(got[1].kind, TcpFrameKind::kMessage);
    EXPECT_EQ(got[1].from, "node1");
    EXPECT_EQ(got[1].payload, "");
    EXPECT_EQ(got[2].payload, std::string(300, '\xff'));
    EXPECT_EQ(d.buffered(), 0u);
  }
}

// Each malformed header is refused as soon as its 12 bytes are in, naming the field.
TEST(TcpFrame, RefusesMalformedHeaders) {
  const std::string good = EncodeTcpFrame(TcpFrameKind::kMessage, "a", "payload");
  struct Case {
    size_t offset;
    char value;
    const char* field;
  };
  const Case cases[] = {{0, 'X', "magic"}, {4, 1, "version"},     {5, 0, "kind"},
                        {5, 3, "kind"},    {6, 0, "from length"}, {11, 1, "payload length"}};
  for (const Case& c : cases) {
    std::string bad = good;
    bad[c.offset] = c.value;
    FrameDecoder d(1024);
    d.Feed(std::string_view(bad).substr(0, kTcpFrameHeaderBytes));
    auto n = d.Next();
    ASSERT_FALSE(n.ok()) << c.field;
    EXPECT_EQ(n.code(), ErrorCode::CORRUPT_INPUT);
    EXPECT_NE(n.status().message().find(c.field), std::string::npos) << n.status().message();
    // The decoder stays failed and buffers nothing more.
    d.Feed(good);
    EXPECT_EQ(d.Next().code(), ErrorCode::CORRUPT_INPUT);
    EXPECT_EQ(d.buffered(), 0u);
  }
}

TEST(TcpFrame, RefusesAPayloadAboveTheLimitBeforeItsBody) {
  FrameDecoder d(16);
  const std::string f = EncodeTcpFrame(TcpFrameKind::kMessage, "a", std::string(17, 'x'));
  d.Feed(std::string_view(f).substr(0, kTcpFrameHeaderBytes));
  auto n = d.Next();
  ASSERT_EQ(n.code(), ErrorCode::CORRUPT_INPUT);
  EXPECT_NE(n.status().message().find("payload length"), std::string::npos);
  FrameDecoder exact(17);
  exact.Feed(f);
  auto ok = exact.Next();
  ASSERT_TRUE(ok.ok() && ok->has_value());
  EXPECT_EQ((*ok)->payload, std::string(17, 'x'));
}

TEST(TcpFrame, RefusesAHelloWithoutAnAddress) {
  FrameDecoder d;
  d.Feed(EncodeTcpFrame(TcpFrameKind::kHello, "a", "not an address"));
  auto n = d.Next();
  ASSERT_EQ(n.code(), ErrorCode::CORRUPT_INPUT);
  EXPECT_NE(n.status().message().find("hello address"), std::string::npos);
}

TEST(TcpFrame, ParsesHostPort) {
  auto a = ParseHostPort("127.0.0.1:80");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 80);
  auto b = ParseHostPort("[::1]:0");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->port, 0);
  for (const char* bad : {"", ":1", "host", "host:", "h:65536", "h:1x", "::1:5", "h:-1"}) {
    EXPECT_EQ(ParseHostPort(bad).code(), ErrorCode::INVALID_PARAMS) << bad;
  }
  EXPECT_EQ(CheckEndpointName("").code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(CheckEndpointName(std::string(256, 'n')).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_TRUE(CheckEndpointName(std::string(255, 'n')).ok());
}

}  // namespace
}  // namespace tidal::backends::tcp
