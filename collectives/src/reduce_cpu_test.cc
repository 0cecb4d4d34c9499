// Unit tests of the CPU reduction kernels: every dtype x op folds exactly, accumulators
// start from the first contribution (field bug 2), integer arithmetic wraps instead of
// overflowing, identities are neutral, AVG divides by the contributor count, and the
// f16/bf16 conversions round to nearest even with inf/NaN/subnormals handled.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "../tests/values.h"
#include "tidal/collectives/reduce_kernel.h"

namespace tidal::coll {
namespace {

TEST(HalfConversion, ExactValuesRoundTrip) {
  for (float f : {0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, 0.5f, 1024.0f, 3.140625f}) {
    EXPECT_EQ(HalfToFloat(FloatToHalf(f)), f) << f;
  }
  for (int i = -2048; i <= 2048; ++i) {
    float f = static_cast<float>(i);
    EXPECT_EQ(HalfToFloat(FloatToHalf(f)), f);
  }
}

TEST(HalfConversion, AllHalfBitPatternsRoundTripThroughFloat) {
  for (uint32_t b = 0; b < 0x10000; ++b) {
    auto h = static_cast<uint16_t>(b);
    float f = HalfToFloat(h);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalf(f))));
    } else {
      EXPECT_EQ(FloatToHalf(f), h) << std::hex << b;
    }
  }
}

TEST(HalfConversion, RoundsToNearestEvenAndSaturatesToInf) {
  EXPECT_EQ(FloatToHalf(2049.0f), FloatToHalf(2048.0f));  // tie, even mantissa
  EXPECT_EQ(FloatToHalf(2051.0f), FloatToHalf(2052.0f));  // tie, rounds up to even
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7c00);               // rounds to inf
  EXPECT_EQ(FloatToHalf(65519.0f), 0x7bff);
  EXPECT_EQ(FloatToHalf(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(FloatToHalf(-std::numeric_limits<float>::infinity()), 0xfc00);
  EXPECT_EQ(FloatToHalf(5.9604644775390625e-8f), 0x0001);   // smallest subnormal
  EXPECT_EQ(FloatToHalf(2.98023223876953125e-8f), 0x0000);  // exactly half: ties to even
  EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalf(std::nanf("")))));
}

TEST(Bf16Conversion, RoundTripAndRounding) {
  for (int i = -256; i <= 256; ++i) {
    float f = static_cast<float>(i);
    EXPECT_EQ(Bf16ToFloat(FloatToBf16(f)), f);
  }
  EXPECT_EQ(Bf16ToFloat(FloatToBf16(257.0f)), 256.0f);  // tie to even
  EXPECT_EQ(Bf16ToFloat(FloatToBf16(259.0f)), 260.0f);
  EXPECT_TRUE(std::isnan(Bf16ToFloat(FloatToBf16(std::nanf("")))));
  for (uint32_t b = 0; b < 0x10000; ++b) {
    float f = Bf16ToFloat(static_cast<uint16_t>(b));
    if (!std::isnan(f)) {
      EXPECT_EQ(FloatToBf16(f), b);
    }
  }
}

double Get(DataType dt, const std::vector<uint8_t>& buf, size_t i) {
  return testing::LoadValue(dt, buf.data(), i);
}

void Set(DataType dt, std::vector<uint8_t>& buf, size_t i, double x) {
  testing::StoreValue(dt, buf.data(), i, x);
}

bool IsSigned(DataType dt) {
  return dt != DataType::kU8;
}

class KernelTest : public ::testing::TestWithParam<std::tuple<DataType, ReduceOp>> {};

// Folds 5 contributions of 1000 elements (lengths that are not multiples of the f16 block)
// and compares with the reduction computed in double.
TEST_P(KernelTest, ReduceAllMatchesReference) {
  auto [dt, op] = GetParam();
  const size_t n = 1000;
  const int k = 5;
  std::vector<std::vector<uint8_t>> in(k, std::vector<uint8_t>(n * DataTypeSize(dt)));
  std::vector<std::vector<double>> vals(k, std::vector<double>(n));
  for (int r = 0; r < k; ++r) {
    for (size_t i = 0; i < n; ++i) {
      double v;
      if (op == ReduceOp::kProd) {
        v = ((r + i) % 3 == 0) ? 2 : 1;
        if (IsSigned(dt) && (r + i) % 7 == 0) v = -1;
      } else {
        v = static_cast<double>((r * 7 + i * 3) % 11);
        if (IsSigned(dt)) v -= 5;  // negatives: MAX must not start from 0 (field bug 2)
      }
      vals[r][i] = v;
      Set(dt, in[r], i, v);
    }
  }
  std::vector<const void*> ptrs;
  for (auto& b : in) ptrs.push_back(b.data());
  std::vector<uint8_t> out(n * DataTypeSize(dt));
  ASSERT_TRUE(CpuReducer::Default().ReduceAll(out.data(), ptrs, n, dt, op, Location::Host()).ok());
  int wrong = 0;
  for (size_t i = 0; i < n; ++i) {
    double want = vals[0][i];
    for (int r = 1; r < k; ++r) {
      double v = vals[r][i];
      switch (op) {
        case ReduceOp::kSum:
        case ReduceOp::kAvg:
          want += v;
          break;
        case ReduceOp::kProd:
          want *= v;
          break;
        case ReduceOp::kMin:
          want = std::min(want, v);
          break;
        case ReduceOp::kMax:
          want = std::max(want, v);
          break;
        default:
          break;
      }
    }
    if (op == ReduceOp::kAvg) {
      if (dt == DataType::kF32 || dt == DataType::kF16 || dt == DataType::kBF16) {
        want = static_cast<float>(want) / static_cast<float>(k);
      } else if (dt == DataType::kF64) {
        want = want / k;
      } else {
        want = std::trunc(want / k);
      }
    }
    std::vector<uint8_t> w(DataTypeSize(dt));
    Set(dt, w, 0, want);
    if (std::memcmp(w.data(), out.data() + i * w.size(), w.size()) != 0) ++wrong;
    if (wrong == 1 && std::memcmp(w.data(), out.data() + i * w.size(), w.size()) != 0) {
      ADD_FAILURE() << "first wrong element " << i << ": got " << Get(dt, out, i) << " want "
                    << want;
    }
  }
  EXPECT_EQ(wrong, 0);
}

TEST_P(KernelTest, IdentityIsNeutral) {
  auto [dt, op] = GetParam();
  const size_t n = 300;
  if (op == ReduceOp::kAvg) {  // AVG folds like SUM: its neutral element is 0
    std::vector<uint8_t> z(n * DataTypeSize(dt), 0xAB);
    ASSERT_TRUE(CpuReducer::Default().Identity(z.data(), n, dt, op, Location::Host()).ok());
    EXPECT_EQ(z, std::vector<uint8_t>(z.size(), 0));
    return;
  }
  std::vector<uint8_t> acc(n * DataTypeSize(dt)), x(n * DataTypeSize(dt));
  for (size_t i = 0; i < n; ++i) Set(dt, x, i, IsSigned(dt) ? int(i % 9) - 4 : int(i % 9));
  ASSERT_TRUE(CpuReducer::Default().Identity(acc.data(), n, dt, op, Location::Host()).ok());
  ASSERT_TRUE(CpuReducer::Default().Fold(acc.data(), x.data(), n, dt, op, Location::Host()).ok());
  EXPECT_EQ(acc, x);
}

TEST_P(KernelTest, FoldInPlaceWithItself) {
  auto [dt, op] = GetParam();
  const size_t n = 300;
  std::vector<uint8_t> a(n * DataTypeSize(dt)), b;
  for (size_t i = 0; i < n; ++i) Set(dt, a, i, int(i % 5) + 1);
  b = a;
  std::vector<uint8_t> copy = a;
  ASSERT_TRUE(CpuReducer::Default().Fold(a.data(), a.data(), n, dt, op, Location::Host()).ok());
  ASSERT_TRUE(CpuReducer::Default().Fold(b.data(), copy.data(), n, dt, op, Location::Host()).ok());
  EXPECT_EQ(a, b);
}

INSTANTIATE_TEST_SUITE_P(
    AllTypesAllOps, KernelTest,
    ::testing::Combine(::testing::Values(DataType::kF32, DataType::kF64, DataType::kF16,
                                         DataType::kBF16, DataType::kI8, DataType::kU8,
                                         DataType::kI32, DataType::kI64),
                       ::testing::Values(ReduceOp::kSum, ReduceOp::kProd, ReduceOp::kMin,
                                         ReduceOp::kMax, ReduceOp::kAvg)),
    [](const auto& info) {
      return std::string(DataTypeName(std::get<0>(info.param))) + "_" +
             std::string(ReduceOpName(std::get<1>(info.param)));
    });

// Field bug 2: an accumulator started at 0 makes PROD 0 and MAX of negatives 0.
TEST(KernelFieldBug2, AccumulatorStartsFromFirstContribution) {
  std::vector<int32_t> a = {-5, 3, -1}, b = {-7, 3, -2};
  std::vector<int32_t> out(3);
  const void* in[] = {a.data(), b.data()};
  ASSERT_TRUE(CpuReducer::Default()
                  .ReduceAll(out.data(), in, 3, DataType::kI32, ReduceOp::kMax, Location::Host())
                  .ok());
  EXPECT_EQ(out, (std::vector<int32_t>{-5, 3, -1}));
  ASSERT_TRUE(CpuReducer::Default()
                  .ReduceAll(out.data(), in, 3, DataType::kI32, ReduceOp::kProd, Location::Host())
                  .ok());
  EXPECT_EQ(out, (std::vector<int32_t>{35, 9, 2}));
}

TEST(Kernel, IntegerOverflowWraps) {
  std::vector<int8_t> a = {127, -128}, b = {1, -1};
  ASSERT_TRUE(CpuReducer::Default()
                  .Fold(a.data(), b.data(), 2, DataType::kI8, ReduceOp::kSum, Location::Host())
                  .ok());
  EXPECT_EQ(a[0], -128);
  EXPECT_EQ(a[1], 127);
  std::vector<int64_t> c = {std::numeric_limits<int64_t>::max()}, d = {2};
  ASSERT_TRUE(CpuReducer::Default()
                  .Fold(c.data(), d.data(), 1, DataType::kI64, ReduceOp::kProd, Location::Host())
                  .ok());
  EXPECT_EQ(c[0], -2);
}

TEST(Kernel, RejectsBadArguments) {
  float x = 1;
  auto& r = CpuReducer::Default();
  EXPECT_EQ(r.Fold(&x, &x, 1, DataType::kCount, ReduceOp::kSum, Location::Host()).code(),
            ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(r.Fold(&x, &x, 1, DataType::kF32, ReduceOp::kCount, Location::Host()).code(),
            ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(r.Fold(&x, &x, 1, DataType::kF32, ReduceOp::kSum, Location::Cuda(0)).code(),
            ErrorCode::UNSUPPORTED);
  EXPECT_EQ(r.Scale(&x, 1, DataType::kF32, 0, Location::Host()).code(), ErrorCode::INVALID_PARAMS);
}

TEST(Types, NamesParseBack) {
  for (size_t i = 0; i < kDataTypes; ++i) {
    auto dt = static_cast<DataType>(i);
    auto parsed = ParseDataType(DataTypeName(dt));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, dt);
  }
  for (size_t i = 0; i < kReduceOps; ++i) {
    auto op = static_cast<ReduceOp>(i);
    auto parsed = ParseReduceOp(ReduceOpName(op));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, op);
  }
  EXPECT_EQ(ParseDataType("f128").code(), ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ParseReduceOp("xor").code(), ErrorCode::INVALID_PARAMS);
}

TEST(Types, ValidateTensor) {
  float x = 0;
  EXPECT_TRUE(ValidateTensor({&x, DataType::kF32, 1, Location::Host()}, "t").ok());
  EXPECT_TRUE(ValidateTensor({nullptr, DataType::kF32, 0, Location::Host()}, "t").ok());
  EXPECT_EQ(ValidateTensor({nullptr, DataType::kF32, 1, Location::Host()}, "t").code(),
            ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ValidateTensor({&x, DataType::kCount, 1, Location::Host()}, "t").code(),
            ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(ValidateTensor({&x, DataType::kF32, 1, Location::Cuda(0)}, "t").code(),
            ErrorCode::UNSUPPORTED);
}

// The base class's FoldIntoAsync (copy acc into out, fold in): out = acc (op) in, acc left
// as it was, out == acc folds in place; its completion runs once with OK.
TEST(ReducerFoldInto, BaseClassCopiesTheAccumulatorThenFolds) {
  CpuReducer& cpu = CpuReducer::Default();
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kProd, ReduceOp::kMin, ReduceOp::kMax}) {
    std::vector<int32_t> acc = {5, -3, 7, 0, 2}, in = {1, 4, -6, 9, 2};
    std::vector<int32_t> want = acc;
    ASSERT_TRUE(cpu.Fold(want.data(), in.data(), want.size(), DataType::kI32, op,
                         Location::Host()).ok());
    std::vector<int32_t> out(acc.size(), 99);
    int calls = 0;
    Status got = Status(ErrorCode::INTERNAL_ERROR, "not called");
    cpu.FoldIntoAsync(out.data(), acc.data(), in.data(), acc.size(), DataType::kI32, op,
                      Location::Host(), [&](Status st) {
                        ++calls;
                        got = st;
                      });
    EXPECT_EQ(calls, 1);
    EXPECT_TRUE(got.ok()) << got.ToString();
    EXPECT_EQ(out, want);
    EXPECT_EQ(acc, (std::vector<int32_t>{5, -3, 7, 0, 2}));
    cpu.FoldIntoAsync(acc.data(), acc.data(), in.data(), acc.size(), DataType::kI32, op,
                      Location::Host(), [&](Status st) { got = st; });
    EXPECT_TRUE(got.ok());
    EXPECT_EQ(acc, want);
  }
  // A bad dtype reaches the completion as INVALID_PARAMS.
  int32_t a = 1, b = 2, o = 0;
  Status bad;
  cpu.FoldIntoAsync(&o, &a, &b, 1, DataType::kCount, ReduceOp::kSum, Location::Host(),
                    [&](Status st) { bad = st; });
  EXPECT_EQ(bad.code(), ErrorCode::INVALID_PARAMS);
}

}  // namespace
}  // namespace tidal::coll
