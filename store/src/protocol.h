// The bodies of the store's RPC messages (inside rpc.h frames). Every response body
// starts with the callee's status (i32 code, string message); the payload follows only
// when the code is OK. Decoders return CORRUPT_INPUT for anything malformed.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "tidal/status.h"
#include "tidal/store/types.h"

namespace tidal::store::proto {

struct MountReq {
  std::string segment;
  uint64_t base = 0;
  uint64_t size = 0;
};
struct PutStartReq {
  std::string key;
  uint64_t size = 0;
  ReplicateConfig config;
};
struct PutStartResp {
  uint64_t generation = 0;
  std::vector<ReplicaLocation> replicas;
};
struct KeyGen {  // PutEnd, PutRevoke, GetReplicaList (generation 0: any)
  std::string key;
  uint64_t generation = 0;
};
struct ReplicaListResp {
  uint64_t size = 0;
  uint64_t generation = 0;
  uint64_t lease_ttl_ns = 0;
  std::vector<ReplicaLocation> replicas;
};
struct RemoveReq {
  std::string key;
  bool force = false;
};
// Put reservations (one-RPC puts, README "Put reservations").
struct PutReserveReq {
  uint64_t size = 0;
  ReplicateConfig config;         // replica_num and preferred_segments place them
  uint32_t count = 0;             // how many reservations of `size` bytes
  std::vector<uint64_t> release;  // the client's expired reservations, given back
};
struct Reservation {
  uint64_t id = 0;
  std::vector<ReplicaLocation> replicas;
};
struct PutReserveResp {
  uint64_t valid_ns = 0;  // usable for this long after the request was sent
  std::vector<Reservation> reservations;
};
struct PutCommitReq {
  std::string key;
  uint64_t reservation = 0;
  uint64_t size = 0;
  ReplicateConfig config;  // replica_num must match the reservation; the pins apply
};

std::string Encode(const MountReq& m);
std::string Encode(const PutStartReq& m);
std::string Encode(const PutStartResp& m);
std::string Encode(const KeyGen& m);
std::string Encode(const ReplicaListResp& m);
std::string Encode(const RemoveReq& m);
std::string Encode(const PutReserveReq& m);
std::string Encode(const PutReserveResp& m);
std::string Encode(const PutCommitReq& m);
std::string EncodeKey(std::string_view key);
std::string EncodeU64(uint64_t v);
std::string EncodeU64s(const std::vector<uint64_t>& v);
std::string EncodeKeys(const std::vector<std::string>& keys);
std::string EncodeCodes(const std::vector<ErrorCode>& codes);
std::string EncodeInfo(const ObjectInfo& info);

Status Decode(std::string_view in, MountReq* m);
Status Decode(std::string_view in, PutStartReq* m);
Status Decode(std::string_view in, PutStartResp* m);
Status Decode(std::string_view in, KeyGen* m);
Status Decode(std::string_view in, ReplicaListResp* m);
Status Decode(std::string_view in, RemoveReq* m);
Status Decode(std::string_view in, PutReserveReq* m);
Status Decode(std::string_view in, PutReserveResp* m);
Status Decode(std::string_view in, PutCommitReq* m);
Status DecodeKey(std::string_view in, std::string* key);
Status DecodeU64(std::string_view in, uint64_t* v);
Status DecodeU64s(std::string_view in, std::vector<uint64_t>* v);
Status DecodeKeys(std::string_view in, std::vector<std::string>* keys);
Status DecodeCodes(std::string_view in, std::vector<ErrorCode>* codes);
Status DecodeInfo(std::string_view in, ObjectInfo* info);

// A response body: the status, then (if OK) the payload.
std::string Respond(const Status& status, std::string_view payload = {});
// Splits a response body: the callee's failed Status, or the payload.
Result<std::string> ParseResponse(std::string_view body);

}  // namespace tidal::store::proto
