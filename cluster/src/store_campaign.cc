// The store nemesis campaign (see store_campaign.h): workload drivers, history, checker.
#include "tidal/cluster/store_campaign.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

#include "tidal/cluster/store_world.h"
#include "tidal/sim/trace.h"

namespace tidal::cluster {

using namespace tidal::store;  // NOLINT: the campaign speaks the store's vocabulary
namespace {

constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kOpTimeoutNs = 200 * kMs;
// A hung node's executor (and so its deadline timers) is frozen for up to 5 ms.
constexpr uint64_t kTimeoutSlackNs = 6 * kMs;
constexpr size_t kMaxBatch = 3;

struct Mutation {
  bool put = false;
  uint64_t value_seed = 0;
  uint64_t size = 0;
  int shard = -1;  // tensor-parallel shard rank, -1 for a plain value
  uint32_t replicas = 0;
  std::vector<std::string> holders;  // segments holding it when the put was acknowledged
  uint64_t generation = 0;           // the master's generation of it then (0: unknown)
  uint64_t start_ns = 0, end_ns = 0;
  bool finished = false;
  ErrorCode code = ErrorCode::OK;
};

Mutation PutMutation(uint64_t value_seed, uint64_t size, int shard, uint32_t replicas) {
  Mutation m;
  m.put = true;
  m.value_seed = value_seed;
  m.size = size;
  m.shard = shard;
  m.replicas = replicas;
  return m;
}

bool Indeterminate(ErrorCode c) {
  return c == ErrorCode::RPC_TIMEOUT || c == ErrorCode::OPERATION_TIMEOUT ||
         c == ErrorCode::RPC_FAIL || c == ErrorCode::CORRUPT_INPUT;
}

bool Transient(ErrorCode c) {
  return Indeterminate(c) || c == ErrorCode::TRANSFER_FAIL || c == ErrorCode::LEASE_EXPIRED ||
         c == ErrorCode::REGISTRATION_FAILED;
}

Tensor TpTensor(uint64_t value_seed) {
  Tensor t{DType::kI32, {4, 8}, Pattern(value_seed, 4 * 8 * 4)};
  return t;
}

class Campaign {
 public:
  Campaign(uint64_t seed, const StoreCampaignConfig& cfg) : seed_(seed), cfg_(cfg) {}
  StoreCampaignResult Run();

 private:
  Task<void> Driver(size_t c);
  Task<void> OpPut(size_t c, bool zero_copy);
  Task<void> OpGet(size_t c, bool zero_copy);
  Task<void> OpRemove(size_t c);
  Task<void> OpBatchPut(size_t c);
  Task<void> OpBatchGet(size_t c);
  Task<void> OpExists(size_t c);
  Task<void> OpTpPut(size_t c);
  Task<void> OpTpGet(size_t c);
  Task<void> OpLeave(size_t c);

  std::string Key(size_t c) { return "k" + std::to_string(env(c).RandomBelow(keyspace_)); }
  std::vector<std::string> Keys(size_t c, size_t n);
  uint64_t Size(size_t c);
  ReplicateConfig Config(size_t c);
  Env& env(size_t c) { return w_->env(c); }
  uint64_t Now() { return w_->world().NowNs(); }
  size_t Begin(const std::string& key, Mutation m);
  void End(const std::string& key, size_t index, ErrorCode code);
  void AddCandidate(const std::string& key, std::string_view bytes);
  void CheckGet(const std::string& key, std::string_view bytes);
  void CheckDuration(uint64_t start_ns, const char* what, uint64_t limit_ns = kOpTimeoutNs);
  void Count(ErrorCode code) {
    ++result_.ops;
    if (code == ErrorCode::OK) ++result_.ops_ok;
  }
  void Violation(std::string what) {
    if (failure_.empty()) failure_ = std::move(what);
  }
  void CheckDurability();

  uint64_t seed_;
  StoreCampaignConfig cfg_;
  std::unique_ptr<StoreWorld> w_;
  StoreCampaignResult result_;
  std::string failure_;
  size_t keyspace_ = 0;
  uint64_t lease_ttl_ns_ = 0;
  uint64_t max_size_ = 0;
  uint64_t next_value_ = 1;
  std::vector<uint8_t*> buffers_;  // per client: kMaxBatch * max_size_, registered
  std::vector<bool> done_;
  std::map<std::string, std::set<std::pair<uint64_t, uint64_t>>> candidates_;  // size, hash
  std::map<std::string, std::vector<Mutation>> mutations_;
  std::set<std::string> evicted_;
  std::set<uint32_t> left_;  // nodes whose client closed (graceful unmount)
};

std::vector<std::string> Campaign::Keys(size_t c, size_t n) {
  std::vector<std::string> keys;
  while (keys.size() < n) {
    std::string k = Key(c);
    if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  }
  return keys;
}

uint64_t Campaign::Size(size_t c) {
  uint64_t pick = env(c).RandomBelow(100);
  if (pick < 50) return 1 + env(c).RandomBelow(4096);
  if (pick < 85) return 4096 + env(c).RandomBelow(std::min<uint64_t>(60 << 10, max_size_ - 4096));
  return 1 + env(c).RandomBelow(max_size_);
}

ReplicateConfig Campaign::Config(size_t c) {
  ReplicateConfig cfg;
  cfg.replica_num = 1 + static_cast<uint32_t>(env(c).RandomBelow(3));
  if (env(c).RandomBelow(4) == 0) cfg.preferred_segments = {StoreWorld::SegmentOf(c)};
  if (env(c).RandomBelow(10) == 0) cfg.soft_pin_ttl_ns = 50 * kMs;
  return cfg;
}

size_t Campaign::Begin(const std::string& key, Mutation m) {
  m.start_ns = Now();
  auto& v = mutations_[key];
  v.push_back(std::move(m));
  return v.size() - 1;
}

void Campaign::End(const std::string& key, size_t index, ErrorCode code) {
  Mutation& m = mutations_[key][index];
  m.finished = true;
  m.end_ns = Now();
  m.code = code;
  if (m.put && code == ErrorCode::OK) {
    for (const ReplicaLocation& r : w_->Replicas(key)) m.holders.push_back(r.segment);
    if (Result<ObjectInfo> info = w_->Stat(key); info.ok()) m.generation = info->generation;
  }
}

void Campaign::AddCandidate(const std::string& key, std::string_view bytes) {
  candidates_[key].insert({bytes.size(), sim::HashBytes(0, bytes)});
}

void Campaign::CheckGet(const std::string& key, std::string_view bytes) {
  ++result_.gets_checked;
  auto it = candidates_.find(key);
  if (it == candidates_.end() || it->second.count({bytes.size(), sim::HashBytes(0, bytes)}) == 0) {
    Violation("get of '" + key + "' returned " + std::to_string(bytes.size()) +
              " bytes as success that no put of that key wrote (wrong, partial or mixed)");
  }
}

void Campaign::CheckDuration(uint64_t start_ns, const char* what, uint64_t limit_ns) {
  uint64_t took = Now() - start_ns;
  if (took > limit_ns + kTimeoutSlackNs) {
    Violation(std::string(what) + " took " + std::to_string(took) + " ns, past its timeout of " +
              std::to_string(limit_ns) + " ns");
  }
}

Task<void> Campaign::OpPut(size_t c, bool zero_copy) {
  std::string key = Key(c);
  uint64_t vs = next_value_++, size = Size(c);
  std::string v = Pattern(vs, size);
  ReplicateConfig cfg = Config(c);
  AddCandidate(key, v);
  size_t m = Begin(key, PutMutation(vs, size, -1, cfg.replica_num));
  uint64_t t0 = Now();
  Status s;
  if (zero_copy) {
    std::memcpy(buffers_[c], v.data(), size);
    s = co_await w_->client(c).PutFrom(key, buffers_[c], size, cfg);
  } else {
    s = co_await w_->client(c).Put(key, v, cfg);
  }
  End(key, m, s.code());
  Count(s.code());
  CheckDuration(t0, "put");
}

Task<void> Campaign::OpGet(size_t c, bool zero_copy) {
  std::string key = Key(c);
  uint64_t t0 = Now();
  if (zero_copy) {
    Result<uint64_t> n = co_await w_->client(c).GetInto(key, buffers_[c], max_size_);
    Count(n.code());
    if (n.ok()) {
      CheckGet(key, std::string_view(reinterpret_cast<const char*>(buffers_[c]), *n));
    }
  } else {
    Result<std::string> v = co_await w_->client(c).Get(key);
    Count(v.code());
    if (v.ok()) CheckGet(key, *v);
  }
  CheckDuration(t0, "get");
}

Task<void> Campaign::OpRemove(size_t c) {
  std::string key = Key(c);
  bool force = env(c).RandomBelow(2) == 0;
  size_t m = Begin(key, Mutation{});
  uint64_t t0 = Now();
  Status s = co_await w_->client(c).Remove(key, force);
  End(key, m, s.code());
  Count(s.code());
  CheckDuration(t0, "remove");
}

Task<void> Campaign::OpBatchPut(size_t c) {
  std::vector<std::string> keys = Keys(c, 2 + env(c).RandomBelow(kMaxBatch - 1));
  std::vector<const void*> ptrs;
  std::vector<uint64_t> sizes;
  std::vector<size_t> ms;
  ReplicateConfig cfg = Config(c);
  for (size_t i = 0; i < keys.size(); ++i) {
    uint64_t vs = next_value_++, size = Size(c);
    std::string v = Pattern(vs, size);
    std::memcpy(buffers_[c] + i * max_size_, v.data(), size);
    AddCandidate(keys[i], v);
    ms.push_back(Begin(keys[i], PutMutation(vs, size, -1, cfg.replica_num)));
    ptrs.push_back(buffers_[c] + i * max_size_);
    sizes.push_back(size);
  }
  uint64_t t0 = Now();
  std::vector<Status> r = co_await w_->client(c).BatchPutFrom(keys, ptrs, sizes, cfg);
  for (size_t i = 0; i < keys.size(); ++i) {
    End(keys[i], ms[i], r[i].code());
    Count(r[i].code());
  }
  CheckDuration(t0, "batch put");
}

Task<void> Campaign::OpBatchGet(size_t c) {
  std::vector<std::string> keys = Keys(c, 2 + env(c).RandomBelow(kMaxBatch - 1));
  std::vector<void*> ptrs;
  std::vector<uint64_t> caps;
  for (size_t i = 0; i < keys.size(); ++i) {
    ptrs.push_back(buffers_[c] + i * max_size_);
    caps.push_back(max_size_);
  }
  uint64_t t0 = Now();
  std::vector<Result<uint64_t>> r = co_await w_->client(c).BatchGetInto(keys, ptrs, caps);
  for (size_t i = 0; i < keys.size(); ++i) {
    Count(r[i].code());
    if (r[i].ok()) {
      CheckGet(keys[i], std::string_view(static_cast<const char*>(ptrs[i]), *r[i]));
    }
  }
  CheckDuration(t0, "batch get");
}

Task<void> Campaign::OpExists(size_t c) {
  uint64_t t0 = Now();
  if (env(c).RandomBelow(2) == 0) {
    Result<bool> r = co_await w_->client(c).Exists(Key(c));
    Count(r.code());
  } else {
    std::vector<Result<bool>> r = co_await w_->client(c).BatchExists(Keys(c, 3));
    for (auto& x : r) Count(x.code());
  }
  CheckDuration(t0, "exists");
}

Task<void> Campaign::OpTpPut(size_t c) {
  std::string key = "t" + std::to_string(env(c).RandomBelow(3));
  uint64_t vs = next_value_++;
  Tensor full = TpTensor(vs);
  std::vector<std::string> shards = *SplitTensor(full.view(), 0, 2);
  ReplicateConfig cfg = Config(c);
  std::vector<size_t> ms;
  for (int r = 0; r < 2; ++r) {
    std::string sk = StoreClient::TpKey(key, r);
    AddCandidate(sk, shards[r]);
    ms.push_back(Begin(sk, PutMutation(vs, shards[r].size(), r, cfg.replica_num)));
  }
  uint64_t t0 = Now();
  Status s = co_await w_->client(c).PutTensorWithTp(key, full.view(), 2, 0, cfg);
  // A failed TP put may have stored some shards: its code marks them all not acknowledged.
  for (int r = 0; r < 2; ++r) End(StoreClient::TpKey(key, r), ms[r], s.code());
  Count(s.code());
  CheckDuration(t0, "tp put");
}

Task<void> Campaign::OpTpGet(size_t c) {
  std::string key = "t" + std::to_string(env(c).RandomBelow(3));
  uint32_t rank = static_cast<uint32_t>(env(c).RandomBelow(2));
  uint64_t t0 = Now();
  Result<Tensor> t = co_await w_->client(c).GetTensorWithTp(key, rank, 2);
  Count(t.code());
  if (t.ok()) CheckGet(StoreClient::TpKey(key, rank), *EncodeTensor(t->view()));
  CheckDuration(t0, "tp get");
}

// A client closes: its segment leaves the pool gracefully (objects with a replica elsewhere
// stay readable) and the client does nothing more.
Task<void> Campaign::OpLeave(size_t c) {
  left_.insert(StoreWorld::NodeOf(c));
  uint64_t t0 = Now();
  Status s = co_await w_->client(c).Stop();
  Count(s.code());
  // A graceful unmount waits until leases that may still read the segment have lapsed.
  CheckDuration(t0, "stop", kOpTimeoutNs + lease_ttl_ns_);
  ++result_.left;
}

Task<void> Campaign::Driver(size_t c) {
  for (size_t i = 0; i < cfg_.ops_per_client; ++i) {
    // At most one client leaves per seed, and only while three others remain.
    if (left_.empty() && w_->clients() >= 5 && env(c).RandomBelow(200) == 0) {
      co_await OpLeave(c);
      break;
    }
    uint64_t pick = env(c).RandomBelow(100);
    if (pick < 22)
      co_await OpPut(c, false);
    else if (pick < 32)
      co_await OpPut(c, true);
    else if (pick < 50)
      co_await OpGet(c, false);
    else if (pick < 60)
      co_await OpGet(c, true);
    else if (pick < 68)
      co_await OpRemove(c);
    else if (pick < 76)
      co_await OpBatchPut(c);
    else if (pick < 84)
      co_await OpBatchGet(c);
    else if (pick < 89)
      co_await OpExists(c);
    else if (pick < 95)
      co_await OpTpPut(c);
    else
      co_await OpTpGet(c);
  }
  done_[c] = true;
}

void Campaign::CheckDurability() {
  size_t reader = 0;
  while (reader < w_->clients() && !w_->world().alive(StoreWorld::NodeOf(reader))) ++reader;
  // (a client that left can still read: Stop only gives its segment back)
  TIDAL_ASSERT(reader < w_->clients());
  for (const auto& [key, muts] : mutations_) {
    if (!failure_.empty()) return;
    bool clean = std::all_of(muts.begin(), muts.end(), [](const Mutation& m) {
      return m.finished && !(!m.put && Indeterminate(m.code));
    });
    if (!clean || evicted_.count(key) != 0) continue;
    auto last = std::max_element(muts.begin(), muts.end(), [](const auto& a, const auto& b) {
      return a.start_ns < b.start_ns;
    });
    if (!last->put || last->code != ErrorCode::OK) continue;
    bool overlapped = std::any_of(muts.begin(), muts.end(), [&](const Mutation& m) {
      return &m != &*last && m.end_ns >= last->start_ns;
    });
    if (overlapped) continue;
    // Holders are read from the master when the put returns; one that closed (or was
    // found dead) in between is already gone from that list.
    size_t crashed =
        last->replicas > last->holders.size() ? last->replicas - last->holders.size() : 0;
    if (crashed > 0 && left_.empty() && result_.crashed == 0) {
      Violation("acknowledged put of '" + key + "' had " + std::to_string(last->holders.size()) +
                " of " + std::to_string(last->replicas) + " replicas with no holder gone");
      return;
    }
    for (const std::string& h : last->holders) {
      uint32_t node = static_cast<uint32_t>(std::stoul(h.substr(4)));
      if (!w_->world().alive(node) || left_.count(node) != 0) ++crashed;
    }
    if (crashed >= last->replicas) {
      // Every holder crashed: the object is lost, and must be reported lost (README:
      // "Master restart"), not as some other absence.
      const bool all_crashed = last->holders.size() == last->replicas && left_.empty();
      if (!all_crashed) continue;
      Result<std::string> gone = w_->Run(reader, w_->client(reader).Get(key));
      if (gone.code() != ErrorCode::OBJECT_NOT_FOUND ||
          gone.status().message().find("was lost") == std::string::npos) {
        Violation("acknowledged put of '" + key + "' lost with every holder is not reported " +
                  "lost: " + gone.status().ToString());
      }
      continue;
    }
    std::string expect = last->shard < 0
                             ? Pattern(last->value_seed, last->size)
                             : (*SplitTensor(TpTensor(last->value_seed).view(), 0, 2))[last->shard];
    ++result_.durable_checked;
    Result<std::string> got = Status(ErrorCode::INTERNAL_ERROR, "not read");
    // Read at the generation acknowledged: a master restart in between must not change it.
    GetOptions at_ack;
    at_ack.generation = last->generation;
    for (int attempt = 0; attempt < 12; ++attempt) {
      got = w_->Run(reader, w_->client(reader).Get(key, at_ack));
      if (got.ok() || !Transient(got.code())) break;
      w_->Advance(1 * kMs);
    }
    std::string where;
    for (const std::string& h : last->holders) where += " " + h;
    for (uint32_t n : left_) where += " (node" + std::to_string(n) + " left)";
    if (!got.ok()) {
      Violation("acknowledged put of '" + key + "' (holders at ack:" + where + "; " +
                std::to_string(last->replicas) + " replicas, " + std::to_string(crashed) +
                " holders crashed) does not read back: " + got.status().ToString());
    } else if (*got != expect) {
      Violation("acknowledged put of '" + key + "' reads back different bytes");
    }
  }
}

StoreCampaignResult Campaign::Run() {
  result_.seed = seed_;
  // Per-seed configuration comes from a small generator of the seed (not the tape, so a
  // seed's shape is readable); everything during the run draws from the world's tape.
  uint64_t x = seed_ * 0x9E3779B97F4A7C15ull + 0x1234567;
  auto draw = [&x](uint64_t bound) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x % bound;
  };
  StoreWorldOptions o;
  o.seed = seed_;
  o.tape = cfg_.tape;
  o.clients = cfg_.min_clients + draw(cfg_.max_clients - cfg_.min_clients + 1);
  o.segment_bytes = 8ull << 20;
  const bool short_lease = draw(4) == 0;
  // Master crash and restart (StoreWorld::ScheduleMasterRestart) in a third of the seeds.
  const uint64_t restarts = cfg_.master_restarts && draw(3) == 0 ? 1 + draw(2) : 0;
  o.master.lease_ttl_ns = short_lease ? 40'000 : 10'000'000'000ULL;
  lease_ttl_ns_ = o.master.lease_ttl_ns;
  o.master.client_ttl_ns = 200 * kMs;
  o.master.put_timeout_ns = 1000 * kMs;
  o.master.reclaim_quarantine_ns = 500 * kMs;
  o.master.sweep_interval_ns = 20 * kMs;
  o.master.planted_bug = cfg_.master_bug;
  o.client.op_timeout_ns = kOpTimeoutNs;
  o.client.rpc.timeout_ns = 50 * kMs;
  o.client.rpc.retry_ns = 5 * kMs;
  o.client.heartbeat_interval_ns = 20 * kMs;
  o.client.planted_bug = cfg_.planted_bug;
  Result<sim::SwarmSettings> mix = sim::SwarmMix(cfg_.mix);
  TIDAL_ASSERT_MSG(mix.ok(), "campaign: unknown fault mix");
  o.swarm = *mix;
  o.swarm.immune_node = 0;  // the master (the design has one master; its HA is separate)
  o.swarm.max_crashes = static_cast<uint32_t>(std::min<size_t>(2, o.clients - 2));
  o.swarm.horizon_ns = 5 * kMs;
  o.replay_command = "build/release/tools/tidal-store-campaign --seed " + std::to_string(seed_) +
                     " --mix " + cfg_.mix + " --verbose";
  if (!cfg_.tape.empty()) o.replay_command = "feed the same input to store_tape_fuzz";
  keyspace_ = 4 * o.clients + 4;
  max_size_ = short_lease ? (64 << 10) : (256 << 10);
  result_.clients = o.clients;
  result_.short_leases = short_lease ? 1 : 0;

  w_ = std::make_unique<StoreWorld>(o);
  for (uint64_t i = 0; i < restarts; ++i) {
    const uint64_t at = 1 * kMs + draw(60 * kMs), down = 1 * kMs + draw(80 * kMs);
    w_->ScheduleMasterRestart(at, down);
  }
  w_->SetMasterObserver([this](const std::string& key, uint64_t, std::string_view reason) {
    if (reason == "evicted") evicted_.insert(key);
  });
  for (size_t c = 0; c < o.clients; ++c) buffers_.push_back(w_->Buffer(c, kMaxBatch * max_size_));
  done_.assign(o.clients, false);
  for (size_t c = 0; c < o.clients; ++c) Spawn(w_->env(c), Driver(c));
  bool ended = w_->RunUntil([&] {
    for (size_t c = 0; c < done_.size(); ++c) {
      if (!done_[c] && w_->world().alive(StoreWorld::NodeOf(c))) return false;
    }
    return true;
  });
  if (!ended) Violation("liveness: a live client's operation never finished");
  w_->FinishMasterRestarts();
  result_.master_restarts = w_->master_restarts();
  for (size_t c = 0; c < o.clients; ++c) {
    if (!w_->world().alive(StoreWorld::NodeOf(c))) ++result_.crashed;
  }
  if (failure_.empty()) {
    w_->Advance(400 * kMs);  // past the client TTL: the master has dropped dead holders
    CheckDurability();
  }
  if (Status inv = w_->state().CheckInvariants(); !inv.ok()) {
    Violation("master invariant: " + inv.ToString());
  }
  for (size_t c = 0; c < o.clients; ++c)
    result_.lease_expired += w_->client(c).stats().lease_expired;
  result_.virtual_ns = w_->world().NowNs();
  result_.digest = w_->world().digest();
  if (!failure_.empty()) {
    result_.ok = false;
    result_.failure = failure_ + "\n" + w_->Banner();
  }
  w_.reset();
  return result_;
}

}  // namespace

StoreCampaignResult RunStoreCampaign(uint64_t seed, const StoreCampaignConfig& config) {
  Campaign c(seed, config);
  return c.Run();
}

}  // namespace tidal::cluster
