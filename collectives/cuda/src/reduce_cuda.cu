// GPU reduction kernels: one grid-stride loop per (dtype, op), with the CPU reducer's exact
// arithmetic (reduce_cpu.cc) written for the device.
#include <cuda_runtime.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <string>
#include <utility>
#include <vector>
#include <type_traits>

#include "tidal/collectives/reduce_cuda.h"

namespace tidal::coll {
namespace {

// --- f16 / bf16, bit for bit the CPU conversions (reduce_cpu.cc) ---------------------
__device__ inline uint16_t DFloatToHalf(float f) {
  uint32_t x = __float_as_uint(f);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) {
    return static_cast<uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));
  }
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);
  if (abs < 0x38800000u) {
    if (abs < 0x33000000u) return static_cast<uint16_t>(sign);
    uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    int shift = 126 - static_cast<int>(abs >> 23);
    uint32_t value = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (value & 1u))) ++value;
    return static_cast<uint16_t>(sign | value);
  }
  uint32_t value = ((abs >> 13) - (112u << 10));
  uint32_t rem = abs & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (value & 1u))) ++value;
  return static_cast<uint16_t>(sign | value);
}

__device__ inline float DHalfToFloat(uint16_t h) {
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
  } else {
    float v = static_cast<float>(mant) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  return __uint_as_float(bits);
}

__device__ inline uint16_t DFloatToBf16(float f) {
  uint32_t x = __float_as_uint(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
  uint32_t rounding = 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>((x + rounding) >> 16);
}

__device__ inline float DBf16ToFloat(uint16_t b) {
  return __uint_as_float(static_cast<uint32_t>(b) << 16);
}

// --- element types: how to widen, operate and narrow ---------------------------------
struct Half {};
struct Bf16 {};

template <typename T>
struct Elem {  // native arithmetic types
  using Storage = T;
  using Math = T;
  __device__ static Math Load(Storage v) { return v; }
  __device__ static Storage Store(Math v) { return v; }
};
template <>
struct Elem<Half> {
  using Storage = uint16_t;
  using Math = float;
  __device__ static float Load(uint16_t v) { return DHalfToFloat(v); }
  __device__ static uint16_t Store(float v) { return DFloatToHalf(v); }
};
template <>
struct Elem<Bf16> {
  using Storage = uint16_t;
  using Math = float;
  __device__ static float Load(uint16_t v) { return DBf16ToFloat(v); }
  __device__ static uint16_t Store(float v) { return DFloatToBf16(v); }
};

template <typename T>
using Wide = std::conditional_t<std::is_integral_v<T>, std::make_unsigned_t<T>, T>;

template <typename T>
__device__ inline T Add(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    return static_cast<T>(static_cast<Wide<T>>(static_cast<Wide<T>>(a) + static_cast<Wide<T>>(b)));
  } else {
    return a + b;
  }
}

template <typename T>
__device__ inline T Mul(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    using U = std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned, Wide<T>>;
    return static_cast<T>(static_cast<Wide<T>>(static_cast<U>(static_cast<Wide<T>>(a)) *
                                               static_cast<U>(static_cast<Wide<T>>(b))));
  } else {
    return a * b;
  }
}

template <typename M, int Op>
__device__ inline M Apply(M acc, M in) {
  if constexpr (Op == static_cast<int>(ReduceOp::kSum) || Op == static_cast<int>(ReduceOp::kAvg)) {
    return Add(acc, in);
  } else if constexpr (Op == static_cast<int>(ReduceOp::kProd)) {
    return Mul(acc, in);
  } else if constexpr (Op == static_cast<int>(ReduceOp::kMin)) {
    return in < acc ? in : acc;
  } else {
    return in > acc ? in : acc;
  }
}

// out[i] = acc[i] (op) in[i]. out may be acc, and acc may be in (each element is read
// before it is written).
template <typename E, int Op>
__global__ void FoldKernel(typename Elem<E>::Storage* out, const typename Elem<E>::Storage* acc,
                           const typename Elem<E>::Storage* in, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const auto a = Elem<E>::Load(acc[i]);
    const auto b = Elem<E>::Load(in[i]);
    out[i] = Elem<E>::Store(Apply<typename Elem<E>::Math, Op>(a, b));
  }
}

// The same fold over 16-byte vectors (out, acc and in all 16-byte aligned), each thread
// loading kUnroll vectors of each input before it computes and stores them, so that more
// loads are in flight: per element the same arithmetic as FoldKernel, bit for bit. Each
// vector is read before it is written and threads touch disjoint vectors, so out may be
// acc and acc may be in, as above.
constexpr int kUnroll = 4;

template <typename E, int Op>
__device__ inline uint4 FoldVector(uint4 a, uint4 b) {
  using S = typename Elem<E>::Storage;
  constexpr int kPer = 16 / sizeof(S);
  union V {
    uint4 v;
    S e[kPer];
  };
  V x, y;
  x.v = a;
  y.v = b;
#pragma unroll
  for (int k = 0; k < kPer; ++k) {
    x.e[k] = Elem<E>::Store(
        Apply<typename Elem<E>::Math, Op>(Elem<E>::Load(x.e[k]), Elem<E>::Load(y.e[k])));
  }
  return x.v;
}

template <typename E, int Op>
__global__ void FoldKernel16(uint4* out, const uint4* acc, const uint4* in, size_t n) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  for (; i + (kUnroll - 1) * stride < n; i += kUnroll * stride) {
    uint4 a[kUnroll], b[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      a[u] = acc[i + u * stride];
      b[u] = in[i + u * stride];
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) out[i + u * stride] = FoldVector<E, Op>(a[u], b[u]);
  }
  for (; i < n; i += stride) out[i] = FoldVector<E, Op>(acc[i], in[i]);
}

template <typename E>
__global__ void ScaleKernel(typename Elem<E>::Storage* data, size_t n, uint64_t divisor) {
  using S = typename Elem<E>::Storage;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    if constexpr (std::is_same_v<E, Half> || std::is_same_v<E, Bf16>) {
      data[i] = Elem<E>::Store(Elem<E>::Load(data[i]) / static_cast<float>(divisor));
    } else if constexpr (std::is_integral_v<S> && std::is_signed_v<S>) {
      data[i] = static_cast<S>(static_cast<int64_t>(data[i]) / static_cast<int64_t>(divisor));
    } else if constexpr (std::is_integral_v<S>) {
      data[i] = static_cast<S>(static_cast<uint64_t>(data[i]) / divisor);
    } else {
      data[i] = data[i] / static_cast<S>(divisor);
    }
  }
}

template <typename S>
__global__ void FillKernel(S* data, size_t n, S value) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    data[i] = value;
  }
}

// Device-to-device copies on the SMs rather than a copy engine: the copy engines carry the
// transport's NVLink writes, and an SM copy moves a slot several times faster than a
// copy engine does within one GPU. 16-byte vectors when both ends allow, bytes otherwise.
__global__ void CopyKernel16(uint4* dst, const uint4* src, size_t n) {
  // kUnroll loads in flight per thread before their stores (dst and src do not overlap).
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  for (; i + (kUnroll - 1) * stride < n; i += kUnroll * stride) {
    uint4 v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) v[u] = src[i + u * stride];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) dst[i + u * stride] = v[u];
  }
  for (; i < n; i += stride) dst[i] = src[i];
}
__global__ void CopyKernel1(uint8_t* dst, const uint8_t* src, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    dst[i] = src[i];
  }
}

constexpr int kThreads = 256;

std::atomic<unsigned> g_blocks_per_sm{8};  // CudaReducer::SetBlocksPerSm

unsigned Blocks(size_t n) {
  static const unsigned sms = [] {
    int device = 0, count = 0;
    cudaGetDevice(&device);
    if (cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
      (void)cudaGetLastError();
      count = 80;
    }
    return static_cast<unsigned>(count);
  }();
  const unsigned cap = sms * g_blocks_per_sm.load(std::memory_order_relaxed);
  size_t want = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(want < cap ? want : cap);
}

Status CudaStatus(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return Status::Ok();
  (void)cudaGetLastError();
  return Status(ErrorCode::INTERNAL_ERROR, std::string("CudaReducer: ") + what + ": " +
                                               cudaGetErrorName(e) + " (" + cudaGetErrorString(e) +
                                               ")");
}

// Makes `device` current for the scope of one call and restores the caller's device.
// (cudaSetDevice only when the device differs: the data path calls this per chunk.)
class OnDevice {
 public:
  explicit OnDevice(int device) : previous_(Current()) {
    if (previous_ != device) status_ = CudaStatus(cudaSetDevice(device), "cudaSetDevice");
    changed_ = previous_ != device;
  }
  ~OnDevice() {
    if (changed_) cudaSetDevice(previous_);
  }
  const Status& status() const { return status_; }

 private:
  static int Current() {
    int d = 0;
    cudaGetDevice(&d);
    return d;
  }
  int previous_;
  bool changed_ = false;
  Status status_;
};

Status CheckDevice(Location location) {
  // The device count of a process does not change: asked once (the data path checks
  // every chunk's location).
  static const std::pair<cudaError_t, int> count = [] {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) (void)cudaGetLastError();
    return std::make_pair(e, n);
  }();
  const cudaError_t e = count.first;
  const int n = count.second;
  if (e != cudaSuccess) {
    return Status(ErrorCode::UNSUPPORTED, std::string("CudaReducer: no CUDA device: ") +
                                              cudaGetErrorString(e));
  }
  if (location.device < 0 || location.device >= n) {
    return Status(ErrorCode::UNSUPPORTED, "CudaReducer: no device " + location.ToString());
  }
  return Status::Ok();
}

Status CheckArgs(DataType dtype, ReduceOp op) {
  if (DataTypeSize(dtype) == 0) return Status(ErrorCode::INVALID_PARAMS, "bad data type");
  if (static_cast<size_t>(op) >= kReduceOps) {
    return Status(ErrorCode::INVALID_PARAMS, "bad reduction");
  }
  return Status::Ok();
}

Status Finish(const char* what) {
  TIDAL_RETURN_IF_ERROR(CudaStatus(cudaGetLastError(), what));
  return CudaStatus(cudaStreamSynchronize(cudaStreamPerThread), what);
}

template <typename E, int Op>
void LaunchFoldOp(typename Elem<E>::Storage* o, const typename Elem<E>::Storage* a,
                  const typename Elem<E>::Storage* b, size_t n, cudaStream_t stream) {
  using S = typename Elem<E>::Storage;
  constexpr size_t kPer = 16 / sizeof(S);
  const auto o_ = reinterpret_cast<uintptr_t>(o), a_ = reinterpret_cast<uintptr_t>(a),
             b_ = reinterpret_cast<uintptr_t>(b);
  // 16-byte vectors when all three ends are aligned, the elements past them one by one.
  const size_t vec = ((o_ | a_ | b_) % 16 == 0) ? n / kPer : 0;
  if (vec > 0) {
    const size_t per_thread = (vec + kUnroll - 1) / kUnroll;
    FoldKernel16<E, Op><<<Blocks(per_thread), kThreads, 0, stream>>>(
        reinterpret_cast<uint4*>(o), reinterpret_cast<const uint4*>(a),
        reinterpret_cast<const uint4*>(b), vec);
  }
  const size_t done = vec * kPer;
  if (done < n) {
    FoldKernel<E, Op><<<Blocks(n - done), kThreads, 0, stream>>>(o + done, a + done, b + done,
                                                                  n - done);
  }
}

template <typename E>
void LaunchFold(void* acc, const void* in, size_t n, ReduceOp op,
                cudaStream_t stream = cudaStreamPerThread, void* out = nullptr) {
  using S = typename Elem<E>::Storage;
  auto* o = static_cast<S*>(out != nullptr ? out : acc);
  const auto* a = static_cast<const S*>(acc);
  const auto* b = static_cast<const S*>(in);
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg:
      LaunchFoldOp<E, static_cast<int>(ReduceOp::kSum)>(o, a, b, n, stream);
      break;
    case ReduceOp::kProd:
      LaunchFoldOp<E, static_cast<int>(ReduceOp::kProd)>(o, a, b, n, stream);
      break;
    case ReduceOp::kMin:
      LaunchFoldOp<E, static_cast<int>(ReduceOp::kMin)>(o, a, b, n, stream);
      break;
    case ReduceOp::kMax:
      LaunchFoldOp<E, static_cast<int>(ReduceOp::kMax)>(o, a, b, n, stream);
      break;
    default:
      break;
  }
}

template <typename E>
void LaunchScale(void* data, size_t n, uint64_t divisor) {
  using S = typename Elem<E>::Storage;
  ScaleKernel<E><<<Blocks(n), kThreads, 0, cudaStreamPerThread>>>(static_cast<S*>(data), n, divisor);
}

template <typename S>
void LaunchFill(void* data, size_t n, const void* value) {
  S v;
  std::memcpy(&v, value, sizeof(S));
  FillKernel<S><<<Blocks(n), kThreads, 0, cudaStreamPerThread>>>(static_cast<S*>(data), n, v);
}

void LaunchCopy(void* dst, const void* src, size_t bytes, cudaStream_t stream) {
  const auto d = reinterpret_cast<uintptr_t>(dst), sr = reinterpret_cast<uintptr_t>(src);
  const size_t vec = ((d | sr) % 16 == 0) ? bytes / 16 : 0;
  if (vec > 0) {
    CopyKernel16<<<Blocks((vec + kUnroll - 1) / kUnroll), kThreads, 0, stream>>>(
        static_cast<uint4*>(dst), static_cast<const uint4*>(src), vec);
  }
  const size_t tail = bytes - vec * 16;
  if (tail > 0) {
    CopyKernel1<<<Blocks(tail), kThreads, 0, stream>>>(static_cast<uint8_t*>(dst) + vec * 16,
                                                        static_cast<const uint8_t*>(src) + vec * 16,
                                                        tail);
  }
}

// out = acc (op) in (out == nullptr: acc).
void LaunchFoldAny(void* acc, const void* in, size_t count, DataType dtype, ReduceOp op,
                   cudaStream_t stream, void* out = nullptr) {
  switch (dtype) {
    case DataType::kF32: LaunchFold<float>(acc, in, count, op, stream, out); break;
    case DataType::kF64: LaunchFold<double>(acc, in, count, op, stream, out); break;
    case DataType::kF16: LaunchFold<Half>(acc, in, count, op, stream, out); break;
    case DataType::kBF16: LaunchFold<Bf16>(acc, in, count, op, stream, out); break;
    case DataType::kI8: LaunchFold<int8_t>(acc, in, count, op, stream, out); break;
    case DataType::kU8: LaunchFold<uint8_t>(acc, in, count, op, stream, out); break;
    case DataType::kI32: LaunchFold<int32_t>(acc, in, count, op, stream, out); break;
    case DataType::kI64: LaunchFold<int64_t>(acc, in, count, op, stream, out); break;
    default: break;
  }
}

// The asynchronous forms' streams: one non-blocking stream per device, made on first use
// and kept for the life of the process.
Result<cudaStream_t> AsyncStream(int device) {
  static std::mutex mu;
  static std::vector<cudaStream_t> streams;
  std::lock_guard<std::mutex> lock(mu);
  if (static_cast<size_t>(device) >= streams.size()) streams.resize(device + 1, nullptr);
  if (streams[device] == nullptr) {
    cudaStream_t s = nullptr;
    TIDAL_RETURN_IF_ERROR(
        CudaStatus(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate"));
    streams[device] = s;
  }
  return streams[device];
}

void RunDone(void* data) {
  // CUDA's callback thread: no CUDA calls here, only the hand-over.
  std::unique_ptr<Reducer::Done> done(static_cast<Reducer::Done*>(data));
  (*done)(Status::Ok());
}

// Completions by polling (CudaReducer::Completion::kPoll): an event recorded behind the
// work, watched by one thread of the process that polls the events of work in flight and
// runs each `done` as its event completes. After the last one it keeps polling for new
// work for `spin_ns`, then sleeps until work is queued.
class Poller {
 public:
  static Poller& Get() {
    static Poller* p = new Poller();  // never destroyed: its thread lives with the process
    return *p;
  }

  // Records an event behind the work queued on `stream` (of the current device, `device`)
  // and hands `done` to the polling thread.
  void Watch(int device, cudaStream_t stream, Reducer::Done done) {
    cudaEvent_t event = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (static_cast<size_t>(device) < free_.size() && !free_[device].empty()) {
        event = free_[device].back();
        free_[device].pop_back();
      }
    }
    cudaError_t e = cudaSuccess;
    if (event == nullptr) e = cudaEventCreateWithFlags(&event, cudaEventDisableTiming);
    if (e == cudaSuccess) e = cudaEventRecord(event, stream);
    if (e != cudaSuccess) {
      Status st = CudaStatus(e, "cudaEventRecord");
      if (event != nullptr) {
        // The work may already be queued: let it finish before anyone reuses its memory.
        cudaStreamSynchronize(stream);
        cudaEventDestroy(event);
      }
      done(st);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending_.push_back(Entry{event, device, std::move(done)});
      pending_count_.fetch_add(1, std::memory_order_relaxed);
      if (!thread_started_) {
        thread_started_ = true;
        std::thread([this] { Loop(); }).detach();
      }
    }
    queued_.fetch_add(1, std::memory_order_release);
    cv_.notify_one();
  }

  void SetSpinNs(uint64_t ns) { spin_ns_.store(ns); }
  void SetGapNs(uint64_t ns) { gap_ns_.store(ns); }

  // CudaReducer::PollFromCaller: one pass on the calling thread; the `done`s of what it
  // found finished run there, unless the polling thread is running `done`s (it then runs
  // these too, after its own). Skipped when nothing is pending or the thread holds the lock.
  void PollFromCaller() {
    if (pending_count_.load(std::memory_order_relaxed) == 0) return;
    std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
    if (!lock.owns_lock()) return;
    caller_poll_ns_.store(NowNs(), std::memory_order_relaxed);
    const size_t found = Pass();
    if (found == 0) return;
    caller_done_.fetch_add(found, std::memory_order_relaxed);
    DrainLocked(lock);
  }
  uint64_t caller_done() const { return caller_done_.load(std::memory_order_relaxed); }

 private:
  struct Entry {
    cudaEvent_t event;
    int device;
    Reducer::Done done;
  };

  static uint64_t NowNs() {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count());
  }
  // How long after a caller's pass the polling thread asks no event itself (the caller's
  // loop spins and asks; past this it is busy or asleep and the thread asks again), so the
  // two do not contend for the driver.
  static constexpr uint64_t kCallerWindowNs = 20'000;

  // One pass over pending work (mu_ held): work of one device runs in queue order on its
  // one stream, so only the oldest entry of each device is asked; the ones behind a busy
  // one wait their turn. What finished moves to ready_, in order. Returns how many did.
  size_t Pass() {
    size_t n = 0;
    std::vector<bool>& blocked = blocked_;
    blocked.assign(free_.size(), false);
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (static_cast<size_t>(it->device) >= blocked.size()) blocked.resize(it->device + 1);
      if (blocked[it->device]) {
        ++it;
        continue;
      }
      const cudaError_t e = cudaEventQuery(it->event);
      if (e == cudaErrorNotReady) {
        blocked[it->device] = true;
        ++it;
        continue;
      }
      if (static_cast<size_t>(it->device) >= free_.size()) free_.resize(it->device + 1);
      free_[it->device].push_back(it->event);
      ready_.emplace_back(std::move(it->done),
                          e == cudaSuccess ? Status::Ok() : CudaStatus(e, "reducer work"));
      it = pending_.erase(it);
      pending_count_.fetch_sub(1, std::memory_order_relaxed);
      ++n;
    }
    return n;
  }

  // Runs the `done`s in ready_ in the order their work finished, on one thread at a time,
  // without the lock: a thread that finds another draining leaves its finds to it. Called
  // and returns with mu_ held.
  void DrainLocked(std::unique_lock<std::mutex>& lock) {
    if (draining_) return;
    draining_ = true;
    std::vector<std::pair<Reducer::Done, Status>> batch;
    while (!ready_.empty()) {
      batch.assign(std::make_move_iterator(ready_.begin()), std::make_move_iterator(ready_.end()));
      ready_.clear();
      lock.unlock();
      for (auto& [done, st] : batch) done(std::move(st));
      batch.clear();
      lock.lock();
    }
    draining_ = false;
  }

  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      if (pending_.empty()) {
        const uint64_t seen = queued_.load(std::memory_order_acquire);
        const auto until = std::chrono::steady_clock::now() +
                           std::chrono::nanoseconds(spin_ns_.load(std::memory_order_relaxed));
        lock.unlock();
        while (queued_.load(std::memory_order_acquire) == seen &&
               std::chrono::steady_clock::now() < until) {
        }
        lock.lock();
        cv_.wait(lock, [this] { return !pending_.empty(); });
      }
      // Left to a caller that polls (PollFromCaller) for kCallerWindowNs after its pass.
      size_t found = 0;
      if (NowNs() - caller_poll_ns_.load(std::memory_order_relaxed) >= kCallerWindowNs) {
        found = Pass();
      }
      if (found == 0) {
        lock.unlock();
        const uint64_t gap = gap_ns_.load(std::memory_order_relaxed);
        if (gap == 0) {
          std::this_thread::yield();
        } else {
          // A pause without CUDA calls: a tight cudaEventQuery loop competes with the
          // launching thread's CUDA calls.
          const auto until = std::chrono::steady_clock::now() + std::chrono::nanoseconds(gap);
          while (std::chrono::steady_clock::now() < until) {
          }
        }
        lock.lock();
        continue;
      }
      DrainLocked(lock);
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Entry> pending_;                    // guarded by mu_, in queue order
  std::vector<std::vector<cudaEvent_t>> free_;   // by device; guarded by mu_
  bool thread_started_ = false;                  // guarded by mu_
  std::vector<bool> blocked_;                    // Pass's scratch, by device; guarded by mu_
  std::deque<std::pair<Reducer::Done, Status>> ready_;  // finished, in order; guarded by mu_
  bool draining_ = false;                        // a thread runs ready_'s dones; guarded by mu_
  std::atomic<uint64_t> queued_{0};
  std::atomic<uint64_t> spin_ns_{50'000};
  std::atomic<uint64_t> gap_ns_{0};
  std::atomic<uint64_t> pending_count_{0};   // pending_.size(), for a lock-free skip
  std::atomic<uint64_t> caller_poll_ns_{0};  // the last PollFromCaller pass (steady clock)
  std::atomic<uint64_t> caller_done_{0};     // work PollFromCaller found finished
};

std::atomic<int> g_completion{static_cast<int>(CudaReducer::Completion::kPoll)};

// Queues `done` behind the work just queued on `stream` of `device` (or calls it with the
// error).
void Complete(int device, cudaStream_t stream, const char* what, Reducer::Done done) {
  Status st = CudaStatus(cudaGetLastError(), what);
  if (!st.ok()) {
    done(st);
    return;
  }
  if (g_completion.load(std::memory_order_relaxed) ==
      static_cast<int>(CudaReducer::Completion::kPoll)) {
    Poller::Get().Watch(device, stream, std::move(done));
    return;
  }
  auto* heap = new Reducer::Done(std::move(done));
  cudaError_t e = cudaLaunchHostFunc(stream, RunDone, heap);
  if (e != cudaSuccess) {
    std::unique_ptr<Reducer::Done> back(heap);
    (*back)(CudaStatus(e, "cudaLaunchHostFunc"));
  }
}

}  // namespace

bool CudaReducer::Supports(Location location) const {
  return location.is_host() || CheckDevice(location).ok();
}

void CudaReducer::FoldAsync(void* acc, const void* in, size_t count, DataType dtype, ReduceOp op,
                            Location location, Done done) {
  if (location.is_host()) {
    done(CpuReducer::Default().Fold(acc, in, count, dtype, op, location));
    return;
  }
  // The same kernel with the accumulator as its output.
  FoldIntoAsync(acc, acc, in, count, dtype, op, location, std::move(done));
}

void CudaReducer::FoldIntoAsync(void* out, const void* acc, const void* in, size_t count,
                                DataType dtype, ReduceOp op, Location location, Done done) {
  if (location.is_host()) {
    Reducer::FoldIntoAsync(out, acc, in, count, dtype, op, location, std::move(done));
    return;
  }
  Status st = CheckArgs(dtype, op);
  if (st.ok()) st = CheckDevice(location);
  if (!st.ok() || count == 0) {
    done(st);
    return;
  }
  OnDevice on(location.device);
  if (!on.status().ok()) {
    done(on.status());
    return;
  }
  auto stream = AsyncStream(location.device);
  if (!stream.ok()) {
    done(stream.status());
    return;
  }
  LaunchFoldAny(const_cast<void*>(acc), in, count, dtype, op, *stream, out);
  Complete(location.device, *stream, "fold kernel", std::move(done));
}

void CudaReducer::CopyAsync(void* dst, const void* src, size_t bytes, Location location,
                            Done done) {
  if (location.is_host()) {
    done(Reducer::Copy(dst, src, bytes, location));
    return;
  }
  Status st = CheckDevice(location);
  if (!st.ok() || bytes == 0) {
    done(st);
    return;
  }
  OnDevice on(location.device);
  if (!on.status().ok()) {
    done(on.status());
    return;
  }
  auto stream = AsyncStream(location.device);
  if (!stream.ok()) {
    done(stream.status());
    return;
  }
  LaunchCopy(dst, src, bytes, *stream);
  Complete(location.device, *stream, "copy kernel", std::move(done));
}

Result<void*> CudaBufferAllocator::Allocate(uint64_t bytes, Location location) {
  if (bytes == 0) return Status(ErrorCode::INVALID_PARAMS, "allocate: zero bytes");
  void* p = nullptr;
  if (location.is_host()) {
    TIDAL_RETURN_IF_ERROR(CudaStatus(cudaMallocHost(&p, bytes), "cudaMallocHost"));
    std::memset(p, 0, bytes);
    return p;
  }
  TIDAL_RETURN_IF_ERROR(CheckDevice(location));
  OnDevice on(location.device);
  TIDAL_RETURN_IF_ERROR(on.status());
  TIDAL_RETURN_IF_ERROR(CudaStatus(cudaMalloc(&p, bytes), "cudaMalloc"));
  Status st = CudaStatus(cudaMemset(p, 0, bytes), "cudaMemset");
  if (!st.ok()) {
    cudaFree(p);
    return st;
  }
  return p;
}

void CudaBufferAllocator::Free(void* data, uint64_t, Location location) {
  if (location.is_host()) {
    cudaFreeHost(data);
    return;
  }
  OnDevice on(location.device);
  cudaFree(data);
}

CudaBufferAllocator& CudaBufferAllocator::Default() {
  static CudaBufferAllocator allocator;
  return allocator;
}

Status CudaReducer::Fold(void* acc, const void* in, size_t count, DataType dtype, ReduceOp op,
                         Location location) {
  if (location.is_host()) return CpuReducer::Default().Fold(acc, in, count, dtype, op, location);
  TIDAL_RETURN_IF_ERROR(CheckArgs(dtype, op));
  TIDAL_RETURN_IF_ERROR(CheckDevice(location));
  if (count == 0) return Status::Ok();
  OnDevice on(location.device);
  TIDAL_RETURN_IF_ERROR(on.status());
  switch (dtype) {
    case DataType::kF32: LaunchFold<float>(acc, in, count, op); break;
    case DataType::kF64: LaunchFold<double>(acc, in, count, op); break;
    case DataType::kF16: LaunchFold<Half>(acc, in, count, op); break;
    case DataType::kBF16: LaunchFold<Bf16>(acc, in, count, op); break;
    case DataType::kI8: LaunchFold<int8_t>(acc, in, count, op); break;
    case DataType::kU8: LaunchFold<uint8_t>(acc, in, count, op); break;
    case DataType::kI32: LaunchFold<int32_t>(acc, in, count, op); break;
    case DataType::kI64: LaunchFold<int64_t>(acc, in, count, op); break;
    default: break;
  }
  return Finish("fold kernel");
}

Status CudaReducer::Scale(void* data, size_t count, DataType dtype, uint64_t divisor,
                          Location location) {
  if (location.is_host()) return CpuReducer::Default().Scale(data, count, dtype, divisor, location);
  TIDAL_RETURN_IF_ERROR(CheckArgs(dtype, ReduceOp::kSum));
  TIDAL_RETURN_IF_ERROR(CheckDevice(location));
  if (divisor == 0) return Status(ErrorCode::INVALID_PARAMS, "divide by zero");
  if (divisor == 1 || count == 0) return Status::Ok();
  OnDevice on(location.device);
  TIDAL_RETURN_IF_ERROR(on.status());
  switch (dtype) {
    case DataType::kF32: LaunchScale<float>(data, count, divisor); break;
    case DataType::kF64: LaunchScale<double>(data, count, divisor); break;
    case DataType::kF16: LaunchScale<Half>(data, count, divisor); break;
    case DataType::kBF16: LaunchScale<Bf16>(data, count, divisor); break;
    case DataType::kI8: LaunchScale<int8_t>(data, count, divisor); break;
    case DataType::kU8: LaunchScale<uint8_t>(data, count, divisor); break;
    case DataType::kI32: LaunchScale<int32_t>(data, count, divisor); break;
    case DataType::kI64: LaunchScale<int64_t>(data, count, divisor); break;
    default: break;
  }
  return Finish("scale kernel");
}

Status CudaReducer::Identity(void* data, size_t count, DataType dtype, ReduceOp op,
                             Location location) {
  if (location.is_host()) return CpuReducer::Default().Identity(data, count, dtype, op, location);
  TIDAL_RETURN_IF_ERROR(CheckArgs(dtype, op));
  TIDAL_RETURN_IF_ERROR(CheckDevice(location));
  if (count == 0) return Status::Ok();
  // The neutral element is the CPU reducer's, broadcast by a fill kernel.
  alignas(8) unsigned char value[8] = {};
  TIDAL_RETURN_IF_ERROR(CpuReducer::Default().Identity(value, 1, dtype, op, Location::Host()));
  OnDevice on(location.device);
  TIDAL_RETURN_IF_ERROR(on.status());
  switch (DataTypeSize(dtype)) {
    case 1: LaunchFill<uint8_t>(data, count, value); break;
    case 2: LaunchFill<uint16_t>(data, count, value); break;
    case 4: LaunchFill<uint32_t>(data, count, value); break;
    case 8: LaunchFill<uint64_t>(data, count, value); break;
    default: break;
  }
  return Finish("fill kernel");
}

Status CudaReducer::Copy(void* dst, const void* src, size_t bytes, Location location) {
  if (location.is_host()) return Reducer::Copy(dst, src, bytes, location);
  TIDAL_RETURN_IF_ERROR(CheckDevice(location));
  if (bytes == 0) return Status::Ok();
  OnDevice on(location.device);
  TIDAL_RETURN_IF_ERROR(on.status());
  LaunchCopy(dst, src, bytes, cudaStreamPerThread);
  return Finish("copy kernel");
}

void CudaReducer::SetBlocksPerSm(unsigned blocks) {
  g_blocks_per_sm.store(blocks < 1 ? 1 : (blocks > 64 ? 64 : blocks));
}

void CudaReducer::SetCompletion(Completion how, uint64_t spin_ns, uint64_t gap_ns) {
  g_completion.store(static_cast<int>(how));
  Poller::Get().SetSpinNs(spin_ns);
  Poller::Get().SetGapNs(gap_ns);
}

void CudaReducer::PollFromCaller() { Poller::Get().PollFromCaller(); }

uint64_t CudaReducer::CallerCompletions() { return Poller::Get().caller_done(); }

CudaReducer& CudaReducer::Default() {
  static CudaReducer reducer;
  return reducer;
}

}  // namespace tidal::coll
