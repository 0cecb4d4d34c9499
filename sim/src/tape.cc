#include "tidal/sim/tape.h"

#include <cstring>

namespace tidal::sim {

namespace {
uint64_t SplitMix(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
}  // namespace

Tape Tape::FromSeed(uint64_t seed) {
  Tape t;
  t.source_ = Source::kSeed;
  t.seed_ = seed;
  uint64_t x = seed;
  for (uint64_t& s : t.s_) s = SplitMix(x);
  t.UpdateFast();
  return t;
}

Tape Tape::FromBytes(std::span<const uint8_t> bytes) {
  Tape t;
  t.source_ = Source::kBytes;
  t.draws_.resize((bytes.size() + 7) / 8, 0);
  if (!bytes.empty()) std::memcpy(t.draws_.data(), bytes.data(), bytes.size());
  return t;
}

Tape Tape::FromDraws(std::vector<uint64_t> draws) {
  Tape t;
  t.source_ = Source::kDraws;
  t.draws_ = std::move(draws);
  return t;
}

uint64_t Tape::NextSlow() {
  uint64_t v;
  if (chooser_ != nullptr) {
    v = 0;
  } else if (source_ == Source::kSeed) {
    v = Xoshiro();
  } else {
    v = position_ < draws_.size() ? draws_[position_] : 0;
  }
  ++position_;
  if (recording_) recorded_.push_back(v);
  return v;
}

uint64_t Tape::BelowSlow(uint64_t bound) {
  if (chooser_ != nullptr && bound > 1) {
    const uint64_t c = chooser_->Choose(bound);
    // The smallest raw draw v with (v * bound) >> 64 == c: ceil(c * 2^64 / bound).
    const unsigned __int128 num = static_cast<unsigned __int128>(c) << 64;
    const uint64_t v = static_cast<uint64_t>((num + bound - 1) / bound);
    ++position_;
    if (recording_) {
      recorded_.push_back(v);
      if (chooser_->IsTiming(bound)) {
        timing_.resize(recorded_.size(), false);
        timing_.back() = true;
      }
    }
    return c;
  }
  if (bound <= 1) {
    (void)Next();  // still one draw, so the tape's layout does not depend on bounds
    return 0;
  }
  return static_cast<uint64_t>((static_cast<unsigned __int128>(Next()) * bound) >> 64);
}

}  // namespace tidal::sim
