#!/usr/bin/python3
"""CURVE, authorization and revocation, proven by the independent Python
peer (python3-zmq + msgpack) against a real `lakehouse broker`:

- refused: no CURVE; CURVE with a key not in the allow directory; a valid
  key with a forged HELLO name (403 + BYE); a READY its role may not serve
  (403); a call its role may not make (403); a broker admin op without
  role admin (403); each refusal counted in broker.stats;
- the tap: only role tap gets a copy of the traffic;
- `uid` is stamped with the sender's key, `src` is the certificate's name;
- revocation: a live client's certificate is removed from the allow
  directory; its next request after <= 2 s is refused with 401 (+ BYE)
  while another client keeps working.
"""

import os

import zmq

import lhtest
import test_curve_util as cu
lhb = lhtest.lhb


def expect_no_welcome(t, make, what):
    try:
        make()
        t.check(False, what)
    except lhb.ProtocolError:
        t.check(True, what)


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


def main(t):
    sec = cu.Secure(t, tap=True, sets={
        "acl/actor/serve": "echo,pyecho",
        "acl/client/call": "echo.echo,pyecho,broker.*",
    })
    admin = sec.peer(sec.admin)
    node = t.node(sec.endpoint, actors="echo", workers=1, sets=sec.node_sets())
    t.wait_workers(admin, "echo", 1)
    client_cert = sec.cert("pyclient", "client")
    actor_cert = sec.cert("pyactor", "actor")

    #  A client: src is its certificate's name, uid its key
    client = sec.peer(client_cert)
    worker = sec.peer(actor_cert)
    worker.ready("pyecho", credit=1)
    t.wait_workers(admin, "pyecho", 1)
    rid = client.request("pyecho", "any", {"n": 1})
    req = worker.recv_req(3)
    t.check(req is not None and req.h.get("src") == "pyclient",
            "src is the certificate's name", req and req.h)
    public = cu.load_cert(client_cert)[0].decode()
    t.check(req.h.get("uid") == public, "uid is the sender's public key (Z85)", req.h.get("uid"))
    worker.reply(req, 200, {"ok": True})
    rep = client.wait_reply(rid, 3)
    t.check(rep is not None and rep.st == 200 and rep.h.get("src") == "pyactor",
            "the reply comes back from the worker's certificate name")

    #  1. no CURVE at all
    expect_no_welcome(t, lambda: lhb.Peer(sec.endpoint, name="nocurve", timeout=1.0),
                      "a peer without CURVE is refused")
    v = t.wait_stat(admin, "refused.handshake", lambda v: v >= 1)
    t.check(v >= 1, "counted as refused.handshake", v)

    #  2. CURVE with a key not in the allow directory (and one only in CERTS)
    public, secret = zmq.curve_keypair()
    expect_no_welcome(t, lambda: cu.curve_peer(t, sec.endpoint, None, sec.server,
                                               name="stranger", keys=(public, secret),
                                               timeout=1.0),
                      "a key not in the allow directory is refused")
    outside = cu.certs_new(t, "outsider", "client", os.path.join(t.tmp, "elsewhere"))
    expect_no_welcome(t, lambda: sec.peer(outside, timeout=1.0),
                      "a valid certificate the broker was never given is refused")
    v = t.wait_stat(admin, "refused.zap", lambda v: v >= 2)
    t.check(v >= 2, "counted as refused.zap", v)

    #  3. valid key, forged HELLO name: 403 + BYE
    forger = sec.peer(client_cert, name="storaged", hello=False)
    forger.say_hello()
    bye = wait_bye(forger)
    t.check(bye is not None and bye.st == 403, "a forged HELLO name gets BYE 403",
            bye and bye.h)
    v = t.wait_stat(admin, "refused.name", lambda v: v >= 1)
    t.check(v == 1, "counted as refused.name", v)

    #  4. READY for a service the role may not serve: a client, and an actor
    #  outside acl/actor/serve
    rogue = sec.peer(client_cert)
    rogue.ready("storaged", credit=5)
    bye = wait_bye(rogue)
    t.check(bye is not None and bye.st == 403, "READY storaged from role client: BYE 403",
            bye and bye.h)
    rogue2 = sec.peer(actor_cert)
    rogue2.ready("storaged", credit=5)
    bye = wait_bye(rogue2)
    t.check(bye is not None and bye.st == 403,
            "READY storaged from an actor not allowed to serve it: BYE 403", bye and bye.h)
    v = t.wait_stat(admin, "refused.serve", lambda v: v >= 2)
    t.check(v == 2, "counted as refused.serve", v)
    t.check(lhb.workers_of(admin, "storaged") == [], "no rogue storaged worker is listed")

    #  5. a call the role may not make; a broker admin op without role admin
    rep = client.call("echo", "other", {"x": 1})
    t.check(rep is not None and rep.st == 403, "a call outside acl/client/call: 403",
            rep and (rep.st, rep.obj))
    rep = client.call("echo", "echo", {"x": 1})
    t.check(rep is not None and rep.st == 200, "an allowed call still works")
    rep = client.call("broker", "reload")
    t.check(rep is not None and rep.st == 403, "broker.reload from role client: 403",
            rep and rep.st)
    rep = admin.call("broker", "reload")
    t.check(rep is not None and rep.st == 200, "broker.reload from role admin: 200",
            rep and (rep.st, rep.obj))
    stats = t.stats(admin)
    t.check(stats["refused"]["call"] == 1 and stats["refused"]["admin"] == 1,
            "counted as refused.call and refused.admin", stats["refused"])

    #  6. the tap: role tap subscribes, role client is refused at handshake
    tap_public, tap_secret = cu.load_cert(os.path.join(sec.certs, "tap.cert"))
    server = cu.load_cert(sec.server)[0]
    ctx = zmq.Context.instance()

    def tap_socket(public, secret):
        sock = ctx.socket(zmq.SUB)
        sock.linger = 0
        sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = public, secret, server
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(sec.broker.tap)
        return sock
    good = tap_socket(tap_public, tap_secret)
    bad = tap_socket(*cu.load_cert(client_cert))
    zap_before = t.stats(admin)["refused"]["zap"]
    #  The tap copies everything routed, this test's own broker.stats calls
    #  included: wait for the copy of our echo.echo REQ (matched by topic,
    #  svc, op and trace id), skipping the others. The SUB may join after the
    #  first call was routed (a slow joiner), so the call is repeated, each
    #  with its own trace id, until one of them shows up.
    got = None
    sent = set()
    deadline = lhb.now() + 5
    while got is None and lhb.now() < deadline:
        trace = os.urandom(16).hex()
        sent.add(trace)
        client.call("echo", "echo", {"tap": "me"}, tr=trace)
        while got is None and good.poll(100):
            frames = good.recv_multipart()
            h = lhb.unpack(frames[1]) if len(frames) >= 2 else {}
            if (frames[0] == b"echo.echo" and h.get("t") == "REQ" and h.get("svc") == "echo"
                    and h.get("op") == "echo" and h.get("tr") in sent):
                got = frames
    t.check(got is not None and lhb.unpack(got[2]) == {"tap": "me"},
            "role tap receives copies of the traffic (our echo.echo REQ, by trace id)",
            got and got[:2])
    t.check(not bad.poll(300), "role client receives nothing from the tap")
    v = t.wait_stat(admin, "refused.zap", lambda v: v > zap_before)
    t.check(v > zap_before, "the client key's tap handshake is refused by ZAP", v)
    good.close()
    bad.close()

    #  7. revocation of a live client; another client keeps working
    victim_cert = sec.cert("pyvictim", "client")
    victim = sec.peer(victim_cert)
    other = sec.peer(sec.cert("pyother", "client"))
    t.check(victim.call("echo", "echo", {"n": 0}).st == 200, "the victim works before")
    os.unlink(os.path.join(sec.allow, "pyvictim.cert"))
    revoked_at = lhb.now()
    status = None
    failures = 0
    n = 0
    while lhb.now() - revoked_at < 2.0:
        n += 1
        rep = other.call("echo", "echo", {"n": n}, timeout=2)
        if rep is None or rep.st != 200:
            failures += 1
        other.idle(0.02)
    rep = victim.call("echo", "echo", {"n": "after"}, timeout=2)
    status = rep.st if rep else None
    t.check(status == 401, "the revoked client's request after 2 s gets 401",
            rep and (rep.st, rep.obj))
    t.check(failures == 0 and n > 10, "the other client kept working (%d calls, 0 failed)" % n,
            failures)
    bye = wait_bye(victim, 2)
    t.check(bye is not None and bye.st == 401, "the revoked client also gets BYE 401",
            bye and bye.h)
    v = t.wait_stat(admin, "refused.revoked", lambda v: v >= 1)
    t.check(v >= 1, "counted as refused.revoked", v)
    expect_no_welcome(t, lambda: sec.peer(victim_cert, timeout=1.0),
                      "the revoked key cannot connect again")

    #  A revoked worker is forgotten at once (no request goes to it)
    os.unlink(os.path.join(sec.allow, "pyactor.cert"))
    found = lhb.wait_workers(admin, "pyecho", 0, 3, exact=True)
    t.check(found == [], "a revoked worker is dropped from broker.workers", found)
    node.term()


if __name__ == "__main__":
    lhtest.run(main)
