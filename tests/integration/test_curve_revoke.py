#!/usr/bin/python3
"""test_curve_revoke - revocation by SIGHUP and certificate expiry, against
a CURVE `lakehouse broker` whose allow-directory timer is slowed to an
hour (broker/reload_ms = 3600000), so nothing but the signal or the
expiry itself can be what refuses a key (SPEC 3, docs/operations.md):

- revocation by SIGHUP: a connected client's certificate file is removed
  from the allow directory; it keeps working (the timer does not run:
  broker.stats curve.keys and generation unchanged); after SIGHUP to the
  broker process the allow set shrinks by one, the client's next request
  gets 401 and a BYE 401, and another client keeps working throughout;
- a certificate past its `expires` (metadata of its allow-directory copy)
  cannot connect: no WELCOME, counted refused.zap;
- a certificate that expires while connected: served until its
  `expires`, then its next request gets 401 + BYE 401 (never before the
  expiry time), other clients unaffected.
"""

import datetime
import os
import re
import signal
import time

import lhtest
import test_curve_util as cu
lhb = lhtest.lhb


def wait_bye(peer, timeout=3.0):
    """The first BYE the broker sends this peer (None if none came)."""
    deadline = lhb.now() + timeout
    while lhb.now() < deadline:
        for bye in peer.byes:
            return bye
        msg = peer.pump(0.1)
        if msg is not None and msg.t == "BYE":
            return msg
    return None


def set_expires(path, when):
    """Rewrite a certificate file's `expires` (a new file renamed over the
    old one: allow files are never rewritten in place)."""
    with open(path) as f:
        text = f.read()
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    text, count = re.subn(r'expires = "[^"]*"', 'expires = "%s"' % stamp, text)
    assert count == 1, path
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)


def curve(t, admin):
    stats = t.stats(admin)
    return stats["curve"]["keys"], stats["curve"]["generation"]


def main(t):
    sec = cu.Secure(t, sets={"broker/reload_ms": 3600000})
    admin = sec.peer(sec.admin)
    t.keep.append(admin)
    node = t.node(sec.endpoint, actors="echo", workers=1, sets=sec.node_sets())
    t.wait_workers(admin, "echo", 1)
    victim_cert = sec.cert("pyvictim", "client")
    other_cert = sec.cert("pyother", "client")
    expired_cert = sec.cert("pyexpired", "client")
    expiring_cert = sec.cert("pyexpiring", "client")
    now = datetime.datetime.now(datetime.timezone.utc)
    set_expires(os.path.join(sec.allow, "pyexpired.cert"), now - datetime.timedelta(hours=1))
    expiring_at = (now + datetime.timedelta(seconds=4)).replace(microsecond=0)
    set_expires(os.path.join(sec.allow, "pyexpiring.cert"), expiring_at)
    rep = admin.call("broker", "reload")
    t.check(rep is not None and rep.st == 200, "broker.reload picks up the new certificates",
            rep and (rep.st, rep.obj))

    #  -- revocation by SIGHUP ---------------------------------------------
    victim = sec.peer(victim_cert)
    other = sec.peer(other_cert)
    t.keep.append(other)
    t.check(victim.call("echo", "echo", {"n": 0}).st == 200, "the victim is served before")
    keys, generation = curve(t, admin)
    os.unlink(os.path.join(sec.allow, "pyvictim.cert"))
    removed = lhb.now()
    served = 0
    while lhb.now() - removed < 1.0:
        rep = victim.call("echo", "echo", {"n": served + 1}, timeout=2)
        if rep is None or rep.st != 200:
            break
        served += 1
        victim.idle(0.1)
    t.check(served >= 5 and curve(t, admin) == (keys, generation),
            "with reload_ms an hour, removing the file changes nothing by itself "
            "(%d more requests served, allow set still %d keys, generation %d)"
            % (served, keys, generation), curve(t, admin))
    os.kill(sec.broker.pid, signal.SIGHUP)
    after = t.wait_stat(admin, "curve.keys", lambda v: v == keys - 1)
    t.check(after == keys - 1, "after SIGHUP the broker's allow set has %d keys" % (keys - 1),
            after)
    rep = victim.call("echo", "echo", {"n": "after"}, timeout=2)
    t.check(rep is not None and rep.st == 401 and rep.error_kind == "revoked",
            "the revoked client's next request gets 401 revoked", rep and (rep.st, rep.obj))
    bye = wait_bye(victim, 2)
    t.check(bye is not None and bye.st == 401, "... and a BYE 401", bye and bye.h)
    rep = other.call("echo", "echo", {"still": 1}, timeout=2)
    t.check(rep is not None and rep.st == 200, "another client is still served")
    v = t.wait_stat(admin, "refused.revoked", lambda v: v >= 1)
    t.check(v >= 1, "counted as refused.revoked", v)

    #  -- a certificate already past its expires ----------------------------
    zap = lhb.stat(t.stats(admin), "refused.zap")
    try:
        sec.peer(expired_cert, timeout=1.0)
        t.check(False, "a certificate past its expires cannot connect")
    except lhb.ProtocolError:
        t.check(True, "a certificate past its expires cannot connect (no WELCOME)")
    v = t.wait_stat(admin, "refused.zap", lambda v: v > zap)
    t.check(v > zap, "counted as refused.zap", v)

    #  -- a certificate that expires while connected ------------------------
    expiring = sec.peer(expiring_cert)
    deadline = lhb.now() + 10
    first_refusal = None
    served = 0
    while lhb.now() < deadline:
        rep = expiring.call("echo", "echo", {"n": served}, timeout=2)
        if rep is None or rep.st != 200:
            first_refusal = (rep, datetime.datetime.now(datetime.timezone.utc))
            break
        served += 1
        expiring.idle(0.05)
    t.check(first_refusal is not None and first_refusal[0] is not None
            and first_refusal[0].st == 401,
            "the expiring certificate was served %d times, then refused 401" % served,
            first_refusal and first_refusal[0] and (first_refusal[0].st, first_refusal[0].obj))
    t.check(served > 0 and first_refusal[1] >= expiring_at,
            "never refused before its expires (%s; first refusal %s)"
            % (expiring_at.strftime("%H:%M:%S"), first_refusal[1].strftime("%H:%M:%S.%f")))
    bye = wait_bye(expiring, 2)
    t.check(bye is not None and bye.st == 401, "... and a BYE 401", bye and bye.h)
    rep = other.call("echo", "echo", {"still": 2}, timeout=2)
    t.check(rep is not None and rep.st == 200, "other clients are unaffected")
    node.term()


if __name__ == "__main__":
    lhtest.run(main)
