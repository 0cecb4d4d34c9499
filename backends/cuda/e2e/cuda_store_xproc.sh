#!/usr/bin/env bash
# cuda_store_xproc.sh CUDA_STORE_NODE
#
# The store with GPU buffers across processes, run under scripts/with-master.sh
# (TIDAL_MASTER set). Three cuda_store_node processes over CudaTransport:
#   holder  mounts a segment of cuda:1 memory (cuda:0 on a one-GPU machine);
#   put     puts from a cuda:0 buffer with PutFrom (zero-copy) and Put (copying);
#   get     reads each object into a cuda:1 buffer with GetInto and Get: byte for byte.
# Then the holder is killed with SIGKILL and a new getter reads again: every read must fail
# with an error naming its object and leave the buffer untouched (never torn data), and
# nothing may hang. Exits 77 (skipped) without a CUDA device.
set -uo pipefail
node=$1
: "${TIDAL_MASTER:?run me under scripts/with-master.sh}"

work=$(mktemp -d "${TMPDIR:-/tmp}/tidal-cuda-store.XXXXXX")
holder=""
cleanup() {
  if [ -n "$holder" ]; then kill -KILL "$holder" 2>/dev/null; wait "$holder" 2>/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT
show() { for f in "$@"; do sed "s/^/[$f] /" "$work/$f"; done; }

"$node" --master "$TIDAL_MASTER" --role holder --gpu 1 >"$work/holder" 2>&1 &
holder=$!
timeout 90 "$node" --master "$TIDAL_MASTER" --role put --gpu 0 >"$work/put" 2>&1
rc_put=$?
if [ $rc_put -eq 77 ]; then
  show put
  exit 77
fi
timeout 90 "$node" --master "$TIDAL_MASTER" --role get --gpu 1 >"$work/get" 2>&1
rc_get=$?
kill -KILL "$holder"
wait "$holder" 2>/dev/null
holder=""
echo "cuda_store_xproc: SIGKILL to the holder"
timeout 90 "$node" --master "$TIDAL_MASTER" --role get --gpu 1 --expect-lost >"$work/lost" 2>&1
rc_lost=$?
show holder put get lost
echo "cuda_store_xproc: put exit $rc_put, get exit $rc_get, get after the kill exit $rc_lost"
if [ $rc_put -ne 0 ] || [ $rc_get -ne 0 ] || [ $rc_lost -ne 0 ]; then
  echo "cuda_store_xproc: FAIL" >&2
  exit 1
fi
echo "cuda_store_xproc: PASS"
