#include "tidal/collectives/chunk_trace.h"

#include <atomic>
#include <memory>

namespace tidal::coll::trace {
namespace {

struct Buffer {
  std::unique_ptr<Entry[]> entries;
  size_t capacity = 0;
  std::atomic<size_t> next{0};
};

std::atomic<Buffer*> g_buffer{nullptr};

}  // namespace

void Enable(size_t capacity) {
  Buffer* fresh = nullptr;
  if (capacity > 0) {
    fresh = new Buffer();
    fresh->entries.reset(new Entry[capacity]);
    fresh->capacity = capacity;
  }
  // The old buffer is leaked on purpose: a recorder may still hold it (a measurement tool's
  // few buffers, never on a hot path).
  g_buffer.store(fresh, std::memory_order_release);
}

bool Enabled() { return g_buffer.load(std::memory_order_relaxed) != nullptr; }

void Record(Ev ev, int rank, uint64_t seq, uint64_t now_ns) {
  Buffer* b = g_buffer.load(std::memory_order_acquire);
  if (b == nullptr) return;
  const size_t i = b->next.fetch_add(1, std::memory_order_relaxed);
  if (i >= b->capacity) return;
  b->entries[i] = Entry{now_ns, seq, static_cast<int32_t>(rank), ev};
}

std::vector<Entry> Take(uint64_t* dropped) {
  Buffer* b = g_buffer.load(std::memory_order_acquire);
  std::vector<Entry> out;
  if (b == nullptr) return out;
  const size_t n = b->next.exchange(0);
  const size_t kept = n < b->capacity ? n : b->capacity;
  out.assign(b->entries.get(), b->entries.get() + kept);
  if (dropped != nullptr) *dropped = n - kept;
  return out;
}

}  // namespace tidal::coll::trace
