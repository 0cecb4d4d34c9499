// TimerQueue: the pending timers of a RealEnv, earliest first.
//
// A binary min-heap on (due, order) whose entries name slots; a slot holds the callback,
// its entry's place in the heap and a generation. Cancelling finds its entry through the
// slot and removes it (O(log n)), and a fired or cancelled id is never taken for a live
// timer (its slot's generation has moved on). Once the slots and the heap have grown to
// the largest number of timers pending at once, adding and removing allocate nothing:
// every request and transfer of a busy loop schedules a deadline and cancels it, and the
// two ordered maps this replaces allocated a node each way for each of them.
//
// Not thread-safe: RealEnv guards it with its lock.
#pragma once

#include <cstdint>
#include <vector>

#include "tidal/callback.h"
#include "tidal/env.h"

namespace tidal::backends {

class TimerQueue {
 public:
  // Never returns 0. Timers of equal `due` fire in the order they were added.
  TimerId Add(uint64_t due, Callback fn) {
    uint32_t idx;
    if (!free_.empty()) {
      idx = free_.back();
      free_.pop_back();
    } else {
      idx = static_cast<uint32_t>(slots_.size());
      slots_.emplace_back();
    }
    Slot& s = slots_[idx];
    s.fn = std::move(fn);
    s.live = true;
    heap_.push_back(Entry{due, next_order_++, idx});
    SiftUp(heap_.size() - 1);
    return (static_cast<uint64_t>(s.gen) << 32) | (static_cast<uint64_t>(idx) + 1);
  }

  // Removes a pending timer and hands its callback back (for the caller to destroy where
  // it likes). An empty Callback if `id` fired, was cancelled or was never given out.
  Callback Cancel(TimerId id) {
    const uint64_t low = id & 0xffffffffu;
    if (low == 0 || low > slots_.size()) return Callback();
    const uint32_t idx = static_cast<uint32_t>(low - 1);
    Slot& s = slots_[idx];
    if (!s.live || s.gen != static_cast<uint32_t>(id >> 32)) return Callback();
    RemoveAt(s.pos);
    return Release(idx);
  }

  bool empty() const { return heap_.empty(); }
  size_t size() const { return heap_.size(); }
  // The earliest due time. Requires !empty().
  uint64_t next_due() const { return heap_.front().due; }

  // Removes the earliest timer and returns its callback. Requires !empty().
  Callback PopFirst() {
    const uint32_t idx = heap_.front().slot;
    RemoveAt(0);
    return Release(idx);
  }

 private:
  struct Slot {
    Callback fn;
    uint32_t pos = 0;  // index of its entry in heap_, while live
    uint32_t gen = 1;  // bumped when the slot is freed
    bool live = false;
  };
  struct Entry {
    uint64_t due;
    uint64_t order;
    uint32_t slot;
    bool Before(const Entry& o) const { return due != o.due ? due < o.due : order < o.order; }
  };

  Callback Release(uint32_t idx) {
    Slot& s = slots_[idx];
    Callback fn = std::move(s.fn);  // leaves s.fn empty
    s.live = false;
    ++s.gen;
    if (s.gen == 0) s.gen = 1;
    free_.push_back(idx);
    return fn;
  }

  void Place(size_t i, const Entry& e) {
    heap_[i] = e;
    slots_[e.slot].pos = static_cast<uint32_t>(i);
  }

  void RemoveAt(size_t i) {
    const Entry last = heap_.back();
    heap_.pop_back();
    if (i == heap_.size()) return;  // it was the last entry
    Place(i, last);
    if (i > 0 && last.Before(heap_[(i - 1) / 2])) {
      SiftUp(i);
    } else {
      SiftDown(i);
    }
  }

  void SiftUp(size_t i) {
    const Entry e = heap_[i];
    while (i > 0) {
      const size_t parent = (i - 1) / 2;
      if (!e.Before(heap_[parent])) break;
      Place(i, heap_[parent]);
      i = parent;
    }
    Place(i, e);
  }

  void SiftDown(size_t i) {
    const Entry e = heap_[i];
    const size_t n = heap_.size();
    for (;;) {
      size_t child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && heap_[child + 1].Before(heap_[child])) ++child;
      if (!heap_[child].Before(e)) break;
      Place(i, heap_[child]);
      i = child;
    }
    Place(i, e);
  }

  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;
  std::vector<Entry> heap_;
  uint64_t next_order_ = 0;
};

}  // namespace tidal::backends
