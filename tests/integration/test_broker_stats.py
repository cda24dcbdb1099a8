#!/usr/bin/python3
"""test_broker_stats - broker.stats' figures against traffic whose answer
is known (docs/broker.md "What is counted where"):

- latency: through one echo worker, 89 echo.echo calls (fast) and 11
  echo.sleep of 250 ms, one at a time. p50 must be one of the fast ones
  (at most the slowest fast round trip the client saw, well under 250 ms)
  and p99 one of the slow ones: at least 250 ms and at most the slowest
  slow round trip (each within the histogram's ~6 % bucket width);
  requests and replies count exactly 100, no error;
- queue depth: a Python worker with credit 1 holds the first of 8
  requests, so the other 7 wait in the broker: services.S.queued (and
  broker.services' queued) is exactly 7, then 6, 5, ... 0 as the worker
  answers one at a time, each REQ arriving in the order sent, and every
  reply reaches the client with its body.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest    # noqa: E402
lhb = lhtest.lhb

FAST, SLOW, SLOW_MS = 89, 11, 250
BUCKET = 0.07                   # the histogram's relative error, with margin
BACKLOG = 7


def service_stat(t, peer, svc, key):
    return lhb.stat(t.stats(peer), "services.%s.%s" % (svc, key), None)


def listed_queued(peer, svc):
    body = lhb.broker_call(peer, "services")
    for entry in body.get("services", []):
        if entry.get("name") == svc:
            return entry.get("queued")
    return None


def main(t):
    b = t.broker()
    t.node(b.endpoint, workers=1, sets={"actors/echo/credit": 1})
    c = t.client(b.endpoint, name="stats")
    t.wait_workers(c, "echo", 1)

    #  -- latency percentiles against known service times ------------------
    fast_rtt, slow_rtt = [], []
    order = ["slow" if i % 9 == 4 else "fast" for i in range(FAST + SLOW)]
    t.check(order.count("slow") == SLOW, "%d slow calls among %d" % (SLOW, FAST + SLOW))
    for index, kind in enumerate(order):
        started = lhtest.now()
        if kind == "slow":
            rep = c.call("echo", "sleep", {"ms": SLOW_MS}, timeout=5)
            ok = rep is not None and rep.st == 200 and rep.obj.get("slept_ms") == SLOW_MS
            slow_rtt.append(lhtest.now() - started)
        else:
            rep = c.call("echo", "echo", {"i": index}, timeout=5)
            ok = rep is not None and rep.st == 200 and rep.obj == {"i": index}
            fast_rtt.append(lhtest.now() - started)
        if not ok:
            raise lhtest.Failure("call %d (%s) answered %r" % (index, kind, rep))
    stats = t.stats(c)
    echo = stats["services"]["echo"]
    p50, p99 = echo["p50_us"], echo["p99_us"]
    t.note("p50 %d us, p99 %d us; client round trips: fast max %.1f ms, slow %.1f..%.1f ms"
           % (p50, p99, max(fast_rtt) * 1e3, min(slow_rtt) * 1e3, max(slow_rtt) * 1e3))
    t.check(echo["requests"] == FAST + SLOW and echo["replies"] == FAST + SLOW
            and echo["errors"] == {} and echo["queued"] == 0,
            "requests and replies count exactly %d, no error, nothing queued" % (FAST + SLOW),
            echo)
    t.check(0 < p50 <= max(fast_rtt) * 1e6 * (1 + BUCKET) and p50 < SLOW_MS * 1e3 * (1 - BUCKET),
            "p50 %d us is a fast call's (<= the slowest fast round trip, %.0f us)"
            % (p50, max(fast_rtt) * 1e6))
    t.check(SLOW_MS * 1e3 * (1 - BUCKET) <= p99 <= max(slow_rtt) * 1e6 * (1 + BUCKET),
            "p99 %d us is a slow call's (>= %d ms of sleep, <= the slowest slow round trip "
            "%.0f us)" % (p99, SLOW_MS, max(slow_rtt) * 1e6))

    #  -- queue depth against a known backlog ------------------------------
    w = t.client(b.endpoint, name="pyq-worker")
    t.keep.append(w)
    w.ready("pyq", credit=1)
    t.wait_workers(c, "pyq", 1)
    rids = [c.request("pyq", "work", {"n": n}, dl=30000) for n in range(BACKLOG + 1)]
    held = w.recv_req(5)
    t.check(held is not None and lhb.unpack(held.body) == {"n": 0},
            "the worker holds the first request", held)
    queued = t.wait_stat(c, "services.pyq.queued", lambda v: v == BACKLOG)
    t.check(queued == BACKLOG, "broker.stats: services.pyq.queued = %d while the worker "
            "holds one" % BACKLOG, queued)
    t.check(listed_queued(c, "pyq") == BACKLOG, "broker.services lists queued %d" % BACKLOG,
            listed_queued(c, "pyq"))
    t.check(w.recv_req(0.3) is None, "no second request reaches a worker with credit 1")
    for n in range(BACKLOG + 1):
        w.reply(held, 200, {"done": n})
        if n == BACKLOG:
            break
        held = w.recv_req(5)
        t.check(held is not None and lhb.unpack(held.body) == {"n": n + 1},
                "request %d reaches the worker next (FIFO)" % (n + 1), held)
        want = BACKLOG - n - 1
        queued = t.wait_stat(c, "services.pyq.queued", lambda v, want=want: v == want)
        t.check(queued == want, "queued drops to %d" % want, queued)
    got = [c.wait_reply(rid, 5) for rid in rids]
    t.check(all(r is not None and r.st == 200 for r in got)
            and [r.obj["done"] for r in got] == list(range(BACKLOG + 1)),
            "all %d replies reach the client, bodies intact" % (BACKLOG + 1),
            [r and (r.st, r.obj) for r in got])
    pyq = t.stats(c)["services"]["pyq"]
    t.check(pyq["queued"] == 0 and pyq["requests"] == BACKLOG + 1
            and pyq["replies"] == BACKLOG + 1,
            "afterwards: queued 0, %d requests and replies" % (BACKLOG + 1), pyq)


if __name__ == "__main__":
    lhtest.run(main)
