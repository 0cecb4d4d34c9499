// A per-chunk timeline of the process group's device data path, for measurements
// (tidal-cuda-bench coll --trace): off unless Enable() was called, then each event is one
// relaxed atomic increment and a store into a fixed buffer (events past its capacity are
// dropped and counted). Timestamps are the caller's: the process group passes its Env's
// NowNs (monotonic nanoseconds on a real fabric, virtual time in the simulator), so the
// library itself never reads a clock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace tidal::coll::trace {

enum class Ev : uint8_t {
  kOpStart,         // RunAlgorithm entered (seq: op seq)
  kStageStart,      // a chunk's staging copy queued (seq: chunk seq)
  kStageDone,       // its completion seen on the executor
  kWriteStart,      // its WRITE handed to the engine (a pulled message: the reader's READs,
                    // seq: the offer's)
  kWriteDone,       // its WRITE (READs) completion seen on the executor
  kArrived,         // a chunk's notification taken by the receiver (seq: chunk seq)
  kFoldStart,       // its copy or fold queued
  kFoldDone,        // its completion seen on the executor (the credit goes back)
  kFinalizeStart,   // the agreement committed: the output copy queued (seq: op seq)
  kFinalizeDone,    // the output copy finished
};

struct Entry {
  uint64_t ns;
  uint64_t seq;
  int32_t rank;
  Ev ev;
};

// Starts recording into a buffer of `capacity` events (0: stop); clears what was recorded.
void Enable(std::size_t capacity);
bool Enabled();
// Records `ev` at `now_ns` (the recorder's Env::NowNs()); nothing when not enabled.
void Record(Ev ev, int rank, uint64_t seq, uint64_t now_ns);
// The events recorded so far, in recording order, and clears them (recording goes on).
// Call only while no group is running.
std::vector<Entry> Take(uint64_t* dropped = nullptr);

}  // namespace tidal::coll::trace
