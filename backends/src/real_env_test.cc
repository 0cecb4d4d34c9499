// RealEnv drives the same coroutines as the simulator on the real clock: timers fire in
// due order and no earlier than asked, canceled timers never fire, posts from other
// threads wake the loop, and RunUntil reports when nothing could ever finish the wait.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "tidal/backends/real_env.h"
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

}  // namespace
}  // namespace tidal::backends
