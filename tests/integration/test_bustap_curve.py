#!/usr/bin/python3
"""Without a tap certificate, bustap is refused (SPEC 2 "Tap", SPEC 3).

A broker with CURVE on (the default once bus/curve exists) creates its
local certificate set (broker, admin, tap, node, gateway) in DATA_DIR/certs.
Traffic flows (buscall broker ping with the admin certificate); then:
- bustap --cert tap.cert --server-key broker.cert sees the traffic;
- bustap with only the config (its data dir) finds CERTS/tap.cert and
  the broker's key itself and sees the traffic;
- bustap without CURVE (a config saying bus/curve = false) is refused at
  once: exit 1, a message saying the tap speaks CURVE;
- bustap with a certificate of another role (node.cert, role actor) is
  refused at once: exit 1, a message naming the certificate and role tap.

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

#  A refusal is said at once: well under the 5 s a silent wait used to take
FAST_S = 3.0


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
    from_config = reader()
    t.check(sees_traffic(t, with_tap, ping, 10.0),
            "bustap with the tap certificate sees the traffic")
    t.check(sees_traffic(t, from_config, ping, 10.0),
            "bustap with only the config finds CERTS/tap.cert and the broker's key")

    plain_cfg = os.path.join(t.tmp, "plain-tools.cfg")
    with open(plain_cfg, "w") as f:
        f.write(lhtest.zpl({"log/level": "warn", "data/dir": data, "bus/curve": False,
                            "bus/plain": True}))

    def refused(argv, config=cfg):
        start = lhtest.now()
        done = subprocess.run([os.path.join(t.build, "bustap"), "--config", config,
                               "--tap", broker.tap, "--count", "1"] + argv,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20,
                              cwd=t.tmp)
        return done.returncode, done.stdout.decode(), done.stderr.decode(), lhtest.now() - start

    code, out, err, took = refused([], plain_cfg)
    t.check(code == 1 and out == "" and "speaks CURVE" in err and took < FAST_S,
            "bustap without CURVE is refused at once (exit 1, says why)", (code, err, took))
    node_cert = os.path.join(certs, "node.cert")
    code, out, err, took = refused(["--cert", node_cert])
    t.check(code == 1 and out == "" and node_cert in err and "role tap" in err
            and took < FAST_S,
            "bustap with a certificate of role actor is refused at once, naming it",
            (code, err, took))

if __name__ == "__main__":
    lhtest.run(main)
