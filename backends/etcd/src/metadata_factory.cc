#include "tidal/backends/metadata_factory.h"

#include <charconv>
#include <string>

#include "tidal/backends/etcd/etcd_metadata_store.h"
#include "tidal/backends/real_env.h"

namespace tidal::backends {

namespace {

Status Bad(std::string_view url, const std::string& why) {
  return Status(ErrorCode::INVALID_PARAMS,
                "metadata URL '" + std::string(url) + "': " + why);
}

bool ParseU64(std::string_view s, uint64_t& out) {
  if (s.empty()) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

Result<std::unique_ptr<MetadataStore>> MakeEtcd(std::string_view url, std::string_view rest,
                                                Env& env) {
  auto* real = dynamic_cast<RealEnv*>(&env);
  if (real == nullptr) return Bad(url, "an etcd store needs a real Env (RealEnv)");
  EtcdOptions options;
  std::string_view hosts = rest;
  std::string_view query;
  if (const size_t q = rest.find('?'); q != std::string_view::npos) {
    hosts = rest.substr(0, q);
    query = rest.substr(q + 1);
  }
  if (hosts.empty()) return Bad(url, "no HOST:PORT after etcd://");
  while (!hosts.empty()) {
    const size_t comma = hosts.find(',');
    const std::string_view host = hosts.substr(0, comma);
    if (!etcd_detail::IsHostPort(host)) {
      return Bad(url, "'" + std::string(host) + "' is not HOST:PORT");
    }
    options.endpoints.emplace_back(host);
    if (comma == std::string_view::npos) break;
    hosts = hosts.substr(comma + 1);
    if (hosts.empty()) return Bad(url, "empty endpoint after ','");
  }
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const size_t eq = item.find('=');
    const std::string_view name = item.substr(0, eq);
    uint64_t value = 0;
    if (eq == std::string_view::npos || !ParseU64(item.substr(eq + 1), value)) {
      return Bad(url, "option '" + std::string(item) + "' is not NAME=NUMBER");
    }
    if (name == "ttl") {
      options.lease_ttl_s = value;
    } else if (name == "timeout_ms" && value > 0) {
      options.request_timeout_ms = value;
    } else if (name == "connect_timeout_ms" && value > 0) {
      options.connect_timeout_ms = value;
    } else {
      return Bad(url, "unknown or out-of-range option '" + std::string(item) +
                          "' (ttl, timeout_ms, connect_timeout_ms)");
    }
  }
  Result<std::unique_ptr<EtcdMetadataStore>> store =
      EtcdMetadataStore::Create(*real, std::move(options));
  if (!store.ok()) return Bad(url, store.status().message());
  return std::unique_ptr<MetadataStore>(std::move(*store));
}

}  // namespace

Result<std::unique_ptr<MetadataStore>> MakeMetadataStore(std::string_view url, Env& env) {
  constexpr std::string_view kMem = "mem://";
  constexpr std::string_view kEtcd = "etcd://";
  if (url.substr(0, kMem.size()) == kMem) {
    if (url.size() != kMem.size()) return Bad(url, "mem:// takes nothing after the scheme");
    return std::unique_ptr<MetadataStore>(std::make_unique<InMemoryMetadataStore>());
  }
  if (url.substr(0, kEtcd.size()) == kEtcd) return MakeEtcd(url, url.substr(kEtcd.size()), env);
  return Bad(url, "unknown scheme (use mem:// or etcd://HOST:PORT)");
}

}  // namespace tidal::backends
