#!/usr/bin/env bash
# Runs the collectives campaign: many seeds of random collectives under simulated
# transfer faults, control-message faults and rank crashes (cluster/include/tidal/cluster/coll_campaign.h).
# Prints progress, seeds per second and, for a failing seed, its digest and the command
# that replays it.
#
#   scripts/collectives-campaign.sh [SEEDS] [FIRST_SEED]     (defaults: 2000, 1)
#
# Environment: BUILD_DIR (default build/release, the release preset) is configured and built
# if needed;
# JOBS (default 2) for the build; KEEP_GOING=1 reports every failing seed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seeds="${1:-2000}"
first="${2:-1}"
build="${BUILD_DIR:-$root/build/release}"
jobs="${JOBS:-2}"

if [[ ! -f "$build/build.ninja" ]]; then
  "$root/scripts/install-deps.sh"
  if [[ -z "${BUILD_DIR:-}" ]]; then
    (cd "$root" && cmake --preset release >/dev/null)
  else
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
fi
ninja -C "$build" -j "$jobs" tidal-coll-campaign >/dev/null

bin="$(find "$build" -name tidal-coll-campaign -type f -perm -u+x | head -n1)"
if [[ -z "$bin" ]]; then
  echo "tidal-coll-campaign was not built" >&2
  exit 2
fi
args=(--seeds "${first}..$((first + seeds - 1))")
[[ "${KEEP_GOING:-0}" == "1" ]] && args+=(--keep-going)

start=$(date +%s.%N)
set +e
"$bin" "${args[@]}"
rc=$?
set -e
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" -v n="$seeds" \
  'BEGIN { printf "collectives-campaign.sh: %d seeds in %.2f s wall (%.1f seeds/s), exit %d\n", n, e - s, n / (e - s), '"$rc"' }'
exit "$rc"
