// The MetadataStore over TCP: the request and response codecs (exact round trips, and
// CORRUPT_INPUT naming the field for malformed bytes), a MetadataService backed by an
// in-memory store answering a MasterMetadataStore over two TcpMessengers on loopback
// (every call's exact value and code), RPC_FAIL and RPC_TIMEOUT, and MasterLink: two nodes
// that publish themselves in the master's directory and then reach each other by name.
#include "tidal/backends/tcp/metadata_rpc.h"

#include <gtest/gtest.h>

#include "tcp_test_util.h"
#include "tidal/backends/tcp/master_link.h"
#include "tidal/backends/tcp/tcp_messenger.h"

namespace tidal::backends::tcp {
namespace {

using testing::Drive;

TEST(MetaCodec, RoundTripsRequestsAndResponses) {
  MetaRequest q{MetaOp::kPut, 42, "k\0ey", std::string("v\0al", 4)};
  auto dq = DecodeMetaRequest(EncodeMetaRequest(q));
  ASSERT_TRUE(dq.ok());
  EXPECT_EQ(dq->op, MetaOp::kPut);
  EXPECT_EQ(dq->id, 42u);
  EXPECT_EQ(dq->key, q.key);
  EXPECT_EQ(dq->value, q.value);

  MetaResponse list{MetaOp::kList, 7, Status(), "", {{"a", "1"}, {"b", std::string(3, '\0')}}};
  auto dl = DecodeMetaResponse(EncodeMetaResponse(list));
  ASSERT_TRUE(dl.ok());
  EXPECT_EQ(dl->id, 7u);
  EXPECT_EQ(dl->entries, list.entries);

  MetaResponse err{MetaOp::kGet, 8, Status(ErrorCode::OBJECT_NOT_FOUND, "no key"), "", {}};
  auto de = DecodeMetaResponse(EncodeMetaResponse(err));
  ASSERT_TRUE(de.ok());
  EXPECT_EQ(de->status.code(), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(de->status.message(), "no key");
}

TEST(MetaCodec, RefusesMalformedBytesNamingTheField) {
  const std::string good = EncodeMetaRequest(MetaRequest{MetaOp::kGet, 1, "key", ""});
  auto field_of = [](std::string_view bytes) {
    auto r = DecodeMetaRequest(bytes);
    EXPECT_EQ(r.code(), ErrorCode::CORRUPT_INPUT);
    return r.ok() ? std::string() : r.status().message();
  };
  EXPECT_NE(field_of("").find("version"), std::string::npos);
  std::string bad_op = good;
  bad_op[1] = 9;
  EXPECT_NE(field_of(bad_op).find("'op'"), std::string::npos);
  EXPECT_NE(field_of(good.substr(0, 5)).find("request id"), std::string::npos);
  EXPECT_NE(field_of(good.substr(0, good.size() - 5)).find("key"), std::string::npos);
  EXPECT_NE(field_of(good + "x").find("trailing"), std::string::npos);
  // A request is not a response and vice versa.
  EXPECT_EQ(DecodeMetaResponse(good).code(), ErrorCode::CORRUPT_INPUT);
  // A list count the bytes cannot hold is refused before anything is allocated.
  std::string huge = EncodeMetaResponse(MetaResponse{MetaOp::kList, 1, Status(), "", {}});
  huge[huge.size() - 4] = '\xff';
  huge[huge.size() - 3] = '\xff';
  EXPECT_EQ(DecodeMetaResponse(huge).code(), ErrorCode::CORRUPT_INPUT);
}

// A master endpoint serving an in-memory store, and a client node, on one RealEnv.
struct Rig {
  explicit Rig(uint64_t timeout_ns = 5'000'000'000ULL) {
    TcpMessengerOptions so;
    so.name = "master";
    server = TcpMessenger::Start(env, so).value();
    service = std::make_unique<MetadataService>(env, *server, backing,
                                                [](const KeyValues* all) {
                                                  return "{\"keys\":" +
                                                         std::to_string(all ? all->size() : 0) +
                                                         "}";
                                                });
    TcpMessengerOptions co;
    co.name = "client";
    co.peers["master"] = server->address();
    client = TcpMessenger::Start(env, co).value();
    MasterMetadataStoreOptions mo;
    mo.timeout_ns = timeout_ns;
    store = std::make_unique<MasterMetadataStore>(env, *client, mo);
  }
  RealEnv env;
  InMemoryMetadataStore backing;
  std::unique_ptr<TcpMessenger> server;
  std::unique_ptr<MetadataService> service;
  std::unique_ptr<TcpMessenger> client;
  std::unique_ptr<MasterMetadataStore> store;
};

TEST(MasterMetadataStore, ServesPutGetListDeleteOverTcp) {
  Rig rig;
  RealEnv& env = rig.env;
  MasterMetadataStore& s = *rig.store;
  const std::string blob("\0\1\2binary\xff", 10);
  ASSERT_TRUE(RunBlocking(env, s.Put("tidal/segments/n1", blob)).ok());
  ASSERT_TRUE(RunBlocking(env, s.Put("tidal/segments/n0", "zero")).ok());
  ASSERT_TRUE(RunBlocking(env, s.Put("other", "x")).ok());
  auto got = RunBlocking(env, s.Get("tidal/segments/n1"));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, blob);
  auto list = RunBlocking(env, s.List("tidal/segments/"));
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(*list, (KeyValues{{"tidal/segments/n0", "zero"}, {"tidal/segments/n1", blob}}));
  EXPECT_EQ(RunBlocking(env, s.Get("missing")).code(), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(RunBlocking(env, s.Put("", "v")).code(), ErrorCode::INVALID_KEY);
  EXPECT_EQ(RunBlocking(env, s.Delete("missing")).code(), ErrorCode::OBJECT_NOT_FOUND);
  ASSERT_TRUE(RunBlocking(env, s.Delete("other")).ok());
  EXPECT_EQ(RunBlocking(env, s.Get("other")).code(), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(rig.backing.size(), 2u);
  EXPECT_EQ(RunBlocking(env, s.Put(std::string(kMetaMaxKeyBytes + 1, 'k'), "v")).code(),
            ErrorCode::INVALID_KEY);
  auto status = RunBlocking(env, s.ServerStatus());
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(*status, "{\"keys\":2}");
  EXPECT_EQ(rig.service->stats().malformed, 0u);
  EXPECT_EQ(rig.service->stats().requests, 11u);
}

TEST(MasterMetadataStore, MalformedRequestsAreAnsweredOrDroppedAndStateSurvives) {
  Rig rig;
  RealEnv& env = rig.env;
  ASSERT_TRUE(RunBlocking(env, rig.store->Put("keep", "me")).ok());
  // Straight through the client's messenger: garbage, and a request cut in its key.
  ASSERT_TRUE(rig.client->Send("master", "garbage").ok());
  std::string cut = EncodeMetaRequest(MetaRequest{MetaOp::kPut, 99, "keep", "overwritten"});
  ASSERT_TRUE(rig.client->Send("master", cut.substr(0, 14)).ok());
  ASSERT_TRUE(Drive(env, [&]() { return rig.service->stats().malformed == 2; }));
  auto got = RunBlocking(env, rig.store->Get("keep"));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, "me");
  // The cut request was answered (its header named it), and the client ignored the answer.
  ASSERT_TRUE(Drive(env, [&]() { return rig.store->ignored_responses() == 1; }));
}

TEST(MasterMetadataStore, FailsWithRpcFailAndRpcTimeout) {
  RealEnv env;
  TcpMessengerOptions co;
  co.name = "client";
  auto client = TcpMessenger::Start(env, co).value();
  MasterMetadataStore nowhere(env, *client);  // no endpoint "master" is known
  EXPECT_EQ(RunBlocking(env, nowhere.Get("k")).code(), ErrorCode::RPC_FAIL);
  // An endpoint named "master" that serves nothing: the call times out.
  TcpMessengerOptions so;
  so.name = "master";
  auto silent = TcpMessenger::Start(env, so).value();
  ASSERT_TRUE(client->AddPeer("master", silent->address()).ok());
  MasterMetadataStore slow(env, *client, MasterMetadataStoreOptions{"master", 200'000'000});
  EXPECT_EQ(RunBlocking(env, slow.Put("k", "v")).code(), ErrorCode::RPC_TIMEOUT);
}

TEST(MasterLink, NodesFindEachOtherThroughTheMastersDirectory) {
  RealEnv env;
  InMemoryMetadataStore backing;
  TcpMessengerOptions so;
  so.name = std::string(kMasterEndpoint);
  auto server = TcpMessenger::Start(env, so).value();
  MessengerMux mux(*server);
  DuplexMessenger port(mux.Channel(kMetadataAnswerChannel), mux.Channel(kMetadataRequestChannel));
  MetadataService service(env, port, backing);

  auto n0 = MasterLink::Start(env, MasterLinkOptions{"node0", server->address()}).value();
  auto n1 = MasterLink::Start(env, MasterLinkOptions{"node1", server->address()}).value();
  ASSERT_TRUE(RunBlocking(env, n0->messenger().Publish()).ok());
  ASSERT_TRUE(RunBlocking(env, n1->messenger().Publish()).ok());
  auto entry = RunBlocking(env, backing.Get(EndpointKey("node1")));
  ASSERT_TRUE(entry.ok());
  EXPECT_EQ(*entry, n1->messenger().address());
  // node0 learns node1's address from the directory and talks on a user channel.
  Messenger& c0 = n0->mux().Channel(8);
  Messenger& c1 = n1->mux().Channel(8);
  std::vector<std::string> got;
  c1.SetReceiver([&](std::string_view from, std::string p) {
    got.push_back(std::string(from) + ":" + p);
  });
  EXPECT_EQ(c0.Send("node1", "early").code(), ErrorCode::SEGMENT_NOT_FOUND);
  ASSERT_TRUE(RunBlocking(env, n0->messenger().RefreshDirectory()).ok());
  ASSERT_TRUE(c0.Send("node1", "hi").ok());
  ASSERT_TRUE(Drive(env, [&]() { return got.size() == 1; }));
  EXPECT_EQ(got[0], "node0:hi");
  ASSERT_TRUE(RunBlocking(env, n1->messenger().Unpublish()).ok());
  EXPECT_EQ(RunBlocking(env, n0->messenger().Resolve("node1")).code(),
            ErrorCode::SEGMENT_NOT_FOUND);
}

}  // namespace
}  // namespace tidal::backends::tcp
