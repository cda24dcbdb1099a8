#!/usr/bin/python3
"""test_gateway_listen - gateway/listen as README writes it.

gateway/listen takes HOST:PORT and [IPV6]:PORT, and the URL form the
gateway prints and README gives as its default: http://HOST:PORT and
http://[IPV6]:PORT (a lone trailing '/' allowed). Anything else -
https://, another scheme, a path, a query, a user name, no port - is
refused at start with a message that names the key and the forms it
takes. Checked on the gateway harness and on `lakehouse up`.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest                    # noqa: E402
import test_gateway_util as gw   # noqa: E402


def main(t):
    #  Accepted: each serves /health and echo on the URL it reports
    for listen, host in (("http://127.0.0.1:0", "127.0.0.1"), ("HTTP://127.0.0.1:0/", "127.0.0.1"),
                         ("http://[::1]:0", "::1"), ("127.0.0.1:0", "127.0.0.1")):
        try:
            h = gw.harness(t, {"gateway/listen": listen})
        except lhtest.Failure as e:
            if host == "::1" and "Address" in str(e):
                t.note("no IPv6 loopback here: %s skipped" % listen)
                continue
            raise
        t.check(h.host == host and h.url.startswith("http://"),
                "listen %s: ready on %s" % (listen, h.url), h.url)
        st, _, body = h.request("GET", "/health")
        t.check(st == 200 and json.loads(body)["status"] == "ok",
                "listen %s: GET /health -> 200" % listen, (st, body))
        st, _, body = h.request("POST", "/v1/bus/echo/echo", b'{"a":1}')
        t.check(st == 200 and json.loads(body) == {"a": 1},
                "listen %s: echo -> 200" % listen, (st, body))
        h.proc.term()

    #  Refused at start, with a message naming the key and the forms
    for listen, why in (("https://127.0.0.1:0", "plain http:// only"),
                        ("tcp://127.0.0.1:0", "plain http:// only"),
                        ("http://127.0.0.1:0/v1", "no path"),
                        ("http://127.0.0.1:0?x=1", "no path, query"),
                        ("http://admin@127.0.0.1:0", "user name"),
                        ("http://127.0.0.1", "must be HOST:PORT"),
                        ("127.0.0.1:0/", "no path")):
        word, detail, proc = gw.harness(t, {"gateway/listen": listen}, expect_ready=False)
        t.check(word == "failed:" and ("gateway/listen '%s'" % listen) in detail and why in detail
                and "http://HOST:PORT" in detail,
                "listen %s is refused: %s" % (listen, detail), detail)
        t.check(proc.popen.wait(10) != 0, "listen %s: the process exits non-zero" % listen)

    #  lakehouse up, as a user following README would write it
    b, h = gw.up(t, "echo", sets={"gateway/listen": "http://127.0.0.1:0"})
    st, _, body = h.request("GET", "/health")
    t.check(st == 200, "lakehouse up --set gateway/listen=http://127.0.0.1:0: /health -> 200",
            (st, body))
    proc = t.spawn("up", {"gateway/listen": "https://127.0.0.1:0",
                          "bus/endpoint": "tcp://127.0.0.1:*", "bus/tap": "",
                          "bus/inproc": "inproc://lh-bus-listen", "actors/run": "echo",
                          "data/dir": os.path.join(t.tmp, "var-https")})
    code = proc.popen.wait(30)
    t.check(code != 0 and "plain http:// only" in proc.tail(50),
            "lakehouse up with https:// refuses to start, saying why (exit %d)" % code,
            proc.tail())


if __name__ == "__main__":
    lhtest.run(main)
