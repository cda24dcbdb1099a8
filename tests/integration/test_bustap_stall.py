#!/usr/bin/python3
"""A tap reader that stops reading never slows or bloats the broker.

bustap is stopped (SIGSTOP: its process, zmq I/O thread included, reads
nothing) while 20,000 echo requests with 1 KiB bodies flow, about 45 MB
of tap copies, far past the tap's HWM and the kernel's socket buffers.
Every request is still answered 200, the broker's RSS stays bounded, the
drops are counted in broker.stats (dropped.tap), and bustap, resumed,
reports the bseq gap: exactly as many messages missed as were dropped.
"""

import os
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402
import test_bustap_util as tu  # noqa: E402
import lhb  # noqa: E402

REQUESTS = 20000
WINDOW = 64
BODY = {"pad": "x" * 1024}
RSS_GROWTH_MAX_KIB = 24 * 1024


def flood(t, peer, count):
    """Send count echo requests, WINDOW in flight; returns the statuses."""
    statuses = {}
    sent = 0
    inflight = 0
    while sent < count or inflight:
        while sent < count and inflight < WINDOW:
            peer.request("echo", "echo", BODY)
            sent += 1
            inflight += 1
        rep = peer.next_reply(10.0)
        if rep is None:
            raise lhtest.Failure("no reply within 10 s (%d sent, %d in flight)" % (sent, inflight))
        if rep.t == "REP":
            inflight -= 1
            statuses[rep.st] = statuses.get(rep.st, 0) + 1
    return statuses


def missed_sum(tap):
    """The messages bustap said it missed so far, all gaps summed."""
    return sum(o["missed"] for o in tu.json_lines(tap) if o.get("warning") == "bseq_gap")


def main(t):
    broker, peer = tu.system(t, workers=2)
    #  bustap's own queue is large enough that it never drops a copy itself
    #  once resumed: every gap it reports is then one the broker counted
    tap = tu.bustap(t, broker, "--hwm", "10000000")
    tu.wait_tapping(t, peer, [tap])
    flood(t, peer, 1000)                    # warm-up: the broker's tables and pools
    #  A loaded machine may drop copies in the warm-up too: start both
    #  counts from a point where bustap has shown every copy sent so far
    tu.marker(t, peer, tap)
    missed_before = missed_sum(tap)
    before = lhtest.rss_kib(broker.pid)
    stats = t.stats(peer)
    dropped_before = lhb.stat(stats, "dropped.tap")
    t.note("broker RSS %d KiB after warm-up, dropped.tap %d, gaps %d"
           % (before, dropped_before, missed_before))

    os.kill(tap.pid, signal.SIGSTOP)
    try:
        statuses = flood(t, peer, REQUESTS)
        after = lhtest.rss_kib(broker.pid)
        stats = t.stats(peer)
    finally:
        os.kill(tap.pid, signal.SIGCONT)
    t.note("statuses %r; broker RSS %d KiB (+%d)" % (statuses, after, after - before))
    t.check(statuses == {200: REQUESTS}, "every request answered 200 while the tap reader is stalled",
            statuses)
    if os.environ.get("LH_ASAN") == "1":
        t.note("RSS bound not checked under ASan (its quarantine keeps freed memory)")
    else:
        t.check(after - before < RSS_GROWTH_MAX_KIB, "broker RSS bounded (grew %d KiB)" % (after - before))
    dropped = lhb.stat(stats, "dropped.tap") - dropped_before
    t.check(dropped > 0, "drops counted in broker.stats dropped.tap (%d)" % dropped)
    t.check(lhb.stat(stats, "services.echo.replies") >= REQUESTS + 1000, "broker counted the replies")

    #  Resumed: bustap drains what was buffered, then reports the gap when
    #  the next copy after the dropped ones arrives (pings make sure one does)
    deadline = lhtest.now() + 20
    gap = None
    while gap is None:
        peer.call("broker", "ping")
        try:
            gap = tu.wait_json(tap, lambda o: o.get("warning") == "bseq_gap", timeout=0.3,
                               what="a bseq_gap warning")
        except lhtest.Failure:
            if lhtest.now() > deadline:
                raise
    t.note("gap line %r" % gap)
    t.check(gap["missed"] > 0 and gap["next"] > gap["after"], "bustap reports the bseq gap")
    #  Every gap, summed, is exactly what the broker dropped (the ping's
    #  REP is the last message: once bustap shows it all gaps are in)
    peer.call("broker", "ping")
    deadline = lhtest.now() + 20
    while True:
        stats = t.stats(peer)
        dropped = lhb.stat(stats, "dropped.tap") - dropped_before
        missed = missed_sum(tap) - missed_before
        if missed == dropped or lhtest.now() > deadline:
            break
        peer.idle(0.1)
    t.check(missed == dropped, "gaps add up to the drops (missed %d, dropped.tap %d)" % (missed, dropped))
    code = tu.stop(tap)
    t.check(code == 0, "bustap exits 0 on SIGINT", code)


if __name__ == "__main__":
    lhtest.run(main)
