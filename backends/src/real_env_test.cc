// RealEnv drives the same coroutines as the simulator on the real clock: timers fire in
// due order and no earlier than asked, canceled timers never fire, posts from other
// threads wake the loop, and RunUntil reports when nothing could ever finish the wait.
#include "tidal/backends/real_env.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tidal/task.h"

namespace tidal::backends {
namespace {

Task<int> SleepThenAdd(Env& env, int a, int b) {
  co_await SleepFor(env, 1'000'000);  // 1 ms
  co_return a + b;
}

TEST(RealEnv, RunBlockingDrivesACoroutineThroughATimer) {
  RealEnv env;
  const uint64_t t0 = env.NowNs();
  EXPECT_EQ(RunBlocking(env, SleepThenAdd(env, 2, 3)), 5);
  EXPECT_GE(env.NowNs() - t0, 1'000'000u);
}

TEST(RealEnv, TimersFireInDueOrderAndCanceledOnesNever) {
  RealEnv env;
  std::vector<int> order;
  env.ScheduleAfter(3'000'000, [&] { order.push_back(3); });
  env.ScheduleAfter(1'000'000, [&] { order.push_back(1); });
  TimerId c = env.ScheduleAfter(2'000'000, [&] { order.push_back(2); });
  EXPECT_TRUE(env.CancelTimer(c));
  EXPECT_FALSE(env.CancelTimer(c));
  EXPECT_FALSE(env.RunUntil([] { return false; }));  // drains, then nothing is left
  EXPECT_EQ(order, (std::vector<int>{1, 3}));
}

// The loop's timer heap against an ordered map of (due, order): the same timers come
// out first, in the same order, after any mix of adds, cancels and pops; a fired or
// cancelled id never cancels the timer that reuses its slot; no id is 0.
TEST(TimerQueue, PopsInDueThenAddedOrderThroughAnyMixOfCancels) {
  TimerQueue q;
  std::map<std::pair<uint64_t, uint64_t>, int> model;                     // (due, order) -> tag
  std::map<int, std::pair<TimerId, std::pair<uint64_t, uint64_t>>> live;  // tag -> id, key
  std::vector<TimerId> dead;  // ids that fired or were cancelled
  std::mt19937_64 rng(7);
  int next_tag = 0;
  uint64_t order = 0;
  int fired = -1;
  for (int step = 0; step < 20000; ++step) {
    const uint64_t r = rng() % 10;
    if (r < 5 || live.empty()) {
      const uint64_t due = rng() % 64;  // many equal dues
      const int tag = next_tag++;
      const TimerId id = q.Add(due, [&fired, tag] { fired = tag; });
      ASSERT_NE(id, 0u);
      model[{due, order}] = tag;
      live[tag] = {id, {due, order}};
      ++order;
    } else if (r < 8) {
      auto it = live.begin();
      std::advance(it, static_cast<long>(rng() % live.size()));
      Callback fn = q.Cancel(it->second.first);
      ASSERT_TRUE(static_cast<bool>(fn)) << "a pending timer could not be cancelled";
      model.erase(it->second.second);
      dead.push_back(it->second.first);
      live.erase(it);
    } else {
      ASSERT_FALSE(q.empty());
      ASSERT_EQ(q.next_due(), model.begin()->first.first);
      Callback fn = q.PopFirst();
      fn();
      ASSERT_EQ(fired, model.begin()->second) << "popped out of (due, added) order";
      dead.push_back(live[fired].first);
      live.erase(fired);
      model.erase(model.begin());
    }
    ASSERT_EQ(q.size(), model.size());
    if (!dead.empty() && rng() % 4 == 0) {
      EXPECT_FALSE(static_cast<bool>(q.Cancel(dead[rng() % dead.size()])))
          << "a spent id cancelled a live timer";
      ASSERT_EQ(q.size(), model.size());
    }
  }
  EXPECT_FALSE(static_cast<bool>(q.Cancel(0)));
  EXPECT_FALSE(static_cast<bool>(q.Cancel(~0ull)));
  while (!q.empty()) {
    Callback fn = q.PopFirst();
    fn();
    ASSERT_EQ(fired, model.begin()->second);
    model.erase(model.begin());
  }
  EXPECT_TRUE(model.empty());
}

TEST(RealEnv, PostsFromOtherThreadsWakeTheLoop) {
  RealEnv env;
  constexpr int kThreads = 4, kEach = 1000;
  int count = 0;  // touched only on the loop thread
  env.AddPoster();
  std::vector<std::thread> threads;
  std::atomic<int> finished{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) env.Post([&] { ++count; });
      if (finished.fetch_add(1) + 1 == kThreads) env.RemovePoster();
    });
  }
  EXPECT_TRUE(env.RunUntil([&] { return count == kThreads * kEach; }));
  for (auto& t : threads) t.join();
  EXPECT_EQ(count, kThreads * kEach);
}

// With SetSpinNs the loop polls for posts before it blocks: posts from other threads still
// all run, timers still fire in order and no earlier than asked, and a drained loop with no
// poster still reports that nothing can happen.
TEST(RealEnv, SpinningLoopRunsPostsAndTimersAsTheBlockingOne) {
  RealEnv env;
  env.SetSpinNs(200'000);
  std::vector<int> order;
  const uint64_t t0 = env.NowNs();
  uint64_t t_late = 0;
  env.ScheduleAfter(2'000'000, [&] {
    order.push_back(2);
    t_late = env.NowNs();
  });
  env.ScheduleAfter(1'000'000, [&] { order.push_back(1); });
  constexpr int kEach = 2000;
  int count = 0;
  env.AddPoster();
  std::thread poster([&] {
    for (int i = 0; i < kEach; ++i) {
      env.Post([&] { ++count; });
      if (i % 500 == 0) std::this_thread::sleep_for(std::chrono::microseconds(300));
    }
    env.RemovePoster();
  });
  EXPECT_TRUE(env.RunUntil([&] { return count == kEach && order.size() == 2; }));
  poster.join();
  EXPECT_EQ(count, kEach);
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  EXPECT_GE(t_late - t0, 2'000'000u);
  EXPECT_FALSE(env.RunUntil([] { return false; }));
}

// Spin pollers run on the loop's thread only while it polls for a post: never with
// SetSpinNs(0), and while it polls a poller can end the wait by posting what it found (here
// a flag another thread set without posting, as a UCX worker's answer arrives unannounced).
// After RemoveSpinPoller it is not called again.
TEST(RealEnv, SpinPollersRunWhileTheLoopPollsAndCanEndTheWait) {
  RealEnv env;
  std::atomic<uint64_t> calls{0};
  std::atomic<bool> flag{false};
  bool seen = false;
  const std::thread::id loop_thread = std::this_thread::get_id();
  std::atomic<bool> other_thread{false};
  const uint64_t id = env.AddSpinPoller([&] {
    calls.fetch_add(1);
    if (std::this_thread::get_id() != loop_thread) other_thread.store(true);
    if (flag.exchange(false)) env.Post([&] { seen = true; });
  });
  // Not polling: a post from another thread wakes the blocked loop; no poller call.
  env.AddPoster();
  std::thread poster([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    env.Post([&] { seen = true; });
  });
  EXPECT_TRUE(env.RunUntil([&] { return seen; }));
  poster.join();
  EXPECT_EQ(calls.load(), 0u);
  // Polling (for far longer than the test): only the poller turns the flag into a post.
  env.SetSpinNs(10'000'000'000ULL);
  seen = false;
  std::atomic<bool> done{false};
  bool fallback = false;
  std::thread setter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    flag.store(true);
    // A loop that never called the poller would wait for ever: post after 20 s instead
    // (the test then fails below).
    for (int i = 0; i < 2000 && !done.load(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!done.load()) env.Post([&] { fallback = seen = true; });
  });
  EXPECT_TRUE(env.RunUntil([&] { return seen; }));
  done.store(true);
  setter.join();
  EXPECT_FALSE(fallback);
  EXPECT_GT(calls.load(), 0u);
  EXPECT_FALSE(other_thread.load());
  // Removed: no more calls, and the loop still takes posts.
  env.RemoveSpinPoller(id);
  const uint64_t after = calls.load();
  seen = false;
  std::thread again([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    env.Post([&] { seen = true; });
  });
  EXPECT_TRUE(env.RunUntil([&] { return seen; }));
  again.join();
  EXPECT_EQ(calls.load(), after);
  env.RemovePoster();
}

// A loop poller runs while the loop is busy: after every kPollEvery callbacks in a row
// (here 100 callbacks: 12 calls, none idle, and the loop never about to block); then,
// with nothing ready and no polling window, once when the ready work runs out and its
// before_block hook before the loop blocks. A post made by the hook runs before the loop
// blocks, ahead of a post another thread makes once the loop is about to block again
// (whenever the loop gets there, so the counts are exact); the hook runs again when
// RunUntil returns. A spin-only poller is never called on a busy loop.
TEST(RealEnv, LoopPollersRunOnABusyLoopAndHandBackBeforeItBlocks) {
  RealEnv env;
  int busy = 0, idle = 0, spin_only = 0;
  std::atomic<int> blocks{0};  // read by the other thread below
  bool post_from_hook = false;
  std::vector<std::string> order;
  const uint64_t id = env.AddLoopPoller([&](bool is_idle) { ++(is_idle ? idle : busy); },
                                        [&] {
                                          ++blocks;
                                          if (post_from_hook) {
                                            post_from_hook = false;
                                            env.Post([&] { order.push_back("from hook"); });
                                          }
                                        });
  const uint64_t spin_id = env.AddSpinPoller([&] { ++spin_only; });
  int ran = 0;
  for (int i = 0; i < 100; ++i) env.Post([&] { ++ran; });
  EXPECT_TRUE(env.RunUntil([&] { return ran == 100; }));
  EXPECT_EQ(busy, 100 / RealEnv::kPollEvery);
  EXPECT_EQ(idle, 0);
  EXPECT_EQ(spin_only, 0);
  EXPECT_EQ(blocks, 1) << "RunUntil returned without handing back";
  EXPECT_EQ(env.busy_polls(), static_cast<uint64_t>(100 / RealEnv::kPollEvery));

  busy = 0;
  blocks = 0;
  post_from_hook = true;
  env.AddPoster();
  std::thread other([&] {  // posts once the loop is about to block the second time
    while (blocks.load() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    env.Post([&] { order.push_back("other thread"); });
  });
  env.Post([&] { order.push_back("first"); });
  EXPECT_TRUE(env.RunUntil([&] { return order.size() == 3; }));
  other.join();
  env.RemovePoster();
  EXPECT_EQ(order, (std::vector<std::string>{"first", "from hook", "other thread"}));
  EXPECT_EQ(busy, 2) << "a look when the ready work ran out, after each run of callbacks";
  EXPECT_EQ(blocks.load(), 3);  // before each block (the hook's post ran first); at return
  EXPECT_EQ(idle, 0);
  EXPECT_EQ(spin_only, 0);
  env.RemoveSpinPoller(id);
  env.RemoveSpinPoller(spin_id);
}

TEST(RealEnv, SpawnedRootsAreFreedAtDestruction) {
  auto flag = std::make_shared<int>(0);
  {
    RealEnv env;
    OneShot<int> never(env);
    Spawn(env, [](OneShot<int>& o, std::shared_ptr<int> f) -> Task<void> {
      *f = co_await o.Wait();
    }(never, flag));
    env.RunUntil([] { return false; });
    EXPECT_EQ(flag.use_count(), 2);
  }
  EXPECT_EQ(flag.use_count(), 1);
}

// A descriptor the loop watches (AddWaitFd): its callback runs on the loop's thread when
// input arrives, posts from other threads and timers still run while the loop waits in
// epoll, a removed descriptor is never called again, and once none is left (and no poster
// or timer) the loop reports that nothing can happen.
TEST(RealEnv, AWatchedDescriptorRunsItsCallbackOnTheLoop) {
  RealEnv env;
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const std::thread::id loop_thread = std::this_thread::get_id();
  std::string got;
  bool on_loop = true;
  Result<uint64_t> id = env.AddWaitFd(fds[0], [&] {
    on_loop = on_loop && std::this_thread::get_id() == loop_thread;
    char buf[16];
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n > 0) got.append(buf, static_cast<size_t>(n));
  });
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(env.wait_fds(), 1u);
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ASSERT_EQ(::write(fds[1], "abc", 3), 3);
  });
  EXPECT_TRUE(env.RunUntil([&] { return got == "abc"; }));
  writer.join();
  EXPECT_TRUE(on_loop);
  // Waiting in epoll, the loop still takes posts from another thread and fires timers no
  // earlier than asked.
  env.AddPoster();
  bool posted = false;
  std::thread poster([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    env.Post([&] { posted = true; });
    env.RemovePoster();
  });
  EXPECT_TRUE(env.RunUntil([&] { return posted; }));
  poster.join();
  const uint64_t t0 = env.NowNs();
  uint64_t fired = 0;
  env.ScheduleAfter(3'000'000, [&] { fired = env.NowNs(); });
  EXPECT_TRUE(env.RunUntil([&] { return fired != 0; }));
  EXPECT_GE(fired - t0, 3'000'000u);
  // Removed: input left on it is never read.
  env.RemoveWaitFd(*id);
  EXPECT_EQ(env.wait_fds(), 0u);
  ASSERT_EQ(::write(fds[1], "z", 1), 1);
  EXPECT_FALSE(env.RunUntil([] { return false; }));
  EXPECT_EQ(got, "abc");
  ::close(fds[0]);
  ::close(fds[1]);
  EXPECT_EQ(env.AddWaitFd(-1, [] {}).code(), ErrorCode::INVALID_PARAMS);
}

// Write interest: a full pipe's writing end, watched, runs its callback once the reader
// makes room, and never while the interest is off or the pipe full. An id not watched is
// INVALID_PARAMS.
TEST(RealEnv, AWatchedDescriptorCanAlsoWaitForRoomToWrite) {
  RealEnv env;
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_NONBLOCK), 0);
  size_t filled = 0;
  for (char chunk[4096] = {};;) {
    const ssize_t n = ::write(fds[1], chunk, sizeof chunk);
    if (n <= 0) break;
    filled += static_cast<size_t>(n);
  }
  ASSERT_GT(filled, 0u);
  int calls = 0;
  Result<uint64_t> id = env.AddWaitFd(fds[1], [&] { ++calls; });
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(env.WatchWritable(*id + 1, true).code(), ErrorCode::INVALID_PARAMS);
  ASSERT_TRUE(env.WatchWritable(*id, true).ok());
  bool waited = false;  // the pipe stays full for 20 ms of the loop's running
  env.ScheduleAfter(20'000'000, [&] { waited = true; });
  EXPECT_TRUE(env.RunUntil([&] { return waited; }));
  EXPECT_EQ(calls, 0);
  std::vector<char> sink(filled);
  ASSERT_EQ(::read(fds[0], sink.data(), sink.size()), static_cast<ssize_t>(filled));
  bool give_up = false;  // a loop that never looked would otherwise wait forever
  const TimerId limit = env.ScheduleAfter(10'000'000'000ULL, [&] { give_up = true; });
  EXPECT_TRUE(env.RunUntil([&] { return calls > 0 || give_up; }));
  EXPECT_GT(calls, 0);
  env.CancelTimer(limit);
  // Interest off: room to write no longer runs it.
  ASSERT_TRUE(env.WatchWritable(*id, false).ok());
  const int before = calls;
  waited = false;
  env.ScheduleAfter(20'000'000, [&] { waited = true; });
  EXPECT_TRUE(env.RunUntil([&] { return waited; }));
  EXPECT_EQ(calls, before);
  env.RemoveWaitFd(*id);
  EXPECT_EQ(env.WatchWritable(*id, true).code(), ErrorCode::INVALID_PARAMS);
  ::close(fds[0]);
  ::close(fds[1]);
}

// A descriptor's callback that posts (a message handler sending its answer through a
// posted flush) does so after the wait in epoll is over: the post writes no eventfd, and
// the loop runs it. A post from another thread while the loop waits in epoll does (and
// the poster's removal may too, if the loop is back in epoll by then).
TEST(RealEnv, PostsFromADescriptorsCallbackWriteNoEventfd) {
  RealEnv env;
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  int answered = 0;
  Result<uint64_t> id = env.AddWaitFd(fds[0], [&] {
    char c;
    ASSERT_EQ(::read(fds[0], &c, 1), 1);
    env.Post([&] { ++answered; });
  });
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  for (int round = 1; round <= 3; ++round) {
    std::thread writer([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(3));  // the loop is in epoll
      ASSERT_EQ(::write(fds[1], "x", 1), 1);
    });
    EXPECT_TRUE(env.RunUntil([&] { return answered == round; }));
    writer.join();
  }
  EXPECT_EQ(env.wake_writes(), 0u);
  env.AddPoster();
  std::thread poster([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
    env.Post([&] { ++answered; });
    env.RemovePoster();
  });
  EXPECT_TRUE(env.RunUntil([&] { return answered == 4; }));
  poster.join();
  EXPECT_GE(env.wake_writes(), 1u);
  EXPECT_LE(env.wake_writes(), 2u);
  env.RemoveWaitFd(*id);
  ::close(fds[0]);
  ::close(fds[1]);
}

// A loop that never runs out of ready work still reads its descriptors (every
// kFdCheckEvery callbacks), and a callback may remove its own descriptor.
TEST(RealEnv, ABusyLoopStillReadsItsDescriptors) {
  RealEnv env;
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ASSERT_EQ(::write(fds[1], "x", 1), 1);
  int reads = 0;
  uint64_t id = 0;
  Result<uint64_t> added = env.AddWaitFd(fds[0], [&] {
    char c;
    if (::read(fds[0], &c, 1) == 1) ++reads;
    env.RemoveWaitFd(id);  // from inside its own callback
  });
  ASSERT_TRUE(added.ok());
  id = *added;
  uint64_t spins = 0;
  std::function<void()> again = [&] {
    ++spins;
    // Never lets the ready queue drain (for far longer than the loop may go without a look:
    // a loop that only looks when it runs dry fails the bound below instead of hanging).
    if (reads == 0 && spins < 100'000) env.Post(again);
  };
  env.Post(again);
  EXPECT_TRUE(env.RunUntil([&] { return reads == 1; }));
  EXPECT_LE(spins, static_cast<uint64_t>(RealEnv::kFdCheckEvery) + 1);
  EXPECT_EQ(env.wait_fds(), 0u);
  ::close(fds[0]);
  ::close(fds[1]);
}

}  // namespace
}  // namespace tidal::backends
