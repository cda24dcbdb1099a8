#!/usr/bin/python3
"""test_traces - OpenTelemetry spans of every hop, exported as OTLP/HTTP
JSON (docs/operations.md "Traces"), with real processes:

- tracing on (`lakehouse up` with chatd, validatord and the gateway,
  trace/otlp_endpoint at tests/otlp_collector.py, chatd at the fake
  provider): one POST /v1/iterate makes one trace in the collector —
  the gateway's span (the root: method, route, status) -> the broker's
  queue span and validatord.iterate -> validatord's call span chatd.chat
  -> the broker's queue span and chatd's chatd.chat -> chatd's upstream
  call (provider, model, status, tokens); every export carries the
  trace/otlp_headers_file's lines (Langfuse's Basic auth); one trace id (32 hex), span ids
  16 hex and unique, every parent id among the spans but the root's,
  every child within its parent (10 us of slack for the clocks), the
  response's traceparent naming the gateway span; a traceparent sent in
  makes the gateway span its child; PUT and GET /v1/storage/KEY (the
  streaming routes, called from the HTTP thread): storaged's span is a
  child of the gateway span; a workflow run over HTTP: the run's span
  under workflowd.workflow_run, each node's call under it, echo's under
  each call; the exporter thread lh-otlp runs;
- the collector down (nothing listens): requests still succeed, the
  failed exports and the spans the small queue dropped are counted in
  broker.stats trace;
- tracing off: no lh-otlp thread, broker.stats trace.enabled false and
  no span counted.
"""

import base64
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
import otlp_collector            # noqa: E402

GATEWAY_URL = re.compile(r"gateway.*?(http://(?:\[[^\]]+\]|[0-9.]+):\d+)")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
SLACK_NS = 10000                        # clock granularity allowed, ns
ROSTER = [{"candidate_id": "W-1", "name": "Ann Lee", "city": "Toledo", "state": "OH",
           "role": "forklift", "status": "active"}]
CONTEXT = {"target_count": 1, "city": "Toledo", "state": "OH", "role": "forklift",
           "client_id": "C-1"}
ANSWER = "```json\n" + json.dumps({"fills": [{"candidate_id": "W-1", "name": "Ann Lee"}]}) + "\n```"


def gateway(t, up):
    """The gateway's URL from `lakehouse up`'s lines, as a Harness."""
    with up.proc.cond:
        for line in up.proc.lines:
            m = GATEWAY_URL.search(line)
            if m:
                return gw.Harness(t, up.proc, m.group(1))
    raise lhtest.Failure("`lakehouse up` printed no gateway URL")


def threads(pid):
    """The names of a process's threads."""
    names = []
    for task in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, task)) as f:
                names.append(f.read().strip())
        except OSError:
            pass
    return names


def start(t, fake, sets):
    roster = lhtest.write_jsonl(os.path.join(t.tmp, "roster.jsonl"), ROSTER)
    merged = u.provider_sets(fake)
    merged.update({"gateway/listen": "127.0.0.1:0", "validatord/roster": roster})
    merged.update(sets)
    up = t.up(actors="chatd,validatord,echo,storaged,workflowd", workers=2, sets=merged)
    return up, gateway(t, up)


def iterate(h, headers=None):
    body = json.dumps({"kind": "fill", "model": "ollama/m-trace", "prompt": "Fill 1 driver",
                       "context": CONTEXT}).encode()
    hdrs = {"Content-Type": "application/json"}
    hdrs.update(headers or {})
    return h.request("POST", "/v1/iterate", body, hdrs, timeout=20.0)


def one(t, spans, what, **match):
    """The one span whose fields (service, name, kind, parentSpanId) match."""
    found = [s for s in spans if all(s.get(k) == v for k, v in match.items())]
    t.check(len(found) == 1, "%s: exactly one span %r" % (what, match),
            [(s["service"], s["name"], s["kind"], s.get("parentSpanId")) for s in spans])
    return found[0]


def check_tree(t, spans, trace, what):
    """One trace: ids of the right form, every parent present but the
    root's, children within their parents."""
    t.check(all(s["traceId"] == trace for s in spans), "%s: one trace id" % what,
            set(s["traceId"] for s in spans))
    t.check(HEX32.match(trace) and all(HEX16.match(s["spanId"]) for s in spans)
            and all(HEX16.match(s["parentSpanId"]) for s in spans if "parentSpanId" in s),
            "%s: trace id 32 hex, span and parent ids 16 hex" % what,
            [(s["spanId"], s.get("parentSpanId")) for s in spans])
    ids = {s["spanId"]: s for s in spans}
    t.check(len(ids) == len(spans), "%s: span ids are unique" % what, sorted(ids))
    roots = [s for s in spans if s.get("parentSpanId") not in ids]
    t.check(len(roots) == 1 and roots[0]["service"] == "gateway",
            "%s: every parent id is among the spans but the root's (the gateway's)" % what,
            [(s["service"], s["name"], s.get("parentSpanId")) for s in roots])
    bad = []
    for s in spans:
        start, end = int(s["startTimeUnixNano"]), int(s["endTimeUnixNano"])
        if end < start:
            bad.append(("ends before it starts", s["name"]))
        parent = ids.get(s.get("parentSpanId"))
        if parent and (start < int(parent["startTimeUnixNano"]) - SLACK_NS
                       or end > int(parent["endTimeUnixNano"]) + SLACK_NS):
            bad.append((s["service"], s["name"], start - int(parent["startTimeUnixNano"]),
                        int(parent["endTimeUnixNano"]) - end, parent["name"]))
    t.check(not bad, "%s: every span lies within its parent (slack %d ns)" % (what, SLACK_NS), bad)


def traced(t, fake, col):
    #  The headers a Langfuse export needs, from a 0600 file (docs/operations.md)
    auth = "Basic " + base64.b64encode(b"pk-lf-test:sk-lf-test").decode()
    headers_file = os.path.join(t.tmp, "otlp.headers")
    fd = os.open(headers_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# Langfuse\nAuthorization: %s\nx-langfuse-ingestion-version: 4\n" % auth)
    up, h = start(t, fake, {"trace/otlp_endpoint": col.url, "trace/flush_ms": 50,
                            "trace/otlp_headers_file": headers_file})
    t.check("lh-otlp" in threads(up.proc.pid), "tracing on: the exporter thread lh-otlp runs",
            threads(up.proc.pid))
    fake.script("m-trace", [{"content": ANSWER, "usage": [11, 4]}], repeat=True)
    st, hdrs, body = iterate(h)
    t.check(st == 200 and json.loads(body)["iterations"] == 1, "POST /v1/iterate -> 200",
            (st, body))
    trace = gw.check_trace_headers(t, hdrs, "iterate")
    parent_id = gw.TRACEPARENT.match(hdrs["traceparent"]).group(2)
    expected = 7     # gateway, 2 queue, validatord, its call, chatd, upstream
    spans = col.wait(lambda spans: len([s for s in spans if s["traceId"] == trace]) >= expected,
                     timeout=10)
    t.check(spans is not None, "the collector receives the trace's spans",
            [(s["service"], s["name"]) for s in col.spans()])
    spans = [s for s in spans if s["traceId"] == trace]
    t.note("%d spans: %s" % (len(spans), ", ".join("%s/%s" % (s["service"], s["name"])
                                                     for s in spans)))
    check_tree(t, spans, trace, "iterate")

    root = one(t, spans, "gateway", service="gateway", kind=2)
    t.check("parentSpanId" not in root and root["spanId"] == parent_id
            and root["name"] == "POST /v1/iterate"
            and root["attrs"].get("http.request.method") == "POST"
            and root["attrs"].get("http.route") == "/v1/iterate"
            and root["attrs"].get("http.response.status_code") == 200
            and root["attrs"].get("lh.bus") == "validatord.iterate",
            "the gateway span: root, method, route, status; its id is the traceparent's", root)
    server = one(t, spans, "validatord", service="validatord", name="validatord.iterate", kind=2)
    t.check(server.get("parentSpanId") == root["spanId"]
            and server["attrs"].get("rpc.service") == "validatord"
            and server["attrs"].get("rpc.method") == "iterate"
            and server["attrs"].get("lh.status") == 200,
            "validatord.iterate: child of the gateway span, service, op, status", server)
    queue = one(t, spans, "broker to validatord", service="broker", name="queue validatord.iterate")
    t.check(queue.get("parentSpanId") == root["spanId"] and queue["kind"] == 1
            and isinstance(queue["attrs"].get("lh.queue_us"), int)
            and int(queue["endTimeUnixNano"]) <= int(server["startTimeUnixNano"]) + SLACK_NS,
            "the broker's queue span: from its receive to validatord's", queue)
    call = one(t, spans, "validatord's call", service="validatord", name="chatd.chat", kind=3)
    t.check(call.get("parentSpanId") == server["spanId"]
            and call["attrs"].get("lh.status") == 200,
            "validatord's call to chatd: a client span under validatord.iterate", call)
    chat = one(t, spans, "chatd", service="chatd", name="chatd.chat", kind=2)
    t.check(chat.get("parentSpanId") == call["spanId"],
            "chatd.chat's server span is the child of validatord's call span", chat)
    one(t, spans, "broker to chatd", service="broker", name="queue chatd.chat",
        parentSpanId=call["spanId"])
    upstream = one(t, spans, "upstream", service="chatd", name="chat m-trace", kind=3)
    a = upstream["attrs"]
    t.check(upstream.get("parentSpanId") == chat["spanId"]
            and a.get("gen_ai.system") == "ollama" and a.get("gen_ai.request.model") == "m-trace"
            and a.get("http.response.status_code") == 200
            and a.get("gen_ai.usage.input_tokens") == 11
            and a.get("gen_ai.usage.output_tokens") == 4,
            "chatd's upstream call: provider, model, status, tokens", upstream)
    t.check(upstream["resource"].get("service.namespace") == "lakehouse"
            and upstream["resource"].get("service.instance.id"),
            "resource attributes: service.namespace, service.instance.id", upstream["resource"])
    t.check(not col.bad_requests(), "every export is valid OTLP JSON", col.bad_requests())
    posts = col.posts()
    t.check(posts and all(p["headers"].get("authorization") == auth
                          and p["headers"].get("x-langfuse-ingestion-version") == "4"
                          and p["headers"].get("content-type") == "application/json"
                          for p in posts),
            "every export carries the headers file's lines (Langfuse's Basic auth) and "
            "Content-Type: application/json", [p["headers"] for p in posts][:2])
    log = os.path.join(up.sets["data/dir"], "sessions", "iterate.jsonl")
    with open(log, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    t.check(len(rows) == 1 and rows[0]["session_id"] == trace
            and rows[0]["attempts"][0].get("span_id") == call["spanId"],
            "the session log's attempt names its chat call's span (span_id)", rows)

    #  A caller's traceparent: the gateway span is its child, same trace
    theirs = "4bf92f3577b34da6a3ce929d0e0e4736"
    st, hdrs, body = h.request("POST", "/v1/bus/echo/echo", b'{"a": 1}',
                               {"Content-Type": "application/json",
                                "traceparent": "00-%s-00f067aa0ba902b7-01" % theirs})
    t.check(st == 200, "echo with a traceparent -> 200", (st, body))
    spans = col.wait(lambda spans: len([s for s in spans if s["traceId"] == theirs]) >= 3)
    t.check(spans is not None, "the echo's spans arrive", col.spans()[-5:])
    spans = [s for s in spans if s["traceId"] == theirs]
    root = one(t, spans, "gateway (traceparent)", service="gateway")
    echo = one(t, spans, "echo", service="echo", name="echo.echo")
    t.check(root.get("parentSpanId") == "00f067aa0ba902b7"
            and echo.get("parentSpanId") == root["spanId"],
            "a traceparent's parent-id is the gateway span's parent", (root, echo))

    #  The streaming routes (PUT and GET /v1/storage/KEY) call storaged from
    #  the HTTP thread: their calls are children of the gateway span too
    for method, body, what in (("PUT", b"x" * 100, "put"), ("GET", None, "get")):
        hdrs = {"Content-Type": "application/octet-stream"} if body else {}
        st, rhdrs, reply = h.request(method, "/v1/storage/tr/a.bin", body, hdrs)
        t.check(st == 200 and (body or reply == b"x" * 100),
                "%s /v1/storage/tr/a.bin -> 200" % method, (st, reply[:200]))
        theirs = gw.TRACEPARENT.match(rhdrs["traceparent"]).group(1)
        spans = col.wait(lambda spans: len([s for s in spans if s["traceId"] == theirs
                                            and s["service"] == "storaged"]) >= 1)
        t.check(spans is not None, "%s: storaged's span arrives" % method, col.spans()[-5:])
        spans = [s for s in spans if s["traceId"] == theirs]
        root = one(t, spans, "%s gateway" % method, service="gateway")
        stored = [s for s in spans if s["service"] == "storaged"]
        t.check(stored and all(s.get("parentSpanId") == root["spanId"] and s["kind"] == 2
                               and s["name"] == "storaged." + what for s in stored),
                "%s: storaged.%s is a child of the gateway span" % (method, what),
                [(s["service"], s["name"], s.get("parentSpanId")) for s in spans])

    #  A workflow run over HTTP: the run's span under workflowd.workflow_run,
    #  each node's call under the run's span, the callee's under the call
    flow = {"name": "traced", "nodes": {"a": {"call": "echo.echo", "input": {"n": 1}},
                                        "b": {"call": "echo.echo", "needs": ["a"],
                                              "input": {"n": 2}}}}
    st, rhdrs, reply = h.request("POST", "/v1/workflows/run",
                                 json.dumps({"definition": flow}).encode(),
                                 {"Content-Type": "application/json"})
    t.check(st == 200 and json.loads(reply)["status"] == "succeeded",
            "POST /v1/workflows/run (two echo nodes) -> 200 succeeded", (st, reply[:300]))
    theirs = gw.TRACEPARENT.match(rhdrs["traceparent"]).group(1)
    spans = col.wait(lambda spans: len([s for s in spans if s["traceId"] == theirs]) >= 10)
    t.check(spans is not None, "the workflow run's spans arrive",
            [(s["service"], s["name"]) for s in col.spans() if s["traceId"] == theirs])
    spans = [s for s in spans if s["traceId"] == theirs]
    ids = {s["spanId"] for s in spans}
    roots = [s for s in spans if s.get("parentSpanId") not in ids]
    t.check(len(roots) == 1 and roots[0]["service"] == "gateway",
            "workflow: every parent id is among the spans but the gateway's",
            [(s["service"], s["name"], s.get("parentSpanId")) for s in roots])
    handler = one(t, spans, "workflowd.workflow_run", service="workflowd",
                  name="workflowd.workflow_run", kind=2)
    run = one(t, spans, "the run's span", service="workflowd", name="workflow traced", kind=1)
    calls = [s for s in spans if s["service"] == "workflowd" and s["kind"] == 3
             and s.get("parentSpanId") == run["spanId"]]     # not the handler's own calls
    echoes = [s for s in spans if s["service"] == "echo"]
    t.check(run.get("parentSpanId") == handler["spanId"]
            and run["attrs"].get("lh.run_status") == "succeeded"
            and sorted(c["attrs"].get("lh.node") for c in calls) == ["a", "b"]
            and all(c["name"] == "echo.echo" for c in calls)
            and sorted(e.get("parentSpanId") for e in echoes)
            == sorted(c["spanId"] for c in calls),
            "workflow: run span under workflow_run, node calls under the run, echo under "
            "each call", [(s["service"], s["name"], s["kind"], s["spanId"],
                           s.get("parentSpanId")) for s in spans])

    #  A run started by an event continues the trace of the request that
    #  published it: a workflow on "storage.", then a PUT over HTTP; the
    #  run's span is a child of storaged's span that published storage.put
    flow = {"name": "on_put", "on": "storage.",
            "nodes": {"a": {"call": "echo.echo", "input": {"n": 3}}}}
    st, _, reply = h.request("POST", "/v1/workflows/put", json.dumps({"definition": flow}).encode(),
                             {"Content-Type": "application/json"})
    t.check(st == 201, "POST /v1/workflows/put (on storage.) -> 201", (st, reply[:300]))
    st, rhdrs, reply = h.request("PUT", "/v1/storage/tr/evt.bin", b"y" * 10,
                                 {"Content-Type": "application/octet-stream"})
    t.check(st == 200, "PUT /v1/storage/tr/evt.bin -> 200", (st, reply[:200]))
    theirs = gw.TRACEPARENT.match(rhdrs["traceparent"]).group(1)
    spans = col.wait(lambda spans: len([s for s in spans if s["traceId"] == theirs
                                        and s["service"] == "echo"]) >= 1)
    t.check(spans is not None, "the event's run's spans arrive in the PUT's trace",
            [(s["service"], s["name"]) for s in col.spans() if s["service"] == "workflowd"][-5:])
    spans = [s for s in spans or [] if s["traceId"] == theirs]
    stored = one(t, spans, "storaged.put", service="storaged", name="storaged.put", kind=2)
    run = one(t, spans, "the event's run", service="workflowd", name="workflow on_put", kind=1)
    t.check(run.get("parentSpanId") == stored["spanId"]
            and run["attrs"].get("lh.trigger") == "event",
            "an event's run is a child of the span that published the event",
            [(s["service"], s["name"], s["kind"], s["spanId"], s.get("parentSpanId"))
             for s in spans])

    stats = t.stats(t.client(up.endpoint))["trace"]
    t.check(stats["enabled"] and stats["spans"] >= 10 and stats["exported"] >= 7
            and stats["dropped"] == 0 and stats["failed"] == 0,
            "broker.stats trace: spans exported, none dropped or failed", stats)
    up.proc.term()


def collector_down(t, fake):
    port = lhtest.free_port()                   # nothing listens here
    up, h = start(t, fake, {"trace/otlp_endpoint": "http://127.0.0.1:%d" % port,
                            "trace/flush_ms": 20, "trace/queue_max": 4,
                            "trace/batch_size": 1000, "trace/timeout_ms": 500})
    ok = 0
    conn = h.connection()
    for index in range(40):
        st, hdrs, body = h.request("POST", "/v1/bus/echo/echo", b'{"n": %d}' % index,
                                   {"Content-Type": "application/json"}, conn=conn)
        ok += st == 200
    t.check(ok == 40, "collector down: 40 of 40 requests succeed", ok)
    peer = t.client(up.endpoint)
    failed = t.wait_stat(peer, "trace.failed", lambda v: (v or 0) > 0, timeout=10)
    stats = t.stats(peer)["trace"]
    t.note("collector down: %r" % stats)
    t.check(failed and stats["post_errors"] > 0 and stats["exported"] == 0
            and stats["last_error"],
            "collector down: failed exports counted (trace.failed, post_errors, last_error)", stats)
    t.check(stats["dropped"] > 0,
            "a full queue (trace/queue_max 4) drops spans and counts them", stats)
    up.proc.term()


def untraced(t, fake):
    up, h = start(t, fake, {})
    st, hdrs, body = h.request("POST", "/v1/bus/echo/echo", b'{"a": 1}',
                               {"Content-Type": "application/json"})
    t.check(st == 200, "tracing off: echo -> 200", (st, body))
    t.check("lh-otlp" not in threads(up.proc.pid), "tracing off: no exporter thread",
            threads(up.proc.pid))
    stats = t.stats(t.client(up.endpoint))["trace"]
    t.check(not stats["enabled"] and stats["spans"] == 0 and stats["queue_max"] == 0,
            "tracing off: broker.stats trace says so, no span made", stats)
    up.proc.term()


def main(t):
    fake = fake_provider.start()
    col = otlp_collector.start()
    try:
        traced(t, fake, col)
        collector_down(t, fake)
        untraced(t, fake)
    finally:
        col.stop()
        fake.stop()


if __name__ == "__main__":
    lhtest.run(main)
