#!/usr/bin/python3
"""test_events - every actor that changes state publishes an event
(docs/observerd.md "The events"), seen through observerd in one
`lakehouse up` running every service (chatd at the fake provider):

- one change of each kind — storaged put, upload commit, delete (HTTP
  and bus), ingest of a CSV (HTTP), vectord create / add / delete / drop,
  pathwayd add / add_idempotent / update / revise / retire, matrixd
  playbook_record and playbook_bulk, validatord iterate (and so chatd's
  chat call), distilld materialize — and each event is found in
  observerd's `events` with its fields, its topic, its publisher (`src`:
  the worker that handled the request);
- then a refused request of each kind (bad key, missing object, missing
  index, duplicate index, unknown uid, score out of range, unknown kind,
  malformed model, unknown stage field): after them and one sentinel
  change, the events since the first refusal are exactly the sentinel's;
  the broker refused none of the events (refused.publish 0);
- with an acl/actor/publish that leaves storaged's events out, a put
  still succeeds, the broker counts each refused event and storaged's
  worker logs the refusal (an event is never lost silently).
"""

import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
import lhtest                    # noqa: E402
import test_chatd_util as u      # noqa: E402
import test_gateway_util as gw   # noqa: E402
import fake_provider             # noqa: E402

GATEWAY_URL = re.compile(r"gateway.*?(http://(?:\[[^\]]+\]|[0-9.]+):\d+)")
ROSTER = [{"candidate_id": "W-1", "name": "Ann Lee", "city": "Toledo", "state": "OH",
           "role": "forklift", "status": "active"}]
CONTEXT = {"target_count": 1, "city": "Toledo", "state": "OH", "role": "forklift",
           "client_id": "C-1"}
ANSWER = "```json\n" + json.dumps({"fills": [{"candidate_id": "W-1", "name": "Ann Lee"}]}) + "\n```"
CSV = b"id,name,city\n1,Ann,Toledo\n2,Bo,Toledo\n3,Cy,Louisville\n"


class Watcher:
    """Reads observerd's events from a cursor on."""

    def __init__(self, t, peer):
        self.t = t
        self.peer = peer
        self.cursor = self.page(None)["next"]

    def page(self, since):
        body = {"limit": 1000}
        if since is not None:
            body["since"] = since
        rep = self.peer.call("observerd", "events", body, timeout=10.0)
        if rep is None or rep.st != 200:
            raise lhtest.Failure("observerd.events: %r" % (rep and (rep.st, rep.obj)))
        return rep.obj

    def since(self, cursor):
        events = []
        while True:
            page = self.page(cursor)
            events += page["events"]
            cursor = page["next"]
            if not page["truncated"]:
                return events, cursor

    def wait(self, topic, predicate=lambda body: True, timeout=10.0):
        """The first event of topic after the cursor whose body matches,
        polled until timeout; the cursor does not move."""
        deadline = lhtest.now() + timeout
        while True:
            events, _ = self.since(self.cursor)
            for event in events:
                if event["topic"] == topic and predicate(event["body"] or {}):
                    return event
            if lhtest.now() > deadline:
                self.t.check(False, "event %s arrives" % topic,
                             [(e["topic"], e["body"]) for e in events][-20:])
            self.peer.idle(0.05)


def call(p, svc, op, body, timeout=20.0):
    rep = p.call(svc, op, body, timeout=timeout, dl=int(timeout * 1000))
    if rep is None:
        raise lhtest.Failure("no reply to %s.%s" % (svc, op))
    return rep.st, rep.obj


def main(t):
    with fake_provider.start() as fake:
        body(t, fake)
        refused_publish(t)


def body(t, fake):
    roster = lhtest.write_jsonl(os.path.join(t.tmp, "roster.jsonl"), ROSTER)
    sets = u.provider_sets(fake)
    sets.update({"gateway/listen": "127.0.0.1:0", "validatord/roster": roster,
                 "observerd/flush_ms": 50, "vectord/snapshot_ms": 0})
    up = t.up(actors="*", sets=sets, timeout=30.0)
    url = None
    with up.proc.cond:
        for line in up.proc.lines:
            m = GATEWAY_URL.search(line)
            if m:
                url = m.group(1)
    h = gw.Harness(t, up.proc, url)
    p = t.client(up.endpoint, name="events")
    t.keep.append(p)
    subscribed = None
    deadline = lhtest.now() + 10
    while not subscribed and lhtest.now() < deadline:
        st, stats = call(p, "observerd", "stats", {})
        subscribed = st == 200 and stats.get("subscribed")
        p.idle(0.05)
    t.check(subscribed, "observerd is subscribed")
    w = Watcher(t, p)

    def seen(topic, source, what, predicate=lambda body: True, fields=()):
        event = w.wait(topic, predicate)
        t.check(event["source"].startswith(source + "-")
                and all(k in (event["body"] or {}) for k in fields),
                "%s: %s from %s%s" % (what, topic, source,
                                      " with " + ", ".join(fields) if fields else ""), event)
        return event["body"]

    #  storaged: put (HTTP), upload commit and delete (bus)
    st, hdrs, reply = h.request("PUT", "/v1/storage/ev/a.txt", b"hello events")
    t.check(st == 200, "PUT /v1/storage/ev/a.txt -> 200", (st, reply))
    etag = json.loads(reply)["etag"]
    ev = seen("storage.put", "storaged", "put", lambda b: b.get("key") == "ev/a.txt",
              ("key", "size", "etag"))
    t.check(ev["size"] == 12 and ev["etag"] == etag and "upload_id" not in ev,
            "storage.put: size and etag of the object", ev)
    st, begun = call(p, "storaged", "upload_begin", {"key": "ev/big.bin"})
    upload = begun["upload_id"]
    call(p, "storaged", "upload_part", {"upload_id": upload, "part": 1, "data": b"x" * 1000})
    st, done = call(p, "storaged", "upload_commit", {"upload_id": upload})
    t.check(st == 200, "upload_commit -> 200", (st, done))
    ev = seen("storage.put", "storaged", "upload commit", lambda b: b.get("key") == "ev/big.bin")
    t.check(ev.get("upload_id") == upload and ev["size"] == 1000,
            "storage.put of a commit names its upload_id", ev)
    st, reply = call(p, "storaged", "delete", {"key": "ev/a.txt"})
    t.check(st == 200, "storaged.delete -> 200", (st, reply))
    seen("storage.delete", "storaged", "delete", lambda b: b.get("key") == "ev/a.txt", ("key",))

    #  ingestd (through the gateway: the upload, then ingestd.ingest)
    st, hdrs, reply = h.request("POST", "/v1/ingest?name=evds", CSV,
                                {"Content-Type": "text/csv"}, timeout=30.0)
    t.check(st == 200, "POST /v1/ingest?name=evds -> 200", (st, reply))
    ingested = json.loads(reply)
    ev = seen("ingest.done", "ingestd", "ingest", lambda b: b.get("name") == "evds",
              ("dataset_id", "schema_fingerprint", "row_count", "columns", "key", "source"))
    t.check(ev["dataset_id"] == ingested["dataset_id"] and ev["row_count"] == 3
            and ev["columns"] == 3 and ev["key"] == ingested["key"]
            and ev["schema_fingerprint"] == ingested["schema_fingerprint"],
            "ingest.done: the dataset, its rows and its table", (ev, ingested))
    seen("catalog.changed", "catalogd", "ingest's register", lambda b: b.get("name") == "evds")

    #  vectord
    st, reply = call(p, "vectord", "create", {"name": "evidx", "dim": 4})
    t.check(st == 201, "vectord.create -> 201", (st, reply))
    ev = seen("vectors.create", "vectord", "create", lambda b: b.get("name") == "evidx")
    t.check(ev["dim"] == 4 and ev["metric"] == "cosine", "vectors.create: dim, metric", ev)
    items = [{"id": "a", "vector": [1.0, 0, 0, 0]}, {"id": "b", "vector": [0, 1.0, 0, 0]}]
    st, reply = call(p, "vectord", "add", {"name": "evidx", "items": items})
    t.check(st == 200, "vectord.add -> 200", (st, reply))
    ev = seen("vectors.add", "vectord", "add", lambda b: b.get("name") == "evidx")
    t.check(ev["added"] == 2 and ev["count"] == 2, "vectors.add: added, count", ev)
    st, reply = call(p, "vectord", "delete", {"name": "evidx", "ids": ["a"]})
    ev = seen("vectors.delete", "vectord", "delete", lambda b: b.get("name") == "evidx")
    t.check(ev["deleted"] == 1 and ev["count"] == 1, "vectors.delete: deleted, count", ev)
    st, reply = call(p, "vectord", "drop", {"name": "evidx"})
    seen("vectors.drop", "vectord", "drop", lambda b: b.get("name") == "evidx")

    #  pathwayd
    st, trace = call(p, "pathwayd", "add", {"content": {"step": 1}, "tags": ["ev"]})
    t.check(st == 201 or st == 200, "pathwayd.add", (st, trace))
    uid = trace["uid"]
    ev = seen("pathway.add", "pathwayd", "add", lambda b: b.get("uid") == uid)
    t.check(ev["version"] == trace["version"] and ev["retired"] is False
            and ev["replay_count"] == 0, "pathway.add: uid, version, retired, replay_count", ev)
    call(p, "pathwayd", "update", {"uid": uid, "content": {"step": 2}})
    ev = seen("pathway.update", "pathwayd", "update", lambda b: b.get("uid") == uid)
    t.check(ev["version"] == trace["version"] + 1, "pathway.update: the new version", ev)
    st, revised = call(p, "pathwayd", "revise", {"uid": uid, "content": {"step": 3}})
    ev = seen("pathway.revise", "pathwayd", "revise", lambda b: b.get("predecessor") == uid)
    t.check(ev["uid"] == revised["uid"], "pathway.revise: the new uid, its predecessor", ev)
    call(p, "pathwayd", "retire", {"uid": uid})
    ev = seen("pathway.retire", "pathwayd", "retire", lambda b: b.get("uid") == uid)
    t.check(ev["retired"] is True, "pathway.retire: retired", ev)
    for expect in (0, 1):
        call(p, "pathwayd", "add_idempotent", {"uid": "ev-idem", "content": {"x": 1}})
        seen("pathway.add_idempotent", "pathwayd", "add_idempotent #%d" % (expect + 1),
             lambda b, expect=expect: b.get("uid") == "ev-idem" and b.get("replay_count") == expect)

    #  matrixd
    st, reply = call(p, "matrixd", "playbook_record",
                     {"query_text": "forklift Toledo", "answer_id": "W-1",
                      "answer_corpus": "workers", "score": 0.9}, timeout=30.0)
    t.check(st == 200, "matrixd.playbook_record -> 200", (st, reply))
    ev = seen("playbook.record", "matrixd", "playbook_record",
              lambda b: b.get("playbook_id") == reply["playbook_id"])
    t.check(ev["answer_id"] == "W-1" and ev["answer_corpus"] == "workers"
            and abs(ev["score"] - 0.9) < 1e-9 and ev["playbook_corpus"] == reply["playbook_corpus"],
            "playbook.record: the entry", ev)
    entries = [{"query_text": "q%d" % i, "answer_id": "W-%d" % i, "answer_corpus": "workers",
                "score": 0.5} for i in range(3)]
    st, reply = call(p, "matrixd", "playbook_bulk", {"entries": entries}, timeout=30.0)
    t.check(st == 200, "matrixd.playbook_bulk -> 200", (st, reply))
    ev = seen("playbook.bulk", "matrixd", "playbook_bulk", lambda b: b.get("recorded") == 3)
    t.check(ev["playbook_ids"] == reply["playbook_ids"], "playbook.bulk: the ids", ev)

    #  validatord.iterate and chatd's call
    fake.script("m-ev", [{"content": ANSWER, "usage": [9, 3]}], repeat=True)
    st, reply = call(p, "validatord", "iterate", {"kind": "fill", "model": "ollama/m-ev",
                                                  "prompt": "Fill 1", "context": CONTEXT,
                                                  "trace_id": "ev-session-1"})
    t.check(st == 200, "validatord.iterate -> 200", (st, reply))
    ev = seen("iterate.verdict", "validatord", "iterate",
              lambda b: b.get("session_id") == "ev-session-1")
    t.check(ev["final_verdict"] == "accepted" and ev["status"] == 200 and ev["kind"] == "fill"
            and ev["model"] == "ollama/m-ev" and ev["provider"] == "ollama"
            and ev["iterations"] == 1 and isinstance(ev["duration_ms"], int),
            "iterate.verdict: verdict, status, model, provider, iterations", ev)
    ev = seen("chat.call", "chatd", "chat", lambda b: b.get("model") == "m-ev")
    t.check(ev["provider"] == "ollama" and ev["status"] == 200 and ev["http_status"] == 200
            and ev["prompt_tokens"] == 9 and ev["completion_tokens"] == 3
            and ev["total_tokens"] == 12 and ev["attempts"] == 1
            and isinstance(ev["latency_ms"], int),
            "chat.call: model, provider, status, tokens, latency", ev)

    #  distilld (an empty knowledge base: a run with nothing to read)
    st, reply = call(p, "distilld", "materialize", {"run_id": "ev-run-1"}, timeout=30.0)
    t.check(st == 200, "distilld.materialize -> 200", (st, reply))
    seen("distill.materialize", "distilld", "materialize",
         lambda b: b.get("run_id") == "ev-run-1", ("run_id",))

    #  Refused requests publish nothing
    _, cursor = w.since(w.cursor)
    refused = [
        ("storaged", "put", {"key": "../x", "data": b"1"}, 400),
        ("storaged", "delete", {"key": "ev/none"}, 404),
        ("storaged", "upload_commit", {"upload_id": "nosuchupload"}, None),
        ("vectord", "add", {"name": "noidx", "items": [{"id": "a", "vector": [1, 0, 0, 0]}]}, 404),
        ("vectord", "create", {"name": "dupidx", "dim": 2}, 201),
        ("vectord", "create", {"name": "dupidx", "dim": 2}, 409),
        ("pathwayd", "update", {"uid": "no-such-uid", "content": {}}, 404),
        ("matrixd", "playbook_record", {"query_text": "q", "answer_id": "a",
                                        "answer_corpus": "c", "score": 2}, 400),
        ("validatord", "iterate", {"kind": "nope", "model": "ollama/m-ev", "prompt": "x"}, 400),
        ("chatd", "chat", {"model": "", "messages": [{"role": "user", "content": "x"}]}, 400),
        ("distilld", "materialize", {"no_such_field": 1}, 400),
    ]
    for svc, op, req, expect in refused:
        st, reply = call(p, svc, op, req)
        if expect == 201:       # the setup of the next refusal: its event is expected
            w.wait("vectors.create", lambda b: b.get("name") == "dupidx")
            continue
        t.check(st >= 400 and (expect is None or st == expect),
                "refused: %s.%s -> %s" % (svc, op, expect or "4xx"), (st, reply))
    events, _ = w.since(cursor)
    #  The one expected event (the duplicate's first create) aside
    events = [e for e in events if not (e["topic"] == "vectors.create"
                                        and (e["body"] or {}).get("name") == "dupidx")]
    st, reply = call(p, "pathwayd", "add", {"content": {"sentinel": True}})
    sentinel = reply["uid"]
    w.cursor = cursor
    w.wait("pathway.add", lambda b: b.get("uid") == sentinel)
    after, _ = w.since(cursor)
    after = [e for e in after if not (e["topic"] == "vectors.create"
                                      and (e["body"] or {}).get("name") == "dupidx")]
    t.check([e["topic"] for e in after] == ["pathway.add"]
            and after[0]["body"]["uid"] == sentinel and not events,
            "refused requests published nothing (only the sentinel's event follows them)",
            [(e["topic"], e["source"], e["body"]) for e in after])
    stats = t.stats(p)
    t.check(stats["refused"]["publish"] == 0,
            "the default acl/actor/publish admits every event above (broker.stats "
            "refused.publish 0)", stats["refused"])
    up.proc.term()


def refused_publish(t):
    """An ACL that does not admit storaged's events: the put still
    succeeds, the broker counts the refusal and storaged's worker logs it."""
    up = t.up(actors="storaged", sets={"acl/actor/publish": "catalogd=catalog."})
    p = t.client(up.endpoint, name="narrow")
    t.keep.append(p)
    for index in range(2):
        st, reply = call(p, "storaged", "put", {"key": "ev/n%d" % index, "data": b"1"})
        t.check(st == 200, "a narrowed acl/actor/publish: put #%d -> 200" % (index + 1),
                (st, reply))
    count = t.wait_stat(p, "refused.publish", lambda v: (v or 0) >= 2)
    t.check(count == 2, "the refused storage.put events are counted (refused.publish 2)", count)
    pattern = re.compile(r"E storaged-\d+ - the broker refused our event \(1 so far\): role "
                         r"actor serving storaged may not publish 'storage\.put' "
                         r"\(acl/actor/publish\)")
    line = None
    deadline = lhtest.now() + 10
    while line is None and lhtest.now() < deadline:       # stderr is a file
        with open(up.proc.log_path, encoding="utf-8", errors="replace") as f:
            line = next((x for x in f if pattern.search(x)), None)
        p.idle(0.05)
    t.check(line is not None, "storaged's worker logs the refusal (an error naming the topic and the key)", line)
    up.proc.term()


if __name__ == "__main__":
    lhtest.run(main)
