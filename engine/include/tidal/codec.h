// Little-endian byte writer and bounds-checked reader for tidal's binary formats
// (segment descriptors, RPC frames, tensor headers). The reader never reads past its
// buffer: every Get* fails (returns false) instead, and the caller turns that into a
// CORRUPT_INPUT or INVALID_PARAMS naming the field.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace tidal {

class ByteWriter {
 public:
  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void U16(uint16_t v) { Raw(&v, 2); }
  void U32(uint32_t v) { Raw(&v, 4); }
  void U64(uint64_t v) { Raw(&v, 8); }
  void I32(int32_t v) { Raw(&v, 4); }
  void I64(int64_t v) { Raw(&v, 8); }
  // A u32 length then the bytes.
  void Str(std::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    out_.append(s.data(), s.size());
  }
  void Bytes(std::string_view s) { out_.append(s.data(), s.size()); }
  std::string& str() { return out_; }
  std::string Take() { return std::move(out_); }

 private:
  void Raw(const void* p, size_t n) {  // tidal targets little-endian hosts only
    out_.append(static_cast<const char*>(p), n);
  }
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
  bool Bytes(std::string_view* s, size_t n) {
    if (n > remaining()) return false;
    *s = in_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  size_t remaining() const { return in_.size() - pos_; }
  size_t position() const { return pos_; }

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
