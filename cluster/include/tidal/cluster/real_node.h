// RealNode: the wiring of one tidal node in a real process — a RealEnv, a MasterLink to
// tidal-master (TCP messenger, metadata, the store master's port), a TransferEngine over
// UCX, a store client with a mounted segment, and process groups on request. tidal-node,
// `tidal-bench store` and users' own programs start a node with one call instead of
// copying this set-up.
//
// Built when the UCX backend is (TIDAL_HAVE_UCX). Thread safety: one thread creates the
// node and drives it (Run); everything else runs on its RealEnv's executor.
#pragma once

#if TIDAL_HAVE_UCX

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tidal/backends/real_env.h"
#include "tidal/backends/tcp/master_link.h"
#include "tidal/collectives/process_group.h"
#include "tidal/store/client.h"
#include "tidal/transfer_engine.h"

namespace tidal::cluster {

struct RealNodeOptions {
  std::string name;                         // endpoint and segment name, unique per cluster
  std::string master;                       // tidal-master "host:port"
  std::string listen = "127.0.0.1:0";       // this node's messenger
  uint64_t segment_bytes = 64ull << 20;     // lent to the store (0: mount nothing)
  uint64_t timeout_ns = 10'000'000'000ULL;  // RPCs, store calls, transfers
  // The store client's cached gets (StoreClientOptions::cache_leased_replicas: a get
  // under a lease this client holds skips the master, and may not see another client's
  // remove until that lease lapses).
  bool cached_gets = false;
  // Puts of at most 64 KiB through put reservations, this many at a time per put shape
  // (StoreClientOptions::put_reservations: one master RPC per put instead of two; 0: off).
  uint32_t put_reservations = 16;
  // The engine cuts transfers into slices of this size (TransferEngineOptions::slice_bytes);
  // over UCX each slice is one request and one answer, so a 16 MiB value in 64 KiB slices
  // (the engine's default) is 256 of each.
  uint64_t slice_bytes = 4ull << 20;
  // Before the node's event loop sleeps waiting for another thread (the messenger's IO
  // thread, the UCX progress thread), it polls this long for their post
  // (RealEnv::SetSpinNs): a wake-up saved per answer, a core burnt while it polls.
  // 0: sleep at once.
  uint64_t env_spin_ns = 0;
  // The UCX progress thread's polling window after its last activity
  // (UcxTransportOptions::spin_ns; unset: the transport's default). A node that serves
  // peers' accesses takes a request that finds it polling without an event-fd wake-up.
  std::optional<uint64_t> ucx_spin_ns;
  // The UCX transport's one-sided mode (UcxTransportOptions::one_sided, docs/ucx.md) and,
  // with `transport_memory`, the lent segment in memory UCX allocated
  // (UcxTransport::AllocateHostMemory): where UCX maps that memory into its peers (shared
  // memory on one host), their puts and gets go straight into it; elsewhere (tcp, or
  // where UCX could only allocate heap memory) the transport uses its target-checked
  // active-message path after one key request per peer region. On by default for nodes
  // (docs/decisions.md, "A node lends its segment one-sided"); TIDAL_UCX_ONE_SIDED=0 /
  // TIDAL_UCX_TRANSPORT_MEMORY=0 in the environment turn them off, =1 on.
  bool one_sided = OneSidedDefault();
  bool transport_memory = TransportMemoryDefault();

  static bool OneSidedDefault();         // true unless TIDAL_UCX_ONE_SIDED=0
  static bool TransportMemoryDefault();  // true unless TIDAL_UCX_TRANSPORT_MEMORY=0
};

class RealNode {
 public:
  // Starts the messenger, publishes its endpoint, starts the engine over UCX and the store
  // client, and mounts the segment. The error names the step and the master's address.
  static Result<std::unique_ptr<RealNode>> Start(RealNodeOptions options);
  ~RealNode();
  RealNode(const RealNode&) = delete;
  RealNode& operator=(const RealNode&) = delete;

  backends::RealEnv& env() { return env_; }
  TransferEngine& engine() { return *engine_; }
  store::StoreClient& store() { return *client_; }
  backends::tcp::MasterLink& link() { return *link_; }

  // Creates and starts rank `rank` of a `size`-rank group (bootstrap through the master's
  // metadata) on messenger channel `channel` (16 and up: tidal-master uses 1..4), then
  // loads the directory so every rank's endpoint is known. Blocks until every rank joined.
  Result<coll::ProcessGroup*> StartGroup(int rank, int size, coll::ProcessGroupOptions options,
                                         uint8_t channel = 16);

  template <typename T>
  T Run(Task<T> task) {
    return RunBlocking(env_, std::move(task));
  }

 private:
  explicit RealNode(RealNodeOptions options);
  Task<Status> SetUp();

  RealNodeOptions options_;
  backends::RealEnv env_;
  std::unique_ptr<backends::tcp::MasterLink> link_;
  std::unique_ptr<TransferEngine> engine_;
  std::unique_ptr<store::StoreClient> client_;
  std::vector<uint8_t> segment_;     // the lent segment, unless transport_memory
  uint8_t* segment_base_ = nullptr;  // where it is (segment_ or transport memory)
  std::vector<std::unique_ptr<coll::ProcessGroup>> groups_;
};

}  // namespace tidal::cluster

#endif  // TIDAL_HAVE_UCX
