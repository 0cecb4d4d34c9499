// tidal-run, the local launcher: environment per rank, prefixed output, exits reported,
// the rest stopped when one fails (or not, with --keep-going), signals forwarded.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

namespace {

struct Outcome {
  int code = -1;
  std::string output;  // stdout and stderr together
};

// Runs tidal-run with `args` (a shell-quoted string) and collects everything it prints.
Outcome Launch(const std::string& args) {
  Outcome o;
  const std::string cmd = std::string(TIDAL_RUN_PATH) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return o;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) o.output.append(buf, n);
  const int status = pclose(p);
  o.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return o;
}

bool Has(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

TEST(TidalRun, EveryRankGetsItsEnvironmentAndAPrefix) {
  Outcome o = Launch(
      "--nproc 3 --master 127.0.0.1:1234 -- sh -c "
      "'echo rank=$TIDAL_RANK local=$TIDAL_LOCAL_RANK size=$TIDAL_WORLD_SIZE "
      "master=$TIDAL_MASTER; echo on-stderr >&2'");
  EXPECT_EQ(o.code, 0) << o.output;
  for (int r = 0; r < 3; ++r) {
    const std::string rank = std::to_string(r);
    EXPECT_TRUE(Has(o.output, "[rank " + rank + "] rank=" + rank + " local=" + rank +
                                  " size=3 master=127.0.0.1:1234\n"))
        << o.output;
    EXPECT_TRUE(Has(o.output, "[rank " + rank + "] on-stderr\n")) << o.output;
    EXPECT_TRUE(Has(o.output, "tidal-run: rank " + rank + " (pid ")) << o.output;
  }
  EXPECT_TRUE(Has(o.output, ") exited with code 0\n")) << o.output;
}

TEST(TidalRun, AFailingRankStopsTheOthers) {
  Outcome o = Launch(
      "--nproc 3 --grace-ms 5000 -- sh -c "
      "'if [ $TIDAL_RANK = 1 ]; then exit 3; fi; exec sleep 60'");
  EXPECT_EQ(o.code, 3) << o.output;
  EXPECT_TRUE(Has(o.output, "exited with code 3")) << o.output;
  EXPECT_TRUE(Has(o.output, "tidal-run: rank 1 failed; stopping the other ranks")) << o.output;
  // sleep dies of the SIGTERM: both others, stopped by the launcher.
  size_t stopped = 0;
  for (size_t at = 0; (at = o.output.find("killed by signal 15", at)) != std::string::npos; ++at) {
    ++stopped;
  }
  EXPECT_EQ(stopped, 2u) << o.output;
  EXPECT_TRUE(Has(o.output, "stopped by tidal-run")) << o.output;
}

TEST(TidalRun, KeepGoingLetsTheOthersFinish) {
  Outcome o = Launch(
      "--nproc 3 --keep-going --json -- sh -c "
      "'if [ $TIDAL_RANK = 1 ]; then exit 3; fi; sleep 0.3; exit 0'");
  EXPECT_EQ(o.code, 3) << o.output;
  EXPECT_FALSE(Has(o.output, "stopping the other ranks")) << o.output;
  // The summary is the last line.
  ASSERT_FALSE(o.output.empty());
  const size_t line = o.output.rfind('\n', o.output.size() - 2);
  ASSERT_NE(line, std::string::npos) << o.output;
  nlohmann::json j = nlohmann::json::parse(o.output.substr(line + 1));
  EXPECT_EQ(j["exit_code"], 3);
  EXPECT_EQ(j["first_failure"], 1);
  ASSERT_EQ(j["ranks"].size(), 3u);
  EXPECT_EQ(j["ranks"][0]["exit_code"], 0);
  EXPECT_EQ(j["ranks"][1]["exit_code"], 3);
  EXPECT_EQ(j["ranks"][2]["exit_code"], 0);
  EXPECT_EQ(j["ranks"][0]["stopped_by_tidal_run"], false);
}

TEST(TidalRun, SignalsAreForwardedToEveryRank) {
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    dup2(out[1], STDERR_FILENO);
    close(out[0]);
    execl(TIDAL_RUN_PATH, TIDAL_RUN_PATH, "--nproc", "2", "--", "sh", "-c",
          "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.05; done",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  std::string output;
  char buf[1024];
  // Wait until both ranks said they are ready (bounded by the pipe: tidal-run is alive).
  while (output.find("[rank 0] ready") == std::string::npos ||
         output.find("[rank 1] ready") == std::string::npos) {
    const ssize_t n = read(out[0], buf, sizeof(buf));
    ASSERT_GT(n, 0) << output;
    output.append(buf, static_cast<size_t>(n));
  }
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  ssize_t n;
  while ((n = read(out[0], buf, sizeof(buf))) > 0) output.append(buf, static_cast<size_t>(n));
  close(out[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 128 + SIGTERM) << output;
  EXPECT_TRUE(Has(output, "forwarding to every rank")) << output;
  EXPECT_TRUE(Has(output, "[rank 0] got-term")) << output;
  EXPECT_TRUE(Has(output, "[rank 1] got-term")) << output;
  EXPECT_TRUE(Has(output, "rank 0 (pid ")) << output;
  EXPECT_TRUE(Has(output, "exited with code 7")) << output;
}

TEST(TidalRun, BadArgumentsAreRefusedWithAReason) {
  Outcome zero = Launch("--nproc 0 -- true");
  EXPECT_EQ(zero.code, 2);
  EXPECT_TRUE(Has(zero.output, "--nproc 0 is outside 1..1024")) << zero.output;
  Outcome none = Launch("--nproc 2");
  EXPECT_EQ(none.code, 2);
  EXPECT_TRUE(Has(none.output, "no program to run")) << none.output;
  Outcome missing = Launch("--nproc 2 -- /nonexistent/program");
  EXPECT_EQ(missing.code, 2);
  EXPECT_TRUE(Has(missing.output, "cannot start '/nonexistent/program'")) << missing.output;
}

}  // namespace
