// The store nemesis campaign (see store_campaign.h): workload drivers, history, checker.
#include "tidal/cluster/store_campaign.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

#include "tidal/cluster/store_world.h"
#include "tidal/sim/trace.h"
#include "tidal/sim/shrink.h"

namespace tidal::cluster {

using namespace tidal::store;  // NOLINT: the campaign speaks the store's vocabulary
namespace {

constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kOpTimeoutNs = 200 * kMs;
// A hung node's executor (and so its deadline timers) is frozen for up to 5 ms.
constexpr uint64_t kTimeoutSlackNs = 6 * kMs;
constexpr size_t kMaxBatch = 3;

// The (path × fault) layout of the reach table (store_campaign.h).
enum Path : size_t {
  kPut, kPutFrom, kBatchPutFrom, kPutTensor, kTpPut, kTpPutFrom,  // writes
  kGet, kGetInto, kBatchGetInto, kGetTensor, kTpGet, kTpGetInto,  // reads
  kPaths
};
constexpr const char* kPathNames[kPaths] = {
    "put", "put_from", "batch_put_from", "put_tensor", "tp_put", "tp_put_from",
    "get", "get_into", "batch_get_into", "get_tensor", "tp_get", "tp_get_into"};
constexpr size_t kWritePaths = kGet;  // paths below kGet write
enum Fault : size_t { kTransferFault, kLeaseReuse, kWriterDied, kFaultCount };
constexpr const char* kFaultNames[kFaultCount] = {"transfer_fault", "lease_expiry_reuse",
                                                  "writer_died_mid_put"};
bool Writes(size_t path) { return path < kWritePaths; }
bool TensorBytes(size_t path) { return path == kPutTensor || path == kGetTensor; }
bool Tp(size_t path) {
  return path == kTpPut || path == kTpPutFrom || path == kTpGet || path == kTpGetInto;
}

struct Mutation {
  bool put = false;
  uint64_t value_seed = 0;
  uint64_t size = 0;
  int shard = -1;  // tensor-parallel shard rank, -1 for a plain value, kWholeTensor
  uint32_t replicas = 0;
  std::vector<std::string> holders;  // segments holding it when the put was acknowledged
  uint64_t generation = 0;           // the master's generation of it then (0: unknown)
  uint64_t start_ns = 0, end_ns = 0;
  bool finished = false;
  ErrorCode code = ErrorCode::OK;
};

constexpr int kWholeTensor = -2;  // Mutation::shard of a tensor stored whole (PutTensor)

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

// The bytes a put of `value_seed` stores under a key: a plain value, a whole serialized
// tensor, or one shard of a tensor split in two along dimension 0.
std::string StoredBytes(int shard, uint64_t value_seed, uint64_t size) {
  if (shard == -1) return Pattern(value_seed, size);
  if (shard == kWholeTensor) return *EncodeTensor(TpTensor(value_seed).view());
  return (*SplitTensor(TpTensor(value_seed).view(), 0, 2))[shard];
}

// What one lease scenario saw (see store_campaign.h).
struct LeaseRace {
  std::string segment;
  uint64_t addr = 0, size = 0;  // X's replica
  bool removed = false;
  bool reused = false;  // an object was placed on X's memory...
  uint64_t reused_ns = 0;  // ...and written by then
  bool done = false;
};

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
  Task<void> OpPutTensor(size_t c);
  Task<void> OpGetTensor(size_t c);
  Task<void> OpTpPutFrom(size_t c);
  Task<void> OpTpGetInto(size_t c);
  // The scenarios.
  Task<Result<std::string>> ReadBy(size_t c, size_t path, std::string key);
  // ReadBy, noting in *ended the virtual time at which the call returned (shared: the
  // call may outlive the scenario that started it).
  Task<Result<std::string>> TimedReadBy(size_t c, size_t path, std::string key,
                                        std::shared_ptr<uint64_t> ended);
  Task<Status> WriteBy(size_t c, size_t path, std::string key, uint64_t value_seed,
                       uint64_t size, ReplicateConfig cfg);
  Task<int> Reuser(size_t h, std::string key, std::vector<std::string> values, uint64_t wait_ns,
                   LeaseRace* race);
  void LeaseScenario(size_t path);
  void WriterDiesScenario(size_t path);
  void DeclaredDeadScenario();
  std::vector<size_t> Usable();  // clients alive, with their segment still mounted
  // Reads at the end (retrying transient codes) and writes with retries, for the scenarios.
  Result<std::string> ReadBack(size_t c, const std::string& key);

  std::string Key(size_t c) { return "k" + std::to_string(env(c).RandomBelow(keyspace_)); }
  std::vector<std::string> Keys(size_t c, size_t n);
  uint64_t Size(size_t c);
  // At most config.max_value (shrinking).
  uint64_t Capped(uint64_t size) const {
    return cfg_.max_value > 0 ? std::min(size, cfg_.max_value) : size;
  }
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
  uint64_t ReadFailures(size_t c) { return w_->client(c).stats().replica_read_failures; }

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
  std::set<std::string> reclaimed_;  // keys the master reclaimed (or lost) unfinished
  uint64_t hang_ns_ = 0, reuse_wait_ns_ = 0;  // lease scenario timing
};

std::vector<std::string> Campaign::Keys(size_t c, size_t n) {
  std::vector<std::string> keys;
  // Bounded: a tape past its end draws 0 forever (shrinking); then the keys in order.
  for (size_t tries = 0; keys.size() < n; ++tries) {
    std::string k = tries < 64 * n ? Key(c) : "k" + std::to_string(tries % keyspace_);
    if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  }
  return keys;
}

uint64_t Campaign::Size(size_t c) {
  uint64_t pick = env(c).RandomBelow(100);
  if (pick < 50 && cfg_.put_reservations > 0) {
    // With put reservations, half the values are blocks of a few fixed sizes (KV-cache
    // pages): a shape comes back, so its reservations are kept between puts, lapse,
    // and are reclaimed while a client holds them.
    static constexpr uint64_t kBlocks[] = {512, 4096, 16384};
    return Capped(kBlocks[env(c).RandomBelow(3)]);
  }
  if (pick < 50) return Capped(1 + env(c).RandomBelow(4096));
  if (pick < 85) return Capped(4096 + env(c).RandomBelow(std::min<uint64_t>(60 << 10, max_size_ - 4096)));
  return Capped(1 + env(c).RandomBelow(max_size_));
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
  if (s.code() == ErrorCode::TRANSFER_FAIL) {
    result_.reach.Hit(zero_copy ? kPutFrom : kPut, kTransferFault);
  }
  CheckDuration(t0, "put");
}

Task<void> Campaign::OpGet(size_t c, bool zero_copy) {
  std::string key = Key(c);
  uint64_t t0 = Now();
  const uint64_t f0 = ReadFailures(c);
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
  if (ReadFailures(c) > f0) result_.reach.Hit(zero_copy ? kGetInto : kGet, kTransferFault);
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
  bool transfer_failed = false;
  for (size_t i = 0; i < keys.size(); ++i) {
    End(keys[i], ms[i], r[i].code());
    Count(r[i].code());
    transfer_failed = transfer_failed || r[i].code() == ErrorCode::TRANSFER_FAIL;
  }
  if (transfer_failed) result_.reach.Hit(kBatchPutFrom, kTransferFault);
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
  const uint64_t f0 = ReadFailures(c);
  std::vector<Result<uint64_t>> r = co_await w_->client(c).BatchGetInto(keys, ptrs, caps);
  if (ReadFailures(c) > f0) result_.reach.Hit(kBatchGetInto, kTransferFault);
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
  if (s.code() == ErrorCode::TRANSFER_FAIL) result_.reach.Hit(kTpPut, kTransferFault);
  CheckDuration(t0, "tp put");
}

Task<void> Campaign::OpTpGet(size_t c) {
  std::string key = "t" + std::to_string(env(c).RandomBelow(3));
  uint32_t rank = static_cast<uint32_t>(env(c).RandomBelow(2));
  uint64_t t0 = Now();
  const uint64_t f0 = ReadFailures(c);
  Result<Tensor> t = co_await w_->client(c).GetTensorWithTp(key, rank, 2);
  Count(t.code());
  if (t.ok()) CheckGet(StoreClient::TpKey(key, rank), *EncodeTensor(t->view()));
  if (ReadFailures(c) > f0) result_.reach.Hit(kTpGet, kTransferFault);
  CheckDuration(t0, "tp get");
}

Task<void> Campaign::OpPutTensor(size_t c) {
  std::string key = "s" + std::to_string(env(c).RandomBelow(3));
  uint64_t vs = next_value_++;
  Tensor t = TpTensor(vs);
  std::string stored = StoredBytes(kWholeTensor, vs, 0);
  ReplicateConfig cfg = Config(c);
  AddCandidate(key, stored);
  size_t m = Begin(key, PutMutation(vs, stored.size(), kWholeTensor, cfg.replica_num));
  uint64_t t0 = Now();
  Status s = co_await w_->client(c).PutTensor(key, t.view(), cfg);
  End(key, m, s.code());
  Count(s.code());
  if (s.code() == ErrorCode::TRANSFER_FAIL) result_.reach.Hit(kPutTensor, kTransferFault);
  CheckDuration(t0, "tensor put");
}

Task<void> Campaign::OpGetTensor(size_t c) {
  std::string key = "s" + std::to_string(env(c).RandomBelow(3));
  uint64_t t0 = Now();
  const uint64_t f0 = ReadFailures(c);
  Result<Tensor> t = co_await w_->client(c).GetTensor(key);
  Count(t.code());
  if (t.ok()) CheckGet(key, *EncodeTensor(t->view()));
  if (ReadFailures(c) > f0) result_.reach.Hit(kGetTensor, kTransferFault);
  CheckDuration(t0, "tensor get");
}

// The same tensor-parallel put, from a registered buffer holding the serialized tensor.
Task<void> Campaign::OpTpPutFrom(size_t c) {
  std::string key = "t" + std::to_string(env(c).RandomBelow(3));
  uint64_t vs = next_value_++;
  std::string whole = StoredBytes(kWholeTensor, vs, 0);
  std::memcpy(buffers_[c], whole.data(), whole.size());
  ReplicateConfig cfg = Config(c);
  std::vector<size_t> ms;
  for (int r = 0; r < 2; ++r) {
    std::string sk = StoreClient::TpKey(key, r);
    std::string shard = StoredBytes(r, vs, 0);
    AddCandidate(sk, shard);
    ms.push_back(Begin(sk, PutMutation(vs, shard.size(), r, cfg.replica_num)));
  }
  uint64_t t0 = Now();
  Status s =
      co_await w_->client(c).PutTensorWithTpFrom(key, buffers_[c], whole.size(), 2, 0, cfg);
  for (int r = 0; r < 2; ++r) End(StoreClient::TpKey(key, r), ms[r], s.code());
  Count(s.code());
  if (s.code() == ErrorCode::TRANSFER_FAIL) result_.reach.Hit(kTpPutFrom, kTransferFault);
  CheckDuration(t0, "tp put from");
}

Task<void> Campaign::OpTpGetInto(size_t c) {
  std::string key = "t" + std::to_string(env(c).RandomBelow(3));
  uint32_t rank = static_cast<uint32_t>(env(c).RandomBelow(2));
  uint64_t t0 = Now();
  const uint64_t f0 = ReadFailures(c);
  Result<uint64_t> n =
      co_await w_->client(c).GetTensorWithTpInto(key, rank, 2, buffers_[c], max_size_);
  Count(n.code());
  if (n.ok()) {
    CheckGet(StoreClient::TpKey(key, rank),
             std::string_view(reinterpret_cast<const char*>(buffers_[c]), *n));
  }
  if (ReadFailures(c) > f0) result_.reach.Hit(kTpGetInto, kTransferFault);
  CheckDuration(t0, "tp get into");
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
    if (c * cfg_.ops_per_client + i < 64 &&
        ((cfg_.op_mask >> (c * cfg_.ops_per_client + i)) & 1) == 0) {
      continue;  // dropped (shrinking)
    }
    if (pick < 16)
      co_await OpPut(c, false);
    else if (pick < 24)
      co_await OpPut(c, true);
    else if (pick < 38)
      co_await OpGet(c, false);
    else if (pick < 46)
      co_await OpGet(c, true);
    else if (pick < 54)
      co_await OpRemove(c);
    else if (pick < 61)
      co_await OpBatchPut(c);
    else if (pick < 68)
      co_await OpBatchGet(c);
    else if (pick < 73)
      co_await OpExists(c);
    else if (pick < 78)
      co_await OpTpPut(c);
    else if (pick < 82)
      co_await OpTpPutFrom(c);
    else if (pick < 87)
      co_await OpTpGet(c);
    else if (pick < 91)
      co_await OpTpGetInto(c);
    else if (pick < 95)
      co_await OpPutTensor(c);
    else
      co_await OpGetTensor(c);
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
    std::string expect = StoredBytes(last->shard, last->value_seed, last->size);
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


// ---------------------------------------------------------------------------------------
// Targeted scenarios (store_campaign.h)

std::vector<size_t> Campaign::Usable() {
  std::vector<size_t> out;
  for (size_t c = 0; c < w_->clients(); ++c) {
    if (w_->alive(c) && left_.count(StoreWorld::NodeOf(c)) == 0) out.push_back(c);
  }
  return out;
}

Result<std::string> Campaign::ReadBack(size_t c, const std::string& key) {
  Result<std::string> got = Status(ErrorCode::INTERNAL_ERROR, "not read");
  for (int attempt = 0; attempt < 12; ++attempt) {
    got = w_->Run(c, w_->client(c).Get(key));
    if (got.ok() || !Transient(got.code())) break;
    w_->Advance(1 * kMs);
  }
  return got;
}

// Reads the object `key` names by `path` (shard 0 of a tensor-parallel key) and returns
// the stored bytes the call delivered.
Task<Result<std::string>> Campaign::ReadBy(size_t c, size_t path, std::string key) {
  StoreClient& client = w_->client(c);
  const char* buf = reinterpret_cast<const char*>(buffers_[c]);
  switch (path) {
    case kGet: co_return co_await client.Get(key);
    case kGetInto: {
      Result<uint64_t> n = co_await client.GetInto(key, buffers_[c], max_size_);
      if (!n.ok()) co_return n.status();
      co_return std::string(buf, *n);
    }
    case kBatchGetInto: {
      std::vector<std::string> keys{key};
      std::vector<void*> ptrs{buffers_[c]};
      std::vector<uint64_t> caps{max_size_};
      std::vector<Result<uint64_t>> r = co_await client.BatchGetInto(keys, ptrs, caps);
      if (!r[0].ok()) co_return r[0].status();
      co_return std::string(buf, *r[0]);
    }
    case kGetTensor: {
      Result<Tensor> t = co_await client.GetTensor(key);
      if (!t.ok()) co_return t.status();
      co_return *EncodeTensor(t->view());
    }
    case kTpGet: {
      Result<Tensor> t = co_await client.GetTensorWithTp(key, 0, 2);
      if (!t.ok()) co_return t.status();
      co_return *EncodeTensor(t->view());
    }
    case kTpGetInto: {
      Result<uint64_t> n = co_await client.GetTensorWithTpInto(key, 0, 2, buffers_[c], max_size_);
      if (!n.ok()) co_return n.status();
      co_return std::string(buf, *n);
    }
  }
  TIDAL_ASSERT_MSG(false, "ReadBy: not a read path");
  co_return Status(ErrorCode::INTERNAL_ERROR, "not a read path");
}

Task<Result<std::string>> Campaign::TimedReadBy(size_t c, size_t path, std::string key,
                                                std::shared_ptr<uint64_t> ended) {
  Result<std::string> r = co_await ReadBy(c, path, std::move(key));
  *ended = Now();
  co_return r;
}

// Puts value `value_seed` under `key` by `path` (a batch puts key + "a" and key + "b").
Task<Status> Campaign::WriteBy(size_t c, size_t path, std::string key, uint64_t value_seed,
                               uint64_t size, ReplicateConfig cfg) {
  StoreClient& client = w_->client(c);
  std::string plain = Pattern(value_seed, size);
  switch (path) {
    case kPut: co_return co_await client.Put(key, plain, cfg);
    case kPutFrom:
      std::memcpy(buffers_[c], plain.data(), size);
      co_return co_await client.PutFrom(key, buffers_[c], size, cfg);
    case kBatchPutFrom: {
      std::memcpy(buffers_[c], plain.data(), size);
      std::memcpy(buffers_[c] + max_size_, plain.data(), size);
      std::vector<std::string> keys{key + "a", key + "b"};
      std::vector<const void*> ptrs{buffers_[c], buffers_[c] + max_size_};
      std::vector<uint64_t> sizes{size, size};
      std::vector<Status> r = co_await client.BatchPutFrom(keys, ptrs, sizes, cfg);
      co_return r[0].ok() ? r[1] : r[0];
    }
    case kPutTensor: {
      Tensor t = TpTensor(value_seed);
      co_return co_await client.PutTensor(key, t.view(), cfg);
    }
    case kTpPut: {
      Tensor t = TpTensor(value_seed);
      co_return co_await client.PutTensorWithTp(key, t.view(), 2, 0, cfg);
    }
    case kTpPutFrom: {
      std::string whole = StoredBytes(kWholeTensor, value_seed, 0);
      std::memcpy(buffers_[c], whole.data(), whole.size());
      co_return co_await client.PutTensorWithTpFrom(key, buffers_[c], whole.size(), 2, 0, cfg);
    }
  }
  TIDAL_ASSERT_MSG(false, "WriteBy: not a write path");
  co_return Status(ErrorCode::INTERNAL_ERROR, "not a write path");
}

// The holder's side of the lease scenario: removes X under the reader's lease, then puts
// objects of X's size on its own segment until one lands on X's memory (once at once, once
// more after `wait_ns` when that is not 0).
Task<int> Campaign::Reuser(size_t h, std::string key, std::vector<std::string> values,
                           uint64_t wait_ns, LeaseRace* race) {
  co_await SleepFor(env(h), 2'000);  // the reader's lookup reaches the master first
  Status removed = co_await w_->client(h).Remove(key, true);
  race->removed = removed.ok();
  for (size_t i = 0; race->removed && !race->reused && i < values.size(); ++i) {
    if (i > 0) {
      if (wait_ns == 0) break;
      co_await SleepFor(env(h), wait_ns);
    }
    std::string other = "reuse" + std::to_string(next_value_++);
    ReplicateConfig cfg;
    cfg.replica_num = 1;
    cfg.preferred_segments = {StoreWorld::SegmentOf(h)};
    Status s = co_await w_->client(h).Put(other, values[i], cfg);
    if (!s.ok()) continue;
    for (const ReplicaLocation& r : w_->state().Replicas(other)) {
      if (r.segment == race->segment && r.addr < race->addr + race->size &&
          race->addr < r.addr + r.size) {
        race->reused = true;
        race->reused_ns = Now();
      }
    }
  }
  race->done = true;
  co_return 0;
}

void Campaign::LeaseScenario(size_t path) {
  std::vector<size_t> usable = Usable();
  if (usable.size() < 2) return;
  const size_t holder = usable[env(usable[0]).RandomBelow(usable.size())];
  size_t reader = holder;
  // Bounded: a tape past its end draws 0 forever (shrinking), and usable[0] may be the holder.
  for (int i = 0; reader == holder; ++i) {
    reader = i < 64 ? usable[env(holder).RandomBelow(usable.size())]
                    : usable[(std::find(usable.begin(), usable.end(), holder) - usable.begin() + 1) %
                             usable.size()];
  }
  // X: one replica on the holder's segment.
  const uint64_t vs = next_value_++, other_vs = next_value_++, later_vs = next_value_++;
  const std::string base = "lease" + std::to_string(vs);
  std::string key = base, stored;
  std::vector<std::string> others;
  ReplicateConfig cfg;
  cfg.replica_num = 1;
  cfg.preferred_segments = {StoreWorld::SegmentOf(holder)};
  Status put;
  if (Tp(path)) {
    key = StoreClient::TpKey(base, 0);
    stored = StoredBytes(0, vs, 0);
    others = {StoredBytes(0, other_vs, 0), StoredBytes(0, later_vs, 0)};
    Tensor t = TpTensor(vs);
    put = w_->Run(holder, w_->client(holder).PutTensorWithTp(base, t.view(), 2, 0, cfg));
  } else if (TensorBytes(path)) {
    stored = StoredBytes(kWholeTensor, vs, 0);
    others = {StoredBytes(kWholeTensor, other_vs, 0), StoredBytes(kWholeTensor, later_vs, 0)};
    Tensor t = TpTensor(vs);
    put = w_->Run(holder, w_->client(holder).PutTensor(base, t.view(), cfg));
  } else {
    const uint64_t size = Capped(1 + env(holder).RandomBelow(max_size_));
    stored = Pattern(vs, size);
    others = {Pattern(other_vs, size), Pattern(later_vs, size)};
    put = w_->Run(holder, w_->client(holder).Put(base, stored, cfg));
  }
  std::vector<ReplicaLocation> at = w_->state().Replicas(key);
  if (!put.ok() || at.size() != 1 || at[0].segment != StoreWorld::SegmentOf(holder)) return;
  AddCandidate(key, stored);
  LeaseRace race;
  race.segment = at[0].segment;
  race.addr = at[0].addr;
  race.size = at[0].size;
  auto got_ns = std::make_shared<uint64_t>(0);  // when the get returned (the reuser may go on)
  auto got = w_->Start(reader, TimedReadBy(reader, path, base, got_ns));
  auto reuser = w_->Start(holder, Reuser(holder, key, others, reuse_wait_ns_, &race));
  // The reader pauses 1 us after asking: after its lookup left, before its answer came.
  sim::World& world = w_->world();
  const uint32_t node = StoreWorld::NodeOf(reader);
  const uint64_t hang_ends = Now() + 1'000 + hang_ns_;
  world.ScheduleAt(Now() + 1'000, -1, [&world, node, hang = hang_ns_]() {
    if (world.alive(node)) world.Hang(node, hang);
  });
  const uint64_t t0 = Now();
  bool ended = w_->RunUntil([&] {
    return (got->has_value() || !w_->alive(reader)) && (reuser->has_value() || !w_->alive(holder));
  });
  if (!ended) {
    Violation(std::string("liveness: the ") + kPathNames[path] + " of lease scenario key '" + key +
              "' or its reuser never finished");
    return;
  }
  if (!got->has_value()) return;
  const Result<std::string>& r = **got;
  ++result_.ops;
  // The get's own duration, not the scenario's (the reuser may put on for longer): its
  // clock stood during the pause, so its limit is the timeout plus the pause (plus the
  // checker's slack). Unless strict_scenario_deadlines is off, an overrun fails the seed.
  const uint64_t took = *got_ns - t0;
  if (took > kOpTimeoutNs + hang_ns_ + kTimeoutSlackNs) {
    ++result_.scenario_overruns;
    if (cfg_.strict_scenario_deadlines) {
      Violation(std::string(kPathNames[path]) + " (lease scenario) took " + std::to_string(took) +
                " ns, past its timeout of " + std::to_string(kOpTimeoutNs) + " ns plus the " +
                std::to_string(hang_ns_) + " ns pause");
    }
  }
  if (r.ok()) {
    CheckGet(key, *r);
    if (!failure_.empty()) {
      failure_ += " (lease scenario: " + std::string(kPathNames[path]) + " by client " +
                  std::to_string(reader) + " paused " + std::to_string(hang_ns_) +
                  " ns while its lease ran; X's memory was " +
                  (race.reused ? "given to another object" : "not reused") + ")";
    }
  }
  // Reached: a lease was granted (the get read, or found its lease lapsed) and X's memory
  // held another object before the read.
  if ((r.ok() || r.code() == ErrorCode::LEASE_EXPIRED) && race.reused &&
      race.reused_ns <= hang_ends) {
    result_.reach.Hit(path, kLeaseReuse);
  }
}

// A holder stops answering (a node hang) past the master's client TTL and its next
// sweep: the master declares it dead, drops its segment and reports the object whose only
// replica was there lost. When the holder wakes, its next heartbeat learns its mount was
// dropped and it lends the memory again: a new object placed on that segment reads back
// exactly, and the lost one stays reported lost (never read from the remounted memory).
void Campaign::DeclaredDeadScenario() {
  std::vector<size_t> usable = Usable();
  if (usable.size() < 2) return;
  const size_t holder = usable[env(usable[0]).RandomBelow(usable.size())];
  const size_t reader = usable[(std::find(usable.begin(), usable.end(), holder) - usable.begin() + 1) %
                               usable.size()];
  const StoreWorldOptions& o = w_->options();
  const uint64_t vs = next_value_++;
  const std::string key = "gone" + std::to_string(vs);
  const std::string stored = Pattern(vs, Capped(1 + env(holder).RandomBelow(max_size_)));
  ReplicateConfig cfg;
  cfg.replica_num = 1;
  cfg.preferred_segments = {StoreWorld::SegmentOf(holder)};
  Status put = w_->Run(holder, w_->client(holder).Put(key, stored, cfg));
  std::vector<ReplicaLocation> at = w_->state().Replicas(key);
  if (!put.ok() || at.size() != 1 || at[0].segment != StoreWorld::SegmentOf(holder)) return;
  const uint64_t remounts = w_->client(holder).stats().remounts;
  // Silent past the TTL, one heartbeat interval and two sweeps: declared dead for sure.
  const uint64_t hang = o.master.client_ttl_ns + o.client.heartbeat_interval_ns +
                        2 * o.master.sweep_interval_ns;
  const uint32_t node = StoreWorld::NodeOf(holder);
  w_->world().Hang(node, hang);
  // Awake again: its next heartbeat (and the remount it starts) answered.
  w_->Advance(hang + 2 * o.client.heartbeat_interval_ns + 2 * o.client.rpc.timeout_ns);
  if (!w_->alive(holder) || !w_->alive(reader)) return;
  ++result_.ops;
  Result<std::string> gone = ReadBack(reader, key);
  if (gone.code() != ErrorCode::OBJECT_NOT_FOUND ||
      gone.status().message().find("was lost") == std::string::npos) {
    Violation("declared-dead scenario: '" + key + "', whose only replica was on client " +
              std::to_string(holder) + " when the master declared it dead, read " +
              (gone.ok() ? std::to_string(gone->size()) + " bytes" : gone.status().ToString()) +
              " instead of OBJECT_NOT_FOUND reporting it lost");
    return;
  }
  if (w_->client(holder).stats().remounts == remounts) {
    Violation("declared-dead scenario: client " + std::to_string(holder) +
              " never lent its memory again after the master declared it dead (no remount)");
    return;
  }
  // Leases the store granted on the dropped memory fence it off until they end (a reader
  // may still be reading there); after that, a put preferring the segment lands there.
  // The swarm's transfer faults still act: a put that failed transiently is tried again
  // under a new key (a timed-out one may have reached the master).
  std::string again;
  const std::string fresh = Pattern(next_value_++, stored.size());
  bool fenced = false;
  Status put2;
  for (int attempt = 0; attempt < 12; ++attempt) {
    again = key + "again" + std::to_string(attempt);
    fenced = w_->state().SegmentFenceNs(StoreWorld::SegmentOf(holder)) > Now();
    put2 = w_->Run(reader, w_->client(reader).Put(again, fresh, cfg));
    if (put2.ok() || !Transient(put2.code())) break;
    w_->Advance(1 * kMs);
  }
  at = w_->state().Replicas(again);
  if (!put2.ok() || at.size() != 1) {
    Violation("declared-dead scenario: a put after client " + std::to_string(holder) +
              " came back failed: " + put2.ToString());
    return;
  }
  if ((at[0].segment == StoreWorld::SegmentOf(holder)) == fenced) {
    Violation("declared-dead scenario: a put preferring client " + std::to_string(holder) +
              "'s remounted segment " + (fenced ? "landed on it while its memory was fenced" :
                                                  "did not land there, with no fence left") +
              " (fence until " + std::to_string(w_->state().SegmentFenceNs(
                                        StoreWorld::SegmentOf(holder))) +
              " ns, now " + std::to_string(Now()) + " ns)");
    return;
  }
  Result<std::string> back = ReadBack(reader, again);
  if (!back.ok() || *back != fresh) {
    Violation("declared-dead scenario: '" + again + "' read back " +
              (back.ok() ? "other bytes" : back.status().ToString()));
    return;
  }
  ++result_.declared_dead;
}

void Campaign::WriterDiesScenario(size_t path) {
  std::vector<size_t> usable = Usable();
  if (usable.size() < 2) return;
  const size_t writer = usable[env(usable[0]).RandomBelow(usable.size())];
  size_t verifier = writer;
  for (int i = 0; verifier == writer; ++i) {  // bounded, as the lease scenario's reader
    verifier = i < 64 ? usable[env(writer).RandomBelow(usable.size())]
                      : usable[(std::find(usable.begin(), usable.end(), writer) - usable.begin() + 1) %
                               usable.size()];
  }
  const uint64_t vs = next_value_++;
  const std::string base = "dead" + std::to_string(vs);
  std::vector<std::string> keys;
  if (path == kBatchPutFrom) {
    keys = {base + "a", base + "b"};
  } else if (Tp(path)) {
    keys = {StoreClient::TpKey(base, 0), StoreClient::TpKey(base, 1)};
  } else {
    keys = {base};
  }
  ReplicateConfig cfg = Config(writer);
  const uint64_t size = Capped(4096 + env(writer).RandomBelow(max_size_ - 4096));
  // The writer's node crashes 8-20 us after the put began: after the master placed it
  // (a request and answer take 10 us), mostly before the data landed and the put ended.
  const uint64_t crash_after = 8'000 + env(writer).RandomBelow(12'000);
  auto done = w_->Start(writer, WriteBy(writer, path, base, vs, size, cfg));
  sim::World& world = w_->world();
  const uint32_t node = StoreWorld::NodeOf(writer);
  std::vector<std::string> half;  // keys the master held half-written at the crash
  world.ScheduleAt(Now() + crash_after, -1, [&, node]() {
    for (const std::string& k : keys) {
      if (w_->state().Stat(k, world.NowNs()).code() == ErrorCode::REPLICA_IS_NOT_READY) {
        half.push_back(k);
      }
    }
    if (world.alive(node)) world.Crash(node);
  });
  w_->RunUntil([&] { return !w_->alive(writer); });
  if (done->has_value()) return;  // the put ended before the crash
  // Past the client TTL and a sweep: the master has declared the writer dead.
  w_->Advance(w_->state().options().client_ttl_ns + 3 * w_->state().options().sweep_interval_ns);
  size_t reclaimed = 0;
  for (const std::string& k : half) {
    const std::string where = std::string(kPathNames[path]) + " of '" + k + "' by client " +
                              std::to_string(writer) + ", which crashed mid-put: ";
    Result<std::string> gone = ReadBack(verifier, k);
    if (reclaimed_.count(k) == 0) {
      // Not reclaimed: the put's end left before the crash (it is complete, with the
      // writer's bytes), or its revoke did (a transfer failed; the key is free).
      const int shard = path == kPutTensor ? kWholeTensor
                        : Tp(path)         ? (k == StoreClient::TpKey(base, 0) ? 0 : 1)
                                           : -1;
      if (gone.ok() && *gone == StoredBytes(shard, vs, size)) continue;
      if (gone.code() != ErrorCode::OBJECT_NOT_FOUND) {
        Violation(where + "the master neither reclaimed the half-written put nor holds it " +
                  "complete nor revoked (a get returns " +
                  (gone.ok() ? std::string("different bytes") : gone.status().ToString()) + ")");
        return;
      }
    } else if (gone.code() != ErrorCode::OBJECT_NOT_FOUND) {
      Violation(where + "after the reclaim a get returned " +
                (gone.ok() ? std::string("bytes") : gone.status().ToString()) +
                " instead of OBJECT_NOT_FOUND");
      return;
    } else {
      ++reclaimed;
    }
    const std::string fresh = Pattern(next_value_++, 1 + env(verifier).RandomBelow(4096));
    Status again;
    for (int attempt = 0; attempt < 12; ++attempt) {
      again = w_->Run(verifier, w_->client(verifier).Put(k, fresh));
      if (again.code() == ErrorCode::OBJECT_ALREADY_EXISTS) {
        // An earlier attempt of ours that timed out reached the master: it is complete
        // with our bytes, or half-written until the master reclaims it (put timeout).
        Result<std::string> ours = ReadBack(verifier, k);
        if (ours.ok() && *ours == fresh) {
          again = Status();
          break;
        }
        w_->Advance(w_->state().options().put_timeout_ns +
                    2 * w_->state().options().sweep_interval_ns);
        continue;
      }
      if (again.ok() || !Transient(again.code())) break;
      w_->Advance(1 * kMs);
    }
    if (!again.ok()) {
      Violation(where + "a new put of the key after the reclaim failed: " + again.ToString());
      return;
    }
    Result<std::string> back = ReadBack(verifier, k);
    if (!back.ok() || *back != fresh) {
      Violation(where + "the new put of the key does not read back: " +
                (back.ok() ? std::string("different bytes") : back.status().ToString()));
      return;
    }
  }
  if (reclaimed > 0) result_.reach.Hit(path, kWriterDied);
}

StoreCampaignResult Campaign::Run() {
  result_.seed = seed_;
  result_.reach = StoreReachLayout();
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
  if (cfg_.clients > 0) o.clients = std::max<size_t>(2, cfg_.clients);
  o.record_tape = cfg_.record_tape;
  o.segment_bytes = 8ull << 20;
  const bool short_lease = draw(4) == 0;
  // Master crash and restart (StoreWorld::ScheduleMasterRestart) in a third of the seeds.
  const uint64_t restarts = cfg_.master_restarts && draw(3) == 0 ? 1 + draw(2) : 0;
  o.master.lease_ttl_ns = short_lease ? 40'000 : 10'000'000'000ULL;
  lease_ttl_ns_ = o.master.lease_ttl_ns;
  o.master.client_ttl_ns = cfg_.client_ttl_ns > 0 ? cfg_.client_ttl_ns : 200 * kMs;
  o.master.put_timeout_ns = 1000 * kMs;
  o.master.reclaim_quarantine_ns = 500 * kMs;
  o.master.sweep_interval_ns = 20 * kMs;
  o.master.planted_bug = cfg_.master_bug;
  o.client.op_timeout_ns = kOpTimeoutNs;
  o.client.rpc.timeout_ns = 50 * kMs;
  o.client.rpc.retry_ns = 5 * kMs;
  o.client.heartbeat_interval_ns = 20 * kMs;
  o.client.planted_bug = cfg_.planted_bug;
  o.client.cache_leased_replicas = cfg_.cached_gets;
  o.client.put_reservations = cfg_.put_reservations;
  Result<sim::SwarmSettings> mix = sim::SwarmMix(cfg_.mix);
  TIDAL_ASSERT_MSG(mix.ok(), "campaign: unknown fault mix");
  o.swarm = *mix;
  o.swarm.immune_node = 0;  // the master (the design has one master; its HA is separate)
  o.swarm.max_crashes = static_cast<uint32_t>(std::min<size_t>(2, o.clients - 2));
  o.swarm.horizon_ns = 5 * kMs;
  o.replay_command =
      "build/release/tools/tidal-store-campaign --seed " + std::to_string(seed_) + " --mix " +
      cfg_.mix + " --verbose" + (cfg_.cached_gets ? " --cached-gets" : "") +
      (cfg_.put_reservations > 0 ? " --put-reservations " + std::to_string(cfg_.put_reservations)
                                 : "");
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
    // A half-written put leaves as "reclaimed", or as "lost" when its writer was its only
    // holder and went away; either way the key is free again.
    if (reason == "reclaimed" || reason == "lost") reclaimed_.insert(key);
  });
  // The lease scenario: a pause past the lease and the master's next sweep (short
  // leases), or well inside the lease (long ones).
  hang_ns_ = short_lease ? lease_ttl_ns_ + o.master.sweep_interval_ns + 5 * kMs : 300'000;
  reuse_wait_ns_ = short_lease ? lease_ttl_ns_ + o.master.sweep_interval_ns + 1 * kMs : 0;
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
  if (failure_.empty() && cfg_.durability) {
    // Past the client TTL (twice it: 400 ms by default): the master has dropped dead holders.
    w_->Advance(2 * o.master.client_ttl_ns);
    CheckDurability();
  }
  if (failure_.empty() && cfg_.scenarios) {
    // Every read path under a short lease (where the master may reuse the memory once
    // the lease ran out), two under a long one (where only a master that frees leased
    // memory reuses it); one write path.
    const uint64_t reads = kPaths - kWritePaths, n = lease_ttl_ns_ < kMs ? reads : 2;
    auto kept = [&](uint64_t k) { return k >= 64 || ((cfg_.scenario_mask >> k) & 1) != 0; };
    for (uint64_t k = 0; k < n && failure_.empty(); ++k) {
      if (kept(k)) LeaseScenario(kWritePaths + (seed_ * 2 + k) % reads);
    }
    if (failure_.empty() && kept(n)) WriterDiesScenario(seed_ % kWritePaths);
    if (failure_.empty() && kept(n + 1)) DeclaredDeadScenario();
  }
  if (Status inv = w_->state().CheckInvariants(); !inv.ok()) {
    Violation("master invariant: " + inv.ToString());
  }
  for (size_t c = 0; c < o.clients; ++c) {
    result_.lease_expired += w_->client(c).stats().lease_expired;
    result_.cached_gets += w_->client(c).stats().cached_gets;
    result_.reserved_puts += w_->client(c).stats().reserved_puts;
    result_.reservation_fallbacks += w_->client(c).stats().reservation_fallbacks;
    result_.reservation_requests += w_->client(c).stats().reservation_requests;
    result_.kept_reservations_used += w_->client(c).stats().kept_reservations_used;
  }
  result_.virtual_ns = w_->world().NowNs();
  result_.digest = w_->world().digest();
  result_.events = w_->world().trace().events();
  result_.faults = sim::InjectedFaults(w_->world());
  if (cfg_.record_tape) result_.draws = w_->world().tape().recorded();
  if (!failure_.empty()) {
    result_.ok = false;
    result_.failure = failure_ + "\n" + w_->Banner();
  }
  w_.reset();
  return result_;
}

}  // namespace

ReachTable StoreReachLayout() {
  std::vector<std::string> paths(kPathNames, kPathNames + kPaths);
  std::vector<std::string> faults(kFaultNames, kFaultNames + kFaultCount);
  ReachTable t(paths, faults);
  for (size_t p = 0; p < kPaths; ++p) {
    t.Set(p, kTransferFault, ReachTable::Cell::kReported);
    t.Set(p, Writes(p) ? kWriterDied : kLeaseReuse, ReachTable::Cell::kRequired);
  }
  return t;
}

StoreCampaignResult RunStoreCampaign(uint64_t seed, const StoreCampaignConfig& config) {
  Campaign c(seed, config);
  return c.Run();
}

}  // namespace tidal::cluster
