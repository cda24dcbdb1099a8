#!/usr/bin/env bash
#  bench/ingest.sh - ingest and query benchmark of issue 7 (ingestd, queryd)
#
#  bench/ingest.sh [ROWS]        (default 500000; BUILD=build-x to choose)
#
#  Generates the roster with gen_workers (seed 1), starts a data harness
#  (broker + storaged + catalogd + queryd), uploads the CSV to storaged
#  once, then runs INGEST_RUNS times (default 3), interleaved A B A B:
#
#    A  DuckDB (npm @duckdb/node-api, installed on first use into
#       $LH_NPM_CACHE, default ~/.cache/lakehouse-npm): read_csv_auto of the
#       same CSV into a table in a fresh database file, then the queries;
#    B  ours: a fresh ingestd process (so its peak RSS, VmHWM, is this
#       run's) ingests the CSV as dataset workers_N over the bus (inference,
#       table build, upload of the table file to storaged, registration);
#       then the queries through queryd.sql.
#
#    C  ours end to end over HTTP: a fresh `lakehouse up` (storaged,
#       catalogd, ingestd and the gateway in one process, default settings
#       but a plain loopback bus) is sent the CSV by POST /v1/ingest?name=
#       (a raw text/csv body, as curl --data-binary sends it): the upload,
#       ingestd parsing it as it lands (issue 16), the table build and its
#       upload, registration; peak RSS = the whole system's VmHWM.
#
#  Queries: count(*), the GROUP BY role with count and avg, the filtered AVG
#  (state = 'OH'); each the median of 5 after a warm-up. The table reports
#  the median over runs (and the range), the phases of our ingest from
#  ingestd's log line, and the load average before and after (the machine
#  is shared). INGEST_SETS="key=value ..." adds settings (e.g.
#  ingestd/index_max=2). Writes bench/results/ingest.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
ROWS=${1:-500000}
RUNS=${INGEST_RUNS:-3}
results=bench/results
mkdir -p "$results"
work=$(mktemp -d "${TMPDIR:-/tmp}/lh-bench-ingest.XXXXXX")
pids=()
cleanup () {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

#  DuckDB, installed once into the npm cache (the same one s3rver uses)
cache=${LH_NPM_CACHE:-$HOME/.cache/lakehouse-npm}
duck_ok=0
if command -v node >/dev/null 2>&1; then
    if [ ! -d "$cache/node_modules/@duckdb/node-api" ] && command -v npm >/dev/null 2>&1; then
        mkdir -p "$cache"
        echo "bench/ingest.sh: installing @duckdb/node-api into $cache" >&2
        timeout 300 npm install --prefix "$cache" --no-audit --no-fund --loglevel=error \
            @duckdb/node-api >&2 || echo "bench/ingest.sh: npm could not install @duckdb/node-api" >&2
    fi
    if NODE_PATH=$cache/node_modules node -e "require('@duckdb/node-api')" 2>/dev/null; then
        duck_ok=1
    fi
fi
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

csv=$work/workers.csv
"$BUILD/gen_workers" --rows "$ROWS" --seed 1 --out "$csv"
size=$(stat -c %s "$csv")
limit=$(( size * 2 > 268435456 ? size * 2 : 268435456 ))
sets=(--set "data/dir=$work/var" --set "storaged/cap_default=$limit"
      --set "ingest/max_bytes=$limit" --set "broker/hb_ivl=1000")
for pair in ${INGEST_SETS:-}; do sets+=(--set "$pair"); done

#  Wait for "harness ready" in FILE (10 s)
s_wait_ready () {
    for _ in $(seq 100); do grep -q "harness ready" "$1" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}

"$BUILD/lh_data_harness" --services storaged,catalogd,queryd "${sets[@]}" \
    > "$work/harness.out" 2> "$work/harness.err" &
pids+=($!)
s_wait_ready "$work/harness.out" || true
endpoint=$(sed -n 's/^harness ready on \(tcp:[^ ]*\) .*/\1/p' "$work/harness.out")
[ -n "$endpoint" ] || { echo "bench/ingest.sh: harness did not start" >&2; cat "$work/harness.err" >&2; exit 1; }

#  Upload the CSV once (4 MiB parts)
/usr/bin/python3 - "$endpoint" "$csv" <<'PY'
import sys
sys.path.insert(0, "tests/proto")
import lhb
endpoint, csv = sys.argv[1], sys.argv[2]
peer = lhb.Peer(endpoint, name="bench-upload")
def call(op, body):
    rep = peer.call("storaged", op, body, timeout=600.0, q=True, dl=600000)
    assert rep is not None and rep.st == 200, (op, rep and rep.obj)
    return rep.obj
uid = call("upload_begin", {"key": "uploads/workers.csv"})["upload_id"]
with open(csv, "rb") as f:
    number = 1
    while True:
        chunk = f.read(4 * 1024 * 1024)
        if not chunk:
            break
        call("upload_part", {"upload_id": uid, "part": number, "data": chunk})
        number += 1
call("upload_commit", {"upload_id": uid})
PY

#  Before each measured run, the same memory state for every contender
#  (INGEST_SETTLE=0 skips it): dirty pages written, the page cache dropped
#  (as root), the CSV and the stored source read back in, then 3 s, so
#  free memory is as cold for each (under a hypervisor that takes back
#  free memory, a run that follows one which freed a lot starts warm:
#  see "Reading" in the results)
settle=${INGEST_SETTLE:-1}
s_settle () {
    [ "$settle" = 1 ] || return 0
    sync
    if [ -w /proc/sys/vm/drop_caches ]; then echo 3 > /proc/sys/vm/drop_caches; fi
    cat "$csv" > /dev/null
    find "$work/var" -path '*uploads.d/workers.csv*' -type f -exec cat {} + > /dev/null 2>&1 || true
    sleep 3
}

for run in $(seq "$RUNS"); do
    #  A: DuckDB
    s_settle
    if [ "$duck_ok" = 1 ]; then
        NODE_PATH=$cache/node_modules node "$work/duck.cjs" "$csv" "$work/duck.db" \
            > "$work/duck-$run.json" 2> "$work/duck-$run.err" \
            || echo "{\"failed\": true}" > "$work/duck-$run.json"
        rm -f "$work/duck.db" "$work/duck.db.wal"
    fi
    #  B: ours, in a fresh ingestd process
    s_settle
    "$BUILD/lh_data_harness" --broker "$endpoint" --services ingestd --workers 1 "${sets[@]}" \
        > "$work/ingestd-$run.out" 2> "$work/ingestd-$run.err" &
    ingestd=$!
    pids+=($ingestd)
    s_wait_ready "$work/ingestd-$run.out" || { echo "bench/ingest.sh: ingestd did not start" >&2; exit 1; }
    /usr/bin/python3 - "$endpoint" "$ingestd" "workers_$run" "$work/ours-$run.json" <<'PY'
import json, sys, time, statistics
sys.path.insert(0, "tests/proto")
import lhb
endpoint, ingestd_pid, name, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
peer = lhb.Peer(endpoint, name="bench")
def call(svc, op, body, timeout=600.0):
    rep = peer.call(svc, op, body, timeout=timeout, q=True, dl=int(timeout * 1000))
    assert rep is not None and rep.st == 200, (svc, op, rep and rep.obj)
    return rep.obj
lhb.wait_workers(peer, "ingestd", 1, 10.0)
start = time.monotonic()
result = call("ingestd", "ingest", {"name": name, "source": "uploads/workers.csv"})
wall = time.monotonic() - start
hwm = 0
with open("/proc/%d/status" % ingestd_pid) as f:
    for line in f:
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
queries = {
    "count": "SELECT count(*) FROM %s" % name,
    "group_by": "SELECT role, count(*), avg(hourly_rate) FROM %s GROUP BY role" % name,
    "filtered_avg": "SELECT avg(hourly_rate) FROM %s WHERE state = 'OH'" % name,
}
#  queryd learns of the dataset from catalog.changed: wait until it answers
deadline = time.monotonic() + 30
while True:
    rep = peer.call("queryd", "sql", {"sql": queries["count"]}, timeout=30.0, q=True, dl=30000)
    if rep is not None and rep.st == 200:
        break
    assert time.monotonic() < deadline, ("queryd does not know", name, rep and rep.obj)
    time.sleep(0.05)
times = {}
for key, text in queries.items():
    call("queryd", "sql", {"sql": text})
    samples = []
    for _ in range(5):
        t0 = time.monotonic()
        call("queryd", "sql", {"sql": text})
        samples.append((time.monotonic() - t0) * 1000)
    times[key] = statistics.median(samples)
json.dump({"wall_s": wall, "rss_mib": hwm / 1024.0, "rows": result["row_count"],
           "queries_ms": times}, open(out, "w"))
PY
    kill "$ingestd" 2>/dev/null || true
    wait "$ingestd" 2>/dev/null || true
    grep -h "ingested 'workers_$run'" "$work/ingestd-$run.err" \
        | sed 's/.*ingested/ingested/; s/ -> .*//' > "$work/phases-$run.txt" || true
    #  C: ours over HTTP, a fresh `lakehouse up`
    s_settle
    /usr/bin/python3 - "$(realpath "$BUILD/lakehouse")" "$work" "$run" "$csv" <<'PY'
import http.client, json, os, re, signal, subprocess, sys, time
lakehouse, work, run, csv = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
config = os.path.join(work, "up.cfg")
with open(config, "w") as f:
    f.write("log\n    level = info\n")
sets = {"bus/endpoint": "tcp://127.0.0.1:*", "bus/tap": "", "bus/plain": "true",
        "bus/curve": "false", "bus/plain_role": "actor", "bus/inproc": "inproc://lh-bench-%d" % run,
        "actors/run": "storaged,catalogd,ingestd", "data/dir": os.path.join(work, "var-up%d" % run),
        "gateway/listen": "127.0.0.1:0"}
args = [lakehouse, "up", "--config", config]
for key, value in sets.items():
    args += ["--set", "%s=%s" % (key, value)]
err = open(os.path.join(work, "up-%d.err" % run), "w")
proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, cwd=work, text=True)
url = None
try:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(r"gateway ready on http://([^:/]+):(\d+)", line)
        if m:
            url = (m.group(1), int(m.group(2)))
            break
    assert url, "lakehouse up did not say its gateway is ready"
    size = os.path.getsize(csv)
    conn = http.client.HTTPConnection(url[0], url[1], timeout=600, blocksize=1 << 20)
    start = time.monotonic()
    with open(csv, "rb") as body:
        conn.request("POST", "/v1/ingest?name=http_%d" % run, body=body,
                     headers={"Content-Type": "text/csv", "Content-Length": str(size)})
        resp = conn.getresponse()
        data = resp.read()
    wall = time.monotonic() - start
    assert resp.status == 200, (resp.status, data[:300])
    rows = json.loads(data)["row_count"]
    hwm = 0
    with open("/proc/%d/status" % proc.pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    json.dump({"wall_s": wall, "rss_mib": hwm / 1024.0, "rows": rows},
              open(os.path.join(work, "http-%d.json" % run), "w"))
finally:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
PY
    grep -h "ingested 'http_$run'" "$work/up-$run.err" \
        | sed 's/.*ingested/ingested/; s/ -> .*//' > "$work/http-phases-$run.txt" || true
    rm -rf "$work/var-up$run"
done

out=$results/ingest.md
INGEST_SETTLED=$([ "$settle" = 1 ] && { [ -w /proc/sys/vm/drop_caches ] && echo dropped || echo synced; } || echo no) \
INGEST_LOAD_BEFORE=$load_before INGEST_LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg) \
/usr/bin/python3 - "$work" "$RUNS" "$ROWS" "$size" "$duck_ok" > "$out.tmp" <<'PY'
import json, sys, datetime, os, statistics
work, runs, rows, size, duck_ok = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
def load(path):
    try:
        return json.load(open(path))
    except Exception:
        return None
ours = [load("%s/ours-%d.json" % (work, run)) for run in range(1, runs + 1)]
http = [load("%s/http-%d.json" % (work, run)) for run in range(1, runs + 1)]
duck = [load("%s/duck-%d.json" % (work, run)) for run in range(1, runs + 1)] if duck_ok else []
duck = [d for d in duck if d and not d.get("failed")]
def cell(values, unit, digits):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    median = statistics.median(values)
    text = "%.*f %s" % (digits, median, unit)
    if len(values) > 1:
        text += " (%.*f–%.*f)" % (digits, min(values), digits, max(values))
    return text
print("# Ingest and query (ingestd, queryd)\n")
print("- date: %s" % datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
print("- machine: %d cores, %s; load average (1/5/15 min) before: %s, after: %s (shared machine)"
      % (os.cpu_count(), os.uname().release, os.environ.get("INGEST_LOAD_BEFORE"),
         os.environ.get("INGEST_LOAD_AFTER")))
print("- data: gen_workers --rows %d --seed 1: %d bytes (%.0f MiB), 18 columns" % (rows, size, size / 1048576))
print("- settings: %s" % (os.environ.get("INGEST_SETS") or "defaults"))
print("- method: bench/ingest.sh; %d runs, DuckDB and ours interleaved (A B C A B C); ours = wall time of "
      "ingestd.ingest over the bus from storaged (inference, table build, upload of the table file, "
      "registration) in a fresh ingestd process (peak RSS = its VmHWM); POST /v1/ingest = the CSV "
      "sent over HTTP to a fresh `lakehouse up` (storaged, catalogd, ingestd, gateway in one process; "
      "ingestd parses the upload as it lands), from the first byte sent to the answer (peak RSS = "
      "the process's VmHWM); DuckDB = read_csv_auto into a "
      "table in a fresh database file (@duckdb/node-api); queries through queryd.sql, each the median "
      "of 5 after a warm-up. Before each run: %s. Cells: median over runs (min–max).\n"
      % (runs, {"dropped": "sync, the page cache dropped, the CSV (and the stored source) read back "
                            "in, 3 s of quiet (INGEST_SETTLE=0 skips it)",
                "synced": "sync, the CSV read in, 3 s of quiet (not root: the page cache kept)",
                "no": "nothing (INGEST_SETTLE=0)"}[os.environ.get("INGEST_SETTLED", "no")]))
print("| | ours | DuckDB | ours / DuckDB |")
print("|---|---|---|---|")
ow = [o["wall_s"] for o in ours if o]
dw = [d["wall_s"] for d in duck]
ratio = "%.2f×" % (statistics.median(ow) / statistics.median(dw)) if ow and dw else "-"
print("| ingest wall time | %s | %s | %s |" % (cell(ow, "s", 2), cell(dw, "s", 2), ratio))
print("| peak RSS | %s | %s | |" % (cell([o["rss_mib"] for o in ours if o], "MiB", 0),
                                   cell([d["rss_mib"] for d in duck], "MiB", 0)))
hw = [h["wall_s"] for h in http if h]
hratio = "%.2f×" % (statistics.median(hw) / statistics.median(dw)) if hw and dw else "-"
print("| POST /v1/ingest end to end (upload + ingest) | %s | %s | %s |"
      % (cell(hw, "s", 2), cell(dw, "s", 2), hratio))
print("| peak RSS of the whole system (`lakehouse up`) | %s | %s | |"
      % (cell([h["rss_mib"] for h in http if h], "MiB", 0),
         cell([d["rss_mib"] for d in duck], "MiB", 0)))
for name, label in (("count", "count(*)"), ("group_by", "GROUP BY role, count, avg"),
                    ("filtered_avg", "AVG WHERE state = 'OH'")):
    print("| %s | %s | %s | |" % (label, cell([o["queries_ms"][name] for o in ours if o], "ms", 1),
                                  cell([d["queries_ms"][name] for d in duck], "ms", 1)))
if not duck:
    print("\nDuckDB: not run (node, npm or @duckdb/node-api not available)")
print("\nOur ingest's phases, per run (ingestd's log line, ms):\n")
for run in range(1, runs + 1):
    try:
        text = open("%s/phases-%d.txt" % (work, run)).read().strip()
    except OSError:
        text = ""
    print("- run %d: %s" % (run, text or "-"))
print("\nPOST /v1/ingest, ingestd's log line per run (the read overlaps the upload):\n")
for run in range(1, runs + 1):
    try:
        text = open("%s/http-phases-%d.txt" % (work, run)).read().strip()
    except OSError:
        text = ""
    print("- run %d: %s" % (run, text or "-"))
PY
mv "$out.tmp" "$out"
cat "$out"
