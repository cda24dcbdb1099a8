#!/usr/bin/python3
"""ingestd over the bus, with queryd reading what it wrote: the CSV corpus
in tests/csv/ (schema, rows, refusals naming the line), a 1 MB single field,
shuffled rows giving the same fingerprint, idempotent re-ingest, schema drift
(409, the previous version still queries), ingest/max_bytes (413), bad names
and a missing source.

The helpers (data_harness, upload, ingest, sql) are shared by the other
test_ingest_* / test_query_* scripts."""

import glob
import hashlib
import json
import os
import re
import sys
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402

READY = re.compile(r"harness ready on (tcp://\S+) pid (\d+)")
NAMESPACE = uuid.UUID("a8f3c1d2-4e5b-5a6c-9d8e-7f0a1b2c3d4e")
PART = 4 * 1024 * 1024


def data_harness(t, sets=None, services=None, workers=0):
    """Start tests/bin/lh_data_harness (broker + storaged + catalogd +
    ingestd + queryd); returns (proc, endpoint)."""
    path = os.path.join(t.build, "lh_data_harness")
    if not os.access(path, os.X_OK):
        raise lhtest.Skip("%s is not built" % path)
    merged = {"data/dir": os.path.join(t.tmp, "var"),
              "broker/hb_ivl": 200, "broker/hb_live": lhtest.HB_LIVE}
    merged.update(sets or {})
    args = [path]
    if services:
        args += ["--services", services]
    if workers:
        args += ["--workers", str(workers)]
    for key, value in merged.items():
        args += ["--set", "%s=%s" % (key, value)]
    t.counter += 1
    proc = lhtest.Proc(args, "data%d" % t.counter, t.tmp, dict(os.environ))
    t.procs.append(proc)
    m = proc.wait_line(READY, 20.0)
    t.note("data harness pid %d on %s" % (proc.pid, m.group(1)))
    return proc, m.group(1)


def call(peer, svc, op, body=None, timeout=30.0):
    rep = peer.call(svc, op, body, timeout=timeout, q=True, dl=int(timeout * 1000))
    if rep is None:
        raise lhtest.Failure("no reply to %s.%s within %.1f s" % (svc, op, timeout))
    return rep.st, rep.obj


def upload(peer, key, data):
    """Store bytes under key: one put, or a multipart upload past PART."""
    if len(data) <= PART:
        st, body = call(peer, "storaged", "put", {"key": key, "data": data})
        if st != 200:
            raise lhtest.Failure("put %s: %s %s" % (key, st, body))
        return
    st, body = call(peer, "storaged", "upload_begin", {"key": key})
    if st != 200:
        raise lhtest.Failure("upload_begin %s: %s %s" % (key, st, body))
    upload_id = body["upload_id"]
    for number, offset in enumerate(range(0, len(data), PART), 1):
        st, body = call(peer, "storaged", "upload_part",
                        {"upload_id": upload_id, "part": number,
                         "data": data[offset:offset + PART]})
        if st != 200:
            raise lhtest.Failure("upload_part %d: %s %s" % (number, st, body))
    st, body = call(peer, "storaged", "upload_commit", {"upload_id": upload_id})
    if st != 200:
        raise lhtest.Failure("upload_commit %s: %s %s" % (key, st, body))


def ingest(peer, name, data=None, source=None, timeout=60.0):
    """Upload data (bytes) as uploads/NAME.csv unless source is given, then
    ingest it; returns (status, body)."""
    if source is None:
        source = "uploads/%s.csv" % name
        upload(peer, source, data)
    return call(peer, "ingestd", "ingest", {"name": name, "source": source}, timeout)


def sql(peer, text, timeout=30.0, **extra):
    body = {"sql": text}
    body.update(extra)
    return call(peer, "queryd", "sql", body, timeout)


def reason(body):
    try:
        return body["error"]["reason"]
    except Exception:
        return ""


def typed(value, kind):
    """A raw CSV value as queryd returns it for the column type."""
    if value is None:
        return None
    if kind == "BIGINT":
        return int(value)
    if kind == "DOUBLE":
        return float(value)
    if kind == "BOOLEAN":
        return value.lower() == "true"
    return value


def fingerprint(columns):
    """The schema fingerprint of SPEC 5.3, computed here: SHA-256 over the
    (name, type) pairs in header order, 0x1f between name and type, 0x1e
    between pairs."""
    text = "\x1e".join("%s\x1f%s" % (n, k) for n, k in columns)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fetch(peer, key):
    """The whole object under key, read with storaged.get in ranges."""
    data = b""
    while True:
        st, body = call(peer, "storaged", "get", {"key": key, "offset": len(data)})
        if st != 200:
            raise lhtest.Failure("get %s at %d: %s %s" % (key, len(data), st, body))
        data += body["data"]
        if len(data) >= body["size"] or not body["data"]:
            return data


def check_key(t, peer, what, dataset, columns, body):
    """The dataset key checked whole (SPEC 5.3):
    datasets/NAME/FP_HEX/CONTENT_SHA256.sqlite, where FP_HEX is the
    fingerprint recomputed from the header and its types, and
    CONTENT_SHA256 the SHA-256 of the stored table file's bytes."""
    fp = fingerprint(columns)
    m = re.match(r"^datasets/([^/]+)/([0-9a-f]{64})/([0-9a-f]{64})\.sqlite$", body["key"])
    t.check(m and m.group(1) == dataset and m.group(2) == fp == body["schema_fingerprint"],
            "%s: key datasets/%s/FP/SHA.sqlite, FP the fingerprint of the header's "
            "(name, type) pairs" % (what, dataset), (body["key"], fp))
    stored = fetch(peer, body["key"])
    t.check(stored.startswith(b"SQLite format 3\x00")
            and m.group(3) == hashlib.sha256(stored).hexdigest(),
            "%s: the key's SHA is the SHA-256 of the stored table's %d bytes"
            % (what, len(stored)), (m.group(3), hashlib.sha256(stored).hexdigest()))


def check_case(t, peer, name, data, expect):
    dataset = "csv_" + name
    st, body = ingest(peer, dataset, data)
    if "error" in expect:
        t.check(st == 400 and body["error"]["kind"] == "bad_csv"
                and expect["error"] in reason(body),
                "%s: 400 bad_csv '%s'" % (name, reason(body)), (st, body))
        return None
    columns = [{"name": n, "type": k} for n, k in expect["columns"]]
    t.check(st == 200 and body["columns"] == columns
            and body["row_count"] == len(expect["rows"])
            and body["dataset_id"] == str(uuid.uuid5(NAMESPACE, dataset)),
            "%s: schema %s, %d rows" % (name, [k for _, k in expect["columns"]], len(expect["rows"])),
            (st, body))
    check_key(t, peer, name, dataset, expect["columns"], body)
    st, result = sql(peer, 'SELECT * FROM "%s" ORDER BY rowid' % dataset, limit=100000)
    want = [[typed(v, k) for v, (_, k) in zip(row, expect["columns"])] for row in expect["rows"]]
    t.check(st == 200 and result["rows"] == want and result["row_count"] == len(want)
            and [c["name"] for c in result["columns"]] == [n for n, _ in expect["columns"]],
            "%s: rows read back through queryd as typed" % name,
            (st, result if st != 200 else result["rows"][:3], want[:3]))
    return body


def main(t):
    _, endpoint = data_harness(t, sets={"ingest/max_bytes": 3 * 1024 * 1024})
    peer = t.client(endpoint)
    t.wait_workers(peer, "queryd", 1)
    t.wait_workers(peer, "ingestd", 1)

    #  The corpus
    corpus = os.path.join(os.environ.get("LH_ROOT", "."), "tests", "csv")
    fingerprints = {}
    cases = sorted(glob.glob(os.path.join(corpus, "*.expect")))
    t.check(len(cases) >= 20, "the corpus has %d cases" % len(cases))
    same = []
    for path in cases:
        name = os.path.basename(path)[:-len(".expect")]
        with open(path) as f:
            expect = json.load(f)
        with open(path[:-len(".expect")] + ".csv", "rb") as f:
            data = f.read()
        body = check_case(t, peer, name, data, expect)
        if body:
            fingerprints[name] = body["schema_fingerprint"]
        if "same_fingerprint_as" in expect:
            same.append((name, expect["same_fingerprint_as"]))
    for one, two in same:
        t.check(fingerprints[one] == fingerprints[two],
                "%s has the same fingerprint as %s" % (one, two))

    #  A 1 MB single field with commas, quotes and newlines
    blob = ("ab,\n\"cd" * (1024 * 1024 // 7 + 1))[:1024 * 1024]
    data = ("id,blob\n1,\"%s\"\n2,x\n" % blob.replace('"', '""')).encode()
    check_case(t, peer, "big_field", data,
               {"columns": [["id", "BIGINT"], ["blob", "VARCHAR"]],
                "rows": [["1", blob], ["2", "x"]]})

    #  Past the first 1000 rows (the rows whose types start the table):
    #  a late decimal, a late word in a boolean column, a column empty until
    #  row 1500, and a column that stays integer, each typed over the whole
    #  file (the second pass), the same rows shuffled giving the same schema
    rows = []
    for i in range(1, 3001):
        rows.append([str(i), str(i * 2), "true" if i % 2 else "false",
                     str(i) if i > 1500 else "", str(i % 7)])
    rows[-1][1] = "6000.5"
    rows[-1][2] = "maybe"
    header = ["id", "late_float", "late_word", "late_start", "small"]
    kinds = ["BIGINT", "DOUBLE", "VARCHAR", "BIGINT", "BIGINT"]
    text = ",".join(header) + "\n" + "".join(",".join(r) + "\n" for r in rows)
    body = check_case(t, peer, "late_values", text.encode(),
                      {"columns": [list(x) for x in zip(header, kinds)],
                       "rows": [[v if v != "" else None for v in r] for r in rows]})
    shuffled = rows[1500:] + rows[:1500]
    text = ",".join(header) + "\n" + "".join(",".join(r) + "\n" for r in shuffled)
    other = check_case(t, peer, "late_values_shuffled", text.encode(),
                       {"columns": [list(x) for x in zip(header, kinds)],
                        "rows": [[v if v != "" else None for v in r] for r in shuffled]})
    t.check(body and other and body["schema_fingerprint"] == other["schema_fingerprint"],
            "3000 rows shuffled: same fingerprint")

    #  Re-ingesting the same file: same fingerprint, id and key
    with open(os.path.join(corpus, "typed.csv"), "rb") as f:
        typed_csv = f.read()
    st1, one = ingest(peer, "again", typed_csv)
    st2, two = ingest(peer, "again", typed_csv)
    t.check(st1 == 200 and st2 == 200 and one == two,
            "re-ingest is idempotent (same fingerprint, dataset_id, key)", (one, two))

    #  Drift: a changed column type is refused and the live version stays
    st, body = ingest(peer, "drift", b"id,v\n1,10\n2,20\n")
    t.check(st == 200, "drift v1 ingested", (st, body))
    upload(peer, "uploads/drift-v2.csv", b"id,v\n1,ten\n2,20\n3,30\n")
    st, body = ingest(peer, "drift", source="uploads/drift-v2.csv")
    t.check(st == 409 and body["error"]["kind"] == "schema_drift",
            "changed column type: 409 schema_drift (%s)" % reason(body), (st, body))
    st, body = sql(peer, "SELECT id, v FROM drift ORDER BY id")
    t.check(st == 200 and body["rows"] == [[1, 10], [2, 20]],
            "the previous version still queries", (st, body))
    st, body = call(peer, "catalogd", "get", {"name": "drift"})
    t.check(st == 200 and body["row_count"] == 2, "the manifest is unchanged", body)

    #  Same schema, new rows: a new version replaces the old one
    upload(peer, "uploads/drift-v3.csv", b"id,v\n1,11\n2,21\n3,31\n")
    st, body = ingest(peer, "drift", source="uploads/drift-v3.csv")
    t.check(st == 200 and body["row_count"] == 3, "same schema, new content: 200", (st, body))
    #  (queryd learns it from catalog.changed: eventually, so poll)
    deadline = lhtest.now() + 10.0
    while True:
        st, body = sql(peer, "SELECT sum(v) FROM drift")
        if (st == 200 and body["rows"] == [[63]]) or lhtest.now() > deadline:
            break
        peer.idle(0.05)
    t.check(st == 200 and body["rows"] == [[63]], "queryd serves the new version", (st, body))

    #  The covering index: the first low-cardinality column, then the
    #  numeric ones (an id, integers rising through the file, first), then
    #  the other low-cardinality ones; GROUP BY reads it in order
    import random
    import sqlite3
    kinds, cities = ["a", "b", "c"], ["x", "y"]
    lines = ["kind,score,id,city"] + ["%s,%d.5,%d,%s" % (kinds[i % 3], i % 7, 1000 + i, cities[i % 2])
                                      for i in range(3000)]
    for name, body_lines, order in (
            ("indexed", lines, ["kind", "id", "score", "city"]),
            ("indexed_shuffled", lines[:1] + random.Random(7).sample(lines[1:], 3000),
             ["kind", "score", "id", "city"])):
        st, body = ingest(peer, name, ("\n".join(body_lines) + "\n").encode())
        t.check(st == 200, "ingest %s" % name, (st, body))
        if st != 200:
            continue
        path = os.path.join(t.tmp, name + ".sqlite")
        with open(path, "wb") as f:
            f.write(fetch(peer, body["key"]))
        db = sqlite3.connect(path)
        indexes = db.execute("SELECT sql FROM sqlite_schema WHERE type = 'index'").fetchall()
        columns = re.findall(r'"([^"]+)"', indexes[0][0].split("(", 1)[1]) if indexes else []
        t.check(columns == order, "%s: the index's columns %s" % (name, order), indexes)
        plan = " ".join(str(row) for row in db.execute(
            "EXPLAIN QUERY PLAN SELECT kind, count(*), avg(score) FROM %s GROUP BY kind" % name))
        db.close()
        t.check("COVERING INDEX" in plan, "%s: GROUP BY kind scans the index" % name, plan)
        st, body = sql(peer, "SELECT kind, count(*), sum(id) FROM %s GROUP BY kind" % name)
        t.check(st == 200 and body["rows"] == [["a", 1000, sum(1000 + i for i in range(0, 3000, 3))],
                                               ["b", 1000, sum(1000 + i for i in range(1, 3000, 3))],
                                               ["c", 1000, sum(1000 + i for i in range(2, 3000, 3))]],
                "%s: GROUP BY through queryd" % name, (st, body))

    #  Limits and bad input
    big = b"id,pad\n" + b"".join(b"%d,%s\n" % (i, b"x" * 100) for i in range(40000))
    t.check(len(big) > 3 * 1024 * 1024, "a %d byte CSV" % len(big))
    st, body = ingest(peer, "too_big", big)
    t.check(st == 413 and body["error"]["kind"] == "too_large"
            and "ingest/max_bytes" in reason(body),
            "over ingest/max_bytes: 413 naming it (%s)" % reason(body), (st, body))
    st, body = sql(peer, "SELECT 1 FROM too_big")
    t.check(st == 400 and "no such table" in reason(body),
            "nothing registered after the 413", (st, body))
    for bad in ("", "a/b", "-x", "sqlite_master", "x" * 129, "a b"):
        st, body = call(peer, "ingestd", "ingest", {"name": bad, "source": "uploads/typed.csv"})
        t.check(st == 400 and body["error"]["kind"] == "bad_body",
                "name %r: 400" % bad[:20], (st, body))
    st, body = call(peer, "ingestd", "ingest", {"name": "nothing", "source": "uploads/none.csv"})
    t.check(st == 404 and body["error"]["kind"] == "no_such_source",
            "missing source: 404 (%s)" % reason(body), (st, body))
    st, body = call(peer, "ingestd", "ingest", {"name": "nothing"})
    t.check(st == 400, "no source: 400", (st, body))


if __name__ == "__main__":
    lhtest.run(main, budget=240)
