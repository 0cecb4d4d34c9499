// tidal-cuda-bench: GPU measurements on the CUDA backend, each beside its baseline in the
// same run.
//
//   tidal-cuda-bench transfer   GPU0 -> GPU1 WRITE through the TransferEngine on CudaFabric
//                               vs cudaMemcpyPeerAsync on the same buffers, 1 MiB .. 1 GiB,
//                               with the ratio.
//   tidal-cuda-bench nccl       NCCL allreduce / allgather / reduce_scatter / broadcast /
//                               alltoall over every visible GPU (one process), algbw and
//                               busbw as nccl-tests defines them (float, out of place).
//
// Each prints a table and, with --json FILE, writes the same figures as JSON. Nothing is
// asserted: this is a measurement, not a test.
#include <cuda_runtime_api.h>

#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tidal/backends/cuda/cuda_fabric.h"

#if TIDAL_BENCH_HAVE_NCCL
#include <nccl.h>
#endif

namespace po = boost::program_options;
using tidal::backends::cuda::CudaFabric;
using tidal::backends::cuda::CudaFabricOptions;

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

#define CUDA_OK(x)                                                                   \
  do {                                                                               \
    cudaError_t e_ = (x);                                                            \
    if (e_ != cudaSuccess) {                                                         \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(2);                                                                  \
    }                                                                                \
  } while (0)

std::vector<uint64_t> Sizes(uint64_t min, uint64_t max, uint64_t step) {
  std::vector<uint64_t> out;
  for (uint64_t s = min; s <= max; s *= step) out.push_back(s);
  return out;
}

int Iters(uint64_t bytes, int iters) {
  // Enough to run ~0.1 s at 300 GB/s, at least 5, at most `iters`.
  uint64_t want = (30ULL << 30) / std::max<uint64_t>(bytes, 1);
  return static_cast<int>(std::clamp<uint64_t>(want, 5, static_cast<uint64_t>(iters)));
}

std::string Human(uint64_t b) {
  char buf[32];
  if (b >= (1ULL << 30)) std::snprintf(buf, sizeof buf, "%llu GiB", (unsigned long long)(b >> 30));
  else if (b >= (1ULL << 20)) std::snprintf(buf, sizeof buf, "%llu MiB", (unsigned long long)(b >> 20));
  else std::snprintf(buf, sizeof buf, "%llu KiB", (unsigned long long)(b >> 10));
  return buf;
}

int Transfer(const po::variables_map& vm) {
  const uint64_t min = vm["min"].as<uint64_t>(), max = vm["max"].as<uint64_t>();
  const int iters = vm["iters"].as<int>();
  CudaFabricOptions o;
  o.nodes = 2;
  o.contract_checker = false;
  o.engine.slice_bytes = vm["slice"].as<uint64_t>();
  o.engine.transfer_timeout_ns = 60'000'000'000ULL;
  auto made = CudaFabric::Make(o);
  if (!made.ok()) {
    std::cerr << "cuda fabric: " << made.status().ToString() << "\n";
    return 1;
  }
  CudaFabric& f = **made;
  if (f.device_count() < 2) {
    std::cerr << "transfer needs 2 GPUs; this machine has " << f.device_count() << "\n";
    return 1;
  }
  void* src = f.Allocate(0, max, tidal::Location::Cuda(0));
  void* dst = f.Allocate(1, max, tidal::Location::Cuda(1));
  {
    std::vector<uint8_t> pattern(max);
    for (uint64_t i = 0; i < max; ++i) pattern[i] = static_cast<uint8_t>(i * 131 + (i >> 12));
    f.CopyIn(src, pattern.data(), max);
  }
  auto k0 = f.Run(f.engine(0).RegisterMemory(src, max, tidal::Location::Cuda(0)));
  auto k1 = f.Run(f.engine(1).RegisterMemory(dst, max, tidal::Location::Cuda(1)));
  auto seg = f.Run(f.engine(0).OpenSegment(CudaFabric::NodeName(1)));
  if (!k0.ok() || !k1.ok() || !seg.ok()) {
    std::cerr << "setup failed\n";
    return 1;
  }
  cudaStream_t stream;
  CUDA_OK(cudaSetDevice(0));
  CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  nlohmann::json rows = nlohmann::json::array();
  std::printf("# GPU0 -> GPU1 WRITE, engine slice %s, one request at a time (waited for)\n",
              Human(o.engine.slice_bytes).c_str());
  std::printf("%10s %6s %14s %18s %8s\n", "size", "iters", "tidal GB/s", "memcpyPeer GB/s",
              "ratio");
  bool all_ok = true;
  for (uint64_t size : Sizes(min, max, vm["step"].as<uint64_t>())) {
    const int n = Iters(size, iters);
    tidal::TransferRequest r{tidal::TransferOp::kWrite, reinterpret_cast<uint64_t>(src), size,
                             *seg, reinterpret_cast<uint64_t>(dst)};
    auto once = [&] {
      auto st = f.Run(f.engine(0).TransferSync(std::span(&r, 1)));
      if (st.empty() || st[0].state != tidal::TransferState::COMPLETED) all_ok = false;
    };
    auto peer = [&] {
      CUDA_OK(cudaMemcpyPeerAsync(dst, 1, src, 0, size, stream));
      CUDA_OK(cudaStreamSynchronize(stream));
    };
    for (int w = 0; w < 2; ++w) {
      once();
      peer();
    }
    // Interleave the two in rounds so both see the same machine state.
    double t_tidal = 0, t_peer = 0;
    for (int round = 0; round < 2; ++round) {
      double t0 = Now();
      for (int i = 0; i < n; ++i) once();
      double t1 = Now();
      for (int i = 0; i < n; ++i) peer();
      double t2 = Now();
      t_tidal += t1 - t0;
      t_peer += t2 - t1;
    }
    const double bytes = static_cast<double>(size) * n * 2;
    const double g_tidal = bytes / t_tidal / 1e9, g_peer = bytes / t_peer / 1e9;
    std::printf("%10s %6d %14.1f %18.1f %8.3f\n", Human(size).c_str(), n, g_tidal, g_peer,
                g_tidal / g_peer);
    std::fflush(stdout);
    rows.push_back({{"bytes", size}, {"iters", 2 * n}, {"tidal_GBps", g_tidal},
                    {"memcpy_peer_GBps", g_peer}, {"ratio", g_tidal / g_peer}});
  }
  // The last engine write moved the pattern: check it byte for byte.
  std::vector<uint8_t> a(max), b(max);
  f.CopyOut(a.data(), src, max);
  f.CopyOut(b.data(), dst, max);
  const bool same = std::memcmp(a.data(), b.data(), max) == 0;
  std::printf("# every transfer COMPLETED: %s; destination equals source: %s\n",
              all_ok ? "yes" : "NO", same ? "yes" : "NO");
  cudaStreamDestroy(stream);
  if (vm.count("json")) {
    nlohmann::json j = {{"bench", "transfer"}, {"slice_bytes", o.engine.slice_bytes},
                        {"all_completed", all_ok}, {"verified", same}, {"rows", rows}};
    std::ofstream(vm["json"].as<std::string>()) << j.dump(2) << "\n";
  }
  return all_ok && same ? 0 : 1;
}

#if TIDAL_BENCH_HAVE_NCCL
#define NCCL_OK(x)                                                                   \
  do {                                                                               \
    ncclResult_t r_ = (x);                                                           \
    if (r_ != ncclSuccess) {                                                         \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, ncclGetErrorString(r_)); \
      std::exit(2);                                                                  \
    }                                                                                \
  } while (0)

int Nccl(const po::variables_map& vm) {
  int n = 0;
  CUDA_OK(cudaGetDeviceCount(&n));
  const uint64_t min = vm["min"].as<uint64_t>(), max = vm["max"].as<uint64_t>();
  const int iters = vm["iters"].as<int>();
  std::vector<ncclComm_t> comms(n);
  std::vector<int> devs(n);
  for (int i = 0; i < n; ++i) devs[i] = i;
  NCCL_OK(ncclCommInitAll(comms.data(), n, devs.data()));
  int version = 0;
  ncclGetVersion(&version);
  std::vector<cudaStream_t> streams(n);
  std::vector<float*> sendbuf(n), recvbuf(n);
  for (int i = 0; i < n; ++i) {
    CUDA_OK(cudaSetDevice(i));
    CUDA_OK(cudaStreamCreateWithFlags(&streams[i], cudaStreamNonBlocking));
    CUDA_OK(cudaMalloc(&sendbuf[i], max));
    CUDA_OK(cudaMalloc(&recvbuf[i], max));
    CUDA_OK(cudaMemset(sendbuf[i], 0, max));
  }
  struct Coll {
    const char* name;
    double bus;  // busbw / algbw
  };
  const double dn = n;
  const Coll colls[] = {{"allreduce", 2 * (dn - 1) / dn}, {"allgather", (dn - 1) / dn},
                        {"reduce_scatter", (dn - 1) / dn}, {"broadcast", 1.0},
                        {"alltoall", (dn - 1) / dn}};
  nlohmann::json out = nlohmann::json::array();
  for (const Coll& c : colls) {
    std::printf("# nccl %s, %d GPUs, float, out of place (NCCL %d)\n", c.name, n, version);
    std::printf("%10s %6s %12s %12s %12s\n", "size", "iters", "time(us)", "algbw GB/s",
                "busbw GB/s");
    nlohmann::json rows = nlohmann::json::array();
    for (uint64_t size : Sizes(min, max, vm["step"].as<uint64_t>())) {
      // `size` is the per-rank buffer (nccl-tests' size column): count = size / 4 floats.
      const size_t count = size / sizeof(float);
      auto launch = [&] {
        NCCL_OK(ncclGroupStart());
        for (int i = 0; i < n; ++i) {
          const std::string name = c.name;
          if (name == "allreduce") {
            NCCL_OK(ncclAllReduce(sendbuf[i], recvbuf[i], count, ncclFloat, ncclSum, comms[i], streams[i]));
          } else if (name == "allgather") {
            NCCL_OK(ncclAllGather(sendbuf[i], recvbuf[i], count / n, ncclFloat, comms[i], streams[i]));
          } else if (name == "reduce_scatter") {
            NCCL_OK(ncclReduceScatter(sendbuf[i], recvbuf[i], count / n, ncclFloat, ncclSum, comms[i], streams[i]));
          } else if (name == "broadcast") {
            NCCL_OK(ncclBroadcast(sendbuf[i], recvbuf[i], count, ncclFloat, 0, comms[i], streams[i]));
          } else {
            const size_t per = count / n;
            for (int p = 0; p < n; ++p) {
              NCCL_OK(ncclSend(sendbuf[i] + p * per, per, ncclFloat, p, comms[i], streams[i]));
              NCCL_OK(ncclRecv(recvbuf[i] + p * per, per, ncclFloat, p, comms[i], streams[i]));
            }
          }
        }
        NCCL_OK(ncclGroupEnd());
      };
      auto sync = [&] {
        for (int i = 0; i < n; ++i) {
          CUDA_OK(cudaSetDevice(i));
          CUDA_OK(cudaStreamSynchronize(streams[i]));
        }
      };
      const int k = Iters(size, iters);
      for (int w = 0; w < 3; ++w) launch();
      sync();
      double t0 = Now();
      for (int i = 0; i < k; ++i) launch();
      sync();
      const double us = (Now() - t0) / k * 1e6;
      const double algbw = static_cast<double>(size) / (us * 1e-6) / 1e9;
      std::printf("%10s %6d %12.1f %12.1f %12.1f\n", Human(size).c_str(), k, us, algbw,
                  algbw * c.bus);
      std::fflush(stdout);
      rows.push_back({{"bytes", size}, {"iters", k}, {"time_us", us}, {"algbw_GBps", algbw},
                      {"busbw_GBps", algbw * c.bus}});
    }
    out.push_back({{"collective", c.name}, {"gpus", n}, {"nccl_version", version}, {"rows", rows}});
  }
  for (int i = 0; i < n; ++i) {
    cudaSetDevice(i);
    cudaFree(sendbuf[i]);
    cudaFree(recvbuf[i]);
    cudaStreamDestroy(streams[i]);
    ncclCommDestroy(comms[i]);
  }
  if (vm.count("json")) {
    std::ofstream(vm["json"].as<std::string>()) << nlohmann::json({{"bench", "nccl"}, {"results", out}}).dump(2) << "\n";
  }
  return 0;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  po::options_description desc(
      "tidal-cuda-bench {transfer|nccl} [options]\n"
      "  transfer: GPU0->GPU1 WRITE through the engine vs cudaMemcpyPeerAsync\n"
      "  nccl:     NCCL collectives' algbw/busbw over every visible GPU\nOptions");
  desc.add_options()("help,h", "this help")
      ("min", po::value<uint64_t>()->default_value(1ULL << 20), "smallest size in bytes")
      ("max", po::value<uint64_t>()->default_value(1ULL << 30), "largest size in bytes")
      ("step", po::value<uint64_t>()->default_value(4), "size multiplier between rows")
      ("iters", po::value<int>()->default_value(50), "most timed iterations per size")
      ("slice", po::value<uint64_t>()->default_value(64ULL << 20), "engine slice bytes (transfer)")
      ("json", po::value<std::string>(), "also write the figures as JSON to this file")
      ("command", po::value<std::string>(), "transfer or nccl");
  po::positional_options_description pos;
  pos.add("command", 1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(desc).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n" << desc << "\n";
    return 2;
  }
  if (vm.count("help") || !vm.count("command")) {
    std::cout << desc << "\n";
    return vm.count("help") ? 0 : 2;
  }
  const std::string cmd = vm["command"].as<std::string>();
  if (cmd == "transfer") return Transfer(vm);
#if TIDAL_BENCH_HAVE_NCCL
  if (cmd == "nccl") return Nccl(vm);
#else
  if (cmd == "nccl") {
    std::cerr << "built without NCCL (nccl.h / libnccl not found at configure time)\n";
    return 1;
  }
#endif
  std::cerr << "unknown command '" << cmd << "'\n" << desc << "\n";
  return 2;
}
