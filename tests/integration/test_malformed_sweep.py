#!/usr/bin/python3
"""Every op of every running service answers every malformed body once,
with a 4xx and the SPEC 4 error body, and changes nothing.

`lakehouse up` runs every registered service on its embedded defaults. The
services and their ops come from broker.services, so a new service joins
the sweep by being registered. Each op gets:

- the generic shapes: no body, an array, a string, a number, nil, bytes
  that are not msgpack (a reserved byte, a truncated map, a map claiming
  4 billion pairs), an empty map;
- for the fields FIELDS says the op reads: each field alone with a value
  of every wrong JSON type, empty, an oversized string (1 MiB + 1), and
  for keys and ids the bad ones ("..", a NUL, UUID-ish garbage ...);
- for the ops VALID has a good body for: that body with one field at a
  time given each wrong value, so checks past the first field run too.

Each answer must be exactly one reply, 4xx with {"error": {"kind",
"reason"}} - never a 5xx - except that ops in OK_2XX, which legitimately
answer an empty or ignored body (list, stats, ping, a distilld stage),
may answer those 2xx (never a field of the wrong type), echo.echo takes
anything, and validatord's 422 keeps its tagged ValidationError shape
(SPEC 5.8).
Afterwards the catalog, the storage listing and the vector indexes are
exactly as before (and pathwayd's counts), and the log never says
"answered twice".

FIELDS, VALID, OK_2XX and ANY_2XX are the only per-service knowledge; a
service missing from them still gets the generic shapes.
"""

import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402

#  Field types: str, key (a storage key), id (an opaque id), int, num
#  (not negative), real (any number), bool, array, map, bin (bytes or a
#  string), any (any JSON value)
FIELDS = {
    "storaged.put": {"key": "key", "data": "bin", "if_none_match": "str", "if_match": "str"},
    "storaged.get": {"key": "key", "offset": "int", "length": "int"},
    "storaged.head": {"key": "key"},
    "storaged.list": {"prefix": "str", "start_after": "str", "continuation": "str", "limit": "int"},
    "storaged.delete": {"key": "key"},
    "storaged.upload_begin": {"key": "key", "if_none_match": "str", "if_match": "str"},
    "storaged.upload_part": {"upload_id": "id", "part": "int", "data": "bin"},
    "storaged.upload_commit": {"upload_id": "id", "key": "key", "if_none_match": "str", "if_match": "str"},
    "storaged.upload_abort": {"upload_id": "id"},
    "catalogd.register": {"name": "str", "schema_fingerprint": "str", "schema": "array",
                          "objects": "array", "row_count": "int"},
    "catalogd.get": {"name": "str", "dataset_id": "id", "id": "id"},
    "catalogd.delete": {"name": "str", "dataset_id": "id", "id": "id"},
    "ingestd.ingest": {"name": "str", "source": "key"},
    "queryd.sql": {"sql": "str", "params": "array", "limit": "int"},
    "vectord.create": {"name": "str", "dim": "int", "dims": "int", "metric": "str",
                       "distance": "str", "m": "int", "ef_construction": "int", "ef": "int"},
    "vectord.info": {"name": "str", "index": "str"},
    "vectord.drop": {"name": "str", "index": "str"},
    "vectord.add": {"name": "str", "items": "array"},
    "vectord.search": {"name": "str", "vector": "array", "k": "int", "ef": "int",
                       "exclude_ids": "array", "filter": "map"},
    "vectord.delete": {"name": "str", "ids": "array"},
    "embedd.embed": {"texts": "array", "model": "str"},
    "chatd.chat": {"model": "str", "messages": "array", "max_tokens": "int",
                   "temperature": "num", "json_schema": "map"},
    "validatord.validate": {"kind": "str", "artifact": "map", "context": "map"},
    "validatord.iterate": {"kind": "str", "prompt": "str", "model": "str", "system": "str",
                           "context": "map", "max_iterations": "int", "temperature": "num",
                           "max_tokens": "int", "trace_id": "str"},
    "pathwayd.add": {"content": "any", "tags": "array"},
    "pathwayd.add_idempotent": {"uid": "id", "content": "any", "tags": "array"},
    "pathwayd.update": {"uid": "id", "content": "any", "tags": "array"},
    "pathwayd.revise": {"uid": "id", "content": "any", "tags": "array"},
    "pathwayd.retire": {"uid": "id"},
    "pathwayd.get": {"uid": "id", "version": "int"},
    "pathwayd.history": {"uid": "id", "limit": "int"},
    "pathwayd.search": {"tags": "array", "text": "str", "include_retired": "bool", "limit": "int"},
    "matrixd.search": {"query_text": "str", "vector": "array", "corpora": "array", "k": "int",
                       "per_corpus_k": "int", "ef": "int", "filter": "map",
                       "exclude_ids": "array", "model": "str", "use_playbook": "bool",
                       "playbook_corpus": "str", "playbook_top_k": "int",
                       "playbook_max_distance": "num"},
    "matrixd.playbook_record": {"query_text": "str", "answer_id": "str", "answer_corpus": "str",
                                "score": "num", "tags": "array", "playbook_corpus": "str",
                                "model": "str"},
    "matrixd.playbook_bulk": {"entries": "array", "playbook_corpus": "str", "model": "str"},
    "matrixd.relevance": {"focus": "map", "chunks": "array", "threshold": "real"},
    "matrixd.downgrade": {"mode": "str", "model": "str", "forced_mode": "str"},
    "distilld.materialize": {"run_id": "str", "recorded_at": "str", "progress": "bool"},
    "distilld.score": {"run_id": "str", "since": "str", "until": "str", "progress": "bool"},
    "distilld.export": {"run_id": "str", "progress": "bool"},
    "distilld.drift": {"run_id": "str"},
    "distilld.run": {"run_id": "str", "recorded_at": "str", "since": "str", "until": "str",
                     "progress": "bool"},
    "distilld.report": {"run_id": "str"},
    "distilld.replay": {"task": "str", "local_only": "bool", "allow_escalation": "bool",
                        "no_retrieval": "bool", "dry_run": "bool"},
    "observerd.events": {"since": "any", "since_bseq": "int", "type": "str", "source": "str",
                         "limit": "int"},
    "observerd.inbox": {"subject": "str", "sender": "str", "tag": "str", "priority": "str",
                        "body": "str"},
    "workflowd.workflow_put": {"definition": "any"},
    "workflowd.workflow_get": {"name": "str"},
    "workflowd.workflow_delete": {"name": "str"},
    "workflowd.workflow_run": {"name": "str", "definition": "any", "inputs": "map", "wait": "bool"},
    "workflowd.run_get": {"run_id": "str", "outputs": "bool"},
    "workflowd.run_list": {"name": "str", "status": "str", "before": "str", "limit": "int"},
    "validatord.sessions": {"limit": "int", "since": "str"},
    "echo.sleep": {"ms": "int"},
    "echo.fail": {"status": "int", "reason": "str", "kind": "str"},
    "echo.stream": {"n": "int", "size": "int"},
}

#  A well-formed body for some ops: each of its fields in turn is given a
#  wrong value while the others stay good, so the op's checks past the
#  first field run too (a register refused on its schema after its name
#  was read, say). None of these is ever sent as it is.
VALID = {
    "storaged.put": {"key": "sweep/p", "data": b"x", "if_none_match": "*"},
    "storaged.get": {"key": "seed/a.txt", "offset": 0, "length": 1},
    "storaged.list": {"prefix": "seed/", "limit": 10},
    "storaged.upload_begin": {"key": "sweep/u", "if_none_match": "*"},
    "storaged.upload_part": {"upload_id": "nope", "part": 1, "data": b"x"},
    "storaged.upload_commit": {"upload_id": "nope", "if_none_match": "*"},
    "catalogd.register": {"name": "sweep", "schema_fingerprint": "fp",
                          "schema": [{"name": "id", "type": "BIGINT"}],
                          "objects": ["seed/a.txt"], "row_count": 1},
    "ingestd.ingest": {"name": "sweep", "source": "seed/a.txt"},
    "queryd.sql": {"sql": "SELECT 1", "limit": 5},
    "vectord.create": {"name": "sweep", "dim": 2, "metric": "l2", "m": 16,
                       "ef_construction": 100, "ef": 10},
    "vectord.add": {"name": "seed", "items": [{"id": "a", "vector": [1, 0]}]},
    "vectord.search": {"name": "seed", "vector": [1, 0], "k": 1, "ef": 10,
                       "exclude_ids": [], "filter": {}},
    "vectord.delete": {"name": "seed", "ids": ["nope"]},
    "embedd.embed": {"texts": ["a"], "model": "hash"},
    "chatd.chat": {"model": "m", "messages": [{"role": "user", "content": "hi"}],
                   "max_tokens": 5, "temperature": 0.5},
    "validatord.validate": {"kind": "sms", "artifact": {"body": "hi"}, "context": {}},
    "validatord.iterate": {"kind": "sms", "prompt": "p", "model": "m", "system": "s",
                           "context": {}, "max_iterations": 1, "temperature": 0.1,
                           "max_tokens": 5, "trace_id": "t"},
    "pathwayd.add": {"content": {"a": 1}, "tags": ["x"]},
    "pathwayd.update": {"uid": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "content": {"a": 1}, "tags": ["x"]},
    "pathwayd.get": {"uid": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "version": 1},
    "pathwayd.history": {"uid": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "limit": 5},
    "pathwayd.search": {"tags": ["x"], "text": "t", "include_retired": False, "limit": 5},
    "matrixd.search": {"query_text": "q", "corpora": ["seed"], "k": 1},
    "matrixd.playbook_record": {"query_text": "q", "answer_id": "a", "answer_corpus": "c",
                                "score": 0.5},
    "matrixd.relevance": {"focus": {"path": "a.c"}, "chunks": ["x"], "threshold": 0.3},
    "matrixd.downgrade": {"mode": "m", "model": "x"},
    "echo.stream": {"n": 1, "size": 1},
}

#  Ops whose answer to an empty or ignored body is legitimately 2xx: they
#  may answer 2xx to the generic shapes and to a field left empty, never
#  to a field of the wrong type
OK_2XX = {"storaged.list", "catalogd.list", "vectord.list", "embedd.stats",
          "pathwayd.search", "pathwayd.stats", "matrixd.corpora",
          "distilld.materialize", "distilld.score", "distilld.export", "distilld.drift",
          "distilld.run", "distilld.runs", "observerd.events", "observerd.stats",
          "workflowd.workflow_list", "workflowd.run_list", "workflowd.stats",
          "chatd.providers", "validatord.sessions", "echo.whoami",
          "broker.ping", "broker.services", "broker.workers", "broker.stats"}

#  Ops that take any body at all
ANY_2XX = {"echo.echo"}

#  validatord's 422 keeps the original system's tagged shape (SPEC 5.8)
TAGGED = {"Schema", "Completeness", "Consistency", "Policy"}

BIG = "x" * (1024 * 1024 + 1)
WRONG = {
    "str": [None, True, -1, 3, 1.5, [], {}, b"\x00\x01"],
    "key": [True, -1, 1.5, [], {}],
    "id": [True, -1, 1.5, [], {}],
    "int": ["x", "", True, 1.5, -1, [], {}],
    "num": ["x", True, -1, [], {}],
    "real": ["x", True, [], {}],
    "bool": ["x", 3, [], {}],
    "array": ["x", 3, True, {}, [None], [{"x": []}]],
    "map": ["x", 3, True, []],
    "bin": [3, True, [], {}],
    "any": [],                          #  every value is a good one
}
EMPTY = {"str": "", "key": "", "id": "", "array": [], "map": {}, "bin": b""}
BAD_KEYS = ["..", "a/../b", "/etc/passwd", "a\x00b", "a\tb", "k" * 1025]
BAD_IDS = ["00000000-0000-0000-0000-00000000000g", "..", "../x", "x\x00y", "1" * 300]

#  Bodies that are not msgpack maps, as raw bytes
GENERIC = [
    ("no body", None),
    ("an array", b"\x92\x01\x02"),
    ("a string", b"\xa3abc"),
    ("a number", b"\x2a"),
    ("nil", b"\xc0"),
    ("a reserved byte", b"\xc1"),
    ("a truncated map", b"\x82\xa1a"),
    ("a map claiming 4G pairs", b"\xdf\xff\xff\xff\xff"),
    ("an empty map", b"\x80"),
]


def probes(name):
    """(tag, what, body, raw) for op name: the generic shapes, then its
    fields; tag is generic, empty or wrong."""
    for what, raw in GENERIC:
        yield "generic", what, None, raw
    for field, kind in FIELDS.get(name, {}).items():
        for value in WRONG[kind]:
            #  null often means "not given": as good as empty
            yield "empty" if value is None else "wrong", "%s = %r" % (field, value), \
                {field: value}, None
        if kind in EMPTY:
            yield "empty", "%s empty" % field, {field: EMPTY[kind]}, None
        if kind in ("str", "key", "id"):
            yield "wrong", "%s oversized" % field, {field: BIG}, None
        for bad in BAD_KEYS if kind == "key" else BAD_IDS if kind == "id" else []:
            yield "wrong", "%s = %r" % (field, bad[:40]), {field: bad}, None
    #  One bad field in an otherwise good body (null is left out: it often
    #  means "not given", which such a body may well be)
    good = VALID.get(name, {})
    for field in good:
        kind = FIELDS[name][field]
        values = [v for v in WRONG[kind] if v is not None]
        values += BAD_KEYS if kind == "key" else BAD_IDS if kind == "id" else []
        for value in values:
            body = dict(good)
            body[field] = value
            yield "wrong", "a good body but %s = %r" % (field, value if not isinstance(value, str)
                                                         else value[:40]), body, None


def state(t, peer, started):
    """What must not change: the catalog, every storage key, the indexes,
    and the traces when pathwayd runs."""
    keys = []
    after = None
    while True:
        body = {"prefix": "", "limit": 1000}
        if after:
            body["continuation"] = after
        rep = peer.call("storaged", "list", body, timeout=10, dl=10000)
        t.check(rep is not None and rep.st == 200, "storaged.list answers", rep and rep.obj)
        keys += [(k["key"], k["etag"], k["size"]) for k in rep.obj["keys"]]
        after = rep.obj.get("next") if rep.obj.get("truncated") else None
        if not after:
            break
    catalog = peer.call("catalogd", "list", {}, timeout=10, dl=10000)
    indexes = peer.call("vectord", "list", {}, timeout=10, dl=10000)
    t.check(catalog.st == 200 and indexes.st == 200, "catalogd.list and vectord.list answer")
    names = sorted((i["name"], i["count"]) for i in indexes.obj["indexes"])
    traces = None
    if "pathwayd" in started:
        rep = peer.call("pathwayd", "stats", {}, timeout=10, dl=10000)
        t.check(rep.st == 200, "pathwayd.stats answers", rep.obj)
        traces = rep.obj
    return keys, catalog.obj, names, traces


def main(t):
    up = t.up(actors="*", sets={"log/level": "info"}, timeout=30.0)
    line = [l for l in up.proc.lines if l.startswith("lakehouse: up (")][0]
    started = sorted(set(re.findall(r"([A-Za-z0-9_.-]+) x\d+", line)))
    t.note("services started: %s" % ", ".join(started))
    peer = t.client(up.endpoint, name="sweep")
    for svc in started:
        t.wait_workers(peer, svc, 1)

    #  Something to keep: a stored object, a dataset, an index
    rep = peer.call("storaged", "put", {"key": "seed/a.txt", "data": b"seed"}, timeout=10, dl=10000)
    t.check(rep.st == 200, "seed object stored", rep.obj)
    rep = peer.call("catalogd", "register", {"name": "seed", "schema_fingerprint": "fp",
                                             "schema": [{"name": "id", "type": "BIGINT"}],
                                             "objects": ["seed/a.txt"], "row_count": 1},
                    timeout=10, dl=10000)
    t.check(rep.st == 201, "seed dataset registered", rep.obj)
    rep = peer.call("vectord", "create", {"name": "seed", "dim": 2}, timeout=10, dl=10000)
    t.check(rep.st == 201, "seed index created", rep.obj)
    before = state(t, peer, started)

    services = lhtest.lhb.broker_call(peer, "services")["services"]
    listed = sorted(s["name"] for s in services)
    t.check(set(started) <= set(listed), "broker.services lists every started service",
            (started, listed))
    ops = [(s["name"], op) for s in services for op in s["ops"] if op != "*"]
    for svc in ("ping", "services", "workers", "stats"):
        ops.append(("broker", svc))
    t.check(all(any(o[0] == svc for o in ops) for svc in started),
            "every service lists its ops", ops)

    count = 0
    for svc, op in ops:
        name = "%s.%s" % (svc, op)
        for tag, what, body, raw in probes(name):
            count += 1
            rid = peer.request(svc, op, body=body, raw=raw, dl=10000)
            rep = peer.wait_reply(rid, 15.0)
            where = "%s with %s" % (name, what)
            if rep is None:
                raise lhtest.Failure("%s: no reply" % where)
            if rep.st >= 500:
                raise lhtest.Failure("%s: %d %r" % (where, rep.st, rep.obj))
            if 200 <= rep.st < 300:
                if not (name in ANY_2XX or (name in OK_2XX and tag != "wrong")):
                    raise lhtest.Failure("%s: %d (a malformed body accepted) %r"
                                         % (where, rep.st, str(rep.obj)[:200]))
                continue
            if (svc == "validatord" and rep.st == 422 and isinstance(rep.obj, dict)
                    and len(rep.obj) == 1 and list(rep.obj)[0] in TAGGED):
                continue                #  SPEC 5.8's own ValidationError shape
            error = rep.obj.get("error") if isinstance(rep.obj, dict) else None
            if not (400 <= rep.st < 500 and isinstance(error, dict)
                    and isinstance(error.get("kind"), str) and isinstance(error.get("reason"), str)
                    and (name.startswith("echo.") or error["reason"])):
                raise lhtest.Failure("%s: %d without the SPEC error body: %r"
                                     % (where, rep.st, str(rep.obj)[:200]))
    t.check(True, "%d malformed requests to %d ops: each one 4xx with the error body "
            "(or 2xx for the ops that ignore their body), no 5xx" % (count, len(ops)))

    #  Exactly one reply each: nothing more arrives
    extra = [m for m in peer.drain(0.5) if m.t in ("REP", "PART")]
    t.check(not extra, "no second reply to any request", extra[:3])
    after = state(t, peer, started)
    t.check(after[0] == before[0], "the storage listing is unchanged", (before[0], after[0]))
    t.check(after[1] == before[1], "the catalog is unchanged")
    t.check(after[2] == before[2], "the vector indexes are unchanged", (before[2], after[2]))
    t.check(after[3] == before[3], "the traces are unchanged", (before[3], after[3]))
    up.proc.err.flush()
    with open(up.proc.log_path, "rb") as f:
        log = f.read().decode("utf-8", "replace")
    twice = [l for l in log.splitlines() if "answered twice" in l]
    t.check(not twice, "the log never says 'answered twice'", twice[:3])


if __name__ == "__main__":
    lhtest.run(main, budget=240)
