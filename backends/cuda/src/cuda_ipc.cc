#include "cuda_ipc.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <new>
#include <thread>

#include "tidal/assert.h"

namespace tidal::backends::cuda::ipc {

BoardLock::BoardLock(Board* b) : b_(b) {
  int rc = pthread_mutex_lock(&b_->mu);
  if (rc == EOWNERDEAD) rc = pthread_mutex_consistent(&b_->mu);
  TIDAL_ASSERT_MSG(rc == 0, "cuda ipc: the board's mutex failed");
}

BoardLock::~BoardLock() {
  pthread_mutex_unlock(&b_->mu);
}

Status CreateBoard(const Identity& owner, int* fd, Board** board) {
  int f = memfd_create("tidal-cuda-board", MFD_CLOEXEC);
  if (f < 0) {
    return Status(ErrorCode::INTERNAL_ERROR,
                  std::string("cuda ipc: memfd_create failed: ") + std::strerror(errno));
  }
  if (ftruncate(f, sizeof(Board)) != 0) {
    const int e = errno;
    close(f);
    return Status(ErrorCode::INTERNAL_ERROR,
                  std::string("cuda ipc: ftruncate failed: ") + std::strerror(e));
  }
  void* p = mmap(nullptr, sizeof(Board), PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
  if (p == MAP_FAILED) {
    const int e = errno;
    close(f);
    return Status(ErrorCode::INTERNAL_ERROR,
                  std::string("cuda ipc: mmap failed: ") + std::strerror(e));
  }
  // A fresh memfd is zeroed: every slot is free. Construct the header fields in place.
  Board* b = static_cast<Board*>(p);
  b->magic = kBoardMagic;
  b->version = kBoardVersion;
  b->owner = owner;
  new (&b->alive) std::atomic<uint32_t>(1);
  b->next_generation = 1;
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(&b->mu, &a);
  pthread_mutexattr_destroy(&a);
  *fd = f;
  *board = b;
  return Status();
}

Result<Board*> OpenBoard(const Identity& owner, int fd) {
  const std::string path = "/proc/" + std::to_string(owner.pid) + "/fd/" + std::to_string(fd);
  int f = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (f < 0) {
    return Status(ErrorCode::PEER_UNREACHABLE,
                  "cuda ipc: cannot open the peer's board " + path + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (fstat(f, &st) != 0 || static_cast<size_t>(st.st_size) != sizeof(Board)) {
    close(f);
    return Status(ErrorCode::PEER_UNREACHABLE,
                  "cuda ipc: " + path + " is not a cuda board of this build (size differs)");
  }
  void* p = mmap(nullptr, sizeof(Board), PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
  close(f);
  if (p == MAP_FAILED) {
    return Status(ErrorCode::PEER_UNREACHABLE,
                  "cuda ipc: cannot map " + path + ": " + std::strerror(errno));
  }
  Board* b = static_cast<Board*>(p);
  if (b->magic != kBoardMagic || b->version != kBoardVersion || !(b->owner == owner)) {
    munmap(p, sizeof(Board));
    return Status(ErrorCode::PEER_UNREACHABLE,
                  "cuda ipc: " + path +
                      " is not the board of the transport the address names "
                      "(the process is gone and its pid was reused?)");
  }
  return b;
}

void CloseBoard(Board* board) {
  if (board != nullptr) munmap(board, sizeof(Board));
}

int FindSlot(const Board& board, uint64_t addr, uint64_t length, uint64_t rkey) {
  if (rkey == 0) return -1;
  for (size_t i = 0; i < kBoardRegions; ++i) {
    const Slot& s = board.slots[i];
    if (s.generation == 0 || s.rkey != rkey) continue;
    if (length <= s.length && addr >= s.addr && addr - s.addr <= s.length - length) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

bool AddPin(Slot& slot, const Identity& who) {
  Pin* free_pin = nullptr;
  for (Pin& p : slot.pins) {
    if (p.count > 0 && p.who == who) {
      ++p.count;
      return true;
    }
    if (p.count == 0 && free_pin == nullptr) free_pin = &p;
  }
  if (free_pin == nullptr) return false;
  free_pin->who = who;
  free_pin->count = 1;
  return true;
}

void DropPin(Slot& slot, const Identity& who) {
  for (Pin& p : slot.pins) {
    if (p.count > 0 && p.who == who) {
      --p.count;
      return;
    }
  }
}

sockaddr_un SocketAddress(const Identity& who, socklen_t* len) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  char name[96];
  const int n = std::snprintf(name, sizeof(name), "tidal-cuda:%d:%u:%016" PRIx64, who.pid,
                              who.serial, who.nonce);
  a.sun_path[0] = '\0';  // abstract: no file, gone with the last fd
  std::memcpy(a.sun_path + 1, name, static_cast<size_t>(n));
  *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
  return a;
}

int BindSocket(const Identity& who, std::string* error) {
  int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    *error = std::string("cuda ipc: socket failed: ") + std::strerror(errno);
    return -1;
  }
  socklen_t len = 0;
  sockaddr_un a = SocketAddress(who, &len);
  if (bind(s, reinterpret_cast<sockaddr*>(&a), len) != 0) {
    *error = std::string("cuda ipc: bind failed: ") + std::strerror(errno);
    close(s);
    return -1;
  }
  int buf = 4 << 20;
  setsockopt(s, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
  setsockopt(s, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
  return s;
}

bool Alive(int sock, const Identity& who) {
  socklen_t len = 0;
  sockaddr_un a = SocketAddress(who, &len);
  const char ping = static_cast<char>(kPingFrame);
  for (;;) {
    ssize_t n =
        sendto(sock, &ping, 1, MSG_DONTWAIT | MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&a), len);
    if (n == 1) return true;
    if (errno == EINTR) continue;
    // A full queue is a live (if busy) receiver; no socket at that name is a dead one.
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS;
  }
}

Status SendDatagram(int sock, const Identity& who, const std::string& frame) {
  socklen_t len = 0;
  sockaddr_un a = SocketAddress(who, &len);
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  for (;;) {
    ssize_t n = sendto(sock, frame.data(), frame.size(), MSG_DONTWAIT | MSG_NOSIGNAL,
                       reinterpret_cast<sockaddr*>(&a), len);
    if (n == static_cast<ssize_t>(frame.size())) return Status();
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) &&
        std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
      continue;
    }
    return Status(ErrorCode::PEER_UNREACHABLE,
                  "cuda ipc: notification to process " + std::to_string(who.pid) +
                      " not delivered: " + (n < 0 ? std::strerror(errno) : "short datagram"));
  }
}

size_t VmCopy(int pid, bool write_remote, void* local, uint64_t remote, size_t length, int* err) {
  size_t done = 0;
  *err = 0;
  while (done < length) {
    iovec l{static_cast<char*>(local) + done, length - done};
    iovec r{reinterpret_cast<void*>(remote + done), length - done};
    ssize_t n = write_remote ? process_vm_writev(pid, &l, 1, &r, 1, 0)
                             : process_vm_readv(pid, &l, 1, &r, 1, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *err = n < 0 ? errno : EFAULT;
      break;
    }
    done += static_cast<size_t>(n);
  }
  return done;
}

std::string FormatAddress(const Identity& who, int board_fd) {
  char buf[128];
  std::snprintf(buf, sizeof(buf), "cuda:%d:%u:%016" PRIx64 ":%d", who.pid, who.serial, who.nonce,
                board_fd);
  return buf;
}

bool ParseAddress(const std::string& address, Identity* who, int* board_fd) {
  int pid = 0, fd = -1, consumed = 0;
  unsigned serial = 0;
  unsigned long long nonce = 0;
  if (std::sscanf(address.c_str(), "cuda:%d:%u:%llx:%d%n", &pid, &serial, &nonce, &fd, &consumed) !=
          4 ||
      static_cast<size_t>(consumed) != address.size() || pid <= 0 || fd < 0) {
    return false;
  }
  who->pid = pid;
  who->serial = serial;
  who->nonce = nonce;
  *board_fd = fd;
  return true;
}

}  // namespace tidal::backends::cuda::ipc
