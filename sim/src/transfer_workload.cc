#include "tidal/sim/transfer_workload.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "tidal/sim/sim_fabric.h"

namespace tidal::sim {

namespace {

constexpr size_t kGuardBytes = 64;
constexpr uint8_t kGuardByte = 0xA5;
constexpr size_t kMaxViolations = 20;
constexpr uint64_t kLivenessSlackNs = 6'000'000;  // longest swarm hang + margin

struct NodeMemory {
  std::unique_ptr<uint8_t[]> raw;  // [guard | region | guard]
  uint8_t* region = nullptr;
  size_t size = 0;
  bool registered = false;
  std::vector<uint8_t> shadow;  // expected bytes
  std::vector<uint8_t> known;   // 1 where the expected byte is known
  std::vector<bool> locked;     // per slot
};

struct Op {
  TransferRequest request;
  uint32_t owner = 0, peer = 0;
  uint32_t local_slot = 0, remote_slot = 0;
  uint64_t local_off = 0, remote_off = 0;  // offsets inside the node's region
  bool bad_local = false, bad_remote = false;
  bool stale_key = false;  // our cached descriptor lacks the peer's current key for it
};

class Campaign {
 public:
  explicit Campaign(const TransferWorkloadOptions& o, SimFabricOptions fo)
      : o_(o), fabric_(std::move(fo)), world_(fabric_.world()) {}

  TransferWorkloadResult Run();

 private:
  Task<void> Driver(uint32_t node);
  // `refreshed`: the engine looked a descriptor up again while the batch ran.
  void Check(const Op& op, const TransferStatus& s, uint64_t submit_ns, uint64_t done_ns,
             bool refreshed);
  void Verify(uint32_t node, uint64_t off, uint64_t len, const std::string& context);
  void Violation(std::string what) {
    if (violations_.size() < kMaxViolations) violations_.push_back(std::move(what));
    ++violation_count_;
  }
  void Fill(uint32_t node, uint64_t off, uint64_t len) {
    uint64_t x = world_.tape().Next();
    NodeMemory& m = mem_[node];
    for (uint64_t i = 0; i < len; ++i) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      const uint8_t b = static_cast<uint8_t>(x >> 56);
      m.region[off + i] = b;
      m.shadow[off + i] = b;
      m.known[off + i] = 1;
    }
  }
  // Copies the expectation of `len` bytes from (sn, so) to (dn, do_).
  void CopyShadow(uint32_t sn, uint64_t so, uint32_t dn, uint64_t do_, uint64_t len) {
    std::memmove(&mem_[dn].shadow[do_], &mem_[sn].shadow[so], len);
    std::memmove(&mem_[dn].known[do_], &mem_[sn].known[so], len);
  }
  void Forget(uint32_t node, uint64_t off, uint64_t len) {
    std::memset(&mem_[node].known[off], 0, len);
  }
  bool Live(uint32_t node) const { return world_.Responsive(node); }

  const TransferWorkloadOptions& o_;
  SimFabric fabric_;
  World& world_;
  std::vector<NodeMemory> mem_;
  std::vector<bool> done_;
  std::vector<std::map<uint64_t, Op>> in_flight_;  // per owner, by op number
  uint64_t next_op_ = 0;
  std::vector<std::string> violations_;
  uint64_t violation_count_ = 0;
  TransferWorkloadResult r_;
  std::map<std::string, uint64_t> failures_;
};

Task<void> Campaign::Driver(uint32_t node) {
  TransferEngine& engine = fabric_.engine(node);
  Env& env = fabric_.env(node);
  const size_t n = o_.nodes;
  std::vector<SegmentHandle> handles(n);
  std::vector<ErrorCode> open_error(n, ErrorCode::OK);
  for (size_t k = 0; k < o_.ops_per_node; ++k) {
    const uint64_t item = node * o_.ops_per_node + k;
    if (item < 64 && ((o_.batch_mask >> item) & 1) == 0) continue;  // left out (shrinking)
    if (env.RandomBelow(100) == 0) {
      // Re-register the region (a new remote key): peers holding the old descriptor must
      // now be refused. None of this node's own requests is in flight here.
      NodeMemory& m = mem_[node];
      bool rotated = !m.registered;
      if (m.registered) {
        // A slice canceled at a deadline may not have reported back yet (a real transport
        // may take its time): then the engine must refuse with BATCH_BUSY.
        Status s = co_await engine.UnregisterMemory(m.region);
        if (!s.ok() && s.code() != ErrorCode::BATCH_BUSY) {
          Violation("unregister failed with " + s.ToString());
        }
        rotated = s.ok();
        m.registered = !s.ok();
      }
      if (rotated) {
        auto rkey = co_await engine.RegisterMemory(m.region, m.size, Location::Host());
        m.registered = rkey.ok();
      }
    }
    const size_t want = 1 + env.RandomBelow(3);
    std::vector<Op> ops;
    for (size_t q = 0; q < want; ++q) {
      Op op;
      op.owner = node;
      op.peer = static_cast<uint32_t>(env.RandomBelow(n));
      op.local_slot = static_cast<uint32_t>(env.RandomBelow(o_.slots));
      op.remote_slot = static_cast<uint32_t>(env.RandomBelow(o_.slots));
      if (mem_[node].locked[op.local_slot] || mem_[op.peer].locked[op.remote_slot] ||
          (op.peer == node && op.local_slot == op.remote_slot)) {
        continue;  // busy: this batch is one request shorter
      }
      const uint64_t pick = env.RandomBelow(100);
      uint64_t len = pick < 70   ? 1 + env.RandomBelow(4096)
                     : pick < 95 ? 4097 + env.RandomBelow(o_.slot_bytes - 4096)
                                 : o_.slot_bytes;
      len = std::min<uint64_t>(len, o_.slot_bytes);
      op.local_off = op.local_slot * o_.slot_bytes + env.RandomBelow(o_.slot_bytes - len + 1);
      op.remote_off = op.remote_slot * o_.slot_bytes + env.RandomBelow(o_.slot_bytes - len + 1);
      const uint64_t bad = env.RandomBelow(100);
      op.bad_local = bad == 0;   // 1 %: a local range that runs into the guard band
      op.bad_remote = bad == 1;  // 1 %: a remote range outside the exported window
      const bool write = env.RandomBelow(2) == 1;
      op.request.op = write ? TransferOp::kWrite : TransferOp::kRead;
      op.request.length = len;
      op.request.local_addr = reinterpret_cast<uint64_t>(mem_[node].region + op.local_off);
      op.request.remote_addr = reinterpret_cast<uint64_t>(mem_[op.peer].region + op.remote_off);
      if (op.bad_local) op.request.local_addr = reinterpret_cast<uint64_t>(mem_[node].region) - 8;
      if (op.bad_remote) {
        op.request.remote_addr =
            reinterpret_cast<uint64_t>(mem_[op.peer].region + mem_[op.peer].size) - len / 2;
      }
      mem_[node].locked[op.local_slot] = true;
      mem_[op.peer].locked[op.remote_slot] = true;
      if (write && !op.bad_local) Fill(node, op.local_off, len);
      ops.push_back(op);
    }
    // Open the peers' segments (a failed open fails the request without a transfer).
    std::vector<TransferRequest> requests;
    std::vector<Op> sent;
    for (Op& op : ops) {
      if (handles[op.peer].value == 0 && open_error[op.peer] == ErrorCode::OK) {
        auto h = co_await engine.OpenSegment(Fabric::NodeName(op.peer));
        if (h.ok()) {
          handles[op.peer] = *h;
        } else {
          open_error[op.peer] = h.code();
        }
      }
      if (handles[op.peer].value == 0) {
        ++failures_["open:" + std::string(ErrorCodeName(open_error[op.peer]))];
        mem_[node].locked[op.local_slot] = false;
        mem_[op.peer].locked[op.remote_slot] = false;
        continue;
      }
      op.request.segment = handles[op.peer];
      if (!op.bad_remote) {
        // Stale when our engine's copy of the peer's descriptor lacks the range or holds
        // another key than the peer's current registration (or the peer has none now).
        Result<SegmentDescriptor> cached = engine.DescribeSegment(handles[op.peer]);
        const RegionInfo* mine =
            cached.ok() ? cached->FindRegion(op.request.remote_addr, op.request.length) : nullptr;
        Result<RegionInfo> theirs =
            fabric_.engine(op.peer).registry().FindLocal(op.request.remote_addr, op.request.length);
        op.stale_key = mine == nullptr || !theirs.ok() || mine->rkey != theirs->rkey;
      }
      requests.push_back(op.request);
      sent.push_back(op);
    }
    if (requests.empty()) continue;
    const uint64_t id = next_op_++;
    for (size_t i = 0; i < sent.size(); ++i) in_flight_[node].emplace(id * 4 + i, sent[i]);
    const uint64_t submit_ns = world_.NowNs();
    const uint64_t refreshes = engine.stats().refresh_retries;
    std::vector<TransferStatus> statuses = co_await engine.TransferSync(requests);
    const uint64_t done_ns = world_.NowNs();
    const bool refreshed = engine.stats().refresh_retries > refreshes;
    for (size_t i = 0; i < sent.size(); ++i) {
      in_flight_[node].erase(id * 4 + i);
      Check(sent[i], statuses[i], submit_ns, done_ns, refreshed);
      // A stale descriptor is the engine's business: it refreshes the handle in place, so
      // the handle is kept (a dead peer's handle stays dead: its requests fail at once).
      mem_[node].locked[sent[i].local_slot] = false;
      mem_[sent[i].peer].locked[sent[i].remote_slot] = false;
    }
    co_await SleepFor(env, env.RandomBelow(20'000));
  }
  done_[node] = true;
}

void Campaign::Check(const Op& op, const TransferStatus& s, uint64_t submit_ns,
                     uint64_t done_ns, bool refreshed) {
  ++r_.requests;
  const bool write = op.request.op == TransferOp::kWrite;
  const uint32_t dn = write ? op.peer : op.owner, sn = write ? op.owner : op.peer;
  const uint64_t doff = write ? op.remote_off : op.local_off;
  const uint64_t soff = write ? op.local_off : op.remote_off;
  const uint64_t len = op.request.length;
  const std::string what = std::string(TransferOpName(op.request.op)) + " node" +
                           std::to_string(op.owner) + "->node" + std::to_string(op.peer) +
                           " len=" + std::to_string(len) + " state=" +
                           std::string(TransferStateName(s.state)) + " error=" +
                           std::string(ErrorCodeName(s.error)) +
                           " bytes=" + std::to_string(s.bytes_transferred);
  if (done_ns - submit_ns > o_.transfer_timeout_ns + kLivenessSlackNs) {
    Violation("liveness: request took " + std::to_string(done_ns - submit_ns) +
              " ns, past its deadline: " + what);
  }
  // A stale key never gets through by itself: the target refuses it, and the engine looks
  // the descriptor up again and re-runs the request with the fresh key (it may then
  // complete, checked byte by byte below). So a stale request that completed without any
  // refresh met a target that accepted a key it no longer issued.
  if (op.stale_key && s.state == TransferState::COMPLETED && !refreshed) {
    Violation("a request with a stale remote key completed without a refresh: " + what);
  }
  if (op.bad_local || op.bad_remote) {
    const ErrorCode want =
        op.bad_local ? ErrorCode::ADDRESS_NOT_REGISTERED : ErrorCode::REMOTE_ACCESS_DENIED;
    // Another refusal is fine when it has its own reason: the peer is gone, or our own
    // region is unregistered (a registration failure after a re-registration).
    const bool explained = s.error == ErrorCode::PEER_UNREACHABLE ||
                           (s.error == ErrorCode::ADDRESS_NOT_REGISTERED &&
                            !mem_[op.owner].registered);
    if (!(s.state == TransferState::FAILED && s.bytes_transferred == 0 &&
          (s.error == want || explained))) {
      Violation("bad request not refused with " + std::string(ErrorCodeName(want)) + ": " + what);
    }
    ++r_.failed;
    ++failures_[std::string(ErrorCodeName(s.error))];
    // Nothing may have moved: the in-window part of the target is checked below.
    if (op.bad_remote && write) Verify(dn, doff, std::min<uint64_t>(len, mem_[dn].size - doff), what);
    if (op.bad_local && !write) Verify(dn, doff, len, what);
    return;
  }
  switch (s.state) {
    case TransferState::COMPLETED:
      ++r_.completed;
      r_.bytes_moved += len;
      if (s.error != ErrorCode::OK || s.bytes_transferred != len) {
        Violation("COMPLETED without every byte: " + what);
      }
      CopyShadow(sn, soff, dn, doff, len);
      break;
    case TransferState::FAILED:
      ++r_.failed;
      ++failures_[std::string(ErrorCodeName(s.error))];
      // bytes_transferred is a prefix that arrived. For a one-slice request nothing else
      // moved, and only a short slice moves anything; slices after the prefix of a
      // larger request may or may not have landed.
      if (s.bytes_transferred >= len) Violation("FAILED with every byte moved: " + what);
      if (len <= o_.slice_bytes && s.error != ErrorCode::TRANSFER_INCOMPLETE &&
          s.bytes_transferred != 0) {
        Violation("a failed one-slice request reports bytes moved: " + what);
      }
      CopyShadow(sn, soff, dn, doff, std::min(s.bytes_transferred, len));
      if (len > o_.slice_bytes) {
        Forget(dn, doff + s.bytes_transferred, len - std::min(s.bytes_transferred, len));
      }
      r_.bytes_moved += s.bytes_transferred;
      if (s.error == ErrorCode::OK) Violation("FAILED with error OK: " + what);
      break;
    case TransferState::TIMED_OUT:
      ++r_.timed_out;
      if (s.error != ErrorCode::TRANSFER_TIMEOUT) Violation("TIMED_OUT with wrong error: " + what);
      Forget(dn, doff, len);  // it may or may not have moved
      break;
    default:
      Violation("request not terminal after TransferSync: " + what);
      return;
  }
  Verify(dn, doff, len, what);
  Verify(sn, soff, len, what);
}

void Campaign::Verify(uint32_t node, uint64_t off, uint64_t len, const std::string& context) {
  const NodeMemory& m = mem_[node];
  for (uint64_t i = off; i < off + len && i < m.size; ++i) {
    if (m.known[i] && m.region[i] != m.shadow[i]) {
      Violation("bytes differ from what the statuses say: node" + std::to_string(node) +
                " offset " + std::to_string(i) + " expected " + std::to_string(m.shadow[i]) +
                " found " + std::to_string(m.region[i]) + " after " + context);
      return;
    }
  }
}

TransferWorkloadResult Campaign::Run() {
  const size_t n = o_.nodes;
  const size_t size = o_.slots * o_.slot_bytes;
  world_.trace().SetHeader(TransferWorkloadHeader(o_));
  mem_.resize(n);
  done_.assign(n, false);
  in_flight_.resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    NodeMemory& m = mem_[i];
    m.raw = std::make_unique<uint8_t[]>(size + 2 * kGuardBytes);
    std::memset(m.raw.get(), kGuardByte, size + 2 * kGuardBytes);
    m.region = m.raw.get() + kGuardBytes;
    m.size = size;
    std::memset(m.region, 0, size);
    m.shadow.assign(size, 0);
    m.known.assign(size, 1);
    m.locked.assign(o_.slots, false);
    // A registration failure is retried a few times, as a real client would.
    for (int attempt = 0; attempt < 4 && !m.registered; ++attempt) {
      // The node may go down (a fault at t=0) before its registration finishes.
      auto rkey = fabric_.RunOn(i, fabric_.engine(i).RegisterMemory(m.region, size,
                                                                  Location::Host()));
      if (!rkey) break;
      m.registered = rkey->ok();
      if (!rkey->ok() && rkey->code() != ErrorCode::REGISTRATION_FAILED) {
        Violation("registration failed with " + rkey->status().ToString());
      }
    }
  }
  for (uint32_t i = 0; i < n; ++i) Spawn(fabric_.env(i), Driver(i));
  const bool finished = world_.RunUntil([&] {
    for (uint32_t i = 0; i < n; ++i) {
      if (!done_[i] && Live(i)) return false;
    }
    return true;
  });
  if (!finished) {
    for (uint32_t i = 0; i < n; ++i) {
      if (!done_[i] && Live(i)) Violation("liveness: node" + std::to_string(i) + "'s driver never finished");
    }
  }
  // Let late completions and messages drain (they must not change memory), then forget
  // what crashed drivers left in flight: it may or may not have happened.
  world_.RunUntilTime(world_.NowNs() + 10'000'000);
  for (uint32_t i = 0; i < n; ++i) {
    for (const auto& [id, op] : in_flight_[i]) {
      const bool write = op.request.op == TransferOp::kWrite;
      if (!op.bad_local && !op.bad_remote) {
        Forget(write ? op.peer : op.owner, write ? op.remote_off : op.local_off,
               op.request.length);
      }
    }
  }
  for (uint32_t i = 0; i < n; ++i) {
    Verify(i, 0, size, "the end of the run");
    for (size_t g = 0; g < kGuardBytes; ++g) {
      if (mem_[i].raw[g] != kGuardByte || mem_[i].region[size + g] != kGuardByte) {
        Violation("guard band of node" + std::to_string(i) + " changed");
        break;
      }
    }
  }
  uint64_t injected = 0;
  for (size_t k = 0; k < kFaultKinds; ++k) {
    const uint64_t c = world_.injected(static_cast<FaultKind>(k));
    injected += c;
    if (c > 0) r_.faults_injected.emplace_back(FaultKindName(static_cast<FaultKind>(k)), c);
  }
  if (injected == 0 && o_.planted_bug == PlantedBug::kNone &&
      o_.engine_bug == EngineBug::kNone) {
    uint64_t bad = 0;
    for (const auto& [code, count] : failures_) {
      if (code != "ADDRESS_NOT_REGISTERED" && code != "REMOTE_ACCESS_DENIED") bad += count;
    }
    if (bad > 0 || r_.timed_out > 0) {
      Violation("no fault was injected, yet " + std::to_string(bad + r_.timed_out) +
                " requests did not complete");
    }
  }
  for (const std::string& v : fabric_.ContractViolations()) Violation("contract: " + v);
  for (uint32_t i = 0; i < n; ++i) r_.crashed_nodes += world_.alive(i) ? 0 : 1;
  r_.failures_by_code.assign(failures_.begin(), failures_.end());
  r_.violations = violations_;
  if (violation_count_ > violations_.size()) {
    r_.violations.push_back("... and " + std::to_string(violation_count_ - violations_.size()) +
                            " more");
  }
  r_.passed = violation_count_ == 0;
  world_.Record(-1, "world.verdict", {{"passed", uint64_t{r_.passed}},
                                      {"violations", violation_count_}});
  r_.digest = world_.digest();
  r_.events = world_.trace().events();
  r_.virtual_ns = world_.NowNs();
  r_.banner = world_.FailureBanner();
  r_.trace_header = world_.trace().header();
  if (o_.trace_lines) r_.trace = world_.trace().lines();
  r_.faults = injected;
  if (o_.record_tape) r_.tape = world_.tape().recorded();
  return r_;
}

}  // namespace

Result<TransferWorkloadResult> RunTransferWorkload(const TransferWorkloadOptions& o) {
  if (o.nodes == 0 || o.nodes > 256) {
    return Status(ErrorCode::INVALID_PARAMS, "nodes must be in [1, 256]");
  }
  if (o.slots < 2 || o.slot_bytes < 4097 || o.slice_bytes == 0) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "need at least 2 slots of more than 4096 bytes and a non-zero slice size");
  }
  Result<SwarmSettings> swarm = SwarmMix(o.fault_mix);
  if (!swarm.ok()) return swarm.status();
  Result<FaultPlan> plan = FaultPlan::Parse(o.fault_script);
  if (!plan.ok()) return plan.status();
  SimFabricOptions fo;
  fo.world.seed = o.seed;
  fo.world.nodes = o.nodes;
  fo.world.faults = *plan;
  fo.world.faults.swarm = *swarm;
  fo.world.trace_lines = o.trace_lines;
  fo.world.tape_bytes = o.tape_bytes;
  fo.world.record_tape = o.record_tape;
  fo.world.planted_bug = o.planted_bug;
  fo.world.max_virtual_ns = 10'000'000'000ULL;
  fo.world.replay_command = o.replay_command;
  fo.engine.slice_bytes = o.slice_bytes;
  fo.engine.transfer_timeout_ns = o.transfer_timeout_ns;
  fo.engine.planted_bug = o.engine_bug;
  fo.checker_aborts = false;
  Campaign c(o, std::move(fo));
  return c.Run();
}

std::string TransferWorkloadHeader(const TransferWorkloadOptions& o) {
  nlohmann::json j = {{"tidal_trace", 1},
                      {"workload", "transfer"},
                      {"seed", o.seed},
                      {"nodes", o.nodes},
                      {"ops_per_node", o.ops_per_node},
                      {"slots", o.slots},
                      {"slot_bytes", o.slot_bytes},
                      {"slice_bytes", o.slice_bytes},
                      {"timeout_ns", o.transfer_timeout_ns},
                      {"fault_mix", o.fault_mix},
                      {"fault_script", o.fault_script},
                      {"planted_bug", PlantedBugName(o.planted_bug)}};
  if (o.engine_bug != EngineBug::kNone) j["engine_bug"] = EngineBugName(o.engine_bug);
  if (o.batch_mask != ~0ull) j["batch_mask"] = o.batch_mask;  // a shrunk run's
  return j.dump();
}

Result<TransferWorkloadOptions> ParseTransferWorkloadHeader(std::string_view line) {
  nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
  auto bad = [](const std::string& field) {
    return Status(ErrorCode::CORRUPT_INPUT, "trace header: field '" + field +
                                                "' is missing or has the wrong type");
  };
  if (j.is_discarded() || !j.is_object()) {
    return Status(ErrorCode::CORRUPT_INPUT, "trace header is not a JSON object");
  }
  if (!j.contains("tidal_trace") || j["tidal_trace"] != 1) return bad("tidal_trace");
  if (!j.contains("workload") || j["workload"] != "transfer") return bad("workload");
  TransferWorkloadOptions o;
  auto u64 = [&](const char* key, auto* out) -> bool {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number_unsigned()) return false;
    *out = it->template get<std::remove_pointer_t<decltype(out)>>();
    return true;
  };
  auto str = [&](const char* key, std::string* out) -> bool {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string()) return false;
    *out = it->get<std::string>();
    return true;
  };
  if (!u64("seed", &o.seed)) return bad("seed");
  if (!u64("nodes", &o.nodes)) return bad("nodes");
  if (!u64("ops_per_node", &o.ops_per_node)) return bad("ops_per_node");
  if (!u64("slots", &o.slots)) return bad("slots");
  if (!u64("slot_bytes", &o.slot_bytes)) return bad("slot_bytes");
  if (!u64("slice_bytes", &o.slice_bytes)) return bad("slice_bytes");
  if (!u64("timeout_ns", &o.transfer_timeout_ns)) return bad("timeout_ns");
  if (!str("fault_mix", &o.fault_mix)) return bad("fault_mix");
  if (!str("fault_script", &o.fault_script)) return bad("fault_script");
  std::string bug;
  if (!str("planted_bug", &bug)) return bad("planted_bug");
  Result<PlantedBug> pb = ParsePlantedBug(bug);
  if (!pb.ok()) return bad("planted_bug");
  o.planted_bug = *pb;
  if (j.contains("engine_bug")) {  // optional: only traces of the bug zoo carry it
    if (!str("engine_bug", &bug)) return bad("engine_bug");
    Result<EngineBug> eb = ParseEngineBug(bug);
    if (!eb.ok()) return bad("engine_bug");
    o.engine_bug = *eb;
  }
  if (j.contains("batch_mask") && !u64("batch_mask", &o.batch_mask)) return bad("batch_mask");
  return o;
}

}  // namespace tidal::sim
