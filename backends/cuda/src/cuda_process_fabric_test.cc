// The cuda_proc fabric itself (label `cuda`): nodes are processes with a GPU each; GPU
// memory allocated in a node's process moves to another's through the engine (CUDA IPC),
// byte for byte with guard bands; CopyIn/CopyOut reach it through its process; memory that
// is not the node's is refused before its process is asked; Crash is a SIGKILL of the node's
// process. The registry's suites (transport_contract_test and the others) run on the fabric
// too. Without a GPU every test but the first skips with the registry's reason.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "tidal/backends/cuda/cuda_process_fabric.h"
#include "tidal/backends/cuda/cuda_transport.h"
#include "tidal/backends/registry.h"

namespace tidal::backends::cuda {
namespace {

constexpr size_t kGuard = 4096;
constexpr uint8_t kGuardByte = 0xEE;

std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 131 + (i >> 9));
  return v;
}

class CudaProcFabric : public ::testing::Test {
 protected:
  // The fabric, or false with the test skipped naming why.
  bool Make(size_t nodes) {
    FabricSpec spec;
    spec.nodes = nodes;
    Result<std::unique_ptr<Fabric>> f = MakeFabric("cuda_proc", std::move(spec));
    if (!f.ok()) {
      EXPECT_EQ(f.code(), ErrorCode::UNSUPPORTED) << f.status().ToString();
      skip_ = f.status().ToString();
      return false;
    }
    fabric_ = std::move(*f);
    proc_ = static_cast<CudaProcessFabric*>(fabric_.get());
    return true;
  }

  // `n` bytes of node memory at `loc` between guard bands, zeroed; returns the registered
  // start.
  uint8_t* Region(size_t node, size_t n, Location loc) {
    auto* base = static_cast<uint8_t*>(fabric_->Allocate(node, n + 2 * kGuard, loc));
    std::vector<uint8_t> init(n + 2 * kGuard, kGuardByte);
    std::memset(init.data() + kGuard, 0, n);
    fabric_->CopyIn(base, init.data(), init.size());
    uint8_t* data = base + kGuard;
    Result<uint64_t> key = fabric_->Run(fabric_->engine(node).RegisterMemory(data, n, loc));
    EXPECT_TRUE(key.ok()) << key.status().ToString();
    return data;
  }

  // The region's bytes and whether both guard bands are intact.
  std::vector<uint8_t> Read(const uint8_t* data, size_t n, bool* guards) {
    std::vector<uint8_t> all(n + 2 * kGuard);
    fabric_->CopyOut(all.data(), data - kGuard, all.size());
    *guards = true;
    for (size_t i = 0; i < kGuard; ++i) {
      *guards = *guards && all[i] == kGuardByte && all[kGuard + n + i] == kGuardByte;
    }
    return std::vector<uint8_t>(all.begin() + kGuard, all.begin() + kGuard + n);
  }

  std::vector<TransferStatus> Transfer(size_t from, TransferOp op, const uint8_t* local,
                                       size_t n, size_t to, const uint8_t* remote) {
    Result<SegmentHandle> seg =
        fabric_->Run(fabric_->engine(from).OpenSegment(Fabric::NodeName(to)));
    if (!seg.ok()) return {TransferStatus{TransferState::FAILED, 0, seg.code()}};
    std::vector<TransferRequest> reqs = {TransferRequest{op, reinterpret_cast<uint64_t>(local),
                                                         n, *seg,
                                                         reinterpret_cast<uint64_t>(remote)}};
    return fabric_->Run(fabric_->engine(from).TransferSync(reqs));
  }

  std::unique_ptr<Fabric> fabric_;
  CudaProcessFabric* proc_ = nullptr;
  std::string skip_;
};

TEST_F(CudaProcFabric, WithoutAGpuTheRegistrySaysWhy) {
  if (CudaDeviceCount().ok()) GTEST_SKIP() << "a CUDA device is present: the other tests run";
  FabricSpec spec;
  spec.nodes = 2;
  Result<std::unique_ptr<Fabric>> f = MakeFabric("cuda_proc", std::move(spec));
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.code(), ErrorCode::UNSUPPORTED);
  EXPECT_NE(f.status().message().find("no CUDA device"), std::string::npos)
      << f.status().ToString();
  bool listed = false;
  for (const BackendInfo& b : ListBackends()) {
    if (b.name != "cuda_proc") continue;
    listed = true;
    EXPECT_TRUE(b.built);
    EXPECT_NE(b.unavailable.find("no CUDA device"), std::string::npos) << b.unavailable;
  }
  EXPECT_TRUE(listed);
}

TEST_F(CudaProcFabric, NodesAreProcessesOnTheirOwnGpus) {
  if (!Make(3)) GTEST_SKIP() << skip_;
  std::printf("cuda_proc: %d GPU(s);", proc_->device_count());
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_GT(proc_->pid(i), 0);
    EXPECT_NE(proc_->pid(i), ::getpid());
    EXPECT_EQ(::kill(proc_->pid(i), 0), 0) << "node " << i << " process is not alive";
    EXPECT_EQ(proc_->proxy(i).device(), static_cast<int>(i) % proc_->device_count());
    std::printf(" node %zu: pid %d on cuda:%d;", i, static_cast<int>(proc_->pid(i)),
                proc_->proxy(i).device());
  }
  std::printf("\n");
  EXPECT_NE(proc_->pid(0), proc_->pid(1));
  EXPECT_NE(proc_->pid(1), proc_->pid(2));
}

TEST_F(CudaProcFabric, GpuBytesMoveBetweenProcessesExactly) {
  if (!Make(2)) GTEST_SKIP() << skip_;
  const size_t n = (8u << 20) + 13;
  const Location g0 = Location::Cuda(proc_->home_device(0));
  const Location g1 = Location::Cuda(proc_->home_device(1));
  uint8_t* a = Region(0, n, g0);
  uint8_t* b = Region(1, n, g1);
  uint8_t* h = Region(0, n, Location::Host());
  const std::vector<uint8_t> src = Pattern(n, 7);
  fabric_->CopyIn(a, src.data(), n);
  // GPU of node 0 -> GPU of node 1 (a WRITE), then back into node 0's host memory (a READ).
  for (size_t len : {size_t{1}, size_t{4099}, n}) {
    SCOPED_TRACE("len=" + std::to_string(len));
    auto w = Transfer(0, TransferOp::kWrite, a, len, 1, b);
    ASSERT_EQ(w[0], (TransferStatus{TransferState::COMPLETED, len, ErrorCode::OK}));
    bool guards = false;
    std::vector<uint8_t> got = Read(b, n, &guards);
    EXPECT_TRUE(guards);
    EXPECT_EQ(std::memcmp(got.data(), src.data(), len), 0);
    // The lengths grow: nothing past this one was ever written.
    for (size_t i = len; i < n; ++i) ASSERT_EQ(got[i], 0) << "byte " << i << " past len";
    auto r = Transfer(0, TransferOp::kRead, h, len, 1, b);
    ASSERT_EQ(r[0], (TransferStatus{TransferState::COMPLETED, len, ErrorCode::OK}));
    EXPECT_EQ(std::memcmp(h, src.data(), len), 0);  // host memory: the parent reads it directly
  }
  // A window overrun on the target GPU is refused there and moves nothing.
  bool guards = false;
  const std::vector<uint8_t> before = Read(b, n, &guards);
  auto d = Transfer(0, TransferOp::kWrite, a, 4096, 1, b + n - 100);
  EXPECT_EQ(d[0], (TransferStatus{TransferState::FAILED, 0, ErrorCode::REMOTE_ACCESS_DENIED}));
  EXPECT_EQ(Read(b, n, &guards), before);
  EXPECT_TRUE(guards);
}

TEST_F(CudaProcFabric, MemoryThatIsNotTheNodesIsRefusedBeforeItsProcessIsAsked) {
  if (!Make(2)) GTEST_SKIP() << skip_;
  std::vector<uint8_t> mine(4096);
  Result<uint64_t> k = fabric_->Run(fabric_->engine(0).RegisterMemory(mine.data(), 4096,
                                                                       Location::Host()));
  EXPECT_EQ(k.code(), ErrorCode::REGISTRATION_FAILED);
  EXPECT_NE(k.status().message().find("shared arena"), std::string::npos) << k.status().ToString();
  // Node 1's GPU memory is not node 0's to register.
  void* other = fabric_->Allocate(1, 4096, Location::Cuda(proc_->home_device(1)));
  k = fabric_->Run(fabric_->engine(0).RegisterMemory(other, 4096,
                                                     Location::Cuda(proc_->home_device(1))));
  EXPECT_EQ(k.code(), ErrorCode::REGISTRATION_FAILED) << k.status().ToString();
  // Device allocations of different nodes never share an address.
  void* again = fabric_->Allocate(0, 4096, Location::Cuda(proc_->home_device(0)));
  EXPECT_FALSE(proc_->proxy(1).OverlapsDevice(reinterpret_cast<uint64_t>(again), 4096));
  EXPECT_FALSE(proc_->proxy(0).OverlapsDevice(reinterpret_cast<uint64_t>(other), 4096));
}

TEST_F(CudaProcFabric, CrashIsASigkillOfTheNodesProcess) {
  if (!Make(3)) GTEST_SKIP() << skip_;
  const size_t n = 1 << 20;
  uint8_t* a = Region(0, n, Location::Cuda(proc_->home_device(0)));
  uint8_t* b = Region(1, n, Location::Cuda(proc_->home_device(1)));
  uint8_t* c = Region(2, n, Location::Cuda(proc_->home_device(2)));
  const std::vector<uint8_t> src = Pattern(n, 3);
  fabric_->CopyIn(a, src.data(), n);
  ASSERT_EQ(Transfer(0, TransferOp::kWrite, a, n, 1, b)[0].state, TransferState::COMPLETED);
  const pid_t victim = proc_->pid(1);
  ASSERT_TRUE(fabric_->Crash(1).ok());
  EXPECT_FALSE(proc_->proxy(1).alive());
  EXPECT_EQ(proc_->proxy(1).exit_reason().rfind("killed by signal 9", 0), 0u)
      << proc_->proxy(1).exit_reason();
  errno = 0;
  EXPECT_EQ(::kill(victim, 0), -1);  // reaped: the pid is gone
  EXPECT_EQ(errno, ESRCH);
  auto w = Transfer(0, TransferOp::kWrite, a, n, 1, b);
  EXPECT_EQ(w[0], (TransferStatus{TransferState::FAILED, 0, ErrorCode::PEER_UNREACHABLE}));
  // The healthy peer is unaffected.
  w = Transfer(0, TransferOp::kWrite, a, n, 2, c);
  ASSERT_EQ(w[0], (TransferStatus{TransferState::COMPLETED, n, ErrorCode::OK}));
  bool guards = false;
  EXPECT_EQ(Read(c, n, &guards), src);
  EXPECT_TRUE(guards);
}

}  // namespace
}  // namespace tidal::backends::cuda
