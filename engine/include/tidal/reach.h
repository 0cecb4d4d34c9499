// Reachability marks: named points in the code that a campaign should reach, in the style
// of Antithesis' "sometimes" assertions. A campaign that never reaches a mark has a blind
// spot: the marked path (a refresh retried, a lease expired mid-read, a dead writer's put
// reclaimed, an agreement retried over survivors) ran under none of its seeds.
//
//   TIDAL_REACHABLE("store.client.refresh_retried");            // counts hits
//   TIDAL_SOMETIMES(hold > now, "store.master.remove_deferred");  // hits, and hits where true
//
// Every mark is registered before main runs, whether or not its code ever executes (the
// point is a static member of a class template instantiated by the macro's expansion), so
// the marks never reached are known: Unreached() lists them. A SOMETIMES mark is reached
// once its condition was true at least once; a REACHABLE mark once it was hit.
//
// Names: dotted, layer first ("engine.", "store.client.", "store.master.", "coll."), so a
// campaign lists the marks of the layers it exercises by prefix. Two sites with the same
// name and kind share one point (their hits add up).
//
// Cost: one relaxed atomic increment per hit (two for a true SOMETIMES). The condition is
// evaluated exactly once, also when marks are compiled out (TIDAL_REACH_OFF).
//
// Thread safety: hits from any thread; Snapshot, Unreached and Reset may run concurrently
// with hits (counts read then are approximate, never torn).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tidal::reach {

// One named point. Constructed only by the macros (as a static), which registers it.
class Point {
 public:
  Point(const char* name, bool sometimes);
  Point(const Point&) = delete;
  Point& operator=(const Point&) = delete;

  void Hit() { hits_.fetch_add(1, std::memory_order_relaxed); }
  void Hit(bool cond) {
    hits_.fetch_add(1, std::memory_order_relaxed);
    if (cond) true_hits_.fetch_add(1, std::memory_order_relaxed);
  }

 private:
  friend struct Registry;
  const char* name_;
  bool sometimes_;
  std::atomic<uint64_t> hits_{0};
  std::atomic<uint64_t> true_hits_{0};
  Point* next_ = nullptr;
};

struct PointCount {
  std::string name;
  bool sometimes = false;
  uint64_t hits = 0;       // times the mark ran
  uint64_t true_hits = 0;  // SOMETIMES: times its condition held (REACHABLE: == hits)
  bool reached() const { return sometimes ? true_hits > 0 : hits > 0; }
};

// Every registered mark whose name starts with `prefix`, sorted by name.
std::vector<PointCount> Snapshot(std::string_view prefix = {});
// The marks under `prefix` not reached (see PointCount::reached), sorted by name.
std::vector<PointCount> Unreached(std::string_view prefix = {});
// Zeroes every count (tests; a campaign that reports per run).
void Reset();
// "N of M marks reached" and one line per unreached mark, for the marks under each of
// `prefixes`; what the campaign programs print.
std::string Report(const std::vector<std::string>& prefixes);

namespace detail {
// A string literal as a template argument (C++20 class-type NTTP).
template <size_t N>
struct Name {
  char text[N];
  constexpr Name(const char (&s)[N]) { std::copy_n(s, N, text); }  // NOLINT: implicit
};
template <Name kName, bool kSometimes>
struct Site {
  static inline Point point{kName.text, kSometimes};
};
}  // namespace detail

}  // namespace tidal::reach

#ifdef TIDAL_REACH_OFF
#define TIDAL_REACHABLE(name) ((void)0)
#define TIDAL_SOMETIMES(cond, name) ((void)(cond))
#else
#define TIDAL_REACHABLE(name) (::tidal::reach::detail::Site<name, false>::point.Hit())
#define TIDAL_SOMETIMES(cond, name) \
  (::tidal::reach::detail::Site<name, true>::point.Hit(static_cast<bool>(cond)))
#endif
