// Small statistics shared by tidal's benchmark programs.
#pragma once

#include <algorithm>
#include <vector>

namespace tidal::tools {

// The median of `v` (the mean of the middle two for an even count); 0 for none.
inline double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 != 0 ? v[m] : (v[m - 1] + v[m]) / 2;
}

}  // namespace tidal::tools
