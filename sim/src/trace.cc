#include "tidal/sim/trace.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

namespace tidal::sim {

uint64_t Mix64(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  h *= 0xff51afd7ed558ccdULL;
  return h ^ (h >> 33);
}

uint64_t HashBytes(uint64_t h, std::string_view bytes) {
  // Eight bytes a step: trace keys and ops are short, and this runs for every event.
  uint64_t x = 0xcbf29ce484222325ULL ^ bytes.size();
  size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, bytes.data() + i, 8);
    x = (x ^ w) * 0x100000001b3ULL;
    x ^= x >> 29;
  }
  // The last 0..7 bytes as a little-endian word (what a memcpy into a zeroed word gives on
  // this little-endian target), assembled in registers: a variable-length memcpy is a call
  // and a store-to-load stall on every record.
  uint64_t tail = 0;
  for (size_t k = 0; i + k < bytes.size(); ++k) {
    tail |= uint64_t{static_cast<uint8_t>(bytes[i + k])} << (8 * k);
  }
  x = (x ^ tail) * 0x100000001b3ULL;
  return Mix64(h, x);
}

Trace::Trace() : digest_(0x746964616c00ULL) {}
Trace::~Trace() = default;

namespace {
void AppendJsonString(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}
}  // namespace

void Trace::Record(uint64_t time_ns, int64_t node, std::string_view op, uint64_t tape_pos,
                   std::initializer_list<TraceField> fields) {
  ++events_;
  uint64_t h = Mix64(digest_, time_ns);
  h = Mix64(h, static_cast<uint64_t>(node));
  h = HashBytes(h, op);
  h = Mix64(h, tape_pos);
  // The keys are fixed by the op in a given build, so only the values are hashed.
  for (const TraceField& f : fields) h = f.is_string ? HashBytes(h, f.s) : Mix64(h, f.u);
  digest_ = h;
  if (!keep_lines_) return;
  std::string line = "{\"t\":" + std::to_string(time_ns) + ",\"node\":" + std::to_string(node) +
                     ",\"op\":";
  AppendJsonString(line, op);
  line += ",\"tape\":" + std::to_string(tape_pos);
  for (const TraceField& f : fields) {
    line += ',';
    AppendJsonString(line, f.key);
    line += ':';
    if (f.is_string) {
      AppendJsonString(line, f.s);
    } else if (f.is_signed) {
      line += std::to_string(static_cast<int64_t>(f.u));
    } else {
      line += std::to_string(f.u);
    }
  }
  line += '}';
  lines_.push_back(std::move(line));
}

Status Trace::WriteJsonLines(const std::string& path, const std::string& header,
                             const std::vector<std::string>& lines, uint64_t events,
                             uint64_t digest, std::string_view verdict) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return Status(ErrorCode::INVALID_PARAMS, "cannot open trace file '" + path + "'");
  if (!header.empty()) out << header << '\n';
  for (const std::string& l : lines) out << l << '\n';
  char hex[32];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(digest));
  std::string footer = "{\"footer\":true,\"events\":" + std::to_string(events) +
                       ",\"digest\":\"" + hex + "\",\"verdict\":";
  AppendJsonString(footer, verdict);
  out << footer << "}\n";
  if (!out) return Status(ErrorCode::INTERNAL_ERROR, "writing trace file '" + path + "' failed");
  return Status();
}

Status Trace::WriteChromeTrace(const std::vector<std::string>& lines, const std::string& path) {
  // Instant events, one track (tid) per node, times in microseconds as the format wants;
  // metadata events name the tracks "node0", "node1", ... and "world".
  constexpr int64_t kWorldTid = 999;
  nlohmann::json events = nlohmann::json::array();
  std::vector<int64_t> tids;
  for (const std::string& l : lines) {
    nlohmann::json e = nlohmann::json::parse(l, nullptr, false);
    if (e.is_discarded() || !e.contains("node") || !e.contains("t")) continue;
    nlohmann::json args = nlohmann::json::object();
    for (auto it = e.begin(); it != e.end(); ++it) {
      if (it.key() != "t" && it.key() != "node" && it.key() != "op") args[it.key()] = it.value();
    }
    const int64_t node = e["node"].get<int64_t>();
    const int64_t tid = node < 0 ? kWorldTid : node;
    if (std::find(tids.begin(), tids.end(), tid) == tids.end()) tids.push_back(tid);
    events.push_back({{"name", e["op"]},
                      {"cat", "tidal"},
                      {"ph", "i"},
                      {"s", "t"},
                      {"ts", e["t"].get<uint64_t>() / 1000.0},
                      {"pid", 1},
                      {"tid", tid},
                      {"args", args}});
  }
  for (int64_t tid : tids) {
    events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", 1}, {"tid", tid},
                      {"args", {{"name", tid == kWorldTid ? "world" : "node" + std::to_string(tid)}}}});
  }
  nlohmann::json doc = {{"traceEvents", events}, {"displayTimeUnit", "ns"}};
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return Status(ErrorCode::INVALID_PARAMS, "cannot open chrome trace '" + path + "'");
  out << doc.dump();
  if (!out) return Status(ErrorCode::INTERNAL_ERROR, "writing '" + path + "' failed");
  return Status();
}

Result<TraceEvent> Trace::ParseLine(std::string_view line) {
  nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Status(ErrorCode::CORRUPT_INPUT, "trace line is not a JSON object");
  }
  TraceEvent e;
  auto t = j.find("t");
  if (t == j.end() || !t->is_number_unsigned()) {
    return Status(ErrorCode::CORRUPT_INPUT, "trace line: field 't' missing or not unsigned");
  }
  e.time_ns = t->get<uint64_t>();
  auto node = j.find("node");
  if (node == j.end() || !node->is_number_integer()) {
    return Status(ErrorCode::CORRUPT_INPUT, "trace line: field 'node' missing or not integer");
  }
  e.node = node->get<int64_t>();
  auto op = j.find("op");
  if (op == j.end() || !op->is_string()) {
    return Status(ErrorCode::CORRUPT_INPUT, "trace line: field 'op' missing or not a string");
  }
  e.op = op->get<std::string>();
  auto tape = j.find("tape");
  if (tape == j.end() || !tape->is_number_unsigned()) {
    return Status(ErrorCode::CORRUPT_INPUT, "trace line: field 'tape' missing or not unsigned");
  }
  e.tape = tape->get<uint64_t>();
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "t" || it.key() == "node" || it.key() == "op" || it.key() == "tape") continue;
    e.args.emplace_back(it.key(), it.value().dump());
  }
  return e;
}

}  // namespace tidal::sim
