#!/usr/bin/python3
"""test_distilld_replay - distilld.replay against the real chatd and the
fake provider (SPEC 5.9, docs/distilld.md "replay"):

- the RAG export is built from tests/kb (distilld.run over the bus);
- a passing answer: chatd asked for tier local_fast (routed by chatd to
  the model models/local_fast names), the prompt carries the accepted
  exemplars, the partial warnings and the validation steps retrieved;
  outcome passed, one replay_run.v1 row appended with its fields;
- a hedging answer fails the gate; with allow_escalation it escalates to
  the escalation tier (models/cloud_judge's model is asked) and passes;
  with local_only as well it does not escalate (one provider request);
- no_retrieval builds the prompt without exemplars, warnings or steps;
- dry_run calls no provider and answers the same bytes twice;
- the provider down: 500 dependency_failed, and the row still appended
  (outcome error);
- `lakehouse distill replay` from the shell prints the same reply shape.
"""

import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402
import test_chatd_util as u  # noqa: E402
import fake_provider  # noqa: E402

KB = os.path.join(HERE, "..", "kb")
TASK = "The nightly export job is too slow"
GOOD = ("Batch the export writes 1000 rows at a time and add the statements.created_at index; "
        "the nightly export then finishes in under ten minutes.")
HEDGE = ("I'm not sure, but maybe batching the export writes could make the nightly export "
         "finish in fewer minutes.")
ROW_FIELDS = {"schema", "replay_id", "timestamp", "trace_id", "task", "task_hash", "flags",
              "retrieval", "prompt", "prompt_sha256", "prompt_chars", "attempts", "escalated",
              "outcome", "duration_ms"}


def rows(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def prompts(fake, model):
    """User prompts the provider received for model, in order."""
    out = []
    for req in fake.requests("/api/chat"):
        body = req["body"]
        if body.get("model") == model:
            out.append(body["messages"][-1]["content"])
    return out


def main(t):
    with fake_provider.start() as fake:
        body(t, fake)


def body(t, fake):
    root = os.path.join(t.tmp, "kb")
    shutil.copytree(KB, root)
    proc, endpoint = u.harness(t, fake, services="chatd,distilld", workers=2, sets={
        "distilld/root": root,
        "models/local_fast": "ollama/m-local",
        "models/cloud_judge": "ollama/m-escalate",
    })
    p = u.peer(t, endpoint)
    log = os.path.join(root, "replay", "replay_runs.jsonl")

    st, run = u.call(p, "distilld", "run", {"recorded_at": "2026-02-01T00:00:00Z"}, timeout=60.0)
    t.check(st == 200 and run["export"]["rag"]["written"] == 16,
            "distilld.run builds the RAG export (16 playbooks)", (st, run))

    #  A passing answer
    fake.script("m-local", [{"content": GOOD}], repeat=True)
    st, reply = u.call(p, "distilld", "replay", {"task": TASK}, timeout=30.0)
    t.check(st == 200 and reply["outcome"] == "passed" and reply["passed"] is True
            and reply["escalated"] is False and reply["answer"] == GOOD
            and reply["tier"] == "local_fast" and reply["provider"] == "ollama",
            "a passing answer: outcome passed, not escalated, from tier local_fast", (st, reply))
    sent = prompts(fake, "m-local")
    t.check(len(sent) == 1, "chatd routed tier local_fast to models/local_fast (m-local)",
            [r["body"].get("model") for r in fake.requests()])
    prompt = sent[0]
    t.check(TASK in prompt and "Accepted answers to similar tasks" in prompt
            and "Batch the export writes 1000 rows at a time" in prompt
            and "Partially accepted answers" in prompt
            and "- Verify the nightly export finishes in under ten minutes" in prompt
            and "- assert the export query plan uses the new index" in prompt,
            "the prompt carries exemplars, warnings and the validation steps", prompt)
    t.check(reply["retrieval"]["exemplars"] == 2 and reply["retrieval"]["warnings"] == 1
            and len(reply["retrieval"]["hits"]) <= 8,
            "retrieval: at most 8 hits, 2 accepted exemplars, 1 partial warning", reply["retrieval"])
    logged = rows(log)
    t.check(len(logged) == 1, "one replay_run.v1 row appended", logged)
    row = logged[0]
    t.check(ROW_FIELDS <= set(row) and row["schema"] == "replay_run.v1" and row["outcome"] == "passed"
            and row["answer"] == GOOD and row["replay_id"] == reply["replay_id"]
            and row["attempts"][0]["gate"]["passed"] is True and row["escalated"] is False
            and row["flags"] == {"local_only": False, "allow_escalation": False,
                                 "no_retrieval": False, "dry_run": False},
            "the row has every documented field", row)

    #  A hedging answer: fails; escalates when allowed; not when local_only
    fake.reset()
    fake.script("m-local", [{"content": HEDGE}], repeat=True)
    fake.script("m-escalate", [{"content": GOOD}], repeat=True)
    st, reply = u.call(p, "distilld", "replay", {"task": TASK}, timeout=30.0)
    gate = reply["attempts"][0]["gate"]
    t.check(st == 200 and reply["outcome"] == "failed" and reply["passed"] is False
            and reply["escalated"] is False and gate["hedge"] == "i'm not sure",
            "a hedging answer fails the gate (hedge named); no escalation unless allowed", (st, reply))
    st, reply = u.call(p, "distilld", "replay", {"task": TASK, "allow_escalation": True}, timeout=30.0)
    t.check(st == 200 and reply["outcome"] == "passed" and reply["escalated"] is True
            and reply["tier"] == "cloud_judge" and reply["answer"] == GOOD
            and [a["tier"] for a in reply["attempts"]] == ["local_fast", "cloud_judge"],
            "with allow_escalation it escalates to the escalation tier and passes", (st, reply))
    t.check(len(prompts(fake, "m-escalate")) == 1, "the escalation tier's model was asked once")
    st, reply = u.call(p, "distilld", "replay", {"task": TASK, "allow_escalation": True,
                                                 "local_only": True}, timeout=30.0)
    t.check(st == 200 and reply["outcome"] == "failed" and reply["escalated"] is False
            and len(reply["attempts"]) == 1,
            "with local_only it does not escalate", (st, reply))
    t.check(len(prompts(fake, "m-escalate")) == 1 and len(prompts(fake, "m-local")) == 3,
            "local_only: no request to the escalation model")
    logged = rows(log)
    t.check([r["outcome"] for r in logged[1:]] == ["failed", "passed", "failed"]
            and [r["escalated"] for r in logged[1:]] == [False, True, False],
            "one row per run, outcomes failed / passed (escalated) / failed", logged[1:])

    #  no_retrieval
    fake.reset()
    fake.script("m-local", [{"content": GOOD}], repeat=True)
    st, reply = u.call(p, "distilld", "replay", {"task": TASK, "no_retrieval": True}, timeout=30.0)
    prompt = prompts(fake, "m-local")[0]
    t.check(st == 200 and TASK in prompt and "Accepted answers" not in prompt
            and "Batch the export" not in prompt and "validation steps" not in prompt
            and reply["retrieval"] is None,
            "no_retrieval: the prompt has the task and no exemplar, warning or step", prompt)

    #  dry_run: no provider, the same bytes twice
    fake.reset()
    first = p.call("distilld", "replay", {"task": TASK, "dry_run": True}, timeout=15.0, dl=15000)
    second = p.call("distilld", "replay", {"task": TASK, "dry_run": True}, timeout=15.0, dl=15000)
    t.check(first.st == 200 and first.obj["outcome"] == "dry_run" and first.body == second.body
            and "Batch the export writes" in first.obj["prompt"] and fake.requests() == [],
            "dry_run answers the same bytes twice and calls no provider",
            (first.st, first.obj, len(fake.requests())))

    #  The provider down
    fake.set_down(True)
    st, reply = u.call(p, "distilld", "replay", {"task": TASK}, timeout=30.0)
    t.check(st in (500, 503) and reply["error"]["kind"] in ("dependency_failed", "dependency_unavailable")
            and "chatd" in reply["error"]["reason"],
            "the provider down: the dependency error names chatd", (st, reply))
    t.check(rows(log)[-1]["outcome"] == "error", "and the row is appended with outcome error",
            rows(log)[-1])
    fake.set_down(False)

    #  From the shell
    fake.script("m-local", [{"content": GOOD}], repeat=True)
    done = subprocess.run([t.lakehouse, "--set", "bus/endpoint=%s" % endpoint, "--set", "bus/plain=true",
                           "--set", "bus/curve=false", "--set", "data/dir=%s" % os.path.join(t.tmp, "cli"),
                           "distill", "replay", "--task", TASK, "--local-only"],
                          capture_output=True, text=True, timeout=60)
    reply = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
    t.check(reply is not None and reply["outcome"] == "passed" and reply["answer"] == GOOD,
            "lakehouse distill replay --task ... --local-only prints the reply", (done.returncode, done.stderr[-300:]))
    t.check(rows(log)[-1]["flags"]["local_only"] is True, "its row records local_only")


if __name__ == "__main__":
    lhtest.run(main, budget=150)
