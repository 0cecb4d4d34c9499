// Collectives on device tensors: the process group's GPU code path (receive slots, send
// staging and working memory at cuda:N, copies and folds through the reducer's
// asynchronous forms, WRITEs straight from registered working memory) with exact values,
// and a rank killed mid-allreduce.
//
// Built twice from this file:
//  * collectives_device_sim_test (label sim): on the simulator, whose cuda:N memory is host
//    memory tagged as device memory, with HostBackedReducer; runs in CI without a GPU.
//  * collectives_device_cuda_test (label cuda, TIDAL_COLL_TEST_CUDA): on the cuda fabric
//    (one process, rank r on GPU r % D) with CudaReducer and CudaBufferAllocator; skips with
//    the registry's reason ("no CUDA device: ...") where there is no GPU.
//
// A representative subset of the host suites (exact_values_test, rank_failure_test): world
// sizes 2 (a rank per GPU) and 3 (ring, non-power-of-two, two ranks sharing a GPU), every
// op, four dtypes, every reduction, every root, counts {0, 1, 37, > 3 slots}. The same
// with options.direct_outputs and out-of-place tensors (AllReduce(output, input),
// Broadcast(output, input)): the outputs are the working memory, results bit-exact, the
// inputs untouched; on device slots and (simulator) on host slots.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <sstream>

#include "fabrics.h"
#include "tidal/collectives/chunk_trace.h"
#include "tidal/collectives/reduce_kernel.h"
#include "tidal/collectives/schedule.h"

#if TIDAL_COLL_TEST_CUDA
#include "tidal/backends/cuda/cuda_fabric.h"
#include "tidal/backends/cuda/cuda_transport.h"
#include "tidal/backends/real_env.h"
#include "tidal/collectives/reduce_cuda.h"
#endif

namespace tidal::coll {
namespace {

using namespace tidal::cluster;  // NOLINT: the harness's values and checks

#if TIDAL_COLL_TEST_CUDA
constexpr const char* kBackend = "cuda";
#else
constexpr const char* kBackend = "sim";
#endif

constexpr uint8_t kSentinel = 0x5A;  // outputs start as this (as the host harness's)

// How many devices rank r % D spreads over, or an empty optional with the skip reason.
int Devices(std::string* skip) {
#if TIDAL_COLL_TEST_CUDA
  Result<int> n = backends::cuda::CudaDeviceCount();
  if (!n.ok()) {
    *skip = n.status().ToString();
    return 0;
  }
  return *n;
#else
  (void)skip;
  return 2;  // two simulated GPUs: host memory tagged cuda:0 and cuda:1
#endif
}

// How a case runs: the default (AllReduce and Broadcast in place), their out-of-place
// forms by default (the result copied on commit), or direct_outputs with out-of-place
// tensors, on device slots or on host slots.
enum class Mode { kDefault, kOutOfPlace, kDirect, kDirectHost };

ProcessGroupOptions DeviceOptions(int devices) {
  ProcessGroupOptions o = TestOptions();
  o.slot_location_of = [devices](int rank) { return Location::Cuda(rank % devices); };
#if TIDAL_COLL_TEST_CUDA
  o.reducer = &CudaReducer::Default();
  o.allocator = &CudaBufferAllocator::Default();
#else
  o.reducer = &HostBackedReducer::Default();
#endif
  return o;
}

bool IsReduction(OpType op) {
  return op == OpType::kAllReduce || op == OpType::kReduce || op == OpType::kReduceScatter;
}
bool IsRooted(OpType op) {
  return op == OpType::kBroadcast || op == OpType::kReduce || op == OpType::kGather ||
         op == OpType::kScatter;
}

// One rank's device tensors: an input and an output of `cap` bytes each at its location.
// A group cluster of `ranks` on this file's backend with DeviceOptions.
GroupClusterOptions DeviceCluster(int ranks, uint64_t seed, int devices) {
  GroupClusterOptions co;
  co.backend = kBackend;
  co.ranks = ranks;
  co.seed = seed;
  co.pg = DeviceOptions(devices);
  return co;
}

struct DeviceBuffers {
  Location loc;
  uint8_t* in = nullptr;
  uint8_t* out = nullptr;
  uint64_t cap = 0;
};

std::vector<DeviceBuffers> AllocateBuffers(GroupCluster& c, int devices, uint64_t cap,
                                           bool host = false) {
  std::vector<DeviceBuffers> b(c.size());
  for (int r = 0; r < c.size(); ++r) {
    b[r].loc = host ? Location::Host() : Location::Cuda(r % devices);
    b[r].in = static_cast<uint8_t*>(c.fabric().Allocate(r, cap, b[r].loc));
    b[r].out = static_cast<uint8_t*>(c.fabric().Allocate(r, cap, b[r].loc));
    b[r].cap = cap;
  }
  return b;
}

// The host inputs and initial output of RunCase (coll_harness.cc), for device tensors.
struct HostCase {
  std::vector<uint8_t> in, out;
  bool in_place = false;
};
// out_of_place: AllReduce and Broadcast take an input of their own and an output of
// sentinels (Broadcast: only the root's input).
HostCase Prepare(OpType op, int rank, int size, uint64_t c, int root, ReduceOp rop, DataType dt,
                 bool out_of_place = false) {
  const uint64_t es = DataTypeSize(dt);
  const ReduceOp vop = IsReduction(op) ? rop : ReduceOp::kSum;
  HostCase h;
  switch (op) {
    case OpType::kAllReduce:
      if (out_of_place) {
        h.in = Filled(rank, c, vop, dt);
        h.out.assign(c * es, kSentinel);
        break;
      }
      [[fallthrough]];
    case OpType::kReduce:
      h.out = Filled(rank, c, vop, dt);
      h.in_place = true;
      break;
    case OpType::kBroadcast:
      if (out_of_place) {
        if (rank == root) h.in = Filled(rank, c, vop, dt);
        h.out.assign(c * es, kSentinel);
        break;
      }
      h.out = rank == root ? Filled(rank, c, vop, dt) : std::vector<uint8_t>(c * es, kSentinel);
      h.in_place = true;
      break;
    case OpType::kAllGather:
      h.in = Filled(rank, c, vop, dt);
      h.out.assign(size * c * es, kSentinel);
      break;
    case OpType::kGather:
      h.in = Filled(rank, c, vop, dt);
      if (rank == root) h.out.assign(size * c * es, kSentinel);
      break;
    case OpType::kReduceScatter:
      h.in = Filled(rank, size * c, vop, dt);
      h.out.assign(c * es, kSentinel);
      break;
    case OpType::kScatter:
      if (rank == root) h.in = Filled(rank, size * c, vop, dt);
      h.out.assign(c * es, kSentinel);
      break;
    case OpType::kAllToAll:
      h.in = Filled(rank, size * c, vop, dt);
      h.out.assign(size * c * es, kSentinel);
      break;
    default:
      break;
  }
  return h;
}

std::shared_ptr<Work> Issue(ProcessGroup& pg, OpType op, Tensor to, Tensor ti, int root,
                            ReduceOp rop, bool in_place) {
  switch (op) {
    case OpType::kAllReduce: return in_place ? pg.AllReduce(to, rop) : pg.AllReduce(to, ti, rop);
    case OpType::kReduce: return pg.Reduce(to, root, rop);
    case OpType::kBroadcast: return in_place ? pg.Broadcast(to, root) : pg.Broadcast(to, ti, root);
    case OpType::kAllGather: return pg.AllGather(to, ti);
    case OpType::kGather: return pg.Gather(to, ti, root);
    case OpType::kReduceScatter: return pg.ReduceScatter(to, ti, rop);
    case OpType::kScatter: return pg.Scatter(to, ti, root);
    case OpType::kAllToAll: return pg.AllToAll(to, ti);
    default: return pg.Barrier();
  }
}

// Copies the case's inputs to the rank's device tensors and issues the op.
std::shared_ptr<Work> Start(GroupCluster& c, int r, DeviceBuffers& b, const HostCase& h, OpType op,
                            int root, ReduceOp rop, DataType dt) {
  const uint64_t es = DataTypeSize(dt);
  TIDAL_ASSERT(h.in.size() <= b.cap && h.out.size() <= b.cap);
  c.fabric().CopyIn(b.out, h.out.data(), h.out.size());
  c.fabric().CopyIn(b.in, h.in.data(), h.in.size());
  Tensor to{b.out, dt, h.out.size() / es, b.loc};
  Tensor ti = h.in_place ? to : Tensor{b.in, dt, h.in.size() / es, b.loc};
  return Issue(c.pg(r), op, to, ti, root, rop, h.in_place);
}

// Waits for the op and checks the device output against the exact expected result.
Task<CaseResult> Finish(GroupCluster& c, int r, DeviceBuffers& b, const HostCase& h,
                        std::shared_ptr<Work> w, OpType op, uint64_t count, int root, ReduceOp rop,
                        DataType dt) {
  CaseResult res;
  res.status = co_await w->Wait();
  res.failed = w->failed_ranks();
  std::vector<uint8_t> got(h.out.size());
  c.fabric().CopyOut(got.data(), b.out, got.size());
  if (res.status.ok() || res.status.code() == ErrorCode::RANK_FAILED) {
    res.wrong = CheckCase(op, r, c.size(), res.failed, count, root, rop, dt, got, h.out);
  } else if (res.status.code() == ErrorCode::COLLECTIVE_ABORTED) {
    res.wrong = static_cast<int64_t>(CountWrong(got, h.out, dt));  // outputs unchanged
  } else {
    res.wrong = -1;
  }
  // Out of place, the input is never written (in every mode: a retry recomputes from it).
  std::vector<uint8_t> in(h.in.size());
  c.fabric().CopyOut(in.data(), b.in, in.size());
  if (!h.in_place && in != h.in && res.wrong >= 0) res.wrong += 1'000'000;
  co_return res;
}

struct Case {
  DataType dt;
  ReduceOp rop;
  int root;
  uint64_t c;
};

class DeviceExactValues
    : public ::testing::TestWithParam<std::tuple<int, OpType, Algorithm, Mode>> {};

TEST_P(DeviceExactValues, TypesReductionsRootsSizes) {
  auto [n, op, alg, mode] = GetParam();
  const bool out_of_place = mode != Mode::kDefault;
  const bool direct = mode == Mode::kDirect || mode == Mode::kDirectHost;
  const bool host = mode == Mode::kDirectHost;
  std::string skip;
  const int devices = Devices(&skip);
  if (devices == 0) GTEST_SKIP() << skip;
  std::vector<Case> cases;
  for (DataType dt : {DataType::kF32, DataType::kBF16, DataType::kI8, DataType::kI64}) {
    const uint64_t es = DataTypeSize(dt);
    for (ReduceOp rop : {ReduceOp::kSum, ReduceOp::kProd, ReduceOp::kMin, ReduceOp::kMax,
                         ReduceOp::kAvg}) {
      if (!IsReduction(op) && rop != ReduceOp::kSum) continue;
      for (int root = 0; root < (IsRooted(op) ? n : 1); ++root) {
        for (uint64_t c : {uint64_t{0}, uint64_t{1}, uint64_t{37}, 3 * 256 / es + 5}) {
          cases.push_back({dt, rop, root, c});
        }
      }
    }
  }
  GroupClusterOptions co;
  co.backend = kBackend;
  co.ranks = n;
  co.seed = 7000 + n * 16 + static_cast<int>(op);
  co.pg = host ? TestOptions() : DeviceOptions(devices);
  co.pg.algorithm = alg;
  co.pg.direct_outputs = direct;
  TIDAL_CLUSTER_OR_SKIP(cluster, co);
  const uint64_t cap = static_cast<uint64_t>(n) * (3 * 256 + 5 * 8) + 64;
  std::vector<DeviceBuffers> bufs = AllocateBuffers(*cluster, devices, cap, host);
  std::vector<std::string> failures;
  uint64_t checked = 0;
  bool ok = cluster->RunRanks([&](int r) -> Task<void> {
    for (const Case& k : cases) {
      HostCase h = Prepare(op, r, n, k.c, k.root, k.rop, k.dt, out_of_place);
      auto w = Start(*cluster, r, bufs[r], h, op, k.root, k.rop, k.dt);
      CaseResult res = co_await Finish(*cluster, r, bufs[r], h, w, op, k.c, k.root, k.rop, k.dt);
      ++checked;
      if (!res.status.ok() || res.wrong != 0) {
        std::ostringstream s;
        s << "rank " << r << " " << OpTypeName(op) << " " << DataTypeName(k.dt) << " "
          << ReduceOpName(k.rop) << " root=" << k.root << " count=" << k.c << ": "
          << res.status.ToString() << " #wrong=" << res.wrong;
        if (failures.size() < 20) failures.push_back(s.str());
      }
    }
  });
  ASSERT_TRUE(ok) << "hung\n" << cluster->Banner();
  EXPECT_EQ(checked, cases.size() * n);
  for (const auto& f : failures) ADD_FAILURE() << f;
  if (!failures.empty()) ADD_FAILURE() << cluster->Banner();
}

INSTANTIATE_TEST_SUITE_P(
    WorldSizes2And3, DeviceExactValues,
    ::testing::Combine(::testing::Values(2, 3),
                       ::testing::Values(OpType::kAllReduce, OpType::kAllGather,
                                         OpType::kReduceScatter, OpType::kBroadcast,
                                         OpType::kReduce, OpType::kGather, OpType::kScatter,
                                         OpType::kAllToAll, OpType::kBarrier),
                       ::testing::Values(Algorithm::kAuto), ::testing::Values(Mode::kDefault)),
    [](const auto& info) {
      return std::string(OpTypeName(std::get<1>(info.param))) + "_w" +
             std::to_string(std::get<0>(info.param)) + "_" + kBackend;
    });

// Two ranks run the ring when forced (the benchmark's setting; kAuto picks direct there).
INSTANTIATE_TEST_SUITE_P(
    RingOnTwoRanks, DeviceExactValues,
    ::testing::Combine(::testing::Values(2),
                       ::testing::Values(OpType::kAllReduce, OpType::kReduceScatter,
                                         OpType::kReduce, OpType::kBroadcast, OpType::kAllGather),
                       ::testing::Values(Algorithm::kRing), ::testing::Values(Mode::kDefault)),
    [](const auto& info) {
      return std::string(OpTypeName(std::get<1>(info.param))) + "_w2_ring_" + kBackend;
    });

// options.direct_outputs with out-of-place tensors: device slots, and on the simulator host
// slots too (the host path's up-front copies into the output).
#if TIDAL_COLL_TEST_CUDA
#define TIDAL_DIRECT_MODES ::testing::Values(Mode::kDirect)
#else
#define TIDAL_DIRECT_MODES ::testing::Values(Mode::kDirect, Mode::kDirectHost)
#endif
// AllReduce(out, in) and Broadcast(out, in, root) without direct_outputs: working buffers,
// the result (the root's input, for broadcast) copied into the output on commit.
INSTANTIATE_TEST_SUITE_P(
    OutOfPlaceByDefault, DeviceExactValues,
    ::testing::Combine(::testing::Values(2, 3),
                       ::testing::Values(OpType::kAllReduce, OpType::kBroadcast),
                       ::testing::Values(Algorithm::kAuto, Algorithm::kRing),
                       ::testing::Values(Mode::kOutOfPlace)),
    [](const auto& info) {
      return std::string(OpTypeName(std::get<1>(info.param))) + "_w" +
             std::to_string(std::get<0>(info.param)) +
             (std::get<2>(info.param) == Algorithm::kRing ? "_ring_" : "_") + kBackend;
    });

std::string DirectName(const std::string& head, Algorithm alg, Mode mode) {
  return head + (alg == Algorithm::kRing ? "_ring" : "") +
         (mode == Mode::kDirectHost ? "_host_" : "_") + kBackend;
}
INSTANTIATE_TEST_SUITE_P(
    DirectOutputs, DeviceExactValues,
    ::testing::Combine(::testing::Values(2, 3),
                       ::testing::Values(OpType::kAllReduce, OpType::kAllGather,
                                         OpType::kReduceScatter, OpType::kBroadcast,
                                         OpType::kGather, OpType::kScatter, OpType::kAllToAll),
                       ::testing::Values(Algorithm::kAuto, Algorithm::kRing), TIDAL_DIRECT_MODES),
    [](const auto& info) {
      return DirectName(std::string(OpTypeName(std::get<1>(info.param))) + "_w" +
                            std::to_string(std::get<0>(info.param)),
                        std::get<2>(info.param), std::get<3>(info.param));
    });

// The group refuses what its device path cannot serve, with the reason.
TEST(DeviceTensors, RefusesForeignLocationsAndPointToPoint) {
  std::string skip;
  const int devices = Devices(&skip);
  if (devices == 0) GTEST_SKIP() << skip;
  GroupClusterOptions co;
  co.backend = kBackend;
  co.ranks = 2;
  co.pg = DeviceOptions(devices);
  TIDAL_CLUSTER_OR_SKIP(cluster, co);
  std::vector<DeviceBuffers> bufs = AllocateBuffers(*cluster, devices, 64);
  std::vector<uint8_t> host(64, 0);
  bool ok = cluster->RunRanks([&](int r) -> Task<void> {
    ProcessGroup& pg = cluster->pg(r);
    Tensor on_host{host.data(), DataType::kI32, 4, Location::Host()};
    Status st = co_await pg.AllReduce(on_host, ReduceOp::kSum)->Wait();
    EXPECT_EQ(st.code(), ErrorCode::UNSUPPORTED) << st.ToString();
    EXPECT_NE(st.message().find("this rank's buffers are at cuda:"), std::string::npos)
        << st.ToString();
    Tensor mine{bufs[r].out, DataType::kI32, 4, bufs[r].loc};
    Status p2p = co_await pg.Send(mine, 1 - r, 0)->Wait();
    EXPECT_EQ(p2p.code(), ErrorCode::UNSUPPORTED) << p2p.ToString();
    // Two-tensor forms: the same memory or disjoint, not partly overlapping.
    Tensor front{bufs[r].out, DataType::kI32, 8, bufs[r].loc};
    Tensor back{bufs[r].out + 16, DataType::kI32, 8, bufs[r].loc};
    Status overlap = co_await pg.AllReduce(front, back, ReduceOp::kSum)->Wait();
    EXPECT_EQ(overlap.code(), ErrorCode::INVALID_PARAMS) << overlap.ToString();
    EXPECT_NE(overlap.message().find("overlap"), std::string::npos) << overlap.ToString();
    Tensor shorter{bufs[r].in, DataType::kI32, 4, bufs[r].loc};
    Status count = co_await pg.AllReduce(front, shorter, ReduceOp::kSum)->Wait();
    EXPECT_EQ(count.code(), ErrorCode::INVALID_PARAMS) << count.ToString();
    if (r == 0) {  // only the root's input is checked
      Status root_overlap = co_await pg.Broadcast(front, back, 0)->Wait();
      EXPECT_EQ(root_overlap.code(), ErrorCode::INVALID_PARAMS) << root_overlap.ToString();
    }
    // The group still works after refusals.
    Status all = co_await pg.AllReduce(mine, ReduceOp::kSum)->Wait();
    EXPECT_TRUE(all.ok()) << all.ToString();
  });
  ASSERT_TRUE(ok) << cluster->Banner();
}

// Two ranks fold on arrival (direct): the lower rank's value is the accumulator on both
// ranks, so MIN/MAX of +0 and -0 (equal, different bits) give the lower rank's bits
// everywhere, and both ranks hold identical bytes; over several chunks.
TEST(DeviceTensors, TwoRanksFoldInMemberOrder) {
  std::string skip;
  const int devices = Devices(&skip);
  if (devices == 0) GTEST_SKIP() << skip;
  GroupClusterOptions co;
  co.backend = kBackend;
  co.ranks = 2;
  co.pg = DeviceOptions(devices);
  co.pg.algorithm = Algorithm::kAuto;  // direct on two ranks
  TIDAL_CLUSTER_OR_SKIP(cluster, co);
  const uint64_t c = 5 * co.pg.slot_bytes / sizeof(float) + 3;  // several chunks
  std::vector<DeviceBuffers> bufs = AllocateBuffers(*cluster, devices, 2 * c * sizeof(float));
  // Rank 0: +0, -0, +0, ...; rank 1: the other sign.
  auto input = [](int r, uint64_t n) {
    std::vector<float> v(n);
    for (uint64_t i = 0; i < n; ++i) v[i] = ((i + static_cast<uint64_t>(r)) % 2 == 0) ? 0.0f : -0.0f;
    return v;
  };
  std::vector<std::string> failures;
  for (OpType op : {OpType::kAllReduce, OpType::kReduceScatter}) {
    for (ReduceOp rop : {ReduceOp::kMin, ReduceOp::kMax}) {
      const uint64_t n_in = op == OpType::kAllReduce ? c : 2 * c;
      const uint64_t n_out = c;
      bool ok = cluster->RunRanks([&](int r) -> Task<void> {
        std::vector<float> in = input(r, n_in);
        uint8_t* dst = op == OpType::kAllReduce ? bufs[r].out : bufs[r].in;
        cluster->fabric().CopyIn(dst, in.data(), n_in * sizeof(float));
        Tensor to{bufs[r].out, DataType::kF32, n_out, bufs[r].loc};
        Tensor ti{bufs[r].in, DataType::kF32, n_in, bufs[r].loc};
        std::shared_ptr<Work> w = op == OpType::kAllReduce
                                      ? cluster->pg(r).AllReduce(to, rop)
                                      : cluster->pg(r).ReduceScatter(to, ti, rop);
        Status st = co_await w->Wait();
        std::vector<float> got(n_out);
        cluster->fabric().CopyOut(got.data(), bufs[r].out, n_out * sizeof(float));
        // Rank 0's values, at this rank's block (reduce_scatter: block r).
        std::vector<float> want = input(0, n_in);
        const uint64_t base = op == OpType::kAllReduce ? 0 : static_cast<uint64_t>(r) * c;
        uint64_t wrong = 0;
        for (uint64_t i = 0; i < n_out; ++i) {
          wrong += std::memcmp(&got[i], &want[base + i], sizeof(float)) != 0;
        }
        if (!st.ok() || wrong != 0) {
          failures.push_back("rank " + std::to_string(r) + " " + std::string(OpTypeName(op)) +
                             " " + std::string(ReduceOpName(rop)) + ": " + st.ToString() +
                             " #wrong=" + std::to_string(wrong));
        }
      });
      ASSERT_TRUE(ok) << "hung\n" << cluster->Banner();
    }
  }
  for (const auto& f : failures) ADD_FAILURE() << f;
}

// Tensors registered with the group (RegisterBuffer) are WRITTEN from where they are: no
// chunk is staged, results stay exact, and with device_chunks = 4 a 3 MiB message goes as
// three 1 MiB chunks (the 1 MiB floor) where the slot (4 MiB) would hold it whole; every
// op at 2 and 3 ranks; then again with direct_outputs and out-of-place tensors (outputs
// registered: allgather's own block is copied into the output while its WRITE runs, and
// nothing is staged either). Then the refusals of RegisterBuffer / UnregisterBuffer and of the
// chunk options, each with its code.
// device_short_last_chunk: a 3 MiB message in 2 chunks goes as 2.25 + 0.75 MiB (a
// 3 MiB + 64 KiB one as 2,392,064 + 819,200 bytes); every collective, over the ring (chunks
// forwarded as they arrive, broadcast's chain) and direct, on 2 and 3 ranks, lands exact,
// and a two-rank direct message is exactly 2 chunks with all its bytes.
TEST(DeviceTensors, ShortLastChunkExact) {
  std::string skip;
  const int devices = Devices(&skip);
  if (devices == 0) GTEST_SKIP() << skip;
  for (const Algorithm alg : {Algorithm::kRing, Algorithm::kDirect, Algorithm::kSplit}) {
    for (const int n : {2, 3}) {
      GroupClusterOptions co = DeviceCluster(n, 8100 + n, devices);
      co.pg.slot_bytes = 4 << 20;
      co.pg.device_chunks = 2;
      co.pg.device_short_last_chunk = true;
      co.pg.algorithm = alg;
      TIDAL_CLUSTER_OR_SKIP(cluster, co);
      for (const uint64_t block : {uint64_t{3} << 20, (uint64_t{3} << 20) + (64 << 10)}) {
        const uint64_t c = block / sizeof(float);
        const uint64_t cap = static_cast<uint64_t>(n) * block;
        std::vector<DeviceBuffers> bufs = AllocateBuffers(*cluster, devices, cap);
        std::vector<std::string> failures;
        for (OpType op : {OpType::kAllReduce, OpType::kAllGather, OpType::kReduceScatter,
                          OpType::kBroadcast, OpType::kAllToAll}) {
          std::vector<ProcessGroupStats> before(n);
          for (int r = 0; r < n; ++r) before[r] = cluster->pg(r).stats();
          bool ok = cluster->RunRanks([&](int r) -> Task<void> {
            HostCase h = Prepare(op, r, n, c, 0, ReduceOp::kSum, DataType::kF32, false);
            auto w = Start(*cluster, r, bufs[r], h, op, 0, ReduceOp::kSum, DataType::kF32);
            CaseResult res = co_await Finish(*cluster, r, bufs[r], h, w, op, c, 0,
                                             ReduceOp::kSum, DataType::kF32);
            if (!res.status.ok() || res.wrong != 0) {
              failures.push_back(std::string(AlgorithmName(alg)) + " w" + std::to_string(n) +
                                 " block " + std::to_string(block) + " rank " + std::to_string(r) +
                                 " " + std::string(OpTypeName(op)) + ": " + res.status.ToString() +
                                 " #wrong=" + std::to_string(res.wrong));
            }
          });
          ASSERT_TRUE(ok) << "hung\n" << cluster->Banner();
          if (n == 2 && alg == Algorithm::kDirect && op == OpType::kAllReduce) {
            for (int r = 0; r < n; ++r) {
              const ProcessGroupStats& s = cluster->pg(r).stats();
              EXPECT_EQ(s.chunks_sent - before[r].chunks_sent, 2u) << "rank " << r;
              EXPECT_EQ(s.bytes_sent - before[r].bytes_sent, block) << "rank " << r;
            }
          }
        }
        for (const auto& f : failures) ADD_FAILURE() << f;
      }
    }
  }
}

// The split tests' shape: four ranks, root 2, a count four (and three) does not divide, so
// the segments and parts differ in size.
struct SplitShape {
  static constexpr int n = 4, root = 2;
  static constexpr uint64_t c = (uint64_t{1} << 20) / sizeof(float) + 3;
  static constexpr uint64_t bytes = c * sizeof(float);
  // AllReduce's segment j, and Broadcast's part of member j (not the root), in bytes.
  static uint64_t seg(int j) { return Partition(c, n, j).count * sizeof(float); }
  static uint64_t part(int j) {
    return Partition(c, n - 1, j < root ? j : j - 1).count * sizeof(float);
  }
  static GroupClusterOptions Cluster(uint64_t seed, int devices) {
    GroupClusterOptions co = DeviceCluster(n, seed, devices);
    co.pg.slot_bytes = 256 << 10;
    co.pg.algorithm = Algorithm::kSplit;
    return co;
  }
};

// Algorithm::kSplit on four ranks (two per GPU): AllReduce, Reduce and Broadcast (root
// 2), in place and out of place, land exact, and each rank WRITEs exactly the shares the
// split sends: AllReduce every other member's segment of its input, then its reduced
// segment to the three others; Reduce the same, its segment to the root only; Broadcast
// the root its buffer once (a part to each other member), the others their part to the
// two members that are neither they nor the root. A count that four does not divide, so
// the parts differ in size.
TEST(DeviceTensors, SplitSendsEachShareOnceExact) {
  std::string skip;
  const int devices = Devices(&skip);
  if (devices == 0) GTEST_SKIP() << skip;
  using S = SplitShape;
  const int n = S::n, root = S::root;
  const uint64_t c = S::c, bytes = S::bytes;
  GroupClusterOptions co = S::Cluster(8300, devices);
  TIDAL_CLUSTER_OR_SKIP(cluster, co);
  std::vector<DeviceBuffers> bufs = AllocateBuffers(*cluster, devices, bytes);
  auto seg = &S::seg;
  auto part = &S::part;
  for (OpType op : {OpType::kAllReduce, OpType::kReduce, OpType::kBroadcast}) {
    for (const bool out_of_place : {false, true}) {
      if (op == OpType::kReduce && out_of_place) continue;  // Reduce is in place only
      std::vector<ProcessGroupStats> before(n);
      for (int r = 0; r < n; ++r) before[r] = cluster->pg(r).stats();
      std::vector<CaseResult> res(n);
      ASSERT_TRUE(cluster->RunRanks([&](int r) -> Task<void> {
        HostCase h = Prepare(op, r, n, c, root, ReduceOp::kSum, DataType::kF32, out_of_place);
        auto w = Start(*cluster, r, bufs[r], h, op, root, ReduceOp::kSum, DataType::kF32);
        res[r] = co_await Finish(*cluster, r, bufs[r], h, w, op, c, root, ReduceOp::kSum,
                                 DataType::kF32);
      })) << "hung\n"
          << cluster->Banner();
      for (int r = 0; r < n; ++r) {
        const std::string what = std::string(OpTypeName(op)) +
                                 (out_of_place ? " out of place" : " in place") + ", rank " +
                                 std::to_string(r);
        EXPECT_TRUE(res[r].status.ok()) << what << ": " << res[r].status.ToString();
        EXPECT_EQ(res[r].wrong, 0) << what;
        uint64_t want = 0;
        if (op == OpType::kBroadcast) {
          want = r == root ? bytes : part(r) * (n - 2);
        } else {
          want = bytes - seg(r) +
                 (op == OpType::kReduce ? (r == root ? 0 : seg(r)) : seg(r) * (n - 1));
        }
        EXPECT_EQ(cluster->pg(r).stats().bytes_sent - before[r].bytes_sent, want) << what;
      }
    }
  }
}

// The split with registered tensors and direct outputs (out of place): its first step is
// pulled. Every rank READs its segment of every other rank's registered input straight
// into its receive buffer (AllReduce), or its part of the root's input (Broadcast), and
// WRITEs only the second step's shares; every value exact.
TEST(DeviceTensors, SplitPullsItsFirstStepExact) {
  std::string skip;
  const int devices = Devices(&skip);
  if (devices == 0) GTEST_SKIP() << skip;
  using S = SplitShape;
  const int n = S::n, root = S::root;
  const uint64_t c = S::c, bytes = S::bytes;
  GroupClusterOptions co = S::Cluster(8310, devices);
  co.pg.direct_outputs = true;
  TIDAL_CLUSTER_OR_SKIP(cluster, co);
  std::vector<DeviceBuffers> bufs = AllocateBuffers(*cluster, devices, bytes);
  ASSERT_TRUE(cluster->RunRanks([&](int r) -> Task<void> {
    Status reg = co_await cluster->pg(r).RegisterBuffer(bufs[r].in, bytes);
    if (reg.ok()) reg = co_await cluster->pg(r).RegisterBuffer(bufs[r].out, bytes);
    EXPECT_TRUE(reg.ok()) << reg.ToString();
  }));
  auto seg = &S::seg;
  auto part = &S::part;
  for (OpType op : {OpType::kAllReduce, OpType::kBroadcast}) {
    std::vector<ProcessGroupStats> before(n);
    for (int r = 0; r < n; ++r) before[r] = cluster->pg(r).stats();
    std::vector<CaseResult> res(n);
    ASSERT_TRUE(cluster->RunRanks([&](int r) -> Task<void> {
      HostCase h = Prepare(op, r, n, c, root, ReduceOp::kSum, DataType::kF32, true);
      auto w = Start(*cluster, r, bufs[r], h, op, root, ReduceOp::kSum, DataType::kF32);
      res[r] =
          co_await Finish(*cluster, r, bufs[r], h, w, op, c, root, ReduceOp::kSum, DataType::kF32);
    })) << "hung\n"
        << cluster->Banner();
    for (int r = 0; r < n; ++r) {
      const std::string what = std::string(OpTypeName(op)) + ", rank " + std::to_string(r);
      EXPECT_TRUE(res[r].status.ok()) << what << ": " << res[r].status.ToString();
      EXPECT_EQ(res[r].wrong, 0) << what;
      const ProcessGroupStats& s = cluster->pg(r).stats();
      uint64_t pulled = 0, reads = 0, sent = 0;
      if (op == OpType::kAllReduce) {
        pulled = seg(r) * (n - 1);
        reads = n - 1;
        sent = seg(r) * (n - 1);
      } else if (r != root) {
        pulled = part(r);
        reads = 1;
        sent = part(r) * (n - 2);
      }
      EXPECT_EQ(s.bytes_pulled - before[r].bytes_pulled, pulled) << what;
      EXPECT_EQ(s.pulls_read - before[r].pulls_read, reads) << what;
      EXPECT_EQ(s.pulls_via_slots - before[r].pulls_via_slots, 0u) << what;
      EXPECT_EQ(s.bytes_sent - before[r].bytes_sent, sent) << what;
    }
  }
}

// yield_between_ops: three different collectives issued at once by every rank (queued
// behind one another) with a loop turn between them, each on buffers of its own: every
// output exact, in issue order.
// Four different ops (allreduce, allgather, alltoall, reduce_scatter of 1 MiB per rank)
// queued at once on every rank of `cluster`, then finished in order; the failures, each
// naming world size, rank and op (none when every value is exact).
std::vector<std::string> QueuedFourOpsExact(GroupCluster& cluster, int n, int devices) {
  const uint64_t c = (1 << 20) / sizeof(float);
  const std::vector<OpType> ops = {OpType::kAllReduce, OpType::kAllGather, OpType::kAllToAll,
                                   OpType::kReduceScatter};
  std::vector<std::vector<DeviceBuffers>> bufs;
  for (size_t k = 0; k < ops.size(); ++k) {
    bufs.push_back(AllocateBuffers(cluster, devices, static_cast<uint64_t>(n) * c * 4));
  }
  std::vector<std::string> failures;
  const uint64_t before = cluster.pg(0).stats().collectives;
  bool ok = cluster.RunRanks([&](int r) -> Task<void> {
    std::vector<HostCase> hs;
    std::vector<std::shared_ptr<Work>> ws;
    for (size_t k = 0; k < ops.size(); ++k) {
      hs.push_back(Prepare(ops[k], r, n, c, 0, ReduceOp::kSum, DataType::kF32));
      ws.push_back(Start(cluster, r, bufs[k][r], hs[k], ops[k], 0, ReduceOp::kSum,
                         DataType::kF32));
    }
    for (size_t k = 0; k < ops.size(); ++k) {
      CaseResult res = co_await Finish(cluster, r, bufs[k][r], hs[k], ws[k], ops[k], c, 0,
                                       ReduceOp::kSum, DataType::kF32);
      if (!res.status.ok() || res.wrong != 0) {
        failures.push_back("w" + std::to_string(n) + " rank " + std::to_string(r) + " " +
                           std::string(OpTypeName(ops[k])) + ": " + res.status.ToString() +
                           " #wrong=" + std::to_string(res.wrong));
      }
    }
  });
  if (!ok) failures.push_back("hung\n" + cluster.Banner());
  const uint64_t done = cluster.pg(0).stats().collectives - before;
  if (done != ops.size()) failures.push_back("collectives " + std::to_string(done));
  return failures;
}

TEST(DeviceTensors, QueuedOpsWithAYieldBetweenThemExact) {
  std::string skip;
  const int devices = Devices(&skip);
  if (devices == 0) GTEST_SKIP() << skip;
  for (const int n : {2, 3}) {
    GroupClusterOptions co = DeviceCluster(n, 8300 + n, devices);
    co.pg.yield_between_ops = true;
    co.pg.device_chunks = 2;
    TIDAL_CLUSTER_OR_SKIP(cluster, co);
    for (const auto& f : QueuedFourOpsExact(*cluster, n, devices)) ADD_FAILURE() << f;
  }
}

#if TIDAL_COLL_TEST_CUDA
// The event loop spinning and polling completions itself (the transports' caller polling,
// on by default, and the reducer's PollFromCaller as a spin poller): the same queued ops
// stay exact, and the loop did take completions of both kinds (at least one each; which
// thread finds a given one first is a race by design).
TEST(DeviceTensors, TheLoopPollingCompletionsItselfExact) {
  std::string skip;
  const int devices = Devices(&skip);
  if (devices == 0) GTEST_SKIP() << skip;
  for (const int n : {2, 3}) {
    GroupClusterOptions co = DeviceCluster(n, 8400 + n, devices);
    co.pg.yield_between_ops = true;
    co.pg.device_chunks = 2;
    TIDAL_CLUSTER_OR_SKIP(cluster, co);
    auto* real = dynamic_cast<backends::RealEnv*>(&cluster->fabric().env(0));
    ASSERT_NE(real, nullptr);
    real->SetSpinNs(1'000'000);
    const uint64_t poller = real->AddSpinPoller([] { CudaReducer::PollFromCaller(); });
    auto& fabric = dynamic_cast<backends::cuda::CudaFabric&>(cluster->fabric());
    uint64_t groups_before = 0;
    for (int r = 0; r < n; ++r) groups_before += fabric.cuda_transport(r).counters().caller_groups;
    const uint64_t folds_before = CudaReducer::CallerCompletions();
    for (const auto& f : QueuedFourOpsExact(*cluster, n, devices)) ADD_FAILURE() << f;
    uint64_t groups = 0;
    for (int r = 0; r < n; ++r) groups += fabric.cuda_transport(r).counters().caller_groups;
    EXPECT_GE(groups - groups_before, 1u) << "w" << n;
    EXPECT_GE(CudaReducer::CallerCompletions() - folds_before, 1u) << "w" << n;
    real->RemoveSpinPoller(poller);
    real->SetSpinNs(0);
  }
}
#endif

TEST(DeviceTensors, RegisteredBuffersSplitChunksExact) {
  std::string skip;
  const int devices = Devices(&skip);
  if (devices == 0) GTEST_SKIP() << skip;
  for (const auto& [n, direct] : {std::pair{2, false}, std::pair{3, false}, std::pair{2, true},
                                  std::pair{3, true}}) {
    GroupClusterOptions co = DeviceCluster(n, 7900 + n, devices);
    co.pg.slot_bytes = 4 << 20;
    co.pg.device_chunks = 4;
    co.pg.direct_outputs = direct;
    TIDAL_CLUSTER_OR_SKIP(cluster, co);
    const uint64_t c = (3 << 20) / sizeof(float);  // a 3 MiB block per rank
    const uint64_t cap = static_cast<uint64_t>(n) * c * sizeof(float);
    std::vector<DeviceBuffers> bufs = AllocateBuffers(*cluster, devices, cap);
    std::vector<std::string> failures;
    bool ok = cluster->RunRanks([&](int r) -> Task<void> {
      ProcessGroup& pg = cluster->pg(r);
      Status reg = co_await pg.RegisterBuffer(bufs[r].in, cap);
      if (reg.ok()) reg = co_await pg.RegisterBuffer(bufs[r].out, cap);
      EXPECT_TRUE(reg.ok()) << reg.ToString();
    });
    ASSERT_TRUE(ok) << "hung\n" << cluster->Banner();
    for (OpType op : {OpType::kAllReduce, OpType::kAllGather, OpType::kReduceScatter,
                      OpType::kBroadcast, OpType::kAllToAll}) {
      trace::Enable(1 << 16);
      std::vector<uint64_t> chunks_before(n);
      for (int r = 0; r < n; ++r) chunks_before[r] = cluster->pg(r).stats().chunks_sent;
      ok = cluster->RunRanks([&](int r) -> Task<void> {
        // AllReduce/Broadcast: a tensor of c; AllGather/ReduceScatter/AllToAll: blocks of c.
        HostCase h = Prepare(op, r, n, c, 0, ReduceOp::kSum, DataType::kF32, direct);
        auto w = Start(*cluster, r, bufs[r], h, op, 0, ReduceOp::kSum, DataType::kF32);
        CaseResult res = co_await Finish(*cluster, r, bufs[r], h, w, op, c, 0, ReduceOp::kSum,
                                         DataType::kF32);
        if (!res.status.ok() || res.wrong != 0) {
          failures.push_back(std::string(direct ? "direct " : "") + "w" + std::to_string(n) +
                             " rank " + std::to_string(r) + " " +
                             std::string(OpTypeName(op)) + ": " + res.status.ToString() +
                             " #wrong=" + std::to_string(res.wrong));
        }
      });
      ASSERT_TRUE(ok) << "hung\n" << cluster->Banner();
      std::vector<trace::Entry> ev = trace::Take();
      trace::Enable(0);
      uint64_t staged = 0;
      for (const trace::Entry& e : ev) staged += e.ev == trace::Ev::kStageStart;
      EXPECT_EQ(staged, 0u) << (direct ? "direct " : "") << "w" << n << " " << OpTypeName(op)
                            << ": chunks were staged";
      if (n == 2) {
        // Two ranks, direct: each rank sends one 3 MiB message (broadcast: the root only),
        // as 3 chunks of 1 MiB; with direct outputs, broadcast and alltoall offer their
        // registered inputs for pulling instead (options.device_pull): no chunk at all.
        const bool pulled = direct && (op == OpType::kBroadcast || op == OpType::kAllToAll);
        for (int r = 0; r < n; ++r) {
          const uint64_t want = (op == OpType::kBroadcast && r != 0) || pulled ? 0 : 3;
          EXPECT_EQ(cluster->pg(r).stats().chunks_sent - chunks_before[r], want)
              << OpTypeName(op) << " rank " << r;
        }
      }
    }
    for (const auto& f : failures) ADD_FAILURE() << f;
    ok = cluster->RunRanks([&](int r) -> Task<void> {
      ProcessGroup& pg = cluster->pg(r);
      Status twice = co_await pg.RegisterBuffer(bufs[r].in + 64, 64);
      EXPECT_EQ(twice.code(), ErrorCode::ADDRESS_OVERLAPPED) << twice.ToString();
      Status none = co_await pg.RegisterBuffer(bufs[r].in, 0);
      EXPECT_EQ(none.code(), ErrorCode::INVALID_PARAMS) << none.ToString();
      Status stranger = co_await pg.UnregisterBuffer(bufs[r].in + 64);
      EXPECT_EQ(stranger.code(), ErrorCode::INVALID_PARAMS) << stranger.ToString();
      Status un = co_await pg.UnregisterBuffer(bufs[r].in);
      EXPECT_TRUE(un.ok()) << un.ToString();
      un = co_await pg.UnregisterBuffer(bufs[r].in);
      EXPECT_EQ(un.code(), ErrorCode::INVALID_PARAMS) << un.ToString();
      un = co_await pg.UnregisterBuffer(bufs[r].out);
      EXPECT_TRUE(un.ok()) << un.ToString();
      if (r != 0) co_return;
      // A group not started yet, and options out of range (Start refuses them before it
      // touches the engine or the messenger).
      ProcessGroupOptions o = co.pg;
      ProcessGroup unstarted(0, n, cluster->fabric().engine(0), cluster->fabric().messenger(0),
                             cluster->fabric().metadata(), o);
      Status early = co_await unstarted.RegisterBuffer(bufs[0].in, 64);
      EXPECT_EQ(early.code(), ErrorCode::INVALID_PARAMS) << early.ToString();
      o.device_chunks = 0;
      ProcessGroup no_chunks(0, n, cluster->fabric().engine(0), cluster->fabric().messenger(0),
                             cluster->fabric().metadata(), o);
      Status bad = co_await no_chunks.Start();
      EXPECT_EQ(bad.code(), ErrorCode::INVALID_PARAMS) << bad.ToString();
      EXPECT_NE(bad.message().find("device_chunks"), std::string::npos) << bad.ToString();
      o.device_chunks = 2;
      o.device_chunk_min_bytes = 1000;
      ProcessGroup odd_floor(0, n, cluster->fabric().engine(0), cluster->fabric().messenger(0),
                             cluster->fabric().metadata(), o);
      bad = co_await odd_floor.Start();
      EXPECT_EQ(bad.code(), ErrorCode::INVALID_PARAMS) << bad.ToString();
      EXPECT_NE(bad.message().find("device_chunk_min_bytes"), std::string::npos) << bad.ToString();
    });
    ASSERT_TRUE(ok) << "hung\n" << cluster->Banner();
  }
  // Host slots copy every chunk into staging anyway: RegisterBuffer refuses.
  GroupClusterOptions host;
  host.backend = kBackend;
  host.ranks = 2;
  host.pg = TestOptions();
  TIDAL_CLUSTER_OR_SKIP(hosts, host);
  std::vector<uint8_t> mem(256, 0);
  bool ok = hosts->RunRanks([&](int r) -> Task<void> {
    if (r != 0) co_return;
    Status st = co_await hosts->pg(0).RegisterBuffer(mem.data(), mem.size());
    EXPECT_EQ(st.code(), ErrorCode::UNSUPPORTED) << st.ToString();
  });
  ASSERT_TRUE(ok) << "hung\n" << hosts->Banner();
}

// A rank killed mid-allreduce (at a ring step boundary): every survivor returns
// RANK_FAILED with failed_ranks = {victim}, and the retried attempt's result, the sum over
// the survivors, is exact; the next allreduce runs over the survivors likewise. On the
// simulator the victim's node crashes (CrashSoon); on the cuda fabric, which cannot stop a
// node of its process, its transport crashes (peers' transfers and probes answer
// PEER_UNREACHABLE) and its group halts (ProcessGroup::Halt). Also with direct_outputs and
// AllReduce(output, input): the aborted attempt left the outputs partly written, the retry
// rewrites every byte from the untouched inputs (Finish checks both).
class DeviceRankKilled : public ::testing::TestWithParam<std::tuple<uint64_t, bool>> {};

TEST_P(DeviceRankKilled, MidAllReduceSurvivorsAgreeAndRetryExactly) {
  const uint64_t boundary = std::get<0>(GetParam());
  const bool direct = std::get<1>(GetParam());
  std::string skip;
  const int devices = Devices(&skip);
  if (devices == 0) GTEST_SKIP() << skip;
  constexpr int kRanks = 3;
  constexpr int kVictim = 1;
  const DataType dt = DataType::kF32;
  const uint64_t count = 4096 + 3;  // ring-sized: 2(m-1) = 4 data steps, many chunks each
  GroupCluster* gc = nullptr;
  bool fired = false;
  GroupClusterOptions co = DeviceCluster(kRanks, 7700 + boundary, devices);
  co.pg.slot_bytes = 4096;
  co.pg.direct_outputs = direct;
  co.pg.step_hook = [&](const StepEvent& e) {
    if (e.rank != kVictim || e.op_seq != 0 || e.boundary != boundary || fired) return;
    fired = true;
#if TIDAL_COLL_TEST_CUDA
    auto& fabric = static_cast<backends::cuda::CudaFabric&>(gc->fabric());
    fabric.cuda_transport(kVictim).Crash();
    gc->pg(kVictim).Halt();
#else
    EXPECT_TRUE(gc->CrashSoon(kVictim).ok());
#endif
  };
  TIDAL_CLUSTER_OR_SKIP(cluster, co);
  gc = cluster.get();
  std::vector<DeviceBuffers> bufs = AllocateBuffers(*cluster, devices, count * 4);
  std::vector<CaseResult> first(kRanks), second(kRanks);
  bool ok = cluster->RunRanks([&](int r) -> Task<void> {
    HostCase h = Prepare(OpType::kAllReduce, r, kRanks, count, 0, ReduceOp::kSum, dt, direct);
    auto w = Start(*cluster, r, bufs[r], h, OpType::kAllReduce, 0, ReduceOp::kSum, dt);
    if (r == kVictim) co_return;  // it never finishes: it is killed at the boundary
    first[r] = co_await Finish(*cluster, r, bufs[r], h, w, OpType::kAllReduce, count, 0,
                               ReduceOp::kSum, dt);
    HostCase h2 = Prepare(OpType::kAllReduce, r, kRanks, count, 0, ReduceOp::kMax, dt, direct);
    auto w2 = Start(*cluster, r, bufs[r], h2, OpType::kAllReduce, 0, ReduceOp::kMax, dt);
    second[r] = co_await Finish(*cluster, r, bufs[r], h2, w2, OpType::kAllReduce, count, 0,
                                ReduceOp::kMax, dt);
  });
  ASSERT_TRUE(ok) << "hung\n" << cluster->Banner();
  ASSERT_TRUE(fired) << "boundary " << boundary << " never reached";
  for (int r : {0, 2}) {
    for (const CaseResult* res : {&first[r], &second[r]}) {
      EXPECT_EQ(res->status.code(), ErrorCode::RANK_FAILED)
          << "rank " << r << ": " << res->status.ToString() << cluster->Banner();
      EXPECT_EQ(res->failed, std::vector<int>{kVictim}) << "rank " << r;
      EXPECT_EQ(res->wrong, 0) << "rank " << r << cluster->Banner();
    }
  }
}

// Boundaries of the 3-rank ring allreduce: 0 (before any data), 1 and 2 (mid reduce-
// scatter / between the halves), 4 (before the agreement round).
INSTANTIATE_TEST_SUITE_P(Boundaries, DeviceRankKilled,
                         ::testing::Combine(::testing::Values(uint64_t{0}, uint64_t{1},
                                                              uint64_t{2}, uint64_t{4}),
                                            ::testing::Values(false, true)),
                         [](const auto& info) {
                           return "boundary" + std::to_string(std::get<0>(info.param)) +
                                  (std::get<1>(info.param) ? "_direct_" : "_") + kBackend;
                         });


// Pulled messages (options.device_pull, with direct_outputs and registered inputs):
// broadcast (direct algorithm, every root) and alltoall at 2 and 3 ranks, the receivers'
// outputs registered (READ straight into them) or not (READ through the receive slots),
// and the push path (device_pull off) beside them. Outputs start as sentinels and must be
// bit-exact; the inputs and the bytes of both buffers past the tensors (guards) must be
// untouched; the statistics say which path ran: offers, READs, READs through slots and no
// chunk WRITEs at all when pulled.
enum class PullMode { kIntoOutput, kViaSlots, kPush };

TEST(DevicePull, BroadcastAndAllToAllExactByEveryPath) {
  std::string skip;
  const int devices = Devices(&skip);
  if (devices == 0) GTEST_SKIP() << skip;
  constexpr uint8_t kGuard = 0xC3;
  const uint64_t c = 75'001;  // floats per block: 300,004 bytes, not a multiple of a chunk
  for (int n : {2, 3}) {
    for (PullMode mode : {PullMode::kIntoOutput, PullMode::kViaSlots, PullMode::kPush}) {
      const char* mode_name = mode == PullMode::kIntoOutput ? "into-output"
                              : mode == PullMode::kViaSlots ? "via-slots"
                                                            : "push";
      GroupClusterOptions co = DeviceCluster(n, 8100 + n * 4 + static_cast<int>(mode), devices);
      co.pg.slot_bytes = 64 << 10;
      co.pg.slots_per_channel = 2;
      co.pg.direct_outputs = true;
      co.pg.algorithm = Algorithm::kDirect;  // broadcast: the root to every member
      co.pg.device_pull = mode != PullMode::kPush;
      TIDAL_CLUSTER_OR_SKIP(cluster, co);
      const uint64_t block = c * sizeof(float);
      const uint64_t used = static_cast<uint64_t>(n) * block;
      const uint64_t cap = used + 4096;  // guards past the largest tensor
      std::vector<DeviceBuffers> bufs = AllocateBuffers(*cluster, devices, cap);
      bool ok = cluster->RunRanks([&](int r) -> Task<void> {
        Status reg = co_await cluster->pg(r).RegisterBuffer(bufs[r].in, cap);
        if (reg.ok() && mode != PullMode::kViaSlots) {
          reg = co_await cluster->pg(r).RegisterBuffer(bufs[r].out, cap);
        }
        EXPECT_TRUE(reg.ok()) << reg.ToString();
      });
      ASSERT_TRUE(ok) << "hung\n" << cluster->Banner();
      std::vector<std::string> failures;
      for (OpType op : {OpType::kBroadcast, OpType::kAllToAll}) {
        for (int root = 0; root < (op == OpType::kBroadcast ? n : 1); ++root) {
          std::vector<ProcessGroupStats> before(n);
          for (int r = 0; r < n; ++r) before[r] = cluster->pg(r).stats();
          std::vector<uint8_t> guard(cap, kGuard);
          for (int r = 0; r < n; ++r) {
            cluster->fabric().CopyIn(bufs[r].in, guard.data(), cap);
            cluster->fabric().CopyIn(bufs[r].out, guard.data(), cap);
          }
          std::vector<HostCase> cases(n);
          ok = cluster->RunRanks([&](int r) -> Task<void> {
            cases[r] = Prepare(op, r, n, c, root, ReduceOp::kSum, DataType::kF32, true);
            auto w = Start(*cluster, r, bufs[r], cases[r], op, root, ReduceOp::kSum,
                           DataType::kF32);
            CaseResult res = co_await Finish(*cluster, r, bufs[r], cases[r], w, op, c, root,
                                             ReduceOp::kSum, DataType::kF32);
            if (!res.status.ok() || res.wrong != 0) {
              failures.push_back(std::string(mode_name) + " w" + std::to_string(n) + " " +
                                 std::string(OpTypeName(op)) + " root " +
                                 std::to_string(root) + " rank " + std::to_string(r) + ": " +
                                 res.status.ToString() + " #wrong=" + std::to_string(res.wrong));
            }
          });
          ASSERT_TRUE(ok) << "hung\n" << cluster->Banner();
          for (int r = 0; r < n; ++r) {
            std::vector<uint8_t> in(cap), out(cap);
            cluster->fabric().CopyOut(in.data(), bufs[r].in, cap);
            cluster->fabric().CopyOut(out.data(), bufs[r].out, cap);
            const uint64_t in_used = cases[r].in.size(), out_used = cases[r].out.size();
            EXPECT_TRUE(std::all_of(in.begin() + in_used, in.end(),
                                    [](uint8_t b) { return b == kGuard; }))
                << mode_name << " w" << n << " " << OpTypeName(op) << " rank " << r
                << ": bytes past the input written";
            EXPECT_TRUE(std::all_of(out.begin() + out_used, out.end(),
                                    [](uint8_t b) { return b == kGuard; }))
                << mode_name << " w" << n << " " << OpTypeName(op) << " rank " << r
                << ": bytes past the output written";
            const ProcessGroupStats& now = cluster->pg(r).stats();
            const bool sender = op == OpType::kAllToAll || r == root;
            const bool reader = op == OpType::kAllToAll || r != root;
            const uint64_t peers = static_cast<uint64_t>(n - 1);
            const bool pull = mode != PullMode::kPush;
            const std::string what = std::string(mode_name) + " w" + std::to_string(n) + " " +
                                     std::string(OpTypeName(op)) + " root " +
                                     std::to_string(root) + " rank " + std::to_string(r);
            EXPECT_EQ(now.pulls_offered - before[r].pulls_offered, pull && sender ? peers : 0)
                << what;
            const uint64_t reads = !pull || !reader ? 0 : op == OpType::kAllToAll ? peers : 1;
            EXPECT_EQ(now.pulls_read - before[r].pulls_read, reads) << what;
            EXPECT_EQ(now.pulls_via_slots - before[r].pulls_via_slots,
                      mode == PullMode::kViaSlots ? reads : 0)
                << what;
            EXPECT_EQ(now.bytes_pulled - before[r].bytes_pulled, reads * block) << what;
            // Pulled: not one chunk WRITTEN. Pushed: 5 chunks of 64 KiB per message.
            EXPECT_EQ(now.chunks_sent - before[r].chunks_sent, pull || !sender ? 0 : 5 * peers)
                << what;
          }
        }
      }
      for (const auto& f : failures) ADD_FAILURE() << f;
    }
  }
}

// Ranks may differ in direct_outputs and device_pull: rank 0 pulls-capable with direct
// outputs, rank 1 with neither (its outputs committed by copy). Rank 0's broadcast (root 0)
// and alltoall blocks are offered and READ by rank 1 into its working memory; rank 1's
// are pushed as chunks into rank 0's slots. Every output exact, every input untouched.
// The groups are made here (the harness gives every rank one options struct), on the
// cluster's fabric under a group name of their own.
TEST(DevicePull, RanksMayDifferInPullAndDirectOutputs) {
  std::string skip;
  const int devices = Devices(&skip);
  if (devices == 0) GTEST_SKIP() << skip;
  constexpr int n = 2;
  GroupClusterOptions co = DeviceCluster(n, 8150, devices);
  TIDAL_CLUSTER_OR_SKIP(cluster, co);
  std::vector<std::unique_ptr<ProcessGroup>> pg;
  for (int r = 0; r < n; ++r) {
    ProcessGroupOptions o = co.pg;
    o.group_name = "mixed";
    o.slot_bytes = 64 << 10;
    o.direct_outputs = r == 0;
    o.device_pull = r == 0;
    pg.push_back(std::make_unique<ProcessGroup>(r, n, cluster->fabric().engine(r),
                                                cluster->fabric().messenger(r),
                                                cluster->fabric().metadata(), o));
  }
  const uint64_t c = 50'001;  // floats per block
  const uint64_t cap = n * c * sizeof(float);
  std::vector<DeviceBuffers> bufs = AllocateBuffers(*cluster, devices, cap);
  bool ok = cluster->RunRanks([&](int r) -> Task<void> {
    Status st = co_await pg[r]->Start();
    if (st.ok()) st = co_await pg[r]->RegisterBuffer(bufs[r].in, cap);
    if (st.ok()) st = co_await pg[r]->RegisterBuffer(bufs[r].out, cap);
    EXPECT_TRUE(st.ok()) << "rank " << r << ": " << st.ToString();
  });
  ASSERT_TRUE(ok) << "hung\n" << cluster->Banner();
  struct Op {
    OpType type;
    int root;
  };
  for (const Op& k : {Op{OpType::kBroadcast, 0}, Op{OpType::kBroadcast, 1},
                      Op{OpType::kAllToAll, 0}}) {
    std::vector<ProcessGroupStats> before(n);
    for (int r = 0; r < n; ++r) before[r] = pg[r]->stats();
    ok = cluster->RunRanks([&](int r) -> Task<void> {
      HostCase h = Prepare(k.type, r, n, c, k.root, ReduceOp::kSum, DataType::kF32, true);
      cluster->fabric().CopyIn(bufs[r].out, h.out.data(), h.out.size());
      cluster->fabric().CopyIn(bufs[r].in, h.in.data(), h.in.size());
      Tensor to{bufs[r].out, DataType::kF32, h.out.size() / 4, bufs[r].loc};
      Tensor ti{bufs[r].in, DataType::kF32, h.in.size() / 4, bufs[r].loc};
      auto w = Issue(*pg[r], k.type, to, ti, k.root, ReduceOp::kSum, false);
      Status st = co_await w->Wait();
      std::vector<uint8_t> got(h.out.size()), in(h.in.size());
      cluster->fabric().CopyOut(got.data(), bufs[r].out, got.size());
      cluster->fabric().CopyOut(in.data(), bufs[r].in, in.size());
      EXPECT_TRUE(st.ok()) << OpTypeName(k.type) << " rank " << r << ": " << st.ToString();
      EXPECT_EQ(CheckCase(k.type, r, n, {}, c, k.root, ReduceOp::kSum, DataType::kF32, got,
                          h.out),
                0)
          << OpTypeName(k.type) << " root " << k.root << " rank " << r;
      EXPECT_EQ(in, h.in) << OpTypeName(k.type) << " rank " << r << ": input written";
    });
    ASSERT_TRUE(ok) << "hung\n" << cluster->Banner();
    // Rank 0 offers what it sends (broadcast as root, its alltoall block); rank 1 pushes.
    const bool zero_sends = k.type == OpType::kAllToAll || k.root == 0;
    const bool one_sends = k.type == OpType::kAllToAll || k.root == 1;
    const std::string what = std::string(OpTypeName(k.type)) + " root " + std::to_string(k.root);
    EXPECT_EQ(pg[0]->stats().pulls_offered - before[0].pulls_offered, zero_sends ? 1u : 0u)
        << what;
    EXPECT_EQ(pg[1]->stats().pulls_read - before[1].pulls_read, zero_sends ? 1u : 0u) << what;
    EXPECT_EQ(pg[1]->stats().pulls_offered - before[1].pulls_offered, 0u) << what;
    EXPECT_EQ(pg[0]->stats().chunks_sent - before[0].chunks_sent, 0u) << what;
    EXPECT_EQ(pg[1]->stats().chunks_sent - before[1].chunks_sent, one_sends ? 4u : 0u)
        << what;  // 200,004 bytes in 64 KiB chunks
  }
}

// A rank killed while its peers READ from it (or it from them), on three ranks with
// direct outputs and registered tensors: alltoall (the victim is a sender and a reader),
// broadcast with a reader killed (the root waits for its credit), broadcast with the
// root killed (the readers' READs fail), and the split allreduce (Algorithm::kSplit: its
// first step READs a segment of every peer's input; the victim is a sender and a reader,
// with 1 MiB segments). Survivors: alltoall, the allreduce and the reader's case end
// RANK_FAILED with failed_ranks [1] and exact results over the survivors (the retry
// re-READs every byte; the failed rank's alltoall blocks are zero); the root's case ends
// COLLECTIVE_ABORTED with failed_ranks [0]. Nothing hangs, every input is untouched.
// On the simulator the victim crashes at a virtual time inside the READs (the test checks
// from the chunk trace that a survivor's READ started before the crash and ended after
// it); on the cuda fabric its transport crashes and its group halts at the step boundary
// before its data step (the transport cannot be stopped at a chosen instant).
struct PullKill {
  OpType op;
  int root;
  int victim;
  Algorithm alg = Algorithm::kDirect;
  uint64_t count = (1 << 20) / sizeof(float);  // 1 MiB per block
};

class DevicePullKilled : public ::testing::TestWithParam<int> {};

TEST_P(DevicePullKilled, SurvivorsAgreeAndRetryExactly) {
  const PullKill k =
      std::array<PullKill, 4>{PullKill{OpType::kAllToAll, 0, 1}, PullKill{OpType::kBroadcast, 0, 1},
                              PullKill{OpType::kBroadcast, 1, 1},
                              PullKill{OpType::kAllReduce, 0, 1, Algorithm::kSplit,
                                       3 * (uint64_t{1} << 20) / sizeof(float)}}[GetParam()];
  std::string skip;
  const int devices = Devices(&skip);
  if (devices == 0) GTEST_SKIP() << skip;
  constexpr int kRanks = 3;
  const uint64_t c = k.count;
  GroupCluster* gc = nullptr;
  bool fired = false;
  uint64_t crash_ns = 0;
  GroupClusterOptions co = DeviceCluster(kRanks, 8200 + GetParam(), devices);
  co.pg.slot_bytes = 256 << 10;
  co.pg.direct_outputs = true;
  co.pg.algorithm = k.alg;
  co.pg.step_hook = [&](const StepEvent& e) {
    if (e.rank != k.victim || e.op_seq != 0 || e.boundary != 0 || fired) return;
    fired = true;
#if TIDAL_COLL_TEST_CUDA
    auto& fabric = static_cast<backends::cuda::CudaFabric&>(gc->fabric());
    fabric.cuda_transport(k.victim).Crash();
    gc->pg(k.victim).Halt();
#else
    // The offers arrive about 22 us after this boundary and a 1 MiB READ takes about
    // 40 us on the simulator's links: crash 35 us after it.
    sim::World* w = &gc->world();
    crash_ns = w->NowNs() + 35'000;
    const uint32_t victim = static_cast<uint32_t>(k.victim);
    w->ScheduleAt(crash_ns, -1, [w, victim]() {
      if (w->alive(victim)) w->Crash(victim);
    });
#endif
  };
  TIDAL_CLUSTER_OR_SKIP(cluster, co);
  gc = cluster.get();
  const uint64_t cap = kRanks * c * sizeof(float);
  std::vector<DeviceBuffers> bufs = AllocateBuffers(*cluster, devices, cap);
  bool ok = cluster->RunRanks([&](int r) -> Task<void> {
    Status reg = co_await cluster->pg(r).RegisterBuffer(bufs[r].in, cap);
    if (reg.ok()) reg = co_await cluster->pg(r).RegisterBuffer(bufs[r].out, cap);
    EXPECT_TRUE(reg.ok()) << reg.ToString();
  });
  ASSERT_TRUE(ok) << "hung\n" << cluster->Banner();
  trace::Enable(1 << 16);
  std::vector<CaseResult> res(kRanks);
  ok = cluster->RunRanks([&](int r) -> Task<void> {
    HostCase h = Prepare(k.op, r, kRanks, c, k.root, ReduceOp::kSum, DataType::kF32, true);
    auto w = Start(*cluster, r, bufs[r], h, k.op, k.root, ReduceOp::kSum, DataType::kF32);
    if (r == k.victim) co_return;  // it never finishes: it is killed
    res[r] = co_await Finish(*cluster, r, bufs[r], h, w, k.op, c, k.root, ReduceOp::kSum,
                             DataType::kF32);
  });
  std::vector<trace::Entry> ev = trace::Take();
  trace::Enable(0);
  ASSERT_TRUE(ok) << "hung\n" << cluster->Banner();
  ASSERT_TRUE(fired);
  const bool root_killed = k.op == OpType::kBroadcast && k.root == k.victim;
  for (int r = 0; r < kRanks; ++r) {
    if (r == k.victim) continue;
    if (root_killed) {
      // The root failed: aborted everywhere (direct outputs: outputs undefined, so only
      // the input, which a non-root does not have, and the status are checked).
      EXPECT_EQ(res[r].status.code(), ErrorCode::COLLECTIVE_ABORTED)
          << "rank " << r << ": " << res[r].status.ToString() << cluster->Banner();
    } else {
      EXPECT_EQ(res[r].status.code(), ErrorCode::RANK_FAILED)
          << "rank " << r << ": " << res[r].status.ToString() << cluster->Banner();
      EXPECT_EQ(res[r].wrong, 0) << "rank " << r << cluster->Banner();
    }
    EXPECT_EQ(res[r].failed, std::vector<int>{k.victim}) << "rank " << r;
  }
#if !TIDAL_COLL_TEST_CUDA
  // Mid-pull, from the chunk trace (kWriteStart/kWriteDone of these ops are READs of
  // pulled messages, the only transfers they make): the victim's own READ started before
  // the crash, and every survivor that READs from the victim (alltoall; broadcast from a
  // killed root) had one running at the crash (started before, its completion seen after).
  auto started_before = [&](int rank) {
    for (const trace::Entry& s : ev) {
      if (s.rank == rank && s.ev == trace::Ev::kWriteStart && s.ns < crash_ns) return true;
    }
    return false;
  };
  auto spanned = [&](int rank) {
    for (const trace::Entry& s : ev) {
      if (s.rank != rank || s.ev != trace::Ev::kWriteStart || s.ns >= crash_ns) continue;
      for (const trace::Entry& d : ev) {
        if (d.rank == rank && d.seq == s.seq && d.ev == trace::Ev::kWriteDone && d.ns >= s.ns) {
          if (d.ns > crash_ns) return true;
          break;
        }
      }
    }
    return false;
  };
  std::ostringstream dump;
  for (const trace::Entry& e : ev) {
    dump << e.ns << " rank " << e.rank << " ev " << static_cast<int>(e.ev) << " seq " << e.seq
         << "\n";
  }
  if (!root_killed) {
    EXPECT_TRUE(started_before(k.victim)) << "crash at " << crash_ns << " ns\n" << dump.str();
  }
  for (int r = 0; r < kRanks; ++r) {
    if (r == k.victim || (k.op == OpType::kBroadcast && !root_killed)) continue;
    EXPECT_TRUE(spanned(r)) << "rank " << r << ": no READ running at the crash (" << crash_ns
                            << " ns)\n"
                            << dump.str();
  }
#endif
}

std::string PullKillName(const ::testing::TestParamInfo<int>& info) {
  const char* names[] = {"alltoall_peer", "broadcast_reader", "broadcast_root",
                         "split_allreduce_peer"};
  return std::string(names[info.param]) + "_" + kBackend;
}
INSTANTIATE_TEST_SUITE_P(Cases, DevicePullKilled, ::testing::Values(0, 1, 2, 3), PullKillName);

}  // namespace
}  // namespace tidal::coll
