#!/usr/bin/python3
"""test_authz - every peer has a role and every message is checked, over
HTTP and on the bus, with `lakehouse up` (SPEC 3, docs/broker.md "Roles").

1. No token (loopback): HTTP callers are role client. POST
   /v1/bus/broker/unbind is refused 403 by the gateway before the bus
   (the broker counts no admin refusal) and the endpoint stays bound;
   broker.reload too; echo works.
2. A token file with roles: no token 401; the client token may not call
   the admin ops (403); the admin token may (bind a second endpoint,
   unbind it: it stops taking connections; reload).
3. The in-process gateway is checked by the broker as any peer: with
   acl/gateway/call narrowed, a call the HTTP caller's role may make but
   the gateway's may not is refused 403 by the broker (acl/gateway/call).
4. Events: a plain-tcp client (bus/plain_role = client) publishing a
   forged catalog.changed (register "ghost") is answered 403, counted,
   never routed, and queryd does not reload: the tap (up --tap --bodies)
   shows its follower's catalogd.get for "pets" (catalogd's own event,
   published after the forged one) and none for "ghost". Its SUB is
   refused 403.
"""

import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest                    # noqa: E402
import test_gateway_util as gw   # noqa: E402
from lhtest import lhb, now      # noqa: E402

JSON = {"Content-Type": "application/json"}
CLIENT = "client-token-0123456789abcdef"
ADMIN = "admin-token-0123456789abcdef"


def post(h, path, doc, token=None, timeout=30.0):
    headers = dict(JSON)
    if token:
        headers["Authorization"] = "Bearer " + token
    st, _, body = h.request("POST", path, json.dumps(doc).encode(), headers,
                            timeout=timeout)
    return st, body


def bound(t, endpoint):
    """Does a new peer get WELCOME at endpoint?"""
    try:
        peer = t.client(endpoint, timeout=2.0)
    except lhb.ProtocolError:
        return False
    ok = lhb.broker_call(peer, "ping").get("pong") is True
    peer.close()
    return ok


def refuses(endpoint, timeout=5.0):
    """Does the tcp port of endpoint refuse connections (its listener
    closed; the close follows an unbind's answer by a moment)?"""
    host, port = endpoint[len("tcp://"):].rsplit(":", 1)
    deadline = now() + timeout
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=1.0).close()
        except ConnectionRefusedError:
            return True
        if now() >= deadline:
            return False
        time.sleep(0.02)            # the pause of a bounded poll


def no_token(t):
    b, h = gw.up(t, "echo")
    peer = t.client(b.endpoint)
    admin_before = lhb.stat(t.stats(peer), "refused.admin")

    st, body = post(h, "/v1/bus/broker/unbind", {"endpoint": b.endpoint})
    err = gw.error_body(body)
    t.check(st == 403 and err and err["kind"] == "forbidden"
            and "admin token" in err["reason"],
            "no token: POST /v1/bus/broker/unbind -> 403 from the gateway", (st, body))
    t.check(bound(t, b.endpoint), "no token: the endpoint is still bound")
    st, body = post(h, "/v1/bus/broker/reload", {})
    t.check(st == 403, "no token: POST /v1/bus/broker/reload -> 403", (st, body))
    t.check(lhb.stat(t.stats(peer), "refused.admin") == admin_before,
            "the refusals never reached the bus (broker refused.admin unchanged)")
    st, body = post(h, "/v1/bus/echo/echo", {"x": 1})
    t.check(st == 200 and json.loads(body) == {"x": 1}, "no token: echo -> 200", (st, body))
    st, body = post(h, "/v1/bus/broker/stats", {})
    t.check(st == 200 and "refused" in json.loads(body),
            "no token: broker.stats (not an admin op) -> 200", st)


def with_roles(t):
    path = os.path.join(t.tmp, "tokens")
    with open(path, "w") as f:
        f.write("# client first (the primary), then the admin\n%s\n%s role=admin name=ops\n"
                % (CLIENT, ADMIN))
    os.chmod(path, 0o600)
    b, h = gw.up(t, "echo", sets={"gateway/token_file": path})
    t.check("2 tokens: primary (client), ops (admin)" in h.wait_log("ops (admin)"),
            "tokens: the log names each token's role (never the token)")
    st, body = post(h, "/v1/bus/echo/echo", {"x": 1})
    t.check(st == 401, "tokens: no token -> 401", st)
    st, body = post(h, "/v1/bus/broker/unbind", {"endpoint": b.endpoint}, CLIENT)
    t.check(st == 403, "tokens: the client token may not unbind -> 403", (st, body))
    st, body = post(h, "/v1/bus/echo/echo", {"x": 2}, CLIENT)
    t.check(st == 200, "tokens: the client token calls echo -> 200", (st, body))

    st, body = post(h, "/v1/bus/broker/reload", {}, ADMIN)
    t.check(st == 200 and "generation" in json.loads(body),
            "tokens: the admin token may reload -> 200", (st, body))
    st, body = post(h, "/v1/bus/broker/bind", {"endpoint": "tcp://127.0.0.1:*"}, ADMIN)
    second = json.loads(body).get("endpoint") if st == 200 else None
    t.check(st == 200 and second and second != b.endpoint,
            "tokens: the admin token binds a second endpoint", (st, body))
    t.check(second and bound(t, second), "the second endpoint takes connections")
    st, body = post(h, "/v1/bus/broker/unbind", {"endpoint": second}, ADMIN)
    t.check(st == 200, "tokens: the admin token unbinds it -> 200", (st, body))
    t.check(refuses(second), "the unbound endpoint takes no connection")
    t.check(bound(t, b.endpoint), "the first endpoint is still bound")
    st, body = post(h, "/v1/bus/echo/echo", {"x": 3}, ADMIN)
    t.check(st == 200, "tokens: the admin token calls echo -> 200", (st, body))


def gateway_refused(t):
    b, h = gw.up(t, "echo", sets={"acl/gateway/call": "echo.echo, broker.ping, broker.services"})
    peer = t.client(b.endpoint)
    before = lhb.stat(t.stats(peer), "refused.call")
    st, body = post(h, "/v1/bus/echo/echo", {"x": 1})
    t.check(st == 200, "narrowed gateway: echo.echo still passes", (st, body))
    st, body = post(h, "/v1/bus/echo/sleep", {"ms": 1})
    err = gw.error_body(body)
    t.check(st == 403 and err and "role gateway may not call echo.sleep" in err["reason"],
            "the broker refuses the in-process gateway what its role may not call",
            (st, body))
    t.check(t.wait_stat(peer, "refused.call", lambda v: v == before + 1) == before + 1,
            "counted by the broker in refused.call")


def sql(h, query):
    st, body = post(h, "/v1/sql", {"sql": query})
    return st, (json.loads(body) if body else None)


def ingest(t, h, name, text):
    st, _, body = h.request("POST", "/v1/ingest?name=" + name, text.encode(),
                            {"Content-Type": "text/csv"}, timeout=60.0)
    t.check(st == 200, "ingest %s -> 200" % name, (st, body))


def tapped(b, predicate):
    """The tap lines (JSON, from up --tap) that satisfy predicate"""
    out = []
    with b.proc.cond:
        lines = list(b.proc.lines)
    for line in lines:
        if line.startswith("{"):
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if predicate(doc):
                out.append(doc)
    return out


def wait_sql(h, query, timeout=20.0):
    """Poll queryd (bounded) until query answers 200; the last answer"""
    deadline = now() + timeout
    st, doc = sql(h, query)
    while st != 200 and now() < deadline:
        time.sleep(0.05)            # the pause of a bounded poll
        st, doc = sql(h, query)
    return st, doc


def follower_calls(b, op):
    """The names in queryd's follower's catalogd.OP requests on the tap"""
    return [(d.get("body") or {}).get("name") for d in tapped(
        b, lambda d: d.get("kind") == "REQ" and d.get("svc") == "catalogd"
        and d.get("op") == op and d.get("src") == "queryd-follower")]


def wait_tap(t, peer, condition, timeout=20.0):
    """Wait (bounded) until condition() holds on what the tap printed"""
    deadline = now() + timeout
    while not condition() and now() < deadline:
        peer.idle(0.05)             # the pause of a bounded poll
    return condition()


def events(t):
    b, h = gw.up(t, "storaged,catalogd,ingestd,queryd", sets={"bus/plain_role": "client"},
                 extra=("--tap", "--bodies"))
    forger = t.client(b.endpoint, name="forger")
    #  queryd's follower subscribes, then lists the catalog: after its
    #  catalogd.list shows on the tap, it gets every catalog.changed
    t.check(wait_tap(t, forger, lambda: follower_calls(b, "list")),
            "queryd's follower is subscribed (its first catalogd.list is on the tap)")
    ingest(t, h, "people", "id,name\n1,ada\n2,grace\n")
    st, doc = wait_sql(h, "SELECT count(*) FROM people")
    t.check(st == 200 and doc["rows"] == [[2]], "queryd serves people", (st, doc))

    pid = forger.publish("catalog.changed", body={"op": "register", "name": "ghost"})
    rep = forger.answer_to(pid, 3)
    t.check(rep is not None and rep.st == 403 and rep.error_kind == "forbidden"
            and "acl/client/publish" in str(rep.obj),
            "a client publishing catalog.changed is answered 403", rep and rep.obj)
    lhb.broker_call(forger, "ping")          # the broker has handled the PUB
    t.check(lhb.stat(t.stats(forger), "refused.publish") == 1,
            "the refused PUB is counted (refused.publish = 1)")
    sid = forger.subscribe("catalog.")
    rep = forger.answer_to(sid, 3)
    t.check(rep is not None and rep.st == 403 and "acl/client/subscribe" in str(rep.obj),
            "its SUB is answered 403", rep and rep.obj)

    #  A real change, published by catalogd after the forged event: once
    #  queryd's follower fetches it (its catalogd.get on the tap), it has
    #  handled every event published before
    ingest(t, h, "pets", "id,kind\n1,cat\n")
    t.check(wait_tap(t, forger, lambda: "pets" in follower_calls(b, "get")),
            "queryd's follower fetched pets on catalogd's event", follower_calls(b, "get"))
    t.check("ghost" not in follower_calls(b, "get"),
            "queryd did not reload for the forged event", follower_calls(b, "get"))
    forged = tapped(b, lambda d: d.get("kind") == "PUB" and d.get("src") == "forger")
    t.check(not forged, "the forged event was never routed (nothing on the tap)", forged)
    st, doc = sql(h, "SELECT count(*) FROM people")
    t.check(st == 200 and doc["rows"] == [[2]], "people is still served", (st, doc))


def main(t):
    no_token(t)
    with_roles(t)
    gateway_refused(t)
    events(t)


if __name__ == "__main__":
    lhtest.run(main)
