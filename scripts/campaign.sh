#!/usr/bin/env bash
# The main job: installs what the build needs, builds tidal-sim and runs a simulated
# cluster campaign (the transfer workload on 4 nodes over many seeds with every fault kind
# in the swarm), ending in a readable summary. Arguments go to `tidal-sim run` and
# override the defaults (for example: --seeds 1..5000 --nodes 8 --faults transfer).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target tidal-sim
exec build/release/tools/tidal-sim run --seeds 1..1000 --nodes 4 --faults all "$@"
