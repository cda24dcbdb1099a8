#!/usr/bin/python3
"""Record the replay fixtures of tests/replay/ with the real tools.

    LH_BUILD=build tests/replay/record.py [NAME ...]   (default: all)

For each scenario below: start a fresh broker (with a tap) and a node
running the scenario's actors, start `bustap --record NAME.lhrec`, drive
the scenario with the independent Python peer, stop bustap with SIGINT,
and write NAME.json beside the recording (what to start and which
busreplay options to use). tests/integration/test_replay_fixtures.py
replays every NAME.lhrec against a freshly started system.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import lhtest  # noqa: E402
import test_bustap_util as tu  # noqa: E402


def echo(call):
    call("echo", "echo", {"name": "alpha", "n": 42, "f": 1.5, "ok": True, "none": None})
    call("echo", "echo", [1, -2, 3000000000, "x", [], {}])
    call("echo", "echo", "a string")
    call("echo", "echo", b"\x00\x01binary\xff")
    call("echo", "echo", None)
    call("echo", "echo", {"nested": {"deep": {"list": [{"k": "v"}]}}})
    call("echo", "stream", {"n": 4, "size": 8})
    call("echo", "sleep", {"ms": 30})


def echo_errors(call):
    call("echo", "fail", {"status": 409, "reason": "already there", "kind": "conflict"})
    call("echo", "fail", {"status": 503, "reason": "busy"})
    call("echo", "nosuchop", {"a": 1})
    call("echo", "echo", {"after": "errors"})


def storaged(call):
    call("storaged", "put", {"key": "replay/a.txt", "data": b"hello replay\n"})
    call("storaged", "put", {"key": "replay/b.bin", "data": bytes(range(256))})
    call("storaged", "get", {"key": "replay/a.txt"})
    call("storaged", "get", {"key": "replay/b.bin", "offset": 10, "length": 20})
    call("storaged", "head", {"key": "replay/a.txt"})
    call("storaged", "list", {"prefix": "replay/"})
    call("storaged", "put", {"key": "replay/a.txt", "data": b"again\n", "if_none_match": "*"})
    call("storaged", "delete", {"key": "replay/b.bin"})
    call("storaged", "get", {"key": "replay/b.bin"})
    call("storaged", "list", {"prefix": "replay/"})


def catalogd(call):
    schema = [{"name": "id", "type": "INTEGER"}, {"name": "city", "type": "TEXT"}]
    call("catalogd", "register", {"name": "people", "schema_fingerprint": "fp1",
                                  "schema": schema, "objects": ["tables/people.db"], "row_count": 3})
    call("catalogd", "register", {"name": "people", "schema_fingerprint": "fp1",
                                  "schema": schema, "objects": ["tables/people.db"], "row_count": 4})
    call("catalogd", "register", {"name": "people", "schema_fingerprint": "fp2", "schema": schema})
    call("catalogd", "get", {"name": "people"})
    call("catalogd", "get", {"name": "nobody"})
    call("catalogd", "list", {})
    call("catalogd", "delete", {"name": "people"})
    call("catalogd", "list", {})


SCENARIOS = {
    "echo": (echo, "echo", [], "echo.echo of every msgpack shape, a PART stream, a sleep"),
    "echo_errors": (echo_errors, "echo", ["--allow-errors"],
                    "echo.fail 409/503 and an unknown op (404): errors that must stay the same"),
    "storaged": (storaged, "storaged", ["--allow-errors"],
                 "storaged put/get/range get/head/list/conditional put (412)/delete/get of a deleted key (404)"),
    "catalogd": (catalogd, "storaged,catalogd", ["--allow-errors"],
                 "catalogd register (201, 200, 409 schema_drift)/get/get missing (404)/list/delete"),
}


def record(name):
    scenario, actors, args, text = SCENARIOS[name]

    def body(t):
        broker, peer = tu.system(t, actors=actors, workers=1)
        path = os.path.join(HERE, name + ".lhrec")
        rec = tu.bustap(t, broker, "--record", path)
        tu.wait_tapping(t, peer, [rec])
        start = len(rec.lines)

        calls = []

        def call(svc, op, obj):
            calls.append((svc, op))
            #  a trace id, as every real client sends: calls an actor makes
            #  on its behalf carry it, and busreplay leaves them to it
            rep = peer.call(svc, op, obj, parts=[], tr=os.urandom(16).hex())
            t.check(rep is not None, "%s.%s answered %s" % (svc, op, rep and rep.st))

        scenario(call)
        tu.marker(t, peer, rec)
        t.check(tu.stop(rec) == 0, "bustap exits 0")
        reqs = [o for o in tu.json_lines(rec, start) if o.get("kind") == "REQ" and o.get("svc") != "broker"]
        t.check(len(reqs) >= len(calls), "every call recorded (%d REQs for %d calls)" % (len(reqs), len(calls)))
        with open(os.path.join(HERE, name + ".json"), "w") as f:
            json.dump({"description": text, "actors": actors, "workers": 1, "args": args,
                       "cases": len(calls)}, f, indent=2)
            f.write("\n")
        t.note("%s: %d cases (%d REQs) recorded to %s" % (name, len(calls), len(reqs), path))

    return body


if __name__ == "__main__":
    names = sys.argv[1:] or sorted(SCENARIOS)
    for name in names:
        pid = os.fork()
        if pid == 0:
            lhtest.run(record(name), name="record-" + name)
        _, status = os.waitpid(pid, 0)
        if os.WEXITSTATUS(status) != 0:
            sys.exit(1)
