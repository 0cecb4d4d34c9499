// Little-endian byte writer and bounds-checked reader: the one codec behind every binary
// format tidal has (segment descriptors, the store's RPC frames and message bodies, tensor
// headers, the process group's data headers, control messages and bootstrap records).
//
// The reader never reads past its buffer: every Get fails (returns false) instead, and the
// caller turns that into a CORRUPT_INPUT (remote bytes) or INVALID_PARAMS (a caller's own
// buffer) naming the field. Lengths and counts are checked against what is left in the
// buffer before anything is allocated for them (Str, Count), so a few bytes of input can
// never make a decoder allocate megabytes.
//
// Not thread-safe; a reader only borrows its input, which must outlive it.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace tidal {

// Formats are defined as little-endian; tidal's targets (x86-64, aarch64) are, so values
// are copied as they lie in memory.
static_assert(std::endian::native == std::endian::little,
              "tidal's byte codec needs a little-endian host");

class ByteWriter {
 public:
  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void U16(uint16_t v) { Raw(&v, 2); }
  void U32(uint32_t v) { Raw(&v, 4); }
  void U64(uint64_t v) { Raw(&v, 8); }
  void I32(int32_t v) { Raw(&v, 4); }
  void I64(int64_t v) { Raw(&v, 8); }
  // A u32 length then the bytes (the caller keeps `s` within the reader's bound).
  void Str(std::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    out_.append(s.data(), s.size());
  }
  // The bytes alone, no length (the length is a field of its own or the rest of the frame).
  void Bytes(std::string_view s) { out_.append(s.data(), s.size()); }
  std::string& str() { return out_; }
  std::string Take() { return std::move(out_); }

 private:
  void Raw(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  std::string out_;
};

class ByteReader {
 public:
  explicit ByteReader(std::string_view in) : in_(in) {}
  bool U8(uint8_t* v) { return Raw(v, 1); }
  bool U16(uint16_t* v) { return Raw(v, 2); }
  bool U32(uint32_t* v) { return Raw(v, 4); }
  bool U64(uint64_t* v) { return Raw(v, 8); }
  bool I32(int32_t* v) { return Raw(v, 4); }
  bool I64(int64_t* v) { return Raw(v, 8); }
  // A u32 length (at most max_len) then that many bytes.
  bool Str(std::string* s, size_t max_len) {
    uint32_t n = 0;
    if (!U32(&n) || n > max_len || n > remaining()) return false;
    s->assign(in_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  // A u32 element count, at most max_count, of elements that take at least
  // min_element_bytes each: a count the rest of the buffer cannot hold fails here, before
  // the caller sizes a container for it.
  bool Count(uint32_t* n, size_t max_count, size_t min_element_bytes) {
    uint32_t v = 0;
    if (!U32(&v) || v > max_count) return false;
    if (static_cast<uint64_t>(v) * min_element_bytes > remaining()) return false;
    *n = v;
    return true;
  }
  // The next n bytes, borrowed from the input.
  bool Bytes(std::string_view* s, size_t n) {
    if (n > remaining()) return false;
    *s = in_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  // Everything not read yet, borrowed from the input; the reader is then at the end.
  std::string_view Rest() {
    std::string_view rest = in_.substr(pos_);
    pos_ = in_.size();
    return rest;
  }
  size_t remaining() const { return in_.size() - pos_; }
  size_t position() const { return pos_; }
  bool done() const { return pos_ == in_.size(); }

 private:
  bool Raw(void* p, size_t n) {
    if (n > remaining()) return false;
    std::memcpy(p, in_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  std::string_view in_;
  size_t pos_ = 0;
};

}  // namespace tidal
