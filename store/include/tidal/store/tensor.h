// The serialized tensor buffer: a versioned header, then the data.
//
// Layout (little-endian):
//   u32 magic "TTNS" | u16 version | u8 dtype | u8 ndim | u64 shape[ndim] | u64 data bytes
//   | data
// The header is 16 + 8 * ndim bytes. DecodeTensor checks every field against the buffer
// before it is used (it is a fuzz target): a buffer that is not exactly header + data, an
// unknown dtype, too many dimensions, a shape whose product overflows or disagrees with
// the data length are INVALID_PARAMS with a message naming the field.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tidal/status.h"

namespace tidal::store {

enum class DType : uint8_t {
  kF32 = 0,
  kF64 = 1,
  kF16 = 2,
  kBF16 = 3,
  kI8 = 4,
  kU8 = 5,
  kI32 = 6,
  kI64 = 7
};
constexpr uint8_t kDTypeCount = 8;
// Bytes per element; 0 for a value that is not a DType.
size_t DTypeBytes(DType dtype);
std::string_view DTypeName(DType dtype);

constexpr uint32_t kTensorMagic = 0x534E5454;  // "TTNS" little-endian
constexpr uint16_t kTensorVersion = 1;
constexpr size_t kTensorMaxDims = 8;
constexpr size_t kTensorFixedHeaderBytes = 16;

// A tensor whose data lives elsewhere (in the decoded buffer, or the caller's memory).
struct TensorView {
  DType dtype = DType::kF32;
  std::vector<uint64_t> shape;
  const uint8_t* data = nullptr;
  uint64_t data_bytes = 0;
};

// A tensor that owns its data.
struct Tensor {
  DType dtype = DType::kF32;
  std::vector<uint64_t> shape;
  std::string data;
  TensorView view() const {
    return {dtype, shape, reinterpret_cast<const uint8_t*>(data.data()), data.size()};
  }
  bool operator==(const Tensor&) const = default;
};

size_t TensorHeaderBytes(size_t ndim);
// Elements in `shape` times the dtype's size; INVALID_PARAMS on overflow, a bad dtype or
// more than kTensorMaxDims dimensions.
Result<uint64_t> TensorDataBytes(DType dtype, std::span<const uint64_t> shape);

// Serializes a tensor. INVALID_PARAMS if the view's data length disagrees with its shape
// and dtype, or the dtype/rank is invalid.
Result<std::string> EncodeTensor(const TensorView& tensor);
// Writes the header for `tensor` into `out` (which must hold TensorHeaderBytes(ndim)).
void EncodeTensorHeader(const TensorView& tensor, uint8_t* out);

// Validates and decodes a serialized tensor; the view points into `bytes`.
Result<TensorView> DecodeTensor(std::string_view bytes);

// Splits a full tensor along `split_dim` into `tp_size` equal shards and serializes each.
// INVALID_PARAMS if tp_size is 0, split_dim >= rank, or shape[split_dim] is not a multiple
// of tp_size.
Result<std::vector<std::string>> SplitTensor(const TensorView& full, uint32_t split_dim,
                                             uint32_t tp_size);

}  // namespace tidal::store
