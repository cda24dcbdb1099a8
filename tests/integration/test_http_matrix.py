#!/usr/bin/python3
"""test_http_matrix - matrixd over HTTP: the original's playbook smoke.

`lakehouse up` with storaged, embedd, vectord and matrixd behind the
gateway. Two corpora are built with vectors at chosen cosine distances
from the embedding e of the query text (vectors e cos + u sin, u
orthogonal to e), so every rank and distance is known:

    alpha: a1 .05  a2 .20  a3 .30  a4 .42  a5 .48
    beta:  b1 .35  a3 .38  b2 .45  b9 .90

Checked through /v1/matrix/...: the cold search has a3@alpha at rank 3 at
distance d; a missing playbook_memory changes nothing; after
playbooks/record (query, a3, alpha, 1.0) the same search with use_playbook
gives it d x 0.5 exactly and rank 2, score 0.5 gives d x 0.75, score 0
leaves it alone; beta's a3 (same id, other corpus) is never boosted; an
entry 0.15 from the query is injected, one 0.25 away is not; exclude_ids
over the nearest hits still gives k hits, none of them excluded; a missing
corpus is 404 corpus_not_found naming it; corpora, relevance and
downgrade answer on their routes; a second matrixd in `lakehouse node`
answers the same (matrixd keeps no state).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest    # noqa: E402
import lhmatrix    # noqa: E402
from test_gateway_util import up    # noqa: E402

DIM = 64
QUERY = "night shift welder in Columbus"
ALPHA = [("a1", 0.05), ("a2", 0.20), ("a3", 0.30), ("a4", 0.42), ("a5", 0.48)]
BETA = [("b1", 0.35), ("a3", 0.38), ("b2", 0.45), ("b9", 0.90)]


def main(t):
    b, h = up(t, "storaged,embedd,vectord,matrixd", sets={"embedd/dim": DIM})
    call = lhmatrix.caller(h)

    st, body = call("POST", "/v1/embed", {"texts": [QUERY]})
    t.check(st == 200 and body["dim"] == DIM, "the query embeds at dim %d" % DIM, (st, body))
    e = body["vectors"][0]
    u = lhmatrix.orthogonal([e], 0)
    w = lhmatrix.orthogonal([e, u], 1)
    for name, items in (("alpha", ALPHA), ("beta", BETA)):
        st, body = call("POST", "/v1/vectors/index", {"name": name, "dim": DIM, "metric": "cosine"})
        t.check(st == 201, "corpus %s created" % name, (st, body))
        st, body = call("POST", "/v1/vectors/index/%s/add" % name,
                        {"items": [{"id": i, "vector": lhmatrix.mix(e, u, d),
                                    "metadata": {"name": i}} for i, d in items]})
        t.check(st == 200 and body["count"] == len(items), "%d vectors in %s" % (len(items), name),
                (st, body))

    search = {"query_text": QUERY, "corpora": ["alpha", "beta"], "k": 5}
    st, cold = call("POST", "/v1/matrix/search", search)
    t.check(st == 200 and lhmatrix.order(cold) == ["a1@alpha", "a2@alpha", "a3@alpha", "b1@beta",
                                                   "a3@beta"],
            "cold search merges both corpora by distance", (st, cold))
    target, rank = lhmatrix.hit(cold, "a3", "alpha")
    d = target["distance"]
    t.check(rank == 2 and abs(d - 0.30) < 1e-4 and "boosted" not in target,
            "a3@alpha is at rank 3, distance d = %.6f" % d, target)
    t.check(cold["count"] == 5 and cold["hits"][0]["metadata"] == {"name": "a1"},
            "hits carry count and metadata", cold["hits"][0])

    st, warm = call("POST", "/v1/matrix/search", dict(search, use_playbook=True))
    t.check(st == 200 and warm["hits"] == cold["hits"],
            "no playbook_memory index yet: use_playbook changes nothing", (st, warm))

    for score, factor, want_rank in ((1.0, 0.5, 1), (0.5, 0.75, 2), (0, 1.0, 2)):
        st, body = call("POST", "/v1/matrix/playbooks/record",
                        {"query_text": QUERY, "answer_id": "a3", "answer_corpus": "alpha",
                         "score": score, "tags": ["smoke"]})
        t.check(st == 200 and len(body["playbook_id"]) == 64
                and body["playbook_corpus"] == "playbook_memory",
                "playbooks/record score %s" % score, (st, body))
        st, warm = call("POST", "/v1/matrix/search", dict(search, use_playbook=True))
        got, rank = lhmatrix.hit(warm, "a3", "alpha")
        if factor < 1.0:
            t.check(got["distance"] == d * factor and got.get("boosted") is True
                    and got["original_distance"] == d and rank == want_rank,
                    "score %s: a3@alpha at exactly d x %s, rank %d (cold: 3)"
                    % (score, factor, want_rank + 1), (got, rank))
        else:
            t.check(got["distance"] == d and "boosted" not in got
                    and "original_distance" not in got and rank == 2,
                    "score 0 leaves a3@alpha alone", (got, rank))
        other, _ = lhmatrix.hit(warm, "a3", "beta")
        t.check(other is not None and "boosted" not in other and abs(other["distance"] - 0.38) < 1e-4,
                "score %s: the same id in beta is not boosted" % score, other)
    st, body = call("GET", "/v1/vectors/index/playbook_memory")
    t.check(st == 200 and body["count"] == 1 and body["dim"] == DIM and body["metric"] == "cosine",
            "one entry (the last score won) in playbook_memory, created with the embedder's dim",
            (st, body))

    #  Injection: an entry for b9 (beta, distance .90: never fetched)
    st, body = call("POST", "/v1/matrix/playbooks/bulk",
                    {"entries": [{"query_text": QUERY, "answer_id": "b9", "answer_corpus": "beta",
                                  "score": 1.0}]})
    t.check(st == 200 and body["recorded"] == 1 and len(body["playbook_ids"]) == 1,
            "playbooks/bulk records one entry", (st, body))
    near = {"vector": lhmatrix.mix(e, w, 0.15), "corpora": ["alpha", "beta"], "k": 3,
            "per_corpus_k": 2, "use_playbook": True}
    st, body = call("POST", "/v1/matrix/search", near)
    got, rank = lhmatrix.hit(body, "b9", "beta")
    t.check(st == 200 and rank == 0 and got.get("injected") is True
            and abs(got["distance"] - 0.15) < 1e-4 and len(body["hits"]) == 3,
            "an entry 0.15 from the query injects its answer", (st, body))
    st, body = call("POST", "/v1/matrix/search", dict(near, vector=lhmatrix.mix(e, w, 0.25)))
    got, _ = lhmatrix.hit(body, "b9", "beta")
    t.check(st == 200 and got is None and len(body["hits"]) == 3,
            "an entry 0.25 from the query does not", (st, body))

    #  exclude_ids over the nearest hits: still k, none excluded
    st, body = call("POST", "/v1/matrix/search",
                    {"query_text": QUERY, "corpora": ["alpha", "beta"], "k": 3,
                     "exclude_ids": ["a1", "a2", "a3"]})
    t.check(st == 200 and lhmatrix.order(body) == ["b1@beta", "a4@alpha", "b2@beta"],
            "exclude_ids covering the nearest hits: still 3, none excluded", (st, body))

    st, body = call("POST", "/v1/matrix/search", {"query_text": QUERY, "corpora": ["alpha", "nosuch"]})
    t.check(st == 404 and body["error"]["kind"] == "corpus_not_found"
            and "'nosuch'" in body["error"]["reason"] and body["error"]["field"] == "corpora",
            "a missing corpus is 404 corpus_not_found naming it", (st, body))
    st, body = call("POST", "/v1/matrix/search", {"corpora": ["alpha"], "k": 0, "query_text": "x"})
    t.check(st == 400 and body["error"]["field"] == "k", "a bad k is 400 naming it", (st, body))

    st, body = call("GET", "/v1/matrix/corpora")
    names = {c["name"]: c for c in body["corpora"]} if st == 200 else {}
    t.check(st == 200 and names.get("alpha") == {"name": "alpha", "dim": DIM, "metric": "cosine",
                                                 "count": 5} and "playbook_memory" in names,
            "GET /v1/matrix/corpora lists the indexes", (st, body))
    st, body = call("POST", "/v1/matrix/relevance",
                    {"focus": {"path": "src/a.rs", "defined_symbols": ["merge"]},
                     "chunks": [{"path": "src/a.rs", "text": "fn merge"}, "unrelated"]})
    t.check(st == 200 and [c["index"] for c in body["kept"]] == [0]
            and [c["index"] for c in body["dropped"]] == [1],
            "POST /v1/matrix/relevance keeps and drops", (st, body))
    st, body = call("POST", "/v1/matrix/downgrade",
                    {"mode": "codereview_lakehouse", "model": "openrouter/openai/gpt-5"})
    t.check(st == 200 and body["mode"] == "codereview_isolation"
            and body["downgraded_from"] == "codereview_lakehouse",
            "POST /v1/matrix/downgrade downgrades a strong model", (st, body))
    st, body = call("POST", "/v1/matrix/downgrade", {"mode": "", "model": "x"})
    t.check(st == 400 and body["error"]["field"] == "mode", "an empty mode is 400", (st, body))

    #  matrixd keeps no state: a second instance in `lakehouse node` serves
    #  the same answers beside the first
    t.node(b.endpoint, actors="matrixd", workers=2)
    peer = t.client(b.endpoint)
    t.wait_workers(peer, "matrixd", 3)
    for _ in range(6):
        st, body = call("POST", "/v1/matrix/search", dict(search, use_playbook=True))
        got, rank = lhmatrix.hit(body, "a3", "alpha")
        t.check(st == 200 and got["distance"] == d and rank == 2,
                "a search answered by either instance is the same", (st, body))


if __name__ == "__main__":
    lhtest.run(main)
