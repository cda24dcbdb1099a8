#!/usr/bin/python3
"""test_gateway_limits - gateway/conn_per_ip across the HTTP threads.

Harness with 2 HTTP threads and gateway/conn_per_ip 3: three kept-alive
connections from 127.0.0.1 are served (whichever threads took them), a
fourth is closed unanswered, and once one of the three closes a new
connection is served again. The count is the gateway's own, shared by
every thread's libmicrohttpd daemon.
"""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest    # noqa: E402
import test_gateway_util as gw    # noqa: E402

REQUEST = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"


def ask(host, port, timeout=3.0):
    """Open a connection and send one request. Returns (socket, status
    line or None when the gateway closed it unanswered)."""
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.sendall(REQUEST)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                return s, None
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
        return s, head.split(b"\r\n")[0].decode()
    except (ConnectionResetError, BrokenPipeError):
        return s, None


def main(t):
    h = gw.harness(t, {"gateway/threads": 2, "gateway/conn_per_ip": 3})
    kept = []
    for index in range(3):
        s, status = ask(h.host, h.port)
        kept.append(s)
        t.check(status is not None and " 200 " in status + " ",
                "connection %d of 3 from one address is served" % (index + 1), status)
    s, status = ask(h.host, h.port)
    t.check(status is None, "a 4th connection from the same address is closed unanswered",
            status)
    s.close()
    #  Still served on the kept-alive ones
    kept[0].sendall(REQUEST)
    t.check(kept[0].recv(65536).startswith(b"HTTP/1.1 200"),
            "the 3 open connections keep being served")

    #  One closes: a new connection is served again (the close is noticed
    #  asynchronously, so retry for a while)
    kept.pop().close()
    deadline = time.monotonic() + 5
    status = None
    while time.monotonic() < deadline:
        s, status = ask(h.host, h.port)
        s.close()
        if status is not None:
            break
        time.sleep(0.05)
    t.check(status is not None and " 200 " in status + " ",
            "after one of them closed, a new connection is served", status)
    for s in kept:
        s.close()
    #  The gateway notices those closes asynchronously too: until it has,
    #  a new connection from this address may still be refused
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        s, status = ask(h.host, h.port)
        s.close()
        if status is not None:
            break
        time.sleep(0.05)
    gw.healthy(t, h, "the connection limit")


if __name__ == "__main__":
    lhtest.run(main)
