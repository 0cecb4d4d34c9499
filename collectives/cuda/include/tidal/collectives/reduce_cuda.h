// CudaReducer: the reduction kernels on the GPU, behind the Reducer interface
// (reduce_kernel.h), for tensors at `cuda:N`; host locations go to CpuReducer::Default().
//
// Results are those of the CPU reducer, element for element, for every dtype and op, with
// one exception: the sign and payload of a NaN that arithmetic produces is the hardware's
// (x86 propagates the NaN operand or gives 0xffc00000; the GPU gives its own), so a NaN
// result is a NaN on both but not always the same bits. Integer SUM/PROD
// wrap modulo 2^bits (computed in the unsigned type), MIN/MAX pick `in < acc ? in : acc` /
// `in > acc ? in : acc` (so NaN handling matches too), f16/bf16 widen to float, fold and
// narrow with the same round-to-nearest-even conversions, AVG's Scale divides integers
// with truncation (signed through int64) and floats by the divisor converted to the type.
// Float kernels use IEEE division and no fast-math.
//
// Copy (and CopyAsync) at cuda:N is a copy kernel on the SMs (16-byte vectors where both
// ends are 16-byte aligned): both ends must be memory of device N (device or managed);
// the copy engines stay free for the transport's NVLink writes.
//
// The asynchronous forms (FoldAsync, CopyAsync: the process group's data path) queue the
// kernel on the reducer's own stream of device N (one non-blocking
// stream per device, made on first use) and return; `done` runs once that work finished,
// or at once with the error when it could not be queued. Work on one device runs in queue
// order. How the finish is seen (SetCompletion): by default (kPoll) an event recorded
// behind the kernel, polled by one completion thread of the process, which runs `done`;
// that thread keeps polling for `spin_ns` after its last completion before it sleeps.
// kHostFunc: cudaLaunchHostFunc, `done` on CUDA's callback thread (the stream waits for
// the callback; each hand-off pays that thread's wake-up).
//
// Every synchronous call is synchronous: the kernel runs on the calling thread's default stream
// (cudaStreamPerThread) of device N and is waited for before the call returns, so the
// reducer stays stateless and may be called from any thread. The calling thread's current
// device is restored. INTERNAL_ERROR carries CUDA's error text; UNSUPPORTED when there is
// no such device.
#pragma once

#include "tidal/collectives/process_group.h"
#include "tidal/collectives/reduce_kernel.h"

namespace tidal::coll {

class CudaReducer final : public Reducer {
 public:
  Status Fold(void* acc, const void* in, size_t count, DataType dtype, ReduceOp op,
              Location location) override;
  Status Scale(void* data, size_t count, DataType dtype, uint64_t divisor,
               Location location) override;
  Status Identity(void* data, size_t count, DataType dtype, ReduceOp op,
                  Location location) override;
  Status Copy(void* dst, const void* src, size_t bytes, Location location) override;
  // Host, and cuda:N for a device N that exists.
  bool Supports(Location location) const override;
  void FoldAsync(void* acc, const void* in, size_t count, DataType dtype, ReduceOp op,
                 Location location, Done done) override;
  void CopyAsync(void* dst, const void* src, size_t bytes, Location location,
                 Done done) override;
  // One fold kernel reading acc and in and writing out.
  void FoldIntoAsync(void* out, const void* acc, const void* in, size_t count, DataType dtype,
                     ReduceOp op, Location location, Done done) override;

  // The process-wide instance (stateless but for its per-device streams).
  static CudaReducer& Default();

  enum class Completion { kPoll, kHostFunc };
  // Process-wide: how the asynchronous forms see their work finish (above).
  // While work runs, kPoll asks the oldest event of each device again after `gap_ns`
  // spent without CUDA calls (0: after a yield).
  static void SetCompletion(Completion how, uint64_t spin_ns = 50'000, uint64_t gap_ns = 0);
  // kPoll: one pass over the work in flight on the calling thread, running the `done`s of
  // what finished there (any thread; made for an event loop's spin poller, e.g.
  // RealEnv::AddSpinPoller, so a fold's completion is taken by the loop that waits for it).
  // For 20 us after such a pass the completion thread asks no event itself, so the two do
  // not contend for the driver. Returns at once when nothing is in flight or the completion
  // thread is polling. CallerCompletions: work found finished this way, since the start.
  static void PollFromCaller();
  static uint64_t CallerCompletions();
  // Grid size of the copy, fold and fill kernels: at most this many blocks (of 256 threads)
  // per multiprocessor, each thread striding over the rest (default 8; 1..64).
  static void SetBlocksPerSm(unsigned blocks);
};

// A process group's buffers on the GPU (ProcessGroupOptions::allocator): cudaMalloc on the
// location's device, zeroed; host locations get pinned cudaMallocHost memory. Errors name
// CUDA's answer.
class CudaBufferAllocator final : public BufferAllocator {
 public:
  Result<void*> Allocate(uint64_t bytes, Location location) override;
  void Free(void* data, uint64_t bytes, Location location) override;
  static CudaBufferAllocator& Default();
};

}  // namespace tidal::coll
