// The ucx_proc fabric (UcxProcessFabric): every node's UcxTransport runs in its own
// process. Checks that the nodes really are separate processes, that exact bytes cross
// between them, that Crash SIGKILLs the node's pid and its peers then fail
// PEER_UNREACHABLE instead of hanging, that a child killed from outside is reaped and
// reported, and that a taken arena address is refused naming it. ctest runs it with
// UCX_TLS=tcp and UCX_TLS=sm,self (label `ucx`).
#include "tidal/backends/ucx/ucx_process_fabric.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace tidal::backends::ucx {
namespace {

constexpr size_t kBytes = (1 << 20) + 4096 + 7;  // slices of the engine, and an odd tail

bool SharedMemory() {
  const char* tls = std::getenv("UCX_TLS");
  return tls != nullptr && std::string(tls).find("tcp") == std::string::npos;
}

std::unique_ptr<UcxProcessFabric> MakeFabric(size_t nodes) {
  UcxProcessFabricOptions o;
  o.nodes = nodes;
  o.arena_bytes = 64 << 20;
  // A peer killed on shared memory has no connection to break: only the probe's deadline
  // finds it, so keep it short here.
  o.process.transport.probe_timeout_ns = 200'000'000;
  Result<std::unique_ptr<UcxProcessFabric>> f = UcxProcessFabric::Make(std::move(o));
  EXPECT_TRUE(f.ok()) << f.status().ToString();
  return f.ok() ? std::move(*f) : nullptr;
}

uint8_t* Registered(UcxProcessFabric& f, size_t node, size_t bytes) {
  auto* p = static_cast<uint8_t*>(f.Allocate(node, bytes, Location::Host()));
  Result<uint64_t> key = f.Run(f.engine(node).RegisterMemory(p, bytes, Location::Host()));
  EXPECT_TRUE(key.ok()) << key.status().ToString();
  return p;
}

std::vector<TransferStatus> Move(UcxProcessFabric& f, size_t from, size_t to, TransferOp op,
                                 const uint8_t* local, const uint8_t* remote, size_t bytes) {
  Result<SegmentHandle> h = f.Run(f.engine(from).OpenSegment(Fabric::NodeName(to)));
  if (!h.ok()) {
    TransferStatus s;
    s.state = TransferState::FAILED;
    s.error = h.status().code();
    return {s};
  }
  TransferRequest r;
  r.op = op;
  r.local_addr = reinterpret_cast<uint64_t>(local);
  r.length = bytes;
  r.segment = *h;
  r.remote_addr = reinterpret_cast<uint64_t>(remote);
  const std::vector<TransferRequest> requests{r};
  return f.Run(f.engine(from).TransferSync(requests));
}

TEST(UcxProcessFabric, NodesAreSeparateProcessesOfTheHostBinary) {
  auto f = MakeFabric(3);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->Name(), "ucx_proc");
  std::set<pid_t> pids;
  for (size_t i = 0; i < f->size(); ++i) {
    const pid_t pid = f->pid(i);
    ASSERT_GT(pid, 0);
    EXPECT_NE(pid, ::getpid());
    EXPECT_EQ(::kill(pid, 0), 0) << "node " << i << " pid " << pid << " is not running";
    std::error_code ec;
    const auto exe = std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec);
    ASSERT_FALSE(ec) << ec.message();
    EXPECT_EQ(exe.filename(), "tidal-ucx-host");
    // Its parent is this process.
    std::FILE* stat = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
    ASSERT_NE(stat, nullptr);
    int p = 0, ppid = 0;
    char comm[64], state = 0;
    ASSERT_EQ(std::fscanf(stat, "%d %63s %c %d", &p, comm, &state, &ppid), 4);
    std::fclose(stat);
    EXPECT_EQ(ppid, ::getpid());
    pids.insert(pid);
  }
  EXPECT_EQ(pids.size(), 3u);
}

// Bytes written from node 0's process land in node 1's, and read back into node 2's,
// exactly, with the guard bytes around them untouched; the arena is the same memory at
// the same address in every process.
TEST(UcxProcessFabric, ExactBytesCrossBetweenProcesses) {
  auto f = MakeFabric(3);
  ASSERT_NE(f, nullptr);
  uint8_t* src = Registered(*f, 0, kBytes);
  uint8_t* dst = Registered(*f, 1, kBytes + 64);
  uint8_t* back = Registered(*f, 2, kBytes);
  for (size_t i = 0; i < kBytes; ++i) src[i] = static_cast<uint8_t>(i * 131 + (i >> 11) + 7);
  std::memset(dst, 0xEE, kBytes + 64);
  std::vector<TransferStatus> w = Move(*f, 0, 1, TransferOp::kWrite, src, dst + 32, kBytes);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].state, TransferState::COMPLETED) << ErrorCodeName(w[0].error);
  EXPECT_EQ(w[0].bytes_transferred, kBytes);
  EXPECT_EQ(std::memcmp(dst + 32, src, kBytes), 0);
  for (size_t i = 0; i < 32; ++i) {
    ASSERT_EQ(dst[i], 0xEE) << "front guard byte " << i;
    ASSERT_EQ(dst[32 + kBytes + i], 0xEE) << "back guard byte " << i;
  }
  std::vector<TransferStatus> r = Move(*f, 2, 1, TransferOp::kRead, back, dst + 32, kBytes);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].state, TransferState::COMPLETED) << ErrorCodeName(r[0].error);
  EXPECT_EQ(std::memcmp(back, src, kBytes), 0);
  // The children did the moving: node 0's child sent, node 1's received.
  Result<UcxTransportStats> s0 = f->proxy(0).Stats();
  ASSERT_TRUE(s0.ok()) << s0.status().ToString();
  EXPECT_EQ(s0->outstanding, 0u);
  EXPECT_FALSE(s0->crashed);
}

// Memory outside the arena is not the same memory in a node process: registering it is
// refused naming the range, and nothing is registered.
TEST(UcxProcessFabric, MemoryOutsideTheArenaIsRefused) {
  auto f = MakeFabric(2);
  ASSERT_NE(f, nullptr);
  std::vector<uint8_t> heap(4096);
  Result<uint64_t> key =
      f->Run(f->engine(0).RegisterMemory(heap.data(), heap.size(), Location::Host()));
  ASSERT_FALSE(key.ok());
  EXPECT_EQ(key.status().code(), ErrorCode::REGISTRATION_FAILED);
  EXPECT_NE(key.status().message().find("not in the shared arena"), std::string::npos)
      << key.status().ToString();
  // The arena's memory registers.
  uint8_t* in = Registered(*f, 0, 4096);
  EXPECT_NE(in, nullptr);
}

// Crash SIGKILLs the node's process (the pid is gone and reaped); a peer's write to it
// then fails PEER_UNREACHABLE and the crashed node's own engine fails its calls cleanly.
TEST(UcxProcessFabric, CrashKillsThePidAndPeersSeeUnreachable) {
  auto f = MakeFabric(3);
  ASSERT_NE(f, nullptr);
  uint8_t* a = Registered(*f, 0, 4096);
  uint8_t* b = Registered(*f, 1, 4096);
  uint8_t* c = Registered(*f, 2, 4096);
  std::memset(a, 0x5A, 4096);
  ASSERT_EQ(Move(*f, 0, 1, TransferOp::kWrite, a, b, 4096)[0].state, TransferState::COMPLETED);
  const pid_t victim = f->pid(1);
  ASSERT_TRUE(f->Crash(1).ok());
  EXPECT_FALSE(f->proxy(1).alive());
  EXPECT_EQ(f->proxy(1).exit_reason(), "killed by signal 9 (Killed)");
  errno = 0;
  EXPECT_EQ(::kill(victim, 0), -1);
  EXPECT_EQ(errno, ESRCH) << "pid " << victim << " still exists after Crash";
  if (SharedMemory()) {
    GTEST_SKIP() << "UCX 1.13 shared memory has no peer-failure detection: a write to a "
                    "killed peer is not failed by UCX (the process is gone, checked above)";
  }
  std::vector<TransferStatus> w = Move(*f, 0, 1, TransferOp::kWrite, a, b, 4096);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].state, TransferState::FAILED);
  EXPECT_EQ(w[0].error, ErrorCode::PEER_UNREACHABLE);
  // The crashed node's proxy answers without its process.
  std::vector<TransferStatus> own = Move(*f, 1, 2, TransferOp::kWrite, b, c, 4096);
  ASSERT_EQ(own.size(), 1u);
  EXPECT_EQ(own[0].state, TransferState::FAILED);
  EXPECT_EQ(own[0].error, ErrorCode::PEER_UNREACHABLE);
  // The survivors still move bytes.
  std::vector<TransferStatus> ok = Move(*f, 0, 2, TransferOp::kWrite, a, c, 4096);
  EXPECT_EQ(ok[0].state, TransferState::COMPLETED) << ErrorCodeName(ok[0].error);
  EXPECT_EQ(std::memcmp(a, c, 4096), 0);
}

// A node process killed from outside (not through Crash) is reaped and reported; its
// proxy then answers PEER_UNREACHABLE naming how it ended.
TEST(UcxProcessFabric, AChildKilledFromOutsideIsReapedAndReported) {
  auto f = MakeFabric(2);
  ASSERT_NE(f, nullptr);
  const pid_t pid = f->pid(1);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  for (int i = 0; i < 2000 && f->proxy(1).alive(); ++i) ::usleep(1000);
  ASSERT_FALSE(f->proxy(1).alive()) << "the proxy did not notice its child die";
  EXPECT_EQ(f->proxy(1).exit_reason(), "killed by signal 9 (Killed)");
  errno = 0;
  EXPECT_EQ(::kill(pid, 0), -1);
  EXPECT_EQ(errno, ESRCH) << "pid " << pid << " was not reaped";
  Result<UcxTransportStats> s = f->proxy(1).Stats();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), ErrorCode::PEER_UNREACHABLE);
  EXPECT_NE(s.status().message().find("pid " + std::to_string(pid)), std::string::npos)
      << s.status().ToString();
}

// The arena is mapped at one fixed address: a process where it is taken says which.
TEST(UcxProcessFabric, ATakenArenaAddressIsRefusedNamingIt) {
  Result<std::unique_ptr<SharedArena>> a = SharedArena::Make(1 << 20);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  Status s = SharedArena::MapAt((*a)->fd(), (*a)->base(), (*a)->size());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), ErrorCode::INTERNAL_ERROR);
  char hex[32];
  std::snprintf(hex, sizeof hex, "0x%llx", static_cast<unsigned long long>((*a)->base()));
  EXPECT_NE(s.message().find(hex), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("already taken"), std::string::npos) << s.ToString();
  // A second arena of this process takes the next free address.
  Result<std::unique_ptr<SharedArena>> b = SharedArena::Make(1 << 20);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_NE((*b)->base(), (*a)->base());
}

// Freed ranges are reused (first fit, neighbours merged) and come back zeroed.
TEST(UcxProcessFabric, ArenaFreesMergeAndReuse) {
  Result<std::unique_ptr<SharedArena>> made = SharedArena::Make(1 << 20);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  SharedArena& a = **made;
  auto* x = static_cast<uint8_t*>(a.Allocate(256 << 10));
  auto* y = static_cast<uint8_t*>(a.Allocate(256 << 10));
  auto* z = static_cast<uint8_t*>(a.Allocate(512 << 10));
  ASSERT_NE(x, nullptr);
  ASSERT_NE(y, nullptr);
  ASSERT_NE(z, nullptr);
  EXPECT_EQ(reinterpret_cast<uint64_t>(x), a.base());
  EXPECT_EQ(y, x + (256 << 10));
  EXPECT_EQ(a.Allocate(64), nullptr);  // full
  std::memset(x, 0xAB, 512 << 10);
  a.Free(y, 256 << 10);
  a.Free(x, 256 << 10);  // merges with y's range
  auto* xy = static_cast<uint8_t*>(a.Allocate(512 << 10));
  ASSERT_EQ(xy, x);
  for (size_t i = 0; i < (512 << 10); ++i) ASSERT_EQ(xy[i], 0) << "byte " << i;
}

}  // namespace
}  // namespace tidal::backends::ucx
