// The cross-process half of CudaTransport (internal to backends/cuda).
//
// Every installed CudaTransport owns a *board*: a memfd-backed shared table of the regions it
// registered, which peers in other processes of the host map through
// /proc/<pid>/fd/<fd> (the fd number and the pid are in the transport's address). A slot
// holds what a peer needs to reach the region and what the target needs to protect it:
//  * the window and remote key (the target-side check runs against this table, under its
//    process-shared robust mutex, exactly as an in-process peer checks the registry);
//  * for cudaMalloc memory, the CUDA IPC handle of its allocation, the region's offset in
//    it and the device's PCI bus id (device ordinals differ between processes);
//  * the pins of copies in flight, one entry per initiating transport: the owner's
//    UnregisterMemory answers BATCH_BUSY while a live peer holds one, so an unregistered
//    range is never touched again; a pin of a peer that died is dropped.
// Slots carry a generation (unique per registration), so a peer's cached IPC mapping of
// a region that was unregistered, or registered again, is recognised as stale and closed.
//
// Every transport also binds an abstract unix datagram socket named after its identity
// (pid, serial, nonce): notifications travel on it, and a peer is alive exactly while the
// socket exists (the kernel removes it when the process dies, even before it is reaped).
// The board is gone with the process too (a memfd, no name in /dev/shm to leak).
#pragma once

#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "tidal/status.h"

namespace tidal::backends::cuda::ipc {

constexpr uint32_t kBoardMagic = 0x42444354;  // "TCDB"
constexpr uint32_t kBoardVersion = 1;
constexpr size_t kBoardRegions = 1024;
constexpr size_t kPinsPerRegion = 16;
constexpr size_t kIpcHandleBytes = 64;  // sizeof(cudaIpcMemHandle_t)
// The largest notification payload a datagram carries.
constexpr size_t kMaxNotifyPayload = 60 * 1024;

// Who a transport is: its socket name and its pins derive from this.
struct Identity {
  int32_t pid = 0;
  uint32_t serial = 0;
  uint64_t nonce = 0;
  bool operator==(const Identity&) const = default;
};

enum class SlotKind : int32_t {
  kHost = 1,        // host memory of the owner (peers copy with process_vm_readv/writev)
  kDevice = 2,      // cudaMalloc memory: peers open `handle`
  kUnexported = 3,  // GPU memory CUDA IPC cannot export (managed memory)
};

struct Pin {
  Identity who;
  uint64_t count = 0;
};

struct Slot {
  uint64_t generation = 0;  // 0: a free slot
  uint64_t addr = 0;
  uint64_t length = 0;
  uint64_t rkey = 0;
  SlotKind kind = SlotKind::kHost;
  int32_t device = -1;       // the owner's ordinal (for messages)
  char bus_id[32] = {};      // cudaDeviceGetPCIBusId of the device
  uint64_t base_offset = 0;  // addr minus the base of its allocation
  unsigned char handle[kIpcHandleBytes] = {};
  Pin pins[kPinsPerRegion];
};

struct Board {
  uint32_t magic;
  uint32_t version;
  Identity owner;
  std::atomic<uint32_t> alive;  // 0 once the owner crashed or closed
  pthread_mutex_t mu;           // process-shared, robust
  uint64_t next_generation;     // guarded by mu
  Slot slots[kBoardRegions];    // guarded by mu
};
static_assert(std::atomic<uint32_t>::is_always_lock_free);

// Locks a board's mutex; a holder that died leaves it consistent (every critical section
// only writes whole fields), so EOWNERDEAD is made consistent and carries on.
class BoardLock {
 public:
  explicit BoardLock(Board* b);
  ~BoardLock();
  BoardLock(const BoardLock&) = delete;
  BoardLock& operator=(const BoardLock&) = delete;

 private:
  Board* b_;
};

// A new board in a memfd (its fd stays open for peers to open through /proc).
Status CreateBoard(const Identity& owner, int* fd, Board** board);
// Maps the board of a peer; PEER_UNREACHABLE when its process or board is gone or is not
// the one the address names.
Result<Board*> OpenBoard(const Identity& owner, int fd);
void CloseBoard(Board* board);

// The slot of `board` holding [addr, addr+length) under `rkey`, or -1 (the caller holds
// the lock).
int FindSlot(const Board& board, uint64_t addr, uint64_t length, uint64_t rkey);
// Adds one pin of `who` to a slot; false when its pin table is full.
bool AddPin(Slot& slot, const Identity& who);
void DropPin(Slot& slot, const Identity& who);

// The abstract socket address of a transport.
sockaddr_un SocketAddress(const Identity& who, socklen_t* len);
// A bound datagram socket at the identity's address; -1 with `error` set on failure.
int BindSocket(const Identity& who, std::string* error);
// True while the transport `who` is alive (its socket exists); sends a ping datagram.
bool Alive(int sock, const Identity& who);
// Sends one datagram (kind 1: a notification) to `who`; PEER_UNREACHABLE when it is gone
// or its queue stayed full for two seconds.
Status SendDatagram(int sock, const Identity& who, const std::string& frame);

constexpr uint8_t kPingFrame = 0;
constexpr uint8_t kNotifyFrame = 1;

// Copies between this process and `pid` (process_vm_readv / writev); returns the bytes
// moved, short when the remote range stopped being mapped or the process died.
size_t VmCopy(int pid, bool write_remote, void* local, uint64_t remote, size_t length, int* err);

// "cuda:<pid>:<serial>:<nonce hex>:<board fd>"; false when malformed.
std::string FormatAddress(const Identity& who, int board_fd);
bool ParseAddress(const std::string& address, Identity* who, int* board_fd);

}  // namespace tidal::backends::cuda::ipc
