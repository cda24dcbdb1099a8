#!/usr/bin/python3
"""test_gateway_auth - bearer tokens, rotation without restart, the
allow-list, and refusing to listen on a non-loopback address without a
token.

- 0.0.0.0 / [::] without a token: the gateway refuses to start, saying why.
- A token file readable by others is refused.
- Env tokens (LAKEHOUSE_TOKEN + LAKEHOUSE_TOKENS) are all accepted; /health
  stays open; 401 carries WWW-Authenticate.
- Rotation by file change: primary and secondary both accepted, then the
  old one removed from the file and refused, with no restart.
- Rotation by SIGHUP (file checks disabled): same, triggered by the signal.
- An emptied token file keeps the current tokens (it never opens the gateway).
- CIDR allow-list: an address outside it gets 403.
"""

import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest                    # noqa: E402
import test_gateway_util as gw   # noqa: E402

A = "token-a-0123456789abcdef"
B = "token-b-0123456789abcdef"
C = "token-c-0123456789abcdef"
D = "token-d-0123456789abcdef"


def write_tokens(path, tokens, mode=0o600):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("# lakehouse gateway tokens, first = primary\n")
        for token in tokens:
            f.write(token + "\n")
    os.chmod(tmp, mode)
    os.rename(tmp, path)


def call(h, token, path="/v1/bus/echo/echo", method="POST"):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    st, hdrs, body = h.request(method, path, b"{}" if method == "POST" else None, headers)
    return st, hdrs, body


def wait_status(h, token, status, timeout=5.0):
    """Poll until a request with token gets status; return whether it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if call(h, token)[0] == status:
            return True
        time.sleep(0.02)    # polling interval of a readiness loop, not a sync
    return False


def main(t):
    #  Refusals at start
    for listen in ("0.0.0.0:0", "[::]:0"):
        word, detail, proc = gw.harness(t, {"gateway/listen": listen}, expect_ready=False)
        t.check(word == "failed:" and "without a bearer token" in detail,
                "listen %s without a token refuses to start" % listen, detail)
        t.check(proc.popen.wait(10) == 1, "and the process exits 1")
    path = os.path.join(t.tmp, "tokens")
    write_tokens(path, [A], mode=0o644)
    word, detail, proc = gw.harness(t, {"gateway/token_file": path}, expect_ready=False)
    t.check(word == "failed:" and "chmod 600" in detail,
            "a token file readable by others is refused", detail)

    #  Env tokens on 0.0.0.0
    h = gw.harness(t, {"gateway/listen": "0.0.0.0:0"},
                   env={"LAKEHOUSE_TOKEN": A, "LAKEHOUSE_TOKENS": B + "," + C})
    h.host = "127.0.0.1"
    st, hdrs, body = call(h, None, "/health", "GET")
    t.check(st == 200, "GET /health is open without a token", (st, body))
    st, hdrs, body = call(h, None)
    err = gw.error_body(body)
    t.check(st == 401 and err and err["kind"] == "unauthorized",
            "no token -> 401 with the SPEC error body", (st, body))
    t.check(hdrs.get("www-authenticate", "").startswith("Bearer"),
            "401 carries WWW-Authenticate: Bearer", hdrs)
    gw.check_trace_headers(t, hdrs, "401")
    t.check(call(h, D)[0] == 401, "an unknown token -> 401")
    t.check(call(h, A[:-1])[0] == 401, "a token's prefix -> 401")
    t.check(call(h, A + "x")[0] == 401, "a token plus a character -> 401")
    st, _, _ = h.request("POST", "/v1/bus/echo/echo", b"{}",
                         {"Authorization": "Basic " + A})
    t.check(st == 401, "another auth scheme -> 401")
    for token in (A, B, C):
        st, _, body = call(h, token)
        t.check(st == 200 and json.loads(body) == {},
                "env token %s accepted" % token[:7], (st, body))
    st, _, body = call(h, None, "/nowhere", "GET")
    t.check(st == 401, "unknown routes need a token too (nothing leaks)", st)

    #  Rotation by file change, no restart
    write_tokens(path, [A, B])
    h = gw.harness(t, {"gateway/token_file": path, "gateway/token_check_ms": 100})
    pid, port = h.pid, h.port
    t.check(call(h, A)[0] == 200 and call(h, B)[0] == 200,
            "file: primary and secondary both accepted")
    write_tokens(path, [B, C])
    t.check(wait_status(h, A, 401), "file: the removed token is refused after the file changes")
    t.check(call(h, B)[0] == 200 and call(h, C)[0] == 200,
            "file: the new primary and the kept secondary are accepted")
    t.check(h.proc.alive() and h.pid == pid and h.port == port,
            "file: no restart (same process, same port)")
    t.check("bearer tokens reloaded" in h.wait_log("bearer tokens reloaded"),
            "file: the reload is logged")

    #  An emptied file keeps the current set
    write_tokens(path, [])
    deadline = time.monotonic() + 5
    while "keeping the" not in h.log() and time.monotonic() < deadline:
        time.sleep(0.02)    # readiness poll of the log
    t.check("keeping the" in h.log(), "an emptied token file is refused, the tokens kept")
    t.check(call(h, B)[0] == 200 and call(h, None)[0] == 401,
            "after the refused reload: tokens still required and still accepted")

    #  Rotation by SIGHUP (file checks effectively off)
    write_tokens(path, [A, B])
    h = gw.harness(t, {"gateway/token_file": path, "gateway/token_check_ms": 86400000})
    pid = h.pid
    write_tokens(path, [B, D])
    t.check(call(h, A)[0] == 200 and call(h, D)[0] == 401,
            "sighup: the file changed but no reload yet (checks are off)")
    os.kill(h.pid, signal.SIGHUP)
    t.check(wait_status(h, A, 401), "sighup: the removed token is refused after SIGHUP")
    t.check(call(h, D)[0] == 200 and call(h, B)[0] == 200,
            "sighup: the new token is accepted")
    t.check(h.proc.alive() and h.pid == pid, "sighup: no restart")
    write_tokens(path, [D])
    answer = h.command("reload")
    t.check(answer.startswith("ok") and call(h, B)[0] == 401,
            "RELOAD pipe command reloads at once", answer)

    #  Allow-list
    h = gw.harness(t, {"gateway/allow": "10.0.0.0/8, 192.168.0.0/16"})
    st, hdrs, body = call(h, None)
    err = gw.error_body(body)
    t.check(st == 403 and err and err["kind"] == "forbidden",
            "an address outside the allow-list -> 403", (st, body))
    t.check(call(h, None, "/health", "GET")[0] == 403,
            "the allow-list applies to /health too")
    h = gw.harness(t, {"gateway/allow": "10.0.0.0/8,127.0.0.0/8"})
    t.check(call(h, None)[0] == 200, "an address inside the allow-list is served")
    word, detail, proc = gw.harness(t, {"gateway/allow": "10.0.0.0/40"}, expect_ready=False)
    t.check(word == "failed:" and "gateway/allow" in detail,
            "a bad allow-list entry refuses to start, naming the key", detail)


if __name__ == "__main__":
    lhtest.run(main)
