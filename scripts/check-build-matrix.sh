#!/usr/bin/env bash
# Configures and builds a representative set of build-option combinations, each in its own
# folder build/matrix/<name>, and prints one PASS or FAIL line per combination (the log of
# a failure is build/matrix/<name>.log). Exits non-zero when any combination fails.
#
#   scripts/check-build-matrix.sh                  # every combination below
#   scripts/check-build-matrix.sh smallest         # only the named ones
#   scripts/check-build-matrix.sh --list           # names and options
#
# Environment: JOBS (parallel compile jobs, default 2), MATRIX_BUILD_TYPE (default Debug:
# -O0 compiles fastest; the release preset covers the optimised build), MATRIX_DIR (default
# build/matrix). Builds run under `nice -n 10`. A combination's folder is reused, so a second
# run only rebuilds what changed.
set -uo pipefail
cd "$(dirname "$0")/.."

jobs=${JOBS:-2}
build_type=${MATRIX_BUILD_TYPE:-Debug}
matrix_dir=${MATRIX_DIR:-build/matrix}

# The switches every combination sets, so that none depends on a default or on what the
# machine has (AUTO): a combination names what it changes from "everything on".
base=(-DTIDAL_BUILD_TESTS=ON -DTIDAL_BUILD_TOOLS=ON -DTIDAL_BUILD_BENCH=ON
      -DTIDAL_BUILD_STORE=ON -DTIDAL_BUILD_COLLECTIVES=ON -DTIDAL_BUILD_FUZZ=OFF
      -DTIDAL_SANITIZE=OFF -DTIDAL_TSAN=OFF -DTIDAL_COVERAGE=OFF
      -DTIDAL_UCX=OFF -DTIDAL_VERBS=OFF -DTIDAL_CUDA=OFF)
off_programs=(-DTIDAL_BUILD_TESTS=OFF -DTIDAL_BUILD_TOOLS=OFF -DTIDAL_BUILD_BENCH=OFF)

names=()
declare -A options
combo() {  # name, cmake arguments...
  local name=$1
  shift
  names+=("$name")
  options[$name]="$*"
}
# The libraries engine + sim + backends and nothing else: no Boost, no GTest needed.
combo smallest        "${off_programs[@]}" -DTIDAL_BUILD_STORE=OFF -DTIDAL_BUILD_COLLECTIVES=OFF
# Every layer's library, no programs.
combo libraries       "${off_programs[@]}"
# Tests without tools or benchmarks: no Boost; campaign programs are tools.
combo tests-no-tools  -DTIDAL_BUILD_TOOLS=OFF -DTIDAL_BUILD_BENCH=OFF
# Tools without tests: no GTest; no fuzz smoke targets.
combo tools-no-tests  -DTIDAL_BUILD_TESTS=OFF -DTIDAL_BUILD_BENCH=OFF
# Benchmarks only.
combo bench-only      -DTIDAL_BUILD_TESTS=OFF -DTIDAL_BUILD_TOOLS=OFF
# Everything but the benchmarks (the debug/coverage/tsan presets' set).
combo bench-off       -DTIDAL_BUILD_BENCH=OFF
# No store: its tests, programs and fuzz targets go with it; collectives stay.
combo store-off       -DTIDAL_BUILD_STORE=OFF
# No collectives: likewise.
combo collectives-off -DTIDAL_BUILD_COLLECTIVES=OFF
# Neither store nor collectives, with tests and programs on.
combo layers-off      -DTIDAL_BUILD_STORE=OFF -DTIDAL_BUILD_COLLECTIVES=OFF
# Every backend probe AUTO (on this machine: whatever is installed).
combo backends-auto   -DTIDAL_UCX=AUTO -DTIDAL_VERBS=AUTO -DTIDAL_CUDA=AUTO \
                      -DTIDAL_BUILD_TESTS=OFF -DTIDAL_BUILD_BENCH=OFF
# The libFuzzer build (needs clang), without tests: the fuzz targets and what they link.
combo fuzz-no-tests   "${off_programs[@]}" -DTIDAL_BUILD_FUZZ=ON -DTIDAL_SANITIZE=ON \
                      -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++

usage() {
  echo "usage: scripts/check-build-matrix.sh [--list] [NAME...]" >&2
  echo "names: ${names[*]}" >&2
}

selected=()
for arg in "$@"; do
  case $arg in
    --list)
      for n in "${names[@]}"; do printf '%-16s %s\n' "$n" "${options[$n]}"; done
      exit 0 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "check-build-matrix: unknown option '$arg'" >&2; usage; exit 2 ;;
    *)
      if [[ -z ${options[$arg]+set} ]]; then
        echo "check-build-matrix: no combination named '$arg'" >&2
        usage
        exit 2
      fi
      selected+=("$arg") ;;
  esac
done
if [[ ${#selected[@]} -eq 0 ]]; then selected=("${names[@]}"); fi
if ! [[ $jobs =~ ^[1-9][0-9]*$ ]]; then
  echo "check-build-matrix: JOBS must be a positive integer, got '$jobs'" >&2
  exit 2
fi

generator=()
if command -v ninja >/dev/null; then generator=(-G Ninja); fi

mkdir -p "$matrix_dir"
failed=0
results=()
for name in "${selected[@]}"; do
  dir=$matrix_dir/$name
  log=$matrix_dir/$name.log
  # shellcheck disable=SC2206  # the options are words without spaces
  extra=(${options[$name]})
  start=$(date +%s)
  stage=configure
  if nice -n 10 cmake -S . -B "$dir" "${generator[@]}" -DCMAKE_BUILD_TYPE="$build_type" \
       "${base[@]}" "${extra[@]}" >"$log" 2>&1; then
    stage=build
    if nice -n 10 cmake --build "$dir" -j "$jobs" >>"$log" 2>&1; then
      stage=""
    fi
  fi
  secs=$(( $(date +%s) - start ))
  if [[ -z $stage ]]; then
    line=$(printf 'PASS  %-16s %4ds' "$name" "$secs")
  else
    line=$(printf 'FAIL  %-16s %4ds  %s failed, see %s' "$name" "$secs" "$stage" "$log")
    failed=1
  fi
  echo "$line"
  results+=("$line")
done

echo
echo "=== build matrix: ${#selected[@]} combinations ==="
printf '%s\n' "${results[@]}"
exit "$failed"
