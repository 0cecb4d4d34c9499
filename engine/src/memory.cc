#include "tidal/memory.h"

#include <charconv>

namespace tidal {

std::string Location::ToString() const {
  return is_host() ? std::string("host") : "cuda:" + std::to_string(device);
}

Result<Location> Location::Parse(const std::string& text) {
  if (text == "host" || text == "cpu") return Location::Host();
  if (text.rfind("cuda:", 0) == 0) {
    int32_t device = -1;
    const char* begin = text.data() + 5;
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(begin, end, device);
    if (ec == std::errc() && ptr == end && begin != end && device >= 0) {
      return Location::Cuda(device);
    }
  }
  return Status(ErrorCode::INVALID_PARAMS,
                "location '" + text + "' is neither 'host' nor 'cuda:<ordinal>'");
}

Status MemoryRegistry::CheckAdd(uint64_t addr, uint64_t length) const {
  if (length == 0) return Status(ErrorCode::INVALID_PARAMS, "length is zero");
  if (addr == 0) return Status(ErrorCode::INVALID_PARAMS, "address is null");
  if (addr + length < addr) return Status(ErrorCode::INVALID_PARAMS, "range wraps around");
  // The first region starting at or after addr, and the one before it.
  auto next = regions_.lower_bound(addr);
  if (next != regions_.end() && next->first < addr + length) {
    return Status(ErrorCode::ADDRESS_OVERLAPPED, "range overlaps a registered region");
  }
  if (next != regions_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second.info.length > addr) {
      return Status(ErrorCode::ADDRESS_OVERLAPPED, "range overlaps a registered region");
    }
  }
  return Status();
}

Status MemoryRegistry::Add(const RegionInfo& region) {
  TIDAL_RETURN_IF_ERROR(CheckAdd(region.addr, region.length));
  TIDAL_ASSERT(region.rkey != 0);
  regions_.emplace(region.addr, Entry{region, 0});
  return Status();
}

Result<RegionInfo> MemoryRegistry::Remove(uint64_t addr) {
  auto it = regions_.find(addr);
  if (it == regions_.end()) {
    return Status(ErrorCode::INVALID_PARAMS, "no registered region starts at this address");
  }
  if (it->second.in_flight > 0) {
    return Status(ErrorCode::BATCH_BUSY, std::to_string(it->second.in_flight) +
                                             " transfer slices still use this region");
  }
  RegionInfo info = it->second.info;
  regions_.erase(it);
  return info;
}

const MemoryRegistry::Entry* MemoryRegistry::FindEntry(uint64_t addr, uint64_t length) const {
  if (length == 0 || addr + length < addr) return nullptr;
  auto it = regions_.upper_bound(addr);
  if (it == regions_.begin()) return nullptr;
  --it;
  if (!it->second.info.Contains(addr, length)) return nullptr;
  return &it->second;
}

Result<RegionInfo> MemoryRegistry::FindLocal(uint64_t addr, uint64_t length) const {
  const Entry* e = FindEntry(addr, length);
  if (e == nullptr) {
    return Status(ErrorCode::ADDRESS_NOT_REGISTERED,
                  "local range of " + std::to_string(length) +
                      " bytes does not lie inside one registered region");
  }
  return e->info;
}

Status MemoryRegistry::CheckRemote(uint64_t addr, uint64_t length, uint64_t rkey) const {
  const Entry* e = FindEntry(addr, length);
  if (e == nullptr) {
    return Status(ErrorCode::REMOTE_ACCESS_DENIED, "remote range is outside every exported region");
  }
  if (e->info.rkey != rkey) {
    return Status(ErrorCode::REMOTE_ACCESS_DENIED, "remote key does not match the region");
  }
  return Status();
}

void MemoryRegistry::AddInFlight(uint64_t region_addr, int64_t delta) {
  auto it = regions_.find(region_addr);
  TIDAL_ASSERT(it != regions_.end());
  if (delta < 0) TIDAL_ASSERT(it->second.in_flight >= static_cast<uint64_t>(-delta));
  it->second.in_flight += delta;
}

uint64_t MemoryRegistry::InFlight(uint64_t region_addr) const {
  auto it = regions_.find(region_addr);
  return it == regions_.end() ? 0 : it->second.in_flight;
}

std::vector<RegionInfo> MemoryRegistry::List() const {
  std::vector<RegionInfo> out;
  out.reserve(regions_.size());
  for (const auto& [addr, e] : regions_) out.push_back(e.info);
  return out;
}

}  // namespace tidal
