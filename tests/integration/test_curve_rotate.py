#!/usr/bin/python3
"""Key rotation under continuous load, with zero failed requests:

1. client key: a new certificate is added (a new file), the client
   reconnects with it, the old certificate is removed; the old key is then
   refused;
2. server key: `lakehouse certs new broker2 --role broker`, the broker
   binds a second endpoint with it (broker.bind, role admin, no restart),
   a node on the new endpoint with the new server key takes over from the
   old node, the client moves, the old endpoint is unbound (broker.unbind)
   and no longer reachable.

A thread sends echo requests one after the other the whole time (each
with an idempotency key, so a request in flight on a node that stops is
redelivered); every one must be answered 200.
"""

import os
import threading

import lhtest
import test_curve_util as cu
lhb = lhtest.lhb


class Load(threading.Thread):
    """Sends echo.echo back to back over CURVE; switch() moves it to a new
    endpoint / certificate / server key (a new connection, then the old
    one closes)."""

    def __init__(self, t, endpoint, cert, server):
        super().__init__(daemon=True)
        self.t = t
        self.target = (endpoint, cert, server)
        self.current = None
        self.sent = 0
        self.failed = []
        self.stop = False
        self.error = None
        self.lock = threading.Lock()

    def switch(self, endpoint, cert, server):
        with self.lock:
            self.target = (endpoint, cert, server)
        deadline = lhb.now() + 10
        while self.current != self.target and lhb.now() < deadline and self.is_alive():
            threading.Event().wait(0.02)
        return self.current == self.target

    def run(self):
        peer = None
        try:
            while not self.stop:
                with self.lock:
                    target = self.target
                if target != self.current:
                    endpoint, cert, server = target
                    fresh = cu.curve_peer(self.t, endpoint, cert, server)
                    if peer is not None:
                        peer.close()
                    peer = fresh
                    self.current = target
                self.sent += 1
                n = self.sent
                rep = peer.call("echo", "echo", {"n": n}, timeout=6, idem="load-%d" % n)
                if rep is None or rep.st != 200 or rep.obj.get("n") != n:
                    self.failed.append((n, rep and rep.st, rep and rep.obj))
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = repr(e)


def main(t):
    sec = cu.Secure(t)
    admin = sec.peer(sec.admin)
    t.keep.append(admin)
    node1 = t.node(sec.endpoint, actors="echo", workers=2, sets=sec.node_sets())
    t.wait_workers(admin, "echo", 2)
    first = sec.cert("pyload1", "client")
    load = Load(t, sec.endpoint, first, sec.server)
    load.start()

    def progress(what, more=50):
        target = load.sent + more
        deadline = lhb.now() + 15
        while load.sent < target and lhb.now() < deadline and load.is_alive():
            t.tick()
            admin.idle(0.05)
        t.check(load.sent >= target and not load.failed and not load.error,
                "%s: %d requests so far, none failed" % (what, load.sent),
                (load.failed[:3], load.error))

    progress("load runs with the first client key")

    #  1. client key rotation
    second = sec.cert("pyload2", "client")
    t.check(load.switch(sec.endpoint, second, sec.server),
            "the client reconnected with its new certificate")
    os.unlink(os.path.join(sec.allow, "pyload1.cert"))
    progress("old client certificate removed")
    try:
        sec.peer(first, timeout=1.0)
        t.check(False, "the old client key is refused after its removal")
    except lhb.ProtocolError:
        t.check(True, "the old client key is refused after its removal")

    #  2. server key rotation: second endpoint with a new key, move, unbind
    new_server = cu.certs_new(t, "broker2", "broker", sec.certs)
    rep = admin.call("broker", "bind", {"endpoint": "tcp://127.0.0.1:*",
                                         "cert": new_server})
    t.check(rep is not None and rep.st == 200, "broker.bind with the new server key",
            rep and rep.obj)
    new_endpoint = rep.obj["endpoint"]
    t.note("second endpoint %s" % new_endpoint)
    sets = sec.node_sets()
    sets["bus/server_key"] = new_server
    node2 = t.node(new_endpoint, actors="echo", workers=2, sets=sets)
    t.wait_workers(admin, "echo", 4)
    progress("a node joined on the new endpoint")
    node1.term()
    t.wait_workers(admin, "echo", 2, exact=True)
    progress("the old node left")
    t.check(load.switch(new_endpoint, second, new_server),
            "the client moved to the new endpoint and key")
    admin2 = cu.curve_peer(t, new_endpoint, sec.admin, new_server)
    t.keep.append(admin2)
    t.keep.remove(admin)
    rep = admin2.call("broker", "unbind", {"endpoint": sec.endpoint})
    t.check(rep is not None and rep.st == 200, "broker.unbind of the old endpoint",
            rep and rep.obj)
    progress("old endpoint unbound")
    try:
        cu.curve_peer(t, sec.endpoint, second, sec.server, timeout=1.0)
        t.check(False, "the old endpoint no longer answers")
    except lhb.ProtocolError:
        t.check(True, "the old endpoint no longer answers")
    try:
        cu.curve_peer(t, new_endpoint, second, sec.server, timeout=1.0)
        t.check(False, "the old server key does not work on the new endpoint")
    except lhb.ProtocolError:
        t.check(True, "the old server key does not work on the new endpoint")

    load.stop = True
    load.join(10)
    t.check(not load.failed and not load.error and load.sent > 200,
            "zero failed requests across both rotations (%d sent)" % load.sent,
            (load.failed[:3], load.error))
    node2.term()


if __name__ == "__main__":
    lhtest.run(main)
