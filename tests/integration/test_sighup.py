#!/usr/bin/python3
"""test_sighup - SIGHUP reloads everything reloadable in the process that
receives it, found by its pid file (docs/operations.md, "Reloading").

With the token file check slowed to 10 minutes (gateway/token_check_ms =
600000), a token file rewritten from A to B changes nothing by itself;
`kill -HUP $(cat DATA_DIR/COMMAND.pid)` makes B work and A stop at once:
- `lakehouse up` (broker + gateway in one process): the gateway's tokens
  and the broker's allow set reload, both logged;
- a standalone `lakehouse gateway` (no broker in its process), which
  used to log "nothing to reload".
The pid file names the process and is gone after a clean stop.
"""

import os
import re
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest                    # noqa: E402
import test_gateway_util as gw   # noqa: E402
from test_gateway_auth import A, B, write_tokens, call, wait_status  # noqa: E402

SLOW = {"gateway/token_check_ms": 600000}
GATEWAY_READY = re.compile(r"lakehouse: gateway ready on (http://\S+)")


def rotate(t, h, proc, pid_file, what):
    """A is accepted; the file says B; nothing changes until SIGHUP sent
    to the pid the pid file names; then B works and A does not."""
    path = h.tokens
    t.check(call(h, A)[0] == 200 and call(h, B)[0] == 401,
            "%s: token A accepted, B refused" % what)
    write_tokens(path, [B])
    t.check(call(h, B)[0] == 401 and call(h, A)[0] == 200,
            "%s: the file now says B, but with a 10-minute check nothing changed" % what)
    with open(pid_file) as f:
        pid = int(f.read().strip())
    t.check(pid == proc.pid, "%s: %s names the process (%d)" % (what, pid_file, pid))
    os.kill(pid, signal.SIGHUP)
    t.check(wait_status(h, B, 200), "%s: after SIGHUP token B is accepted" % what)
    t.check(call(h, A)[0] == 401, "%s: after SIGHUP token A is refused" % what)
    t.check("SIGHUP: gateway tokens reloaded" in h.wait_log("SIGHUP: gateway tokens reloaded"),
            "%s: the reload is logged" % what)
    t.check(proc.alive() and proc.pid == pid, "%s: no restart" % what)


def main(t):
    path = os.path.join(t.tmp, "tokens")
    write_tokens(path, [A])
    sets = dict(SLOW)
    sets["gateway/token_file"] = path
    b, h = gw.up(t, "echo", sets=sets)
    h.tokens = path
    data = b.sets["data/dir"]
    rotate(t, h, b.proc, os.path.join(data, "up.pid"), "up")
    t.check("SIGHUP: broker allow set reloaded" in h.log(),
            "up: the broker's allow set reloads on the same SIGHUP")

    #  A gateway alone, against a broker in another process
    write_tokens(path, [A])
    broker = t.broker()
    gdata = os.path.join(t.tmp, "var-gateway")
    gsets = dict(sets)
    gsets.update({"bus/endpoint": broker.endpoint, "bus/plain": True, "bus/curve": False,
                  "gateway/listen": "127.0.0.1:0", "data/dir": gdata})
    proc = t.spawn("gateway", gsets)
    m = proc.wait_line(GATEWAY_READY, 20)
    g = gw.Harness(t, proc, m.group(1))
    g.tokens = path
    node = t.node(broker.endpoint)
    peer = t.client(broker.endpoint)
    t.wait_workers(peer, "echo", 1)
    rotate(t, g, proc, os.path.join(gdata, "gateway.pid"), "gateway")
    t.check("nothing to reload" not in g.log(), "gateway: no 'nothing to reload'")

    #  A clean stop removes the pid file
    t.check(proc.term(10) == 0, "gateway: SIGTERM stops it cleanly")
    t.check(not os.path.exists(os.path.join(gdata, "gateway.pid")),
            "gateway: its pid file is gone after a clean stop")
    node.term(10)


if __name__ == "__main__":
    lhtest.run(main)
