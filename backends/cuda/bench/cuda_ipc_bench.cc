// tidal-cuda-ipc-bench: WRITE bandwidth of CudaTransport from cuda:0 of this process to
// cuda:1 of another process (CUDA IPC), beside cudaMemcpyPeerAsync from cuda:0 to cuda:1
// within one process, per size, with the ratio. One copy in flight at a time on both
// sides (submit, wait for its completion), so both columns pay their per-copy overhead.
//
//   tidal-cuda-ipc-bench [--min-mib 1] [--max-mib 1024] [--json]
//
// The peer process is this binary started again with --serve: it registers a cudaMalloc
// buffer of cuda:1 with its own CudaTransport and prints its address and key. On a machine
// with one GPU both ends use cuda:0. Exit status 77 (and the reason) without a CUDA device.
#include <cuda_runtime_api.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tidal/backends/cuda/cuda_transport.h"
#include "tidal/backends/real_env.h"

namespace po = boost::program_options;
using namespace tidal;
using backends::cuda::CudaTransport;

namespace {

using Clock = std::chrono::steady_clock;

int Fail(const std::string& why) {
  std::fprintf(stderr, "tidal-cuda-ipc-bench: %s\n", why.c_str());
  return 1;
}

// The peer: a cuda:`device` buffer registered with a CudaTransport; prints
// "<address> <addr> <rkey>" and serves until its stdin closes.
int Serve(int device, uint64_t bytes) {
  backends::RealEnv env("ipc-bench-peer");
  CudaTransport t;
  TransportInstall install;
  install.env = &env;
  install.segment_name = "peer";
  install.on_ready = [] {};
  Status s = t.Install(install);
  if (!s.ok()) return Fail("peer: " + s.ToString());
  void* p = nullptr;
  if (cudaSetDevice(device) != cudaSuccess || cudaMalloc(&p, bytes) != cudaSuccess) {
    return Fail("peer: cudaMalloc of " + std::to_string(bytes) +
                " bytes on cuda:" + std::to_string(device) + " failed");
  }
  Result<uint64_t> key =
      t.RegisterMemory(reinterpret_cast<uint64_t>(p), bytes, Location::Cuda(device));
  if (!key.ok()) return Fail("peer: " + key.status().ToString());
  std::printf("%s %llu %llu\n", t.LocalAddress().c_str(),
              static_cast<unsigned long long>(reinterpret_cast<uint64_t>(p)),
              static_cast<unsigned long long>(*key));
  std::fflush(stdout);
  char c;
  while (read(0, &c, 1) > 0) {
  }
  cudaFree(p);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t min_mib = 1, max_mib = 1024;
  int serve_device = -1;
  bool json = false;
  po::options_description desc(
      "tidal-cuda-ipc-bench: CudaTransport cuda:0 -> cuda:1 of another process vs\n"
      "cudaMemcpyPeerAsync in one process\n\nOptions");
  desc.add_options()("help,h", "show this help")("min-mib", po::value(&min_mib)->default_value(1),
                                                 "smallest copy (MiB), then x4")(
      "max-mib", po::value(&max_mib)->default_value(1024), "largest copy (MiB)")(
      "json", po::bool_switch(&json), "print one JSON object instead of the table")(
      "serve", po::value(&serve_device), "(internal) be the peer process on this device");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help")) {
      std::cout << desc;
      return 0;
    }
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "tidal-cuda-ipc-bench: " << e.what() << " (see --help)\n";
    return 2;
  }
  if (min_mib == 0 || max_mib < min_mib) {
    std::cerr << "tidal-cuda-ipc-bench: need 0 < --min-mib <= --max-mib\n";
    return 2;
  }
  const uint64_t max_bytes = max_mib << 20;
  Result<int> devices = backends::cuda::CudaDeviceCount();
  if (!devices.ok()) {
    std::printf("tidal-cuda-ipc-bench: skipped: %s\n", devices.status().ToString().c_str());
    return 77;
  }
  if (serve_device >= 0) return Serve(serve_device, max_bytes);
  const int peer_device = *devices > 1 ? 1 : 0;

  // The peer process, its stdout read here, its stdin held open until the end.
  int to_peer[2], from_peer[2];
  if (pipe(to_peer) != 0 || pipe(from_peer) != 0) return Fail("pipe failed");
  const std::string dev_arg = std::to_string(peer_device), max_arg = std::to_string(max_mib);
  const pid_t pid = fork();
  if (pid < 0) return Fail("fork failed");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(to_peer[0], 0);
    dup2(from_peer[1], 1);
    close(to_peer[1]);
    close(from_peer[0]);
    execl("/proc/self/exe", "tidal-cuda-ipc-bench", "--serve", dev_arg.c_str(), "--max-mib",
          max_arg.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(to_peer[0]);
  close(from_peer[1]);
  FILE* in = fdopen(from_peer[0], "r");
  char address[256];
  unsigned long long remote = 0, rkey = 0;
  if (in == nullptr || std::fscanf(in, "%255s %llu %llu", address, &remote, &rkey) != 3) {
    return Fail("the peer process did not start (see its message above)");
  }

  backends::RealEnv env("ipc-bench");
  CudaTransport t;
  TransportInstall install;
  install.env = &env;
  install.segment_name = "bench";
  install.on_ready = [] {};
  Status s = t.Install(install);
  if (!s.ok()) return Fail(s.ToString());
  void *src = nullptr, *dst = nullptr;
  if (cudaSetDevice(0) != cudaSuccess || cudaMalloc(&src, max_bytes) != cudaSuccess ||
      cudaMemset(src, 0x5A, max_bytes) != cudaSuccess) {
    return Fail("cudaMalloc on cuda:0 failed");
  }
  if (cudaSetDevice(peer_device) != cudaSuccess || cudaMalloc(&dst, max_bytes) != cudaSuccess) {
    return Fail("cudaMalloc on cuda:" + std::to_string(peer_device) + " failed");
  }
  Result<uint64_t> key =
      t.RegisterMemory(reinterpret_cast<uint64_t>(src), max_bytes, Location::Cuda(0));
  if (!key.ok()) return Fail(key.status().ToString());
  SegmentDescriptor peer;
  peer.name = "peer";
  peer.transport = "cuda";
  peer.address = address;
  Result<PeerId> pid_peer = t.Connect(peer);
  if (!pid_peer.ok()) return Fail(pid_peer.status().ToString());

  uint64_t next_id = 1;
  // One WRITE of `bytes` across processes, submitted and waited for.
  auto write_once = [&](uint64_t bytes) -> Status {
    TransportTask task;
    task.task_id = next_id++;
    task.kind = TransportTask::Kind::kWrite;
    task.peer = *pid_peer;
    task.local_addr = reinterpret_cast<uint64_t>(src);
    task.remote_addr = remote;
    task.length = bytes;
    task.rkey = rkey;
    Status accepted[1];
    t.Submit({&task, 1}, accepted);
    if (!accepted[0].ok()) return accepted[0];
    TransportCompletion c[1];
    while (t.PollCompletions(c) == 0) {
    }
    if (c[0].code != ErrorCode::OK) return Status(c[0].code, "the WRITE failed");
    return Status();
  };
  cudaSetDevice(0);
  cudaStream_t stream = nullptr;
  cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
  int can = 0;
  cudaDeviceCanAccessPeer(&can, 0, peer_device);
  if (can && peer_device != 0) cudaDeviceEnablePeerAccess(peer_device, 0);
  auto peer_once = [&](uint64_t bytes) -> Status {
    cudaError_t e = cudaMemcpyPeerAsync(dst, peer_device, src, 0, bytes, stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(stream);
    return e == cudaSuccess ? Status() : Status(ErrorCode::TRANSFER_FAIL, cudaGetErrorString(e));
  };
  auto measure = [&](auto&& once, uint64_t bytes, int iters, double* gbps) -> Status {
    for (int i = 0; i < 2; ++i) {
      if (Status w = once(bytes); !w.ok()) return w;
    }
    const auto t0 = Clock::now();
    for (int i = 0; i < iters; ++i) {
      if (Status w = once(bytes); !w.ok()) return w;
    }
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    *gbps = static_cast<double>(bytes) * iters / secs / 1e9;
    return Status();
  };

  nlohmann::json rows = nlohmann::json::array();
  if (!json) {
    std::printf(
        "CudaTransport cuda:0 -> cuda:%d of another process vs cudaMemcpyPeerAsync "
        "(one process), one copy at a time\n",
        peer_device);
    std::printf("%10s %6s %16s %16s %7s\n", "bytes", "iters", "xproc GB/s", "peer GB/s", "ratio");
  }
  int rc = 0;
  for (uint64_t mib = min_mib; mib <= max_mib; mib *= 4) {
    const uint64_t bytes = mib << 20;
    const int iters = static_cast<int>(std::clamp<uint64_t>((16ull << 30) / bytes, 5, 200));
    double xproc = 0, reference = 0;
    Status a = measure(write_once, bytes, iters, &xproc);
    Status b = measure(peer_once, bytes, iters, &reference);
    if (!a.ok() || !b.ok()) {
      Fail(std::to_string(bytes) + " bytes: " + (a.ok() ? b : a).ToString());
      rc = 1;
      break;
    }
    const double ratio = xproc / reference;
    rows.push_back({{"bytes", bytes},
                    {"iters", iters},
                    {"xproc_gbps", xproc},
                    {"memcpy_peer_gbps", reference},
                    {"ratio", ratio}});
    if (!json) {
      std::printf("%10llu %6d %16.1f %16.1f %7.3f\n", static_cast<unsigned long long>(bytes), iters,
                  xproc, reference, ratio);
    }
  }
  if (json) {
    std::printf(
        "%s\n",
        nlohmann::json{
            {"bench", "cuda-ipc"}, {"src_device", 0}, {"dst_device", peer_device}, {"rows", rows}}
            .dump()
            .c_str());
  } else {
    std::printf("%s\n", nlohmann::json{{"bench", "cuda-ipc"}, {"rows", rows}}.dump().c_str());
  }
  close(to_peer[1]);  // the peer's stdin ends: it exits
  waitpid(pid, nullptr, 0);
  cudaStreamDestroy(stream);
  return rc;
}
