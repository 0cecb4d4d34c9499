// tidal-run: starts N local ranks of a program, like torchrun.
//
//   tidal-run --nproc 4 --master 127.0.0.1:5555 -- ./my_rank --flag
//
// Each rank gets TIDAL_RANK, TIDAL_LOCAL_RANK, TIDAL_WORLD_SIZE and (when known)
// TIDAL_MASTER in its environment. Its stdout and stderr lines are printed with a
// "[rank i]" prefix (--no-prefix passes them through untouched). tidal-run prints each
// rank's exit as it happens. When a rank fails (non-zero exit or a signal) the others are
// stopped: SIGTERM, then SIGKILL after --grace-ms; with --keep-going they run on (fault
// tests kill ranks on purpose). SIGINT, SIGTERM and SIGHUP sent to tidal-run are forwarded
// to every live rank, and the same grace period applies.
//
// Exit status: 0 when every rank exited 0; 128 + the signal when tidal-run was signalled;
// otherwise the first failing rank's exit code, or 128 + its signal; 2 for bad arguments
// or a program that cannot be started.
#include <boost/program_options.hpp>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

namespace po = boost::program_options;

namespace {

int g_signal_pipe[2] = {-1, -1};

void OnSignal(int sig) {
  const unsigned char b = static_cast<unsigned char>(sig);
  ssize_t ignored = write(g_signal_pipe[1], &b, 1);  // async-signal-safe
  (void)ignored;
}

double Now() {
  using clock = std::chrono::steady_clock;  // wall time of a launcher, for its report
  static const auto start = clock::now();
  return std::chrono::duration<double>(clock::now() - start).count();
}

struct Rank {
  int index = 0;
  pid_t pid = -1;
  int out_fd = -1, err_fd = -1;  // read ends of its stdout and stderr
  std::string out_buf, err_buf;  // partial lines
  bool running = false;
  bool stopped_by_us = false;
  int exit_code = -1;  // when it exited normally
  int signal = 0;      // when a signal ended it
  double ended_s = 0;
  bool failed() const { return signal != 0 || exit_code != 0; }
  int status_code() const { return signal != 0 ? 128 + signal : exit_code; }
};

std::string Describe(const Rank& r) {
  if (r.signal != 0) {
    return std::string("killed by signal ") + std::to_string(r.signal) + " (" +
           strsignal(r.signal) + ")" + (r.stopped_by_us ? ", stopped by tidal-run" : "");
  }
  return "exited with code " + std::to_string(r.exit_code) +
         (r.stopped_by_us ? " after tidal-run stopped it" : "");
}

// Writes complete lines of `buf` to `to` with the rank's prefix; keeps the tail.
void FlushLines(std::string& buf, FILE* to, const std::string& prefix, bool final) {
  size_t start = 0;
  for (;;) {
    const size_t nl = buf.find('\n', start);
    if (nl == std::string::npos) break;
    std::fprintf(to, "%s%.*s\n", prefix.c_str(), static_cast<int>(nl - start), buf.data() + start);
    start = nl + 1;
  }
  buf.erase(0, start);
  if (final && !buf.empty()) {
    std::fprintf(to, "%s%s\n", prefix.c_str(), buf.c_str());
    buf.clear();
  }
  std::fflush(to);
}

bool Drain(int& fd, std::string& buf, FILE* to, const std::string& prefix, bool raw) {
  char chunk[4096];
  const ssize_t n = read(fd, chunk, sizeof(chunk));
  if (n > 0) {
    if (raw) {
      fwrite(chunk, 1, static_cast<size_t>(n), to);
      std::fflush(to);
    } else {
      buf.append(chunk, static_cast<size_t>(n));
      FlushLines(buf, to, prefix, false);
    }
    return true;
  }
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  if (!raw) FlushLines(buf, to, prefix, true);
  close(fd);
  fd = -1;
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  int nproc = 0;
  std::string master;
  bool keep_going = false, no_prefix = false, json = false;
  int grace_ms = 3000;
  std::vector<std::string> command;
  po::options_description desc(
      "tidal-run: start N local ranks of a program (like torchrun)\n\n"
      "  tidal-run --nproc 4 --master 127.0.0.1:5555 -- ./rank_program ARGS...\n\n"
      "Each rank's environment: TIDAL_RANK, TIDAL_LOCAL_RANK, TIDAL_WORLD_SIZE, TIDAL_MASTER.\n\n"
      "Options");
  desc.add_options()("help,h", "show this help")(
      "nproc,n", po::value(&nproc)->required(), "ranks to start (1..1024)")(
      "master", po::value(&master),
      "tidal-master address for TIDAL_MASTER (default: the caller's TIDAL_MASTER, if set)")(
      "keep-going", po::bool_switch(&keep_going),
      "when a rank fails, let the others run on (fault tests)")(
      "grace-ms", po::value(&grace_ms)->default_value(3000),
      "how long stopped ranks get between SIGTERM and SIGKILL")(
      "no-prefix", po::bool_switch(&no_prefix), "pass rank output through without [rank i]")(
      "json", po::bool_switch(&json), "print a JSON summary of every rank's exit at the end");
  po::options_description hidden;
  hidden.add_options()("command", po::value(&command)->multitoken());
  po::positional_options_description pos;
  pos.add("command", -1);
  po::options_description all;
  all.add(desc).add(hidden);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(pos).run(), vm);
    if (vm.count("help")) {
      std::cout << desc;
      return 0;
    }
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "tidal-run: " << e.what() << " (see --help)\n";
    return 2;
  }
  if (nproc < 1 || nproc > 1024) {
    std::cerr << "tidal-run: --nproc " << nproc << " is outside 1..1024\n";
    return 2;
  }
  if (grace_ms < 0) {
    std::cerr << "tidal-run: --grace-ms must not be negative\n";
    return 2;
  }
  if (command.empty()) {
    std::cerr << "tidal-run: no program to run (put it after --)\n";
    return 2;
  }
  if (master.empty()) {
    if (const char* env = std::getenv("TIDAL_MASTER")) master = env;
  }

  if (pipe2(g_signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    std::perror("tidal-run: pipe");
    return 2;
  }
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGCHLD}) sigaction(sig, &sa, nullptr);

  std::vector<Rank> ranks(static_cast<size_t>(nproc));
  std::vector<char*> args;
  for (std::string& c : command) args.push_back(c.data());
  args.push_back(nullptr);
  for (int i = 0; i < nproc; ++i) {
    Rank& r = ranks[static_cast<size_t>(i)];
    r.index = i;
    int out[2], err[2], exec_err[2];
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0 ||
        pipe2(exec_err, O_CLOEXEC) != 0) {
      std::perror("tidal-run: pipe");
      return 2;
    }
    const pid_t pid = fork();
    if (pid < 0) {
      std::perror("tidal-run: fork");
      return 2;
    }
    if (pid == 0) {
      // The child: its own process group (a terminal's ^C reaches tidal-run, which
      // forwards it), default signal handling, the rank's environment, then the program.
      setpgid(0, 0);
      for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGCHLD}) signal(sig, SIG_DFL);
      if (!no_prefix) {
        dup2(out[1], STDOUT_FILENO);
        dup2(err[1], STDERR_FILENO);
      }
      setenv("TIDAL_RANK", std::to_string(i).c_str(), 1);
      setenv("TIDAL_LOCAL_RANK", std::to_string(i).c_str(), 1);
      setenv("TIDAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      if (!master.empty()) setenv("TIDAL_MASTER", master.c_str(), 1);
      execvp(args[0], args.data());
      const int e = errno;
      ssize_t ignored = write(exec_err[1], &e, sizeof(e));
      (void)ignored;
      _exit(127);
    }
    close(out[1]);
    close(err[1]);
    close(exec_err[1]);
    int e = 0;
    const ssize_t got = read(exec_err[0], &e, sizeof(e));  // EOF (0) when exec succeeded
    close(exec_err[0]);
    if (got == static_cast<ssize_t>(sizeof(e))) {
      std::cerr << "tidal-run: cannot start '" << command[0] << "': " << std::strerror(e) << "\n";
      waitpid(pid, nullptr, 0);
      for (Rank& started : ranks) {
        if (started.running) kill(started.pid, SIGKILL);
      }
      return 2;
    }
    r.pid = pid;
    r.running = true;
    if (!no_prefix) {
      r.out_fd = out[0];
      r.err_fd = err[0];
    } else {
      close(out[0]);
      close(err[0]);
    }
    std::fprintf(stderr, "tidal-run: rank %d started (pid %d)\n", i, static_cast<int>(pid));
  }

  int first_failure = -1;        // index of the first rank that failed
  bool stopping = false;         // SIGTERM sent; SIGKILL at kill_at
  double kill_at = 0;
  int forwarded = 0;             // the signal forwarded from our own caller, if any
  auto stop_all = [&](int sig) {
    for (Rank& r : ranks) {
      if (r.running) {
        kill(r.pid, sig);
        r.stopped_by_us = true;
      }
    }
    if (!stopping) {
      stopping = true;
      kill_at = Now() + grace_ms / 1000.0;
    }
  };
  auto live = [&]() {
    for (const Rank& r : ranks) {
      if (r.running || r.out_fd >= 0 || r.err_fd >= 0) return true;
    }
    return false;
  };
  while (live()) {
    std::vector<pollfd> fds;
    std::vector<std::pair<Rank*, bool>> owners;  // (rank, is_stderr)
    fds.push_back({g_signal_pipe[0], POLLIN, 0});
    owners.emplace_back(nullptr, false);
    for (Rank& r : ranks) {
      if (r.out_fd >= 0) {
        fds.push_back({r.out_fd, POLLIN, 0});
        owners.emplace_back(&r, false);
      }
      if (r.err_fd >= 0) {
        fds.push_back({r.err_fd, POLLIN, 0});
        owners.emplace_back(&r, true);
      }
    }
    int timeout_ms = 200;
    if (stopping) timeout_ms = std::max(0, static_cast<int>((kill_at - Now()) * 1000) + 1);
    const int n = poll(fds.data(), fds.size(), std::min(timeout_ms, 200));
    if (n < 0 && errno != EINTR) {
      std::perror("tidal-run: poll");
      stop_all(SIGKILL);
      break;
    }
    for (size_t k = 1; k < fds.size(); ++k) {
      if ((fds[k].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      Rank& r = *owners[k].first;
      const std::string prefix = "[rank " + std::to_string(r.index) + "] ";
      if (owners[k].second) {
        Drain(r.err_fd, r.err_buf, stderr, prefix, false);
      } else {
        Drain(r.out_fd, r.out_buf, stdout, prefix, false);
      }
    }
    if (fds[0].revents & POLLIN) {
      unsigned char sigs[64];
      const ssize_t got = read(g_signal_pipe[0], sigs, sizeof(sigs));
      for (ssize_t k = 0; k < got; ++k) {
        const int sig = sigs[k];
        if (sig == SIGCHLD) continue;  // reaped below
        if (forwarded == 0) {
          forwarded = sig;
          std::fprintf(stderr, "tidal-run: got signal %d (%s), forwarding to every rank\n", sig,
                       strsignal(sig));
          for (Rank& r : ranks) {
            if (r.running) {
              kill(r.pid, sig);
              r.stopped_by_us = true;
            }
          }
          stopping = true;
          kill_at = Now() + grace_ms / 1000.0;
        }
      }
    }
    // Reap whoever exited.
    for (;;) {
      int status = 0;
      const pid_t pid = waitpid(-1, &status, WNOHANG);
      if (pid <= 0) break;
      for (Rank& r : ranks) {
        if (r.pid != pid || !r.running) continue;
        r.running = false;
        r.ended_s = Now();
        if (WIFSIGNALED(status)) {
          r.signal = WTERMSIG(status);
        } else {
          r.exit_code = WEXITSTATUS(status);
        }
        std::fprintf(stderr, "tidal-run: rank %d (pid %d) %s\n", r.index, static_cast<int>(pid),
                     Describe(r).c_str());
        if (r.failed() && first_failure < 0 && !r.stopped_by_us) {
          first_failure = r.index;
          if (!keep_going && forwarded == 0) {
            std::fprintf(stderr, "tidal-run: rank %d failed; stopping the other ranks\n", r.index);
            stop_all(SIGTERM);
          }
        }
      }
    }
    if (stopping && Now() >= kill_at) {
      bool any = false;
      for (Rank& r : ranks) {
        if (r.running) {
          any = true;
          kill(r.pid, SIGKILL);
          r.stopped_by_us = true;
        }
      }
      if (any) std::fprintf(stderr, "tidal-run: grace period over: SIGKILL to the ranks left\n");
      kill_at = Now() + 3600;  // once
    }
  }

  int code = 0;
  if (forwarded != 0) {
    code = 128 + forwarded;  // we were told to stop: say so, whatever the ranks did
  } else if (first_failure >= 0) {
    code = ranks[static_cast<size_t>(first_failure)].status_code();
  } else {
    for (const Rank& r : ranks) {
      if (r.failed()) {
        code = r.status_code();
        break;
      }
    }
  }
  if (json) {
    nlohmann::json j = {{"nproc", nproc}, {"exit_code", code}, {"ranks", nlohmann::json::array()}};
    if (first_failure >= 0) j["first_failure"] = first_failure;
    if (forwarded != 0) j["forwarded_signal"] = forwarded;
    for (const Rank& r : ranks) {
      nlohmann::json e = {{"rank", r.index},        {"pid", r.pid},
                          {"wall_s", r.ended_s},    {"stopped_by_tidal_run", r.stopped_by_us}};
      if (r.signal != 0) {
        e["signal"] = r.signal;
      } else {
        e["exit_code"] = r.exit_code;
      }
      j["ranks"].push_back(e);
    }
    std::cout << j.dump() << "\n";
  }
  return code;
}
