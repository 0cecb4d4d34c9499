// tidal-bench: transfer figures of tidal's real backends, beside the baseline tool of the
// library underneath.
//
//   tidal-bench transfer [options]
//   tidal-bench store [options]     (store.cc: the store between processes vs Redis)
//   tidal-bench coll [options]      (the collectives table of tidal-coll-bench)
//
// Two nodes of one process on the UCX fabric (registry name "ucx"; each node has its own
// UCP context, worker and progress thread, and the bytes cross UCX over the transports
// UCX_TLS selects). For every message size it measures, through the full TransferEngine
// facade:
//   * WRITE and READ bandwidth: up to `--window` requests of the size in flight (two
//     half-window batches, each issued again as soon as it finished, so the window never
//     drains) until `--bytes` moved (after one warm-up batch), in `--bw-rounds` rounds
//     alternated with the peer's (each round: WRITE, put_bw, READ, get_bw; the row shows
//     the medians and the medians of the rounds' ratios);
//   * WRITE latency: one request at a time through TransferSync, `--lat-iters` times; a
//     WRITE completes when its bytes are visible at the target: at the target's
//     acknowledgement (active messages), at a flush after the put (one-sided), or, one-sided
//     where UCX mapped the target's memory into this process, when the copy through that
//     mapping ends (TryCopyNow; --no-copy-now: put + flush).
// and, in the same run, ucx_perftest (ucx-utils) between a server and a client on
// loopback with the same UCX_TLS: ucp_put_bw and ucp_get_bw (named ucp_get in UCX 1.13)
// at each size, ucp_put_lat at the latency sizes. perftest's put latency is one-way (half its
// ping-pong), so the table compares tidal's completed-write latency with perftest's round trip (2 x
// one-way), and prints the ratio to the one-way figure itself beside it. Figures are printed as a
// table and, with --json, as JSON. Nothing is asserted.
// --same-buffer makes every request of the window move the same source range into the same
// destination range (one buffer of the message size a side, as ucp_put_bw re-sends one
// buffer), still checked and acknowledged by the target; --spin-ns and --env-spin-ns set
// the progress threads' and the event loop's polling windows (docs/ucx.md);
// --idle-seconds prints every thread's CPU time over an idle period after the figures.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../common/stats.h"
#include "tidal/backends/registry.h"
#include "tidal/backends/ucx/ucx_fabric.h"

namespace po = boost::program_options;
using namespace tidal;

namespace {

struct Config {
  std::vector<uint64_t> sizes;
  std::vector<uint64_t> lat_sizes;
  uint64_t bytes = 256ull << 20;  // per size and direction
  size_t window = 16;
  uint64_t lat_iters = 2000;
  // Latency rounds: tidal's loop and ucp_put_lat alternated this many times, each of
  // lat_iters; the row shows the medians and the median of the rounds' ratios.
  uint64_t lat_rounds = 5;
  // Bandwidth rounds: at each size, tidal's WRITE, the peer's put bandwidth, tidal's READ
  // and the peer's get bandwidth, this many times in turn; the row shows the medians and,
  // as its ratios, the medians of the rounds' own ratios.
  uint64_t bw_rounds = 3;
  uint64_t slice = 4ull << 20;
  bool perftest = true;
  std::string perftest_bin = "ucx_perftest";
  int port = 13377;
  bool json = false;
  std::string transport = "ucx";  // ucx (beside ucx_perftest) or verbs (beside perftest)
  std::string ib_dev;             // verbs: the device ib_write_bw/ib_read_bw use
  // ucx: the progress threads' polling window after their last activity, and the shared
  // loop's polling window before it blocks (UcxTransportOptions::spin_ns,
  // UcxFabricOptions::env_spin_ns).
  uint64_t spin_ns = backends::ucx::UcxTransportOptions{}.spin_ns;
  uint64_t env_spin_ns = backends::ucx::UcxFabricOptions{}.env_spin_ns;
  // Every request of the window uses the same source and destination range (one buffer
  // of the message size a side, cache-resident as ucp_put_bw's), instead of a range each.
  bool same_buffer = false;
  // UcxTransportOptions::one_sided and UcxFabricOptions::transport_memory (docs/ucx.md).
  bool one_sided = false;
  bool transport_memory = false;
  // UcxTransportOptions::copy_now: one-sided WRITEs and READs into mapped memory are CPU
  // copies run inside TransferSync (TryCopyNow); off, they are put + flush / get on UCX.
  bool copy_now = true;
  double idle_s = 0;  // after the figures: seconds idle, with every thread's CPU time
};

struct Row {
  uint64_t size = 0;
  double write_mbps = 0, read_mbps = 0;               // tidal, MiB/s
  std::optional<double> put_mbps, get_mbps;           // perftest, MiB/s
  std::optional<double> write_lat_us;                 // tidal, completed write
  std::optional<double> put_lat_us;                   // perftest, one-way
  // ucx: the latency loop's WRITEs (warm-up included) and how many of them Submit sent on
  // the caller's thread (the transport's direct_calls over the loop, which also counts any
  // other call that held the worker there, so at most the WRITEs); the rest were handed to
  // the progress thread (it held the worker).
  std::optional<uint64_t> lat_writes, lat_direct;
  // ...and how many of them TryCopyNow ran as copies through the peer's mapped memory (no
  // Submit: neither sent nor handed over).
  std::optional<uint64_t> lat_copied;
  // Each latency round: tidal's mean WRITE (us) and, where perftest ran beside it, its
  // one-way put_lat (us) and the ratio of tidal's to its round trip (ratio) and to its
  // one-way figure itself (ratio_oneway); the ratio column is the median of the rounds'
  // ratios.
  struct LatRound {
    double tidal_us = 0;
    double memcpy_ns = 0;  // a plain memcpy of the row's size on the loop's thread, before
    std::optional<double> perftest_us, ratio, ratio_oneway;
  };
  std::vector<LatRound> lat_rounds;
  // Each bandwidth round (MiB/s): tidal's WRITE and READ, and where the peer ran beside
  // them, its put and get bandwidth.
  struct BwRound {
    double write = 0, read = 0;
    std::optional<double> put, get;
  };
  std::vector<BwRound> bw_rounds;
  std::optional<double> write_ratio, read_ratio;  // medians of the rounds' ratios
  std::optional<double> lat_ratio, lat_ratio_oneway;
};

using tidal::tools::Median;

// CPU time (user + system, ms) of every thread of this process, by thread id, with its
// name (/proc/self/task/*/stat).
std::map<int, std::pair<std::string, double>> ThreadCpuMs() {
  std::map<int, std::pair<std::string, double>> out;
  const double tick_ms = 1000.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream in(entry.path() / "stat");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t open = text.find('('), close = text.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    std::istringstream rest(text.substr(close + 2));
    std::vector<std::string> f;  // from field 3 (state) on
    for (std::string x; rest >> x;) f.push_back(x);
    if (f.size() < 13) continue;
    const int tid = std::stoi(entry.path().filename().string());
    out[tid] = {text.substr(open + 1, close - open - 1),
                (std::stod(f[11]) + std::stod(f[12])) * tick_ms};
  }
  return out;
}

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// Moves `total` bytes with `window` requests of `size` bytes in flight; returns MiB/s. The
// window is two halves, each its own batch over its own part of the buffers: when one
// half's batch has finished it is issued again while the other is still moving, so
// between window/2 and window requests are in flight throughout (ucx_perftest keeps its
// window full too), instead of the whole window draining before the next is issued.
// With `same_buffer` every request uses the first `size` bytes of both sides (as
// ucp_put_bw re-sends one buffer), else each its own range.
Task<double> Bandwidth(TransferEngine& e, SegmentHandle peer, uint64_t local, uint64_t remote,
                       TransferOp op, uint64_t size, size_t window, uint64_t total,
                       bool same_buffer, uint64_t* failed) {
  std::vector<TransferRequest> reqs;
  for (size_t i = 0; i < window; ++i) {
    const uint64_t at = same_buffer ? 0 : i * size;
    reqs.push_back(TransferRequest{op, local + at, size, peer, remote + at});
  }
  (void)co_await e.TransferSync(reqs);  // warm-up: connections, registrations, caches
  const uint64_t batches = std::max<uint64_t>(1, total / (size * window));
  const size_t first = (window + 1) / 2;
  std::vector<std::span<const TransferRequest>> halves{std::span(reqs).subspan(0, first)};
  if (window > first) halves.push_back(std::span(reqs).subspan(first));
  // Each half goes out `batches` times: batches * window requests in all.
  struct InFlight {
    BatchId batch;
    size_t half;
  };
  std::deque<InFlight> in_flight;
  std::vector<uint64_t> issued(halves.size(), 0);
  auto issue = [&](size_t h) {
    Result<BatchId> b = e.AllocateBatch(halves[h].size());
    if (!b.ok()) {
      *failed += halves[h].size();
      return;
    }
    (void)e.Submit(*b, halves[h]);
    ++issued[h];
    in_flight.push_back(InFlight{*b, h});
  };
  const auto start = std::chrono::steady_clock::now();
  for (size_t h = 0; h < halves.size(); ++h) issue(h);
  while (!in_flight.empty()) {
    const InFlight f = in_flight.front();
    in_flight.pop_front();
    (void)co_await e.WaitBatch(f.batch);
    for (size_t i = 0; i < halves[f.half].size(); ++i) {
      Result<TransferStatus> st = e.GetStatus(f.batch, i);
      *failed += !st.ok() || st->state != TransferState::COMPLETED;
    }
    (void)e.FreeBatch(f.batch);
    if (issued[f.half] < batches) issue(f.half);
  }
  const double s = Seconds(std::chrono::steady_clock::now() - start);
  co_return static_cast<double>(batches * window * size) / s / (1 << 20);
}

// One WRITE at a time: mean microseconds from submit to completion.
// The CPU's own speed at the moment, on the loop's thread: the mean time of a plain memcpy
// of `size` bytes between two buffers of this thread, `iters` times. On the virtual
// machines this was measured on, a CPU ran such a loop about 1.7 x slower at times, and
// tidal's WRITE loop with it (docs/performance.md), so each latency round reports it.
double MemcpyNs(uint64_t size, uint64_t iters) {
  std::vector<uint8_t> from(size, 1), to(size, 0);
  const auto start = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < iters; ++i) {
    std::memcpy(to.data(), from.data(), size);
    asm volatile("" : : "r"(to.data()) : "memory");  // keep every copy
  }
  return Seconds(std::chrono::steady_clock::now() - start) * 1e9 / static_cast<double>(iters);
}

Task<double> Latency(TransferEngine& e, SegmentHandle peer, uint64_t local, uint64_t remote,
                     uint64_t size, uint64_t iters, uint64_t* failed, double* memcpy_ns) {
  TransferRequest r{TransferOp::kWrite, local, size, peer, remote};
  for (int i = 0; i < 100; ++i) (void)co_await e.TransferSync(std::span(&r, 1));
  *memcpy_ns = MemcpyNs(size, iters);
  const auto start = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < iters; ++i) {
    std::vector<TransferStatus> st = co_await e.TransferSync(std::span(&r, 1));
    *failed += st[0].state != TransferState::COMPLETED;
  }
  co_return Seconds(std::chrono::steady_clock::now() - start) * 1e6 / static_cast<double>(iters);
}

Task<Result<SegmentHandle>> Open(TransferEngine& e, std::string name) {
  co_return co_await e.OpenSegment(std::move(name));
}
Task<Result<uint64_t>> Reg(TransferEngine& e, void* p, uint64_t n) {
  co_return co_await e.RegisterMemory(p, n, Location::Host());
}

// Runs ucx_perftest as server and client on loopback; returns the "Final:" fields
// (iterations, 50%ile, average latency or overhead, overall, average MB/s, ...).
std::optional<std::vector<double>> Perftest(const Config& c, const std::string& test,
                                            uint64_t size, uint64_t iters) {
  const std::string port = std::to_string(c.port);
  const pid_t server = fork();
  if (server == 0) {
    const int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(devnull, 2);
    execlp(c.perftest_bin.c_str(), c.perftest_bin.c_str(), "-p", port.c_str(), nullptr);
    _exit(127);
  }
  if (server < 0) return std::nullopt;
  usleep(300'000);  // the server listens
  const std::string cmd = c.perftest_bin + " 127.0.0.1 -p " + port + " -t " + test + " -s " +
                          std::to_string(size) + " -n " + std::to_string(iters) + " -w " +
                          std::to_string(std::max<uint64_t>(10, iters / 10)) + " -f 2>&1";
  FILE* out = popen(cmd.c_str(), "r");
  std::optional<std::vector<double>> fields;
  if (out != nullptr) {
    char line[1024];
    while (fgets(line, sizeof(line), out) != nullptr) {
      // With -f the result is one line of numbers (without -f it starts "Final:").
      std::string l(line);
      const size_t at = l.find("Final:");
      if (at != std::string::npos) l = l.substr(at + 6);
      std::istringstream in(l);
      std::vector<double> v;
      double x = 0;
      while (in >> x) v.push_back(x);
      in.clear();
      std::string rest;
      if (v.size() >= 5 && !(in >> rest)) fields = v;
    }
    pclose(out);
  }
  int status = 0;
  kill(server, SIGTERM);
  waitpid(server, &status, 0);
  return fields;
}

// ucx_perftest's UCP get bandwidth test: `ucp_get_bw` where the installed ucx_perftest lists
// it, else `ucp_get` (UCX 1.13 has only this one: "UCP get latency / bandwidth / message
// rate", a unidirectional stream test like ucp_put_bw, whose "average MB/s" field is the
// bandwidth). Asking 1.13 for ucp_get_bw fails ("Invalid option argument for -t").
std::string GetBwTest(const Config& c) {
  const std::string cmd = c.perftest_bin + " -h 2>&1";
  FILE* out = popen(cmd.c_str(), "r");
  bool listed = false;
  if (out != nullptr) {
    char line[512];
    while (fgets(line, sizeof(line), out) != nullptr) {
      std::istringstream in(line);
      std::string first;
      in >> first;
      listed = listed || first == "ucp_get_bw";
    }
    pclose(out);
  }
  return listed ? "ucp_get_bw" : "ucp_get";
}

// Runs a perftest program (ib_write_bw, ib_read_bw) as server and client on loopback over
// the RDMA device; returns its average bandwidth in MiB/s (perftest prints MB/s, 10^6).
std::optional<double> IbPerftest(const Config& c, const std::string& program, uint64_t size,
                                 uint64_t iters) {
  std::vector<std::string> args = {program, "-s", std::to_string(size), "-n",
                                   std::to_string(iters), "-F", "-p", std::to_string(c.port)};
  if (!c.ib_dev.empty()) {
    args.push_back("-d");
    args.push_back(c.ib_dev);
  }
  const pid_t server = fork();
  if (server == 0) {
    const int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(devnull, 2);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  if (server < 0) return std::nullopt;
  usleep(500'000);  // the server listens
  std::string cmd;
  for (const std::string& a : args) cmd += a + " ";
  cmd += "127.0.0.1 2>&1";
  FILE* out = popen(cmd.c_str(), "r");
  std::optional<double> mibps;
  if (out != nullptr) {
    char line[1024];
    while (fgets(line, sizeof(line), out) != nullptr) {
      // The result line: "#bytes #iterations BW-peak BW-average MsgRate" as numbers.
      std::istringstream in(line);
      std::vector<double> v;
      double x = 0;
      while (in >> x) v.push_back(x);
      if (v.size() == 5 && v[0] == static_cast<double>(size)) mibps = v[3] * 1e6 / (1 << 20);
    }
    pclose(out);
  }
  int status = 0;
  kill(server, SIGTERM);
  waitpid(server, &status, 0);
  return mibps;
}

std::vector<uint64_t> ParseSizes(const std::string& text) {
  std::vector<uint64_t> out;
  std::istringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    uint64_t mult = 1;
    if (!item.empty() && (item.back() == 'K' || item.back() == 'k')) mult = 1 << 10;
    if (!item.empty() && (item.back() == 'M' || item.back() == 'm')) mult = 1 << 20;
    if (mult != 1) item.pop_back();
    out.push_back(std::stoull(item) * mult);
  }
  return out;
}

std::string Human(uint64_t b) {
  if (b >= (1 << 20) && b % (1 << 20) == 0) return std::to_string(b >> 20) + " MiB";
  if (b >= (1 << 10) && b % (1 << 10) == 0) return std::to_string(b >> 10) + " KiB";
  return std::to_string(b) + " B";
}

std::string Fmt(std::optional<double> v, int prec = 1) {
  if (!v) return "-";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.*f", prec, *v);
  return buf;
}

// Exit status of a run that could not happen here (no such hardware): hardware-ci.sh
// reports it as skipped with the printed reason.
constexpr int kSkipped = 77;

int RunTransfer(const Config& c) {
  std::unique_ptr<Fabric> fabric;
  if (c.transport == "ucx") {
    backends::ucx::UcxFabricOptions o;
    o.nodes = 2;
    o.contract_checker = false;
    o.engine.slice_bytes = c.slice;
    o.engine.transfer_timeout_ns = 60'000'000'000ULL;
    o.transport.spin_ns = c.spin_ns;
    o.env_spin_ns = c.env_spin_ns;
    o.transport.one_sided = c.one_sided;
    o.transport.copy_now = c.copy_now;
    o.transport_memory = c.transport_memory;
    Result<std::unique_ptr<backends::ucx::UcxFabric>> made = backends::ucx::UcxFabric::Make(o);
    if (!made.ok()) {
      std::cerr << "tidal-bench: the ucx fabric did not start: " << made.status().ToString()
                << "\n";
      return 1;
    }
    fabric = std::move(*made);
  } else {
    backends::FabricSpec spec;
    spec.nodes = 2;
    Result<std::unique_ptr<Fabric>> made = backends::MakeFabric(c.transport, spec);
    if (!made.ok()) {
      const bool absent = made.code() == ErrorCode::UNSUPPORTED;
      std::printf("tidal-bench transfer --transport %s: %s: %s\n", c.transport.c_str(),
                  absent ? "skipped" : "failed", made.status().ToString().c_str());
      if (c.json) {
        std::cout << nlohmann::json{{"transport", c.transport},
                                    {absent ? "skipped" : "error", made.status().ToString()}}
                         .dump(2)
                  << "\n";
      }
      return absent ? kSkipped : 1;
    }
    fabric = std::move(*made);
  }
  Fabric& f = *fabric;
  const bool ucx = c.transport == "ucx";
  uint64_t max_size = 0;
  for (uint64_t s : c.sizes) max_size = std::max(max_size, s);
  for (uint64_t s : c.lat_sizes) max_size = std::max(max_size, s);
  // Buffers of at most 256 MiB a side (or one message): large sizes get a smaller window.
  const uint64_t span = std::max<uint64_t>(256ull << 20, max_size);
  auto window_for = [&](uint64_t size) {
    return std::max<size_t>(1, std::min<uint64_t>(c.window, span / size));
  };
  auto* src = static_cast<uint8_t*>(f.Allocate(0, span, Location::Host()));
  auto* dst = static_cast<uint8_t*>(f.Allocate(1, span, Location::Host()));
  for (uint64_t i = 0; i < span; ++i) src[i] = static_cast<uint8_t>(i * 131);
  TransferEngine& e = f.engine(0);
  if (!f.Run(Reg(e, src, span)).ok() || !f.Run(Reg(f.engine(1), dst, span)).ok()) {
    std::cerr << "tidal-bench: registration failed\n";
    return 1;
  }
  Result<SegmentHandle> peer = f.Run(Open(e, Fabric::NodeName(1)));
  if (!peer.ok()) {
    std::cerr << "tidal-bench: " << peer.status().ToString() << "\n";
    return 1;
  }
  const char* tls = std::getenv("UCX_TLS");
  const std::string tls_text = tls == nullptr ? "(unset: UCX's default)" : tls;
  std::vector<Row> rows;
  uint64_t failed = 0;
  const uint64_t l = reinterpret_cast<uint64_t>(src), r = reinterpret_cast<uint64_t>(dst);
  std::vector<uint64_t> all = c.sizes;
  for (uint64_t s : c.lat_sizes) {
    if (std::find(all.begin(), all.end(), s) == all.end()) all.push_back(s);
  }
  std::sort(all.begin(), all.end());
  const std::string get_test = ucx && c.perftest ? GetBwTest(c) : std::string();
  for (uint64_t size : all) {
    Row row;
    row.size = size;
    const bool bw = std::find(c.sizes.begin(), c.sizes.end(), size) != c.sizes.end();
    const bool lat = std::find(c.lat_sizes.begin(), c.lat_sizes.end(), size) != c.lat_sizes.end();
    std::cerr << "tidal-bench: " << Human(size) << " ..." << std::endl;
    if (bw) {
      const size_t window = window_for(size);
      const uint64_t total = std::max(c.bytes, size * window);
      const uint64_t iters = std::max<uint64_t>(20, std::min<uint64_t>(c.bytes / size, 100000));
      // Rounds alternate tidal and the peer, so that each ratio compares runs made moments
      // apart (the CPU's speed drifts on the virtual machines this was measured on).
      std::vector<double> ws, rs, ps, gs, wr, rr;
      for (uint64_t round = 0; round < c.bw_rounds; ++round) {
        Row::BwRound& b = row.bw_rounds.emplace_back();
        b.write = f.Run(Bandwidth(e, *peer, l, r, TransferOp::kWrite, size, window, total,
                                  c.same_buffer, &failed));
        if (c.perftest && ucx) {
          if (auto v = Perftest(c, "ucp_put_bw", size, iters)) b.put = (*v)[4];
        } else if (c.perftest) {
          b.put = IbPerftest(c, "ib_write_bw", size, iters);
        }
        b.read = f.Run(Bandwidth(e, *peer, l, r, TransferOp::kRead, size, window, total,
                                 c.same_buffer, &failed));
        if (c.perftest && ucx) {
          if (auto v = Perftest(c, get_test, size, iters)) b.get = (*v)[4];
        } else if (c.perftest) {
          b.get = IbPerftest(c, "ib_read_bw", size, iters);
        }
        ws.push_back(b.write);
        rs.push_back(b.read);
        if (b.put && *b.put > 0) {
          ps.push_back(*b.put);
          wr.push_back(b.write / *b.put);
        }
        if (b.get && *b.get > 0) {
          gs.push_back(*b.get);
          rr.push_back(b.read / *b.get);
        }
      }
      row.write_mbps = Median(ws);
      row.read_mbps = Median(rs);
      if (!ps.empty()) row.put_mbps = Median(ps);
      if (!gs.empty()) row.get_mbps = Median(gs);
      if (!wr.empty()) row.write_ratio = Median(wr);
      if (!rr.empty()) row.read_ratio = Median(rr);
    }
    if (lat) {
      auto* uf = ucx ? static_cast<backends::ucx::UcxFabric*>(&f) : nullptr;
      const backends::ucx::UcxTransportStats before =
          uf != nullptr ? uf->ucx_transport(0).stats() : backends::ucx::UcxTransportStats{};
      // Rounds alternate tidal's loop and ucp_put_lat, so that each ratio compares runs
      // made moments apart: on the virtual machines this was measured on, tidal's loop ran
      // at one of two speeds, about 2 x apart, for tens of milliseconds or a whole run,
      // and ucp_put_lat varied less (docs/performance.md).
      std::vector<double> ours, theirs, ratios, oneway;
      for (uint64_t round = 0; round < c.lat_rounds; ++round) {
        double memcpy_ns = 0;
        const double us = f.Run(Latency(e, *peer, l, r, size, c.lat_iters, &failed, &memcpy_ns));
        std::optional<double> pt;
        if (c.perftest && ucx) {
          if (auto v = Perftest(c, "ucp_put_lat", size, c.lat_iters)) pt = (*v)[2];
        }
        Row::LatRound& round_row = row.lat_rounds.emplace_back();
        round_row.tidal_us = us;
        round_row.memcpy_ns = memcpy_ns;
        ours.push_back(us);
        if (pt && *pt > 0) {
          round_row.perftest_us = pt;
          round_row.ratio = us / (2 * *pt);
          round_row.ratio_oneway = us / *pt;
          theirs.push_back(*pt);
          ratios.push_back(*round_row.ratio);
          oneway.push_back(*round_row.ratio_oneway);
        }
      }
      row.write_lat_us = Median(ours);
      if (!theirs.empty()) row.put_lat_us = Median(theirs);
      if (!ratios.empty()) row.lat_ratio = Median(ratios);
      if (!oneway.empty()) row.lat_ratio_oneway = Median(oneway);
      if (uf != nullptr) {
        const backends::ucx::UcxTransportStats after = uf->ucx_transport(0).stats();
        row.lat_writes = after.writes - before.writes;
        row.lat_copied = std::min(*row.lat_writes, after.copies - before.copies);
        row.lat_direct =
            std::min(*row.lat_writes - *row.lat_copied, after.direct_calls - before.direct_calls);
      }
    }
    rows.push_back(row);
  }

  auto ratio = [](std::optional<double> ours, std::optional<double> base) -> std::optional<double> {
    if (!ours || !base || *base <= 0) return std::nullopt;
    return *ours / *base;
  };
  if (ucx) {
    std::printf("tidal-bench transfer: ucx fabric, 2 nodes in one process, UCX_TLS=%s\n",
                tls_text.c_str());
    std::printf(
        "bandwidth in MiB/s; latency in us (tidal: completed WRITE, bytes visible at "
        "the target; perftest put_lat one-way x2)\n");
    std::printf("window %zu, %s; progress threads poll %llu ns after activity, the loop %llu "
                "ns before blocking\n",
                c.window,
                c.same_buffer ? "same buffer for every request (as ucp_put_bw)"
                              : "a buffer range per request",
                static_cast<unsigned long long>(c.spin_ns),
                static_cast<unsigned long long>(c.env_spin_ns));
    std::printf("data path: %s; buffers: %s\n",
                !c.one_sided ? "active messages checked by the target"
                : c.copy_now ? "one-sided (TransferSync: copies through the peer's memory "
                               "where UCX mapped it; batches: put/get on granted rkeys + flush)"
                             : "one-sided (put/get on granted rkeys + flush)",
                c.transport_memory ? "allocated and mapped by UCX (ucp_mem_map ALLOCATE)"
                                   : "heap memory registered with ucp_mem_map");
  } else {
    std::printf("tidal-bench transfer: %s fabric, 2 nodes in one process; beside it "
                "ib_write_bw / ib_read_bw (perftest) on loopback\n",
                c.transport.c_str());
    std::printf("bandwidth in MiB/s (put_bw = ib_write_bw, get_bw = ib_read_bw)\n");
  }
  std::printf("%9s | %9s %9s %6s | %9s %9s %6s | %9s %9s %6s\n", "size", "write", "put_bw",
              "ratio", "read", "get_bw", "ratio", "write_lat", "2xput_lat", "ratio");
  nlohmann::json j;
  j["backend"] = c.transport;
  if (ucx) j["ucx_tls"] = tls_text;
  j["window"] = c.window;
  if (ucx) {
    j["same_buffer"] = c.same_buffer;
    j["spin_ns"] = c.spin_ns;
    j["env_spin_ns"] = c.env_spin_ns;
    j["one_sided"] = c.one_sided;
    if (!get_test.empty()) j["perftest_get_test"] = get_test;
    j["copy_now"] = c.copy_now;
    j["transport_memory"] = c.transport_memory;
  }
  j["bytes_per_size"] = c.bytes;
  j["failed_requests"] = failed;
  for (const Row& row : rows) {
    const bool bw = row.write_mbps > 0;
    std::optional<double> w = bw ? std::optional<double>(row.write_mbps) : std::nullopt;
    std::optional<double> rd = bw ? std::optional<double>(row.read_mbps) : std::nullopt;
    std::optional<double> rt;
    if (row.put_lat_us) rt = 2 * *row.put_lat_us;
    std::printf("%9s | %9s %9s %6s | %9s %9s %6s | %9s %9s %6s\n", Human(row.size).c_str(),
                Fmt(w).c_str(), Fmt(row.put_mbps).c_str(),
                Fmt(row.write_ratio ? row.write_ratio : ratio(w, row.put_mbps), 2).c_str(),
                Fmt(rd).c_str(), Fmt(row.get_mbps).c_str(),
                Fmt(row.read_ratio ? row.read_ratio : ratio(rd, row.get_mbps), 2).c_str(),
                Fmt(row.write_lat_us, 2).c_str(), Fmt(rt, 2).c_str(),
                Fmt(row.lat_ratio ? row.lat_ratio : ratio(row.write_lat_us, rt), 2).c_str());
    nlohmann::json e;
    e["size"] = row.size;
    if (w) e["tidal_write_mibps"] = *w;
    if (rd) e["tidal_read_mibps"] = *rd;
    if (row.put_mbps) e["perftest_put_bw_mibps"] = *row.put_mbps;
    if (row.get_mbps) e["perftest_get_bw_mibps"] = *row.get_mbps;
    if (row.write_ratio) e["write_ratio_median"] = *row.write_ratio;
    if (row.read_ratio) e["read_ratio_median"] = *row.read_ratio;
    for (const Row::BwRound& b : row.bw_rounds) {
      nlohmann::json bj;
      bj["tidal_write_mibps"] = b.write;
      bj["tidal_read_mibps"] = b.read;
      if (b.put) bj["perftest_put_bw_mibps"] = *b.put;
      if (b.get) bj["perftest_get_bw_mibps"] = *b.get;
      e["bw_rounds"].push_back(bj);
    }
    if (row.write_lat_us) e["tidal_write_lat_us"] = *row.write_lat_us;
    if (row.put_lat_us) e["perftest_put_lat_oneway_us"] = *row.put_lat_us;
    for (const Row::LatRound& lr : row.lat_rounds) {
      nlohmann::json rj;
      rj["tidal_write_lat_us"] = lr.tidal_us;
      rj["memcpy_ns"] = lr.memcpy_ns;
      if (lr.ratio) {
        rj["perftest_put_lat_oneway_us"] = *lr.perftest_us;
        rj["ratio"] = *lr.ratio;
        rj["ratio_oneway"] = *lr.ratio_oneway;
      }
      e["lat_rounds"].push_back(rj);
    }
    if (row.lat_ratio) e["lat_ratio_median"] = *row.lat_ratio;
    if (row.lat_ratio_oneway) e["lat_ratio_oneway_median"] = *row.lat_ratio_oneway;
    if (row.lat_writes) {
      e["lat_writes"] = *row.lat_writes;
      e["lat_writes_direct"] = *row.lat_direct;
      e["lat_writes_copied"] = *row.lat_copied;
    }
    j["rows"].push_back(e);
  }
  for (const Row& row : rows) {
    if (row.bw_rounds.empty()) continue;
    std::printf("bandwidth rounds at %s (write/put_bw read/get_bw, MiB/s, alternated):",
                Human(row.size).c_str());
    for (const Row::BwRound& b : row.bw_rounds) {
      std::printf(" %.0f/%s %.0f/%s", b.write, Fmt(b.put, 0).c_str(), b.read,
                  Fmt(b.get, 0).c_str());
    }
    std::printf("\n");
  }
  if (std::any_of(rows.begin(), rows.end(), [](const Row& r) { return !r.bw_rounds.empty(); })) {
    std::printf("bandwidth rows: medians, and the medians of the rounds' ratios\n");
  }
  for (const Row& row : rows) {
    if (row.lat_rounds.empty()) continue;
    std::printf("latency rounds at %s (tidal WRITE / 2 x ucp_put_lat, us, alternated):",
                Human(row.size).c_str());
    for (const Row::LatRound& lr : row.lat_rounds) {
      std::printf(" %.2f/%s", lr.tidal_us,
                  lr.perftest_us ? Fmt(2 * *lr.perftest_us, 2).c_str() : "-");
    }
    std::printf("; the row: medians, and the median of the rounds' ratios\n");
    if (row.lat_ratio_oneway) {
      std::printf("against ucp_put_lat's one-way figure itself (not x2): median ratio %.2f\n",
                  *row.lat_ratio_oneway);
    }
    std::printf("memcpy of %s on the loop's thread before each round, ns (the CPU's speed "
                "then):",
                Human(row.size).c_str());
    for (const Row::LatRound& lr : row.lat_rounds) std::printf(" %.0f", lr.memcpy_ns);
    std::printf("\n");
  }
  for (const Row& row : rows) {
    if (!row.lat_writes) continue;
    std::printf(
        "latency loop at %s: %llu WRITEs, %llu copied through the peer's mapped memory, %llu "
        "sent on the caller's thread, the rest handed to the progress thread\n",
        Human(row.size).c_str(), static_cast<unsigned long long>(*row.lat_writes),
        static_cast<unsigned long long>(*row.lat_copied),
        static_cast<unsigned long long>(*row.lat_direct));
  }
  if (failed != 0) std::printf("warning: %llu requests did not complete\n",
                               static_cast<unsigned long long>(failed));
  if (c.idle_s > 0) {
    // The fabric idle (nothing submitted, the loop not running): what each thread costs.
    const auto before = ThreadCpuMs();
    std::this_thread::sleep_for(std::chrono::duration<double>(c.idle_s));
    const auto after = ThreadCpuMs();
    std::printf("idle for %.1f s: CPU time per thread (ms)\n", c.idle_s);
    for (const auto& [tid, v] : after) {
      auto b = before.find(tid);
      const double used = v.second - (b == before.end() ? 0.0 : b->second.second);
      std::printf("  %-16s tid %d: %.0f\n", v.first.c_str(), tid, used);
      nlohmann::json t;
      t["name"] = v.first;
      t["cpu_ms"] = used;
      j["idle"]["threads"].push_back(t);
    }
    j["idle"]["seconds"] = c.idle_s;
  }
  if (c.json) std::cout << j.dump(2) << "\n";
  return failed == 0 ? 0 : 1;
}

}  // namespace

#if TIDAL_BENCH_STORE
int RunStoreBench(int argc, char** argv);  // store.cc
int RunCollBench(int argc, char** argv);   // tools/tidal-coll-bench/main.cc
#endif

int main(int argc, char** argv) {
#if TIDAL_BENCH_STORE
  if (argc >= 2 && std::string(argv[1]) == "store") return RunStoreBench(argc - 1, argv + 1);
  // `tidal-bench coll [options]`: the nccl-tests table of tidal-coll-bench (same options).
  if (argc >= 2 && std::string(argv[1]) == "coll") return RunCollBench(argc - 1, argv + 1);
#endif
  Config c;
  std::string sizes = "4K,16K,64K,256K,1M,4M,16M,64M", lat_sizes = "4K";
  po::options_description opts(
      "tidal-bench transfer [options]: WRITE/READ bandwidth and WRITE latency over the ucx "
      "fabric (2 nodes, one process), beside ucx_perftest with the same UCX_TLS");
  opts.add_options()("help,h", "this help")("sizes", po::value(&sizes)->default_value(sizes),
                                            "bandwidth sizes (K, M suffixes)")(
      "lat-sizes", po::value(&lat_sizes)->default_value(lat_sizes), "latency sizes")(
      "bytes", po::value(&c.bytes)->default_value(c.bytes), "bytes moved per size and direction")(
      "window", po::value(&c.window)->default_value(c.window),
      "requests in flight (two half-window batches)")(
      "lat-iters", po::value(&c.lat_iters)->default_value(c.lat_iters), "latency iterations")(
      "lat-rounds", po::value(&c.lat_rounds)->default_value(c.lat_rounds),
      "latency rounds: tidal's loop and ucp_put_lat alternated this many times (lat-iters "
      "each); the row shows the medians and the median of the rounds' ratios")(
      "bw-rounds", po::value(&c.bw_rounds)->default_value(c.bw_rounds),
      "bandwidth rounds: tidal's WRITE, the peer's put bandwidth, tidal's READ and the peer's "
      "get bandwidth, alternated this many times at each size; the row shows the medians "
      "and the medians of the rounds' ratios")("slice", po::value(&c.slice)->default_value(c.slice),
                                               "engine slice size in bytes")(
      "spin-ns", po::value(&c.spin_ns)->default_value(c.spin_ns),
      "ucx: progress threads poll this long after their last activity before blocking")(
      "env-spin-ns", po::value(&c.env_spin_ns)->default_value(c.env_spin_ns),
      "ucx: the event loop polls this long for a completion before blocking")(
      "no-perftest", "do not run ucx_perftest")(
      "perftest", po::value(&c.perftest_bin)->default_value(c.perftest_bin), "ucx_perftest binary")(
      "port", po::value(&c.port)->default_value(c.port), "ucx_perftest's TCP port")(
      "transport", po::value(&c.transport)->default_value(c.transport),
      "ucx (beside ucx_perftest) or verbs (beside ib_write_bw/ib_read_bw from perftest)")(
      "ib-dev", po::value(&c.ib_dev), "verbs: the RDMA device perftest uses")(
      "same-buffer",
      "every request of the window moves the same source range into the same destination "
      "range (one buffer a side, as ucp_put_bw), instead of a range each")(
      "one-sided",
      "ucx: the one-sided data path: WRITE/READ as put/get on the rkey the target granted, a "
      "WRITE complete at a flush (UcxTransportOptions::one_sided; default: "
      "TIDAL_UCX_ONE_SIDED)")(
      "no-copy-now",
      "ucx: one-sided WRITEs and READs into mapped memory go through put + flush / get even "
      "inside TransferSync (UcxTransportOptions::copy_now off; default: TIDAL_UCX_COPY_NOW)")(
      "transport-memory",
      "ucx: buffers allocated and mapped by UCX (ucp_mem_map ALLOCATE: shared segments on sm), "
      "as ucp_put_bw's (UcxFabricOptions::transport_memory)")(
      "idle-seconds", po::value(&c.idle_s)->default_value(c.idle_s),
      "after the figures, stay idle this long and print every thread's CPU time")(
      "json", "print JSON after the table");
  po::options_description hidden;
  std::string command;
  hidden.add_options()("command", po::value(&command));
  po::positional_options_description pos;
  pos.add("command", 1);
  po::options_description all;
  all.add(opts).add(hidden);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(pos).run(), vm);
    po::notify(vm);
    c.sizes = ParseSizes(sizes);
    c.lat_sizes = ParseSizes(lat_sizes);
  } catch (const std::exception& e) {
    std::cerr << "tidal-bench: " << e.what() << "\n" << opts << "\n";
    return 2;
  }
  if (vm.count("help") || command.empty()) {
    std::cout << opts << "\n";
    return vm.count("help") ? 0 : 2;
  }
  if (command != "transfer") {
    std::cerr << "tidal-bench: unknown command '" << command << "' (commands: transfer, store, coll)\n";
    return 2;
  }
  c.perftest = vm.count("no-perftest") == 0;
  if (c.transport != "ucx" && c.transport != "verbs") {
    std::cerr << "tidal-bench: --transport '" << c.transport << "' is not ucx or verbs\n";
    return 2;
  }
  c.json = vm.count("json") != 0;
  c.same_buffer = vm.count("same-buffer") != 0;
  c.one_sided = vm.count("one-sided") != 0 || backends::ucx::UcxTransportOptions{}.one_sided;
  c.copy_now = vm.count("no-copy-now") == 0 && backends::ucx::UcxTransportOptions{}.copy_now;
  c.transport_memory =
      vm.count("transport-memory") != 0 || backends::ucx::UcxFabricOptions{}.transport_memory;
  if (c.window == 0 || c.sizes.empty()) {
    std::cerr << "tidal-bench: --window and --sizes must not be empty\n";
    return 2;
  }
  if (c.lat_rounds == 0) {
    std::cerr << "tidal-bench: --lat-rounds must be at least 1\n";
    return 2;
  }
  if (c.bw_rounds == 0) {
    std::cerr << "tidal-bench: --bw-rounds must be at least 1\n";
    return 2;
  }
  return RunTransfer(c);
}
