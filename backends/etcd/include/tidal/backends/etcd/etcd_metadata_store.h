// EtcdMetadataStore: the MetadataStore of a real deployment, kept in etcd (v3) and reached
// through etcd's JSON gateway (POST /v3/kv/put, /v3/kv/range, /v3/kv/deleterange,
// /v3/lease/*) over HTTP with libcurl. Keys and values are arbitrary bytes (base64 on
// the wire); List(prefix) is one consistent snapshot, in key order.
//
// Threading: the HTTP requests run on a worker thread the store owns, one at a time in
// submission order, so a Put followed by a Get from one coroutine sees its own write.
// A coroutine that awaits a call is resumed by a post to the Env, never inline and
// never on the worker. The Env must be a RealEnv (it is told, through AddPoster, that a
// reply is on its way, so RunBlocking waits for it) and must outlive the store. Every
// method is called on the Env's executor thread.
//
// Leases: a Put whose key starts with one of `leased_prefixes` (by default
// "tidal/segments/", the segment descriptors a node publishes) is written under this
// store's lease. The lease is granted with the first such Put, and a keep-alive thread
// renews it every TTL/3, so the records of a node that dies (process killed, host gone,
// network cut) disappear from etcd on their own about `lease_ttl_s` after its last
// renewal, and peers then get SEGMENT_NOT_FOUND instead of a stale descriptor. Keys
// outside those prefixes are durable (written without a lease). If etcd reports the lease
// gone while this store still lives (the keep-alives could not get through for a whole
// TTL), the store grants a new lease and writes again every leased record it holds, so
// the node reappears once etcd is reachable. The destructor revokes the lease: a node
// that stops cleanly removes its leased records at once. lease_ttl_s == 0 turns leases
// off (every Put is durable).
//
// Errors: INVALID_KEY for an empty key; OBJECT_NOT_FOUND for Get/Delete of a missing key;
// RPC_FAIL when no endpoint accepts a connection (the message names the URLs) or etcd
// answers with an error; RPC_TIMEOUT when a request gets no answer within
// request_timeout_ms; INVALID_PARAMS when etcd refuses the request as malformed or too
// large (etcd takes requests up to 1.5 MiB by default); CORRUPT_INPUT for a reply that is
// not what the gateway sends.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tidal/backends/real_env.h"
#include "tidal/metadata_store.h"

namespace tidal::backends {

struct EtcdOptions {
  // "HOST:PORT" of etcd's client URL (http). With several, a request that cannot connect
  // to one is tried on the next, and the store stays with the one that answered.
  std::vector<std::string> endpoints;
  uint64_t connect_timeout_ms = 2000;
  // Bound on one HTTP request, connection included. Keep it below a third of the TTL so
  // that one slow request cannot make the keep-alive miss the lease.
  uint64_t request_timeout_ms = 3000;
  // The lease's time to live; etcd rounds it up to its minimum (2 s by default). 0: no lease.
  uint64_t lease_ttl_s = 10;
  std::vector<std::string> leased_prefixes = {"tidal/segments/"};
};

class EtcdMetadataStore final : public MetadataStore {
 public:
  // INVALID_PARAMS when no endpoint is given or one is not HOST:PORT. Makes no request:
  // an unreachable etcd shows up as RPC_FAIL on the first call.
  static Result<std::unique_ptr<EtcdMetadataStore>> Create(RealEnv& env, EtcdOptions options);
  // Revokes the lease (bounded by request_timeout_ms) and joins the threads. Calls still
  // queued are answered RPC_FAIL ("store closed").
  ~EtcdMetadataStore() override;

  Task<Status> Put(std::string key, std::string value) override;
  Task<Result<std::string>> Get(std::string key) override;
  Task<Status> Delete(std::string key) override;
  Task<Result<KeyValues>> List(std::string prefix) override;

  // Revokes the lease now: every leased record this store wrote is gone from etcd when it
  // returns OK. A later leased Put grants a new lease.
  Task<Status> RevokeLease();

  // Stops renewing the lease without revoking it, as a node that died would: its leased
  // records expire after the TTL. For fault-injection tests and tools; cannot be undone.
  void StopKeepAlive();

  // The current lease's id (0 when none has been granted). For tests and logs.
  int64_t lease_id() const;

  const EtcdOptions& options() const;

  class Impl;

 private:
  explicit EtcdMetadataStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

namespace etcd_detail {
std::string Base64Encode(std::string_view bytes);
// CORRUPT_INPUT (naming `field`) for anything but canonical padded base64.
Result<std::string> Base64Decode(std::string_view text, std::string_view field);
// The etcd range_end that selects every key starting with `prefix`: the prefix with its
// last byte below 0xff incremented and what follows dropped; "\0" (every key from the
// start key on) when there is no such byte.
std::string PrefixRangeEnd(std::string_view prefix);
// "HOST:PORT" with a non-empty host and a port in 1..65535.
bool IsHostPort(std::string_view endpoint);
}  // namespace etcd_detail

}  // namespace tidal::backends
