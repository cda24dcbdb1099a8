#!/usr/bin/python3
"""Without a tap certificate, bustap is refused (SPEC 2 "Tap", SPEC 3).

A broker with CURVE on (the default once bus/curve exists) creates its
local certificate set (broker, admin, tap, node, gateway) in DATA_DIR/certs.
Traffic flows (buscall broker ping with the admin certificate); then:
- bustap with no certificate (NULL mechanism) sees nothing;
- bustap --cert tap.cert --server-key broker.cert sees the traffic;
- bustap with a certificate of another role (node.cert, role actor) sees
  nothing.

Each of those is a check that fails, never a skip: the tap refusing a
NULL-mechanism reader is shown on its own, with raw sockets, by
test_tap_null.py.
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402
import test_bustap_util as tu  # noqa: E402

QUIET_S = 2.0


def sees_traffic(t, reader, ping, timeout):
    """Ping until reader prints a line or timeout passes; True if it did."""
    deadline = lhtest.now() + timeout
    while lhtest.now() < deadline:
        ping()
        if tu.json_lines(reader):
            return True
        with reader.cond:
            reader.cond.wait(0.1)
    return False


def main(t):
    data = os.path.join(t.tmp, "var")
    broker = t.broker(tap=True, sets={"bus/curve": True, "bus/plain": False, "data/dir": data})
    certs = os.path.join(data, "certs")
    for name in ("tap.cert", "broker.cert", "admin.cert", "node.cert"):
        t.check(os.path.exists(os.path.join(certs, name)),
                "the broker created %s in %s" % (name, certs))
    cfg = os.path.join(t.tmp, "curve-tools.cfg")
    with open(cfg, "w") as f:
        f.write(lhtest.zpl({"log/level": "warn", "data/dir": data, "bus/curve": True,
                            "bus/plain": False, "bus/endpoint": broker.endpoint}))

    def ping():
        done = subprocess.run([os.path.join(t.build, "buscall"), "--config", cfg, "broker", "ping"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        if done.returncode != 0:
            raise lhtest.Failure("buscall broker ping over CURVE failed: %s" % done.stderr.decode())

    def reader(*args):
        t.counter += 1
        argv = [os.path.join(t.build, "bustap"), "--config", cfg, "--tap", broker.tap] + list(args)
        proc = lhtest.Proc(argv, "bustap%d" % t.counter, t.tmp, cwd=t.tmp)
        t.procs.append(proc)
        return proc

    with_tap = reader("--cert", os.path.join(certs, "tap.cert"),
                      "--server-key", os.path.join(certs, "broker.cert"))
    plain = reader()
    actor = reader("--cert", os.path.join(certs, "node.cert"),
                   "--server-key", os.path.join(certs, "broker.cert"))
    t.check(sees_traffic(t, with_tap, ping, 10.0),
            "bustap with the tap certificate sees the traffic")
    t.check(not tu.json_lines(plain) and not sees_traffic(t, plain, ping, QUIET_S),
            "bustap without a certificate is refused")
    t.check(not sees_traffic(t, actor, ping, QUIET_S),
            "bustap with a certificate of role actor is refused")


if __name__ == "__main__":
    lhtest.run(main)
