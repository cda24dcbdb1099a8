#!/usr/bin/python3
"""`lakehouse mcp` against a CURVE broker, as it runs out of the box: the
broker admits it with the local set's mcp certificate and gives it role
mcp, whose ACL applies (docs/mcp.md "stdio", docs/broker.md "Roles"):

- `lakehouse up` (CURVE on, the default) creates var/certs/mcp.cert with
  role mcp and its public copy in var/certs/allow;
- `lakehouse mcp` in the same directory connects with it: initialize,
  list_datasets works (catalogd is in acl/mcp/call);
- its SUB to catalog.changed is admitted (acl/mcp/subscribe): after
  `lakehouse ingest` the client gets notifications/resources/list_changed;
- query_sql is an isError result naming the broker's 403 for role mcp
  (acl/mcp/call is set to catalogd,ingestd here): the broker sees role mcp;
- at the end of its stdin it exits 0;
- started from another directory with no option at all, it finds the
  running system (LAKEHOUSE_HOME/current, docs/tools.md) and its mcp
  certificate: list_datasets names the dataset.
"""

import json
import os
import select
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402
import lhmcp  # noqa: E402


class Stdio:
    """`lakehouse mcp` through pipes: one JSON message a line each way"""

    def __init__(self, t, args, cwd=None, name="mcp"):
        self.log = open(os.path.join(t.tmp, name + ".err"), "wb")
        self.p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self.log, cwd=cwd or t.tmp,
                                  env={k: v for k, v in os.environ.items()
                                       if k != "LAKEHOUSE_CONFIG"})
        self.buffer = b""
        self.seen = []

    def send(self, message):
        self.p.stdin.write(json.dumps(message).encode() + b"\n")
        self.p.stdin.flush()

    def wait(self, predicate, timeout=10.0):
        """The first message read (from now or before) that predicate
        accepts, or None by the deadline"""
        for message in self.seen:
            if predicate(message):
                return message
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.p.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            chunk = os.read(self.p.stdout.fileno(), 65536)
            if not chunk:
                break
            self.buffer += chunk
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                message = json.loads(line)
                self.seen.append(message)
                if predicate(message):
                    return message
        return None

    def answer(self, request_id, timeout=10.0):
        return self.wait(lambda m: m.get("id") == request_id and "method" not in m, timeout)

    def close(self):
        self.p.stdin.close()
        rc = self.p.wait(timeout=20)
        self.log.close()
        return rc


def call(request_id, name, arguments):
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
            "params": {"name": name, "arguments": arguments}}


def main(t):
    up = t.spawn("up", {
        "bus/endpoint": "tcp://127.0.0.1:*",
        "bus/tap": "",
        "bus/inproc": "inproc://lh-bus-mcp-curve",
        "gateway/listen": "",
        "actors/run": "storaged,catalogd,ingestd,queryd",
        "acl/mcp/call": "catalogd,ingestd",
        "broker/hb_ivl": t.hb_ivl,
        "broker/hb_live": t.hb_live,
    })
    endpoint = up.wait_line(lhtest.READY_BROKER, 20).group(1)
    up.wait_line(lhtest.READY_UP, 20)
    certs = os.path.join(t.tmp, "var", "certs")
    with open(os.path.join(certs, "mcp.cert")) as f:
        text = f.read()
    t.check('role = "mcp"' in text and os.path.exists(os.path.join(certs, "allow", "mcp.cert")),
            "up created var/certs/mcp.cert with role mcp, its public copy in allow/", text)

    mcp = Stdio(t, [t.lakehouse, "--set", "bus/endpoint=" + endpoint, "--set", "log/level=warn",
                    "mcp"])
    mcp.send(lhmcp.INIT)
    init = mcp.answer(0)
    t.check(init is not None and init["result"]["protocolVersion"] == "2025-11-25",
            "lakehouse mcp reaches the CURVE broker with var/certs/mcp.cert: initialize answered",
            init)
    mcp.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    mcp.send(call(1, "list_datasets", {}))
    listed = mcp.answer(1)
    t.check(listed is not None and not listed["result"].get("isError")
            and listed["result"]["structuredContent"]["count"] == 0,
            "list_datasets (catalogd.list, in acl/mcp/call) works", listed)

    csv = os.path.join(t.tmp, "people.csv")
    with open(csv, "w") as f:
        f.write("id,name\n1,ada\n2,grace\n")
    run = subprocess.run([t.lakehouse, "--set", "bus/endpoint=" + endpoint, "ingest", csv,
                          "--name", "people"], capture_output=True, text=True, timeout=60,
                         cwd=t.tmp, env={k: v for k, v in os.environ.items()
                                         if k != "LAKEHOUSE_CONFIG"})
    t.check(run.returncode == 0, "lakehouse ingest (admin certificate) exits 0", run.stderr[-400:])
    changed = mcp.wait(lambda m: m.get("method") == "notifications/resources/list_changed", 10.0)
    t.check(changed is not None,
            "role mcp's SUB to catalog.changed is admitted: list_changed after the ingest",
            mcp.seen[-3:])

    mcp.send(call(2, "query_sql", {"sql": "SELECT count(*) FROM people"}))
    refused = mcp.answer(2)
    text = refused and refused["result"]["content"][0]["text"]
    t.check(refused is not None and refused["result"].get("isError") is True
            and "403" in text and "role mcp" in text and "acl/mcp/call" in text,
            "query_sql (queryd.sql, not in acl/mcp/call) is an isError result naming the "
            "broker's 403 for role mcp", refused)
    rc = mcp.close()
    t.check(rc == 0, "at the end of its stdin lakehouse mcp exits 0", rc)

    elsewhere = os.path.join(t.tmp, "elsewhere")
    os.makedirs(elsewhere)
    found = Stdio(t, [t.lakehouse, "mcp"], cwd=elsewhere, name="mcp-elsewhere")
    found.send(lhmcp.INIT)
    found.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    found.send(call(1, "list_datasets", {}))
    listed = found.answer(1, 15.0)
    names = listed and [d["name"] for d in listed["result"].get("structuredContent", {}).get("datasets", [])]
    rc = found.close()
    t.check(listed is not None and names == ["people"] and rc == 0,
            "from another directory with no option, lakehouse mcp finds the running system "
            "(LAKEHOUSE_HOME/current) and its mcp certificate: list_datasets names people",
            (listed, rc))
    t.check(up.alive(), "up lives")


lhtest.run(main, budget=120)
