// Trace: every simulated event (virtual time, node, op, arguments, outcome, tape
// position) folded into a rolling 64-bit digest and, when asked, written as JSON lines
// and exported to the Chrome trace-event format (open it in Perfetto / chrome://tracing).
//
// The digest is computed from the same fields the JSON carries, so two runs with equal
// digests wrote byte-identical traces (up to hash collisions). Recording with no sink
// costs a few multiplies per field.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "tidal/status.h"

namespace tidal::sim {

struct TraceField {
  TraceField(const char* k, uint64_t v) : key(k), is_string(false), u(v) {}
  TraceField(const char* k, int64_t v) : key(k), is_string(false), u(static_cast<uint64_t>(v)), is_signed(true) {}
  TraceField(const char* k, int v) : TraceField(k, static_cast<int64_t>(v)) {}
  TraceField(const char* k, uint32_t v) : TraceField(k, static_cast<uint64_t>(v)) {}
  TraceField(const char* k, std::string_view v) : key(k), is_string(true), s(v) {}
  TraceField(const char* k, const char* v) : key(k), is_string(true), s(v) {}
  TraceField(const char* k, const std::string& v) : key(k), is_string(true), s(v) {}
  const char* key;
  bool is_string;
  uint64_t u = 0;
  std::string_view s;
  bool is_signed = false;
};

// One parsed trace line (for replay and the trace decoder fuzz target).
struct TraceEvent {
  uint64_t time_ns = 0;
  int64_t node = -1;  // -1 for world-level events
  std::string op;
  uint64_t tape = 0;
  std::vector<std::pair<std::string, std::string>> args;  // values as JSON text
};

class Trace {
 public:
  Trace();
  ~Trace();

  // Keeps JSON lines in memory (WriteJsonLines / WriteChromeTrace need them).
  void EnableLines(bool on) { keep_lines_ = on; }
  bool lines_enabled() const { return keep_lines_; }

  void Record(uint64_t time_ns, int64_t node, std::string_view op, uint64_t tape_pos,
              std::initializer_list<TraceField> fields);

  uint64_t digest() const { return digest_; }
  uint64_t events() const { return events_; }
  const std::vector<std::string>& lines() const { return lines_; }

  // The header line carries the run's configuration so `tidal-sim replay` can re-run it.
  void SetHeader(std::string json_header) { header_ = std::move(json_header); }
  const std::string& header() const { return header_; }

  // JSON lines: the header, one line per event, then a footer with digest and verdict.
  Status WriteJsonLines(const std::string& path, std::string_view verdict) const {
    return WriteJsonLines(path, header_, lines_, events_, digest_, verdict);
  }
  Status WriteChromeTrace(const std::string& path) const { return WriteChromeTrace(lines_, path); }
  // The same for lines rendered earlier (one JSON event per line).
  static Status WriteChromeTrace(const std::vector<std::string>& lines, const std::string& path);
  // Writes header, lines and a footer {"footer":true,"events","digest","verdict"}.
  static Status WriteJsonLines(const std::string& path, const std::string& header,
                               const std::vector<std::string>& lines, uint64_t events,
                               uint64_t digest, std::string_view verdict);

  // Decodes one JSON trace line; CORRUPT_INPUT names what is wrong.
  static Result<TraceEvent> ParseLine(std::string_view line);

 private:
  uint64_t digest_;
  uint64_t events_ = 0;
  bool keep_lines_ = false;
  std::string header_;
  std::vector<std::string> lines_;
};

// 64-bit mixing used by the digest (also handy for checkers).
uint64_t Mix64(uint64_t h, uint64_t v);
uint64_t HashBytes(uint64_t h, std::string_view bytes);

}  // namespace tidal::sim
