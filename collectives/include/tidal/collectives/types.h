// Tensor views, data types and reduction operators of the collectives library.
//
// A Tensor is a non-owning view {data, dtype, count, location}: the caller keeps the
// memory alive until the operation's Work is done. Nothing here allocates or blocks;
// every function is thread-safe (pure).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tidal/memory.h"
#include "tidal/status.h"

namespace tidal::coll {

enum class DataType : uint8_t { kF32 = 0, kF64, kF16, kBF16, kI8, kU8, kI32, kI64, kCount };
constexpr size_t kDataTypes = static_cast<size_t>(DataType::kCount);

// AVG is SUM divided by the number of ranks that contributed (integer types truncate
// toward zero).
enum class ReduceOp : uint8_t { kSum = 0, kProd, kMin, kMax, kAvg, kCount };
constexpr size_t kReduceOps = static_cast<size_t>(ReduceOp::kCount);

// The operations of a ProcessGroup (for names, algorithm choice and benchmarks).
enum class OpType : uint8_t {
  kAllReduce = 0,
  kAllGather,
  kReduceScatter,
  kBroadcast,
  kReduce,
  kGather,
  kScatter,
  kAllToAll,
  kBarrier,
  kSend,
  kRecv,
  kCount
};
std::string_view OpTypeName(OpType op);  // "allreduce", ...

// Data-path algorithms. kAuto picks by message size (see schedule.h / README).
// kSplit (schedule.h): with three or more members, the direct exchange cut in two steps so
// that every link carries a share (AllReduce and Reduce: a direct reduce-scatter, then a
// direct all-gather or a gather at the root; Broadcast: a scatter from the root, then an
// all-gather among the others). Elsewhere, and with two members, it is kDirect.
enum class Algorithm : uint8_t { kAuto = 0, kDirect, kRing, kSplit };
std::string_view AlgorithmName(Algorithm a);

// Bytes per element (1, 2, 4 or 8); 0 for an invalid value.
size_t DataTypeSize(DataType dtype);
// "f32", "bf16", ...; "?" for an invalid value.
std::string_view DataTypeName(DataType dtype);
// "sum", "prod", "min", "max", "avg"; "?" for an invalid value.
std::string_view ReduceOpName(ReduceOp op);
// Parse the names above; INVALID_PARAMS names the bad text.
Result<DataType> ParseDataType(std::string_view name);
Result<ReduceOp> ParseReduceOp(std::string_view name);
// "auto", "direct", "ring" or "split"; INVALID_PARAMS names the bad text.
Result<Algorithm> ParseAlgorithm(std::string_view name);

struct Tensor {
  void* data = nullptr;
  DataType dtype = DataType::kF32;
  uint64_t count = 0;  // elements
  Location location;

  uint64_t bytes() const { return count * DataTypeSize(dtype); }
  uint8_t* bytes_ptr() const { return static_cast<uint8_t*>(data); }
};

// OK, or INVALID_PARAMS (bad dtype, null data with count > 0, byte size overflow) or
// UNSUPPORTED (a location the CPU reducer cannot touch). `what` names the tensor.
Status ValidateTensor(const Tensor& t, std::string_view what);

}  // namespace tidal::coll
