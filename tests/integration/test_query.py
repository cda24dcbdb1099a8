#!/usr/bin/python3
"""queryd over the bus: read-only enforcement (every forbidden statement
class refused with 403 and a reason), one statement only, a recursive CTE
that never ends stopped with 504 within the configured timeout, params,
limits and truncation, types of computed columns, a broken dataset that
fails only its own statements, errors that never show file paths, and the
catalog followed through catalog.changed (a deleted dataset disappears)."""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402
from test_ingest import data_harness, call, ingest, sql, reason  # noqa: E402

TIMEOUT_MS = 1500


def main(t):
    _, endpoint = data_harness(t, sets={"queryd/timeout_ms": TIMEOUT_MS,
                                        "queryd/row_limit": 50,
                                        "queryd/row_max": 500}, workers=2)
    peer = t.client(endpoint)
    t.wait_workers(peer, "queryd", 2)
    rows = "".join("%d,name %d,%s,%d.5\n" % (i, i, "OH" if i % 3 else "PA", i) for i in range(1, 201))
    st, body = ingest(peer, "people", ("id,name,state,score\n" + rows).encode())
    t.check(st == 200 and body["row_count"] == 200, "people ingested", (st, body))

    st, body = sql(peer, "SELECT state, count(*) AS n, avg(score) FROM people GROUP BY state "
                         "ORDER BY state")
    t.check(st == 200 and body["rows"] == [["OH", 134, body["rows"][0][2]], ["PA", 66, body["rows"][1][2]]]
            and body["columns"] == [{"name": "state", "type": "VARCHAR"},
                                    {"name": "n", "type": "BIGINT"},
                                    {"name": "avg(score)", "type": "DOUBLE"}]
            and body["truncated"] is False and body["row_count"] == 2,
            "GROUP BY: columns with types, rows, row_count, truncated", body)

    #  Read-only: each forbidden class refused with a reason
    forbidden = [
        ("INSERT INTO people VALUES (1, 'x', 'OH', 1)", "writes"),
        ("UPDATE people SET score = 0", "writes"),
        ("DELETE FROM people", "writes"),
        ("DROP TABLE people", "not allowed"),
        ("CREATE TABLE x (a)", "not allowed"),
        ("CREATE TEMP TABLE x AS SELECT 1", "not allowed"),
        ("CREATE VIEW v AS SELECT 1", "not allowed"),
        ("ALTER TABLE people ADD COLUMN z", "schema changes"),
        ("ATTACH DATABASE '/etc/passwd' AS p", "ATTACH"),
        ("DETACH DATABASE main", "DETACH"),
        ("PRAGMA journal_mode = WAL", "PRAGMA"),
        ("PRAGMA writable_schema = 1", "PRAGMA"),
        ("PRAGMA database_list", "PRAGMA"),
        ("SELECT load_extension('/tmp/evil.so')", "load_extension"),
        ("BEGIN", "transactions"),
        ("VACUUM", "read-only"),
        ("ANALYZE", "schema changes"),
    ]
    for text, word in forbidden:
        st, body = sql(peer, text)
        t.check(st == 403 and body["error"]["kind"] == "forbidden" and word in reason(body),
                "%s: 403 (%s)" % (text, reason(body)), (st, body))
    st, body = sql(peer, "SELECT 1; DELETE FROM people")
    t.check(st == 400 and "one statement" in reason(body), "two statements: 400", (st, body))
    st, body = sql(peer, "SELECT 1; -- trailing comment\n")
    t.check(st == 200 and body["rows"] == [[1]], "a trailing ; and comment are fine", (st, body))
    st, body = sql(peer, "SELEKT 1")
    t.check(st == 400 and body["error"]["kind"] == "bad_sql", "syntax error: 400", (st, body))
    st, body = sql(peer, "SELECT count(*) FROM people")
    t.check(st == 200 and body["rows"] == [[200]], "people intact after all that", body)

    #  A recursive CTE that never ends: 504 within the timeout
    start = time.monotonic()
    st, body = sql(peer, "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) "
                         "SELECT count(*) FROM c", timeout=20.0)
    elapsed = time.monotonic() - start
    t.check(st == 504 and elapsed < TIMEOUT_MS / 1000.0 + 2.0,
            "endless recursive CTE: 504 after %.2f s (timeout %d ms)" % (elapsed, TIMEOUT_MS),
            (st, body))
    st, body = sql(peer, "SELECT count(*) FROM people")
    t.check(st == 200, "the worker serves again after the timeout", (st, body))

    #  Params, limits, truncation
    st, body = sql(peer, "SELECT name FROM people WHERE id = ? OR id = ? ORDER BY id", params=[3, 4])
    t.check(st == 200 and body["rows"] == [["name 3"], ["name 4"]], "positional params", body)
    st, body = sql(peer, "SELECT count(*) FROM people WHERE state = :s AND score > $min",
                   params={"s": "PA", "min": 100})
    t.check(st == 200 and body["rows"] == [[33]], "named params", body)
    st, body = sql(peer, "SELECT :nope", params={"other": 1})
    t.check(st == 400, "unknown param: 400", (st, body))
    st, body = sql(peer, "SELECT id FROM people ORDER BY id")
    t.check(st == 200 and body["row_count"] == 50 and body["truncated"] is True,
            "no limit: queryd/row_limit rows, truncated", (body["row_count"], body["truncated"]))
    st, body = sql(peer, "SELECT id FROM people ORDER BY id", limit=10)
    t.check(st == 200 and body["rows"] == [[i] for i in range(1, 11)] and body["truncated"] is True,
            "limit 10: 10 rows, truncated", body)
    st, body = sql(peer, "SELECT id FROM people ORDER BY id", limit=100000)
    t.check(st == 200 and body["row_count"] == 200 and body["truncated"] is False,
            "limit over row_max is capped; all 200 rows fit", (body["row_count"], body["truncated"]))
    st, body = sql(peer, "SELECT 1 AS one, 2.5 AS two, 'x' AS three, NULL AS four, x'00ff' AS five")
    t.check(st == 200 and [c["type"] for c in body["columns"]] == ["BIGINT", "DOUBLE", "VARCHAR",
                                                                   "NULL", "BLOB"]
            and body["rows"] == [[1, 2.5, "x", None, b"\x00\xff"]],
            "computed columns typed by value", body)
    st, body = sql(peer, "")
    t.check(st == 400, "empty sql: 400", (st, body))
    st, body = call(peer, "queryd", "sql", {"sql": "SELECT 1", "limit": -1})
    t.check(st == 400, "negative limit: 400", (st, body))

    #  A broken dataset fails only its own statements; no paths in errors
    st, body = call(peer, "catalogd", "register",
                    {"name": "broken", "schema_fingerprint": "f" * 64,
                     "schema": [{"name": "x", "type": "BIGINT"}],
                     "objects": ["datasets/broken/nothing.sqlite"], "row_count": 1})
    t.check(st in (200, 201), "a manifest pointing at nothing", (st, body))
    st, body = call(peer, "storaged", "put", {"key": "datasets/garbage/x.sqlite",
                                              "data": b"not a database at all" * 100})
    st, body = call(peer, "catalogd", "register",
                    {"name": "garbage", "schema_fingerprint": "e" * 64,
                     "objects": ["datasets/garbage/x.sqlite"], "row_count": 1})
    for name in ("broken", "garbage"):
        st, body = sql(peer, "SELECT * FROM %s" % name)
        t.check(st == 503 and body["error"]["kind"] == "dataset_unavailable"
                and t.tmp not in reason(body) and "/var" not in reason(body),
                "%s dataset: 503 without paths (%s)" % (name, reason(body)), (st, body))
        st, body = sql(peer, "SELECT count(*) FROM people")
        t.check(st == 200 and body["rows"] == [[200]], "people still answers", (st, body))
    st, body = sql(peer, "SELECT * FROM no_such_thing")
    t.check(st == 400 and "no such table" in reason(body) and t.tmp not in reason(body),
            "unknown table: 400 (%s)" % reason(body), (st, body))

    #  Quoted identifiers; a dataset name with '.' and '-'
    st, body = ingest(peer, "my.data-2024", b"a\n1\n2\n")
    st, body = sql(peer, 'SELECT sum(a) FROM "my.data-2024"')
    t.check(st == 200 and body["rows"] == [[3]], "quoted identifier with . and -", (st, body))

    #  Deleting from the catalog: catalog.changed, then the table is gone
    st, body = call(peer, "catalogd", "delete", {"name": "my.data-2024"})
    t.check(st == 200, "dataset deleted from the catalog", (st, body))
    deadline = lhtest.now() + 10.0
    while True:
        st, body = sql(peer, 'SELECT sum(a) FROM "my.data-2024"')
        if st == 400 or lhtest.now() > deadline:
            break
        peer.idle(0.05)
    t.check(st == 400 and "no such table" in reason(body),
            "queryd followed the delete", (st, body))


if __name__ == "__main__":
    lhtest.run(main, budget=120)
