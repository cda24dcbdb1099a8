#!/usr/bin/python3
"""test_pubsub - events through the broker: fan-out, and a stuck subscriber.

Three Python subscribers (prefix "ev.") must get every event a Python
publisher sends, in order, exactly once, stamped by the broker. A fourth
subscriber subscribes and then never reads (it only heartbeats): it must
not slow the others or the broker (broker.ping stays fast) and the broker
must drop its oldest held events and count them (dropped.sub). Other
topics are not delivered to "ev." subscribers.

The peers are role client (bus/plain_role), which by default may neither
publish nor subscribe: the test's ACL lets clients publish ev.* and other.*
and subscribe to ev.*. A PUB outside it is refused (REP 403, counted in
refused.publish) and reaches nobody; so is a SUB outside it.
"""

import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest    # noqa: E402
from lhtest import now, lhb  # noqa: E402

EVENTS = 3000
BATCH = 100
PAD = "p" * 16384


def main(t):
    b = t.broker(sets={"broker/sub_queue": 100, "bus/plain_role": "client",
                       "acl/client/publish": "ev.,other.",
                       "acl/client/subscribe": "ev."})
    c = t.client(b.endpoint, name="pinger")
    pub = t.client(b.endpoint, name="publisher")
    subs = [t.client(b.endpoint, name="sub%d" % i) for i in range(3)]
    stuck = t.client(b.endpoint, name="stuck", rcvhwm=10)
    for s in subs + [stuck]:
        s.subscribe("ev.")
        #  SUB and REQ travel the same connection: once ping is answered the
        #  broker has the subscription
        lhb.broker_call(s, "ping")
    t.keep.append(stuck)

    got = [[] for _ in subs]
    bad = []
    rtts = []
    pub.publish("other.x", body={"seq": -1})
    start = now()
    for first in range(0, EVENTS, BATCH):
        for seq in range(first, first + BATCH):
            pub.publish("ev.tick", body={"seq": seq, "pad": PAD})
        pub.heartbeat()
        stuck.heartbeat()
        want = first + BATCH
        deadline = now() + 10
        for i, s in enumerate(subs):
            while len(got[i]) < want and now() < deadline:
                m = s.recv_pub(max(0.0, deadline - now()))
                if m is None:
                    break
                h = m.h
                body = m.obj
                if (h.get("topic") != "ev.tick" or "publisher" not in str(h.get("src"))
                        or not isinstance(h.get("bseq"), int)
                        or not isinstance(h.get("brx"), int)):
                    bad.append(h)
                got[i].append(body.get("seq"))
            stuck.heartbeat()
        t0 = now()
        lhb.broker_call(c, "ping")
        rtts.append(now() - t0)
        if any(len(g) < want for g in got):
            break
    took = now() - start

    for i, g in enumerate(got):
        t.check(g == list(range(EVENTS)),
                "subscriber %d got all %d events, in order, once (%d got, first "
                "gap at %s)" % (i, EVENTS, len(g),
                                next((k for k, v in enumerate(g) if v != k), None)))
    t.check(not bad, "every event stamped topic/src/bseq/brx by the broker", bad[:3])
    t.check(statistics.median(rtts) < 0.05 and max(rtts) < 0.5,
            "broker.ping stays fast while a subscriber is stuck (median %.1f ms, "
            "max %.1f ms)" % (statistics.median(rtts) * 1000, max(rtts) * 1000))
    t.note("%d events x %d B to 4 subscribers in %.1f s" % (EVENTS, len(PAD), took))

    dropped = t.wait_stat(c, "dropped.sub", lambda v: v > 0, timeout=3)
    t.check(dropped > 0, "events for the stuck subscriber dropped and counted "
            "(dropped.sub = %d)" % dropped)

    #  the stuck one reads at last: what it gets is a subset, in order, no
    #  duplicates, ending with the newest event (drop-oldest)
    seen = []
    deadline = now() + 10
    while now() < deadline:
        m = stuck.recv_pub(0.5)
        if m is None:
            if seen and seen[-1] == EVENTS - 1:
                break
            continue
        seen.append(m.obj.get("seq"))
        if seen[-1] == EVENTS - 1:
            break
    t.check(seen and all(a < b for a, b in zip(seen, seen[1:])),
            "stuck subscriber's events are in order without duplicates (%d of %d)"
            % (len(seen), EVENTS))
    t.check(seen and seen[-1] == EVENTS - 1 and len(seen) < EVENTS,
            "stuck subscriber lost the oldest, kept the newest (last %s)"
            % (seen[-1] if seen else None))
    others = [m for s in subs for m in s.drain(0.05) if m.t == "PUB"]
    t.check(not others, "no other-topic or extra events delivered", others[:3])

    #  Outside the ACL: a PUB and a SUB answered 403, counted, nothing routed
    before = lhb.stat(t.stats(c), "refused.publish")
    pid = pub.publish("secret.x", body={"seq": -2})
    rep = pub.answer_to(pid, 3)
    t.check(rep is not None and rep.st == 403 and rep.error_kind == "forbidden"
            and "acl/client/publish" in str(rep.obj),
            "a PUB outside acl/client/publish is answered 403", rep and rep.obj)
    t.check(t.wait_stat(c, "refused.publish", lambda v: v == before + 1) == before + 1,
            "the refused PUB is counted in refused.publish")
    sid = subs[0].subscribe("secret.")
    rep = subs[0].answer_to(sid, 3)
    t.check(rep is not None and rep.st == 403 and "acl/client/subscribe" in str(rep.obj),
            "a SUB outside acl/client/subscribe is answered 403", rep and rep.obj)
    leaked = [m for s in subs for m in s.drain(0.1) if m.t == "PUB"]
    t.check(not leaked, "the refused PUB reached no subscriber", leaked[:3])


if __name__ == "__main__":
    lhtest.run(main)
