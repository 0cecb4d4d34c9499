#!/usr/bin/env bash
# kill_rank.sh TIDAL_RUN TIDAL_NODE [NPROC] [VICTIM]
#
# The multi-process end-to-end test, run under scripts/with-master.sh (TIDAL_MASTER set):
# NPROC (3) tidal-node processes doing puts, gets and allreduces over UCX; once VICTIM (the
# last rank) has finished round 4, it is killed with SIGKILL. The survivors must behave as
# the simulator predicts: every allreduce after the kill finishes with RANK_FAILED naming
# exactly the victim, the same on every survivor, with exact values; every put any rank
# acknowledged (the victim's included) reads back byte for byte; nothing hangs; both exit 0.
set -euo pipefail
run_bin=$1
node_bin=$2
nproc=${3:-3}
victim=${4:-$((nproc - 1))}
: "${TIDAL_MASTER:?run me under scripts/with-master.sh}"

work=$(mktemp -d "${TMPDIR:-/tmp}/tidal-e2e.XXXXXX")
launcher=""
cleanup() {
  if [ -n "$launcher" ] && kill -0 "$launcher" 2>/dev/null; then kill -TERM "$launcher" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# Created here, not by the background job's redirection: the loop below reads it at once,
# and under load the job may not have opened it yet (sed then failed the test).
: >"$work/out"
"$run_bin" --nproc "$nproc" --keep-going --grace-ms 2000 -- \
  "$node_bin" --rounds 16 --pause-ms 100 --timeout-ms 8000 >"$work/out" 2>&1 &
launcher=$!

# Wait (bounded: 60 s) until the victim finished round 4, then SIGKILL it.
victim_pid=""
for _ in $(seq 1 600); do
  victim_pid=$(sed -n "s/^tidal-run: rank $victim started (pid \([0-9]*\)).*/\1/p" "$work/out" | head -1)
  if [ -n "$victim_pid" ] && grep -q "^\[rank $victim\] {\"allreduce\".*\"round\":4," "$work/out"; then
    break
  fi
  if ! kill -0 "$launcher" 2>/dev/null; then
    echo "kill_rank: tidal-run ended before rank $victim reached round 4:" >&2
    cat "$work/out" >&2
    exit 1
  fi
  sleep 0.1
done
if [ -z "$victim_pid" ]; then
  echo "kill_rank: rank $victim never started" >&2
  cat "$work/out" >&2
  exit 1
fi
kill -KILL "$victim_pid"
echo "kill_rank: SIGKILL to rank $victim (pid $victim_pid)"

# The survivors finish on their own (bounded by their timeouts): wait at most 120 s.
for _ in $(seq 1 1200); do
  kill -0 "$launcher" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$launcher" 2>/dev/null; then
  echo "kill_rank: the survivors hang" >&2
  cat "$work/out" >&2
  exit 1
fi
set +e
wait "$launcher"
launcher_rc=$?
set -e
cat "$work/out"

python3 - "$work/out" "$nproc" "$victim" <<'PY'
import json, re, sys
path, nproc, victim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
lines = {}          # rank -> list of JSON objects
exits = {}
for raw in open(path):
    m = re.match(r"\[rank (\d+)\] (\{.*\})$", raw.strip())
    if m:
        lines.setdefault(int(m.group(1)), []).append(json.loads(m.group(2)))
    m = re.match(r"tidal-run: rank (\d+) \(pid \d+\) (.*)$", raw.strip())
    if m:
        exits[int(m.group(1))] = m.group(2)
problems = []
survivors = [r for r in range(nproc) if r != victim]
if "killed by signal 9" not in exits.get(victim, ""):
    problems.append(f"rank {victim}: {exits.get(victim)!r}, expected killed by signal 9")
rounds = {}
for r in survivors:
    if exits.get(r) != "exited with code 0":
        problems.append(f"rank {r}: {exits.get(r)!r}")
    objs = lines.get(r, [])
    for o in objs:
        if "violation" in o or "fatal" in o:
            problems.append(f"rank {r}: {o}")
        if "round" in o:
            rounds.setdefault(o["round"], {})[r] = o
    summary = [o for o in objs if "summary" in o]
    if not summary or summary[-1]["summary"] != "PASS":
        problems.append(f"rank {r}: no PASS summary ({summary})")
    elif summary[-1]["failed_ranks"] != [victim]:
        problems.append(f"rank {r}: failed ranks {summary[-1]['failed_ranks']}, expected [{victim}]")
    elif summary[-1]["read_back"] != summary[-1]["puts_acknowledged"]:
        problems.append(f"rank {r}: read back {summary[-1]['read_back']} of {summary[-1]['puts_acknowledged']}")
    elif summary[-1]["others_read_back"] != summary[-1]["others_acknowledged"]:
        problems.append(f"rank {r}: read back {summary[-1]['others_read_back']} of the others' "
                        f"{summary[-1]['others_acknowledged']} acknowledged puts")
    elif summary[-1]["others_by_rank"].get(str(victim), 0) == 0:
        problems.append(f"rank {r}: read none of the killed rank's acknowledged puts")
    else:
        victim_read = summary[-1]["others_by_rank"][str(victim)]
failed_rounds = 0
for rnd, by_rank in sorted(rounds.items()):
    seen = {(o["allreduce"], tuple(o["failed"])) for o in by_rank.values()}
    if len(by_rank) == len(survivors) and len(seen) != 1:
        problems.append(f"round {rnd}: survivors disagree: {by_rank}")
    for o in by_rank.values():
        if o["allreduce"] not in ("OK", "RANK_FAILED") or o.get("wrong", 0) != 0:
            problems.append(f"round {rnd}: {o}")
        if o["allreduce"] == "RANK_FAILED":
            failed_rounds += 1
            if o["failed"] != [victim]:
                problems.append(f"round {rnd}: failed {o['failed']}, expected [{victim}]")
if failed_rounds == 0:
    problems.append("no allreduce reported the killed rank")
if problems:
    print("kill_rank: FAIL")
    for p in problems:
        print("  " + p)
    sys.exit(1)
print(f"kill_rank: PASS ({len(survivors)} survivors agreed on RANK_FAILED [{victim}] in "
      f"{failed_rounds // len(survivors)} rounds; every acknowledged put read back, the "
      f"killed rank's {victim_read} included)")
PY
