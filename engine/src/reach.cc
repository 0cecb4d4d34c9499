// The registry of reachability marks (see reach.h).
#include "tidal/reach.h"

#include <mutex>

namespace tidal::reach {

struct Registry {
  // Function-local statics: marks register during static initialization, in any order.
  static std::mutex& Mutex() {
    static std::mutex m;
    return m;
  }
  static Point*& Head() {
    static Point* head = nullptr;
    return head;
  }
  static void Add(Point* p) {
    std::lock_guard<std::mutex> lock(Mutex());
    p->next_ = Head();
    Head() = p;
  }
  static std::vector<PointCount> Read(std::string_view prefix) {
    std::vector<PointCount> out;
    std::lock_guard<std::mutex> lock(Mutex());
    for (Point* p = Head(); p != nullptr; p = p->next_) {
      std::string_view name(p->name_);
      if (name.substr(0, prefix.size()) != prefix) continue;
      PointCount c;
      c.name = std::string(name);
      c.sometimes = p->sometimes_;
      c.hits = p->hits_.load(std::memory_order_relaxed);
      c.true_hits = p->sometimes_ ? p->true_hits_.load(std::memory_order_relaxed) : c.hits;
      out.push_back(std::move(c));
    }
    std::sort(out.begin(), out.end(), [](const PointCount& a, const PointCount& b) {
      return a.name != b.name ? a.name < b.name : a.sometimes < b.sometimes;
    });
    return out;
  }
  static void Zero() {
    std::lock_guard<std::mutex> lock(Mutex());
    for (Point* p = Head(); p != nullptr; p = p->next_) {
      p->hits_.store(0, std::memory_order_relaxed);
      p->true_hits_.store(0, std::memory_order_relaxed);
    }
  }
};

Point::Point(const char* name, bool sometimes) : name_(name), sometimes_(sometimes) {
  Registry::Add(this);
}

std::vector<PointCount> Snapshot(std::string_view prefix) { return Registry::Read(prefix); }

std::vector<PointCount> Unreached(std::string_view prefix) {
  std::vector<PointCount> all = Registry::Read(prefix);
  std::erase_if(all, [](const PointCount& c) { return c.reached(); });
  return all;
}

void Reset() { Registry::Zero(); }

std::string Report(const std::vector<std::string>& prefixes) {
  std::vector<PointCount> all;
  for (const std::string& p : prefixes) {
    std::vector<PointCount> some = Snapshot(p);
    all.insert(all.end(), some.begin(), some.end());
  }
  size_t reached = 0;
  std::string lines;
  for (const PointCount& c : all) {
    if (c.reached()) {
      ++reached;
      continue;
    }
    lines += "  never reached: " + c.name +
             (c.sometimes ? " (SOMETIMES: ran " + std::to_string(c.hits) + " times, never true)"
                          : " (REACHABLE)") +
             "\n";
  }
  return "reach marks: " + std::to_string(reached) + " of " + std::to_string(all.size()) +
         " reached\n" + lines;
}

}  // namespace tidal::reach
