// CPU reduction kernels. Each (dtype, op) pair is one tight loop over contiguous arrays
// with no aliasing, which GCC and Clang vectorize at -O2/-O3. f16 and bf16 have no native
// arithmetic on most CPUs: blocks of kBlock elements are widened to float, folded and
// narrowed back (round to nearest even), which is what NCCL does for these types.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <memory>
#include <limits>
#include <type_traits>

#include "tidal/collectives/reduce_kernel.h"

namespace tidal::coll {
namespace {

constexpr size_t kBlock = 256;

// Integers fold in the unsigned type of the same width, so SUM/PROD wrap instead of
// overflowing (undefined for signed types).
template <typename T>
using Wide = std::conditional_t<std::is_integral_v<T>, std::make_unsigned_t<T>, T>;

template <typename T>
T Add(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    return static_cast<T>(static_cast<Wide<T>>(static_cast<Wide<T>>(a) + static_cast<Wide<T>>(b)));
  } else {
    return a + b;
  }
}

template <typename T>
T Mul(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    // Promote to at least unsigned int: u16*u16 would promote to signed int and overflow.
    using U = std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned, Wide<T>>;
    return static_cast<T>(static_cast<Wide<T>>(static_cast<U>(static_cast<Wide<T>>(a)) *
                                               static_cast<U>(static_cast<Wide<T>>(b))));
  } else {
    return a * b;
  }
}

template <typename T>
void FoldTyped(T* __restrict acc, const T* __restrict in, size_t n, ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg:
      for (size_t i = 0; i < n; ++i) acc[i] = Add(acc[i], in[i]);
      break;
    case ReduceOp::kProd:
      for (size_t i = 0; i < n; ++i) acc[i] = Mul(acc[i], in[i]);
      break;
    case ReduceOp::kMin:
      for (size_t i = 0; i < n; ++i) acc[i] = in[i] < acc[i] ? in[i] : acc[i];
      break;
    case ReduceOp::kMax:
      for (size_t i = 0; i < n; ++i) acc[i] = in[i] > acc[i] ? in[i] : acc[i];
      break;
    default:
      break;
  }
}

// The same fold where acc and in are the same array (x op x).
template <typename T>
void FoldSelf(T* acc, size_t n, ReduceOp op) {
  for (size_t i = 0; i < n; ++i) {
    T v = acc[i];
    switch (op) {
      case ReduceOp::kSum:
      case ReduceOp::kAvg:
        acc[i] = Add(v, v);
        break;
      case ReduceOp::kProd:
        acc[i] = Mul(v, v);
        break;
      default:
        break;  // MIN/MAX of x with itself is x
    }
  }
}

template <uint16_t (*Narrow)(float), float (*Widen)(uint16_t)>
void FoldHalf(uint16_t* acc, const uint16_t* in, size_t n, ReduceOp op) {
  float a[kBlock];
  float b[kBlock];
  for (size_t base = 0; base < n; base += kBlock) {
    size_t m = std::min(kBlock, n - base);
    for (size_t i = 0; i < m; ++i) a[i] = Widen(acc[base + i]);
    for (size_t i = 0; i < m; ++i) b[i] = Widen(in[base + i]);
    FoldTyped<float>(a, b, m, op);
    for (size_t i = 0; i < m; ++i) acc[base + i] = Narrow(a[i]);
  }
}

template <typename T>
void ScaleTyped(T* data, size_t n, uint64_t divisor) {
  if constexpr (std::is_integral_v<T>) {
    if constexpr (std::is_signed_v<T>) {
      auto d = static_cast<int64_t>(divisor);
      for (size_t i = 0; i < n; ++i) data[i] = static_cast<T>(static_cast<int64_t>(data[i]) / d);
    } else {
      for (size_t i = 0; i < n; ++i)
        data[i] = static_cast<T>(static_cast<uint64_t>(data[i]) / divisor);
    }
  } else {
    T d = static_cast<T>(divisor);
    for (size_t i = 0; i < n; ++i) data[i] = data[i] / d;
  }
}

template <uint16_t (*Narrow)(float), float (*Widen)(uint16_t)>
void ScaleHalf(uint16_t* data, size_t n, uint64_t divisor) {
  float d = static_cast<float>(divisor);
  for (size_t i = 0; i < n; ++i) data[i] = Narrow(Widen(data[i]) / d);
}

template <typename T>
T IdentityOf(ReduceOp op) {
  switch (op) {
    case ReduceOp::kProd:
      return T(1);
    case ReduceOp::kMin:
      return std::numeric_limits<T>::has_infinity ? std::numeric_limits<T>::infinity()
                                                  : std::numeric_limits<T>::max();
    case ReduceOp::kMax:
      return std::numeric_limits<T>::has_infinity ? -std::numeric_limits<T>::infinity()
                                                  : std::numeric_limits<T>::lowest();
    default:
      return T(0);
  }
}

template <typename T>
void Fill(void* data, size_t n, T v) {
  auto* p = static_cast<T*>(data);
  for (size_t i = 0; i < n; ++i) p[i] = v;
}

Status CheckArgs(DataType dtype, ReduceOp op, Location location) {
  if (DataTypeSize(dtype) == 0) return Status(ErrorCode::INVALID_PARAMS, "bad data type");
  if (static_cast<size_t>(op) >= kReduceOps) {
    return Status(ErrorCode::INVALID_PARAMS, "bad reduction");
  }
  if (!location.is_host()) {
    return Status(ErrorCode::UNSUPPORTED, "CPU reducer cannot touch " + location.ToString());
  }
  return Status::Ok();
}

}  // namespace

uint16_t FloatToHalf(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // inf or NaN
    return static_cast<uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));
  }
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to inf
  if (abs < 0x38800000u) {  // below the smallest normal half: subnormal or zero
    if (abs < 0x33000000u) return static_cast<uint16_t>(sign);  // < half of min subnormal
    uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    int shift = 126 - static_cast<int>(abs >> 23);  // 14 + (113 - exp) ... in [14, 24]
    uint32_t value = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (value & 1u))) ++value;
    return static_cast<uint16_t>(sign | value);
  }
  uint32_t value = ((abs >> 13) - (112u << 10));  // rebias exponent 127 -> 15
  uint32_t rem = abs & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (value & 1u))) ++value;
  return static_cast<uint16_t>(sign | value);
}

float HalfToFloat(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {  // subnormal: mant * 2^-24
    float v = static_cast<float>(mant) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  return std::bit_cast<float>(bits);
}

uint16_t FloatToBf16(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // NaN
  uint32_t rounding = 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>((x + rounding) >> 16);
}

float Bf16ToFloat(uint16_t b) {
  return std::bit_cast<float>(static_cast<uint32_t>(b) << 16);
}

Status CpuReducer::Fold(void* acc, const void* in, size_t count, DataType dtype, ReduceOp op,
                        Location location) {
  TIDAL_RETURN_IF_ERROR(CheckArgs(dtype, op, location));
  if (count == 0) return Status::Ok();
  if (acc == in) {
    switch (dtype) {
      case DataType::kF32:
        FoldSelf(static_cast<float*>(acc), count, op);
        break;
      case DataType::kF64:
        FoldSelf(static_cast<double*>(acc), count, op);
        break;
      case DataType::kI8:
        FoldSelf(static_cast<int8_t*>(acc), count, op);
        break;
      case DataType::kU8:
        FoldSelf(static_cast<uint8_t*>(acc), count, op);
        break;
      case DataType::kI32:
        FoldSelf(static_cast<int32_t*>(acc), count, op);
        break;
      case DataType::kI64:
        FoldSelf(static_cast<int64_t*>(acc), count, op);
        break;
      case DataType::kF16:
      case DataType::kBF16: {
        // Small and rare: fold from a copy.
        uint16_t tmp[kBlock];
        auto* a = static_cast<uint16_t*>(acc);
        for (size_t base = 0; base < count; base += kBlock) {
          size_t m = std::min(kBlock, count - base);
          std::memcpy(tmp, a + base, m * 2);
          TIDAL_RETURN_IF_ERROR(Fold(a + base, tmp, m, dtype, op, location));
        }
        break;
      }
      default:
        break;
    }
    return Status::Ok();
  }
  switch (dtype) {
    case DataType::kF32:
      FoldTyped(static_cast<float*>(acc), static_cast<const float*>(in), count, op);
      break;
    case DataType::kF64:
      FoldTyped(static_cast<double*>(acc), static_cast<const double*>(in), count, op);
      break;
    case DataType::kF16:
      FoldHalf<FloatToHalf, HalfToFloat>(static_cast<uint16_t*>(acc),
                                         static_cast<const uint16_t*>(in), count, op);
      break;
    case DataType::kBF16:
      FoldHalf<FloatToBf16, Bf16ToFloat>(static_cast<uint16_t*>(acc),
                                         static_cast<const uint16_t*>(in), count, op);
      break;
    case DataType::kI8:
      FoldTyped(static_cast<int8_t*>(acc), static_cast<const int8_t*>(in), count, op);
      break;
    case DataType::kU8:
      FoldTyped(static_cast<uint8_t*>(acc), static_cast<const uint8_t*>(in), count, op);
      break;
    case DataType::kI32:
      FoldTyped(static_cast<int32_t*>(acc), static_cast<const int32_t*>(in), count, op);
      break;
    case DataType::kI64:
      FoldTyped(static_cast<int64_t*>(acc), static_cast<const int64_t*>(in), count, op);
      break;
    default:
      break;
  }
  return Status::Ok();
}

Status CpuReducer::Scale(void* data, size_t count, DataType dtype, uint64_t divisor,
                         Location location) {
  TIDAL_RETURN_IF_ERROR(CheckArgs(dtype, ReduceOp::kSum, location));
  if (divisor == 0) return Status(ErrorCode::INVALID_PARAMS, "divide by zero");
  if (divisor == 1 || count == 0) return Status::Ok();
  switch (dtype) {
    case DataType::kF32:
      ScaleTyped(static_cast<float*>(data), count, divisor);
      break;
    case DataType::kF64:
      ScaleTyped(static_cast<double*>(data), count, divisor);
      break;
    case DataType::kF16:
      ScaleHalf<FloatToHalf, HalfToFloat>(static_cast<uint16_t*>(data), count, divisor);
      break;
    case DataType::kBF16:
      ScaleHalf<FloatToBf16, Bf16ToFloat>(static_cast<uint16_t*>(data), count, divisor);
      break;
    case DataType::kI8:
      ScaleTyped(static_cast<int8_t*>(data), count, divisor);
      break;
    case DataType::kU8:
      ScaleTyped(static_cast<uint8_t*>(data), count, divisor);
      break;
    case DataType::kI32:
      ScaleTyped(static_cast<int32_t*>(data), count, divisor);
      break;
    case DataType::kI64:
      ScaleTyped(static_cast<int64_t*>(data), count, divisor);
      break;
    default:
      break;
  }
  return Status::Ok();
}

Status CpuReducer::Identity(void* data, size_t count, DataType dtype, ReduceOp op,
                            Location location) {
  TIDAL_RETURN_IF_ERROR(CheckArgs(dtype, op, location));
  switch (dtype) {
    case DataType::kF32:
      Fill(data, count, IdentityOf<float>(op));
      break;
    case DataType::kF64:
      Fill(data, count, IdentityOf<double>(op));
      break;
    case DataType::kF16:
      Fill(data, count, FloatToHalf(IdentityOf<float>(op)));
      break;
    case DataType::kBF16:
      Fill(data, count, FloatToBf16(IdentityOf<float>(op)));
      break;
    case DataType::kI8:
      Fill(data, count, IdentityOf<int8_t>(op));
      break;
    case DataType::kU8:
      Fill(data, count, IdentityOf<uint8_t>(op));
      break;
    case DataType::kI32:
      Fill(data, count, IdentityOf<int32_t>(op));
      break;
    case DataType::kI64:
      Fill(data, count, IdentityOf<int64_t>(op));
      break;
    default:
      break;
  }
  return Status::Ok();
}

CpuReducer& CpuReducer::Default() {
  static CpuReducer reducer;
  return reducer;
}

Status Reducer::Copy(void* dst, const void* src, size_t bytes, Location location) {
  if (!location.is_host()) {
    return Status(ErrorCode::UNSUPPORTED, "this reducer cannot copy at " + location.ToString());
  }
  if (bytes > 0) std::memcpy(dst, src, bytes);
  return Status::Ok();
}

void Reducer::FoldAsync(void* acc, const void* in, size_t count, DataType dtype, ReduceOp op,
                        Location location, Done done) {
  done(Fold(acc, in, count, dtype, op, location));
}

void Reducer::CopyAsync(void* dst, const void* src, size_t bytes, Location location, Done done) {
  done(Copy(dst, src, bytes, location));
}

void Reducer::FoldIntoAsync(void* out, const void* acc, const void* in, size_t count,
                            DataType dtype, ReduceOp op, Location location, Done done) {
  // Work of one location finishes in queue order: the copy's status is set before the
  // fold's completion reads it.
  auto copy_error = std::make_shared<Status>();
  if (out != acc) {
    CopyAsync(out, acc, count * DataTypeSize(dtype), location, [copy_error](Status st) {
      if (!st.ok()) *copy_error = st;
    });
  }
  FoldAsync(out, in, count, dtype, op, location,
            [copy_error, done = std::move(done)](Status st) {
              done(st.ok() ? *copy_error : st);
            });
}

Status HostBackedReducer::Fold(void* acc, const void* in, size_t count, DataType dtype,
                               ReduceOp op, Location) {
  return CpuReducer::Default().Fold(acc, in, count, dtype, op, Location::Host());
}

Status HostBackedReducer::Scale(void* data, size_t count, DataType dtype, uint64_t divisor,
                                Location) {
  return CpuReducer::Default().Scale(data, count, dtype, divisor, Location::Host());
}

Status HostBackedReducer::Identity(void* data, size_t count, DataType dtype, ReduceOp op,
                                   Location) {
  return CpuReducer::Default().Identity(data, count, dtype, op, Location::Host());
}

Status HostBackedReducer::Copy(void* dst, const void* src, size_t bytes, Location) {
  return Reducer::Copy(dst, src, bytes, Location::Host());
}

bool HostBackedReducer::Supports(Location) const {
  return true;
}

HostBackedReducer& HostBackedReducer::Default() {
  static HostBackedReducer reducer;
  return reducer;
}

Status Reducer::ReduceAll(void* out, std::span<const void* const> inputs, size_t count,
                          DataType dtype, ReduceOp op, Location location) {
  if (inputs.empty()) return Identity(out, count, dtype, op, location);
  size_t bytes = count * DataTypeSize(dtype);
  if (out != inputs[0] && bytes > 0) TIDAL_RETURN_IF_ERROR(Copy(out, inputs[0], bytes, location));
  for (size_t k = 1; k < inputs.size(); ++k) {
    TIDAL_ASSERT(inputs[k] != out || count == 0);
    TIDAL_RETURN_IF_ERROR(Fold(out, inputs[k], count, dtype, op, location));
  }
  if (op == ReduceOp::kAvg) return Scale(out, count, dtype, inputs.size(), location);
  return Status::Ok();
}

}  // namespace tidal::coll
