// tidal-bench store: the store between processes, beside redis-server + redis-benchmark.
//
// One run starts tidal-master, a holder process that lends a segment to the store, and for
// every (value size, client count) C client processes. Each client puts its objects (one
// replica, on the holder), gets them back (every byte checked), then removes them, timing
// every call; the parent merges the samples: ops/s per phase (ops over the slowest
// client's phase time), GB/s, p50/p99 latency. The get phase runs twice: "get" reads each
// object for the first time (a master RPC for the replica list and its lease, then the
// read), "get again" reads them all once more; with cached gets (the default; --no-cache
// turns them off) that second read uses the replica list kept under the lease, without the
// master. redis-benchmark's GET reads one key over and over. Then redis-server on a loopback port and
// redis-benchmark SET/GET with the same value size and client count, and the ratios.
// Every process is tidal-bench itself (hidden --role holder|client), over UCX (the UCX_TLS
// of the environment) and tidal-master's TCP control plane.
#if TIDAL_BENCH_STORE

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/program_options.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tidal/backends/ucx/ucx_transport.h"
#include "tidal/cluster/real_node.h"

namespace po = boost::program_options;
using namespace tidal;

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string SelfDir() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return ".";
  std::string p(buf, static_cast<size_t>(n));
  return p.substr(0, p.rfind('/'));
}

std::string Value(uint64_t id, uint64_t k, uint64_t size) {
  std::string v(size, '\0');
  uint64_t x = id * 1000003 + k + 1;
  for (uint64_t i = 0; i < size; i += 8) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    std::memcpy(v.data() + i, &x, std::min<uint64_t>(8, size - i));
  }
  return v;
}

// A child process whose stdout we read line by line.
struct Child {
  pid_t pid = -1;
  FILE* out = nullptr;
};

Child Spawn(const std::vector<std::string>& args) {
  int fds[2];
  Child c;
  if (pipe(fds) != 0) return c;
  c.pid = fork();
  if (c.pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(fds[1]);
  c.out = fdopen(fds[0], "r");
  return c;
}

std::optional<std::string> ReadLine(Child& c) {
  if (c.out == nullptr) return std::nullopt;
  char* line = nullptr;
  size_t cap = 0;
  const ssize_t n = getline(&line, &cap, c.out);  // whole line, however long
  if (n < 0) {
    free(line);
    return std::nullopt;
  }
  std::string s(line, static_cast<size_t>(n));
  free(line);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

void Stop(Child& c) {
  if (c.pid > 0) {
    kill(c.pid, SIGTERM);
    waitpid(c.pid, nullptr, 0);
  }
  if (c.out != nullptr) fclose(c.out);
  c = Child{};
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

volatile sig_atomic_t g_stop = 0;

// --role holder: lends a segment and waits for SIGTERM.
int Holder(const std::string& master, uint64_t segment_bytes, uint64_t slice_bytes,
           uint64_t ucx_spin_ns) {
  cluster::RealNodeOptions o;
  o.slice_bytes = slice_bytes;
  o.ucx_spin_ns = ucx_spin_ns;
  o.name = "holder";
  o.master = master;
  o.segment_bytes = segment_bytes;
  auto node = cluster::RealNode::Start(o);
  if (!node.ok()) {
    std::printf("error %s\n", node.status().ToString().c_str());
    return 2;
  }
  std::printf("ready\n");
  std::fflush(stdout);
  signal(SIGTERM, [](int) { g_stop = 1; });
  // Serve (the engine and store client run on this process's event loop).
  (*node)->Run([](backends::RealEnv& env) -> Task<void> {
    while (!g_stop) co_await SleepFor(env, 20'000'000);
  }((*node)->env()));
  // Its progress thread's waits over the whole run (the READs it answered), on stderr.
  if (auto* ucx = dynamic_cast<backends::ucx::UcxTransport*>(&(*node)->engine().transport())) {
    const backends::ucx::UcxTransportStats st = ucx->stats();
    std::fprintf(stderr,
                 "tidal-bench store: holder progress thread: %llu waits, %llu ran out busy, "
                 "%llu ran out idle, %llu stalls\n",
                 static_cast<unsigned long long>(st.waits),
                 static_cast<unsigned long long>(st.busy_timeouts),
                 static_cast<unsigned long long>(st.idle_timeouts),
                 static_cast<unsigned long long>(st.stalls));
  }
  return 0;
}

// Compares the bytes of gets on threads of its own, beside the event loop: with several
// sessions on one loop, a 16 MiB comparison there held every other session's calls for
// milliseconds (the loop also copies the bytes out of a mapped segment), a cost of the
// benchmark's own check, which redis-benchmark does not make, charged to tidal. `done`
// runs on the loop (posted), with whether the bytes were the same and the seconds the
// comparison took.
class Checker {
 public:
  Checker(backends::RealEnv& env, size_t threads) : env_(env) {
    env_.AddPoster();
    for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(); });
  }
  ~Checker() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_) t.join();
    env_.RemovePoster();
  }
  Checker(const Checker&) = delete;
  Checker& operator=(const Checker&) = delete;

  void Submit(const uint8_t* got, const uint8_t* want, size_t n,
              std::function<void(bool, double)> done) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      jobs_.push_back(Job{got, want, n, std::move(done)});
    }
    cv_.notify_one();
  }

 private:
  struct Job {
    const uint8_t* got;
    const uint8_t* want;
    size_t n;
    std::function<void(bool, double)> done;
  };
  void Work() {
    for (;;) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
        if (jobs_.empty()) return;  // stopping, nothing left
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      const double c0 = Now();
      const bool same = std::memcmp(job.got, job.want, job.n) == 0;
      const double secs = Now() - c0;
      env_.Post([done = std::move(job.done), same, secs]() { done(same, secs); });
    }
  }

  backends::RealEnv& env_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

// A landing buffer of a session's zero-copy gets whose bytes the Checker compares: not
// written by the next get until that comparison is done.
struct CheckSlot {
  std::vector<uint8_t> buf;
  bool pending = false;
  OneShot<bool>* waiter = nullptr;  // a get waiting for this buffer (in its frame)
};

// One client process of the benchmark: a RealNode and `sessions` client sessions on it
// (each its own objects and keys), all driven by the node's one event loop.
struct Session {
  uint64_t id = 0;
  std::string prefix;            // key prefix, unique per session and process
  std::vector<uint8_t> values;   // count x size: the bytes each object must hold
  std::vector<uint8_t> dst;      // zero-copy gets land here (registered), size bytes
  // With a Checker: gets land in these instead, in turn (registered, size bytes each).
  std::array<CheckSlot, 2> slots;
  size_t next_slot = 0;
  std::vector<double> lat;       // this phase's latencies, us
  double check_s = 0;            // this phase's time spent checking the bytes of gets
  uint64_t checked = 0;          // this phase's gets whose bytes were compared
  uint64_t errors = 0;
  std::string first_error;
};

enum class Op { kPut, kGet, kRemove };

struct ClientBench {
  cluster::RealNode* node = nullptr;
  uint64_t size = 0, count = 0;
  bool zero_copy = false;
  store::ReplicateConfig rc;
  std::vector<Session> sessions;
  // Zero-copy gets with several sessions: their bytes are compared on the Checker's
  // threads; the phase ends at its last call, the comparisons still running are awaited
  // after it (and not charged to it).
  std::unique_ptr<Checker> checker;
  uint64_t checks_in_flight = 0;
  OneShot<bool>* checks_done = nullptr;  // the phase waiting for them (in its frame)
  double calls_done_at = 0;              // when the phase's last call ended
};

// A failed call, counted; the session keeps the first one's words.
void NoteError(Session& s, const char* what, const Status& status) {
  if (s.errors++ == 0) s.first_error = std::string(what) + ": " + status.ToString();
}

Status OtherBytes(const std::string& key) {
  return Status(ErrorCode::CHECKSUM_MISMATCH, "other bytes came back for " + key);
}

// The end of one comparison (on the loop): its verdict to the session, its buffer free.
void CheckDone(ClientBench& b, Session& s, CheckSlot& slot, const std::string& key, bool same,
               double secs) {
  slot.pending = false;
  s.check_s += secs;
  ++s.checked;
  if (!same) NoteError(s, "get", OtherBytes(key));
  if (slot.waiter != nullptr) std::exchange(slot.waiter, nullptr)->Set(true);
  if (--b.checks_in_flight == 0 && b.checks_done != nullptr) {
    std::exchange(b.checks_done, nullptr)->Set(true);
  }
}

// One call, timed; the bytes of a get are checked after the clock stopped (every byte, as
// redis-benchmark does not, so the check is not charged to tidal's latency).
Task<void> RunOp(ClientBench& b, Session& s, Op op, uint64_t k) {
  store::StoreClient& st = b.node->store();
  const std::string key = s.prefix + std::to_string(k);
  const uint8_t* want = s.values.data() + k * b.size;
  Status status = Status::Ok();
  std::string got;  // the copying Get's answer
  uint8_t* dst = s.dst.data();
  CheckSlot* slot = nullptr;
  if (op == Op::kGet && b.checker != nullptr) {
    slot = &s.slots[s.next_slot];
    s.next_slot = (s.next_slot + 1) % s.slots.size();
    while (slot->pending) {  // its last get's bytes are still being compared
      OneShot<bool> free(b.node->env());
      slot->waiter = &free;
      co_await free.Wait();
    }
    dst = slot->buf.data();
  }
  const double t0 = Now();
  if (op == Op::kPut) {
    if (b.zero_copy) {
      status = co_await st.PutFrom(key, want, b.size, b.rc);
    } else {
      status = co_await st.Put(key, std::string(reinterpret_cast<const char*>(want), b.size), b.rc);
    }
  } else if (op == Op::kGet) {
    if (b.zero_copy) {
      Result<uint64_t> n = co_await st.GetInto(key, dst, b.size);
      status = n.status();
      if (n.ok() && *n != b.size) {
        status = Status(ErrorCode::CHECKSUM_MISMATCH, "size " + std::to_string(*n) + " came back");
      }
    } else {
      Result<std::string> v = co_await st.Get(key);
      status = v.status();
      if (v.ok()) got = std::move(*v);
    }
  } else {
    // force: the gets just took leases; the memory is kept until they end.
    status = co_await st.Remove(key, /*force=*/true);
  }
  s.lat.push_back((Now() - t0) * 1e6);
  if (status.ok() && slot != nullptr) {
    slot->pending = true;
    ++b.checks_in_flight;
    b.checker->Submit(dst, want, b.size, [&b, &s, slot, key](bool same, double secs) {
      CheckDone(b, s, *slot, key, same, secs);
    });
  } else if (status.ok() && op == Op::kGet) {
    ++s.checked;
    const double c0 = Now();
    const bool same = b.zero_copy ? std::memcmp(s.dst.data(), want, b.size) == 0
                                  : got.size() == b.size && std::memcmp(got.data(), want, b.size) == 0;
    if (!same) status = OtherBytes(key);
    s.check_s += Now() - c0;
  }
  if (!status.ok())
    NoteError(s, op == Op::kPut ? "put" : op == Op::kGet ? "get" : "remove", status);
}

struct Join {
  explicit Join(Env& env) : done(env) {}
  uint64_t left = 0;
  OneShot<bool> done;
};

Task<void> RunSession(ClientBench& b, Session& s, Op op, std::shared_ptr<Join> join) {
  for (uint64_t k = 0; k < b.count; ++k) co_await RunOp(b, s, op, k);
  if (--join->left == 0) join->done.Set(true);
}

// Every session runs the phase at once, each its objects one call after the other.
Task<void> RunPhase(ClientBench& b, Op op) {
  auto join = std::make_shared<Join>(b.node->env());
  join->left = b.sessions.size();
  for (Session& s : b.sessions) Spawn(b.node->env(), RunSession(b, s, op, join));
  co_await join->done.Wait();
  b.calls_done_at = Now();
  if (b.checks_in_flight > 0) {
    OneShot<bool> all_checked(b.node->env());
    b.checks_done = &all_checked;
    co_await all_checked.Wait();
  }
}

// --role client: `sessions` sessions on one node put, get (checked), get again and remove
// `count` objects of `size` bytes each; prints one JSON line with the phase times (wall
// time of the whole phase, every session included) and every latency.
int Client(const std::string& master, uint64_t id, uint64_t sessions, uint64_t size,
           uint64_t count, bool cached, bool zero_copy, uint64_t slice_bytes,
           uint64_t spin_ns, uint32_t put_reservations) {
  cluster::RealNodeOptions o;
  o.put_reservations = put_reservations;
  o.slice_bytes = slice_bytes;
  o.env_spin_ns = spin_ns;
  o.cached_gets = cached;
  o.name = "client" + std::to_string(id) + "-" + std::to_string(getpid());
  o.master = master;
  o.segment_bytes = 0;
  auto made = cluster::RealNode::Start(o);
  if (!made.ok()) {
    std::printf("{\"error\":%s}\n", nlohmann::json(made.status().ToString()).dump().c_str());
    return 2;
  }
  cluster::RealNode& node = **made;
  ClientBench b;
  b.node = &node;
  b.size = size;
  b.count = count;
  b.zero_copy = zero_copy;
  b.rc.preferred_segments = {"holder"};
  b.sessions.resize(sessions);
  for (uint64_t i = 0; i < sessions; ++i) {
    Session& s = b.sessions[i];
    s.id = id + i;
    s.prefix = "c" + std::to_string(s.id) + "-" + std::to_string(getpid()) + "-";
    s.values.resize(count * size);
    for (uint64_t k = 0; k < count; ++k) {
      const std::string v = Value(s.id, k, size);
      std::memcpy(s.values.data() + k * size, v.data(), size);
    }
    if (zero_copy) {
      s.dst.assign(size, 0);
      std::vector<std::vector<uint8_t>*> bufs = {&s.values, &s.dst};
      if (sessions > 1) {
        for (CheckSlot& slot : s.slots) {
          slot.buf.assign(size, 0);
          bufs.push_back(&slot.buf);
        }
      }
      for (std::vector<uint8_t>* buf : bufs) {
        Status st = node.Run(node.store().RegisterBuffer(buf->data(), buf->size()));
        if (!st.ok()) {
          std::printf("{\"error\":%s}\n",
                      nlohmann::json("register: " + st.ToString()).dump().c_str());
          return 2;
        }
      }
    }
  }
  // Several sessions' large gets: their bytes compared beside the loop, by as many threads
  // as sessions, at most half this machine's CPUs.
  if (zero_copy && sessions > 1) {
    const size_t cpus = std::max(1u, std::thread::hardware_concurrency());
    b.checker = std::make_unique<Checker>(node.env(), std::clamp<size_t>(cpus / 2, 1, sessions));
  }
  nlohmann::json out = {
      {"id", id}, {"sessions", sessions}, {"checks_on_threads", b.checker != nullptr}};
  // The client transport's progress-thread waits during each phase (UcxTransportStats):
  // a wait that ran out at its bound with work UCX had not signalled is time lost.
  auto* ucx = dynamic_cast<backends::ucx::UcxTransport*>(&node.engine().transport());
  auto phase = [&](const char* name, Op op) {
    const backends::ucx::UcxTransportStats before =
        ucx != nullptr ? ucx->stats() : backends::ucx::UcxTransportStats{};
    const store::StoreClientStats store_before = node.store().stats();
    for (Session& s : b.sessions) {
      s.lat.clear();
      s.check_s = 0;
      s.checked = 0;
    }
    const double start = Now();
    node.Run(RunPhase(b, op));
    const double wall = b.calls_done_at - start;  // comparisons left running not counted
    double check = 0;
    uint64_t checked = 0;
    for (Session& s : b.sessions) {
      check += s.check_s;
      checked += s.checked;
    }
    out[std::string(name) + "_check_s"] = check;
    out[std::string(name) + "_checked"] = checked;
    out[std::string(name) + "_s"] = wall;
    std::vector<double> lat;
    for (Session& s : b.sessions) lat.insert(lat.end(), s.lat.begin(), s.lat.end());
    out[std::string(name) + "_us"] = lat;
    const backends::ucx::UcxTransportStats after =
        ucx != nullptr ? ucx->stats() : backends::ucx::UcxTransportStats{};
    out[std::string(name) + "_ucx"] = {
        {"waits", after.waits - before.waits},
        {"busy_timeouts", after.busy_timeouts - before.busy_timeouts},
        {"idle_timeouts", after.idle_timeouts - before.idle_timeouts},
        {"stalls", after.stalls - before.stalls},
        // the loop-driven mode: hand-backs before the loop blocked, the progress thread's
        // waits meanwhile and its own rounds when one ran out
        {"loop_handbacks", after.loop_handbacks - before.loop_handbacks},
        {"standby_waits", after.standby_waits - before.standby_waits},
        {"standby_rounds", after.standby_rounds - before.standby_rounds},
        // one-sided: puts and gets straight into the
        // holder's mapped segment (docs/ucx.md)
        {"puts", after.puts - before.puts},
        {"gets", after.gets - before.gets}};
    // Where the phase's calls waited: master RPCs and transfer batches, each from its
    // start to its answer (StoreClientStats), in all.
    const store::StoreClientStats store_after = node.store().stats();
    out[std::string(name) + "_store"] = {
        {"rpcs", store_after.master_rpcs - store_before.master_rpcs},
        {"rpc_us",
         static_cast<double>(store_after.master_rpc_ns - store_before.master_rpc_ns) / 1e3},
        {"transfers", store_after.transfer_batches - store_before.transfer_batches},
        {"transfer_us",
         static_cast<double>(store_after.transfer_ns - store_before.transfer_ns) / 1e3}};
  };
  phase("put", Op::kPut);
  phase("get", Op::kGet);
  phase("reget", Op::kGet);
  out["cached_gets"] = node.store().stats().cached_gets;
  out["reserved_puts"] = node.store().stats().reserved_puts;
  out["reservation_requests"] = node.store().stats().reservation_requests;
  phase("remove", Op::kRemove);
  uint64_t errors = 0;
  std::string first_error;
  for (const Session& s : b.sessions) {
    if (s.errors > 0 && errors == 0) first_error = s.first_error;
    errors += s.errors;
  }
  if (zero_copy) {
    for (Session& s : b.sessions) {
      (void)node.Run(node.store().UnregisterBuffer(s.values.data()));
      (void)node.Run(node.store().UnregisterBuffer(s.dst.data()));
      for (CheckSlot& slot : s.slots) {
        if (!slot.buf.empty()) (void)node.Run(node.store().UnregisterBuffer(slot.buf.data()));
      }
    }
  }
  out["errors"] = errors;
  out["first_error"] = first_error;
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

struct Measured {
  double put_ops = 0, get_ops = 0, put_gbps = 0, get_gbps = 0;
  double put_p50 = 0, put_p99 = 0, get_p50 = 0, get_p99 = 0;  // us
  double reget_ops = 0, reget_p50 = 0, reget_p99 = 0;  // tidal's second get of each object
  uint64_t errors = 0, cached_gets = 0;
  uint64_t reserved_puts = 0, reservation_requests = 0;  // put reservations
  double check_s = 0;      // time the clients spent checking the bytes of their gets
  uint64_t checked_gets = 0;  // gets (first and second reads) whose bytes were compared
  // That time is not in the phase times: one session in all (subtracted), or compared
  // on threads beside the loop of several sessions (the phase ends at its last call).
  bool checks_off = false;
  bool checks_on_threads = false;
  nlohmann::json ucx = nlohmann::json::object();  // clients' progress-thread waits per phase
  // Per phase ("put", "get", "reget"), over every client: master RPCs and transfer
  // batches the calls waited for, how many and their total time (us).
  struct Waited {
    uint64_t rpcs = 0, transfers = 0;
    double rpc_us = 0, transfer_us = 0;
  };
  std::map<std::string, Waited> waited;
  uint64_t calls_per_phase = 0;  // every session's calls of one phase (clients x count)
  bool ok = false;
};

// A child's next line for which `wanted` holds; the lines before it (UCX logs on stdout,
// "[time] [host:pid:thread] file.c:line UCX LEVEL ...") are passed on to stderr.
template <typename Wanted>
std::optional<std::string> ReadAnswer(Child& c, Wanted wanted) {
  for (;;) {
    std::optional<std::string> line = ReadLine(c);
    if (!line || wanted(*line)) return line;
    std::fprintf(stderr, "tidal-bench store: child output: %s\n", line->c_str());
  }
}

// tidal-master's and the holder's answer: any line but UCX's log lines.
std::optional<std::string> ReadAnswer(Child& c) {
  return ReadAnswer(c, [](const std::string& line) {
    return line.empty() || line.front() != '[' || line.find(" UCX ") == std::string::npos;
  });
}

// A client process's JSON line.
std::optional<std::string> ReadJsonLine(Child& c) {
  return ReadAnswer(c,
                    [](const std::string& line) { return !line.empty() && line.front() == '{'; });
}

// `clients` sessions: one client process running them all on its event loop
// (Shape::kSessions), or one process each (Shape::kProcesses).
enum class Shape { kSessions, kProcesses };

Measured RunTidal(const std::string& self, const std::string& master, uint64_t size,
                  uint64_t clients, uint64_t count, bool cached, Shape shape, bool zero_copy,
                  uint64_t slice_bytes, uint64_t spin_us, uint32_t put_reservations) {
  Measured m;
  std::vector<Child> kids;
  const uint64_t procs = shape == Shape::kSessions ? 1 : clients;
  const uint64_t per_proc = shape == Shape::kSessions ? clients : 1;
  for (uint64_t i = 0; i < procs; ++i) {
    std::vector<std::string> args = {self, "store", "--role", "client", "--master", master,
                                     "--id", std::to_string(i), "--sessions",
                                     std::to_string(per_proc), "--size", std::to_string(size),
                                     "--count", std::to_string(count), "--slice-bytes",
                                     std::to_string(slice_bytes), "--client-spin-us",
                                     std::to_string(spin_us), "--put-reservations",
                                     std::to_string(put_reservations)};
    if (!cached) args.push_back("--no-cache");
    if (zero_copy) args.push_back("--zero-copy");
    kids.push_back(Spawn(args));
  }
  std::vector<double> put_lat, get_lat, reget_lat;
  double put_s = 0, get_s = 0, reget_s = 0;
  uint64_t done = 0;
  for (Child& k : kids) {
    std::optional<std::string> line = ReadJsonLine(k);
    Stop(k);
    if (!line) continue;
    nlohmann::json j = nlohmann::json::parse(*line, nullptr, false);
    if (j.is_discarded() || j.contains("error")) {
      std::fprintf(stderr, "tidal-bench store: a client failed: %.300s\n", line->c_str());
      continue;
    }
    ++done;
    m.errors += j["errors"].get<uint64_t>();
    if (j["errors"].get<uint64_t>() > 0) {
      std::fprintf(stderr, "tidal-bench store: client %s: %llu errors, first: %s\n",
                   j["id"].dump().c_str(),
                   static_cast<unsigned long long>(j["errors"].get<uint64_t>()),
                   j["first_error"].get<std::string>().c_str());
    }
    // A phase's time without the byte checks of its gets (redis-benchmark reads no value
    // back), where that is exact: one client session in all, whose calls and checks take
    // turns with nothing else of the run in flight. With several sessions or processes,
    // others' transfers go on during a check, so the checks stay charged to tidal, but
    // for several sessions' large values, compared on threads beside the loop (the
    // client's phase time then ends at its last call).
    const bool alone = clients == 1;
    auto phase_s = [&](const char* ph) {
      const double wall = j[std::string(ph) + "_s"].get<double>();
      return alone ? wall - j.value(std::string(ph) + "_check_s", 0.0) : wall;
    };
    put_s = std::max(put_s, phase_s("put"));
    get_s = std::max(get_s, phase_s("get"));
    reget_s = std::max(reget_s, phase_s("reget"));
    m.check_s += j.value("get_check_s", 0.0) + j.value("reget_check_s", 0.0);
    m.checked_gets += j.value("get_checked", uint64_t{0}) + j.value("reget_checked", uint64_t{0});
    m.checks_on_threads = m.checks_on_threads || j.value("checks_on_threads", false);
    m.cached_gets += j["cached_gets"].get<uint64_t>();
    m.reserved_puts += j.value("reserved_puts", uint64_t{0});
    m.reservation_requests += j.value("reservation_requests", uint64_t{0});
    for (const char* ph : {"put", "get", "reget"}) {
      const std::string key = std::string(ph) + "_store";
      if (!j.contains(key)) continue;
      Measured::Waited& sum = m.waited[ph];
      sum.rpcs += j[key]["rpcs"].get<uint64_t>();
      sum.rpc_us += j[key]["rpc_us"].get<double>();
      sum.transfers += j[key]["transfers"].get<uint64_t>();
      sum.transfer_us += j[key]["transfer_us"].get<double>();
    }
    for (const char* ph : {"put", "get", "reget"}) {
      const std::string key = std::string(ph) + "_ucx";
      if (!j.contains(key)) continue;
      nlohmann::json& sum = m.ucx[ph];
      if (!sum.is_object()) sum = nlohmann::json::object();
      for (auto& [k, v] : j[key].items()) sum[k] = sum.value(k, uint64_t{0}) + v.get<uint64_t>();
    }
    for (double v : j["put_us"]) put_lat.push_back(v);
    for (double v : j["get_us"]) get_lat.push_back(v);
    for (double v : j["reget_us"]) reget_lat.push_back(v);
  }
  if (done != procs || put_s <= 0 || get_s <= 0 || reget_s <= 0) return m;
  const double ops = static_cast<double>(clients * count);
  m.calls_per_phase = clients * count;
  m.put_ops = ops / put_s;
  m.get_ops = ops / get_s;
  m.put_gbps = m.put_ops * static_cast<double>(size) / 1e9;
  m.get_gbps = m.get_ops * static_cast<double>(size) / 1e9;
  m.put_p50 = Percentile(put_lat, 0.50);
  m.put_p99 = Percentile(put_lat, 0.99);
  m.get_p50 = Percentile(get_lat, 0.50);
  m.get_p99 = Percentile(get_lat, 0.99);
  m.reget_ops = ops / reget_s;
  m.reget_p50 = Percentile(reget_lat, 0.50);
  m.reget_p99 = Percentile(reget_lat, 0.99);
  m.checks_off = clients == 1 || m.checks_on_threads;
  m.ok = m.errors == 0;
  return m;
}

// The JSON of what a row's calls waited for: per phase, rpcs, rpc_us, transfers and
// transfer_us (totals over every client).
nlohmann::json WaitedJson(const Measured& t) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [ph, w] : t.waited) {
    out[ph] = {{"rpcs", w.rpcs},
               {"rpc_us", w.rpc_us},
               {"transfers", w.transfers},
               {"transfer_us", w.transfer_us}};
  }
  return out;
}

// One row's line of what its calls waited for, e.g.
// "    4096   16 | put: 1.06 RPC x 75.2, 1.00 transfer x 23.1 | get: ... | again: ...".
std::string WaitedLine(uint64_t size, uint64_t clients, const Measured& t) {
  char head[64];
  std::snprintf(head, sizeof head, "%8llu %4llu", static_cast<unsigned long long>(size),
                static_cast<unsigned long long>(clients));
  std::string line = head;
  const double calls = static_cast<double>(t.calls_per_phase);
  for (const auto& [ph, label] : {std::pair{"put", "put"}, {"get", "get"}, {"reget", "again"}}) {
    auto it = t.waited.find(ph);
    if (it == t.waited.end() || calls <= 0) {
      line += std::string(" | ") + label + ": -";
      continue;
    }
    const Measured::Waited& w = it->second;
    char part[160];
    std::snprintf(part, sizeof part, " | %s: %.2f RPC x %.1f, %.2f transfer x %.1f", label,
                  static_cast<double>(w.rpcs) / calls,
                  w.rpcs > 0 ? w.rpc_us / static_cast<double>(w.rpcs) : 0.0,
                  static_cast<double>(w.transfers) / calls,
                  w.transfers > 0 ? w.transfer_us / static_cast<double>(w.transfers) : 0.0);
    line += part;
  }
  return line;
}

// redis-benchmark --csv: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",
// "p95_latency_ms","p99_latency_ms","max_latency_ms".
Measured RunRedis(int port, uint64_t size, uint64_t clients, uint64_t requests) {
  Measured m;
  const std::string cmd = "redis-benchmark -h 127.0.0.1 -p " + std::to_string(port) +
                          " -t set,get -d " + std::to_string(size) + " -c " +
                          std::to_string(clients) + " -n " + std::to_string(requests) +
                          " --csv 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return m;
  char line[1024];
  int seen = 0;
  while (fgets(line, sizeof(line), p) != nullptr) {
    std::string l(line);
    l.erase(std::remove(l.begin(), l.end(), '"'), l.end());
    std::vector<std::string> f;
    std::stringstream ss(l);
    std::string item;
    while (std::getline(ss, item, ',')) f.push_back(item);
    if (f.size() < 7) continue;
    const double rps = std::atof(f[1].c_str());
    if (f[0] == "SET") {
      m.put_ops = rps;
      m.put_p50 = std::atof(f[4].c_str()) * 1000;
      m.put_p99 = std::atof(f[6].c_str()) * 1000;
      ++seen;
    } else if (f[0] == "GET") {
      m.get_ops = rps;
      m.get_p50 = std::atof(f[4].c_str()) * 1000;
      m.get_p99 = std::atof(f[6].c_str()) * 1000;
      ++seen;
    }
  }
  pclose(p);
  m.put_gbps = m.put_ops * static_cast<double>(size) / 1e9;
  m.get_gbps = m.get_ops * static_cast<double>(size) / 1e9;
  m.ok = seen == 2;
  return m;
}

// /proc/loadavg's 1, 5 and 15 minute load averages (empty if unreadable).
std::vector<double> LoadAverage() {
  std::vector<double> out;
  FILE* f = std::fopen("/proc/loadavg", "r");
  if (f == nullptr) return out;
  double a = 0, b = 0, c = 0;
  if (std::fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3) out = {a, b, c};
  std::fclose(f);
  return out;
}

std::string LoadText(const std::vector<double>& l) {
  if (l.size() != 3) return "?";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.2f %.2f %.2f", l[0], l[1], l[2]);
  return buf;
}

uint64_t ParseSize(std::string s) {
  uint64_t mult = 1;
  if (!s.empty() && (s.back() == 'K' || s.back() == 'k')) mult = 1 << 10;
  if (!s.empty() && (s.back() == 'M' || s.back() == 'm')) mult = 1 << 20;
  if (mult != 1) s.pop_back();
  return std::stoull(s) * mult;
}

std::vector<uint64_t> List(const std::string& text, bool sizes) {
  std::vector<uint64_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(sizes ? ParseSize(item) : std::stoull(item));
  return out;
}

}  // namespace

int RunStoreBench(int argc, char** argv) {
  std::string role, master, sizes = "4K,16M", clients = "1,16", shape_name = "sessions",
                            api = "auto", tcp_seg = "512K", rndv_scheme = "put_zcopy";
  uint64_t id = 0, size = 0, count = 0, segment_bytes = 0, small_ops = 0,
           large_bytes = 128ull << 20, sessions = 1,
           slice_bytes = cluster::RealNodeOptions{}.slice_bytes, client_spin_us = 50,
           master_spin_us = 300,
           holder_spin_us = backends::ucx::UcxTransportOptions{}.spin_ns / 1000;
  uint32_t put_reservations = cluster::RealNodeOptions{}.put_reservations;
  int redis_port = 16379;
  bool json = false, no_redis = false, no_cache = false, zero_copy = false;
  po::options_description opts(
      "tidal-bench store [options]: the store between processes (tidal-master, a holder, C "
      "client sessions over UCX) beside redis-server + redis-benchmark SET/GET");
  opts.add_options()("help,h", "this help")("sizes", po::value(&sizes)->default_value(sizes),
                                            "value sizes (K, M suffixes)")(
      "clients", po::value(&clients)->default_value(clients), "client counts")(
      "small-ops", po::value(&small_ops),
      "objects per client for sizes below 1 MiB (default: 2000, and more where the clients "
      "would put fewer than 20000 in all, the requests redis-benchmark is given at least: "
      "both sides then make the same number)")(
      "large-bytes", po::value(&large_bytes)->default_value(large_bytes),
      "bytes per client for sizes of 1 MiB and more")(
      "redis-port", po::value(&redis_port)->default_value(redis_port), "redis-server's port")(
      "no-redis", po::bool_switch(&no_redis), "do not run redis")(
      "no-cache", po::bool_switch(&no_cache),
      "clients ask the master for every get (no replica lists cached under leases)")(
      "shape", po::value(&shape_name)->default_value(shape_name),
      "sessions: the C clients are C concurrent sessions of one client process on its one "
      "event loop (as redis-benchmark -c C is one process with C connections); processes: "
      "C client processes of one session each")(
      "slice-bytes", po::value(&slice_bytes)->default_value(slice_bytes),
      "the engine's slice size in every tidal process (RealNodeOptions::slice_bytes)")(
      "client-spin-us", po::value(&client_spin_us)->default_value(client_spin_us),
      "a client process's event loop polls this long for an answer before it sleeps, "
      "progressing its UCX worker itself (RealNodeOptions::env_spin_ns, whose library "
      "default is 0; 0: sleep at once)")(
      "master-spin-us", po::value(&master_spin_us)->default_value(master_spin_us),
      "tidal-master --spin-us: its event loop polls this long for a request before it sleeps "
      "(tidal-master's own default is 0; 300 here: with its reads on the loop, a request that "
      "finds it polling costs the client no wake-up, docs/performance.md)")(
      "holder-spin-us", po::value(&holder_spin_us)->default_value(holder_spin_us),
      "the holder's UCX progress thread polls this long after its last activity before it "
      "sleeps (RealNodeOptions::ucx_spin_ns, UcxTransportOptions::spin_ns): a client's "
      "request that finds it polling is served without an event-fd wake-up")(
      "put-reservations", po::value(&put_reservations)->default_value(put_reservations),
      "clients put values of at most 64 KiB through this many put reservations at a time "
      "(RealNodeOptions::put_reservations: one master RPC per put; 0: PutStart and PutEnd)")(
      "ucx-tcp-seg", po::value(&tcp_seg)->default_value(tcp_seg),
      "UCX_TCP_RX_SEG_SIZE and UCX_TCP_TX_SEG_SIZE of the tidal processes where the "
      "environment does not set them (UCX 1.13's defaults: 64K and 8K); 'ucx': leave UCX's "
      "defaults")(
      "ucx-rndv-scheme", po::value(&rndv_scheme)->default_value(rndv_scheme),
      "UCX_RNDV_SCHEME of the tidal processes where the environment does not set it: "
      "put_zcopy (the side that sends the bytes writes them into the receiver's buffer; over "
      "shared memory 16 MiB values moved faster so than with UCX's default, which lets the "
      "receiver fetch them), get_zcopy, auto (UCX's default), or 'ucx': leave it unset")(
      "api", po::value(&api)->default_value(api),
      "copy: Put/Get of strings; zero-copy: PutFrom/GetInto registered buffers; auto: "
      "zero-copy from 1 MiB, copy below")("json", po::bool_switch(&json),
                                          "print JSON after the table");
  po::options_description hidden;
  hidden.add_options()("role", po::value(&role))("master", po::value(&master))(
      "id", po::value(&id))("size", po::value(&size))("count", po::value(&count))(
      "segment", po::value(&segment_bytes))("sessions", po::value(&sessions))(
      "zero-copy", po::bool_switch(&zero_copy));
  po::options_description all;
  all.add(opts).add(hidden);
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, all), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "tidal-bench store: " << e.what() << "\n" << opts << "\n";
    return 2;
  }
  if (vm.count("help")) {
    std::cout << opts << "\n";
    return 0;
  }
  if (slice_bytes == 0) {
    std::cerr << "tidal-bench store: --slice-bytes must be at least 1\n";
    return 2;
  }
  if (role == "holder") return Holder(master, segment_bytes, slice_bytes, holder_spin_us * 1000);
  if (role == "client") {
    return Client(master, id, sessions, size, count, !no_cache, zero_copy, slice_bytes,
                  client_spin_us * 1000, put_reservations);
  }
  if (shape_name != "sessions" && shape_name != "processes") {
    std::cerr << "tidal-bench store: --shape must be sessions or processes, not '" << shape_name
              << "'\n";
    return 2;
  }
  if (api != "copy" && api != "zero-copy" && api != "auto") {
    std::cerr << "tidal-bench store: --api must be copy, zero-copy or auto, not '" << api
              << "'\n";
    return 2;
  }
  const Shape shape = shape_name == "sessions" ? Shape::kSessions : Shape::kProcesses;
  auto zero_copy_for = [&](uint64_t s) {
    return api == "zero-copy" || (api == "auto" && s >= (1ull << 20));
  };

  const std::string self = SelfDir() + "/tidal-bench";
  // UCX's tcp segment sizes for every tidal process (children inherit the environment;
  // the values set outside win). Large values move in segments of this size.
  // Only where UCX_TLS lets tcp in (unset, "all", a list naming tcp, or an exclusion list
  // that does not): UCX warns about every variable no selected transport reads.
  const char* tls_env = std::getenv("UCX_TLS");
  const std::string tls_list = tls_env == nullptr ? "" : tls_env;
  const bool names_tcp = tls_list.find("tcp") != std::string::npos;
  const bool tcp_selected = tls_list.empty() || tls_list.find("all") != std::string::npos ||
                            (tls_list.front() == '^' ? !names_tcp : names_tcp);
  if (tcp_seg != "ucx" && tcp_selected) {
    setenv("UCX_TCP_RX_SEG_SIZE", tcp_seg.c_str(), /*overwrite=*/0);
    setenv("UCX_TCP_TX_SEG_SIZE", tcp_seg.c_str(), /*overwrite=*/0);
  }
  if (rndv_scheme != "ucx") setenv("UCX_RNDV_SCHEME", rndv_scheme.c_str(), /*overwrite=*/0);
  auto env_or = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v == nullptr ? "(UCX default)" : v);
  };
  const std::string rx_seg = env_or("UCX_TCP_RX_SEG_SIZE"), tx_seg = env_or("UCX_TCP_TX_SEG_SIZE");
  const std::string rndv = env_or("UCX_RNDV_SCHEME");
  // tidal-master on a free loopback port.
  Child tm = Spawn({SelfDir() + "/tidal-master", "--listen", "127.0.0.1:0", "--spin-us",
                    std::to_string(master_spin_us)});
  std::optional<std::string> ready = ReadAnswer(tm);
  const std::string prefix = "tidal-master listening on ";
  if (!ready || ready->rfind(prefix, 0) != 0) {
    std::cerr << "tidal-bench store: tidal-master did not start (" << ready.value_or("no output")
              << ")\n";
    Stop(tm);
    return 1;
  }
  master = ready->substr(prefix.size());
  const std::vector<uint64_t> size_list = List(sizes, true), client_list = List(clients, false);
  // Objects per client. Small values: redis-benchmark is given at least 20000 requests to
  // time them well; by default the clients make as many (one client was 2000 against
  // Redis's 20000, its phases 60 ms, the first put's one-time costs a share of them).
  constexpr uint64_t kSmallRequests = 20000;
  auto objects_per_client = [&](uint64_t s, uint64_t c) -> uint64_t {
    if (s >= (1 << 20)) return std::max<uint64_t>(1, large_bytes / s);
    if (small_ops > 0) return small_ops;
    return std::max<uint64_t>(2000, (kSmallRequests + c - 1) / c);
  };
  // Every row's objects at once: a row's removes are forced while its gets' leases run
  // (lease TTL, 10 s), so the memory of the rows before is still held when the next row
  // puts (sized for the largest row alone, a run of --sizes 4K,1M --clients 1,16
  // --large-bytes 16M had the master evict 1 MiB objects before their gets). Room to
  // spare: the master evicts above its high watermark (90 %).
  uint64_t segment = 64 << 20;
  for (uint64_t s : size_list) {
    for (uint64_t c : client_list) {
      const uint64_t per = objects_per_client(s, c);
      segment += c * per * (s + 4096) * 3 / 2;
    }
  }
  Child holder = Spawn({self, "store", "--role", "holder", "--master", master, "--segment",
                        std::to_string(segment), "--slice-bytes", std::to_string(slice_bytes),
                        "--holder-spin-us", std::to_string(holder_spin_us)});
  std::optional<std::string> hready = ReadAnswer(holder);
  if (!hready || *hready != "ready") {
    std::cerr << "tidal-bench store: the holder did not start (" << hready.value_or("no output")
              << ")\n";
    Stop(holder);
    Stop(tm);
    return 1;
  }
  Child redis;
  if (!no_redis) {
    redis = Spawn({"/usr/bin/redis-server", "--port", std::to_string(redis_port), "--bind",
                   "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no"});
    usleep(500'000);
  }
  const std::string tls = tls_env == nullptr ? "(UCX default)" : tls_env;
  const std::vector<double> load_start = LoadAverage();
  std::printf("tidal-bench store: tidal (UCX_TLS=%s, tidal-master %s, cached gets %s) vs "
              "redis-server 127.0.0.1:%d; load average %s\n", tls.c_str(), master.c_str(),
              no_cache ? "off" : "on", redis_port, LoadText(load_start).c_str());
  std::printf(
      "UCX_TCP_RX_SEG_SIZE=%s UCX_TCP_TX_SEG_SIZE=%s UCX_RNDV_SCHEME=%s; engine slices "
      "%llu bytes; event-loop polling before sleeping: clients %llu us, tidal-master "
      "%llu us; the holder's UCX progress thread polls %llu us after activity\n",
      rx_seg.c_str(), tx_seg.c_str(), rndv.c_str(), static_cast<unsigned long long>(slice_bytes),
      static_cast<unsigned long long>(client_spin_us),
      static_cast<unsigned long long>(master_spin_us),
      static_cast<unsigned long long>(holder_spin_us));
  const bool one_sided = cluster::RealNodeOptions::OneSidedDefault();
  const bool transport_memory = cluster::RealNodeOptions::TransportMemoryDefault();
  // The clients' transports are built with the same environment (docs/ucx.md).
  const bool loop_drives = backends::ucx::UcxTransportOptions::LoopDrivesFromEnvironment();
  std::printf(
      "the clients' event loops drive their UCX workers: %s (TIDAL_UCX_LOOP_DRIVES; "
      "by default where a process may use 4 CPUs or more)\n",
      loop_drives ? "yes" : "no");
  std::printf("ucx data path: %s; the holder's segment: %s\n",
              one_sided ? "one-sided where UCX maps the holder's segment (the nodes' default; "
                          "TIDAL_UCX_ONE_SIDED=0 turns it off)"
                        : "active messages checked by the target (TIDAL_UCX_ONE_SIDED=0)",
              transport_memory ? "allocated by UCX (the nodes' default)"
                               : "heap memory (TIDAL_UCX_TRANSPORT_MEMORY=0)");
  std::printf("puts of at most 64 KiB: %s\n",
              put_reservations > 0
                  ? ("one master RPC each, through put reservations (" +
                     std::to_string(put_reservations) + " asked at a time)")
                        .c_str()
                  : "two master RPCs each (PutStart, PutEnd; --put-reservations 0)");
  std::printf("shape: %s; api: %s\n",
              shape == Shape::kSessions
                  ? "sessions (C clients = C concurrent sessions of ONE client process, one "
                    "event loop; redis-benchmark -c C is one process with C connections)"
                  : "processes (C clients = C client processes of one session each)",
              api == "auto" ? "auto (Put/Get strings below 1 MiB, PutFrom/GetInto registered "
                              "buffers from 1 MiB)"
                            : api.c_str());
  std::printf("ops/s per phase (put=SET, get=GET; get: first read of each object, again: "
              "second), GB/s, latency p50/p99 in us; x: tidal/redis; load: 1-min load average "
              "before the row\n");
  std::printf(
      "every byte of every tidal get is checked; with one client in all that check's "
      "time is left out of tidal's phase times (redis-benchmark reads no value back); "
      "with more sessions in one process, values from 1 MiB are compared on threads "
      "beside its loop and its phase ends at its last call; otherwise the checks stay "
      "in\n");
  std::printf("%8s %4s | %9s %9s %9s %7s %8s %8s %8s | %9s %9s %7s %8s %8s | %6s %6s %7s "
              "%6s | %5s\n",
              "size", "cli", "put/s", "get/s", "again/s", "getGB/s", "get p50", "get p99",
              "agn p50", "SET/s", "GET/s", "GETGB/s", "GET p50", "GET p99", "put x", "get x",
              "again x", "GB x", "load");
  nlohmann::json rows = nlohmann::json::array();
  std::vector<std::string> waited_lines;
  bool ok = true;
  for (uint64_t s : size_list) {
    for (uint64_t c : client_list) {
      const uint64_t per = objects_per_client(s, c);
      const std::vector<double> load_row = LoadAverage();
      const bool zc = zero_copy_for(s);
      Measured t = RunTidal(self, master, s, c, per, !no_cache, shape, zc, slice_bytes,
                            client_spin_us, put_reservations);
      const uint64_t redis_requests =
          std::max<uint64_t>(c * per, s < (1 << 20) ? kSmallRequests : 0);
      Measured r = no_redis ? Measured{} : RunRedis(redis_port, s, c, redis_requests);
      ok &= t.ok;
      const double ratio_put = r.put_ops > 0 ? t.put_ops / r.put_ops : 0;
      const double ratio_ops = r.get_ops > 0 ? t.get_ops / r.get_ops : 0;
      const double ratio_again = r.get_ops > 0 ? t.reget_ops / r.get_ops : 0;
      const double ratio_gb = r.get_gbps > 0 ? t.get_gbps / r.get_gbps : 0;
      std::printf("%8llu %4llu | %9.0f %9.0f %9.0f %7.2f %8.0f %8.0f %8.0f | %9.0f %9.0f %7.2f "
                  "%8.0f %8.0f | %6.2f %6.2f %7.2f %6.2f | %5.2f%s\n",
                  static_cast<unsigned long long>(s), static_cast<unsigned long long>(c),
                  t.put_ops, t.get_ops, t.reget_ops, t.get_gbps, t.get_p50, t.get_p99,
                  t.reget_p50, r.put_ops, r.get_ops, r.get_gbps, r.get_p50, r.get_p99,
                  ratio_put, ratio_ops, ratio_again, ratio_gb, load_row.empty() ? 0.0 : load_row[0],
                  t.ok ? "" : "  (tidal: errors)");
      std::fflush(stdout);
      rows.push_back({{"size", s},
                      {"clients", c},
                      {"objects_per_client", per},
                      {"api", zc ? "zero-copy" : "copy"},
                      {"load_avg_before", load_row},
                      {"tidal",
                       {{"put_ops", t.put_ops},
                        {"get_ops", t.get_ops},
                        {"put_gbps", t.put_gbps},
                        {"get_gbps", t.get_gbps},
                        {"put_p50_us", t.put_p50},
                        {"put_p99_us", t.put_p99},
                        {"get_p50_us", t.get_p50},
                        {"get_p99_us", t.get_p99},
                        {"get_again_ops", t.reget_ops},
                        {"get_again_p50_us", t.reget_p50},
                        {"get_again_p99_us", t.reget_p99},
                        {"cached_gets", t.cached_gets},
                        {"cached", !no_cache},
                        {"reserved_puts", t.reserved_puts},
                        {"reservation_requests", t.reservation_requests},
                        {"client_progress_waits", t.ucx},
                        {"waited", WaitedJson(t)},
                        {"check_s", t.check_s},
                        {"check_excluded", t.checks_off},
                        {"checks_on_threads", t.checks_on_threads},
                        {"checked_gets", t.checked_gets},
                        {"errors", t.errors},
                        {"ok", t.ok}}},
                      {"redis",
                       {{"set_ops", r.put_ops},
                        {"get_ops", r.get_ops},
                        {"set_gbps", r.put_gbps},
                        {"get_gbps", r.get_gbps},
                        {"set_p50_us", r.put_p50},
                        {"set_p99_us", r.put_p99},
                        {"get_p50_us", r.get_p50},
                        {"get_p99_us", r.get_p99},
                        {"ok", r.ok}}},
                      {"put_ops_ratio", ratio_put},
                      {"get_ops_ratio", ratio_ops},
                      {"get_again_ops_ratio", ratio_again},
                      {"get_gbps_ratio", ratio_gb}});
      waited_lines.push_back(WaitedLine(s, c, t));
    }
  }
  std::printf(
      "what tidal's calls waited for, per phase: master RPCs and transfer batches per "
      "call, x their mean time in us (start to answer); the rest of a call is the "
      "client's own work and its event loop's queue\n");
  for (const std::string& line : waited_lines) std::printf("%s\n", line.c_str());
  if (json) {
    std::cout << nlohmann::json{{"store", rows},
                                {"ucx_tls", tls},
                                {"shape", shape == Shape::kSessions ? "sessions" : "processes"},
                                {"api", api},
                                {"slice_bytes", slice_bytes},
                                {"ucx_tcp_rx_seg_size", rx_seg},
                                {"ucx_tcp_tx_seg_size", tx_seg},
                                {"ucx_rndv_scheme", rndv},
                                {"client_spin_us", client_spin_us},
                                {"master_spin_us", master_spin_us},
                                {"holder_spin_us", holder_spin_us},
                                {"cached_gets", !no_cache},
                                {"put_reservations", put_reservations},
                                {"one_sided", one_sided},
                                {"client_loop_drives", loop_drives},
                                {"transport_memory", transport_memory},
                                {"load_avg_start", load_start},
                                {"load_avg_end", LoadAverage()}}
                     .dump(2)
              << "\n";
  }
  Stop(redis);
  Stop(holder);
  Stop(tm);
  return ok ? 0 : 1;
}

#endif  // TIDAL_BENCH_STORE
