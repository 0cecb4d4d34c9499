#!/usr/bin/env bash
# bench_store_smoke.sh TIDAL_BENCH: `tidal-bench store` end to end, small, without Redis,
# in both client shapes: every row completes with every byte checked (counted; the bench exits 1
# on any tidal error or missing client), and the JSON names the shape, the API of each
# row, UCX_TLS, the UCX data path and the load average. Run with UCX_TLS=tcp (the nodes'
# default one-sided mode then takes the active-message path), and over shared memory in
# the default one-sided mode (each put and get then a direct put or get, counted) and on
# the active-message path with the clients' event loops driving their UCX workers
# (hand-backs counted).
set -euo pipefail
bench=$1
work=$(mktemp -d "${TMPDIR:-/tmp}/bench_store_smoke.XXXXXX")
trap 'rm -rf "$work"' EXIT
for shape in sessions processes; do
  "$bench" store --sizes 4K,1M --clients 1,3 --small-ops 30 --large-bytes 3145728 \
      --no-redis --shape "$shape" --json >"$work/out.txt" 2>"$work/err.txt" ||
    { cat "$work/err.txt" >&2; exit 1; }
  # UCX logged no error in any process (over shared memory the transport no longer asks
  # for peer failure handling, which UCX refused with an ERROR line).
  if grep "UCX  ERROR" "$work/err.txt" >&2; then
    echo "bench_store_smoke: UCX logged an error ($shape)" >&2
    exit 1
  fi
  python3 - "$shape" "$work/out.txt" <<'PY'
import json, sys
shape = sys.argv[1]
text = open(sys.argv[2]).read()
doc = json.loads(text[text.index('\n{') + 1:])
assert doc["shape"] == shape, doc["shape"]
import os
assert doc["ucx_tls"] == os.environ["UCX_TLS"], doc["ucx_tls"]
# The nodes' one-sided mode and UCX-allocated segment: on unless the environment says 0.
one_sided = os.environ.get("TIDAL_UCX_ONE_SIDED") != "0"
ucx_memory = os.environ.get("TIDAL_UCX_TRANSPORT_MEMORY") != "0"
assert doc["one_sided"] == one_sided and doc["transport_memory"] == ucx_memory, doc
# Puts and gets go straight into the holder's segment where UCX maps it here: shared memory.
shared_memory = any(t in ("sm", "posix", "sysv") for t in os.environ["UCX_TLS"].split(","))
mapped = one_sided and ucx_memory and shared_memory
# Whether the clients' event loops drive their UCX workers (docs/ucx.md): as the
# environment says where it says so (ctest sets it for every instance of this test).
loop_env = os.environ.get("TIDAL_UCX_LOOP_DRIVES")
if loop_env in ("0", "1"):
    assert doc["client_loop_drives"] == (loop_env == "1"), doc["client_loop_drives"]
assert doc["put_reservations"] == 16, doc["put_reservations"]
assert len(doc["load_avg_start"]) == 3 and len(doc["load_avg_end"]) == 3
rows = [(r["size"], r["clients"]) for r in doc["store"]]
assert rows == [(4096, 1), (4096, 3), (1048576, 1), (1048576, 3)], rows
for r in doc["store"]:
    t = r["tidal"]
    assert t["ok"] and t["errors"] == 0, r
    assert r["api"] == ("copy" if r["size"] < 1048576 else "zero-copy"), r
    assert r["objects_per_client"] == (30 if r["size"] < 1048576 else 3), r
    assert len(r["load_avg_before"]) == 3
    # The second read of every object came from the cached replica list.
    assert t["cached_gets"] == r["clients"] * r["objects_per_client"], r
    # Puts of at most 64 KiB go through put reservations (16 at a time): one commit each.
    # One session: one reservation for the new shape, then 16, then 16 more (30 puts).
    small = r["size"] <= 65536
    assert t["reserved_puts"] == (r["clients"] * r["objects_per_client"] if small else 0), r
    if small and r["clients"] == 1:
        assert t["reservation_requests"] == 3, r
    # Every put is one WRITE and every get one READ (one replica, one slice); in the
    # one-sided mode with the holder's segment in UCX memory over shared memory each is a
    # put or get into the mapped segment, else none is.
    n = r["clients"] * r["objects_per_client"] if mapped else 0
    # What the calls waited for: one transfer batch per call in every phase; a small put
    # one commit (and its share of the reservation requests), a large one PutStart and
    # PutEnd; a first get one GetReplicaList; a cached get no RPC.
    calls = r["clients"] * r["objects_per_client"]
    w = t["waited"]
    for ph in ("put", "get", "reget"):
        assert w[ph]["transfers"] == calls and w[ph]["transfer_us"] > 0, (ph, w)
    assert w["put"]["rpcs"] == (t["reserved_puts"] + t["reservation_requests"] if small else 2 * calls), w
    assert w["get"]["rpcs"] == calls and w["get"]["rpc_us"] > 0, w
    assert w["reget"]["rpcs"] == 0 and w["reget"]["rpc_us"] == 0, w
    # Every get's bytes were compared, first and second reads; several sessions' values
    # of 1 MiB on threads beside their loop (then not in the phase time), others inline.
    assert t["checked_gets"] == 2 * calls, (t["checked_gets"], calls)
    threaded = shape == "sessions" and r["clients"] > 1 and not small
    assert t["checks_on_threads"] == threaded, r
    assert t["check_excluded"] == (r["clients"] == 1 or threaded), r
    ucx = t["client_progress_waits"]
    assert ucx["put"]["puts"] == n and ucx["put"]["gets"] == 0, (n, ucx)
    assert ucx["get"]["gets"] == n and ucx["reget"]["gets"] == n, (n, ucx)
    # With the mode off nothing is ever handed back. With it on, a send that found the
    # worker free hands it to the loop, which hands it back when its phase ends: in a row's
    # three active-message phases some did (one phase alone may not: a send that finds the
    # progress thread holding the worker leaves the task to it, and a phase has as few as
    # 3 calls). A direct put or get leaves nothing to wait for.
    phases = ("put", "get", "reget")
    if not doc["client_loop_drives"]:
        for ph in phases:
            assert ucx[ph]["loop_handbacks"] == 0 and ucx[ph]["standby_waits"] == 0, (ph, ucx)
    elif not mapped:
        assert sum(ucx[ph]["loop_handbacks"] for ph in phases) >= 1, ucx
# The lines after the table: one per row, naming its size and client count.
lines = [l for l in text.splitlines() if " | put: " in l]
assert [tuple(map(int, l.split("|")[0].split())) for l in lines] == rows, lines
print("bench_store_smoke: %s: %d rows ok" % (shape, len(rows)))
PY
done
# By default the clients make as many small-value requests as redis-benchmark is given
# (at least 20000 in all, at least 2000 per client).
"$bench" store --sizes 4K --clients 1,3 --no-redis --json >"$work/default.txt"
python3 - "$work/default.txt" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
doc = json.loads(text[text.index('\n{') + 1:])
per = [(r["clients"], r["objects_per_client"], r["tidal"]["ok"]) for r in doc["store"]]
assert per == [(1, 20000, True), (3, 6667, True)], per
print("bench_store_smoke: default request counts ok")
PY
# Bad input names what was wrong.
if "$bench" store --shape threads --no-redis 2>"$work/err.txt"; then
  echo "bench_store_smoke: --shape threads was accepted" >&2
  exit 1
fi
grep -q "shape must be sessions or processes, not 'threads'" "$work/err.txt"
echo "bench_store_smoke: PASS"
