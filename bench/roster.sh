#!/usr/bin/env bash
#  bench/roster.sh - validatord's roster loaded from a dataset (issue 15.10)
#
#  bench/roster.sh [ROWS]        (default 500000; BUILD=build-x to choose)
#
#  Generates the roster with gen_workers (seed 1), starts a data harness
#  (broker + storaged + catalogd + ingestd) and ingests it as dataset
#  'workers' once. Then ROSTER_RUNS times (default 3):
#
#    cold   a fresh queryd (its own process and an empty table cache) and a
#           fresh validatord with validatord/roster_dataset=workers: the
#           load time from validatord's log line (from its first queryd
#           call, so queryd fetching the ~390 MB table file from storaged
#           and checking its SHA-256, to the roster swapped in);
#    warm   a second validatord against the same queryd (table cached);
#    anchor the same bytes and rows without the bus: the table file copied
#           out of storaged's object file (cp, as queryd's fetch writes its
#           cache) and the same SELECT of rowid and the six mapped columns
#           run by the sqlite3 command-line tool into /dev/null.
#
#  Writes bench/results/roster.md (median over runs, range, load average
#  before and after: the machine is shared).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
ROWS=${1:-500000}
RUNS=${ROSTER_RUNS:-3}
results=bench/results
mkdir -p "$results"
work=$(mktemp -d "${TMPDIR:-/tmp}/lh-bench-roster.XXXXXX")
pids=()
cleanup () {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
command -v sqlite3 >/dev/null || { echo "bench/roster.sh: needs the sqlite3 command-line tool" >&2; exit 1; }

csv=$work/workers.csv
"$BUILD/gen_workers" --rows "$ROWS" --seed 1 --out "$csv"
size=$(stat -c %s "$csv")
limit=$(( size * 2 > 268435456 ? size * 2 : 268435456 ))
sets=(--set "storaged/cap_default=$limit" --set "ingest/max_bytes=$limit" --set "broker/hb_ivl=1000")

#  Wait for PATTERN in FILE (120 s)
s_wait_for () {
    for _ in $(seq 1200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "bench/roster.sh: no '$2' in $1" >&2
    tail -5 "$1" >&2
    return 1
}

"$BUILD/lh_data_harness" --services storaged,catalogd,ingestd --set "data/dir=$work/var" \
    "${sets[@]}" > "$work/harness.out" 2> "$work/harness.err" &
pids+=($!)
s_wait_for "$work/harness.out" "harness ready"
endpoint=$(sed -n 's/^harness ready on \(tcp:[^ ]*\) .*/\1/p' "$work/harness.out")

#  Upload the CSV (4 MiB parts) and ingest it as 'workers'
/usr/bin/python3 - "$endpoint" "$csv" <<'PY'
import sys
sys.path.insert(0, "tests/proto")
import lhb
endpoint, csv = sys.argv[1], sys.argv[2]
peer = lhb.Peer(endpoint, name="bench-roster")
def call(svc, op, body):
    rep = peer.call(svc, op, body, timeout=600.0, q=True, dl=600000)
    assert rep is not None and rep.st == 200, (op, rep and rep.obj)
    return rep.obj
uid = call("storaged", "upload_begin", {"key": "uploads/workers.csv"})["upload_id"]
with open(csv, "rb") as f:
    number = 1
    while True:
        chunk = f.read(4 * 1024 * 1024)
        if not chunk:
            break
        call("storaged", "upload_part", {"upload_id": uid, "part": number, "data": chunk})
        number += 1
call("storaged", "upload_commit", {"upload_id": uid})
lhb.wait_workers(peer, "ingestd", 1, 10.0)
print("ingested:", call("ingestd", "ingest", {"name": "workers", "source": "uploads/workers.csv"})["key"])
PY
#  The table file: the object whose content (after storaged's 128-byte
#  header) is an SQLite database
object=
for file in $(find "$work/var/storage" -type f); do
    if [ "$(tail -c +129 "$file" | head -c 15)" = "SQLite format 3" ]; then object=$file; fi
done
[ -n "$object" ] || { echo "bench/roster.sh: the table file is not in storaged's directory" >&2; exit 1; }
columns="rowid, worker_id, name, city, state, role, status"

#  One validatord loading the roster; prints its load time in ms
s_validatord () {
    local name=$1
    "$BUILD/lh_chat_harness" --broker "$endpoint" --services validatord --workers 1 \
        --set "data/dir=$work/$name" --set "validatord/session_log=" \
        --set "validatord/roster_dataset=workers" --set "validatord/roster_timeout_ms=120000" \
        --set "validatord/roster_poll_ms=600000" > "$work/$name.out" 2> "$work/$name.err" &
    local pid=$!
    pids+=($pid)
    s_wait_for "$work/$name.err" "workers from dataset 'workers' in" >&2
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    sed -n "s/.*roster: \([0-9]*\) workers from dataset 'workers' in \([0-9]*\) ms.*/\1 \2/p" \
        "$work/$name.err" | head -1
}

: > "$work/runs.txt"
for run in $(seq "$RUNS"); do
    "$BUILD/lh_data_harness" --broker "$endpoint" --services queryd --set "data/dir=$work/q$run" \
        "${sets[@]}" > "$work/queryd-$run.out" 2> "$work/queryd-$run.err" &
    queryd=$!
    pids+=($queryd)
    s_wait_for "$work/queryd-$run.out" "harness ready"
    read -r cold_rows cold_ms <<< "$(s_validatord "cold-$run")"
    read -r warm_rows warm_ms <<< "$(s_validatord "warm-$run")"
    kill "$queryd" 2>/dev/null || true
    wait "$queryd" 2>/dev/null || true
    rm -rf "$work/q$run"
    start=$(date +%s%N)
    tail -c +129 "$object" > "$work/anchor.sqlite"
    sqlite3 "$work/anchor.sqlite" "SELECT $columns FROM workers" > /dev/null
    anchor_ms=$(( ($(date +%s%N) - start) / 1000000 ))
    rm -f "$work/anchor.sqlite"
    echo "$run $cold_rows $cold_ms $warm_rows $warm_ms $anchor_ms" | tee -a "$work/runs.txt" >&2
done

out=$results/roster.md
ROSTER_LOAD_BEFORE=$load_before ROSTER_LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg) \
/usr/bin/python3 - "$work/runs.txt" "$ROWS" "$size" "$(stat -c %s "$object")" > "$out.tmp" <<'PY'
import datetime, os, statistics, sys
path, rows, size, table = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
runs = [list(map(int, line.split())) for line in open(path) if line.strip()]
def cell(values):
    text = "%.2f s" % (statistics.median(values) / 1000)
    if len(values) > 1:
        text += " (%.2f–%.2f)" % (min(values) / 1000, max(values) / 1000)
    return text
cold = [r[2] for r in runs]
warm = [r[4] for r in runs]
anchor = [r[5] for r in runs]
print("# Roster load from a dataset (validatord, queryd)\n")
print("- date: %s" % datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
print("- machine: %d cores, %s; load average (1/5/15 min) before: %s, after: %s (shared machine)"
      % (os.cpu_count(), os.uname().release, os.environ.get("ROSTER_LOAD_BEFORE"),
         os.environ.get("ROSTER_LOAD_AFTER")))
print("- data: gen_workers --rows %d --seed 1: %d bytes of CSV, ingested as 'workers': a "
      "%d-byte table file" % (rows, size, table))
print("- method: bench/roster.sh; %d runs. cold = a fresh queryd (empty cache) and a fresh "
      "validatord with validatord/roster_dataset=workers, the time of validatord's log line "
      "(first queryd call to the roster swapped in: queryd fetches and checks the table file, "
      "then the pages); warm = a second validatord, same queryd; anchor = the table file "
      "copied out of storaged's object file and `sqlite3 FILE 'SELECT rowid, worker_id, name, "
      "city, state, role, status FROM workers' > /dev/null`, no bus. Cells: median (min–max).\n"
      % len(runs))
print("| | time | / anchor |")
print("|---|---|---|")
ratio = lambda v: "%.2f×" % (statistics.median(v) / statistics.median(anchor))
print("| cold (target ≤ 2 s) | %s | %s |" % (cell(cold), ratio(cold)))
print("| warm | %s | %s |" % (cell(warm), ratio(warm)))
print("| anchor: cp + sqlite3 SELECT | %s | |" % cell(anchor))
print("\nWorkers loaded per run: %s" % ", ".join("%d cold / %d warm" % (r[1], r[3]) for r in runs))
PY
mv "$out.tmp" "$out"
cat "$out"
