#!/usr/bin/python3
"""test_status - every bus status path with real processes.

A `lakehouse broker` (queue_max 3, queue_bytes 64 KiB, hb_ivl 200 ms) and
`lakehouse node --actors echo` processes, driven by a Python LHB/1 client:
404 never-offered service, 404 unknown op, 503 no worker (+retry_after_ms),
503 avoided with q=true and served once a node starts, 429 at the count
and the byte bound of the queue, 504 while queued and while in flight, and
the late reply after a 504 dropped and counted (dropped.late_reply).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest    # noqa: E402
from lhtest import now  # noqa: E402


def retry_after(rep):
    try:
        return rep.obj["error"].get("retry_after_ms")
    except Exception:
        return None


def main(t):
    b = t.broker(sets={"broker/queue_max": 3, "broker/queue_bytes": 65536,
                       "broker/retry_after_ms": 150})
    c = t.client(b.endpoint, name="status")

    rep = c.call("nosuch", "echo", timeout=3)
    t.check(rep is not None and rep.st == 404 and rep.error_kind == "no_such_service"
            and rep.h.get("src") == "broker",
            "never offered service -> 404 no_such_service from src=broker", rep)

    node_a = t.node(b.endpoint, workers=1, sets={"actors/echo/credit": 1})
    t.wait_workers(c, "echo", 1)
    rep = c.call("echo", "echo", body={"a": 1}, timeout=3)
    t.check(rep is not None and rep.st == 200 and rep.obj == {"a": 1},
            "echo.echo through a node -> 200, body back", rep)
    rep = c.call("echo", "bogus", timeout=3)
    t.check(rep is not None and rep.st == 404 and rep.error_kind == "no_such_op",
            "unknown op -> 404 no_such_op", rep)

    #  503: offered, no live worker
    node_a.kill9()
    t.wait_workers(c, "echo", 0, exact=True,
                   timeout=t.hb_ivl * t.hb_live / 1000.0 + 3)
    rep = c.call("echo", "echo", body={"a": 2}, timeout=3)
    t.check(rep is not None and rep.st == 503 and rep.error_kind == "no_worker"
            and (retry_after(rep) or 0) > 0,
            "offered service without a live worker -> 503 no_worker + retry_after_ms",
            rep)

    #  q=true: queued until a worker comes
    rid = c.request("echo", "echo", body={"queued": 1}, q=True, dl=20000)
    early = c.wait_reply(rid, 0.3)
    t.check(early is None, "q=true request waits while no worker", early)
    node_b = t.node(b.endpoint, workers=1, sets={"actors/echo/credit": 1})
    rep = c.wait_reply(rid, 10)
    t.check(rep is not None and rep.st == 200 and rep.obj == {"queued": 1},
            "queued request served once a node with echo starts", rep)

    #  429: one worker (credit 1) busy, queue_max 3
    busy = c.request("echo", "sleep", body={"ms": 1500}, dl=8000)
    queued = [c.request("echo", "echo", body={"i": i}, dl=8000) for i in range(3)]
    over = c.request("echo", "echo", body={"i": 3}, dl=8000)
    rep = c.wait_reply(over, 3)
    t.check(rep is not None and rep.st == 429 and rep.error_kind == "queue_full"
            and (retry_after(rep) or 0) > 0,
            "4th request with 3 queued (queue_max 3) -> 429 queue_full + retry_after_ms",
            rep)
    rep = c.wait_reply(busy, 8)
    t.check(rep is not None and rep.st == 200 and rep.obj.get("slept_ms") == 1500,
            "busy worker (1.5 s sleep, hb_ivl 200) finishes with 200", rep)
    got = [c.wait_reply(rid, 5) for rid in queued]
    t.check(all(r is not None and r.st == 200 for r in got)
            and [r.obj for r in got] == [{"i": i} for i in range(3)],
            "the 3 queued requests are all served, in order",
            [(r.st, r.obj) if r else None for r in got])

    #  429 by bytes: queue_bytes 64 KiB
    busy = c.request("echo", "sleep", body={"ms": 800}, dl=8000)
    big1 = c.request("echo", "echo", body={"pad": "x" * 40000}, dl=8000)
    big2 = c.request("echo", "echo", body={"pad": "y" * 40000}, dl=8000)
    rep = c.wait_reply(big2, 3)
    t.check(rep is not None and rep.st == 429 and rep.error_kind == "queue_full",
            "queue over queue_bytes (2 x 40 KB > 64 KiB) -> 429 queue_full", rep)
    rep = c.wait_reply(busy, 8)
    t.check(rep is not None and rep.st == 200, "sleep finishes", rep)
    rep = c.wait_reply(big1, 5)
    t.check(rep is not None and rep.st == 200 and len(rep.obj.get("pad", "")) == 40000,
            "the queued 40 KB request is served intact", rep and rep.st)

    #  504 while queued
    busy = c.request("echo", "sleep", body={"ms": 1500}, dl=8000)
    start = now()
    rid = c.request("echo", "echo", body={"late": 1}, dl=300)
    rep = c.wait_reply(rid, 3)
    took = now() - start
    t.check(rep is not None and rep.st == 504 and rep.error_kind == "deadline"
            and 0.25 <= took < 1.2,
            "deadline passes while queued -> 504 deadline at ~300 ms (took %.0f ms)"
            % (took * 1000), rep)
    rep = c.wait_reply(busy, 8)
    t.check(rep is not None and rep.st == 200, "the busy sleep still finishes", rep)

    #  504 in flight, then the late reply is dropped and counted
    late0 = lhtest.lhb.stat(t.stats(c), "dropped.late_reply")
    start = now()
    rid = c.request("echo", "sleep", body={"ms": 1500}, dl=300)
    rep = c.wait_reply(rid, 3)
    took = now() - start
    t.check(rep is not None and rep.st == 504 and rep.error_kind == "deadline"
            and 0.25 <= took < 1.2,
            "deadline passes in flight -> 504 deadline at ~300 ms (took %.0f ms)"
            % (took * 1000), rep)
    late1 = t.wait_stat(c, "dropped.late_reply", lambda v: v > late0, timeout=5)
    t.check(late1 > late0, "late reply dropped and counted (late_reply %d -> %d)"
            % (late0, late1))
    extra = c.drain(0.1)
    t.check(not [m for m in extra if m.h.get("cid") == rid],
            "the late reply never reaches the client", extra)
    rep = c.call("echo", "echo", body={"after": "late"}, timeout=3)
    t.check(rep is not None and rep.st == 200,
            "the late reply gave its credit back: next request served", rep)

    #  stats count errors by status for the service
    stats = t.stats(c)
    errors = lhtest.lhb.stat(stats, "services.echo.errors", {})
    t.check(all(int(errors.get(k, 0)) >= 1 for k in ("404", "429", "503", "504")),
            "broker.stats counts echo errors by status (404, 429, 503, 504)", errors)
    t.check(node_b.alive() and b.proc.alive(), "broker and node still running")


if __name__ == "__main__":
    lhtest.run(main)
