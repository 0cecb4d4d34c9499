// Little-endian wire helpers shared by the RPC frame codec, the protocol messages and the
// tensor header codec. The Reader never reads past its buffer: every accessor reports
// failure instead, so a decoder can turn any malformed input into a Status.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace tidal::store::wire {

class Writer {
 public:
  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void U16(uint16_t v) { Raw(&v, sizeof v); }
  void U32(uint32_t v) { Raw(&v, sizeof v); }
  void U64(uint64_t v) { Raw(&v, sizeof v); }
  void I32(int32_t v) { Raw(&v, sizeof v); }
  // A string: u32 length then the bytes.
  void Str(std::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    out_.append(s.data(), s.size());
  }
  void Bytes(std::string_view s) { out_.append(s.data(), s.size()); }
  std::string& out() { return out_; }
  std::string Take() { return std::move(out_); }

 private:
  // The project targets little-endian hosts (x86-64, aarch64); memcpy keeps it portable
  // across alignment.
  void Raw(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool U8(uint8_t* v) { return Raw(v, sizeof *v); }
  bool U16(uint16_t* v) { return Raw(v, sizeof *v); }
  bool U32(uint32_t* v) { return Raw(v, sizeof *v); }
  bool U64(uint64_t* v) { return Raw(v, sizeof *v); }
  bool I32(int32_t* v) { return Raw(v, sizeof *v); }
  // Reads a length-prefixed string of at most `max` bytes.
  bool Str(std::string* s, size_t max = 1 << 20) {
    uint32_t n = 0;
    if (!U32(&n) || n > max || n > remaining()) return false;
    s->assign(in_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  size_t remaining() const { return in_.size() - pos_; }
  size_t position() const { return pos_; }
  bool done() const { return pos_ == in_.size(); }

 private:
  bool Raw(void* p, size_t n) {
    if (remaining() < n) return false;
    std::memcpy(p, in_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  std::string_view in_;
  size_t pos_ = 0;
};

}  // namespace tidal::store::wire
