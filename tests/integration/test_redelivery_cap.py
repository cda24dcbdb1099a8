#!/usr/bin/python3
"""test_redelivery_cap - an idempotent request is delivered at most
broker/max_attempts times (default 3, SPEC 2 / docs/protocol.md):

One request with `idem`, and Python workers that each take it and die
(close without BYE, found dead after hb_ivl x hb_live). With the default:
worker 1 gets att 1, worker 2 att 2, worker 3 att 3, each the same body
and idem; when worker 3 dies the client gets 503 worker_lost (with
retry_after_ms) although worker 4 sits idle with credit, and worker 4
never sees a 4th delivery (it then serves a new request with att 1, so
it was eligible all along). broker.stats counts exactly 2 redeliveries.
The same with broker/max_attempts = 2 on a second broker: 503 after att 2.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest    # noqa: E402
lhb = lhtest.lhb


def run(t, max_attempts):
    sets = {} if max_attempts is None else {"broker/max_attempts": max_attempts}
    attempts = max_attempts or 3
    b = t.broker(sets=sets)
    c = t.client(b.endpoint, name="capclient")
    window = t.hb_ivl * t.hb_live / 1000.0
    label = "max_attempts %s" % (max_attempts if max_attempts else "default (3)")
    body = {"payload": "x" * 100, "attempts": attempts}
    rid = c.request("pycap", "work", body, idem="cap-%d" % attempts, dl=60000, q=True)

    first = None
    dying = None
    for att in range(1, attempts + 1):
        w = t.client(b.endpoint, name="pycap-%d" % att)
        w.ready("pycap", credit=1)
        t.keep.append(w)
        if dying is not None:
            #  The holder of the request dies silently; the new, idle
            #  worker is the only one it can go to
            t.wait_workers(c, "pycap", 2, exact=True)
            t.keep.remove(dying)
            dying.close(bye=False)
        req = w.recv_req(window + 5)
        t.check(req is not None and req.h.get("att") == att
                and req.h.get("idem") == "cap-%d" % attempts
                and lhb.unpack(req.body) == body,
                "%s: delivery %d (att %d) reaches worker %d, same body and idem"
                % (label, att, att, att), req and req.h)
        first = first or req
        dying = w

    #  The last attempt's worker dies while a fresh worker waits with credit
    spare = t.client(b.endpoint, name="pycap-spare")
    spare.ready("pycap", credit=1)
    t.keep.append(spare)
    t.wait_workers(c, "pycap", 2, exact=True)
    t.keep.remove(dying)
    dying.close(bye=False)
    died = lhtest.now()
    rep = c.wait_reply(rid, window + 5)
    took = lhtest.now() - died
    t.check(rep is not None and rep.st == 503 and rep.error_kind == "worker_lost"
            and (rep.obj["error"].get("retry_after_ms") or 0) > 0,
            "%s: after att %d's worker died the client gets 503 worker_lost + retry_after_ms "
            "(%.2f s)" % (label, attempts, took), rep and (rep.st, rep.obj))
    extra = spare.recv_req(1.0)
    t.check(extra is None, "%s: no delivery %d reaches the idle spare worker"
            % (label, attempts + 1), extra and extra.h)
    stats = t.stats(c)
    t.check(lhb.stat(stats, "redelivered") == attempts - 1,
            "%s: broker.stats counts %d redeliveries" % (label, attempts - 1),
            lhb.stat(stats, "redelivered", None))
    rid = c.request("pycap", "work", {"after": True}, idem="cap-after", dl=10000)
    req = spare.recv_req(5)
    t.check(req is not None and req.h.get("att") == 1 and lhb.unpack(req.body) == {"after": True},
            "%s: the spare worker was eligible: it serves the next request (att 1)" % label,
            req and req.h)
    spare.reply(req, 200, {"ok": 1})
    rep = c.wait_reply(rid, 5)
    t.check(rep is not None and rep.st == 200 and rep.obj == {"ok": 1},
            "%s: ... and its reply reaches the client" % label)
    t.keep.remove(spare)
    b.proc.kill9()


def main(t):
    run(t, None)
    run(t, 2)


if __name__ == "__main__":
    lhtest.run(main)
