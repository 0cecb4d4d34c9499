#!/usr/bin/env bash
# Hardware CI: builds tidal, lists the machine's devices, runs the contract suites of every
# real backend (ctest labels verbs, ucx, cuda) plus the verbs-mock suite, runs the
# benchmarks that exist, and writes JUnit XML and a JSON summary. A backend whose hardware
# is absent is reported skipped with the reason the registry prints; a label with no
# tests in this build is reported skipped too. Never a silent pass.
#
#   scripts/hardware-ci.sh [--out DIR] [--build DIR] [--no-build] [--jobs N]
#
# Exit status: 0 when nothing failed (skips are not failures), 1 when a test or a
# benchmark failed, 2 on a usage or build error. docs/hardware-ci.md explains the output.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/build/hardware-ci
build=$root/build/hardware-ci-build
do_build=1
jobs=2
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --no-build) do_build=0; shift ;;
    --jobs) jobs=$2; shift 2 ;;
    -h|--help) sed -n 2,12p "$0"; exit 0 ;;
    *) echo "hardware-ci: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
log() { echo "hardware-ci: $*"; }

# ---- build ----
if [ "$do_build" = 1 ]; then
  log "configuring $build"
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DTIDAL_VERBS=AUTO -DTIDAL_UCX=AUTO -DTIDAL_CUDA=AUTO >"$out/configure.log" 2>&1 ||
    { log "configure failed, see $out/configure.log"; exit 2; }
  log "building (-j$jobs)"
  cmake --build "$build" -j "$jobs" >"$out/build.log" 2>&1 ||
    { log "build failed, see $out/build.log"; exit 2; }
fi
[ -f "$build/CTestTestfile.cmake" ] || { log "no build in $build (drop --no-build)"; exit 2; }

# ---- devices ----
devices=$out/devices.txt
: >"$devices"
rdma_present=0
if command -v ibv_devinfo >/dev/null 2>&1; then
  echo "== ibv_devinfo" >>"$devices"
  ibv_devinfo >>"$devices" 2>&1 || true
  if ibv_devinfo -l 2>/dev/null | grep -qv -e '^0 HCAs' -e 'HCAs found' -e '^$'; then
    rdma_present=1
  fi
else
  echo "== ibv_devinfo: not installed (apt-get install ibverbs-utils)" >>"$devices"
fi
if [ "$rdma_present" = 0 ] && [ -d /sys/class/infiniband ] &&
   [ -n "$(ls -A /sys/class/infiniband 2>/dev/null)" ]; then
  rdma_present=1
fi
if command -v nvidia-smi >/dev/null 2>&1; then
  echo "== nvidia-smi -L" >>"$devices"
  nvidia-smi -L >>"$devices" 2>&1 || true
else
  echo "== nvidia-smi: not installed" >>"$devices"
fi
if command -v ucx_info >/dev/null 2>&1; then
  echo "== ucx_info -d" >>"$devices"
  ucx_info -d >>"$devices" 2>&1 || true
else
  echo "== ucx_info: not installed" >>"$devices"
fi
log "devices listed in $devices (RDMA device present: $rdma_present)"

# ---- test labels ----
# One JSON object per label: ran, passed, failed, skipped, and the reasons of the skips.
summary_labels=()
failed_any=0
run_label() {
  local label=$1
  local junit=$out/junit-$label.xml
  local logf=$out/ctest-$label.log
  local listed
  listed=$(cd "$build" && ctest -N -L "^${label}\$" 2>/dev/null | sed -n 's/^Total Tests: //p')
  listed=${listed:-0}
  if [ "$listed" = 0 ]; then
    local why="no tests labelled '$label' in this build"
    case "$label" in
      verbs) why="$why (TIDAL_VERBS found no libibverbs-dev/librdmacm-dev)" ;;
      ucx) why="$why (TIDAL_UCX found no libucx-dev)" ;;
      cuda) why="$why (TIDAL_CUDA found no CUDA toolkit)" ;;
    esac
    log "label $label: skipped: $why"
    summary_labels+=("$(printf '{"label":"%s","status":"skipped","tests":0,"passed":0,"failed":0,"skipped":0,"reasons":["%s"]}' "$label" "$why")")
    return
  fi
  (cd "$build" && ctest -L "^${label}\$" -j "$jobs" --output-on-failure --timeout 600 \
     --output-junit "$junit") >"$logf" 2>&1
  local rc=$?
  local passed failed skipped
  skipped=$(grep -cE 'Test +#[0-9]+: .*\*\*\*Skipped' "$logf" || true)
  failed=$(grep -cE 'Test +#[0-9]+: .*\*\*\*(Failed|Timeout|Exception)' "$logf" || true)
  passed=$(grep -cE 'Test +#[0-9]+: .* Passed +[0-9.]+ sec' "$logf" || true)
  # The distinct reasons the skipped tests printed: gtest's line after "Skipped" in each
  # skipped test's output, which the JUnit report keeps.
  local reasons
  reasons=$(python3 - "$junit" <<'PY'
import json, re, sys, xml.etree.ElementTree as ET
seen = []
try:
    for case in ET.parse(sys.argv[1]).getroot().iter("testcase"):
        if case.find("skipped") is None:
            continue
        out = case.findtext("system-out") or ""
        m = re.search(r": Skipped\n(.+)", out)
        why = m.group(1).strip() if m else "skipped (no reason printed)"
        if why not in seen:
            seen.append(why)
except (OSError, ET.ParseError):
    pass
print(json.dumps(seen[:20]))
PY
)
  local status=passed
  [ "$skipped" -gt 0 ] && [ "$passed" = 0 ] && [ "$failed" = 0 ] && status=skipped
  if [ "$rc" != 0 ] || [ "$failed" -gt 0 ]; then status=failed; failed_any=1; fi
  log "label $label: $status ($listed tests: $passed passed, $failed failed, $skipped skipped)"
  if [ "$skipped" -gt 0 ]; then
    echo "$reasons" | python3 -c 'import json,sys; [print("hardware-ci:   skipped because:", r) for r in json.load(sys.stdin)]'
  fi
  summary_labels+=("$(printf '{"label":"%s","status":"%s","tests":%s,"passed":%s,"failed":%s,"skipped":%s,"junit":"%s","log":"%s","reasons":%s}' \
    "$label" "$status" "$listed" "$passed" "$failed" "$skipped" "$junit" "$logf" "$reasons")")
}
for label in verbs-mock verbs ucx cuda; do run_label "$label"; done

# ---- benchmarks ----
summary_bench=()
bench_run() {  # name, command...  (exit 77: the hardware is absent -> skipped)
  local name=$1; shift
  local logf=$out/bench-$name.log
  local rc=0
  "$@" >"$logf" 2>&1 || rc=$?
  if [ "$rc" = 0 ]; then
    log "bench $name: ran, see $logf"
    summary_bench+=("$(printf '{"bench":"%s","status":"ran","log":"%s"}' "$name" "$logf")")
  elif [ "$rc" = 77 ]; then
    bench_skip "$name" "$(head -1 "$logf" | sed 's/"/'"'"'/g')"
  else
    log "bench $name: failed, see $logf"
    summary_bench+=("$(printf '{"bench":"%s","status":"failed","log":"%s"}' "$name" "$logf")")
    failed_any=1
  fi
}
bench_skip() {
  log "bench $1: skipped: $2"
  summary_bench+=("$(printf '{"bench":"%s","status":"skipped","reason":"%s"}' "$1" "$2")")
}
bench=$(find "$build/tools" -type f -name tidal-bench -perm -u+x 2>/dev/null | head -1)
if [ -n "$bench" ]; then
  for transport in verbs ucx; do
    bench_run "tidal-bench-$transport" "$bench" transfer --transport "$transport" --json
  done
else
  bench_skip tidal-bench "tools/tidal-bench is not built in this tree"
fi
if [ "$rdma_present" = 1 ]; then
  for perf in ib_write_bw ib_read_bw; do
    if command -v "$perf" >/dev/null 2>&1; then
      # Loopback on the first device: a server in the background, the client against it.
      bench_run "$perf" bash -c "$perf -a -F >/dev/null 2>&1 & s=\$!; sleep 1; $perf -a -F localhost; r=\$?; wait \$s; exit \$r"
    else
      bench_skip "$perf" "perftest is not installed (apt-get install perftest)"
    fi
  done
else
  bench_skip ib_write_bw "no RDMA device"
  bench_skip ib_read_bw "no RDMA device"
fi

# ---- summary ----
join() { local IFS=,; echo "$*"; }
cat >"$out/summary.json" <<JSON
{"host":"$(hostname)","commit":"$(git -C "$root" rev-parse --short HEAD 2>/dev/null)","rdma_device":$([ "$rdma_present" = 1 ] && echo true || echo false),
 "labels":[$(join "${summary_labels[@]}")],
 "benchmarks":[$(join "${summary_bench[@]}")]}
JSON
python3 -m json.tool "$out/summary.json" >/dev/null 2>&1 || { log "summary.json is not valid JSON"; exit 2; }
log "summary: $out/summary.json; JUnit: $out/junit-*.xml"
exit "$failed_any"
