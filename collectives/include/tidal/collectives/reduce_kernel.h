// Reduction kernels behind one interface, so a CUDA implementation can replace the CPU
// one without touching the algorithms.
//
// The collectives never start an accumulator from a guessed identity (field bug 2): a
// reduction over contributions c0..ck-1 copies c0 and then folds c1..ck-1 in order, so
// PROD, MIN and MAX are right for every value (negative, zero, NaN-free floats) and the
// order is the same on every rank (results are bitwise identical across ranks).
// Identity() exists for callers that need a neutral element (empty reductions).
//
// Thread safety: implementations are stateless; every method may be called from any
// thread. Nothing blocks or allocates beyond small stack buffers (the asynchronous forms
// keep their completion callback until they call it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>

#include "tidal/collectives/types.h"
#include "tidal/status.h"

namespace tidal::coll {

class Reducer {
 public:
  virtual ~Reducer() = default;

  // acc[i] = acc[i] (op) in[i] for i < count. AVG folds like SUM (divide with Scale).
  // acc and in may be equal but must not otherwise overlap. INVALID_PARAMS for a bad
  // dtype/op; UNSUPPORTED for a location this reducer cannot touch.
  virtual Status Fold(void* acc, const void* in, size_t count, DataType dtype, ReduceOp op,
                      Location location) = 0;

  // data[i] = data[i] / divisor (AVG's final step). INVALID_PARAMS for divisor 0 or a
  // bad dtype; UNSUPPORTED for a foreign location.
  virtual Status Scale(void* data, size_t count, DataType dtype, uint64_t divisor,
                       Location location) = 0;

  // Fills data with op's neutral element (SUM/AVG 0, PROD 1, MIN the largest value,
  // MAX the lowest value; +/-inf for floats).
  virtual Status Identity(void* data, size_t count, DataType dtype, ReduceOp op,
                          Location location) = 0;

  // dst = src, `bytes` bytes, both at `location` (they must not overlap). The base class
  // copies host memory and answers UNSUPPORTED elsewhere; a device reducer copies there.
  virtual Status Copy(void* dst, const void* src, size_t bytes, Location location);

  // Whether this reducer can touch memory at `location`: the process group refuses
  // tensors (and buffer locations) its reducer cannot touch. The base class: host only.
  virtual bool Supports(Location location) const { return location.is_host(); }

  // Asynchronous forms of Fold and Copy, for the process group's data path: start the work
  // and call `done` exactly once with its status when it has finished (the memory may be
  // reused then). `done` may run before the call returns, on the calling thread, or later
  // on another thread (a device's completion thread): it must only hand the result over.
  // The base class runs the synchronous form and calls `done` at once; a device reducer
  // queues the work on the device and returns, so a caller that drives several devices
  // from one thread keeps them all busy.
  using Done = std::function<void(Status)>;
  virtual void FoldAsync(void* acc, const void* in, size_t count, DataType dtype, ReduceOp op,
                         Location location, Done done);
  virtual void CopyAsync(void* dst, const void* src, size_t bytes, Location location, Done done);
  // out[i] = acc[i] (op) in[i]: a fold whose accumulator starts as `acc` without changing
  // it (out may equal acc; otherwise no two of them overlap). The base class copies acc
  // into out and folds in; a device reducer does it in one pass.
  virtual void FoldIntoAsync(void* out, const void* acc, const void* in, size_t count,
                             DataType dtype, ReduceOp op, Location location, Done done);

  // out = inputs[0] (op) inputs[1] (op) ... in this order; with no inputs, Identity.
  // AVG divides by inputs.size(). out may alias none of the inputs except inputs[0].
  Status ReduceAll(void* out, std::span<const void* const> inputs, size_t count, DataType dtype,
                   ReduceOp op, Location location);
};

// The CPU reducer: plain loops the compiler vectorizes (f16/bf16 convert through float
// in blocks). Integer SUM/PROD wrap modulo 2^bits (no undefined overflow).
class CpuReducer final : public Reducer {
 public:
  Status Fold(void* acc, const void* in, size_t count, DataType dtype, ReduceOp op,
              Location location) override;
  Status Scale(void* data, size_t count, DataType dtype, uint64_t divisor,
               Location location) override;
  Status Identity(void* data, size_t count, DataType dtype, ReduceOp op,
                  Location location) override;

  // The process-wide default instance (stateless).
  static CpuReducer& Default();
};

// The reducer for memory that is host memory at every location: the simulator's `cuda:N`
// memory is host memory tagged as device memory (sim_transport.h), so the process group's
// GPU code path (buffers and tensors at cuda:N, the asynchronous forms) runs on it without
// a GPU. The arithmetic is CpuReducer's; Supports() is true everywhere. Never give it real
// device memory.
class HostBackedReducer final : public Reducer {
 public:
  Status Fold(void* acc, const void* in, size_t count, DataType dtype, ReduceOp op,
              Location location) override;
  Status Scale(void* data, size_t count, DataType dtype, uint64_t divisor,
               Location location) override;
  Status Identity(void* data, size_t count, DataType dtype, ReduceOp op,
                  Location location) override;
  Status Copy(void* dst, const void* src, size_t bytes, Location location) override;
  bool Supports(Location location) const override;

  static HostBackedReducer& Default();
};

// IEEE binary16 and bfloat16 conversions (round to nearest even; NaN stays NaN,
// overflow becomes inf, subnormals are kept).
uint16_t FloatToHalf(float f);
float HalfToFloat(uint16_t h);
uint16_t FloatToBf16(float f);
float Bf16ToFloat(uint16_t b);

}  // namespace tidal::coll
