#!/usr/bin/python3
"""test_gateway_admin - a standalone gateway over CURVE, and who may reach
the broker's admin ops through it (docs/http.md, "Authentication").

A CURVE broker, a node serving echo, and `lakehouse gateway` with its
role gateway certificate and a token file holding a client token and an
admin token (role=admin):
- without gateway/admin_cert, the admin token's broker.reload goes over
  the gateway's own connection and the broker refuses it (403, "role
  gateway"): the broker checks the gateway's role, whatever the gateway
  lets through;
- with gateway/admin_cert (a role admin certificate), the admin token's
  reload is served (200) over that second connection; the client token
  is refused by the gateway itself (403, "admin token"); both call echo;
- a gateway/admin_cert whose role is not admin refuses to start (exit 2).
"""

import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest                    # noqa: E402
import test_gateway_util as gw   # noqa: E402
import test_curve_util as cu     # noqa: E402

CLIENT = "client-token-0123456789abcdef"
ADMIN = "admin-token-0123456789abcdef"
READY = re.compile(r"lakehouse: gateway ready on (http://\S+)")


def post(h, path, token, doc=None):
    st, _, body = h.request("POST", path, json.dumps(doc or {}).encode(),
                            {"Content-Type": "application/json",
                             "Authorization": "Bearer " + token})
    return st, gw.error_body(body) or json.loads(body or b"{}")


def gateway(t, sec, tokens, admin_cert=None, expect_ready=True):
    sets = sec.node_sets()
    sets.update({"bus/endpoint": sec.endpoint, "gateway/listen": "127.0.0.1:0",
                 "gateway/token_file": tokens,
                 "data/dir": os.path.join(t.tmp, "var-gw%d" % (t.counter + 1))})
    if admin_cert:
        sets["gateway/admin_cert"] = admin_cert
    proc = t.spawn("gateway", sets)
    if not expect_ready:
        return proc
    return gw.Harness(t, proc, proc.wait_line(READY, 20).group(1))


def main(t):
    sec = cu.Secure(t)
    node = t.node(sec.endpoint, sets=sec.node_sets())
    admin_peer = sec.peer(sec.admin)
    t.wait_workers(admin_peer, "echo", 1)
    tokens = os.path.join(t.tmp, "tokens")
    with open(tokens, "w") as f:
        f.write("%s\n%s role=admin name=ops\n" % (CLIENT, ADMIN))
    os.chmod(tokens, 0o600)

    h = gateway(t, sec, tokens)
    st, doc = post(h, "/v1/bus/broker/reload", ADMIN)
    t.check(st == 403 and "role gateway may not call broker.reload" in doc.get("reason", ""),
            "no admin link: the broker refuses the gateway's own role the admin op", (st, doc))
    st, doc = post(h, "/v1/bus/echo/echo", ADMIN, {"x": 1})
    t.check(st == 200 and doc == {"x": 1}, "the admin token calls echo", (st, doc))

    h = gateway(t, sec, tokens, admin_cert=sec.admin)
    st, doc = post(h, "/v1/bus/broker/reload", ADMIN)
    t.check(st == 200 and "generation" in doc,
            "with gateway/admin_cert the admin token's reload is served", (st, doc))
    st, doc = post(h, "/v1/bus/broker/reload", CLIENT)
    t.check(st == 403 and "admin token" in doc.get("reason", ""),
            "the client token is refused by the gateway", (st, doc))
    st, doc = post(h, "/v1/bus/echo/echo", CLIENT, {"y": 2})
    t.check(st == 200 and doc == {"y": 2}, "the client token calls echo", (st, doc))
    t.check("admin caller: broker.reload on the admin link: 200" in
            h.wait_log("on the admin link"), "the admin link's use is logged")

    node_cert = os.path.join(sec.certs, "node.cert")
    proc = gateway(t, sec, tokens, admin_cert=node_cert, expect_ready=False)
    code = proc.popen.wait(20)
    t.check(code == 2 and "not admin" in proc.tail(),
            "a gateway/admin_cert of another role refuses to start (exit 2)", proc.tail())
    node.term(10)


if __name__ == "__main__":
    lhtest.run(main)
