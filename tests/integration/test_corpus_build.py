#!/usr/bin/python3
"""test_corpus_build - `lakehouse corpus build` over a 20,000-worker roster.

`lakehouse up` with storaged, catalogd, ingestd, queryd, embedd (dim 128),
vectord (ef_construction 64; compact_pct 200, so that the re-run's 20,000
replaced ids do not trigger graph rebuilds: this measures the build, not
vectord's compaction) and matrixd. A roster from gen_workers (20,000 rows) is ingested
with `lakehouse ingest`, then built into a corpus from the shell:

- the index holds exactly as many vectors as the dataset has rows, the
  summary says so, stderr carries progress lines with rows/s and an ETA;
- a second run adds nothing new: the count stays the row count (the same
  ids replace their vectors);
- a matrix search for a worker's own text (the text columns joined as the
  build joins them) finds that worker first, for a sample of workers;
- a column the dataset lacks, and an index of another dim, end the build
  with exit 1 and a sentence naming them; a bad command line is exit 2.
"""

import csv
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest    # noqa: E402
import lhb    # noqa: E402

ROWS = 20000
TEXT = ["name", "role", "city", "skills", "email"]
SAMPLE = [100001, 100002, 100777, 104242, 109999, 112345, 119999, 120000]


def main(t):
    gen = os.path.join(t.build, "gen_workers")
    if not os.access(gen, os.X_OK):
        raise lhtest.Skip("%s is not built" % gen)
    path = os.path.join(t.tmp, "workers.csv")
    subprocess.run([gen, "--rows", str(ROWS), "--seed", "11", "--out", path], check=True)
    with open(path, newline="") as f:
        rows = {int(r["worker_id"]): r for r in csv.DictReader(f)}

    b = t.up(actors="storaged,catalogd,ingestd,queryd,embedd,vectord,matrixd", workers=2,
             sets={"embedd/dim": 128, "vectord/ef_construction": 64,
                   "vectord/compact_pct": 200}, timeout=60)
    base = [t.lakehouse, "--set", "bus/endpoint=%s" % b.endpoint,
            "--set", "bus/plain=true", "--set", "bus/curve=false",
            "--set", "data/dir=%s" % os.path.join(t.tmp, "cli-var")]
    run = subprocess.run(base + ["ingest", path, "--name", "roster"], capture_output=True,
                         text=True, timeout=120)
    t.check(run.returncode == 0, "the roster is ingested", run.stderr[-400:])

    build = base + ["corpus", "build", "--dataset", "roster", "--id-column", "worker_id",
                    "--text-columns", ",".join(TEXT), "--index", "workers",
                    "--metadata-columns", "name,role,city,state", "--batch", "500"]
    run = subprocess.run(build, capture_output=True, text=True, timeout=240)
    t.check(run.returncode == 0, "corpus build exits 0", run.stderr[-600:])
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    t.note("first build: %.1f s, %.0f rows/s" % (summary["seconds"], summary["rows_per_s"]))
    t.check(summary["rows"] == ROWS and summary["added"] == ROWS and summary["index_count"] == ROWS
            and summary["failed_batches"] == 0,
            "index count == row count == %d" % ROWS, summary)
    t.check("rows/s" in run.stderr and "ETA" in run.stderr, "progress lines show rows/s and an ETA",
            run.stderr[-300:])

    client = t.client(b.endpoint)
    run = subprocess.run(build, capture_output=True, text=True, timeout=240)
    t.check(run.returncode == 0, "a second run exits 0", run.stderr[-600:])
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    info = client.call("vectord", "info", {"name": "workers"}, timeout=10)
    t.check(summary["index_count"] == ROWS and info.obj["count"] == ROWS,
            "a second run adds nothing new: still %d" % ROWS, (summary, info.obj))

    for worker in SAMPLE:
        row = rows[worker]
        text = ", ".join(row[c] for c in TEXT if row[c])
        rep = client.call("matrixd", "search", {"query_text": text, "corpora": ["workers"], "k": 3},
                          timeout=10)
        top = rep.obj["hits"][0] if rep.st == 200 and rep.obj["hits"] else {}
        t.check(top.get("id") == str(worker) and top.get("distance", 1) < 1e-4
                and top.get("metadata", {}).get("name") == row["name"],
                "worker %d's own text finds it first" % worker, (rep.st, rep.obj))

    bad = [a if a != ",".join(TEXT) else "name,salary" for a in build]
    run = subprocess.run(bad, capture_output=True, text=True, timeout=60)
    t.check(run.returncode == 1 and "no column 'salary'" in run.stderr,
            "a missing column: exit 1 naming it", (run.returncode, run.stderr[-300:]))
    rep = client.call("vectord", "create", {"name": "narrow", "dim": 8}, timeout=10)
    t.check(rep.st == 201, "an index of dim 8", rep.st)
    narrow = [a if a != "workers" else "narrow" for a in build]
    run = subprocess.run(narrow, capture_output=True, text=True, timeout=60)
    t.check(run.returncode == 1 and "has dim 8" in run.stderr,
            "an index of another dim: exit 1 saying so", (run.returncode, run.stderr[-300:]))
    run = subprocess.run(base + ["corpus", "build", "--dataset", "roster"], capture_output=True,
                         text=True, timeout=30)
    t.check(run.returncode == 2 and "required" in run.stderr, "a bad command line is exit 2",
            (run.returncode, run.stderr))


if __name__ == "__main__":
    lhtest.run(main, budget=290)
