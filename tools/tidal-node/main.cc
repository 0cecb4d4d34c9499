// tidal-node: one real tidal node in its own process — a TransferEngine over UCX, a store
// client and a process group, all reaching tidal-master over TCP — running a workload of
// puts, gets and allreduces that checks every byte. Start N of them with tidal-run:
//
//   tidal-master --listen 127.0.0.1:5555 &
//   tidal-run --nproc 3 --master 127.0.0.1:5555 -- tidal-node --rounds 20
//
// Each rank, round by round: puts "r<rank>-<round>" (2 replicas, a deterministic value),
// reads back a key another rank put a round earlier, and allreduces int64 values whose
// exact sum it knows. It prints one JSON line per round and a summary. A rank that dies
// (kill -9) is a fault the others must survive: their allreduces finish over the
// survivors with RANK_FAILED naming the same dead rank everywhere, and every put they
// acknowledged stays readable byte for byte (two replicas; one node can go). At the end
// each survivor reads all its own puts back.
//
// Exit status: 0 when every check held, 1 when one did not (the line says which), 2 for
// bad arguments or a node that could not start.
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tidal/cluster/real_node.h"

namespace po = boost::program_options;
using namespace tidal;

namespace {

// Acknowledged puts are recorded under this metadata prefix, one key each.
constexpr std::string_view kAckedPrefix = "tidal-node/acked/";

std::string ValueOf(int rank, uint32_t round, size_t bytes) {
  std::string v(bytes, '\0');
  uint64_t x = 0x9e3779b97f4a7c15ULL * (static_cast<uint64_t>(rank) * 100003 + round + 1);
  for (size_t i = 0; i < bytes; ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    v[i] = static_cast<char>(x >> 56);
  }
  return v;
}

int64_t Contribution(int rank, uint64_t i, uint32_t round) {
  return (rank + 1) * static_cast<int64_t>(i % 101 + 1) + round;
}

struct Config {
  int rank = 0, size = 1;
  std::string master;
  uint32_t rounds = 20;
  size_t bytes = 64 * 1024;
  uint64_t elements = 4096;
  uint64_t segment_bytes = 64ull << 20;
  uint64_t pause_ms = 50;
  uint64_t timeout_ms = 10'000;
};

class Node {
 public:
  explicit Node(Config c) : c_(std::move(c)) {}

  int Main() {
    cluster::RealNodeOptions o;
    o.name = "node" + std::to_string(c_.rank);
    o.master = c_.master;
    o.segment_bytes = c_.segment_bytes;
    o.timeout_ns = c_.timeout_ms * 1'000'000;
    Result<std::unique_ptr<cluster::RealNode>> node = cluster::RealNode::Start(o);
    if (!node.ok()) return Fatal(node.status().ToString());
    node_ = std::move(*node);
    coll::ProcessGroupOptions po;
    po.group_name = "world";
    po.timeout_ns = c_.timeout_ms * 1'000'000;
    Result<coll::ProcessGroup*> pg = node_->StartGroup(c_.rank, c_.size, po);
    if (!pg.ok()) return Fatal(pg.status().ToString());
    pg_ = *pg;
    return node_->Run(Body());
  }

 private:
  int Fatal(const std::string& why) {
    std::printf("%s\n", nlohmann::json{{"rank", c_.rank}, {"fatal", why}}.dump().c_str());
    std::fflush(stdout);
    return 2;
  }
  void Check(bool ok, const std::string& what) {
    if (ok) return;
    ++failures_;
    std::printf("%s\n", nlohmann::json{{"rank", c_.rank}, {"violation", what}}.dump().c_str());
    std::fflush(stdout);
  }

  Task<int> Body() {
    std::vector<std::string> acked;
    std::vector<int> failed_seen;
    for (uint32_t round = 0; round < c_.rounds; ++round) {
      nlohmann::json line = {{"rank", c_.rank}, {"round", round}};
      // Put, two replicas.
      const std::string key = "r" + std::to_string(c_.rank) + "-" + std::to_string(round);
      store::ReplicateConfig rc;
      rc.replica_num = 2;
      Status put = co_await node_->store().Put(key, ValueOf(c_.rank, round, c_.bytes), rc);
      line["put"] = std::string(ErrorCodeName(put.code()));
      if (put.ok()) {
        acked.push_back(key);
        // Tell the others (through the master's metadata): this object was acknowledged,
        // so it must stay readable whoever dies afterwards.
        (void)co_await node_->link().metadata().Put(std::string(kAckedPrefix) + key, "");
      }
      // Get what the next rank put a round ago: exact, or an error (that rank may be gone
      // before its put was acknowledged); never other bytes.
      if (round > 0) {
        const int other = (c_.rank + 1) % c_.size;
        const std::string okey = "r" + std::to_string(other) + "-" + std::to_string(round - 1);
        Result<std::string> got = co_await node_->store().Get(okey);
        line["get"] = got.ok() ? "OK" : std::string(ErrorCodeName(got.code()));
        if (got.ok()) Check(*got == ValueOf(other, round - 1, c_.bytes), "get " + okey + " returned other bytes");
      }
      // Allreduce.
      std::vector<int64_t> v(c_.elements);
      for (uint64_t i = 0; i < v.size(); ++i) v[i] = Contribution(c_.rank, i, round);
      auto w = pg_->AllReduce(coll::Tensor{v.data(), coll::DataType::kI64, v.size(), Location::Host()},
                              coll::ReduceOp::kSum);
      Status ar = co_await w->Wait();
      line["allreduce"] = std::string(ErrorCodeName(ar.code()));
      line["failed"] = w->failed_ranks();
      if (ar.ok() || ar.code() == ErrorCode::RANK_FAILED) {
        uint64_t wrong = 0;
        for (uint64_t i = 0; i < v.size(); ++i) {
          int64_t want = 0;
          for (int r = 0; r < c_.size; ++r) {
            const auto& f = w->failed_ranks();
            if (std::find(f.begin(), f.end(), r) == f.end()) want += Contribution(r, i, round);
          }
          wrong += v[i] != want;
        }
        line["wrong"] = wrong;
        Check(wrong == 0, "allreduce round " + std::to_string(round) + ": " +
                              std::to_string(wrong) + " elements differ from the exact sum");
        // Failed ranks only ever grow: a rank declared dead stays dead.
        Check(std::includes(w->failed_ranks().begin(), w->failed_ranks().end(), failed_seen.begin(),
                            failed_seen.end()),
              "allreduce round " + std::to_string(round) + ": a failed rank came back");
        failed_seen = w->failed_ranks();
      } else {
        Check(false, "allreduce round " + std::to_string(round) + ": " + ar.ToString());
      }
      std::printf("%s\n", line.dump().c_str());
      std::fflush(stdout);
      co_await SleepFor(node_->env(), c_.pause_ms * 1'000'000);
    }
    // Everyone has finished its rounds before anyone reads back (and all are still there).
    Status settled = co_await pg_->Barrier()->Wait();
    Check(settled.ok() || settled.code() == ErrorCode::RANK_FAILED,
          "barrier before the read-back: " + settled.ToString());
    // Every acknowledged put of ours reads back exactly (at most one node died, and each
    // object had two replicas).
    uint64_t read_back = 0;
    for (const std::string& key : acked) {
      const uint32_t round = static_cast<uint32_t>(std::stoul(key.substr(key.find('-') + 1)));
      Result<std::string> got = co_await node_->store().Get(key);
      Check(got.ok() && *got == ValueOf(c_.rank, round, c_.bytes),
            "acknowledged put " + key + " does not read back: " +
                (got.ok() ? std::string("other bytes") : got.status().ToString()));
      read_back += got.ok();
    }
    // Every put any rank recorded as acknowledged — a rank that died since included — reads
    // back byte for byte: nothing acknowledged is lost when its writer dies.
    nlohmann::json others = nlohmann::json::object();  // rank -> objects read back
    uint64_t others_acked = 0, others_read = 0;
    Result<KeyValues> listed = co_await node_->link().metadata().List(std::string(kAckedPrefix));
    Check(listed.ok(), "listing acknowledged puts: " + listed.status().ToString());
    if (listed.ok()) {
      for (const auto& [record, unused] : *listed) {
        const std::string key = record.substr(std::string(kAckedPrefix).size());
        const int owner = std::stoi(key.substr(1, key.find('-') - 1));
        if (owner == c_.rank) continue;
        const uint32_t round = static_cast<uint32_t>(std::stoul(key.substr(key.find('-') + 1)));
        ++others_acked;
        Result<std::string> got = co_await node_->store().Get(key);
        const bool exact = got.ok() && *got == ValueOf(owner, round, c_.bytes);
        Check(exact, "rank " + std::to_string(owner) + "'s acknowledged put " + key +
                         " does not read back: " +
                         (got.ok() ? std::string("other bytes") : got.status().ToString()));
        if (exact) {
          ++others_read;
          const std::string o = std::to_string(owner);
          others[o] = others.value(o, 0) + 1;
        }
      }
    }
    // Nobody leaves while another still reads: a node that exits takes its segment (and
    // the replicas in it) with it.
    Status last = co_await pg_->Barrier()->Wait();
    Check(last.ok() || last.code() == ErrorCode::RANK_FAILED, "final barrier: " + last.ToString());
    std::printf("%s\n", nlohmann::json{{"rank", c_.rank},
                                       {"summary", failures_ == 0 ? "PASS" : "FAIL"},
                                       {"puts_acknowledged", acked.size()},
                                       {"read_back", read_back},
                                       {"others_acknowledged", others_acked},
                                       {"others_read_back", others_read},
                                       {"others_by_rank", others},
                                       {"failed_ranks", failed_seen},
                                       {"violations", failures_}}
                            .dump()
                            .c_str());
    std::fflush(stdout);
    co_return failures_ == 0 ? 0 : 1;
  }

  Config c_;
  std::unique_ptr<cluster::RealNode> node_;
  coll::ProcessGroup* pg_ = nullptr;
  uint64_t failures_ = 0;
};

std::optional<int> EnvInt(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::atoi(v);
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  po::options_description desc(
      "tidal-node: one real tidal node (UCX engine, store client, process group) running a\n"
      "checked workload; start several with tidal-run\n\n"
      "  tidal-run --nproc 3 --master 127.0.0.1:5555 -- tidal-node --rounds 20\n\nOptions");
  desc.add_options()("help,h", "show this help")(
      "rank", po::value(&c.rank), "this node's rank (default: TIDAL_RANK)")(
      "world-size", po::value(&c.size), "ranks in all (default: TIDAL_WORLD_SIZE)")(
      "master", po::value(&c.master), "tidal-master HOST:PORT (default: TIDAL_MASTER)")(
      "rounds", po::value(&c.rounds)->default_value(20), "put/get/allreduce rounds")(
      "bytes", po::value(&c.bytes)->default_value(64 * 1024), "bytes per put")(
      "elements", po::value(&c.elements)->default_value(4096), "int64 elements per allreduce")(
      "pause-ms", po::value(&c.pause_ms)->default_value(50), "pause between rounds")(
      "timeout-ms", po::value(&c.timeout_ms)->default_value(10'000),
      "per-operation timeout (store, transfers, collectives)");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help")) {
      std::cout << desc;
      return 0;
    }
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "tidal-node: " << e.what() << " (see --help)\n";
    return 2;
  }
  if (!vm.count("rank")) c.rank = EnvInt("TIDAL_RANK").value_or(-1);
  if (!vm.count("world-size")) c.size = EnvInt("TIDAL_WORLD_SIZE").value_or(0);
  if (c.master.empty() && std::getenv("TIDAL_MASTER") != nullptr) c.master = std::getenv("TIDAL_MASTER");
  if (c.size < 1 || c.size > 64 || c.rank < 0 || c.rank >= c.size) {
    std::cerr << "tidal-node: rank " << c.rank << " of world size " << c.size
              << " is out of range (set --rank/--world-size or run under tidal-run)\n";
    return 2;
  }
  if (c.master.empty()) {
    std::cerr << "tidal-node: no tidal-master address (--master or TIDAL_MASTER)\n";
    return 2;
  }
  if (c.rounds == 0 || c.bytes == 0 || c.elements == 0) {
    std::cerr << "tidal-node: --rounds, --bytes and --elements must be positive\n";
    return 2;
  }
  Node node(c);
  return node.Main();
}
