#!/usr/bin/python3
"""The tap refuses a NULL-mechanism reader (SPEC 3), on its own.

A CURVE broker with a tap: a plain (NULL mechanism) SUB socket connected to
the tap receives nothing while traffic flows, and a SUB socket with the
tap certificate does receive it (the positive control, so the test cannot
pass because no traffic flowed). Both readers are raw python3-zmq sockets,
independent of bustap and of our C client. This test never skips: a
missing certificate or a tap that answers a NULL reader is a failure.
"""

import os
import sys

import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402
import test_curve_util as cu  # noqa: E402

QUIET_S = 2.0


def reader(tap, keys=None):
    """A SUB socket on the tap, subscribed to everything; CURVE client when
    keys = (public, secret, server)."""
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.linger = 0
    if keys:
        sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = keys
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(tap)
    return sock


def received(sock, ping, timeout):
    """Ping until sock receives a message or timeout passes; True if it did."""
    deadline = lhtest.now() + timeout
    while lhtest.now() < deadline:
        ping()
        if sock.poll(100):
            sock.recv_multipart()
            return True
    return False


def main(t):
    secure = cu.Secure(t, tap=True)
    tap = secure.broker.tap
    t.check(bool(tap), "the broker bound a tap", str(tap))
    admin = secure.peer(secure.admin)

    def ping():
        rep = admin.call("broker", "ping", timeout=5)
        if rep is None or rep.st != 200:
            raise lhtest.Failure("broker.ping over CURVE did not answer 200")

    tap_cert = os.path.join(secure.certs, "tap.cert")
    t.check(os.path.exists(tap_cert), "the broker created tap.cert", tap_cert)
    public, secret = cu.load_cert(tap_cert)
    server = cu.load_cert(secure.server)[0]
    plain = reader(tap)
    curve = reader(tap, (public, secret, server))
    try:
        t.check(received(curve, ping, 10.0),
                "a SUB with the tap certificate receives the tap's copies")
        t.check(not received(plain, ping, QUIET_S),
                "a NULL-mechanism SUB on the tap receives nothing")
    finally:
        plain.close()
        curve.close()


if __name__ == "__main__":
    lhtest.run(main)
