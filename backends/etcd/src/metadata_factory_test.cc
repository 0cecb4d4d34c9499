// MakeMetadataStore picks a store by URL and names the URL when it cannot; the etcd store's
// encoding helpers are exact; and without a server its errors are the contract's:
// RPC_FAIL naming the URL when nothing listens, RPC_TIMEOUT when nothing answers,
// INVALID_KEY before any request. (Against a live etcd: etcd_metadata_store_test.cc.)
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "tidal/backends/etcd/etcd_metadata_store.h"
#include "tidal/backends/metadata_factory.h"
#include "tidal/backends/real_env.h"
#include "tidal/task.h"

namespace tidal::backends {
namespace {

using etcd_detail::Base64Decode;
using etcd_detail::Base64Encode;
using etcd_detail::PrefixRangeEnd;

// A loopback TCP socket bound to a free port; listening (never accepting) or closed.
class LoopbackPort {
 public:
  explicit LoopbackPort(bool listen_on_it) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_GE(fd_, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    socklen_t len = sizeof(a);
    EXPECT_EQ(getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len), 0);
    port_ = ntohs(a.sin_port);
    if (listen_on_it) {
      EXPECT_EQ(listen(fd_, 16), 0);
    } else {
      close(fd_);  // nothing listens there now
      fd_ = -1;
    }
  }
  ~LoopbackPort() {
    if (fd_ >= 0) close(fd_);
  }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

TEST(MetadataFactory, MemSchemeIsAnInMemoryStore) {
  RealEnv env;
  auto store = MakeMetadataStore("mem://", env);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ASSERT_NE(dynamic_cast<InMemoryMetadataStore*>(store->get()), nullptr);
  EXPECT_TRUE(RunBlocking(env, (*store)->Put("k", std::string("v\0w", 3))).ok());
  auto got = RunBlocking(env, (*store)->Get("k"));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, std::string("v\0w", 3));
}

TEST(MetadataFactory, EtcdSchemeParsesEndpointsAndOptions) {
  RealEnv env;
  auto store = MakeMetadataStore("etcd://127.0.0.1:2379,localhost:22379?ttl=4&timeout_ms=900", env);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto* etcd = dynamic_cast<EtcdMetadataStore*>(store->get());
  ASSERT_NE(etcd, nullptr);
  EXPECT_EQ(etcd->options().endpoints,
            (std::vector<std::string>{"127.0.0.1:2379", "localhost:22379"}));
  EXPECT_EQ(etcd->options().lease_ttl_s, 4u);
  EXPECT_EQ(etcd->options().request_timeout_ms, 900u);
  EXPECT_EQ(etcd->options().leased_prefixes, (std::vector<std::string>{"tidal/segments/"}));
  EXPECT_EQ(etcd->lease_id(), 0);  // nothing leased yet: no request was made
}

TEST(MetadataFactory, BadUrlsAreInvalidParamsNamingTheUrl) {
  RealEnv env;
  for (const char* url : {"", "mem", "mem://x", "http://127.0.0.1:2379", "etcd://",
                          "etcd://127.0.0.1", "etcd://127.0.0.1:0", "etcd://127.0.0.1:65536",
                          "etcd://:2379", "etcd://127.0.0.1:2379,", "etcd://h:1?ttl",
                          "etcd://h:1?ttl=x", "etcd://h:1?bogus=1", "etcd://h:1?timeout_ms=0",
                          "etcd://h o:1"}) {
    auto store = MakeMetadataStore(url, env);
    ASSERT_FALSE(store.ok()) << url;
    EXPECT_EQ(store.code(), ErrorCode::INVALID_PARAMS) << url;
    EXPECT_NE(store.status().message().find("'" + std::string(url) + "'"), std::string::npos)
        << store.status().message();
  }
}

TEST(EtcdEncoding, Base64RoundTripsEveryByteAndRejectsNonCanonicalText) {
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("foo"), "Zm9v");
  EXPECT_EQ(Base64Encode(std::string("\0\xff", 2)), "AP8=");
  std::string all;
  for (int i = 0; i < 256; ++i) all += char(i);
  for (size_t n = 0; n <= all.size(); n += 37) {
    auto back = Base64Decode(Base64Encode(all.substr(0, n)), "value");
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, all.substr(0, n));
  }
  for (const char* bad : {"Zg=", "Zh==", "Z===", "Zg==Zg==", "Zm9*", "Zm=v"}) {
    auto r = Base64Decode(bad, "value");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.code(), ErrorCode::CORRUPT_INPUT) << bad;
    EXPECT_NE(r.status().message().find("'value'"), std::string::npos);
  }
}

TEST(EtcdEncoding, PrefixRangeEndIsTheFirstKeyPastThePrefix) {
  EXPECT_EQ(PrefixRangeEnd("tidal/segments/"), "tidal/segments0");
  EXPECT_EQ(PrefixRangeEnd("a"), "b");
  EXPECT_EQ(PrefixRangeEnd(std::string("a\xff\xff", 3)), "b");
  EXPECT_EQ(PrefixRangeEnd(std::string("\xff", 1)), std::string(1, '\0'));
  EXPECT_EQ(PrefixRangeEnd(""), std::string(1, '\0'));
}

TEST(EtcdStore, EmptyKeyIsInvalidKeyWithoutARequest) {
  RealEnv env;
  LoopbackPort closed(false);
  auto store = EtcdMetadataStore::Create(env, EtcdOptions{.endpoints = {closed.endpoint()}});
  ASSERT_TRUE(store.ok());
  EXPECT_EQ(RunBlocking(env, (*store)->Put("", "v")).code(), ErrorCode::INVALID_KEY);
  EXPECT_EQ(RunBlocking(env, (*store)->Get("")).code(), ErrorCode::INVALID_KEY);
  EXPECT_EQ(RunBlocking(env, (*store)->Delete("")).code(), ErrorCode::INVALID_KEY);
}

TEST(EtcdStore, NoServerIsRpcFailNamingTheUrl) {
  RealEnv env;
  LoopbackPort closed(false);
  auto store = EtcdMetadataStore::Create(env, EtcdOptions{.endpoints = {closed.endpoint()}});
  ASSERT_TRUE(store.ok());
  const std::string url = "http://" + closed.endpoint();
  Status put = RunBlocking(env, (*store)->Put("tidal/segments/n", "v"));  // leased: grant fails
  EXPECT_EQ(put.code(), ErrorCode::RPC_FAIL);
  EXPECT_NE(put.message().find(url), std::string::npos) << put.message();
  auto get = RunBlocking(env, (*store)->Get("k"));
  EXPECT_EQ(get.code(), ErrorCode::RPC_FAIL);
  EXPECT_NE(get.status().message().find(url), std::string::npos) << get.status().message();
  EXPECT_EQ(RunBlocking(env, (*store)->Delete("k")).code(), ErrorCode::RPC_FAIL);
  EXPECT_EQ(RunBlocking(env, (*store)->List("k")).code(), ErrorCode::RPC_FAIL);
  EXPECT_EQ((*store)->lease_id(), 0);
}

TEST(EtcdStore, ServerThatNeverAnswersIsRpcTimeout) {
  RealEnv env;
  LoopbackPort silent(true);  // the kernel completes the handshake; nobody reads
  auto store = EtcdMetadataStore::Create(
      env, EtcdOptions{.endpoints = {silent.endpoint()}, .request_timeout_ms = 300});
  ASSERT_TRUE(store.ok());
  auto get = RunBlocking(env, (*store)->Get("k"));
  EXPECT_EQ(get.code(), ErrorCode::RPC_TIMEOUT) << get.status().ToString();
}

TEST(EtcdStore, AFailedEndpointIsSkippedForTheNextOne) {
  RealEnv env;
  LoopbackPort closed(false);
  LoopbackPort silent(true);
  auto store = EtcdMetadataStore::Create(
      env, EtcdOptions{.endpoints = {closed.endpoint(), silent.endpoint()},
                       .request_timeout_ms = 300});
  ASSERT_TRUE(store.ok());
  // The refused endpoint is passed over; the second one is reached (and times out).
  EXPECT_EQ(RunBlocking(env, (*store)->Get("k")).code(), ErrorCode::RPC_TIMEOUT);
}

TEST(EtcdStore, CreateRefusesMalformedOptions) {
  RealEnv env;
  EXPECT_EQ(EtcdMetadataStore::Create(env, EtcdOptions{}).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(EtcdMetadataStore::Create(env, EtcdOptions{.endpoints = {"nohost"}}).code(),
            ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(EtcdMetadataStore::Create(env, EtcdOptions{.endpoints = {"h:1"}, .request_timeout_ms = 0})
                .code(),
            ErrorCode::INVALID_PARAMS);
}

}  // namespace
}  // namespace tidal::backends
