#!/usr/bin/python3
"""Helpers shared by test_curve*.py, test_capture*.py and test_multihost*.py:
a CURVE broker with its own certificate directory, certificates made with
`lakehouse certs new`, and independent Python LHB/1 peers (python3-zmq)
that speak CURVE.

Run as a test itself it checks the out-of-the-box path: `lakehouse up`
with the defaults creates ./var/certs (broker, admin, tap, node, gateway),
binds its tcp endpoint with CURVE, and `buscall` in the same directory
reaches it with no setup at all; a Python peer with the admin certificate
gets WELCOME, and one without CURVE does not.
"""

import os
import re
import subprocess
import sys

import zmq
import zmq.auth

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402
import lhb  # noqa: E402  (lhtest put tests/proto on the path)


def load_cert(path):
    """(public, secret) keys (Z85 bytes) of a zcert file; secret is None
    without the _secret file."""
    base = path[:-7] if path.endswith("_secret") else path
    if os.path.exists(base + "_secret"):
        return zmq.auth.load_certificate(base + "_secret")
    return zmq.auth.load_certificate(base)


class CurveContext:
    """Stands in for a zmq.Context in lhb.Peer: every socket it makes is a
    CURVE client with the given keys (set before connect)."""

    def __init__(self, public, secret, server, ctx=None):
        self.ctx = ctx or zmq.Context.instance()
        self.public, self.secret, self.server = public, secret, server

    def socket(self, kind):
        sock = self.ctx.socket(kind)
        sock.curve_publickey = self.public
        sock.curve_secretkey = self.secret
        sock.curve_serverkey = self.server
        return sock


def curve_peer(t, endpoint, cert, server_cert, name=None, keys=None, **kw):
    """An lhb.Peer over CURVE. cert is a certificate file (its name is the
    HELLO name unless name is given), or keys=(public, secret) for a key
    pair that no file holds. server_cert is the broker's public cert file
    or its key."""
    if keys is None:
        public, secret = load_cert(cert)
        if name is None:
            name = cert_meta(cert)["name"]
    else:
        public, secret = keys
    server = server_cert if isinstance(server_cert, bytes) else load_cert(server_cert)[0]
    peer = lhb.Peer(endpoint, name=name or "py", ctx=CurveContext(public, secret, server), **kw)
    t.peers.append(peer)
    return peer


def cert_meta(path):
    """Metadata of a zcert file as a dict (name, role, keyid, expires)."""
    meta = {}
    section = None
    with open(path[:-7] if path.endswith("_secret") else path) as f:
        for line in f:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if not line.startswith(" "):
                section = line.strip()
                continue
            m = re.match(r'\s+(\S+)\s*=\s*"(.*)"', line)
            if m and section == "metadata":
                meta[m.group(1)] = m.group(2)
    return meta


def certs_new(t, name, role, out, allow=None, days=None):
    """`lakehouse certs new NAME --role ROLE --out OUT [--allow DIR]`;
    returns the path of NAME.cert."""
    args = [t.lakehouse, "certs", "new", name, "--role", role, "--out", out]
    if allow:
        args += ["--allow", allow]
    if days is not None:
        args += ["--days", str(days)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=10)
    t.check(done.returncode == 0, "lakehouse certs new %s --role %s" % (name, role),
            done.stderr.strip())
    return os.path.join(out, name + ".cert")


class Secure:
    """A CURVE broker (`lakehouse broker`) with its certificate directory."""

    def __init__(self, t, sets=None, tap=False, endpoint="tcp://127.0.0.1:*"):
        self.t = t
        self.certs = os.path.join(t.tmp, "certs")
        self.allow = os.path.join(self.certs, "allow")
        merged = {
            "bus/curve": True,
            "bus/plain": False,
            "bus/certs": self.certs,
            "bus/endpoint": endpoint,
        }
        merged.update(sets or {})
        self.broker = t.broker(tap=tap, sets=merged)
        self.endpoint = self.broker.endpoint
        self.server = os.path.join(self.certs, "broker.cert")
        self.admin = os.path.join(self.certs, "admin.cert")
        t.check(os.path.exists(self.admin) and os.path.exists(self.server),
                "the broker created its local certificate set in %s" % self.certs)
        mode = os.stat(self.admin + "_secret").st_mode & 0o777
        t.check(mode == 0o600, "secret files are mode 0600", oct(mode))

    def cert(self, name, role):
        """A new certificate in CERTS, allowed."""
        return certs_new(self.t, name, role, self.certs, allow=self.allow)

    def peer(self, cert, endpoint=None, **kw):
        return curve_peer(self.t, endpoint or self.endpoint, cert, self.server, **kw)

    def node_sets(self, cert=None):
        sets = {"bus/curve": True, "bus/plain": False, "bus/certs": self.certs}
        if cert:
            sets["bus/cert"] = cert
        return sets


def main(t):
    #  `lakehouse up` out of the box: certificates, CURVE, buscall
    up = t.spawn("up", {
        "bus/endpoint": "tcp://127.0.0.1:*",
        "bus/tap": "tcp://127.0.0.1:*",
        "bus/inproc": "inproc://lh-bus-curve-up",
        "gateway/listen": "",
        "actors/run": "echo",
        "actors/echo/workers": 1,
    })
    m = up.wait_line(lhtest.READY_BROKER, 20)
    up.wait_line(lhtest.READY_UP, 20)
    endpoint = m.group(1)
    certs = os.path.join(t.tmp, "var", "certs")
    for name in ("broker", "admin", "tap", "node", "gateway"):
        t.check(os.path.exists(os.path.join(certs, name + ".cert_secret")),
                "up created var/certs/%s" % name)
    t.check(not os.path.exists(os.path.join(certs, "allow", "broker.cert")),
            "the broker's own certificate is not in the allow directory")
    done = subprocess.run([os.path.join(t.build, "buscall"), "--broker", endpoint,
                           "echo", "echo", '{"hello":"curve"}'],
                          capture_output=True, text=True, timeout=15, cwd=t.tmp,
                          env={k: v for k, v in os.environ.items() if k != "LAKEHOUSE_CONFIG"})
    t.check(done.returncode == 0 and '"curve"' in done.stdout,
            "buscall in the same directory reaches the broker over CURVE with no setup",
            done.stdout + done.stderr)
    admin = curve_peer(t, endpoint, os.path.join(certs, "admin.cert"),
                       os.path.join(certs, "broker.cert"))
    stats = lhtest.lhb.broker_call(admin, "stats")
    t.check(stats["curve"]["on"], "broker.stats says CURVE is on", stats.get("curve"))
    rep = admin.call("echo", "echo", {"x": 1})
    t.check(rep is not None and rep.st == 200 and len(rep.h.get("src", "")) > 0,
            "the admin peer's call is answered")
    try:
        lhb.Peer(endpoint, name="plain", timeout=1.0)
        t.check(False, "a peer without CURVE gets no WELCOME")
    except lhb.ProtocolError:
        t.check(True, "a peer without CURVE gets no WELCOME")
    refused = t.wait_stat(admin, "refused.handshake", lambda v: v >= 1)
    t.check(refused >= 1, "the failed handshake is counted (refused.handshake)", refused)


if __name__ == "__main__":
    lhtest.run(main)
