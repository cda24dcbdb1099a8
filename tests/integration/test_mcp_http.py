#!/usr/bin/python3
"""MCP's streamable HTTP transport (/mcp on the gateway) by hand, the rules
docs/mcp.md gives:

- sessions: initialize issues a 32-hex Mcp-Session-Id; other messages
  without it 400, with an unknown one 404; DELETE ends it (then 404);
- GET: 406 unless text/event-stream is accepted; the stream opens with a
  retry line, carries notifications (a log message after setLevel debug,
  list_changed and updated after an ingest of a subscribed dataset) and a
  keep-alive comment every mcp/sse_keepalive_ms; a second GET takes the
  stream's place (the first ends); DELETE ends the stream;
- POST answers JSON, or one SSE event when only text/event-stream is
  accepted; MCP-Protocol-Version 2025-03-26 and 2025-06-18 are taken;
- one HTTP thread (gateway/threads=1): a slow query (a 1-2 s SQL) does not
  hold it: pings on other connections are answered while the query runs,
  and 40 requests of one session on 40 connections all succeed;
- cancellation: notifications/cancelled for the slow query: its POST gets
  202 and no answer;
- bounds: mcp/sessions_max=3: a 4th session takes the place of the longest
  idle one (its id then 404); with 3 streams open a 4th initialize is 503;
  mcp/session_idle_s=1: an idle session ends (404), one with a stream does not;
- roles: a token file with a client and an admin token, acl/client/call
  without queryd: over /mcp the client token's query_sql is an isError
  result naming 403 and queryd.sql (as POST /v1/bus/queryd/sql is 403 for
  it), its list_datasets works; the admin token's query_sql works.
"""

import http.client
import json
import os
import re
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402
import lhmcp  # noqa: E402

SLOW_SQL = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) "
            "SELECT count(*) AS n FROM c")


class Stream:
    """A GET /mcp SSE stream read by a thread: its lines as they come"""

    def __init__(self, m, session=None, headers=None):
        self.conn = http.client.HTTPConnection(m.host, m.port, timeout=30)
        hdrs = {"Accept": "text/event-stream", "Mcp-Session-Id": session or m.session}
        hdrs.update(headers or {})
        self.conn.request("GET", "/mcp", headers={k: v for k, v in hdrs.items() if v})
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.lines = []
        self.ended = False
        self.cond = threading.Condition()
        if self.status == 200:
            threading.Thread(target=self._read, daemon=True).start()
        else:
            self.body = self.response.read()
            self.ended = True

    def _read(self):
        try:
            while True:
                line = self.response.readline()
                if not line:
                    break
                with self.cond:
                    self.lines.append(line.decode().rstrip("\r\n"))
                    self.cond.notify_all()
        except (OSError, http.client.HTTPException, ValueError, AttributeError):
            pass
        with self.cond:
            self.ended = True
            self.cond.notify_all()

    def wait(self, predicate, timeout=5.0):
        """Wait until predicate(lines, ended) holds; returns it or False"""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                result = predicate(self.lines, self.ended)
                if result or time.monotonic() > deadline:
                    return result
                self.cond.wait(0.05)

    def messages(self):
        with self.cond:
            return [json.loads(line[6:]) for line in self.lines if line.startswith("data: ")]

    def close(self):
        self.conn.close()


def has_method(method):
    return lambda lines, ended: any(('"method":"%s"' % method) in line for line in lines)


def main(t):
    os.environ.pop("LAKEHOUSE_TOKEN", None)
    os.environ.pop("LAKEHOUSE_TOKENS", None)
    up = t.up(actors="storaged,catalogd,ingestd,queryd", workers=2,
              sets={"gateway/threads": 1, "mcp/sse_keepalive_ms": 300, "mcp/sessions_max": 3,
                    "mcp/session_idle_s": 1})
    url = lhmcp.gateway_url(up.proc)
    m = lhmcp.Http(url)

    #  Sessions
    sid = m.initialize()
    t.check(re.fullmatch(r"[0-9a-f]{32}", sid), "initialize issues a 32-hex Mcp-Session-Id", sid)
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    st, _, body = m.post(ping, session=False)
    st2, _, body2 = m.post(ping, headers={"Mcp-Session-Id": "0" * 32})
    t.check(st == 400 and st2 == 404 and json.loads(body2)["error"]["code"] == -32001,
            "no Mcp-Session-Id: 400; an unknown one: 404", (st, body, st2, body2))
    for version in ("2025-03-26", "2025-06-18", "2025-11-25"):
        st, _, body = m.post(ping, headers={"MCP-Protocol-Version": version})
        t.check(st == 200, "MCP-Protocol-Version %s is taken" % version, (st, body))
    st, hdrs, body = m.post(ping, headers={"Accept": "text/event-stream"})
    t.check(st == 200 and hdrs["content-type"].startswith("text/event-stream")
            and body.decode() == 'event: message\ndata: {"jsonrpc":"2.0","id":1,"result":{}}\n\n',
            "Accept text/event-stream only: the answer is one SSE event", (st, hdrs, body))

    #  The stream: retry line, a log message, list_changed and updated
    st, _, body = m.request("GET", headers={"Accept": "application/json"})
    t.check(st == 406, "GET without text/event-stream in Accept: 406", (st, body))
    st, _, body = m.request("GET", session=False, headers={"Accept": "text/event-stream"})
    t.check(st == 400, "GET without Mcp-Session-Id: 400", (st, body))
    stream = Stream(m)
    t.check(stream.status == 200 and stream.response.getheader("Content-Type") == "text/event-stream"
            and stream.wait(lambda lines, ended: "retry: 2000" in lines),
            "GET opens the stream: text/event-stream, a retry line first", stream.lines)
    t.check(stream.wait(lambda lines, ended: ": keep-alive" in lines, 3.0),
            "a keep-alive comment comes every mcp/sse_keepalive_ms", stream.lines)
    m.post({"jsonrpc": "2.0", "id": 2, "method": "logging/setLevel", "params": {"level": "debug"}})
    st, _, body = m.post({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                          "params": {"name": "query_sql", "arguments": {"sql": "SELECT 1"}}})
    t.check(st == 200 and stream.wait(has_method("notifications/message")),
            "after setLevel debug a tool call's log message comes on the stream", stream.lines)
    m.post({"jsonrpc": "2.0", "id": 4, "method": "resources/subscribe",
            "params": {"uri": "lakehouse://datasets/crew"}})
    st, _, _ = m.request("PUT", b"id,name\n1,Ann\n", path="/v1/storage/uploads/crew.csv",
                         headers={"Content-Type": "text/csv"}, session=False)
    st2, _, body = m.post({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {
        "name": "ingest_csv", "arguments": {"name": "crew", "source": "uploads/crew.csv"}}})
    t.check(st == 200 and st2 == 200 and not json.loads(body)["result"].get("isError")
            and stream.wait(has_method("notifications/resources/list_changed"))
            and stream.wait(has_method("notifications/resources/updated")),
            "an ingest: list_changed and (subscribed) updated on the stream", stream.lines[-6:])
    updated = [x for x in stream.messages() if x["method"] == "notifications/resources/updated"]
    t.check(updated[0]["params"]["uri"] == "lakehouse://datasets/crew", "updated names the URI",
            updated)

    #  One HTTP thread, a slow query: other requests are not held up
    results = {}

    def slow(key, request_id):
        other = lhmcp.Http(url)
        other.session = sid
        started = time.monotonic()
        results[key] = other.post({"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
                                   "params": {"name": "query_sql", "arguments": {"sql": SLOW_SQL}}}) \
            + (time.monotonic() - started,)
    worker = threading.Thread(target=slow, args=("slow", 100))
    worker.start()
    quick = []                          # pings answered while the query was still running
    while worker.is_alive() and len(quick) < 200:
        other = lhmcp.Http(url)
        other.session = sid
        started = time.monotonic()
        st, _, body = other.post({"jsonrpc": "2.0", "id": 1000 + len(quick), "method": "ping"})
        if worker.is_alive():
            quick.append((st, time.monotonic() - started))
        other.close()
    worker.join(30)
    st, _, body, took = results["slow"]
    t.check(len(quick) >= 5 and all(q[0] == 200 for q in quick) and st == 200
            and json.loads(body)["result"]["structuredContent"]["rows"] == [[3000000]],
            "gateway/threads=1: %d pings on as many connections answered while a %.2f s query "
            "ran on the same HTTP thread (slowest %.3f s)" % (len(quick), took,
                                                               max(q[1] for q in quick or [(0, 0)])),
            (st, body[:200], quick[:3]))

    #  Cancellation: the cancelled request's POST gets 202 and no answer.
    #  Cancels go out until the call is answered: one lands while it runs.
    worker = threading.Thread(target=slow, args=("cancelled", 200))
    worker.start()
    cancels = []
    while worker.is_alive() and len(cancels) < 2000:
        st, _, _ = m.post({"jsonrpc": "2.0", "method": "notifications/cancelled",
                           "params": {"requestId": 200, "reason": "test"}})
        cancels.append(st)
    worker.join(30)
    st2, hdrs, body, _ = results["cancelled"]
    t.check(cancels and all(c == 202 for c in cancels) and st2 == 202 and body == b"",
            "notifications/cancelled: 202; the cancelled call's POST gets 202, no answer",
            (cancels[:3], st2, body[:200]))

    #  A second GET takes the stream's place; DELETE ends the session
    second = Stream(m)
    t.check(second.status == 200 and stream.wait(lambda lines, ended: ended),
            "a second GET takes the stream: the first one ends", stream.lines[-3:])
    st, _, _ = m.request("DELETE")
    st2, _, _ = m.post(ping)
    t.check(st == 204 and second.wait(lambda lines, ended: ended) and st2 == 404,
            "DELETE ends the session: 204, its stream ends, its id is 404 after", (st, st2))
    stream.close()
    second.close()

    #  Bounds: mcp/sessions_max = 3
    clients = [lhmcp.Http(url) for _ in range(4)]
    for index in range(3):
        clients[index].initialize()
        time.sleep(0.01)                # distinct last-use times: the oldest is clients[0]
    clients[3].initialize()
    st, _, _ = clients[0].post(ping)
    st2, _, _ = clients[3].post(ping)
    t.check(st == 404 and st2 == 200,
            "a 4th session takes the place of the longest idle one (whose id is then 404)",
            (st, st2))
    streams = [Stream(c) for c in clients[1:]]
    t.check(all(s.status == 200 for s in streams), "3 sessions with a stream each")
    fresh = lhmcp.Http(url)
    st, _, body = fresh.post(lhmcp.INIT, session=False)
    t.check(st == 503 and "sessions_max" in json.loads(body)["error"]["message"],
            "no idle session to replace: initialize is 503", (st, body))

    #  mcp/session_idle_s = 1: sessions with a stream stay, others go
    streams[0].close()
    gone = False
    deadline = time.monotonic() + 10.0
    while not gone and time.monotonic() < deadline:
        time.sleep(1.5)                 # longer than mcp/session_idle_s: a ping resets it
        st, _, _ = clients[1].post(ping)
        gone = st == 404
    st2, _, _ = clients[2].post(ping)
    t.check(gone and st2 == 200,
            "a session idle past mcp/session_idle_s ends (once its closed stream is noticed); "
            "one with an open stream stays", (st, st2))
    for s in streams:
        s.close()
    t.check(up.proc.alive(), "the process lives")


CLIENT = "mcp-client-token-0123456789"
ADMIN = "mcp-admin-token-0123456789"


def call_tool(m, name, arguments, request_id=10):
    """tools/call; returns its result (a dict) or fails"""
    st, _, body = m.post({"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
                          "params": {"name": name, "arguments": arguments}})
    doc = json.loads(body) if st == 200 else {}
    if "result" not in doc:
        raise lhtest.Failure("tools/call %s answered %d %s" % (name, st, body[:300]))
    return doc["result"]


def roles(t):
    """The caller's role applies to each bus call a tool makes"""
    path = os.path.join(t.tmp, "tokens")
    with open(path, "w") as f:
        f.write("%s role=client name=agent\n%s role=admin name=ops\n" % (CLIENT, ADMIN))
    os.chmod(path, 0o600)
    up = t.up(actors="storaged,catalogd,ingestd,queryd", workers=1,
              sets={"gateway/token_file": path, "acl/client/call": "catalogd,broker"})
    url = lhmcp.gateway_url(up.proc)
    client = lhmcp.Http(url, CLIENT)
    client.initialize()
    result = call_tool(client, "list_datasets", {})
    t.check(not result.get("isError") and "datasets" in result.get("structuredContent", {}),
            "client token: list_datasets (catalogd.list, allowed) works", result)
    result = call_tool(client, "query_sql", {"sql": "SELECT 1 AS one"})
    text = result.get("content", [{}])[0].get("text", "")
    t.check(result.get("isError") is True and "403" in text and "queryd.sql" in text,
            "client token: query_sql (queryd.sql, not in acl/client/call) is an isError "
            "result naming 403 and queryd.sql", result)
    st, _, body = client.request("POST", {"sql": "SELECT 1 AS one"}, path="/v1/bus/queryd/sql",
                                 session=False)
    t.check(st == 403, "client token: POST /v1/bus/queryd/sql is 403 too", (st, body[:200]))
    admin = lhmcp.Http(url, ADMIN)
    admin.initialize()
    result = call_tool(admin, "query_sql", {"sql": "SELECT 1 AS one"})
    t.check(not result.get("isError") and result.get("structuredContent", {}).get("rows") == [[1]],
            "admin token: query_sql works", result)
    t.check(up.proc.alive(), "the process lives")


def both(t):
    main(t)
    roles(t)


lhtest.run(both, budget=240)
