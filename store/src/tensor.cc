// Serialized tensor codec and the tensor-parallel split (see tensor.h).
#include "tidal/store/tensor.h"

#include <cstring>

#include "tidal/codec.h"

namespace tidal::store {
namespace {

Status Bad(std::string what) {
  return Status(ErrorCode::INVALID_PARAMS, "tensor buffer: " + std::move(what));
}

}  // namespace

size_t DTypeBytes(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return 4;
    case DType::kF64:
      return 8;
    case DType::kF16:
      return 2;
    case DType::kBF16:
      return 2;
    case DType::kI8:
      return 1;
    case DType::kU8:
      return 1;
    case DType::kI32:
      return 4;
    case DType::kI64:
      return 8;
  }
  return 0;
}

std::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "f32";
    case DType::kF64:
      return "f64";
    case DType::kF16:
      return "f16";
    case DType::kBF16:
      return "bf16";
    case DType::kI8:
      return "i8";
    case DType::kU8:
      return "u8";
    case DType::kI32:
      return "i32";
    case DType::kI64:
      return "i64";
  }
  return "unknown";
}

size_t TensorHeaderBytes(size_t ndim) { return kTensorFixedHeaderBytes + 8 * ndim; }

Result<uint64_t> TensorDataBytes(DType dtype, std::span<const uint64_t> shape) {
  uint64_t bytes = DTypeBytes(dtype);
  if (bytes == 0) return Bad("field 'dtype' is " + std::to_string(int(dtype)) + ", unknown");
  if (shape.size() > kTensorMaxDims) {
    return Bad("field 'ndim' is " + std::to_string(shape.size()) + ", more than " +
               std::to_string(kTensorMaxDims));
  }
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] != 0 && bytes > UINT64_MAX / shape[i]) {
      return Bad("field 'shape[" + std::to_string(i) + "]' overflows the data size");
    }
    bytes *= shape[i];
  }
  return bytes;
}

void EncodeTensorHeader(const TensorView& t, uint8_t* out) {
  ByteWriter w;
  w.U32(kTensorMagic);
  w.U16(kTensorVersion);
  w.U8(static_cast<uint8_t>(t.dtype));
  w.U8(static_cast<uint8_t>(t.shape.size()));
  for (uint64_t d : t.shape) w.U64(d);
  w.U64(t.data_bytes);
  TIDAL_ASSERT(w.str().size() == TensorHeaderBytes(t.shape.size()));
  std::memcpy(out, w.str().data(), w.str().size());
}

Result<std::string> EncodeTensor(const TensorView& t) {
  Result<uint64_t> bytes = TensorDataBytes(t.dtype, t.shape);
  if (!bytes.ok()) return bytes.status();
  if (*bytes != t.data_bytes) {
    return Bad("data is " + std::to_string(t.data_bytes) + " bytes, shape and dtype say " +
               std::to_string(*bytes));
  }
  if (t.data_bytes != 0 && t.data == nullptr) return Bad("data pointer is null");
  size_t header = TensorHeaderBytes(t.shape.size());
  std::string out(header + t.data_bytes, '\0');
  EncodeTensorHeader(t, reinterpret_cast<uint8_t*>(out.data()));
  if (t.data_bytes != 0) std::memcpy(out.data() + header, t.data, t.data_bytes);
  return out;
}

Result<TensorView> DecodeTensor(std::string_view bytes) {
  ByteReader r(bytes);
  uint32_t magic = 0;
  uint16_t version = 0;
  uint8_t dtype = 0, ndim = 0;
  if (!r.U32(&magic))
    return Bad("field 'magic' is cut off (buffer of " + std::to_string(bytes.size()) + " bytes)");
  if (magic != kTensorMagic) return Bad("field 'magic' is wrong");
  if (!r.U16(&version)) return Bad("field 'version' is cut off");
  if (version != kTensorVersion) {
    return Bad("field 'version' is " + std::to_string(version) + ", expected " +
               std::to_string(kTensorVersion));
  }
  if (!r.U8(&dtype)) return Bad("field 'dtype' is cut off");
  if (dtype >= kDTypeCount) return Bad("field 'dtype' is " + std::to_string(dtype) + ", unknown");
  if (!r.U8(&ndim)) return Bad("field 'ndim' is cut off");
  if (ndim > kTensorMaxDims) {
    return Bad("field 'ndim' is " + std::to_string(ndim) + ", more than " +
               std::to_string(kTensorMaxDims));
  }
  TensorView t;
  t.dtype = static_cast<DType>(dtype);
  t.shape.resize(ndim);
  for (size_t i = 0; i < ndim; ++i) {
    if (!r.U64(&t.shape[i])) return Bad("field 'shape[" + std::to_string(i) + "]' is cut off");
  }
  if (!r.U64(&t.data_bytes)) return Bad("field 'data bytes' is cut off");
  Result<uint64_t> expect = TensorDataBytes(t.dtype, t.shape);
  if (!expect.ok()) return expect.status();
  if (t.data_bytes != *expect) {
    return Bad("field 'data bytes' is " + std::to_string(t.data_bytes) + ", shape and dtype say " +
               std::to_string(*expect));
  }
  if (t.data_bytes != r.remaining()) {
    return Bad("field 'data bytes' is " + std::to_string(t.data_bytes) + " but " +
               std::to_string(r.remaining()) + " bytes follow the header");
  }
  t.data = reinterpret_cast<const uint8_t*>(bytes.data()) + r.position();
  return t;
}

Result<std::vector<std::string>> SplitTensor(const TensorView& full, uint32_t split_dim,
                                             uint32_t tp_size) {
  Result<uint64_t> bytes = TensorDataBytes(full.dtype, full.shape);
  if (!bytes.ok()) return bytes.status();
  if (*bytes != full.data_bytes) return Bad("data length disagrees with the shape");
  if (tp_size == 0) return Status(ErrorCode::INVALID_PARAMS, "tp_size is 0");
  if (split_dim >= full.shape.size()) {
    return Status(ErrorCode::INVALID_PARAMS, "split_dim " + std::to_string(split_dim) +
                                                 " is not below the rank " +
                                                 std::to_string(full.shape.size()));
  }
  uint64_t dim = full.shape[split_dim];
  if (dim % tp_size != 0) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "shape[" + std::to_string(split_dim) + "] = " + std::to_string(dim) +
                      " does not divide into tp_size " + std::to_string(tp_size));
  }
  // Rows of `inner` bytes: outer blocks, each of `dim` rows; shard r takes rows
  // [r * dim / tp, (r + 1) * dim / tp) of every outer block.
  uint64_t outer = 1, inner = DTypeBytes(full.dtype);
  for (size_t i = 0; i < split_dim; ++i) outer *= full.shape[i];
  for (size_t i = split_dim + 1; i < full.shape.size(); ++i) inner *= full.shape[i];
  uint64_t rows = dim / tp_size;
  uint64_t chunk = rows * inner;
  std::vector<std::string> shards;
  shards.reserve(tp_size);
  for (uint32_t rank = 0; rank < tp_size; ++rank) {
    TensorView shard{full.dtype, full.shape, nullptr, outer * chunk};
    shard.shape[split_dim] = rows;
    size_t header = TensorHeaderBytes(shard.shape.size());
    std::string out(header + shard.data_bytes, '\0');
    EncodeTensorHeader(shard, reinterpret_cast<uint8_t*>(out.data()));
    for (uint64_t o = 0; o < outer && chunk != 0; ++o) {
      std::memcpy(out.data() + header + o * chunk, full.data + o * dim * inner + rank * chunk,
                  chunk);
    }
    shards.push_back(std::move(out));
  }
  return shards;
}

}  // namespace tidal::store
