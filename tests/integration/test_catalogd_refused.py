#!/usr/bin/python3
"""catalogd refuses a malformed request whole, and one bad manifest never
takes the catalog down.

Regression tests: a register whose schema item lacks 'type' (or with a bad
objects item or row_count) used to answer 400 and then carry on, storing a
corrupt manifest over the good one and publishing catalog.changed, after
which get answered 500 and list answered 500 for everyone, also after a
restart; get/delete without a name went on with an uninitialised id and
answered twice. Here each is refused with exactly one 400 naming the field,
the stored manifest, the catalog and the storage listing stay exactly as
they were, no event is published, and the log never says 'answered
twice'. A garbage manifest written under _catalog/ directly is skipped by
list, counted in 'skipped' and named in the log."""

import os
import sys
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402
from test_storaged import harness, call  # noqa: E402

NAMESPACE = uuid.UUID("a8f3c1d2-4e5b-5a6c-9d8e-7f0a1b2c3d4e")


def cat(peer, op, body=None, raw=None):
    if raw is not None:
        rep = peer.call("catalogd", op, raw=raw, timeout=10.0, q=True, dl=10000)
        return rep.st, rep.obj
    return call(peer, op, body, svc="catalogd")


def manifest(name, fingerprint, rows):
    return {"name": name, "schema_fingerprint": fingerprint,
            "schema": [{"name": "id", "type": "BIGINT"}, {"name": "name", "type": "VARCHAR"}],
            "objects": ["datasets/a.sqlite"], "row_count": rows}


def log_text(proc):
    proc.err.flush()
    with open(proc.log_path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def stored(peer, dataset_id):
    st, body = call(peer, "get", {"key": "_catalog/" + dataset_id})
    return body.get("data") if st == 200 else (st, body)


def listing(peer):
    st, body = call(peer, "list", {"prefix": ""})
    return st, [(k["key"], k.get("etag")) for k in body.get("keys", [])]


def main(t):
    sets = {"storaged/dir": os.path.join(t.tmp, "storage"),
            "broker/hb_ivl": 200, "broker/hb_live": lhtest.HB_LIVE}
    _, endpoint = harness(t, "storaged", sets=sets)
    catalog, _ = harness(t, "catalogd", broker=endpoint)
    peer = t.client(endpoint)
    events = t.client(endpoint)
    events.subscribe("catalog.")

    st, body = cat(peer, "register", manifest("workers", "fp-w", 10))
    t.check(st == 201, "a good dataset registers", (st, body))
    events.drain(0.5)
    workers_id = str(uuid.uuid5(NAMESPACE, "workers"))
    before = stored(peer, workers_id)
    before_listing = listing(peer)
    st, before_catalog = cat(peer, "list")
    t.check(st == 200 and before_catalog["count"] == 1, "the catalog lists it", before_catalog)

    def bad_schema(item):
        m = manifest("workers", "fp-w", 99)
        m["schema"] = [{"name": "id", "type": "BIGINT"}, item]
        return m

    bad_registers = [
        (bad_schema({"name": "name"}), "schema", "a schema item lacking 'type'"),
        (bad_schema({"name": "", "type": "VARCHAR"}), "schema", "a schema item with an empty name"),
        (bad_schema("name VARCHAR"), "schema", "a schema item that is not a map"),
        (dict(manifest("workers", "fp-w", 99), schema={"id": "BIGINT"}), "schema",
         "a schema that is not an array"),
        (dict(manifest("workers", "fp-w", 99), objects=["a", 7]), "objects",
         "an objects item that is not a string"),
        (dict(manifest("workers", "fp-w", 99), objects="a"), "objects",
         "objects that is not an array"),
        (dict(manifest("workers", "fp-w", -1)), "row_count", "a negative row_count"),
        (dict(manifest("workers", "fp-w", 1), row_count="10"), "row_count",
         "a row_count that is a string"),
        (dict(manifest("workers", "fp-w", 1), row_count=1.5), "row_count",
         "a row_count that is a float"),
        (dict(manifest("", "fp-w", 1)), "name", "an empty name"),
        (dict(manifest("workers", "", 1)), "schema_fingerprint", "an empty fingerprint"),
        (dict(manifest("workers", 7, 1)), "schema_fingerprint", "a fingerprint that is a number"),
    ]
    for body, field, what in bad_registers:
        rid = peer.request("catalogd", "register", body=body, q=True, dl=10000)
        rep = peer.wait_reply(rid, 10.0)
        t.check(rep is not None and rep.st == 400
                and rep.obj["error"].get("field") == field,
                "register with %s: 400 naming '%s'" % (what, field), rep and rep.obj)
        extra = peer.drain(0.2)
        t.check(not [m for m in extra if m.h.get("cid") == rid],
                "register with %s: exactly one reply" % what, extra)
        t.check(stored(peer, workers_id) == before,
                "register with %s: the stored manifest is unchanged" % what)
        ev = events.recv_pub(0.1)
        t.check(ev is None, "register with %s: no catalog.changed" % what, ev and ev.obj)

    for op in ("get", "delete"):
        for body, what in (({}, "no name"), ({"name": ""}, "an empty name"),
                           ({"dataset_id": "not-a-uuid"}, "a bad id"),
                           ({"name": 5}, "a name that is a number"),
                           ({"dataset_id": "../" + workers_id}, "an id with '..'")):
            rid = peer.request("catalogd", op, body=body, q=True, dl=10000)
            rep = peer.wait_reply(rid, 10.0)
            t.check(rep is not None and rep.st == 400 and rep.obj["error"].get("field"),
                    "%s with %s: 400 naming a field" % (op, what), rep and rep.obj)
            extra = peer.drain(0.2)
            t.check(not [m for m in extra if m.h.get("cid") == rid],
                    "%s with %s: exactly one reply" % (op, what), extra)
    for raw, what in ((b"\x93\x01\x02\x03", "an array body"), (b"\xa3abc", "a string body"),
                      (b"\xc1", "bytes that are not msgpack")):
        st, body = cat(peer, "register", raw=raw)
        t.check(st == 400, "register with %s: 400" % what, (st, body))

    st, body = cat(peer, "get", {"name": "workers"})
    t.check(st == 200 and body["row_count"] == 10
            and [c["type"] for c in body["schema"]] == ["BIGINT", "VARCHAR"],
            "get still answers the good manifest", (st, body))
    st, catalog_after = cat(peer, "list")
    t.check(st == 200 and catalog_after == before_catalog,
            "the catalog is exactly as before", (st, catalog_after))
    t.check(listing(peer) == before_listing, "the storage listing is exactly as before")
    log = log_text(catalog)
    t.check("answered twice" not in log, "the log never says 'answered twice'",
            [line for line in log.splitlines() if "answered twice" in line][:3])

    #  One unreadable manifest: list skips it, counts it and names it
    broken_id = str(uuid.uuid5(NAMESPACE, "broken"))
    st, body = call(peer, "put", {"key": "_catalog/" + broken_id,
                                  "data": b"\xc1 this is not msgpack"})
    t.check(st == 200, "a garbage manifest is written directly through storaged", (st, body))
    st, body = cat(peer, "list")
    t.check(st == 200 and body["count"] == 1 and body.get("skipped") == 1
            and body["datasets"] == before_catalog["datasets"],
            "list skips the garbage manifest and counts it in 'skipped'", (st, body))
    t.check("_catalog/" + broken_id in log_text(catalog),
            "the log names the unreadable manifest")
    st, body = cat(peer, "get", {"dataset_id": broken_id})
    t.check(st == 500 and body["error"]["kind"] == "corrupt_manifest",
            "get of the garbage manifest itself: 500 corrupt_manifest", (st, body))

    #  After a restart, the catalog still serves
    catalog.kill9()
    harness(t, "catalogd", broker=endpoint)
    st, body = cat(peer, "list")
    t.check(st == 200 and body["count"] == 1 and body.get("skipped") == 1,
            "after a restart list still answers", (st, body))
    st, body = cat(peer, "get", {"name": "workers"})
    t.check(st == 200 and body["row_count"] == 10, "after a restart get still answers", (st, body))


if __name__ == "__main__":
    lhtest.run(main, budget=120)
