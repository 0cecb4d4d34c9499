#!/usr/bin/env bash
# Line and branch coverage of engine/ sim/ store/ collectives/ from the test suites.
#
#   scripts/coverage.sh [ctest args...]     (default: the unit, contract and sim labels)
#
# Configures and builds the `coverage` preset (gcc --coverage, -O0), clears old counters,
# runs the suites, then lcov collects line AND branch coverage restricted to the four
# layers (tests and *_test.cc excluded), genhtml writes build/coverage/html/index.html,
# and a summary per layer is printed and saved to build/coverage/summary.txt.
# TIDAL_BUILD_DIR overrides the build folder (default build/coverage).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
dir=${TIDAL_BUILD_DIR:-build/coverage}

scripts/install-deps.sh
cmake --preset coverage -B "$dir" >/dev/null
cmake --build "$dir" -j2
find "$dir" -name '*.gcda' -delete

if [ $# -eq 0 ]; then set -- -L 'unit|contract|sim'; fi
# Test failures are reported but still leave a coverage report behind.
rc=0
ctest --test-dir "$dir" --output-on-failure -j2 --timeout 1200 "$@" || rc=$?

rcopts=(--rc lcov_branch_coverage=1)
info="$dir/coverage.info"
lcov "${rcopts[@]}" --quiet --capture --directory "$dir" --base-directory "$root" \
  --output-file "$dir/all.info"
lcov "${rcopts[@]}" --quiet --extract "$dir/all.info" \
  "$root/engine/*" "$root/sim/*" "$root/store/*" "$root/collectives/*" \
  --output-file "$dir/layers.info"
# Tests are not the code under test: *_test.cc, the layers' tests/ folders and harnesses.
lcov "${rcopts[@]}" --quiet --remove "$dir/layers.info" '*_test.cc' '*/tests/*' \
  --output-file "$info"

rm -rf "$dir/html"
genhtml "${rcopts[@]}" --quiet --branch-coverage --legend --title "tidal coverage" \
  --prefix "$root" --output-directory "$dir/html" "$info"

{
  echo "coverage of engine/ sim/ store/ collectives/ (tests excluded), ctest: $*"
  for layer in engine sim store collectives; do
    lcov "${rcopts[@]}" --quiet --extract "$info" "$root/$layer/*" --output-file "$dir/$layer.info" \
      2>/dev/null || continue
    lcov "${rcopts[@]}" --summary "$dir/$layer.info" 2>&1 |
      awk -v l="$layer" '/lines|branches|functions/ {printf "  %-12s %s\n", l, $0}'
  done
  echo "  total:"
  lcov "${rcopts[@]}" --summary "$info" 2>&1 | grep -E 'lines|branches|functions' | sed 's/^/  /'
  echo "report: $dir/html/index.html"
} | tee "$dir/summary.txt"
exit "$rc"
