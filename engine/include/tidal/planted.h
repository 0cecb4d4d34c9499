// Planted bugs of the transfer engine: deliberate defects that the bug zoo (tidal-sim zoo,
// tidal/cluster/zoo.h) switches on one at a time, at run time, through
// TransferEngineOptions::planted_bug, to measure whether the campaigns catch them. The
// option defaults to kNone and nothing but the zoo and its tests sets it.
#pragma once

#include <cstdint>
#include <string_view>

#include "tidal/status.h"

namespace tidal {

enum class EngineBug : uint8_t {
  kNone,
  // Field report A: a request whose remote range is missing from the cached descriptor
  // fails at once with REMOTE_ACCESS_DENIED instead of waiting for a refresh.
  kNoDescriptorRefresh,
  // Field report B: CloseSegment invalidates the shared handle for every holder.
  kCloseDropsEveryHolder,
  // bytes_transferred of a failed multi-slice request counts every slice that moved, not
  // the prefix that arrived.
  kPrefixOvercount,
  // Field bug 11: a PEER_UNREACHABLE completion or probe leaves the segment's handle in
  // the cache as if healthy, so later requests to the dead peer go out and wait.
  kDeadPeerStaysCached,
};

inline constexpr EngineBug kEngineBugs[] = {EngineBug::kNone, EngineBug::kNoDescriptorRefresh,
                                            EngineBug::kCloseDropsEveryHolder,
                                            EngineBug::kPrefixOvercount,
                                            EngineBug::kDeadPeerStaysCached};
std::string_view EngineBugName(EngineBug bug);
// INVALID_PARAMS naming the known bugs for an unknown name.
Result<EngineBug> ParseEngineBug(std::string_view name);

}  // namespace tidal
