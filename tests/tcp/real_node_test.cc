// RealNode against a running tidal-master (scripts/with-master.sh, started with
// --spin-us so the master's polling loop serves these requests): two nodes of this
// process over UCX (UCX_TLS from the environment; ctest sets tcp), a holder lending a
// segment and a client.
//
//  * SlicesAndConcurrentSessions: the engine runs with RealNodeOptions::slice_bytes (a
//    3 MiB + 5 byte value moves in exactly 4 slices of 1 MiB each way); 16 sessions on the
//    client's one event loop put and get 4 KiB values at once, every byte checked, as
//    `tidal-bench store --shape sessions` does; a cached get serves the second read.
//  * BadOptionsNameTheField: slice_bytes 0 is refused before anything starts.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "tidal/cluster/real_node.h"

namespace tidal {
namespace {

std::string MasterAddress() {
  const char* a = std::getenv("TIDAL_MASTER");
  return a == nullptr ? std::string() : std::string(a);
}

std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed * 29 + (i >> 11)) & 0xff);
  return s;
}

struct Sessions {
  explicit Sessions(Env& env) : done(env) {}
  int left = 0;
  int ok = 0;           // sessions whose every value came back byte-exact
  std::vector<std::string> failures;
  OneShot<bool> done;
};

// One session: puts its value, reads it back, compares every byte.
Task<void> Session(store::StoreClient* client, int id, std::shared_ptr<Sessions> s) {
  const std::string key = "rn/session" + std::to_string(id);
  const std::string value = Pattern(4096, static_cast<uint32_t>(id));
  store::ReplicateConfig rc;
  rc.preferred_segments = {"rn-holder"};
  Status put = co_await client->Put(key, value, rc);
  Result<std::string> got = co_await client->Get(key);
  if (!put.ok()) {
    s->failures.push_back(key + " put: " + put.ToString());
  } else if (!got.ok()) {
    s->failures.push_back(key + " get: " + got.status().ToString());
  } else if (*got != value) {
    s->failures.push_back(key + ": other bytes came back");
  } else {
    ++s->ok;
  }
  if (--s->left == 0) s->done.Set(true);
}

Task<void> RunSessions(store::StoreClient* client, int n, std::shared_ptr<Sessions> s,
                       Env* env) {
  s->left = n;
  for (int i = 0; i < n; ++i) Spawn(*env, Session(client, i, s));
  co_await s->done.Wait();
}

TEST(RealNodeStore, SlicesAndConcurrentSessions) {
  const std::string master = MasterAddress();
  ASSERT_FALSE(master.empty()) << "TIDAL_MASTER is not set: run under scripts/with-master.sh";
  cluster::RealNodeOptions ho;
  ho.name = "rn-holder";
  ho.master = master;
  ho.segment_bytes = 32ull << 20;
  ho.slice_bytes = 1ull << 20;
  auto holder = cluster::RealNode::Start(ho);
  ASSERT_TRUE(holder.ok()) << holder.status().ToString();
  cluster::RealNodeOptions co;
  co.name = "rn-client";
  co.master = master;
  co.segment_bytes = 0;
  co.slice_bytes = 1ull << 20;
  co.env_spin_ns = 20'000;
  co.cached_gets = true;
  auto made = cluster::RealNode::Start(co);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  cluster::RealNode& client = **made;
  EXPECT_EQ(client.engine().options().slice_bytes, 1ull << 20);
  EXPECT_EQ((*holder)->engine().options().slice_bytes, 1ull << 20);

  // 16 sessions at once on the client's one event loop.
  auto s = std::make_shared<Sessions>(client.env());
  client.Run(RunSessions(&client.store(), 16, s, &client.env()));
  EXPECT_EQ(s->ok, 16);
  for (const std::string& f : s->failures) ADD_FAILURE() << f;
  // The second read of a session's key is served from the cached replica list.
  const uint64_t cached_before = client.store().stats().cached_gets;
  Result<std::string> again = client.Run(client.store().Get("rn/session7"));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE(*again == Pattern(4096, 7));
  EXPECT_EQ(client.store().stats().cached_gets, cached_before + 1);

  // Zero-copy, 3 MiB + 5 bytes: 4 slices of at most 1 MiB to write, 4 to read.
  const uint64_t size = (3ull << 20) + 5;
  const std::string pattern = Pattern(size, 99);
  std::vector<uint8_t> src(pattern.begin(), pattern.end());
  std::vector<uint8_t> dst(size + 64, 0xEE);
  ASSERT_TRUE(client.Run(client.store().RegisterBuffer(src.data(), src.size())).ok());
  ASSERT_TRUE(client.Run(client.store().RegisterBuffer(dst.data(), dst.size())).ok());
  store::ReplicateConfig rc;
  rc.preferred_segments = {"rn-holder"};
  const uint64_t slices0 = client.engine().stats().slices_submitted;
  Status put = client.Run(client.store().PutFrom("rn/big", src.data(), size, rc));
  ASSERT_TRUE(put.ok()) << put.ToString();
  const uint64_t slices1 = client.engine().stats().slices_submitted;
  EXPECT_EQ(slices1 - slices0, 4u);
  Result<uint64_t> n = client.Run(client.store().GetInto("rn/big", dst.data(), dst.size()));
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, size);
  EXPECT_EQ(client.engine().stats().slices_submitted - slices1, 4u);
  EXPECT_EQ(std::memcmp(dst.data(), src.data(), size), 0);
  for (uint64_t i = size; i < dst.size(); ++i) ASSERT_EQ(dst[i], 0xEE) << "byte " << i;

  for (int i = 0; i < 16; ++i) {
    EXPECT_TRUE(client.Run(client.store().Remove("rn/session" + std::to_string(i), true)).ok());
  }
  EXPECT_TRUE(client.Run(client.store().Remove("rn/big", true)).ok());
  EXPECT_TRUE(client.Run(client.store().UnregisterBuffer(src.data())).ok());
  EXPECT_TRUE(client.Run(client.store().UnregisterBuffer(dst.data())).ok());
}

TEST(RealNodeStore, BadOptionsNameTheField) {
  cluster::RealNodeOptions o;
  o.name = "rn-bad";
  o.master = "127.0.0.1:1";
  o.slice_bytes = 0;
  auto made = cluster::RealNode::Start(o);
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.code(), ErrorCode::INVALID_PARAMS);
  EXPECT_NE(made.status().ToString().find("slice_bytes"), std::string::npos)
      << made.status().ToString();
}

}  // namespace
}  // namespace tidal
