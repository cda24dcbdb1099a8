#!/usr/bin/python3
"""validatord.iterate limits and liveness:

- the retry prompt is bounded (validatord/prompt_max_tokens): a huge failed
  answer is cut to fit, marked "[... cut]";
- a model slower than the broker's liveness window (hb_ivl x hb_live) does
  not make the chatd or validatord worker look dead: both heartbeat while
  they wait, and the call succeeds;
- max_iterations above validatord/max_iterations_cap is refused with 400.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402
import test_chatd_util as u  # noqa: E402
import fake_provider  # noqa: E402


def main(t):
    with fake_provider.start() as fake:
        body(t, fake)


def body(t, fake):
    sessions = os.path.join(t.tmp, "sessions.jsonl")
    #  Liveness window 400 ms x 3 = 1.2 s; the slow model takes 3 s
    proc, endpoint = u.harness(t, fake, sets={
        "validatord/session_log": sessions, "validatord/prompt_max_tokens": 250,
        "validatord/max_iterations_cap": 5, "broker/hb_ivl": 400, "broker/hb_live": 3})
    p = u.peer(t, endpoint)
    t.keep.append(p)

    #  Bounded retry prompt
    huge = "I think " + "blah " * 2000
    fake.script("bound", [{"content": huge},
                          {"content": '{"fingerprint":"f","operation":"fill: x","endorsed_names":["a"]}'}])
    st, reply = u.call(p, "validatord", "iterate",
                       {"kind": "playbook", "model": "bound", "prompt": "Write a playbook " + "p" * 200})
    t.check(st == 200 and reply["iterations"] == 2, "bounded prompt: accepted on the retry", (st, reply))
    second = fake.requests()[1]["body"]["messages"]
    size = sum(len(m["content"]) for m in second)
    t.check(second[1]["role"] == "assistant" and second[1]["content"].endswith("[... cut]")
            and size <= 250 * 4 + 20, "the failed answer is cut to fit %d chars (%d)" % (250 * 4, size),
            [len(m["content"]) for m in second])
    t.check(len(reply["history"][0]["response"]) == 2000, "history keeps 2000 characters of an answer")

    #  A slow model: workers heartbeat while waiting
    fake.reset()
    fake.script("slow", [{"content": '{"fingerprint":"f","operation":"fill: x","endorsed_names":["a"]}',
                          "delay_ms": 3000}])
    rep = p.call("validatord", "iterate", {"kind": "playbook", "model": "slow", "prompt": "p"},
                 timeout=15.0, dl=15000)
    t.check(rep is not None and rep.st == 200 and rep.obj["iterations"] == 1,
            "a model slower than the liveness window: 200", rep and (rep.st, rep.obj))
    stats = t.stats(p)
    lost = json.dumps(stats)
    t.check("worker_lost" not in lost, "no worker was lost", stats.get("services", {}).get("validatord"))
    workers = u.call(p, "broker", "workers")[1]["workers"]
    t.check(sum(1 for w in workers if w["service"] == "chatd") == 2
            and sum(1 for w in workers if w["service"] == "validatord") == 2,
            "all chatd and validatord workers still registered", workers)

    #  max_iterations above the cap
    st, reply = u.call(p, "validatord", "iterate", {"kind": "fill", "model": "m", "prompt": "x",
                                                    "max_iterations": 6})
    t.check(st == 400 and "1 to 5" in u.reason(reply), "max_iterations over the cap: 400", (st, reply))
    with open(sessions) as f:
        rows = [json.loads(line) for line in f]
    t.check(len(rows) == 2, "two iterate calls, two rows", len(rows))


if __name__ == "__main__":
    lhtest.run(main)
