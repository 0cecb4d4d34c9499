// cuda_coll_node: one rank of a GPU process group in its own process, for the killed-rank
// test (cuda_kill_rank_test). Every rank reaches tidal-master over TCP (messenger and
// metadata: MasterLink) and runs a TransferEngine over CudaTransport and a ProcessGroup
// whose slots, working memory and tensor live on its GPU (CudaReducer,
// CudaBufferAllocator), so chunks move GPU to GPU across processes through CUDA IPC.
//
//   cuda_coll_node --master H:P --rank R --size N --victim V --kill-at-boundary K
//                  [--bytes B] [--gpu G]
//
// Three float32 SUM allreduces of B bytes, rank r contributing (r+1) * (1 + i % 5) at
// element i (exact in float32): op 0 over everyone; op 1, in which rank V raises SIGKILL at
// step boundary K of its own attempt (inside the ring: chunks of the others are in flight
// to and from it) — a real process death, no Halt; op 2 after it. A survivor must see op 1
// and op 2 end RANK_FAILED with failed_ranks = [V], each value the exact sum over the
// survivors. Times are CLOCK_MONOTONIC nanoseconds (one clock for every process of the
// host): the victim prints when it kills itself, each survivor when it first knew of the
// death (dead_ranks) and when op 1 completed.
//
// One JSON line per op and a summary. Exit status: 0 when every check held, 1 when one did
// not (the line says which), 2 for bad arguments or a rank that could not start, 77 without
// a CUDA device. The victim ends by SIGKILL, or exits 1 if boundary K never came.
#include <cuda_runtime_api.h>
#include <signal.h>
#include <time.h>

#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tidal/backends/cuda/cuda_transport.h"
#include "tidal/backends/real_env.h"
#include "tidal/backends/tcp/master_link.h"
#include "tidal/collectives/process_group.h"
#include "tidal/collectives/reduce_cuda.h"
#include "tidal/transfer_engine.h"

namespace po = boost::program_options;
using namespace tidal;

namespace {

struct Config {
  std::string master;
  int rank = 0, size = 3, victim = 2, gpu = -1;
  uint64_t kill_at_boundary = 1;
  uint64_t bytes = 256ull << 20;
  uint64_t timeout_ms = 30'000;
};

uint64_t MonoNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

float Contribution(int rank, uint64_t i) {
  return static_cast<float>((rank + 1) * static_cast<int>(1 + i % 5));
}

class Rank {
 public:
  explicit Rank(Config c) : c_(std::move(c)), env_("cuda-coll-" + std::to_string(c_.rank)) {}
  ~Rank() {
    group_.reset();
    engine_.reset();
    link_.reset();
    if (tensor_ != nullptr) cudaFree(tensor_);
  }

  int Main() {
    if (cudaSetDevice(c_.gpu) != cudaSuccess) return Fatal("no cuda:" + std::to_string(c_.gpu));
    count_ = c_.bytes / sizeof(float);
    if (cudaMalloc(&tensor_, count_ * sizeof(float)) != cudaSuccess) {
      return Fatal("cudaMalloc of " + std::to_string(c_.bytes) + " bytes on cuda:" +
                   std::to_string(c_.gpu) + " failed");
    }
    backends::tcp::MasterLinkOptions lo;
    lo.name = "cuda-coll-" + std::to_string(c_.rank);
    lo.master = c_.master;
    lo.rpc_timeout_ns = c_.timeout_ms * 1'000'000;
    Result<std::unique_ptr<backends::tcp::MasterLink>> link =
        backends::tcp::MasterLink::Start(env_, lo);
    if (!link.ok()) return Fatal("tidal-master " + c_.master + ": " + link.status().ToString());
    link_ = std::move(*link);
    Status st = RunBlocking(env_, SetUp(lo.name));
    if (!st.ok()) return Fatal(st.ToString());
    st = RunBlocking(env_, link_->messenger().RefreshDirectory());
    if (!st.ok()) return Fatal("directory: " + st.ToString());
    return RunBlocking(env_, Body());
  }

 private:
  int Fatal(const std::string& why) {
    Print({{"rank", c_.rank}, {"fatal", why}});
    return 2;
  }
  static void Print(const nlohmann::json& j) {
    std::printf("%s\n", j.dump().c_str());
    std::fflush(stdout);
  }

  Task<Status> SetUp(std::string name) {
    Status st = co_await link_->messenger().Publish();
    if (!st.ok()) co_return Status(st.code(), "publish: " + st.ToString());
    TransferEngineOptions eo;
    eo.transfer_timeout_ns = c_.timeout_ms * 1'000'000;
    eo.slice_bytes = 64ull << 20;  // the copy engines want big copies
    engine_ = std::make_unique<TransferEngine>(
        env_, std::make_unique<backends::cuda::CudaTransport>(), link_->metadata(), name, eo);
    st = co_await engine_->Start();
    if (!st.ok()) co_return Status(st.code(), "engine over cuda: " + st.ToString());
    coll::ProcessGroupOptions o;
    o.group_name = "cuda-kill";
    o.slot_bytes = 8ull << 20;
    o.slots_per_channel = 4;
    o.timeout_ns = c_.timeout_ms * 1'000'000;
    o.slot_location = Location::Cuda(c_.gpu);
    o.reducer = &coll::CudaReducer::Default();
    o.allocator = &coll::CudaBufferAllocator::Default();
    if (c_.rank == c_.victim) {
      o.step_hook = [this](const coll::StepEvent& e) {
        if (e.op_seq != 1 || e.boundary != c_.kill_at_boundary) return;
        Print({{"rank", c_.rank},
               {"op", 1},
               {"killed_at_ns", MonoNs()},
               {"step", e.step},
               {"steps", e.steps}});
        ::raise(SIGKILL);  // a real death: nothing of this process runs after this line
      };
    }
    group_ = std::make_unique<coll::ProcessGroup>(c_.rank, c_.size, *engine_,
                                                  link_->mux().Channel(16), link_->metadata(),
                                                  std::move(o));
    st = co_await group_->Start();
    if (!st.ok()) co_return Status(st.code(), "process group: " + st.ToString());
    co_return Status::Ok();
  }

  bool Fill() {
    std::vector<float> v(count_);
    for (uint64_t i = 0; i < count_; ++i) v[i] = Contribution(c_.rank, i);
    return cudaMemcpy(tensor_, v.data(), count_ * sizeof(float), cudaMemcpyDefault) ==
           cudaSuccess;
  }

  // Elements that differ from the sum over `members`.
  uint64_t Wrong(const std::vector<int>& members) {
    std::vector<float> got(count_);
    if (cudaMemcpy(got.data(), tensor_, count_ * sizeof(float), cudaMemcpyDefault) !=
        cudaSuccess) {
      return count_;
    }
    int weight = 0;
    for (int r : members) weight += r + 1;
    uint64_t wrong = 0;
    for (uint64_t i = 0; i < count_; ++i) {
      wrong += got[i] != static_cast<float>(weight * static_cast<int>(1 + i % 5));
    }
    return wrong;
  }

  Task<int> Body() {
    std::vector<int> all, survivors;
    for (int r = 0; r < c_.size; ++r) {
      all.push_back(r);
      if (r != c_.victim) survivors.push_back(r);
    }
    const coll::Tensor t{tensor_, coll::DataType::kF32, count_, Location::Cuda(c_.gpu)};
    for (int op = 0; op < 3; ++op) {
      if (!Fill()) co_return Fatal("cudaMemcpy of the input failed");
      const uint64_t start = MonoNs();
      uint64_t detect = 0;
      std::shared_ptr<coll::Work> w = group_->AllReduce(t, coll::ReduceOp::kSum);
      while (op == 1 && !w->done()) {  // the moment this survivor knows the victim died
        if (detect == 0 && !group_->dead_ranks().empty()) detect = MonoNs();
        co_await SleepFor(env_, 20'000);
      }
      Status st = co_await w->Wait();
      const uint64_t done = MonoNs();
      if (op == 1 && detect == 0) detect = done;
      if (c_.rank == c_.victim && op == 1) {
        Print({{"rank", c_.rank}, {"op", op}, {"check", "boundary never came"}, {"ok", false}});
        co_return 1;
      }
      const bool clean = op == 0;
      const std::vector<int> want_failed = clean ? std::vector<int>{} : std::vector<int>{c_.victim};
      const ErrorCode want = clean ? ErrorCode::OK : ErrorCode::RANK_FAILED;
      const uint64_t wrong = Wrong(clean ? all : survivors);
      const bool ok = st.code() == want && w->failed_ranks() == want_failed && wrong == 0;
      failures_ += ok ? 0 : 1;
      nlohmann::json j = {{"rank", c_.rank},
                          {"op", op},
                          {"gpu", c_.gpu},
                          {"status", std::string(ErrorCodeName(st.code()))},
                          {"message", st.ok() ? std::string() : st.ToString()},
                          {"failed_ranks", w->failed_ranks()},
                          {"wrong", wrong},
                          {"start_ns", start},
                          {"done_ns", done},
                          {"ms", static_cast<double>(done - start) / 1e6},
                          {"ok", ok}};
      if (op == 1) j["detect_ns"] = detect;
      Print(j);
    }
    Print({{"rank", c_.rank}, {"summary", failures_ == 0 ? "PASS" : "FAIL"},
           {"violations", failures_}});
    co_return failures_ == 0 ? 0 : 1;
  }

  Config c_;
  backends::RealEnv env_;
  std::unique_ptr<backends::tcp::MasterLink> link_;
  std::unique_ptr<TransferEngine> engine_;
  std::unique_ptr<coll::ProcessGroup> group_;
  void* tensor_ = nullptr;
  uint64_t count_ = 0;
  uint64_t failures_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  Config c;
  po::options_description desc(
      "cuda_coll_node: one rank of a GPU process group in its own process (see\n"
      "cuda_kill_rank_test)\n\nOptions");
  desc.add_options()("help,h", "show this help")(
      "master", po::value(&c.master)->required(), "tidal-master HOST:PORT")(
      "rank", po::value(&c.rank)->required(), "this rank")(
      "size", po::value(&c.size)->default_value(3), "ranks in the group")(
      "victim", po::value(&c.victim)->default_value(2), "the rank that kills itself in op 1")(
      "kill-at-boundary", po::value(&c.kill_at_boundary)->default_value(1),
      "the victim's step boundary (of op 1) at which it raises SIGKILL")(
      "bytes", po::value(&c.bytes)->default_value(256ull << 20), "bytes per allreduce")(
      "gpu", po::value(&c.gpu)->default_value(-1), "CUDA device (default: rank % devices)")(
      "timeout-ms", po::value(&c.timeout_ms)->default_value(30'000), "per-operation timeout");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help")) {
      std::cout << desc;
      return 0;
    }
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "cuda_coll_node: " << e.what() << " (see --help)\n";
    return 2;
  }
  if (c.size < 2 || c.rank < 0 || c.rank >= c.size || c.victim < 0 || c.victim >= c.size) {
    std::cerr << "cuda_coll_node: --rank " << c.rank << " and --victim " << c.victim
              << " must lie in [0, --size " << c.size << "), and --size must be at least 2\n";
    return 2;
  }
  if (c.bytes < sizeof(float) || c.bytes % sizeof(float) != 0) {
    std::cerr << "cuda_coll_node: --bytes " << c.bytes << " is not a positive multiple of 4\n";
    return 2;
  }
  Result<int> devices = backends::cuda::CudaDeviceCount();
  if (!devices.ok()) {
    std::printf("cuda_coll_node: skipped: %s\n", devices.status().ToString().c_str());
    return 77;
  }
  if (c.gpu < 0) c.gpu = c.rank % *devices;
  if (c.gpu >= *devices) {
    std::cerr << "cuda_coll_node: --gpu " << c.gpu << " but only " << *devices
              << " CUDA devices\n";
    return 2;
  }
  return Rank(std::move(c)).Main();
}
