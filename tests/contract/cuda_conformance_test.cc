// The transport conformance clauses (transport_clauses.h) on raw CudaTransports: a rig of
// nodes in one process, node i on GPU i % D, every region in managed memory of its node's
// GPU registered as `cuda:<that GPU>` (so the suite can fill and inspect it from the host
// while the copies run on the GPUs). Label `cuda`: without a CUDA device every clause skips
// with "no CUDA device: ..."; clauses that need injected faults skip, naming the simulator.
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <memory>
#include <string>

#include "tidal/backends/cuda/cuda_transport.h"
#include "cuda_at_device.h"
#include "transport_clauses.h"
#include "transport_rig.h"

namespace tidal::testing {
namespace {

using backends::cuda::CudaTransport;

class CudaRig final : public RealRig {
 public:
  CudaRig(const RigOptions& options, int devices) : RealRig("cuda-rig"), devices_(devices) {
    for (size_t i = 0; i < options.nodes && status_.ok(); ++i) {
      auto cuda = std::make_unique<CudaTransport>();
      raw_.push_back(cuda.get());
      Add(options, std::make_unique<AtDevice>(std::move(cuda), Device(i)));
    }
  }
  ~CudaRig() override {
    ReleaseTransports();  // each waits for its copies before the memory goes
    for (void* p : memory_) cudaFree(p);
  }

  std::string_view backend() const override { return "cuda"; }
  void Settle() override {
    Drive([&] {
      for (CudaTransport* t : raw_) {
        if (!t->Idle()) return false;
      }
      return true;
    });
  }
  Status Crash(size_t node) override {
    raw_[node]->Crash();
    return Status();
  }
  std::string Banner() const override {
    return "cuda rig: " + std::to_string(raw_.size()) + " nodes on " + std::to_string(devices_) +
           " GPU(s)";
  }

 protected:
  uint8_t* Allocate(size_t node, size_t bytes) override {
    void* p = nullptr;
    TIDAL_ASSERT(cudaSetDevice(Device(node)) == cudaSuccess);
    TIDAL_ASSERT_MSG(cudaMallocManaged(&p, bytes) == cudaSuccess, "cudaMallocManaged");
    memory_.push_back(p);
    return static_cast<uint8_t*>(p);
  }

 private:
  int Device(size_t node) const { return static_cast<int>(node % devices_); }

  int devices_;
  std::vector<void*> memory_;
  std::vector<CudaTransport*> raw_;
};

Result<std::unique_ptr<TransportRig>> MakeCudaRig(RigOptions options) {
  if (!options.faults.empty()) {
    return Status(ErrorCode::UNSUPPORTED,
                  "backend 'cuda' cannot inject faults: this clause needs the simulator");
  }
  Result<int> devices = backends::cuda::CudaDeviceCount();
  if (!devices.ok()) return devices.status();
  auto rig = std::make_unique<CudaRig>(options, *devices);
  if (!rig->status().ok()) {
    return Status(ErrorCode::UNSUPPORTED,
                  "backend 'cuda': the transport did not start: " + rig->status().ToString());
  }
  return std::unique_ptr<TransportRig>(std::move(rig));
}

class CudaConformance : public ::testing::TestWithParam<Clause> {};

TEST_P(CudaConformance, ClauseHolds) {
  ClauseResult r = CheckClause(GetParam(), &MakeCudaRig, {1, 2, 3});
  if (!r.skipped.empty()) GTEST_SKIP() << r.skipped;
  std::string lines;
  for (const std::string& l : r.violations) lines += "  " + l + "\n";
  EXPECT_TRUE(r.violations.empty()) << "CudaTransport breaks " << ClauseName(GetParam()) << ":\n"
                                    << lines;
}

INSTANTIATE_TEST_SUITE_P(Clauses, CudaConformance, ::testing::ValuesIn(AllClauses()),
                         [](const ::testing::TestParamInfo<Clause>& i) {
                           return std::string(ClauseName(i.param));
                         });

}  // namespace
}  // namespace tidal::testing
