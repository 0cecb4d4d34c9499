#!/usr/bin/env bash
# Runs the store nemesis campaign over many seeds (default 2,000) with tidal-store-campaign.
#
#   scripts/store-campaign.sh                 # 2,000 seeds, fault mix "all"
#   scripts/store-campaign.sh 10000 all 1     # seeds, mix, first seed
#   BUILD_DIR=build/dev scripts/store-campaign.sh   (default: the release preset's build/release)
#
# Builds the program if needed, prints progress and seeds per second, and for every failing
# seed the banner and the command that replays it. Exit status 1 if any seed failed.
set -euo pipefail
seeds=${1:-2000}
mix=${2:-all}
start=${3:-1}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build/release}
if [[ ! -x $build/tools/tidal-store-campaign ]]; then
  if [[ ! -f $build/build.ninja ]]; then
    "$root/scripts/install-deps.sh"
    if [[ -z ${BUILD_DIR:-} ]]; then
      (cd "$root" && cmake --preset release >/dev/null)
    else
      cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    fi
  fi
  cmake --build "$build" --target tidal-store-campaign -j "${JOBS:-2}"
fi
exec "$build/tools/tidal-store-campaign" --seeds "${start}..$((start + seeds - 1))" --mix "$mix"
