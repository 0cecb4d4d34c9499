// tidal-sim-bench: how fast the simulator runs, on one core.
//
// Every node runs `--streams` coroutines, each submitting batches of `--batch` requests
// of `--size` bytes (alternating WRITE and READ) to the next node through the full
// TransferEngine facade, until `--ops` requests completed in all. It reports simulated
// transfer ops per second of wall time, simulator events per second, and the ratio of
// virtual to wall time, as a table and (--json) as JSON.
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "tidal/sim/sim_fabric.h"

namespace po = boost::program_options;
using namespace tidal;

namespace {

struct Config {
  size_t nodes = 2;
  size_t streams = 4;
  size_t batch = 64;
  uint64_t size = 4096;
  uint64_t ops = 2'000'000;
  bool checker = false;
  uint64_t jitter_ns = 50;
};

struct Figures {
  uint64_t ops = 0;
  uint64_t failed = 0;
  double wall_s = 0;
  uint64_t events = 0;
  uint64_t virtual_ns = 0;
};

Task<void> Stream(TransferEngine& engine, SegmentHandle peer, uint64_t local, uint64_t remote,
                  const Config& c, uint64_t* done, uint64_t* failed, const uint64_t* budget) {
  std::vector<TransferRequest> reqs(c.batch);
  uint64_t round = 0;
  while (*done < *budget) {
    for (size_t i = 0; i < c.batch; ++i) {
      reqs[i] = TransferRequest{(round + i) % 2 == 0 ? TransferOp::kWrite : TransferOp::kRead,
                                local + i * c.size, c.size, peer, remote + i * c.size};
    }
    std::vector<TransferStatus> st = co_await engine.TransferSync(reqs);
    for (const TransferStatus& s : st) *failed += s.state != TransferState::COMPLETED;
    *done += c.batch;
    ++round;
  }
}

Figures RunOnce(const Config& c) {
  sim::SimFabricOptions o;
  o.world.nodes = c.nodes;
  o.world.seed = 1;
  o.world.schedule_jitter_ns = c.jitter_ns;
  o.contract_checker = c.checker;
  sim::SimFabric f(std::move(o));
  const uint64_t region = c.batch * c.size;
  std::vector<std::vector<uint64_t>> local(c.nodes), remote_of(c.nodes);
  for (size_t n = 0; n < c.nodes; ++n) {
    for (size_t s = 0; s < c.streams; ++s) {
      void* p = f.Allocate(n, region, Location::Host());
      auto k = f.Run(f.engine(n).RegisterMemory(p, region, Location::Host()));
      if (!k.ok()) {
        std::fprintf(stderr, "register failed: %s\n", k.status().ToString().c_str());
        std::exit(1);
      }
      local[n].push_back(reinterpret_cast<uint64_t>(p));
    }
  }
  uint64_t done = 0, failed = 0;
  const uint64_t budget = c.ops;
  for (size_t n = 0; n < c.nodes; ++n) {
    const size_t peer = (n + 1) % c.nodes;
    auto h = f.Run(f.engine(n).OpenSegment(Fabric::NodeName(peer)));
    for (size_t s = 0; s < c.streams; ++s) {
      Spawn(f.env(n), Stream(f.engine(n), *h, local[n][s], local[peer][s], c, &done, &failed,
                             &budget));
    }
  }
  sim::World& w = f.world();
  const uint64_t events0 = w.events_run(), virtual0 = w.NowNs();
  const auto t0 = std::chrono::steady_clock::now();
  w.RunUntilIdle();
  const auto t1 = std::chrono::steady_clock::now();
  Figures fig;
  fig.ops = done;
  fig.failed = failed;
  fig.wall_s = std::chrono::duration<double>(t1 - t0).count();
  fig.events = w.events_run() - events0;
  fig.virtual_ns = w.NowNs() - virtual0;
  return fig;
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  po::options_description desc(
      "tidal-sim-bench: simulator throughput on one core\n\nUsage: tidal-sim-bench [options]\n\n"
      "Options");
  desc.add_options()("help,h", "print this help")
      ("nodes", po::value(&c.nodes)->default_value(2), "simulated nodes")
      ("streams", po::value(&c.streams)->default_value(4), "concurrent batch streams per node")
      ("batch", po::value(&c.batch)->default_value(64), "requests per batch")
      ("size", po::value(&c.size)->default_value(4096), "bytes per request")
      ("ops", po::value(&c.ops)->default_value(2'000'000), "requests to complete in all")
      ("jitter", po::value(&c.jitter_ns)->default_value(50), "schedule jitter (ns) drawn per post")
      ("checker", po::bool_switch(&c.checker), "wrap transports in the ContractChecker")
      ("json", "print JSON instead of the table");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "tidal-sim-bench: %s (see --help)\n", e.what());
    return 2;
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  if (c.nodes < 1 || c.batch < 1 || c.size < 1 || c.streams < 1) {
    std::fprintf(stderr, "tidal-sim-bench: nodes, streams, batch and size must be positive\n");
    return 2;
  }
  const Figures f = RunOnce(c);
  const double ops_s = f.ops / f.wall_s;
  const double events_s = f.events / f.wall_s;
  const double ratio = (f.virtual_ns / 1e9) / f.wall_s;
  const double gbs = ops_s * c.size / 1e9;
  if (vm.count("json")) {
    std::cout << nlohmann::json({{"nodes", c.nodes}, {"streams", c.streams}, {"batch", c.batch},
                                 {"size_bytes", c.size}, {"checker", c.checker},
                                 {"ops", f.ops}, {"failed", f.failed}, {"wall_seconds", f.wall_s},
                                 {"ops_per_second", ops_s}, {"events", f.events},
                                 {"events_per_second", events_s},
                                 {"virtual_seconds", f.virtual_ns / 1e9},
                                 {"virtual_to_wall", ratio},
                                 {"memcpy_gb_per_second", gbs},
                                 {"target_ops_per_second", 1'000'000},
                                 {"meets_target", c.size == 4096 ? ops_s >= 1e6 : false}})
                     .dump(2)
              << "\n";
  } else {
    std::printf("tidal-sim-bench: %zu nodes x %zu streams, batches of %zu x %llu B, checker %s\n",
                c.nodes, c.streams, c.batch, static_cast<unsigned long long>(c.size),
                c.checker ? "on" : "off");
    std::printf("  %-28s %llu (%llu failed)\n", "requests completed",
                static_cast<unsigned long long>(f.ops), static_cast<unsigned long long>(f.failed));
    std::printf("  %-28s %.3f s\n", "wall time", f.wall_s);
    std::printf("  %-28s %.0f  (target 1,000,000 for 4 KiB: %.2fx)\n", "simulated ops / s / core",
                ops_s, ops_s / 1e6);
    std::printf("  %-28s %.0f\n", "simulator events / s", events_s);
    std::printf("  %-28s %.3f s virtual / %.3f s wall = %.4f\n", "virtual : wall time",
                f.virtual_ns / 1e9, f.wall_s, ratio);
    std::printf("  %-28s %.2f GB/s\n", "bytes really copied", gbs);
  }
  return f.failed == 0 ? 0 : 1;
}
