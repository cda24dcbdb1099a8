#!/usr/bin/python3
"""The tools find the running system by themselves, from any directory,
and say at once when the broker refuses them (docs/tools.md "Finding the
system", "When the handshake fails").

A `lakehouse up` with CURVE on (the default) and a relative data dir
("var", so its certificates are under the directory it runs in) records
itself in LAKEHOUSE_HOME/current. From another directory, with no config
and no option:
- the record names the bound endpoints and the absolute data dir;
- `buscall echo echo` answers;
- `bustap --count 3` prints three lines and exits 0, none of them the
  gateway's health probes, which `bustap --all` shows;
- `bustap --record` then `busreplay FILE` replays the recording: every
  case matches;
- with records off (LAKEHOUSE_HOME=""), a config naming the data dir and
  endpoints is enough: buscall --config, bustap and busreplay with
  LAKEHOUSE_CONFIG;
- `lakehouse ingest` ingests a CSV; `loadmix run` reaches the running
  gateway (on its ephemeral port) and says what it lacks;
- a certificate not in the allow directory, and a wrong server key, are
  refused at once (exit 2), the message naming the certificate or key;
- `lakehouse certs new NAME --role client` writes into the running
  system's certificate and allow directories, and buscall is admitted
  with it at once;
- a `lakehouse node` whose certificate the broker refuses says so at once
  (exit 1), naming the certificate and the running `up`; a second `up`
  on the same endpoint names the running one;
- with tap.cert removed from the allow directory (and SIGHUP), `bustap
  --count 3` fails at once (exit 1), naming tap.cert;
- once `up` stops, its record is gone, and buscall says where it looked
  (exit 64) instead of reaching for another system.
"""

import json
import os
import re
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402

#  A refusal is said at once: well under the 5 s a silent wait used to take
FAST_S = 3.0


def main(t):
    sets = {
        "bus/endpoint": "tcp://127.0.0.1:*",
        "bus/tap": "tcp://127.0.0.1:*",
        "bus/inproc": "inproc://lh-bus-find",
        "gateway/listen": "127.0.0.1:0",
        "actors/run": "echo,storaged,catalogd,ingestd,queryd",
        "broker/hb_ivl": t.hb_ivl,
        "broker/hb_live": t.hb_live,
        "data/dir": "var",
    }
    for actor in sets["actors/run"].split(","):
        sets["actors/%s/workers" % actor] = 1
    up = t.spawn("up", sets)
    m = up.wait_line(lhtest.READY_BROKER, 30)
    up.wait_line(lhtest.READY_UP, 30)
    endpoint, tap = m.group(1), m.group(2)
    data = os.path.realpath(os.path.join(t.tmp, "var"))
    certs = os.path.join(data, "certs")
    t.note("up pid %d on %s, tap %s, data dir %s" % (up.pid, endpoint, tap, data))

    elsewhere = os.path.join(t.tmp, "elsewhere")
    os.mkdir(elsewhere)
    env = {k: v for k, v in os.environ.items() if k != "LAKEHOUSE_CONFIG"}

    def tool(name, *args, timeout=60, environ=None):
        program = t.lakehouse if name == "lakehouse" else os.path.join(t.build, name)
        start = lhtest.now()
        done = subprocess.run([program] + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout, cwd=elsewhere,
                              env=environ or env)
        return (done.returncode, done.stdout.decode(), done.stderr.decode(),
                lhtest.now() - start)

    def reader(*args, environ=None):
        t.counter += 1
        proc = lhtest.Proc([os.path.join(t.build, "bustap")] + list(args),
                           "bustap%d" % t.counter, t.tmp, env=environ or env, cwd=elsewhere)
        t.procs.append(proc)
        return proc

    def lines(proc):
        with proc.cond:
            return [json.loads(line) for line in proc.lines if line.startswith("{")]

    def drive(proc, timeout=15.0):
        """echo calls until the reader has seen enough and exited"""
        deadline = lhtest.now() + timeout
        index = 0
        while proc.alive() and lhtest.now() < deadline:
            index += 1
            code, out, err, _ = tool("buscall", "echo", "echo", json.dumps({"i": index}))
            if code != 0:
                raise lhtest.Failure("buscall failed while driving bustap: %s" % err)
        try:
            return proc.popen.wait(5)
        except subprocess.TimeoutExpired:
            return None

    #  The record
    record = os.path.join(t.home, "current")
    with open(record) as f:
        text = f.read()
    t.check(endpoint in text and tap in text and data in text and str(up.pid) in text,
            "up recorded its bound endpoints and absolute data dir in LAKEHOUSE_HOME/current",
            text)

    #  buscall, no options, from elsewhere
    code, out, err, _ = tool("buscall", "echo", "echo", '{"hello":"from elsewhere"}')
    t.check(code == 0 and json.loads(out) == {"hello": "from elsewhere"},
            "buscall with no options answers from another directory", (code, out, err))

    #  bustap --count 3, no options: three lines, none a health probe
    tap3 = reader("--count", "3")
    code = drive(tap3)
    shown = lines(tap3)
    t.check(code == 0 and len(shown) == 3, "bustap --count 3 with no options prints three "
            "lines and exits 0", (code, shown, tap3.tail()))
    t.check(not [o for o in shown if o.get("src", "").endswith("-health")],
            "the gateway's health probes are hidden by default", shown)

    #  bustap --all shows them (they come every second)
    probes = reader("--all", "--service", "broker", "--count", "2")
    try:
        probes.popen.wait(10)
    except subprocess.TimeoutExpired:
        pass
    shown = lines(probes)
    t.check(probes.popen.returncode == 0 and shown
            and all(o["svc"] == "broker" and o["op"] in ("ping", "services") for o in shown)
            and any(o.get("src", "").endswith("-health") for o in shown),
            "bustap --all shows the gateway's broker.ping / broker.services probes",
            (probes.popen.returncode, shown))

    #  bustap --record, then busreplay FILE with no options
    path = os.path.join(elsewhere, "echo.lhrec")
    rec = reader("--record", path, "--count", "4")
    code = drive(rec)
    t.check(code == 0 and os.path.getsize(path) > 0, "bustap --record recorded two calls",
            (code, rec.tail()))
    code, out, err, _ = tool("busreplay", path)
    t.check(code == 0 and re.search(r"2 case\(s\): 2 match, 0 differ", out),
            "busreplay FILE with no options replays the recording, every case matching",
            (code, out, err))

    #  Records off: a config naming the data dir and the endpoints is
    #  enough, through --config or LAKEHOUSE_CONFIG, from any directory
    own = os.path.join(t.tmp, "own-tools.cfg")
    with open(own, "w") as f:
        f.write(lhtest.zpl({"log/level": "warn", "data/dir": data, "bus/endpoint": endpoint,
                            "bus/tap": tap}))
    unrecorded = dict(env, LAKEHOUSE_HOME="")
    by_env = dict(unrecorded, LAKEHOUSE_CONFIG=own)
    code, out, err, _ = tool("buscall", "--config", own, "echo", "echo", '{"by": "config"}',
                             environ=unrecorded)
    t.check(code == 0 and json.loads(out) == {"by": "config"},
            "records off: buscall --config FILE finds CERTS/admin.cert and the broker's key",
            (code, out, err))
    tap2 = reader("--count", "2", environ=by_env)
    code = drive(tap2)
    t.check(code == 0 and len(lines(tap2)) == 2,
            "records off: bustap with LAKEHOUSE_CONFIG finds CERTS/tap.cert and the key",
            (code, tap2.tail()))
    code, out, err, _ = tool("busreplay", path, environ=by_env)
    t.check(code == 0 and re.search(r"2 case\(s\): 2 match, 0 differ", out),
            "records off: busreplay with LAKEHOUSE_CONFIG replays the recording", (code, out, err))

    #  A client command of the launcher
    csv = os.path.join(elsewhere, "people.csv")
    with open(csv, "w") as f:
        f.write("id,name,city\n1,Ann,Toledo\n2,Bo,Dayton\n3,Cy,Akron\n")
    code, out, err, _ = tool("lakehouse", "ingest", csv, "--name", "people")
    t.check(code == 0 and json.loads(out.strip().splitlines()[-1]).get("row_count") == 3,
            "lakehouse ingest with no options ingests from another directory", (code, out, err))
    t.check(not os.path.exists(os.path.join(elsewhere, "var")),
            "a client command creates no data dir where it runs")

    #  loadmix finds the running gateway (an ephemeral port) the same way
    listen = re.search(r'listen = "(http://[^"]+)"', text)
    code, out, err, _ = tool("loadmix", "run", "--duration", "1")
    t.check(listen and listen.group(1) != "http://127.0.0.1:3110" and code != 0
            and "the gateway at %s: " % listen.group(1) in err and "no_such_service" in err,
            "loadmix with no options reaches the running up's gateway (and says vectord is "
            "missing)", (listen and listen.group(1), code, err))

    #  A certificate the broker does not know: refused at once, named
    code, out, err, _ = tool("lakehouse", "certs", "new", "stranger", "--role", "admin",
                             "--out", elsewhere)
    t.check(code == 0, "a certificate outside the allow directory", err)
    stranger = os.path.join(elsewhere, "stranger.cert")
    code, out, err, took = tool("buscall", "--cert", stranger, "echo", "echo", "{}")
    t.check(code == 2 and out == "" and stranger in err and "allow directory" in err
            and took < FAST_S,
            "buscall with a certificate not in the allow dir fails at once, naming it",
            (code, err, took))
    #  A wrong server key: refused at once, the key's source named
    wrong = os.path.join(certs, "allow", "admin.cert")
    code, out, err, took = tool("buscall", "--server-key", wrong, "echo", "echo", "{}")
    t.check(code == 2 and out == "" and wrong in err and "server key" in err and took < FAST_S,
            "buscall with a wrong server key fails at once, saying so", (code, err, took))

    #  certs new, no options, from elsewhere: in the running system's
    #  certs dir and its allow dir, so the broker takes it at once
    code, out, err, _ = tool("lakehouse", "certs", "new", "carol", "--role", "client")
    carol = os.path.join(certs, "carol.cert")
    t.check(code == 0 and os.path.exists(carol)
            and os.path.exists(os.path.join(certs, "allow", "carol.cert"))
            and not os.path.exists(os.path.join(elsewhere, "var")),
            "lakehouse certs new with no options writes into the running system's certs "
            "and allow dirs", (code, out, err))
    code, out, err, _ = tool("buscall", "--cert", carol, "echo", "echo", '{"as": "carol"}')
    t.check(code == 0 and json.loads(out) == {"as": "carol"},
            "the new client certificate is admitted at once", (code, out, err))

    #  A node whose certificate the broker does not know: said at once,
    #  naming the certificate and the running instance, exit 1
    node_cfg = os.path.join(elsewhere, "node.cfg")
    with open(node_cfg, "w") as f:
        f.write(lhtest.zpl({"log/level": "warn", "data/dir": os.path.join(elsewhere, "nodevar"),
                            "bus/endpoint": endpoint,
                            "bus/cert": os.path.join(elsewhere, "stranger.cert"),
                            "bus/server_key": os.path.join(certs, "broker.cert")}))
    code, out, err, took = tool("lakehouse", "--config", node_cfg, "node", "--actors", "echo")
    t.check(code == 1 and stranger in err and "allow directory" in err
            and "lakehouse up` (pid %d" % up.pid in err and took < FAST_S + 2,
            "a node with a certificate the broker refuses says so at once, naming it and "
            "the running up, exit 1", (code, err, took))
    #  `lakehouse mcp` with that certificate: the same, before any MCP
    code, out, err, took = tool("lakehouse", "--config", node_cfg, "mcp")
    t.check(code == 1 and out == "" and stranger in err and "allow directory" in err
            and took < FAST_S + 2,
            "lakehouse mcp with a certificate the broker refuses says so at once, naming "
            "it, exit 1", (code, err, took))
    #  A second `up` on the same endpoints names the running one
    second_cfg = os.path.join(elsewhere, "second.cfg")
    with open(second_cfg, "w") as f:
        f.write(lhtest.zpl({"log/level": "warn", "data/dir": os.path.join(elsewhere, "second"),
                            "bus/endpoint": endpoint, "actors/run": "echo"}))
    code, out, err, took = tool("lakehouse", "--config", second_cfg, "up")
    t.check(code != 0 and "in use" in err and "lakehouse up` (pid %d" % up.pid in err,
            "a second up on the same endpoint fails, naming the running one", (code, err))

    #  The tap certificate revoked: bustap fails at once
    os.remove(os.path.join(certs, "allow", "tap.cert"))
    os.kill(up.pid, signal.SIGHUP)
    code, out, err, took = tool("bustap", "--count", "3")
    t.check(code == 1 and out == "" and os.path.join(certs, "tap.cert") in err
            and "allow directory" in err and took < FAST_S,
            "bustap with its certificate out of the allow list fails at once, naming it",
            (code, err, took))

    #  Stopped: the record goes, and nothing else is reached for
    t.check(up.term(10) == 0, "up stops cleanly on SIGTERM")
    t.check(not os.path.exists(record), "the record is removed when up stops")
    code, out, err, took = tool("buscall", "echo", "echo", "{}")
    t.check(code == 64 and "built-in defaults" in err and "--config" in err,
            "with no system running, buscall says where it looked (exit 64)", (code, err))
    #  A config naming an endpoint where nothing answers: each tool names
    #  the option that points elsewhere, its own (buscall --broker, bustap
    #  --tap) or --config for the lakehouse commands, which have no other
    idle = os.path.join(elsewhere, "idle.cfg")
    with open(idle, "w") as f:
        f.write(lhtest.zpl({"log/level": "warn", "bus/curve": "false",
                            "bus/endpoint": "tcp://127.0.0.1:%d" % lhtest.free_port(),
                            "bus/tap": "tcp://127.0.0.1:%d" % lhtest.free_port()}))
    for args, flag in ((["buscall", "--config", idle, "echo", "echo", "{}"], "--broker"),
                       (["bustap", "--config", idle, "--count", "1"], "--tap"),
                       (["lakehouse", "--config", idle, "mcp"], "--config FILE"),
                       (["lakehouse", "--config", idle, "ingest", "--name", "x", idle],
                        "--config FILE")):
        code, out, err, took = tool(*args)
        t.check(code != 0 and "nothing answers" in err and flag + " " in err
                and (flag == "--config FILE" or "--config FILE" not in err),
                "%s with nothing listening names %s" % (" ".join(args[:1] + args[3:4]), flag),
                (code, err))


if __name__ == "__main__":
    lhtest.run(main)
