#!/usr/bin/python3
"""Record a scenario with bustap --record, replay it with busreplay.

- against the same build and settings: every case matches, exit 0;
- against a system whose echo adds a field (actors/echo/tag = X adds
  "tag" to echoed maps): busreplay reports exactly the one map case, at
  path $.tag, and exits 1;
- a pair of identical error replies is a difference unless --allow-errors;
- --from-bseq and --service select cases; a truncated recording (a crash
  while recording) still replays the records before the cut.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402
import test_bustap_util as tu  # noqa: E402

SCENARIO = [
    ("echo", "echo", [1, 2, 3]),
    ("echo", "echo", {"name": "alpha", "n": 42, "nested": {"list": [1.5, None, True]}}),
    ("echo", "echo", "just a string"),
    ("echo", "echo", None),
    ("echo", "stream", {"n": 3, "size": 4}),
    ("echo", "sleep", {"ms": 20}),
]
MAP_CASE = 2                                # the only map echoed by echo.echo


def record(t, broker, peer, path, scenario):
    """Record scenario (list of svc, op, body) to path; returns the REQ
    bseqs recorded for it."""
    rec = tu.bustap(t, broker, "--record", path)
    tu.wait_tapping(t, peer, [rec])
    start = len(rec.lines)
    for svc, op, body in scenario:
        rep = peer.call(svc, op, body, parts=[])
        t.check(rep is not None, "%s.%s answered while recording" % (svc, op))
    tu.marker(t, peer, rec)
    code = tu.stop(rec)
    t.check(code == 0, "bustap --record exits 0 on SIGINT", code)
    return [o["bseq"] for o in tu.json_lines(rec, start)
            if o.get("kind") == "REQ" and o.get("svc") != "broker"]


def main(t):
    broker, peer = tu.system(t)
    path = os.path.join(t.tmp, "scenario.lhrec")
    bseqs = record(t, broker, peer, path, SCENARIO)
    t.check(len(bseqs) == len(SCENARIO), "every scenario REQ recorded", bseqs)

    #  1. Same build, same settings: all match
    code, cases, out, err = tu.busreplay(t, broker.endpoint, path)
    t.note(err.strip())
    t.check(code == 0, "replay against the same build exits 0", out + err)
    t.check(len(cases) == len(SCENARIO) and all(c["verdict"] == "match" for c in cases),
            "every case matches", out)
    t.check([c["op"] for c in cases] == [op for _, op, _ in SCENARIO], "cases in recorded order")

    #  2. A system whose echo tags maps: exactly the map case differs, at $.tag
    tagged, tpeer = tu.system(t, node_sets={"actors/echo/tag": "X"}, tap=False)
    code, cases, out, err = tu.busreplay(t, tagged.endpoint, path)
    t.note(out.strip())
    differ = [c for c in cases if c["verdict"] != "match"]
    t.check(code == 1, "replay against the tagged echo exits 1", code)
    t.check(len(differ) == 1 and differ[0]["case"] == MAP_CASE, "exactly the map case differs", differ)
    t.check(differ[0]["path"] == "$.tag" and differ[0]["status_match"] and not differ[0]["body_match"],
            "reported at path $.tag, status still matching", differ[0])
    t.check('"X"' in differ[0]["detail"], "detail shows the new value", differ[0]["detail"])
    #  the table form says the same
    import subprocess
    table = subprocess.run([os.path.join(t.build, "busreplay"), "--config", tu.tool_config(t),
                            "--broker", tagged.endpoint, path],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    text = table.stdout.decode()
    t.check(table.returncode == 1 and "$.tag" in text and "1 differ" in text,
            "the table reports the case and path", text)
    #  --ignore makes it match again
    code, cases, out, err = tu.busreplay(t, tagged.endpoint, path, "--ignore", "$.tag")
    t.check(code == 0, "--ignore $.tag: all match", out)

    #  3. Identical errors prove nothing unless --allow-errors
    epath = os.path.join(t.tmp, "errors.lhrec")
    record(t, broker, peer, epath, [("echo", "fail", {"status": 409, "reason": "r", "kind": "conflict"}),
                                    ("echo", "echo", {"ok": True})])
    code, cases, out, err = tu.busreplay(t, broker.endpoint, epath)
    t.check(code == 1 and cases[0]["verdict"] == "differ" and "allow-errors" in cases[0]["detail"],
            "a pair of identical 409s is a difference by default", out)
    code, cases, out, err = tu.busreplay(t, broker.endpoint, epath, "--allow-errors")
    t.check(code == 0 and all(c["verdict"] == "match" for c in cases), "--allow-errors: they match", out)

    #  4. Filters
    code, cases, out, err = tu.busreplay(t, broker.endpoint, path, "--from-bseq", str(bseqs[3]))
    t.check(code == 0 and len(cases) == len(SCENARIO) - 3, "--from-bseq skips the earlier cases", out)
    code, cases, out, err = tu.busreplay(t, broker.endpoint, path, "--service", "nosuch")
    t.check(code == 0 and cases == [], "--service selects nothing else", out)

    #  5. A recording cut in the middle of its last record (a crash)
    with open(path, "rb") as f:
        data = f.read()
    cut = os.path.join(t.tmp, "cut.lhrec")
    with open(cut, "wb") as f:
        f.write(data[:-5])
    code, cases, out, err = tu.busreplay(t, broker.endpoint, cut)
    t.check("truncated" in err and code == 0, "a truncated recording replays what it has", err)

    #  6. Not a recording
    junk = os.path.join(t.tmp, "junk.lhrec")
    with open(junk, "wb") as f:
        f.write(b"\x81\xa1a\x01")
    code, cases, out, err = tu.busreplay(t, broker.endpoint, junk)
    t.check(code == 2 and "not a recording" in err, "a file that is not a recording: exit 2", err)


if __name__ == "__main__":
    lhtest.run(main)
