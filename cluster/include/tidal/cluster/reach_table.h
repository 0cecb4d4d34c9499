// ReachTable: which (path × fault) pairs a campaign reached, over one seed or many.
//
// A campaign names its paths (the calls it drives: get, put_from, all_reduce, send/recv,
// ...) and the faults that matter to them (lease expiry mid-read followed by reuse of the
// memory, the writer dying mid-put, a crash, hang or partition during the call). Each cell
// is not applicable, reported (counted and printed), or required: a campaign whose
// required cells are still zero after all its seeds has a blind spot, and fails with a
// message naming the pairs (Missing / MissingMessage). The cells' layout comes from the
// campaign (StoreReachTable, CollReachTable); a seed's result carries its own table and
// the program adds them up (Merge).
//
// Thread safety: none (a value type).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tidal::cluster {

class ReachTable {
 public:
  enum class Cell : uint8_t { kNotApplicable, kReported, kRequired };

  ReachTable() = default;
  // Every cell starts kNotApplicable with count 0.
  ReachTable(std::vector<std::string> paths, std::vector<std::string> faults);

  void Set(size_t path, size_t fault, Cell cell);
  // Counts one (or n) occurrences of `fault` during `path`. Asserts the cell applies.
  void Hit(size_t path, size_t fault, uint64_t n = 1);
  uint64_t count(size_t path, size_t fault) const;
  Cell cell(size_t path, size_t fault) const;
  // Adds another table's counts (same layout: asserts).
  void Merge(const ReachTable& other);

  const std::vector<std::string>& paths() const { return paths_; }
  const std::vector<std::string>& faults() const { return faults_; }

  // Required pairs still at zero, as "path × fault".
  std::vector<std::string> Missing() const;
  // "" when nothing is missing; else one sentence naming every missing pair.
  std::string MissingMessage(const std::string& campaign) const;
  // A fixed-width table: a row per path, a column per fault; counts, '.' where the fault
  // does not apply, and a count of 0 marked "0!" where the pair is required.
  std::string Text() const;
  // {"paths":[...],"faults":[...],"counts":[[...]],"required":[[...]],"missing":[...]}
  // (required[i][j] is 1, 0, or -1 for not applicable).
  std::string Json() const;

 private:
  size_t Index(size_t path, size_t fault) const;

  std::vector<std::string> paths_, faults_;
  std::vector<Cell> cells_;
  std::vector<uint64_t> counts_;
};

}  // namespace tidal::cluster
