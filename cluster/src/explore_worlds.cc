#include "tidal/cluster/explore_worlds.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <tuple>
#include <memory>
#include <optional>
#include <sstream>

#include "tidal/cluster/coll_harness.h"
#include "tidal/cluster/store_world.h"
#include "tidal/sim/sim_fabric.h"

namespace tidal::cluster {

namespace {

using sim::ExploreRun;
using sim::ExploreWorldFn;
using sim::ScheduleVerdict;

uint64_t Mix(uint64_t h, uint64_t x) {
  uint64_t z = h ^ (x + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
uint64_t MixBytes(uint64_t h, const void* data, size_t n) {
  uint64_t f = 0xcbf29ce484222325ULL;
  const uint8_t* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) f = (f ^ p[i]) * 0x100000001b3ULL;
  return Mix(h, f);
}

// Collects a run's violations (the first one is the verdict's failure).
struct Verdict {
  std::vector<std::string> violations;
  void Fail(std::string what) { violations.push_back(std::move(what)); }
  ScheduleVerdict Done(uint64_t outcome, const std::string& placement) const {
    ScheduleVerdict v;
    v.passed = violations.empty();
    if (!v.passed) v.failure = "placement " + placement + ": " + violations.front();
    v.outcome = outcome;
    return v;
  }
};

// ---- transport ------------------------------------------------------------------------

enum class OpKind { kWrite, kRead, kNotify };
struct TransportOp {
  uint32_t node;      // the initiator
  OpKind kind;
  uint64_t offset;    // the same offset locally and remotely
  uint64_t length;
};
// The table: node 0 writes, notifies, writes; node 1 writes, reads, notifies. Ranges are
// disjoint, so each op's bytes are its own.
constexpr TransportOp kTransportOps[] = {
    {0, OpKind::kWrite, 0, 64},    {1, OpKind::kWrite, 64, 64},  {0, OpKind::kNotify, 0, 0},
    {1, OpKind::kRead, 128, 48},   {0, OpKind::kWrite, 256, 80}, {1, OpKind::kNotify, 0, 0},
};
constexpr size_t kRegionBytes = 512;
constexpr size_t kGuard = 32;
constexpr uint8_t kGuardByte = 0xA5;

struct TransportPlacement {
  std::string name = "none";
  std::string script;  // fault rules
  bool faulty = false;
  int crashed_node = -1;
};

std::vector<TransportPlacement> TransportPlacements(size_t ops, bool with_faults) {
  std::vector<TransportPlacement> out(1);
  if (!with_faults) return out;
  // nth counts the matching transfers of one kind between one pair of nodes.
  std::map<std::tuple<int, uint32_t, uint32_t>, int> seen;
  std::vector<std::pair<size_t, int>> transfers;  // (op, nth)
  for (size_t i = 0; i < ops; ++i) {
    const TransportOp& op = kTransportOps[i];
    if (op.kind == OpKind::kNotify) continue;
    transfers.emplace_back(i, ++seen[{static_cast<int>(op.kind), op.node, 1 - op.node}]);
  }
  for (auto [i, nth] : transfers) {
    const TransportOp& op = kTransportOps[i];
    TransportPlacement p;
    p.faulty = true;
    p.name = "short op" + std::to_string(i);
    p.script = std::string(op.kind == OpKind::kWrite ? "short_write" : "short_read") +
               " src=" + std::to_string(op.node) + " dst=" + std::to_string(1 - op.node) +
               " nth=" + std::to_string(nth) + " by=16\n";
    out.push_back(p);
  }
  for (auto [i, nth] : transfers) {
    const TransportOp& op = kTransportOps[i];
    TransportPlacement p;
    p.faulty = true;
    p.name = "stale_key op" + std::to_string(i);
    // Every transfer between the pair counts: find this op's place among them all.
    size_t k = 0;
    for (size_t j = 0; j <= i; ++j) {
      if (kTransportOps[j].kind != OpKind::kNotify && kTransportOps[j].node == op.node) ++k;
    }
    p.script = "stale_rkey src=" + std::to_string(op.node) + " dst=" +
               std::to_string(1 - op.node) + " nth=" + std::to_string(k) + "\n";
    out.push_back(p);
  }
  for (uint64_t at_us : {2, 10}) {
    TransportPlacement p;
    p.faulty = true;
    p.crashed_node = 1;
    p.name = "crash node1 at " + std::to_string(at_us) + "us";
    p.script = "crash node=1 at=" + std::to_string(at_us) + "us\n";
    out.push_back(p);
  }
  (void)ops;
  return out;
}

ScheduleVerdict RunTransportWorld(ExploreRun& run, size_t ops, bool with_faults,
                                  sim::PlantedBug bug) {
  const std::vector<TransportPlacement> placements = TransportPlacements(ops, with_faults);
  const TransportPlacement& place = placements[run.Pick(placements.size())];
  sim::SimFabricOptions fo;
  fo.world.nodes = 2;
  fo.world.seed = 1;
  fo.world.max_clock_offset_ns = 0;
  fo.world.planted_bug = bug;
  fo.world.scheduling = run.scheduling();
  Result<sim::FaultPlan> plan = sim::FaultPlan::Parse(place.script);
  TIDAL_ASSERT_MSG(plan.ok(), "explore: a transport placement does not parse");
  fo.world.faults = *plan;
  fo.engine.transfer_timeout_ns = 400'000;
  fo.engine.probe_timeout_ns = 200'000;
  fo.checker_aborts = false;
  sim::SimFabric fabric(std::move(fo));
  sim::World& world = fabric.world();
  Verdict verdict;

  // Each node's region, between guard bands; node n's bytes start as pattern n.
  std::vector<std::unique_ptr<uint8_t[]>> raw(2);
  uint8_t* region[2];
  std::vector<uint8_t> initial[2];
  for (uint32_t n = 0; n < 2; ++n) {
    raw[n] = std::make_unique<uint8_t[]>(kRegionBytes + 2 * kGuard);
    std::memset(raw[n].get(), kGuardByte, kRegionBytes + 2 * kGuard);
    region[n] = raw[n].get() + kGuard;
    for (size_t i = 0; i < kRegionBytes; ++i) region[n][i] = static_cast<uint8_t>(17 * i + 101 * n + 1);
    initial[n].assign(region[n], region[n] + kRegionBytes);
    std::optional<Result<uint64_t>> rkey =
        fabric.RunOn(n, fabric.engine(n).RegisterMemory(region[n], kRegionBytes, Location::Host()));
    if (!rkey || !rkey->ok()) verdict.Fail("node" + std::to_string(n) + " could not register");
  }
  // What the drivers saw: each op's status; each delivered notification.
  std::vector<std::optional<TransferStatus>> status(ops);
  std::vector<std::string> delivered[2];
  // Per sender: the writes it had completed when it sent each notification.
  std::map<std::string, std::vector<size_t>> completed_before;
  std::vector<size_t> completed_writes[2];
  bool done[2] = {false, false};
  run.SetStateHash([&]() {
    uint64_t h = MixBytes(0, region[0], kRegionBytes);
    h = MixBytes(h, region[1], kRegionBytes);
    for (const auto& s : status) {
      h = Mix(h, s ? 1 + static_cast<uint64_t>(s->state) * 1000 + static_cast<uint64_t>(s->error) : 0);
      h = Mix(h, s ? s->bytes_transferred : 0);
    }
    for (const auto& d : delivered) h = Mix(h, d.size());
    h = Mix(h, done[0] * 2 + done[1]);
    return h;
  });

  // A notification's arrival: every write its sender completed before sending is there.
  for (uint32_t n = 0; n < 2; ++n) {
    fabric.engine(n).SetNotifyHandler([&, n](Notification note) {
      delivered[n].push_back(note.payload);
      for (size_t i : completed_before[note.payload]) {
        const TransportOp& op = kTransportOps[i];
        if (std::memcmp(region[n] + op.offset, region[1 - n] + op.offset, op.length) != 0) {
          verdict.Fail("notification " + note.payload + " arrived before the bytes of op" +
                       std::to_string(i) + ", a write completed before it was sent");
        }
      }
    });
  }
  auto driver = [&](uint32_t n) -> Task<void> {
    TransferEngine& engine = fabric.engine(n);
    Result<SegmentHandle> peer = co_await engine.OpenSegment(Fabric::NodeName(1 - n));
    if (!peer.ok()) {
      if (!place.faulty) verdict.Fail("node" + std::to_string(n) + " could not open its peer: " +
                                      peer.status().ToString());
      done[n] = true;
      co_return;
    }
    for (size_t i = 0; i < ops; ++i) {
      const TransportOp& op = kTransportOps[i];
      if (op.node != n) continue;
      if (op.kind == OpKind::kNotify) {
        const std::string payload = "op" + std::to_string(i);
        completed_before[payload] = completed_writes[n];
        Status s = engine.Notify(*peer, payload);
        if (!s.ok() && !place.faulty) verdict.Fail("notify op" + std::to_string(i) + ": " + s.ToString());
        continue;
      }
      TransferRequest req;
      req.op = op.kind == OpKind::kWrite ? TransferOp::kWrite : TransferOp::kRead;
      req.local_addr = reinterpret_cast<uint64_t>(region[n] + op.offset);
      req.remote_addr = reinterpret_cast<uint64_t>(region[1 - n] + op.offset);
      req.length = op.length;
      req.segment = *peer;
      std::vector<TransferRequest> reqs = {req};
      std::vector<TransferStatus> got = co_await engine.TransferSync(reqs);
      status[i] = got[0];
      if (got[0].state == TransferState::COMPLETED && op.kind == OpKind::kWrite) {
        completed_writes[n].push_back(i);
      }
    }
    done[n] = true;
  };
  for (uint32_t n = 0; n < 2; ++n) Spawn(fabric.env(n), driver(n));
  const bool finished = world.RunUntil([&] {
    for (uint32_t n = 0; n < 2; ++n) {
      if (!done[n] && world.Responsive(n)) return false;
    }
    return true;
  });
  if (!finished) verdict.Fail("liveness: a live node's operations never ended");
  // Late completions and notifications must not change what the statuses said.
  world.RunUntilTime(world.NowNs() + 100'000);

  const bool crash = place.crashed_node >= 0 && !world.alive(place.crashed_node);
  for (size_t i = 0; i < ops; ++i) {
    const TransportOp& op = kTransportOps[i];
    if (op.kind == OpKind::kNotify) continue;
    const std::string what = "op" + std::to_string(i);
    if (!status[i]) {
      if (world.alive(op.node)) verdict.Fail(what + " never ended on a live node");
      continue;
    }
    const TransferStatus& s = *status[i];
    const uint32_t dst = op.kind == OpKind::kWrite ? 1 - op.node : op.node;
    const uint32_t src = 1 - dst;
    const uint8_t* got = region[dst] + op.offset;
    const uint8_t* want = region[src] + op.offset;  // sources are never written
    const uint8_t* old = initial[dst].data() + op.offset;
    const std::string said = what + " " + std::string(TransferStateName(s.state)) + " " +
                             std::string(ErrorCodeName(s.error)) + " bytes=" +
                             std::to_string(s.bytes_transferred);
    if (!place.faulty && s.state != TransferState::COMPLETED) {
      verdict.Fail(said + " without any fault placed");
    }
    if (crash && !world.alive(dst)) continue;  // the crashed node's memory is gone
    switch (s.state) {
      case TransferState::COMPLETED:
        if (s.error != ErrorCode::OK || s.bytes_transferred != op.length) {
          verdict.Fail(said + ": COMPLETED without every byte");
        }
        if (std::memcmp(got, want, op.length) != 0) {
          verdict.Fail(said + ": COMPLETED but the target does not hold the source bytes");
        }
        break;
      case TransferState::FAILED: {
        const uint64_t moved = std::min(s.bytes_transferred, op.length);
        if (s.error == ErrorCode::OK) verdict.Fail(said + ": FAILED with error OK");
        if (s.bytes_transferred >= op.length) verdict.Fail(said + ": FAILED with every byte moved");
        if (s.error != ErrorCode::TRANSFER_INCOMPLETE && s.bytes_transferred != 0) {
          verdict.Fail(said + ": a failure other than a short transfer reports bytes moved");
        }
        if (std::memcmp(got, want, moved) != 0 ||
            std::memcmp(got + moved, old + moved, op.length - moved) != 0) {
          verdict.Fail(said + ": the target is not exactly the reported prefix");
        }
        break;
      }
      case TransferState::TIMED_OUT:
        for (uint64_t b = 0; b < op.length; ++b) {
          if (got[b] != want[b] && got[b] != old[b]) {
            verdict.Fail(said + ": a byte is neither old nor new");
            break;
          }
        }
        break;
      default:
        verdict.Fail(said + ": not terminal after TransferSync");
    }
  }
  // Bytes no op targets never change (on a live node).
  for (uint32_t n = 0; n < 2; ++n) {
    if (!world.alive(n)) continue;
    for (size_t b = 0; b < kRegionBytes; ++b) {
      bool targeted = false;
      for (size_t i = 0; i < ops; ++i) {
        const TransportOp& op = kTransportOps[i];
        if (op.kind == OpKind::kNotify) continue;
        const uint32_t dst = op.kind == OpKind::kWrite ? 1 - op.node : op.node;
        targeted |= dst == n && b >= op.offset && b < op.offset + op.length;
      }
      if (!targeted && region[n][b] != initial[n][b]) {
        verdict.Fail("node" + std::to_string(n) + " byte " + std::to_string(b) +
                     " changed, though no op targets it");
        break;
      }
    }
    for (size_t g = 0; g < kGuard; ++g) {
      if (raw[n][g] != kGuardByte || region[n][kRegionBytes + g] != kGuardByte) {
        verdict.Fail("node" + std::to_string(n) + "'s guard band changed");
        break;
      }
    }
  }
  for (size_t i = 0; i < ops; ++i) {
    const TransportOp& op = kTransportOps[i];
    if (op.kind != OpKind::kNotify || place.faulty) continue;
    const std::string payload = "op" + std::to_string(i);
    const auto& d = delivered[1 - op.node];
    if (std::find(d.begin(), d.end(), payload) == d.end()) {
      verdict.Fail("notification " + payload + " never arrived, without any fault placed");
    }
  }
  for (const std::string& v : fabric.ContractViolations()) verdict.Fail("contract: " + v);
  uint64_t outcome = Mix(0, place.name.size());
  outcome = MixBytes(outcome, place.name.data(), place.name.size());
  for (const auto& s : status) {
    outcome = Mix(outcome, s ? 1 + static_cast<uint64_t>(s->state) * 1000 + static_cast<uint64_t>(s->error) : 0);
    outcome = Mix(outcome, s ? s->bytes_transferred : 0);
  }
  for (uint32_t n = 0; n < 2; ++n) {
    if (world.alive(n)) outcome = MixBytes(outcome, region[n], kRegionBytes);
    std::vector<std::string> d = delivered[n];
    std::sort(d.begin(), d.end());
    for (const std::string& p : d) outcome = MixBytes(outcome, p.data(), p.size());
  }
  ScheduleVerdict v = verdict.Done(outcome, place.name);
  world.Shutdown();
  return v;
}

// ---- collectives ------------------------------------------------------------------------

ScheduleVerdict RunCollWorld(ExploreRun& run, OpType op, int kRanks, uint64_t stagger_ns,
                             bool with_faults, coll::CollBug bug) {
  constexpr uint64_t kCount = 4;
  // Placements: none; rank 1 or 2 crashes at 0 us or 20 us after bootstrap.
  struct Place {
    int rank = -1;
    uint64_t at_ns = 0;
  };
  std::vector<Place> places(1);
  if (with_faults) {
    for (int r = 1; r < kRanks; ++r) {
      for (uint64_t at : {0, 20'000}) places.push_back({r, at});
    }
  }
  const Place place = places[run.Pick(places.size())];
  const std::string place_name =
      place.rank < 0 ? "none"
                     : "crash rank" + std::to_string(place.rank) + " at " +
                           std::to_string(place.at_ns / 1000) + "us";
  sim::ScopedScheduling scheduling(run.scheduling());
  GroupClusterOptions co;
  co.ranks = kRanks;
  co.seed = 1;
  co.pg = TestOptions();
  co.pg.slot_bytes = 512;
  co.pg.direct_max_bytes = 256;
  co.pg.timeout_ns = 100'000'000;
  co.pg.planted_bug = bug;
  co.pg.write_retries = 4;
  co.engine.transfer_timeout_ns = 2'000'000;
  co.engine.probe_timeout_ns = 1'000'000;
  co.pg.probe_attempts = 2;
  co.contract_checker = true;
  // The bootstrap runs one fixed schedule (every draw its first value): the collective's
  // schedules are what this world enumerates.
  run.SetExploring(false);
  GroupCluster cluster(co);
  Verdict verdict;
  std::string boot;
  const bool started = cluster.StartAll(&boot);
  run.SetExploring(true);
  if (!started) {
    verdict.Fail("bootstrap failed: " + boot);
    return verdict.Done(0, place_name);
  }
  sim::World& world = cluster.world();
  if (place.rank >= 0) {
    sim::World* w = &world;
    w->ScheduleAt(w->NowNs() + place.at_ns, -1, [w, r = place.rank]() {
      if (w->alive(r)) w->Crash(static_cast<uint32_t>(r));
    });
  }
  std::vector<std::optional<CaseResult>> results(kRanks);
  run.SetStateHash([&]() {
    uint64_t h = 0;
    for (const auto& k : results) {
      h = Mix(h, k ? 1 + static_cast<uint64_t>(k->status.code()) : 0);
      h = Mix(h, k ? static_cast<uint64_t>(k->wrong) : 0);
    }
    return h;
  });
  // Broadcast from rank 1 (a root other than 0: coll_root_ignored shows), reductions by
  // product (an accumulator started from zero shows: coll_zero_accumulator).
  const int root = 1;
  const ReduceOp rop = ReduceOp::kProd;
  const bool finished = cluster.RunRanks(
      [&](int r) -> Task<void> {
        if (stagger_ns != 0 && r > 0) co_await SleepFor(cluster.fabric().env(r), r * stagger_ns);
        CaseResult k = co_await RunCase(cluster.pg(r), op, kCount, root, rop, DataType::kI32);
        results[r] = k;
      },
      2 * co.pg.timeout_ns);
  if (!finished) verdict.Fail("a live rank never finished (hang)");
  std::vector<int> crashed;
  for (int r = 0; r < kRanks; ++r) {
    if (!cluster.alive(r)) crashed.push_back(r);
  }
  const CaseResult* ref = nullptr;
  int ref_rank = -1;
  uint64_t outcome = Mix(0, crashed.size());
  for (int r = 0; r < kRanks; ++r) {
    if (!cluster.alive(r)) continue;
    const std::string where = "rank " + std::to_string(r);
    if (!results[r]) {
      verdict.Fail(where + " never finished");
      continue;
    }
    const CaseResult& k = *results[r];
    outcome = Mix(outcome, static_cast<uint64_t>(k.status.code()));
    for (int f : k.failed) outcome = Mix(outcome, static_cast<uint64_t>(f));
    if (k.wrong != 0) verdict.Fail(where + ": #wrong=" + std::to_string(k.wrong));
    for (int f : k.failed) {
      if (std::find(crashed.begin(), crashed.end(), f) == crashed.end()) {
        verdict.Fail(where + ": blames live rank " + std::to_string(f));
      }
    }
    switch (k.status.code()) {
      case ErrorCode::OK:
      case ErrorCode::RANK_FAILED:
        break;
      case ErrorCode::COLLECTIVE_ABORTED:
        if (op != OpType::kBroadcast ||
            std::find(k.failed.begin(), k.failed.end(), root) == k.failed.end()) {
          verdict.Fail(where + ": aborted: " + k.status.ToString());
        }
        break;
      default:
        verdict.Fail(where + ": " + k.status.ToString());
    }
    if (place.rank < 0 && !k.status.ok()) verdict.Fail(where + ": " + k.status.ToString() + " without a crash");
    if (ref == nullptr) {
      ref = &k;
      ref_rank = r;
    } else if (ref->status.code() != k.status.code() || ref->failed != k.failed) {
      verdict.Fail(where + ": disagrees with rank " + std::to_string(ref_rank) + " (" +
                   k.status.ToString() + " vs " + ref->status.ToString() + ")");
    }
  }
  return verdict.Done(outcome, place_name);
}

// ---- store ------------------------------------------------------------------------------

ScheduleVerdict RunStoreWorld(ExploreRun& run, bool with_faults, store::StoreBug bug) {
  struct Place {
    std::string name = "none";
    std::string script;
    bool crash = false;
  };
  std::vector<Place> places(1);
  if (with_faults) {
    places.push_back({"short read (first get)", "short_read nth=1 by=8\n", false});
    places.push_back({"crash client1 at 0us", "", true});
    places.push_back({"crash client1 at 30us", "", true});
  }
  const size_t pick = run.Pick(places.size());
  const Place& place = places[pick];
  sim::ScopedScheduling scheduling(run.scheduling());
  constexpr uint64_t kMs = 1'000'000;
  StoreWorldOptions o;
  o.seed = 1;
  o.clients = 2;
  o.segment_bytes = 64 << 10;
  o.faults = place.script;
  o.master.client_ttl_ns = 200 * kMs;
  o.master.put_timeout_ns = 100 * kMs;
  o.client.op_timeout_ns = 50 * kMs;
  o.client.rpc.timeout_ns = 10 * kMs;
  o.client.rpc.retry_ns = 2 * kMs;
  o.client.heartbeat_interval_ns = 1000 * kMs;  // none inside the explored window
  o.client.planted_bug = bug;
  o.engine.transfer_timeout_ns = 2 * kMs;
  // Set-up (master, clients, mounts) runs one fixed schedule (every draw its first
  // value): the clients' operations are what this world enumerates.
  run.SetExploring(false);
  StoreWorld w(o);
  run.SetExploring(true);
  Verdict verdict;
  const std::string a = Pattern(1, 200), b = Pattern(2, 150);
  // The drivers' observations: put statuses, get results, the remove.
  std::vector<std::string> seen[2];
  bool done[2] = {false, false};
  run.SetStateHash([&]() {
    uint64_t h = 0;
    for (const auto& s : seen) {
      for (const std::string& x : s) h = MixBytes(h, x.data(), x.size());
      h = Mix(h, s.size());
    }
    return Mix(h, done[0] * 2 + done[1]);
  });
  if (place.crash) {
    sim::World* world = &w.world();
    const uint64_t at = pick == 2 ? 0 : 30'000;
    world->ScheduleAt(world->NowNs() + at, -1, [world]() {
      if (world->alive(StoreWorld::NodeOf(1))) world->Crash(StoreWorld::NodeOf(1));
    });
  }
  bool a_put = false, b_put = false, a_removed = false;
  auto check_get = [&](size_t c, const std::string& key, const Result<std::string>& got,
                       const std::string& want, bool acknowledged, bool removed) {
    seen[c].push_back("get " + key + " " +
                      (got.ok() ? "ok " + std::to_string(got->size())
                                : std::string(ErrorCodeName(got.code()))));
    if (got.ok() && *got != want) {
      verdict.Fail("client" + std::to_string(c) + " get " + key + " returned " +
                   std::to_string(got->size()) + " bytes that are not the bytes put");
    }
    if (!got.ok() && place.name == "none" && acknowledged && !removed) {
      verdict.Fail("client" + std::to_string(c) + " get " + key + " of an acknowledged key failed: " +
                   got.status().ToString());
    }
  };
  auto client0 = [&]() -> Task<void> {
    Status s = co_await w.client(0).Put("a", a);
    a_put = s.ok();
    seen[0].push_back("put a " + std::string(ErrorCodeName(s.code())));
    if (!s.ok() && place.name == "none") verdict.Fail("client0 put a: " + s.ToString());
    Result<std::string> got = co_await w.client(0).Get("a");
    check_get(0, "a", got, a, a_put, false);
    Status r = co_await w.client(0).Remove("a");
    a_removed = r.ok();
    seen[0].push_back("remove a " + std::string(ErrorCodeName(r.code())));
    // A get holds a lease on the object (client 1's get of a may run meanwhile): a remove
    // under a running lease is refused with OBJECT_HAS_LEASE, by design.
    if (!r.ok() && r.code() != ErrorCode::OBJECT_HAS_LEASE && place.name == "none" && a_put) {
      verdict.Fail("client0 remove a: " + r.ToString());
    }
    done[0] = true;
  };
  auto client1 = [&]() -> Task<void> {
    Status s = co_await w.client(1).Put("b", b);
    b_put = s.ok();
    seen[1].push_back("put b " + std::string(ErrorCodeName(s.code())));
    if (!s.ok() && place.name == "none") verdict.Fail("client1 put b: " + s.ToString());
    // a may not be there yet, or removed already: only its bytes are checked.
    Result<std::string> got_a = co_await w.client(1).Get("a");
    check_get(1, "a", got_a, a, false, false);
    Result<std::string> got_b = co_await w.client(1).Get("b");
    check_get(1, "b", got_b, b, b_put, false);
    done[1] = true;
  };
  if (w.alive(0)) Spawn(w.env(0), client0());
  if (w.alive(1)) Spawn(w.env(1), client1());
  const bool ended = w.RunUntil([&] {
    for (size_t c = 0; c < 2; ++c) {
      if (!done[c] && w.world().alive(StoreWorld::NodeOf(c))) return false;
    }
    return true;
  });
  if (!ended) verdict.Fail("liveness: a live client's operation never ended");
  uint64_t outcome = MixBytes(0, place.name.data(), place.name.size());
  for (const auto& s : seen) {
    for (const std::string& x : s) outcome = MixBytes(outcome, x.data(), x.size());
  }
  (void)a_removed;
  return verdict.Done(outcome, place.name);
}

}  // namespace

std::vector<std::string> ExploreWorldNames() {
  return {"transport", "allreduce", "allgather", "broadcast", "store"};
}

Result<sim::ExploreWorldFn> MakeExploreWorld(const ExploreWorldOptions& o) {
  const std::string& bug = o.planted_bug;
  auto wrong_bug = [&](const char* family) {
    return Status(ErrorCode::INVALID_PARAMS, "planted bug '" + bug + "' does not belong to world '" +
                                                 o.world + "' (it takes " + family + " bugs)");
  };
  if (o.world == "transport") {
    if (o.ops < 1 || o.ops > std::size(kTransportOps)) {
      return Status(ErrorCode::INVALID_PARAMS, "transport world: ops must be in 1..6");
    }
    sim::PlantedBug pb = sim::PlantedBug::kNone;
    if (!bug.empty()) {
      Result<sim::PlantedBug> p = sim::ParsePlantedBug(bug);
      if (!p.ok()) return wrong_bug("transport");
      pb = *p;
    }
    return sim::ExploreWorldFn([ops = o.ops, faults = o.placements, pb](ExploreRun& run) {
      return RunTransportWorld(run, ops, faults, pb);
    });
  }
  if (o.world == "allreduce" || o.world == "allgather" || o.world == "broadcast") {
    const OpType op = o.world == "allreduce"   ? OpType::kAllReduce
                      : o.world == "allgather" ? OpType::kAllGather
                                               : OpType::kBroadcast;
    coll::CollBug cb = coll::CollBug::kNone;
    if (!bug.empty()) {
      Result<coll::CollBug> p = coll::ParseCollBug(bug);
      if (!p.ok()) return wrong_bug("collectives (coll_*)");
      cb = *p;
    }
    if (o.ranks < 2 || o.ranks > 3) {
      return Status(ErrorCode::INVALID_PARAMS, "collectives worlds: ranks must be 2 or 3");
    }
    return sim::ExploreWorldFn(
        [op, ranks = o.ranks, stagger = o.stagger_ns, faults = o.placements, cb](ExploreRun& run) {
          return RunCollWorld(run, op, ranks, stagger, faults, cb);
        });
  }
  if (o.world == "store") {
    store::StoreBug sb = store::StoreBug::kNone;
    if (!bug.empty()) {
      Result<store::StoreBug> p = store::ParseStoreBug(bug);
      if (!p.ok()) return wrong_bug("store client (store_*)");
      sb = *p;
    }
    return sim::ExploreWorldFn([faults = o.placements, sb](ExploreRun& run) {
      return RunStoreWorld(run, faults, sb);
    });
  }
  std::string known;
  for (const std::string& n : ExploreWorldNames()) known += (known.empty() ? "" : ", ") + n;
  return Status(ErrorCode::INVALID_PARAMS, "unknown world '" + o.world + "' (" + known + ")");
}

}  // namespace tidal::cluster
