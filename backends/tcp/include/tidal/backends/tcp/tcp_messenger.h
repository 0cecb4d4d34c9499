// TcpMessenger: tidal's Messenger over TCP (Asio), for control planes of real processes.
//
// Wire. Frames as frame.h says: magic, version, kind, from-name, payload, length-checked
// against options.max_payload_bytes on both sides (a Send above it is INVALID_PARAMS; a
// frame above it arriving is logged, counted in stats().frames_rejected, and its
// connection closed; the messenger keeps serving every other connection).
//
// Connections. To send to a peer the messenger dials the peer's listening address once
// and keeps that connection; the first frame on it is a hello carrying this endpoint's
// own name and address. The peer answers on that same connection (options.read_on_loop,
// the default): a request and its answer cross one connection, as a Redis request does,
// and each side's TCP acknowledgement rides on its next frame instead of being a packet
// of its own (on this project's 2-core machine a loopback round trip between two polling
// processes took 10-11 us on one connection and 14-16 on two, one per direction;
// docs/performance.md). Frames to one peer take one connection, kept while it lives, so
// the per-pair order of the Messenger contract holds: a connection of our own to the peer
// if we ever dialled it, else the latest connection the peer dialled to us (a route). A
// route that closes with frames not yet written hands them, first and in order, to a
// connection we dial to the address the peer's hello gave; a peer that dials again gets
// them on its new connection. Frames the kernel took before a connection broke may be
// lost with it, as on a dialled one. With read_on_loop off, answers dial back (the
// acceptor's IO thread owns the accepted sockets), and a dialled connection's answers are
// read by the IO thread.
//
// Names. A peer's name resolves, in this order of authority, to the last of: a static
// entry (options.peers, AddPeer), an address learned from the peer's hello, an entry of
// the directory (a MetadataStore, key "tidal/endpoints/<name>", value "host:port")
// loaded by Resolve / RefreshDirectory or looked up after a failure. Publish writes our
// own entry there.
//
// Failure. A peer that cannot be reached is dialled options.connect_attempts times, with
// a back-off, looking its name up in the directory again after each failed attempt (it
// may have restarted elsewhere; static entries are not looked up); then its queued messages are
// dropped (counted in stats().messages_lost), as the Messenger contract allows for an endpoint that
// is down. A connection that breaks is dialled again; the frame that was being written is written
// again whole on the new connection (the peer dropped the cut-off copy), unless the old
// connection's socket had taken it whole before the break was noticed (the peer may have
// read it: it is not written again), so a message is never delivered twice and never
// delivered torn; a frame the caller's thread wrote in
// part is queued whole with its written prefix counted, for the same reason.
//
// Bounds. At most options.max_queue_messages frames and options.max_queue_bytes bytes wait
// per peer; a Send beyond that is BUFFER_OVERFLOW and queues nothing.
//
// Threads. The messenger owns one IO thread (Asio) that dials, writes what Send could not,
// and accepts. Send, SetReceiver and every method returning Task are called on the Env's
// executor; the receiver runs there too: the executor reads accepted connections itself
// (options.read_on_loop, the default), or the IO thread reads them and posts the messages
// of each read through one RealEnv::Post, in order. The messenger is registered as a
// poster, AddPoster, while it lives. stats(), address() and AddPeer are safe from any
// thread (the directory pointer, too, is used on the executor only). Destruction (on the executor)
// closes every socket and joins the IO thread; messages not yet written are dropped, messages
// received but not yet delivered are never delivered.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "tidal/backends/real_env.h"
#include "tidal/backends/tcp/frame.h"
#include "tidal/messenger.h"
#include "tidal/metadata_store.h"
#include "tidal/status.h"
#include "tidal/task.h"

namespace tidal::backends::tcp {

// The directory's key prefix: "tidal/endpoints/<name>" -> "host:port".
constexpr std::string_view kEndpointKeyPrefix = "tidal/endpoints/";
inline std::string EndpointKey(std::string_view name) {
  return std::string(kEndpointKeyPrefix) + std::string(name);
}

struct TcpMessengerOptions {
  std::string name;                    // this endpoint's name, 1..255 bytes
  std::string listen = "127.0.0.1:0";  // where to listen; port 0 picks a free one
  std::string advertise;               // what peers dial; empty: the bound listen address
  std::map<std::string, std::string> peers;  // static name -> "host:port" entries
  MetadataStore* directory = nullptr;  // optional (see SetDirectory); must outlive it
  uint32_t max_payload_bytes = kTcpDefaultMaxPayload;
  size_t max_queue_bytes = 256u << 20;  // per peer, frames waiting to be written
  size_t max_queue_messages = 65536;    // per peer
  uint32_t connect_attempts = 3;        // dials of an unreachable peer before dropping
  uint64_t reconnect_backoff_ns = 20'000'000;  // times the attempt number
  // Coalescing (default on): on a connected, idle connection, frames Sent to one peer
  // during one turn of the event loop are written together by one send(2) (a flush posted
  // to the executor by the first of them runs after what was already queued there),
  // instead of one send(2) each inside Send. Order and framing are unchanged. Where many
  // sessions share one loop (16 store sessions, tidal-master answering them) this turns
  // many system calls into one: 16 store sessions over sm,self put 42-44 thousand 4 KiB
  // objects/s against 31-32 thousand and first-read 50-56 thousand/s against 35-38
  // thousand (docs/performance.md); a lone frame pays one loop hop (one session's first
  // reads: no difference beyond the spread). Off: Send writes at once, on its caller's
  // thread (stats().direct_writes).
  bool coalesce = true;
  // With coalesce: once this many frames to one peer wait in one turn, they are written at
  // once (one send(2)) and the turn's next frames start a new batch; 0: no bound (one write
  // per turn). A bound lets the peer start on the first requests of a burst while this
  // loop is still making the rest, so the two processes work at the same time instead of
  // taking turns: 16 store sessions over sm,self (one-sided) put 98-109 thousand 4 KiB
  // objects/s with 8 against 60-68 thousand unbounded, and first-read 102-116 thousand
  // against 76-84 thousand (docs/performance.md). The environment variable
  // TIDAL_TCP_COALESCE_FRAMES, where set, replaces it (Start refuses a value that is not a
  // whole number).
  size_t coalesce_max_frames = 8;
  // Reading on the loop (default on): every connection, accepted or dialled, is read by
  // the Env's executor itself, which watches its descriptor (RealEnv::AddWaitFd) and
  // blocks in epoll on it when it has nothing else to do, so a message wakes the thread
  // that handles it and nothing else; a request to tidal-master and its answer cost one
  // thread wake-up on each side, as a Redis request does. Answers to a peer that dialled
  // us go back on its connection, written by the executor (the loop watches the socket
  // for room while frames wait). A dialled connection leaves Asio once its hello is out
  // (registered with the IO thread's epoll, each answer would wake that thread); the IO
  // thread writes on it, through a duplicate it holds only while frames wait, what the
  // executor could not. Off: the IO thread reads every connection and hands each read's
  // messages over by RealEnv::Post, a second wake-up per message on a loop that sleeps.
  // Either way messages are delivered on the executor, in order, only while a thread
  // drives the loop (RunUntil); unread ones wait in the kernel's buffers (on) or in the
  // loop's queue (off).
  bool read_on_loop = true;
};

struct TcpMessengerStats {
  uint64_t messages_sent = 0;      // frames fully written to a socket
  uint64_t messages_received = 0;  // frames handed to the executor (read there, or posted)
  uint64_t messages_lost = 0;      // dropped: the peer stayed unreachable
  uint64_t frames_rejected = 0;    // malformed or oversized frames (connection closed)
  uint64_t connects = 0;           // outgoing connections established
  uint64_t connect_failures = 0;
  uint64_t accepted = 0;           // incoming connections
  uint64_t direct_writes = 0;      // of messages_sent, written whole by Send's caller (Send)
  uint64_t coalesced_writes = 0;   // send(2) calls that wrote coalesced frames (coalesce)
  uint64_t receive_batches = 0;    // reads whose frames were delivered together (>= 1 each)
};

class TcpMessenger final : public Messenger {
 public:
  // Binds the listening socket and starts the IO thread. INVALID_PARAMS: a bad name, a
  // malformed listen/advertise/peer address, or a listen address that cannot be bound
  // (the message carries the system's reason). `env` (and the directory) must outlive the
  // messenger.
  static Result<std::unique_ptr<TcpMessenger>> Start(RealEnv& env, TcpMessengerOptions options);
  ~TcpMessenger() override;
  TcpMessenger(const TcpMessenger&) = delete;
  TcpMessenger& operator=(const TcpMessenger&) = delete;

  std::string_view LocalName() const override { return name_; }
  // Sends `payload` to `to` without blocking: when the connection is up and nothing is
  // queued for it, the executor writes the frame to the socket itself (non-blocking;
  // stats().direct_writes): with options.coalesce, together with the other frames Sent to
  // `to` in this loop turn, by a flush posted to the executor; without, at once. Otherwise,
  // or for what the socket does not take, the frame is queued for the IO thread. Frames to one peer stay in order. SEGMENT_NOT_FOUND: no address is known
  // for `to` (with a directory, a look-up starts so a later Send may find it; await
  // Resolve to wait for it); INVALID_PARAMS: the payload is above max_payload_bytes;
  // BUFFER_OVERFLOW: the peer's queue is full.
  Status Send(std::string_view to, std::string payload) override;
  void SetReceiver(Receiver receiver) override { receiver_ = std::move(receiver); }

  // The address peers dial ("127.0.0.1:40123") and the bound port.
  const std::string& address() const { return advertise_; }
  uint16_t port() const { return port_; }
  // Adds or replaces a static name -> "host:port" entry. INVALID_PARAMS for a bad name or
  // address. Thread-safe.
  Status AddPeer(std::string_view name, std::string_view address);

  // Sets (or, with nullptr, clears) the directory after Start: a directory reached through
  // this very messenger (MasterMetadataStore) can only be made once the messenger exists.
  // Executor only; `directory` must outlive the messenger or be cleared first.
  void SetDirectory(MetadataStore* directory);

  // Directory calls (INVALID_PARAMS without a directory; the directory's own errors,
  // e.g. RPC_FAIL / RPC_TIMEOUT, pass through). Publish writes this endpoint's entry,
  // Unpublish deletes it, Resolve looks one name up (SEGMENT_NOT_FOUND if it has no
  // entry; CORRUPT_INPUT if the entry is not "host:port"), RefreshDirectory loads every
  // entry.
  Task<Status> Publish();
  Task<Status> Unpublish();
  Task<Status> Resolve(std::string name);
  Task<Status> RefreshDirectory();

  TcpMessengerStats stats() const;

 private:
  struct Impl;
  TcpMessenger(RealEnv& env, TcpMessengerOptions options);
  void LookUpLater(const std::string& name);

  RealEnv& env_;
  TcpMessengerOptions options_;
  std::string name_;
  std::string advertise_;
  uint16_t port_ = 0;
  Receiver receiver_;
  std::shared_ptr<bool> alive_;  // read and cleared on the executor only
  std::unique_ptr<Impl> impl_;
};

}  // namespace tidal::backends::tcp
