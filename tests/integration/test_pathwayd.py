#!/usr/bin/python3
"""pathwayd with real processes (docs/pathwayd.md):

- the HTTP routes of `lakehouse up`: add 201, add_idempotent 201 then 200
  (replay_count, content kept), update (version 2, version 1 still
  readable with ?version=1), revise (predecessor), history, retire
  (hidden from search, still readable), search by tags and text, stats;
  errors as HTTP statuses with the SPEC error body: 400 naming the field,
  404, 413 naming pathwayd/content_max for a content just over 1 MiB, 413
  from the gateway past gateway/pathway_max;
- a restarted `lakehouse up` serves everything it acknowledged;
- kill -9 of a `lakehouse node --actors pathwayd` in the middle of 5,000
  adds from 8 concurrent bus clients: after a restart on the same
  directory every acknowledged uid is there with its content, and the
  store holds no more traces than were sent.
"""

import json
import os
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402
import test_gateway_util as gw  # noqa: E402
from test_gateway_util import up  # noqa: E402

CLIENTS = 8
ADDS = 5000
KILL_AFTER = 2000                       # acknowledged adds before the kill


def http_routes(t):
    data = os.path.join(t.tmp, "up-data")
    sets = {"data/dir": data}
    b, h = up(t, "pathwayd", workers=4, sets=sets)
    conn = h.connection(timeout=30.0)

    def call(method, path, body=None, raw=None):
        payload = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        st, _, out = h.request(method, path, body=payload, conn=conn,
                               headers={"Content-Type": "application/json"} if payload else None)
        return st, (json.loads(out) if out else None)

    def error(body):
        return (body or {}).get("error", {})

    st, a = call("POST", "/v1/pathway/add",
                 {"content": {"task": "Fill 3 forklift drivers", "city": "Toledo"},
                  "tags": ["Staffing", "Forklift"]})
    t.check(st == 201 and len(a["uid"]) == 26 and a["version"] == 1 and a["retired"] is False
            and a["replay_count"] == 0 and a["tags"] == ["Staffing", "Forklift"],
            "POST /v1/pathway/add: 201, a ULID, version 1", (st, a))
    t.check(a["created_at"].endswith("Z") and len(a["created_at"]) == 24
            and a["created_at"] == a["updated_at"], "times are RFC 3339 UTC with ms", a)

    st, o = call("POST", "/v1/pathway/add_idempotent", {"uid": "order-7", "content": [1, "two"]})
    t.check(st == 201 and o["uid"] == "order-7" and o["content"] == [1, "two"],
            "add_idempotent creates with the given uid (201)", (st, o))
    st, o = call("POST", "/v1/pathway/add_idempotent", {"uid": "order-7", "content": "other"})
    t.check(st == 200 and o["replay_count"] == 1 and o["content"] == [1, "two"],
            "add_idempotent again: 200, replay_count 1, content kept", (st, o))

    st, u = call("POST", "/v1/pathway/update", {"uid": "order-7", "content": {"now": 2}})
    t.check(st == 200 and u["version"] == 2 and u["content"] == {"now": 2},
            "update: same uid, version 2", (st, u))
    st, g = call("GET", "/v1/pathway/get/order-7?version=1")
    t.check(st == 200 and g["version"] == 1 and g["content"] == [1, "two"]
            and g["current_version"] == 2, "GET get/UID?version=1: the first version", (st, g))
    st, g = call("GET", "/v1/pathway/get/order-7")
    t.check(st == 200 and g["version"] == 2 and "current_version" not in g,
            "GET get/UID: the current version", (st, g))

    st, r = call("POST", "/v1/pathway/revise", {"uid": a["uid"], "content": {"task": "Fill 4 forklift drivers"}})
    t.check(st == 201 and r["predecessor"] == a["uid"] and r["uid"] != a["uid"]
            and r["tags"] == ["Staffing", "Forklift"], "revise: a new trace with predecessor and tags", (st, r))
    st, hist = call("GET", "/v1/pathway/history/%s" % r["uid"])
    t.check(st == 200 and [x["uid"] for x in hist["chain"]] == [r["uid"], a["uid"]]
            and hist["truncated"] is False and hist["count"] == 2,
            "GET history/UID: the chain backwards", (st, hist))
    st, hist = call("GET", "/v1/pathway/history/%s?limit=1" % r["uid"])
    t.check(st == 200 and hist["count"] == 1 and hist["truncated"] is True and hist["next"] == a["uid"],
            "history ?limit=1: cut, with next", (st, hist))

    st, s = call("POST", "/v1/pathway/search", {"tags": ["staffing", "FORKLIFT"], "text": "fill"})
    t.check(st == 200 and [x["uid"] for x in s["results"]] == [r["uid"], a["uid"]]
            and s["truncated"] is False, "search: tags and text ignoring case, newest first", (st, s))
    st, x = call("POST", "/v1/pathway/retire", {"uid": a["uid"]})
    t.check(st == 200 and x["retired"] is True, "retire", (st, x))
    st, s = call("POST", "/v1/pathway/search", {"tags": ["staffing"]})
    t.check(st == 200 and [x["uid"] for x in s["results"]] == [r["uid"]], "a retired trace is not found", s)
    st, s = call("POST", "/v1/pathway/search", {"tags": ["staffing"], "include_retired": True})
    t.check(st == 200 and s["count"] == 2, "... unless include_retired", s)
    st, g = call("GET", "/v1/pathway/get/%s" % a["uid"])
    t.check(st == 200 and g["retired"] is True, "a retired trace is still readable", (st, g))
    st, stats = call("GET", "/v1/pathway/stats")
    t.check(st == 200 and stats == {"total": 3, "active": 2, "retired": 1, "versions": 4},
            "GET stats", (st, stats))

    #  Errors
    st, e = call("POST", "/v1/pathway/add", {"tags": ["x"]})
    t.check(st == 400 and error(e).get("field") == "content", "no content: 400 naming content", (st, e))
    st, e = call("POST", "/v1/pathway/update", {"uid": "has space", "content": 1})
    t.check(st == 400 and error(e).get("field") == "uid", "bad uid: 400 naming uid", (st, e))
    st, e = call("GET", "/v1/pathway/get/nope")
    t.check(st == 404 and error(e).get("kind") == "no_such_trace", "unknown uid: 404", (st, e))
    st, e = call("GET", "/v1/pathway/get/order-7?version=3")
    t.check(st == 404 and error(e).get("kind") == "no_such_version", "unknown version: 404", (st, e))
    st, e = call("POST", "/v1/pathway/search", {"limit": 1001})
    t.check(st == 400 and error(e).get("field") == "limit", "search limit over 1000: 400", (st, e))
    st, e = call("POST", "/v1/pathway/add", raw=b'{"content": ')
    t.check(st == 400, "invalid JSON: 400", (st, e))
    big = "x" * (1024 * 1024)
    st, e = call("POST", "/v1/pathway/add", {"content": big})
    t.check(st == 413 and error(e).get("field") == "content"
            and "pathwayd/content_max" in error(e).get("reason", ""),
            "a content just over 1 MiB: 413 naming pathwayd/content_max", (st, e))
    st, e = call("POST", "/v1/pathway/add", {"content": big[:1024 * 1024 - 5]})
    t.check(st == 201, "a content of exactly 1 MiB (as msgpack) is taken", (st, e))
    raw = h.raw(b"POST /v1/pathway/add HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 5000000\r\n\r\n" + b"{" * 1000)
    t.check(gw.status_of(raw) == 413 and b"too_large" in raw,
            "a body over gateway/pathway_max (4 MiB): 413 before the body", raw[:300])
    st, stats2 = call("GET", "/v1/pathway/stats")
    t.check(stats2["total"] == 4, "refused requests wrote nothing", stats2)
    conn.close()

    #  Restart: everything acknowledged is served
    t.check(b.proc.term(10.0) == 0, "lakehouse up stops on SIGTERM")
    b, h = up(t, "pathwayd", workers=2, sets=sets)
    conn = h.connection(timeout=30.0)
    st, again = call("GET", "/v1/pathway/stats")
    t.check(st == 200 and again == stats2, "after a restart: the same stats", (stats2, again))
    st, g = call("GET", "/v1/pathway/get/order-7?version=1")
    t.check(st == 200 and g["content"] == [1, "two"], "after a restart: an old version", (st, g))
    st, s = call("POST", "/v1/pathway/search", {"text": "forklift", "include_retired": True})
    t.check(st == 200 and s["count"] == 2, "after a restart: search", (st, s))
    conn.close()
    b.proc.term(10.0)


def crash(t):
    b = t.broker()
    store = os.path.join(t.tmp, "pathwayd-crash")
    sets = {"pathwayd/dir": store}
    node = t.node(b.endpoint, actors="pathwayd", workers=8, sets=sets)
    watch = t.client(b.endpoint, "watch")
    t.wait_workers(watch, "pathwayd", 8)

    lock = threading.Condition()
    acked = {}                          # uid -> content
    sent = [0]
    failures = []

    def client(index):
        peer = lhtest.lhb.Peer(b.endpoint, name="adder%d" % index)
        try:
            for n in range(index, ADDS, CLIENTS):
                content = {"client": index, "n": n, "text": "trace %d of client %d" % (n, index)}
                with lock:
                    sent[0] += 1
                rep = peer.call("pathwayd", "add", {"content": content, "tags": ["crash"]},
                                timeout=10.0, dl=10000)
                if rep is None or rep.st != 201:
                    failures.append((n, rep and rep.st))
                    return              # the node is gone: stop
                with lock:
                    acked[rep.obj["uid"]] = content
                    lock.notify_all()
        finally:
            peer.close(bye=False)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    with lock:
        ok = lock.wait_for(lambda: len(acked) >= KILL_AFTER, timeout=80.0)
    t.check(ok, "%d adds acknowledged by 8 concurrent clients" % KILL_AFTER, len(acked))
    node.kill9()
    t.note("node killed (-9) with %d adds acknowledged, %d sent" % (len(acked), sent[0]))
    for thread in threads:
        thread.join(30.0)
    t.check(not any(thread.is_alive() for thread in threads), "every client stopped")
    with lock:
        kept = dict(acked)
        total_sent = sent[0]
    t.check(len(failures) >= 1, "the kill failed the requests in flight", failures[:3])
    t.note("%d acknowledged, %d sent, %d failed" % (len(kept), total_sent, len(failures)))

    #  Restart on the same directory; wait until only live workers answer
    node = t.node(b.endpoint, actors="pathwayd", workers=2, sets=sets)
    deadline = lhtest.now() + 20
    while True:
        rep = watch.call("pathwayd", "stats", {}, timeout=5.0, q=True, dl=5000)
        if (rep is not None and rep.st == 200) or lhtest.now() > deadline:
            break
        watch.idle(0.05)
    t.check(rep is not None and rep.st == 200, "the restarted node answers", rep and (rep.st, rep.obj))
    stats = rep.obj
    t.check(len(kept) <= stats["total"] <= total_sent,
            "the store holds every acknowledged add and nothing never sent (%d <= %d <= %d)"
            % (len(kept), stats["total"], total_sent), stats)
    missing = wrong = 0
    for uid, content in kept.items():
        rep = watch.call("pathwayd", "get", {"uid": uid}, timeout=10.0, q=True, dl=10000)
        if rep is None or rep.st != 200:
            missing += 1
        elif rep.obj["content"] != content or rep.obj["tags"] != ["crash"]:
            wrong += 1
    t.check(missing == 0 and wrong == 0,
            "every acknowledged uid is there with its content (%d checked)" % len(kept),
            (missing, wrong))
    rep = watch.call("pathwayd", "search", {"tags": ["crash"], "limit": 1000}, timeout=10.0)
    t.check(rep.st == 200 and rep.obj["count"] == 1000 and rep.obj["truncated"] is True,
            "search after the restart", rep.obj.get("count"))
    rep = watch.call("pathwayd", "add", {"content": "after"}, timeout=10.0, q=True, dl=10000)
    t.check(rep.st == 201, "writes go on after the restart", rep.st)
    node.term()


def main(t):
    http_routes(t)
    crash(t)


if __name__ == "__main__":
    lhtest.run(main, budget=200)
