#!/usr/bin/python3
"""catalogd over the bus: idempotent register, 409 schema_drift with the
old manifest intact, UUIDv5 ids equal to Python's uuid.uuid5, the
catalog.changed event, a restart that rehydrates from storaged, and a
second catalogd in another process serving the same catalog."""

import os
import sys
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402
from test_storaged import harness, call  # noqa: E402

NAMESPACE = uuid.UUID("a8f3c1d2-4e5b-5a6c-9d8e-7f0a1b2c3d4e")


def cat(peer, op, body=None):
    return call(peer, op, body, svc="catalogd")


def manifest(name, fingerprint, rows, objects=("datasets/a.parquet",)):
    return {"name": name, "schema_fingerprint": fingerprint,
            "schema": [{"name": "id", "type": "BIGINT"}, {"name": "name", "type": "VARCHAR"}],
            "objects": list(objects), "row_count": rows}


def main(t):
    sets = {"storaged/dir": os.path.join(t.tmp, "storage"),
            "broker/hb_ivl": 200, "broker/hb_live": lhtest.HB_LIVE}
    _, endpoint = harness(t, "storaged", sets=sets)
    first, _ = harness(t, "catalogd", broker=endpoint)
    peer = t.client(endpoint)
    events = t.client(endpoint)
    events.subscribe("catalog.")

    names = ["workers", "contracts", "caf\u00e9 roster 2026", "a/b+c d"]
    for name in names:
        st, body = cat(peer, "register", manifest(name, "fp-" + name, 10))
        t.check(st == 201 and body["dataset_id"] == str(uuid.uuid5(NAMESPACE, name)),
                "register %r: 201, dataset_id == uuid.uuid5 (%s)"
                % (name, body.get("dataset_id")), (st, body))
    ev = events.recv_pub(5.0)
    t.check(ev is not None and ev.t == "PUB" and ev.h.get("topic") == "catalog.changed"
            and ev.obj["op"] == "register" and ev.obj["name"] == "workers",
            "catalog.changed published on register", ev and ev.obj)
    events.drain(0.5)

    st, body = cat(peer, "register", manifest("workers", "fp-workers", 10))
    t.check(st == 200 and body["dataset_id"] == str(uuid.uuid5(NAMESPACE, "workers")),
            "same name + same fingerprint: 200, same id", (st, body))
    st, body = cat(peer, "register", manifest("workers", "fp-workers", 25,
                                              ("datasets/a.parquet", "datasets/b.parquet")))
    t.check(st == 200 and body["row_count"] == 25 and len(body["objects"]) == 2,
            "same fingerprint: objects and row_count updated", body)
    ev = events.recv_pub(5.0)
    t.check(ev is not None and ev.obj["op"] == "register", "catalog.changed on update")

    st, body = cat(peer, "register", manifest("workers", "fp-OTHER", 99, ("x",)))
    t.check(st == 409 and body["error"]["kind"] == "schema_drift",
            "different fingerprint: 409 schema_drift", (st, body))
    st, body = cat(peer, "get", {"name": "workers"})
    t.check(st == 200 and body["schema_fingerprint"] == "fp-workers"
            and body["row_count"] == 25 and len(body["objects"]) == 2,
            "after the drift the old manifest is intact", body)
    for bad, what in ((manifest("", "fp", 1), "empty name"),
                      (manifest("x", "", 1), "empty fingerprint"),
                      ({"schema_fingerprint": "fp"}, "missing name")):
        st, body = cat(peer, "register", bad)
        t.check(st == 400, "%s: 400" % what, (st, body))
    ev = events.recv_pub(0.3)
    t.check(ev is None, "no event for a no-op, a drift or a refusal", ev and ev.obj)

    dataset_id = str(uuid.uuid5(NAMESPACE, "contracts"))
    st, body = cat(peer, "get", {"dataset_id": dataset_id})
    t.check(st == 200 and body["name"] == "contracts", "get by dataset_id", body)
    st, body = cat(peer, "list")
    t.check(st == 200 and body["count"] == 4
            and sorted(m["name"] for m in body["datasets"]) == sorted(names),
            "list has the 4 datasets", body)
    st, body = call(peer, "list", {"prefix": "_catalog/"})
    t.check(len(body["keys"]) == 4, "manifests persisted in storaged under _catalog/")

    #  Restart: a new catalogd process serves the same catalog
    first.kill9()
    second, _ = harness(t, "catalogd", broker=endpoint)
    deadline = lhtest.now() + 10
    while True:
        st, body = cat(peer, "get", {"name": "workers"})
        if st == 200 or lhtest.now() > deadline:
            break
    t.check(st == 200 and body["row_count"] == 25, "after a restart get works", (st, body))
    #  A second catalogd process on the same storage: both serve it
    third, _ = harness(t, "catalogd", broker=endpoint)
    st, body = cat(peer, "register", manifest("late", "fp-late", 1))
    t.check(st == 201, "register with two catalogd processes running")
    second.kill9()
    deadline = lhtest.now() + 10
    while True:
        st, body = cat(peer, "list")
        if st == 200 or lhtest.now() > deadline:
            break
    t.check(st == 200 and body["count"] == 5, "the other catalogd serves the same catalog",
            (st, body))

    st, body = cat(peer, "delete", {"name": "late"})
    t.check(st == 200 and body["deleted"], "delete", body)
    st, body = cat(peer, "get", {"name": "late"})
    t.check(st == 404, "get after delete: 404", (st, body))
    events.drain(0.0)


if __name__ == "__main__":
    lhtest.run(main, budget=120)
