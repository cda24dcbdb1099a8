#!/usr/bin/python3
"""test_peer - an independent Python LHB/1 peer drives a real `lakehouse broker`.

Checks: HELLO/WELCOME, the hello_first BYE, a Python worker + Python client
round trip (id rewrite, stamps, remaining deadline), name rules, then
adversarial frames, each from a fresh DEALER: after each the broker still
answers broker.ping, malformed ones are counted in broker.stats
dropped.malformed, nothing is answered or forwarded, forged stamps are
overwritten, bodies are forwarded verbatim (never decoded), and RSS stays
flat over 1,000 bad frames.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import lhb       # noqa: E402
import lhtest    # noqa: E402
from lhb import pack, SIGNATURE  # noqa: E402

MAX_MSG = 65536
REQUIRED = "required"       # must be counted as malformed
SURVIVE = "survive"         # behaviour not pinned by the contract: must survive


def raw_map(pairs):
    """Encode a msgpack map from (key, raw-encoded value) pairs."""
    out = bytes([0x80 | len(pairs)])
    for key, value in pairs:
        out += pack(key) + value
    return out


def main(t):
    b = t.broker(sets={"broker/max_msg": MAX_MSG, "broker/name": "pybroker"})
    c = t.client(b.endpoint, name="pyclient")

    #  -- session ----------------------------------------------------------
    w = c.welcome
    t.check(w.get("hb_ivl") == t.hb_ivl and w.get("hb_live") == t.hb_live,
            "WELCOME dictates hb_ivl=%d hb_live=%d" % (t.hb_ivl, t.hb_live), w)
    t.check(w.get("max_msg") == MAX_MSG, "WELCOME carries max_msg=%d" % MAX_MSG, w)
    rep = c.call("broker", "ping", timeout=3)
    t.check(rep is not None and rep.st == 200 and rep.obj.get("pong") is True,
            "broker.ping answers 200 pong", rep)
    t.check(rep.h.get("src") == "broker", "broker replies carry src=broker", rep.h)
    t.check(rep.obj.get("name") == "pybroker", "broker.ping names the broker", rep.obj)

    stranger = t.client(b.endpoint, name="stranger", hello=False)
    stranger.send("REQ", id=42, svc="broker", op="ping")
    frames = stranger.recv_raw(3)
    bye = lhb.parse(frames) if frames else None
    t.check(bye is not None and bye.t == "BYE" and bye.st == 400
            and bye.h.get("cid") == 42 and bye.error_kind == "hello_first",
            "REQ before HELLO -> BYE st=400 cid=42 kind hello_first", bye)
    stranger.close(bye=False)

    badname = t.client(b.endpoint, name="bad name!", hello=False)
    badname.say_hello()
    frames = badname.recv_raw(2)
    got = lhb.parse(frames) if frames else None
    t.check(got is None or (got.t != "WELCOME" and got.st == 400),
            "HELLO with an invalid name is refused (no WELCOME)", got)
    badname.close(bye=False)

    #  -- worker + client round trip ----------------------------------------
    wk = t.client(b.endpoint, name="pyworker")
    wk.ready("pyecho", credit=1, ops=["echo", "other"])
    t.keep.append(wk)
    t.wait_workers(c, "pyecho", 1, timeout=5)
    body = {"hello": "world", "n": [1, 2, 3]}
    rid = c.request("pyecho", "echo", body=body, dl=3000,
                    tr="4bf92f3577b34da6a3ce929d0e0e4736", ps="00f067aa0ba902b7")
    req = wk.recv_req(3)
    t.check(req is not None, "Python worker receives the REQ")
    h = req.h
    t.check(h.get("svc") == "pyecho" and h.get("op") == "echo", "REQ keeps svc/op", h)
    t.check(isinstance(h.get("id"), int), "worker sees a broker id", h)
    t.check(isinstance(h.get("src"), str) and "pyclient" in h["src"],
            "REQ stamped src names the client", h)
    t.check(isinstance(h.get("bseq"), int) and isinstance(h.get("brx"), int),
            "REQ stamped bseq and brx", h)
    t.check(h.get("att") == 1, "first delivery has att=1", h)
    t.check(isinstance(h.get("dl"), int) and 0 < h["dl"] <= 3000,
            "worker receives the remaining deadline (0 < dl <= 3000)", h)
    t.check(req.body == pack(body), "REQ body forwarded verbatim")
    t.check(h.get("tr") == "4bf92f3577b34da6a3ce929d0e0e4736" and h.get("ps") == "00f067aa0ba902b7",
            "REQ keeps its trace id (tr) and parent span id (ps)", h)
    wk.reply(req, 200, raw=req.body)
    rep = c.wait_reply(rid, 3)
    t.check(rep is not None and rep.st == 200 and rep.h.get("cid") == rid,
            "client gets REP st=200 with cid = its own id", rep)
    t.check(rep.body == pack(body), "REP body forwarded verbatim")
    t.check(isinstance(rep.h.get("src"), str) and "pyworker" in rep.h["src"],
            "REP stamped src names the worker", rep.h)
    t.check(isinstance(rep.h.get("bseq"), int) and rep.h["bseq"] > h["bseq"],
            "REP bseq follows the REQ's", (rep.h, h))

    #  PART then REP: streamed in order, credit comes back only on REP
    rid = c.request("pyecho", "other", body=[1])
    req = wk.recv_req(3)
    t.check(req is not None and req.h.get("op") == "other", "second op dispatched")
    for i in range(3):
        wk.part(req, body={"part": i})
    wk.reply(req, 200, body={"done": True})
    parts = []
    rep = c.wait_reply(rid, 3, parts)
    t.check(rep is not None and rep.st == 200
            and [p.obj for p in parts] == [{"part": 0}, {"part": 1}, {"part": 2}],
            "3 PARTs then REP arrive in order", (rep, parts))

    rep = c.call("pyecho", "nope", timeout=3)
    t.check(rep is not None and rep.st == 404 and rep.error_kind == "no_such_op",
            "op not declared by the worker -> 404 no_such_op", rep)
    rep = c.call("nosuch", "echo", timeout=3)
    t.check(rep is not None and rep.st == 404 and rep.error_kind == "no_such_service",
            "never offered service -> 404 no_such_service", rep)
    rep = c.call("bad svc!", "echo", timeout=3)
    t.check(rep is not None and rep.st == 400, "invalid service name -> 400", rep)

    #  -- adversarial frames -----------------------------------------------
    def malformed():
        return lhb.stat(t.stats(c), "dropped.malformed")

    def ping_ok(label):
        rep = c.call("broker", "ping", timeout=3)
        if rep is None or rep.st != 200:
            raise lhtest.Failure("broker.ping after %s: %r" % (label, rep))
        if not b.proc.alive():
            raise lhtest.Failure("broker died after %s" % label)

    seq = [1000]

    def hdr(**keys):
        seq[0] += 1
        keys.setdefault("id", seq[0])
        return pack(keys)

    def attack(label, messages, expect=REQUIRED, hello=True):
        """Send messages (lists of frames) from a fresh DEALER; check."""
        t.tick()
        before = malformed()
        d = t.client(b.endpoint, name="evil%d" % seq[0], hello=hello)
        for frames in messages:
            d.send_frames(frames)
        want = before + len(messages)
        seen = t.wait_stat(c, "dropped.malformed", lambda v: v >= want,
                           timeout=3 if expect == REQUIRED else 0.3)
        ping_ok(label)
        answered = [m for m in (d.drain(0.05)) if m.t not in ("HB", "WELCOME")]
        d.close(bye=False)
        t.peers.remove(d)
        if expect == REQUIRED:
            t.check(seen >= want and not answered,
                    "%s: dropped, counted (malformed %d -> %d), unanswered, "
                    "broker alive" % (label, before, seen), answered)
        else:
            t.check(True, "%s: broker alive (malformed %d -> %d, answers %r)"
                    % (label, before, seen, [m.h for m in answered]))

    ping = {"t": "REQ", "svc": "broker", "op": "ping"}
    attack("missing signature", [[hdr(**ping)], [hdr(**ping), pack({})]])
    attack("empty signature frame", [[b"", hdr(**ping)]])
    attack("wrong signature LHB2", [[b"LHB2", hdr(**ping)]])
    attack("only 1 frame", [[SIGNATURE]])
    attack("5 frames", [[SIGNATURE, hdr(**ping), pack({}), b"x", b"y"]])
    attack("4 frames", [[SIGNATURE, hdr(**ping), pack({}), b"x"]])
    attack("truncated header", [[SIGNATURE, hdr(**ping)[:-3]]])
    attack("empty header frame", [[SIGNATURE, b""]])
    attack("header not a map (array)", [[SIGNATURE, pack(["t", "REQ"])]])
    attack("header not a map (int, str, nil)",
           [[SIGNATURE, pack(42)], [SIGNATURE, pack("REQ")], [SIGNATURE, b"\xc0"]])
    attack("header with trailing bytes", [[SIGNATURE, hdr(**ping) + b"\x01"]])
    attack("unknown t", [[SIGNATURE, hdr(t="FOO")]])
    attack("no t at all", [[SIGNATURE, hdr(svc="broker", op="ping")]])
    attack("oversized body (> max_msg)",
           [[SIGNATURE, hdr(**ping), pack(b"x" * (MAX_MSG + 1))]])
    attack("oversized header frame (> 4096)",
           [[SIGNATURE, hdr(t="HB", pad="p" * 5000)]])
    attack("map16 claiming 65535 keys in 3 bytes", [[SIGNATURE, b"\xde\xff\xff"]])
    attack("map32 claiming 2^24 keys in 5 bytes",
           [[SIGNATURE, b"\xdf\x01\x00\x00\x00"]])
    attack("array32 claiming 2^32-1 elements", [[SIGNATURE, b"\xdd\xff\xff\xff\xff"]])
    attack("array32 bomb as a header value",
           [[SIGNATURE, raw_map([("t", pack("HB")), ("id", pack(7)),
                                 ("x", b"\xdd\xff\xff\xff\xff")])]])
    attack("str32 claiming 4 GiB as a header value",
           [[SIGNATURE, raw_map([("t", pack("HB")), ("x", b"\xdb\xff\xff\xff\xff")])]])
    attack("map32 bomb as a header value",
           [[SIGNATURE, raw_map([("t", pack("HB")), ("x", b"\xdf\xff\xff\xff\xff")])]])
    attack("2000-deep nested arrays as a header value",
           [[SIGNATURE, raw_map([("t", pack("HB")), ("x", b"\x91" * 2000 + b"\xc0")])]])
    attack("map claiming 33 keys (> 32)",
           [[SIGNATURE, pack(dict([("t", "HB")] + [("k%d" % i, i) for i in range(32)]))]])
    attack("header of a message before HELLO, truncated",
           [[SIGNATURE, hdr(**ping)[:-1]]], hello=False)
    attack("non-string key in header", [[SIGNATURE, pack({"t": "HB", 7: "x"})]],
           expect=SURVIVE)

    #  Wrong types for every header key. Base messages are plausible (a REQ
    #  to our own worker): anything not rejected would reach wk.
    base = {"t": "REQ", "svc": "pyecho", "op": "echo", "dl": 1000}
    wrong = []
    for key in lhb.STR_KEYS:
        wrong.append((key, 7))
        wrong.append((key, None))
    for key in lhb.UINT_KEYS:
        wrong.append((key, "7"))
        wrong.append((key, -1))
        wrong.append((key, 1.5))
    for key in lhb.BOOL_KEYS:
        wrong.append((key, "yes"))
        wrong.append((key, 1))
    for key, value in wrong:
        h = dict(base)
        h[key] = value
        attack("wrong type %s=%r" % (key, value), [[SIGNATURE, hdr(**h), pack([])]])
    #  Strings too long for their fields (SPEC: malformed)
    for key, size in (("svc", 65), ("op", 65), ("idem", 129), ("tr", 33), ("ps", 17),
                      ("name", 65), ("topic", 256), ("ops", 1025), ("src", 65),
                      ("uid", 41)):
        h = dict(base)
        h[key] = "a" * size
        attack("%s of %d bytes (too long)" % (key, size), [[SIGNATURE, hdr(**h), pack([])]])
    stray = wk.drain(0.2)
    t.check(not [m for m in stray if m.t == "REQ"],
            "no malformed REQ was forwarded to the worker",
            [m.h for m in stray])
    for m in stray:
        if m.t == "REQ":
            wk.reply(m, 200)

    #  -- forged stamps --------------------------------------------------------
    rid = c.request("pyecho", "echo", body={"forged": 1}, dl=3000, src="forged",
                    uid="A" * 40, bseq=999999999999, brx=123456789, att=7)
    req = wk.recv_req(3)
    t.check(req is not None, "REQ with forged stamps is routed (stamps are overwritten)")
    h = req.h
    t.check(h.get("src") != "forged" and "pyclient" in str(h.get("src")),
            "worker sees the broker's src, not the forged one", h)
    t.check(h.get("bseq") != 999999999999 and h.get("brx") != 123456789 and h.get("att") == 1,
            "worker sees the broker's bseq/brx/att, not the forged ones", h)
    t.check(h.get("uid") != "A" * 40, "forged uid is not passed on (plain tcp)", h)
    wk.reply(req, 200, raw=req.body, src="evil", bseq=1, brx=987654321, att=9, uid="B" * 40)
    rep = c.wait_reply(rid, 3)
    t.check(rep is not None and rep.st == 200, "REP with forged stamps is routed", rep)
    t.check("pyworker" in str(rep.h.get("src")) and rep.h.get("bseq") != 1
            and rep.h.get("brx") != 987654321 and rep.h.get("uid") != "B" * 40
            and rep.h.get("att") != 9,
            "client sees the broker's stamps on the REP, not the worker's", rep.h)

    #  -- bodies are opaque ---------------------------------------------------
    before = malformed()
    for bomb in (b"\xdf\x01\x00\x00\x00", b"\xdd\xff\xff\xff\xff",
                 b"\xdb\xff\xff\xff\xff", b"\xc1", b"\x91" * 5000):
        rid = c.request("pyecho", "echo", raw=bomb, dl=3000)
        req = wk.recv_req(3)
        t.check(req is not None and req.body == bomb,
                "REQ body bomb %r... forwarded verbatim" % bomb[:5])
        wk.reply(req, 200, raw=bomb)
        rep = c.wait_reply(rid, 3)
        t.check(rep is not None and rep.st == 200 and rep.body == bomb,
                "REP body bomb %r... forwarded verbatim" % bomb[:5], rep)
    t.check(malformed() == before, "opaque bodies are not counted as malformed")

    #  -- RSS stays flat over 1,000 bad frames --------------------------------
    kinds = [
        [SIGNATURE, b"\xdf\x01\x00\x00\x00"],
        [SIGNATURE, b"\xdd\xff\xff\xff\xff"],
        [SIGNATURE, raw_map([("t", pack("HB")), ("x", b"\xdf\xff\xff\xff\xff")])],
        [b"LHB2", hdr(**ping)],
        [SIGNATURE, hdr(**ping)[:-2]],
        [SIGNATURE, hdr(t="REQ", svc=7, op="echo")],
        [SIGNATURE, hdr(**ping), pack({}), b"x", b"y"],
        [SIGNATURE, raw_map([("t", pack("HB")), ("x", b"\x91" * 3000 + b"\xc0")])],
        [SIGNATURE],
        [SIGNATURE, hdr(**ping), b"z" * (MAX_MSG + 1)],
    ]

    def storm(count, senders):
        before = malformed()
        peers = [t.client(b.endpoint, name="storm%d" % i, hello=(i % 2 == 0))
                 for i in range(senders)]
        for i in range(count):
            peers[i % senders].send_frames(kinds[i % len(kinds)])
            if i % 100 == 0:
                t.tick()
        seen = t.wait_stat(c, "dropped.malformed", lambda v: v >= before + count,
                           timeout=30)
        for p in peers:
            p.close(bye=False)
            t.peers.remove(p)
        return seen - before

    storm(200, 4)               # warm up allocator and pipes
    rss0 = b.proc.rss_kib()
    counted = storm(1000, 10)
    rss1 = b.proc.rss_kib()
    t.check(counted >= 1000, "1,000 bad frames all counted as malformed", counted)
    ping_ok("1,000 bad frames")
    if os.environ.get("LH_ASAN") == "1":
        #  ASan's quarantine holds freed memory: RSS says nothing there
        t.note("RSS check skipped under ASan (%s -> %s KiB)" % (rss0, rss1))
    else:
        t.check(rss0 is not None and rss1 is not None and rss1 - rss0 < 20 * 1024,
                "broker RSS flat over 1,000 bad frames (%s -> %s KiB)" % (rss0, rss1))

    #  the legitimate pair still works
    rid = c.request("pyecho", "echo", body={"after": "storm"}, dl=3000)
    req = wk.recv_req(3)
    if req is not None:
        wk.reply(req, 200, raw=req.body)
    rep = c.wait_reply(rid, 3)
    t.check(rep is not None and rep.st == 200 and rep.obj == {"after": "storm"},
            "worker and client still work after the storm", rep)


if __name__ == "__main__":
    lhtest.run(main)
