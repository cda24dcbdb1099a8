"""lhmcp - helpers for the MCP tests (docs/mcp.md): the pinned npm tools,
the SDK client script, and a small MCP-over-HTTP client.

    import lhmcp
    cache = lhmcp.npm(t)                        # or Skip (no node, no network)
    events = lhmcp.sdk(t, cache, plan)          # tests/mcp/sdk_client.mjs
    m = lhmcp.Http(url, token)
    sid = m.initialize()
    st, hdrs, body = m.post({"jsonrpc": "2.0", "id": 1, "method": "ping"})
"""

import http.client
import json
import os
import re
import shutil
import socket
import subprocess

import lhtest

ROOT = os.environ.get("LH_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
GATEWAY_READY = re.compile(r"gateway ready on (http://\S+)")
INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "lhmcp", "version": "1"}}}


def npm(t):
    """The directory holding the pinned npm tools (scripts/mcp-npm), or
    Skip when they cannot be had here."""
    script = os.path.join(ROOT, "scripts", "mcp-npm")
    p = subprocess.run([script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=700)
    err = p.stderr.decode("utf-8", "replace").strip().splitlines()
    if p.returncode == 77:
        raise lhtest.Skip(err[-1] if err else "mcp-npm: the MCP test tools are unavailable")
    if p.returncode != 0:
        raise lhtest.Failure("scripts/mcp-npm failed (%d): %s" % (p.returncode, "\n".join(err[-10:])))
    cache = p.stdout.decode().strip()
    t.note("MCP test tools in %s" % cache)
    return cache


def node(cache):
    """The Node 22 binary of the cache"""
    return os.path.join(cache, "node_modules", ".bin", "node")


def gateway_url(proc, timeout=5.0):
    """The gateway URL from a `lakehouse up`'s readiness lines"""
    return proc.wait_line(GATEWAY_READY, timeout).group(1)


def sdk(t, cache, plan, name, timeout=200):
    """Run tests/mcp/sdk_client.mjs with plan; returns its events (dicts).
    The script runs from a directory whose node_modules is the cache's."""
    work = os.path.join(t.tmp, "sdk")
    if not os.path.isdir(work):
        os.makedirs(work)
        shutil.copy(os.path.join(ROOT, "tests", "mcp", "sdk_client.mjs"), work)
        os.symlink(os.path.join(cache, "node_modules"), os.path.join(work, "node_modules"))
    path = os.path.join(work, "%s.json" % name)
    with open(path, "w") as f:
        json.dump(plan, f)
    log = os.path.join(t.tmp, "%s.err" % name)
    with open(log, "wb") as err:
        p = subprocess.run([node(cache), os.path.join(work, "sdk_client.mjs"), path],
                           stdout=subprocess.PIPE, stderr=err, timeout=timeout, cwd=work)
    events = []
    for line in p.stdout.decode("utf-8", "replace").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            events.append({"event": "garbage", "line": line})
    if p.returncode != 0 or not events or events[-1].get("event") != "closed":
        with open(log, "rb") as f:
            tail = f.read().decode("utf-8", "replace").splitlines()[-30:]
        raise lhtest.Failure("%s: the SDK client failed (exit %d): %s\n%s" % (
            name, p.returncode, events[-1:] if events else "no output", "\n".join(tail)))
    return events


class Http:
    """MCP over HTTP, by hand: POST/GET/DELETE /mcp with the headers asked."""

    def __init__(self, url, token=None, timeout=15.0):
        m = re.match(r"http://(\[[^\]]+\]|[^:/]+):(\d+)", url)
        self.host = m.group(1).strip("[]")
        self.port = int(m.group(2))
        self.token = token
        self.timeout = timeout
        self.session = None
        self.conn = None

    def request(self, method, body=None, headers=None, session=True, token=True,
                path="/mcp"):
        """One request on a kept-alive connection; returns (status, headers
        as a dict with lowercase names, body bytes)."""
        hdrs = {}
        if token and self.token:
            hdrs["Authorization"] = "Bearer " + self.token
        if session and self.session:
            hdrs["Mcp-Session-Id"] = self.session
        if method == "POST":
            hdrs["Content-Type"] = "application/json"
            hdrs["Accept"] = "application/json, text/event-stream"
        hdrs.update(headers or {})
        hdrs = {k: v for k, v in hdrs.items() if v is not None}
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode("utf-8", "surrogateescape")
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=body, headers=hdrs)
                r = self.conn.getresponse()
                data = r.read()
                rh = {k.lower(): v for k, v in r.getheaders()}
                if rh.get("connection", "").lower() == "close":
                    self.close()
                return r.status, rh, data
            except (http.client.HTTPException, ConnectionError, OSError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def post(self, message, **kw):
        return self.request("POST", message, **kw)

    def raw_post(self, body, headers=None, path="/mcp"):
        """POST on a connection of its own (Connection: close), reading the
        answer even when the server answers before the body is all sent
        (a body over the limit: 413, then the connection closes)"""
        hdrs = {"Host": "%s:%d" % (self.host, self.port), "Content-Type": "application/json",
                "Accept": "application/json, text/event-stream", "Connection": "close",
                "Content-Length": str(len(body))}
        if self.token:
            hdrs["Authorization"] = "Bearer " + self.token
        if self.session:
            hdrs["Mcp-Session-Id"] = self.session
        hdrs.update(headers or {})
        head = "POST %s HTTP/1.1\r\n" % path + "".join(
            "%s: %s\r\n" % (k, v) for k, v in hdrs.items() if v is not None) + "\r\n"
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        try:
            sock.sendall(head.encode())
            try:
                sock.sendall(body)
            except (BrokenPipeError, ConnectionResetError):
                pass
            data = b""
            while True:
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                data += chunk
        finally:
            sock.close()
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
        rh = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            rh[name.strip().lower()] = value.strip()
        return status, rh, rest

    def initialize(self):
        """A new session; returns its id"""
        st, hdrs, body = self.post(INIT, session=False)
        if st != 200 or "mcp-session-id" not in hdrs:
            raise lhtest.Failure("initialize answered %d %s" % (st, body[:300]))
        self.session = hdrs["mcp-session-id"]
        self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return self.session

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None
