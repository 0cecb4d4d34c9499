// A GPU rank killed as a process mid-allreduce (label `cuda`; skips without a CUDA device).
//
// Starts tidal-master and three cuda_coll_node processes (rank r on cuda:r % D), each a real
// rank with its own TransferEngine over CudaTransport and a ProcessGroup on GPU tensors.
// In the second of three 256 MiB float32 allreduces, rank 1 raises SIGKILL at step boundary
// 1 of its attempt (inside the ring, chunks in flight to and from it). The checks:
//  * rank 1 ended by SIGKILL; ranks 0 and 2 exit 0 within the deadline (nobody hangs);
//  * op 0 is OK over everyone; ops 1 and 2 end RANK_FAILED with failed_ranks [1] on both
//    survivors, every element the exact sum over the survivors;
// and prints when each survivor knew of the death and when op 1 completed after the kill.
//
// Binaries: $TIDAL_MASTER_BIN / $TIDAL_CUDA_COLL_NODE, else beside this test, else the
// build's. TIDAL_CUDA_KILL_BYTES overrides the size.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tidal/backends/cuda/cuda_transport.h"

#ifndef TIDAL_MASTER_BUILD_PATH
#define TIDAL_MASTER_BUILD_PATH ""
#endif
#ifndef TIDAL_CUDA_COLL_NODE_BUILD_PATH
#define TIDAL_CUDA_COLL_NODE_BUILD_PATH ""
#endif

namespace {

namespace fs = std::filesystem;

// $env, else `name` beside this executable, else `built`; empty with *why when none exists.
std::string FindBinary(const char* env, const std::string& name, const std::string& built,
                       std::string* why) {
  if (const char* e = std::getenv(env); e != nullptr && *e != '\0') {
    if (::access(e, X_OK) == 0) return e;
    *why = std::string(env) + " names " + e + ", which is not an executable";
    return "";
  }
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  std::vector<std::string> tried;
  if (!ec) tried.push_back((self.parent_path() / name).string());
  if (!built.empty()) tried.push_back(built);
  for (const std::string& t : tried) {
    if (::access(t.c_str(), X_OK) == 0) return t;
  }
  *why = name + " not found (set " + env + "; looked at:";
  for (const std::string& t : tried) *why += " " + t;
  *why += ")";
  return "";
}

// Runs argv with stdout (and stderr, when `err` is not empty) into files.
pid_t Spawn(const std::vector<std::string>& args, const std::string& out,
            const std::string& err) {
  std::vector<std::string> a = args;
  std::vector<char*> argv;
  for (std::string& s : a) argv.push_back(s.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (o < 0 || ::dup2(o, 1) < 0) ::_exit(126);
  if (!err.empty()) {
    const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (e < 0 || ::dup2(e, 2) < 0) ::_exit(126);
  }
  ::close_range(3, ~0U, 0);
  ::execv(argv[0], argv.data());
  ::_exit(127);
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string DescribeWait(int ws) {
  if (WIFSIGNALED(ws)) return "killed by signal " + std::to_string(WTERMSIG(ws));
  if (WIFEXITED(ws)) return "exited with status " + std::to_string(WEXITSTATUS(ws));
  return "ended (wait status " + std::to_string(ws) + ")";
}

class CudaKillRank : public ::testing::Test {
 protected:
  void TearDown() override {
    for (pid_t p : live_) ::kill(p, SIGKILL);
    for (pid_t p : live_) ::waitpid(p, nullptr, 0);
    if (master_ > 0) {
      ::kill(master_, SIGTERM);
      ::waitpid(master_, nullptr, 0);
    }
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  std::string dir_;
  pid_t master_ = -1;
  std::vector<pid_t> live_;
};

TEST_F(CudaKillRank, SigkilledRankMidAllreduceSurvivorsAgreeAndAreExact) {
  tidal::Result<int> devices = tidal::backends::cuda::CudaDeviceCount();
  if (!devices.ok()) GTEST_SKIP() << devices.status().ToString();
  std::string why;
  const std::string master_bin =
      FindBinary("TIDAL_MASTER_BIN", "tidal-master", TIDAL_MASTER_BUILD_PATH, &why);
  ASSERT_FALSE(master_bin.empty()) << why;
  const std::string node_bin = FindBinary("TIDAL_CUDA_COLL_NODE", "cuda_coll_node",
                                          TIDAL_CUDA_COLL_NODE_BUILD_PATH, &why);
  ASSERT_FALSE(node_bin.empty()) << why;
  constexpr int kRanks = 3, kVictim = 1;
  uint64_t bytes = 256ull << 20;
  if (const char* b = std::getenv("TIDAL_CUDA_KILL_BYTES"); b != nullptr && *b != '\0') {
    bytes = std::strtoull(b, nullptr, 10);
  }
  std::printf("%d rank processes on %d GPU(s):", kRanks, *devices);
  for (int r = 0; r < kRanks; ++r) std::printf(" rank %d on cuda:%d", r, r % *devices);
  std::printf("; rank %d raises SIGKILL at step boundary 1 of allreduce 1 (%llu bytes)\n",
              kVictim, static_cast<unsigned long long>(bytes));

  char tmpl[] = "/tmp/tidal-cuda-kill.XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  dir_ = tmpl;
  master_ = Spawn({master_bin, "--listen", "127.0.0.1:0"}, dir_ + "/master.out",
                  dir_ + "/master.err");
  std::string address;
  for (int i = 0; i < 200 && address.empty(); ++i) {
    std::istringstream lines(Slurp(dir_ + "/master.out"));
    for (std::string line; std::getline(lines, line);) {
      const std::string kReady = "tidal-master listening on ";
      if (line.rfind(kReady, 0) == 0) address = line.substr(kReady.size());
    }
    if (address.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_FALSE(address.empty()) << "tidal-master did not say it was listening: "
                                << Slurp(dir_ + "/master.err");

  std::vector<pid_t> pids;
  for (int r = 0; r < kRanks; ++r) {
    pids.push_back(Spawn({node_bin, "--master", address, "--rank", std::to_string(r), "--size",
                          std::to_string(kRanks), "--victim", std::to_string(kVictim),
                          "--kill-at-boundary", "1", "--bytes", std::to_string(bytes)},
                         dir_ + "/rank" + std::to_string(r) + ".out", ""));
    live_.push_back(pids.back());
  }
  // Everyone ends on their own: the victim by its SIGKILL, the survivors after op 2.
  std::map<int, int> status;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (status.size() < kRanks && std::chrono::steady_clock::now() < deadline) {
    for (int r = 0; r < kRanks; ++r) {
      int ws = 0;
      if (status.count(r) == 0 && ::waitpid(pids[r], &ws, WNOHANG) == pids[r]) {
        status[r] = ws;
        std::erase(live_, pids[r]);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::string all;
  std::map<int, std::map<int, nlohmann::json>> ops;  // rank -> op -> its line
  uint64_t killed_at = 0;
  for (int r = 0; r < kRanks; ++r) {
    const std::string out = Slurp(dir_ + "/rank" + std::to_string(r) + ".out");
    all += "--- rank " + std::to_string(r) + "\n" + out;
    std::istringstream lines(out);
    for (std::string line; std::getline(lines, line);) {
      nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.contains("op")) continue;
      if (j.contains("killed_at_ns")) {
        killed_at = j["killed_at_ns"].get<uint64_t>();
        continue;
      }
      ops[r][j["op"].get<int>()] = j;
    }
  }
  ASSERT_EQ(status.size(), size_t{kRanks}) << "a rank still runs after 120 s (a hang):\n" << all;
  ASSERT_TRUE(WIFSIGNALED(status[kVictim]) && WTERMSIG(status[kVictim]) == SIGKILL)
      << "rank " << kVictim << " " << DescribeWait(status[kVictim]) << "\n" << all;
  ASSERT_NE(killed_at, 0u) << "the victim did not say when it died\n" << all;
  for (int r : {0, 2}) {
    EXPECT_TRUE(WIFEXITED(status[r]) && WEXITSTATUS(status[r]) == 0)
        << "rank " << r << " " << DescribeWait(status[r]) << "\n" << all;
    for (int op = 0; op < 3; ++op) {
      ASSERT_EQ(ops[r].count(op), 1u) << "rank " << r << " printed no op " << op << "\n" << all;
      const nlohmann::json& j = ops[r][op];
      SCOPED_TRACE("rank " + std::to_string(r) + " op " + std::to_string(op) + ": " + j.dump());
      EXPECT_EQ(j["status"], op == 0 ? "OK" : "RANK_FAILED");
      EXPECT_EQ(j["failed_ranks"], op == 0 ? nlohmann::json::array()
                                           : nlohmann::json::array({kVictim}));
      EXPECT_EQ(j["wrong"], 0);
      EXPECT_EQ(j["ok"], true);
    }
  }
  ASSERT_FALSE(HasFailure()) << all;
  // The figures: after the kill, when each survivor knew and when op 1 completed there.
  nlohmann::json report = {{"ranks", kRanks}, {"gpus", *devices}, {"victim", kVictim},
                           {"bytes", bytes}};
  for (int r : {0, 2}) {
    const nlohmann::json& j1 = ops[r][1];
    const double detect = (static_cast<double>(j1["detect_ns"].get<uint64_t>()) -
                           static_cast<double>(killed_at)) / 1e6;
    const double done =
        (static_cast<double>(j1["done_ns"].get<uint64_t>()) - static_cast<double>(killed_at)) /
        1e6;
    report["survivors"].push_back({{"rank", r},
                                   {"clean_allreduce_ms", ops[r][0]["ms"]},
                                   {"killed_at_ms_into_op1",
                                    (static_cast<double>(killed_at) -
                                     static_cast<double>(j1["start_ns"].get<uint64_t>())) / 1e6},
                                   {"detect_ms_after_kill", detect},
                                   {"done_ms_after_kill", done},
                                   {"op2_over_survivors_ms", ops[r][2]["ms"]}});
  }
  std::printf("cuda kill-rank: %s\n", report.dump().c_str());
}

}  // namespace
