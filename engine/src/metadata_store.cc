#include "tidal/metadata_store.h"

namespace tidal {

Task<Status> InMemoryMetadataStore::Put(std::string key, std::string value) {
  if (key.empty()) co_return Status(ErrorCode::INVALID_KEY, "metadata key is empty");
  kv_[std::move(key)] = std::move(value);
  co_return Status();
}

Task<Result<std::string>> InMemoryMetadataStore::Get(std::string key) {
  if (key.empty()) co_return Status(ErrorCode::INVALID_KEY, "metadata key is empty");
  auto it = kv_.find(key);
  if (it == kv_.end()) co_return Status(ErrorCode::OBJECT_NOT_FOUND, "no metadata key " + key);
  co_return it->second;
}

Task<Status> InMemoryMetadataStore::Delete(std::string key) {
  if (key.empty()) co_return Status(ErrorCode::INVALID_KEY, "metadata key is empty");
  if (kv_.erase(key) == 0) co_return Status(ErrorCode::OBJECT_NOT_FOUND, "no metadata key " + key);
  co_return Status();
}

Task<Result<KeyValues>> InMemoryMetadataStore::List(std::string prefix) {
  KeyValues out;
  for (auto it = kv_.lower_bound(prefix); it != kv_.end() && it->first.rfind(prefix, 0) == 0;
       ++it) {
    out.emplace_back(it->first, it->second);
  }
  co_return out;
}

}  // namespace tidal
