#!/usr/bin/python3
"""test_gateway_conn_limits - the gateway's connection and body limits
reached through `lakehouse up` (echo, vectord; one HTTP thread), each with
the documented effect (docs/http.md "Limits") and nothing lost:

- gateway/vectors_max (6000 bytes, gateway/body_max only 1024): an add
  body of ~5 KB is accepted (the route's own limit applies, not
  body_max); one over 6000 bytes is 413 too_large (SPEC error body) with
  Content-Length and chunked alike, and the index still holds exactly
  what was added before, each vector its own nearest;
- gateway/idle_timeout_s (1): a connection that sends nothing, and a
  kept-alive one after its response, are closed about 1 s later; one that
  keeps sending a request every 0.4 s stays open (same socket for all);
  a request whose bus call (echo.sleep 2500 ms) outlasts the idle timeout
  is still answered 200;
- gateway/conn_max (3, gateway/conn_per_ip 0 so only conn_max counts):
  three kept-alive connections are served, a fourth is closed unanswered,
  the three keep being served, and once one closes a new one is served.
"""

import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest                    # noqa: E402
import test_gateway_util as gw   # noqa: E402
from test_gateway_limits import REQUEST, ask  # noqa: E402

VECTORS_MAX = 6000
IDLE_S = 1
CONN_MAX = 3


def closed_after(s, limit):
    """Seconds until the server closes s (EOF or reset), or None if it is
    still open after limit seconds. Reads and discards anything sent."""
    started = time.monotonic()
    s.settimeout(0.1)
    while time.monotonic() - started < limit:
        try:
            data = s.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - started
        if not data:
            return time.monotonic() - started
    return None


def http_once(s, method, path, body=b"", headers=()):
    """Send one request on socket s and read one response; returns
    (status, body) or (None, b"") if the server closed the connection."""
    head = "%s %s HTTP/1.1\r\nHost: x\r\n" % (method, path)
    for name, value in headers:
        head += "%s: %s\r\n" % (name, value)
    if body is not None and "Transfer-Encoding" not in dict(headers):
        head += "Content-Length: %d\r\n" % len(body)
    s.sendall(head.encode() + b"\r\n" + (body or b""))
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    return int(head.split(b" ")[1]), rest


def vec(i):
    v = [0.0] * 16
    v[i % 16] = 1.0
    v[(i * 5 + 3) % 16] += 0.25 + i / 1000.0
    return v


def vectors_max(t, h):
    st, _, body = h.request("POST", "/v1/vectors/index", json.dumps(
        {"name": "gwlim", "dim": 16, "metric": "l2"}).encode(),
        {"Content-Type": "application/json"})
    t.check(st == 201, "create an index", (st, body))
    items = [{"id": "a%d" % i, "vector": vec(i)} for i in range(40)]
    ok = json.dumps({"items": items}).encode()
    t.check(1024 < len(ok) <= VECTORS_MAX, "an add body of %d bytes (over body_max, under "
            "vectors_max)" % len(ok))
    st, _, body = h.request("POST", "/v1/vectors/index/gwlim/add", ok,
                            {"Content-Type": "application/json"})
    t.check(st == 200 and json.loads(body)["count"] == 40,
            "vectors_max, not body_max, applies: the %d-byte add -> 200" % len(ok), (st, body))
    big_items = [{"id": "b%d" % i, "vector": vec(i + 100)} for i in range(80)]
    big = json.dumps({"items": big_items}).encode()
    t.check(len(big) > VECTORS_MAX, "an add body of %d bytes (over vectors_max)" % len(big))
    st, hdrs, body = h.request("POST", "/v1/vectors/index/gwlim/add", big,
                               {"Content-Type": "application/json"})
    err = gw.error_body(body)
    t.check(st == 413 and err and err["kind"] == "too_large",
            "over vectors_max with Content-Length -> 413 too_large, SPEC error body", (st, body))
    s = socket.create_connection((h.host, h.port), timeout=10)
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(big[i:i + 1000]), big[i:i + 1000])
                       for i in range(0, len(big), 1000)) + b"0\r\n\r\n"
    st, body = http_once(s, "POST", "/v1/vectors/index/gwlim/add", chunked,
                         (("Content-Type", "application/json"),
                          ("Transfer-Encoding", "chunked")))
    s.close()
    err = gw.error_body(body)
    t.check(st == 413 and err and err["kind"] == "too_large",
            "over vectors_max chunked (no Content-Length) -> 413 too_large", (st, body))
    st, _, body = h.request("GET", "/v1/vectors/index/gwlim")
    t.check(st == 200 and json.loads(body)["count"] == 40,
            "the index still holds exactly the 40 accepted vectors", (st, body))
    wrong = []
    for i in range(40):
        st, _, body = h.request("POST", "/v1/vectors/index/gwlim/search",
                                json.dumps({"vector": vec(i), "k": 1}).encode(),
                                {"Content-Type": "application/json"})
        hits = json.loads(body) if st == 200 else body
        if st != 200 or hits[0]["id"] != "a%d" % i:
            wrong.append((i, st, hits))
    t.check(not wrong, "each accepted vector is its own nearest (none of the refused ones)",
            wrong)


def idle_timeout(t, h):
    s = socket.create_connection((h.host, h.port), timeout=10)
    took = closed_after(s, IDLE_S + 5)
    s.close()
    t.check(took is not None and IDLE_S * 0.8 <= took <= IDLE_S + 3,
            "a connection that sends nothing is closed after ~%d s (%.2f s)"
            % (IDLE_S, took or -1))

    s = socket.create_connection((h.host, h.port), timeout=10)
    st, _ = http_once(s, "GET", "/health", None)
    t.check(st == 200, "a request on a new connection -> 200")
    took = closed_after(s, IDLE_S + 5)
    s.close()
    t.check(took is not None and IDLE_S * 0.8 <= took <= IDLE_S + 3,
            "the kept-alive connection is closed ~%d s after its response (%.2f s)"
            % (IDLE_S, took or -1))

    #  Traffic every 0.4 s (a pace, not a wait for anything) keeps it open
    s = socket.create_connection((h.host, h.port), timeout=10)
    statuses = []
    started = time.monotonic()
    while time.monotonic() - started < IDLE_S * 2.5:
        st, _ = http_once(s, "GET", "/health", None)
        statuses.append(st)
        if st != 200:
            break
        time.sleep(0.4)
    s.close()
    t.check(statuses and all(st == 200 for st in statuses),
            "a connection with a request every 0.4 s stays open %.1f s (%d requests, one socket)"
            % (IDLE_S * 2.5, len(statuses)), statuses)

    s = socket.create_connection((h.host, h.port), timeout=15)
    started = time.monotonic()
    st, body = http_once(s, "POST", "/v1/bus/echo/sleep", b'{"ms": 2500}',
                         (("Content-Type", "application/json"),
                          ("X-Lakehouse-Timeout-Ms", "10000")))
    took = time.monotonic() - started
    s.close()
    t.check(st == 200 and json.loads(body) == {"slept_ms": 2500} and took >= 2.4,
            "a request whose bus call takes 2.5 s (> idle timeout) is still answered 200 "
            "(%.2f s)" % took, (st, body))


def conn_max(t, h):
    kept = []
    for index in range(CONN_MAX):
        s, status = ask(h.host, h.port)
        kept.append(s)
        t.check(status is not None and " 200 " in status + " ",
                "connection %d of %d is served" % (index + 1, CONN_MAX), status)
    s, status = ask(h.host, h.port)
    t.check(status is None, "connection %d (past conn_max) is closed unanswered"
            % (CONN_MAX + 1), status)
    s.close()
    for index, s in enumerate(kept):
        s.sendall(REQUEST)
        t.check(s.recv(65536).startswith(b"HTTP/1.1 200"),
                "open connection %d is still served" % (index + 1))
    kept.pop().close()
    status = served_again(h)
    t.check(status is not None and " 200 " in status + " ",
            "after one of them closed, a new connection is served", status)
    for s in kept:
        s.close()
    served_again(h)


def served_again(h):
    """The status line of the first new connection served, polling for up
    to 5 s: the gateway notices a client's close asynchronously."""
    deadline = time.monotonic() + 5
    status = None
    while time.monotonic() < deadline:
        s, status = ask(h.host, h.port)
        s.close()
        if status is not None:
            break
        time.sleep(0.05)
    return status


def main(t):
    b, h = gw.up(t, "echo,vectord", workers=1, sets={
        "gateway/threads": 1, "gateway/conn_max": CONN_MAX, "gateway/conn_per_ip": 0,
        "gateway/idle_timeout_s": IDLE_S, "gateway/vectors_max": VECTORS_MAX,
        "gateway/body_max": 1024, "vectord/snapshot_ms": 0,
    })
    vectors_max(t, h)
    idle_timeout(t, h)
    conn_max(t, h)
    gw.healthy(t, h, "the limits")


if __name__ == "__main__":
    lhtest.run(main)
