// MakeMetadataStore: a MetadataStore from a URL, for tools and deployments that name their
// control plane on the command line (tidal-master --metadata, ...).
//
//   mem://                       an InMemoryMetadataStore, private to this process
//   etcd://HOST:PORT[,HOST:PORT...][?ttl=S&timeout_ms=MS&connect_timeout_ms=MS]
//                                an EtcdMetadataStore (etcd/etcd_metadata_store.h) on those
//                                endpoints; ttl is the lease TTL in seconds of the
//                                records under tidal/segments/ (0: no lease, default 10),
//                                timeout_ms bounds one request (default 3000).
//
// etcd:// needs a RealEnv (its replies are posted from a worker thread). INVALID_PARAMS,
// naming the URL, for an unknown scheme, a malformed address or option, or an Env that
// cannot take an etcd store. Makes no request: an unreachable etcd shows up as RPC_FAIL
// on the first call.
#pragma once

#include <memory>
#include <string_view>

#include "tidal/env.h"
#include "tidal/metadata_store.h"
#include "tidal/status.h"

namespace tidal::backends {

Result<std::unique_ptr<MetadataStore>> MakeMetadataStore(std::string_view url, Env& env);

}  // namespace tidal::backends
