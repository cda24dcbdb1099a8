#!/usr/bin/python3
"""250 small datasets ingested, each queryable by name through queryd (which
attaches at most 10 at once and detaches the least recently used), a JOIN of
the first and the last, ten datasets in one statement, and an eleventh
refused with a clear 400."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402
from test_ingest import data_harness, ingest, sql, reason  # noqa: E402

COUNT = 250


def name(index):
    return "ds_%03d" % index


def main(t):
    _, endpoint = data_harness(t, workers=2)
    peer = t.client(endpoint)
    t.wait_workers(peer, "ingestd", 2)
    t.wait_workers(peer, "queryd", 2)
    failed = []
    for index in range(COUNT):
        rows = "".join("%d,%s-%d,%d\n" % (k, name(index), k, index * 100 + k) for k in range(1, 6))
        st, body = ingest(peer, name(index), ("k,label,v\n" + rows).encode())
        if st != 200 or body["row_count"] != 5:
            failed.append((index, st, body))
    t.check(not failed, "%d datasets ingested" % COUNT, failed[:3])

    wrong = []
    for index in range(COUNT):
        st, body = sql(peer, "SELECT count(*), sum(v) FROM %s" % name(index))
        if st != 200 or body["rows"] != [[5, 5 * index * 100 + 15]]:
            wrong.append((index, st, body))
    t.check(not wrong, "each of the %d datasets answers by its name" % COUNT, wrong[:3])

    first, last = name(0), name(COUNT - 1)
    st, body = sql(peer, "SELECT a.k, a.label, b.label, a.v + b.v FROM %s a JOIN \"%s\" b "
                         "USING (k) ORDER BY a.k" % (first, last))
    want = [[k, "%s-%d" % (first, k), "%s-%d" % (last, k), k + (COUNT - 1) * 100 + k]
            for k in range(1, 6)]
    t.check(st == 200 and body["rows"] == want, "JOIN of the first and the last dataset",
            (st, body))

    ten = " UNION ALL ".join("SELECT count(*) FROM %s" % name(i) for i in range(100, 110))
    st, body = sql(peer, "SELECT sum(c) FROM (SELECT 0 AS c UNION ALL %s)"
                   % ten.replace("SELECT count(*)", "SELECT count(*) AS c", 1))
    t.check(st == 200 and body["rows"] == [[50]], "ten datasets in one statement", (st, body))
    eleven = " UNION ALL ".join("SELECT k FROM %s" % name(i) for i in range(120, 131))
    st, body = sql(peer, eleven)
    t.check(st == 400 and body["error"]["kind"] == "too_many_datasets",
            "eleven datasets in one statement: 400 (%s)" % reason(body), (st, body))
    st, body = sql(peer, "SELECT count(*) FROM %s" % first)
    t.check(st == 200 and body["rows"] == [[5]], "still serving after the refusal", (st, body))


if __name__ == "__main__":
    lhtest.run(main, budget=240)
