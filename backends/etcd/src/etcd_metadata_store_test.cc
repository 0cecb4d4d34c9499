// EtcdMetadataStore against a live etcd: scripts/etcd-fixture.sh starts a private one and
// passes its client address in TIDAL_ETCD (ctest: etcd_metadata_test, label etcd).
//
// Byte-exact put/get/delete/list (binary keys and values, 1 MiB values, many keys over
// several range pages), the error contract, the lease (kept alive past its TTL, expiring
// once the keep-alive stops, revoked on a clean stop, granted again after etcd dropped
// it) and two TransferEngines that find each other's segments through etcd and move
// bytes with the descriptor they read there.
#include <curl/curl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "inprocess_transport.h"
#include "tidal/backends/etcd/etcd_metadata_store.h"
#include "tidal/backends/metadata_factory.h"
#include "tidal/backends/real_env.h"
#include "tidal/segment.h"
#include "tidal/task.h"
#include "tidal/transfer_engine.h"
#include "tidal/transport.h"

namespace tidal::backends {
namespace {

constexpr uint64_t kMs = 1'000'000;

std::string Endpoint() {
  const char* e = std::getenv("TIDAL_ETCD");
  return e != nullptr ? e : "";
}

#define REQUIRE_ETCD()                                                                 \
  do {                                                                                 \
    if (Endpoint().empty()) GTEST_SKIP() << "TIDAL_ETCD is not set: run me through " \
                                            "scripts/etcd-fixture.sh";                 \
  } while (0)

// A key prefix private to the running test, so tests sharing one etcd never meet.
std::string TestPrefix() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return std::string("test/") + info->test_suite_name() + "." + info->name() + "/";
}

std::unique_ptr<EtcdMetadataStore> MakeStore(RealEnv& env, uint64_t ttl_s = 10) {
  EtcdOptions o;
  o.endpoints = {Endpoint()};
  o.lease_ttl_s = ttl_s;
  auto store = EtcdMetadataStore::Create(env, o);
  TIDAL_ASSERT(store.ok());
  return std::move(*store);
}

void Sleep(RealEnv& env, uint64_t ns) {
  RunBlocking(env, [](RealEnv& e, uint64_t d) -> Task<int> {
    co_await SleepFor(e, d);
    co_return 0;
  }(env, ns));
}

// Polls `key` through `store` every 100 ms, for at most `bound_ms`, until its presence is
// `want_present`. Returns whether that happened within the bound.
bool AwaitPresence(RealEnv& env, MetadataStore& store, const std::string& key, bool want_present,
                   uint64_t bound_ms) {
  const uint64_t deadline = env.NowNs() + bound_ms * kMs;
  for (;;) {
    auto got = RunBlocking(env, store.Get(key));
    if (!got.ok() && got.code() != ErrorCode::OBJECT_NOT_FOUND) {
      ADD_FAILURE() << "Get " << key << ": " << got.status().ToString();
      return false;
    }
    if (got.ok() == want_present) return true;
    if (env.NowNs() >= deadline) return false;
    Sleep(env, 100 * kMs);
  }
}

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::string s(n, '\0');
  for (char& c : s) c = char(g() & 0xff);
  return s;
}

TEST(EtcdStore, PutGetDeleteRoundTrip) {
  REQUIRE_ETCD();
  RealEnv env;
  auto store = MakeStore(env);
  const std::string k = TestPrefix() + "k";
  ASSERT_TRUE(RunBlocking(env, store->Put(k, "one")).ok());
  auto got = RunBlocking(env, store->Get(k));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, "one");
  ASSERT_TRUE(RunBlocking(env, store->Put(k, "two")).ok());  // overwrite
  EXPECT_EQ(*RunBlocking(env, store->Get(k)), "two");
  ASSERT_TRUE(RunBlocking(env, store->Delete(k)).ok());
  EXPECT_EQ(RunBlocking(env, store->Get(k)).code(), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(RunBlocking(env, store->Delete(k)).code(), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(RunBlocking(env, store->Get(TestPrefix() + "never")).code(),
            ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_EQ(RunBlocking(env, store->Put("", "v")).code(), ErrorCode::INVALID_KEY);
  EXPECT_EQ(store->lease_id(), 0);  // nothing under a leased prefix was written
}

TEST(EtcdStore, BinaryKeysAndValuesAreByteExact) {
  REQUIRE_ETCD();
  RealEnv env;
  auto store = MakeStore(env);
  std::string every_byte;
  for (int i = 0; i < 256; ++i) every_byte += char(i);
  const std::map<std::string, std::string> cases = {
      {TestPrefix() + std::string("nul\0in\0key", 10), std::string("a\0b\0\0c", 6)},
      {TestPrefix() + std::string("\xff\xfe\x80", 3), every_byte},
      {TestPrefix() + "empty", ""},
      {TestPrefix() + "one-mib", RandomBytes(1 << 20, 7)},
      {TestPrefix() + "odd", RandomBytes((1 << 20) - 1, 8)},
  };
  for (const auto& [k, v] : cases) ASSERT_TRUE(RunBlocking(env, store->Put(k, v)).ok());
  for (const auto& [k, v] : cases) {
    auto got = RunBlocking(env, store->Get(k));
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->size(), v.size());
    EXPECT_TRUE(*got == v);
  }
  auto listed = RunBlocking(env, store->List(TestPrefix()));
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  ASSERT_EQ(listed->size(), cases.size());
  size_t i = 0;
  for (const auto& [k, v] : cases) {  // std::map: byte order, as etcd orders keys
    EXPECT_TRUE((*listed)[i].first == k) << i;
    EXPECT_TRUE((*listed)[i].second == v) << i;
    ++i;
  }
  for (const auto& [k, v] : cases) ASSERT_TRUE(RunBlocking(env, store->Delete(k)).ok());
  EXPECT_TRUE(RunBlocking(env, store->List(TestPrefix()))->empty());
}

TEST(EtcdStore, ListReturnsExactlyThePrefixInKeyOrderAcrossPages) {
  REQUIRE_ETCD();
  RealEnv env;
  auto store = MakeStore(env);
  const std::string p = TestPrefix();
  std::vector<std::string> inside;
  for (int i = 0; i < 1100; ++i) inside.push_back(p + "a/" + std::to_string(i));  // > 2 pages
  inside.push_back(p + "a/" + std::string("\xff\xff", 2));
  inside.push_back(p + "a/");  // the prefix itself is a key of the prefix
  const std::vector<std::string> outside = {p + "a", p + "b/0", p + "a0", p + "`"};
  std::vector<std::string> all = inside;
  all.insert(all.end(), outside.begin(), outside.end());
  std::shuffle(all.begin(), all.end(), std::mt19937_64(3));
  for (const std::string& k : all) ASSERT_TRUE(RunBlocking(env, store->Put(k, "v:" + k)).ok());

  std::sort(inside.begin(), inside.end());
  auto listed = RunBlocking(env, store->List(p + "a/"));
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  ASSERT_EQ(listed->size(), inside.size());
  for (size_t i = 0; i < inside.size(); ++i) {
    ASSERT_EQ((*listed)[i].first, inside[i]) << i;
    ASSERT_EQ((*listed)[i].second, "v:" + inside[i]) << i;
  }
  // A prefix ending in 0xff bytes.
  auto ff = RunBlocking(env, store->List(p + "a/" + std::string("\xff", 1)));
  ASSERT_TRUE(ff.ok());
  ASSERT_EQ(ff->size(), 1u);
  EXPECT_EQ((*ff)[0].first, p + "a/" + std::string("\xff\xff", 2));
  EXPECT_TRUE(RunBlocking(env, store->List(p + "none/"))->empty());
  // Everything of this test, in order.
  std::sort(all.begin(), all.end());
  auto everything = RunBlocking(env, store->List(p));
  ASSERT_TRUE(everything.ok());
  ASSERT_EQ(everything->size(), all.size());
  for (size_t i = 0; i < all.size(); ++i) ASSERT_EQ((*everything)[i].first, all[i]) << i;
  for (const std::string& k : all) ASSERT_TRUE(RunBlocking(env, store->Delete(k)).ok());
}

TEST(EtcdStore, ConcurrentCallsFromManyCoroutinesAllComplete) {
  REQUIRE_ETCD();
  RealEnv env;
  auto store = MakeStore(env);
  const std::string p = TestPrefix();
  int done = 0;
  int failed = 0;
  for (int i = 0; i < 40; ++i) {
    Spawn(env, [](MetadataStore& s, std::string k, int& d, int& f) -> Task<void> {
      Status put = co_await s.Put(k, k);
      auto got = co_await s.Get(k);  // one worker, in order: sees its own write
      if (!put.ok() || !got.ok() || *got != k) ++f;
      ++d;
    }(*store, p + std::to_string(i), done, failed));
  }
  ASSERT_TRUE(env.RunUntil([&] { return done == 40; }));
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(RunBlocking(env, store->List(p))->size(), 40u);
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(RunBlocking(env, store->Delete(p + std::to_string(i))).ok());
}

TEST(EtcdStore, OversizedValueIsInvalidParams) {
  REQUIRE_ETCD();
  RealEnv env;
  auto store = MakeStore(env);
  // etcd takes requests up to 1.5 MiB (--max-request-bytes); this one is 1.75 MiB.
  Status s = RunBlocking(env, store->Put(TestPrefix() + "big", std::string(7 << 18, 'x')));
  EXPECT_EQ(s.code(), ErrorCode::INVALID_PARAMS) << s.ToString();
}

// ---- Leases -----------------------------------------------------------------------------

TEST(EtcdLease, LeasedKeysLiveWhileKeptAliveAndExpireWhenTheNodeDies) {
  REQUIRE_ETCD();
  RealEnv env;
  auto node = MakeStore(env, /*ttl_s=*/2);
  auto observer = MakeStore(env, /*ttl_s=*/0);
  const std::string seg = "tidal/segments/" + TestPrefix();
  const std::string durable = TestPrefix() + "durable";
  ASSERT_TRUE(RunBlocking(env, node->Put(seg, "descriptor")).ok());
  ASSERT_TRUE(RunBlocking(env, node->Put(durable, "stays")).ok());
  EXPECT_NE(node->lease_id(), 0);

  // Kept alive: still there two TTLs later.
  Sleep(env, 4000 * kMs);
  EXPECT_EQ(*RunBlocking(env, observer->Get(seg)), "descriptor");

  // The node dies: no more keep-alives, no revoke. etcd drops the record by itself.
  node->StopKeepAlive();
  EXPECT_TRUE(AwaitPresence(env, *observer, seg, /*want_present=*/false, /*bound_ms=*/20000))
      << seg << " outlived its lease";
  EXPECT_EQ(*RunBlocking(env, observer->Get(durable)), "stays");  // not leased
  ASSERT_TRUE(RunBlocking(env, observer->Delete(durable)).ok());
}

TEST(EtcdLease, ACleanStopRevokesTheLeaseAtOnce) {
  REQUIRE_ETCD();
  RealEnv env;
  auto observer = MakeStore(env, 0);
  const std::string seg = "tidal/segments/" + TestPrefix();
  {
    auto node = MakeStore(env, /*ttl_s=*/60);  // expiry alone would take a minute
    ASSERT_TRUE(RunBlocking(env, node->Put(seg, "d")).ok());
    ASSERT_TRUE(RunBlocking(env, observer->Get(seg)).ok());
  }  // destroyed: revoked
  EXPECT_EQ(RunBlocking(env, observer->Get(seg)).code(), ErrorCode::OBJECT_NOT_FOUND);

  auto node = MakeStore(env, 60);
  ASSERT_TRUE(RunBlocking(env, node->Put(seg, "d1")).ok());
  const int64_t first = node->lease_id();
  ASSERT_NE(first, 0);
  ASSERT_TRUE(RunBlocking(env, node->RevokeLease()).ok());
  EXPECT_EQ(node->lease_id(), 0);
  EXPECT_EQ(RunBlocking(env, observer->Get(seg)).code(), ErrorCode::OBJECT_NOT_FOUND);
  ASSERT_TRUE(RunBlocking(env, node->Put(seg, "d2")).ok());  // a new lease
  EXPECT_NE(node->lease_id(), 0);
  EXPECT_NE(node->lease_id(), first);
  EXPECT_EQ(*RunBlocking(env, observer->Get(seg)), "d2");
}

// Revokes lease `id` behind the store's back, as etcd does to a lease whose keep-alives
// stopped arriving (a partition longer than the TTL).
void RevokeBehindTheStoresBack(int64_t id) {
  CURL* c = curl_easy_init();
  ASSERT_NE(c, nullptr);
  const std::string url = "http://" + Endpoint() + "/v3/lease/revoke";
  const std::string body = "{\"ID\":\"" + std::to_string(id) + "\"}";
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, +[](char*, size_t s, size_t n, void*) { return s * n; });
  const CURLcode rc = curl_easy_perform(c);
  long http = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &http);
  curl_easy_cleanup(c);
  ASSERT_EQ(rc, CURLE_OK);
  ASSERT_EQ(http, 200);
}

TEST(EtcdLease, ALostLeaseIsReplacedAndTheRecordsWrittenAgain) {
  REQUIRE_ETCD();
  RealEnv env;
  auto node = MakeStore(env, /*ttl_s=*/3);
  auto observer = MakeStore(env, 0);
  const std::string a = "tidal/segments/" + TestPrefix() + "a";
  const std::string b = "tidal/segments/" + TestPrefix() + "b";
  ASSERT_TRUE(RunBlocking(env, node->Put(a, "A")).ok());
  ASSERT_TRUE(RunBlocking(env, node->Put(b, "B")).ok());
  ASSERT_TRUE(RunBlocking(env, node->Delete(b)).ok());  // no longer the node's record
  const int64_t lost = node->lease_id();
  RevokeBehindTheStoresBack(lost);
  EXPECT_EQ(RunBlocking(env, observer->Get(a)).code(), ErrorCode::OBJECT_NOT_FOUND);
  // The next keep-alive (within TTL/3) learns the lease is gone; the store grants another
  // and writes `a` again. `b` stays deleted.
  EXPECT_TRUE(AwaitPresence(env, *observer, a, /*want_present=*/true, /*bound_ms=*/15000));
  EXPECT_EQ(*RunBlocking(env, observer->Get(a)), "A");
  EXPECT_EQ(RunBlocking(env, observer->Get(b)).code(), ErrorCode::OBJECT_NOT_FOUND);
  EXPECT_NE(node->lease_id(), 0);
  EXPECT_NE(node->lease_id(), lost);
  // A Put under a lease revoked behind our back, before the keeper noticed, also recovers.
  RevokeBehindTheStoresBack(node->lease_id());
  ASSERT_TRUE(RunBlocking(env, node->Put(b, "B2")).ok());
  EXPECT_EQ(*RunBlocking(env, observer->Get(a)), "A");
  EXPECT_EQ(*RunBlocking(env, observer->Get(b)), "B2");
}

TEST(EtcdLease, FactoryUrlSetsTheTtl) {
  REQUIRE_ETCD();
  RealEnv env;
  auto store = MakeMetadataStore("etcd://" + Endpoint() + "?ttl=0", env);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto* etcd = static_cast<EtcdMetadataStore*>(store->get());
  const std::string seg = "tidal/segments/" + TestPrefix();
  ASSERT_TRUE(RunBlocking(env, etcd->Put(seg, "durable")).ok());
  EXPECT_EQ(etcd->lease_id(), 0);  // ttl=0: no lease, the record is durable
  store->reset();
  auto observer = MakeStore(env, 0);
  EXPECT_EQ(*RunBlocking(env, observer->Get(seg)), "durable");
  ASSERT_TRUE(RunBlocking(env, observer->Delete(seg)).ok());
}

// ---- Two engines meeting through etcd ------------------------------------------------------

TEST(EtcdEngines, TwoEnginesPublishAndOpenEachOthersSegmentsThroughEtcd) {
  REQUIRE_ETCD();
  RealEnv env;
  const std::string tag = std::to_string(env.RandomU64());  // segment names unique per run
  const std::string name_a = "etcd-a-" + tag;
  const std::string name_b = "etcd-b-" + tag;
  auto store_a = MakeStore(env, 10);
  auto store_b = MakeStore(env, 10);
  testing::InProcessHub hub;  // the data plane: memcpy between the two engines
  TransferEngine a(env, std::make_unique<testing::InProcessTransport>(hub), *store_a, name_a);
  TransferEngine b(env, std::make_unique<testing::InProcessTransport>(hub), *store_b, name_b);
  std::vector<char> buf_a(4096), buf_b(4096);
  for (size_t i = 0; i < buf_b.size(); ++i) buf_b[i] = char(i * 7 + 1);
  ASSERT_TRUE(RunBlocking(env, a.Start()).ok());
  ASSERT_TRUE(RunBlocking(env, b.Start()).ok());
  ASSERT_TRUE(RunBlocking(env, a.RegisterMemory(buf_a.data(), buf_a.size(), Location::Host())).ok());
  ASSERT_TRUE(RunBlocking(env, b.RegisterMemory(buf_b.data(), buf_b.size(), Location::Host())).ok());

  // Both descriptors are in etcd, under the node's lease, and decode to what was published.
  auto listed = RunBlocking(env, store_a->List("tidal/segments/etcd-"));
  ASSERT_TRUE(listed.ok());
  std::map<std::string, SegmentDescriptor> seen;
  for (const auto& [k, v] : *listed) {
    auto d = DecodeSegment(v);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    EXPECT_EQ(k, SegmentKey(d->name));
    seen[d->name] = *d;
  }
  ASSERT_EQ(seen.count(name_a), 1u);
  ASSERT_EQ(seen.count(name_b), 1u);
  EXPECT_EQ(seen[name_b].transport, "inproc");
  ASSERT_EQ(seen[name_b].regions.size(), 1u);
  EXPECT_EQ(seen[name_b].regions[0].addr, reinterpret_cast<uint64_t>(buf_b.data()));
  EXPECT_NE(store_a->lease_id(), 0);
  EXPECT_NE(store_b->lease_id(), 0);

  // A opens B's segment from etcd and reads B's buffer with it.
  auto hb = RunBlocking(env, a.OpenSegment(name_b));
  ASSERT_TRUE(hb.ok()) << hb.status().ToString();
  auto ha = RunBlocking(env, b.OpenSegment(name_a));
  ASSERT_TRUE(ha.ok()) << ha.status().ToString();
  TransferRequest read{TransferOp::kRead, reinterpret_cast<uint64_t>(buf_a.data()), 4096, *hb,
                       reinterpret_cast<uint64_t>(buf_b.data())};
  auto st = RunBlocking(env, a.TransferSync(std::span<const TransferRequest>(&read, 1)));
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(st[0].state, TransferState::COMPLETED);
  EXPECT_EQ(st[0].bytes_transferred, 4096u);
  EXPECT_EQ(buf_a, buf_b);

  // B stops cleanly: its descriptor is gone, and a fresh open of it fails.
  ASSERT_TRUE(RunBlocking(env, b.Stop()).ok());
  EXPECT_EQ(RunBlocking(env, store_a->Get(SegmentKey(name_b))).code(), ErrorCode::OBJECT_NOT_FOUND);
  ASSERT_TRUE(RunBlocking(env, a.Stop()).ok());
  EXPECT_EQ(RunBlocking(env, store_b->Get(SegmentKey(name_a))).code(), ErrorCode::OBJECT_NOT_FOUND);
}

TEST(EtcdEngines, ADeadNodesSegmentExpiresAndCannotBeOpened) {
  REQUIRE_ETCD();
  RealEnv env;
  const std::string name_dead = "etcd-dead-" + std::to_string(env.RandomU64());
  auto store_dead = MakeStore(env, /*ttl_s=*/2);
  auto store_peer = MakeStore(env, 10);
  testing::InProcessHub hub;
  TransferEngine dead(env, std::make_unique<testing::InProcessTransport>(hub), *store_dead, name_dead);
  ASSERT_TRUE(RunBlocking(env, dead.Start()).ok());
  {
    TransferEngine peer(env, std::make_unique<testing::InProcessTransport>(hub), *store_peer,
                        "etcd-peer-" + name_dead);
    ASSERT_TRUE(RunBlocking(env, peer.Start()).ok());
    auto h = RunBlocking(env, peer.OpenSegment(name_dead));
    ASSERT_TRUE(h.ok()) << h.status().ToString();
  }
  store_dead->StopKeepAlive();  // the node's process hangs: Stop is never called
  ASSERT_TRUE(AwaitPresence(env, *store_peer, SegmentKey(name_dead), false, 20000));
  TransferEngine late(env, std::make_unique<testing::InProcessTransport>(hub), *store_peer,
                      "etcd-late-" + name_dead);
  ASSERT_TRUE(RunBlocking(env, late.Start()).ok());
  EXPECT_EQ(RunBlocking(env, late.OpenSegment(name_dead)).code(), ErrorCode::SEGMENT_NOT_FOUND);
}

}  // namespace
}  // namespace tidal::backends
