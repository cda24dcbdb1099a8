#!/usr/bin/python3
"""test_limits_services - every service limit reached over the bus, with
the documented status and nothing lost or changed by the refusal
(`lakehouse up` running storaged, catalogd, ingestd, queryd, vectord and
embedd, the limits set small with --set):

- vectord/dim_max (8): dim 8 creates, dim 9 is 400 bad_field naming 'dim'
  and no index is made; vectord/batch_max (10): an add of 10 items is 200,
  of 11 is 413 too_large and the index still holds exactly the first 10,
  each its own nearest neighbour; a delete of 11 ids is 400 and deletes
  nothing; vectord/k_max (5): k 5 answers 5 hits, k 6 and ef 6 are 400
  bad_field naming the field, also ef 6 at create (docs/vectord.md);
- embedd/texts_max (4) and embedd/text_max (32 bytes): 4 texts and a
  32-byte text are 200, 5 texts and a 33-byte text are 413 too_large, and
  the refusals leave the cache statistics untouched (docs/embedd.md);
- embedd/cache_entries (3): one text per call, the hits and misses
  counted each time: after 4 distinct texts the cache holds 3 (size never
  passes capacity); the least recently used text was evicted and is a miss
  again (with the same vector); a text used recently survives an eviction
  that FIFO would have given it, and the one not used since is evicted;
- queryd/row_max (150) actually reached: SELECT over a 200-row dataset
  with limit 100000 (or exactly 150) answers exactly rows 1..150, in order,
  with truncated true; without a limit row_limit (50) applies; the dataset
  still counts 200 rows (docs/queryd.md).
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest                                   # noqa: E402
from test_ingest import call, ingest, sql       # noqa: E402

DIM_MAX, K_MAX, BATCH_MAX = 8, 5, 10
TEXTS_MAX, TEXT_MAX, CACHE = 4, 32, 3
ROW_LIMIT, ROW_MAX, ROWS = 50, 150, 200


def kind(body):
    try:
        return body["error"]["kind"]
    except Exception:
        return None


def field_named(body, name):
    """The error names the field: in 'field' or in the reason."""
    try:
        err = body["error"]
    except Exception:
        return False
    return err.get("field") == name or ("'%s'" % name) in err.get("reason", "")


def unit(i, dim):
    v = [0.0] * dim
    v[i % dim] = 1.0
    v[(i * 3 + 1) % dim] += 0.5 + i / 100.0
    return v


def vectord_limits(t, peer):
    st, body = call(peer, "vectord", "create", {"name": "lim", "dim": DIM_MAX, "metric": "l2"})
    t.check(st == 201, "vectord: dim %d (= dim_max) creates" % DIM_MAX, (st, body))
    st, body = call(peer, "vectord", "create", {"name": "toowide", "dim": DIM_MAX + 1})
    t.check(st == 400 and kind(body) == "bad_field" and field_named(body, "dim"),
            "vectord: dim %d (> dim_max) -> 400 bad_field naming 'dim'" % (DIM_MAX + 1),
            (st, body))
    st, body = call(peer, "vectord", "create", {"name": "toodeep", "dim": 4, "ef": K_MAX + 1})
    t.check(st == 400 and kind(body) == "bad_field" and field_named(body, "ef"),
            "vectord: create with ef %d (> k_max) -> 400 bad_field naming 'ef'" % (K_MAX + 1),
            (st, body))
    st, body = call(peer, "vectord", "list")
    names = sorted(i["name"] for i in body["indexes"]) if st == 200 else body
    t.check(names == ["lim"], "vectord: the refused creates made no index", names)

    items = [{"id": "v%d" % i, "vector": unit(i, DIM_MAX), "metadata": {"i": i}}
             for i in range(BATCH_MAX)]
    st, body = call(peer, "vectord", "add", {"name": "lim", "items": items})
    t.check(st == 200 and body.get("count") == BATCH_MAX,
            "vectord: an add of %d items (= batch_max) -> 200" % BATCH_MAX, (st, body))
    more = [{"id": "w%d" % i, "vector": unit(i + 50, DIM_MAX)} for i in range(BATCH_MAX + 1)]
    st, body = call(peer, "vectord", "add", {"name": "lim", "items": more})
    t.check(st == 413 and kind(body) == "too_large",
            "vectord: an add of %d items (> batch_max) -> 413 too_large" % (BATCH_MAX + 1),
            (st, body))
    st, body = call(peer, "vectord", "delete",
                    {"name": "lim", "ids": ["v%d" % i for i in range(BATCH_MAX)] + ["x"]})
    t.check(st == 400 and kind(body) == "bad_field",
            "vectord: a delete of %d ids (> batch_max) -> 400 bad_field" % (BATCH_MAX + 1),
            (st, body))
    st, body = call(peer, "vectord", "info", {"name": "lim"})
    t.check(st == 200 and body["count"] == BATCH_MAX,
            "vectord: the index still holds exactly %d vectors" % BATCH_MAX, (st, body))
    lost = []
    for i in range(BATCH_MAX):
        st, hits = call(peer, "vectord", "search", {"name": "lim", "vector": unit(i, DIM_MAX),
                                                     "k": 1})
        if st != 200 or not hits or hits[0]["id"] != "v%d" % i or hits[0]["metadata"] != {"i": i}:
            lost.append((i, st, hits))
    t.check(not lost, "vectord: every vector of the accepted add is its own nearest, "
            "metadata intact; none of the refused add's", lost)

    st, body = call(peer, "vectord", "search", {"name": "lim", "vector": unit(0, DIM_MAX),
                                                 "k": K_MAX})
    t.check(st == 200 and len(body) == K_MAX, "vectord: k %d (= k_max) -> %d hits" % (K_MAX, K_MAX),
            (st, body))
    st, body = call(peer, "vectord", "search", {"name": "lim", "vector": unit(0, DIM_MAX),
                                                 "k": K_MAX + 1})
    t.check(st == 400 and kind(body) == "bad_field" and field_named(body, "k"),
            "vectord: k %d (> k_max) -> 400 bad_field naming 'k'" % (K_MAX + 1), (st, body))
    st, body = call(peer, "vectord", "search", {"name": "lim", "vector": unit(0, DIM_MAX),
                                                 "k": 1, "ef": K_MAX + 1})
    t.check(st == 400 and kind(body) == "bad_field" and field_named(body, "ef"),
            "vectord: ef %d (> k_max) -> 400 bad_field naming 'ef'" % (K_MAX + 1), (st, body))


def embed(peer, texts):
    return call(peer, "embedd", "embed", {"texts": texts})


def embedd_limits(t, peer):
    st, before = call(peer, "embedd", "stats")
    t.check(st == 200 and before["capacity"] == CACHE and before["size"] == 0,
            "embedd: an empty cache of capacity %d" % CACHE, before)
    texts = ["limit text %d" % i for i in range(TEXTS_MAX + 1)]
    st, body = embed(peer, texts)
    t.check(st == 413 and kind(body) == "too_large",
            "embedd: %d texts (> texts_max) -> 413 too_large" % (TEXTS_MAX + 1), (st, body))
    long = "x" * (TEXT_MAX + 1)
    st, body = embed(peer, ["short", long])
    t.check(st == 413 and kind(body) == "too_large",
            "embedd: a %d-byte text (> text_max) -> 413 too_large" % (TEXT_MAX + 1), (st, body))
    st, after = call(peer, "embedd", "stats")
    t.check(after == before, "embedd: the refused requests changed no cache statistics",
            (before, after))
    st, body = embed(peer, ["y" * TEXT_MAX])
    t.check(st == 200 and len(body["vectors"]) == 1,
            "embedd: a %d-byte text (= text_max) -> 200" % TEXT_MAX, (st, body))

    #  The LRU (capacity 3), one text per call so the order is explicit.
    #  The cache holds Y (the 32-byte text) now.
    st, s0 = call(peer, "embedd", "stats")
    vectors = {}

    def step(text, hit, what):
        st, body = embed(peer, [text])
        st2, after = call(peer, "embedd", "stats")
        before = step.last
        step.last = after
        ok = (st == 200 and st2 == 200
              and after["hits"] - before["hits"] == (1 if hit else 0)
              and after["misses"] - before["misses"] == (0 if hit else 1)
              and after["size"] <= after["capacity"] == CACHE)
        if text in vectors:
            ok = ok and body["vectors"][0] == vectors[text]
        vectors[text] = body["vectors"][0]
        t.check(ok, "embedd: %s -> %s (size %d of %d)"
                % (what, "hit" if hit else "miss", after["size"], after["capacity"]),
                (st, before, after))
        return after
    step.last = s0
    y = "y" * TEXT_MAX
    step(y, True, "the 32-byte text again")
    step("alpha", False, "alpha")
    step("beta", False, "beta")
    after = step("gamma", False, "gamma, a 4th distinct text")
    t.check(after["size"] == CACHE, "embedd: the size stays at cache_entries (%d)" % CACHE, after)
    step(y, False, "the least recently used text, evicted by gamma, is a miss again "
                   "(same vector)")
    step("beta", True, "beta, still cached")
    step("delta", False, "delta (evicts gamma, the least recently used; FIFO would evict beta)")
    step("beta", True, "beta, recently used, is kept")
    step("gamma", False, "gamma was evicted")
    step("alpha", False, "alpha was evicted long ago")


def queryd_limits(t, peer):
    rows = "".join("%d,name %d\n" % (i, i) for i in range(1, ROWS + 1))
    st, body = ingest(peer, "many", ("id,name\n" + rows).encode())
    t.check(st == 200 and body["row_count"] == ROWS, "queryd: a %d-row dataset" % ROWS, (st, body))
    want = [[i] for i in range(1, ROW_MAX + 1)]
    for limit in (100000, ROW_MAX + 1, ROW_MAX):
        st, body = sql(peer, "SELECT id FROM many ORDER BY id", limit=limit)
        t.check(st == 200 and body["row_count"] == ROW_MAX and body["rows"] == want
                and body["truncated"] is True,
                "queryd: limit %d over %d rows -> exactly row_max (%d) rows, 1..%d in order, "
                "truncated" % (limit, ROWS, ROW_MAX, ROW_MAX),
                (st, body.get("row_count"), body.get("truncated")) if st == 200 else body)
    st, body = sql(peer, "SELECT id FROM many ORDER BY id")
    t.check(st == 200 and body["row_count"] == ROW_LIMIT and body["truncated"] is True
            and body["rows"] == want[:ROW_LIMIT],
            "queryd: no limit -> row_limit (%d) rows, truncated" % ROW_LIMIT,
            (st, body.get("row_count")))
    st, body = sql(peer, "SELECT id FROM many WHERE id > ? ORDER BY id", params=[ROWS - ROW_MAX],
                   limit=100000)
    t.check(st == 200 and body["row_count"] == ROW_MAX and body["truncated"] is False,
            "queryd: exactly row_max rows in the result -> all of them, not truncated",
            (st, body.get("row_count"), body.get("truncated")))
    st, body = sql(peer, "SELECT count(*), sum(id) FROM many")
    t.check(st == 200 and body["rows"] == [[ROWS, ROWS * (ROWS + 1) // 2]],
            "queryd: the dataset still has all %d rows" % ROWS, (st, body))


def main(t):
    b = t.up(actors="storaged,catalogd,ingestd,queryd,vectord,embedd", workers=1, sets={
        "vectord/dim_max": DIM_MAX, "vectord/k_max": K_MAX, "vectord/batch_max": BATCH_MAX,
        "vectord/snapshot_ms": 0,
        "embedd/provider": "hash", "embedd/dim": 16, "embedd/cache_entries": CACHE,
        "embedd/texts_max": TEXTS_MAX, "embedd/text_max": TEXT_MAX,
        "queryd/row_limit": ROW_LIMIT, "queryd/row_max": ROW_MAX,
        "gateway/listen": "",
    })
    peer = t.client(b.endpoint)
    for svc in ("vectord", "embedd", "queryd", "ingestd"):
        t.wait_workers(peer, svc, 1)
    vectord_limits(t, peer)
    embedd_limits(t, peer)
    queryd_limits(t, peer)


if __name__ == "__main__":
    lhtest.run(main)
