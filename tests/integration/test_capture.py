#!/usr/bin/python3
"""A captured CURVE bus link shows no plaintext.

dumpcap (tshark's capture tool, installed by scripts/install-deps --test)
records the loopback traffic of a broker's port while a client sends an
echo request with a known body and gets it back. With CURVE (the default)
the capture must not contain the body's bytes anywhere; the same run
against a plain-tcp broker (bus/curve = false) must contain them, which
proves the capture itself works. Skips (77) without dumpcap or without
permission to capture.
"""

import os
import shutil
import signal
import socket
import subprocess
import time

import lhtest
import test_curve_util as cu
lhb = lhtest.lhb

MARKER = "lakehouse-capture-marker-7f3a9c"


def probe(path, port, timeout=10.0):
    """Open and close a tcp connection to port until the capture file grows."""
    size = os.path.getsize(path) if os.path.exists(path) else 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            pass
        until = time.monotonic() + 0.5
        while time.monotonic() < until:
            if os.path.exists(path) and os.path.getsize(path) > size:
                return
            time.sleep(0.02)    # polling the file, not synchronising
    raise lhtest.Failure("the capture file does not grow: dumpcap records nothing")


def capture(t, port, name, traffic):
    """Run traffic() while dumpcap records tcp port `port` on lo; returns
    the capture file's bytes."""
    path = os.path.join(t.tmp, name + ".pcapng")
    proc = subprocess.Popen(["dumpcap", "-q", "-i", "lo", "-f", "tcp port %d" % port,
                             "-w", path], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        #  dumpcap says "Capturing on 'Loopback: lo'" once it records
        line = b""
        deadline = time.monotonic() + 10
        while b"Capturing on" not in line and time.monotonic() < deadline:
            if proc.poll() is not None:
                raise lhtest.Skip("dumpcap cannot capture here: %s"
                                  % proc.stderr.read().decode(errors="replace").strip())
            line = proc.stderr.readline()
        if b"Capturing on" not in line:
            raise lhtest.Skip("dumpcap did not start capturing within 10 s")
        #  Readiness by observation: a probe connection's packets reach the
        #  file, before the traffic (capture is live) and after it (what
        #  came before is written too)
        probe(path, port)
        traffic()
        probe(path, port)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
    with open(path, "rb") as f:
        return f.read()


def main(t):
    if not shutil.which("dumpcap"):
        raise lhtest.Skip("dumpcap (tshark) is not installed: scripts/install-deps --test")
    body = {"secret": MARKER, "n": 1}

    #  CURVE: the default
    sec = cu.Secure(t)
    node = t.node(sec.endpoint, actors="echo", workers=1, sets=sec.node_sets())
    admin = sec.peer(sec.admin)
    t.wait_workers(admin, "echo", 1)

    def curve_traffic():
        client = sec.peer(sec.cert("capture-client", "client"))
        rep = client.call("echo", "echo", body)
        t.check(rep is not None and rep.st == 200 and rep.obj.get("secret") == MARKER,
                "the request with the known body is answered over CURVE")
        client.close()
    data = capture(t, sec.broker.port, "curve", curve_traffic)
    t.check(len(data) > 2000, "the CURVE capture holds the link's packets (%d bytes)" % len(data))
    t.check(MARKER.encode() not in data, "no plaintext of the request body in the CURVE capture")
    node.term()

    #  Plain tcp (explicitly asked for, loopback): the capture does show it
    plain = t.broker()
    t.node(plain.endpoint, actors="echo", workers=1)
    watcher = t.client(plain.endpoint)
    t.wait_workers(watcher, "echo", 1)

    def plain_traffic():
        client = t.client(plain.endpoint)
        rep = client.call("echo", "echo", body)
        t.check(rep is not None and rep.st == 200, "the same request over plain tcp")
        client.close()
    data = capture(t, plain.port, "plain", plain_traffic)
    t.check(MARKER.encode() in data, "the plain capture does contain the body (capture works)")


if __name__ == "__main__":
    lhtest.run(main)
