#!/usr/bin/python3
"""busreplay --speed original keeps the recorded order and spaces the
requests by the recorded gaps.

Four echo requests are recorded with gaps of >= 250, 400 and 250 ms
(made by idling between them: the timing under test, not a way to
synchronise). They are replayed with --speed original against a fresh
system whose own tap is read by bustap: the replayed REQs arrive in the
recorded order, and each gap (broker receive times on the new system) is
the recorded gap within a generous tolerance (-30 ms .. +1 s). The
default, --speed instant, sends them back to back.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402
import test_bustap_util as tu  # noqa: E402

GAPS = [0.25, 0.40, 0.25]


def brx_of(line):
    """Broker receive time of a bustap line, in seconds (from its ISO time)."""
    import datetime
    stamp = datetime.datetime.strptime(line["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return stamp.replace(tzinfo=datetime.timezone.utc).timestamp()


def replayed_reqs(t, target, tpeer, path, *args):
    """Replay path on target while a bustap watches; returns the echo REQ
    lines seen there, in order, and the busreplay cases."""
    watch = tu.bustap(t, target, "--bodies", "--service", "echo")
    probe = tu.bustap(t, target)
    tu.wait_tapping(t, tpeer, [probe])
    tu.stop(probe)
    #  watch connected before probe, so its subscription is in place too
    #  (both are on the same XPUB, processed in order); check it anyway
    tpeer.call("echo", "echo", {"i": -1})
    tu.wait_json(watch, lambda o: o.get("body") == {"i": -1}, what="the probe echo")
    start = len(watch.lines)
    code, cases, out, err = tu.busreplay(t, target.endpoint, path, *args)
    t.check(code == 0, "busreplay %s exits 0" % " ".join(args), out + err)
    tu.marker_echo(tpeer, watch)
    tu.stop(watch)
    return [o for o in tu.json_lines(watch, start) if o.get("kind") == "REQ"
            and isinstance(o.get("body"), dict) and o["body"].get("i", -1) >= 0], cases


def main(t):
    broker, peer = tu.system(t, workers=1)
    path = os.path.join(t.tmp, "timed.lhrec")
    rec = tu.bustap(t, broker, "--record", path, "--service", "echo", "--bodies")
    probe = tu.bustap(t, broker)
    tu.wait_tapping(t, peer, [probe])
    tu.stop(probe)
    peer.call("echo", "echo", {"i": -1})
    tu.wait_json(rec, lambda o: o.get("body") == {"i": -1}, what="the probe echo")
    start = len(rec.lines)
    for index in range(len(GAPS) + 1):
        if index:
            peer.idle(GAPS[index - 1])
        rep = peer.call("echo", "echo", {"i": index})
        t.check(rep is not None and rep.st == 200, "echo %d answered" % index)
    tu.wait_json(rec, lambda o: o.get("kind") == "REP" and o.get("body") == {"i": len(GAPS)},
                 what="the last REP")
    t.check(tu.stop(rec) == 0, "recorder exits 0")
    recorded = [o for o in tu.json_lines(rec, start) if o.get("kind") == "REQ"]
    rec_gaps = [brx_of(b) - brx_of(a) for a, b in zip(recorded, recorded[1:])]
    t.note("recorded gaps %s" % ["%.3f" % g for g in rec_gaps])
    t.check(all(g >= w for g, w in zip(rec_gaps, GAPS)), "recorded gaps are >= 250 ms")

    target, tpeer = tu.system(t, workers=1)
    reqs, cases = replayed_reqs(t, target, tpeer, path, "--speed", "original", "--from-bseq",
                                str(recorded[0]["bseq"]))
    order = [o["body"]["i"] for o in reqs]
    t.check(order == list(range(len(GAPS) + 1)), "replayed in the recorded order", order)
    new_gaps = [brx_of(b) - brx_of(a) for a, b in zip(reqs, reqs[1:])]
    t.note("replayed gaps %s" % ["%.3f" % g for g in new_gaps])
    #  The lower bound is the point (busreplay waited the recorded gap);
    #  the upper one only says it did not wait for something else, and is
    #  wide because a loaded 2-core machine delays any wake-up
    t.check(all(r - 0.03 <= n <= r + 1.0 for r, n in zip(rec_gaps, new_gaps)),
            "--speed original keeps the recorded gaps (-30 ms .. +1 s)")
    t.check(all(c["verdict"] == "match" for c in cases), "and every case matches")

    reqs, cases = replayed_reqs(t, target, tpeer, path, "--from-bseq", str(recorded[0]["bseq"]))
    new_gaps = [brx_of(b) - brx_of(a) for a, b in zip(reqs, reqs[1:])]
    t.note("instant gaps %s" % ["%.3f" % g for g in new_gaps])
    t.check(len(reqs) == len(GAPS) + 1 and sum(new_gaps) < sum(rec_gaps) / 2,
            "--speed instant does not wait")


if __name__ == "__main__":
    lhtest.run(main)
