#!/usr/bin/env bash
# with-master.sh MASTER_BINARY COMMAND [ARGS...]
#
# Starts tidal-master (MASTER_BINARY) on a free loopback port, waits until it prints its
# ready line and answers a status request, runs COMMAND with TIDAL_MASTER=127.0.0.1:PORT,
# then stops the master with SIGTERM and checks that it exited 0. Exits with COMMAND's
# status, or 1 if the master did not start, did not answer or did not stop cleanly.
# Extra master options may be given in TIDAL_MASTER_ARGS (e.g. "--metadata mem://").
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 MASTER_BINARY COMMAND [ARGS...]" >&2
  exit 2
fi
master_bin=$1
shift

workdir=$(mktemp -d "${TMPDIR:-/tmp}/tidal-master.XXXXXX")
master_pid=""
cleanup() {
  if [ -n "$master_pid" ] && kill -0 "$master_pid" 2>/dev/null; then
    kill -KILL "$master_pid" 2>/dev/null || true
    wait "$master_pid" 2>/dev/null || true
  fi
  rm -rf "$workdir"
}
trap cleanup EXIT

# shellcheck disable=SC2086  # TIDAL_MASTER_ARGS is a list of options
"$master_bin" --listen 127.0.0.1:0 ${TIDAL_MASTER_ARGS:-} >"$workdir/out" 2>"$workdir/err" &
master_pid=$!

address=""
for _ in $(seq 1 200); do  # up to about 20 s for the ready line
  if ! kill -0 "$master_pid" 2>/dev/null; then
    echo "with-master: tidal-master exited before it was ready:" >&2
    cat "$workdir/err" >&2
    exit 1
  fi
  line=$(grep -m1 '^tidal-master listening on ' "$workdir/out" || true)
  if [ -n "$line" ]; then
    address=${line#tidal-master listening on }
    break
  fi
  sleep 0.1
done
if [ -z "$address" ]; then
  echo "with-master: no ready line from tidal-master" >&2
  exit 1
fi
if ! "$master_bin" --status "$address" --json >"$workdir/status" 2>&1; then
  echo "with-master: tidal-master at $address does not answer:" >&2
  cat "$workdir/status" >&2
  exit 1
fi
echo "with-master: tidal-master ready at $address (pid $master_pid)" >&2

set +e
TIDAL_MASTER=$address "$@"
rc=$?
set -e

kill -TERM "$master_pid"
master_rc=0
wait "$master_pid" || master_rc=$?
master_pid=""
if [ "$master_rc" -ne 0 ]; then
  echo "with-master: tidal-master exited $master_rc after SIGTERM:" >&2
  cat "$workdir/err" >&2
  [ "$rc" -eq 0 ] && rc=1
fi
exit "$rc"
