#!/usr/bin/python3
"""test_http_ingest - POST /v1/ingest, POST /v1/sql and the catalog routes
through the real gateway in `lakehouse up` (storaged, catalogd, ingestd,
queryd in one process).

- A 50,000-row roster from tools/gen_workers (--seed 1) posted as a raw
  text/csv body: streamed into storaged, ingested, answered
  {dataset_id, schema_fingerprint, columns, row_count, key}; then
  SELECT role, count(*), avg(hourly_rate) FROM workers GROUP BY role (and
  a filtered AVG) through POST /v1/sql equal the sqlite3 CLI's answers on
  the same CSV imported independently.
- The same kind of upload as multipart/form-data (fields "file" and
  "name"), re-ingest idempotent, the uploaded sources removed afterwards.
- GET /v1/catalog/list and /v1/catalog/manifest/NAME.
- The gateway's own multipart parser over real HTTP: a chunked form whose
  chunks cut every boundary, with a preamble and an epilogue (200); a form
  without its closing boundary, a field name over 256 bytes and a
  multipart Content-Type without a boundary (400 each, nothing stored).
- Errors: no name (400), a form without "file" (400), a bad CSV (ingestd's
  400 passed through), Content-Length over ingest/max_bytes (413),
  bad SQL (400), a write (403).
- Bodies of many parts, which ingestd parses as they land: a ragged row
  early in a 7 MiB CSV (400 bad_csv, the refusal stops the upload) and
  another schema under an existing name (409 schema_drift, the dataset
  untouched), and a client gone mid-body: each leaves no source, no
  upload and no dataset behind. A body slower than the request's deadline
  (X-Lakehouse-Timeout-Ms 3000, the last parts paced over 5 s): the ingest
  asked while it streamed times out, and is asked again once the source is
  stored (200).
"""

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest                    # noqa: E402
import test_gateway_util as gw   # noqa: E402

ROWS = 50000
QUERIES = [
    "SELECT role, count(*), avg(hourly_rate) FROM workers GROUP BY role ORDER BY role",
    "SELECT avg(hourly_rate), count(*) FROM workers WHERE state = 'OH'",
]


def close(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-9)
    return a == b


def same_rows(ours, theirs):
    return len(ours) == len(theirs) and all(
        len(x) == len(y) and all(close(p, q) for p, q in zip(x, y))
        for x, y in zip(ours, theirs))


def cli(db, query):
    out = subprocess.run(["sqlite3", "-json", db, query], capture_output=True, check=True,
                         timeout=120).stdout.decode()
    return [list(row.values()) for row in json.loads(out or "[]")]


def multipart(fields, boundary="lhboundary7d1f"):
    """A multipart/form-data body from [(name, filename or None, bytes)]."""
    out = b""
    for name, filename, data in fields:
        out += b"--%s\r\n" % boundary.encode()
        if filename:
            out += (b'Content-Disposition: form-data; name="%s"; filename="%s"\r\n'
                    b"Content-Type: text/csv\r\n\r\n" % (name.encode(), filename.encode()))
        else:
            out += b'Content-Disposition: form-data; name="%s"\r\n\r\n' % name.encode()
        out += data + b"\r\n"
    out += b"--%s--\r\n" % boundary.encode()
    return out, "multipart/form-data; boundary=" + boundary


def main(t):
    if not shutil.which("sqlite3"):
        raise lhtest.Skip("the sqlite3 command-line tool is not installed")
    gen = os.path.join(t.build, "gen_workers")
    csv_path = os.path.join(t.tmp, "workers.csv")
    subprocess.run([gen, "--rows", str(ROWS), "--seed", "1", "--out", csv_path], check=True)
    size = os.path.getsize(csv_path)
    t.note("roster: %d rows, %d bytes" % (ROWS, size))

    b, h = gw.up(t, "storaged,catalogd,ingestd,queryd", workers=2,
                 sets={"ingest/max_bytes": 64 * 1024 * 1024,
                       "gateway/part_size": 1024 * 1024,
                       #  a client gone mid-body is not always seen at once
                       #  (libmicrohttpd): the read timeout cuts it then
                       "gateway/read_timeout_s": 5})

    def post_json(path, doc, timeout=60.0):
        st, hdrs, body = h.request("POST", path, json.dumps(doc).encode(),
                                   {"Content-Type": "application/json"}, timeout=timeout)
        return st, json.loads(body)

    #  The roster, as a raw text/csv body streamed from the file
    started = time.monotonic()
    with open(csv_path, "rb") as f:
        st, hdrs, body = h.request("POST", "/v1/ingest?name=workers", f,
                                   {"Content-Type": "text/csv", "Content-Length": str(size)},
                                   timeout=180.0)
    took = time.monotonic() - started
    doc = json.loads(body)
    t.check(st == 200 and doc.get("row_count") == ROWS
            and set(doc) >= {"dataset_id", "schema_fingerprint", "columns", "row_count", "key"},
            "POST /v1/ingest?name=workers (raw CSV, %d bytes) -> 200 with %d rows in %.1f s"
            % (size, ROWS, took), (st, body[:400]))
    t.check(len(doc["columns"]) == 18
            and {"name": "hourly_rate", "type": "DOUBLE"} in doc["columns"],
            "18 typed columns", doc["columns"])
    gw.check_trace_headers(t, hdrs, "POST /v1/ingest")
    dataset_id = doc["dataset_id"]
    fingerprint = doc["schema_fingerprint"]

    db = os.path.join(t.tmp, "independent.db")
    subprocess.run(["sqlite3", db, ".import --csv %s workers" % csv_path], check=True, timeout=120)
    for query in QUERIES:
        st, reply = post_json("/v1/sql", {"sql": query, "limit": 1000})
        theirs = cli(db, query)
        t.check(st == 200 and same_rows(reply["rows"], theirs) and reply["truncated"] is False
                and reply["row_count"] == len(theirs),
                "POST /v1/sql equals the sqlite3 CLI: %s" % query[:60],
                (st, reply.get("rows", reply) if isinstance(reply, dict) else reply, theirs))
    st, reply = post_json("/v1/sql", {"sql": "SELECT worker_id FROM workers WHERE worker_id > ?"
                                             " ORDER BY worker_id", "params": [0], "limit": 3})
    t.check(st == 200 and reply["row_count"] == 3 and reply["truncated"] is True
            and reply["columns"] == [{"name": "worker_id", "type": "BIGINT"}],
            "POST /v1/sql with params and limit -> 3 rows, truncated", reply)

    #  Catalog routes
    st, _, body = h.request("GET", "/v1/catalog/list")
    doc = json.loads(body)
    t.check(st == 200 and [d["name"] for d in doc["datasets"]] == ["workers"],
            "GET /v1/catalog/list lists workers", doc)
    st, _, body = h.request("GET", "/v1/catalog/manifest/workers")
    doc = json.loads(body)
    t.check(st == 200 and doc["dataset_id"] == dataset_id and doc["row_count"] == ROWS
            and doc["schema_fingerprint"] == fingerprint,
            "GET /v1/catalog/manifest/workers -> the manifest", doc)
    st, _, body = h.request("GET", "/v1/catalog/manifest/nobody")
    err = gw.error_body(body)
    t.check(st == 404 and err and err["kind"] == "no_such_dataset",
            "manifest of an unknown dataset -> 404 no_such_dataset", (st, body))

    #  multipart/form-data, name in the form; re-ingest of the same bytes
    small = b"id,city,score\n1,Toledo,2.5\n2,\"Dayton, OH\",3\n3,Akron,\n"
    form, ctype = multipart([("name", None, b"cities"), ("file", "cities.csv", small)])
    st, _, body = h.request("POST", "/v1/ingest", form, {"Content-Type": ctype})
    first = json.loads(body)
    t.check(st == 200 and first["row_count"] == 3
            and [c["type"] for c in first["columns"]] == ["BIGINT", "VARCHAR", "DOUBLE"],
            "multipart/form-data ingest (name and file fields) -> 200", (st, body))
    form, ctype = multipart([("file", "c.csv", small)])
    st, _, body = h.request("POST", "/v1/ingest?name=cities", form, {"Content-Type": ctype})
    again = json.loads(body)
    t.check(st == 200 and again["dataset_id"] == first["dataset_id"]
            and again["key"] == first["key"],
            "re-ingest of the same file (name in the query) is idempotent", (st, body))
    st, reply = post_json("/v1/sql", {"sql": "SELECT city FROM cities WHERE id = 2"})
    t.check(st == 200 and reply["rows"] == [["Dayton, OH"]], "the form's CSV is queryable", reply)

    #  The uploaded sources are removed once ingested
    deadline = time.monotonic() + 10
    while True:
        st, _, body = h.request("GET", "/v1/storage?prefix=uploads/ingest/")
        left = json.loads(body)["keys"]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    t.check(left == [], "the uploaded CSVs are removed after the ingest", left)

    #  Errors
    st, _, body = h.request("POST", "/v1/ingest", b"a,b\n1,2\n", {"Content-Type": "text/csv"})
    err = gw.error_body(body)
    t.check(st == 400 and err and "name" in err["reason"], "no dataset name -> 400", (st, body))
    form, ctype = multipart([("name", None, b"x")])
    st, _, body = h.request("POST", "/v1/ingest", form, {"Content-Type": ctype})
    err = gw.error_body(body)
    t.check(st == 400 and err and "'file'" in err["reason"], "a form without 'file' -> 400",
            (st, body))
    #  Our multipart parser (gateway/lh_multipart.c) over real HTTP: a
    #  chunked body whose chunks cut every boundary in two, with a
    #  preamble and an epilogue; then the refusals, each a 400 saying why
    form, ctype = multipart([("name", None, b"split"), ("file", "s.csv", small)])
    form = b"a preamble to ignore\r\n" + form + b"an epilogue to ignore\r\n--x\r\n"
    cuts = [i + 5 for i in range(len(form)) if form.startswith(b"--lhboundary", i)]
    pieces = [form[a:b] for a, b in zip([0] + cuts, cuts + [len(form)])]
    #  (an iterable with no Content-Length: http.client sends it chunked)
    st, _, body = h.request("POST", "/v1/ingest", iter(pieces), {"Content-Type": ctype})
    doc = json.loads(body)
    t.check(st == 200 and doc.get("row_count") == 3 and doc["dataset_id"] != first["dataset_id"],
            "a chunked form, boundaries cut across %d chunks, preamble and epilogue -> 200"
            % len(pieces), (st, body))
    form, ctype = multipart([("file", "c.csv", small)])
    cut = form[:form.rindex(b"--lhboundary")]
    st, _, body = h.request("POST", "/v1/ingest?name=cut", cut, {"Content-Type": ctype})
    err = gw.error_body(body)
    t.check(st == 400 and err and "closing boundary" in err["reason"],
            "a form without its closing boundary -> 400", (st, body))
    form, ctype = multipart([("n" * 300, None, b"x"), ("file", "c.csv", small)])
    st, _, body = h.request("POST", "/v1/ingest?name=long", form, {"Content-Type": ctype})
    err = gw.error_body(body)
    t.check(st == 400 and err and "field name is longer than 256 bytes" in err["reason"],
            "a form field name over 256 bytes -> 400", (st, body))
    st, _, body = h.request("POST", "/v1/ingest?name=nob", form,
                            {"Content-Type": "multipart/form-data; charset=utf-8"})
    err = gw.error_body(body)
    t.check(st == 400 and err and "no boundary" in err["reason"],
            "a multipart Content-Type without a boundary -> 400", (st, body))
    st, _, body = h.request("GET", "/v1/catalog/list")
    names = [d["name"] for d in json.loads(body)["datasets"]]
    t.check(not {"cut", "long", "nob"} & set(names), "the refused forms stored no dataset", names)
    st, _, body = h.request("POST", "/v1/ingest?name=ragged", b"a,b\n1,2\n3\n")
    err = gw.error_body(body)
    t.check(st == 400 and err and err["kind"] == "bad_csv" and "line 3" in err["reason"],
            "a ragged CSV -> ingestd's 400 bad_csv naming the line", (st, body))
    raw = h.raw(b"POST /v1/ingest?name=big HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
                b"Content-Length: %d\r\n\r\na,b\n" % (64 * 1024 * 1024 + 1))
    t.check(gw.status_of(raw) == 413 and b"too_large" in raw and b"ingest/max_bytes" in raw,
            "Content-Length over ingest/max_bytes -> 413 naming it", raw[:300])

    #  Bodies of many parts (gateway/part_size is 1 MiB here): ingestd
    #  parses them as they land, and whatever ends the ingest early leaves
    #  nothing behind
    lines = [b"id,name,score"] + [b"%d,name %d,%d.5" % (i, i, i % 1000) for i in range(300000)]
    ragged = b"\n".join(lines[:1000] + [b"1,2"] + lines[1000:]) + b"\n"
    st, _, body = h.request("POST", "/v1/ingest?name=ragged_big", ragged,
                            {"Content-Type": "text/csv"}, timeout=60.0)
    err = gw.error_body(body)
    t.check(st == 400 and err and err["kind"] == "bad_csv" and "line 1001" in err["reason"],
            "a ragged row at line 1001 of a %d-byte CSV -> 400 bad_csv naming it" % len(ragged),
            (st, body))
    drift = b"\n".join([b"id,name"] + [b"%d,n%d" % (i, i) for i in range(400000)]) + b"\n"
    st, _, body = h.request("POST", "/v1/ingest?name=workers", drift,
                            {"Content-Type": "text/csv"}, timeout=60.0)
    err = gw.error_body(body)
    t.check(st == 409 and err and err["kind"] == "schema_drift",
            "another schema under 'workers' (%d bytes) -> 409 schema_drift" % len(drift),
            (st, body))
    st, _, body = h.request("GET", "/v1/catalog/manifest/workers")
    t.check(st == 200 and json.loads(body).get("dataset_id") == dataset_id,
            "the drifting upload left 'workers' as it was", body[:300])
    gone = socket.create_connection((h.host, h.port), timeout=10)
    good = b"\n".join(lines) + b"\n"
    gone.sendall(b"POST /v1/ingest?name=gone HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(good) + good[:3 * 1024 * 1024])
    gone.close()
    #  ingestd was asked while the body streamed, and refused once the
    #  upload was aborted under it
    log = h.wait_log("ingest of 'gone' refused", 20.0)
    t.check("ingest of 'gone' refused: 409" in log,
            "the ingest asked while the body streamed ends 409 when the client goes",
            [line for line in log.splitlines() if "'gone'" in line])
    deadline = time.monotonic() + 20
    while True:
        st, _, body = h.request("GET", "/v1/storage?prefix=uploads/ingest/")
        left = json.loads(body)["keys"]
        uploads = os.listdir(os.path.join(b.sets["data/dir"], "storage", "uploads"))
        if (not left and not uploads) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    t.check(left == [] and uploads == [],
            "a client gone mid-body, ingest refused early: no source and no upload left",
            (left, uploads))
    st, _, body = h.request("GET", "/v1/catalog/list")
    names = [d["name"] for d in json.loads(body)["datasets"]]
    t.check(not {"ragged_big", "gone"} & set(names), "... and no dataset", names)
    #  A client slower than the deadline: the early ingest's 504 is not
    #  the answer, the ingest is asked again after the upload
    slow = socket.create_connection((h.host, h.port), timeout=30)
    slow.sendall(b"POST /v1/ingest?name=slow HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
                 b"X-Lakehouse-Timeout-Ms: 3000\r\nConnection: close\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(good) + good[:1536 * 1024])
    rest = good[1536 * 1024:]
    step = len(rest) // 10 + 1
    for at in range(0, len(rest), step):
        time.sleep(0.5)             #  a slow client, not a synchronisation
        slow.sendall(rest[at:at + step])
    answer = b""
    while True:
        chunk = slow.recv(65536)
        if not chunk:
            break
        answer += chunk
    slow.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    doc = json.loads(body) if gw.status_of(answer) == 200 else None
    t.check(doc and doc.get("row_count") == len(lines) - 1,
            "a body slower than its 3 s deadline -> 200 with %d rows" % (len(lines) - 1),
            answer[:400])
    t.check("the ingest asked while the body streamed failed (504" in h.wait_log("failed (504"),
            "... after the early ingest's 504, the ingest asked again once the source was stored",
            [line for line in h.log().splitlines() if "streamed failed" in line])

    st, reply = post_json("/v1/sql", {"sql": "SELEC 1"})
    t.check(st == 400 and reply["error"]["kind"] == "bad_sql", "bad SQL -> 400 bad_sql", reply)
    st, reply = post_json("/v1/sql", {"sql": "DELETE FROM workers"})
    t.check(st == 403, "a write -> 403", reply)
    st, _, body = h.request("POST", "/v1/sql", b'{"sql": ')
    t.check(st == 400 and b"line 1" in body, "malformed JSON -> 400 with the position", body)
    gw.healthy(t, h, "the ingest and SQL routes")


if __name__ == "__main__":
    lhtest.run(main, budget=300)
