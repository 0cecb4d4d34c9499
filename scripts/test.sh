#!/usr/bin/env bash
# Installs what the build needs, builds the release preset and runs the whole test suite
# with ctest. Extra arguments go to ctest (for example: -L sim, -R Contract).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset release
cmake --build --preset release
ctest --preset release "$@"
