#!/usr/bin/python3
"""test_buscall_exit - buscall's exit codes (docs/tools.md: 0 for 2xx, 1 for
4xx, 2 for 5xx or no reply, 64 for a bad command line), each against a
real broker and echo node over plain tcp:

- 2xx: echo.echo -> 0, the body on stdout as JSON, stderr empty;
- 4xx from a worker (echo.fail with status 400, 404, 409, 413, 429, 499)
  and from the broker (404 no_such_service) -> 1, nothing on stdout, the
  status and the reason on stderr ("buscall: SVC.OP: ST TEXT: reason");
- 5xx from a worker (echo.fail 500, 502, 503, 504, 599) and from the
  broker (504 deadline: echo.sleep past --timeout) -> 2, likewise;
- no broker listening -> 2; a body that is not JSON -> 64.
"""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest    # noqa: E402


def main(t):
    b = t.broker()
    t.node(b.endpoint, workers=1)
    peer = t.client(b.endpoint)
    t.wait_workers(peer, "echo", 1)
    cfg = os.path.join(t.tmp, "buscall.cfg")
    with open(cfg, "w") as f:
        f.write(lhtest.zpl({"log/level": "warn", "bus/curve": "false", "bus/plain": "true"}))

    def buscall(*args, broker=None):
        done = subprocess.run([os.path.join(t.build, "buscall"), "--config", cfg,
                               "--broker", broker or b.endpoint] + list(args),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
                              cwd=t.tmp)
        return done.returncode, done.stdout.decode(), done.stderr.decode()

    code, out, err = buscall("echo", "echo", '{"n": 1, "s": "x"}')
    t.check(code == 0 and json.loads(out) == {"n": 1, "s": "x"} and err == "",
            "2xx: exit 0, the body on stdout", (code, out, err))

    for status, want in ((400, 1), (404, 1), (409, 1), (413, 1), (429, 1), (499, 1),
                         (500, 2), (502, 2), (503, 2), (504, 2), (599, 2)):
        reason = "made to fail with %d" % status
        code, out, err = buscall("echo", "fail", json.dumps({"status": status, "reason": reason}))
        t.check(code == want and out == ""
                and err.startswith("buscall: echo.fail: %d " % status) and reason in err,
                "%d from the worker: exit %d, the status and reason on stderr" % (status, want),
                (code, out, err))

    code, out, err = buscall("nosuch", "op", "{}")
    t.check(code == 1 and out == "" and "404" in err and "nosuch" in err,
            "404 no_such_service from the broker: exit 1", (code, out, err))
    code, out, err = buscall("--timeout", "300", "echo", "sleep", '{"ms": 3000}')
    t.check(code == 2 and out == "" and "504" in err,
            "504 deadline from the broker (echo.sleep past --timeout): exit 2", (code, out, err))

    nobody = "tcp://127.0.0.1:%d" % lhtest.free_port()
    code, out, err = buscall("echo", "echo", "{}", broker=nobody)
    t.check(code == 2 and out == "" and err != "",
            "no broker listening: exit 2 with a message", (code, out, err))
    code, out, err = buscall("echo", "echo", "{not json")
    t.check(code == 64 and out == "" and "JSON" in err,
            "a body that is not JSON: exit 64", (code, out, err))

    #  The broker and the worker are still fine after all of that
    rep = peer.call("echo", "echo", {"after": True}, timeout=3)
    t.check(rep is not None and rep.st == 200 and rep.obj == {"after": True},
            "echo still answers")


if __name__ == "__main__":
    lhtest.run(main)
