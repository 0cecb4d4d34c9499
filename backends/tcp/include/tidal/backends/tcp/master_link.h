// How a process reaches tidal-master over TCP, and the channels both ends agree on.
//
// tidal-master serves one TcpMessenger endpoint named kMasterEndpoint, split by a
// MessengerMux into channels. Requests and answers travel on different channels so a
// master and a client may share one endpoint (as tidal::cluster does in one process):
//   1  store RPC requests, client -> master    (tidal::cluster's kStoreMasterChannel)
//   2  store RPC answers,  master -> client    (tidal::cluster's kStoreClientChannel)
//   3  metadata requests,  client -> master    (metadata_rpc.h)
//   4  metadata answers,   master -> client
// tidal::cluster leaves 3..7 unassigned; 8.. stay the user's and the process groups'.
//
// MasterLink is the client end for one node: a TcpMessenger that knows the master's
// address, a MessengerMux over it, a MasterMetadataStore on channels 3/4 that is also the
// messenger's directory, and a port on channels 1/2 for a store::StoreClient (whose
// options.master must be kMasterEndpoint).
//
// Thread safety: as TcpMessenger (the executor of its RealEnv).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "tidal/backends/real_env.h"
#include "tidal/backends/tcp/metadata_rpc.h"
#include "tidal/backends/tcp/tcp_messenger.h"
#include "tidal/messenger.h"
#include "tidal/messenger_mux.h"

namespace tidal::backends::tcp {

constexpr std::string_view kMasterEndpoint = "master";
constexpr uint8_t kStoreRequestChannel = 1;
constexpr uint8_t kStoreAnswerChannel = 2;
constexpr uint8_t kMetadataRequestChannel = 3;
constexpr uint8_t kMetadataAnswerChannel = 4;

// The store and metadata ports of a node (messenger_mux.h).
using tidal::DuplexMessenger;

struct MasterLinkOptions {
  std::string name;                    // this node's endpoint name
  std::string master;                  // tidal-master's "host:port"
  std::string listen = "127.0.0.1:0";  // this node's own listening address
  uint64_t rpc_timeout_ns = 5'000'000'000ULL;  // per metadata call
};

class MasterLink {
 public:
  // Starts the node's messenger (see TcpMessenger::Start for the codes). Sends nothing:
  // the first metadata call or store request dials the master.
  static Result<std::unique_ptr<MasterLink>> Start(RealEnv& env, MasterLinkOptions options);
  ~MasterLink();
  MasterLink(const MasterLink&) = delete;
  MasterLink& operator=(const MasterLink&) = delete;

  TcpMessenger& messenger() { return *messenger_; }
  MessengerMux& mux() { return *mux_; }
  MasterMetadataStore& metadata() { return *metadata_; }
  // For store::StoreClient (requests on channel 1, answers on channel 2).
  Messenger& store_port() { return *store_port_; }

 private:
  MasterLink() = default;
  std::unique_ptr<TcpMessenger> messenger_;
  std::unique_ptr<MessengerMux> mux_;
  std::unique_ptr<DuplexMessenger> metadata_port_;
  std::unique_ptr<DuplexMessenger> store_port_;
  std::unique_ptr<MasterMetadataStore> metadata_;
};

}  // namespace tidal::backends::tcp
