#!/usr/bin/python3
"""test_gateway_up - the gateway inside `lakehouse up`.

`lakehouse up --set gateway/listen=127.0.0.1:0` must print the gateway's
bound URL on a stdout line before "lakehouse: up (...)" (any line with
"gateway" and an http:// URL, e.g. "lakehouse: gateway ready on
http://127.0.0.1:PORT"). Then GET /health lists echo, and an echo request
goes through the bus. Also: `lakehouse up` on 0.0.0.0 without a token must
fail to start, saying why. Skipped (77) while the launcher does not start
the gateway yet.
"""

import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest                    # noqa: E402
import test_gateway_util as gw   # noqa: E402

GATEWAY_URL = re.compile(r"gateway.*?(http://(?:\[[^\]]+\]|[0-9.]+):\d+)")


def main(t):
    up = t.up(actors="echo", workers=2, sets={"gateway/listen": "127.0.0.1:0"})
    url = None
    with up.proc.cond:
        for line in up.proc.lines:
            m = GATEWAY_URL.search(line)
            if m:
                url = m.group(1)
    if not url:
        raise lhtest.Skip("`lakehouse up` does not start the gateway yet (no URL line)")
    h = gw.Harness(t, up.proc, url)
    st, hdrs, body = h.request("GET", "/health")
    doc = json.loads(body)
    t.check(st == 200 and doc["broker"]["ok"], "lakehouse up: GET /health -> 200", body)
    t.check(doc["services"].get("echo", {}).get("workers") == 2,
            "lakehouse up: /health lists echo's 2 workers", doc)
    st, hdrs, body = h.request("POST", "/v1/bus/echo/echo", b'{"via":"lakehouse up"}',
                               {"Content-Type": "application/json"})
    t.check(st == 200 and json.loads(body) == {"via": "lakehouse up"},
            "lakehouse up: echo through the gateway", (st, body))
    gw.check_trace_headers(t, hdrs, "lakehouse up")

    proc = t.spawn("up", {"gateway/listen": "0.0.0.0:0", "bus/endpoint": "tcp://127.0.0.1:*",
                          "bus/tap": "", "bus/inproc": "inproc://lh-bus-refuse",
                          "actors/run": "echo",
                          "data/dir": os.path.join(t.tmp, "var-refuse")})
    code = proc.popen.wait(30)
    t.check(code != 0 and "without a bearer token" in proc.tail(50),
            "lakehouse up on 0.0.0.0 without a token refuses to start", proc.tail())


if __name__ == "__main__":
    lhtest.run(main)
