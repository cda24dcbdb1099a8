#!/usr/bin/python3
"""Three hosts with network namespaces, CURVE on every link.

Host A is this test's own network namespace: it runs the broker (bound
on 0.0.0.0, CURVE) and the client. Hosts B and C are namespaces created
here (`ip netns add`), each joined to A by a veth pair (10.77.B.0/24,
10.77.C.0/24), each running `lakehouse node` with the echo service under
its own certificate (node-b, node-c, role actor). The client on A sends
5,000 idempotent requests, 8 in flight; halfway, B's node is killed (-9)
and its veth taken down. Every request must be answered exactly once
(C serves the redelivered ones), and broker.workers must show B gone
within hb_ivl x hb_live + 1 s. Then B's link comes up and its node
starts again: it takes load without any restart elsewhere.

Skips (exit 77) only if network namespaces cannot be created here (not
root, no CAP_NET_ADMIN, no `ip`). The namespaces and veths are deleted
whatever happens.
"""

import os
import shutil
import subprocess

import lhtest
import test_curve_util as cu
lhb = lhtest.lhb

TOTAL = 5000
WINDOW = 8


def ip(*args, check=True):
    done = subprocess.run(["ip"] + list(args), capture_output=True, text=True, timeout=10)
    if check and done.returncode != 0:
        raise lhtest.Failure("ip %s: %s" % (" ".join(args), done.stderr.strip()))
    return done


class Net:
    """Namespaces B and C, each with a veth pair to this namespace (A)."""

    def __init__(self):
        tag = "%d" % (os.getpid() % 100000)
        self.ns = {"b": "lhmh-b-" + tag, "c": "lhmh-c-" + tag}
        self.veth = {"b": "lhb" + tag, "c": "lhc" + tag}
        self.subnet = {"b": "10.77.11", "c": "10.77.12"}
        self.made = []

    def setup(self):
        if not shutil.which("ip"):
            raise lhtest.Skip("no `ip` command (iproute2)")
        probe = ip("netns", "add", self.ns["b"], check=False)
        if probe.returncode != 0:
            raise lhtest.Skip("cannot create network namespaces here (%s)"
                              % probe.stderr.strip())
        self.made.append(("netns", self.ns["b"]))
        ip("netns", "add", self.ns["c"])
        self.made.append(("netns", self.ns["c"]))
        for host in ("b", "c"):
            outer, inner = self.veth[host] + "a", self.veth[host] + "b"
            ip("link", "add", outer, "type", "veth", "peer", "name", inner)
            self.made.append(("link", outer))
            ip("link", "set", inner, "netns", self.ns[host])
            ip("addr", "add", self.subnet[host] + ".1/24", "dev", outer)
            ip("link", "set", outer, "up")
            ns = self.ns[host]
            ip("netns", "exec", ns, "ip", "addr", "add", self.subnet[host] + ".2/24",
               "dev", inner)
            ip("netns", "exec", ns, "ip", "link", "set", inner, "up")
            ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")

    def link(self, host, up):
        ip("link", "set", self.veth[host] + "a", "up" if up else "down")

    def teardown(self):
        for kind, name in reversed(self.made):
            if kind == "link":
                ip("link", "del", name, check=False)
            else:
                ip("netns", "del", name, check=False)


def spawn_in(t, ns, mode, sets, extra=()):
    """Start `lakehouse MODE` inside namespace ns (ip netns exec)."""
    t.counter += 1
    args = ["ip", "netns", "exec", ns] + t._args(mode, sets, None, extra)
    env = dict(os.environ)
    env.pop("LAKEHOUSE_CONFIG", None)
    proc = lhtest.Proc(args, "%s-%s%d" % (ns, mode, t.counter), t.tmp, env, cwd=t.tmp)
    t.procs.append(proc)
    return proc


def main(t):
    if os.geteuid() != 0:
        raise lhtest.Skip("network namespaces need root (CAP_NET_ADMIN)")
    net = Net()
    try:
        net.setup()
        run(t, net)
    finally:
        for proc in t.procs:
            proc.kill9()
        net.teardown()


def run(t, net):
    sec = cu.Secure(t, endpoint="tcp://0.0.0.0:*")
    port = sec.broker.port
    admin = cu.curve_peer(t, "tcp://127.0.0.1:%d" % port, sec.admin, sec.server)
    t.keep.append(admin)
    certs = {host: sec.cert("node-" + host, "actor") for host in ("b", "c")}

    def start_node(host):
        sets = sec.node_sets(certs[host])
        sets.update({
            "bus/endpoint": "tcp://%s.1:%d" % (net.subnet[host], port),
            "bus/server_key": sec.server,
            "data/dir": os.path.join(t.tmp, "var-" + host),
            "actors/echo/workers": 2,
        })
        proc = spawn_in(t, net.ns[host], "node", sets, extra=("--actors", "echo"))
        proc.wait_line(lhtest.READY_NODE, 15)
        t.note("node %s pid %d ready in %s" % (host, proc.pid, net.ns[host]))
        return proc

    nodes = {host: start_node(host) for host in ("b", "c")}
    t.wait_workers(admin, "echo", 4)

    def srcs():
        return sorted({w["src"] for w in lhb.workers_of(admin, "echo")})
    t.check(srcs() == ["node-b", "node-c"], "workers on B and C, named by their certificates",
            srcs())

    client = cu.curve_peer(t, "tcp://127.0.0.1:%d" % port, sec.cert("mh-client", "client"),
                           sec.server)
    answered = {}
    duplicates = []
    by_src = {}
    next_n = 1
    inflight = {}
    killed_at = None
    gone_after = None
    b_back = False
    b_served_after_return = 0
    limit = (t.hb_ivl * t.hb_live) / 1000.0 + 1.0

    while len(answered) < TOTAL:
        while len(inflight) < WINDOW and next_n <= TOTAL:
            rid = client.request("echo", "echo", {"n": next_n}, idem="mh-%d" % next_n,
                                 dl=15000)
            inflight[rid] = next_n
            next_n += 1
        rep = client.next_reply(10)
        if rep is None:
            raise lhtest.Failure("no reply within 10 s (%d answered, %d in flight)"
                                 % (len(answered), len(inflight)))
        if rep.t != "REP":
            continue
        n = inflight.pop(rep.h["cid"], None)
        if n is None:
            duplicates.append(rep.h)
            continue
        if rep.st != 200 or rep.obj.get("n") != n:
            raise lhtest.Failure("request %d answered %r %r" % (n, rep.st, rep.obj))
        if n in answered:
            duplicates.append(rep.h)
        answered[n] = rep.h.get("src")
        by_src[rep.h.get("src")] = by_src.get(rep.h.get("src"), 0) + 1
        if b_back and rep.h.get("src") == "node-b":
            b_served_after_return += 1

        if killed_at is None and len(answered) >= TOTAL // 2:
            t.check(by_src.get("node-b", 0) > 0 and by_src.get("node-c", 0) > 0,
                    "before the failure both B and C served (%r)" % by_src)
            nodes["b"].kill9()
            net.link("b", False)
            killed_at = lhb.now()
            t.note("killed B's node and took its link down after %d answers" % len(answered))
        if killed_at is not None and gone_after is None:
            if "node-b" not in srcs():
                gone_after = lhb.now() - killed_at
                t.check(gone_after <= limit,
                        "broker.workers shows B gone %.2f s after the kill (limit %.1f s)"
                        % (gone_after, limit))
            elif lhb.now() - killed_at > limit:
                raise lhtest.Failure("B still listed %.2f s after the kill: %r"
                                     % (lhb.now() - killed_at, srcs()))
        if gone_after is not None and not b_back and len(answered) >= TOTAL * 3 // 4:
            net.link("b", True)
            nodes["b"] = start_node("b")
            t.wait_workers(admin, "echo", 4)
            b_back = True
            t.note("B is back after %d answers" % len(answered))
        t.tick()

    t.check(len(answered) == TOTAL, "all %d requests answered" % TOTAL, len(answered))
    t.check(not duplicates, "none answered twice", duplicates[:3])
    t.check(b_served_after_return > 0,
            "B took load again after its return (%d replies)" % b_served_after_return, by_src)
    stats = t.stats(admin)
    t.note("replies by worker host: %r, redelivered %d" % (by_src, stats.get("redelivered", 0)))


if __name__ == "__main__":
    lhtest.run(main, budget=150)
