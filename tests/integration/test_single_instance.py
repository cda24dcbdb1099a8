#!/usr/bin/python3
"""test_single_instance - no split brain for stateful services.

`lakehouse up` runs storaged (fs backend) and vectord, whose state lives in
that process; an index with 5 vectors is created. Then `lakehouse node
--actors vectord` against the same broker: its workers' READY (single-
instance, another process's instance id) is refused with BYE 409 naming the
service and the holder (the up process's instance, host:pid:random); the
broker logs it and counts refused.instance. The workers try once more
after the broker's liveness window (the holder might have just died: a
crashed vectord restarted at once must come back), are refused again, and
the node says why on stderr and exits 1, never printing "node ready". No request is ever routed to it:
the broker lists only up's vectord worker, and 20 reads of the index all
answer 5 vectors. The same for `node --actors storaged` (fs backend).
Stateless services keep sharing load across processes (test_load_share).
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest                    # noqa: E402
from lhtest import lhb           # noqa: E402


def second_instance(t, b, service, peer):
    """Start `node --actors SERVICE` against b; it must be refused and exit."""
    before = lhb.stat(t.stats(peer), "refused.instance")
    data = os.path.join(t.tmp, "var-second-%s" % service)
    sets = {"bus/endpoint": b.endpoint, "bus/plain": True, "bus/curve": False,
            "data/dir": data, "actors/%s/workers" % service: 2}
    proc = t.spawn("node", sets, extra=("--actors", service))
    try:
        code = proc.popen.wait(30)
    except Exception:
        code = None
    err = proc.tail(200)
    t.check(code == 1, "node --actors %s exits 1 (was %r)" % (service, code), err)
    t.check(not any("node ready" in line for line in proc.lines),
            "node --actors %s never said it was ready" % service, proc.lines)
    m = re.search(r"lakehouse: the broker refused %s: (.*)" % service, err)
    t.check(m is not None, "the node says on stderr that the broker refused %s" % service, err)
    reason = m.group(1) if m else ""
    t.check("%s is single-instance" % service in reason
            and ":%d:" % b.proc.pid in reason,
            "the reason names the service and the holder (up's instance, pid %d)"
            % b.proc.pid, reason)
    t.check("(409)" in err, "the node's log shows the 409", err)
    refused = t.wait_stat(peer, "refused.instance", lambda v: v >= before + 1)
    t.check(refused >= before + 1, "the broker counted refused.instance (%d)" % refused)
    return proc


def main(t):
    b = t.up(actors="storaged,vectord")
    peer = t.client(b.endpoint)
    rep = peer.call("vectord", "create", {"name": "people", "dim": 3, "metric": "cosine"})
    t.check(rep is not None and rep.st in (200, 201), "vectord.create", rep and rep.obj)
    items = [{"id": "w%d" % i, "vector": [1.0, float(i), 0.5]} for i in range(5)]
    rep = peer.call("vectord", "add", {"name": "people", "items": items})
    t.check(rep is not None and rep.st == 200, "vectord.add 5 vectors", rep and rep.obj)
    workers = [w.get("src") for w in lhb.workers_of(peer, "vectord")]
    t.check(len(workers) == 1, "up's one vectord worker", workers)

    second_instance(t, b, "vectord", peer)
    t.check(len(lhb.workers_of(peer, "vectord")) == 1,
            "the broker still lists only up's vectord worker")
    counts = []
    for _ in range(20):
        rep = peer.call("vectord", "info", {"name": "people"})
        counts.append((rep.st, rep.obj.get("count")) if rep else None)
    t.check(all(c == (200, 5) for c in counts),
            "20 reads of the index all answer 5 vectors (no request went elsewhere)",
            counts)
    t.check("refused vectord-0's READY" in open(b.proc.log_path).read()
            or "refused vectord-1's READY" in open(b.proc.log_path).read(),
            "the broker logged the refusal")

    second_instance(t, b, "storaged", peer)
    t.check(len(lhb.workers_of(peer, "storaged")) == 1,
            "the broker still lists only up's storaged worker")


if __name__ == "__main__":
    lhtest.run(main)
