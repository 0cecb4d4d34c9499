#!/usr/bin/env bash
# The main job: installs what the build needs, builds the campaign programs and runs a
# simulated cluster campaign of every layer, each seed under a swarm of faults:
#   transfer     4 nodes, random READ/WRITE batches, every byte checked (tidal-sim)
#   store        4-8 clients, put/get/remove/batch/tensor ops, history checker, then
#                the lease-reuse and writer-death scenarios on every read and write path
#   collectives  random collectives and point-to-point exchanges over 2-6 ranks with
#                crashes, hangs, partitions and lost messages
#   mixed        store clients and two process groups sharing every node's engine,
#                started in random orders, with an occasional crash
# and ends with a summary table. The store and collectives campaigns print their
# (path × fault) reach tables and fail when a required pair was never reached: their seed
# counts below reach every one (docs/harness.md, "Reach"). Arguments go to the transfer
# campaign's `tidal-sim run` (for example: --seeds 1..5000 --nodes 8).
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh || exit 2
cmake --preset release >/dev/null || exit 2
cmake --build --preset release --target tidal-sim tidal-store-campaign tidal-coll-campaign \
  tidal-mixed-campaign \
  || exit 2

summary=()
run() {  # name, seeds, command...
  local name=$1 seeds=$2
  shift 2
  echo
  echo "=== ${name} campaign: ${seeds} seeds ==="
  local start end rc
  start=$(date +%s.%N)
  "$@"
  rc=$?
  end=$(date +%s.%N)
  summary+=("$(awk -v n="$name" -v s="$seeds" -v a="$start" -v b="$end" -v rc="$rc" \
    'BEGIN { printf "  %-12s %7d seeds  %8.1f s  %8.1f seeds/s  %s", n, s, b - a, s / (b - a), rc == 0 ? "PASS" : "FAIL" }')")
  [ "$rc" -eq 0 ] || failed=1
}

failed=0
run transfer 1000 build/release/tools/tidal-sim run --seeds 1..1000 --nodes 4 --faults all "$@"
run store 500 build/release/tools/tidal-store-campaign --seeds 1..500 --mix all
run collectives 1000 build/release/tools/tidal-coll-campaign --seeds 1..1000 --keep-going
run mixed 1000 build/release/tools/tidal-mixed-campaign --seeds 1..1000 --keep-going

echo
echo "=== tidal simulated cluster campaign ==="
printf '%s\n' "${summary[@]}"
if [ "$failed" -eq 0 ]; then
  echo "verdict: PASS (every seed of every workload passed its checker)"
else
  echo "verdict: FAIL (see the failing seeds and their replay commands above)"
fi
exit "$failed"
