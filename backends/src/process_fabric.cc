// ProcessArena, FindHostBinary, ParseHostArgs and the framing of the process fabrics
// (ucx_proc, cuda_proc). The contracts are in process_fabric.h.
#include "tidal/backends/process_fabric.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <utility>
#include <vector>

#include "tidal/assert.h"

namespace tidal::backends::proc {

// ---- framing -----------------------------------------------------------------------------

bool WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool ReadAll(int fd, char* p, size_t n) {
  while (n > 0) {
    const ssize_t r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

bool SendFrame(int fd, uint8_t type, uint64_t id, std::string_view body) {
  std::string f;
  const uint32_t len = static_cast<uint32_t>(1 + 8 + body.size());
  f.reserve(4 + len);
  f.append(reinterpret_cast<const char*>(&len), 4);
  f.push_back(static_cast<char>(type));
  f.append(reinterpret_cast<const char*>(&id), 8);
  f.append(body);
  return WriteAll(fd, f.data(), f.size());
}

bool RecvFrame(int fd, uint8_t* type, uint64_t* id, std::string* body, std::string* why) {
  uint32_t len = 0;
  if (!ReadAll(fd, reinterpret_cast<char*>(&len), 4)) {
    *why = "connection closed";
    return false;
  }
  if (len < 9 || len - 9 > kMaxFrame) {
    *why = "malformed frame of length " + std::to_string(len);
    return false;
  }
  char head[9];
  if (!ReadAll(fd, head, 9)) {
    *why = "connection closed inside a frame";
    return false;
  }
  *type = static_cast<uint8_t>(head[0]);
  std::memcpy(id, head + 1, 8);
  body->resize(len - 9);
  if (!ReadAll(fd, body->data(), body->size())) {
    *why = "connection closed inside a frame";
    return false;
  }
  return true;
}

std::string DescribeWait(int wstatus) {
  if (WIFSIGNALED(wstatus)) {
    return "killed by signal " + std::to_string(WTERMSIG(wstatus)) + " (" +
           strsignal(WTERMSIG(wstatus)) + ")";
  }
  if (WIFEXITED(wstatus)) return "exited with status " + std::to_string(WEXITSTATUS(wstatus));
  return "ended (wait status " + std::to_string(wstatus) + ")";
}

std::string Hex(uint64_t v) {
  char b[32];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}

// ---- ProcessArena ------------------------------------------------------------------------

Status ProcessArena::MapNew(size_t* bytes_io, const ArenaPlacement& where, int* fd_out,
                            void** base_out) {
  const size_t bytes = (*bytes_io + 4095) & ~size_t{4095};
  if (bytes == 0 || bytes > where.stride) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "arena size " + std::to_string(bytes) + " is outside (0, 1 TiB]");
  }
  const int fd = ::memfd_create(where.memfd_name, MFD_CLOEXEC);
  if (fd < 0) {
    return Status(ErrorCode::INTERNAL_ERROR,
                  std::string("memfd_create for the node arena: ") + std::strerror(errno));
  }
  if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    const int e = errno;
    ::close(fd);
    return Status(
        ErrorCode::INTERNAL_ERROR,
        "ftruncate of the node arena to " + std::to_string(bytes) + " bytes: " + std::strerror(e));
  }
  for (int slot = 0; slot < where.slots; ++slot) {
    const uint64_t addr = where.first + static_cast<uint64_t>(slot) * where.stride;
    void* p = ::mmap(reinterpret_cast<void*>(addr), bytes, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
    if (p == MAP_FAILED) continue;
    if (reinterpret_cast<uint64_t>(p) != addr) {  // a kernel without MAP_FIXED_NOREPLACE
      ::munmap(p, bytes);
      continue;
    }
    *bytes_io = bytes;
    *fd_out = fd;
    *base_out = p;
    return Status();
  }
  ::close(fd);
  return Status(ErrorCode::INTERNAL_ERROR,
                "no free address for the node arena: every slot from " + Hex(where.first) +
                    " in steps of " + Hex(where.stride) + " (" + std::to_string(where.slots) +
                    " slots) is taken in this process");
}

ProcessArena::~ProcessArena() {
  ::munmap(base_, size_);
  ::close(fd_);
}

namespace {
size_t ArenaRound(size_t bytes) {
  return (std::max<size_t>(bytes, 1) + 63) & ~size_t{63};
}
}  // namespace

void* ProcessArena::Allocate(size_t bytes) {
  const size_t need = ArenaRound(bytes);
  uint8_t* p = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = free_.begin(); it != free_.end(); ++it) {
      if (it->second < need) continue;
      const size_t offset = it->first, length = it->second;
      free_.erase(it);
      if (length > need) free_[offset + need] = length - need;
      p = static_cast<uint8_t*>(base_) + offset;
      break;
    }
  }
  if (p != nullptr) std::memset(p, 0, need);  // reused ranges come back zeroed too
  return p;
}

void ProcessArena::Free(void* p, size_t bytes) {
  const size_t need = ArenaRound(bytes);
  const uint64_t at = reinterpret_cast<uint64_t>(p);
  TIDAL_ASSERT_MSG(at >= base() && at - base() <= size_ - need,
                   (std::string(class_name_) + "::Free: not ours").c_str());
  size_t offset = at - base();
  size_t length = need;
  std::lock_guard<std::mutex> lock(mu_);
  auto next = free_.lower_bound(offset);
  TIDAL_ASSERT_MSG(next == free_.end() || next->first >= offset + length,
                   (std::string(class_name_) + "::Free: range already free").c_str());
  if (next != free_.end() && next->first == offset + length) {
    length += next->second;
    next = free_.erase(next);
  }
  if (next != free_.begin()) {
    auto prev = std::prev(next);
    TIDAL_ASSERT_MSG(prev->first + prev->second <= offset,
                     (std::string(class_name_) + "::Free: range already free").c_str());
    if (prev->first + prev->second == offset) {
      offset = prev->first;
      length += prev->second;
      free_.erase(prev);
    }
  }
  free_[offset] = length;
}

Status ProcessArena::MapAt(int fd, uint64_t addr, size_t bytes) {
  void* p = ::mmap(reinterpret_cast<void*>(addr), bytes, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
  if (p == MAP_FAILED) {
    return Status(ErrorCode::INTERNAL_ERROR,
                  "cannot map the node arena at " + Hex(addr) + " (" + std::to_string(bytes) +
                      " bytes): " + std::strerror(errno) +
                      (errno == EEXIST ? " (that address is already taken in this process)" : ""));
  }
  if (reinterpret_cast<uint64_t>(p) != addr) {
    ::munmap(p, bytes);
    return Status(ErrorCode::INTERNAL_ERROR,
                  "cannot map the node arena at " + Hex(addr) +
                      ": the kernel placed it elsewhere (no MAP_FIXED_NOREPLACE)");
  }
  return Status();
}

// ---- the node-process binary -------------------------------------------------------------

Result<std::string> FindHostBinary(const HostBinary& binary) {
  std::vector<std::string> tried;
  if (const char* env = std::getenv(binary.env_var); env != nullptr && *env != '\0') {
    if (::access(env, X_OK) == 0) return std::string(env);
    return Status(ErrorCode::INVALID_PARAMS, std::string(binary.env_var) + " names " + env +
                                                 ", which is not an executable");
  }
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const std::string beside = (self.parent_path() / binary.name).string();
    if (::access(beside.c_str(), X_OK) == 0) return beside;
    tried.push_back(beside);
  }
  const std::string built = binary.build_path;
  if (!built.empty()) {
    if (::access(built.c_str(), X_OK) == 0) return built;
    tried.push_back(built);
  }
  std::string list;
  for (const std::string& t : tried) list += (list.empty() ? "" : ", ") + t;
  return Status(ErrorCode::INVALID_PARAMS, std::string("the node-process binary ") +
                                               binary.name + " was not found (set " +
                                               binary.env_var + "; looked at: " + list + ")");
}

// ---- the node process's command line -----------------------------------------------------

namespace {

bool ParseU64(const char* text, uint64_t* out) {
  if (text == nullptr || *text == '\0') return false;
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (errno != 0 || *end != '\0' || text[0] == '-') return false;
  *out = v;
  return true;
}

}  // namespace

bool ParseHostArgs(int argc, char** argv, const char* program, const char* usage,
                   std::map<std::string, uint64_t>* args) {
  std::map<std::string, bool> seen;
  for (int i = 1; i < argc; i += 2) {
    auto it = args->find(argv[i]);
    if (it == args->end() || i + 1 >= argc || !ParseU64(argv[i + 1], &it->second)) {
      std::fprintf(stderr, "%s: bad argument '%s' (%s)\n", program, argv[i], usage);
      return false;
    }
    seen[argv[i]] = true;
  }
  for (const auto& [name, value] : *args) {
    if (!seen[name]) {
      std::fprintf(stderr, "%s: missing %s\n", program, name.c_str());
      return false;
    }
  }
  return true;
}

// ---- NodeProcess -------------------------------------------------------------------------

Status NodeProcess::Launch(std::string path, Result<std::string> (*find)(),
                           const std::vector<std::string>& args_after_path, int arena_fd) {
  if (path.empty()) {
    Result<std::string> found = find();
    if (!found.ok()) return found.status();
    path = *found;
  } else if (::access(path.c_str(), X_OK) != 0) {
    return Status(ErrorCode::INVALID_PARAMS, "node-process binary " + path + " is not executable");
  }
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return Status(ErrorCode::INTERNAL_ERROR, std::string("socketpair: ") + std::strerror(errno));
  }
  // Everything exec needs is built before fork: after it only async-signal-safe calls.
  std::vector<std::string> args = {path};
  args.insert(args.end(), args_after_path.begin(), args_after_path.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int e = errno;
    ::close(sv[0]);
    ::close(sv[1]);
    return Status(ErrorCode::INTERNAL_ERROR, std::string("fork: ") + std::strerror(e));
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);  // the parent died before prctl
    // The socket becomes fd 3 and the arena fd 4 (dup2 clears close-on-exec).
    const int s = ::fcntl(sv[1], F_DUPFD, 10);
    const int a = ::fcntl(arena_fd, F_DUPFD, 10);
    if (s < 0 || a < 0 || ::dup2(s, 3) < 0 || ::dup2(a, 4) < 0) ::_exit(125);
    // Nothing else of the parent's stays open in the child (its UCX or CUDA and test fds).
    ::close_range(5, ~0U, 0);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(sv[1]);
  sock_ = sv[0];
  pid_ = pid;
  path_ = path;
  return Status();
}

Status NodeProcess::AwaitHello(bool unsupported_is_kept) {
  const std::string& path = path_;
  // The hello: the child mapped the arena and readied its transport (or says why not).
  uint8_t type = 0;
  uint64_t id = 0;
  std::string body, why;
  if (!RecvFrame(sock_, &type, &id, &body, &why) || type != kHello) {
    int ws = 0;
    ::waitpid(pid_, &ws, 0);
    gone_ = true;
    exit_reason_ = DescribeWait(ws);
    return Status(ErrorCode::INTERNAL_ERROR,
                  "node " + std::to_string(node_) + " process " + path + " (pid " +
                      std::to_string(pid_) + ") did not start: " + exit_reason_ +
                      (WIFEXITED(ws) && WEXITSTATUS(ws) == 127 ? " (exec failed)" : ""));
  }
  Reader r(body);
  Status hello = r.St();
  if (!hello.ok()) {
    int ws = 0;
    ::waitpid(pid_, &ws, 0);
    gone_ = true;
    exit_reason_ = DescribeWait(ws);
    const std::string who =
        "node " + std::to_string(node_) + " process (pid " + std::to_string(pid_) + "): ";
    if (!unsupported_is_kept) return Status(ErrorCode::INTERNAL_ERROR, who + hello.ToString());
    // A child that cannot ready its device says UNSUPPORTED (suites skip, naming it).
    const ErrorCode code = hello.code() == ErrorCode::UNSUPPORTED ? ErrorCode::UNSUPPORTED
                                                                  : ErrorCode::INTERNAL_ERROR;
    return Status(code, who + hello.message());
  }
  reader_ = std::thread([this] { ReaderLoop(); });
  return Status();
}

NodeProcess::~NodeProcess() {
  Stop();
}

void NodeProcess::Stop() {
  if (reader_.joinable()) {
    if (!gone_) {
      // Asks the child to leave (end of stream), then makes sure of it.
      killed_ = true;
      ::shutdown(sock_, SHUT_WR);
      std::unique_lock<std::mutex> lock(mu_);
      if (!cv_.wait_for(lock, std::chrono::seconds(2), [&] { return gone_.load(); })) {
        lock.unlock();
        ::kill(pid_, SIGKILL);
      }
    }
    reader_.join();
  } else if (pid_ > 0 && !gone_) {
    // Launched, never awaited (another node failed to start first): ended here.
    ::kill(pid_, SIGKILL);
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
    gone_ = true;
  }
  if (sock_ >= 0) ::close(sock_);
  sock_ = -1;
}

std::string NodeProcess::exit_reason() const {
  std::lock_guard<std::mutex> lock(mu_);
  return exit_reason_;
}

Status NodeProcess::GoneStatus() const {
  std::lock_guard<std::mutex> lock(mu_);
  return Status(ErrorCode::PEER_UNREACHABLE, "node " + std::to_string(node_) + " process (pid " +
                                                 std::to_string(pid_) +
                                                 ") is gone: " + exit_reason_);
}

void NodeProcess::ReaderLoop() {
  std::string why;
  for (;;) {
    uint8_t type = 0;
    uint64_t id = 0;
    std::string body;
    if (!RecvFrame(sock_, &type, &id, &body, &why)) break;
    if (type == kReply) {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = replies_.find(id);
      if (it == replies_.end()) {
        why = "a reply to no request (" + std::to_string(id) + ")";
        break;
      }
      it->second.done = true;
      it->second.body = std::move(body);
      cv_.notify_all();
      continue;
    }
    if (type != kEvents) {
      why = "unexpected message type " + std::to_string(type);
      break;
    }
    Reader r(body);
    std::vector<TransportCompletion> cs;
    const uint32_t nc = r.U32();
    if (!r.ok() || nc > body.size() / 20) {
      why = "malformed completion list";
      break;
    }
    for (uint32_t i = 0; i < nc; ++i) {
      TransportCompletion c;
      c.task_id = r.U64();
      c.code = static_cast<ErrorCode>(r.I32());
      c.bytes_transferred = r.U64();
      cs.push_back(c);
    }
    const uint32_t nn = r.U32();
    if (!r.ok() || nn > body.size() / 8) {
      why = "malformed notification list";
      break;
    }
    std::vector<Notification> ns;
    for (uint32_t i = 0; i < nn; ++i) {
      Notification n;
      n.source = r.Str();
      n.payload = r.Str();
      ns.push_back(std::move(n));
    }
    if (!r.done()) {
      why = "malformed event frame";
      break;
    }
    std::function<void()> ready;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const TransportCompletion& c : cs) {
        outstanding_.erase(c.task_id);
        completions_.push_back(c);
      }
      for (Notification& n : ns) notifies_.push_back(std::move(n));
      ready = on_ready_;
    }
    if (ready) ready();
  }
  Lost(why);
}

void NodeProcess::Lost(const std::string& why) {
  // A child that broke the protocol is ended here; one that closed is reaped.
  if (why != "connection closed") ::kill(pid_, SIGKILL);
  int ws = 0;
  while (::waitpid(pid_, &ws, 0) < 0 && errno == EINTR) {
  }
  const std::string how = DescribeWait(ws);
  if (!killed_) {
    std::fprintf(stderr,
                 "%s: node %zu (pid %d) ended unexpectedly: %s (%s); its tasks "
                 "fail PEER_UNREACHABLE\n",
                 program_, node_, static_cast<int>(pid_), how.c_str(), why.c_str());
  }
  std::function<void()> ready;
  {
    std::lock_guard<std::mutex> lock(mu_);
    exit_reason_ = how;
    for (uint64_t task : outstanding_) {
      completions_.push_back(TransportCompletion{task, ErrorCode::PEER_UNREACHABLE, 0});
    }
    outstanding_.clear();
    gone_ = true;
    cv_.notify_all();
    ready = on_ready_;
  }
  if (ready) ready();
}

void NodeProcess::Kill() {
  if (pid_ <= 0 || gone_) return;
  killed_ = true;
  ::kill(pid_, SIGKILL);
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return gone_.load(); });
}

Result<std::string> NodeProcess::Call(uint8_t type, const std::string& body) {
  if (gone_) return GoneStatus();
  uint64_t id = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    id = next_id_++;
    replies_[id] = Reply{};
  }
  bool sent = false;
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    sent = SendFrame(sock_, type, id, body);
  }
  std::unique_lock<std::mutex> lock(mu_);
  if (sent) {
    (void)cv_.wait_for(lock, std::chrono::milliseconds(call_timeout_ms_),
                       [&] { return replies_[id].done || gone_.load(); });
  }
  Reply reply = std::move(replies_[id]);
  replies_.erase(id);
  if (reply.done) return std::move(reply.body);
  if (gone_ || !sent) {
    lock.unlock();
    if (!sent) Kill();  // the socket failed: make sure the child is gone, then say so
    return GoneStatus();
  }
  lock.unlock();
  Kill();
  return Status(ErrorCode::PEER_UNREACHABLE, "node " + std::to_string(node_) + " process (pid " +
                                                 std::to_string(pid_) + ") did not answer within " +
                                                 std::to_string(call_timeout_ms_) +
                                                 " ms; it was killed");
}

// ---- the requests every proxy forwards ---------------------------------------------------

Result<uint64_t> NodeProcess::ForwardRegister(uint64_t addr, uint64_t length, Location loc) {
  Writer w;
  w.U64(addr);
  w.U64(length);
  w.U8(static_cast<uint8_t>(loc.kind));
  w.I32(loc.device);
  Result<std::string> reply = Call(kRegister, w.out());
  if (!reply.ok()) return reply.status();
  Reader r(*reply);
  Status s = r.St();
  const uint64_t key = r.U64();
  if (!r.done()) return Status(ErrorCode::INTERNAL_ERROR, "malformed register reply");
  if (!s.ok()) return s;
  return key;
}

Status NodeProcess::ForwardUnregister(uint64_t addr, uint64_t length) {
  Writer w;
  w.U64(addr);
  w.U64(length);
  Result<std::string> reply = Call(kUnregister, w.out());
  if (!reply.ok()) return reply.status();
  Reader r(*reply);
  Status s = r.St();
  if (!r.done()) return Status(ErrorCode::INTERNAL_ERROR, "malformed unregister reply");
  return s;
}

Result<PeerId> NodeProcess::ForwardConnect(const SegmentDescriptor& peer) {
  Writer w;
  w.Str(EncodeSegment(peer));
  Result<std::string> reply = Call(kConnect, w.out());
  if (!reply.ok()) return reply.status();
  Reader r(*reply);
  Status s = r.St();
  const uint32_t id = r.U32();
  if (!r.done()) return Status(ErrorCode::INTERNAL_ERROR, "malformed connect reply");
  if (!s.ok()) return s;
  return static_cast<PeerId>(id);
}

void NodeProcess::ForwardSubmit(std::span<const TransportTask> tasks,
                                std::span<Status> accepted) {
  Writer w;
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
  // Ids are recorded as outstanding before the child can complete them (its events
  // follow its reply, and the reader may queue them before this thread wakes up), and
  // withdrawn below for the tasks it rejected.
  std::vector<bool> fresh(tasks.size(), false);
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < tasks.size(); ++i)
      fresh[i] = outstanding_.insert(tasks[i].task_id).second;
  }
  Result<std::string> reply = Call(kSubmit, w.out());
  Status fail;
  if (!reply.ok()) fail = reply.status();
  std::vector<Status> st(tasks.size(), fail);
  if (fail.ok()) {
    Reader r(*reply);
    const uint32_t n = r.U32();
    if (r.ok() && n == tasks.size()) {
      for (size_t i = 0; i < tasks.size(); ++i) st[i] = r.St();
    }
    if (!r.done() || n != tasks.size()) {
      st.assign(tasks.size(), Status(ErrorCode::INTERNAL_ERROR, "malformed submit reply"));
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < tasks.size(); ++i) {
    accepted[i] = st[i];
    if (st[i].ok() || !fresh[i]) continue;
    // A rejected task has no completion: withdrawn from the outstanding set, and from the
    // completions Lost queued if the child died during this call.
    const uint64_t id = tasks[i].task_id;
    outstanding_.erase(id);
    std::erase_if(completions_, [id](const TransportCompletion& c) { return c.task_id == id; });
  }
}

size_t NodeProcess::DrainCompletions(std::span<TransportCompletion> out) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  while (n < out.size() && !completions_.empty()) {
    out[n++] = completions_.front();
    completions_.pop_front();
  }
  return n;
}

Status NodeProcess::ForwardCancel(uint64_t task_id) {
  // The proxy knows every task it has not reported: one whose completion already came
  // back (or was made by Lost) is finished, which Cancel accepts; an id it never accepted
  // is INVALID_PARAMS without asking the child.
  {
    std::lock_guard<std::mutex> lock(mu_);
    const bool queued =
        std::any_of(completions_.begin(), completions_.end(),
                    [&](const TransportCompletion& c) { return c.task_id == task_id; });
    if (queued) return Status();
    if (outstanding_.count(task_id) == 0) {
      return Status(ErrorCode::INVALID_PARAMS, "no outstanding task " + std::to_string(task_id));
    }
  }
  Writer w;
  w.U64(task_id);
  Result<std::string> reply = Call(kCancel, w.out());
  // The child died during the call: Lost completed the task.
  if (!reply.ok()) return gone_ ? Status() : reply.status();
  Reader r(*reply);
  Status s = r.St();
  if (!r.done()) return Status(ErrorCode::INTERNAL_ERROR, "malformed cancel reply");
  // The child no longer knows it: it finished and its completion is on its way here.
  if (s.code() == ErrorCode::INVALID_PARAMS) return Status();
  return s;
}

Status NodeProcess::ForwardNotify(PeerId peer, std::string_view payload) {
  Writer w;
  w.U32(peer);
  w.Str(payload);
  Result<std::string> reply = Call(kNotify, w.out());
  if (!reply.ok()) return reply.status();
  Reader r(*reply);
  Status s = r.St();
  if (!r.done()) return Status(ErrorCode::INTERNAL_ERROR, "malformed notify reply");
  return s;
}

size_t NodeProcess::DrainNotifies(std::vector<Notification>& out, size_t max) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  while (n < max && !notifies_.empty()) {
    out.push_back(std::move(notifies_.front()));
    notifies_.pop_front();
    ++n;
  }
  return n;
}

// ---- the node process's side ------------------------------------------------------------

NodeHost::NodeHost(int sock, const char* program, std::string env_name)
    : env_(std::move(env_name)), sock_(sock), program_(program) {
  env_.AddPoster();  // the reader thread posts
}

NodeHost::~NodeHost() = default;

int NodeHost::Run() {
  std::thread reader([this] { Read(); });
  env_.RunUntil([&] { return quit_; });
  ::shutdown(sock_, SHUT_RDWR);
  reader.join();
  env_.RemovePoster();
  return exit_code_;
}

void NodeHost::Read() {
  std::string why;
  for (;;) {
    auto frame = std::make_shared<std::pair<uint8_t, std::pair<uint64_t, std::string>>>();
    if (!RecvFrame(sock_, &frame->first, &frame->second.first, &frame->second.second, &why)) {
      break;
    }
    env_.Post([this, frame] {
      if (!Handle(frame->first, frame->second.first, frame->second.second)) {
        exit_code_ = 3;
        quit_ = true;
      }
    });
  }
  if (why != "connection closed") {
    std::fprintf(stderr, "%s: %s from the parent\n", program_, why.c_str());
  }
  env_.Post([this, bad = why != "connection closed"] {
    if (bad) exit_code_ = 3;
    quit_ = true;
  });
}

void NodeHost::Reply(uint64_t id, Writer& w) {
  if (!SendFrame(sock_, kReply, id, w.out())) quit_ = true;
}

// Sends what the transport has ready (on the Env's thread).
void NodeHost::Drain() {
  drain_posted_ = false;
  std::vector<TransportCompletion> cs(256);
  Writer w;
  std::string completions;
  uint32_t nc = 0;
  for (;;) {
    const size_t n = transport_->PollCompletions(cs);
    for (size_t i = 0; i < n; ++i) {
      Writer c;
      c.U64(cs[i].task_id);
      c.I32(static_cast<int32_t>(cs[i].code));
      c.U64(cs[i].bytes_transferred);
      completions += c.out();
    }
    nc += static_cast<uint32_t>(n);
    if (n < cs.size()) break;
  }
  std::vector<Notification> ns;
  while (transport_->PollNotifies(ns, 256) > 0) {
  }
  if (nc == 0 && ns.empty()) return;
  w.U32(nc);
  w.out() += completions;
  w.U32(static_cast<uint32_t>(ns.size()));
  for (const Notification& n : ns) {
    w.Str(n.source);
    w.Str(n.payload);
  }
  if (!SendFrame(sock_, kEvents, 0, w.out())) quit_ = true;
}

bool NodeHost::Handle(uint8_t type, uint64_t id, const std::string& body) {
  Reader r(body);
  Writer w;
  switch (type) {
    case kInstall: {
      TransportInstall install;
      install.env = &env_;
      install.segment_name = r.Str();
      if (!r.done()) return false;
      install.on_ready = [this] {
        if (!drain_posted_.exchange(true)) env_.Post([this] { Drain(); });
      };
      Status s = transport_->Install(install);
      w.St(s);
      w.Str(s.ok() ? transport_->LocalAddress() : std::string());
      InstallReply(w);
      break;
    }
    case kRegister: {
      const uint64_t addr = r.U64(), len = r.U64();
      Location loc;
      loc.kind = static_cast<Location::Kind>(r.U8());
      loc.device = r.I32();
      if (!r.done()) return false;
      Result<uint64_t> key = transport_->RegisterMemory(addr, len, loc);
      w.St(key.status());
      w.U64(key.ok() ? *key : 0);
      break;
    }
    case kUnregister: {
      const uint64_t addr = r.U64(), len = r.U64();
      if (!r.done()) return false;
      w.St(transport_->UnregisterMemory(addr, len));
      break;
    }
    case kConnect: {
      const std::string encoded = r.Str();
      if (!r.done()) return false;
      Result<SegmentDescriptor> d = DecodeSegment(encoded);
      if (!d.ok()) {
        w.St(d.status());
        w.U32(0);
        break;
      }
      Result<PeerId> peer = transport_->Connect(*d);
      w.St(peer.status());
      w.U32(peer.ok() ? *peer : 0);
      break;
    }
    case kSubmit: {
      const uint32_t n = r.U32();
      if (!r.ok() || n > body.size() / 45) return false;
      std::vector<TransportTask> tasks(n);
      for (TransportTask& t : tasks) {
        t.task_id = r.U64();
        t.kind = static_cast<TransportTask::Kind>(r.U8());
        t.peer = r.U32();
        t.local_addr = r.U64();
        t.remote_addr = r.U64();
        t.length = r.U64();
        t.rkey = r.U64();
        if (static_cast<uint8_t>(t.kind) > 2) return false;
      }
      if (!r.done()) return false;
      std::vector<Status> accepted(n);
      transport_->Submit(tasks, accepted);
      w.U32(n);
      for (const Status& s : accepted) w.St(s);
      break;
    }
    case kCancel: {
      const uint64_t task = r.U64();
      if (!r.done()) return false;
      w.St(transport_->Cancel(task));
      break;
    }
    case kNotify: {
      const uint32_t peer = r.U32();
      const std::string payload = r.Str();
      if (!r.done()) return false;
      w.St(transport_->SendNotify(peer, payload));
      break;
    }
    default:
      if (!HandleOwn(type, r, w, body)) return false;
      break;
  }
  Reply(id, w);
  return true;
}

bool NodeHost::Unknown(uint8_t type) {
  std::fprintf(stderr, "%s: unknown request type %u\n", program_, type);
  return false;
}

}  // namespace tidal::backends::proc
