// CudaReducer against CpuReducer, element-exact (bytewise; a NaN equals any NaN, see
// CountDiff), on every dtype and op: Fold
// (also acc == in), Scale (AVG's divide), Identity and ReduceAll, over inputs that hit
// the corners (integer wrap, f16 overflow to inf, subnormals, signed zeros, NaN,
// infinities). Label `cuda`: without a CUDA device every test skips, saying why.
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <chrono>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <future>
#include <vector>

#include "tidal/collectives/reduce_cuda.h"

namespace tidal::coll {
namespace {

constexpr DataType kTypes[] = {DataType::kF32, DataType::kF64, DataType::kF16, DataType::kBF16,
                               DataType::kI8,  DataType::kU8,  DataType::kI32, DataType::kI64};
constexpr ReduceOp kOps[] = {ReduceOp::kSum, ReduceOp::kProd, ReduceOp::kMin, ReduceOp::kMax,
                             ReduceOp::kAvg};

std::string NoDeviceReason() {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) return std::string("no CUDA device: ") + cudaGetErrorString(e);
  if (n == 0) return "no CUDA device: cudaGetDeviceCount found 0 devices";
  return "";
}

#define SKIP_WITHOUT_GPU()                                  \
  do {                                                      \
    std::string why_ = NoDeviceReason();                    \
    if (!why_.empty()) GTEST_SKIP() << why_;                \
  } while (0)

// Element values that exercise every rule, as raw bytes of `count` elements.
std::vector<uint8_t> Values(DataType dt, size_t count, uint32_t seed) {
  std::mt19937_64 rng(seed);
  const size_t es = DataTypeSize(dt);
  std::vector<uint8_t> out(count * es);
  for (size_t i = 0; i < count; ++i) {
    uint8_t* p = out.data() + i * es;
    const uint64_t r = rng();
    switch (dt) {
      case DataType::kF32: {
        static const float special[] = {0.0f, -0.0f, 1.0f, -1.0f, 3.0e38f, -3.0e38f, 1e-40f,
                                        std::numeric_limits<float>::infinity(),
                                        -std::numeric_limits<float>::infinity(),
                                        std::numeric_limits<float>::quiet_NaN()};
        float v = (r % 16 < 10) ? special[r % 10]
                                : static_cast<float>(static_cast<int64_t>(r >> 20) % 20001) / 37.0f;
        std::memcpy(p, &v, 4);
        break;
      }
      case DataType::kF64: {
        static const double special[] = {0.0, -0.0, 1.0, -1.0, 1.7e308, -1.7e308, 4e-320,
                                         std::numeric_limits<double>::infinity(),
                                         -std::numeric_limits<double>::infinity(),
                                         std::numeric_limits<double>::quiet_NaN()};
        double v = (r % 16 < 10) ? special[r % 10]
                                 : static_cast<double>(static_cast<int64_t>(r >> 20) % 200001) / 7.0;
        std::memcpy(p, &v, 8);
        break;
      }
      case DataType::kF16:
      case DataType::kBF16: {
        // Any bit pattern: normals, subnormals, +-0, inf, NaN, the largest values.
        uint16_t v = static_cast<uint16_t>(r >> 7);
        std::memcpy(p, &v, 2);
        break;
      }
      default:
        std::memcpy(p, &r, es);  // full range: SUM/PROD wrap
        break;
    }
  }
  return out;
}

struct DeviceBuf {
  void* p = nullptr;
  size_t bytes = 0;
  explicit DeviceBuf(size_t b, int device = 0) : bytes(b) {
    cudaSetDevice(device);
    EXPECT_EQ(cudaMalloc(&p, b == 0 ? 1 : b), cudaSuccess);
  }
  ~DeviceBuf() { cudaFree(p); }
  void Put(const std::vector<uint8_t>& v) {
    ASSERT_EQ(cudaMemcpy(p, v.data(), v.size(), cudaMemcpyHostToDevice), cudaSuccess);
    // From pageable memory cudaMemcpy may return before the DMA landed, and the reducer's
    // asynchronous forms run on a non-blocking stream that does not wait for it.
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  }
  std::vector<uint8_t> Get() const {
    std::vector<uint8_t> v(bytes);
    EXPECT_EQ(cudaMemcpy(v.data(), p, bytes, cudaMemcpyDeviceToHost), cudaSuccess);
    return v;
  }
};

std::string Name(DataType dt, ReduceOp op, size_t n) {
  return std::string(DataTypeName(dt)) + " " + std::string(ReduceOpName(op)) + " n=" +
         std::to_string(n);
}

// True when the element at p is a NaN of float type `dt`.
bool IsNan(DataType dt, const uint8_t* p) {
  switch (dt) {
    case DataType::kF32: {
      uint32_t b;
      std::memcpy(&b, p, 4);
      return (b & 0x7fffffffu) > 0x7f800000u;
    }
    case DataType::kF64: {
      uint64_t b;
      std::memcpy(&b, p, 8);
      return (b & 0x7fffffffffffffffull) > 0x7ff0000000000000ull;
    }
    case DataType::kF16: {
      uint16_t b;
      std::memcpy(&b, p, 2);
      return (b & 0x7fffu) > 0x7c00u;
    }
    case DataType::kBF16: {
      uint16_t b;
      std::memcpy(&b, p, 2);
      return (b & 0x7fffu) > 0x7f80u;
    }
    default:
      return false;
  }
}

// Elements that differ bytewise, except that a NaN equals any NaN: IEEE 754 leaves the
// sign and payload of a NaN that arithmetic produces to the hardware, and they differ
// between x86 (the first NaN operand, quieted; 0xffc00000 for an invalid operation) and
// NVIDIA GPUs (0x7fffffff). Every non-NaN element, and whether an element is NaN at all,
// must match exactly.
size_t CountDiff(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b, size_t es,
                 DataType dt) {
  size_t wrong = 0;
  for (size_t i = 0; i + es <= a.size(); i += es) {
    if (IsNan(dt, &a[i]) && IsNan(dt, &b[i])) continue;
    wrong += std::memcmp(&a[i], &b[i], es) != 0;
  }
  return wrong;
}

TEST(CudaReducer, FoldMatchesTheCpuReducerOnEveryTypeAndOp) {
  SKIP_WITHOUT_GPU();
  CudaReducer& gpu = CudaReducer::Default();
  CpuReducer& cpu = CpuReducer::Default();
  const Location dev = Location::Cuda(0);
  for (DataType dt : kTypes) {
    for (ReduceOp op : kOps) {
      for (size_t n : {size_t{1}, size_t{1000}, size_t{(1 << 20) + 3}}) {
        SCOPED_TRACE(Name(dt, op, n));
        const size_t es = DataTypeSize(dt);
        std::vector<uint8_t> a = Values(dt, n, 1 + n), b = Values(dt, n, 2 + n);
        std::vector<uint8_t> want = a;
        ASSERT_TRUE(cpu.Fold(want.data(), b.data(), n, dt, op, Location::Host()).ok());
        DeviceBuf da(n * es), db(n * es);
        da.Put(a);
        db.Put(b);
        Status s = gpu.Fold(da.p, db.p, n, dt, op, dev);
        ASSERT_TRUE(s.ok()) << s.ToString();
        EXPECT_EQ(CountDiff(want, da.Get(), es, dt), 0u);
        // acc == in (x op x).
        std::vector<uint8_t> self = a;
        ASSERT_TRUE(cpu.Fold(self.data(), self.data(), n, dt, op, Location::Host()).ok());
        da.Put(a);
        ASSERT_TRUE(gpu.Fold(da.p, da.p, n, dt, op, dev).ok());
        EXPECT_EQ(CountDiff(self, da.Get(), es, dt), 0u);
      }
    }
  }
}

// FoldIntoAsync (out = acc op in, acc unchanged) against the CPU's Fold of a copy of acc,
// with completions seen by polled events and by cudaLaunchHostFunc.
TEST(CudaReducer, FoldIntoAsyncMatchesTheCpuReducerUnderBothCompletions) {
  SKIP_WITHOUT_GPU();
  CudaReducer& gpu = CudaReducer::Default();
  const Location dev = Location::Cuda(0);
  for (auto how : {CudaReducer::Completion::kPoll, CudaReducer::Completion::kHostFunc}) {
    CudaReducer::SetCompletion(how);
    for (DataType dt : kTypes) {
      for (ReduceOp op : kOps) {
        const size_t n = 100003;
        SCOPED_TRACE(Name(dt, op, n) + (how == CudaReducer::Completion::kPoll ? " poll" : " hostfunc"));
        const size_t es = DataTypeSize(dt);
        std::vector<uint8_t> a = Values(dt, n, 11), b = Values(dt, n, 12), want = a;
        ASSERT_TRUE(CpuReducer::Default().Fold(want.data(), b.data(), n, dt, op, Location::Host()).ok());
        DeviceBuf da(n * es), db(n * es), dout(n * es);
        da.Put(a);
        db.Put(b);
        std::promise<Status> p;
        gpu.FoldIntoAsync(dout.p, da.p, db.p, n, dt, op, dev, [&p](Status st) { p.set_value(st); });
        Status st = p.get_future().get();
        ASSERT_TRUE(st.ok()) << st.ToString();
        EXPECT_EQ(CountDiff(want, dout.Get(), es, dt), 0u);
        EXPECT_EQ(CountDiff(a, da.Get(), es, dt), 0u);  // the accumulator's source unchanged
        // out == acc: an in-place fold.
        std::promise<Status> q;
        gpu.FoldIntoAsync(da.p, da.p, db.p, n, dt, op, dev, [&q](Status st) { q.set_value(st); });
        ASSERT_TRUE(q.get_future().get().ok());
        EXPECT_EQ(CountDiff(want, da.Get(), es, dt), 0u);
      }
    }
  }
  CudaReducer::SetCompletion(CudaReducer::Completion::kPoll);
  // A refused call reports through done at once.
  DeviceBuf x(16);
  Status refused;
  gpu.FoldIntoAsync(x.p, x.p, x.p, 1, DataType::kF32, ReduceOp::kSum, Location::Cuda(4096),
                    [&refused](Status st) { refused = st; });
  EXPECT_EQ(refused.code(), ErrorCode::UNSUPPORTED);
}

// PollFromCaller: a thread that polls (an event loop's spin poller) takes the completions of
// queued work itself and runs their dones in the order the work was queued, whoever found
// them; the completion thread keeps off meanwhile. Six folds of 32 Mi i32 (about 130 us each)
// queued at once: acc = a + 6 b exactly, dones in order 0..5, at least one found by the
// caller (the first may be the completion thread's, from a pass before the caller's first).
TEST(CudaReducer, ACallerThatPollsRunsTheDonesInOrder) {
  SKIP_WITHOUT_GPU();
  CudaReducer::SetCompletion(CudaReducer::Completion::kPoll);
  const size_t n = 32u << 20;
  std::vector<int32_t> a(n), b(n);
  for (size_t i = 0; i < n; ++i) {
    a[i] = static_cast<int32_t>(i * 7 % 1000003) - 500000;
    b[i] = static_cast<int32_t>(i % 977) - 488;
  }
  DeviceBuf da(n * 4), db(n * 4);
  da.Put(std::vector<uint8_t>(reinterpret_cast<uint8_t*>(a.data()),
                              reinterpret_cast<uint8_t*>(a.data()) + n * 4));
  db.Put(std::vector<uint8_t>(reinterpret_cast<uint8_t*>(b.data()),
                              reinterpret_cast<uint8_t*>(b.data()) + n * 4));
  const uint64_t before = CudaReducer::CallerCompletions();
  std::mutex mu;
  std::vector<int> order;
  std::vector<Status> statuses;
  for (int k = 0; k < 6; ++k) {
    CudaReducer::Default().FoldAsync(da.p, db.p, n, DataType::kI32, ReduceOp::kSum,
                                     Location::Cuda(0), [&, k](Status st) {
                                       std::lock_guard<std::mutex> lock(mu);
                                       order.push_back(k);
                                       statuses.push_back(st);
                                     });
  }
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (;;) {
    CudaReducer::PollFromCaller();
    std::lock_guard<std::mutex> lock(mu);
    if (order.size() == 6 || std::chrono::steady_clock::now() > until) break;
  }
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4, 5}));
  for (const Status& st : statuses) EXPECT_TRUE(st.ok()) << st.ToString();
  const uint64_t by_caller = CudaReducer::CallerCompletions() - before;
  EXPECT_GE(by_caller, 1u);
  EXPECT_LE(by_caller, 6u);
  const std::vector<uint8_t> got = da.Get();
  size_t wrong = 0;
  for (size_t i = 0; i < n; ++i) {
    int32_t v;
    std::memcpy(&v, got.data() + i * 4, 4);
    if (v != a[i] + 6 * b[i]) ++wrong;
  }
  EXPECT_EQ(wrong, 0u);
}

TEST(CudaReducer, ScaleMatchesTheCpuReducer) {
  SKIP_WITHOUT_GPU();
  const size_t n = 100003;
  for (DataType dt : kTypes) {
    for (uint64_t d : {uint64_t{1}, uint64_t{2}, uint64_t{3}, uint64_t{7}, uint64_t{1000}}) {
      SCOPED_TRACE(Name(dt, ReduceOp::kAvg, n) + " divisor=" + std::to_string(d));
      const size_t es = DataTypeSize(dt);
      std::vector<uint8_t> a = Values(dt, n, 99), want = a;
      ASSERT_TRUE(CpuReducer::Default().Scale(want.data(), n, dt, d, Location::Host()).ok());
      DeviceBuf da(n * es);
      da.Put(a);
      ASSERT_TRUE(CudaReducer::Default().Scale(da.p, n, dt, d, Location::Cuda(0)).ok());
      EXPECT_EQ(CountDiff(want, da.Get(), es, dt), 0u);
    }
  }
  DeviceBuf x(8);
  EXPECT_EQ(CudaReducer::Default().Scale(x.p, 1, DataType::kF32, 0, Location::Cuda(0)).code(),
            ErrorCode::INVALID_PARAMS);
}

TEST(CudaReducer, IdentityAndReduceAllMatchTheCpuReducer) {
  SKIP_WITHOUT_GPU();
  const size_t n = 4099;
  for (DataType dt : kTypes) {
    for (ReduceOp op : kOps) {
      SCOPED_TRACE(Name(dt, op, n));
      const size_t es = DataTypeSize(dt);
      std::vector<uint8_t> want(n * es);
      ASSERT_TRUE(CpuReducer::Default().Identity(want.data(), n, dt, op, Location::Host()).ok());
      DeviceBuf out(n * es);
      ASSERT_TRUE(CudaReducer::Default().Identity(out.p, n, dt, op, Location::Cuda(0)).ok());
      EXPECT_EQ(CountDiff(want, out.Get(), es, dt), 0u);
      // Three inputs, in order, AVG divided by 3.
      std::vector<uint8_t> i0 = Values(dt, n, 5), i1 = Values(dt, n, 6), i2 = Values(dt, n, 7);
      const void* host_in[] = {i0.data(), i1.data(), i2.data()};
      ASSERT_TRUE(CpuReducer::Default().ReduceAll(want.data(), host_in, n, dt, op,
                                                  Location::Host()).ok());
      DeviceBuf d0(n * es), d1(n * es), d2(n * es);
      d0.Put(i0);
      d1.Put(i1);
      d2.Put(i2);
      const void* dev_in[] = {d0.p, d1.p, d2.p};
      Status s = CudaReducer::Default().ReduceAll(out.p, dev_in, n, dt, op, Location::Cuda(0));
      ASSERT_TRUE(s.ok()) << s.ToString();
      EXPECT_EQ(CountDiff(want, out.Get(), es, dt), 0u);
    }
  }
}

TEST(CudaReducer, HostLocationsUseTheCpuKernelsAndBadArgumentsAreRefused) {
  SKIP_WITHOUT_GPU();
  int32_t acc[3] = {1, 2, 3}, in[3] = {10, 20, 30};
  ASSERT_TRUE(CudaReducer::Default().Fold(acc, in, 3, DataType::kI32, ReduceOp::kSum,
                                          Location::Host()).ok());
  EXPECT_EQ(acc[0], 11);
  EXPECT_EQ(acc[2], 33);
  DeviceBuf x(16);
  EXPECT_EQ(CudaReducer::Default().Fold(x.p, x.p, 1, DataType::kCount, ReduceOp::kSum,
                                        Location::Cuda(0)).code(),
            ErrorCode::INVALID_PARAMS);
  EXPECT_EQ(CudaReducer::Default().Fold(x.p, x.p, 1, DataType::kF32, ReduceOp::kSum,
                                        Location::Cuda(4096)).code(),
            ErrorCode::UNSUPPORTED);
}

}  // namespace
}  // namespace tidal::coll
