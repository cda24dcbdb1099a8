"""lhtest - helpers for tests that start real lakehouse processes.

    import lhtest
    def main(t):
        b = t.broker(sets={"broker/hb_ivl": 200})
        n = t.node(b.endpoint, workers=2)
        c = t.client(b.endpoint)
        t.check(c.call("echo", "echo", {"x": 1}).st == 200, "echo answers 200")
    lhtest.run(main)

Each test is a standalone script: exit 0 pass, 1 fail, 77 skip. run() arms
an alarm (default 110 s) so a test can never hang the suite, and kills every
process it started (kill -9 of the process group) whatever happens.
Processes are started with `$LH_BUILD/lakehouse broker|node|up` and
--config FILE and/or --set key=value; readiness is the launcher's line on
stdout ("lakehouse: broker ready on tcp://..." / "lakehouse: node ready"),
awaited with a deadline. Nothing here sleeps to synchronise.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

#  Heartbeat settings the tests run the broker with: a short interval keeps
#  them fast. The liveness window (hb_ivl x hb_live) is 1 s, 2 s under ASan
#  (LH_ASAN=1): on a loaded 2-core machine a worker thread can be starved,
#  or stuck in one fsync, for more than 600 ms. Tests that time death
#  detection read the window from t.hb_ivl and t.hb_live.
HB_IVL = 200
HB_LIVE = 10 if os.environ.get("LH_ASAN") == "1" else 5
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "proto"))
import lhb  # noqa: E402

PASS, FAIL, SKIP = 0, 1, 77
#  The line by which a skipping test declares its skip allowed in CI (the
#  runner, tests/run, looks for it; see Skip)
SKIP_ALLOWED = "skip-allowed-in-ci:"
READY_BROKER = re.compile(r"lakehouse: broker ready on (tcp://\S+)(?: \(tap (\S+)\))?")
READY_NODE = re.compile(r"lakehouse: node ready")
READY_UP = re.compile(r"lakehouse: up \(")


class Failure(Exception):
    """A check failed."""


class Skip(Exception):
    """The test cannot run here. Under CI (CI=true) the runner counts a skip
    as a failure unless the test declares why the skip is allowed there:
    raise Skip(reason, ci_ok=True) for a reason that holds on any machine
    (an RSS figure means nothing under ASan); everything else (a missing
    tool, a missing binary) is a broken set-up and fails in CI."""

    def __init__(self, reason, ci_ok=False):
        Exception.__init__(self, reason)
        self.ci_ok = ci_ok


def now():
    return time.monotonic()


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_jsonl(path, rows):
    """Write rows as JSON lines to path (a temporary file renamed into
    place, so a reader never sees half of it); returns path."""
    import json
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    os.replace(tmp, path)
    return path


def zpl(values):
    """ZPL (czmq zconfig) text for {"section/key": value} settings."""
    tree = {}
    for path, value in values.items():
        node = tree
        parts = path.split("/")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    lines = []

    def emit(node, depth):
        for key, value in node.items():
            if isinstance(value, dict):
                lines.append("    " * depth + key)
                emit(value, depth + 1)
            else:
                if isinstance(value, bool):
                    value = "true" if value else "false"
                lines.append('%s%s = "%s"' % ("    " * depth, key, value))
    emit(tree, 0)
    return "\n".join(lines) + "\n"


def rss_kib(pid):
    """VmRSS of a process in KiB (from /proc/PID/status), or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class Proc:
    """A started process; stdout lines collected by a reader thread."""

    def __init__(self, args, name, logdir, env=None, cwd=None):
        self.args = args
        self.name = name
        self.log_path = os.path.join(logdir, name + ".err")
        self.err = open(self.log_path, "wb")
        self.lines = []
        self.cond = threading.Condition()
        self.popen = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=self.err,
                                      env=env, cwd=cwd,
                                      start_new_session=True)
        self.pid = self.popen.pid
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in iter(self.popen.stdout.readline, b""):
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def alive(self):
        return self.popen.poll() is None

    def wait_line(self, pattern, timeout, start=0):
        """Wait until a stdout line (index >= start) matches; returns the
        match. Fails at the deadline or if the process exits first."""
        deadline = now() + timeout
        with self.cond:
            while True:
                for line in self.lines[start:]:
                    m = pattern.search(line)
                    if m:
                        return m
                if not self.alive() and not self.reader.is_alive():
                    raise Failure("%s exited (%s) before printing /%s/\n%s"
                                  % (self.name, self.popen.returncode,
                                     pattern.pattern, self.tail()))
                left = deadline - now()
                if left <= 0:
                    raise Failure("%s: no /%s/ on stdout within %.1f s\n%s"
                                  % (self.name, pattern.pattern, timeout,
                                     self.tail()))
                self.cond.wait(min(left, 0.2))

    def kill9(self):
        """SIGKILL the process (and its group) and reap it."""
        if self.alive():
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except OSError:
                self.popen.kill()
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def term(self, timeout=5.0):
        """SIGTERM, wait up to timeout, then SIGKILL. Returns exit code."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
        return self.popen.returncode

    def rss_kib(self):
        return rss_kib(self.pid)

    def tail(self, n=25):
        out = ["--- %s: %s" % (self.name, " ".join(self.args))]
        with self.cond:
            out += ["  out| " + l for l in self.lines[-n:]]
        try:
            self.err.flush()
            with open(self.log_path, "rb") as f:
                err = f.read().decode("utf-8", "replace").splitlines()[-n:]
            out += ["  err| " + l for l in err]
        except OSError:
            pass
        return "\n".join(out)


class Broker:
    """A running `lakehouse broker`."""

    def __init__(self, proc, endpoint, port, tap, sets):
        self.proc = proc
        self.endpoint = endpoint
        self.port = port
        self.tap = tap
        self.sets = sets

    @property
    def pid(self):
        return self.proc.pid


class Test:
    """One test's context: temp dir, processes, peers, checks."""

    def __init__(self, name):
        self.name = name
        build = os.environ.get("LH_BUILD")
        if not build:
            raise Skip("LH_BUILD is not set")
        self.build = os.path.abspath(build)
        self.lakehouse = os.path.join(self.build, "lakehouse")
        if not os.access(self.lakehouse, os.X_OK):
            raise Skip("%s is not built" % self.lakehouse)
        self.tmp = tempfile.mkdtemp(prefix="lh-%s-" % name)
        #  `lakehouse up` and `broker` record themselves for the tools in
        #  LAKEHOUSE_HOME/current (docs/tools.md): each test has its own,
        #  so tests never see each other's (or the user's) instance
        self.home = os.path.join(self.tmp, "home")
        os.environ["LAKEHOUSE_HOME"] = self.home
        self.procs = []
        self.peers = []
        self.keep = []                      # peers to heartbeat while polling
        self.checks = 0
        self.counter = 0
        self.hb_ivl = HB_IVL                # ms, small to keep tests fast
        self.hb_live = HB_LIVE

    #  ------------------------------------------------------------------
    #  Checks

    def check(self, cond, what, detail=""):
        """Print 'ok - what' or fail the test with what and detail."""
        self.checks += 1
        if cond:
            print("ok %d - %s" % (self.checks, what), flush=True)
            return
        raise Failure("%s%s" % (what, (": " + str(detail)) if detail else ""))

    def note(self, text):
        print("# " + text, flush=True)

    #  ------------------------------------------------------------------
    #  Processes

    def _args(self, mode, sets, config, extra):
        args = [self.lakehouse, mode]
        #  Always an explicit config file, so no ambient conf/lakehouse.cfg
        #  or $LAKEHOUSE_CONFIG leaks into the test
        path = os.path.join(self.tmp, "%s-%d.cfg" % (mode, self.counter))
        with open(path, "w") as f:
            f.write(zpl(config or {"log/level": "info"}))
        args += ["--config", path]
        for key, value in sets.items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            args += ["--set", "%s=%s" % (key, value)]
        return args + list(extra)

    def spawn(self, mode, sets, config=None, extra=()):
        self.counter += 1
        args = self._args(mode, sets, config, extra)
        env = dict(os.environ)
        env.pop("LAKEHOUSE_CONFIG", None)
        #  run in the temp dir: no ./conf/lakehouse.cfg of the tree applies
        proc = Proc(args, "%s%d" % (mode, self.counter), self.tmp, env,
                    cwd=self.tmp)
        self.procs.append(proc)
        return proc

    def broker(self, port=None, tap=False, sets=None, config=None,
               timeout=10.0):
        """Start `lakehouse broker` on 127.0.0.1:port (an ephemeral port by
        default, read back from the readiness line) and wait until ready.
        tap=True binds a tap too (ephemeral port)."""
        merged = {
            "bus/endpoint": "tcp://127.0.0.1:%s" % (port or "*"),
            "bus/tap": "tcp://127.0.0.1:*" if tap else "",
            "bus/plain": True,
            "bus/curve": False,
            #  plain-tcp peers have one role: here they are the tests'
            #  workers (nodes, Python peers saying READY) and clients
            "bus/plain_role": "actor",
            "bus/inproc": "inproc://lh-bus-%d" % (self.counter + 1),
            "broker/hb_ivl": self.hb_ivl,
            "broker/hb_live": self.hb_live,
            "data/dir": os.path.join(self.tmp, "var"),
        }
        merged.update(sets or {})
        proc = self.spawn("broker", merged, config)
        m = proc.wait_line(READY_BROKER, timeout)
        endpoint = m.group(1)
        tap_endpoint = m.group(2) if tap else None
        self.note("broker pid %d ready on %s (tap %s)"
                  % (proc.pid, endpoint, tap_endpoint))
        #  a restart binds the same ports again
        merged["bus/endpoint"] = endpoint
        if tap_endpoint:
            merged["bus/tap"] = tap_endpoint
        return Broker(proc, endpoint, int(endpoint.rsplit(":", 1)[1]),
                      tap_endpoint, merged)

    def up(self, actors="echo", workers=1, sets=None, timeout=20.0, extra=()):
        """Start `lakehouse up` (broker + actors in one process) on an
        ephemeral port; returns a Broker once both lines were printed.
        actors "*" runs every registered service with its configured
        workers."""
        merged = {
            "bus/endpoint": "tcp://127.0.0.1:*",
            "bus/tap": "",
            "bus/plain": True,
            "bus/curve": False,
            "bus/plain_role": "actor",
            "bus/inproc": "inproc://lh-bus-%d" % (self.counter + 1),
            "broker/hb_ivl": self.hb_ivl,
            "broker/hb_live": self.hb_live,
            "actors/run": actors,
            "data/dir": os.path.join(self.tmp, "var-up%d" % (self.counter + 1)),
            "gateway/listen": "127.0.0.1:0",
        }
        if actors != "*":                  # "*": every service, its own workers
            for actor in actors.split(","):
                merged["actors/%s/workers" % actor] = workers
        merged.update(sets or {})
        proc = self.spawn("up", merged, extra=extra)
        m = proc.wait_line(READY_BROKER, timeout)
        proc.wait_line(READY_UP, timeout)
        endpoint = m.group(1)
        self.note("up pid %d ready on %s (%s x%d)" % (proc.pid, endpoint, actors, workers))
        merged["bus/endpoint"] = endpoint
        return Broker(proc, endpoint, int(endpoint.rsplit(":", 1)[1]), None, merged)

    def restart_broker(self, old, timeout=10.0):
        """Start a broker again with the same settings (same ports)."""
        proc = self.spawn("broker", old.sets)
        m = proc.wait_line(READY_BROKER, timeout)
        self.note("broker pid %d ready again on %s" % (proc.pid, m.group(1)))
        return Broker(proc, old.endpoint, old.port, old.tap, old.sets)

    def node(self, endpoint, actors="echo", workers=1, sets=None, timeout=10.0):
        """Start `lakehouse node --actors ACTORS` connected to endpoint and
        wait for its readiness line (workers may still be registering:
        use wait_workers for that)."""
        merged = {
            "bus/endpoint": endpoint,
            "bus/plain": True,
            "bus/curve": False,
            "data/dir": os.path.join(self.tmp, "var-node%d" % (self.counter + 1)),
        }
        for actor in actors.split(","):
            merged["actors/%s/workers" % actor] = workers
        merged.update(sets or {})
        proc = self.spawn("node", merged, extra=("--actors", actors))
        proc.wait_line(READY_NODE, timeout)
        self.note("node pid %d ready (%s x%d)" % (proc.pid, actors, workers))
        return proc

    #  ------------------------------------------------------------------
    #  Peers

    def client(self, endpoint, name=None, **kw):
        """A Python LHB/1 peer that has said HELLO."""
        self.counter += 1
        peer = lhb.Peer(endpoint, name=name or "py%d" % self.counter, **kw)
        self.peers.append(peer)
        return peer

    def tick(self):
        """Heartbeat the peers in self.keep (call while busy elsewhere)."""
        for peer in self.keep:
            peer.heartbeat()

    def wait_workers(self, peer, svc, count, timeout=10.0, exact=False):
        self.tick()
        found = lhb.wait_workers(peer, svc, count, timeout, exact)
        self.tick()
        if found is None:
            raise Failure("broker does not list %s%d worker(s) of %s within "
                          "%.1f s (has %r)" % ("" if exact else ">=", count, svc,
                                               timeout, lhb.workers_of(peer, svc)))
        return found

    def stats(self, peer):
        return lhb.broker_call(peer, "stats")

    def wait_stat(self, peer, path, predicate, timeout=5.0):
        """Poll broker.stats until predicate(value at path) holds; returns
        the value, or the last value seen when the deadline passes."""
        deadline = now() + timeout
        while True:
            self.tick()
            value = lhb.stat(self.stats(peer), path)
            if predicate(value) or now() >= deadline:
                return value
            peer.idle(min(0.05, max(0.0, deadline - now())))

    #  ------------------------------------------------------------------
    #  Teardown

    def cleanup(self, failed):
        for peer in self.peers:
            try:
                peer.close(bye=False)
            except Exception:
                pass
        for proc in self.procs:
            if failed:
                print(proc.tail(), flush=True)
            proc.kill9()
        for proc in self.procs:
            proc.err.close()
        if not failed or not os.environ.get("LH_KEEP"):
            shutil.rmtree(self.tmp, ignore_errors=True)


def run(body, name=None, budget=110):
    """Run body(test) as a standalone test; exits 0, 1 or 77."""
    name = name or os.path.splitext(os.path.basename(sys.argv[0]))[0]

    def on_alarm(signum, frame):
        traceback.print_stack(frame, file=sys.stdout)
        raise Failure("test exceeded its %d s budget" % budget)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(budget)
    start = now()
    test = None
    code = FAIL
    try:
        test = Test(name)
        body(test)
        code = PASS
    except Skip as e:
        if e.ci_ok:
            print("%s %s" % (SKIP_ALLOWED, e), flush=True)
        print("SKIP %s: %s" % (name, e), flush=True)
        code = SKIP
    except Failure as e:
        print("FAIL %s: %s" % (name, e), flush=True)
    except Exception:
        print("FAIL %s: unexpected exception" % name, flush=True)
        traceback.print_exc(file=sys.stdout)
    finally:
        signal.alarm(0)
        if test is not None:
            test.cleanup(code == FAIL)
    if code == PASS:
        print("PASS %s: %d checks in %.1f s" % (name, test.checks, now() - start),
              flush=True)
    sys.stdout.flush()
    sys.stderr.flush()
    #  skip interpreter teardown: a zmq context with a stuck socket must not
    #  turn a finished test into a hang
    os._exit(code)
