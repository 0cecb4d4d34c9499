#include "tidal/env.h"

#include <vector>

#include "tidal/assert.h"

namespace tidal {

uint64_t Env::RandomBelow(uint64_t bound) {
  TIDAL_ASSERT(bound > 0);
  // Lemire's multiply-shift: one draw, negligible bias for the bounds tidal uses.
  return static_cast<uint64_t>((static_cast<unsigned __int128>(RandomU64()) * bound) >> 64);
}

void Env::DestroyRoots() {
  // Destroying a frame destroys the tasks it awaits; none of them is a root, so the set
  // is not modified while we walk a copy of it.
  std::vector<void*> roots(roots_.begin(), roots_.end());
  roots_.clear();
  for (void* address : roots) std::coroutine_handle<>::from_address(address).destroy();
}

}  // namespace tidal
