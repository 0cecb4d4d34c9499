// cuda_store_node: one store node of its own process over CudaTransport, for the
// cross-process GPU store test (cuda_store_xproc.sh). Every node reaches tidal-master over
// TCP (MasterLink: messenger, segment metadata, store master) and moves object bytes with
// a TransferEngine over CudaTransport, so bytes between two nodes cross processes through
// CUDA IPC.
//
//   cuda_store_node --master H:P --role holder --gpu 1
//       mounts a segment of cudaMalloc memory of cuda:1, says "ready" in the master's
//       metadata and serves until it is killed.
//   cuda_store_node --master H:P --role put --gpu 0 --keys 4 --bytes 3000000
//       puts keys "zc-<i>" with PutFrom from a registered cuda:0 buffer (zero-copy) and
//       "cp-<i>" with Put (copying), one replica each (on the holder), then says "put".
//   cuda_store_node --master H:P --role get --gpu 1 [--expect-lost]
//       reads every key back into a registered cuda:1 buffer with GetInto (zero-copy) and
//       with Get (copying) and compares every byte. With --expect-lost (the holder was
//       killed) every read must fail with an error naming its key and leave the buffer
//       as it was (no torn data).
//
// One JSON line per check and a summary. Exit status: 0 when every check held, 1 when one
// did not, 2 for bad arguments or a node that could not start, 77 without a CUDA device.
#include <cuda_runtime_api.h>

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
#include "tidal/store/client.h"
#include "tidal/transfer_engine.h"

namespace po = boost::program_options;
using namespace tidal;

namespace {

constexpr std::string_view kPrefix = "cuda-store-xproc/";

struct Config {
  std::string master, role;
  int gpu = 0;
  uint32_t keys = 4;
  uint64_t bytes = 3'000'000;
  uint64_t segment_bytes = 256ull << 20;
  bool expect_lost = false;
  uint64_t timeout_ms = 10'000;
};

std::vector<uint8_t> ValueOf(const std::string& key, uint64_t bytes) {
  std::vector<uint8_t> v(bytes);
  uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (char c : key) x = (x ^ static_cast<uint8_t>(c)) * 1099511628211ULL;
  for (uint64_t i = 0; i < bytes; ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    v[i] = static_cast<uint8_t>(x >> 56);
  }
  return v;
}

class Node {
 public:
  explicit Node(Config c) : c_(std::move(c)), env_("cuda-store-" + c_.role) {}
  ~Node() {
    client_.reset();
    engine_.reset();
    link_.reset();
    for (void* p : gpu_) cudaFree(p);
  }

  int Main() {
    if (cudaSetDevice(c_.gpu) != cudaSuccess) return Fatal("no cuda:" + std::to_string(c_.gpu));
    backends::tcp::MasterLinkOptions lo;
    lo.name = c_.role + "-" + std::to_string(::getpid());
    lo.master = c_.master;
    lo.rpc_timeout_ns = c_.timeout_ms * 1'000'000;
    Result<std::unique_ptr<backends::tcp::MasterLink>> link =
        backends::tcp::MasterLink::Start(env_, lo);
    if (!link.ok()) return Fatal("tidal-master " + c_.master + ": " + link.status().ToString());
    link_ = std::move(*link);
    Status st = RunBlocking(env_, SetUp(lo.name));
    if (!st.ok()) return Fatal(st.ToString());
    return RunBlocking(env_, Body());
  }

 private:
  int Fatal(const std::string& why) {
    std::printf("%s\n", nlohmann::json{{"role", c_.role}, {"fatal", why}}.dump().c_str());
    std::fflush(stdout);
    return 2;
  }
  void Check(bool ok, const std::string& key, const std::string& what) {
    failures_ += ok ? 0 : 1;
    std::printf("%s\n", nlohmann::json{{"role", c_.role}, {"key", key}, {"check", what}, {"ok", ok}}
                            .dump()
                            .c_str());
    std::fflush(stdout);
  }
  void* Gpu(uint64_t bytes, uint8_t fill) {
    void* p = nullptr;
    if (cudaMalloc(&p, bytes) != cudaSuccess) return nullptr;
    cudaMemset(p, fill, bytes);
    cudaDeviceSynchronize();
    gpu_.push_back(p);
    return p;
  }
  std::vector<uint8_t> Host(const void* gpu, uint64_t bytes) {
    std::vector<uint8_t> v(bytes);
    if (cudaMemcpy(v.data(), gpu, bytes, cudaMemcpyDefault) != cudaSuccess) v.clear();
    return v;
  }

  Task<Status> SetUp(std::string name) {
    Status st = co_await link_->messenger().Publish();
    if (!st.ok()) co_return Status(st.code(), "publish: " + st.ToString());
    TransferEngineOptions eo;
    eo.transfer_timeout_ns = c_.timeout_ms * 1'000'000;
    eo.slice_bytes = 64ull << 20;  // one copy per object: the copy engines want big ones
    engine_ = std::make_unique<TransferEngine>(
        env_, std::make_unique<backends::cuda::CudaTransport>(), link_->metadata(), name, eo);
    st = co_await engine_->Start();
    if (!st.ok()) co_return Status(st.code(), "engine over cuda: " + st.ToString());
    store::StoreClientOptions so;
    so.master = std::string(backends::tcp::kMasterEndpoint);
    so.op_timeout_ns = c_.timeout_ms * 1'000'000;
    client_ = std::make_unique<store::StoreClient>(env_, *engine_, link_->store_port(), so);
    st = co_await client_->Start();
    if (!st.ok()) co_return Status(st.code(), "store client: " + st.ToString());
    co_return Status::Ok();
  }

  Task<bool> WaitFor(std::string what) {
    const uint64_t give_up = env_.NowNs() + 60'000'000'000ULL;
    while (env_.NowNs() < give_up) {
      Result<std::string> v = co_await link_->metadata().Get(std::string(kPrefix) + what);
      if (v.ok()) co_return true;
      co_await SleepFor(env_, 50'000'000);
    }
    co_return false;
  }
  Task<Status> Say(std::string what) {
    co_return co_await link_->metadata().Put(std::string(kPrefix) + what, "1");
  }

  Task<int> Body() {
    if (c_.role == "holder") {
      void* seg = Gpu(c_.segment_bytes, 0);
      if (seg == nullptr) co_return Fatal("cudaMalloc of the segment failed");
      Status st = co_await client_->MountSegment(seg, c_.segment_bytes, Location::Cuda(c_.gpu));
      if (!st.ok()) co_return Fatal("mount: " + st.ToString());
      st = co_await Say("ready");
      if (!st.ok()) co_return Fatal("say ready: " + st.ToString());
      std::printf("%s\n",
                  nlohmann::json{{"role", "holder"}, {"mounted", c_.segment_bytes}, {"gpu", c_.gpu}}
                      .dump()
                      .c_str());
      std::fflush(stdout);
      for (;;) co_await SleepFor(env_, 1'000'000'000);  // serves until killed
    }
    if (c_.role == "put") {
      const bool ready = co_await WaitFor("ready");
      if (!ready) co_return Fatal("the holder never said ready");
      void* buf = Gpu(c_.bytes, 0);
      if (buf == nullptr) co_return Fatal("cudaMalloc failed");
      Status st = co_await client_->RegisterBuffer(buf, c_.bytes, Location::Cuda(c_.gpu));
      if (!st.ok()) co_return Fatal("register: " + st.ToString());
      store::ReplicateConfig rc;
      rc.replica_num = 1;
      for (uint32_t i = 0; i < c_.keys; ++i) {
        const std::string zc = "zc-" + std::to_string(i), cp = "cp-" + std::to_string(i);
        const std::vector<uint8_t> v = ValueOf(zc, c_.bytes);
        cudaMemcpy(buf, v.data(), v.size(), cudaMemcpyDefault);
        st = co_await client_->PutFrom(zc, buf, c_.bytes, rc);
        Check(st.ok(), zc, "PutFrom from cuda:" + std::to_string(c_.gpu) + ": " + st.ToString());
        const std::vector<uint8_t> w = ValueOf(cp, c_.bytes);
        st = co_await client_->Put(cp, std::string(w.begin(), w.end()), rc);
        Check(st.ok(), cp, "Put (copying): " + st.ToString());
      }
      st = co_await Say("put");
      if (!st.ok()) co_return Fatal("say put: " + st.ToString());
    } else if (c_.role == "get") {
      const bool put = co_await WaitFor("put");
      if (!put) co_return Fatal("the putter never said put");
      const uint64_t cap = c_.bytes + 4096;
      void* buf = Gpu(cap, 0xEE);
      if (buf == nullptr) co_return Fatal("cudaMalloc failed");
      Status st = co_await client_->RegisterBuffer(buf, cap, Location::Cuda(c_.gpu));
      if (!st.ok()) co_return Fatal("register: " + st.ToString());
      const std::vector<uint8_t> untouched(cap, 0xEE);
      std::vector<std::string> keys;
      for (uint32_t i = 0; i < c_.keys; ++i) {
        keys.push_back("zc-" + std::to_string(i));
        keys.push_back("cp-" + std::to_string(i));
      }
      {
        for (const std::string& key : keys) {
          const std::vector<uint8_t> want = ValueOf(key, c_.bytes);
          cudaMemset(buf, 0xEE, cap);
          cudaDeviceSynchronize();
          Result<uint64_t> got = co_await client_->GetInto(key, buf, cap);
          const std::vector<uint8_t> now = Host(buf, cap);
          Result<std::string> copy = co_await client_->Get(key);
          if (c_.expect_lost) {
            const bool named = !got.ok() && got.status().message().find(key) != std::string::npos;
            Check(named, key, "GetInto after the holder died: " + got.status().ToString());
            Check(now == untouched, key,
                  "the cuda:" + std::to_string(c_.gpu) +
                      " buffer is untouched after the failed GetInto");
            Check(!copy.ok() && copy.status().message().find(key) != std::string::npos, key,
                  "Get after the holder died: " + copy.status().ToString());
            continue;
          }
          const bool exact = got.ok() && *got == c_.bytes &&
                             std::equal(want.begin(), want.end(), now.begin()) &&
                             std::equal(now.begin() + c_.bytes, now.end(), untouched.begin());
          Check(exact, key,
                "GetInto cuda:" + std::to_string(c_.gpu) + " byte for byte (" +
                    (got.ok() ? std::to_string(*got) + " bytes" : got.status().ToString()) + ")");
          Check(copy.ok() && copy->size() == want.size() &&
                    std::equal(want.begin(), want.end(),
                               reinterpret_cast<const uint8_t*>(copy->data())),
                key, "Get (copying) byte for byte: " + copy.status().ToString());
        }
      }
    }
    (void)co_await client_->Stop();
    std::printf("%s\n", nlohmann::json{{"role", c_.role},
                                       {"summary", failures_ == 0 ? "PASS" : "FAIL"},
                                       {"violations", failures_}}
                            .dump()
                            .c_str());
    std::fflush(stdout);
    co_return failures_ == 0 ? 0 : 1;
  }

  Config c_;
  backends::RealEnv env_;
  std::unique_ptr<backends::tcp::MasterLink> link_;
  std::unique_ptr<TransferEngine> engine_;
  std::unique_ptr<store::StoreClient> client_;
  std::vector<void*> gpu_;
  uint64_t failures_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  Config c;
  po::options_description desc(
      "cuda_store_node: a store node over CudaTransport in its own process (see\n"
      "cuda_store_xproc.sh)\n\nOptions");
  desc.add_options()("help,h", "show this help")("master", po::value(&c.master)->required(),
                                                 "tidal-master HOST:PORT")(
      "role", po::value(&c.role)->required(), "holder | put | get")(
      "gpu", po::value(&c.gpu)->default_value(0), "the CUDA device of this node's buffers")(
      "keys", po::value(&c.keys)->default_value(4), "objects of each kind (zc-*, cp-*)")(
      "bytes", po::value(&c.bytes)->default_value(3'000'000), "bytes per object")(
      "segment-mib", po::value<uint64_t>()->default_value(256), "the holder's segment")(
      "expect-lost", po::bool_switch(&c.expect_lost), "the holder is dead: reads must fail")(
      "timeout-ms", po::value(&c.timeout_ms)->default_value(10'000), "per-operation timeout");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help")) {
      std::cout << desc;
      return 0;
    }
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "cuda_store_node: " << e.what() << " (see --help)\n";
    return 2;
  }
  c.segment_bytes = vm["segment-mib"].as<uint64_t>() << 20;
  if (c.role != "holder" && c.role != "put" && c.role != "get") {
    std::cerr << "cuda_store_node: --role '" << c.role << "' is none of holder, put, get\n";
    return 2;
  }
  if (c.bytes == 0) {
    std::cerr << "cuda_store_node: --bytes must be positive\n";
    return 2;
  }
  Result<int> devices = backends::cuda::CudaDeviceCount();
  if (!devices.ok()) {
    std::printf("cuda_store_node: skipped: %s\n", devices.status().ToString().c_str());
    return 77;
  }
  if (c.gpu < 0 || c.gpu >= *devices) c.gpu = *devices - 1;  // one GPU: everyone on cuda:0
  return Node(std::move(c)).Main();
}
