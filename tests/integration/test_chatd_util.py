#!/usr/bin/python3
"""Helpers shared by test_chatd*.py, test_validatord*.py and test_iterate*.py:
start the fake provider and tests/bin/lh_chat_harness (broker + chatd +
validatord in one process) pointed at it, and call services over the bus.

Run as a test itself it checks that the harness comes up and answers
chatd.providers.
"""

import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
import lhtest  # noqa: E402
import lhb  # noqa: E402  (lhtest put tests/proto on the path)
import fake_provider  # noqa: E402

READY = re.compile(r"harness ready on (tcp://\S+) pid (\d+)")
KEY_VARS = ("OLLAMA_API_KEY", "OPENROUTER_API_KEY", "OPENCODE_API_KEY",
            "KIMI_API_KEY", "MOONSHOT_API_KEY")


def provider_sets(fake):
    """chatd settings pointing every provider at the fake, each under its
    own base path so a test can tell which endpoint was hit."""
    return {
        "chatd/ollama_url": fake.url + "/ollama",
        "chatd/ollama_cloud_url": fake.url + "/cloud",
        "chatd/openrouter_url": fake.url + "/openrouter/api/v1",
        "chatd/opencode_url": fake.url + "/opencode/v1",
        "chatd/kimi_url": fake.url + "/kimi/v1",
        "chatd/backoff_ms": 20,
        "chatd/retries": 2,
        "chatd/timeout_ms": 5000,
    }


def harness(t, fake, sets=None, keys=None, services="chatd,validatord",
            workers=2):
    """Start lh_chat_harness with provider keys `keys` ({ENV: value}) and
    no other provider key in its environment; returns (proc, endpoint)."""
    path = os.path.join(t.build, "lh_chat_harness")
    if not os.access(path, os.X_OK):
        raise lhtest.Skip("%s is not built" % path)
    merged = provider_sets(fake)
    merged.update({"broker/hb_ivl": 500, "broker/hb_live": 4,
                   "data/dir": os.path.join(t.tmp, "var%d" % (t.counter + 1))})
    merged.update(sets or {})
    args = [path, "--services", services, "--workers", str(workers)]
    for key, value in merged.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        args += ["--set", "%s=%s" % (key, value)]
    env = dict(os.environ)
    for name in KEY_VARS:
        env.pop(name, None)
    env.update(keys or {})
    t.counter += 1
    proc = lhtest.Proc(args, "harness%d" % t.counter, t.tmp, env)
    t.procs.append(proc)
    m = proc.wait_line(READY, 15.0)
    t.note("harness pid %d (%s) on %s" % (proc.pid, services, m.group(1)))
    return proc, m.group(1)


def peer(t, endpoint, timeout=5.0):
    """A Python LHB/1 peer that has said HELLO (polls for WELCOME in short
    slices rather than one long wait)."""
    t.counter += 1
    p = lhb.Peer(endpoint, name="py%d" % t.counter, hello=False)
    t.peers.append(p)
    p.say_hello()
    deadline = lhtest.now() + timeout
    while p.welcomes == 0:
        if lhtest.now() > deadline:
            raise lhtest.Failure("no WELCOME from %s within %.1f s" % (endpoint, timeout))
        msg = p.pump(0.05)
        if msg is not None:
            p.stash.append(msg)
    return p


def call(p, svc, op, body=None, timeout=15.0, **kw):
    """Call svc.op; returns (status, decoded body)."""
    rep = p.call(svc, op, body, timeout=timeout, dl=int(timeout * 1000), **kw)
    if rep is None:
        raise lhtest.Failure("no reply to %s.%s within %.1f s" % (svc, op, timeout))
    return rep.st, rep.obj


def chat(p, model, content="hi", **extra):
    body = {"model": model, "messages": [{"role": "user", "content": content}]}
    body.update(extra)
    return call(p, "chatd", "chat", body)


def reason(body):
    try:
        return body["error"]["reason"]
    except Exception:
        return ""


def main(t):
    with fake_provider.start() as fake:
        proc, endpoint = harness(t, fake)
        p = peer(t, endpoint)
        st, body = call(p, "chatd", "providers")
        t.check(st == 200, "chatd.providers answers 200", (st, body))
        t.check([x["name"] for x in body["providers"]] == ["ollama"],
                "without keys only local ollama is configured", body)
        st, body = call(p, "validatord", "validate",
                        {"kind": "playbook", "artifact": {}})
        t.check(st == 422 and "Schema" in body, "validatord answers", (st, body))


if __name__ == "__main__":
    lhtest.run(main)
