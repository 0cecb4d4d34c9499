// CudaTransport across processes (label `cuda`): node 0 in this process, every other node
// a CudaTransport in a peer process this test starts (the same binary, `--serve`), driven
// over a socketpair through a forwarding Transport (Proxy).
//
//  * XprocConformance: every clause of the transport conformance suite (transport_clauses.h)
//    with nodes 1 and 2 in peer processes. The clauses read and write every node's memory
//    from this process, so a peer's regions lie in a shared arena mapped at the same
//    address in both processes and registered there as host memory; node 0's regions are
//    either managed memory of GPU 0 registered as `cuda:0` (the GPU side of each copy is
//    staged through pinned memory) or plain host memory (process_vm).
//  * XprocGpu: cudaMalloc memory on both sides (cuda:0 here, cuda:1 in the peer when there
//    are two GPUs): CUDA IPC copies byte for byte with guard bands, the target's refusals,
//    re-registration, notifications after data, and a peer killed with SIGKILL.
//
// Without a CUDA device every test skips with cudaGetDeviceCount's answer.
#include <cuda_runtime_api.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cuda_at_device.h"
#include "tidal/backends/cuda/cuda_transport.h"
#include "tidal/backends/real_env.h"
#include "tidal/codec.h"
#include "transport_clauses.h"
#include "transport_rig.h"

namespace tidal::testing {
namespace {

using backends::cuda::CudaTransport;

enum Op : uint8_t {
  kReset = 1,   // name -> status, address: a fresh installed transport
  kDrop,        // destroys the transport
  kRegister,    // addr, len, device (-1: host) -> status, rkey
  kUnregister,  // addr, len -> status
  kConnect,     // descriptor -> status, peer
  kSubmit,      // tasks -> statuses
  kPoll,        // -> completions
  kCancel,      // id -> status
  kNotify,      // peer, payload -> status
  kPollNotes,   // -> notifications
  kCrash,
  kIdle,   // -> u8
  kAlloc,  // device, bytes -> addr (cudaMalloc, filled with 0xEE)
  kFree,   // addr
  kWrite,  // addr, bytes (cudaMemcpy into the peer's memory)
  kRead,   // addr, len -> bytes
};
constexpr char kReplyMark = static_cast<char>(0xA5);
constexpr size_t kMaxMessage = 192 * 1024;  // below a unix socket's default send buffer
constexpr size_t kMemChunk = 64 * 1024;
constexpr uint64_t kArenaBytes = 64ull << 20;
constexpr uint64_t kArenaBase = 0x200000000000ull;  // arena i at base + i GiB

// The plumbing between the processes (requests, CUDA calls on the test's own buffers)
// cannot fail unless the test itself is broken: it aborts, naming what failed.
void Check(bool ok, const char* what = "xproc plumbing") {
  TIDAL_ASSERT_MSG(ok, what);
}

void PutStatus(ByteWriter& w, const Status& s) {
  w.I32(static_cast<int32_t>(s.code()));
  w.Str(s.message());
}
Status GetStatus(ByteReader& r) {
  int32_t code = 0;
  std::string msg;
  Check(r.I32(&code) && r.Str(&msg, kMaxMessage));
  return code == 0 ? Status() : Status(static_cast<ErrorCode>(code), msg);
}

// ---- the peer process ----------------------------------------------------------------

int Serve(int fd, int arena_fd, uint64_t arena_addr) {
  void* p = mmap(reinterpret_cast<void*>(arena_addr), kArenaBytes, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_FIXED_NOREPLACE, arena_fd, 0);
  if (p != reinterpret_cast<void*>(arena_addr)) {
    std::fprintf(stderr, "xproc peer: cannot map the arena at %#llx: %s\n",
                 static_cast<unsigned long long>(arena_addr), std::strerror(errno));
    return 3;
  }
  backends::RealEnv env("xproc-peer");
  std::unique_ptr<CudaTransport> t;
  std::string in(kMaxMessage, '\0');
  for (;;) {
    const ssize_t n = recv(fd, in.data(), in.size(), 0);
    if (n <= 0) return 0;  // the test closed its end
    ByteReader r(std::string_view(in.data(), static_cast<size_t>(n)));
    ByteWriter w;
    w.U8(kReplyMark);  // every reply has a byte: an empty read is the end
    uint8_t op = 0;
    Check(r.U8(&op));
    switch (op) {
      case kReset: {
        std::string name;
        Check(r.Str(&name, 256));
        t.reset();
        t = std::make_unique<CudaTransport>();
        TransportInstall install;
        install.env = &env;
        install.segment_name = name;
        install.on_ready = [] {};  // the test polls
        PutStatus(w, t->Install(install));
        w.Str(t->LocalAddress());
        break;
      }
      case kDrop:
        t.reset();
        break;
      case kRegister: {
        uint64_t addr = 0, len = 0;
        int32_t device = 0;
        Check(r.U64(&addr) && r.U64(&len) && r.I32(&device));
        Result<uint64_t> k =
            t->RegisterMemory(addr, len, device < 0 ? Location::Host() : Location::Cuda(device));
        PutStatus(w, k.status());
        w.U64(k.ok() ? *k : 0);
        break;
      }
      case kUnregister: {
        uint64_t addr = 0, len = 0;
        Check(r.U64(&addr) && r.U64(&len));
        PutStatus(w, t->UnregisterMemory(addr, len));
        break;
      }
      case kConnect: {
        Result<SegmentDescriptor> d = DecodeSegment(r.Rest());
        Check(d.ok());
        Result<PeerId> id = t->Connect(*d);
        PutStatus(w, id.status());
        w.U32(id.ok() ? *id : 0);
        break;
      }
      case kSubmit: {
        uint32_t count = 0;
        Check(r.U32(&count));
        std::vector<TransportTask> tasks(count);
        for (TransportTask& task : tasks) {
          uint8_t kind = 0;
          Check(r.U64(&task.task_id) && r.U8(&kind) && r.U32(&task.peer) &&
                r.U64(&task.local_addr) && r.U64(&task.remote_addr) && r.U64(&task.length) &&
                r.U64(&task.rkey));
          task.kind = static_cast<TransportTask::Kind>(kind);
        }
        std::vector<Status> st(count, Status(ErrorCode::INTERNAL_ERROR, "xproc: unset"));
        t->Submit(tasks, st);
        for (const Status& s : st) PutStatus(w, s);
        break;
      }
      case kPoll: {
        TransportCompletion c[64];
        const size_t k = t->PollCompletions(c);
        w.U32(static_cast<uint32_t>(k));
        for (size_t i = 0; i < k; ++i) {
          w.U64(c[i].task_id);
          w.I32(static_cast<int32_t>(c[i].code));
          w.U64(c[i].bytes_transferred);
        }
        break;
      }
      case kCancel: {
        uint64_t id = 0;
        Check(r.U64(&id));
        PutStatus(w, t->Cancel(id));
        break;
      }
      case kNotify: {
        uint32_t peer = 0;
        Check(r.U32(&peer));
        PutStatus(w, t->SendNotify(peer, r.Rest()));
        break;
      }
      case kPollNotes: {
        std::vector<Notification> notes;
        t->PollNotifies(notes, 16);
        w.U32(static_cast<uint32_t>(notes.size()));
        for (const Notification& note : notes) {
          w.Str(note.source);
          w.Str(note.payload);
        }
        break;
      }
      case kCrash:
        t->Crash();
        break;
      case kIdle:
        w.U8(t == nullptr || t->Idle() ? 1 : 0);
        break;
      case kAlloc: {
        int32_t device = 0;
        uint64_t bytes = 0;
        Check(r.I32(&device) && r.U64(&bytes));
        void* mem = nullptr;
        Check(cudaSetDevice(device) == cudaSuccess);
        Check(cudaMalloc(&mem, bytes) == cudaSuccess);
        Check(cudaMemset(mem, RigRegion::kGuard, bytes) == cudaSuccess);
        Check(cudaDeviceSynchronize() == cudaSuccess);
        w.U64(reinterpret_cast<uint64_t>(mem));
        break;
      }
      case kFree: {
        uint64_t addr = 0;
        Check(r.U64(&addr));
        Check(cudaFree(reinterpret_cast<void*>(addr)) == cudaSuccess);
        break;
      }
      case kWrite: {
        uint64_t addr = 0;
        Check(r.U64(&addr));
        std::string_view bytes = r.Rest();
        Check(cudaMemcpy(reinterpret_cast<void*>(addr), bytes.data(), bytes.size(),
                         cudaMemcpyDefault) == cudaSuccess);
        break;
      }
      case kRead: {
        uint64_t addr = 0, len = 0;
        Check(r.U64(&addr) && r.U64(&len) && len <= kMemChunk);
        std::string bytes(len, '\0');
        Check(cudaMemcpy(bytes.data(), reinterpret_cast<const void*>(addr), len,
                         cudaMemcpyDefault) == cudaSuccess);
        w.Bytes(bytes);
        break;
      }
      default:
        std::fprintf(stderr, "xproc peer: unknown request %d\n", op);
        return 3;
    }
    Check(w.str().size() <= kMaxMessage);
    if (send(fd, w.str().data(), w.str().size(), MSG_NOSIGNAL) < 0) return 0;
  }
}

// ---- this side -----------------------------------------------------------------------

// A peer process serving one node at a time, with its shared arena mapped here too.
class PeerProcess {
 public:
  static std::unique_ptr<PeerProcess> Spawn(int index) {
    int sv[2];
    Check(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
    int arena = memfd_create("tidal-xproc-arena", 0);  // inherited through exec
    Check(arena >= 0 && ftruncate(arena, kArenaBytes) == 0);
    const uint64_t at = kArenaBase + static_cast<uint64_t>(index) * (1ull << 30);
    void* p = mmap(reinterpret_cast<void*>(at), kArenaBytes, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_FIXED_NOREPLACE, arena, 0);
    Check(p == reinterpret_cast<void*>(at), "xproc: cannot map the arena");
    const std::string fd_arg = std::to_string(sv[1]), arena_arg = std::to_string(arena),
                      at_arg = std::to_string(at);
    const char* argv[] = {"cuda_xproc_test", "--serve",      fd_arg.c_str(),
                          arena_arg.c_str(), at_arg.c_str(), nullptr};
    const pid_t pid = fork();
    Check(pid >= 0);
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test
      fcntl(sv[1], F_SETFD, 0);
      execv("/proc/self/exe", const_cast<char* const*>(argv));
      _exit(127);
    }
    close(sv[1]);
    close(arena);
    auto peer = std::unique_ptr<PeerProcess>(new PeerProcess());
    peer->pid_ = pid;
    peer->fd_ = sv[0];
    peer->arena_ = static_cast<uint8_t*>(p);
    return peer;
  }
  ~PeerProcess() {
    close(fd_);  // the peer's recv sees the end and it exits
    if (pid_ > 0) waitpid(pid_, nullptr, 0);
    munmap(arena_, kArenaBytes);
  }

  std::string Call(ByteWriter& w) {
    const ssize_t sent = send(fd_, w.str().data(), w.str().size(), MSG_NOSIGNAL);
    Check(sent == static_cast<ssize_t>(w.str().size()), "xproc: the peer process is gone");
    std::string out(kMaxMessage, '\0');
    const ssize_t n = recv(fd_, out.data(), out.size(), 0);
    Check(n > 0 && out[0] == kReplyMark, "xproc: the peer process died");
    out.resize(static_cast<size_t>(n));
    return out.substr(1);
  }
  void Kill() { kill(pid_, SIGKILL); }
  void Reap() {
    if (pid_ > 0) waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  pid_t pid() const { return pid_; }

  // Arena memory, the same address in both processes.
  void ResetArena() { used_ = 0; }
  uint8_t* Carve(size_t bytes) {
    const size_t at = used_;
    used_ += (bytes + 4095) & ~size_t{4095};
    Check(used_ <= kArenaBytes, "xproc: arena exhausted");
    return arena_ + at;
  }

  // GPU memory of the peer (filled with the guard byte) and its bytes.
  uint64_t Alloc(int device, uint64_t bytes) {
    ByteWriter w;
    w.U8(kAlloc);
    w.I32(device);
    w.U64(bytes);
    std::string out = Call(w);
    ByteReader r(out);
    uint64_t addr = 0;
    Check(r.U64(&addr));
    return addr;
  }
  void Free(uint64_t addr) {
    ByteWriter w;
    w.U8(kFree);
    w.U64(addr);
    Call(w);
  }
  void Write(uint64_t addr, const std::vector<uint8_t>& bytes) {
    for (size_t off = 0; off < bytes.size(); off += kMemChunk) {
      ByteWriter w;
      w.U8(kWrite);
      w.U64(addr + off);
      w.Bytes(std::string_view(reinterpret_cast<const char*>(bytes.data()) + off,
                               std::min(kMemChunk, bytes.size() - off)));
      Call(w);
    }
  }
  std::vector<uint8_t> Read(uint64_t addr, size_t len) {
    std::vector<uint8_t> out;
    for (size_t off = 0; off < len; off += kMemChunk) {
      ByteWriter w;
      w.U8(kRead);
      w.U64(addr + off);
      w.U64(std::min(kMemChunk, len - off));
      std::string got = Call(w);
      out.insert(out.end(), got.begin(), got.end());
    }
    return out;
  }

 private:
  PeerProcess() = default;
  pid_t pid_ = -1;
  int fd_ = -1;
  uint8_t* arena_ = nullptr;
  size_t used_ = 0;
};

// The Transport of a node in a peer process: every call is a request to it.
class Proxy final : public Transport {
 public:
  explicit Proxy(PeerProcess& peer) : peer_(peer) {}
  ~Proxy() override {
    if (detached_) return;
    ByteWriter w;
    w.U8(kDrop);
    peer_.Call(w);  // its copies finish before the transport goes
  }
  // The peer process is gone: nothing to ask it any more.
  void Detach() { detached_ = true; }
  std::string_view Name() const override { return "cuda"; }
  TransportCaps Capabilities() const override { return TransportCaps{true, true, true, true}; }
  Status Install(const TransportInstall& install) override {
    ByteWriter w;
    w.U8(kReset);
    w.Str(install.segment_name);
    std::string out = peer_.Call(w);
    ByteReader r(out);
    Status s = GetStatus(r);
    Check(r.Str(&address_, 256));
    return s;
  }
  std::string LocalAddress() const override { return address_; }
  Result<uint64_t> RegisterMemory(uint64_t addr, uint64_t length, Location loc) override {
    ByteWriter w;
    w.U8(kRegister);
    w.U64(addr);
    w.U64(length);
    w.I32(loc.is_host() ? -1 : loc.device);
    std::string out = peer_.Call(w);
    ByteReader r(out);
    Status s = GetStatus(r);
    uint64_t key = 0;
    Check(r.U64(&key));
    if (!s.ok()) return s;
    return key;
  }
  Status UnregisterMemory(uint64_t addr, uint64_t length) override {
    ByteWriter w;
    w.U8(kUnregister);
    w.U64(addr);
    w.U64(length);
    std::string out = peer_.Call(w);
    ByteReader r(out);
    return GetStatus(r);
  }
  Result<PeerId> Connect(const SegmentDescriptor& peer) override {
    ByteWriter w;
    w.U8(kConnect);
    w.Bytes(EncodeSegment(peer));
    std::string out = peer_.Call(w);
    ByteReader r(out);
    Status s = GetStatus(r);
    uint32_t id = 0;
    Check(r.U32(&id));
    if (!s.ok()) return s;
    return PeerId{id};
  }
  void Submit(std::span<const TransportTask> tasks, std::span<Status> accepted) override {
    ByteWriter w;
    w.U8(kSubmit);
    w.U32(static_cast<uint32_t>(tasks.size()));
    for (const TransportTask& t : tasks) {
      w.U64(t.task_id);
      w.U8(static_cast<uint8_t>(t.kind));
      w.U32(t.peer);
      w.U64(t.local_addr);
      w.U64(t.remote_addr);
      w.U64(t.length);
      w.U64(t.rkey);
    }
    std::string out = peer_.Call(w);
    ByteReader r(out);
    for (Status& s : accepted) s = GetStatus(r);
  }
  size_t PollCompletions(std::span<TransportCompletion> out) override {
    while (queued_.size() < out.size()) {
      ByteWriter w;
      w.U8(kPoll);
      std::string got = peer_.Call(w);
      ByteReader r(got);
      uint32_t k = 0;
      Check(r.U32(&k));
      for (uint32_t i = 0; i < k; ++i) {
        TransportCompletion c;
        int32_t code = 0;
        Check(r.U64(&c.task_id) && r.I32(&code) && r.U64(&c.bytes_transferred));
        c.code = static_cast<ErrorCode>(code);
        queued_.push_back(c);
      }
      if (k == 0) break;
    }
    size_t n = 0;
    while (n < out.size() && !queued_.empty()) {
      out[n++] = queued_.front();
      queued_.erase(queued_.begin());
    }
    return n;
  }
  Status Cancel(uint64_t task_id) override {
    ByteWriter w;
    w.U8(kCancel);
    w.U64(task_id);
    std::string out = peer_.Call(w);
    ByteReader r(out);
    return GetStatus(r);
  }
  Status SendNotify(PeerId peer, std::string_view payload) override {
    ByteWriter w;
    w.U8(kNotify);
    w.U32(peer);
    w.Bytes(payload);
    std::string out = peer_.Call(w);
    ByteReader r(out);
    return GetStatus(r);
  }
  size_t PollNotifies(std::vector<Notification>& out, size_t max) override {
    ByteWriter w;
    w.U8(kPollNotes);
    std::string got = peer_.Call(w);
    ByteReader r(got);
    uint32_t k = 0;
    Check(r.U32(&k));
    for (uint32_t i = 0; i < k; ++i) {
      Notification note;
      Check(r.Str(&note.source, kMaxMessage) && r.Str(&note.payload, kMaxMessage));
      notes_.push_back(std::move(note));
    }
    size_t n = 0;
    while (n < max && !notes_.empty()) {
      out.push_back(std::move(notes_.front()));
      notes_.erase(notes_.begin());
      ++n;
    }
    return n;
  }
  void Crash() {
    ByteWriter w;
    w.U8(kCrash);
    peer_.Call(w);
  }
  bool Idle() {
    ByteWriter w;
    w.U8(kIdle);
    std::string out = peer_.Call(w);
    return !out.empty() && out[0] == 1;
  }

 private:
  PeerProcess& peer_;
  bool detached_ = false;
  std::string address_;
  std::vector<TransportCompletion> queued_;
  std::vector<Notification> notes_;
};

// Peer processes shared by the rigs (spawning one per rig would start CUDA every time).
PeerProcess& PooledPeer(size_t i) {
  static std::vector<std::unique_ptr<PeerProcess>> pool;
  while (pool.size() <= i) pool.push_back(PeerProcess::Spawn(static_cast<int>(pool.size())));
  return *pool[i];
}

class XprocRig final : public RealRig {
 public:
  XprocRig(const RigOptions& options, bool node0_on_gpu)
      : RealRig("xproc-rig"), node0_on_gpu_(node0_on_gpu) {
    auto cuda = std::make_unique<CudaTransport>();
    node0_ = cuda.get();
    std::unique_ptr<Transport> t = std::move(cuda);
    if (node0_on_gpu) t = std::make_unique<AtDevice>(std::move(t), 0);
    Add(options, std::move(t));
    for (size_t i = 1; i < options.nodes && status_.ok(); ++i) {
      PeerProcess& p = PooledPeer(i - 1);
      p.ResetArena();
      auto proxy = std::make_unique<Proxy>(p);
      proxies_.push_back(proxy.get());
      peers_.push_back(&p);
      Add(options, std::move(proxy));
    }
  }
  ~XprocRig() override {
    ReleaseTransports();
    for (void* p : managed_) cudaFree(p);
  }

  std::string_view backend() const override { return "cuda-xproc"; }
  void Settle() override {
    Drive([&] {
      if (!node0_->Idle()) return false;
      for (Proxy* p : proxies_) {
        if (!p->Idle()) return false;
      }
      return true;
    });
  }
  Status Crash(size_t node) override {
    if (node == 0) {
      node0_->Crash();
    } else {
      proxies_[node - 1]->Crash();
    }
    return Status();
  }
  std::string Banner() const override {
    return std::string("cuda xproc rig: node 0 in this process (") +
           (node0_on_gpu_ ? "managed memory of cuda:0" : "host memory") + "), " +
           std::to_string(proxies_.size()) + " node(s) in peer processes (host memory)";
  }

 protected:
  uint8_t* Allocate(size_t node, size_t bytes) override {
    if (node > 0) return peers_[node - 1]->Carve(bytes);
    if (!node0_on_gpu_) return RealRig::Allocate(node, bytes);
    void* p = nullptr;
    Check(cudaSetDevice(0) == cudaSuccess);
    Check(cudaMallocManaged(&p, bytes) == cudaSuccess, "cudaMallocManaged");
    managed_.push_back(p);
    return static_cast<uint8_t*>(p);
  }

 private:
  bool node0_on_gpu_;
  CudaTransport* node0_ = nullptr;
  std::vector<Proxy*> proxies_;
  std::vector<PeerProcess*> peers_;
  std::vector<void*> managed_;
};

RigMaker XprocRigMaker(bool node0_on_gpu) {
  return [node0_on_gpu](RigOptions options) -> Result<std::unique_ptr<TransportRig>> {
    if (!options.faults.empty()) {
      return Status(ErrorCode::UNSUPPORTED,
                    "backend 'cuda' cannot inject faults: this clause needs the simulator");
    }
    Result<int> devices = backends::cuda::CudaDeviceCount();
    if (!devices.ok()) return devices.status();
    auto rig = std::make_unique<XprocRig>(options, node0_on_gpu);
    if (!rig->status().ok()) {
      return Status(ErrorCode::UNSUPPORTED,
                    "backend 'cuda': a transport did not start: " + rig->status().ToString());
    }
    return std::unique_ptr<TransportRig>(std::move(rig));
  };
}

struct XprocParam {
  Clause clause;
  bool node0_on_gpu;
};

class XprocConformance : public ::testing::TestWithParam<XprocParam> {};

TEST_P(XprocConformance, ClauseHolds) {
  ClauseResult r = CheckClause(GetParam().clause, XprocRigMaker(GetParam().node0_on_gpu), {1});
  if (!r.skipped.empty()) GTEST_SKIP() << r.skipped;
  std::string lines;
  for (const std::string& l : r.violations) lines += "  " + l + "\n";
  EXPECT_TRUE(r.violations.empty())
      << "CudaTransport across processes breaks " << ClauseName(GetParam().clause) << ":\n"
      << lines;
}

std::vector<XprocParam> XprocParams() {
  std::vector<XprocParam> out;
  for (bool gpu : {true, false}) {
    for (Clause c : AllClauses()) out.push_back({c, gpu});
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Clauses, XprocConformance, ::testing::ValuesIn(XprocParams()),
                         [](const ::testing::TestParamInfo<XprocParam>& i) {
                           return std::string(ClauseName(i.param.clause)) +
                                  (i.param.node0_on_gpu ? "_Gpu0ToPeerHost" : "_HostToPeerHost");
                         });

// ---- GPU memory on both sides --------------------------------------------------------

// Node 0 here (a CudaTransport on this process's loop) and node 1 in a peer process.
class XprocGpu : public ::testing::Test {
 protected:
  static constexpr size_t kGuard = RigRegion::kGuardBytes;

  void SetUp() override {
    Result<int> devices = backends::cuda::CudaDeviceCount();
    if (!devices.ok()) GTEST_SKIP() << devices.status().ToString();
    peer_device_ = *devices > 1 ? 1 : 0;
    env_ = std::make_unique<backends::RealEnv>("xproc-gpu");
    env_->AddPoster();
    local_ = std::make_unique<CudaTransport>();
    TransportInstall install;
    install.env = env_.get();
    install.segment_name = "node0";
    install.on_ready = [] {};
    ASSERT_TRUE(local_->Install(install).ok());
    peer_ = PeerProcess::Spawn(8);
    remote_ = std::make_unique<Proxy>(*peer_);
    install.segment_name = "node1";
    Status s = remote_->Install(install);
    ASSERT_TRUE(s.ok()) << s.ToString();
    desc_.name = "node1";
    desc_.transport = "cuda";
    desc_.address = remote_->LocalAddress();
    Result<PeerId> p = local_->Connect(desc_);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    pid_ = *p;
  }
  void TearDown() override {
    if (local_ != nullptr) Settle();
    remote_.reset();
    peer_.reset();
    local_.reset();
    for (void* p : mine_) cudaFree(p);
    if (env_ != nullptr) env_->RemovePoster();
  }

  // cudaMalloc memory of cuda:0 here: `bytes` plus guard bands, guards 0xEE.
  uint8_t* LocalGpu(size_t bytes) {
    void* p = nullptr;
    Check(cudaSetDevice(0) == cudaSuccess);
    Check(cudaMalloc(&p, bytes + 2 * kGuard) == cudaSuccess);
    Check(cudaMemset(p, RigRegion::kGuard, bytes + 2 * kGuard) == cudaSuccess);
    Check(cudaDeviceSynchronize() == cudaSuccess);
    mine_.push_back(p);
    return static_cast<uint8_t*>(p) + kGuard;
  }
  static std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 131 + (i >> 8));
    return v;
  }
  // A cudaMemcpy from pageable host memory may return before its DMA has reached the
  // device, and the transport's copies run on streams that do not wait for it: finish the
  // source before submitting a task that reads it (the transport's precondition).
  static void Put(uint8_t* gpu, const std::vector<uint8_t>& bytes) {
    Check(cudaMemcpy(gpu, bytes.data(), bytes.size(), cudaMemcpyDefault) == cudaSuccess);
    Check(cudaDeviceSynchronize() == cudaSuccess);
  }
  static std::vector<uint8_t> Get(const uint8_t* gpu, size_t n) {
    std::vector<uint8_t> v(n);
    Check(cudaMemcpy(v.data(), gpu, n, cudaMemcpyDefault) == cudaSuccess);
    return v;
  }
  uint64_t Register(uint8_t* p, size_t n) {
    Result<uint64_t> k =
        local_->RegisterMemory(reinterpret_cast<uint64_t>(p), n, Location::Cuda(0));
    Check(k.ok(), "register here failed");
    return *k;
  }
  uint64_t RegisterPeer(uint64_t addr, size_t n) {
    Result<uint64_t> k = remote_->RegisterMemory(addr, n, Location::Cuda(peer_device_));
    EXPECT_TRUE(k.ok()) << k.status().ToString();
    return k.ok() ? *k : 0;
  }
  // Submits one task from node 0 and waits (10 s at most) for its completion.
  TransportCompletion Run(TransportTask t) {
    t.peer = pid_;
    Status st[1];
    local_->Submit({&t, 1}, st);
    if (!st[0].ok()) return {t.task_id, st[0].code(), 0};
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    TransportCompletion c[1];
    while (std::chrono::steady_clock::now() < give_up) {
      if (local_->PollCompletions(c) == 1) {
        EXPECT_EQ(c[0].task_id, t.task_id);
        return c[0];
      }
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    ADD_FAILURE() << "task " << t.task_id << " never completed";
    return {t.task_id, ErrorCode::INTERNAL_ERROR, 0};
  }
  void Settle() {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!local_->Idle() && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  static TransportTask Task(uint64_t id, TransportTask::Kind kind, uint64_t local, uint64_t remote,
                            uint64_t len, uint64_t rkey) {
    TransportTask t;
    t.task_id = id;
    t.kind = kind;
    t.local_addr = local;
    t.remote_addr = remote;
    t.length = len;
    t.rkey = rkey;
    return t;
  }
  static uint64_t A(const void* p) { return reinterpret_cast<uint64_t>(p); }

  int peer_device_ = 0;
  std::unique_ptr<backends::RealEnv> env_;
  std::unique_ptr<CudaTransport> local_;
  std::unique_ptr<PeerProcess> peer_;
  std::unique_ptr<Proxy> remote_;
  SegmentDescriptor desc_;
  PeerId pid_ = 0;
  std::vector<void*> mine_;
};

using K = TransportTask::Kind;

TEST_F(XprocGpu, WriteAndReadMoveEveryByteAndNothingElse) {
  constexpr size_t n = 256 * 1024 + 77;
  uint8_t* src = LocalGpu(n);
  uint8_t* back = LocalGpu(n);
  const std::vector<uint8_t> data = Pattern(n, 7);
  Put(src, data);
  Register(src, n);
  Register(back, n);
  const uint64_t peer_base = peer_->Alloc(peer_device_, n + 2 * kGuard);
  const uint64_t dst = peer_base + kGuard;
  const uint64_t rkey = RegisterPeer(dst, n);

  TransportCompletion c = Run(Task(1, K::kWrite, A(src), dst, n, rkey));
  ASSERT_EQ(c.code, ErrorCode::OK);
  EXPECT_EQ(c.bytes_transferred, n);
  std::vector<uint8_t> there = peer_->Read(peer_base, n + 2 * kGuard);
  EXPECT_TRUE(std::equal(data.begin(), data.end(), there.begin() + kGuard))
      << "the peer's cuda:" << peer_device_ << " does not hold the bytes written";
  for (size_t i = 0; i < kGuard; ++i) {
    ASSERT_EQ(there[i], RigRegion::kGuard) << "front guard byte " << i << " changed";
    ASSERT_EQ(there[kGuard + n + i], RigRegion::kGuard) << "back guard byte " << i << " changed";
  }
  // A READ of an unaligned window back into this process.
  const size_t off = 4099, len = 100'001;
  c = Run(Task(2, K::kRead, A(back) + off, dst + off, len, rkey));
  ASSERT_EQ(c.code, ErrorCode::OK);
  EXPECT_EQ(c.bytes_transferred, len);
  std::vector<uint8_t> got = Get(back - kGuard, n + 2 * kGuard);
  EXPECT_TRUE(std::equal(data.begin() + off, data.begin() + off + len, got.begin() + kGuard + off));
  // Everything around the window (guards and the rest of the region) keeps its 0xEE.
  for (size_t i = 0; i < kGuard + off; ++i) {
    ASSERT_EQ(got[i], RigRegion::kGuard) << "byte " << i << " before the window changed";
  }
  for (size_t i = kGuard + off + len; i < got.size(); ++i) {
    ASSERT_EQ(got[i], RigRegion::kGuard) << "byte " << i << " after the window changed";
  }
}

TEST_F(XprocGpu, TheTargetRefusesBadKeysWindowsAndUnregisteredRanges) {
  constexpr size_t n = 64 * 1024;
  uint8_t* src = LocalGpu(n);
  Put(src, Pattern(n, 3));
  Register(src, n);
  const uint64_t peer_base = peer_->Alloc(peer_device_, n + 2 * kGuard);
  const uint64_t dst = peer_base + kGuard;
  const uint64_t rkey = RegisterPeer(dst, n);
  const std::vector<uint8_t> before = peer_->Read(peer_base, n + 2 * kGuard);

  EXPECT_EQ(Run(Task(1, K::kWrite, A(src), dst, n, rkey ^ 2)).code,
            ErrorCode::REMOTE_ACCESS_DENIED);
  EXPECT_EQ(Run(Task(2, K::kWrite, A(src), dst + 1, n, rkey)).code,
            ErrorCode::REMOTE_ACCESS_DENIED);
  EXPECT_EQ(Run(Task(3, K::kWrite, A(src), dst - 64, 128, rkey)).code,
            ErrorCode::REMOTE_ACCESS_DENIED);
  EXPECT_EQ(Run(Task(4, K::kRead, A(src), dst + n - 8, 16, rkey)).code,
            ErrorCode::REMOTE_ACCESS_DENIED);
  Status u = remote_->UnregisterMemory(dst, n);
  ASSERT_TRUE(u.ok()) << u.ToString();
  EXPECT_EQ(Run(Task(5, K::kWrite, A(src), dst, n, rkey)).code, ErrorCode::REMOTE_ACCESS_DENIED);
  EXPECT_EQ(peer_->Read(peer_base, n + 2 * kGuard), before) << "a refused task moved bytes";
}

TEST_F(XprocGpu, ARegionRegisteredAgainIsReachedThroughItsNewMapping) {
  constexpr size_t n = 128 * 1024;
  uint8_t* src = LocalGpu(n);
  Register(src, n);
  for (uint8_t round = 1; round <= 3; ++round) {
    const std::vector<uint8_t> data = Pattern(n, round);
    Put(src, data);
    const uint64_t dst = peer_->Alloc(peer_device_, n);
    const uint64_t rkey = RegisterPeer(dst, n);
    TransportCompletion c = Run(Task(round, K::kWrite, A(src), dst, n, rkey));
    ASSERT_EQ(c.code, ErrorCode::OK) << "round " << int{round};
    EXPECT_EQ(peer_->Read(dst, n), data) << "round " << int{round};
    Status u = remote_->UnregisterMemory(dst, n);
    ASSERT_TRUE(u.ok()) << u.ToString();
    peer_->Free(dst);  // the next allocation may reuse the address
  }
}

TEST_F(XprocGpu, ANotificationArrivesAfterTheDataOfACompletedWrite) {
  constexpr size_t n = 1 << 20;
  uint8_t* src = LocalGpu(n);
  Register(src, n);
  const uint64_t dst = peer_->Alloc(peer_device_, n);
  const uint64_t rkey = RegisterPeer(dst, n);
  for (uint8_t round = 1; round <= 4; ++round) {
    const std::vector<uint8_t> data = Pattern(n, round);
    Put(src, data);
    ASSERT_EQ(Run(Task(round, K::kWrite, A(src), dst, n, rkey)).code, ErrorCode::OK);
    ASSERT_TRUE(local_->SendNotify(pid_, "round " + std::to_string(round)).ok());
    std::vector<Notification> notes;
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (notes.empty() && std::chrono::steady_clock::now() < give_up) {
      remote_->PollNotifies(notes, 4);
    }
    ASSERT_EQ(notes.size(), 1u);
    EXPECT_EQ(notes[0].source, "node0");
    EXPECT_EQ(notes[0].payload, "round " + std::to_string(round));
    EXPECT_EQ(peer_->Read(dst, n), data);
  }
  std::string big(64 * 1024, 'x');
  EXPECT_EQ(local_->SendNotify(pid_, big).code(), ErrorCode::INVALID_PARAMS);
}

TEST_F(XprocGpu, AKilledPeerIsUnreachableNeverAHang) {
  constexpr size_t n = 1 << 20;
  uint8_t* src = LocalGpu(n);
  Register(src, n);
  const uint64_t dst = peer_->Alloc(peer_device_, n);
  const uint64_t rkey = RegisterPeer(dst, n);
  ASSERT_EQ(Run(Task(1, K::kWrite, A(src), dst, n, rkey)).code, ErrorCode::OK);
  ASSERT_EQ(Run(Task(2, K::kProbe, 0, 0, 0, 0)).code, ErrorCode::OK);
  peer_->Kill();  // not reaped yet: a zombie is dead too
  const auto t0 = std::chrono::steady_clock::now();
  ErrorCode probe = ErrorCode::OK;
  for (uint64_t id = 3; probe == ErrorCode::OK && id < 100000; ++id) {
    probe = Run(Task(id, K::kProbe, 0, 0, 0, 0)).code;
    if (probe == ErrorCode::OK) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ASSERT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5))
        << "a probe still answered OK 5 s after the peer was killed";
  }
  EXPECT_EQ(probe, ErrorCode::PEER_UNREACHABLE);
  EXPECT_EQ(Run(Task(200000, K::kWrite, A(src), dst, n, rkey)).code, ErrorCode::PEER_UNREACHABLE);
  EXPECT_EQ(Run(Task(200001, K::kRead, A(src), dst, n, rkey)).code, ErrorCode::PEER_UNREACHABLE);
  EXPECT_EQ(local_->SendNotify(pid_, "anyone?").code(), ErrorCode::PEER_UNREACHABLE);
  remote_->Detach();
  peer_->Reap();
  // A transport that never knew the peer cannot connect to its address any more.
  CudaTransport other;
  TransportInstall install;
  install.env = env_.get();
  install.segment_name = "node2";
  install.on_ready = [] {};
  ASSERT_TRUE(other.Install(install).ok());
  EXPECT_EQ(other.Connect(desc_).code(), ErrorCode::PEER_UNREACHABLE);
}

}  // namespace
}  // namespace tidal::testing

int main(int argc, char** argv) {
  if (argc == 5 && std::string(argv[1]) == "--serve") {
    return tidal::testing::Serve(std::atoi(argv[2]), std::atoi(argv[3]),
                                 std::strtoull(argv[4], nullptr, 10));
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
