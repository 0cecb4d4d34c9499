// TcpMessenger over real loopback sockets: every messenger binds 127.0.0.1:0 and is
// destroyed by its test. Proves per-pair order and exact bytes (many, large and empty
// payloads), answers through the address learned from a hello, refusal of oversized,
// garbled and truncated frames with the messenger still serving, reconnection to a
// restarted peer (same port, and a new port found through the directory),
// SEGMENT_NOT_FOUND for unknown names and BUFFER_OVERFLOW when a peer's queue is full;
// coalesced writes, and a frame cut by a broken connection sent again whole.
#include "tidal/backends/tcp/tcp_messenger.h"

#include <gtest/gtest.h>

#include <asio.hpp>
#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "tcp_test_util.h"

namespace tidal::backends::tcp {
namespace {

using testing::Drive;

struct Inbox {
  std::vector<std::pair<std::string, std::string>> got;  // (from, payload)
  Messenger::Receiver Receiver() {
    return [this](std::string_view from, std::string payload) {
      got.emplace_back(std::string(from), std::move(payload));
    };
  }
};

std::unique_ptr<TcpMessenger> StartOrDie(RealEnv& env, TcpMessengerOptions o) {
  auto m = TcpMessenger::Start(env, std::move(o));
  TIDAL_ASSERT_MSG(m.ok(), "TcpMessenger::Start failed");
  return std::move(*m);
}

TcpMessengerOptions Named(std::string name) {
  TcpMessengerOptions o;
  o.name = std::move(name);
  return o;
}

// Options of an endpoint named `name` that knows where `peer` listens (as "b").
TcpMessengerOptions DialsB(std::string name, const TcpMessenger& peer) {
  TcpMessengerOptions o = Named(std::move(name));
  o.peers["b"] = peer.address();
  return o;
}

// The suites that read: once with the loop reading accepted connections itself (the
// default), once with the IO thread reading them and posting what it read.
class TcpMessengerReads : public ::testing::TestWithParam<bool> {
 protected:
  TcpMessengerOptions NamedHere(std::string name) {
    TcpMessengerOptions o = Named(std::move(name));
    o.read_on_loop = GetParam();
    return o;
  }
};

INSTANTIATE_TEST_SUITE_P(Modes, TcpMessengerReads, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "ReadOnLoop" : "ReadOnIoThread";
                         });

std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed * 7 + (i >> 8)) & 0xff);
  return s;
}

TEST(TcpMessenger, BindsLoopbackAndReportsItsAddress) {
  RealEnv env;
  auto a = StartOrDie(env, Named("a"));
  EXPECT_NE(a->port(), 0);
  EXPECT_EQ(a->address(), "127.0.0.1:" + std::to_string(a->port()));
  EXPECT_EQ(a->LocalName(), "a");
  EXPECT_EQ(TcpMessenger::Start(env, Named("")).code(), ErrorCode::INVALID_PARAMS);
  TcpMessengerOptions taken = Named("b");
  taken.listen = a->address();
  // Reusing an address is allowed for TIME_WAIT, never for a live listener.
  EXPECT_EQ(TcpMessenger::Start(env, taken).code(), ErrorCode::INVALID_PARAMS);
  TcpMessengerOptions bad = Named("c");
  bad.peers["x"] = "nowhere";
  EXPECT_EQ(TcpMessenger::Start(env, bad).code(), ErrorCode::INVALID_PARAMS);
}

TEST_P(TcpMessengerReads, DeliversInOrderByteExactAndAnswersThroughTheHello) {
  RealEnv env;
  auto b = StartOrDie(env, NamedHere("b"));
  TcpMessengerOptions ao = NamedHere("a");
  ao.peers["b"] = b->address();
  auto a = StartOrDie(env, ao);
  Inbox at_a, at_b;
  a->SetReceiver(at_a.Receiver());
  b->SetReceiver(at_b.Receiver());
  constexpr size_t kCount = 2000;
  for (size_t i = 0; i < kCount; ++i) {
    ASSERT_TRUE(a->Send("b", Pattern(i % 700, static_cast<uint32_t>(i))).ok());
  }
  ASSERT_TRUE(Drive(env, [&]() { return at_b.got.size() == kCount; }));
  for (size_t i = 0; i < kCount; ++i) {
    ASSERT_EQ(at_b.got[i].first, "a");
    ASSERT_EQ(at_b.got[i].second, Pattern(i % 700, static_cast<uint32_t>(i))) << i;
  }
  // b never heard of a's address but for a's hello.
  ASSERT_TRUE(b->Send("a", "pong").ok());
  ASSERT_TRUE(Drive(env, [&]() { return at_a.got.size() == 1; }));
  EXPECT_EQ(at_a.got[0], std::make_pair(std::string("b"), std::string("pong")));
  EXPECT_EQ(a->stats().messages_lost, 0u);
  EXPECT_EQ(b->stats().messages_received, kCount);
}

TEST_P(TcpMessengerReads, CarriesLargeAndEmptyPayloadsAndSendsToItself) {
  RealEnv env;
  auto b = StartOrDie(env, NamedHere("b"));
  TcpMessengerOptions ao = NamedHere("a");
  ao.peers["b"] = b->address();
  auto a = StartOrDie(env, ao);
  Inbox at_a, at_b;
  a->SetReceiver(at_a.Receiver());
  b->SetReceiver(at_b.Receiver());
  const std::string big = Pattern(24u << 20, 5);
  ASSERT_TRUE(a->Send("b", "").ok());
  ASSERT_TRUE(a->Send("b", big).ok());
  ASSERT_TRUE(a->Send("b", "").ok());
  ASSERT_TRUE(a->Send("a", "self").ok());
  ASSERT_TRUE(Drive(env, [&]() { return at_b.got.size() == 3 && at_a.got.size() == 1; }));
  EXPECT_EQ(at_b.got[0].second, "");
  EXPECT_TRUE(at_b.got[1].second == big);
  EXPECT_EQ(at_b.got[2].second, "");
  EXPECT_EQ(at_a.got[0], std::make_pair(std::string("a"), std::string("self")));
  // One byte above the limit is refused at the sender and queues nothing.
  TcpMessengerOptions so = NamedHere("small");
  so.peers["b"] = b->address();
  so.max_payload_bytes = 100;
  auto small = StartOrDie(env, so);
  EXPECT_EQ(small->Send("b", std::string(101, 'x')).code(), ErrorCode::INVALID_PARAMS);
  EXPECT_TRUE(small->Send("b", std::string(100, 'x')).ok());
  ASSERT_TRUE(Drive(env, [&]() { return at_b.got.size() == 4; }));
  EXPECT_EQ(at_b.got[3], std::make_pair(std::string("small"), std::string(100, 'x')));
}

// Reading on the loop: each accepted connection is a descriptor the loop watches, and a
// closed connection is dropped from the watch; the IO thread's mode watches none.
TEST_P(TcpMessengerReads, TheLoopWatchesEachInboundConnectionWhileItLives) {
  RealEnv env;
  auto b = StartOrDie(env, NamedHere("b"));
  Inbox at_b;
  b->SetReceiver(at_b.Receiver());
  TcpMessengerOptions ao = NamedHere("a");
  ao.peers["b"] = b->address();
  auto a = StartOrDie(env, ao);
  EXPECT_EQ(env.wait_fds(), 0u);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(a->Send("b", "m" + std::to_string(i)).ok());
    ASSERT_TRUE(Drive(env, [&]() { return at_b.got.size() == static_cast<size_t>(i + 1); }));
    EXPECT_EQ(at_b.got.back(), std::make_pair(std::string("a"), "m" + std::to_string(i)));
  }
  // a's one connection to b, watched at both ends: b reads a's messages, a reads b's answers.
  EXPECT_EQ(env.wait_fds(), GetParam() ? 2u : 0u);
  if (!GetParam()) {
    EXPECT_EQ(env.fd_wakeups(), 0u);
  }
  a.reset();  // a closes its connection: b's loop sees the end and stops watching it
  ASSERT_TRUE(Drive(env, [&]() { return env.wait_fds() == 0; }));
  EXPECT_EQ(b->stats().messages_received, 3u);
  EXPECT_EQ(b->stats().frames_rejected, 0u);
}

// The receiving side's hand-offs, counted: a sender driven by a thread of its own sends
// 200 messages, one at a time, to a receiver whose loop runs here. Read on the loop, they
// reach the receiver without a Post to its loop (the loop read them itself): the one Post
// is the accepted connection's, handed over once; read by the IO thread, every read that
// brought messages is one Post.
TEST_P(TcpMessengerReads, MessagesReachTheReceiverWithoutAHandOffWhenReadOnTheLoop) {
  RealEnv env_b;
  auto b = StartOrDie(env_b, NamedHere("b"));
  Inbox at_b;
  b->SetReceiver(at_b.Receiver());
  constexpr size_t kCount = 200;
  std::atomic<size_t> acked{0};  // messages b has received, as the sender sees it
  std::atomic<bool> sender_ok{true};
  const uint64_t posts_before = env_b.posts();
  std::thread sender([&]() {
    RealEnv env_a;
    TcpMessengerOptions ao = NamedHere("a");
    ao.peers["b"] = b->address();
    auto a = StartOrDie(env_a, ao);
    for (size_t i = 0; i < kCount; ++i) {
      if (!a->Send("b", "m" + std::to_string(i)).ok()) sender_ok = false;
      // One at a time: the next goes once b has the last (or the limit passes).
      Drive(env_a, [&]() { return acked.load() > i; });
    }
  });
  const bool all = Drive(env_b, [&]() {
    acked.store(at_b.got.size());
    return at_b.got.size() == kCount;
  });
  acked.store(kCount);  // releases the sender either way
  sender.join();
  ASSERT_TRUE(all);
  EXPECT_TRUE(sender_ok.load());
  for (size_t i = 0; i < kCount; ++i) EXPECT_EQ(at_b.got[i].second, "m" + std::to_string(i));
  EXPECT_EQ(b->stats().messages_received, kCount);
  const uint64_t hand_offs = env_b.posts() - posts_before;
  EXPECT_EQ(b->stats().accepted, 1u);
  if (GetParam()) {
    EXPECT_EQ(hand_offs, 1u);
  } else {
    EXPECT_EQ(hand_offs, b->stats().receive_batches);
    EXPECT_GE(hand_offs, 1u);
  }
}

// Writes `bytes` on a fresh connection to `port` and closes it.
void RawSend(uint16_t port, const std::string& bytes) {
  asio::io_context io;
  asio::ip::tcp::socket s(io);
  s.connect({asio::ip::make_address("127.0.0.1"), port});
  asio::write(s, asio::buffer(bytes));
  asio::error_code ignored;
  s.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  s.close(ignored);
}

TEST_P(TcpMessengerReads, RejectsOversizedGarbledAndTruncatedFramesAndKeepsServing) {
  RealEnv env;
  TcpMessengerOptions bo = NamedHere("b");
  bo.max_payload_bytes = 1024;
  auto b = StartOrDie(env, bo);
  Inbox at_b;
  b->SetReceiver(at_b.Receiver());
  // A frame claiming 1 MiB, with nothing behind it: refused from its header alone.
  std::string oversized = EncodeTcpFrame(TcpFrameKind::kMessage, "evil", std::string(1025, 'x'));
  RawSend(b->port(), oversized.substr(0, kTcpFrameHeaderBytes));
  ASSERT_TRUE(Drive(env, [&]() { return b->stats().frames_rejected == 1; }));
  // Garbage, then a good frame on the same connection: the connection is closed at the
  // garbage, so the good frame behind it is never delivered.
  RawSend(b->port(), "GARBAGE GARBAGE GARBAGE" + EncodeTcpFrame(TcpFrameKind::kMessage, "x", "y"));
  ASSERT_TRUE(Drive(env, [&]() { return b->stats().frames_rejected == 2; }));
  // A good frame cut off in its body: dropped with its connection, not rejected.
  std::string whole = EncodeTcpFrame(TcpFrameKind::kMessage, "cut", "0123456789");
  RawSend(b->port(), whole.substr(0, whole.size() - 3));
  // A hello that names no address.
  RawSend(b->port(), EncodeTcpFrame(TcpFrameKind::kHello, "liar", "nowhere"));
  ASSERT_TRUE(Drive(env, [&]() { return b->stats().frames_rejected == 3; }));
  // A raw but valid frame from a stranger is delivered.
  RawSend(b->port(), EncodeTcpFrame(TcpFrameKind::kMessage, "raw", "hello"));
  // And a real peer still gets through.
  TcpMessengerOptions ao = NamedHere("a");
  ao.peers["b"] = b->address();
  auto a = StartOrDie(env, ao);
  ASSERT_TRUE(a->Send("b", "after the garbage").ok());
  ASSERT_TRUE(Drive(env, [&]() { return at_b.got.size() == 2; }));
  std::sort(at_b.got.begin(), at_b.got.end());
  EXPECT_EQ(at_b.got[0], std::make_pair(std::string("a"), std::string("after the garbage")));
  EXPECT_EQ(at_b.got[1], std::make_pair(std::string("raw"), std::string("hello")));
  EXPECT_EQ(b->stats().frames_rejected, 3u);
  EXPECT_EQ(b->stats().messages_received, 2u);
}

// Sends numbered pings until one arrives (the first few may go into a connection that
// is already dead), then 100 more, which must all arrive in order.
void ExpectFlowsAgain(RealEnv& env, TcpMessenger& a, const std::string& to, Inbox& inbox) {
  size_t attempts = 0;
  while (inbox.got.empty() && attempts < 100) {
    Status s = a.Send(to, "ping" + std::to_string(attempts++));
    ASSERT_TRUE(s.ok() || s.code() == ErrorCode::SEGMENT_NOT_FOUND) << s.ToString();
    Drive(env, [&]() { return !inbox.got.empty(); }, 100'000'000);
  }
  ASSERT_FALSE(inbox.got.empty()) << "no message reached the restarted peer";
  EXPECT_EQ(inbox.got[0].second.rfind("ping", 0), 0u);
  const size_t before = inbox.got.size();
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(a.Send(to, "m" + std::to_string(i)).ok());
  ASSERT_TRUE(Drive(env, [&]() { return inbox.got.size() >= before + 100; }));
  // Late pings may precede the numbered messages; these come last, in order.
  ASSERT_GE(inbox.got.size(), 100u);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(inbox.got[inbox.got.size() - 100 + i].second, "m" + std::to_string(i));
  }
}

TEST(TcpMessenger, ReconnectsToAPeerRestartedOnTheSamePort) {
  RealEnv env;
  auto b = StartOrDie(env, Named("b"));
  const std::string b_address = b->address();
  TcpMessengerOptions ao = Named("a");
  ao.peers["b"] = b_address;
  auto a = StartOrDie(env, ao);
  Inbox first;
  b->SetReceiver(first.Receiver());
  ASSERT_TRUE(a->Send("b", "before").ok());
  ASSERT_TRUE(Drive(env, [&]() { return first.got.size() == 1; }));
  b.reset();  // the peer goes away...
  TcpMessengerOptions again = Named("b");
  again.listen = b_address;
  b = StartOrDie(env, again);  // ...and comes back on the same port
  Inbox second;
  b->SetReceiver(second.Receiver());
  ExpectFlowsAgain(env, *a, "b", second);
  EXPECT_GE(a->stats().connects, 2u);
}

TEST(TcpMessenger, FindsARestartedPeerOnANewPortThroughTheDirectory) {
  RealEnv env;
  InMemoryMetadataStore directory;
  TcpMessengerOptions bo = Named("b");
  bo.directory = &directory;
  auto b = StartOrDie(env, bo);
  ASSERT_TRUE(RunBlocking(env, b->Publish()).ok());
  TcpMessengerOptions ao = Named("a");
  ao.directory = &directory;
  auto a = StartOrDie(env, ao);
  EXPECT_EQ(a->Send("b", "x").code(), ErrorCode::SEGMENT_NOT_FOUND);  // not looked up yet
  ASSERT_TRUE(RunBlocking(env, a->Resolve("b")).ok());
  Inbox first;
  b->SetReceiver(first.Receiver());
  ASSERT_TRUE(a->Send("b", "before").ok());
  ASSERT_TRUE(Drive(env, [&]() { return first.got.size() == 1; }));
  const uint16_t old_port = b->port();
  b.reset();
  b = StartOrDie(env, bo);  // a new port...
  ASSERT_NE(b->port(), old_port);
  ASSERT_TRUE(RunBlocking(env, b->Publish()).ok());  // ...published under the same name
  Inbox second;
  b->SetReceiver(second.Receiver());
  ExpectFlowsAgain(env, *a, "b", second);
}

TEST(TcpMessenger, UnknownNamesAreSegmentNotFound) {
  RealEnv env;
  auto a = StartOrDie(env, Named("a"));
  EXPECT_EQ(a->Send("nobody", "x").code(), ErrorCode::SEGMENT_NOT_FOUND);
  EXPECT_EQ(a->Send("", "x").code(), ErrorCode::SEGMENT_NOT_FOUND);
  EXPECT_EQ(RunBlocking(env, a->Resolve("nobody")).code(), ErrorCode::INVALID_PARAMS);
  InMemoryMetadataStore directory;
  a->SetDirectory(&directory);
  EXPECT_EQ(RunBlocking(env, a->Resolve("nobody")).code(), ErrorCode::SEGMENT_NOT_FOUND);
  ASSERT_TRUE(RunBlocking(env, directory.Put(EndpointKey("broken"), "no port")).ok());
  EXPECT_EQ(RunBlocking(env, a->Resolve("broken")).code(), ErrorCode::CORRUPT_INPUT);
  EXPECT_EQ(RunBlocking(env, a->RefreshDirectory()).code(), ErrorCode::CORRUPT_INPUT);
  EXPECT_EQ(a->Send("broken", "x").code(), ErrorCode::SEGMENT_NOT_FOUND);
  EXPECT_EQ(a->stats().messages_lost, 0u);
  EXPECT_EQ(a->AddPeer("p", "not an address").code(), ErrorCode::INVALID_PARAMS);
  a->SetDirectory(nullptr);
}

TEST(TcpMessenger, AFullQueueIsBufferOverflow) {
  RealEnv env;
  // A listener that never accepts: the kernel completes the handshake and buffers a few
  // megabytes, then the writes stall and the messenger's queue fills.
  asio::io_context io;
  asio::ip::tcp::acceptor stuck(io, {asio::ip::make_address("127.0.0.1"), 0});
  TcpMessengerOptions ao = Named("a");
  ao.peers["stuck"] = "127.0.0.1:" + std::to_string(stuck.local_endpoint().port());
  ao.max_queue_bytes = 1u << 20;
  auto a = StartOrDie(env, ao);
  const std::string chunk(64u << 10, 'q');
  Status last;
  size_t accepted = 0;
  for (size_t i = 0; i < 4096 && last.ok(); ++i) {
    last = a->Send("stuck", chunk);
    if (last.ok()) ++accepted;
  }
  EXPECT_EQ(last.code(), ErrorCode::BUFFER_OVERFLOW) << last.ToString();
  EXPECT_GE(accepted, 15u);  // at least the queue's own megabyte was taken
  // The count bound, on a peer with nobody listening at all.
  TcpMessengerOptions co = Named("c");
  co.peers["gone"] = "127.0.0.1:1";
  co.max_queue_messages = 3;
  co.reconnect_backoff_ns = 200'000'000;  // the drop comes well after the sends below
  auto c = StartOrDie(env, co);
  // Sent without driving, the IO thread may already be dialling; the bound holds anyway.
  Status s;
  size_t taken = 0;
  for (int i = 0; i < 10 && s.ok(); ++i) {
    s = c->Send("gone", "m");
    if (s.ok()) ++taken;
  }
  EXPECT_EQ(s.code(), ErrorCode::BUFFER_OVERFLOW);
  EXPECT_EQ(taken, 3u);
  // Nobody answers at 127.0.0.1:1: after its attempts the queue is dropped and counted.
  ASSERT_TRUE(Drive(env, [&]() { return c->stats().messages_lost == 3; }));
  EXPECT_EQ(c->stats().connect_failures, co.connect_attempts);
}

// Without coalescing: once a connection is up and nothing is queued for it, Send writes
// the frame on the caller's thread (no IO-thread hop); frames stay in order and byte-exact,
// also when the direct write and queued writes alternate, and after the peer restarts.
TEST(TcpMessenger, SendsDirectlyOnAnIdleConnectionInOrder) {
  RealEnv env;
  auto b = StartOrDie(env, Named("b"));
  TcpMessengerOptions ao = DialsB("a", *b);
  ao.coalesce = false;
  auto a = StartOrDie(env, ao);
  Inbox at_b;
  b->SetReceiver(at_b.Receiver());
  // The first frame dials: it is queued for the IO thread.
  ASSERT_TRUE(a->Send("b", "first").ok());
  ASSERT_TRUE(Drive(env, [&]() { return a->stats().messages_sent == 1 && at_b.got.size() == 1; }));
  EXPECT_EQ(a->stats().direct_writes, 0u);
  // Connected and idle: each of these is written by this thread, whole.
  for (uint32_t i = 0; i < 5; ++i) {
    ASSERT_TRUE(a->Send("b", Pattern(100 + i, i)).ok());
    EXPECT_EQ(a->stats().direct_writes, i + 1);
    EXPECT_EQ(a->stats().messages_sent, i + 2);
  }
  // A burst larger than the socket takes at once: some go direct, the rest queue behind.
  constexpr size_t kBurst = 64;
  for (size_t i = 0; i < kBurst; ++i) {
    ASSERT_TRUE(a->Send("b", Pattern(256u << 10, static_cast<uint32_t>(i))).ok());
  }
  // The IO thread counts a frame when its write completes, which the receiver may see
  // first: wait for both.
  ASSERT_TRUE(Drive(env, [&]() {
    return at_b.got.size() == 6 + kBurst && a->stats().messages_sent >= 6 + kBurst;
  }));
  EXPECT_EQ(a->stats().messages_sent, 6 + kBurst);
  EXPECT_EQ(at_b.got[0].second, "first");
  for (uint32_t i = 0; i < 5; ++i) EXPECT_EQ(at_b.got[1 + i].second, Pattern(100 + i, i));
  for (size_t i = 0; i < kBurst; ++i) {
    ASSERT_EQ(at_b.got[6 + i].second, Pattern(256u << 10, static_cast<uint32_t>(i))) << i;
  }
  // The peer restarts on the same port: the old connection breaks, a direct write to it
  // may be lost with the connection like a queued one, then the messenger dials again
  // and later frames arrive.
  const std::string address = b->address();
  b.reset();
  TcpMessengerOptions bo = Named("b");
  bo.listen = address;
  b = StartOrDie(env, bo);
  Inbox again;
  b->SetReceiver(again.Receiver());
  ASSERT_TRUE(Drive(env, [&]() {
    (void)a->Send("b", "ping");
    return !again.got.empty();
  }));
  EXPECT_EQ(again.got[0].first, "a");
  EXPECT_EQ(again.got[0].second, "ping");
}

// Coalescing (options.coalesce): the frames one loop turn Sends to a peer go out by one
// send(2), posted once; order and bytes are those of the Sends, also for a burst larger
// than the socket takes (the rest queues behind, in order) and for frames Sent while a
// flush is still pending; the receiver's IO thread hands each read's frames over in one
// post.
TEST(TcpMessenger, CoalescesTheFramesOfOneTurnIntoOneWriteInOrder) {
  RealEnv env;
  auto b = StartOrDie(env, Named("b"));
  TcpMessengerOptions ao = DialsB("a", *b);
  ASSERT_TRUE(ao.coalesce);  // the default
  auto a = StartOrDie(env, ao);
  Inbox at_b;
  b->SetReceiver(at_b.Receiver());
  // The first frame dials: queued for the IO thread, as without coalescing.
  ASSERT_TRUE(a->Send("b", "first").ok());
  ASSERT_TRUE(Drive(env, [&]() { return a->stats().messages_sent == 1 && at_b.got.size() == 1; }));
  EXPECT_EQ(a->stats().coalesced_writes, 0u);
  // Ten frames in one turn: the eighth reaches the bound (coalesce_max_frames, 8 by
  // default) and the eight go out by one write at once; the last two wait for the loop to
  // run the flush, then go by a second write.
  ASSERT_EQ(ao.coalesce_max_frames, 8u);
  for (uint32_t i = 0; i < 7; ++i) ASSERT_TRUE(a->Send("b", Pattern(300 + i, i)).ok());
  EXPECT_EQ(a->stats().messages_sent, 1u);
  ASSERT_TRUE(a->Send("b", Pattern(307, 7)).ok());
  EXPECT_EQ(a->stats().messages_sent, 9u);
  EXPECT_EQ(a->stats().coalesced_writes, 1u);
  for (uint32_t i = 8; i < 10; ++i) ASSERT_TRUE(a->Send("b", Pattern(300 + i, i)).ok());
  EXPECT_EQ(a->stats().messages_sent, 9u);
  ASSERT_TRUE(Drive(env, [&]() { return at_b.got.size() == 11; }));
  EXPECT_EQ(a->stats().coalesced_writes, 2u);
  EXPECT_EQ(a->stats().messages_sent, 11u);
  EXPECT_EQ(a->stats().direct_writes, 10u);
  for (uint32_t i = 0; i < 10; ++i) EXPECT_EQ(at_b.got[1 + i].second, Pattern(300 + i, i)) << i;
  EXPECT_GE(b->stats().receive_batches, 2u);   // the first frame's, then the ten's
  EXPECT_LE(b->stats().receive_batches, 11u);  // at most one per message
  EXPECT_EQ(b->stats().messages_received, 11u);
  // A burst far larger than the socket takes in one turn: the flush writes what fits,
  // the IO thread the rest, all in order; then frames after it, in later turns.
  constexpr size_t kBurst = 48;
  for (size_t i = 0; i < kBurst; ++i) {
    ASSERT_TRUE(a->Send("b", Pattern(256u << 10, static_cast<uint32_t>(i))).ok());
  }
  ASSERT_TRUE(Drive(env, [&]() { return a->stats().messages_sent >= 11 + kBurst / 2; }));
  for (uint32_t i = 0; i < 4; ++i) ASSERT_TRUE(a->Send("b", Pattern(50, 900 + i)).ok());
  ASSERT_TRUE(Drive(env, [&]() {
    return at_b.got.size() == 11 + kBurst + 4 && a->stats().messages_sent >= 11 + kBurst + 4;
  }));
  EXPECT_EQ(a->stats().messages_sent, 11 + kBurst + 4);
  for (size_t i = 0; i < kBurst; ++i) {
    ASSERT_EQ(at_b.got[11 + i].second, Pattern(256u << 10, static_cast<uint32_t>(i))) << i;
  }
  for (uint32_t i = 0; i < 4; ++i) {
    EXPECT_EQ(at_b.got[11 + kBurst + i].second, Pattern(50, 900 + i)) << i;
  }
  EXPECT_EQ(a->stats().messages_lost, 0u);
  EXPECT_EQ(b->stats().frames_rejected, 0u);
}

// The bound on a coalesced batch can be set from the environment (benchmarks compare
// settings that way); a value that is not a whole number is refused by name.
TEST(TcpMessenger, TheCoalescingBoundComesFromTheEnvironmentWhenSet) {
  RealEnv env;
  ASSERT_EQ(::setenv("TIDAL_TCP_COALESCE_FRAMES", "eight", 1), 0);
  Result<std::unique_ptr<TcpMessenger>> bad = TcpMessenger::Start(env, Named("a"));
  EXPECT_EQ(bad.code(), ErrorCode::INVALID_PARAMS);
  EXPECT_NE(bad.status().message().find("TIDAL_TCP_COALESCE_FRAMES='eight'"), std::string::npos);
  ASSERT_EQ(::setenv("TIDAL_TCP_COALESCE_FRAMES", "0", 1), 0);  // unbounded: one write a turn
  auto b = StartOrDie(env, Named("b"));
  TcpMessengerOptions ao = DialsB("a", *b);
  auto a = StartOrDie(env, ao);
  ASSERT_EQ(::unsetenv("TIDAL_TCP_COALESCE_FRAMES"), 0);
  Inbox at_b;
  b->SetReceiver(at_b.Receiver());
  // The first frame dials (the IO thread writes it): wait until the sender counted it too,
  // not only until it arrived, or the burst below can find the write still in the IO
  // thread's hands and queue behind it.
  ASSERT_TRUE(a->Send("b", "first").ok());
  ASSERT_TRUE(Drive(env, [&]() { return a->stats().messages_sent == 1 && at_b.got.size() == 1; }));
  for (uint32_t i = 0; i < 20; ++i) ASSERT_TRUE(a->Send("b", Pattern(100, i)).ok());
  EXPECT_EQ(a->stats().messages_sent, 1u);
  ASSERT_TRUE(Drive(env, [&]() { return at_b.got.size() == 21; }));
  EXPECT_EQ(a->stats().coalesced_writes, 1u);
  for (uint32_t i = 0; i < 20; ++i) EXPECT_EQ(at_b.got[1 + i].second, Pattern(100, i)) << i;
}

// A frame the sender's thread wrote in part (the socket took a prefix: a direct write, or a
// coalesced flush) whose connection then breaks is sent again whole on the next
// connection: the new peer gets it byte for byte and rejects nothing. (Queued as its
// unwritten rest, the new connection would carry it torn: a rejected frame, the message
// lost.) The peer here first accepts nothing, so its kernel buffers fill, then goes away
// and a real messenger takes its port.
TEST(TcpMessenger, AFrameCutByABrokenConnectionIsSentAgainWhole) {
  for (const bool coalesce : {false, true}) {
    SCOPED_TRACE(coalesce ? "coalesced" : "direct");
    RealEnv env;
    asio::io_context io;
    auto stuck = std::make_unique<asio::ip::tcp::acceptor>(
        io, asio::ip::tcp::endpoint{asio::ip::make_address("127.0.0.1"), 0});
    const std::string address = "127.0.0.1:" + std::to_string(stuck->local_endpoint().port());
    TcpMessengerOptions ao = Named("a");
    ao.peers["b"] = address;
    ao.coalesce = coalesce;
    ao.connect_attempts = 200;           // the new peer comes up within these
    ao.reconnect_backoff_ns = 1'000'000;
    auto a = StartOrDie(env, ao);
    // The connection is up (the kernel completed the handshake) when the first frame left.
    ASSERT_TRUE(a->Send("b", "lost with the first connection").ok());
    ASSERT_TRUE(Drive(env, [&]() { return a->stats().messages_sent == 1; }));
    // 32 MiB: far more than the unaccepted connection's buffers take, so the write is cut.
    const std::string big = Pattern(32u << 20, 5);
    ASSERT_TRUE(a->Send("b", big).ok());
    (void)Drive(env, [] { return false; }, 100'000'000);  // the flush runs; the rest waits
    EXPECT_EQ(a->stats().messages_sent, 1u);  // not all of it went out
    // The peer goes (its pending connection is reset) and a messenger takes its port.
    stuck.reset();
    TcpMessengerOptions bo = Named("b");
    bo.listen = address;
    auto b = StartOrDie(env, bo);
    Inbox at_b;
    b->SetReceiver(at_b.Receiver());
    ASSERT_TRUE(Drive(env, [&]() { return !at_b.got.empty(); }));
    (void)Drive(env, [] { return false; }, 50'000'000);  // nothing else arrives
    ASSERT_EQ(at_b.got.size(), 1u);
    EXPECT_EQ(at_b.got[0].first, "a");
    EXPECT_TRUE(at_b.got[0].second == big);
    EXPECT_EQ(b->stats().frames_rejected, 0u);
    EXPECT_EQ(a->stats().messages_lost, 0u);
  }
}

// Answers go back on the connection their request came on: b, reading on its loop, never
// dials a, which may read its connection on its loop or on its IO thread. 500 requests and
// 500 answers, each numbered and patterned, interleaved; both ways in order, byte-exact.
// b reading on its IO thread dials a back to answer, as frame version 1 always did.
TEST(TcpMessenger, AnswersTravelOnTheConnectionTheRequestsCameOn) {
  for (const bool b_on_loop : {true, false}) {
    for (const bool a_on_loop : {true, false}) {
      for (const bool coalesce : {true, false}) {
        SCOPED_TRACE(std::string(b_on_loop ? "b reads on its loop" : "b reads on its IO thread") +
                     (a_on_loop ? ", a on its loop" : ", a on its IO thread") +
                     (coalesce ? ", coalesced" : ", direct"));
        RealEnv env;
        TcpMessengerOptions bo = Named("b");
        bo.coalesce = coalesce;
        bo.read_on_loop = b_on_loop;
        auto b = StartOrDie(env, bo);
        TcpMessengerOptions ao = DialsB("a", *b);
        ao.read_on_loop = a_on_loop;
        auto a = StartOrDie(env, ao);
        Inbox at_a;
        a->SetReceiver(at_a.Receiver());
        size_t requests = 0;
        b->SetReceiver([&](std::string_view from, std::string payload) {
          ASSERT_EQ(from, "a");
          ASSERT_EQ(payload, Pattern(requests % 300, static_cast<uint32_t>(requests)));
          ASSERT_TRUE(
              b->Send("a", Pattern(requests % 500, static_cast<uint32_t>(requests) + 1)).ok());
          ++requests;
        });
        constexpr size_t kCount = 500;
        for (size_t i = 0; i < kCount; ++i) {
          ASSERT_TRUE(a->Send("b", Pattern(i % 300, static_cast<uint32_t>(i))).ok());
          if (i % 7 == 0) {
            ASSERT_TRUE(Drive(env, [&]() { return at_a.got.size() == i + 1; }));
          }
        }
        ASSERT_TRUE(Drive(env, [&]() { return at_a.got.size() == kCount; }));
        for (size_t i = 0; i < kCount; ++i) {
          ASSERT_EQ(at_a.got[i].first, "b");
          ASSERT_EQ(at_a.got[i].second, Pattern(i % 500, static_cast<uint32_t>(i) + 1)) << i;
        }
        // On its loop b dialled no one and a accepted nothing; else one connection each way.
        const uint64_t back = b_on_loop ? 0 : 1;
        EXPECT_EQ(b->stats().connects, back);
        EXPECT_EQ(a->stats().accepted, back);
        EXPECT_EQ(b->stats().accepted, 1u);
        EXPECT_EQ(a->stats().connects, 1u);
        EXPECT_EQ(b->stats().messages_sent, kCount);
        EXPECT_EQ(a->stats().messages_received, kCount);
        EXPECT_EQ(a->stats().frames_rejected + b->stats().frames_rejected, 0u);
      }
    }
  }
}

// A caller whose own address cannot be dialled (it advertises a port where nothing
// listens: behind a firewall, say) still gets its answers: they take its connection.
TEST(TcpMessenger, ACallerThatCannotBeDialledStillGetsItsAnswers) {
  RealEnv env;
  auto b = StartOrDie(env, Named("b"));
  b->SetReceiver([&](std::string_view from, std::string payload) {
    ASSERT_TRUE(b->Send(from, "answer to " + payload).ok());
  });
  TcpMessengerOptions ao = DialsB("a", *b);
  ao.advertise = "127.0.0.1:1";  // nothing listens there
  auto a = StartOrDie(env, ao);
  Inbox at_a;
  a->SetReceiver(at_a.Receiver());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(a->Send("b", "q" + std::to_string(i)).ok());
  ASSERT_TRUE(Drive(env, [&]() { return at_a.got.size() == 3; }));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(at_a.got[i], std::make_pair(std::string("b"), "answer to q" + std::to_string(i)));
  }
  EXPECT_EQ(b->stats().connects + b->stats().connect_failures, 0u);  // b never dialled
  EXPECT_EQ(b->stats().messages_lost, 0u);
}

// Answers larger than the connection's buffers: the socket takes part of a burst, the
// rest waits (the loop watches the connection for room) and follows in order, whole.
// Sixteen 3 MiB answers sent in one loop turn, before a reads any.
TEST(TcpMessenger, AnswersTheSocketCannotTakeAtOnceFollowInOrder) {
  for (const bool coalesce : {true, false}) {
    SCOPED_TRACE(coalesce ? "coalesced" : "direct");
    RealEnv env;
    TcpMessengerOptions bo = Named("b");
    bo.coalesce = coalesce;
    auto b = StartOrDie(env, bo);
    TcpMessengerOptions ao = DialsB("a", *b);
    auto a = StartOrDie(env, ao);
    Inbox at_a, at_b;
    a->SetReceiver(at_a.Receiver());
    b->SetReceiver(at_b.Receiver());
    ASSERT_TRUE(a->Send("b", "go").ok());
    ASSERT_TRUE(Drive(env, [&]() { return at_b.got.size() == 1; }));
    constexpr uint32_t kCount = 16;
    for (uint32_t i = 0; i < kCount; ++i) ASSERT_TRUE(b->Send("a", Pattern(3u << 20, i)).ok());
    EXPECT_LT(b->stats().messages_sent, kCount);  // the socket did not take them all
    ASSERT_TRUE(Drive(env, [&]() { return at_a.got.size() == kCount; }));
    for (uint32_t i = 0; i < kCount; ++i) {
      ASSERT_TRUE(at_a.got[i].second == Pattern(3u << 20, i)) << i;
    }
    EXPECT_EQ(b->stats().messages_sent, kCount);
    EXPECT_EQ(b->stats().connects, 0u);
    EXPECT_EQ(a->stats().frames_rejected, 0u);
  }
}

// The peer that dialled goes away while answers to it wait (its connection full, it read
// none): they are not lost with the connection but go, whole and first, through a
// connection b dials to the address a's hello gave, where a's successor listens. Then a
// new message follows them.
TEST(TcpMessenger, AnswersLeftOnAClosedConnectionGoThroughADialledOne) {
  RealEnv env;
  auto b = StartOrDie(env, Named("b"));
  Inbox at_b;
  b->SetReceiver(at_b.Receiver());
  std::string a_address;
  {
    // a, on a loop of its own that stops running: b's answers fill the connection.
    RealEnv env_a;
    TcpMessengerOptions ao = DialsB("a", *b);
    auto a = StartOrDie(env_a, ao);
    a_address = a->address();
    ASSERT_TRUE(a->Send("b", "hello from the first a").ok());
    ASSERT_TRUE(Drive(env_a, [&]() { return a->stats().messages_sent == 1; }));
    ASSERT_TRUE(Drive(env, [&]() { return at_b.got.size() == 1; }));
    for (uint32_t i = 0; i < 8; ++i) ASSERT_TRUE(b->Send("a", Pattern(4u << 20, i)).ok());
    (void)Drive(
        env, [] { return false; }, 50'000'000);
    ASSERT_LT(b->stats().messages_sent, 8u);  // some wait for room
  }                                           // a goes, its connection with it
  TcpMessengerOptions again = Named("a");
  again.listen = a_address;
  auto a2 = StartOrDie(env, again);
  Inbox at_a2;
  a2->SetReceiver(at_a2.Receiver());
  const uint64_t waiting = 8 - b->stats().messages_sent;
  ASSERT_TRUE(Drive(env, [&]() { return b->stats().connects == 1; }));
  ASSERT_TRUE(b->Send("a", "after").ok());
  ASSERT_TRUE(Drive(env, [&]() { return at_a2.got.size() == waiting + 1; }));
  for (uint64_t i = 0; i < waiting; ++i) {
    const uint32_t n = static_cast<uint32_t>(8 - waiting + i);
    ASSERT_TRUE(at_a2.got[i].second == Pattern(4u << 20, n)) << i;
  }
  EXPECT_EQ(at_a2.got.back(), std::make_pair(std::string("b"), std::string("after")));
  EXPECT_EQ(a2->stats().frames_rejected, 0u);
  EXPECT_EQ(b->stats().messages_lost, 0u);
}

// A peer of the previous frame version is refused by its first frame, not misread: it
// would drop the answers this version sends on its connection.
TEST(TcpMessenger, RefusesAPeerOfTheFormerFrameVersion) {
  RealEnv env;
  auto b = StartOrDie(env, Named("b"));
  Inbox at_b;
  b->SetReceiver(at_b.Receiver());
  std::string old = EncodeTcpFrame(TcpFrameKind::kHello, "old", "127.0.0.1:1") +
                    EncodeTcpFrame(TcpFrameKind::kMessage, "old", "x");
  old[4] = 1;  // the version byte of the first frame
  RawSend(b->port(), old);
  ASSERT_TRUE(Drive(env, [&]() { return b->stats().frames_rejected == 1; }));
  EXPECT_TRUE(at_b.got.empty());
}

}  // namespace
}  // namespace tidal::backends::tcp
