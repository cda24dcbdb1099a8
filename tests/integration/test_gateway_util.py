#!/usr/bin/python3
"""test_gateway_util - helpers for the gateway's integration tests, and,
run as a test, a smoke test: the harness starts, GET /health answers and a
keep-alive connection carries several requests (errors included).

    import test_gateway_util as gw
    def main(t):
        h = gw.harness(t, {"gateway/read_timeout_s": 2})
        st, hdrs, body = h.request("POST", "/v1/bus/echo/echo", b'{"a":1}')
    lhtest.run(main)

The harness is $LH_BUILD/lh_gateway_harness (tests/bin/): broker + echo +
gateway in one process, readiness line "ready URL". Commands go to its
stdin ("stop echo", "fill N MS", "reload"), one answer line each.
"""

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest    # noqa: E402

READY = re.compile(r"^(ready|failed:) (.*)$")
TRACE = re.compile(r"^[0-9a-f]{32}$")
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


class HarnessProc(lhtest.Proc):
    """lhtest.Proc with a stdin pipe for harness commands."""

    def __init__(self, args, name, logdir, env=None):
        self.args = args
        self.name = name
        self.log_path = os.path.join(logdir, name + ".err")
        self.err = open(self.log_path, "wb")
        self.lines = []
        self.cond = threading.Condition()
        self.popen = subprocess.Popen(args, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self.err,
                                      env=env, start_new_session=True)
        self.pid = self.popen.pid
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()


class Harness:
    """A running lh_gateway_harness."""

    def __init__(self, t, proc, url):
        self.t = t
        self.proc = proc
        self.url = url
        m = re.match(r"http://(\[[^\]]+\]|[^:]+):(\d+)$", url)
        self.host = m.group(1).strip("[]")
        self.port = int(m.group(2))

    @property
    def pid(self):
        return self.proc.pid

    def command(self, line, timeout=10.0):
        """Send one stdin command; return its answer line."""
        start = len(self.proc.lines)
        self.proc.popen.stdin.write((line + "\n").encode())
        self.proc.popen.stdin.flush()
        return self.proc.wait_line(re.compile(r"^(ok|failed|unknown).*$"),
                                   timeout, start).group(0)

    def connection(self, timeout=10.0):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, conn=None,
                timeout=10.0):
        """One request; returns (status, headers dict lowercased, body
        bytes). Uses conn when given (keep-alive), else a fresh one."""
        own = conn is None
        if own:
            conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            return resp.status, hdrs, data
        finally:
            if own:
                conn.close()

    def raw(self, data, timeout=5.0, pace=None):
        """Send raw bytes on a new socket and read what comes back until
        the server closes or goes quiet for timeout. Returns bytes."""
        s = socket.create_connection((self.host, self.port), timeout=timeout)
        try:
            try:
                s.sendall(data)
            except OSError:
                pass
            out = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    break
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            return out
        finally:
            s.close()

    def log(self):
        self.proc.err.flush()
        with open(self.proc.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, text, timeout=5.0):
        """The log once it holds text, or at the deadline: HTTP threads
        write their request lines in batches, up to 100 ms late."""
        deadline = time.monotonic() + timeout
        log = self.log()
        while text not in log and time.monotonic() < deadline:
            time.sleep(0.02)
            log = self.log()
        return log

    def rss_kib(self):
        return self.proc.rss_kib()


def harness(t, sets=None, env=None, expect_ready=True, timeout=20.0):
    """Start the harness with --set KEY=VALUE for each of sets (plus
    gateway/listen=127.0.0.1:0 unless given). Returns a Harness, or, with
    expect_ready False, the (word, detail, proc) of its first line."""
    binary = os.path.join(t.build, "lh_gateway_harness")
    if not os.access(binary, os.X_OK):
        raise lhtest.Skip("%s is not built" % binary)
    values = {"gateway/listen": "127.0.0.1:0"}
    values.update(sets or {})
    args = [binary]
    for key, value in values.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        args += ["--set", "%s=%s" % (key, value)]
    t.counter += 1
    full_env = dict(os.environ)
    for key in ("LAKEHOUSE_TOKEN", "LAKEHOUSE_TOKENS"):
        full_env.pop(key, None)
    full_env.update(env or {})
    proc = HarnessProc(args, "harness%d" % t.counter, t.tmp, full_env)
    t.procs.append(proc)
    m = proc.wait_line(READY, timeout)
    if not expect_ready:
        return m.group(1), m.group(2), proc
    if m.group(1) != "ready":
        raise lhtest.Failure("the harness did not start: %s\n%s"
                             % (m.group(2), proc.tail()))
    return Harness(t, proc, m.group(2))


GATEWAY_URL = re.compile(r"lakehouse: gateway ready on (http://\S+)")


def up(t, actors, workers=1, sets=None, timeout=30.0, extra=()):
    """Start `lakehouse up` running actors (comma-separated) and the gateway
    on an ephemeral port (extra: more arguments, e.g. --tap); returns
    (broker, Harness). The Harness's pid is the whole system's single
    process."""
    values = {"gateway/listen": "127.0.0.1:0"}
    values.update(sets or {})
    b = t.up(actors=actors, workers=workers, sets=values, timeout=timeout, extra=extra)
    m = b.proc.wait_line(GATEWAY_URL, timeout)
    return b, Harness(t, b.proc, m.group(1))


def vm_hwm_kib(pid):
    """Peak resident set (VmHWM) of a process in KiB, or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def status_of(raw):
    """HTTP status of the first response in raw bytes, or None."""
    m = re.match(rb"HTTP/1\.[01] (\d{3})", raw)
    return int(m.group(1)) if m else None


def error_body(body):
    """The SPEC error object of a body, or None if it has not that shape."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    err = doc.get("error") if isinstance(doc, dict) else None
    if (isinstance(err, dict) and isinstance(err.get("kind"), str)
            and isinstance(err.get("reason"), str)):
        return err
    return None


def check_trace_headers(t, hdrs, what, trace=None):
    """Both trace headers present, consistent (and equal to trace)."""
    tid = hdrs.get("x-lakehouse-trace-id", "")
    m = TRACEPARENT.match(hdrs.get("traceparent", ""))
    t.check(TRACE.match(tid) and m and m.group(1) == tid
            and (trace is None or tid == trace),
            "%s: trace headers %s" % (what, "carry " + trace if trace else "present"),
            hdrs)
    return tid


def healthy(t, h, what):
    """The gateway still answers GET /health with 200."""
    st, hdrs, body = h.request("GET", "/health")
    t.check(st == 200 and json.loads(body)["gateway"]["ok"],
            "gateway still serving after %s" % what, (st, body))


def main(t):
    h = harness(t)
    st, hdrs, body = h.request("GET", "/health")
    doc = json.loads(body)
    t.check(st == 200, "GET /health answers 200", st)
    t.check(doc["status"] == "ok" and doc["broker"]["ok"], "broker is up", doc)
    t.check(doc["services"].get("echo", {}).get("workers") == 2,
            "echo's two workers are listed", doc)
    check_trace_headers(t, hdrs, "GET /health")

    #  Keep-alive: one connection, several requests, errors included
    conn = h.connection()
    conn.connect()
    sock = conn.sock
    sequence = [("GET", "/health", None, 200),
                ("POST", "/v1/bus/echo/echo", b'{"x":1}', 200),
                ("GET", "/nowhere", None, 404),
                ("POST", "/v1/bus/echo/echo", b'{"x":', 400),
                ("DELETE", "/health", None, 405),
                ("POST", "/v1/bus/echo/echo", b'[1,2,3]', 200)]
    for method, path, body, expected in sequence:
        st, hdrs, data = h.request(method, path, body, conn=conn)
        t.check(st == expected, "%s %s -> %d on the kept-alive connection"
                % (method, path, expected), (st, data))
    t.check(conn.sock is sock, "the same TCP connection served all %d requests"
            % len(sequence))
    conn.close()


if __name__ == "__main__":
    lhtest.run(main)
