#!/usr/bin/python3
"""test_matrix_load - playbook records and playbook searches at once.

`lakehouse up` with storaged, embedd, vectord (2 workers) and matrixd (4
workers) behind the gateway, a 200-worker corpus. 8 client threads record
1,000 playbook entries between them (POST /v1/matrix/playbooks/record,
each a distinct query and answer) while 8 other threads search the corpus
with use_playbook until the recorders are done. No request may fail (the
original's HNSW crashed exactly here; run under `make asan` too). Then
every recorded entry is found: playbook_memory holds 1,000 entries, and
searching each entry's query text in it gives that entry's playbook_id
first, at distance ~0.
"""

import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest    # noqa: E402
import lhmatrix    # noqa: E402
from test_gateway_util import up    # noqa: E402

RECORDERS = 8
SEARCHERS = 8
RECORDS = 1000
WORKERS = 200
ROLES = ["welder", "forklift operator", "line cook", "nurse", "electrician", "picker packer",
         "machinist", "truck driver"]
CITIES = ["Columbus", "Dayton", "Toledo", "Akron", "Cleveland", "Detroit", "Chicago", "Houston"]
SHIFTS = ["day", "night", "swing", "weekend"]


def worker_text(n):
    return "%s %s shift in %s, worker %d" % (ROLES[n % 8], SHIFTS[(n // 8) % 4], CITIES[(n // 32) % 8], n)


def query_text(n):
    return "need a %s for %s shifts near %s, request %d" % (
        ROLES[(n * 7) % 8], SHIFTS[n % 4], CITIES[(n * 3) % 8], n)


def main(t):
    _, h = up(t, "storaged,embedd,vectord,matrixd", sets={
        "embedd/dim": 128, "actors/vectord/workers": 2, "actors/matrixd/workers": 4,
        "gateway/threads": 4}, timeout=60)
    call = lhmatrix.caller(h)
    st, body = call("POST", "/v1/embed", {"texts": [worker_text(n) for n in range(WORKERS)]})
    t.check(st == 200, "embedded %d workers" % WORKERS, st)
    st, _ = call("POST", "/v1/vectors/index", {"name": "roster", "dim": 128})
    st, body = call("POST", "/v1/vectors/index/roster/add",
                    {"items": [{"id": "w%d" % n, "vector": v} for n, v in enumerate(body["vectors"])]})
    t.check(st == 200 and body["count"] == WORKERS, "corpus roster holds %d workers" % WORKERS, (st, body))

    errors = []
    ids = {}
    lock = threading.Lock()
    done = threading.Event()
    searches = [0]

    def recorder(first):
        rec = lhmatrix.caller(h)
        for n in range(first, RECORDS, RECORDERS):
            st, body = rec("POST", "/v1/matrix/playbooks/record",
                           {"query_text": query_text(n), "answer_id": "w%d" % (n % WORKERS),
                            "answer_corpus": "roster", "score": (n % 11) / 10.0})
            with lock:
                if st != 200:
                    errors.append(("record", n, st, body))
                else:
                    ids[n] = body["playbook_id"]

    def searcher(first):
        cli = lhmatrix.caller(h)
        n = first
        while not done.is_set():
            st, body = cli("POST", "/v1/matrix/search",
                           {"query_text": query_text(n % RECORDS), "corpora": ["roster"], "k": 5,
                            "use_playbook": True})
            with lock:
                searches[0] += 1
                if st != 200 or len(body["hits"]) != 5:
                    errors.append(("search", n, st, body))
            n += SEARCHERS

    threads = [threading.Thread(target=recorder, args=(i,)) for i in range(RECORDERS)]
    seekers = [threading.Thread(target=searcher, args=(i,)) for i in range(SEARCHERS)]
    for thread in threads + seekers:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    for thread in seekers:
        thread.join()
    t.note("%d searches ran while %d records were written" % (searches[0], RECORDS))
    t.check(not errors, "no request failed (%d records, %d searches)" % (RECORDS, searches[0]),
            errors[:3])
    t.check(len(ids) == RECORDS and len(set(ids.values())) == RECORDS,
            "%d distinct playbook ids" % RECORDS, len(ids))
    t.check(searches[0] >= SEARCHERS, "the searchers ran during the records", searches[0])

    st, body = call("GET", "/v1/vectors/index/playbook_memory")
    t.check(st == 200 and body["count"] == RECORDS, "playbook_memory holds %d entries" % RECORDS,
            (st, body))
    missing = []
    for n in range(RECORDS):
        st, body = call("POST", "/v1/matrix/search",
                        {"query_text": query_text(n), "corpora": ["playbook_memory"], "k": 1, "ef": 200})
        top = body["hits"][0] if st == 200 and body["hits"] else {}
        if top.get("id") != ids[n] or top.get("distance", 1) > 1e-4 \
                or top.get("metadata", {}).get("answer_id") != "w%d" % (n % WORKERS):
            missing.append((n, st, top))
    t.check(not missing, "every recorded entry is found by its query text", missing[:3])


if __name__ == "__main__":
    lhtest.run(main, budget=280)
