#!/usr/bin/python3
"""`lakehouse up --tap --record FILE` reads its own broker's tap in-process
(inproc, no certificate) and records it; busreplay replays the recording.

- `up --tap --bodies --record FILE` starts (no tcp tap: bus/tap is empty)
  and prints bustap's JSON lines on stdout;
- echo requests from buscall, and two concurrent echo.sleep from two
  peers that use the same request id and no trace id, answered in the
  other order: the tap's REP copies name their request's bseq (rseq), so
  both stdout and the recording pair each reply with its own request;
- SIGTERM stops it cleanly (exit 0) with the recording complete: the
  header record says tool lakehouse and the inproc tap, every REQ has
  its REP;
- busreplay of the file against a fresh `lakehouse up` matches every
  case (a reply paired with the wrong sleep would differ);
- the tap options are refused where they mean nothing;
- with stdout a pipe that nobody reads (full after a few hundred lines),
  the system keeps serving and SIGTERM still stops it at once, exit 0,
  saying how much tap output was not written;
- with stdout a pipe whose reader goes away (`| head`), the system keeps
  serving (no SIGPIPE death), says once that the tap's output was closed,
  and SIGTERM stops it with exit 0.
"""

import json
import os
import re
import subprocess
import sys
import time

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402
import test_bustap_util as tu  # noqa: E402

ECHOES = [{"n": 1}, {"name": "alpha", "list": [1, 2.5, None, True]}, "a string"]


def up_tapping(t, path):
    """`lakehouse up --tap --bodies --record path` with echo x2 on an
    ephemeral port; returns (proc, endpoint) once it is up."""
    sets = tu.plain_sets(t)
    sets.update({
        "bus/endpoint": "tcp://127.0.0.1:*",
        "bus/tap": "",
        "bus/inproc": "inproc://lh-bus-rec%d" % (t.counter + 1),
        "broker/hb_ivl": t.hb_ivl,
        "broker/hb_live": t.hb_live,
        "actors/run": "echo",
        "actors/echo/workers": 2,
        "data/dir": os.path.join(t.tmp, "var-rec"),
        "gateway/listen": "",
    })
    proc = t.spawn("up", sets, extra=["--tap", "--bodies", "--record", path])
    m = proc.wait_line(lhtest.READY_BROKER, 20)
    proc.wait_line(lhtest.READY_UP, 20)
    t.note("up --record pid %d ready on %s" % (proc.pid, m.group(1)))
    return proc, m.group(1)


def buscall(t, endpoint, svc, op, body):
    """One request with buscall over plain tcp; returns (exit code, stdout)."""
    cfg = os.path.join(t.tmp, "buscall.cfg")
    if not os.path.exists(cfg):
        with open(cfg, "w") as f:
            f.write(lhtest.zpl({"log/level": "warn", "bus/curve": "false", "bus/plain": "true"}))
    done = subprocess.run([os.path.join(t.build, "buscall"), "--config", cfg,
                           "--broker", endpoint, svc, op, json.dumps(body)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    return done.returncode, done.stdout.decode()


def read_recording(path):
    """The header record and the tap records [rx_us, topic, header, body]
    with the header decoded."""
    with open(path, "rb") as f:
        unpacker = msgpack.Unpacker(f, raw=False)
        head = next(unpacker)
        records = []
        for item in unpacker:
            rx_us, topic, header, body = item[:4]
            records.append((topic, msgpack.unpackb(header, raw=False), body))
    return head, records


def main(t):
    path = os.path.join(t.tmp, "up.lhrec")
    proc, endpoint = up_tapping(t, path)

    #  1. buscall echoes
    for body in ECHOES:
        code, out = buscall(t, endpoint, "echo", "echo", body)
        t.check(code == 0 and json.loads(out) == body, "buscall echo.echo %r" % (body,), out)

    #  2. Two clients, the same id, no trace id, answered in the other order
    slow = t.client(endpoint, name="slow")
    fast = t.client(endpoint, name="fast")
    slow_id = slow.request("echo", "sleep", {"ms": 300})
    fast_id = fast.request("echo", "sleep", {"ms": 10})
    t.check(slow_id == fast_id, "both clients used the same request id", (slow_id, fast_id))
    rep_fast = fast.wait_reply(fast_id, 10)
    rep_slow = slow.wait_reply(slow_id, 10)
    t.check(rep_fast is not None and rep_fast.obj == {"slept_ms": 10}, "the fast sleep answers", rep_fast)
    t.check(rep_slow is not None and rep_slow.obj == {"slept_ms": 300}, "the slow sleep answers", rep_slow)

    #  stdout: each REP names its request's bseq and gets its own latency
    sleep_rep = tu.wait_json(proc, lambda o: o.get("kind") == "REP" and o.get("op") == "sleep"
                             and o.get("body") == {"slept_ms": 300}, what="the slow sleep's REP")
    lines = tu.json_lines(proc)
    reqs = {o["bseq"]: o for o in lines if o.get("kind") == "REQ" and o.get("svc") == "echo"}
    reps = [o for o in lines if o.get("kind") == "REP" and o.get("svc") == "echo"]
    t.check(len(reqs) == 5 and len(reps) == 5, "stdout shows the 5 echo REQs and REPs", lines)
    t.check(all(r.get("rseq") in reqs and reqs[r["rseq"]]["id"] == r["cid"] for r in reps),
            "every REP line's rseq is its REQ's bseq", reps)
    slow_req = reqs[sleep_rep["rseq"]]
    t.check(slow_req.get("body") == {"ms": 300} and sleep_rep["latency_us"] >= 250000,
            "the slow sleep's REP is paired with the slow REQ", (slow_req, sleep_rep))

    #  3. SIGTERM: clean stop, recording complete
    code = proc.term(timeout=20)
    t.check(code == 0, "lakehouse up --record exits 0 on SIGTERM", code)
    with open(proc.log_path) as f:
        err = f.read()
    t.check("recorded to %s" % path in err, "the log says what was recorded", err[-600:])
    head, records = read_recording(path)
    t.note("header %s" % head)
    t.check(head.get("format") == "lhrec" and head.get("tool") == "lakehouse"
            and head.get("tap", "").startswith("inproc://") and head["tap"].endswith("-tap"),
            "header record: tool lakehouse, the inproc tap", head)
    req_bseqs = {h["bseq"]: h for topic, h, body in records
                 if h["t"] == "REQ" and h.get("svc") == "echo"}
    replies = [h for topic, h, body in records if h["t"] == "REP" and topic.startswith("echo.")]
    t.check(len(req_bseqs) == 5 and len(replies) == 5, "5 echo REQ and 5 REP records",
            [(topic, h) for topic, h, body in records])
    t.check(all(h.get("rseq") in req_bseqs for h in replies), "every REP record carries rseq", replies)
    sleeps = [msgpack.unpackb(body, raw=False) for topic, h, body in records
              if h["t"] == "REP" and topic == "echo.sleep"]
    t.check(sleeps == [{"slept_ms": 10}, {"slept_ms": 300}],
            "the sleeps were answered in the other order (same topic and id)", sleeps)
    t.check(all("rseq" not in h for topic, h, body in records if h["t"] == "REQ"),
            "REQ records carry no rseq")

    #  4. busreplay against a fresh system: every case matches
    fresh = t.up(actors="echo", workers=2, sets=tu.plain_sets(t))
    code, cases, out, err = tu.busreplay(t, fresh.endpoint, path)
    t.note(err.strip())
    t.check(code == 0 and len(cases) == 5 and all(c["verdict"] == "match" for c in cases),
            "busreplay of the recording matches every case", out + err)
    t.check([c["op"] for c in cases] == ["echo"] * 3 + ["sleep"] * 2, "cases in recorded order", cases)

    #  5. Tap options where they mean nothing
    for argv, what in ((["node", "--record", path], "--record is for up and broker"),
                       (["up", "--service", "echo"], "a tap filter needs --tap or --record"),
                       (["up", "--tap", "--status", "6xx"], "a bad --status is refused")):
        done = subprocess.run([t.lakehouse, "--config", tu.tool_config(t)] + argv,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, cwd=t.tmp)
        t.check(done.returncode == 2, what, done.stderr.decode())


    #  6. Nobody reads stdout: the pipe fills, the tap reader waits for room,
    #  and SIGTERM still stops everything at once (it used to take the 30 s
    #  alarm: the reader was stuck in write and never saw $TERM)
    stalled_stdout(t)
    #  7. The reader of stdout goes away: EPIPE, not the end of the system
    stalled_stdout(t, close=True)


def stalled_stdout(t, close=False):
    sets = tu.plain_sets(t)
    sets.update({
        "bus/endpoint": "tcp://127.0.0.1:*",
        "bus/tap": "",
        "bus/inproc": "inproc://lh-bus-stall%d" % close,
        "actors/run": "echo",
        "actors/echo/workers": 1,
        "data/dir": os.path.join(t.tmp, "var-stall%d" % close),
        "gateway/listen": "",
    })
    args = [t.lakehouse, "up", "--tap", "--bodies"]
    for key, value in sets.items():
        value = ("true" if value else "false") if isinstance(value, bool) else value
        args += ["--set", "%s=%s" % (key, value)]
    read_end, write_end = os.pipe()
    err_path = os.path.join(t.tmp, "stall%d.err" % close)
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=write_end, stderr=err,
                                cwd=t.tmp, start_new_session=True)
    os.close(write_end)
    try:
        #  Read stdout only until the system is up, then never again
        seen = b""
        deadline = time.time() + 20
        while b"lakehouse: up (" not in seen and time.time() < deadline:
            chunk = os.read(read_end, 4096)
            if not chunk:
                break
            seen += chunk
        m = re.search(rb"broker ready on (tcp://\S+)", seen)
        t.check(m is not None and b"lakehouse: up (" in seen, "up --tap started", seen[-300:])
        if close:
            os.close(read_end)
            read_end = None
        client = t.client(m.group(1).decode(), name="stall%d" % close)
        body = {"pad": "x" * 400}
        answered = 0
        for _ in range(300):
            rid = client.request("echo", "echo", body)
            rep = client.wait_reply(rid, 10)
            answered += rep is not None and rep.obj == body
            if rep is None and proc.poll() is not None:
                break                   # it died (SIGPIPE, before the fix)
        what = "once stdout's reader is gone" if close else "while nobody reads the tap's output"
        t.check(answered == 300 and proc.poll() is None, "300 echoes answered " + what,
                (answered, proc.poll()))
        client.close()
        started = time.time()
        proc.send_signal(15)
        try:
            code = proc.wait(15)
        except subprocess.TimeoutExpired:
            code = None
        took = time.time() - started
        t.check(code == 0 and took < 10, "SIGTERM stops it at once, exit 0 (%s)" % what,
                (code, took))
        with open(err_path) as f:
            err_text = f.read()
        if close:
            t.check(err_text.count("the tap's output was closed") == 1,
                    "the log says once that the tap's output was closed", err_text[-600:])
        else:
            t.check("bytes of tap output were not written" in err_text,
                    "the log says tap output was dropped at the end", err_text[-600:])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if read_end is not None:
            os.close(read_end)


if __name__ == "__main__":
    lhtest.run(main)
