#!/usr/bin/env bash
# bad_master.sh TIDAL_MASTER_BIN TIDAL_NODE_BIN
#
# A node pointed at a port where nothing listens, at a server of another protocol, or at a
# master that was killed must fail with a clear error naming the address, within its
# timeout (2 s here; `timeout 30` only bounds a hang), and exit 2.
set -uo pipefail
master_bin=$1
node_bin=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/tidal-bad-master.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
failed=0
expect_clear_error() {  # case, address
  local name=$1 address=$2 out rc
  out=$(TIDAL_RANK=0 TIDAL_WORLD_SIZE=1 timeout 30 "$node_bin" --master "$address" --timeout-ms 2000 2>&1)
  rc=$?
  if [ "$rc" != 2 ]; then
    echo "bad_master: $name: exit $rc, expected 2: $out"; failed=1; return
  fi
  if ! grep -q '"fatal":.*'"$address" <<<"$out"; then
    echo "bad_master: $name: the error does not name $address: $out"; failed=1; return
  fi
  echo "bad_master: $name: $(grep -m1 '"fatal"' <<<"$out")"
}

# 1. Nothing listens.
expect_clear_error "nothing listening" "127.0.0.1:$(free_port)"

# 2. A server of another protocol: it answers every connection with a line of text.
port=$(free_port)
python3 - "$port" <<'PY' &
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
while True:
    c, _ = s.accept()
    try:
        c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    except OSError:
        pass
PY
pids+=($!)
for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
expect_clear_error "another protocol" "127.0.0.1:$port"

# 3. A master that was killed (SIGKILL) before the node came.
"$master_bin" --listen 127.0.0.1:0 >"$work/master.out" 2>&1 &
mpid=$!
pids+=($mpid)
address=""
for _ in $(seq 1 100); do
  address=$(sed -n 's/^tidal-master listening on //p' "$work/master.out" | head -1)
  [ -n "$address" ] && break
  sleep 0.1
done
if [ -z "$address" ]; then
  echo "bad_master: tidal-master did not start"; exit 1
fi
kill -KILL "$mpid"; wait "$mpid" 2>/dev/null
expect_clear_error "dead master" "$address"

[ "$failed" = 0 ] && echo "bad_master: PASS" || echo "bad_master: FAIL"
exit "$failed"
