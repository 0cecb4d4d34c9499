// tidal-store-bench: store put/get throughput on the simulator.
//
// For each object size, every client puts `ops` objects from a registered buffer
// (PutFrom), then every client reads the objects its neighbour wrote (GetInto), then
// removes its own. Throughput is reported in the simulator's virtual time (what the
// modelled cluster would do: link latency and bandwidth from sim::LinkModel) and the wall
// time the simulation took. Prints a table, or one JSON document with --json. A
// benchmark never asserts a time.
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tidal/cluster/store_world.h"

#include "../common/cli.h"

namespace po = boost::program_options;
using namespace tidal;
using namespace tidal::store;
using tidal::cluster::StoreWorld;
using tidal::cluster::StoreWorldOptions;

namespace {

double Wall() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct PhaseResult {
  std::string op;
  uint64_t size = 0;
  uint64_t ops = 0;
  uint64_t failed = 0;
  double virtual_s = 0;
  double wall_s = 0;
  double ops_per_s() const { return virtual_s > 0 ? ops / virtual_s : 0; }
  double gb_per_s() const { return virtual_s > 0 ? ops * double(size) / virtual_s / 1e9 : 0; }
};

std::string Key(size_t client, size_t i) {
  return "bench/" + std::to_string(client) + "/" + std::to_string(i);
}

Task<void> PutLoop(StoreClient& c, size_t id, uint8_t* buf, uint64_t size, size_t ops,
                   ReplicateConfig cfg, uint64_t* failed, bool* done) {
  for (size_t i = 0; i < ops; ++i) {
    Status s = co_await c.PutFrom(Key(id, i), buf, size, cfg);
    if (!s.ok()) ++*failed;
  }
  *done = true;
}

Task<void> GetLoop(StoreClient& c, size_t from, uint8_t* buf, uint64_t size, size_t ops,
                   uint64_t* failed, bool* done) {
  for (size_t i = 0; i < ops; ++i) {
    Result<uint64_t> n = co_await c.GetInto(Key(from, i), buf, size);
    if (!n.ok() || *n != size) ++*failed;
  }
  *done = true;
}

Task<void> RemoveLoop(StoreClient& c, size_t id, size_t ops, bool* done) {
  for (size_t i = 0; i < ops; ++i) (void)co_await c.Remove(Key(id, i), true);
  *done = true;
}

std::vector<PhaseResult> BenchSize(uint64_t seed, size_t clients, uint64_t size, size_t ops,
                                   uint32_t replicas) {
  StoreWorldOptions o;
  o.seed = seed;
  o.clients = clients;
  o.segment_bytes = std::max<uint64_t>(16ull << 20, size * ops * replicas * 5 / 4 + (1 << 20));
  o.master.lease_ttl_ns = 1'000'000'000;
  StoreWorld w(o);
  std::vector<uint8_t*> bufs;
  for (size_t c = 0; c < clients; ++c) {
    uint8_t* b = w.Buffer(c, size);
    for (uint64_t i = 0; i < size; ++i) b[i] = static_cast<uint8_t>(i * 7 + c);
    bufs.push_back(b);
  }
  ReplicateConfig cfg;
  cfg.replica_num = replicas;
  std::vector<PhaseResult> out;
  for (const char* op : {"put", "get"}) {
    PhaseResult r{op, size, ops * clients};
    std::vector<uint64_t> failed(clients, 0);
    std::vector<char> done(clients, 0);
    const uint64_t v0 = w.world().NowNs();
    const double t0 = Wall();
    for (size_t c = 0; c < clients; ++c) {
      bool* d = reinterpret_cast<bool*>(&done[c]);
      if (std::string(op) == "put") {
        Spawn(w.env(c), PutLoop(w.client(c), c, bufs[c], size, ops, cfg, &failed[c], d));
      } else {
        Spawn(w.env(c), GetLoop(w.client(c), (c + 1) % clients, bufs[c], size, ops, &failed[c], d));
      }
    }
    w.RunUntil([&] {
      for (char d : done) {
        if (!d) return false;
      }
      return true;
    });
    r.virtual_s = (w.world().NowNs() - v0) / 1e9;
    r.wall_s = Wall() - t0;
    for (uint64_t f : failed) r.failed += f;
    out.push_back(r);
  }
  std::vector<char> done(clients, 0);
  for (size_t c = 0; c < clients; ++c) {
    Spawn(w.env(c), RemoveLoop(w.client(c), c, ops, reinterpret_cast<bool*>(&done[c])));
  }
  w.RunUntil([&] {
    for (char d : done) {
      if (!d) return false;
    }
    return true;
  });
  return out;
}

std::string Human(uint64_t bytes) {
  if (bytes >= (1 << 20) && bytes % (1 << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  if (bytes >= 1024 && bytes % 1024 == 0) return std::to_string(bytes >> 10) + " KiB";
  return std::to_string(bytes) + " B";
}

}  // namespace

int main(int argc, char** argv) {
  size_t clients = 4, ops = 0;
  uint32_t replicas = 1;
  uint64_t seed = 1;
  std::vector<uint64_t> sizes;
  po::options_description desc(
      "tidal-store-bench: store put/get throughput on the simulator (virtual time)\nOptions");
  desc.add_options()("help,h", "show this help")("clients", po::value(&clients)->default_value(4),
                                                 "clients (each on its own node)")(
      "size", po::value(&sizes)->multitoken(),
      "object sizes in bytes (default 4096 1048576 16777216)")(
      "ops", po::value(&ops)->default_value(0),
      "objects per client per size (0: 2000 for <=64 KiB, 32 for <=4 MiB, else 4)")(
      "replicas", po::value(&replicas)->default_value(1), "replicas per object")(
      "seed", po::value(&seed)->default_value(1), "simulator seed")(
      "json", "print one JSON document instead of the table");
  po::variables_map vm;
  if (auto exit_code = tidal::tools::ParseCommandLine(argc, argv, desc, &vm)) return *exit_code;
  if (clients < 2 || replicas < 1 || replicas > clients) {
    std::cerr << "need clients >= 2 and 1 <= replicas <= clients\n";
    return 2;
  }
  if (sizes.empty()) sizes = {4096, 1 << 20, 16 << 20};
  const bool json = vm.count("json") != 0;
  std::vector<PhaseResult> all;
  for (uint64_t size : sizes) {
    size_t n = ops != 0 ? ops : size <= (64 << 10) ? 2000 : size <= (4 << 20) ? 32 : 4;
    if (!json) {
      std::fprintf(stderr, "  %s x %zu per client ...\n", Human(size).c_str(), n);
    }
    for (auto& r : BenchSize(seed, clients, size, n, replicas)) all.push_back(r);
  }
  if (json) {
    nlohmann::json j;
    j["backend"] = "sim";
    j["clients"] = clients;
    j["replicas"] = replicas;
    j["seed"] = seed;
    j["time_base"] = "virtual";
    for (const auto& r : all) {
      j["results"].push_back({{"op", r.op},
                              {"size_bytes", r.size},
                              {"ops", r.ops},
                              {"failed", r.failed},
                              {"virtual_seconds", r.virtual_s},
                              {"ops_per_second", r.ops_per_s()},
                              {"gb_per_second", r.gb_per_s()},
                              {"wall_seconds", r.wall_s}});
    }
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::printf("tidal-store-bench: sim, %zu clients, %u replica(s), seed %llu (virtual time)\n",
              clients, replicas, (unsigned long long)seed);
  std::printf("%-5s %9s %7s %7s %12s %10s %10s %9s\n", "op", "size", "ops", "failed", "ops/s",
              "GB/s", "virt ms", "wall s");
  for (const auto& r : all) {
    std::printf("%-5s %9s %7llu %7llu %12.0f %10.2f %10.3f %9.2f\n", r.op.c_str(),
                Human(r.size).c_str(), (unsigned long long)r.ops, (unsigned long long)r.failed,
                r.ops_per_s(), r.gb_per_s(), r.virtual_s * 1e3, r.wall_s);
  }
  return 0;
}
