#!/usr/bin/python3
"""test_broker_restart - kill -9 the broker under load and start it again.

A broker, one `lakehouse node --actors echo` (2 workers) and two Python
clients keeping 4 echo requests each in flight. The broker is killed and
started again on the same port. The node must re-register by itself (no
restart), the clients say HELLO again when the new broker answers BYE
hello_first, and the only requests that fail are those that were in flight
when the broker died. Requests sent after the restart all succeed (a 503
with retry_after_ms is retried, as its advice says).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest    # noqa: E402
from lhtest import now  # noqa: E402

WINDOW = 4
BEFORE = 200        # successful requests before the restart
AFTER = 300         # successful requests after it
DL = 2000           # ms, request deadline


class Load:
    """One Python client keeping WINDOW echo requests in flight."""

    def __init__(self, t, endpoint, index):
        self.c = t.client(endpoint, name="load%d" % index)
        self.index = index
        self.n = 0
        self.inflight = {}              # rid -> (sent at, body, generation)
        self.ok = {0: 0, 1: 0}          # by generation (0 before, 1 after)
        self.failed = []                # (generation, rid, why)
        self.retried = 0
        self.later = []                 # (due, body): 503s to retry
        self.generation = 0

    def send_due(self):
        due = [e for e in self.later if e[0] <= now()]
        for entry in due:
            self.later.remove(entry)
            self.send(entry[1])

    def top_up(self):
        self.send_due()
        while len(self.inflight) + len(self.later) < WINDOW:
            self.send({"c": self.index, "i": self.n})
            self.n += 1

    def send(self, body):
        rid = self.c.request("echo", "echo", body=body, dl=DL)
        self.inflight[rid] = (now(), body, self.generation)

    def poll(self, timeout):
        rep = self.c.next_reply(timeout)
        if rep is not None and rep.t == "REP" and rep.h["cid"] in self.inflight:
            sent, body, gen = self.inflight.pop(rep.h["cid"])
            if rep.st == 200 and rep.obj == body:
                self.ok[gen] += 1
            elif rep.st == 503 and gen == 1 and self.retried < 200:
                #  retry_after_ms: the broker says when to retry
                self.retried += 1
                try:
                    after = rep.obj["error"]["retry_after_ms"] / 1000.0
                except Exception:
                    after = 0.1
                self.later.append((now() + min(after, 1.0), body))
            else:
                self.failed.append((gen, rep.h["cid"], rep.st, rep.obj))
        expired = [rid for rid, (sent, _, _) in self.inflight.items()
                   if now() - sent > DL / 1000.0 + 1.0]
        for rid in expired:
            gen = self.inflight.pop(rid)[2]
            self.c.forget(rid)
            self.failed.append((gen, rid, "timeout", None))


def main(t):
    b = t.broker()
    node = t.node(b.endpoint, workers=2)
    loads = [Load(t, b.endpoint, i) for i in range(2)]
    t.wait_workers(loads[0].c, "echo", 2)

    deadline = now() + 30
    while sum(x.ok[0] for x in loads) < BEFORE and now() < deadline:
        for x in loads:
            x.top_up()
            x.poll(0.01)
    t.check(sum(x.ok[0] for x in loads) >= BEFORE and not any(x.failed for x in loads),
            "%d requests served before the restart" % BEFORE,
            [x.failed for x in loads])

    #  kill -9 with requests in flight, start again on the same port
    at_kill = {x.index: set(x.inflight) for x in loads}
    b.proc.kill9()
    for x in loads:
        x.generation = 1
        x.top_up()              # sent while no broker: queued in the DEALER
    b2 = t.restart_broker(b)
    t.keep.extend([x.c for x in loads])

    deadline = now() + 40
    while sum(x.ok[1] for x in loads) < AFTER and now() < deadline:
        for x in loads:
            x.top_up()
            x.poll(0.01)
    #  let every request still in flight finish or expire
    deadline = now() + DL / 1000.0 + 2
    while any(x.inflight or x.later for x in loads) and now() < deadline:
        for x in loads:
            x.send_due()
            x.poll(0.01)

    t.check(sum(x.ok[1] for x in loads) >= AFTER,
            "%d requests served after the restart (%r)"
            % (AFTER, [x.ok for x in loads]))
    for x in loads:
        late = [f for f in x.failed if f[0] == 1]
        early = [f for f in x.failed if f[0] == 0]
        t.check(not late, "client %d: no request sent after the kill failed" % x.index,
                late[:5])
        t.check(all(f[1] in at_kill[x.index] for f in early),
                "client %d: only requests in flight at the kill failed (%d of %d)"
                % (x.index, len(early), len(at_kill[x.index])), early)
        t.check(len(x.c.byes) >= 1, "client %d was told hello_first by the new broker "
                "and said HELLO again (%d BYE)" % (x.index, len(x.c.byes)))
    t.check(node.alive(), "the node was not restarted (pid %d)" % node.pid)
    workers = t.wait_workers(loads[0].c, "echo", 2)
    t.check(len(workers) == 2, "the node's 2 workers are registered with the new broker",
            workers)
    t.note("retried 503s: %d" % sum(x.retried for x in loads))
    t.check(b2.proc.alive(), "new broker running")


if __name__ == "__main__":
    lhtest.run(main)
