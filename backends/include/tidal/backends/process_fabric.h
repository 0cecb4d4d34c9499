// The parts every "nodes as processes" fabric shares (ucx_proc, cuda_proc): the arena of
// memory mapped at one fixed address in the parent and in every node process, the lookup
// of the node-process binary, the framed socket protocol's encoding (Writer, Reader,
// SendFrame, RecvFrame) and the node process's command line. Nothing here depends on UCX
// or CUDA; each fabric supplies its own parameters (addresses, names, message types).
//
// Wire format (both directions): frames of `u32 length` (of what follows, at most
// kMaxFrame) then `u8 type, u64 id` and a type-specific body of little-endian integers
// and u32-length-prefixed strings, written with Writer and read with Reader.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "tidal/backends/real_env.h"
#include "tidal/status.h"
#include "tidal/segment.h"
#include "tidal/transport.h"

namespace tidal::backends::proc {

// ---- the shared arena --------------------------------------------------------------------

// Where a fabric's arenas may be mapped: `slots` fixed addresses from `first`, `stride`
// apart, tried in order (the same list in every process), and the memfd's name.
struct ArenaPlacement {
  uint64_t first;
  uint64_t stride;  // also the largest arena
  int slots;
  const char* memfd_name;  // as /proc/<pid>/maps shows it ("tidal-ucx-arena")
  const char* class_name;  // names the arena in abort messages ("SharedArena")
};

// Memory shared by the parent and every node process at one address. Allocations are
// 64-byte aligned, first fit from a free list (freed neighbours merge), and zeroed.
// Thread-safe. A fabric derives its own arena type and makes it with MapNew.
class ProcessArena {
 public:
  ~ProcessArena();
  ProcessArena(const ProcessArena&) = delete;
  ProcessArena& operator=(const ProcessArena&) = delete;

  // nullptr when no free range is large enough.
  void* Allocate(size_t bytes);
  // Gives back what Allocate returned for `bytes` (aborts on a range it never gave).
  void Free(void* p, size_t bytes);
  int fd() const { return fd_; }
  uint64_t base() const { return reinterpret_cast<uint64_t>(base_); }
  size_t size() const { return size_; }
  // Whether [addr, addr + len) lies inside the arena.
  bool Contains(uint64_t addr, uint64_t len) const {
    return addr >= base() && len <= size_ && addr - base() <= size_ - len;
  }

  // In a child: maps the arena passed as `fd` at exactly `addr`. INTERNAL_ERROR names the
  // address when something else is mapped there.
  static Status MapAt(int fd, uint64_t addr, size_t bytes);

 protected:
  // Makes a memfd of `*bytes` (rounded up to whole pages, written back) and maps it at the
  // first free address of `where`; `*fd` and `*base` are the result. INVALID_PARAMS when
  // the size is outside (0, stride]; INTERNAL_ERROR names the addresses tried when none is
  // free.
  static Status MapNew(size_t* bytes, const ArenaPlacement& where, int* fd, void** base);
  ProcessArena(int fd, void* base, size_t size, const char* class_name)
      : fd_(fd), base_(base), size_(size), class_name_(class_name) {
    free_[0] = size;
  }

 private:
  int fd_;
  void* base_;
  size_t size_;
  const char* class_name_;
  std::mutex mu_;
  std::map<size_t, size_t> free_;  // offset -> length of each free range; guarded by mu_
};

// ---- the node-process binary -------------------------------------------------------------

// How a fabric finds its node-process binary.
struct HostBinary {
  const char* name;        // "tidal-ucx-host"
  const char* env_var;     // "TIDAL_UCX_HOST"
  const char* build_path;  // the path the build configured; "" for none
};

// $env_var if set, else `name` next to the running executable, else build_path.
// INVALID_PARAMS naming every place looked at when none exists, or the variable when it
// names no executable.
Result<std::string> FindHostBinary(const HostBinary& binary);

// The node process's command line: `--name value` pairs of unsigned decimal integers, all
// of those in `*args` (their names) required. False after printing
// "<program>: bad argument '<arg>' (<usage>)" or "<program>: missing <name>" to stderr.
bool ParseHostArgs(int argc, char** argv, const char* program, const char* usage,
                   std::map<std::string, uint64_t>* args);

// ---- framing -----------------------------------------------------------------------------

constexpr uint32_t kMaxFrame = 64u << 20;  // a frame body never exceeds this

// The frame types every process fabric shares; a fabric numbers its own requests from
// kFirstOwn (`using enum proc::FrameType;` then its own enum starting there).
enum FrameType : uint8_t {
  kHello = 1,      // child -> parent, id 0: status of the arena mapping
  kReply = 2,      // child -> parent: the answer to request `id`
  kEvents = 3,     // child -> parent, id 0: completions and notifications
  kInstall = 10,   // parent -> child from here: the Transport calls
  kRegister = 11,
  kUnregister = 12,
  kConnect = 13,
  kSubmit = 14,
  kCancel = 15,
  kNotify = 16,
  kFirstOwn = 17,  // the first number of a fabric's own requests
};

class Writer {
 public:
  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void U32(uint32_t v) { Raw(&v, 4); }
  void U64(uint64_t v) { Raw(&v, 8); }
  void I32(int32_t v) { Raw(&v, 4); }
  void Str(std::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }
  void St(const Status& s) {
    I32(static_cast<int32_t>(s.code()));
    Str(s.ok() ? std::string_view() : std::string_view(s.message()));
  }
  std::string& out() { return out_; }

 private:
  void Raw(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  std::string out_;
};

// Reads a body; every read checks the remaining length, and ok() stays false after the
// first short one.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  uint8_t U8() {
    uint8_t v = 0;
    Raw(&v, 1);
    return v;
  }
  uint32_t U32() {
    uint32_t v = 0;
    Raw(&v, 4);
    return v;
  }
  uint64_t U64() {
    uint64_t v = 0;
    Raw(&v, 8);
    return v;
  }
  int32_t I32() {
    int32_t v = 0;
    Raw(&v, 4);
    return v;
  }
  std::string Str() {
    const uint32_t n = U32();
    if (!ok_ || n > in_.size()) {
      ok_ = false;
      return {};
    }
    std::string s(in_.substr(0, n));
    in_.remove_prefix(n);
    return s;
  }
  Status St() {
    const int32_t code = I32();
    std::string msg = Str();
    if (code == 0) return Status();
    return Status(static_cast<ErrorCode>(code), std::move(msg));
  }
  bool ok() const { return ok_; }
  bool done() const { return ok_ && in_.empty(); }

 private:
  void Raw(void* p, size_t n) {
    if (!ok_ || in_.size() < n) {
      ok_ = false;
      return;
    }
    std::memcpy(p, in_.data(), n);
    in_.remove_prefix(n);
  }
  std::string_view in_;
  bool ok_ = true;
};

// Whole writes and reads on a socket, retried on EINTR; false when it closed or failed.
bool WriteAll(int fd, const char* p, size_t n);
bool ReadAll(int fd, char* p, size_t n);

bool SendFrame(int fd, uint8_t type, uint64_t id, std::string_view body);
// False at end of stream or on a malformed frame (`why` says which).
bool RecvFrame(int fd, uint8_t* type, uint64_t* id, std::string* body, std::string* why);

// How a reaped child ended: "killed by signal 9 (Killed)", "exited with status 1".
std::string DescribeWait(int wstatus);
// "0x2000..." (lower-case hex).
std::string Hex(uint64_t v);

// ---- the parent's side of one node process -----------------------------------------------

// One node process as its proxy transport sees it: fork+exec of the binary (the socket as
// fd 3, the arena's memfd as fd 4, PR_SET_PDEATHSIG), the hello, request/reply round
// trips (Call), and a reader thread that takes the child's replies and its pushed events
// (completions and notifications, kept in completions_ and notifies_ for the proxy to
// drain). When the child is gone (killed, died, broke the protocol) every outstanding task
// completes PEER_UNREACHABLE and every later Call answers PEER_UNREACHABLE. A proxy
// transport derives from it and calls Stop in its own destructor (the reader thread may
// call on_ready_ until then, and that may reach the proxy).
class NodeProcess {
 public:
  NodeProcess(const NodeProcess&) = delete;
  NodeProcess& operator=(const NodeProcess&) = delete;

  // SIGKILLs the child and reaps it; outstanding tasks complete PEER_UNREACHABLE. Any thread.
  void Kill();
  pid_t pid() const { return pid_; }
  // False once the child is gone (killed, or died on its own).
  bool alive() const { return !gone_.load(); }
  // How the child ended ("killed by signal 9 (Killed)", "exited with status 1"); empty
  // while alive.
  std::string exit_reason() const;

 protected:
  // `node` names the child in messages, `program` ("tidal-ucx-host") in the report of an
  // unexpected end; a Call waits `call_timeout_ms` for its reply before the child is killed.
  NodeProcess(size_t node, const char* program, uint64_t call_timeout_ms)
      : node_(node), program_(program), call_timeout_ms_(call_timeout_ms) {}
  ~NodeProcess();  // Stop()

  // Asks the child to leave (end of stream; SIGKILL after 2 s), joins the reader and
  // closes the socket; a child launched but never awaited is killed and reaped. Idempotent.
  void Stop();

  // Forks and execs `path` (empty: what `find` returns) with `args` after it, the socket
  // as fd 3 and `arena_fd` as fd 4. INVALID_PARAMS when the binary is not executable.
  Status Launch(std::string path, Result<std::string> (*find)(),
                const std::vector<std::string>& args, int arena_fd);
  // Waits for the launched child's hello and starts the reader thread. INTERNAL_ERROR
  // with the child's reason when it did not start; a child that says UNSUPPORTED is
  // UNSUPPORTED when `unsupported_is_kept` (else every refusal is INTERNAL_ERROR with the
  // child's whole status).
  Status AwaitHello(bool unsupported_is_kept);

  // A request and its reply's body. PEER_UNREACHABLE when the child is gone or does not
  // answer within the timeout (then it is killed).
  Result<std::string> Call(uint8_t type, const std::string& body);
  Status GoneStatus() const;

  // The Transport calls every proxy forwards as they are, each a round trip (Register
  // after the proxy checked the range is memory the child has); Drain* hand out what the
  // child pushed. Cancel of a task whose completion is queued, or that the child no
  // longer knows, is OK; of one never accepted INVALID_PARAMS without asking the child.
  Result<uint64_t> ForwardRegister(uint64_t addr, uint64_t length, Location loc);
  Status ForwardUnregister(uint64_t addr, uint64_t length);
  Result<PeerId> ForwardConnect(const SegmentDescriptor& peer);
  void ForwardSubmit(std::span<const TransportTask> tasks, std::span<Status> accepted);
  size_t DrainCompletions(std::span<TransportCompletion> out);
  Status ForwardCancel(uint64_t task_id);
  Status ForwardNotify(PeerId peer, std::string_view payload);
  size_t DrainNotifies(std::vector<Notification>& out, size_t max);

  const size_t node_;
  std::function<void()> on_ready_;  // set by Install before the child can push events

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<TransportCompletion> completions_;  // guarded by mu_
  std::deque<Notification> notifies_;            // guarded by mu_
  std::set<uint64_t> outstanding_;               // accepted, not completed; mu_
  std::atomic<bool> gone_{false};

 private:
  struct Reply {
    bool done = false;
    std::string body;
  };
  void ReaderLoop();
  void Lost(const std::string& why);  // the child is gone: fail everything pending

  const char* program_;
  const uint64_t call_timeout_ms_;
  pid_t pid_ = -1;
  int sock_ = -1;
  std::string path_;  // the binary Launch started
  std::thread reader_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, Reply> replies_;  // guarded by mu_
  std::string exit_reason_;            // mu_
  std::atomic<bool> killed_{false};
  std::mutex write_mu_;
};

// ---- the node process's side -------------------------------------------------------------

// One node process: a Transport on its own RealEnv, serving the parent's requests on the
// Env's thread (the executor, as the Transport contract requires). A reader thread posts
// each request; replies and events (completions and notifications, pushed whenever the
// transport signals them) are written from the Env's thread only. The shared requests
// (kInstall to kNotify) are answered here; a fabric's own go to HandleOwn.
class NodeHost {
 public:
  NodeHost(const NodeHost&) = delete;
  NodeHost& operator=(const NodeHost&) = delete;

  // Serves the parent until it closes the socket. The process exit status: 0, or 3 when
  // the parent broke the protocol.
  int Run();

 protected:
  // `program` ("tidal-ucx-host") prefixes messages on stderr; `env_name` names the Env.
  NodeHost(int sock, const char* program, std::string env_name);
  virtual ~NodeHost();

  // A request of the fabric's own (numbered from 17), body in `r` (all of it: `body`),
  // answer into `w`. False on a malformed request, which ends the process (status 3);
  // an unknown type is `return Unknown(type)`.
  virtual bool HandleOwn(uint8_t type, Reader& r, Writer& w, const std::string& body) = 0;
  // What the install reply carries after the transport's address (nothing by default).
  virtual void InstallReply(Writer& w) { (void)w; }
  bool Unknown(uint8_t type);  // reports the type on stderr; false
  // Sends what the transport has ready (on the Env's thread).
  void Drain();

  RealEnv env_;
  Transport* transport_ = nullptr;  // set by the derived class before Run

 private:
  void Read();
  void Reply(uint64_t id, Writer& w);
  bool Handle(uint8_t type, uint64_t id, const std::string& body);

  int sock_;
  const char* program_;
  bool quit_ = false;
  int exit_code_ = 0;
  std::atomic<bool> drain_posted_{false};
};

}  // namespace tidal::backends::proc
