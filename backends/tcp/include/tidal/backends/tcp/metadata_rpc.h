// The MetadataStore over a Messenger: MetadataService serves any MetadataStore at an
// endpoint (tidal-master does, backed by MakeMetadataStore's store), MasterMetadataStore
// is the client, itself a MetadataStore, so a TransferEngine, a TcpMessenger's directory
// or a process-group bootstrap use a remote store as if it were local.
//
// Messages (the payload of one Messenger message; little-endian, engine's byte codec):
//   request:  u8 version (1) | u8 op | u64 request id | str key | str value
//   response: u8 version (1) | u8 op | 0x80 | u64 request id | i32 code | str message | body
// where str is a u32 length then the bytes, op is 1 put, 2 get, 3 delete, 4 list (the key
// is the prefix), 5 status (key and value empty), and the body is: get: str value;
// list: u32 count then count x (str key, str value), in key order; status: str JSON;
// otherwise empty. A key is at most kMetaMaxKeyBytes, a value kMetaMaxValueBytes.
//
// Thread safety: both classes run on their Env's executor only.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "tidal/env.h"
#include "tidal/messenger.h"
#include "tidal/metadata_store.h"
#include "tidal/status.h"
#include "tidal/task.h"

namespace tidal::backends::tcp {

constexpr uint8_t kMetaVersion = 1;
constexpr uint8_t kMetaResponseBit = 0x80;
constexpr size_t kMetaMaxKeyBytes = 4096;
constexpr size_t kMetaMaxValueBytes = 16u << 20;
constexpr size_t kMetaMaxListEntries = 1u << 20;

enum class MetaOp : uint8_t { kPut = 1, kGet = 2, kDelete = 3, kList = 4, kStatus = 5 };

struct MetaRequest {
  MetaOp op = MetaOp::kGet;
  uint64_t id = 0;
  std::string key;
  std::string value;
};

struct MetaResponse {
  MetaOp op = MetaOp::kGet;
  uint64_t id = 0;
  Status status;
  std::string value;  // get: the value; status: the JSON text
  KeyValues entries;  // list
};

std::string EncodeMetaRequest(const MetaRequest& request);
// CORRUPT_INPUT naming the field for anything malformed (a fuzz target).
Result<MetaRequest> DecodeMetaRequest(std::string_view bytes);
std::string EncodeMetaResponse(const MetaResponse& response);
Result<MetaResponse> DecodeMetaResponse(std::string_view bytes);

struct MetadataServiceStats {
  uint64_t requests = 0;
  uint64_t malformed = 0;  // requests that did not decode (answered CORRUPT_INPUT if possible)
  uint64_t answer_failures = 0;  // answers the messenger refused (logged)
};

// Serves `backing` at `messenger`'s endpoint. Installs itself as the messenger's receiver.
// `env`, `messenger` and `backing` must outlive it. `status_json` (optional) answers the
// status op; it is given every entry of the backing store (nullptr if listing them
// failed), so it can count keys, endpoints and segments.
class MetadataService {
 public:
  using StatusFn = std::function<std::string(const KeyValues* all_entries)>;
  MetadataService(Env& env, Messenger& messenger, MetadataStore& backing,
                  StatusFn status_json = nullptr);
  ~MetadataService();
  MetadataService(const MetadataService&) = delete;
  MetadataService& operator=(const MetadataService&) = delete;

  const MetadataServiceStats& stats() const { return stats_; }

 private:
  void OnMessage(std::string_view from, std::string payload);
  static Task<void> Serve(MetadataService* self, std::shared_ptr<bool> alive, std::string from,
                          MetaRequest request);
  void Answer(const std::string& to, const MetaResponse& response);

  Env& env_;
  Messenger& messenger_;
  MetadataStore& backing_;
  StatusFn status_json_;
  std::shared_ptr<bool> alive_;
  MetadataServiceStats stats_;
};

struct MasterMetadataStoreOptions {
  std::string server = "master";           // the service's endpoint name
  uint64_t timeout_ns = 5'000'000'000ULL;  // per call
};

// A MetadataStore whose calls are answered by a MetadataService. Installs itself as the
// messenger's receiver; `env` and `messenger` must outlive it. Besides the MetadataStore
// codes: RPC_FAIL (the request could not be sent: unknown server endpoint, full queue,
// oversized request; or the answer is malformed), RPC_TIMEOUT (no answer in time). Calls
// still waiting when the store is destroyed are never resumed (their frames go with the
// Env's roots).
class MasterMetadataStore final : public MetadataStore {
 public:
  MasterMetadataStore(Env& env, Messenger& messenger, MasterMetadataStoreOptions options = {});
  ~MasterMetadataStore() override;
  MasterMetadataStore(const MasterMetadataStore&) = delete;
  MasterMetadataStore& operator=(const MasterMetadataStore&) = delete;

  Task<Status> Put(std::string key, std::string value) override;
  Task<Result<std::string>> Get(std::string key) override;
  Task<Status> Delete(std::string key) override;
  Task<Result<KeyValues>> List(std::string prefix) override;
  // The server's status document (JSON text).
  Task<Result<std::string>> ServerStatus();

  uint64_t ignored_responses() const { return ignored_; }

 private:
  struct Pending;
  Task<Result<MetaResponse>> Call(MetaOp op, std::string key, std::string value);
  void OnMessage(std::string_view from, std::string payload);

  Env& env_;
  Messenger& messenger_;
  MasterMetadataStoreOptions options_;
  uint64_t next_id_;
  std::map<uint64_t, Pending*> pending_;
  std::shared_ptr<bool> alive_;
  uint64_t ignored_ = 0;
};

}  // namespace tidal::backends::tcp
