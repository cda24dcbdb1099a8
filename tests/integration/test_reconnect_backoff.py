#!/usr/bin/python3
"""test_reconnect_backoff - a worker whose broker went away reconnects on
the documented schedule (SPEC 2, docs/protocol.md "Heartbeats"): a new
socket after 1 s, then 2, 4, 8 ... s (capped at 32 s), each +/-20 %
jitter, measured from outside.

A `lakehouse node` with one echo worker registers with a real broker
(hb_ivl 200 ms x hb_live 3: the worker calls the broker silent after
600 ms). The broker is killed (-9) and a plain Python TCP listener takes
its port. Each reconnect of the worker is one new socket, i.e. one new TCP
connection to the listener, which never answers the ZMTP greeting; the
worker drops that socket after the silence window (we see EOF) and waits
its backoff before the next (we see the next accept). So the gap between
connection i's close and connection i+1's accept is backoff i, timed by
the listener itself. The first three gaps must be 1, 2 and 4 s within
the jitter bounds (generous slack for scheduling: -50 ms, +300 ms), so
each doubles the last; at least one must differ from its nominal value by
more than 0.5 % (the jitter is really applied). The 32 s cap is checked by
the runtime's selftest (lh_actor_test), which would take this test
over a minute and a half to reach.
"""

import os
import select
import signal
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest    # noqa: E402
lhb = lhtest.lhb

NOMINAL = [1.0, 2.0, 4.0]
JITTER = 0.20
SLACK_LOW, SLACK_HIGH = 0.05, 0.30


def main(t):
    t.hb_ivl, t.hb_live = 200, 3
    b = t.broker()
    node = t.node(b.endpoint, workers=1)
    c = t.client(b.endpoint)
    t.wait_workers(c, "echo", 1)
    c.close(bye=False)

    #  The broker goes; a listener that never speaks takes its port at once
    b.proc.kill9()
    killed = lhtest.now()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", b.port))
    listener.listen(16)
    t.note("listener on port %d, %.1f ms after the kill" % (b.port, (lhtest.now() - killed) * 1e3))

    events = []                 # (time, "accept" | "close", connection number)
    conns = {}                  # socket -> number
    needed = len(NOMINAL) + 1   # connections whose close and next accept we time
    budget = sum(NOMINAL) * (1 + JITTER) + needed * 1.5 + 5
    deadline = lhtest.now() + budget
    closed = 0
    while closed < needed and lhtest.now() < deadline:
        if not node.alive():
            raise lhtest.Failure("the node exited:\n" + node.tail())
        ready, _, _ = select.select([listener] + list(conns), [], [], 0.05)
        now = lhtest.now()
        for s in ready:
            if s is listener:
                conn, _ = listener.accept()
                conns[conn] = len(events)
                events.append((now, "accept", len(conns)))
                continue
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if not data:
                events.append((now, "close", conns.pop(s)))
                s.close()
                closed += 1
    for s in conns:
        s.close()
    listener.close()
    node.popen.send_signal(signal.SIGTERM)

    kinds = "".join("a" if kind == "accept" else "c" for _, kind, _ in events)
    t.note("events: %s" % ", ".join("%s@%.3f" % (k, w - killed) for w, k, _ in events))
    t.check(kinds.startswith("ac" * needed),
            "one connection at a time: accept, close, accept, close ... (%s)" % kinds)
    gaps = [events[2 * i + 2][0] - events[2 * i + 1][0] for i in range(len(NOMINAL))]
    lives = [events[2 * i + 1][0] - events[2 * i][0] for i in range(needed)]
    t.note("gaps between a close and the next connection: %s s; connections lived %s s"
           % (", ".join("%.3f" % g for g in gaps), ", ".join("%.3f" % l for l in lives)))
    for gap, nominal in zip(gaps, NOMINAL):
        low, high = nominal * (1 - JITTER) - SLACK_LOW, nominal * (1 + JITTER) + SLACK_HIGH
        t.check(low <= gap <= high, "backoff %.0f s +/-20 %%: waited %.3f s (%.2f..%.2f)"
                % (nominal, gap, low, high))
    for first, second in zip(gaps, gaps[1:]):
        t.check(second > first, "each wait is longer than the one before (%.3f -> %.3f s)"
                % (first, second))
    t.check(any(abs(gap - nominal) > 0.005 * nominal for gap, nominal in zip(gaps, NOMINAL)),
            "jitter applied: not every wait is its nominal value",
            ["%.3f" % g for g in gaps])
    window = t.hb_ivl * t.hb_live / 1000.0
    t.check(all(window * 0.9 <= life <= window + 0.5 for life in lives[1:]),
            "each new socket is dropped after the %.1f s silence window" % window,
            ["%.3f" % l for l in lives])


if __name__ == "__main__":
    lhtest.run(main)
