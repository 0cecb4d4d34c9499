// TcpMessenger (see tcp_messenger.h): an Asio IO thread that dials, writes, accepts and
// reads; the Env's executor that sends and receives.
#include "tidal/backends/tcp/tcp_messenger.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <asio.hpp>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "tidal/thread_annotations.h"

namespace tidal::backends::tcp {

namespace {

using asio::ip::tcp;
using SocketPtr = std::shared_ptr<tcp::socket>;

void Log(std::string_view endpoint, const std::string& line) {
  std::fprintf(stderr, "tidal tcp messenger '%.*s': %s\n", static_cast<int>(endpoint.size()),
               endpoint.data(), line.c_str());
}

Result<tcp::endpoint> ToEndpoint(std::string_view address) {
  Result<HostPort> hp = ParseHostPort(address);
  if (!hp.ok()) return hp.status();
  const std::string host = hp->host == "localhost" ? "127.0.0.1" : hp->host;
  asio::error_code ec;
  asio::ip::address ip = asio::ip::make_address(host, ec);
  if (ec) {
    return Status(ErrorCode::INVALID_PARAMS, "address '" + std::string(address) +
                                                 "': host is not an IP address (" +
                                                 ec.message() + ")");
  }
  return tcp::endpoint(ip, hp->port);
}

std::string FormatAddress(const tcp::endpoint& ep) {
  const std::string host = ep.address().to_string();
  return (ep.address().is_v6() ? "[" + host + "]" : host) + ":" + std::to_string(ep.port());
}

}  // namespace

// One destination: its queue (shared with Send, under Impl::mu) and its connection (IO
// thread only).
struct Peer {
  Peer(asio::io_context& io, std::string n) : name(std::move(n)), timer(io) {}
  enum class State { kIdle, kConnecting, kConnected, kBackoff };

  const std::string name;
  // Guarded by Impl::mu. Send only appends; the IO thread pops the front after writing
  // it, so the front stays put (a deque never moves its elements on push_back).
  std::deque<std::string> queue;
  size_t queued_bytes = 0;
  bool kick_posted = false;
  // Coalesced frames (options.coalesce) Sent this loop turn, written by the posted flush;
  // they precede every frame in `queue` (Send moves them there before queueing behind them).
  std::string corked;
  std::vector<size_t> corked_ends;  // where each coalesced frame ends in `corked`
  bool flush_posted = false;
  // Bytes of the front frame already written on the current connection by a send that
  // the socket cut (Send, FlushCorked); the IO thread writes the rest. Reset when the
  // connection goes: the peer drops a cut-off frame, so the next one gets it whole.
  size_t front_offset = 0;
  // The connected socket's descriptor while the caller of Send may write to it itself
  // (connected, hello written); -1 otherwise. Cleared before the socket closes.
  int direct_fd = -1;
  // IO thread only.
  State state = State::kIdle;
  // Asio's socket while connecting; then, reading on the loop, the connection is released
  // from Asio (`fd`, owned here): registered with the IO thread's epoll, every answer that
  // arrives would wake that thread. `socket` is then an Asio socket on a duplicate only
  // while the IO thread writes frames the caller's thread could not (WriteFront).
  SocketPtr socket;
  int fd = -1;
  tcp protocol = tcp::v4();
  uint64_t conn = 0;  // bumped whenever the socket goes, so stale handlers do nothing
  bool writing = false;
  uint64_t writes_started = 0;  // WriteFront's writes, so a stale one knows it was the last
  uint32_t failures = 0;
  asio::steady_timer timer;
  // The peer answers on this connection: read here by the IO thread when the executor
  // does not read it (options.read_on_loop off). A new decoder per connection.
  std::unique_ptr<FrameDecoder> decoder;
  std::vector<char> rbuf;
};

// An accepted connection (IO thread only).
struct Inbound {
  Inbound(SocketPtr s, uint32_t max_payload) : socket(std::move(s)), decoder(max_payload) {}
  SocketPtr socket;
  FrameDecoder decoder;
  std::vector<char> buf = std::vector<char>(64u << 10);
  std::string remote;
};

// An accepted connection read by the executor (options.read_on_loop): the loop watches
// its descriptor (RealEnv::AddWaitFd) and reads it when it is readable. Executor only.
// Also a connection this messenger dialled (`dialled`): the IO thread owns and writes it,
// the executor reads the peer's answers from a duplicate of its descriptor.
struct LoopInbound {
  LoopInbound(int f, uint32_t max_payload, std::string r)
      : fd(f), decoder(max_payload), remote(std::move(r)) {}
  ~LoopInbound() { ::close(fd); }
  LoopInbound(const LoopInbound&) = delete;
  LoopInbound& operator=(const LoopInbound&) = delete;
  int fd;
  FrameDecoder decoder;
  std::string remote;
  uint64_t watch = 0;  // the RealEnv's id for fd
  // A dialled connection: its peer and the connection's number (Peer::conn).
  Peer* dialled = nullptr;
  uint64_t conn = 0;
  // An accepted connection whose hello named `name`: the route back to that peer while it
  // is Impl::routes[name]. Its output: frames the socket has not taken (`out`, the front
  // written up to out_offset) or, while out is empty, the frames coalesced this loop turn
  // (`corked`), written by a posted flush. The loop watches the descriptor for writability
  // while `out` holds frames (`want_write`).
  std::string name;
  std::deque<std::string> out;
  size_t out_offset = 0;
  size_t out_bytes = 0;
  std::string corked;
  std::vector<size_t> corked_ends;
  bool flush_posted = false;
  bool want_write = false;
};

// A descriptor closed when the last holder lets it go without taking it: a connection on
// its way from the IO thread to the executor.
struct OwnedFd {
  explicit OwnedFd(int f) : fd(f) {}
  ~OwnedFd() {
    if (fd >= 0) ::close(fd);
  }
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  int Take() { return std::exchange(fd, -1); }
  int fd;
};

// The coalesced frames of `corked` (each ending at an offset in `ends`) that the first
// `written` bytes of one send did not cover go to the back of `queue`, whole, their bytes
// added to `queued_bytes`; the one those bytes cut gets its written prefix as
// `front_offset` (the queue was empty then). Clears `corked` and `ends`; returns how many
// frames went out whole. For a dialled connection (Peer) and a route (LoopInbound) alike.
size_t UncorkInto(std::string& corked, std::vector<size_t>& ends, size_t written,
                  std::deque<std::string>& queue, size_t& queued_bytes, size_t& front_offset) {
  size_t start = 0, whole = 0;
  for (size_t end : ends) {
    if (end <= written) {
      ++whole;
    } else {
      if (start < written) {
        TIDAL_ASSERT(queue.empty());
        front_offset = written - start;
      }
      queue.emplace_back(corked, start, end - start);
      queued_bytes += end - start;
    }
    start = end;
  }
  corked.clear();
  ends.clear();
  return whole;
}

struct TcpMessenger::Impl {
  explicit Impl(TcpMessenger& o) : owner(o), work(asio::make_work_guard(io)), acceptor(io) {}

  void Pump(Peer& p);
  void Connect(Peer& p);
  void WriteFront(Peer& p);
  // A stale WriteFront's frame, taken whole by the socket of a connection that went: off the
  // queue (IO thread).
  void DropWrittenFront(Peer& p);
  void WatchForClose(Peer& p);
  void CloseSocket(Peer& p);
  void CloseSocketLocked(Peer& p) TIDAL_REQUIRES(mu);
  void Failed(Peer& p, const std::string& why);
  void DropQueue(Peer& p, const std::string& why);
  void StartAccept();
  void ReadInbound(uint64_t id);
  using Messages = std::vector<std::pair<std::string, std::string>>;  // (from, payload)
  // Decodes what `decoder` holds into `frames`; false at a malformed or oversized frame
  // (counted and logged; the whole frames before it are in `frames`).
  bool DecodeFrames(FrameDecoder& decoder, const std::string& remote,
                    std::vector<TcpFrame>* frames);
  // Hellos taken (their addresses learned); the messages, in order, counted as received.
  Messages TakeHellos(std::vector<TcpFrame> frames);
  // Runs on the executor: each message to the receiver while the messenger lives.
  static void HandToReceiver(TcpMessenger* o, const std::shared_ptr<bool>& alive,
                             Messages& messages);
  void Deliver(std::vector<TcpFrame> frames);
  // options.read_on_loop, on the executor: watch an accepted connection, read it.
  void AddLoopInbound(int fd, std::string remote);
  // options.read_on_loop: the executor reads the answers on a connection it dialled.
  void AddLoopDialled(Peer* p, uint64_t conn, int fd);
  void ReadLoopInbound(uint64_t id);
  // Stops reading a connection: a dialled one is closed by the IO thread (and dialled
  // again if messages wait); an accepted one that was a route hands the frames it had not
  // written to a dialled connection to its peer, in order.
  void DropLoopInbound(uint64_t id);
  void CloseLoopInbound();
  // Routes (options.read_on_loop): answers to a peer that dialled us go back on its
  // connection. SetRoute makes connection `id` the route to `name` (unless frames to
  // `name` already go through a connection of our own), taking over the frames a previous
  // route had not written.
  void SetRoute(const std::string& name, uint64_t id);
  Status SendOnRoute(LoopInbound& in, uint64_t id, std::string frame, std::string_view to);
  void FlushRoute(uint64_t id);
  void WriteRoute(LoopInbound& in);
  void UpdateWriteWatch(LoopInbound& in);
  std::deque<std::string> TakeRouteOutput(LoopInbound& in);
  void FlushCorked(Peer& p);
  // Connected and nothing queued (so every earlier frame is wholly in the kernel): writes
  // what the socket takes of `data` now, from the caller's thread without waking the IO
  // thread (caller holds mu). Returns the bytes written; 0 when the connection is not so,
  // or the socket took nothing (EAGAIN, or an error the IO thread will meet on its own
  // write).
  size_t SendNowLocked(Peer& p, const std::string& data) TIDAL_REQUIRES(mu);
  // Moves p's corked frames to the back of its queue, one entry per frame (caller holds
  // mu). The first `written` bytes already went out by one send on the current connection:
  // the frames they cover are counted sent, the one they cut is queued whole with its
  // written prefix as front_offset (the queue was empty then). True if the IO thread must
  // be kicked.
  bool QueueCorkedLocked(Peer& p, size_t written = 0) TIDAL_REQUIRES(mu);
  void Shutdown();

  TcpMessenger& owner;
  asio::io_context io;  // first: destroyed last, after every socket and timer
  asio::executor_work_guard<asio::io_context::executor_type> work;
  tcp::acceptor acceptor;
  std::thread thread;
  std::string hello;

  mutable std::mutex mu;
  std::map<std::string, std::string, std::less<>> addresses TIDAL_GUARDED_BY(mu);
  std::map<std::string, std::unique_ptr<Peer>, std::less<>> peers TIDAL_GUARDED_BY(mu);
  // Names given statically (options.peers, AddPeer): never looked up in the directory,
  // which may itself be reached through one of them (MasterLink's "master").
  std::set<std::string, std::less<>> static_names TIDAL_GUARDED_BY(mu);

  std::map<uint64_t, std::unique_ptr<Inbound>> inbound;  // IO thread only
  uint64_t next_inbound = 1;
  std::map<uint64_t, std::unique_ptr<LoopInbound>> loop_inbound;  // executor only
  uint64_t next_loop_inbound = 1;
  std::map<std::string, uint64_t, std::less<>> routes;        // executor only: name -> loop_inbound
  std::vector<char> loop_buf = std::vector<char>(64u << 10);  // executor only
  std::set<std::string> lookups;  // executor only: directory look-ups in flight

  std::atomic<uint64_t> sent{0}, received{0}, lost{0}, rejected{0}, connects{0},
      connect_failures{0}, accepted{0}, direct{0}, coalesced{0}, batches{0};
};

void TcpMessenger::Impl::Pump(Peer& p) {
  std::unique_lock<std::mutex> lock(mu);
  p.kick_posted = false;
  if (p.queue.empty()) return;
  if (p.state == Peer::State::kIdle) {
    lock.unlock();
    Connect(p);
  } else if (p.state == Peer::State::kConnected && !p.writing) {
    lock.unlock();
    WriteFront(p);
  }
}

void TcpMessenger::Impl::Connect(Peer& p) {
  TIDAL_ASSERT(p.state == Peer::State::kIdle && !p.socket);
  std::string address;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = addresses.find(p.name);
    if (it != addresses.end()) address = it->second;
  }
  Result<tcp::endpoint> ep = ToEndpoint(address);
  if (!ep.ok()) {
    DropQueue(p, "no usable address (" + ep.status().message() + ")");
    return;
  }
  p.state = Peer::State::kConnecting;
  p.protocol = ep->protocol();
  auto sock = std::make_shared<tcp::socket>(io);
  p.socket = sock;
  const uint64_t conn = ++p.conn;
  sock->async_connect(*ep, [this, &p, sock, conn, address](const asio::error_code& ec) {
    if (conn != p.conn) return;
    if (ec) {
      ++connect_failures;
      Failed(p, "connect to " + address + ": " + ec.message());
      return;
    }
    asio::error_code ignored;
    sock->set_option(tcp::no_delay(true), ignored);
    ++connects;
    asio::async_write(*sock, asio::buffer(hello),
                      [this, &p, sock, conn](const asio::error_code& wec, size_t) {
                        if (conn != p.conn) return;
                        if (wec) {
                          Failed(p, "hello: " + wec.message());
                          return;
                        }
                        if (!owner.options_.read_on_loop) {
                          p.state = Peer::State::kConnected;
                          {
                            std::lock_guard<std::mutex> lock(mu);
                            p.direct_fd = sock->native_handle();
                          }
                          p.decoder =
                              std::make_unique<FrameDecoder>(owner.options_.max_payload_bytes);
                          WatchForClose(p);  // the IO thread reads the answers
                          Pump(p);
                          return;
                        }
                        // The peer answers on this connection, read on the loop from a
                        // duplicate of the descriptor (closing shuts the connection down,
                        // so the duplicate sees its end). Released from Asio first.
                        asio::error_code rec;
                        const int fd = sock->release(rec);
                        p.socket.reset();
                        const int rfd = rec ? -1 : ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
                        if (rfd < 0) {
                          if (!rec) ::close(fd);
                          Failed(p, "cannot hand the connection to the loop: " +
                                        (rec ? rec.message() : std::string(std::strerror(errno))));
                          return;
                        }
                        p.fd = fd;
                        p.state = Peer::State::kConnected;
                        {
                          std::lock_guard<std::mutex> lock(mu);
                          p.direct_fd = fd;
                        }
                        auto owned = std::make_shared<OwnedFd>(rfd);
                        owner.env_.Post([o = &owner, alive = owner.alive_, owned, pp = &p, conn]() {
                          if (*alive) o->impl_->AddLoopDialled(pp, conn, owned->Take());
                        });
                        Pump(p);
                      });
  });
}

void TcpMessenger::Impl::WriteFront(Peer& p) {
  TIDAL_ASSERT(p.state == Peer::State::kConnected && !p.writing);
  const std::string* front = nullptr;
  size_t offset = 0;
  {
    std::lock_guard<std::mutex> lock(mu);
    TIDAL_ASSERT(!p.queue.empty());
    front = &p.queue.front();
    offset = p.front_offset;
  }
  if (!p.socket) {
    // Released to the loop: an Asio socket on a duplicate while frames wait.
    TIDAL_ASSERT(p.fd >= 0);
    asio::error_code ec;
    const int dup = ::fcntl(p.fd, F_DUPFD_CLOEXEC, 0);
    auto sock = std::make_shared<tcp::socket>(io);
    if (dup < 0) {
      ec = asio::error_code(errno, asio::error::get_system_category());
    } else {
      sock->assign(p.protocol, dup, ec);
      if (ec) ::close(dup);
    }
    if (ec) {
      Failed(p, "write: " + ec.message());
      return;
    }
    p.socket = sock;
  }
  p.writing = true;
  const uint64_t conn = p.conn;
  const uint64_t write = ++p.writes_started;
  SocketPtr sock = p.socket;
  asio::async_write(*sock, asio::buffer(front->data() + offset, front->size() - offset),
                    [this, &p, sock, conn, write](const asio::error_code& ec, size_t) {
                      if (conn != p.conn) {
                        // The connection went (its close noticed first) after the socket
                        // had taken every byte of the frame: the peer may have read it, so
                        // it is not written again, unless a write on a new connection
                        // already carries it (never twice, never torn).
                        if (!ec && write == p.writes_started) DropWrittenFront(p);
                        return;
                      }
                      p.writing = false;
                      if (ec) {
                        Failed(p, "write: " + ec.message());
                        return;
                      }
                      bool drained = false;
                      {
                        std::lock_guard<std::mutex> lock(mu);
                        TIDAL_ASSERT(!p.queue.empty());
                        p.queued_bytes -= p.queue.front().size();
                        p.queue.pop_front();
                        p.front_offset = 0;
                        drained = p.queue.empty();
                      }
                      if (drained && p.fd >= 0) {
                        // Nothing waits: the duplicate leaves Asio (and its epoll) again.
                        asio::error_code ignored;
                        const int dup = p.socket->release(ignored);
                        if (!ignored) ::close(dup);
                        p.socket.reset();
                      }
                      ++sent;
                      p.failures = 0;
                      Pump(p);
                    });
}

void TcpMessenger::Impl::DropWrittenFront(Peer& p) {
  std::lock_guard<std::mutex> lock(mu);
  if (p.queue.empty()) return;
  p.queued_bytes -= p.queue.front().size();
  p.queue.pop_front();
  p.front_offset = 0;
  ++sent;
}

// Read by the IO thread: the peer's answers on a connection we dialled, handed to the
// executor as an accepted connection's are; a read that fails is how a peer that went
// away is noticed while we are idle.
void TcpMessenger::Impl::WatchForClose(Peer& p) {
  SocketPtr sock = p.socket;
  const uint64_t conn = p.conn;
  if (p.rbuf.empty()) p.rbuf.resize(64u << 10);
  sock->async_read_some(asio::buffer(p.rbuf),
                        [this, &p, sock, conn](const asio::error_code& ec, size_t n) {
                          if (conn != p.conn) return;
                          if (ec) {
                            CloseSocket(p);
                            Pump(p);  // dials again if messages wait
                            return;
                          }
                          p.decoder->Feed(std::string_view(p.rbuf.data(), n));
                          std::vector<TcpFrame> frames;
                          const bool ok = DecodeFrames(*p.decoder, p.name, &frames);
                          Deliver(std::move(frames));  // the whole frames (before a bad one)
                          if (!ok) {
                            CloseSocket(p);
                            Pump(p);
                            return;
                          }
                          WatchForClose(p);
                        });
}

void TcpMessenger::Impl::CloseSocket(Peer& p) {
  std::lock_guard<std::mutex> lock(mu);
  CloseSocketLocked(p);
}

// Under mu, so no Send is writing to the descriptor while it closes.
void TcpMessenger::Impl::CloseSocketLocked(Peer& p) {
  p.direct_fd = -1;
  p.front_offset = 0;  // the peer drops a frame cut off with the connection: whole next time
  if (p.socket) {
    asio::error_code ignored;
    // Shut down first: the executor may hold a duplicate of the descriptor (it reads the
    // peer's answers), which close alone would leave open, the connection with it.
    p.socket->shutdown(tcp::socket::shutdown_both, ignored);
    p.socket->close(ignored);
    p.socket.reset();
  }
  if (p.fd >= 0) {
    ::shutdown(p.fd, SHUT_RDWR);
    ::close(p.fd);
    p.fd = -1;
  }
  ++p.conn;
  p.writing = false;
  p.timer.cancel();
  p.state = Peer::State::kIdle;
}

// A dial or a write failed: try again after a back-off (the directory may know a new
// address by then), or give the queued messages up after connect_attempts failures.
void TcpMessenger::Impl::Failed(Peer& p, const std::string& why) {
  CloseSocket(p);
  ++p.failures;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (p.queue.empty()) {
      p.failures = 0;
      return;
    }
  }
  if (p.failures >= owner.options_.connect_attempts) {
    p.failures = 0;
    DropQueue(p, why);
    return;
  }
  // The executor decides whether a directory is there to ask.
  owner.env_.Post([o = &owner, alive = owner.alive_, name = p.name]() {
    if (*alive) o->LookUpLater(name);
  });
  p.state = Peer::State::kBackoff;
  const uint64_t conn = p.conn;
  p.timer.expires_after(std::chrono::nanoseconds(owner.options_.reconnect_backoff_ns * p.failures));
  p.timer.async_wait([this, &p, conn](const asio::error_code& ec) {
    if (ec || conn != p.conn || p.state != Peer::State::kBackoff) return;
    p.state = Peer::State::kIdle;
    Pump(p);
  });
}

void TcpMessenger::Impl::DropQueue(Peer& p, const std::string& why) {
  TIDAL_ASSERT(!p.writing);
  size_t n = 0;
  {
    std::lock_guard<std::mutex> lock(mu);
    n = p.queue.size();
    p.queue.clear();
    p.queued_bytes = 0;
    p.front_offset = 0;
  }
  p.state = Peer::State::kIdle;
  lost += n;
  if (n > 0) {
    Log(owner.name_, "peer '" + p.name + "' unreachable, " + std::to_string(n) +
                         " message(s) dropped: " + why);
  }
}

void TcpMessenger::Impl::StartAccept() {
  acceptor.async_accept([this](const asio::error_code& ec, tcp::socket s) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (!ec) {
      // Answers go back on this connection: a small one must not wait for the ACK of the
      // last (Nagle's algorithm against the peer's delayed ACK holds it up to 40 ms).
      asio::error_code ignored;
      s.set_option(tcp::no_delay(true), ignored);
    }
    if (!ec && owner.options_.read_on_loop) {
      ++accepted;
      asio::error_code rec;
      tcp::endpoint remote = s.remote_endpoint(rec);
      std::string from = rec ? "?" : FormatAddress(remote);
      auto fd = std::make_shared<OwnedFd>(s.release(rec));
      if (rec) {
        Log(owner.name_, "accept: cannot take the connection's descriptor: " + rec.message());
      } else {
        // The executor watches and reads it from now on; the IO thread never touches it.
        owner.env_.Post([o = &owner, alive = owner.alive_, fd, from = std::move(from)]() mutable {
          if (*alive) o->impl_->AddLoopInbound(fd->Take(), std::move(from));
        });
      }
    } else if (!ec) {
      ++accepted;
      auto in = std::make_unique<Inbound>(std::make_shared<tcp::socket>(std::move(s)),
                                          owner.options_.max_payload_bytes);
      asio::error_code rec;
      tcp::endpoint remote = in->socket->remote_endpoint(rec);
      in->remote = rec ? "?" : FormatAddress(remote);
      const uint64_t id = next_inbound++;
      inbound.emplace(id, std::move(in));
      ReadInbound(id);
    } else {
      Log(owner.name_, "accept: " + ec.message());
    }
    StartAccept();
  });
}

void TcpMessenger::Impl::ReadInbound(uint64_t id) {
  Inbound& in = *inbound.at(id);
  SocketPtr sock = in.socket;
  sock->async_read_some(asio::buffer(in.buf), [this, id, sock](const asio::error_code& ec,
                                                               size_t n) {
    auto it = inbound.find(id);
    if (it == inbound.end()) return;
    Inbound& in = *it->second;
    if (ec) {  // the sender closed (or broke) the connection
      inbound.erase(it);
      return;
    }
    in.decoder.Feed(std::string_view(in.buf.data(), n));
    std::vector<TcpFrame> frames;
    if (!DecodeFrames(in.decoder, in.remote, &frames)) {
      Deliver(std::move(frames));  // the whole frames before the bad one
      asio::error_code ignored;
      sock->close(ignored);
      inbound.erase(it);
      return;
    }
    Deliver(std::move(frames));
    ReadInbound(id);
  });
}

bool TcpMessenger::Impl::DecodeFrames(FrameDecoder& decoder, const std::string& remote,
                                      std::vector<TcpFrame>* frames) {
  for (;;) {
    Result<std::optional<TcpFrame>> next = decoder.Next();
    if (!next.ok()) {
      ++rejected;
      Log(owner.name_, "rejected a frame from " + remote + ", closing the connection: " +
                           next.status().ToString());
      return false;
    }
    if (!next->has_value()) return true;
    frames->push_back(std::move(**next));
  }
}

TcpMessenger::Impl::Messages TcpMessenger::Impl::TakeHellos(std::vector<TcpFrame> frames) {
  Messages messages;
  for (TcpFrame& frame : frames) {
    if (frame.kind == TcpFrameKind::kHello) {
      std::lock_guard<std::mutex> lock(mu);
      addresses[frame.from] = std::move(frame.payload);
      continue;
    }
    messages.emplace_back(std::move(frame.from), std::move(frame.payload));
  }
  if (!messages.empty()) {
    received += messages.size();
    ++batches;
  }
  return messages;
}

void TcpMessenger::Impl::HandToReceiver(TcpMessenger* o, const std::shared_ptr<bool>& alive,
                                        Messages& messages) {
  for (auto& [from, payload] : messages) {
    if (!*alive || !o->receiver_) return;
    Receiver receiver = o->receiver_;  // the receiver may replace (or destroy) itself
    receiver(from, std::move(payload));
  }
}

// The frames of one read on the IO thread: hellos taken here, the messages handed to the
// executor by one post, in order.
void TcpMessenger::Impl::Deliver(std::vector<TcpFrame> frames) {
  Messages messages = TakeHellos(std::move(frames));
  if (messages.empty()) return;
  owner.env_.Post([o = &owner, alive = owner.alive_, messages = std::move(messages)]() mutable {
    HandToReceiver(o, alive, messages);
  });
}

void TcpMessenger::Impl::AddLoopInbound(int fd, std::string remote) {
  const int flags = ::fcntl(fd, F_GETFL, 0);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    Log(owner.name_, "inbound connection from " + remote + ": cannot make it non-blocking");
    ::close(fd);
    return;
  }
  const uint64_t id = next_loop_inbound++;
  auto in = std::make_unique<LoopInbound>(fd, owner.options_.max_payload_bytes, std::move(remote));
  Result<uint64_t> watch = owner.env_.AddWaitFd(fd, [this, id]() { ReadLoopInbound(id); });
  if (!watch.ok()) {
    Log(owner.name_,
        "inbound connection from " + in->remote + " dropped: " + watch.status().ToString());
    return;  // ~LoopInbound closes it
  }
  in->watch = *watch;
  loop_inbound.emplace(id, std::move(in));
}

void TcpMessenger::Impl::AddLoopDialled(Peer* p, uint64_t conn, int fd) {
  const uint64_t id = next_loop_inbound++;
  auto in = std::make_unique<LoopInbound>(fd, owner.options_.max_payload_bytes, p->name);
  in->dialled = p;
  in->conn = conn;
  Result<uint64_t> watch = owner.env_.AddWaitFd(fd, [this, id]() { ReadLoopInbound(id); });
  if (!watch.ok()) {
    Log(owner.name_, "connection to '" + p->name +
                         "' closed: cannot read its answers: " + watch.status().ToString());
    asio::post(io, [this, p, conn]() {
      if (p->conn != conn) return;
      CloseSocket(*p);
      Pump(*p);
    });
    return;  // ~LoopInbound closes the duplicate
  }
  in->watch = *watch;
  loop_inbound.emplace(id, std::move(in));
}

// Reads what the connection holds (up to four buffers, so one busy sender cannot hold the
// loop: the loop looks again), then hands the whole frames to the receiver on this thread,
// in order. A closed, broken or bad connection is dropped after its whole frames. A route
// with output waiting writes what the socket takes first (the call may be for that).
void TcpMessenger::Impl::ReadLoopInbound(uint64_t id) {
  auto it = loop_inbound.find(id);
  if (it == loop_inbound.end()) return;
  LoopInbound& in = *it->second;
  if (!in.out.empty()) WriteRoute(in);
  bool drop = false;
  for (int i = 0; i < 4; ++i) {
    const ssize_t n = ::recv(in.fd, loop_buf.data(), loop_buf.size(), MSG_DONTWAIT);
    if (n > 0) {
      in.decoder.Feed(std::string_view(loop_buf.data(), static_cast<size_t>(n)));
      if (static_cast<size_t>(n) < loop_buf.size()) break;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    drop = true;  // the sender closed (or broke) the connection
    break;
  }
  std::vector<TcpFrame> frames;
  if (!DecodeFrames(in.decoder, in.remote, &frames)) drop = true;
  // A hello on an accepted connection makes it the route back to its sender.
  if (in.dialled == nullptr) {
    for (const TcpFrame& f : frames) {
      if (f.kind == TcpFrameKind::kHello && in.name.empty()) {
        in.name = f.from;
        SetRoute(in.name, id);
      }
    }
  }
  if (drop) DropLoopInbound(id);  // `in` is gone
  // The messages go to the receiver here, on the loop (it may destroy the messenger: the
  // flag is held here, not read through it).
  Messages messages = TakeHellos(std::move(frames));
  const std::shared_ptr<bool> alive = owner.alive_;
  HandToReceiver(&owner, alive, messages);
}

void TcpMessenger::Impl::DropLoopInbound(uint64_t id) {
  auto it = loop_inbound.find(id);
  if (it == loop_inbound.end()) return;
  LoopInbound& in = *it->second;
  owner.env_.RemoveWaitFd(in.watch);
  if (in.dialled != nullptr) {
    asio::post(io, [this, p = in.dialled, conn = in.conn]() {
      if (p->conn != conn) return;  // already closed (and maybe dialled again)
      CloseSocket(*p);
      Pump(*p);  // dials again if messages wait
    });
  }
  std::deque<std::string> pending;
  std::string name = in.name;
  auto r = routes.find(in.name);
  if (r != routes.end() && r->second == id) {
    routes.erase(r);
    pending = TakeRouteOutput(in);
  }
  loop_inbound.erase(it);  // closes it
  if (pending.empty()) return;
  // The peer's connection is gone with frames it never got: they go, first and in order,
  // through a connection of our own to the address its hello gave.
  Peer* peer = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (addresses.find(name) != addresses.end()) {
      auto pit = peers.find(name);
      if (pit == peers.end()) {
        pit = peers.emplace(name, std::make_unique<Peer>(io, name)).first;
      }
      peer = pit->second.get();  // new: frames to `name` took the route until now
      for (std::string& f : pending) {
        peer->queued_bytes += f.size();
        peer->queue.push_back(std::move(f));
      }
      if (peer->kick_posted)
        peer = nullptr;
      else
        peer->kick_posted = true;
    } else {
      lost += pending.size();
    }
  }
  if (peer != nullptr) asio::post(io, [this, peer]() { Pump(*peer); });
}

void TcpMessenger::Impl::SetRoute(const std::string& name, uint64_t id) {
  {
    // Frames to `name` that already go through a connection of our own stay on it: two
    // connections would not keep them in order.
    std::lock_guard<std::mutex> lock(mu);
    if (peers.find(name) != peers.end()) return;
  }
  LoopInbound& in = *loop_inbound.at(id);
  auto r = routes.find(name);
  if (r != routes.end() && r->second != id) {
    // The peer dialled again (its old connection is going): what the old route had not
    // written goes first on the new one, whole.
    auto old = loop_inbound.find(r->second);
    if (old != loop_inbound.end()) {
      std::deque<std::string> pending = TakeRouteOutput(*old->second);
      for (std::string& f : pending) {
        in.out_bytes += f.size();
        in.out.push_back(std::move(f));
      }
    }
  }
  routes[name] = id;
  if (!in.out.empty()) WriteRoute(in);
}

// Every frame a route has not written wholly, in order; the route is left empty.
std::deque<std::string> TcpMessenger::Impl::TakeRouteOutput(LoopInbound& in) {
  std::deque<std::string> pending = std::move(in.out);
  in.out.clear();
  in.out_offset = 0;  // a cut frame goes again whole: the peer dropped its prefix
  in.out_bytes = 0;
  size_t pending_bytes = 0, unused_offset = 0;  // nothing was written of these
  UncorkInto(in.corked, in.corked_ends, 0, pending, pending_bytes, unused_offset);
  if (in.want_write) {
    in.want_write = false;
    (void)owner.env_.WatchWritable(in.watch, false);
  }
  return pending;
}

Status TcpMessenger::Impl::SendOnRoute(LoopInbound& in, uint64_t id, std::string frame,
                                       std::string_view to) {
  const TcpMessengerOptions& o = owner.options_;
  if (o.coalesce && in.out.empty()) {
    if (in.corked.size() + frame.size() > o.max_queue_bytes) {
      return Status(ErrorCode::BUFFER_OVERFLOW,
                    "send queue to '" + std::string(to) + "' is full (" +
                        std::to_string(in.corked.size()) + " bytes coalesced)");
    }
    in.corked += frame;
    in.corked_ends.push_back(in.corked.size());
    if (o.coalesce_max_frames != 0 && in.corked_ends.size() >= o.coalesce_max_frames) {
      FlushRoute(id);
    } else if (!in.flush_posted) {
      in.flush_posted = true;
      owner.env_.Post([this, alive = owner.alive_, id]() {
        if (*alive) FlushRoute(id);
      });
    }
    return Status();
  }
  if (in.out.size() >= o.max_queue_messages || in.out_bytes + frame.size() > o.max_queue_bytes) {
    return Status(ErrorCode::BUFFER_OVERFLOW, "send queue to '" + std::string(to) + "' is full (" +
                                                  std::to_string(in.out.size()) + " messages, " +
                                                  std::to_string(in.out_bytes) + " bytes)");
  }
  in.out_bytes += frame.size();
  in.out.push_back(std::move(frame));
  if (in.out.size() == 1) {
    WriteRoute(in);
    if (in.out.empty()) ++direct;
  }
  return Status();
}

// The posted flush of a route's coalesced frames: one send(2) while nothing else waits;
// what the socket does not take waits in `out`, the cut frame's prefix counted.
void TcpMessenger::Impl::FlushRoute(uint64_t id) {
  auto it = loop_inbound.find(id);
  if (it == loop_inbound.end()) return;
  LoopInbound& in = *it->second;
  in.flush_posted = false;
  if (in.corked.empty()) return;
  size_t written = 0;
  if (in.out.empty()) {
    const ssize_t n =
        ::send(in.fd, in.corked.data(), in.corked.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      written = static_cast<size_t>(n);
      ++coalesced;
    }
  }
  const size_t whole =
      UncorkInto(in.corked, in.corked_ends, written, in.out, in.out_bytes, in.out_offset);
  sent += whole;
  direct += whole;
  UpdateWriteWatch(in);
}

// Writes a route's waiting frames while the socket takes them. A failed write leaves them
// waiting: the loop finds the connection's end on its next read and drops it, and the
// frames go on through a connection of our own (DropLoopInbound).
void TcpMessenger::Impl::WriteRoute(LoopInbound& in) {
  while (!in.out.empty()) {
    const std::string& front = in.out.front();
    const ssize_t n = ::send(in.fd, front.data() + in.out_offset, front.size() - in.out_offset,
                             MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    in.out_offset += static_cast<size_t>(n);
    if (in.out_offset < front.size()) break;  // the socket is full
    in.out_bytes -= front.size();
    in.out.pop_front();
    in.out_offset = 0;
    ++sent;
  }
  UpdateWriteWatch(in);
}

void TcpMessenger::Impl::UpdateWriteWatch(LoopInbound& in) {
  const bool want = !in.out.empty();
  if (want == in.want_write) return;
  if (owner.env_.WatchWritable(in.watch, want).ok()) in.want_write = want;
}

void TcpMessenger::Impl::CloseLoopInbound() {
  for (auto& [id, in] : loop_inbound) owner.env_.RemoveWaitFd(in->watch);
  loop_inbound.clear();
  routes.clear();
}

bool TcpMessenger::Impl::QueueCorkedLocked(Peer& p, size_t written) {
  if (p.corked.empty()) return false;
  const size_t queued_before = p.queue.size();
  const size_t whole =
      UncorkInto(p.corked, p.corked_ends, written, p.queue, p.queued_bytes, p.front_offset);
  sent += whole;
  direct += whole;
  if (p.queue.size() == queued_before || p.kick_posted) return false;
  p.kick_posted = true;
  return true;
}

size_t TcpMessenger::Impl::SendNowLocked(Peer& p, const std::string& data) {
  if (p.direct_fd < 0 || !p.queue.empty()) return 0;
  const ssize_t n = ::send(p.direct_fd, data.data(), data.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  return n > 0 ? static_cast<size_t>(n) : 0;
}

// The posted flush of options.coalesce: the peer's corked frames in one send(2) when the
// connection is still idle (what the socket does not take, and everything when it is not,
// goes to the IO thread's queue).
void TcpMessenger::Impl::FlushCorked(Peer& p) {
  bool kick = false;
  {
    std::lock_guard<std::mutex> lock(mu);
    p.flush_posted = false;
    if (p.corked.empty()) return;
    const size_t written = SendNowLocked(p, p.corked);
    if (written > 0) ++coalesced;
    kick = QueueCorkedLocked(p, written);  // what the socket did not take
  }
  if (kick) asio::post(io, [this, &p]() { Pump(p); });
}

void TcpMessenger::Impl::Shutdown() {
  asio::error_code ignored;
  acceptor.close(ignored);
  std::lock_guard<std::mutex> lock(mu);
  for (auto& [name, p] : peers) CloseSocketLocked(*p);
  for (auto& [id, in] : inbound) in->socket->close(ignored);
  inbound.clear();
}

// ---------------------------------------------------------------------------------------

TcpMessenger::TcpMessenger(RealEnv& env, TcpMessengerOptions options)
    : env_(env),
      options_(std::move(options)),
      name_(options_.name),
      alive_(std::make_shared<bool>(true)),
      impl_(std::make_unique<Impl>(*this)) {}

Result<std::unique_ptr<TcpMessenger>> TcpMessenger::Start(RealEnv& env,
                                                          TcpMessengerOptions options) {
  TIDAL_RETURN_IF_ERROR(CheckEndpointName(options.name));
  if (options.connect_attempts == 0 || options.max_queue_messages == 0) {
    return Status(ErrorCode::INVALID_PARAMS, "connect_attempts and max_queue_messages must be > 0");
  }
  Result<tcp::endpoint> listen = ToEndpoint(options.listen);
  if (!listen.ok()) return listen.status();
  if (!options.advertise.empty()) {
    Result<tcp::endpoint> adv = ToEndpoint(options.advertise);
    if (!adv.ok()) return adv.status();
  }
  for (const auto& [name, address] : options.peers) {
    TIDAL_RETURN_IF_ERROR(CheckEndpointName(name));
    Result<tcp::endpoint> ep = ToEndpoint(address);
    if (!ep.ok()) return ep.status();
  }
  if (const char* e = std::getenv("TIDAL_TCP_COALESCE_FRAMES"); e != nullptr && *e != '\0') {
    char* end = nullptr;
    const unsigned long n = std::strtoul(e, &end, 10);
    if (*end != '\0') {
      return Status(ErrorCode::INVALID_PARAMS,
                    std::string("TIDAL_TCP_COALESCE_FRAMES='") + e + "' is not a whole number");
    }
    options.coalesce_max_frames = n;
  }
  std::unique_ptr<TcpMessenger> m(new TcpMessenger(env, std::move(options)));
  Impl& impl = *m->impl_;
  asio::error_code ec;
  impl.acceptor.open(listen->protocol(), ec);
  if (!ec) impl.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) impl.acceptor.bind(*listen, ec);
  if (!ec) impl.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "cannot listen on '" + m->options_.listen + "': " + ec.message());
  }
  const tcp::endpoint bound = impl.acceptor.local_endpoint(ec);
  if (ec) {
    return Status(ErrorCode::INVALID_PARAMS, "cannot read the bound address: " + ec.message());
  }
  m->port_ = bound.port();
  m->advertise_ = m->options_.advertise.empty() ? FormatAddress(bound) : m->options_.advertise;
  impl.hello = EncodeTcpFrame(TcpFrameKind::kHello, m->name_, m->advertise_);
  {
    std::lock_guard<std::mutex> lock(impl.mu);
    for (const auto& [name, address] : m->options_.peers) {
      impl.addresses[name] = address;
      impl.static_names.insert(name);
    }
    impl.addresses[m->name_] = m->advertise_;  // sending to ourselves works too
  }
  impl.StartAccept();
  env.AddPoster();
  impl.thread = std::thread([&impl]() { impl.io.run(); });
  return m;
}

TcpMessenger::~TcpMessenger() {
  *alive_ = false;
  Impl& impl = *impl_;
  impl.CloseLoopInbound();
  if (!impl.thread.joinable()) return;  // Start failed before the IO thread began
  asio::post(impl.io, [&impl]() {
    impl.Shutdown();
    impl.io.stop();
  });
  impl.work.reset();
  impl.thread.join();
  env_.RemovePoster();
}

Status TcpMessenger::Send(std::string_view to, std::string payload) {
  if (payload.size() > options_.max_payload_bytes) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "payload of " + std::to_string(payload.size()) + " bytes is above the limit of " +
                      std::to_string(options_.max_payload_bytes));
  }
  if (!CheckEndpointName(to).ok()) {
    return Status(ErrorCode::SEGMENT_NOT_FOUND, "no endpoint named '" + std::string(to) + "'");
  }
  std::string frame = EncodeTcpFrame(TcpFrameKind::kMessage, name_, payload);
  // A peer that dialled us gets its messages back on its own connection (options.read_on_loop).
  if (auto r = impl_->routes.find(to); r != impl_->routes.end()) {
    return impl_->SendOnRoute(*impl_->loop_inbound.at(r->second), r->second, std::move(frame), to);
  }
  Peer* peer = nullptr;
  bool kick = false;
  bool post_flush = false;
  bool flush_now = false;
  Status result;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->addresses.find(to) != impl_->addresses.end()) {
      auto it = impl_->peers.find(to);
      if (it == impl_->peers.end()) {
        it = impl_->peers
                 .emplace(std::string(to), std::make_unique<Peer>(impl_->io, std::string(to)))
                 .first;
      }
      peer = it->second.get();
      if (options_.coalesce && peer->direct_fd >= 0 && peer->queue.empty()) {
        // Coalesced: written with the other frames of this loop turn by one posted flush.
        if (peer->corked.size() + frame.size() > options_.max_queue_bytes) {
          return Status(ErrorCode::BUFFER_OVERFLOW,
                        "send queue to '" + std::string(to) + "' is full (" +
                            std::to_string(peer->corked.size()) + " bytes coalesced)");
        }
        peer->corked += frame;
        peer->corked_ends.push_back(peer->corked.size());
        if (options_.coalesce_max_frames != 0 &&
            peer->corked_ends.size() >= options_.coalesce_max_frames) {
          flush_now = true;
        } else {
          post_flush = !peer->flush_posted;
          peer->flush_posted = true;
        }
      } else {
        // Frames coalesced earlier go first, whatever happens to this one.
        kick = impl_->QueueCorkedLocked(*peer);
        // Written here when the connection allows; what the socket does not take now is
        // queued as the front (whole, its written prefix as front_offset) and the IO
        // thread writes the rest.
        const size_t written = impl_->SendNowLocked(*peer, frame);
        if (written == frame.size()) {
          ++impl_->sent;
          ++impl_->direct;
        } else if (written == 0 && (peer->queue.size() >= options_.max_queue_messages ||
                                    peer->queued_bytes + frame.size() > options_.max_queue_bytes)) {
          // (A frame partly written is always queued: refusing it would leave it torn.)
          result = Status(ErrorCode::BUFFER_OVERFLOW,
                          "send queue to '" + std::string(to) + "' is full (" +
                              std::to_string(peer->queue.size()) + " messages, " +
                              std::to_string(peer->queued_bytes) + " bytes)");
        } else {
          if (written > 0) peer->front_offset = written;  // the queue was empty
          peer->queued_bytes += frame.size();
          peer->queue.push_back(std::move(frame));
          if (!peer->kick_posted) {
            peer->kick_posted = true;
            kick = true;
          }
        }
      }
    }
  }
  if (flush_now) impl_->FlushCorked(*peer);
  if (post_flush) {
    env_.Post([impl = impl_.get(), alive = alive_, peer]() {
      if (*alive) impl->FlushCorked(*peer);
    });
  }
  if (peer == nullptr) {
    LookUpLater(std::string(to));
    return Status(ErrorCode::SEGMENT_NOT_FOUND, "no endpoint named '" + std::string(to) + "'");
  }
  if (kick) asio::post(impl_->io, [impl = impl_.get(), peer]() { impl->Pump(*peer); });
  return result;
}

Status TcpMessenger::AddPeer(std::string_view name, std::string_view address) {
  TIDAL_RETURN_IF_ERROR(CheckEndpointName(name));
  Result<tcp::endpoint> ep = ToEndpoint(address);
  if (!ep.ok()) return ep.status();
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->addresses[std::string(name)] = std::string(address);
  impl_->static_names.insert(std::string(name));
  return Status();
}

void TcpMessenger::SetDirectory(MetadataStore* directory) { options_.directory = directory; }

void TcpMessenger::LookUpLater(const std::string& name) {
  if (options_.directory == nullptr || name == name_) return;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->static_names.count(name) != 0) return;
  }
  if (!impl_->lookups.insert(name).second) return;
  // A member coroutine: it checks `alive` after every suspension before touching `this`.
  struct Runner {
    static Task<void> Run(TcpMessenger* self, std::shared_ptr<bool> alive, std::string name) {
      Status s = co_await self->Resolve(name);
      if (!*alive) co_return;
      self->impl_->lookups.erase(name);
      (void)s;  // a failed look-up leaves the name unknown; Send says so
    }
  };
  Spawn(env_, Runner::Run(this, alive_, name));
}

Task<Status> TcpMessenger::Publish() {
  if (options_.directory == nullptr) co_return Status(ErrorCode::INVALID_PARAMS, "no directory");
  co_return co_await options_.directory->Put(EndpointKey(name_), advertise_);
}

Task<Status> TcpMessenger::Unpublish() {
  if (options_.directory == nullptr) co_return Status(ErrorCode::INVALID_PARAMS, "no directory");
  co_return co_await options_.directory->Delete(EndpointKey(name_));
}

Task<Status> TcpMessenger::Resolve(std::string name) {
  if (options_.directory == nullptr) co_return Status(ErrorCode::INVALID_PARAMS, "no directory");
  std::shared_ptr<bool> alive = alive_;
  Result<std::string> entry = co_await options_.directory->Get(EndpointKey(name));
  if (!*alive) co_return Status(ErrorCode::RPC_FAIL, "messenger stopped");
  if (!entry.ok()) {
    if (entry.code() == ErrorCode::OBJECT_NOT_FOUND) {
      co_return Status(ErrorCode::SEGMENT_NOT_FOUND, "no endpoint '" + name + "' in the directory");
    }
    co_return entry.status();
  }
  if (!ToEndpoint(*entry).ok()) {
    co_return Status(ErrorCode::CORRUPT_INPUT,
                     "directory entry of '" + name + "' is not HOST:PORT: '" + *entry + "'");
  }
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->addresses[name] = std::move(*entry);
  co_return Status();
}

Task<Status> TcpMessenger::RefreshDirectory() {
  if (options_.directory == nullptr) co_return Status(ErrorCode::INVALID_PARAMS, "no directory");
  std::shared_ptr<bool> alive = alive_;
  Result<KeyValues> entries = co_await options_.directory->List(std::string(kEndpointKeyPrefix));
  if (!*alive) co_return Status(ErrorCode::RPC_FAIL, "messenger stopped");
  if (!entries.ok()) co_return entries.status();
  Status first_bad;
  std::lock_guard<std::mutex> lock(impl_->mu);
  for (auto& [key, value] : *entries) {
    const std::string name = key.substr(kEndpointKeyPrefix.size());
    if (!CheckEndpointName(name).ok() || !ToEndpoint(value).ok()) {
      if (first_bad.ok()) {
        first_bad = Status(ErrorCode::CORRUPT_INPUT, "directory entry '" + key + "' is malformed");
      }
      continue;
    }
    impl_->addresses[name] = std::move(value);
  }
  co_return first_bad;
}

TcpMessengerStats TcpMessenger::stats() const {
  TcpMessengerStats s;
  s.messages_sent = impl_->sent.load();
  s.messages_received = impl_->received.load();
  s.messages_lost = impl_->lost.load();
  s.frames_rejected = impl_->rejected.load();
  s.connects = impl_->connects.load();
  s.connect_failures = impl_->connect_failures.load();
  s.accepted = impl_->accepted.load();
  s.direct_writes = impl_->direct.load();
  s.coalesced_writes = impl_->coalesced.load();
  s.receive_batches = impl_->batches.load();
  return s;
}

}  // namespace tidal::backends::tcp
