#!/usr/bin/env bash
# A long transfer campaign: scripts/sim-campaign.sh [SEEDS] [extra tidal-sim args...]
# Defaults to 20,000 seeds on 4 nodes with every fault kind. Builds tidal-sim if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-20000}
shift || true
if [ ! -x build/release/tools/tidal-sim ]; then
  scripts/install-deps.sh
  cmake --preset release >/dev/null
  cmake --build --preset release --target tidal-sim
fi
exec build/release/tools/tidal-sim run --seeds "1..${seeds}" --nodes 4 --faults all "$@"
