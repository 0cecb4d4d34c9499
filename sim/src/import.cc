#include "tidal/sim/import.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "tidal/sim/fault_plan.h"
#include "tidal/sim/sim_fabric.h"
#include "tidal/sim/world.h"
#include "tidal/task.h"

namespace tidal::sim {
namespace {

using nlohmann::json;

Status Corrupt(std::string what) { return Status(ErrorCode::CORRUPT_INPUT, std::move(what)); }

std::string ToHex(const std::string& raw) {
  static const char* kDigits = "0123456789abcdef";
  std::string out(raw.size() * 2, '0');
  for (size_t i = 0; i < raw.size(); ++i) {
    const auto b = static_cast<uint8_t>(raw[i]);
    out[2 * i] = kDigits[b >> 4];
    out[2 * i + 1] = kDigits[b & 15];
  }
  return out;
}

bool FromHex(const std::string& hex, std::string* raw) {
  if (hex.size() % 2 != 0) return false;
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  raw->resize(hex.size() / 2);
  for (size_t i = 0; i < raw->size(); ++i) {
    const int hi = digit(hex[2 * i]), lo = digit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*raw)[i] = static_cast<char>(hi * 16 + lo);
  }
  return true;
}

// A field of a trace line: CORRUPT_INPUT naming the line and the field when it is missing
// or of the wrong type.
template <typename T>
Result<T> Get(const json& j, const char* field, size_t line) {
  auto it = j.find(field);
  if (it == j.end()) {
    return Corrupt("trace line " + std::to_string(line) + ": field '" + field + "' is missing");
  }
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    return Corrupt("trace line " + std::to_string(line) + ": field '" + field +
                   "' has the wrong type");
  }
}

#define TIDAL_ASSIGN_OR_RETURN_CORRUPT(lhs, expr) \
  auto lhs##_r = (expr);                            \
  if (!lhs##_r.ok()) return lhs##_r.status();       \
  auto lhs = *lhs##_r

const char* kWriteInvariant = "a WRITE reported COMPLETED but the target's bytes differ from its source";
const char* kReadInvariant = "a READ reported COMPLETED but its bytes differ from the source";

}  // namespace

size_t TransferScript::faults() const {
  return static_cast<size_t>(
      std::count_if(ops.begin(), ops.end(), [](const ScriptOp& o) { return o.short_by > 0; }));
}

std::string TransferScript::FaultScript() const {
  FaultPlan plan;
  std::map<std::tuple<uint32_t, uint32_t, int>, uint64_t> nth;  // (src, dst, op) -> count
  for (const ScriptOp& o : ops) {
    const uint64_t k = ++nth[{o.node, o.peer, static_cast<int>(o.op)}];
    if (o.short_by == 0) continue;
    FaultRule r;
    r.kind = o.op == TransferOp::kWrite ? FaultKind::kShortWrite : FaultKind::kShortRead;
    r.src = static_cast<int>(o.node);
    r.dst = static_cast<int>(o.peer);
    r.nth = k;
    r.by = o.short_by;
    plan.rules.push_back(r);
  }
  return plan.ToScript();
}

std::string TransferScript::ToJson() const {
  json j;
  j["nodes"] = nodes;
  j["seed"] = seed;
  j["source"] = source;
  j["notes"] = notes;
  j["regions"] = json::array();
  for (const ScriptRegion& r : regions) j["regions"].push_back({{"node", r.node}, {"size", r.size}});
  j["ops"] = json::array();
  for (const ScriptOp& o : ops) {
    json x = {{"node", o.node},
              {"op", o.op == TransferOp::kWrite ? "write" : "read"},
              {"peer", o.peer},
              {"local_region", o.local_region},
              {"local_off", o.local_off},
              {"remote_region", o.remote_region},
              {"remote_off", o.remote_off},
              {"len", o.length},
              {"t_ns", o.t_ns},
              {"recorded", o.recorded}};
    if (o.op == TransferOp::kWrite) x["data"] = ToHex(o.data);
    if (o.short_by > 0) x["fault"] = {{"short_by", o.short_by}, {"reported_ok", o.reported_ok}};
    j["ops"].push_back(x);
  }
  j["fault_script"] = FaultScript();
  return j.dump(1);
}

Result<TransferScript> TransferScript::FromJson(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Corrupt("scenario: not a JSON object");
  TransferScript s;
  try {
    s.nodes = j.at("nodes").get<size_t>();
    s.seed = j.value("seed", uint64_t{1});
    s.source = j.value("source", std::string());
    if (j.contains("notes")) s.notes = j["notes"].get<std::vector<std::string>>();
    for (const json& r : j.at("regions")) {
      s.regions.push_back({r.at("node").get<uint32_t>(), r.at("size").get<uint64_t>()});
    }
    for (const json& x : j.at("ops")) {
      ScriptOp o;
      o.node = x.at("node").get<uint32_t>();
      const std::string op = x.at("op").get<std::string>();
      if (op != "write" && op != "read") return Corrupt("scenario: op '" + op + "' is not read/write");
      o.op = op == "write" ? TransferOp::kWrite : TransferOp::kRead;
      o.peer = x.at("peer").get<uint32_t>();
      o.local_region = x.at("local_region").get<uint32_t>();
      o.local_off = x.at("local_off").get<uint64_t>();
      o.remote_region = x.at("remote_region").get<uint32_t>();
      o.remote_off = x.at("remote_off").get<uint64_t>();
      o.length = x.at("len").get<uint64_t>();
      o.t_ns = x.value("t_ns", uint64_t{0});
      o.recorded = x.value("recorded", std::string());
      if (o.op == TransferOp::kWrite && !FromHex(x.at("data").get<std::string>(), &o.data)) {
        return Corrupt("scenario: op " + std::to_string(s.ops.size()) + ": 'data' is not hex");
      }
      if (x.contains("fault")) {
        o.short_by = x["fault"].at("short_by").get<uint64_t>();
        o.reported_ok = x["fault"].at("reported_ok").get<bool>();
      }
      s.ops.push_back(std::move(o));
    }
  } catch (const json::exception& e) {
    return Corrupt(std::string("scenario: ") + e.what());
  }
  // Every reference must stay inside the script.
  for (size_t i = 0; i < s.ops.size(); ++i) {
    const ScriptOp& o = s.ops[i];
    auto inside = [&](uint32_t region, uint64_t off, uint32_t node) {
      return region < s.regions.size() && s.regions[region].node == node &&
             off + o.length <= s.regions[region].size && off + o.length >= off;
    };
    if (o.node >= s.nodes || o.peer >= s.nodes || !inside(o.local_region, o.local_off, o.node) ||
        !inside(o.remote_region, o.remote_off, o.peer) || o.length == 0 ||
        (o.op == TransferOp::kWrite && o.data.size() != o.length) || o.short_by > o.length) {
      return Corrupt("scenario: op " + std::to_string(i) +
                     " names a node, region or range outside the scenario");
    }
  }
  return s;
}

Result<TransferScript> ImportTrace(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status(ErrorCode::INVALID_PARAMS, "import: cannot read '" + path + "'");
  TransferScript s;
  s.source = path;
  struct Region {
    uint64_t addr, len;
    uint32_t index;
  };
  std::map<uint32_t, std::vector<Region>> regions;          // node -> its registrations
  std::map<std::string, uint32_t> node_of_segment;
  std::map<std::pair<uint32_t, uint32_t>, std::string> peer_segment;  // (node, PeerId)
  std::map<std::pair<uint32_t, uint64_t>, size_t> op_of_task;         // (node, task) -> op
  struct Outcome {
    bool done = false;
    std::string code;
    uint64_t bytes = 0;
    std::string data;  // a READ's arrived bytes
  };
  std::vector<Outcome> outcome;
  std::vector<size_t> completion_order;
  std::vector<bool> unknown_data;  // per op: a WRITE recorded without its bytes
  uint64_t t0 = 0;
  bool have_t0 = false;
  std::string text;
  size_t line = 0;
  // Locates [addr, addr+len) in one of node's registered regions.
  auto locate = [&](uint32_t node, uint64_t addr, uint64_t len, uint32_t* region,
                    uint64_t* off) {
    for (const Region& r : regions[node]) {
      if (addr >= r.addr && addr + len <= r.addr + r.len) {
        *region = r.index;
        *off = addr - r.addr;
        return true;
      }
    }
    return false;
  };
  while (std::getline(in, text)) {
    ++line;
    if (text.empty()) continue;
    json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      return Corrupt("trace line " + std::to_string(line) + ": not a JSON object");
    }
    TIDAL_ASSIGN_OR_RETURN_CORRUPT(ev, Get<std::string>(j, "ev", line));
    TIDAL_ASSIGN_OR_RETURN_CORRUPT(node, Get<uint32_t>(j, "node", line));
    TIDAL_ASSIGN_OR_RETURN_CORRUPT(t, Get<uint64_t>(j, "t", line));
    if (!have_t0) {
      t0 = t;
      have_t0 = true;
    }
    s.nodes = std::max<size_t>(s.nodes, node + 1);
    const std::string code = j.value("code", std::string("OK"));
    if (ev == "install") {
      TIDAL_ASSIGN_OR_RETURN_CORRUPT(segment, Get<std::string>(j, "segment", line));
      node_of_segment[segment] = node;
    } else if (ev == "register") {
      if (code != "OK" || !j.value("host", false)) continue;
      TIDAL_ASSIGN_OR_RETURN_CORRUPT(addr, Get<uint64_t>(j, "addr", line));
      TIDAL_ASSIGN_OR_RETURN_CORRUPT(len, Get<uint64_t>(j, "len", line));
      regions[node].push_back({addr, len, static_cast<uint32_t>(s.regions.size())});
      s.regions.push_back({node, len});
    } else if (ev == "connect") {
      if (code != "OK") continue;
      TIDAL_ASSIGN_OR_RETURN_CORRUPT(segment, Get<std::string>(j, "segment", line));
      TIDAL_ASSIGN_OR_RETURN_CORRUPT(peer, Get<uint32_t>(j, "peer", line));
      peer_segment[{node, peer}] = segment;
    } else if (ev == "submit") {
      TIDAL_ASSIGN_OR_RETURN_CORRUPT(kind, Get<std::string>(j, "kind", line));
      if (code != "OK" || (kind != "read" && kind != "write")) continue;  // probes, refusals
      TIDAL_ASSIGN_OR_RETURN_CORRUPT(task, Get<uint64_t>(j, "task", line));
      TIDAL_ASSIGN_OR_RETURN_CORRUPT(peer_id, Get<uint32_t>(j, "peer", line));
      TIDAL_ASSIGN_OR_RETURN_CORRUPT(local, Get<uint64_t>(j, "local", line));
      TIDAL_ASSIGN_OR_RETURN_CORRUPT(remote, Get<uint64_t>(j, "remote", line));
      TIDAL_ASSIGN_OR_RETURN_CORRUPT(len, Get<uint64_t>(j, "len", line));
      auto seg = peer_segment.find({node, peer_id});
      if (seg == peer_segment.end() || node_of_segment.count(seg->second) == 0) {
        return Corrupt("trace line " + std::to_string(line) + ": peer " +
                       std::to_string(peer_id) + " of node " + std::to_string(node) +
                       " was never connected to an installed segment");
      }
      ScriptOp o;
      o.node = node;
      o.op = kind == "write" ? TransferOp::kWrite : TransferOp::kRead;
      o.peer = node_of_segment[seg->second];
      o.length = len;
      o.t_ns = t - t0;
      if (len == 0 || !locate(node, local, len, &o.local_region, &o.local_off)) {
        return Corrupt("trace line " + std::to_string(line) + ": local range " +
                       std::to_string(local) + "+" + std::to_string(len) +
                       " is in no host region node " + std::to_string(node) + " registered");
      }
      if (!locate(o.peer, remote, len, &o.remote_region, &o.remote_off)) {
        // A remote range outside every region is a refusal the import does not model.
        s.notes.push_back("trace line " + std::to_string(line) +
                          ": remote range outside the peer's regions, left out");
        continue;
      }
      bool unknown = false;
      if (o.op == TransferOp::kWrite) {
        auto data = j.find("data");
        if (data != j.end() && (!data->is_string() || !FromHex(data->get<std::string>(), &o.data) ||
                                o.data.size() != len)) {
          return Corrupt("trace line " + std::to_string(line) +
                         ": 'data' is not the hex of the WRITE's " + std::to_string(len) +
                         " bytes");
        }
        if (data == j.end()) {
          // Longer transfers and device memory are recorded without their bytes: the
          // replay writes filler, and the import knows nothing of the target range.
          unknown = true;
          o.data.resize(len);
          for (uint64_t b = 0; b < len; ++b) o.data[b] = static_cast<char>((line * 131 + b) & 0xff);
          s.notes.push_back("trace line " + std::to_string(line) + ": a WRITE of " +
                            std::to_string(len) + " bytes recorded without its bytes; replayed "
                            "with filler");
        }
      }
      unknown_data.push_back(unknown);
      op_of_task[{node, task}] = s.ops.size();
      s.ops.push_back(std::move(o));
      outcome.emplace_back();
    } else if (ev == "complete") {
      TIDAL_ASSIGN_OR_RETURN_CORRUPT(task, Get<uint64_t>(j, "task", line));
      auto it = op_of_task.find({node, task});
      if (it == op_of_task.end()) continue;  // a probe's
      TIDAL_ASSIGN_OR_RETURN_CORRUPT(bytes, Get<uint64_t>(j, "bytes", line));
      Outcome& out = outcome[it->second];
      out.done = true;
      out.code = code;
      out.bytes = bytes;
      if (auto d = j.find("data"); d != j.end() && d->is_string()) {
        if (!FromHex(d->get<std::string>(), &out.data)) {
          return Corrupt("trace line " + std::to_string(line) + ": 'data' is not hex");
        }
      }
      completion_order.push_back(it->second);
      op_of_task.erase(it);
    }
  }
  if (s.ops.empty()) return Corrupt("trace '" + path + "' holds no READ or WRITE");

  // Replays the recording on shadow memory (every region starts zeroed, as the fabrics
  // allocate it) to find what each completion really did.
  // Per region byte: its expected value, whether it is known, and the WRITE that put it
  // there (-1: the program itself, or a READ that landed there).
  std::vector<std::string> shadow(s.regions.size());
  std::vector<std::vector<bool>> known(s.regions.size());
  std::vector<std::vector<int64_t>> writer(s.regions.size());
  for (size_t r = 0; r < s.regions.size(); ++r) {
    shadow[r].assign(s.regions[r].size, '\0');
    known[r].assign(s.regions[r].size, true);
    writer[r].assign(s.regions[r].size, -1);
  }
  auto set = [&](uint32_t region, uint64_t off, const std::string* bytes, uint64_t n,
                 int64_t by) {
    for (uint64_t b = 0; b < n; ++b) {
      known[region][off + b] = bytes != nullptr;
      if (bytes != nullptr) shadow[region][off + b] = (*bytes)[b];
      writer[region][off + b] = by;
    }
  };
  for (size_t i = 0; i < s.ops.size(); ++i) {
    if (!outcome[i].done) {
      s.notes.push_back("op " + std::to_string(i) + ": no completion recorded");
      continue;
    }
    s.ops[i].recorded = outcome[i].code + " " + std::to_string(outcome[i].bytes) + " bytes";
  }
  for (size_t i : completion_order) {
    ScriptOp& o = s.ops[i];
    const Outcome& out = outcome[i];
    if (out.code == "TRANSFER_INCOMPLETE" && out.bytes < o.length) {
      o.short_by = o.length - out.bytes;
      o.reported_ok = false;
    } else if (out.code != "OK") {
      s.notes.push_back("op " + std::to_string(i) + " failed " + out.code +
                        ": not modeled, it replays without a fault");
      continue;
    }
    const uint64_t arrived = o.length - o.short_by;
    if (o.op == TransferOp::kWrite) {
      const bool have = !unknown_data[i];
      set(o.local_region, o.local_off, have ? &o.data : nullptr, o.length, -1);
      set(o.remote_region, o.remote_off, have ? &o.data : nullptr, arrived,
          have ? static_cast<int64_t>(i) : -1);
      continue;
    }
    // A READ: what arrived against what the statuses so far say the source holds.
    if (out.code != "OK" || out.data.size() < o.length) {
      set(o.local_region, o.local_off, nullptr, o.length, -1);  // landed, unseen
      continue;
    }
    const std::string& src = shadow[o.remote_region];
    for (uint64_t b = 0; b < o.length; ++b) {
      if (!known[o.remote_region][o.remote_off + b] || out.data[b] == src[o.remote_off + b]) {
        continue;
      }
      const int64_t w = writer[o.remote_region][o.remote_off + b];
      if (w < 0 || s.ops[w].short_by > 0) {
        s.notes.push_back("op " + std::to_string(i) + ": READ found byte " + std::to_string(b) +
                          " different from every recorded WRITE: not modeled");
        break;
      }
      // The WRITE that should have put this byte there stored its prefix only, and was
      // reported complete: a short write by the rest, reported OK.
      ScriptOp& wo = s.ops[w];
      const uint64_t p = o.remote_off + b - wo.remote_off;
      wo.short_by = wo.length - p;
      wo.reported_ok = true;
      s.notes.push_back("op " + std::to_string(w) + ": WRITE reported OK, but READ op " +
                        std::to_string(i) + " did not find its bytes from offset " +
                        std::to_string(p) + " on: a short write by " +
                        std::to_string(wo.short_by) + " reported complete");
      break;
    }
    // From here on the shadow holds what was really there.
    for (uint64_t b = 0; b < o.length; ++b) {
      shadow[o.remote_region][o.remote_off + b] = out.data[b];
      known[o.remote_region][o.remote_off + b] = true;
    }
    set(o.local_region, o.local_off, &out.data, o.length, -1);  // what landed locally
  }
  return s;
}

Result<ScriptRun> RunTransferScript(Fabric& fabric, const TransferScript& script) {
  if (fabric.size() < script.nodes) {
    return Status(ErrorCode::INVALID_PARAMS, "the fabric has fewer nodes than the script");
  }
  std::vector<uint8_t*> base(script.regions.size());
  for (size_t r = 0; r < script.regions.size(); ++r) {
    const ScriptRegion& reg = script.regions[r];
    base[r] = static_cast<uint8_t*>(fabric.Allocate(reg.node, reg.size, Location::Host()));
    Result<uint64_t> key = RunBlocking(
        fabric.env(reg.node), fabric.engine(reg.node).RegisterMemory(base[r], reg.size, Location::Host()));
    if (!key.ok()) return key.status();
  }
  std::map<std::pair<uint32_t, uint32_t>, SegmentHandle> handles;
  ScriptRun run;
  std::string scratch_a, scratch_b;
  for (size_t i = 0; i < script.ops.size(); ++i) {
    const ScriptOp& o = script.ops[i];
    TransferEngine& engine = fabric.engine(o.node);
    Env& env = fabric.env(o.node);
    auto h = handles.find({o.node, o.peer});
    if (h == handles.end()) {
      Result<SegmentHandle> opened = RunBlocking(env, engine.OpenSegment(Fabric::NodeName(o.peer)));
      if (!opened.ok()) return opened.status();
      h = handles.emplace(std::make_pair(o.node, o.peer), *opened).first;
    }
    uint8_t* local = base[o.local_region] + o.local_off;
    uint8_t* remote = base[o.remote_region] + o.remote_off;
    if (o.op == TransferOp::kWrite) fabric.CopyIn(local, o.data.data(), o.length);
    std::vector<TransferRequest> one{{o.op, reinterpret_cast<uint64_t>(local), o.length, h->second,
                                      reinterpret_cast<uint64_t>(remote)}};
    std::vector<TransferStatus> st = RunBlocking(env, engine.TransferSync(one));
    ++run.ops_run;
    if (st[0].state != TransferState::COMPLETED) {
      ++run.failed_ops;
      continue;
    }
    scratch_a.resize(o.length);
    scratch_b.resize(o.length);
    fabric.CopyOut(scratch_a.data(), local, o.length);
    fabric.CopyOut(scratch_b.data(), remote, o.length);
    if (scratch_a == scratch_b || !run.passed) continue;
    uint64_t first = 0;
    while (first < o.length && scratch_a[first] == scratch_b[first]) ++first;
    run.passed = false;
    run.invariant = o.op == TransferOp::kWrite ? kWriteInvariant : kReadInvariant;
    run.violation = run.invariant + std::string(": op ") + std::to_string(i) + " (node" +
                    std::to_string(o.node) + (o.op == TransferOp::kWrite ? " WRITE to" : " READ from") +
                    " node" + std::to_string(o.peer) + ", " + std::to_string(o.length) +
                    " bytes), first at byte " + std::to_string(first);
  }
  return run;
}

Result<ScriptRun> RunTransferScriptOnSim(const TransferScript& script) {
  SimFabricOptions fo;
  fo.world.seed = script.seed;
  fo.world.nodes = std::max<size_t>(script.nodes, 1);
  Result<FaultPlan> plan = FaultPlan::Parse(script.FaultScript());
  if (!plan.ok()) return plan.status();
  fo.world.faults = *plan;
  const bool reported_ok = std::any_of(script.ops.begin(), script.ops.end(),
                                       [](const ScriptOp& o) { return o.reported_ok; });
  if (reported_ok) fo.world.planted_bug = PlantedBug::kShortAsComplete;
  fo.world.replay_command = "tidal-sim import --scenario <file>";
  uint64_t longest = 1;
  for (const ScriptOp& o : script.ops) longest = std::max(longest, o.length);
  fo.engine.slice_bytes = std::max<uint64_t>(fo.engine.slice_bytes, longest);  // one task each
  SimFabric fabric(fo);
  return RunTransferScript(fabric, script);
}

Result<ScriptShrinkResult> ShrinkTransferScript(const TransferScript& script, uint64_t max_runs) {
  using clock = std::chrono::steady_clock;  // the shrinker reports its wall time
  const auto start = clock::now();
  ScriptShrinkResult out;
  out.original_ops = script.ops.size();
  out.original_faults = script.faults();
  Result<ScriptRun> first = RunTransferScriptOnSim(script);
  if (!first.ok()) return first.status();
  ++out.runs;
  if (first->passed) {
    return Status(ErrorCode::INVALID_PARAMS, "the scenario passes on the simulator: nothing to shrink");
  }
  const std::string invariant = first->invariant;
  out.script = script;
  out.run = *first;
  auto still_fails = [&](const TransferScript& cand) {
    if (out.runs >= max_runs) return false;
    ++out.runs;
    Result<ScriptRun> r = RunTransferScriptOnSim(cand);
    if (!r.ok() || r->passed || r->invariant != invariant) return false;
    out.run = *r;
    return true;
  };
  // Drop spans of operations, halving the span until single ones (ddmin's complements).
  for (size_t chunk = std::max<size_t>(1, out.script.ops.size() / 2); chunk >= 1;) {
    bool progress = false;
    for (size_t i = 0; i < out.script.ops.size() && out.script.ops.size() > 1;) {
      TransferScript cand = out.script;
      const size_t end = std::min(cand.ops.size(), i + chunk);
      cand.ops.erase(cand.ops.begin() + static_cast<std::ptrdiff_t>(i),
                     cand.ops.begin() + static_cast<std::ptrdiff_t>(end));
      if (!cand.ops.empty() && still_fails(cand)) {
        out.script = std::move(cand);
        progress = true;
      } else {
        i += chunk;
      }
    }
    if (!progress) {
      if (chunk == 1) break;
      chunk /= 2;
    }
  }
  // Drop faults one at a time.
  for (size_t i = 0; i < out.script.ops.size(); ++i) {
    if (out.script.ops[i].short_by == 0) continue;
    TransferScript cand = out.script;
    cand.ops[i].short_by = 0;
    cand.ops[i].reported_ok = false;
    if (still_fails(cand)) out.script = std::move(cand);
  }
  // The import's notes name operations by their number before shrinking.
  out.script.notes = {"shrunk from " + std::to_string(out.original_ops) + " operations and " +
                      std::to_string(out.original_faults) + " faults of " + script.source};
  out.seconds = std::chrono::duration<double>(clock::now() - start).count();
  return out;
}

}  // namespace tidal::sim
