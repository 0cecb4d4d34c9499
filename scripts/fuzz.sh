#!/usr/bin/env bash
# Fuzzing campaign: builds the `fuzz` preset (clang, libFuzzer, ASan + UBSan), runs every
# fuzz target (or those whose name contains one of the comma-separated FILTER words) for
# SECONDS each, one after the other, merges the inputs that add coverage into the
# checked-in corpus (fuzz/corpus/), and prints per target: executions, exec/s, coverage (libFuzzer's cov: and ft:) and
# crashes. Crash, leak, timeout and OOM inputs are kept in build/fuzz/artifacts/<target>/.
# Exits non-zero if any target crashed.
#
#   scripts/fuzz.sh [SECONDS=60] [FILTER]   e.g. scripts/fuzz.sh 600; scripts/fuzz.sh 30 segment,trace
#
# Environment: TIDAL_FUZZ_NO_MERGE=1 leaves fuzz/corpus/ alone; TIDAL_FUZZ_ARGS adds
# libFuzzer flags (e.g. "-seed=7"); TIDAL_FUZZ_NO_BUILD=1 skips deps, configure and build.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
filter=${2:-}
build=build/fuzz
if [ -z "${TIDAL_FUZZ_NO_BUILD:-}" ]; then
  scripts/install-deps.sh
  cmake --preset fuzz >/dev/null
  cmake --build "$build" -j2 --target tidal_fuzz_all
fi

targets=()
for src in fuzz/*_fuzz.cc; do
  t=$(basename "$src" .cc)
  [ -x "$build/fuzz/$t" ] || continue           # a layer that is not built has no target
  if [ -z "$filter" ]; then
    targets+=("$t")
  else
    for f in ${filter//,/ }; do
      if [[ "$t" == *"$f"* ]]; then targets+=("$t"); break; fi
    done
  fi
done
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz.sh: no built fuzz target matches '${filter}'" >&2
  exit 2
fi

mkdir -p "$build/logs" "$build/campaign" "$build/artifacts"
summary="$build/summary.txt"
printf '%-22s %12s %9s %7s %8s %7s %8s\n' target executions exec/s cov ft corpus+ crashes \
  | tee "$summary"
failed=0
for t in "${targets[@]}"; do
  bin="$build/fuzz/$t"
  log="$build/logs/$t.log"
  scratch="$build/campaign/$t"         # new inputs land here first, never in fuzz/corpus
  artifacts="$build/artifacts/$t"
  mkdir -p "$scratch" "$artifacts" "fuzz/corpus/$t"
  dict=()
  [ -f "fuzz/dict/$t.dict" ] && dict=("-dict=fuzz/dict/$t.dict")
  before=$(find "$artifacts" -type f | wc -l)
  echo "fuzz.sh: $t for ${seconds}s (log: $log)" >&2
  # One process, one core: -jobs/-fork stay off so campaigns do not crowd a shared box.
  set +e
  # shellcheck disable=SC2086
  "$bin" "$scratch" "fuzz/corpus/$t" "${dict[@]}" -max_total_time="$seconds" \
    -max_len=4096 -timeout=25 -rss_limit_mb=2560 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" ${TIDAL_FUZZ_ARGS:-} >"$log" 2>&1
  rc=$?
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  crashes=$(( $(find "$artifacts" -type f | wc -l) - before ))
  if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then crashes=1; fi  # died without an artifact
  added=0
  if [ -z "${TIDAL_FUZZ_NO_MERGE:-}" ]; then
    n0=$(find "fuzz/corpus/$t" -type f | wc -l)
    # Edges only (-use_counters=0): the checked-in corpus keeps one input per new edge, not
    # per hit-count bucket, so it stays small; the full corpus stays in build/fuzz/campaign.
    "$bin" -merge=1 -use_counters=0 -max_len=4096 -timeout=25 "fuzz/corpus/$t" "$scratch" \
      >"$build/logs/$t.merge.log" 2>&1 || echo "fuzz.sh: merge of $t failed" >&2
    added=$(( $(find "fuzz/corpus/$t" -type f | wc -l) - n0 ))
  fi
  printf '%-22s %12s %9s %7s %8s %7s %8s\n' "$t" "${runs:-?}" "${rate:-?}" "${cov:-?}" \
    "${ft:-?}" "$added" "$crashes" | tee -a "$summary"
  if [ "$crashes" -gt 0 ]; then
    failed=1
    echo "fuzz.sh: $t crashed; inputs in $artifacts/, log $log:" >&2
    grep -m3 -E 'ERROR|fuzz property failed|SUMMARY' "$log" >&2 || true
  fi
done
echo "fuzz.sh: summary in $summary" >&2
exit "$failed"
