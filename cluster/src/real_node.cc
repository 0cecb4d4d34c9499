// RealNode (see real_node.h).
#include "tidal/cluster/real_node.h"

#if TIDAL_HAVE_UCX

#include "tidal/backends/ucx/ucx_transport.h"

namespace tidal::cluster {

RealNode::RealNode(RealNodeOptions options)
    : options_(std::move(options)), env_(options_.name) {
  env_.SetSpinNs(options_.env_spin_ns);
}

RealNode::~RealNode() {
  groups_.clear();  // before the engine and messenger they hook into
  client_.reset();
  engine_.reset();
  link_.reset();
}

Result<std::unique_ptr<RealNode>> RealNode::Start(RealNodeOptions options) {
  if (options.name.empty() || options.master.empty()) {
    return Status(ErrorCode::INVALID_PARAMS, "RealNode: a name and tidal-master's address are needed");
  }
  if (options.slice_bytes == 0) {
    return Status(ErrorCode::INVALID_PARAMS, "RealNode: slice_bytes must be at least 1");
  }
  std::unique_ptr<RealNode> node(new RealNode(std::move(options)));
  backends::tcp::MasterLinkOptions lo;
  lo.name = node->options_.name;
  lo.master = node->options_.master;
  lo.listen = node->options_.listen;
  lo.rpc_timeout_ns = node->options_.timeout_ns;
  Result<std::unique_ptr<backends::tcp::MasterLink>> link =
      backends::tcp::MasterLink::Start(node->env_, lo);
  if (!link.ok()) {
    return Status(link.code(), "messenger of '" + lo.name + "': " + link.status().ToString());
  }
  node->link_ = std::move(*link);
  Status st = node->Run(node->SetUp());
  if (!st.ok()) return st;
  return node;
}

// A node's switches default to on: only "0" turns one off.
bool RealNodeOptions::OneSidedDefault() {
  return backends::ucx::UcxTransportOptions::SwitchFromEnvironment("TIDAL_UCX_ONE_SIDED")
      .value_or(true);
}

bool RealNodeOptions::TransportMemoryDefault() {
  return backends::ucx::UcxTransportOptions::SwitchFromEnvironment("TIDAL_UCX_TRANSPORT_MEMORY")
      .value_or(true);
}

Task<Status> RealNode::SetUp() {
  const std::string& master = options_.master;
  Status st = co_await link_->messenger().Publish();  // peers find us in the directory
  if (!st.ok()) co_return Status(st.code(), "publish to tidal-master " + master + ": " + st.ToString());
  TransferEngineOptions eo;
  eo.transfer_timeout_ns = options_.timeout_ns;
  eo.slice_bytes = options_.slice_bytes;
  backends::ucx::UcxTransportOptions to;
  to.one_sided = options_.one_sided;
  if (options_.ucx_spin_ns) to.spin_ns = *options_.ucx_spin_ns;
  auto ucx = std::make_unique<backends::ucx::UcxTransport>(to);
  backends::ucx::UcxTransport* transport = ucx.get();  // owned by the engine from here
  engine_ =
      std::make_unique<TransferEngine>(env_, std::move(ucx), link_->metadata(), options_.name, eo);
  st = co_await engine_->Start();
  if (!st.ok()) co_return Status(st.code(), "engine over UCX: " + st.ToString());
  store::StoreClientOptions so;
  so.master = std::string(backends::tcp::kMasterEndpoint);
  so.op_timeout_ns = options_.timeout_ns;
  // Small puts and gets copy through 2 MiB registered once, instead of registering (and
  // publishing) a buffer per call; the client is destroyed before the engine (~RealNode).
  so.staging_slots = 32;
  so.staging_slot_bytes = 64ull << 10;
  so.cache_leased_replicas = options_.cached_gets;
  so.put_reservations = options_.put_reservations;
  client_ = std::make_unique<store::StoreClient>(env_, *engine_, link_->store_port(), so);
  st = co_await client_->Start();
  if (!st.ok()) co_return Status(st.code(), "store client (tidal-master " + master + "): " + st.ToString());
  if (options_.segment_bytes > 0) {
    if (options_.transport_memory) {
      // Lives as long as the transport, which outlives the store client (~RealNode).
      Result<void*> p = transport->AllocateHostMemory(options_.segment_bytes);
      if (!p.ok()) co_return Status(p.code(), "segment in UCX memory: " + p.status().ToString());
      segment_base_ = static_cast<uint8_t*>(*p);
    } else {
      segment_.assign(options_.segment_bytes, 0);
      segment_base_ = segment_.data();
    }
    st = co_await client_->MountSegment(segment_base_, options_.segment_bytes);
    if (!st.ok()) co_return Status(st.code(), "mount: " + st.ToString());
  }
  co_return Status::Ok();
}

Result<coll::ProcessGroup*> RealNode::StartGroup(int rank, int size,
                                                 coll::ProcessGroupOptions options,
                                                 uint8_t channel) {
  if (channel < 16) {
    return Status(ErrorCode::INVALID_PARAMS, "RealNode: group channels start at 16");
  }
  auto group = std::make_unique<coll::ProcessGroup>(rank, size, *engine_,
                                                    link_->mux().Channel(channel),
                                                    link_->metadata(), std::move(options));
  coll::ProcessGroup* g = group.get();
  Status st = Run(g->Start());
  if (!st.ok()) return Status(st.code(), "process group: " + st.ToString());
  // Every rank published before its bootstrap record, so the directory knows them all.
  st = Run(link_->messenger().RefreshDirectory());
  if (!st.ok()) return Status(st.code(), "directory: " + st.ToString());
  groups_.push_back(std::move(group));
  return g;
}

}  // namespace tidal::cluster

#endif  // TIDAL_HAVE_UCX
