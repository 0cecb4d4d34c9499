// StoreClient: batch calls and tensor calls (see client.h).
#include "protocol.h"
#include "tidal/store/client.h"
#include "when_all.h"

namespace tidal::store {
namespace {

Status NotRun() { return Status(ErrorCode::INVALID_PARAMS, "batch slot not attempted"); }
Status Mismatch() { return Status(ErrorCode::INVALID_PARAMS, "batch vectors differ in length"); }

Status ValidateTp(uint32_t tp_rank, uint32_t tp_size) {
  if (tp_size == 0) return Status(ErrorCode::INVALID_PARAMS, "tp_size is 0");
  if (tp_rank >= tp_size) {
    return Status(
        ErrorCode::INVALID_PARAMS,
        "tp_rank " + std::to_string(tp_rank) + " is not below tp_size " + std::to_string(tp_size));
  }
  return Status();
}

Result<Tensor> ToTensor(std::string_view bytes) {
  Result<TensorView> v = DecodeTensor(bytes);
  if (!v.ok()) return v.status();
  return Tensor{v->dtype, v->shape,
                std::string(reinterpret_cast<const char*>(v->data), v->data_bytes)};
}

}  // namespace

Task<std::vector<Status>> StoreClient::BatchPutFrom(std::vector<std::string> keys,
                                                    std::vector<const void*> ptrs,
                                                    std::vector<uint64_t> sizes,
                                                    ReplicateConfig config) {
  std::vector<Status> out(keys.size(), NotRun());
  if (ptrs.size() != keys.size() || sizes.size() != keys.size()) {
    for (auto& s : out) s = Mismatch();
    co_return out;
  }
  Deadline d = MakeDeadline();
  std::vector<Task<Status>> tasks;
  for (size_t i = 0; i < keys.size(); ++i) {
    tasks.push_back(PutImpl(keys[i], ptrs[i], sizes[i], config, d));
  }
  std::vector<Status> done = co_await WhenAll(env_, std::move(tasks));
  // Only a real success writes OK; a failure keeps its own code.
  for (size_t i = 0; i < done.size(); ++i) out[i] = std::move(done[i]);
  co_return out;
}

Task<std::vector<Result<uint64_t>>> StoreClient::BatchGetInto(std::vector<std::string> keys,
                                                              std::vector<void*> ptrs,
                                                              std::vector<uint64_t> capacities) {
  std::vector<Result<uint64_t>> out(keys.size(), Result<uint64_t>(NotRun()));
  if (ptrs.size() != keys.size() || capacities.size() != keys.size()) {
    for (auto& s : out) s = Mismatch();
    co_return out;
  }
  Deadline d = MakeDeadline();
  std::vector<Task<Result<uint64_t>>> tasks;
  for (size_t i = 0; i < keys.size(); ++i) {
    tasks.push_back(GetImpl(keys[i], ptrs[i], capacities[i], GetOptions{}, d));
  }
  std::vector<Result<uint64_t>> done = co_await WhenAll(env_, std::move(tasks));
  for (size_t i = 0; i < done.size(); ++i) out[i] = std::move(done[i]);
  co_return out;
}

Task<std::vector<Result<bool>>> StoreClient::BatchExists(std::vector<std::string> keys) {
  std::vector<Result<bool>> out(keys.size(), Result<bool>(NotRun()));
  std::vector<std::string> asked;
  std::vector<size_t> where;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (keys[i].empty() || keys[i].size() > kMaxKeyBytes) {
      out[i] = Status(ErrorCode::INVALID_KEY, "key is empty or too long");
    } else {
      asked.push_back(keys[i]);
      where.push_back(i);
    }
  }
  if (asked.empty()) co_return out;
  std::string body = proto::EncodeKeys(asked);
  Result<std::string> r = co_await Call(MsgType::kBatchExists, std::move(body), MakeDeadline());
  std::vector<ErrorCode> codes;
  if (r.ok()) {
    Status s = proto::DecodeCodes(*r, &codes);
    if (!s.ok())
      r = s;
    else if (codes.size() != asked.size())
      r = Status(ErrorCode::CORRUPT_INPUT, "exists: count");
  }
  for (size_t j = 0; j < where.size(); ++j) {
    if (!r.ok()) {
      out[where[j]] = r.status();
    } else if (codes[j] == ErrorCode::OK) {
      out[where[j]] = true;
    } else if (codes[j] == ErrorCode::OBJECT_NOT_FOUND ||
               codes[j] == ErrorCode::REPLICA_IS_NOT_READY) {
      out[where[j]] = false;
    } else {
      out[where[j]] = Status(codes[j], "exists");
    }
  }
  co_return out;
}

// ---------------------------------------------------------------------------------------
// Tensors

Task<Status> StoreClient::PutTensor(std::string key, TensorView tensor, ReplicateConfig config) {
  Result<std::string> bytes = EncodeTensor(tensor);
  if (!bytes.ok()) co_return bytes.status();
  co_return co_await PutOwned(std::move(key), std::move(*bytes), std::move(config), MakeDeadline());
}

Task<Result<Tensor>> StoreClient::GetTensor(std::string key) {
  GetOptions options;
  Result<std::string> bytes = co_await GetOwned(std::move(key), options, MakeDeadline());
  if (!bytes.ok()) co_return bytes.status();
  co_return ToTensor(*bytes);
}

Task<Status> StoreClient::PutTpShards(std::string key, TensorView full, uint32_t tp_size,
                                      uint32_t split_dim, ReplicateConfig config, Deadline d) {
  TIDAL_CO_RETURN_IF_ERROR(key.empty() ? Status(ErrorCode::INVALID_KEY, "key is empty") : Status());
  // Field bug 5: the input is the FULL tensor; every shard is cut from it here.
  Result<std::vector<std::string>> shards = SplitTensor(full, split_dim, tp_size);
  if (!shards.ok()) co_return shards.status();
  std::vector<Task<Status>> tasks;
  for (uint32_t rank = 0; rank < tp_size; ++rank) {
    tasks.push_back(PutOwned(TpKey(key, rank), std::move((*shards)[rank]), config, d));
  }
  std::vector<Status> done = co_await WhenAll(env_, std::move(tasks));
  for (Status& s : done) {
    if (!s.ok()) co_return s;
  }
  co_return Status();
}

Task<Status> StoreClient::PutTensorWithTp(std::string key, TensorView full, uint32_t tp_size,
                                          uint32_t split_dim, ReplicateConfig config) {
  co_return co_await PutTpShards(std::move(key), std::move(full), tp_size, split_dim,
                                 std::move(config), MakeDeadline());
}

Task<Status> StoreClient::PutTensorWithTpFrom(std::string key, const void* buffer, uint64_t size,
                                              uint32_t tp_size, uint32_t split_dim,
                                              ReplicateConfig config) {
  if (buffer == nullptr || size == 0) {
    co_return Status(ErrorCode::INVALID_PARAMS, "tensor put: null buffer or size 0");
  }
  Result<RegionInfo> local = engine_.registry().FindLocal(reinterpret_cast<uint64_t>(buffer), size);
  if (!local.ok()) co_return local.status();
  Result<TensorView> full = DecodeTensor(std::string_view(static_cast<const char*>(buffer), size));
  if (!full.ok()) co_return full.status();
  if (options_.planted_bug == StoreBug::kTpFromSlicesBytes && tp_size > 0) {
    // Planted (field bug 5): the serialized buffer taken for shards, cut by bytes.
    const Deadline d = MakeDeadline();
    std::vector<Task<Status>> tasks;
    const uint64_t part = size / tp_size;
    for (uint32_t rank = 0; rank < tp_size; ++rank) {
      std::string shard(static_cast<const char*>(buffer) + rank * part, part);
      tasks.push_back(PutOwned(TpKey(key, rank), std::move(shard), config, d));
    }
    std::vector<Status> done = co_await WhenAll(env_, std::move(tasks));
    for (Status& s : done) {
      if (!s.ok()) co_return s;
    }
    co_return Status();
  }
  co_return co_await PutTpShards(std::move(key), std::move(*full), tp_size, split_dim,
                                 std::move(config), MakeDeadline());
}

Task<std::vector<Status>> StoreClient::BatchPutTensorWithTpFrom(
    std::vector<std::string> keys, std::vector<const void*> buffers, std::vector<uint64_t> sizes,
    uint32_t tp_size, uint32_t split_dim, ReplicateConfig config) {
  std::vector<Status> out(keys.size(), NotRun());
  if (buffers.size() != keys.size() || sizes.size() != keys.size()) {
    for (auto& s : out) s = Mismatch();
    co_return out;
  }
  std::vector<Task<Status>> tasks;
  for (size_t i = 0; i < keys.size(); ++i) {
    tasks.push_back(PutTensorWithTpFrom(keys[i], buffers[i], sizes[i], tp_size, split_dim, config));
  }
  std::vector<Status> done = co_await WhenAll(env_, std::move(tasks));
  // Field bug 6: a fully stored tensor reports OK, not the initial INVALID_PARAMS.
  for (size_t i = 0; i < done.size(); ++i) {
    if (options_.planted_bug == StoreBug::kTpBatchReportsInvalid && done[i].ok()) continue;
    out[i] = std::move(done[i]);
  }
  co_return out;
}

Task<Result<Tensor>> StoreClient::GetTensorWithTp(std::string key, uint32_t tp_rank,
                                                  uint32_t tp_size) {
  TIDAL_CO_RETURN_IF_ERROR(ValidateTp(tp_rank, tp_size));
  std::string shard_key = TpKey(key, tp_rank);
  co_return co_await GetTensor(std::move(shard_key));
}

Task<Result<uint64_t>> StoreClient::GetTensorWithTpInto(std::string key, uint32_t tp_rank,
                                                        uint32_t tp_size, void* buffer,
                                                        uint64_t capacity) {
  TIDAL_CO_RETURN_IF_ERROR(ValidateTp(tp_rank, tp_size));
  std::string shard_key = TpKey(key, tp_rank);
  GetOptions options;
  Result<uint64_t> n =
      co_await GetImpl(std::move(shard_key), buffer, capacity, options, MakeDeadline());
  if (!n.ok()) co_return n;
  Result<TensorView> v = DecodeTensor(std::string_view(static_cast<const char*>(buffer), *n));
  if (!v.ok()) co_return v.status();
  co_return n;
}

}  // namespace tidal::store
