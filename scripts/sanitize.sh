#!/usr/bin/env bash
# Runs the test suites under a sanitizer, through the CMake presets:
#   scripts/sanitize.sh asan   # `debug` preset: AddressSanitizer + UndefinedBehaviorSanitizer
#   scripts/sanitize.sh tsan   # `tsan` preset: ThreadSanitizer (the real backends' threads)
# Extra arguments go to ctest (for example: -L sim, -R Contract, -LE fuzz).
#
# The build folder is the preset's (build/debug, build/tsan) unless TIDAL_BUILD_DIR names
# another, so a second checkout or a running build is never disturbed. Any sanitizer
# report fails the test that triggered it: ASan and UBSan abort (-fno-sanitize-recover),
# and TSan exits non-zero (halt_on_error).
set -euo pipefail
cd "$(dirname "$0")/.."

kind=${1:-}
case "$kind" in
  asan) preset=debug ;;
  tsan) preset=tsan ;;
  *)
    echo "usage: scripts/sanitize.sh asan|tsan [ctest args...]" >&2
    exit 2
    ;;
esac
shift
dir=${TIDAL_BUILD_DIR:-build/$preset}

scripts/install-deps.sh
cmake --preset "$preset" -B "$dir"
cmake --build "$dir" -j2
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
# The same settings as the preset's test preset (output on failure, 2 jobs, timeout).
ctest --test-dir "$dir" --output-on-failure -j2 --timeout 1200 "$@"
