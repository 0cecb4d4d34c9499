// Reads and writes one element of any DataType as a double, for reference computations
// (the collectives harness, its tests and the kernel tests share them). Integer stores
// wrap like the kernels' integer arithmetic. Header-only: it needs only the collectives'
// public headers.
#pragma once

#include <cstdint>
#include <cstring>

#include "tidal/collectives/reduce_kernel.h"
#include "tidal/collectives/types.h"

namespace tidal::cluster {

using coll::DataType;
using coll::DataTypeSize;

inline void StoreValue(DataType dt, void* base, uint64_t i, double x) {
  uint8_t* p = static_cast<uint8_t*>(base) + i * DataTypeSize(dt);
  auto wrap = [x]() { return static_cast<uint64_t>(static_cast<int64_t>(x)); };
  switch (dt) {
    case DataType::kF32: {
      float v = static_cast<float>(x);
      std::memcpy(p, &v, 4);
      break;
    }
    case DataType::kF64:
      std::memcpy(p, &x, 8);
      break;
    case DataType::kF16: {
      uint16_t v = coll::FloatToHalf(static_cast<float>(x));
      std::memcpy(p, &v, 2);
      break;
    }
    case DataType::kBF16: {
      uint16_t v = coll::FloatToBf16(static_cast<float>(x));
      std::memcpy(p, &v, 2);
      break;
    }
    case DataType::kI8:
    case DataType::kU8:
      *p = static_cast<uint8_t>(wrap());
      break;
    case DataType::kI32: {
      uint32_t v = static_cast<uint32_t>(wrap());
      std::memcpy(p, &v, 4);
      break;
    }
    case DataType::kI64: {
      uint64_t v = wrap();
      std::memcpy(p, &v, 8);
      break;
    }
    default:
      break;
  }
}

inline double LoadValue(DataType dt, const void* base, uint64_t i) {
  const uint8_t* p = static_cast<const uint8_t*>(base) + i * DataTypeSize(dt);
  switch (dt) {
    case DataType::kF32: {
      float v;
      std::memcpy(&v, p, 4);
      return v;
    }
    case DataType::kF64: {
      double v;
      std::memcpy(&v, p, 8);
      return v;
    }
    case DataType::kF16: {
      uint16_t v;
      std::memcpy(&v, p, 2);
      return coll::HalfToFloat(v);
    }
    case DataType::kBF16: {
      uint16_t v;
      std::memcpy(&v, p, 2);
      return coll::Bf16ToFloat(v);
    }
    case DataType::kI8:
      return static_cast<int8_t>(*p);
    case DataType::kU8:
      return *p;
    case DataType::kI32: {
      int32_t v;
      std::memcpy(&v, p, 4);
      return v;
    }
    case DataType::kI64: {
      int64_t v;
      std::memcpy(&v, p, 8);
      return static_cast<double>(v);
    }
    default:
      return 0;
  }
}

}  // namespace tidal::cluster
