// A small reader that turns a fuzz input into typed values (the part of clang's
// FuzzedDataProvider that tidal's targets need, but usable with gcc in the smoke build).
// Reads front to back; past the end every value is zero / empty, so every input is valid.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace tidal::fuzz {

class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  uint8_t U8() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint64_t U64() {
    uint64_t v = 0;
    const size_t n = pos_ + 8 <= size_ ? 8 : size_ - pos_;
    if (n > 0) std::memcpy(&v, data_ + pos_, n);
    pos_ += n;
    return v;
  }
  // Up to `max_len` bytes (the length is one byte of input), each mapped into
  // [lo, hi] so callers can ask for, say, printable ASCII.
  std::string String(size_t max_len, uint8_t lo = 0, uint8_t hi = 255) {
    const size_t len = max_len == 0 ? 0 : U8() % (max_len + 1);
    std::string s;
    for (size_t i = 0; i < len && pos_ < size_; ++i) {
      s.push_back(static_cast<char>(lo + U8() % (hi - lo + 1)));
    }
    return s;
  }
  std::string_view Rest() {
    std::string_view r(reinterpret_cast<const char*>(data_) + pos_, size_ - pos_);
    pos_ = size_;
    return r;
  }
  size_t remaining() const { return size_ - pos_; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

}  // namespace tidal::fuzz
