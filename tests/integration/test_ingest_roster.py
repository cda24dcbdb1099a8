#!/usr/bin/python3
"""A 50,000-row roster from tools/gen_workers (18 columns; resume_text with
commas, quotes and newlines) ingested over the bus, then
SELECT role, count(*), avg(hourly_rate) FROM workers GROUP BY role and a
filtered AVG through queryd match the same queries run by the sqlite3
command-line tool on the same CSV imported independently (.import --csv).
Also: the inferred schema of the roster, and ingestd's RSS stays bounded.
(The gateway route POST /v1/ingest is the gateway's; this drives the bus.)"""

import math
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402
from test_ingest import data_harness, ingest, sql  # noqa: E402

ROWS = 50000
SCHEMA = [("worker_id", "BIGINT"), ("name", "VARCHAR"), ("role", "VARCHAR"),
          ("city", "VARCHAR"), ("state", "VARCHAR"), ("phone", "VARCHAR"),
          ("email", "VARCHAR"), ("skills", "VARCHAR"), ("certifications", "VARCHAR"),
          ("years_experience", "BIGINT"), ("hourly_rate", "DOUBLE"),
          ("reliability_score", "DOUBLE"), ("availability", "BOOLEAN"),
          ("shift_preference", "VARCHAR"), ("languages", "VARCHAR"),
          ("last_placed", "TIMESTAMP"), ("status", "VARCHAR"), ("resume_text", "VARCHAR")]
QUERIES = [
    "SELECT role, count(*), avg(hourly_rate) FROM workers GROUP BY role ORDER BY role",
    "SELECT count(*) FROM workers",
    "SELECT avg(hourly_rate), count(*) FROM workers WHERE state = 'OH'",
    #  (sum and avg read the CLI's text columns as numbers, as ours are)
    "SELECT state, sum(years_experience), avg(reliability_score) FROM workers "
    "GROUP BY state ORDER BY state",
]


def close(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-9)
    return a == b


def same_rows(ours, theirs):
    return len(ours) == len(theirs) and all(
        len(x) == len(y) and all(close(p, q) for p, q in zip(x, y)) for x, y in zip(ours, theirs))


def cli(db, query):
    """Run a query with the sqlite3 CLI; rows as Python values (json mode)."""
    import json
    out = subprocess.run(["sqlite3", "-json", db, query], capture_output=True, check=True,
                         timeout=120).stdout.decode()
    return [list(row.values()) for row in json.loads(out or "[]")]


def main(t):
    if not shutil.which("sqlite3"):
        raise lhtest.Skip("the sqlite3 command-line tool is not installed")
    gen = os.path.join(t.build, "gen_workers")
    csv_path = os.path.join(t.tmp, "workers.csv")
    subprocess.run([gen, "--rows", str(ROWS), "--seed", "7", "--out", csv_path], check=True)
    with open(csv_path, "rb") as f:
        data = f.read()
    t.note("roster: %d rows, %d bytes" % (ROWS, len(data)))

    proc, endpoint = data_harness(t)
    peer = t.client(endpoint)
    t.wait_workers(peer, "ingestd", 1)
    st, body = ingest(peer, "workers", data, timeout=120.0)
    t.check(st == 200 and body["row_count"] == ROWS
            and [(c["name"], c["type"]) for c in body["columns"]] == SCHEMA,
            "roster ingested: %d rows, 18 typed columns" % ROWS, (st, body))
    rss = proc.rss_kib()
    if os.environ.get("LH_ASAN") != "1":
        t.check(rss is not None and rss < 200 * 1024,
                "harness RSS after the ingest %s KiB (< 200 MiB)" % rss)

    db = os.path.join(t.tmp, "independent.db")
    subprocess.run(["sqlite3", db, ".import --csv %s workers" % csv_path], check=True, timeout=120)
    for query in QUERIES:
        st, body = sql(peer, query, limit=1000)
        theirs = cli(db, query)
        t.check(st == 200 and same_rows(body["rows"], theirs),
                "same answer as the sqlite3 CLI: %s" % query[:70],
                (st, body.get("rows", body)[:3] if isinstance(body, dict) else body, theirs[:3]))
    st, body = sql(peer, "SELECT resume_text FROM workers WHERE worker_id = 100001")
    theirs = cli(db, "SELECT resume_text FROM workers WHERE worker_id = '100001'")
    t.check(st == 200 and body["rows"] == theirs and "\n" in theirs[0][0] and '"' in theirs[0][0],
            "resume_text with newlines and quotes is byte-identical", (body, theirs))


if __name__ == "__main__":
    lhtest.run(main, budget=240)
