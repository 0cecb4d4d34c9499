// ReachTable (see reach_table.h).
#include "tidal/cluster/reach_table.h"

#include <algorithm>
#include <cstdio>

#include "tidal/assert.h"

namespace tidal::cluster {

ReachTable::ReachTable(std::vector<std::string> paths, std::vector<std::string> faults)
    : paths_(std::move(paths)),
      faults_(std::move(faults)),
      cells_(paths_.size() * faults_.size(), Cell::kNotApplicable),
      counts_(paths_.size() * faults_.size(), 0) {}

size_t ReachTable::Index(size_t path, size_t fault) const {
  TIDAL_ASSERT(path < paths_.size() && fault < faults_.size());
  return path * faults_.size() + fault;
}

void ReachTable::Set(size_t path, size_t fault, Cell cell) { cells_[Index(path, fault)] = cell; }

void ReachTable::Hit(size_t path, size_t fault, uint64_t n) {
  const size_t i = Index(path, fault);
  TIDAL_ASSERT_MSG(cells_[i] != Cell::kNotApplicable, "ReachTable::Hit of a cell that does not apply");
  counts_[i] += n;
}

uint64_t ReachTable::count(size_t path, size_t fault) const { return counts_[Index(path, fault)]; }

ReachTable::Cell ReachTable::cell(size_t path, size_t fault) const {
  return cells_[Index(path, fault)];
}

void ReachTable::Merge(const ReachTable& other) {
  if (paths_.empty() && faults_.empty()) {
    *this = other;
    return;
  }
  TIDAL_ASSERT_MSG(other.paths_ == paths_ && other.faults_ == faults_ && other.cells_ == cells_,
                   "ReachTable::Merge of tables with different layouts");
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
}

std::vector<std::string> ReachTable::Missing() const {
  std::vector<std::string> out;
  for (size_t p = 0; p < paths_.size(); ++p) {
    for (size_t f = 0; f < faults_.size(); ++f) {
      if (cell(p, f) == Cell::kRequired && count(p, f) == 0) {
        out.push_back(paths_[p] + " × " + faults_[f]);
      }
    }
  }
  return out;
}

std::string ReachTable::MissingMessage(const std::string& campaign) const {
  std::vector<std::string> missing = Missing();
  if (missing.empty()) return "";
  std::string list;
  for (const std::string& m : missing) list += (list.empty() ? "" : ", ") + m;
  return campaign + " campaign: " + std::to_string(missing.size()) +
         " required (path × fault) pair" + (missing.size() == 1 ? "" : "s") +
         " never reached over the seeds run: " + list;
}

std::string ReachTable::Text() const {
  size_t first = 4;
  for (const std::string& p : paths_) first = std::max(first, p.size());
  std::vector<size_t> width;
  for (const std::string& f : faults_) width.push_back(std::max<size_t>(f.size(), 6));
  std::string out;
  char buf[64];
  auto pad = [&](const std::string& s, size_t w, bool right) {
    std::string fill(w > s.size() ? w - s.size() : 0, ' ');
    out += right ? fill + s : s + fill;
  };
  pad("path", first, false);
  for (size_t f = 0; f < faults_.size(); ++f) {
    out += "  ";
    pad(faults_[f], width[f], true);
  }
  out += "\n";
  for (size_t p = 0; p < paths_.size(); ++p) {
    pad(paths_[p], first, false);
    for (size_t f = 0; f < faults_.size(); ++f) {
      out += "  ";
      const Cell c = cell(p, f);
      if (c == Cell::kNotApplicable) {
        pad(".", width[f], true);
        continue;
      }
      std::snprintf(buf, sizeof buf, "%llu%s", static_cast<unsigned long long>(count(p, f)),
                    c == Cell::kRequired && count(p, f) == 0 ? "!" : "");
      pad(buf, width[f], true);
    }
    out += "\n";
  }
  return out;
}

std::string ReachTable::Json() const {
  auto strings = [](const std::vector<std::string>& v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ",\"" : "\"") + v[i] + "\"";
    return s + "]";
  };
  std::string counts = "[", required = "[";
  for (size_t p = 0; p < paths_.size(); ++p) {
    counts += p ? ",[" : "[";
    required += p ? ",[" : "[";
    for (size_t f = 0; f < faults_.size(); ++f) {
      counts += (f ? "," : "") + std::to_string(count(p, f));
      const Cell c = cell(p, f);
      required += (f ? "," : "") + std::string(c == Cell::kRequired   ? "1"
                                                : c == Cell::kReported ? "0"
                                                                       : "-1");
    }
    counts += "]";
    required += "]";
  }
  return "{\"paths\":" + strings(paths_) + ",\"faults\":" + strings(faults_) +
         ",\"counts\":" + counts + "],\"required\":" + required +
         "],\"missing\":" + strings(Missing()) + "}";
}

}  // namespace tidal::cluster
