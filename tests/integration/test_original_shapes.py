#!/usr/bin/python3
"""The original system's field names and shapes, accepted and produced
beside ours (SPEC 6: "accept both, answer in ours"), through the real
gateway in `lakehouse up` against the fake provider. One check per alias:

- vectord create: {"name", "dims", "distance"} makes an index equal to
  {"name", "dim", "metric"} (the same info, the same search answers), for
  cosine and l2; a bad "distance" is a 400 naming "distance";
- chat: {"model": "M", "provider": "ollama_cloud"} goes to Ollama Cloud as
  "ollama_cloud/M" would; a provider the model's prefix contradicts, or an
  unknown one, is a 400 naming "provider";
- iterate: "provider" is honoured (the rounds go to Ollama Cloud, the
  session row says ollama_cloud); every history item carries the
  original's "raw" (the model's output) and "status" (accepted, invalid,
  no_json, infra_error) beside ours (iteration from 1, verdict_kind,
  error, response);
- the session log: attempts[].iteration counts from 0 and every attempt
  carries span_id "" (tracing is off), schema session.iterate.v1;
- an iterate naming an unknown provider is a 400 and writes no row;
- validate: a refusal is the original's tagged ValidationError
  ({"Consistency": {"reason"}}), 422, not wrapped in our error body.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
import lhtest                    # noqa: E402
import test_gateway_util as gw   # noqa: E402
import fake_provider             # noqa: E402

ROSTER = [
    {"candidate_id": "W-1", "name": "Ann Lee", "city": "Toledo", "state": "OH",
     "role": "forklift", "status": "active"},
    {"candidate_id": "W-2", "name": "Bo Diaz", "city": "Toledo", "state": "OH",
     "role": "forklift", "status": "active"},
]
CONTEXT = {"target_count": 1, "city": "Toledo", "state": "OH", "role": "forklift",
           "client_id": "C-1"}


def fill(cid, name):
    return "```json\n" + json.dumps({"fills": [{"candidate_id": cid, "name": name}]}) + "\n```"


def main(t):
    with fake_provider.start() as fake:
        body(t, fake)


def body(t, fake):
    roster = lhtest.write_jsonl(os.path.join(t.tmp, "roster.jsonl"), ROSTER)
    sessions = os.path.join(t.tmp, "sessions.jsonl")
    for name in ("OPENROUTER_API_KEY", "OPENCODE_API_KEY", "KIMI_API_KEY", "MOONSHOT_API_KEY"):
        os.environ.pop(name, None)
    os.environ["OLLAMA_API_KEY"] = "fake-cloud-key"
    _, h = gw.up(t, "storaged,vectord,chatd,validatord", workers=2, sets={
        "chatd/ollama_url": fake.url + "/ollama",
        "chatd/ollama_cloud_url": fake.url + "/cloud",
        "chatd/backoff_ms": 20, "chatd/retries": 1, "chatd/timeout_ms": 10000,
        "validatord/roster": roster, "validatord/session_log": sessions})

    def call(method, path, doc=None, timeout=30.0):
        data = None if doc is None else json.dumps(doc).encode()
        st, _, raw = h.request(method, path, data,
                               {"Content-Type": "application/json"} if data else None,
                               timeout=timeout)
        return st, (json.loads(raw) if raw else None)

    def rows():
        if not os.path.exists(sessions):
            return []
        with open(sessions, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    #  vectord: dims/distance make the index dim/metric make
    for metric in ("cosine", "l2"):
        orig, ours = "orig-" + metric, "ours-" + metric
        st1, made1 = call("POST", "/v1/vectors/index", {"name": orig, "dims": 8, "distance": metric})
        st2, made2 = call("POST", "/v1/vectors/index", {"name": ours, "dim": 8, "metric": metric})
        st3, info1 = call("GET", "/v1/vectors/index/" + orig)
        st4, info2 = call("GET", "/v1/vectors/index/" + ours)
        same = lambda a, b: ({k: v for k, v in a.items() if k not in ("name", "created_ms")}
                             == {k: v for k, v in b.items() if k not in ("name", "created_ms")})
        t.check(st1 == st2 == 201 and st3 == st4 == 200 and same(made1, made2)
                and same(info1, info2) and info1["dim"] == 8 and info1["metric"] == metric,
                "vectord: {dims: 8, distance: %s} creates the index {dim: 8, metric: %s} does"
                % (metric, metric), (made1, made2, info1, info2))
        items = [{"id": "a", "vector": [1, 0, 0, 0, 0, 0, 0, 0]},
                 {"id": "b", "vector": [0.5, 0.5, 0, 0, 0, 0, 0, 0]}]
        answers = []
        for name in (orig, ours):
            call("POST", "/v1/vectors/index/%s/add" % name, {"items": items})
            st, hits = call("POST", "/v1/vectors/index/%s/search" % name,
                            {"vector": [0.9, 0.2, 0, 0, 0, 0, 0, 0], "k": 2})
            answers.append((st, hits))
        t.check(answers[0] == answers[1] and answers[0][0] == 200,
                "vectord: both %s indexes answer a search alike" % metric, answers)
    st, doc = call("POST", "/v1/vectors/index", {"name": "bad", "dims": 8, "distance": "dot"})
    t.check(st == 400 and doc["error"].get("field") == "distance",
            "vectord: a bad distance is a 400 naming 'distance'", (st, doc))

    #  chat: a provider beside the model
    fake.script("llama3", [{"content": "from the cloud"}])
    st, doc = call("POST", "/v1/chat", {"model": "llama3", "provider": "ollama_cloud",
                                        "messages": [{"role": "user", "content": "hi"}]})
    sent = fake.requests()[-1]
    t.check(st == 200 and doc["provider"] == "ollama_cloud" and doc["content"] == "from the cloud"
            and sent["path"] == "/cloud/api/chat" and sent["body"]["model"] == "llama3"
            and sent["headers"].get("authorization") == "Bearer fake-cloud-key",
            "chat: {model: M, provider: ollama_cloud} goes to Ollama Cloud as M", (st, doc, sent))
    for provider, model in (("ollama_cloud", "ollama/llama3"), ("openai", "llama3")):
        st, doc = call("POST", "/v1/chat", {"model": model, "provider": provider,
                                            "messages": [{"role": "user", "content": "hi"}]})
        t.check(st == 400 and doc["error"].get("field") == "provider",
                "chat: provider %s with model %s is a 400 naming 'provider'" % (provider, model),
                (st, doc))

    #  iterate: provider honoured; history with raw and status beside ours
    phantom = fill("W-999", "Ghost")
    good = fill("W-2", "Bo Diaz")
    fake.script("m-cloud", [{"content": "no json here"}, {"content": phantom}, {"content": good}])
    before = len(fake.requests("/cloud/api/chat"))
    st, doc = call("POST", "/v1/iterate", {"kind": "fill", "model": "m-cloud",
                                           "provider": "ollama_cloud",
                                           "prompt": "Fill 1 forklift driver in Toledo",
                                           "context": CONTEXT})
    t.check(st == 200 and doc["iterations"] == 3
            and len(fake.requests("/cloud/api/chat")) - before == 3,
            "iterate: provider ollama_cloud is honoured (3 rounds at Ollama Cloud)", (st, doc))
    history = doc.get("history", [])
    t.check([(e["iteration"], e["verdict_kind"], e["status"]) for e in history]
            == [(1, "no_json", "no_json"), (2, "consistency", "invalid"), (3, "accepted", "accepted")],
            "iterate: history items carry ours (iteration from 1, verdict_kind) and the "
            "original's status", history)
    t.check([e["raw"] for e in history] == ["no json here", phantom, good]
            and all(e["raw"] == e["response"] for e in history)
            and "error" in history[1] and "error" not in history[2],
            "iterate: history items carry the original's raw (the model's output)", history)

    found = rows()
    row = found[-1] if found else {}
    t.check(len(found) == 1 and row.get("schema") == "session.iterate.v1"
            and row.get("provider") == "ollama_cloud",
            "session log: one row, schema session.iterate.v1, provider ollama_cloud", found)
    attempts = row.get("attempts", [])
    t.check([a["iteration"] for a in attempts] == [0, 1, 2]
            and all(a.get("span_id") == "" for a in attempts)
            and [a["verdict_kind"] for a in attempts] == ["no_json", "consistency", "accepted"],
            "session log: attempts count from 0 and carry span_id \"\"", attempts)

    #  iterate: an unknown provider is refused before any chat, no row
    st, doc = call("POST", "/v1/iterate", {"kind": "fill", "model": "m-cloud",
                                           "provider": "nosuch", "prompt": "x",
                                           "context": CONTEXT})
    t.check(st == 400 and doc["error"].get("field") == "provider" and len(rows()) == 1,
            "iterate: an unknown provider is a 400 naming 'provider', and writes no row",
            (st, doc))

    #  validate: a refusal keeps the original's tagged ValidationError,
    #  unwrapped (not in our {"error": ...} body)
    st, doc = call("POST", "/v1/validate", {"kind": "fill", "context": CONTEXT,
                                            "artifact": {"fills": [{"candidate_id": "W-999",
                                                                    "name": "Ghost"}]}})
    t.check(st == 422 and doc == {"Consistency": {"reason":
            'fills[0].candidate_id "W-999" does not exist in worker roster'}},
            "validate: a phantom worker is a 422 in the original's tagged shape", (st, doc))

    #  iterate: chat failing -> the step's status infra_error, raw ""
    fake.set_down(True)
    st, doc = call("POST", "/v1/iterate", {"kind": "fill", "model": "m-down",
                                           "provider": "ollama", "prompt": "x",
                                           "context": CONTEXT})
    fake.set_down(False)
    history = (doc or {}).get("history", [])
    t.check(st == 502 and len(history) == 1 and history[0]["status"] == "infra_error"
            and history[0]["raw"] == "" and history[0]["iteration"] == 1,
            "iterate: a failed chat is status infra_error with raw \"\"", (st, doc))
    row = rows()[-1]
    t.check(row["final_verdict"] == "infra_error" and row["attempts"][0]["iteration"] == 0
            and row["attempts"][0]["span_id"] == "" and row["provider"] == "ollama",
            "session log: the infra_error row counts from 0 too", row)


if __name__ == "__main__":
    lhtest.run(main)
