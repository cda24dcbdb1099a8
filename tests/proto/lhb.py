"""lhb - an independent LHB/1 peer in Python (python3-zmq + python3-msgpack).

Written from SPEC section 2 and notes/BUS.md only, never from the C code, so
the protocol tests prove the wire contract outside our own implementation.
Run with /usr/bin/python3 (Debian's python3-zmq and python3-msgpack).

    peer = lhb.Peer("tcp://127.0.0.1:5570", name="pyclient")   # HELLO/WELCOME
    rep = peer.call("broker", "ping")                            # REQ -> REP
    print(rep.st, rep.obj)

    worker = lhb.Peer(endpoint, name="pyworker")
    worker.ready("pyecho", credit=1)
    req = worker.recv_req(timeout=2)
    worker.reply(req, 200, raw=req.body)

Every wait takes a timeout (seconds) and returns None when it passes; this
library never sleeps. A peer heartbeats (HB) whenever it has sent nothing
for hb_ivl while it waits, and answers BYE "hello_first" by saying HELLO
again and resending the request named in cid.
"""

import collections
import itertools
import time

import msgpack
import zmq

SIGNATURE = b"LHB1"

#  Header keys and their wire types (SPEC section 2 + BUS.md extras)
STR_KEYS = ("t", "svc", "op", "topic", "idem", "tr", "ps", "src", "uid", "name", "ops")
UINT_KEYS = ("id", "cid", "dl", "st", "credit", "bseq", "brx", "att",
             "hb_ivl", "hb_live", "max_msg")
BOOL_KEYS = ("q",)
STAMPS = ("src", "uid", "bseq", "brx", "att")


class ProtocolError(Exception):
    """The broker sent something LHB/1 does not allow."""


def pack(obj):
    """Encode an object as msgpack (str as str, bytes as bin)."""
    return msgpack.packb(obj, use_bin_type=True)


def unpack(data):
    """Decode msgpack bytes (bounded by msgpack's own size-based limits)."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def now():
    return time.monotonic()


class Msg:
    """One received message: decoded header h, raw body bytes (or None)."""

    __slots__ = ("h", "body", "frames")

    def __init__(self, h, body, frames):
        self.h = h
        self.body = body
        self.frames = frames

    @property
    def t(self):
        return self.h.get("t")

    @property
    def st(self):
        return self.h.get("st")

    @property
    def obj(self):
        """The body decoded, or None when there is no body."""
        return None if self.body is None else unpack(self.body)

    @property
    def error_kind(self):
        """error.kind of an error body, or None."""
        try:
            return self.obj["error"]["kind"]
        except Exception:
            return None

    def __repr__(self):
        body = "" if self.body is None else " body=%d bytes" % len(self.body)
        return "<Msg %r%s>" % (self.h, body)


def parse(frames):
    """Parse the frames a DEALER received into a Msg; ProtocolError if bad."""
    if len(frames) not in (2, 3):
        raise ProtocolError("message with %d frames" % len(frames))
    if frames[0] != SIGNATURE:
        raise ProtocolError("bad signature %r" % frames[0][:8])
    h = unpack(frames[1])
    if not isinstance(h, dict):
        raise ProtocolError("header is not a map: %r" % (h,))
    body = frames[2] if len(frames) == 3 else None
    return Msg(h, body, frames)


class Peer:
    """One DEALER connection to the broker: client, worker, publisher and
    subscriber at once (each peer may be a worker of one service only)."""

    def __init__(self, endpoint, name="py", ctx=None, hello=True, timeout=5.0,
                 rcvhwm=None, sndhwm=None):
        self.ctx = ctx or zmq.Context.instance()
        self.endpoint = endpoint
        self.name = name
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDTIMEO, 2000)
        if rcvhwm is not None:
            self.sock.setsockopt(zmq.RCVHWM, rcvhwm)
        if sndhwm is not None:
            self.sock.setsockopt(zmq.SNDHWM, sndhwm)
        self.sock.connect(endpoint)
        self.ids = itertools.count(1)
        self.hb_ivl = 1000                  # ms, until WELCOME says otherwise
        self.hb_live = 3
        self.max_msg = 16 * 1024 * 1024
        self.welcome = None                 # last WELCOME header
        self.welcomes = 0                   # WELCOMEs received
        self.byes = []                      # BYE messages received
        self.epoch = 0                      # HELLOs said so far
        self.pending = {}                   # id -> [frames, epoch] of our REQs
        self.stash = collections.deque()    # received, not yet consumed
        self.last_sent = now()
        self.svc = None                     # READY: the service we serve
        self.ready_args = None
        self.closed = False
        if hello:
            self.hello(timeout)

    #  ------------------------------------------------------------------
    #  Sending

    def next_id(self):
        return next(self.ids)

    def send_frames(self, frames):
        """Send raw frames as they are (adversarial tests use this)."""
        self.sock.send_multipart(frames)
        self.last_sent = now()

    def send(self, t, body=None, raw=None, **keys):
        """Send message type t with header keys; body is packed, raw is sent
        verbatim. Returns the frames sent."""
        header = {"t": t}
        header.update(keys)
        frames = [SIGNATURE, pack(header)]
        if raw is not None:
            frames.append(raw)
        elif body is not None:
            frames.append(pack(body))
        self.send_frames(frames)
        return frames

    def say_hello(self):
        """Send HELLO without waiting for WELCOME."""
        self.epoch += 1
        self.send("HELLO", id=self.next_id(), name=self.name)

    def hello(self, timeout=5.0):
        """Say HELLO and wait for WELCOME; returns the WELCOME header."""
        seen = self.welcomes
        self.say_hello()
        deadline = now() + timeout
        while self.welcomes == seen:
            left = deadline - now()
            if left <= 0:
                raise ProtocolError("no WELCOME within %.1f s from %s"
                                    % (timeout, self.endpoint))
            frames = self.recv_raw(min(left, 0.5))
            if frames is not None:
                msg = parse(frames)
                if not self._internal(msg):
                    self.stash.append(msg)
        return self.welcome

    def heartbeat(self, force=False):
        """Send HB if we have sent nothing for hb_ivl (or if force)."""
        if force or (now() - self.last_sent) * 1000 >= self.hb_ivl:
            self.send("HB", id=self.next_id())

    def bye(self):
        try:
            self.send("BYE", id=self.next_id())
        except zmq.ZMQError:
            pass

    def close(self, bye=True):
        if self.closed:
            return
        if bye:
            self.bye()
        self.sock.close(0)
        self.closed = True

    #  ------------------------------------------------------------------
    #  Receiving

    def recv_raw(self, timeout):
        """Receive one message's frames or None after timeout (no HB logic)."""
        if self.sock.poll(max(0, int(timeout * 1000)), zmq.POLLIN):
            return self.sock.recv_multipart()
        return None

    def _internal(self, msg):
        """Handle session messages; return True if msg was consumed."""
        t = msg.t
        if t == "HB":
            return True
        if t == "WELCOME":
            self.welcome = msg.h
            self.welcomes += 1
            self.hb_ivl = msg.h.get("hb_ivl", self.hb_ivl)
            self.hb_live = msg.h.get("hb_live", self.hb_live)
            self.max_msg = msg.h.get("max_msg", self.max_msg)
            return True
        if t == "BYE" and msg.error_kind == "hello_first":
            self.byes.append(msg)
            cid = msg.h.get("cid")
            entry = self.pending.get(cid)
            if entry is None:
                #  not one of our requests (HB, READY, SUB...): just re-HELLO
                #  unless we already did after the broker forgot us
                self.say_hello()
                self._resume()
                return True
            if entry[1] == self.epoch:
                self.say_hello()
                self._resume()
            entry[1] = self.epoch
            self.send_frames(entry[0])
            return True
        return False

    def _resume(self):
        """After a re-HELLO, say READY and SUB again as we did before."""
        if self.ready_args is not None:
            self.send("READY", id=self.next_id(), **self.ready_args)
        for prefix in getattr(self, "subs", ()):
            self.send("SUB", id=self.next_id(), topic=prefix)

    def pump(self, timeout):
        """Wait up to timeout for one application message (REQ, REP, PART,
        PUB, BYE other than hello_first); heartbeats meanwhile."""
        if self.stash:
            return self.stash.popleft()
        deadline = now() + timeout
        while True:
            self.heartbeat()
            left = deadline - now()
            frames = self.recv_raw(max(0.0, min(left, self.hb_ivl / 1000.0 / 2)))
            if frames is not None:
                msg = parse(frames)
                if not self._internal(msg):
                    return msg
            elif left <= 0:
                return None

    def idle(self, timeout):
        """Spend up to timeout handling traffic (heartbeats, WELCOME, BYE)
        without consuming application messages: they are stashed. Used as
        the pause between two polls of a condition."""
        deadline = now() + timeout
        while True:
            self.heartbeat()
            left = deadline - now()
            frames = self.recv_raw(max(0.0, min(left, self.hb_ivl / 1000.0 / 2)))
            if frames is not None:
                msg = parse(frames)
                if not self._internal(msg):
                    self.stash.append(msg)
            elif left <= 0:
                return

    def drain(self, timeout=0.0):
        """All messages arriving within timeout."""
        out = []
        deadline = now() + timeout
        while True:
            msg = self.pump(max(0.0, deadline - now()))
            if msg is None:
                return out
            out.append(msg)

    #  ------------------------------------------------------------------
    #  Client side

    def request(self, svc, op, body=None, raw=None, dl=None, idem=None, q=None,
                tr=None, **extra):
        """Send REQ; returns its id. Collect the answer with wait_reply."""
        rid = self.next_id()
        keys = {"id": rid, "svc": svc, "op": op}
        if dl is not None:
            keys["dl"] = dl
        if idem is not None:
            keys["idem"] = idem
        if q is not None:
            keys["q"] = q
        if tr is not None:
            keys["tr"] = tr
        keys.update(extra)
        frames = self.send("REQ", body=body, raw=raw, **keys)
        self.pending[rid] = [frames, self.epoch]
        return rid

    def next_reply(self, timeout):
        """The next REP or PART for any of our requests, or None."""
        deadline = now() + timeout
        kept = []
        try:
            while True:
                msg = self.pump(max(0.0, deadline - now()))
                if msg is None:
                    return None
                if msg.t in ("REP", "PART") and msg.h.get("cid") in self.pending:
                    if msg.t == "REP":
                        del self.pending[msg.h["cid"]]
                    return msg
                kept.append(msg)
        finally:
            self.stash.extend(kept)

    def wait_reply(self, rid, timeout, parts=None):
        """Wait for the REP answering request rid; PARTs go into parts."""
        deadline = now() + timeout
        kept = []
        try:
            while True:
                msg = self.pump(max(0.0, deadline - now()))
                if msg is None:
                    return None
                if msg.h.get("cid") == rid and msg.t == "PART":
                    if parts is not None:
                        parts.append(msg)
                    continue
                if msg.h.get("cid") == rid and msg.t == "REP":
                    self.pending.pop(rid, None)
                    return msg
                kept.append(msg)
        finally:
            self.stash.extend(kept)

    def call(self, svc, op, body=None, timeout=5.0, parts=None, **kw):
        """Request and wait; returns the REP Msg or None after timeout."""
        rid = self.request(svc, op, body=body, **kw)
        return self.wait_reply(rid, timeout, parts)

    def forget(self, rid):
        self.pending.pop(rid, None)

    #  ------------------------------------------------------------------
    #  Worker side

    def ready(self, svc, credit=1, ops=None):
        """Offer a service (no answer is defined; poll broker.workers)."""
        args = {"svc": svc, "credit": credit}
        if ops:
            args["ops"] = ops if isinstance(ops, str) else ",".join(ops)
        self.svc = svc
        self.ready_args = args
        self.send("READY", id=self.next_id(), **args)

    def credit(self, n):
        self.send("CREDIT", id=self.next_id(), credit=n)

    def recv_req(self, timeout):
        """The next REQ addressed to us as a worker, or None."""
        deadline = now() + timeout
        kept = []
        try:
            while True:
                msg = self.pump(max(0.0, deadline - now()))
                if msg is None:
                    return None
                if msg.t == "REQ":
                    return msg
                kept.append(msg)
        finally:
            self.stash.extend(kept)

    def reply(self, req, st=200, body=None, raw=None, **extra):
        self.send("REP", body=body, raw=raw, id=self.next_id(),
                  cid=req.h["id"], st=st, **extra)

    def part(self, req, body=None, raw=None):
        self.send("PART", body=body, raw=raw, id=self.next_id(), cid=req.h["id"])

    #  ------------------------------------------------------------------
    #  Events

    def subscribe(self, prefix):
        """Send SUB; returns its id (a refused SUB is answered REP 403 with
        that cid: see answer_to)."""
        if not hasattr(self, "subs"):
            self.subs = []
        self.subs.append(prefix)
        sid = self.next_id()
        self.send("SUB", id=sid, topic=prefix)
        return sid

    def publish(self, topic, body=None, raw=None):
        """Send PUB; returns its id (a refused PUB is answered REP 403)."""
        pid = self.next_id()
        self.send("PUB", body=body, raw=raw, id=pid, topic=topic)
        return pid

    def answer_to(self, mid, timeout):
        """The REP whose cid is mid (the broker's answer to one of our
        PUB/SUB/READY...), or None; other messages stay stashed."""
        deadline = now() + timeout
        kept = []
        try:
            while True:
                msg = self.pump(max(0.0, deadline - now()))
                if msg is None:
                    return None
                if msg.t == "REP" and msg.h.get("cid") == mid:
                    return msg
                kept.append(msg)
        finally:
            self.stash.extend(kept)

    def recv_pub(self, timeout):
        """The next PUB delivered to us, or None."""
        deadline = now() + timeout
        kept = []
        try:
            while True:
                msg = self.pump(max(0.0, deadline - now()))
                if msg is None:
                    return None
                if msg.t == "PUB":
                    return msg
                kept.append(msg)
        finally:
            self.stash.extend(kept)


#  ----------------------------------------------------------------------
#  Helpers over the built-in broker service

def broker_call(peer, op, timeout=3.0):
    """Call broker.<op>; returns the decoded body or raises ProtocolError."""
    rep = peer.call("broker", op, timeout=timeout)
    if rep is None:
        raise ProtocolError("no answer to broker.%s within %.1f s" % (op, timeout))
    if rep.st != 200:
        raise ProtocolError("broker.%s answered %r %r" % (op, rep.st, rep.obj))
    return rep.obj


def workers_of(peer, svc):
    """Workers the broker lists for svc (list of dicts)."""
    body = broker_call(peer, "workers")
    return [w for w in body.get("workers", []) if w.get("service") == svc]


def wait_workers(peer, svc, count, timeout, exact=False):
    """Poll broker.workers until svc has >= count (== if exact) workers.
    Returns the list, or None if the deadline passed."""
    deadline = now() + timeout
    while True:
        found = workers_of(peer, svc)
        if (len(found) == count) if exact else (len(found) >= count):
            return found
        if now() >= deadline:
            return None
        peer.idle(min(0.05, max(0.0, deadline - now())))


def stat(stats, path, default=0):
    """stats["a"]["b"] for path "a.b", default when missing."""
    node = stats
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node
