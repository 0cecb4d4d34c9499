// Fuzz target: the serialized tensor decoder (DecodeTensor) and the tensor-parallel split
// that PutTensorWithTp applies to a caller's buffer.
//
// Proves, for every input:
//  * DecodeTensor rejects with INVALID_PARAMS (its documented code), or accepts a buffer
//    that is exactly header + data: the view points inside the input, its data length
//    equals TensorDataBytes(dtype, shape), and EncodeTensor(view) gives back the input
//    byte for byte;
//  * for every dimension d and tp_size in {1, 2, 3, 4}, SplitTensor either refuses with
//    INVALID_PARAMS exactly when shape[d] is not a multiple of tp_size, or returns
//    tp_size shards that each decode, have shape[d] / tp_size rows in dimension d, and,
//    put back together row block by row block, give the original data exactly.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "tidal/store/tensor.h"

namespace {

using tidal::store::TensorView;

void CheckSplit(const TensorView& full, uint32_t dim, uint32_t tp) {
  auto shards = tidal::store::SplitTensor(full, dim, tp);
  if (full.shape[dim] % tp != 0) {
    TIDAL_FUZZ_CHECK(!shards.ok() && shards.code() == tidal::ErrorCode::INVALID_PARAMS,
                     "split of an indivisible dimension was not refused");
    return;
  }
  TIDAL_FUZZ_CHECK(shards.ok(), "split refused: " + shards.status().ToString());
  TIDAL_FUZZ_CHECK(shards->size() == tp, "wrong number of shards");
  // Reassemble: full = outer blocks of shape[dim] rows of `inner` bytes; shard r holds
  // rows [r * rows, (r + 1) * rows) of every block.
  uint64_t outer = 1, inner = tidal::store::DTypeBytes(full.dtype);
  for (uint32_t i = 0; i < dim; ++i) outer *= full.shape[i];
  for (size_t i = dim + 1; i < full.shape.size(); ++i) inner *= full.shape[i];
  const uint64_t rows = full.shape[dim] / tp;
  std::string rebuilt(full.data_bytes, '\0');
  for (uint32_t r = 0; r < tp; ++r) {
    auto shard = tidal::store::DecodeTensor((*shards)[r]);
    TIDAL_FUZZ_CHECK(shard.ok(), "shard does not decode: " + shard.status().ToString());
    std::vector<uint64_t> want = full.shape;
    want[dim] = rows;
    TIDAL_FUZZ_CHECK(shard->dtype == full.dtype && shard->shape == want, "wrong shard shape");
    TIDAL_FUZZ_CHECK(shard->data_bytes * tp == full.data_bytes, "wrong shard size");
    const uint64_t chunk = rows * inner;
    for (uint64_t o = 0; o < outer && chunk != 0; ++o) {
      std::memcpy(rebuilt.data() + o * full.shape[dim] * inner + r * chunk,
                  shard->data + o * chunk, chunk);
    }
  }
  TIDAL_FUZZ_CHECK(full.data_bytes == 0 || std::memcmp(rebuilt.data(), full.data,
                                                       full.data_bytes) == 0,
                   "shards do not put back together to the original data");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto view = tidal::store::DecodeTensor(bytes);
  if (!view.ok()) {
    TIDAL_FUZZ_CHECK(view.code() == tidal::ErrorCode::INVALID_PARAMS, view.status().ToString());
    return 0;
  }
  const size_t header = tidal::store::TensorHeaderBytes(view->shape.size());
  TIDAL_FUZZ_CHECK(header + view->data_bytes == size, "header + data is not the whole buffer");
  TIDAL_FUZZ_CHECK(view->data == data + header, "the data does not start after the header");
  auto bytes_expected = tidal::store::TensorDataBytes(view->dtype, view->shape);
  TIDAL_FUZZ_CHECK(bytes_expected.ok() && *bytes_expected == view->data_bytes,
                   "data length disagrees with shape and dtype");
  auto encoded = tidal::store::EncodeTensor(*view);
  TIDAL_FUZZ_CHECK(encoded.ok() && *encoded == bytes, "decode->encode changed the buffer");
  for (uint32_t dim = 0; dim < view->shape.size(); ++dim) {
    for (uint32_t tp = 1; tp <= 4; ++tp) CheckSplit(*view, dim, tp);
  }
  // A split dimension past the rank, and tp_size 0, are refused.
  TIDAL_FUZZ_CHECK(!tidal::store::SplitTensor(*view, static_cast<uint32_t>(view->shape.size()), 1)
                        .ok(),
                   "split past the rank accepted");
  if (!view->shape.empty()) {
    TIDAL_FUZZ_CHECK(!tidal::store::SplitTensor(*view, 0, 0).ok(), "tp_size 0 accepted");
  }
  return 0;
}
