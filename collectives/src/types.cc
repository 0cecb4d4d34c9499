// Names, sizes and validation of tensor views.
#include "tidal/collectives/types.h"

#include <limits>
#include <string>

namespace tidal::coll {
namespace {

constexpr std::string_view kTypeNames[kDataTypes] = {"f32", "f64", "f16", "bf16",
                                                     "i8",  "u8",  "i32", "i64"};
constexpr size_t kTypeSizes[kDataTypes] = {4, 8, 2, 2, 1, 1, 4, 8};
constexpr std::string_view kOpNames[kReduceOps] = {"sum", "prod", "min", "max", "avg"};

constexpr std::string_view kOpTypeNames[] = {"allreduce", "allgather", "reducescatter", "broadcast",
                                             "reduce",    "gather",    "scatter",       "alltoall",
                                             "barrier",   "send",      "recv"};

}  // namespace

std::string_view OpTypeName(OpType op) {
  auto i = static_cast<size_t>(op);
  return i < static_cast<size_t>(OpType::kCount) ? kOpTypeNames[i] : "?";
}

std::string_view AlgorithmName(Algorithm a) {
  switch (a) {
    case Algorithm::kAuto:
      return "auto";
    case Algorithm::kDirect:
      return "direct";
    case Algorithm::kRing:
      return "ring";
    case Algorithm::kSplit:
      return "split";
  }
  return "?";
}

size_t DataTypeSize(DataType dtype) {
  auto i = static_cast<size_t>(dtype);
  return i < kDataTypes ? kTypeSizes[i] : 0;
}

std::string_view DataTypeName(DataType dtype) {
  auto i = static_cast<size_t>(dtype);
  return i < kDataTypes ? kTypeNames[i] : "?";
}

std::string_view ReduceOpName(ReduceOp op) {
  auto i = static_cast<size_t>(op);
  return i < kReduceOps ? kOpNames[i] : "?";
}

Result<DataType> ParseDataType(std::string_view name) {
  for (size_t i = 0; i < kDataTypes; ++i) {
    if (kTypeNames[i] == name) return static_cast<DataType>(i);
  }
  if (name == "float" || name == "float32") return DataType::kF32;
  if (name == "double" || name == "float64") return DataType::kF64;
  if (name == "half" || name == "float16") return DataType::kF16;
  if (name == "bfloat16") return DataType::kBF16;
  return Status(ErrorCode::INVALID_PARAMS, "unknown data type '" + std::string(name) + "'");
}

Result<ReduceOp> ParseReduceOp(std::string_view name) {
  for (size_t i = 0; i < kReduceOps; ++i) {
    if (kOpNames[i] == name) return static_cast<ReduceOp>(i);
  }
  if (name == "product") return ReduceOp::kProd;
  return Status(ErrorCode::INVALID_PARAMS, "unknown reduction '" + std::string(name) + "'");
}

Result<Algorithm> ParseAlgorithm(std::string_view name) {
  for (Algorithm a : {Algorithm::kAuto, Algorithm::kDirect, Algorithm::kRing, Algorithm::kSplit}) {
    if (AlgorithmName(a) == name) return a;
  }
  return Status(ErrorCode::INVALID_PARAMS,
                "unknown algorithm '" + std::string(name) + "' (auto, direct, ring or split)");
}

Status ValidateTensor(const Tensor& t, std::string_view what) {
  size_t size = DataTypeSize(t.dtype);
  if (size == 0) {
    return Status(ErrorCode::INVALID_PARAMS, std::string(what) + ": invalid data type");
  }
  if (t.count > std::numeric_limits<uint64_t>::max() / 16) {
    return Status(ErrorCode::INVALID_PARAMS, std::string(what) + ": count too large");
  }
  if (t.count > 0 && t.data == nullptr) {
    return Status(ErrorCode::INVALID_PARAMS, std::string(what) + ": null data");
  }
  if (!t.location.is_host()) {
    return Status(ErrorCode::UNSUPPORTED,
                  std::string(what) + ": only host tensors until the CUDA reducer lands");
  }
  return Status::Ok();
}

}  // namespace tidal::coll
