#!/usr/bin/python3
"""test_ingest_cli - `lakehouse ingest FILE --name N` against a running system.

A `lakehouse up` with storaged, catalogd, ingestd and queryd; a generated
roster (tools/gen_workers, 3,000 rows, so the upload takes several parts
with a small part size) is ingested from the shell; the reply is the
ingestd reply as JSON, the row count is right, and the same query through
queryd matches the CSV counted here in Python. A missing file and a
missing --name fail with a clear message and a non-zero exit; so does a
file over ingest/max_bytes, naming it.
"""

import csv
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest    # noqa: E402

ROWS = 3000


def main(t):
    gen = os.path.join(t.build, "gen_workers")
    if not os.access(gen, os.X_OK):
        raise lhtest.Skip("%s is not built" % gen)
    path = os.path.join(t.tmp, "workers.csv")
    with open(path, "wb") as out:
        subprocess.run([gen, "--rows", str(ROWS), "--seed", "7"], stdout=out, check=True)
    with open(path, newline="") as f:
        roles = {}
        for row in csv.DictReader(f):
            roles[row["role"]] = roles.get(row["role"], 0) + 1

    b = t.up(actors="storaged,catalogd,ingestd,queryd", workers=1)
    base = [t.lakehouse, "--set", "bus/endpoint=%s" % b.endpoint,
            "--set", "bus/plain=true", "--set", "bus/curve=false",
            "--set", "data/dir=%s" % os.path.join(t.tmp, "cli-var")]

    run = subprocess.run(base + ["ingest", path, "--name", "roster"],
                         capture_output=True, text=True, timeout=60)
    t.check(run.returncode == 0, "ingest exits 0", run.stderr[-400:])
    reply = json.loads(run.stdout.strip().splitlines()[-1])
    t.check(reply.get("row_count") == ROWS, "reply row_count is %d" % ROWS, reply.get("row_count"))
    t.check(len(reply.get("columns", [])) == 18, "18 columns inferred")
    t.check(reply.get("key", "").startswith("datasets/roster/"), "table stored under datasets/roster/",
            reply.get("key"))
    t.check("rows uploaded" in run.stderr, "a progress line on stderr", run.stderr[-200:])

    client = t.client(b.endpoint)
    rep = client.call("queryd", "sql",
                      {"sql": "SELECT role, count(*) FROM roster GROUP BY role ORDER BY role"},
                      timeout=10)
    t.check(rep.st == 200, "the dataset queries", rep.st)
    got = {row[0]: row[1] for row in rep.obj["rows"]}
    t.check(got == roles, "per-role counts equal the CSV's", (got, roles))

    run = subprocess.run(base + ["ingest", os.path.join(t.tmp, "nosuch.csv"), "--name", "x"],
                         capture_output=True, text=True, timeout=30)
    t.check(run.returncode != 0 and "nosuch.csv" in run.stderr,
            "a missing file fails naming it", (run.returncode, run.stderr[-300:]))
    run = subprocess.run(base + ["ingest", path], capture_output=True, text=True, timeout=30)
    t.check(run.returncode == 2 and "--name" in run.stderr,
            "a missing --name is a usage error (exit 2)", (run.returncode, run.stderr[-300:]))

    #  A file over ingest/max_bytes (storaged's cap of the sources' prefix)
    #  is refused with 413, naming the key (a file over one part before any
    #  part is sent: its size goes with upload_begin)
    big = os.path.join(t.tmp, "big.csv")
    with open(big, "wb") as out:
        subprocess.run([gen, "--rows", "12000", "--seed", "7"], stdout=out, check=True)
    size = os.path.getsize(big)
    small = t.up(actors="storaged,catalogd,ingestd", workers=1,
                 sets={"ingest/max_bytes": size - 1})
    base[2] = "bus/endpoint=%s" % small.endpoint
    for what, file in (("over one part (%d bytes): 413 before any part is sent" % size, big),
                       ("of one part: 413", path)):
        if file == path:
            small.proc.term()
            small = t.up(actors="storaged,catalogd,ingestd", workers=1,
                         sets={"ingest/max_bytes": os.path.getsize(path) - 1})
            base[2] = "bus/endpoint=%s" % small.endpoint
        run = subprocess.run(base + ["ingest", file, "--name", "big"],
                             capture_output=True, text=True, timeout=60)
        t.check(run.returncode != 0 and "413" in run.stderr and "ingest/max_bytes" in run.stderr
                and "rows uploaded" not in run.stderr,
                "a file over ingest/max_bytes %s, naming the key" % what,
                (run.returncode, run.stderr[-400:]))


if __name__ == "__main__":
    lhtest.run(main)
