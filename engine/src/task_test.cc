// Task<T>, Spawn, OneShot and Callback on a minimal single-threaded Env: values flow
// through nested awaits, a detached root frees itself when done, DestroyRoots frees the
// frames that never will be, and callbacks keep large and move-only captures intact.
#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <memory>

#include "tidal/task.h"

namespace tidal {
namespace {

// A tiny manual Env: a FIFO of ready work and timers in a map by time.
class ManualEnv final : public Env {
 public:
  uint64_t NowNs() override { return now_; }
  uint64_t RandomU64() override { return ++rnd_; }
  void Post(Callback fn) override { ready_.push_back(std::move(fn)); }
  TimerId ScheduleAfter(uint64_t delay_ns, Callback fn) override {
    timers_.emplace(std::make_pair(now_ + delay_ns, ++next_), std::move(fn));
    return next_;
  }
  bool CancelTimer(TimerId id) override {
    for (auto it = timers_.begin(); it != timers_.end(); ++it) {
      if (it->first.second == id) {
        timers_.erase(it);
        return true;
      }
    }
    return false;
  }
  bool RunUntil(const std::function<bool()>& done) override {
    while (!done()) {
      if (!ready_.empty()) {
        Callback fn = std::move(ready_.front());
        ready_.pop_front();
        fn();
      } else if (!timers_.empty()) {
        auto it = timers_.begin();
        now_ = it->first.first;
        Callback fn = std::move(it->second);
        timers_.erase(it);
        fn();
      } else {
        return false;
      }
    }
    return true;
  }
  std::string_view Name() const override { return "manual"; }

 private:
  uint64_t now_ = 0, rnd_ = 0, next_ = 0;
  std::deque<Callback> ready_;
  std::map<std::pair<uint64_t, uint64_t>, Callback> timers_;
};

Task<int> Leaf(Env& env, int v) {
  co_await SleepFor(env, 100);
  co_return v * 2;
}

Task<int> Middle(Env& env) {
  int a = co_await Leaf(env, 3);
  int b = co_await Leaf(env, 4);
  co_return a + b;
}

TEST(Task, NestedAwaitsCarryValuesAndTime) {
  ManualEnv env;
  EXPECT_EQ(RunBlocking(env, Middle(env)), 14);
  EXPECT_EQ(env.NowNs(), 200u);
}

TEST(Task, SpawnedRootFreesItselfWhenDone) {
  ManualEnv env;
  int hits = 0;
  Spawn(env, [](Env& e, int& h) -> Task<void> {
    co_await Yield(e);
    ++h;
  }(env, hits));
  EXPECT_EQ(env.RootCount(), 1u);
  env.RunUntil([&] { return hits == 1; });
  EXPECT_EQ(env.RootCount(), 0u);
}

TEST(Task, DestroyRootsFreesSuspendedFrames) {
  ManualEnv env;
  auto flag = std::make_shared<int>(0);
  OneShot<int> never(env);
  Spawn(env, [](OneShot<int>& o, std::shared_ptr<int> f) -> Task<void> {
    *f = co_await o.Wait();
  }(never, flag));
  env.RunUntil([] { return false; });  // runs until idle: the task is suspended
  EXPECT_EQ(flag.use_count(), 2);      // the frame holds a reference
  env.DestroyRoots();
  EXPECT_EQ(flag.use_count(), 1);      // the frame is gone
  EXPECT_EQ(env.RootCount(), 0u);
}

TEST(OneShot, SetOnceResumesTheWaiterThroughTheEnv) {
  ManualEnv env;
  OneShot<int> shot(env);
  int got = 0;
  Spawn(env, [](OneShot<int>& o, int& g) -> Task<void> { g = co_await o.Wait(); }(shot, got));
  env.RunUntil([] { return false; });
  EXPECT_TRUE(shot.Set(5));
  EXPECT_FALSE(shot.Set(6));
  EXPECT_EQ(got, 0);  // never resumed inline
  env.RunUntil([&] { return got != 0; });
  EXPECT_EQ(got, 5);
}

TEST(Callback, InlineHeapAndMoveOnlyCaptures) {
  int small = 0;
  Callback a = [&small] { ++small; };
  a();
  EXPECT_EQ(small, 1);
  std::array<uint64_t, 16> big{};
  big[15] = 9;
  uint64_t seen = 0;
  Callback b = [big, &seen] { seen = big[15]; };
  Callback moved = std::move(b);
  EXPECT_FALSE(static_cast<bool>(b));
  moved();
  EXPECT_EQ(seen, 9u);
  auto owned = std::make_unique<int>(4);
  int out = 0;
  Callback c = [p = std::move(owned), &out] { out = *p; };
  c();
  EXPECT_EQ(out, 4);
}

}  // namespace
}  // namespace tidal
