#!/usr/bin/python3
"""test_load_share - two node processes with 1 echo worker each share load.

1,000 echo.whoami requests one at a time from one Python client: each
node's pid must answer between 40 % and 60 % of them (least recently used
worker first). Then 1,000 more with 8 in flight: all answered 200 by both
nodes (the split then follows each node's speed, so it is only printed). The broker here is configured from a ZPL
config file (--config) rather than --set, to cover that path too.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest    # noqa: E402
from lhtest import now  # noqa: E402

TOTAL = 1000
WINDOW = 8


def main(t):
    b = t.broker(config={"broker/hb_ivl": t.hb_ivl, "broker/queue_max": 100},
                 sets={})
    c = t.client(b.endpoint, name="share")
    nodes = [t.node(b.endpoint, workers=1), t.node(b.endpoint, workers=1)]
    t.wait_workers(c, "echo", 2)

    def run(window):
        counts, statuses = {}, {}
        sent = done = 0
        deadline = now() + 40
        while done < TOTAL and now() < deadline:
            while sent < TOTAL and sent - done < window:
                c.request("echo", "whoami", dl=5000)
                sent += 1
            rep = c.next_reply(5)
            if rep is None:
                break
            if rep.t != "REP":
                continue
            done += 1
            statuses[rep.st] = statuses.get(rep.st, 0) + 1
            if rep.st == 200:
                pid = rep.obj.get("pid")
                counts[pid] = counts.get(pid, 0) + 1
        t.check(done == TOTAL and statuses == {200: TOTAL},
                "window %d: %d whoami requests all answered 200 (%d done, "
                "statuses %r)" % (window, TOTAL, done, statuses))
        t.check(set(counts) == {n.pid for n in nodes},
                "window %d: answers come from both node pids" % window, counts)
        return counts

    #  One at a time both workers are idle with credit at every request:
    #  least-recently-used first must alternate them
    counts = run(1)
    t.check(all(0.4 * TOTAL <= n <= 0.6 * TOTAL for n in counts.values()),
            "one at a time: load split within 40/60: %r" % counts)
    #  Pipelined, a worker that returns its credit first gets the next
    #  request: the split follows each node's speed on this shared machine
    counts = run(WINDOW)
    t.note("%d in flight: split %r" % (WINDOW, counts))

if __name__ == "__main__":
    lhtest.run(main)
