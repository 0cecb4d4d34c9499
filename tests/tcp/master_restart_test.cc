// A real tidal-master restarted between puts and gets (ctest label `tcp`). The test starts
// the binary itself (TIDAL_MASTER_BIN) with --state-dir on a fresh directory, brings up
// two nodes (each a MasterLink, a TransferEngine over InProcessTransport and a
// StoreClient lending a segment), puts, kills the master with SIGKILL, checks that calls
// fail with RPC_TIMEOUT while it is down, starts it again on the same address and state
// directory, and asserts the exact outcomes: every acknowledged object reads back with
// the same bytes at the same generation, new puts take larger generations, the status
// reports incarnation 2. A journal that does not read back stops tidal-master with exit
// status 2 and a message naming the record, never an empty store.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "inprocess_transport.h"
#include "tidal/backends/real_env.h"
#include "tidal/backends/tcp/master_link.h"
#include "tidal/backends/tcp/tcp_messenger.h"
#include "tidal/store/client.h"
#include "tidal/transfer_engine.h"

extern char** environ;

namespace tidal {
namespace {

using backends::RealEnv;
using backends::tcp::MasterLink;
using backends::tcp::MasterLinkOptions;

std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed * 7 + (i >> 8)) & 0xff);
  return s;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// One tidal-master process.
struct MasterProcess {
  pid_t pid = -1;
  std::string address;  // from its ready line
  std::string out, err;

  // Starts it and waits (up to 20 s) for its ready line. False if it exited first; then
  // `status` holds its exit status.
  bool Start(const std::string& dir, const std::string& listen, const std::string& state_dir,
             int* status) {
    static int n = 0;
    ++n;
    out = dir + "/out" + std::to_string(n);
    err = dir + "/err" + std::to_string(n);
    const char* bin = std::getenv("TIDAL_MASTER_BIN");
    std::vector<std::string> args = {bin,        "--listen",    listen,       "--state-dir",
                                     state_dir, "--lease-ttl-ms", "200"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int rc = posix_spawn(&pid, bin, &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return false;
    for (int i = 0; i < 200; ++i) {
      int st = 0;
      if (waitpid(pid, &st, WNOHANG) == pid) {
        pid = -1;
        *status = st;
        return false;
      }
      const std::string text = ReadFile(out);
      const std::string ready = "tidal-master listening on ";
      if (auto at = text.find(ready); at != std::string::npos) {
        address = text.substr(at + ready.size());
        address = address.substr(0, address.find('\n'));
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  int Signal(int sig) {
    int st = 0;
    if (pid > 0) {
      ::kill(pid, sig);
      waitpid(pid, &st, 0);
      pid = -1;
    }
    return st;
  }
  ~MasterProcess() { Signal(SIGKILL); }
};

struct Node {
  std::unique_ptr<MasterLink> link;
  std::unique_ptr<TransferEngine> engine;
  std::unique_ptr<store::StoreClient> client;
  std::vector<char> pool = std::vector<char>(4u << 20);
};

class MasterRestart : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(std::getenv("TIDAL_MASTER_BIN"), nullptr) << "TIDAL_MASTER_BIN is not set";
    char tmpl[] = "/tmp/tidal-master-restart.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    state_ = dir_ + "/state";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_, state_;
};

TEST_F(MasterRestart, AcknowledgedObjectsReadBackWithTheirGenerationAfterSigkill) {
  MasterProcess master;
  int status = 0;
  ASSERT_TRUE(master.Start(dir_, "127.0.0.1:0", state_, &status)) << ReadFile(master.err);
  const std::string address = master.address;
  RealEnv env;
  testing::InProcessHub hub;
  Node nodes[2];
  for (int i = 0; i < 2; ++i) {
    const std::string name = "restart-node" + std::to_string(i);
    MasterLinkOptions lo{name, address};
    lo.rpc_timeout_ns = 500'000'000;
    auto link = MasterLink::Start(env, lo);
    ASSERT_TRUE(link.ok()) << link.status().ToString();
    Node& n = nodes[i];
    n.link = std::move(link).value();
    ASSERT_TRUE(RunBlocking(env, n.link->messenger().Publish()).ok());
    n.engine = std::make_unique<TransferEngine>(
        env, std::make_unique<testing::InProcessTransport>(hub), n.link->metadata(), name);
    ASSERT_TRUE(RunBlocking(env, n.engine->Start()).ok());
    store::StoreClientOptions so;
    so.master = std::string(backends::tcp::kMasterEndpoint);
    so.rpc.timeout_ns = 300'000'000;
    so.rpc.retry_ns = 50'000'000;
    so.op_timeout_ns = 2'000'000'000;
    so.heartbeat_interval_ns = 100'000'000;
    n.client = std::make_unique<store::StoreClient>(env, *n.engine, n.link->store_port(), so);
    ASSERT_TRUE(RunBlocking(env, n.client->Start()).ok());
    Status mounted = RunBlocking(env, n.client->MountSegment(n.pool.data(), n.pool.size()));
    ASSERT_TRUE(mounted.ok()) << mounted.ToString();
  }
  store::ReplicateConfig on1;
  on1.preferred_segments = {"restart-node1"};
  store::ReplicateConfig two;
  two.replica_num = 2;
  const std::string one = Pattern(300'000, 1), other = Pattern(70'000, 2);
  ASSERT_TRUE(RunBlocking(env, nodes[0].client->Put("r/one", one, on1)).ok());
  ASSERT_TRUE(RunBlocking(env, nodes[1].client->Put("r/two", other, two)).ok());
  const uint64_t g1 = RunBlocking(env, nodes[0].client->Stat("r/one")).value().generation;
  const uint64_t g2 = RunBlocking(env, nodes[0].client->Stat("r/two")).value().generation;

  // The master process dies; calls fail with RPC_TIMEOUT while it is down.
  const int killed = master.Signal(SIGKILL);
  EXPECT_TRUE(WIFSIGNALED(killed) && WTERMSIG(killed) == SIGKILL);
  EXPECT_EQ(RunBlocking(env, nodes[1].client->Get("r/one")).code(), ErrorCode::RPC_TIMEOUT);

  MasterProcess again;
  ASSERT_TRUE(again.Start(dir_, address, state_, &status)) << ReadFile(again.err);
  ASSERT_EQ(again.address, address);
  // The first calls redial the master; a call that meets the redial may still time out.
  Result<store::ObjectInfo> info = Status(ErrorCode::RPC_TIMEOUT, "not asked");
  for (int i = 0; i < 20 && info.code() == ErrorCode::RPC_TIMEOUT; ++i) {
    info = RunBlocking(env, nodes[1].client->Stat("r/one"));
  }
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->generation, g1);
  EXPECT_EQ(info->size, one.size());
  store::GetOptions at_g1;
  at_g1.generation = g1;
  auto got = RunBlocking(env, nodes[1].client->Get("r/one", at_g1));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_TRUE(*got == one) << "bytes differ after the restart";
  store::GetOptions at_g2;
  at_g2.generation = g2;
  Result<std::string> back = Status(ErrorCode::RPC_TIMEOUT, "not asked");
  for (int i = 0; i < 20 && back.code() == ErrorCode::RPC_TIMEOUT; ++i) {
    back = RunBlocking(env, nodes[0].client->Get("r/two", at_g2));
  }
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(*back == other) << "bytes differ after the restart";
  EXPECT_EQ(RunBlocking(env, nodes[0].client->Put("r/one", "again")).code(),
            ErrorCode::OBJECT_ALREADY_EXISTS);
  const std::string three = Pattern(5'000, 3);
  ASSERT_TRUE(RunBlocking(env, nodes[0].client->Put("r/three", three)).ok());
  EXPECT_GT(RunBlocking(env, nodes[1].client->Stat("r/three")).value().generation, g2);
  EXPECT_TRUE(RunBlocking(env, nodes[1].client->Get("r/three")).value() == three);

  auto text = RunBlocking(env, nodes[0].link->metadata().ServerStatus());
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  nlohmann::json st = nlohmann::json::parse(*text);
  EXPECT_EQ(st["store"]["incarnation"], 2);
  EXPECT_EQ(st["store"]["recovered_objects"], 2);
  EXPECT_EQ(st["store"]["objects"], 3);
  EXPECT_EQ(st["store"]["clients_died"], 0);

  for (Node& n : nodes) EXPECT_TRUE(RunBlocking(env, n.client->Stop()).ok());
  for (Node& n : nodes) {
    n.client.reset();
    EXPECT_TRUE(RunBlocking(env, n.engine->Stop()).ok());
    n.engine.reset();
  }
  const int stopped = again.Signal(SIGTERM);
  EXPECT_TRUE(WIFEXITED(stopped) && WEXITSTATUS(stopped) == 0);
}

TEST_F(MasterRestart, JournalThatDoesNotReadBackStopsTheMaster) {
  std::filesystem::create_directories(state_);
  {
    // One whole record (op put, key "o/k", value "x") whose check is wrong.
    std::ofstream f(state_ + "/store.journal", std::ios::binary);
    const char rec[] = {1, 3, 0, 0, 0, 'o', '/', 'k', 1, 0, 0, 0, 'x', 0, 0, 0, 0};
    f.write(rec, sizeof rec);
  }
  MasterProcess master;
  int status = 0;
  ASSERT_FALSE(master.Start(dir_, "127.0.0.1:0", state_, &status));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2);
  EXPECT_NE(ReadFile(master.err).find("record at byte 0 does not check"), std::string::npos)
      << ReadFile(master.err);
  // Nothing was replaced: the bad journal is still there for an operator to look at.
  EXPECT_EQ(std::filesystem::file_size(state_ + "/store.journal"), 17u);
}

}  // namespace
}  // namespace tidal
