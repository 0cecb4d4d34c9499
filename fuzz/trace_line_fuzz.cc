// Fuzz target: the trace line decoder (Trace::ParseLine) and the line encoder of
// Trace::Record, which must agree with each other.
//
// Proves, for every input:
//  * decoding: ParseLine either rejects with CORRUPT_INPUT or returns an event that,
//    written back as a JSON line, decodes to an equal event (time, node, op, tape
//    position and every argument's JSON text), so `tidal-sim replay` reads what it
//    wrote;
//  * encoding: an event recorded from values taken from the input (op and string
//    arguments with quotes, backslashes and control characters, any integers, a key
//    chosen by the input) is written as a line that ParseLine accepts and that gives
//    back exactly those values; the rolling digest of two traces fed the same event is
//    the same.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "fuzz_input.h"
#include "tidal/sim/trace.h"

namespace {

using tidal::sim::Trace;
using tidal::sim::TraceEvent;

std::string Render(const TraceEvent& e) {
  std::string line = "{\"t\":" + std::to_string(e.time_ns) + ",\"node\":" +
                     std::to_string(e.node) + ",\"op\":" + nlohmann::json(e.op).dump() +
                     ",\"tape\":" + std::to_string(e.tape);
  for (const auto& [key, value] : e.args) line += "," + nlohmann::json(key).dump() + ":" + value;
  return line + "}";
}

bool SameEvent(const TraceEvent& a, const TraceEvent& b) {
  return a.time_ns == b.time_ns && a.node == b.node && a.op == b.op && a.tape == b.tape &&
         a.args == b.args;
}

void CheckDecode(std::string_view line) {
  tidal::Result<TraceEvent> e = Trace::ParseLine(line);
  if (!e.ok()) {
    TIDAL_FUZZ_CHECK(e.code() == tidal::ErrorCode::CORRUPT_INPUT, e.status().ToString());
    return;
  }
  const std::string again_line = Render(*e);
  tidal::Result<TraceEvent> again = Trace::ParseLine(again_line);
  TIDAL_FUZZ_CHECK(again.ok(), "a decoded event written back does not decode: " + again_line);
  TIDAL_FUZZ_CHECK(SameEvent(*e, *again), "decode->write->decode changed: " + again_line);
}

void CheckEncode(const uint8_t* data, size_t size) {
  tidal::fuzz::FuzzInput in(data, size);
  const uint64_t time_ns = in.U64();
  const int64_t node = static_cast<int64_t>(in.U64());
  const uint64_t tape = in.U64();
  const uint64_t u = in.U64();
  const int64_t i = static_cast<int64_t>(in.U64());
  // Strings below 0x80: Record writes bytes >= 0x80 through unchanged, which is valid
  // JSON only for valid UTF-8, and every op and argument tidal records is ASCII.
  const std::string op = in.String(24, 0, 0x7f);
  const std::string text = in.String(48, 0, 0x7f);
  // A key chosen by the input, starting with 'x' so that it never collides with the
  // fixed keys; a key is a C string, so no NUL inside.
  const std::string key = "x" + in.String(8, 1, 0x7f);

  Trace trace, twin;
  trace.EnableLines(true);
  trace.Record(time_ns, node, op, tape, {{"k_u", u}, {"k_i", i}, {"k_s", text}, {key.c_str(), u}});
  twin.Record(time_ns, node, op, tape, {{"k_u", u}, {"k_i", i}, {"k_s", text}, {key.c_str(), u}});
  TIDAL_FUZZ_CHECK(trace.digest() == twin.digest() && trace.events() == 1,
                   "the digest depends on more than the event");
  TIDAL_FUZZ_CHECK(trace.lines().size() == 1, "one event, one line");
  const std::string& line = trace.lines()[0];
  tidal::Result<TraceEvent> e = Trace::ParseLine(line);
  TIDAL_FUZZ_CHECK(e.ok(), "a recorded line does not decode: " + e.status().ToString() + ": " +
                               line);
  TIDAL_FUZZ_CHECK(e->time_ns == time_ns && e->node == node && e->op == op && e->tape == tape,
                   "recorded fields came back different: " + line);
  // Arguments come back in key order ("k_i" < "k_s" < "k_u" < "x...").
  TIDAL_FUZZ_CHECK(e->args.size() == 4, "expected 4 arguments: " + line);
  const auto& a = e->args;
  TIDAL_FUZZ_CHECK(a[0].first == "k_i" && a[0].second == std::to_string(i), line);
  TIDAL_FUZZ_CHECK(a[1].first == "k_s" && nlohmann::json::parse(a[1].second) == text, line);
  TIDAL_FUZZ_CHECK(a[2].first == "k_u" && a[2].second == std::to_string(u), line);
  TIDAL_FUZZ_CHECK(a[3].first == key && a[3].second == std::to_string(u), line);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  CheckDecode(std::string_view(reinterpret_cast<const char*>(data), size));
  CheckEncode(data, size);
  return 0;
}
