#!/usr/bin/python3
"""test_console_http - the console's routes, over plain HTTP (the browser
test is test_console.py).

`lakehouse up` with echo, validatord and a token file (admin, tap, client
tokens), the broker's tap on, gateway/tap_buffer 50, gateway/tap_streams 3:

- GET /console and /console/FILE: no token needed, Content-Type, ETag (304
  on If-None-Match), Cache-Control, a strict Content-Security-Policy; an
  unknown file is 404.
- GET /v1/tap/stream: 401 without a token, 403 for a client token, 400 for a
  bad filter; a tap token gets text/event-stream: a hello event, then the
  REQ and REP of a request made while it is open (and only the filtered
  service's); an admin token may read it too.
- A stalled stream (connected, never reading) costs nothing to the others:
  a reading stream still sees a new request at once, /health answers, and
  when the stalled one reads at last it gets the newest ones, told of any
  it missed (its ring's "dropped", the tap's "gap" while the hub paused).
- More streams than gateway/tap_streams: 429.
- GET /v1/iterate/sessions: the rows iterate calls wrote, newest first,
  limit and since; 400 for a bad limit.
- bus/tap empty: GET /v1/tap/stream answers 503 tap_unavailable, saying so.
"""

import json
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest                    # noqa: E402
import test_gateway_util as gw   # noqa: E402

ADMIN = "admin-token-0123456789abcdef"
TAP = "tap-token-0123456789abcdef"
CLIENT = "client-token-0123456789abcdef"


class Stream:
    """A GET /v1/tap/stream read as HTTP/1.0 (no chunked encoding): the
    events come as they are, until the server closes."""

    def __init__(self, h, query="", token=TAP, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect((h.host, h.port))
        self.sock.sendall(("GET /v1/tap/stream%s HTTP/1.0\r\nAuthorization: Bearer %s\r\n\r\n"
                           % (query, token)).encode())
        self.buffer = b""
        self.status = None
        self.headers = {}

    def head(self):
        """Read the status line and headers."""
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise lhtest.Failure("the stream closed before its headers")
            self.buffer += chunk
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        return self.status

    def event(self, timeout=10.0):
        """The next event as (type, data dict or None, id); comments skipped."""
        deadline = time.monotonic() + timeout
        while True:
            while b"\n\n" in self.buffer:
                block, self.buffer = self.buffer.split(b"\n\n", 1)
                kind, data, ident = "message", "", None
                for line in block.decode().split("\n"):
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        data += line[6:]
                    elif line.startswith("id: "):
                        ident = line[4:]
                if data:
                    return kind, json.loads(data), ident
            left = deadline - time.monotonic()
            if left <= 0:
                raise lhtest.Failure("no event within %.1f s" % timeout)
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise lhtest.Failure("no event within %.1f s" % timeout)
            if not chunk:
                raise lhtest.Failure("the stream closed")
            self.buffer += chunk

    def close(self):
        self.sock.close()


def find_trace(t, h, stream, trace, want, resend=None, timeout=10.0):
    """Read stream until events of trace with every kind in want came;
    resend() every second meanwhile (the first messages after a stream
    opens may pass before its subscription reaches the tap). Returns the
    events of that trace; fails on any other service's event."""
    deadline = time.monotonic() + timeout
    found = []
    next_send = 0
    while time.monotonic() < deadline:
        if resend and time.monotonic() >= next_send:
            resend()
            next_send = time.monotonic() + 1.0
        try:
            kind, data, ident = stream.event(timeout=0.5)
        except lhtest.Failure as e:
            if "closed" in str(e):
                raise
            continue
        if kind == "message" and data.get("tr") == trace:
            found.append(data)
            if want <= {d["kind"] for d in found}:
                return found
    raise lhtest.Failure("trace %s: saw only %r" % (trace, found))


def main(t):
    tokens = os.path.join(t.tmp, "tokens")
    with open(tokens, "w") as f:
        f.write("%s role=admin name=ops\n%s role=tap name=wall\n%s name=cli\n" % (ADMIN, TAP, CLIENT))
    os.chmod(tokens, 0o600)
    b, h = gw.up(t, "echo,validatord,chatd", sets={
        "bus/tap": "tcp://127.0.0.1:*", "gateway/token_file": tokens,
        "gateway/tap_buffer": 50, "gateway/tap_streams": 3,
        "actors/echo/workers": 2, "actors/chatd/workers": 1,
        "chatd/ollama_url": "http://127.0.0.1:%d" % lhtest.free_port()})
    auth = {"Authorization": "Bearer " + ADMIN}

    #  The console's files: open, cached by ETag, under a strict policy
    st, hdrs, body = h.request("GET", "/console")
    t.check(st == 200 and hdrs["content-type"].startswith("text/html") and b"console.js" in body,
            "GET /console (no token) -> 200 text/html, the page", (st, hdrs))
    csp = hdrs.get("content-security-policy", "")
    t.check("default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe" not in csp
            and "frame-ancestors 'none'" in csp, "a strict Content-Security-Policy", csp)
    t.check(hdrs.get("cache-control") == "no-cache" and hdrs.get("x-content-type-options") == "nosniff",
            "Cache-Control no-cache, nosniff", hdrs)
    st, hdrs, body = h.request("GET", "/console/console.js")
    etag = hdrs.get("etag", "")
    t.check(st == 200 and hdrs["content-type"].startswith("text/javascript")
            and re.match(r'^"[0-9a-f]{16}"$', etag), "GET /console/console.js -> 200, an ETag", hdrs)
    st, hdrs, body = h.request("GET", "/console/console.js", headers={"If-None-Match": etag})
    t.check(st == 304 and body == b"", "If-None-Match with its ETag -> 304", st)
    st, hdrs, body = h.request("GET", "/console/console.css")
    t.check(st == 200 and hdrs["content-type"].startswith("text/css"), "console.css is text/css", hdrs)
    for path in ("/console/nope.js", "/console/../lh_gateway.c"):
        st, hdrs, body = h.request("GET", path)
        t.check(st == 404, "GET %s -> 404" % path, (st, body))

    #  broker.stats {latency: true}: each service's histogram, for the
    #  console's latency chart
    for n in range(5):
        h.request("POST", "/v1/bus/echo/echo", b"{}", auth)
    st, _, body = h.request("POST", "/v1/bus/broker/stats", b'{"latency": true}', auth)
    echo_stats = json.loads(body)["services"]["echo"]
    t.check(st == 200 and sum(c for _, c in echo_stats["latency"]) == echo_stats["replies"] >= 5
            and all(v > 0 for v, _ in echo_stats["latency"]),
            "broker.stats {latency: true}: echo's histogram counts its replies", echo_stats)
    st, _, body = h.request("POST", "/v1/bus/broker/stats", b"{}", auth)
    t.check("latency" not in json.loads(body)["services"]["echo"], "without it, no histogram")

    #  Who may read the tap
    st, hdrs, body = h.request("GET", "/v1/tap/stream")
    t.check(st == 401, "the tap stream without a token -> 401", (st, body))
    st, hdrs, body = h.request("GET", "/v1/tap/stream", headers={"Authorization": "Bearer " + CLIENT})
    t.check(st == 403 and b"gateway/tap_roles" in body, "a client token -> 403 naming gateway/tap_roles", body)
    st, hdrs, body = h.request("GET", "/v1/tap/stream?service=a%20b",
                               headers={"Authorization": "Bearer " + TAP})
    t.check(st == 400 and b"service" in body, "a bad service filter -> 400", body)
    st, hdrs, body = h.request("GET", "/v1/tap/stream?trace=xyz", headers={"Authorization": "Bearer " + TAP})
    t.check(st == 400 and b"trace" in body, "a bad trace filter -> 400", body)
    st, hdrs, body = h.request("POST", "/v1/bus/echo/echo", b"{}", {"Authorization": "Bearer " + TAP})
    t.check(st == 403, "a tap token may not call echo (acl/tap/call is empty)", (st, body))

    #  A stream filtered to echo sees a request made while it is open
    reader = Stream(h, "?service=echo")
    t.check(reader.head() == 200 and reader.headers["content-type"].startswith("text/event-stream")
            and reader.headers.get("cache-control") == "no-store",
            "a tap token -> 200 text/event-stream", reader.headers)
    kind, hello, _ = reader.event()
    t.check(kind == "hello" and hello == {"buffer": 50, "service": "echo", "op": None, "trace": None},
            "the stream starts with its hello event", (kind, hello))
    trace = "1" * 31 + "a"

    def echo(n, trace_id=trace):
        st, _, body = h.request("POST", "/v1/bus/echo/echo", json.dumps({"n": n}).encode(),
                                {"X-Lakehouse-Trace-Id": trace_id, **auth})
        if st != 200:
            raise lhtest.Failure("echo answered %d: %r" % (st, body))
    found = find_trace(t, h, reader, trace, {"REQ", "REP"}, resend=lambda: echo(0))
    rep = [d for d in found if d["kind"] == "REP"][0]
    t.check(rep["svc"] == "echo" and rep["op"] == "echo" and rep["st"] == 200 and "latency_us" in rep,
            "the REQ and REP of that request came, the REP with svc, op, st and latency", rep)
    #  Only echo: a broker call in between does not show
    h.request("POST", "/v1/bus/broker/ping", b"{}", auth)
    trace2 = "2" * 31 + "b"
    echo(1, trace2)
    while True:
        kind, data, ident = reader.event()
        if kind == "message" and data.get("svc") != "echo":
            raise lhtest.Failure("the stream filtered to echo showed %r" % data)
        if kind == "message" and data.get("tr") == trace2 and data["kind"] == "REP":
            break
    t.check(True, "the stream filtered to echo showed no broker.ping")
    t.check(ident is not None and int(ident) == data["bseq"], "each message's SSE id is its bseq", (ident, data))
    admin = Stream(h, "?op=ping", token=ADMIN)
    t.check(admin.head() == 200, "an admin token may read the tap too", admin.status)

    #  A stalled stream: never reads (a tiny receive buffer). 1,500 echo
    #  requests later the reading stream and /health do not notice it
    stalled = Stream(h, "", rcvbuf=4096)
    t.check(stalled.head() == 200, "a third stream opens", stalled.status)
    st, _, body = h.request("GET", "/v1/tap/stream", headers={"Authorization": "Bearer " + TAP})
    t.check(st == 429 and b"gateway/tap_streams" in body, "a fourth stream -> 429 (gateway/tap_streams 3)",
            (st, body))
    admin.close()
    conn = h.connection()
    started = time.monotonic()
    for n in range(1500):
        conn.request("POST", "/v1/bus/echo/echo", body=b'{"flood":1}', headers=auth)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise lhtest.Failure("flood request %d answered %d" % (n, resp.status))
    took = time.monotonic() - started
    conn.close()
    t.note("1,500 echo requests in %.2f s with a stalled stream open" % took)
    trace3 = "3" * 31 + "c"
    sent = time.monotonic()
    echo(2, trace3)
    #  The reader drains what it has (the flood) and finds the new request
    deadline = time.monotonic() + 20
    seen = False
    dropped_reader = 0
    while time.monotonic() < deadline and not seen:
        kind, data, ident = reader.event(timeout=deadline - time.monotonic())
        if kind == "dropped":
            dropped_reader += data["dropped"]
        seen = kind == "message" and data.get("tr") == trace3 and data["kind"] == "REP"
    t.check(seen, "the reading stream still sees a new request (%.2f s after it was sent; its own "
            "buffer dropped %d of the flood)" % (time.monotonic() - sent, dropped_reader))
    st, _, body = h.request("GET", "/health")
    t.check(st == 200, "/health answers with a stalled stream open", st)
    #  Now the stalled one reads: what it holds (the kernel's socket buffers
    #  take much of the flood), told what its ring dropped ("dropped") or
    #  what the tap dropped while every ring was full and the hub paused
    #  ("gap"), then the newest: nothing is lost without a word
    dropped = 0
    missed = 0
    bseqs = []
    seen = False
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not seen:
        kind, data, ident = stalled.event(timeout=deadline - time.monotonic())
        if kind == "dropped":
            dropped = data["total"]
        elif kind == "gap":
            missed += data["missed"]
        elif kind == "message":
            bseqs.append(data["bseq"])
            seen = data.get("tr") == trace3 and data["kind"] == "REP"
    holes = sum(1 for a, b in zip(bseqs, bseqs[1:]) if b != a + 1)
    t.check(seen and (holes == 0 or dropped or missed),
            "the stalled stream, reading at last, gets the newest request; %d events came, its "
            "ring dropped %d, the tap %d, and every hole in bseq (%d) was told"
            % (len(bseqs), dropped, missed, holes), (seen, dropped, missed, holes))
    stalled.close()
    reader.close()

    #  The session log's newest rows: three iterate calls (chatd fails, so
    #  each is an infra_error row)
    for n in range(3):
        st, _, body = h.request("POST", "/v1/iterate", json.dumps(
            {"kind": "sms", "model": "local_fast", "prompt": "hello %d" % n}).encode(), auth)
        t.check(st == 502, "iterate %d answers 502 (no model reachable) and writes a row" % n, (st, body))
    st, _, body = h.request("GET", "/v1/iterate/sessions?limit=2", headers=auth)
    doc = json.loads(body)
    t.check(st == 200 and doc["count"] == 2 and doc["truncated"] and doc["enabled"]
            and doc["rows"][0]["prompt"] == "hello 2" and doc["rows"][1]["prompt"] == "hello 1",
            "GET /v1/iterate/sessions?limit=2: the newest two, newest first", doc)
    since = doc["rows"][1]["timestamp"]
    st, _, body = h.request("GET", "/v1/iterate/sessions?since=" + since, headers=auth)
    doc = json.loads(body)
    t.check(st == 200 and [r["prompt"] for r in doc["rows"]] == ["hello 2"],
            "since: only the rows after that time", doc)
    st, _, body = h.request("GET", "/v1/iterate/sessions?limit=0", headers=auth)
    t.check(st == 400 and json.loads(body)["error"]["field"] == "limit", "limit=0 -> 400 naming limit", body)

    #  No tap at all: the stream says so
    b2, h2 = gw.up(t, "echo", sets={"bus/tap": "", "gateway/token_file": tokens,
                                    "bus/inproc": "inproc://lh-console-notap"})
    st, _, body = h2.request("GET", "/v1/tap/stream", headers={"Authorization": "Bearer " + TAP})
    t.check(st == 503 and b"tap_unavailable" in body and b"bus/tap is empty" in body,
            "bus/tap empty: 503 tap_unavailable, saying why", (st, body))


if __name__ == "__main__":
    lhtest.run(main)
