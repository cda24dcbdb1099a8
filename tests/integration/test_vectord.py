#!/usr/bin/python3
"""vectord over the bus (tests/bin/lh_vector_harness: broker + storaged in
one process, vectord in another):

- ops and errors of SPEC 5.5: create 201 / 409, missing index 404, dim
  mismatch 400, NaN / Inf / zero norm rejected with nothing of the batch
  written, re-add replaces, metadata absent keeps and {} clears, exclude_ids
  and filter still return k, 1- and 2-element indexes under writes, delete
  then search, drop then create;
- kill -9 of vectord after acknowledged adds and deletes (some only in the
  log, after a snapshot): the restarted vectord has every acknowledged
  vector, restored from snapshot + log;
- a torn snapshot in storaged (bytes flipped in the graph object) is caught
  by the manifest's SHA-256 and the index is rebuilt from the log.
"""

import glob
import math
import os
import random
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402

READY = re.compile(r"harness ready on (tcp://\S+) pid (\d+)")
DIM = 8


def harness(t, services, broker=None, sets=None):
    path = os.path.join(t.build, "lh_vector_harness")
    if not os.access(path, os.X_OK):
        raise lhtest.Skip("%s is not built" % path)
    args = [path, "--services", services]
    if broker:
        args += ["--broker", broker]
    for key, value in (sets or {}).items():
        args += ["--set", "%s=%s" % (key, value)]
    t.counter += 1
    proc = lhtest.Proc(args, "vharness%d" % t.counter, t.tmp, dict(os.environ))
    t.procs.append(proc)
    m = proc.wait_line(READY, 30.0)
    t.note("harness pid %d (%s) on %s" % (proc.pid, services, m.group(1)))
    return proc, m.group(1)


def call(peer, op, body=None, timeout=20.0, svc="vectord"):
    """svc.op -> (status, body); retries while a killed worker is still
    listed (503) for up to 10 s."""
    deadline = lhtest.now() + 10
    while True:
        rep = peer.call(svc, op, body, timeout=timeout, q=True, dl=int(timeout * 1000))
        if rep is None:
            raise lhtest.Failure("no reply to %s.%s" % (svc, op))
        if rep.st != 503 or lhtest.now() > deadline:
            return rep.st, rep.obj


def kind(body):
    try:
        return body["error"]["kind"]
    except Exception:
        return None


def vec(rng):
    return [rng.uniform(-1, 1) for _ in range(DIM)]


def edge_cases(t, peer):
    st, body = call(peer, "create", {"name": "e", "dim": DIM, "metric": "cosine"})
    t.check(st == 201 and body["dim"] == DIM, "create 201", (st, body))
    st, body = call(peer, "create", {"name": "e", "dim": DIM})
    t.check(st == 409 and kind(body) == "index_exists", "duplicate create 409", (st, body))
    st, body = call(peer, "search", {"name": "nope", "vector": [1.0] * DIM})
    t.check(st == 404 and kind(body) == "no_such_index", "missing index 404", (st, body))
    st, body = call(peer, "add", {"name": "e", "items": [{"id": "a", "vector": [1.0] * (DIM + 1)}]})
    t.check(st == 400 and kind(body) == "dim_mismatch", "dim mismatch 400", (st, body))
    #  Empty index, then 1 and 2 elements with writes in between
    st, body = call(peer, "search", {"name": "e", "vector": [1.0] * DIM, "k": 3})
    t.check(st == 200 and body == [], "search of an empty index: []", (st, body))
    one = [1.0] + [0.0] * (DIM - 1)
    two = [0.0, 1.0] + [0.0] * (DIM - 2)
    st, _ = call(peer, "add", {"name": "e", "items": [{"id": "a", "vector": one,
                                                      "metadata": {"color": "red", "n": 1}}]})
    t.check(st == 200, "add 1 element")
    st, body = call(peer, "search", {"name": "e", "vector": one, "k": 5})
    t.check(st == 200 and [r["id"] for r in body] == ["a"] and abs(body[0]["distance"]) < 1e-5,
            "1-element index answers", body)
    st, _ = call(peer, "add", {"name": "e", "items": [{"id": "b", "vector": two}]})
    st, body = call(peer, "search", {"name": "e", "vector": two, "k": 5})
    t.check([r["id"] for r in body] == ["b", "a"], "2-element index answers nearest first", body)
    #  NaN / Inf / zero norm: the whole batch is refused, nothing written
    for bad, want in ((float("nan"), "bad_vector"), (float("inf"), "bad_vector"), (0.0, "zero_norm")):
        v = [bad] * DIM if want == "zero_norm" else [bad] + [1.0] * (DIM - 1)
        st, body = call(peer, "add", {"name": "e", "items": [
            {"id": "c", "vector": one}, {"id": "d", "vector": v}]})
        t.check(st == 400 and kind(body) == want, "%r refused: %s" % (bad, want), (st, body))
    st, body = call(peer, "info", {"name": "e"})
    t.check(body["count"] == 2, "refused batches wrote nothing", body)
    #  Re-add replaces; metadata absent keeps; {} clears
    st, _ = call(peer, "add", {"name": "e", "items": [{"id": "a", "vector": two}]})
    st, body = call(peer, "search", {"name": "e", "vector": two, "k": 5})
    a = [r for r in body if r["id"] == "a"]
    t.check(len(body) == 2 and a and abs(a[0]["distance"]) < 1e-5, "re-add replaced the vector", body)
    t.check(a[0]["metadata"] == {"color": "red", "n": 1}, "metadata absent keeps it", a)
    st, _ = call(peer, "add", {"name": "e", "items": [{"id": "a", "vector": two, "metadata": {}}]})
    st, body = call(peer, "search", {"name": "e", "vector": two, "k": 5})
    t.check([r["metadata"] for r in body if r["id"] == "a"] == [{}], "{} clears metadata", body)
    #  Delete then search; drop then create
    st, body = call(peer, "delete", {"name": "e", "ids": ["a", "zz"]})
    t.check(st == 200 and body["deleted"] == 1, "delete 1 of 2 ids", body)
    st, body = call(peer, "search", {"name": "e", "vector": two, "k": 5})
    t.check([r["id"] for r in body] == ["b"], "deleted id no longer found", body)
    st, _ = call(peer, "drop", {"name": "e"})
    t.check(st == 200, "drop")
    st, body = call(peer, "create", {"name": "e", "dim": 3, "metric": "l2"})
    t.check(st == 201 and body["count"] == 0 and body["metric"] == "l2", "drop then create", body)

    #  A long add (seconds of HNSW inserts, far past the 0.6 s liveness
    #  window of this broker) keeps the worker alive
    rng = random.Random(5)
    st, _ = call(peer, "create", {"name": "big", "dim": 128})
    items = [{"id": "g%d" % i, "vector": [rng.uniform(-1, 1) for _ in range(128)]} for i in range(4000)]
    start = lhtest.now()
    rep = peer.call("vectord", "add", {"name": "big", "items": items}, timeout=60.0, q=True, dl=60000)
    t.check(rep is not None and rep.st == 200 and rep.obj["count"] == 4000,
            "4000 x 128 in one add (%.1f s) answered 200" % (lhtest.now() - start),
            rep and (rep.st, rep.obj))
    st, _ = call(peer, "drop", {"name": "big"})

    #  exclude_ids and filter on 300 vectors still return k
    rng = random.Random(3)
    items = [{"id": "v%d" % i, "vector": vec(rng), "metadata": {"group": i % 10}} for i in range(300)]
    st, _ = call(peer, "create", {"name": "f", "dim": DIM})
    st, body = call(peer, "add", {"name": "f", "items": items})
    t.check(st == 200 and body["count"] == 300, "300 added", body)
    q = items[5]["vector"]
    st, body = call(peer, "search", {"name": "f", "vector": q, "k": 10})
    first = [r["id"] for r in body]
    t.check(first[0] == "v5" and len(first) == 10, "nearest is itself", first)
    st, body = call(peer, "search", {"name": "f", "vector": q, "k": 10, "exclude_ids": first[:5]})
    ids = [r["id"] for r in body]
    t.check(len(ids) == 10 and not set(ids) & set(first[:5]), "exclude_ids: still k results", ids)
    st, body = call(peer, "search", {"name": "f", "vector": q, "k": 10, "filter": {"group": 7}})
    t.check(len(body) == 10 and all(r["metadata"]["group"] == 7 for r in body),
            "filter: k results, all matching", body)
    st, body = call(peer, "search", {"name": "f", "vector": q, "k": 10, "filter": {"group": 99}})
    t.check(st == 200 and body == [], "filter matching nothing: []", body)


def durability(t, endpoint, sets):
    peer = t.client(endpoint)
    vproc, _ = harness(t, "vectord", broker=endpoint, sets=sets)
    rng = random.Random(11)
    vectors = {}
    st, _ = call(peer, "create", {"name": "d", "dim": DIM, "metric": "l2"})
    t.check(st == 201, "create d")
    for batch in range(4):
        items = []
        for i in range(50):
            key = "k%d" % (batch * 50 + i)
            vectors[key] = vec(rng)
            items.append({"id": key, "vector": vectors[key], "metadata": {"b": batch}})
        st, _ = call(peer, "add", {"name": "d", "items": items})
        t.check(st == 200, "batch %d acknowledged" % batch)
    #  Wait for the snapshot to cover these (readiness: poll info)
    deadline = lhtest.now() + 20
    while True:
        st, info = call(peer, "info", {"name": "d"})
        if info["snapshot_seq"] == info["seq"] or lhtest.now() > deadline:
            break
        peer.idle(0.1)
    t.check(info["snapshot_seq"] == info["seq"] > 0, "snapshot taken", info)
    #  More acknowledged changes, only in the log
    items = []
    for i in range(200, 240):
        key = "k%d" % i
        vectors[key] = vec(rng)
        items.append({"id": key, "vector": vectors[key]})
    st, _ = call(peer, "add", {"name": "d", "items": items})
    gone = ["k%d" % i for i in range(10)]
    st, body = call(peer, "delete", {"name": "d", "ids": gone})
    t.check(body["deleted"] == 10, "10 deleted")
    for key in gone:
        del vectors[key]
    vectors["k20"] = vec(rng)
    st, _ = call(peer, "add", {"name": "d", "items": [{"id": "k20", "vector": vectors["k20"]}]})

    def verify(label):
        st, info = call(peer, "info", {"name": "d"})
        t.check(st == 200 and info["count"] == len(vectors), "%s: count %d" % (label, len(vectors)), info)
        missing = 0
        for key, v in vectors.items():
            st, body = call(peer, "search", {"name": "d", "vector": v, "k": 1})
            if not body or body[0]["id"] != key or body[0]["distance"] > 1e-6:
                missing += 1
        t.check(missing == 0, "%s: every acknowledged vector is its own nearest" % label, missing)
        st, body = call(peer, "search", {"name": "d", "vector": vectors["k20"], "k": 3,
                                         "exclude_ids": ["k20"]})
        t.check(st == 200 and all(r["id"] not in gone for r in body), "%s: deleted stay deleted" % label)

    verify("before kill")
    vproc.kill9()
    peer.pending.clear()
    t.note("vectord killed (-9)")
    vproc, _ = harness(t, "vectord", broker=endpoint, sets=sets)
    verify("after kill -9")
    with open(vproc.log_path, "rb") as f:
        log = f.read().decode("utf-8", "replace")
    t.check("restored from snapshot + log" in log, "restored from snapshot + log", log[-800:])

    #  Tear the stored snapshot: flip bytes in the middle of the graph object
    vproc.kill9()
    peer.pending.clear()
    graphs = glob.glob(os.path.join(sets["storaged/dir"], "objects", "_vectors.d", "d.d", "graph-*"))
    t.check(len(graphs) == 1, "one graph object in storaged", graphs)
    with open(graphs[0], "r+b") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(size // 2)
        f.write(b"\xff" * 64)
    vproc, _ = harness(t, "vectord", broker=endpoint, sets=sets)
    with open(vproc.log_path, "rb") as f:
        log = f.read().decode("utf-8", "replace")
    t.check("fails its checksum" in log and "rebuilding from the log" in log,
            "torn snapshot detected by checksum", log[-800:])
    verify("after a torn snapshot")


def main(t):
    storage = os.path.join(t.tmp, "storage")
    sets = {"broker/hb_ivl": 200, "broker/hb_live": lhtest.HB_LIVE, "storaged/dir": storage}
    _, endpoint = harness(t, "storaged", sets=sets)
    vsets = {"vectord/dir": os.path.join(t.tmp, "vectord"), "vectord/snapshot_ms": 300,
             "storaged/dir": storage}
    peer = t.client(endpoint)
    vproc, _ = harness(t, "vectord", broker=endpoint,
                       sets={"vectord/dir": os.path.join(t.tmp, "vectord-edge")})
    edge_cases(t, peer)
    vproc.term()
    durability(t, endpoint, vsets)


if __name__ == "__main__":
    lhtest.run(main, budget=200)
