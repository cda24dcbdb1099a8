#!/usr/bin/python3
"""test_worker_death - kill -9 a node in the middle of a request.

Two `lakehouse node --actors echo` processes (1 worker each) behind one
broker (hb_ivl 200 ms, hb_live 3, tap on). An idempotent echo.sleep whose
node is killed is redelivered to the other node (broker.stats redelivered)
and answered 200; a non-idempotent one gets 503 worker_lost. Both
within hb_ivl*hb_live + 1 s of the kill (plus the sleep for the redelivery).
The same redelivery between two Python workers shows att=2 in the header.
"""

import os
import sys

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest    # noqa: E402
from lhtest import now, lhb  # noqa: E402


def whoami_pids(t, c, want, timeout=5.0):
    """Call echo.whoami until `want` distinct pids answered; returns them."""
    pids = set()
    deadline = now() + timeout
    while len(pids) < want and now() < deadline:
        rep = c.call("echo", "whoami", timeout=2)
        if rep is not None and rep.st == 200:
            pids.add(rep.obj.get("pid"))
    return pids


def busy_node(t, c, nodes, body, idem=None):
    """Send echo.sleep, then whoami: the free worker answers whoami, so the
    sleep runs on the other node. Returns (request id, victim, survivor)."""
    rid = c.request("echo", "sleep", body=body, dl=20000, idem=idem)
    rep = c.call("echo", "whoami", timeout=3)
    t.check(rep is not None and rep.st == 200, "whoami answered by the free worker", rep)
    free = rep.obj.get("pid")
    victims = [n for n in nodes if n.pid != free]
    survivors = [n for n in nodes if n.pid == free]
    t.check(len(victims) == 1 and len(survivors) == 1,
            "the sleep runs on the other node (free pid %s, nodes %s)"
            % (free, [n.pid for n in nodes]))
    return rid, victims[0], survivors[0]


def main(t):
    window = t.hb_ivl * t.hb_live / 1000.0
    b = t.broker(tap=True)
    tap = zmq.Context.instance().socket(zmq.SUB)
    tap.setsockopt(zmq.LINGER, 0)
    tap.setsockopt(zmq.SUBSCRIBE, b"echo.sleep")
    tap.connect(b.tap)

    c = t.client(b.endpoint, name="death")
    nodes = [t.node(b.endpoint, workers=1), t.node(b.endpoint, workers=1)]
    t.wait_workers(c, "echo", 2)
    pids = whoami_pids(t, c, 2)
    t.check(pids == {n.pid for n in nodes}, "whoami reaches both nodes", pids)

    #  -- idempotent: redelivered to the survivor with att=2 ----------------
    rid, victim, survivor = busy_node(t, c, nodes, {"ms": 1000}, idem="death-1")
    victim.kill9()
    killed = now()
    rep = c.wait_reply(rid, window + 1 + 1.0 + 5)
    took = now() - killed
    t.check(rep is not None and rep.st == 200 and rep.obj.get("slept_ms") == 1000,
            "idempotent request answered 200 after its node died", rep)
    t.check(took <= window + 1 + 1.0,
            "redelivered and served within hb_ivl*hb_live + 1 s + the sleep "
            "(%.2f s)" % took)
    rep = c.call("echo", "whoami", timeout=3)
    t.check(rep is not None and rep.obj.get("pid") == survivor.pid,
            "only the survivor is left serving echo", rep)

    stats = t.stats(c)
    t.check(lhb.stat(stats, "redelivered") >= 1,
            "broker.stats counts the redelivery (redelivered=%s)"
            % lhb.stat(stats, "redelivered", None))
    atts = []
    while tap.poll(0):
        frames = tap.recv_multipart()
        h = lhb.unpack(frames[1]) if len(frames) >= 2 else {}
        if h.get("t") == "REQ" and h.get("idem") == "death-1":
            atts.append(h.get("att"))
    t.note("tap copies of the idem REQ carried att %r (the tap copies a REQ "
           "once, as received)" % atts)

    #  -- the same seen by Python workers: the second gets att=2 -----------
    pv = t.client(b.endpoint, name="pyvictim")
    pv.ready("pydeath", credit=1)
    t.wait_workers(c, "pydeath", 1)
    rid = c.request("pydeath", "work", body={"n": 1}, idem="death-py", dl=20000)
    first = pv.recv_req(3)
    t.check(first is not None and first.h.get("att") == 1
            and first.h.get("idem") == "death-py",
            "Python worker 1 gets the idem REQ with att=1", first)
    ps = t.client(b.endpoint, name="pysurvivor")
    ps.ready("pydeath", credit=1)
    t.wait_workers(c, "pydeath", 2)
    pv.close(bye=False)                 # dies silently, request in flight
    died = now()
    second = ps.recv_req(window + 2)
    took = now() - died
    t.check(second is not None and second.h.get("att") == 2
            and second.h.get("idem") == "death-py" and second.body == first.body,
            "Python worker 2 gets the same REQ again with att=2", second)
    t.check(took <= window + 1, "redelivered within hb_ivl*hb_live + 1 s (%.2f s)" % took)
    ps.reply(second, 200, body={"by": "survivor"})
    rep = c.wait_reply(rid, 3)
    t.check(rep is not None and rep.st == 200 and rep.obj == {"by": "survivor"},
            "client gets the survivor's reply", rep)
    ps.close()

    #  -- not idempotent: 503 worker_lost ----------------------------------
    nodes = [survivor, t.node(b.endpoint, workers=1)]
    t.wait_workers(c, "echo", 2, exact=True, timeout=5)
    rid, victim, survivor = busy_node(t, c, nodes, {"ms": 3000})
    victim.kill9()
    killed = now()
    rep = c.wait_reply(rid, window + 5)
    took = now() - killed
    t.check(rep is not None and rep.st == 503 and rep.error_kind == "worker_lost",
            "non-idempotent request whose node died -> 503 worker_lost", rep)
    t.check(took <= window + 1,
            "worker_lost within hb_ivl*hb_live + 1 s (%.2f s)" % took)
    t.wait_workers(c, "echo", 1, exact=True, timeout=5)
    rep = c.call("echo", "echo", body={"still": "up"}, timeout=3)
    t.check(rep is not None and rep.st == 200, "the survivor still serves", rep)
    tap.close(0)


if __name__ == "__main__":
    lhtest.run(main)
