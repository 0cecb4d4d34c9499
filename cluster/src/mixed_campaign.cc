// The mixed campaign (mixed_campaign.h): store clients and process groups on shared
// engines, random start-up orders, an optional crash, and an exact checker.
#include "tidal/cluster/mixed_campaign.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tidal/cluster/cluster.h"
#include "tidal/sim/shrink.h"

namespace tidal::cluster {
namespace {

constexpr uint64_t kUs = 1'000;
constexpr uint64_t kMs = 1'000'000;

// Seed-derived numbers that every rank must agree on (sizes of a round's allreduce) come
// from this mix, not from the tape, so they do not depend on who draws first.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// The value of a put: deterministic in (seed, node, index), so any reader can check it.
std::string ValueOf(uint64_t seed, size_t node, uint64_t index, size_t bytes) {
  // Eight bytes per generator step (the top bytes of an LCG are its best).
  std::string v(bytes, '\0');
  uint64_t x = Mix(seed * 1000003 + node * 7919 + index);
  for (size_t i = 0; i < bytes; i += 8) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    const uint64_t word = x ^ (x >> 29);
    std::memcpy(v.data() + i, &word, std::min<size_t>(8, bytes - i));
  }
  return v;
}

// Whether `got` is ValueOf(seed, node, index, bytes), compared as it is generated (a get's
// check makes no copy of the value).
bool IsValueOf(std::string_view got, uint64_t seed, size_t node, uint64_t index, size_t bytes) {
  if (got.size() != bytes) return false;
  uint64_t x = Mix(seed * 1000003 + node * 7919 + index);
  size_t i = 0;
  for (; i + 8 <= bytes; i += 8) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    uint64_t have;
    std::memcpy(&have, got.data() + i, 8);
    if (have != (x ^ (x >> 29))) return false;
  }
  if (i == bytes) return true;
  x = x * 6364136223846793005ULL + 1442695040888963407ULL;
  const uint64_t word = x ^ (x >> 29);
  return std::memcmp(got.data() + i, &word, bytes - i) == 0;
}

int32_t Contribution(int rank, uint64_t i, uint32_t round) {
  return (rank + 1) * static_cast<int32_t>(i % 13 + 1) + static_cast<int32_t>(round);
}

// A rank's allreduce input and the check of its result, outside the coroutine so that they
// run from registers. Contribution and the exact sum repeat every 13 elements.
constexpr uint64_t kContributionPeriod = 13;
void FillContributions(int32_t* buf, uint64_t count, int rank, uint32_t round) {
  uint64_t done = std::min(count, kContributionPeriod);
  for (uint64_t i = 0; i < done; ++i) buf[i] = Contribution(rank, i, round);
  while (done < count) {  // a whole number of periods is filled: copy it after itself
    const uint64_t n = std::min(done, count - done);
    std::memcpy(buf + done, buf, n * sizeof(int32_t));
    done += n;
  }
}
// Elements that differ from (i % 13 + 1) * rank_sum + round * members.
int64_t CountWrong(const int32_t* buf, uint64_t count, int64_t rank_sum, int64_t members,
                   uint32_t round) {
  int64_t want[kContributionPeriod];
  for (uint64_t j = 0; j < kContributionPeriod; ++j) {
    want[j] = static_cast<int64_t>(j + 1) * rank_sum + static_cast<int64_t>(round) * members;
  }
  int64_t wrong = 0;
  uint64_t i = 0;
  for (; i + kContributionPeriod <= count; i += kContributionPeriod) {
    for (uint64_t j = 0; j < kContributionPeriod; ++j) wrong += buf[i + j] != want[j] ? 1 : 0;
  }
  for (uint64_t j = 0; i + j < count; ++j) wrong += buf[i + j] != want[j] ? 1 : 0;
  return wrong;
}

struct Acked {
  std::string key;
  size_t node = 0;
  uint64_t index = 0;
  size_t bytes = 0;
};

// One rank's outcome of one round's allreduce.
struct RoundOutcome {
  bool done = false;
  Status status;
  std::vector<int> failed;
  int64_t wrong = -1;  // elements that differ from the exact sum over the members
};

struct GroupPlan {
  std::string name;
  std::vector<size_t> nodes;  // rank order
  int RankOf(size_t node) const {
    auto it = std::find(nodes.begin(), nodes.end(), node);
    return it == nodes.end() ? -1 : static_cast<int>(it - nodes.begin());
  }
};

class MixedRun {
 public:
  MixedRun(uint64_t seed, const MixedCampaignOptions& o) : seed_(seed), o_(o) {}
  MixedSeedResult Run();

 private:
  void Fail(std::string what) {
    if (r_.ok) {
      r_.ok = false;
      r_.error = std::move(what);
    }
  }
  Task<Status> StartEvent(size_t node, int kind, int group, uint64_t delay_ns);
  Task<void> NodeBody(size_t node);
  Task<void> StoreOps(size_t node, uint32_t round);
  Task<void> RemoveOldest(size_t node, uint32_t round);
  Task<void> AllReduceRound(size_t node, size_t g, uint32_t round);
  Task<void> PointToPoint(size_t node, uint32_t round);
  uint64_t CountOf(size_t g, uint32_t round) const {
    const uint64_t count = 1 + Mix(seed_ * 31 + g * 1009 + round) % 3000;  // 1..3 chunks+
    return o_.max_count > 0 ? std::min(count, o_.max_count) : count;
  }
  bool GroupOn(size_t g) const { return ((o_.group_mask >> g) & 1) != 0; }
  bool RoundOn(uint32_t r) const { return r >= 64 || ((o_.round_mask >> r) & 1) != 0; }
  void CheckRounds();
  void FinalReads();

  uint64_t seed_;
  MixedCampaignOptions o_;
  MixedSeedResult r_;
  std::unique_ptr<Cluster> c_;
  size_t n_ = 0;
  size_t master_ = 0;
  std::vector<GroupPlan> groups_;
  std::optional<size_t> crash_node_;
  uint32_t crash_round_ = 0;
  bool crashed_ = false;
  std::vector<Acked> acked_;
  std::vector<uint64_t> next_index_;
  std::vector<std::string> removing_;  // keys whose Remove was issued (any outcome)
  uint64_t start_ns_ = 0;              // virtual time at which the rounds began
  // [group][round][rank]
  std::vector<std::vector<std::vector<RoundOutcome>>> outcomes_;
};

Task<Status> MixedRun::StartEvent(size_t node, int kind, int group, uint64_t delay_ns) {
  co_await SleepFor(c_->env(node), delay_ns);
  switch (kind) {
    case 0:
      r_.start_order += "master@" + std::to_string(node) + " ";
      co_return c_->StartMaster();
    case 1:
      r_.start_order += "client@" + std::to_string(node) + " ";
      co_return co_await c_->StartStoreClient(node, 1 << 20);
    default: {
      const GroupPlan& g = groups_[group];
      r_.start_order += g.name + "@" + std::to_string(node) + " ";
      co_return co_await c_->group(g.name, g.RankOf(node))->Start();
    }
  }
}

Task<void> MixedRun::StoreOps(size_t node, uint32_t round) {
  Env& env = c_->env(node);
  store::StoreClient& client = *c_->store_client(node);
  const uint64_t ops = env.RandomBelow(4);
  for (uint64_t k = 0; k < ops; ++k) {
    if (acked_.empty() || env.RandomBelow(2) == 0) {
      const uint64_t index = next_index_[node]++;
      const std::string key = "n" + std::to_string(node) + "-" + std::to_string(index);
      size_t bytes = 1 + env.RandomBelow(env.RandomBelow(4) == 0 ? 40000 : 3000);
      if (o_.max_value > 0) bytes = std::min<size_t>(bytes, o_.max_value);
      store::ReplicateConfig config;
      config.replica_num = 1 + env.RandomBelow(2);
      const std::string value = ValueOf(seed_, node, index, bytes);
      Status st = co_await client.Put(key, value, config);
      ++r_.puts;
      if (st.ok()) {
        acked_.push_back({key, node, index, bytes});
        if (o_.live_objects_per_node > 0) co_await RemoveOldest(node, round);
      } else if (!crashed_) {
        Fail("put " + key + " on node " + std::to_string(node) + " round " +
             std::to_string(round) + " failed with no node crashed: " + st.ToString());
      }
    } else {
      const Acked a = acked_[env.RandomBelow(acked_.size())];
      Result<std::string> got = co_await client.Get(a.key);
      ++r_.gets;
      const bool being_removed =
          std::find(removing_.begin(), removing_.end(), a.key) != removing_.end();
      if (!got.ok() && being_removed && got.status().code() == ErrorCode::OBJECT_NOT_FOUND) {
        // Removed by its owner while this get was on its way: allowed.
      } else if (got.ok()) {
        if (!IsValueOf(*got, seed_, a.node, a.index, a.bytes)) {
          Fail("get " + a.key + " on node " + std::to_string(node) + " returned wrong bytes (" +
               std::to_string(got->size()) + " of " + std::to_string(a.bytes) + ")");
        }
      } else if (!crashed_) {
        Fail("get " + a.key + " on node " + std::to_string(node) +
             " failed with no node crashed: " + got.status().ToString());
      }
    }
  }
}

// Keeps this node's own objects at most options.live_objects_per_node: removes the oldest.
// The key leaves acked_ before the Remove is issued (no later get picks it) and goes into
// removing_ (a get already on its way may find it gone). A Remove that fails while a lease
// on the object runs (OBJECT_HAS_LEASE) is retried with force, which frees the memory only
// after the lease; any other failure with no node crashed is a finding.
Task<void> MixedRun::RemoveOldest(size_t node, uint32_t round) {
  size_t own = 0, oldest = acked_.size();
  for (size_t i = 0; i < acked_.size(); ++i) {
    if (acked_[i].node != node) continue;
    if (own++ == 0) oldest = i;
  }
  if (own <= o_.live_objects_per_node) co_return;
  const std::string key = acked_[oldest].key;
  acked_.erase(acked_.begin() + static_cast<std::ptrdiff_t>(oldest));
  removing_.push_back(key);
  store::StoreClient& client = *c_->store_client(node);
  Status st = co_await client.Remove(key);
  if (st.code() == ErrorCode::OBJECT_HAS_LEASE) {
    Status forced = co_await client.Remove(key, /*force=*/true);
    st = forced;
  }
  ++r_.removes;
  if (!st.ok() && !crashed_) {
    Fail("remove " + key + " on node " + std::to_string(node) + " round " +
         std::to_string(round) + " failed with no node crashed: " + st.ToString());
  }
}

Task<void> MixedRun::AllReduceRound(size_t node, size_t g, uint32_t round) {
  const GroupPlan& plan = groups_[g];
  const int rank = plan.RankOf(node);
  const uint64_t count = CountOf(g, round);
  // Written in full before it is read: not zeroed first.
  std::unique_ptr<int32_t[]> buf = std::make_unique_for_overwrite<int32_t[]>(count);
  FillContributions(buf.get(), count, rank, round);
  coll::Tensor t{buf.get(), coll::DataType::kI32, count, Location::Host()};
  auto w = c_->group(plan.name, rank)->AllReduce(t, coll::ReduceOp::kSum);
  Status st = co_await w->Wait();
  RoundOutcome& out = outcomes_[g][round][rank];
  out.done = true;
  out.status = st;
  out.failed = w->failed_ranks();
  ++r_.collectives;
  if (st.ok() || st.code() == ErrorCode::RANK_FAILED) {
    // The exact sum over the members that committed: Contribution is linear in rank + 1,
    // so it is (i % 13 + 1) * sum(m + 1) + round * members.
    int64_t rank_sum = 0, members = 0;
    for (int m = 0; m < static_cast<int>(plan.nodes.size()); ++m) {
      if (std::find(out.failed.begin(), out.failed.end(), m) == out.failed.end()) {
        rank_sum += m + 1;
        ++members;
      }
    }
    out.wrong = CountWrong(buf.get(), count, rank_sum, members, round);
  }
}

// Ranks 0 and 1 of "sub" exchange one message per round (tag = round); in a quarter of
// the rounds the receive is 8 bytes too large, and must fail with INVALID_PARAMS without
// touching its buffer. A receive that fails for any reason leaves its buffer untouched.
Task<void> MixedRun::PointToPoint(size_t node, uint32_t round) {
  const GroupPlan& sub = groups_[1];
  const int rank = sub.RankOf(node);
  if (rank != 0 && rank != 1) co_return;
  if (!o_.p2p || !GroupOn(1)) co_return;
  const uint64_t bytes = 1 + Mix(seed_ * 7 + round) % 6000;
  const bool mismatch = Mix(seed_ * 13 + round) % 4 == 0;
  const std::string value = ValueOf(seed_, 1000 + round, 0, bytes);
  coll::ProcessGroup& g = *c_->group(sub.name, rank);
  if (rank == 0) {
    std::vector<uint8_t> msg(value.begin(), value.end());
    coll::Tensor t{msg.data(), coll::DataType::kU8, bytes, Location::Host()};
    (void)co_await g.Send(t, 1, round)->Wait();  // judged at the receiver
    co_return;
  }
  std::vector<uint8_t> buf(bytes + (mismatch ? 8 : 0), 0xEE);
  coll::Tensor t{buf.data(), coll::DataType::kU8, buf.size(), Location::Host()};
  Status st = co_await g.Recv(t, 0, round)->Wait();
  ++r_.p2p;
  const std::string where = "p2p round " + std::to_string(round) + " (" + std::to_string(bytes) +
                            " bytes" + (mismatch ? ", receive 8 bytes larger" : "") + "): ";
  const bool untouched =
      std::all_of(buf.begin(), buf.end(), [](uint8_t b) { return b == 0xEE; });
  if (st.ok()) {
    if (mismatch) {
      Fail(where + "a receive of the wrong size succeeded");
    } else if (std::string(buf.begin(), buf.end()) != value) {
      Fail(where + "the received bytes differ from the sent ones");
    }
  } else {
    if (!untouched) Fail(where + "a failed receive (" + st.ToString() + ") wrote its buffer");
    const bool expected = mismatch ? st.code() == ErrorCode::INVALID_PARAMS : crashed_;
    if (!expected && !crashed_) Fail(where + "unexpected " + st.ToString());
  }
}

Task<void> MixedRun::NodeBody(size_t node) {
  Env& env = c_->env(node);
  for (uint32_t round = 0; round < o_.rounds; ++round) {
    if (!RoundOn(round)) continue;
    if (o_.round_period_ns > 0) {
      const uint64_t begin = start_ns_ + round * o_.round_period_ns;
      const uint64_t now = env.NowNs();
      if (now < begin) co_await SleepFor(env, begin - now);
    }
    if (crash_node_ && *crash_node_ == node && round == crash_round_) {
      co_await SleepFor(env, env.RandomBelow(300 * kUs));
      crashed_ = true;
      ++r_.crashes;
      (void)c_->CrashSoon(node);
      co_await SleepFor(env, 1);  // the node stops here
    }
    if (o_.store) co_await StoreOps(node, round);
    if (env.RandomBelow(4) == 0) {
      // Another user of this engine looks at a peer and goes away again (a tool, a second
      // client): the shared handle must survive it for everyone else.
      const size_t peer = env.RandomBelow(n_);
      if (o_.handles && peer != node && c_->alive(peer)) {
        TransferEngine& engine = c_->engine(node);
        Result<SegmentHandle> h = co_await engine.OpenSegment(Cluster::NodeName(peer));
        if (h.ok()) (void)engine.CloseSegment(*h);
      }
    }
    for (size_t g = 0; g < groups_.size(); ++g) {
      if (groups_[g].RankOf(node) < 0 || !GroupOn(g)) continue;
      co_await AllReduceRound(node, g, round);
      co_await SleepFor(env, env.RandomBelow(100 * kUs));
    }
    co_await PointToPoint(node, round);
  }
}

void MixedRun::CheckRounds() {
  for (size_t g = 0; g < groups_.size(); ++g) {
    if (!GroupOn(g)) continue;
    const GroupPlan& plan = groups_[g];
    const int crashed_rank = crash_node_ ? plan.RankOf(*crash_node_) : -1;
    for (uint32_t round = 0; round < o_.rounds; ++round) {
      if (!RoundOn(round)) continue;
      const RoundOutcome* first = nullptr;
      for (int rank = 0; rank < static_cast<int>(plan.nodes.size()); ++rank) {
        if (!c_->alive(plan.nodes[rank])) continue;  // the crashed node promises nothing
        const RoundOutcome& out = outcomes_[g][round][rank];
        const std::string where = "group " + plan.name + " round " + std::to_string(round) +
                                  " rank " + std::to_string(rank) + ": ";
        if (!out.done) {
          Fail(where + "a live rank never finished its allreduce");
          return;
        }
        const bool clean = out.status.ok() && out.failed.empty();
        const bool lost_one = out.status.code() == ErrorCode::RANK_FAILED && crashed_rank >= 0 &&
                              out.failed == std::vector<int>{crashed_rank};
        if (!clean && !lost_one) {
          Fail(where + "status " + out.status.ToString() + " with " +
               std::to_string(out.failed.size()) + " failed ranks (crashed rank " +
               std::to_string(crashed_rank) + ")");
          return;
        }
        if (out.wrong != 0) {
          Fail(where + std::to_string(out.wrong) + " elements differ from the exact sum");
          return;
        }
        if (first == nullptr) {
          first = &out;
        } else if (first->status.code() != out.status.code() || first->failed != out.failed) {
          Fail(where + "disagrees with the other survivors: " + out.status.ToString() + " vs " +
               first->status.ToString());
          return;
        }
      }
    }
  }
}

void MixedRun::FinalReads() {
  size_t reader = 0;
  while (reader < n_ && !c_->alive(reader)) ++reader;
  std::vector<std::optional<Result<std::string>>> got(acked_.size());
  c_->RunEach({reader}, [&](size_t node) -> Task<void> {
    for (size_t i = 0; i < acked_.size(); ++i) {
      got[i] = co_await c_->store_client(node)->Get(acked_[i].key);
    }
  }, 60'000 * kMs);
  for (size_t i = 0; i < acked_.size(); ++i) {
    const Acked& a = acked_[i];
    if (!got[i].has_value()) {
      Fail("final read of " + a.key + " never finished");
      return;
    }
    const Result<std::string>& v = *got[i];
    if (v.ok() && !IsValueOf(*v, seed_, a.node, a.index, a.bytes)) {
      Fail("final read of " + a.key + " returned wrong bytes");
      return;
    }
    if (!v.ok() && !crashed_) {
      Fail("final read of " + a.key + " failed with no node crashed: " + v.status().ToString());
      return;
    }
    ++r_.gets;
  }
}

MixedSeedResult MixedRun::Run() {
  uint64_t x = Mix(seed_);
  n_ = o_.nodes > 0 ? o_.nodes : 3 + x % 4;
  ClusterOptions co;
  co.nodes = n_;
  co.master_node = (x >> 8) % n_;
  master_ = co.master_node;
  co.sim.seed = seed_;
  co.sim.replay_command = "tidal-mixed-campaign --seed " + std::to_string(seed_) + " --verbose";
  co.sim.engine.planted_bug = o_.engine_bug;
  co.sim.tape = o_.tape;
  co.sim.record_tape = o_.record_tape;
  auto made = Cluster::Make(co);
  if (!made.ok()) {
    Fail("cluster: " + made.status().ToString());
    return r_;
  }
  c_ = std::move(*made);
  r_.nodes = static_cast<uint32_t>(n_);
  next_index_.assign(n_, 0);

  // Groups: everyone, and a random subgroup of 2..n-1 nodes in a random rank order.
  std::vector<size_t> all(n_);
  for (size_t i = 0; i < n_; ++i) all[i] = i;
  std::vector<size_t> sub = all;
  Env& env0 = c_->env(0);
  for (size_t i = sub.size(); i > 1; --i) std::swap(sub[i - 1], sub[env0.RandomBelow(i)]);
  sub.resize(2 + (n_ > 2 ? env0.RandomBelow(n_ - 2) : 0));
  groups_ = {{"world", all}, {"sub", sub}};
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    if (!GroupOn(gi)) continue;
    const GroupPlan& g = groups_[gi];
    coll::ProcessGroupOptions po;
    po.group_name = g.name;
    po.slot_bytes = 4096;
    po.timeout_ns = o_.group_timeout_ns > 0 ? o_.group_timeout_ns : 5'000 * kMs;
    po.planted_bug = o_.coll_bug;
    Status s = c_->NewGroup(g.nodes, po);
    if (!s.ok()) {
      Fail("NewGroup " + g.name + ": " + s.ToString());
      return r_;
    }
  }
  for (size_t node = 0; node < n_ && o_.store; ++node) {
    auto client = c_->NewStoreClient(node);
    if (!client.ok()) {
      Fail("NewStoreClient: " + client.status().ToString());
      return r_;
    }
  }
  outcomes_.assign(groups_.size(), {});
  for (size_t g = 0; g < groups_.size(); ++g) {
    outcomes_[g].assign(o_.rounds, std::vector<RoundOutcome>(groups_[g].nodes.size()));
  }
  if (o_.crashes && env0.RandomBelow(3) == 0) {
    size_t victim = env0.RandomBelow(n_);
    if (victim == master_) victim = (victim + 1) % n_;
    crash_node_ = victim;
    crash_round_ = static_cast<uint32_t>(env0.RandomBelow(o_.rounds));
  }

  // Start-up: every event at its own random time, all concurrently.
  std::vector<std::shared_ptr<std::optional<Status>>> started;
  std::vector<std::string> what;
  // (A part left out still draws its delay: the other parts start when they did.)
  const uint64_t master_delay = env0.RandomBelow(3 * kMs);
  if (o_.store) {
    started.push_back(c_->Start(master_, StartEvent(master_, 0, -1, master_delay)));
    what.push_back("master");
  }
  for (size_t node = 0; node < n_; ++node) {
    const uint64_t client_delay = env0.RandomBelow(3 * kMs);
    if (o_.store) {
      started.push_back(c_->Start(node, StartEvent(node, 1, -1, client_delay)));
      what.push_back("client " + std::to_string(node));
    }
    for (size_t g = 0; g < groups_.size(); ++g) {
      if (groups_[g].RankOf(node) < 0) continue;
      const uint64_t group_delay = env0.RandomBelow(3 * kMs);
      if (!GroupOn(g)) continue;
      started.push_back(c_->Start(node, StartEvent(node, 2, static_cast<int>(g), group_delay)));
      what.push_back(groups_[g].name + " rank " + std::to_string(groups_[g].RankOf(node)));
    }
  }
  c_->RunUntil([&] {
    return std::all_of(started.begin(), started.end(), [](const auto& s) { return s->has_value(); });
  });
  for (size_t i = 0; i < started.size(); ++i) {
    if (!started[i]->has_value() || !started[i]->value().ok()) {
      Fail("start-up of " + what[i] + " failed: " +
           (started[i]->has_value() ? started[i]->value().ToString() : std::string("never ended")));
    }
  }
  start_ns_ = c_->NowNs();
  if (r_.ok) {
    const uint64_t budget_ns = 120'000 * kMs + uint64_t{o_.rounds} * o_.round_period_ns;
    if (!c_->RunEach(all, [this](size_t node) { return NodeBody(node); }, budget_ns)) {
      Fail("liveness: a live node did not finish its rounds");
    }
  }
  if (r_.ok) CheckRounds();
  if (r_.ok) FinalReads();
  r_.digest = c_->world().digest();
  r_.events = c_->world().trace().events();
  r_.faults = sim::InjectedFaults(c_->world());
  if (o_.record_tape) r_.draws = c_->world().tape().recorded();
  r_.virtual_ns = c_->NowNs();
  r_.summary = "seed " + std::to_string(seed_) + ": " + std::to_string(n_) + " nodes, master " +
               std::to_string(master_) + ", sub {" + [&] {
                 std::string s;
                 for (size_t v : sub) s += (s.empty() ? "" : ",") + std::to_string(v);
                 return s;
               }() + "}, " + std::to_string(r_.puts) + " puts, " + std::to_string(r_.gets) +
               " gets, " + std::to_string(r_.collectives) + " rank-allreduces, " +
               (crash_node_ ? "crash node " + std::to_string(*crash_node_) + " at round " +
                                  std::to_string(crash_round_)
                            : std::string("no crash")) +
               "; start: " + r_.start_order;
  if (!r_.ok) r_.error += "\n" + c_->Banner();
  return r_;
}

}  // namespace

MixedSeedResult RunMixedCampaignSeed(uint64_t seed, const MixedCampaignOptions& options) {
  MixedRun run(seed, options);
  return run.Run();
}

}  // namespace tidal::cluster
