// Tape: the single source of every nondeterministic choice in a simulated world.
//
// Each choice (which ready task runs first, a delay, a fault, a workload decision) is one
// draw. A tape is filled from a seed (xoshiro256** seeded through splitmix64), or read
// from bytes (the fuzzer's input; past the end every draw is 0, the "calmest" choice), or
// replayed from a recording of draws. Same tape, same run, bit for bit.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace tidal::sim {

// Exploration (explore.h): a chooser decides every bounded draw instead of the tape's
// source. Choose(bound) returns a value in [0, bound); the tape records the raw draw that
// gives the same value, so a recording replays through Tape::FromDraws. Unbounded draws
// (Next) are data, not choices: under a chooser they are 0.
class TapeChooser {
 public:
  virtual ~TapeChooser() = default;
  virtual uint64_t Choose(uint64_t bound) = 0;
  // Whether the value of a draw with this bound is time, not data: a delay, or the chance
  // of one, that acts only through when an event runs. Under time abstraction
  // (SchedulingOptions::abstract_time) such values stay out of an actor's history.
  virtual bool IsTiming(uint64_t bound) const {
    (void)bound;
    return false;
  }
};

class Tape {
 public:
  static Tape FromSeed(uint64_t seed);
  // Each draw takes the next 8 bytes (little-endian, zero-padded past the end).
  static Tape FromBytes(std::span<const uint8_t> bytes);
  static Tape FromDraws(std::vector<uint64_t> draws);

  uint64_t Next() {
    // The common case inline: a seeded tape, no chooser, not recording.
    if (fast_) {
      ++position_;
      return Xoshiro();
    }
    return NextSlow();
  }
  // Uniform in [0, bound) for bound > 0 (Lemire's multiply-shift; one draw).
  uint64_t Below(uint64_t bound) {
    if (fast_ && bound > 1) {
      ++position_;
      return static_cast<uint64_t>((static_cast<unsigned __int128>(Xoshiro()) * bound) >> 64);
    }
    return BelowSlow(bound);
  }
  // True with probability ppm / 1e6 (one draw). A zero draw is "no": past the end of a
  // fuzzer's bytes every draw is 0, which must be the calmest choice.
  bool ChancePpm(uint32_t ppm) { return Below(1'000'000) + ppm >= 1'000'000 && ppm > 0; }
  // Uniform in [lo, hi] (one draw).
  uint64_t Between(uint64_t lo, uint64_t hi) { return lo + Below(hi - lo + 1); }

  // Hands every later bounded draw to `chooser` (nullptr: back to the tape's source).
  void SetChooser(TapeChooser* chooser) {
    chooser_ = chooser;
    UpdateFast();
  }

  uint64_t position() const { return position_; }
  uint64_t seed() const { return seed_; }

  // Records every draw from now on (for shrinking and the explorer).
  void StartRecording() {
    recording_ = true;
    UpdateFast();
  }
  const std::vector<uint64_t>& recorded() const { return recorded_; }
  // Under a chooser: whether recorded draw i was one the chooser calls timing.
  bool recorded_timing(size_t i) const { return i < timing_.size() && timing_[i]; }

 private:
  uint64_t NextSlow();
  uint64_t BelowSlow(uint64_t bound);
  // xoshiro256**: the seeded tape's generator.
  uint64_t Xoshiro() {
    const auto rotl = [](uint64_t x, int k) { return (x << k) | (x >> (64 - k)); };
    const uint64_t v = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return v;
  }
  void UpdateFast() { fast_ = source_ == Source::kSeed && chooser_ == nullptr && !recording_; }

  enum class Source : uint8_t { kSeed, kBytes, kDraws };
  bool fast_ = false;  // UpdateFast(): Next and Below take the inline path
  Source source_ = Source::kSeed;
  uint64_t seed_ = 0;
  uint64_t s_[4] = {0, 0, 0, 0};
  std::vector<uint64_t> draws_;  // kBytes and kDraws
  uint64_t position_ = 0;
  bool recording_ = false;
  std::vector<uint64_t> recorded_;
  std::vector<bool> timing_;  // per recorded draw, sized only up to the last timing draw
  TapeChooser* chooser_ = nullptr;
};

}  // namespace tidal::sim
