#!/usr/bin/python3
"""test_gateway_badhttp - bad HTTP, sent raw over sockets.

Malformed request line, bad method, header too large, body larger than
declared, Content-Length with Transfer-Encoding (400, then the connection
closed, no bus request), chunked encoding errors, invalid UTF-8 in JSON, 10,000-deep JSON
nesting, a 64 MiB body to a 1 MiB route (declared and chunked), and clients
that send one byte per second (in the headers, and in the body), which the
read timeout (2 s here) must cut off. Each gets a clear 4xx (or, for the
slow clients, a closed connection); the gateway keeps serving others after
each, and its RSS stays flat over repeated rounds.
"""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest                    # noqa: E402
import test_gateway_util as gw   # noqa: E402

MIB = 1024 * 1024
HOST = b"Host: gateway\r\nConnection: close\r\n"
KEEP = b"Host: gateway\r\n"


def post(path, body, extra=b""):
    return (b"POST " + path + b" HTTP/1.1\r\n" + HOST + extra
            + b"Content-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


#  name, raw request, acceptable statuses of the first response (None: the
#  connection is closed at once without a response, which is what
#  libmicrohttpd 0.9.75 does with a request line that has no space at all)
CASES = [
    ("malformed request line", b"GARBAGE\r\n\r\n", (400, None)),
    #  (this one libmicrohttpd waits on: the read timeout closes it)
    ("request line of binary bytes", b"\x00\x01\x02\xff\r\n\r\n", (400, None)),
    ("request line with an empty method", b" /health HTTP/1.1\r\n" + HOST + b"\r\n",
     (400, None)),
    ("request line with extra words", b"GET /health HTTP/1.1 extra\r\n" + HOST + b"\r\n",
     (400, 505)),
    ("request line without a version", b"GET /health\r\n" + HOST + b"\r\n", (400, 505)),
    ("unsupported HTTP version", b"GET /health HTTP/3.7\r\n" + HOST + b"\r\n", (400, 505)),
    ("bad method on a route", b"BREW /v1/bus/echo/echo HTTP/1.1\r\n" + HOST + b"\r\n",
     (405,)),
    ("method with invalid characters", b"G@T /health HTTP/1.1\r\n" + HOST + b"\r\n",
     (400, 405, 501)),
    ("header too large", b"GET /health HTTP/1.1\r\n" + HOST + b"X-Big: "
     + b"a" * 40000 + b"\r\n\r\n", (431, 413, 400)),
    ("too many headers", b"GET /health HTTP/1.1\r\n" + HOST
     + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 20) for i in range(3000)) + b"\r\n",
     (431, 413, 400)),
    ("header line without a colon", b"GET /health HTTP/1.1\r\n" + HOST
     + b"NoColonHere\r\n\r\n", (400,)),
    ("bad Content-Length", b"POST /v1/bus/echo/echo HTTP/1.1\r\n" + HOST
     + b"Content-Length: 12abc\r\n\r\n{}", (400, 413)),
    ("chunk size not hex", b"POST /v1/bus/echo/echo HTTP/1.1\r\n" + HOST
     + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", (400,)),
    ("chunk longer than its size", b"POST /v1/bus/echo/echo HTTP/1.1\r\n" + HOST
     + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}XXXX\r\n0\r\n\r\n", (400,)),
    ("chunk size overflow", b"POST /v1/bus/echo/echo HTTP/1.1\r\n" + HOST
     + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n{}\r\n0\r\n\r\n",
     (400, 413)),
    ("invalid UTF-8 in JSON", post(b"/v1/bus/echo/echo", b'{"k":"\xc3\x28"}'), (400,)),
    ("overlong UTF-8 in JSON", post(b"/v1/bus/echo/echo", b'{"k":"\xc0\xaf"}'), (400,)),
    ("10,000-deep JSON nesting", post(b"/v1/bus/echo/echo", b"[" * 10000 + b"]" * 10000),
     (400,)),
    ("10,000-deep JSON objects", post(b"/v1/bus/echo/echo", b'{"a":' * 10000 + b"1"
                                      + b"}" * 10000), (400,)),
    ("64 MiB declared to a 1 MiB route", b"POST /v1/bus/echo/echo HTTP/1.1\r\n" + HOST
     + b"Content-Length: " + str(64 * MIB).encode() + b"\r\n\r\n", (413,)),
    ("huge declared length", b"POST /v1/bus/echo/echo HTTP/1.1\r\n" + HOST
     + b"Content-Length: 99999999999999999999\r\n\r\n", (400, 413)),
]


def run_cases(t, h, quiet=False):
    for name, data, statuses in CASES:
        start = time.monotonic()
        out = h.raw(data, timeout=5.0)
        st = gw.status_of(out)
        if st is None and (out or time.monotonic() - start > 4.0):
            st = "no response"
        if quiet:
            if st not in statuses:
                raise lhtest.Failure("%s: got %r" % (name, out[:200]))
            continue
        t.check(st in statuses, "%s -> %s" % (name, st or "closed, no response"),
                out[:300])
        gw.healthy(t, h, name)


def body_larger_than_declared(t, h):
    """The extra bytes are the next request on the connection: the first
    request is answered, the garbage after it gets 400 and a close."""
    data = post(b"/v1/bus/echo/echo", b"{}").replace(HOST, KEEP)[:-2] \
        + b"{}EXTRA GARBAGE\r\n\r\n"
    out = h.raw(data, timeout=5.0)
    statuses = [int(x) for x in
                __import__("re").findall(rb"HTTP/1\.[01] (\d{3})", out)]
    t.check(statuses[:1] == [200] and all(s == 400 for s in statuses[1:]),
            "body larger than declared: declared part answered 200, the rest 400",
            out[:400])


def chunked_64mib(t, h):
    """64 MiB, chunked, to a 1 MiB route: read and dropped, then 413."""
    s = socket.create_connection((h.host, h.port), timeout=30)
    s.sendall(b"POST /v1/bus/echo/echo HTTP/1.1\r\n" + HOST
              + b"Transfer-Encoding: chunked\r\n\r\n")
    piece = b"100000\r\n" + b"x" * MIB + b"\r\n"
    sent = 0
    try:
        for _ in range(64):
            s.sendall(piece)
            sent += MIB
        s.sendall(b"0\r\n\r\n")
    except OSError:
        pass
    out = b""
    try:
        while b"\r\n\r\n" not in out:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except OSError:
        pass
    s.close()
    st = gw.status_of(out)
    t.check(st == 413 or (not out and sent < 64 * MIB),
            "64 MiB chunked to a 1 MiB route -> 413 (%d MiB sent)" % (sent // MIB), out[:200])


def echo_requests(h):
    """How many requests the broker has routed to echo so far."""
    st, _, body = h.request("POST", "/v1/bus/broker/stats", b"")
    return __import__("json").loads(body)["services"]["echo"]["requests"]


def length_and_chunked(t, h):
    """Content-Length and Transfer-Encoding together (RFC 9112 section
    6.3; request smuggling behind a proxy): 400 with the SPEC error body,
    then the connection is closed (recv returns 0) although the client
    asked for none of that, and no bus request was made."""
    before = echo_requests(h)
    s = socket.create_connection((h.host, h.port), timeout=5)
    s.sendall(b"POST /v1/bus/echo/echo HTTP/1.1\r\n" + KEEP
              + b"Content-Type: application/json\r\nContent-Length: 5\r\n"
              + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
              + b"POST /v1/bus/echo/echo HTTP/1.1\r\n" + KEEP
              + b"Content-Length: 2\r\n\r\n{}")
    out = b""
    closed = False
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                closed = True
                break
            out += chunk
    except socket.timeout:
        pass
    except OSError:
        closed = True
    s.close()
    head, _, body = out.partition(b"\r\n\r\n")
    err = gw.error_body(body)
    t.check(gw.status_of(out) == 400 and err and err["kind"] == "bad_request"
            and "Transfer-Encoding" in err["reason"],
            "Content-Length with Transfer-Encoding -> 400 with the SPEC error body", out[:400])
    t.check(closed, "... and the connection is closed after it (recv returns 0)", out[:400])
    t.check(out.count(b"HTTP/1.1 ") == 1,
            "... and the request pipelined after it is not answered", out[:600])
    t.check(echo_requests(h) == before, "... and no bus request was made",
            (before, echo_requests(h)))


def slow_client(t, h, prefix, what):
    """Send prefix whole, then one byte per second of a never-ending header
    or body; the gateway must close the connection within the read
    timeout (2 s) plus its housekeeping tick."""
    s = socket.create_connection((h.host, h.port), timeout=10)
    start = time.monotonic()
    s.sendall(prefix)
    s.settimeout(1.0)
    closed = False
    for _ in range(12):
        try:
            s.send(b"a")
        except OSError:
            closed = True
            break
        try:
            data = s.recv(4096)          # paces the test: 1 s per byte
            if not data or gw.status_of(data):
                closed = True
                break
        except socket.timeout:
            continue
        except OSError:
            closed = True
            break
    elapsed = time.monotonic() - start
    s.close()
    t.check(closed and elapsed < 6.0,
            "slow client (%s) cut off after %.1f s" % (what, elapsed), elapsed)
    gw.healthy(t, h, "a slow client")


def main(t):
    h = gw.harness(t, {"gateway/read_timeout_s": 2,
                       "gateway/body_max": MIB,
                       "gateway/threads": 2})
    run_cases(t, h)
    body_larger_than_declared(t, h)
    length_and_chunked(t, h)
    gw.healthy(t, h, "Content-Length with Transfer-Encoding")
    chunked_64mib(t, h)
    gw.healthy(t, h, "64 MiB chunked")
    slow_client(t, h, b"GET /health HTTP/1.1\r\n", "headers")
    slow_client(t, h, b"POST /v1/bus/echo/echo HTTP/1.1\r\n" + HOST
                + b"Content-Length: 100\r\n\r\n", "body")
    #  While a slow client dribbles, others are served
    s = socket.create_connection((h.host, h.port), timeout=10)
    s.sendall(b"GET /health HTTP/1.1\r\n")
    for _ in range(20):
        st, _, _ = h.request("GET", "/health")
        if st != 200:
            break
    t.check(st == 200, "others are served while a slow client holds a connection")
    s.close()

    #  RSS: after warm-up rounds (every HTTP thread has met every kind of
    #  request), more rounds must not grow it
    for _ in range(4):
        run_cases(t, h, quiet=True)
        body_larger_than_declared(t, h)
        chunked_64mib(t, h)
    before = h.rss_kib()
    rounds = []
    for _ in range(5):
        run_cases(t, h, quiet=True)
        body_larger_than_declared(t, h)
        chunked_64mib(t, h)
        rounds.append(h.rss_kib())
    after = h.rss_kib()
    t.note("RSS %d KiB, then after each round %s KiB" % (before, rounds))
    if os.environ.get("LH_ASAN") == "1":
        t.note("ASan build: its quarantine holds freed memory, RSS not checked")
    else:
        t.check(after - before < 2048, "RSS stays flat (grew %d KiB)" % (after - before),
                (before, rounds))
    gw.healthy(t, h, "all rounds")


if __name__ == "__main__":
    lhtest.run(main)
