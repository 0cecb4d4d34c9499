#include "tidal/sim/fault_plan.h"

#include <charconv>
#include <sstream>

namespace tidal::sim {

namespace {
constexpr std::string_view kNames[kFaultKinds] = {
    "short_read",         "short_write",        "unregistered_local", "stale_rkey",
    "outside_window",     "crash",              "hang",               "partition",
    "completion_delay",   "completion_reorder", "completion_loss",    "message_delay",
    "message_drop",       "message_duplicate",  "registration_failure",
    "notify_drop"};

Status Bad(size_t line, const std::string& what) {
  return Status(ErrorCode::CORRUPT_INPUT,
                "fault script line " + std::to_string(line) + ": " + what);
}

// "100", "5ms", "3us", "2s", "7ns".
bool ParseNumber(std::string_view text, uint64_t* out) {
  uint64_t scale = 1;
  auto ends = [&](std::string_view suffix) {
    return text.size() > suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
  };
  if (ends("ns")) {
    text.remove_suffix(2);
  } else if (ends("us")) {
    scale = 1'000;
    text.remove_suffix(2);
  } else if (ends("ms")) {
    scale = 1'000'000;
    text.remove_suffix(2);
  } else if (ends("s")) {
    scale = 1'000'000'000;
    text.remove_suffix(1);
  }
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || text.empty()) return false;
  if (v > UINT64_MAX / scale) return false;
  *out = v * scale;
  return true;
}

bool ParseNode(std::string_view text, int* out) {
  if (text == "*") {
    *out = kAnyNode;
    return true;
  }
  uint64_t v = 0;
  if (!ParseNumber(text, &v) || v > 4096) return false;
  *out = static_cast<int>(v);
  return true;
}

bool ParseNodeList(std::string_view text, std::vector<int>* out) {
  out->clear();
  while (!text.empty()) {
    size_t comma = text.find(',');
    int node = 0;
    if (!ParseNode(text.substr(0, comma), &node) || node == kAnyNode) return false;
    out->push_back(node);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return !out->empty();
}
}  // namespace

std::string_view FaultKindName(FaultKind kind) {
  const size_t i = static_cast<size_t>(kind);
  return i < kFaultKinds ? kNames[i] : "unknown";
}

Result<FaultKind> ParseFaultKind(std::string_view name) {
  for (size_t i = 0; i < kFaultKinds; ++i) {
    if (kNames[i] == name) return static_cast<FaultKind>(i);
  }
  return Status(ErrorCode::CORRUPT_INPUT, "unknown fault kind '" + std::string(name) + "'");
}

Result<FaultPlan> FaultPlan::Parse(std::string_view script) {
  FaultPlan plan;
  size_t line_no = 0;
  while (!script.empty()) {
    size_t nl = script.find('\n');
    std::string_view line = script.substr(0, nl);
    script.remove_prefix(nl == std::string_view::npos ? script.size() : nl + 1);
    ++line_no;
    if (size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    std::vector<std::string_view> words;
    while (!line.empty()) {
      size_t start = line.find_first_not_of(" \t\r");
      if (start == std::string_view::npos) break;
      line.remove_prefix(start);
      size_t end = line.find_first_of(" \t\r");
      words.push_back(line.substr(0, end));
      line.remove_prefix(end == std::string_view::npos ? line.size() : end);
    }
    if (words.empty()) continue;
    Result<FaultKind> kind = ParseFaultKind(words[0]);
    if (!kind.ok()) return Bad(line_no, "unknown fault kind '" + std::string(words[0]) + "'");
    FaultRule rule;
    rule.kind = *kind;
    for (size_t w = 1; w < words.size(); ++w) {
      const std::string_view word = words[w];
      const size_t eq = word.find('=');
      if (eq == std::string_view::npos) {
        return Bad(line_no, "expected key=value, got '" + std::string(word) + "'");
      }
      const std::string_view key = word.substr(0, eq), value = word.substr(eq + 1);
      bool ok = true;
      if (key == "src" || key == "from" || key == "node") {
        ok = ParseNode(value, &rule.src);
      } else if (key == "dst" || key == "to") {
        ok = ParseNode(value, &rule.dst);
      } else if (key == "nth") {
        ok = ParseNumber(value, &rule.nth);
      } else if (key == "at") {
        ok = ParseNumber(value, &rule.at_ns);
      } else if (key == "for") {
        ok = ParseNumber(value, &rule.for_ns);
      } else if (key == "by") {
        ok = ParseNumber(value, &rule.by);
      } else if (key == "a") {
        ok = ParseNodeList(value, &rule.side_a);
      } else if (key == "b") {
        ok = ParseNodeList(value, &rule.side_b);
      } else {
        return Bad(line_no, "unknown field '" + std::string(key) + "'");
      }
      if (!ok) {
        return Bad(line_no, "bad value '" + std::string(value) + "' for field '" +
                                std::string(key) + "'");
      }
    }
    const bool timed = rule.kind == FaultKind::kCrash || rule.kind == FaultKind::kHang ||
                       rule.kind == FaultKind::kPartition;
    if ((rule.kind == FaultKind::kCrash || rule.kind == FaultKind::kHang) &&
        rule.src == kAnyNode) {
      return Bad(line_no, std::string(words[0]) + " needs node=N");
    }
    if (rule.kind == FaultKind::kPartition && (rule.side_a.empty() || rule.side_b.empty())) {
      return Bad(line_no, "partition needs a=LIST and b=LIST");
    }
    if (!timed && rule.at_ns != 0) return Bad(line_no, "field 'at' only applies to node faults");
    plan.rules.push_back(std::move(rule));
  }
  return plan;
}

std::string FaultPlan::ToScript() const {
  std::ostringstream out;
  auto list = [](const std::vector<int>& v) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
    return s;
  };
  for (const FaultRule& r : rules) {
    out << FaultKindName(r.kind);
    if (r.src != kAnyNode) out << " src=" << r.src;
    if (r.dst != kAnyNode) out << " dst=" << r.dst;
    if (r.nth != 0) out << " nth=" << r.nth;
    if (r.at_ns != 0) out << " at=" << r.at_ns << "ns";
    if (r.for_ns != 0) out << " for=" << r.for_ns << "ns";
    if (r.by != 0) out << " by=" << r.by;
    if (!r.side_a.empty()) out << " a=" << list(r.side_a);
    if (!r.side_b.empty()) out << " b=" << list(r.side_b);
    out << '\n';
  }
  return out.str();
}

Result<SwarmSettings> SwarmMix(std::string_view name) {
  SwarmSettings s;
  auto on = [&](std::initializer_list<FaultKind> kinds) {
    for (FaultKind k : kinds) s.enabled[static_cast<size_t>(k)] = true;
  };
  const auto transfer = {FaultKind::kShortRead,        FaultKind::kShortWrite,
                         FaultKind::kUnregisteredLocal, FaultKind::kStaleRemoteKey,
                         FaultKind::kOutsideWindow,     FaultKind::kCompletionDelay,
                         FaultKind::kCompletionReorder, FaultKind::kCompletionLoss,
                         FaultKind::kRegistrationFailure};
  const auto messages = {FaultKind::kMessageDelay, FaultKind::kMessageDrop,
                         FaultKind::kMessageDuplicate, FaultKind::kPartition};
  const auto node = {FaultKind::kCrash, FaultKind::kHang};
  if (name == "none") return s;
  if (name == "transfer") {
    on(transfer);
  } else if (name == "messages") {
    on(messages);
  } else if (name == "node") {
    on(node);
  } else if (name == "all") {
    on(transfer);
    on(messages);
    on(node);
  } else {
    // A comma-separated list of fault kinds.
    std::string_view rest = name;
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      Result<FaultKind> k = ParseFaultKind(rest.substr(0, comma));
      if (!k.ok()) {
        return Status(ErrorCode::INVALID_PARAMS,
                      "fault mix '" + std::string(name) + "': " + k.status().message() +
                          " (mixes: none, transfer, messages, node, all, or a list of kinds)");
      }
      s.enabled[static_cast<size_t>(*k)] = true;
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return s;
}

std::vector<std::string> SwarmMixNames() { return {"none", "transfer", "messages", "node", "all"}; }

}  // namespace tidal::sim
