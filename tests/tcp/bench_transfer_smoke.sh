#!/usr/bin/env bash
# bench_transfer_smoke.sh TIDAL_BENCH: `tidal-bench transfer` end to end, small, beside
# ucx_perftest over shared memory in the one-sided mode: every request completes, the
# 4 KiB latency row holds one entry per round (tidal's loop and ucp_put_lat alternated),
# and its ratio is the median of the rounds' ratios, in the JSON and in the printed row,
# each round with the time of a plain memcpy on the loop's thread before it and its ratio
# to the one-way figure too; every WRITE of the latency loop is a copy through the target's
# mapped memory (TryCopyNow), and none with --no-copy-now; each bandwidth row holds three
# rounds, each with ucp_put_bw's and ucp_get_bw's (UCX 1.13: ucp_get) figures, its ratios the
# medians of the rounds' ratios; --lat-rounds 0 and --bw-rounds 0 are refused with a message
# naming them.
set -euo pipefail
bench=$1
command -v ucx_perftest >/dev/null || { echo "bench_transfer_smoke: ucx_perftest is not installed (scripts/install-deps.sh installs ucx-utils)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/bench_transfer_smoke.XXXXXX")
trap 'rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bench" transfer --sizes 4K,64K --bytes 1048576 --lat-iters 300 --lat-rounds 3 --one-sided \
    --transport-memory --same-buffer --port "$port" --json >"$work/out.txt"
python3 - "$work/out.txt" <<'PY'
import json, statistics, sys
text = open(sys.argv[1]).read()
doc = json.loads(text[text.index('\n{') + 1:])
assert doc["failed_requests"] == 0, doc["failed_requests"]
assert doc["one_sided"] and doc["transport_memory"] and doc["copy_now"], doc
rows = {r["size"]: r for r in doc["rows"]}
assert sorted(rows) == [4096, 65536], sorted(rows)
lat = rows[4096]
rounds = lat["lat_rounds"]
assert len(rounds) == 3, rounds
for r in rounds:
    assert r["tidal_write_lat_us"] > 0 and r["perftest_put_lat_oneway_us"] > 0, r
    assert r["memcpy_ns"] > 0, r
    assert abs(r["ratio"] - r["tidal_write_lat_us"] / (2 * r["perftest_put_lat_oneway_us"])) < 1e-9, r
    assert abs(r["ratio_oneway"] - 2 * r["ratio"]) < 1e-9, r
want = statistics.median(r["ratio"] for r in rounds)
assert abs(lat["lat_ratio_median"] - want) < 1e-9, (lat["lat_ratio_median"], want)
assert abs(lat["tidal_write_lat_us"] - statistics.median(r["tidal_write_lat_us"] for r in rounds)) < 1e-9
assert abs(lat["perftest_put_lat_oneway_us"] - statistics.median(r["perftest_put_lat_oneway_us"] for r in rounds)) < 1e-9
# 100 warm-up WRITEs and 300 timed ones per round.
assert lat["lat_writes"] == 3 * 400, lat["lat_writes"]
# The key was granted in the bandwidth phase: every one of them was a copy, none a Submit.
assert lat["lat_writes_copied"] == 3 * 400 and lat["lat_writes_direct"] == 0, lat
assert abs(lat["lat_ratio_oneway_median"] - statistics.median(r["ratio_oneway"] for r in rounds)) < 1e-9
assert "lat_rounds" not in rows[65536] and rows[65536]["tidal_write_mibps"] > 0, rows[65536]
assert doc["perftest_get_test"] in ("ucp_get", "ucp_get_bw"), doc["perftest_get_test"]
for size, row in rows.items():
    bw = row["bw_rounds"]
    assert len(bw) == 3, (size, bw)
    for b in bw:
        assert b["tidal_write_mibps"] > 0 and b["tidal_read_mibps"] > 0, (size, b)
        assert b["perftest_put_bw_mibps"] > 0 and b["perftest_get_bw_mibps"] > 0, (size, b)
    for side, peer in (("write", "put"), ("read", "get")):
        want_r = statistics.median(b["tidal_%s_mibps" % side] / b["perftest_%s_bw_mibps" % peer] for b in bw)
        assert abs(row["%s_ratio_median" % side] - want_r) < 1e-9, (size, side, row)
        want_m = statistics.median(b["tidal_%s_mibps" % side] for b in bw)
        assert abs(row["tidal_%s_mibps" % side] - want_m) < 1e-9, (size, side, row)
    printed = [l for l in text.splitlines() if l.strip().startswith(("4 KiB |", "64 KiB |")[size == 65536])]
    cols = printed[0].split("|")
    assert cols[1].split()[-1] == "%.2f" % row["write_ratio_median"], (printed, row)
    assert cols[2].split()[-1] == "%.2f" % row["read_ratio_median"], (printed, row)
# Three "/" in the legend ("write/put_bw read/get_bw, MiB/s"), then two per round.
bwl = [l for l in text.splitlines() if l.startswith("bandwidth rounds at ")]
assert len(bwl) == 2 and all(l.count("/") == 3 + 2 * 3 for l in bwl), bwl
row = [l for l in text.splitlines() if l.strip().startswith("4 KiB |")]
assert len(row) == 1, row
assert row[0].split()[-1] == "%.2f" % want, (row[0], want)
line = [l for l in text.splitlines() if l.startswith("latency rounds at 4 KiB")]
# One "/" in the legend ("tidal WRITE / 2 x ucp_put_lat"), then one per round.
assert len(line) == 1 and line[0].count("/") == 1 + 3, line
cpu = [l for l in text.splitlines() if l.startswith("memcpy of 4 KiB on the loop's thread")]
assert len(cpu) == 1 and len(cpu[0].split(":")[-1].split()) == 3, cpu
loop = [l for l in text.splitlines() if l.startswith("latency loop at 4 KiB")]
assert len(loop) == 1 and "1200 WRITEs, 1200 copied" in loop[0], loop
print("bench_transfer_smoke: 3 latency rounds, median ratio %.2f" % want)
PY
"$bench" transfer --sizes 4K --bytes 65536 --lat-iters 300 --lat-rounds 1 --no-perftest \
    --one-sided --transport-memory --same-buffer --no-copy-now --json >"$work/off.txt"
python3 - "$work/off.txt" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
doc = json.loads(text[text.index('\n{') + 1:])
assert doc["failed_requests"] == 0 and not doc["copy_now"], doc
lat = doc["rows"][0]
assert lat["lat_writes"] == 400 and lat["lat_writes_copied"] == 0, lat
PY
if "$bench" transfer --lat-rounds 0 2>"$work/err.txt"; then
  echo "bench_transfer_smoke: --lat-rounds 0 was accepted" >&2
  exit 1
fi
grep -q -- "--lat-rounds must be at least 1" "$work/err.txt"
if "$bench" transfer --bw-rounds 0 2>"$work/err.txt"; then
  echo "bench_transfer_smoke: --bw-rounds 0 was accepted" >&2
  exit 1
fi
grep -q -- "--bw-rounds must be at least 1" "$work/err.txt"
echo "bench_transfer_smoke: PASS"
