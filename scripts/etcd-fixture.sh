#!/usr/bin/env bash
# etcd-fixture.sh COMMAND [ARG...]: runs COMMAND against a private, throw-away etcd.
#
# Starts etcd on free loopback ports (client and peer URLs on 127.0.0.1) with its own
# temporary data directory, waits until it answers /health, runs COMMAND with
# TIDAL_ETCD=127.0.0.1:PORT in its environment, then stops etcd and removes the directory,
# also when COMMAND fails, on INT/TERM/HUP, and (through a watchdog) when this script is
# killed outright. Exits with COMMAND's status; 77 (ctest's SKIP_RETURN_CODE for the
# etcd tests) when there is no etcd binary, after saying so; 1 when etcd does not start.
# ETCD_BIN overrides the etcd binary.
set -uo pipefail

if [ $# -eq 0 ]; then
  echo "usage: $0 COMMAND [ARG...]" >&2
  exit 2
fi

etcd_bin=${ETCD_BIN:-$(command -v etcd || true)}
if [ -z "$etcd_bin" ] || [ ! -x "$etcd_bin" ]; then
  echo "etcd-fixture: SKIP: no etcd binary on PATH (Debian: apt-get install etcd-server, or" \
       "scripts/install-deps.sh); not running $1"
  exit 77
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/tidal-etcd.XXXXXX")
etcd_pid=""
cmd_pid=""
watchdog_pid=""

stop_etcd() {
  if [ -n "$etcd_pid" ] && kill -0 "$etcd_pid" 2>/dev/null; then
    kill -TERM "$etcd_pid" 2>/dev/null
    for _ in $(seq 50); do
      kill -0 "$etcd_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$etcd_pid" 2>/dev/null
    wait "$etcd_pid" 2>/dev/null
  fi
  etcd_pid=""
}

cleanup() {
  if [ -n "$cmd_pid" ] && kill -0 "$cmd_pid" 2>/dev/null; then
    kill -TERM "$cmd_pid" 2>/dev/null
    wait "$cmd_pid" 2>/dev/null
  fi
  stop_etcd
  if [ -n "$watchdog_pid" ]; then
    kill "$watchdog_pid" 2>/dev/null
    wait "$watchdog_pid" 2>/dev/null
  fi
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# GET /health on 127.0.0.1:$1 with bash's /dev/tcp: true once etcd reports healthy.
healthy() {
  local reply
  reply=$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1 || exit 1
    printf 'GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
    cat <&3" 2>/dev/null) || return 1
  [[ $reply == *'"health":"true"'* ]]
}

port_in_use() {
  timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

client_port=""
for attempt in $(seq 8); do
  c=$((20000 + RANDOM % 30000))
  p=$((c + 1))
  if port_in_use "$c" || port_in_use "$p"; then continue; fi
  rm -rf "$dir/data"
  "$etcd_bin" --name tidal-fixture --data-dir "$dir/data" \
    --listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
    --listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
    --initial-cluster "tidal-fixture=http://127.0.0.1:$p" --initial-cluster-state new \
    --initial-cluster-token "tidal-fixture-$$" >"$dir/etcd.log" 2>&1 &
  etcd_pid=$!
  if [ -z "$watchdog_pid" ]; then
    # Stops etcd and the command if this script dies without running its traps (SIGKILL).
    parent=$$
    ( trap - EXIT HUP INT TERM
      while kill -0 "$parent" 2>/dev/null; do sleep 1; done
      for f in cmd etcd; do
        child=$(cat "$dir/$f.pid" 2>/dev/null)
        [ -n "$child" ] && kill -KILL "$child" 2>/dev/null
      done
      rm -rf "$dir" ) &
    watchdog_pid=$!
  fi
  echo "$etcd_pid" >"$dir/etcd.pid"
  for _ in $(seq 150); do  # up to ~15 s
    if ! kill -0 "$etcd_pid" 2>/dev/null; then break; fi
    if healthy "$c"; then client_port=$c; break; fi
    sleep 0.1
  done
  [ -n "$client_port" ] && break
  if kill -0 "$etcd_pid" 2>/dev/null || ! grep -q "address already in use" "$dir/etcd.log"; then
    echo "etcd-fixture: etcd did not become healthy on 127.0.0.1:$c (attempt $attempt); its log:" >&2
    tail -n 20 "$dir/etcd.log" >&2
    exit 1
  fi
  wait "$etcd_pid" 2>/dev/null
  etcd_pid=""
done
if [ -z "$client_port" ]; then
  echo "etcd-fixture: found no free port pair for etcd" >&2
  exit 1
fi

echo "etcd-fixture: etcd $("$etcd_bin" --version | head -n 1 | awk '{print $3}') on 127.0.0.1:$client_port (data in $dir)"
TIDAL_ETCD=127.0.0.1:$client_port "$@" &
cmd_pid=$!
echo "$cmd_pid" >"$dir/cmd.pid"
wait "$cmd_pid"
rc=$?
cmd_pid=""
if [ $rc -ne 0 ]; then
  echo "etcd-fixture: '$1' exited $rc; the last lines of etcd's log:" >&2
  tail -n 20 "$dir/etcd.log" >&2
fi
exit $rc
