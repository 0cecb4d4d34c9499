// The zoo's own campaign workloads (zoo_workloads.h).
#include "zoo_workloads.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

#include "tidal/cluster/coll_harness.h"
#include "tidal/cluster/store_world.h"
#include "tidal/sim/trace.h"
#include "tidal/sim/shrink.h"
#include "tidal/store/tensor.h"

namespace tidal::cluster {
namespace {

constexpr uint64_t kUs = 1'000;
constexpr uint64_t kMs = 1'000'000;

uint64_t SplitMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// ---------------------------------------------------------------------------------------
// store-field

class StoreField {
 public:
  StoreField(uint64_t seed, store::StoreBug store_bug, store::MasterBug master_bug,
             std::string replay, ZooScale scale)
      : seed_(seed),
        store_bug_(store_bug),
        master_bug_(master_bug),
        replay_(std::move(replay)),
        scale_(scale),
        max_value_(scale.value != 0 ? std::max<uint64_t>(scale.value, kLeastValue)
                                    : kDefaultMaxValue),
        segment_bytes_((scale.segment != 0 ? scale.segment : 16) * max_value_),
        victim_value_(2 * max_value_) {}
  ZooRun Run();
  uint64_t BufferBytes() const { return std::max<uint64_t>(3 * max_value_, victim_value_); }

  // The largest value by default, and at least (a tensor of the batch puts must fit in
  // one value: at most 8 x 16 I32 elements and its header).
  static constexpr uint64_t kDefaultMaxValue = 128 << 10;
  static constexpr uint64_t kLeastValue = 1024;

 private:
  // Sizes (ZooScale::value): the largest value, the segment 16 of them, the victim's
  // puts 2 of them.

  Env& env(size_t c) { return w_->env(c); }
  store::StoreClient& client(size_t c) { return w_->client(c); }
  uint64_t Below(size_t c, uint64_t n) { return env(c).RandomBelow(n); }
  void Violation(std::string what) {
    if (failure_.empty()) failure_ = std::move(what);
  }
  store::ReplicateConfig Own(size_t c) {
    store::ReplicateConfig cfg;
    cfg.preferred_segments = {StoreWorld::SegmentOf(c)};
    return cfg;
  }
  // A random full tensor (I32, rows divisible by 2) serialized into client c's buffer.
  std::string FullTensor(size_t c, uint64_t value_seed) {
    const uint64_t rows = 2 * (1 + Below(c, 4)), cols = 1 + Below(c, 16);
    store::Tensor t{store::DType::kI32, {rows, cols}, Pattern(value_seed, rows * cols * 4)};
    return *store::EncodeTensor(t.view());
  }
  Task<void> Registered(size_t c);
  Task<void> CheckShards(size_t c, const std::string& key, const std::string& full);
  Task<void> OpUnregistered(size_t c, size_t i);
  Task<void> OpTpFrom(size_t c, size_t i);
  Task<void> OpTpBatch(size_t c, size_t i);
  Task<void> OpGeneration(size_t c, size_t i);
  Task<void> Driver(size_t c, size_t drivers);
  Task<void> Victim(size_t c);
  Task<void> Fill(size_t c);

  uint64_t seed_;
  store::StoreBug store_bug_;
  store::MasterBug master_bug_;
  std::string replay_;
  ZooScale scale_;
  // Sizes (ZooScale::value): the largest value, the segment 16 of them, the victim's puts
  // 2 of them.
  uint64_t max_value_, segment_bytes_, victim_value_;
  std::unique_ptr<StoreWorld> w_;
  // Per client: 3 * max_value_ bytes, registered with the engine when an operation first
  // needs them (Registered), so a run without such operations registers nothing.
  std::vector<uint8_t*> buffers_;
  std::vector<bool> registered_;
  std::vector<uint8_t*> unregistered_;  // never registered with the engine
  std::vector<bool> done_;
  uint64_t next_value_ = 1;
  size_t victim_puts_ = 0;
  std::string failure_;
};

Task<void> StoreField::Registered(size_t c) {
  if (registered_[c]) co_return;
  registered_[c] = true;
  // The workload injects no registration faults: a failure here is a finding.
  Status s = co_await client(c).RegisterBuffer(buffers_[c], BufferBytes());
  if (!s.ok()) Violation("registering client " + std::to_string(c) + "'s buffer failed: " + s.ToString());
}

Task<void> StoreField::CheckShards(size_t c, const std::string& key, const std::string& full) {
  Result<store::TensorView> view = store::DecodeTensor(full);
  std::vector<std::string> want = *store::SplitTensor(*view, 0, 2);
  for (uint32_t r = 0; r < 2 && failure_.empty(); ++r) {  // (a run ends at its first complaint)
    Result<std::string> got = co_await client(c).Get(store::StoreClient::TpKey(key, r));
    if (got.ok() && *got != want[r]) {
      Violation("shard " + std::to_string(r) + " of tensor '" + key + "' reads back " +
                std::to_string(got->size()) + " bytes that are not its slice of the full tensor (" +
                std::to_string(want[r].size()) + " bytes)");
    }
  }
}

Task<void> StoreField::OpUnregistered(size_t c, size_t i) {
  const std::string key = "u" + std::to_string(c) + "_" + std::to_string(i);
  const uint64_t size = 1 + Below(c, max_value_);
  Status put = co_await client(c).PutFrom(key, unregistered_[c], size, Own(c));
  if (put.code() != ErrorCode::ADDRESS_NOT_REGISTERED) {
    Violation("put_from of '" + key + "' from an unregistered buffer answered " + put.ToString() +
              ", not ADDRESS_NOT_REGISTERED");
    co_return;
  }
  Result<bool> exists = co_await client(c).Exists(key);
  if (exists.ok() && *exists) {
    Violation("put_from of '" + key + "' from an unregistered buffer stored the key");
    co_return;
  }
  // A key that exists, read into the unregistered buffer.
  const std::string stored = key + "r";
  Status p = co_await client(c).Put(stored, Pattern(next_value_++, size), Own(c));
  if (!p.ok()) co_return;
  Result<uint64_t> get = co_await client(c).GetInto(stored, unregistered_[c], max_value_);
  if (get.code() != ErrorCode::ADDRESS_NOT_REGISTERED) {
    Violation("get_into of '" + stored + "' into an unregistered buffer answered " +
              get.status().ToString() + ", not ADDRESS_NOT_REGISTERED");
  }
}

Task<void> StoreField::OpTpFrom(size_t c, size_t i) {
  const std::string key = "t" + std::to_string(c) + "_" + std::to_string(i);
  const std::string full = FullTensor(c, next_value_++);
  co_await Registered(c);
  std::memcpy(buffers_[c], full.data(), full.size());
  Status s = co_await client(c).PutTensorWithTpFrom(key, buffers_[c], full.size(), 2, 0, Own(c));
  if (s.code() == ErrorCode::INVALID_PARAMS) {
    Violation("tensor-parallel put_from of a well-formed tensor '" + key + "' answered " +
              s.ToString());
  }
  if (s.ok()) co_await CheckShards(c, key, full);
}

Task<void> StoreField::OpTpBatch(size_t c, size_t i) {
  co_await Registered(c);
  size_t n = 2 + Below(c, 2);
  if (scale_.batch > 0) n = std::min<size_t>(n, scale_.batch);
  std::vector<std::string> keys, fulls;
  std::vector<const void*> ptrs;
  std::vector<uint64_t> sizes;
  for (size_t k = 0; k < n; ++k) {
    keys.push_back("b" + std::to_string(c) + "_" + std::to_string(i) + "_" + std::to_string(k));
    fulls.push_back(FullTensor(c, next_value_++));
    uint8_t* at = buffers_[c] + k * max_value_;
    std::memcpy(at, fulls.back().data(), fulls.back().size());
    ptrs.push_back(at);
    sizes.push_back(fulls.back().size());
  }
  std::vector<Status> r =
      co_await client(c).BatchPutTensorWithTpFrom(keys, ptrs, sizes, 2, 0, Own(c));
  for (size_t k = 0; k < n && failure_.empty(); ++k) {
    if (r[k].code() == ErrorCode::INVALID_PARAMS) {
      Violation("batch tensor-parallel put of well-formed '" + keys[k] + "' answered " +
                r[k].ToString());
    }
    if (r[k].ok()) co_await CheckShards(c, keys[k], fulls[k]);
  }
}

Task<void> StoreField::OpGeneration(size_t c, size_t i) {
  const std::string key = "g" + std::to_string(c) + "_" + std::to_string(i);
  const uint64_t most = std::min<uint64_t>(8192, max_value_);
  const std::string v1 = Pattern(next_value_++, 1 + Below(c, most));
  Status p1 = co_await client(c).Put(key, v1, Own(c));
  if (!p1.ok()) co_return;
  Result<store::ObjectInfo> info = co_await client(c).Stat(key);
  if (!info.ok()) co_return;
  const uint64_t old_gen = info->generation;
  Status rm = co_await client(c).Remove(key, /*force=*/true);
  if (!rm.ok()) co_return;
  const std::string v2 = Pattern(next_value_++, 1 + Below(c, most));
  Status p2 = co_await client(c).Put(key, v2, Own(c));
  if (!p2.ok()) co_return;
  store::GetOptions old;
  old.generation = old_gen;
  Result<std::string> stale = co_await client(c).Get(key, old);
  if (stale.ok()) {
    Violation("get of '" + key + "' naming removed generation " + std::to_string(old_gen) +
              " returned " + std::to_string(stale->size()) + " bytes" +
              (*stale == v2 ? " of the newer generation" : ""));
  }
}

// Driver c of `drivers` runs operations c, c + drivers, c + 2 * drivers, ... of the seed's
// list: each one's kind comes from the seed and its index (not the tape), so an operation
// is the same whichever client runs it and however many clients there are.
Task<void> StoreField::Driver(size_t c, size_t drivers) {
  for (size_t i = c; i < scale_.ops && failure_.empty(); i += drivers) {
    const uint64_t pick = SplitMix(seed_ * 0x9E3779B97F4A7C15ull + i) % 100;
    if (!sim::Kept(scale_.keep, i)) continue;
    if (pick < 20) {
      co_await OpUnregistered(c, i);
    } else if (pick < 45) {
      co_await OpTpFrom(c, i);
    } else if (pick < 70) {
      co_await OpTpBatch(c, i);
    } else {
      co_await OpGeneration(c, i);
    }
    if (!failure_.empty()) break;
    co_await SleepFor(env(c), Below(c, 50 * kUs));
  }
  done_[c] = true;
}

// The writer that crashes: large puts with every replica it can get, one after another,
// until the world crashes its node (scheduled at a random time in Run).
Task<void> StoreField::Victim(size_t c) {
  store::ReplicateConfig cfg;
  cfg.replica_num = static_cast<uint32_t>(std::min<size_t>(3, w_->clients()));
  const size_t puts = std::min<size_t>(64, 8 * scale_.ops);
  for (size_t i = 0; i < puts && failure_.empty(); ++i) {
    const std::string key = "v" + std::to_string(i);
    co_await Registered(c);
    std::memcpy(buffers_[c], Pattern(next_value_++, victim_value_).data(), victim_value_);
    ++victim_puts_;
    (void)co_await client(c).PutFrom(key, buffers_[c], victim_value_, cfg);
  }
  done_[c] = true;
}

// Fills the store past its capacity with unpinned, unleased objects: every put must make
// room by evicting.
Task<void> StoreField::Fill(size_t c) {
  const size_t puts =
      std::min<size_t>(2 * segment_bytes_ / (max_value_ / 2) + Below(c, 8), 8 * scale_.ops);
  const uint64_t least = std::min<uint64_t>(16 * 1024, max_value_ / 8);
  for (size_t i = 0; i < puts && failure_.empty(); ++i) {
    const std::string key = "f" + std::to_string(c) + "_" + std::to_string(i);
    const uint64_t size = least + Below(c, max_value_ - least);
    co_await Registered(c);
    std::memcpy(buffers_[c], Pattern(next_value_++, size).data(), size);
    Status s = co_await client(c).PutFrom(key, buffers_[c], size);
    if (s.code() == ErrorCode::NO_AVAILABLE_HANDLE) {
      Violation("put of " + std::to_string(size) + " bytes ('" + key +
                "') failed NO_AVAILABLE_HANDLE while the store held evictable objects: " +
                s.ToString());
    }
  }
  done_[c] = true;
}

ZooRun StoreField::Run() {
  StoreWorldOptions o;
  o.seed = seed_;
  o.tape = scale_.tape;
  o.record_tape = scale_.record_tape;
  const size_t fewest = scale_.victim ? 2 : 1;
  o.clients = scale_.nodes != 0 ? std::max<size_t>(fewest, scale_.nodes) : 3 + seed_ % 3;
  // Ten operations per driving client unless the scale says how many in all.
  const size_t drivers = scale_.victim ? o.clients - 1 : o.clients;
  if (scale_.ops == 0) scale_.ops = 10 * drivers;
  scale_.nodes = o.clients;
  o.segment_bytes = segment_bytes_;
  // The master's put timeout (ZooScale::timeout_ms; 100 ms): its reclaim quarantine and
  // sweep follow it.
  const uint64_t put_timeout = (scale_.timeout_ms != 0 ? scale_.timeout_ms : 100) * kMs;
  o.master.lease_ttl_ns = 20 * kMs;
  o.master.client_ttl_ns = 50 * kMs;
  o.master.put_timeout_ns = put_timeout;
  o.master.reclaim_quarantine_ns = put_timeout / 5;
  o.master.sweep_interval_ns = put_timeout / 20;
  o.master.planted_bug = master_bug_;
  o.client.op_timeout_ns = 200 * kMs;
  o.client.rpc.timeout_ns = 50 * kMs;
  o.client.rpc.retry_ns = 5 * kMs;
  o.client.heartbeat_interval_ns = 10 * kMs;
  o.client.planted_bug = store_bug_;
  o.replay_command = replay_;
  w_ = std::make_unique<StoreWorld>(o);
  // Without the crashing writer every client drives (victim == n: none).
  const size_t n = o.clients, victim = scale_.victim ? n - 1 : n;
  for (size_t c = 0; c < n; ++c) {
    buffers_.push_back(w_->Buffer(c, BufferBytes(), /*registered=*/false));
    unregistered_.push_back(w_->Buffer(c, max_value_, /*registered=*/false));
  }
  done_.assign(n, false);
  registered_.assign(n, false);
  // The victim crashes at a random moment of its stream of puts.
  sim::World* world = &w_->world();
  const uint32_t victim_node = StoreWorld::NodeOf(victim);
  const uint64_t crash_at = world->NowNs() + 100 * kUs + world->tape().Next() % (3 * kMs);
  if (victim < n) {
    world->ScheduleAt(crash_at, -1, [world, victim_node]() {
      if (world->alive(victim_node)) world->Crash(victim_node);
    });
  }
  for (size_t c = 0; c < n; ++c) Spawn(env(c), c == victim ? Victim(c) : Driver(c, drivers));
  auto all_done = [&] {
    for (size_t c = 0; c < n; ++c) {
      if (!done_[c] && w_->alive(c)) return false;
    }
    return true;
  };
  if (!w_->RunUntil(all_done)) Violation("liveness: a client's operation never finished");
  // Past the client TTL, the put timeout, the quarantine and every lease.
  if (failure_.empty() && victim < n) w_->Advance(4 * put_timeout);
  if (failure_.empty()) {
    for (size_t i = 0; i < victim_puts_; ++i) {
      const std::string key = "v" + std::to_string(i);
      Status rm = w_->Run(0, client(0).Remove(key, /*force=*/false));
      if (rm.code() == ErrorCode::REPLICA_IS_NOT_READY) {
        Violation("key '" + key + "' is still being written " +
                  std::to_string(4 * put_timeout / kMs) + " ms after its writer crashed (" +
                  rm.ToString() + ")");
        break;
      }
    }
  }
  if (failure_.empty() && scale_.fill) {
    std::fill(done_.begin(), done_.end(), false);
    for (size_t c = 0; c < victim; ++c) Spawn(env(c), Fill(c));
    if (victim < n) done_[victim] = true;
    if (!w_->RunUntil(all_done)) Violation("liveness: a filling put never finished");
  }
  ZooRun out;
  if (!failure_.empty()) out.failure = failure_ + "\n" + w_->Banner();
  out.scale = scale_;
  out.scale.tape.clear();
  out.events = w_->world().trace().events();
  out.faults = sim::InjectedFaults(w_->world());
  if (scale_.record_tape) out.draws = w_->world().tape().recorded();
  w_.reset();
  return out;
}

// ---------------------------------------------------------------------------------------
// p2p

ZooRun RunP2p(uint64_t seed, coll::CollBug bug, const std::string& replay, ZooScale scale) {
  ZooRun out;
  GroupClusterOptions co;
  co.seed = seed;
  co.tape = scale.tape;
  co.record_tape = scale.record_tape;
  co.ranks = scale.nodes != 0 ? static_cast<int>(std::max<size_t>(2, scale.nodes))
                              : 2 + static_cast<int>(seed % 3);
  out.scale.nodes = static_cast<size_t>(co.ranks);
  out.scale.ops = scale.ops != 0 ? scale.ops : 8;
  co.pg = TestOptions();
  co.pg.timeout_ns = scale.timeout_us != 0 ? scale.timeout_us * kUs : 20 * kMs;
  out.scale.timeout_us = co.pg.timeout_ns / kUs;
  co.pg.planted_bug = bug;
  GroupCluster cluster(co);
  std::string boot;
  if (!cluster.StartAll(&boot)) {
    out.failure = "seed " + std::to_string(seed) + ": bootstrap: " + boot;
    return out;
  }
  const int n = cluster.size();
  const size_t kSteps = out.scale.ops;
  // The plan comes from the tape: per step, an exchange or an all-reduce, and which rank
  // (if any) posts a receive nobody sends.
  std::vector<int> kind(kSteps), stray(kSteps);
  for (size_t s = 0; s < kSteps; ++s) {
    kind[s] = static_cast<int>(cluster.world().tape().Next() % 2);
    const uint64_t x = cluster.world().tape().Next() % (3 * static_cast<uint64_t>(n));
    stray[s] = x < static_cast<uint64_t>(n) ? static_cast<int>(x) : -1;
  }
  // Per rank: every operation's status, and whether the rank had seen a timeout when it
  // posted the operation (only those must fail COLLECTIVE_ABORTED: operations posted
  // together may time out together).
  struct Outcome {
    bool after_timeout;
    Status status;
  };
  std::vector<std::vector<Outcome>> got(n);
  bool finished = cluster.RunRanks(
      [&](int r) -> Task<void> {
        ProcessGroup& pg = cluster.pg(r);
        bool timed_out = false;
        auto note = [&](bool posted_after, Status st) {
          if (st.code() == ErrorCode::OPERATION_TIMEOUT) timed_out = true;
          got[r].push_back({posted_after, std::move(st)});
        };
        for (size_t s = 0; s < kSteps; ++s) {
          if (stray[s] == r) {
            std::vector<uint8_t> buf(64);
            const bool after = timed_out;
            Status st = co_await pg.Recv(View(buf, DataType::kU8), (r + 1) % n,
                                         static_cast<uint32_t>(1000 + s))
                            ->Wait();
            note(after, st);
          }
          const bool after = timed_out;
          if (kind[s] == 0) {
            std::vector<uint8_t> out(100 + s, static_cast<uint8_t>(r)), in(100 + s);
            auto send = pg.Send(View(out, DataType::kU8), (r + 1) % n, static_cast<uint32_t>(s));
            auto recv = pg.Recv(View(in, DataType::kU8), (r + n - 1) % n, static_cast<uint32_t>(s));
            Status a = co_await send->Wait();
            Status b = co_await recv->Wait();
            note(after, a);
            note(after, b);
          } else {
            std::vector<uint8_t> t = Filled(r, 16, ReduceOp::kSum, DataType::kI32);
            Status st = co_await pg.AllReduce(View(t, DataType::kI32), ReduceOp::kSum)->Wait();
            note(after, st);
          }
        }
      },
      (kSteps + 2) * 4 * co.pg.timeout_ns);
  std::string err;
  if (!finished) err = "a live rank never finished (hang)";
  for (int r = 0; r < n && err.empty(); ++r) {
    for (size_t k = 0; k < got[r].size(); ++k) {
      const Outcome& o = got[r][k];
      if (o.after_timeout && o.status.code() != ErrorCode::COLLECTIVE_ABORTED) {
        err = "rank " + std::to_string(r) + ": operation " + std::to_string(k) +
              ", posted after a timeout, answered " + o.status.ToString() +
              ", not COLLECTIVE_ABORTED (the group is broken by the timeout)";
        break;
      }
    }
  }
  out.events = cluster.world().trace().events();
  out.faults = sim::InjectedFaults(cluster.world());
  if (scale.record_tape) out.draws = cluster.world().tape().recorded();
  if (err.empty()) return out;
  out.failure = "seed " + std::to_string(seed) + ": " + err + "\n" + cluster.Banner() +
                "\n  replay: " + replay;
  return out;
}

// ---------------------------------------------------------------------------------------
// peer-loss

ZooRun RunPeerLoss(uint64_t seed, EngineBug bug, const std::string& replay, ZooScale scale) {
  ZooRun out;
  ClusterOptions co;
  co.nodes = scale.nodes != 0 ? std::max<size_t>(2, scale.nodes) : 3 + seed % 3;
  out.scale.nodes = co.nodes;
  out.scale.ops = scale.ops != 0 ? scale.ops : 40;
  co.sim.seed = seed;
  co.sim.tape = scale.tape;
  co.sim.record_tape = scale.record_tape;
  co.sim.engine.planted_bug = bug;
  co.sim.replay_command = replay;
  Result<std::unique_ptr<Cluster>> made = Cluster::Make(co);
  if (!made.ok()) {
    out.failure = "seed " + std::to_string(seed) + ": " + made.status().ToString();
    return out;
  }
  Cluster& c = **made;
  const size_t n = c.size();
  constexpr uint64_t kRegion = 64 * 1024;
  std::vector<uint8_t*> mem(n);
  for (size_t i = 0; i < n; ++i) {
    mem[i] = static_cast<uint8_t*>(c.Allocate(i, kRegion));
    Result<uint64_t> reg = c.Run(i, c.engine(i).RegisterMemory(mem[i], kRegion, Location::Host()));
    if (!reg.ok()) {
      out.failure = "seed " + std::to_string(seed) + ": register: " + reg.status().ToString();
      return out;
    }
  }
  sim::World* world = &c.world();
  const uint32_t victim = static_cast<uint32_t>(world->tape().Next() % n);
  world->ScheduleAt(world->NowNs() + world->tape().Next() % (200 * kUs), -1,
                    [world, victim]() {
                      if (world->alive(victim)) world->Crash(victim);
                    });
  std::string err;
  std::vector<size_t> nodes(n);
  for (size_t i = 0; i < n; ++i) nodes[i] = i;
  bool finished = c.RunEach(nodes, [&](size_t me) -> Task<void> {
    TransferEngine& engine = c.engine(me);
    Env& env = c.env(me);
    std::vector<SegmentHandle> handles(n);
    std::vector<bool> unreachable(n, false);
    for (size_t k = 0; k < out.scale.ops && err.empty(); ++k) {
      const size_t peer = (me + 1 + env.RandomBelow(n - 1)) % n;
      if (handles[peer].value == 0) {
        Result<SegmentHandle> h = co_await engine.OpenSegment(Fabric::NodeName(peer));
        if (!h.ok()) continue;
        handles[peer] = *h;
      }
      const uint64_t len = 1 + env.RandomBelow(4096);
      TransferRequest req{TransferOp::kWrite, reinterpret_cast<uint64_t>(mem[me]), len,
                          handles[peer],
                          reinterpret_cast<uint64_t>(mem[peer]) + env.RandomBelow(kRegion - len)};
      const uint64_t t0 = env.NowNs();
      std::vector<TransferRequest> one{req};
      std::vector<TransferStatus> st = co_await engine.TransferSync(one);
      const uint64_t took = env.NowNs() - t0;
      if (unreachable[peer] &&
          (st[0].error != ErrorCode::PEER_UNREACHABLE || took != 0)) {
        err = "node" + std::to_string(me) + ": a WRITE to node" + std::to_string(peer) +
              ", already found unreachable, answered " +
              std::string(ErrorCodeName(st[0].error)) + " after " + std::to_string(took) +
              " ns instead of failing at submit";
      }
      if (st[0].error == ErrorCode::PEER_UNREACHABLE) unreachable[peer] = true;
      co_await SleepFor(env, env.RandomBelow(20 * kUs));
    }
  }, 10'000 * kMs);
  if (!finished && err.empty()) err = "a live node never finished (hang)";
  out.events = c.world().trace().events();
  out.faults = sim::InjectedFaults(c.world());
  if (scale.record_tape) out.draws = c.world().tape().recorded();
  if (err.empty()) return out;
  out.failure = "seed " + std::to_string(seed) + ": " + err + "\n" + c.Banner();
  return out;
}

}  // namespace

ZooRun RunStoreFieldSeed(uint64_t seed, store::StoreBug store_bug, store::MasterBug master_bug,
                         const std::string& replay, ZooScale scale) {
  StoreField f(seed, store_bug, master_bug, replay, scale);
  return f.Run();
}

ZooRun RunP2pSeed(uint64_t seed, coll::CollBug bug, const std::string& replay, ZooScale scale) {
  return RunP2p(seed, bug, replay, scale);
}

ZooRun RunPeerLossSeed(uint64_t seed, EngineBug bug, const std::string& replay,
                       ZooScale scale) {
  return RunPeerLoss(seed, bug, replay, scale);
}

}  // namespace tidal::cluster
