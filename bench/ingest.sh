#!/usr/bin/env bash
#  bench/ingest.sh - ingest and query benchmark of issue 7 (ingestd, queryd)
#
#  bench/ingest.sh [ROWS]        (default 500000; BUILD=build-x to choose)
#
#  Generates the roster with gen_workers (seed 1), starts a data harness
#  (broker + storaged + catalogd + queryd) and ingestd in a second process
#  (so its peak RSS is its own), uploads the CSV to storaged, and measures:
#  the ingest's wall time (inference, table build, upload, registration)
#  and ingestd's peak RSS (VmHWM); then count(*), the GROUP BY role with
#  count and avg, and the filtered AVG (state = 'OH') through queryd.sql
#  (median of 5 after one warm-up run). Beside them, when node and the npm
#  package @duckdb/node-api are available (NODE_PATH or ./node_modules),
#  DuckDB reading the same CSV into a table and running the same queries.
#  INGEST_SETS="key=value ..." adds settings (e.g. ingestd/index_max=3).
#  Writes bench/results/ingest.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
ROWS=${1:-500000}
results=bench/results
mkdir -p "$results"
work=$(mktemp -d "${TMPDIR:-/tmp}/lh-bench-ingest.XXXXXX")
pids=()
cleanup () {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

csv=$work/workers.csv
"$BUILD/gen_workers" --rows "$ROWS" --seed 1 --out "$csv"
size=$(stat -c %s "$csv")
limit=$(( size * 2 > 268435456 ? size * 2 : 268435456 ))
sets=(--set "data/dir=$work/var" --set "storaged/cap_default=$limit"
      --set "ingestd/max_ingest_bytes=$limit" --set "broker/hb_ivl=1000")
for pair in ${INGEST_SETS:-}; do sets+=(--set "$pair"); done

"$BUILD/lh_data_harness" --services storaged,catalogd,queryd "${sets[@]}" \
    > "$work/harness.out" 2> "$work/harness.err" &
pids+=($!)
for _ in $(seq 100); do grep -q "harness ready" "$work/harness.out" 2>/dev/null && break; sleep 0.1; done
endpoint=$(sed -n 's/^harness ready on \(tcp:[^ ]*\) .*/\1/p' "$work/harness.out")
[ -n "$endpoint" ] || { echo "bench/ingest.sh: harness did not start" >&2; cat "$work/harness.err" >&2; exit 1; }
"$BUILD/lh_data_harness" --broker "$endpoint" --services ingestd --workers 1 "${sets[@]}" \
    > "$work/ingestd.out" 2> "$work/ingestd.err" &
ingestd=$!
pids+=($ingestd)
for _ in $(seq 100); do grep -q "harness ready" "$work/ingestd.out" 2>/dev/null && break; sleep 0.1; done

/usr/bin/python3 - "$endpoint" "$csv" "$ingestd" "$work/ours.json" <<'PY'
import json, os, sys, time, statistics
sys.path.insert(0, "tests/proto")
import lhb
endpoint, csv, ingestd_pid, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
peer = lhb.Peer(endpoint, name="bench")
def call(svc, op, body, timeout=600.0):
    rep = peer.call(svc, op, body, timeout=timeout, q=True, dl=int(timeout * 1000))
    assert rep is not None and rep.st == 200, (svc, op, rep and rep.obj)
    return rep.obj
lhb.wait_workers(peer, "ingestd", 1, 10.0)
st = call("storaged", "upload_begin", {"key": "uploads/workers.csv"})
uid, part = st["upload_id"], 4 * 1024 * 1024
with open(csv, "rb") as f:
    number = 1
    while True:
        chunk = f.read(part)
        if not chunk:
            break
        call("storaged", "upload_part", {"upload_id": uid, "part": number, "data": chunk})
        number += 1
call("storaged", "upload_commit", {"upload_id": uid})
start = time.monotonic()
result = call("ingestd", "ingest", {"name": "workers", "source": "uploads/workers.csv"})
wall = time.monotonic() - start
hwm = 0
with open("/proc/%d/status" % ingestd_pid) as f:
    for line in f:
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
queries = {
    "count": "SELECT count(*) FROM workers",
    "group_by": "SELECT role, count(*), avg(hourly_rate) FROM workers GROUP BY role",
    "filtered_avg": "SELECT avg(hourly_rate) FROM workers WHERE state = 'OH'",
}
times = {}
for name, text in queries.items():
    call("queryd", "sql", {"sql": text})
    samples = []
    for _ in range(5):
        t0 = time.monotonic()
        call("queryd", "sql", {"sql": text})
        samples.append((time.monotonic() - t0) * 1000)
    times[name] = statistics.median(samples)
json.dump({"wall_s": wall, "rss_mib": hwm / 1024.0, "rows": result["row_count"],
           "queries_ms": times}, open(out, "w"))
PY

duck="not run (node or @duckdb/node-api not available)"
if command -v node >/dev/null && node -e "require('@duckdb/node-api')" 2>/dev/null; then
    cat > "$work/duck.cjs" <<'JS'
const { DuckDBInstance } = require('@duckdb/node-api');
const { readFileSync } = require('node:fs');
(async () => {
  const [csv, db] = process.argv.slice(2);
  const instance = await DuckDBInstance.create(db);
  const conn = await instance.connect();
  let t0 = performance.now();
  await conn.run(`CREATE TABLE workers AS SELECT * FROM read_csv_auto('${csv}')`);
  const load = (performance.now() - t0) / 1000;
  const rss = Number(readFileSync('/proc/self/status', 'utf8').match(/VmHWM:\s+(\d+)/)[1]) / 1024;
  const queries = { count: "SELECT count(*) FROM workers",
    group_by: "SELECT role, count(*), avg(hourly_rate) FROM workers GROUP BY role",
    filtered_avg: "SELECT avg(hourly_rate) FROM workers WHERE state = 'OH'" };
  const times = {};
  for (const [name, q] of Object.entries(queries)) {
    await conn.run(q);
    const samples = [];
    for (let i = 0; i < 5; i++) { t0 = performance.now(); await conn.run(q); samples.push(performance.now() - t0); }
    samples.sort((a, b) => a - b); times[name] = samples[2];
  }
  console.log(JSON.stringify({ wall_s: load, rss_mib: rss, queries_ms: times }));
})();
JS
    duck=$(node "$work/duck.cjs" "$csv" "$work/duck.db" 2>&1) || duck="failed: $duck"
fi

out=$results/ingest.md
/usr/bin/python3 - "$work/ours.json" "$duck" "$ROWS" "$size" > "$out.tmp" <<'PY'
import json, sys, subprocess, datetime, os
ours = json.load(open(sys.argv[1]))
duck_text, rows, size = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
try:
    duck = json.loads(duck_text)
except Exception:
    duck = None
print("# Ingest and query (ingestd, queryd)\n")
print("- date: %s" % datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"))
print("- machine: %d cores, %s" % (os.cpu_count(), os.uname().release))
print("- data: gen_workers --rows %d --seed 1: %d bytes (%.0f MiB), 18 columns" % (rows, size, size / 1048576))
print("- settings: %s" % (os.environ.get("INGEST_SETS") or "defaults"))
print("- method: bench/ingest.sh; ingest over the bus from storaged (wall time of ingestd.ingest: "
      "inference, table build, upload, registration); ingestd in its own process (peak RSS = VmHWM); "
      "queries through queryd.sql, median of 5 after a warm-up\n")
print("| | ours | DuckDB |")
print("|---|---|---|")
d = duck or {}
dq = d.get("queries_ms", {})
print("| ingest wall time | %.2f s | %s |" % (ours["wall_s"], "%.2f s" % d["wall_s"] if duck else "-"))
print("| peak RSS | %.0f MiB | %s |" % (ours["rss_mib"], "%.0f MiB" % d["rss_mib"] if duck else "-"))
for name, label in (("count", "count(*)"), ("group_by", "GROUP BY role, count, avg"),
                    ("filtered_avg", "AVG WHERE state = 'OH'")):
    print("| %s | %.1f ms | %s |" % (label, ours["queries_ms"][name],
                                     "%.1f ms" % dq[name] if name in dq else "-"))
if not duck:
    print("\nDuckDB: %s" % duck_text)
PY
mv "$out.tmp" "$out"
cat "$out"
grep "ingested 'workers'" "$work/ingestd.err" || true
