#include "tidal/cluster/zoo.h"

#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "tidal/assert.h"
#include "tidal/cluster/coll_campaign.h"
#include "tidal/cluster/mixed_campaign.h"
#include "tidal/cluster/store_campaign.h"
#include "tidal/collectives/process_group.h"
#include "tidal/planted.h"
#include "tidal/sim/shrink.h"
#include "tidal/sim/transfer_workload.h"
#include "tidal/store/client.h"
#include "tidal/store/master.h"
#include "zoo_workloads.h"

namespace tidal::cluster {
namespace {

double Wall() {
  using clock = std::chrono::steady_clock;  // the zoo reports wall time
  static const auto start = clock::now();
  return std::chrono::duration<double>(clock::now() - start).count();
}

std::string FirstLine(const std::string& s) {
  const size_t nl = s.find('\n');
  std::string line = nl == std::string::npos ? s : s.substr(0, nl);
  return line.size() > 160 ? line.substr(0, 157) + "..." : line;
}

// One seed of the bug's workload, with the bug planted or not: the checker's complaint,
// or nullopt when the seed passed.
struct SeedRun {
  std::optional<std::string> failure;
  sim::TransferWorkloadOptions transfer;  // for the transfer workload: what ran
  ZooRun zoo;                             // for the zoo's own workloads: what ran
};

// What a failure broke, without its particulars: the first line without the seed's prefix,
// its first clause (up to a ';'), parenthesized details dropped, quoted names and numbers
// blanked. "op 8 (allreduce f32 ...) rank 0: 1199 wrong" is "op # rank #: # wrong".
std::string Invariant(const std::string& failure) {
  std::string line = failure.substr(0, failure.find('\n'));
  if (line.rfind("seed ", 0) == 0 && line.find(": ") != std::string::npos) {
    line = line.substr(line.find(": ") + 2);
  }
  line = line.substr(0, line.find(';'));
  std::string bare;
  int depth = 0;
  for (char c : line) {
    if (c == '(') ++depth;
    if (depth == 0) bare += c;
    if (c == ')' && depth > 0) --depth;
  }
  std::string out;
  bool quoted = false;
  for (char c : bare) {
    if (c == '\'') {
      quoted = !quoted;
      if (quoted) out += "'_'";
      continue;
    }
    if (quoted) continue;
    if (std::isdigit(static_cast<unsigned char>(c))) {
      if (out.empty() || out.back() != '#') out += '#';
      continue;
    }
    out += c;
  }
  return out;
}

SeedRun RunSeed(const ZooBug& bug, uint64_t seed, bool planted, ZooScale scale = {}) {
  SeedRun out;
  if (bug.workload == "transfer") {
    sim::TransferWorkloadOptions o;
    o.seed = seed;
    o.fault_mix = "all";
    if (planted) {
      if (Result<sim::PlantedBug> b = sim::ParsePlantedBug(bug.name); b.ok()) o.planted_bug = *b;
      if (Result<EngineBug> b = ParseEngineBug(bug.name); b.ok()) o.engine_bug = *b;
    }
    out.transfer = o;
    Result<sim::TransferWorkloadResult> r = sim::RunTransferWorkload(o);
    if (!r.ok()) {
      out.failure = r.status().ToString();
    } else if (!r->passed) {
      out.failure = r->violations.empty() ? "failed" : r->violations.front();
    }
    return out;
  }
  if (bug.workload == "store") {
    StoreCampaignConfig cfg;
    if (planted) {
      if (Result<store::StoreBug> b = store::ParseStoreBug(bug.name); b.ok()) cfg.planted_bug = *b;
      if (Result<store::MasterBug> b = store::ParseMasterBug(bug.name); b.ok()) cfg.master_bug = *b;
    }
    StoreCampaignResult r = RunStoreCampaign(seed, cfg);
    if (!r.ok) out.failure = r.failure;
    return out;
  }
  if (bug.workload == "collectives") {
    CollCampaignOptions o;
    if (planted) o.planted_bug = coll::ParseCollBug(bug.name).value();
    CollSeedResult r = RunCollCampaignSeed(seed, o);
    if (!r.ok) {
      // The first line is the seed's summary; the checker's words follow.
      const size_t nl = r.error.find('\n');
      out.failure = nl == std::string::npos ? r.error : r.error.substr(nl + 1);
      size_t start = out.failure->find_first_not_of(' ');
      if (start != std::string::npos) out.failure = out.failure->substr(start);
    }
    return out;
  }
  const std::string replay = "tidal-sim zoo --bug " + bug.name + " --seeds " +
                             std::to_string(seed) + ".." + std::to_string(seed);
  if (bug.workload == "store-field") {
    store::StoreBug sb = store::StoreBug::kNone;
    store::MasterBug mb = store::MasterBug::kNone;
    if (planted) {
      if (Result<store::StoreBug> b = store::ParseStoreBug(bug.name); b.ok()) sb = *b;
      if (Result<store::MasterBug> b = store::ParseMasterBug(bug.name); b.ok()) mb = *b;
    }
    out.zoo = RunStoreFieldSeed(seed, sb, mb, replay, scale);
    out.failure = out.zoo.failure;
    return out;
  }
  if (bug.workload == "p2p") {
    out.zoo = RunP2pSeed(
        seed, planted ? coll::ParseCollBug(bug.name).value() : coll::CollBug::kNone, replay,
        scale);
    out.failure = out.zoo.failure;
    return out;
  }
  if (bug.workload == "peer-loss") {
    out.zoo = RunPeerLossSeed(
        seed, planted ? ParseEngineBug(bug.name).value() : EngineBug::kNone, replay, scale);
    out.failure = out.zoo.failure;
    return out;
  }
  MixedCampaignOptions o;  // mixed
  if (planted) {
    if (Result<EngineBug> b = ParseEngineBug(bug.name); b.ok()) o.engine_bug = *b;
    if (Result<coll::CollBug> b = coll::ParseCollBug(bug.name); b.ok()) o.coll_bug = *b;
  }
  MixedSeedResult r = RunMixedCampaignSeed(seed, o);
  if (!r.ok) out.failure = r.error;
  return out;
}

// A knob's value, or `otherwise` when the scale has no such knob (the seed's own run).
uint64_t Knob(const sim::Scale* scale, const std::string& name, uint64_t otherwise) {
  if (scale == nullptr) return otherwise;
  for (const sim::ScaleKnob& k : *scale) {
    if (k.name == name) return k.value;
  }
  return otherwise;
}

uint64_t NumberAfter(const std::string& text, const std::string& key) {
  const size_t at = text.find(key);
  return at == std::string::npos ? 0 : std::strtoull(text.c_str() + at + key.size(), nullptr, 10);
}

// The largest element count a collectives step draws (the "count" knob starts there), and
// the campaign's operation timeout.
constexpr uint64_t kCollMaxCount = 1500;
constexpr uint64_t kCollTimeoutMs = 1000;
// The campaign's direct-send limit in bytes (larger messages go round the ring).
constexpr uint64_t kCollDirectMaxBytes = 256;

// The store campaign's largest value (its long-lease seeds'), and the most targeted
// scenarios it runs (a lease scenario per read path, then one writer-died and one
// declared-dead scenario).
constexpr uint64_t kStoreMaxValue = 256 << 10;
constexpr uint64_t kStoreScenarios = 8;
// Its master's client TTL (StoreCampaignConfig::client_ttl_ns).
constexpr uint64_t kStoreClientTtlMs = 200;

// The mixed campaign's largest allreduce (elements) and put (bytes), and its groups'
// operation timeout.
constexpr uint64_t kMixedMaxCount = 3000;
constexpr uint64_t kMixedMaxValue = 40000;
constexpr uint64_t kMixedGroupTimeoutMs = 5000;
// The least operation timeout the mixed campaign's knob tries.
constexpr uint64_t kLeastTimeoutMs = 1;

// Knobs that shorten a timeout or shrink the store's room: a correct run may fail under
// a short timeout or a small segment too, so a candidate that lowers one counts as
// failing only when the same run without the bug passes (ShrinkZooSeed).
bool LowersALimit(const sim::Scale& scale, const sim::Scale& original) {
  for (size_t k = 0; k < scale.size() && k < original.size(); ++k) {
    const std::string& n = scale[k].name;
    const bool limit = n == "timeout_ms" || n == "timeout_us" || n == "segment";
    if (limit && scale[k].value < original[k].value) return true;
  }
  return false;
}

// The store-field workload's value sizes (zoo_workloads.h ZooScale::value): the seed's, and
// the least.
constexpr uint64_t kStoreFieldMaxValue = 128 << 10;
constexpr uint64_t kStoreFieldLeastValue = 1024;
// The most tensors of its tensor-parallel batch put (zoo_workloads.h ZooScale::batch).
constexpr uint64_t kStoreFieldMaxBatch = 3;
// Each of its clients' segments, in largest values (ZooScale::segment).
constexpr uint64_t kStoreFieldSegmentValues = 16;
// Its master's put timeout (ZooScale::timeout_ms), which its other timings follow.
constexpr uint64_t kStoreFieldPutTimeoutMs = 100;

bool KnownWorkload(const std::string& w) {
  return w == "store" || w == "collectives" || w == "mixed" || w == "store-field" ||
         w == "p2p" || w == "peer-loss";
}

// One run of a non-transfer workload: at `scale` (nullptr: the seed's own shape) on
// `draws` (nullptr: the seed's tape), always recording its draws. `shape` gets the scale
// that ran (the seed's own values where `scale` is nullptr).
sim::RunOutcome RunCandidate(const std::string& workload, const std::string& bug_name,
                             uint64_t seed, const sim::Scale* scale,
                             const std::vector<uint64_t>* draws, sim::Scale* shape) {
  sim::RunOutcome out;
  std::vector<uint8_t> tape;
  if (draws != nullptr) tape = sim::DrawsToBytes(*draws);
  std::optional<std::string> failure;
  if (workload == "store") {
    StoreCampaignConfig cfg;
    if (Result<store::StoreBug> b = store::ParseStoreBug(bug_name); b.ok()) cfg.planted_bug = *b;
    if (Result<store::MasterBug> b = store::ParseMasterBug(bug_name); b.ok()) cfg.master_bug = *b;
    cfg.tape = tape;
    cfg.record_tape = true;
    cfg.clients = Knob(scale, "clients", 0);
    cfg.ops_per_client = Knob(scale, "ops", cfg.ops_per_client);
    cfg.op_mask = Knob(scale, "keep", ~0ull);
    cfg.max_value = Knob(scale, "value", 0);
    cfg.durability = Knob(scale, "durability", 1) != 0;
    cfg.scenarios = Knob(scale, "scenarios", ~0ull) != 0;
    cfg.scenario_mask = Knob(scale, "scenarios", ~0ull);
    cfg.master_restarts = Knob(scale, "restarts", 1) != 0;
    cfg.client_ttl_ns = Knob(scale, "timeout_ms", 0) * 1'000'000;
    StoreCampaignResult r = RunStoreCampaign(seed, cfg);
    if (!r.ok) failure = r.failure;
    out.events = r.events;
    out.faults = r.faults;
    out.draws = std::move(r.draws);
    if (shape != nullptr) {
      // The phases first (each one left out makes every later candidate cheaper), then
      // the clients, their operations and the value size.
      *shape = {{"durability", 1, 0},
                {"scenarios", sim::KeepAll(kStoreScenarios), 0, /*mask=*/true},
                {"restarts", cfg.master_restarts ? 1u : 0u, 0},
                {"clients", r.clients, 2},
                {"ops", cfg.ops_per_client, 1},
                {"keep", sim::KeepAll(r.clients * cfg.ops_per_client), 0, /*mask=*/true},
                {"value", kStoreMaxValue, 1},
                {"timeout_ms", kStoreClientTtlMs, kLeastTimeoutMs}};
    }
  } else if (workload == "collectives") {
    CollCampaignOptions o;
    if (Result<coll::CollBug> b = coll::ParseCollBug(bug_name); b.ok()) o.planted_bug = *b;
    o.tape = tape;
    o.record_tape = true;
    o.ranks = static_cast<int>(Knob(scale, "ranks", 0));
    o.steps = Knob(scale, "steps", 0);
    o.step_mask = Knob(scale, "keep", ~0ull);
    o.max_count = Knob(scale, "count", 0);
    o.crashes = Knob(scale, "crashes", 1) != 0;
    o.hangs = Knob(scale, "hangs", 1) != 0;
    o.partitions = Knob(scale, "partitions", 1) != 0;
    o.timeout_ns = Knob(scale, "timeout_ms", 0) * 1'000'000;
    o.direct_max_bytes = Knob(scale, "direct", 0);
    CollSeedResult r = RunCollCampaignSeed(seed, o);
    if (!r.ok) {
      // The first line is the seed's summary; the checker's words follow.
      const size_t nl = r.error.find('\n');
      std::string f = nl == std::string::npos ? r.error : r.error.substr(nl + 1);
      const size_t start = f.find_first_not_of(' ');
      failure = start == std::string::npos ? f : f.substr(start);
    }
    out.events = r.events;
    out.faults = r.faults;
    out.draws = std::move(r.draws);
    if (shape != nullptr) {
      const uint64_t steps = NumberAfter(r.summary, " ops=");
      *shape = {{"ranks", NumberAfter(r.summary, "ranks="), 2},
                {"steps", steps, 1},
                {"keep", sim::KeepAll(steps), 1, /*mask=*/true},
                {"count", kCollMaxCount, 1},
                {"direct", kCollDirectMaxBytes, 1},
                {"crashes", o.crashes ? 1u : 0u, 0},
                {"hangs", o.hangs ? 1u : 0u, 0},
                {"partitions", o.partitions ? 1u : 0u, 0},
                {"timeout_ms", kCollTimeoutMs, kLeastTimeoutMs}};
    }
  } else if (workload == "mixed") {
    MixedCampaignOptions o;
    if (Result<EngineBug> b = ParseEngineBug(bug_name); b.ok()) o.engine_bug = *b;
    if (Result<coll::CollBug> b = coll::ParseCollBug(bug_name); b.ok()) o.coll_bug = *b;
    o.tape = tape;
    o.record_tape = true;
    o.nodes = static_cast<uint32_t>(Knob(scale, "nodes", 0));
    o.rounds = static_cast<uint32_t>(Knob(scale, "rounds", o.rounds));
    o.crashes = Knob(scale, "crashes", 1) != 0;
    o.store = Knob(scale, "store", 1) != 0;
    o.group_mask = static_cast<uint32_t>(Knob(scale, "groups", 3));
    o.handles = Knob(scale, "handles", 1) != 0;
    o.p2p = Knob(scale, "p2p", 1) != 0;
    o.max_count = Knob(scale, "count", 0);
    o.max_value = Knob(scale, "value", 0);
    o.round_mask = Knob(scale, "keep", ~0ull);
    o.group_timeout_ns = Knob(scale, "timeout_ms", 0) * 1'000'000;
    MixedSeedResult r = RunMixedCampaignSeed(seed, o);
    if (!r.ok) failure = r.error;
    out.events = r.events;
    out.faults = r.faults;
    out.draws = std::move(r.draws);
    if (shape != nullptr) {
      // The parts first (the store, each group, the handle traffic, the point-to-point
      // exchange), then the nodes, rounds, the crash and the sizes.
      *shape = {{"store", 1, 0},
                {"groups", 3, 0, /*mask=*/true},
                {"handles", 1, 0},
                {"p2p", 1, 0},
                {"nodes", r.nodes, 2},
                {"rounds", o.rounds, 1},
                {"keep", sim::KeepAll(o.rounds), 1, /*mask=*/true},
                {"crashes", o.crashes ? 1u : 0u, 0},
                {"count", kMixedMaxCount, 1},
                {"value", kMixedMaxValue, 1},
                {"timeout_ms", kMixedGroupTimeoutMs, kLeastTimeoutMs}};
    }
  } else {
    ZooBug bug;
    bug.name = bug_name;
    bug.workload = workload;
    ZooScale zs;
    zs.nodes = Knob(scale, "nodes", 0);
    zs.ops = Knob(scale, "ops", 0);
    zs.keep = Knob(scale, "keep", ~0ull);
    zs.victim = Knob(scale, "victim", 1) != 0;
    zs.fill = Knob(scale, "fill", 1) != 0;
    zs.value = Knob(scale, "value", 0);
    zs.timeout_us = Knob(scale, "timeout_us", 0);
    zs.batch = Knob(scale, "batch", 0);
    zs.timeout_ms = Knob(scale, "timeout_ms", 0);
    zs.segment = Knob(scale, "segment", 0);
    zs.tape = tape;
    zs.record_tape = true;
    SeedRun r = RunSeed(bug, seed, /*planted=*/!bug_name.empty(), zs);
    failure = r.failure;
    out.events = r.zoo.events;
    out.faults = r.zoo.faults;
    out.draws = std::move(r.zoo.draws);
    if (shape != nullptr && workload == "store-field") {
      // The phases first (without the crashing writer one client is enough), then the
      // clients, their operations and the value size.
      *shape = {{"victim", 1, 0},
                {"fill", 1, 0},
                {"nodes", r.zoo.scale.nodes, 1},
                {"ops", r.zoo.scale.ops, 1},
                {"keep", sim::KeepAll(r.zoo.scale.ops), 1, /*mask=*/true},
                {"value", kStoreFieldMaxValue, kStoreFieldLeastValue},
                {"batch", kStoreFieldMaxBatch, 1},
                {"segment", kStoreFieldSegmentValues, 1},
                {"timeout_ms", kStoreFieldPutTimeoutMs, kLeastTimeoutMs}};
    } else if (shape != nullptr && workload == "p2p") {
      *shape = {{"nodes", r.zoo.scale.nodes, 2},
                {"ops", r.zoo.scale.ops, 1},
                {"timeout_us", r.zoo.scale.timeout_us, 100}};
    } else if (shape != nullptr) {
      *shape = {{"nodes", r.zoo.scale.nodes, 2}, {"ops", r.zoo.scale.ops, 1}};
    }
  }
  if (failure) {
    out.invariant = Invariant(*failure);
    if (out.invariant.empty()) out.invariant = "?";
    out.failure = FirstLine(*failure);
  }
  return out;
}

std::string Quoted(const std::string& s) {
  std::string q = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') q += '\\';
    if (ch == '\n') {
      q += "\\n";
      continue;
    }
    q += ch;
  }
  return q + "\"";
}

}  // namespace

sim::RunOutcome RunZooCandidate(const std::string& workload, const std::string& bug,
                                uint64_t seed, const sim::Scale& scale,
                                const std::vector<uint64_t>& draws) {
  TIDAL_ASSERT_MSG(KnownWorkload(workload), "RunZooCandidate: unknown workload");
  return RunCandidate(workload, bug, seed, &scale, &draws, nullptr);
}

std::string ScaleString(const sim::Scale& scale) {
  std::string s;
  for (const sim::ScaleKnob& k : scale) {
    char hex[24];
    std::snprintf(hex, sizeof hex, "0x%llx", static_cast<unsigned long long>(k.value));
    s += (s.empty() ? "" : " ") + k.name + "=" + (k.mask ? std::string(hex) : std::to_string(k.value));
  }
  return s;
}

Result<ZooShrinkResult> ShrinkZooSeed(const std::string& workload, const std::string& bug,
                                      uint64_t seed, const sim::ShrinkOptions& options) {
  if (!KnownWorkload(workload)) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "workload '" + workload +
                      "': expected store, collectives, mixed, store-field, p2p or peer-loss "
                      "(transfer shrinks through ShrinkTransferFailure)");
  }
  if (!bug.empty()) {
    bool known = false;
    for (const ZooBug& b : ZooBugs()) known |= b.name == bug;
    if (!known) return Status(ErrorCode::INVALID_PARAMS, "unknown bug '" + bug + "'");
  }
  ZooShrinkResult out;
  out.workload = workload;
  out.bug = bug;
  out.seed = seed;
  sim::Scale scale;
  sim::RunOutcome first = RunCandidate(workload, bug, seed, nullptr, nullptr, &scale);
  if (first.invariant.empty()) {
    return Status(ErrorCode::INVALID_PARAMS, workload + " seed " + std::to_string(seed) +
                                                 " passes: nothing to shrink");
  }
  out.original_failure = first.failure;
  sim::ScaledRunFn run = [&](const sim::Scale& s, const std::vector<uint64_t>& draws) {
    sim::RunOutcome r = RunCandidate(workload, bug, seed, &s, &draws, nullptr);
    if (r.invariant == first.invariant && !bug.empty() && LowersALimit(s, scale) &&
        !RunCandidate(workload, "", seed, &s, &draws, nullptr).invariant.empty()) {
      r.invariant = "(fails without the bug too)";
    }
    return r;
  };
  out.shrunk = sim::ShrinkScaledFailure(scale, first, run, options);
  if (!bug.empty()) {
    out.clean_passes = RunCandidate(workload, "", seed, &out.shrunk.scale, &out.shrunk.draws,
                                    nullptr)
                           .invariant.empty();
  }
  return out;
}

std::string ZooRegressionTest(const ZooShrinkResult& r, const std::string& test_name) {
  const sim::ScaledShrinkResult& s = r.shrunk;
  std::string t;
  t += "// Written by `tidal-sim shrink`: seed " + std::to_string(r.seed) + " of the " +
       r.workload + " workload" + (r.bug.empty() ? "" : " with " + r.bug + " planted") +
       ", shrunk from\n//   " + ScaleString(s.original_scale) + ", " +
       std::to_string(s.original_nonzero) + " non-zero draws, " +
       std::to_string(s.original_events) + " events, " + std::to_string(s.original_faults) +
       " faults\n// to\n//   " + ScaleString(s.scale) + ", " + std::to_string(s.shrunk_nonzero) +
       " non-zero draws, " + std::to_string(s.shrunk_events) + " events, " +
       std::to_string(s.shrunk_faults) + " faults.\n// Invariant: " + s.invariant +
       "\n// Its complaint: " + s.failure + "\n" +
       "// The tape is read draw by draw: a change to the order in which the simulator draws\n"
       "// re-times the run. Then regenerate it:\n//   tidal-sim shrink --workload " +
       r.workload + " --seed " + std::to_string(r.seed) +
       (r.bug.empty() ? std::string() : " --plant-bug " + r.bug) + " --out FILE.cc\n";
  t += "#include <gtest/gtest.h>\n\n#include \"tidal/cluster/zoo.h\"\n\nnamespace {\n\n";
  t += "tidal::sim::Scale " + test_name + "Scale() {\n  return {";
  for (size_t i = 0; i < s.scale.size(); ++i) {
    const sim::ScaleKnob& k = s.scale[i];
    t += std::string(i == 0 ? "" : ",\n          ") + "{" + Quoted(k.name) + ", " +
         std::to_string(k.value) + "ull, " + std::to_string(k.floor) + "ull" +
         (k.mask ? ", true}" : "}");
  }
  t += "};\n}\n\n";
  t += "std::vector<uint64_t> " + test_name + "Draws() {\n  return {";
  for (size_t i = 0; i < s.draws.size(); ++i) {
    t += (i % 6 == 0 ? "\n      " : " ") + std::to_string(s.draws[i]) + "ull,";
  }
  t += "\n  };\n}\n\n";
  const std::string call = "tidal::cluster::RunZooCandidate(" + Quoted(r.workload) + ", ";
  const std::string args = ", " + std::to_string(r.seed) + ", " + test_name + "Scale(), " +
                           test_name + "Draws());\n";
  t += "// The checker catches " + (r.bug.empty() ? std::string("the bug") : r.bug) +
       " on this run, and it is the same invariant.\n";
  t += "TEST(ShrunkRegression, " + test_name + "IsCaught) {\n";
  t += "  tidal::sim::RunOutcome r = " + call + Quoted(r.bug) + args;
  t += "  EXPECT_EQ(r.invariant, " + Quoted(s.invariant) + ") << r.failure;\n";
  t += "  EXPECT_EQ(r.events, " + std::to_string(s.shrunk_events) + "u);\n";
  t += "  EXPECT_EQ(r.faults, " + std::to_string(s.shrunk_faults) + "u);\n}\n";
  if (!r.bug.empty() && r.clean_passes) {
    t += "\n// The same run without the planted bug passes.\n";
    t += "TEST(ShrunkRegression, " + test_name + "Passes) {\n";
    t += "  tidal::sim::RunOutcome r = " + call + "\"\"" + args;
    t += "  EXPECT_EQ(r.invariant, \"\") << r.failure;\n}\n";
  }
  t += "\n}  // namespace\n";
  return t;
}

std::vector<ZooBug> ZooBugs() {
  return {
      {"short_as_complete", "transport", "transfer", "",
       "a short transfer reports OK with every byte"},
      {"ignore_remote_key", "transport", "transfer", "",
       "the target lets a wrong remote key through"},
      {"ignore_window", "transport", "transfer", "",
       "the target checks where an access starts, not where it ends"},
      {"write_off_by_one", "transport", "transfer", "", "a WRITE lands one byte late"},
      {"complete_before_visible", "transport", "transfer", "",
       "a WRITE completes before its data is visible at the target"},
      {"engine_prefix_overcount", "engine", "transfer", "",
       "a failed request's bytes_transferred counts slices past the arrived prefix"},
      {"engine_no_descriptor_refresh", "engine", "mixed", "report A",
       "a range missing from the cached descriptor fails at once, no refresh"},
      {"engine_close_drops_every_holder", "engine", "mixed", "report B",
       "closing a shared segment handle invalidates it for every holder"},
      {"coll_root_ignored", "collectives", "collectives", "1",
       "Broadcast and Reduce use rank 0 whatever the root"},
      {"coll_fold_twice", "collectives", "collectives", "",
       "a received chunk is folded into the result twice"},
      {"coll_silence_is_death", "collectives", "collectives", "10",
       "a silent peer is failed without a probe"},
      {"coll_p2p_write_before_match", "collectives", "mixed", "report C",
       "a Recv failing on a size mismatch has already written its buffer"},
      {"store_get_accepts_short_read", "store", "store", "3",
       "a short replica read is returned as the object"},
      {"master_holder_close_loses_object", "store", "store", "9",
       "an object goes when one holder unmounts, though other replicas hold it"},
      {"master_frees_leased_memory", "store", "store", "",
       "Remove frees an object's memory under a running lease"},
      {"coll_zero_accumulator", "collectives", "collectives", "2",
       "a reduction starts from zero instead of the first contribution"},
      {"store_unregistered_buffer", "store", "store-field", "4",
       "put_from / get_into on an unregistered buffer go ahead instead of failing first"},
      {"store_tp_from_slices_bytes", "store", "store-field", "5",
       "tensor-parallel put_from cuts the serialized full tensor by bytes"},
      {"store_tp_batch_reports_invalid", "store", "store-field", "6",
       "a successful tensor-parallel batch put reports INVALID_PARAMS per entry"},
      {"master_ignores_generation", "store", "store-field", "7",
       "a get naming a removed generation is served the current object"},
      {"master_never_reclaims_puts", "store", "store-field", "8",
       "a put whose writer crashed stays 'being written' forever"},
      {"engine_dead_peer_stays_cached", "engine", "peer-loss", "11",
       "a peer found unreachable stays cached; later requests wait for their timeout"},
      {"master_no_evict_on_put", "store", "store-field", "12",
       "a put that does not fit fails NO_AVAILABLE_HANDLE instead of evicting"},
      {"coll_p2p_timeout_keeps_group", "collectives", "p2p", "report D",
       "after a point-to-point timeout the group carries on instead of aborting"},
  };
}

std::string RunZooSeed(const ZooBug& bug, uint64_t seed, bool planted) {
  SeedRun run = RunSeed(bug, seed, planted);
  return run.failure.value_or("");
}

std::vector<ZooEntry> RunZoo(const ZooOptions& options) {
  std::vector<ZooEntry> out;
  bool matched = options.only.empty();
  for (const ZooBug& bug : ZooBugs()) {
    if (!options.only.empty() && bug.name != options.only) continue;
    matched = true;
    ZooEntry e;
    e.bug = bug;
    const double start = Wall();
    for (uint64_t i = 0; i < options.max_seeds; ++i) {
      const uint64_t seed = options.first_seed + i;
      if (options.progress) options.progress(bug.name, i);
      SeedRun run = RunSeed(bug, seed, /*planted=*/true);
      if (!run.failure) continue;
      e.caught = true;
      e.seed = seed;
      e.seeds_needed = i + 1;
      e.seconds_to_failure = Wall() - start;
      e.failure = FirstLine(*run.failure);
      e.clean_seed_passes = !RunSeed(bug, seed, /*planted=*/false).failure.has_value();
      if (!options.shrink) break;
      if (bug.workload != "transfer") {
        sim::ShrinkOptions so;
        so.max_runs = options.shrink_runs;
        so.max_seconds = options.shrink_seconds;
        const double shrink_start = Wall();
        Result<ZooShrinkResult> z = ShrinkZooSeed(bug.workload, bug.name, seed, so);
        e.shrink_seconds = Wall() - shrink_start;
        if (!z.ok()) {
          e.not_shrunk_because = z.status().ToString();
          break;
        }
        e.shrunk = true;
        e.original_events = z->shrunk.original_events;
        e.original_faults = z->shrunk.original_faults;
        e.shrunk_events = z->shrunk.shrunk_events;
        e.shrunk_faults = z->shrunk.shrunk_faults;
        e.shrunk_scale = ScaleString(z->shrunk.scale);
        e.shrink_runs = z->shrunk.runs;
        e.shrink_budget_exhausted = z->shrunk.budget_exhausted;
        break;
      }
      const double shrink_start = Wall();
      sim::ShrinkOptions so;
      so.max_runs = options.shrink_runs;
      so.max_seconds = options.shrink_seconds;
      Result<sim::TransferShrinkResult> s = sim::ShrinkTransferFailure(run.transfer, so);
      e.shrink_seconds = Wall() - shrink_start;
      if (s.ok()) {
        e.shrunk = true;
        e.shrunk_events = s->shrunk_events;
        e.shrunk_faults = s->shrunk_faults;
        e.original_events = s->original_events;
        e.original_faults = s->original_faults;
        e.shrunk_scale = "nodes=" + std::to_string(s->options.nodes) +
                         " ops=" + std::to_string(s->options.ops_per_node);
        if (s->options.batch_mask != ~0ull) {
          char hex[24];
          std::snprintf(hex, sizeof hex, "0x%llx",
                        static_cast<unsigned long long>(s->options.batch_mask));
          e.shrunk_scale += std::string(" keep=") + hex;
        }
        e.shrink_runs = s->runs;
      } else {
        e.not_shrunk_because = s.status().ToString();
      }
      break;
    }
    if (!e.caught) {
      e.seeds_needed = options.max_seeds;
      e.seconds_to_failure = Wall() - start;
    }
    out.push_back(std::move(e));
  }
  if (!matched) {
    ZooEntry e;
    e.bug.name = options.only;
    e.failure = "unknown bug '" + options.only + "'";
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace tidal::cluster
