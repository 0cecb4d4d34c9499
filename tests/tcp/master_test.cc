// Against a running tidal-master (scripts/with-master.sh starts one on a free loopback
// port and passes TIDAL_MASTER=127.0.0.1:PORT): real sockets between this process and the
// master, real sockets between the two nodes' messengers.
//
//  * StoreOverTcp: two nodes, each with its own TcpMessenger (MasterLink), TransferEngine
//    and StoreClient, register with the master's store and metadata service; a value put
//    on node 0 is read back byte-exact on node 1 (and the other way round, with two
//    replicas), and the master's status counts the objects and segments.
//  * MasterSurvivesGarbage: keys stored through the metadata service survive raw garbage,
//    an oversized header, a truncated frame, and malformed requests inside good frames on
//    every channel; the master counts what it refused and still answers.
#include <gtest/gtest.h>

#include <asio.hpp>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "inprocess_transport.h"
#include "tcp_test_util.h"
#include "tidal/backends/real_env.h"
#include "tidal/backends/tcp/master_link.h"
#include "tidal/backends/tcp/tcp_messenger.h"
#include "tidal/store/client.h"
#include "tidal/store/rpc.h"
#include "tidal/transfer_engine.h"

namespace tidal {
namespace {

using backends::RealEnv;
using backends::tcp::MasterLink;
using backends::tcp::MasterLinkOptions;
using backends::tcp::testing::Drive;

std::string MasterAddress() {
  const char* a = std::getenv("TIDAL_MASTER");
  return a == nullptr ? std::string() : std::string(a);
}

std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 167 + seed * 13 + (i >> 9)) & 0xff);
  return s;
}

nlohmann::json MasterStatus(RealEnv& env, MasterLink& link) {
  auto text = RunBlocking(env, link.metadata().ServerStatus());
  TIDAL_ASSERT_MSG(text.ok(), "tidal-master did not answer a status request");
  return nlohmann::json::parse(*text);
}

// Waits (bounded) until the master's status satisfies `pred`.
bool WaitForStatus(RealEnv& env, MasterLink& link,
                   const std::function<bool(const nlohmann::json&)>& pred) {
  for (int i = 0; i < 300; ++i) {
    if (pred(MasterStatus(env, link))) return true;
    Drive(env, []() { return false; }, 20'000'000);
  }
  return false;
}

struct Node {
  std::unique_ptr<MasterLink> link;
  std::unique_ptr<TransferEngine> engine;
  std::unique_ptr<store::StoreClient> client;
  std::vector<char> pool = std::vector<char>(4u << 20);
};

TEST(StoreOverTcp, PutOnOneNodeGetOnAnotherByteExact) {
  const std::string master = MasterAddress();
  ASSERT_FALSE(master.empty()) << "TIDAL_MASTER is not set: run under scripts/with-master.sh";
  RealEnv env;
  testing::InProcessHub hub;
  Node nodes[2];
  for (int i = 0; i < 2; ++i) {
    const std::string name = "store-node" + std::to_string(i);
    auto link = MasterLink::Start(env, MasterLinkOptions{name, master});
    ASSERT_TRUE(link.ok()) << link.status().ToString();
    Node& n = nodes[i];
    n.link = std::move(link).value();
    ASSERT_TRUE(RunBlocking(env, n.link->messenger().Publish()).ok());
    n.engine = std::make_unique<TransferEngine>(
        env, std::make_unique<testing::InProcessTransport>(hub), n.link->metadata(), name);
    ASSERT_TRUE(RunBlocking(env, n.engine->Start()).ok());
    store::StoreClientOptions so;
    so.master = std::string(backends::tcp::kMasterEndpoint);
    n.client = std::make_unique<store::StoreClient>(env, *n.engine, n.link->store_port(), so);
    Status started = RunBlocking(env, n.client->Start());
    ASSERT_TRUE(started.ok()) << started.ToString();
    Status mounted = RunBlocking(env, n.client->MountSegment(n.pool.data(), n.pool.size()));
    ASSERT_TRUE(mounted.ok()) << mounted.ToString();
  }
  const std::string value = Pattern(300'000, 1);
  ASSERT_TRUE(RunBlocking(env, nodes[0].client->Put("tcp/one", value)).ok());
  auto got = RunBlocking(env, nodes[1].client->Get("tcp/one"));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_TRUE(*got == value) << "bytes differ";
  EXPECT_EQ(RunBlocking(env, nodes[1].client->Put("tcp/one", "again")).code(),
            ErrorCode::OBJECT_ALREADY_EXISTS);
  EXPECT_EQ(RunBlocking(env, nodes[0].client->Get("tcp/missing")).code(),
            ErrorCode::OBJECT_NOT_FOUND);

  store::ReplicateConfig two;
  two.replica_num = 2;
  const std::string other = Pattern(70'000, 2);
  ASSERT_TRUE(RunBlocking(env, nodes[1].client->Put("tcp/two", other, two)).ok());
  auto back = RunBlocking(env, nodes[0].client->Get("tcp/two"));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(*back == other) << "bytes differ";

  nlohmann::json st = MasterStatus(env, *nodes[0].link);
  EXPECT_EQ(st["store"]["objects"], 2);
  EXPECT_EQ(st["segments"], 2);
  EXPECT_GE(st["endpoints"].get<int>(), 2);

  for (Node& n : nodes) {
    Status stopped = RunBlocking(env, n.client->Stop());
    EXPECT_TRUE(stopped.ok()) << stopped.ToString();
  }
  for (Node& n : nodes) {
    n.client.reset();
    EXPECT_TRUE(RunBlocking(env, n.engine->Stop()).ok());
    n.engine.reset();
    EXPECT_TRUE(RunBlocking(env, n.link->messenger().Unpublish()).ok());
  }
}

// Writes `bytes` on a fresh connection to `address` and closes it.
void RawSend(const std::string& address, const std::string& bytes) {
  const size_t colon = address.rfind(':');
  asio::io_context io;
  asio::ip::tcp::socket s(io);
  s.connect({asio::ip::make_address(address.substr(0, colon)),
             static_cast<uint16_t>(std::stoi(address.substr(colon + 1)))});
  asio::write(s, asio::buffer(bytes));
  asio::error_code ignored;
  s.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  s.close(ignored);
}

TEST(MasterSurvivesGarbage, StoredKeysStayIntact) {
  const std::string master = MasterAddress();
  ASSERT_FALSE(master.empty()) << "TIDAL_MASTER is not set: run under scripts/with-master.sh";
  RealEnv env;
  auto link = MasterLink::Start(env, MasterLinkOptions{"garbage-writer", master}).value();
  MetadataStore& md = link->metadata();
  const std::string blob = Pattern(100'000, 3);
  ASSERT_TRUE(RunBlocking(env, md.Put("garbage/a", "alpha")).ok());
  ASSERT_TRUE(RunBlocking(env, md.Put("garbage/b", blob)).ok());
  const nlohmann::json before = MasterStatus(env, *link);
  const uint64_t rejected0 = before["messenger"]["frames_rejected"];
  const uint64_t malformed0 = before["metadata_service"]["malformed"];
  const uint64_t rpc_malformed0 = before["store"]["rpc_malformed"];
  const uint64_t dropped0 = before["messenger"]["channel_dropped"];

  using backends::tcp::EncodeTcpFrame;
  using backends::tcp::TcpFrameKind;
  // Frames the master's decoder must refuse: garbage, a 4 GiB length, a bad version.
  RawSend(master, Pattern(4096, 9));
  std::string huge = EncodeTcpFrame(TcpFrameKind::kMessage, "evil", "x");
  huge[8] = huge[9] = huge[10] = huge[11] = '\xff';
  RawSend(master, huge);
  std::string version = EncodeTcpFrame(TcpFrameKind::kMessage, "evil", "x");
  version[4] = 9;
  RawSend(master, version);
  // A good frame cut short, which is dropped with its connection.
  const std::string whole = EncodeTcpFrame(TcpFrameKind::kMessage, "evil", "\x03overwrite");
  RawSend(master, whole.substr(0, whole.size() - 4));
  // Good frames carrying bad requests: metadata (channel 3), store RPC (channel 1), an
  // unknown channel, and a message with no channel byte at all.
  backends::tcp::TcpMessenger& m = link->messenger();
  ASSERT_TRUE(m.Send("master", std::string("\x03", 1) + "not a request").ok());
  ASSERT_TRUE(m.Send("master", std::string("\x01", 1) + "not an rpc frame").ok());
  ASSERT_TRUE(m.Send("master", std::string("\xc8", 1) + "nobody listens here").ok());
  ASSERT_TRUE(m.Send("master", "").ok());

  ASSERT_TRUE(WaitForStatus(env, *link, [&](const nlohmann::json& j) {
    return j["messenger"]["frames_rejected"].get<uint64_t>() >= rejected0 + 3 &&
           j["metadata_service"]["malformed"].get<uint64_t>() >= malformed0 + 1 &&
           j["store"]["rpc_malformed"].get<uint64_t>() >= rpc_malformed0 + 1 &&
           j["messenger"]["channel_dropped"].get<uint64_t>() >= dropped0 + 2;
  })) << MasterStatus(env, *link).dump();

  auto a = RunBlocking(env, md.Get("garbage/a"));
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(*a, "alpha");
  auto b = RunBlocking(env, md.Get("garbage/b"));
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_TRUE(*b == blob);
  auto list = RunBlocking(env, md.List("garbage/"));
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(*list, (KeyValues{{"garbage/a", "alpha"}, {"garbage/b", blob}}));
  ASSERT_TRUE(RunBlocking(env, md.Delete("garbage/a")).ok());
  ASSERT_TRUE(RunBlocking(env, md.Delete("garbage/b")).ok());
}

}  // namespace
}  // namespace tidal
