// MasterLink (see master_link.h).
#include "tidal/backends/tcp/master_link.h"

namespace tidal::backends::tcp {

Result<std::unique_ptr<MasterLink>> MasterLink::Start(RealEnv& env, MasterLinkOptions options) {
  TcpMessengerOptions m;
  m.name = options.name;
  m.listen = options.listen;
  m.peers[std::string(kMasterEndpoint)] = options.master;
  Result<std::unique_ptr<TcpMessenger>> messenger = TcpMessenger::Start(env, std::move(m));
  if (!messenger.ok()) return messenger.status();
  std::unique_ptr<MasterLink> link(new MasterLink());
  link->messenger_ = std::move(*messenger);
  link->mux_ = std::make_unique<MessengerMux>(*link->messenger_);
  link->metadata_port_ = std::make_unique<DuplexMessenger>(
      link->mux_->Channel(kMetadataRequestChannel), link->mux_->Channel(kMetadataAnswerChannel));
  link->store_port_ = std::make_unique<DuplexMessenger>(link->mux_->Channel(kStoreRequestChannel),
                                                        link->mux_->Channel(kStoreAnswerChannel));
  MasterMetadataStoreOptions md;
  md.server = std::string(kMasterEndpoint);
  md.timeout_ns = options.rpc_timeout_ns;
  link->metadata_ = std::make_unique<MasterMetadataStore>(env, *link->metadata_port_, md);
  link->messenger_->SetDirectory(link->metadata_.get());
  return link;
}

MasterLink::~MasterLink() {
  if (messenger_) messenger_->SetDirectory(nullptr);
  metadata_.reset();
  store_port_.reset();
  metadata_port_.reset();
  mux_.reset();
  messenger_.reset();
}

}  // namespace tidal::backends::tcp
