#!/usr/bin/python3
"""Helpers shared by test_bustap*.py, test_busreplay*.py and
test_replay_fixtures.py: start a broker with a tap plus actor nodes, run
bustap / busreplay, wait until a tap reader is really subscribed.

Run as a test itself it checks bustap's basics: one JSON line per REQ and
REP with svc/op, id/cid, status, bytes and latency; --bodies; the --status
and --service filters; --pretty; SIGINT ends it cleanly with a summary.
"""

import json
import os
import re
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402
import lhb  # noqa: E402  (lhtest put tests/proto on the path)

_curve_key = None


def plain_sets(t):
    """Settings for plain loopback tcp. Once bus/curve exists (the
    security work) it defaults to true, so ask for plain explicitly."""
    global _curve_key
    if _curve_key is None:
        out = subprocess.run([t.lakehouse, "config"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, check=False).stdout
        _curve_key = re.search(rb"(?m)^\s*curve = ", out) is not None
    sets = {"bus/plain": True}
    if _curve_key:
        sets["bus/curve"] = False
    return sets


def tool_config(t):
    """A config file for the tools (so ./conf/lakehouse.cfg never leaks in):
    plain loopback tcp, as the brokers of these tests run (the tools follow
    the config's bus/curve; with CURVE they would present CERTS/tap.cert)."""
    path = os.path.join(t.tmp, "tools.cfg")
    if not os.path.exists(path):
        values = {"log/level": "warn"}
        values.update(plain_sets(t))
        with open(path, "w") as f:
            f.write(lhtest.zpl(values))
    return path


def system(t, actors="echo", workers=2, sets=None, node_sets=None, tap=True):
    """A broker (with a tap) and a node running actors; returns (broker,
    client peer) once the workers are registered."""
    merged = plain_sets(t)
    merged.update(sets or {})
    broker = t.broker(tap=tap, sets=merged)
    nsets = plain_sets(t)
    nsets.update(sets or {})
    nsets.update(node_sets or {})
    for key in ("bus/tap", "bus/endpoint", "bus/inproc"):
        nsets.pop(key, None)
    broker.node = t.node(broker.endpoint, actors=actors, workers=workers, sets=nsets)
    peer = t.client(broker.endpoint)
    for actor in actors.split(","):
        t.wait_workers(peer, actor, workers)
    return broker, peer


def bustap(t, broker, *args, name="bustap"):
    """Start bustap on the broker's tap; returns the lhtest.Proc."""
    t.counter += 1
    argv = [os.path.join(t.build, "bustap"), "--config", tool_config(t),
            "--tap", broker.tap] + list(args)
    proc = lhtest.Proc(argv, "%s%d" % (name, t.counter), t.tmp, cwd=t.tmp)
    t.procs.append(proc)
    return proc


def json_lines(proc, start=0):
    """The JSON lines a process printed so far (others skipped)."""
    out = []
    with proc.cond:
        lines = list(proc.lines[start:])
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def wait_tapping(t, peer, procs, timeout=10.0):
    """Call broker.ping until every tap reader in procs showed a ping
    (subscriptions reach an XPUB asynchronously). Returns the bseq of the
    last ping REP each saw (list)."""
    deadline = lhtest.now() + timeout
    pattern = re.compile(r'"op":"ping"|broker\.ping')
    seen = [False] * len(procs)
    while not all(seen):
        peer.call("broker", "ping")
        for index, proc in enumerate(procs):
            if not seen[index]:
                try:
                    proc.wait_line(pattern, 0.1)
                    seen[index] = True
                except lhtest.Failure:
                    if lhtest.now() > deadline:
                        raise
    return True


def wait_json(proc, predicate, timeout=10.0, start=0, what="a line"):
    """Wait until a JSON line satisfies predicate; returns it."""
    deadline = lhtest.now() + timeout
    while True:
        for obj in json_lines(proc, start):
            if predicate(obj):
                return obj
        if lhtest.now() > deadline:
            raise lhtest.Failure("%s: no JSON line with %s within %.1f s\n%s"
                                 % (proc.name, what, timeout, proc.tail()))
        with proc.cond:
            proc.cond.wait(0.1)


def marker(t, peer, proc, timeout=10.0):
    """Send a broker.ping and wait until proc shows its REP: everything sent
    before it has reached the tap reader."""
    rep_count = len([o for o in json_lines(proc) if o.get("op") == "ping" and o.get("kind") == "REP"])
    peer.call("broker", "ping")
    deadline = lhtest.now() + timeout
    while True:
        count = len([o for o in json_lines(proc) if o.get("op") == "ping" and o.get("kind") == "REP"])
        if count > rep_count:
            return
        if lhtest.now() > deadline:
            raise lhtest.Failure("%s never showed the marker ping\n%s" % (proc.name, proc.tail()))
        peer.idle(0.05)


def marker_echo(peer, proc, timeout=10.0):
    """Like marker, for a reader filtered to echo: an echo of {"i": -2}."""
    start = len(proc.lines)
    peer.call("echo", "echo", {"i": -2})
    wait_json(proc, lambda o: o.get("kind") == "REP" and o.get("body") == {"i": -2},
              timeout=timeout, start=start, what="the marker echo")


def stop(proc, timeout=5.0):
    """SIGINT a tool and wait for it; returns its exit code."""
    if proc.alive():
        proc.popen.send_signal(signal.SIGINT)
    try:
        return proc.popen.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill9()
        return None


def busreplay(t, endpoint, path, *args, timeout=60):
    """Run busreplay --json; returns (exit code, case dicts, stdout, stderr)."""
    argv = [os.path.join(t.build, "busreplay"), "--config", tool_config(t),
            "--broker", endpoint, "--json", path] + list(args)
    done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, cwd=t.tmp)
    out = done.stdout.decode("utf-8", "replace")
    err = done.stderr.decode("utf-8", "replace")
    cases = []
    for line in out.splitlines():
        try:
            cases.append(json.loads(line))
        except ValueError:
            pass
    return done.returncode, cases, out, err


def main(t):
    broker, peer = system(t)
    plain = bustap(t, broker, "--bodies")
    errors = bustap(t, broker, "--status", "4xx")
    only_echo = bustap(t, broker, "--service", "echo", "--op", "echo")
    pretty = bustap(t, broker, "--pretty")
    wait_tapping(t, peer, [plain, pretty])
    #  the filtered ones show no ping: make sure they are subscribed too,
    #  with traffic they do show
    deadline = lhtest.now() + 10
    while not json_lines(only_echo) or not json_lines(errors):
        peer.call("echo", "echo", {"warm": 1})
        peer.call("echo", "nosuchop")
        peer.idle(0.05)
        t.check(lhtest.now() < deadline, "filtered readers are subscribed")
    start = [len(p.lines) for p in (plain, errors, only_echo)]

    rep = peer.call("echo", "echo", {"x": 1, "s": "hello"}, tr="ab" * 16)
    t.check(rep is not None and rep.st == 200, "echo answers")
    rep = peer.call("echo", "fail", {"status": 409, "reason": "exists", "kind": "conflict"})
    t.check(rep is not None and rep.st == 409, "echo.fail answers 409")
    marker(t, peer, plain)
    pretty.wait_line(re.compile(r"echo\.fail"), 10)

    req = wait_json(plain, lambda o: o.get("kind") == "REQ" and o.get("tr") == "ab" * 16,
                    start=start[0], what="the REQ")
    rep = wait_json(plain, lambda o: o.get("kind") == "REP" and o.get("tr") == "ab" * 16,
                    start=start[0], what="the REP")
    t.note("REQ %s" % req)
    t.note("REP %s" % rep)
    t.check(req["svc"] == "echo" and req["op"] == "echo", "REQ line names svc and op")
    t.check(isinstance(req.get("id"), int) and req.get("src", "").startswith("py"),
            "REQ line has the client's id and src", req)
    t.check(req.get("body") == {"x": 1, "s": "hello"}, "--bodies decodes the body", req)
    t.check(req.get("bytes", 0) > 0 and "time" in req and req.get("bseq", 0) > 0,
            "REQ line has bytes, time, bseq", req)
    t.check(rep.get("cid") == req["id"] and rep.get("st") == 200, "REP line has cid and st", rep)
    t.check(rep["svc"] == "echo" and rep["op"] == "echo", "REP line names its request's svc.op")
    t.check(isinstance(rep.get("latency_us"), int) and rep["latency_us"] >= 0,
            "REP line has latency_us", rep)
    t.check(rep["bseq"] > req["bseq"], "bseq grows")

    err_lines = json_lines(errors, start[1])
    t.check(err_lines and all(400 <= o.get("st", 0) < 500 for o in err_lines),
            "--status 4xx shows only 4xx replies", err_lines)
    t.check(any(o.get("st") == 409 and o.get("op") == "fail" for o in err_lines),
            "--status 4xx shows the 409", err_lines)
    marker_seen = [o for o in json_lines(only_echo, start[2])]
    t.check(all(o.get("svc") == "echo" and o.get("op") == "echo" for o in marker_seen),
            "--service echo --op echo shows nothing else", marker_seen)
    t.check(any(o.get("tr") == "ab" * 16 for o in marker_seen),
            "--service echo shows the echo", marker_seen)
    with pretty.cond:
        text = "\n".join(pretty.lines)
    t.check(re.search(r"time\s+bseq\s+kind", text) and "echo.echo" in text,
            "--pretty prints a table", text[-400:])

    for proc in (plain, errors, only_echo, pretty):
        code = stop(proc)
        t.check(code == 0, "%s exits 0 on SIGINT" % proc.name, code)
    with open(plain.log_path) as f:
        err = f.read()
    t.check(re.search(r"\d+ received, \d+ shown, 0 gap", err), "summary on stderr", err)


if __name__ == "__main__":
    lhtest.run(main)
