#!/usr/bin/python3
"""test_http_services - the chat and validation routes through the real
gateway in `lakehouse up` (chatd + validatord), against the fake provider:

- GET /v1/chat/providers, POST /v1/chat (routing reaches the fake with the
  prefix stripped; a provider without a key is chatd's 404, passed on).
- POST /v1/validate: a valid fill -> 200 report; a phantom worker ->
  validatord's 422 in the original tagged shape, byte for byte the body
  validatord sent (not wrapped in {"error": ...}); unknown kind -> 400.
- POST /v1/iterate: a phantom then a real worker -> 200 after 2 iterations,
  the trace id of the request's traceparent; a slow provider within the
  route's long default deadline (gateway/chat_timeout_ms, not the 5 s
  gateway/timeout_ms); a provider that is down -> 502.
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
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def fill(cid, name):
    return "```json\n" + json.dumps({"fills": [{"candidate_id": cid, "name": name}]}) + "\n```"


def main(t):
    with fake_provider.start() as fake:
        body(t, fake)


def body(t, fake):
    roster = lhtest.write_jsonl(os.path.join(t.tmp, "roster.jsonl"), ROSTER)
    for name in ("OLLAMA_API_KEY", "OPENROUTER_API_KEY", "OPENCODE_API_KEY", "KIMI_API_KEY",
                 "MOONSHOT_API_KEY"):
        os.environ.pop(name, None)
    b, h = gw.up(t, "chatd,validatord", workers=2, sets={
        "chatd/ollama_url": fake.url + "/ollama",
        "chatd/openrouter_url": fake.url + "/openrouter/api/v1",
        "chatd/backoff_ms": 20, "chatd/retries": 1, "chatd/timeout_ms": 10000,
        "validatord/roster": roster,
        "validatord/session_log": os.path.join(t.tmp, "sessions.jsonl")})

    def post(path, doc, headers=None, timeout=30.0):
        hdrs = {"Content-Type": "application/json"}
        hdrs.update(headers or {})
        st, rh, data = h.request("POST", path, json.dumps(doc).encode(), hdrs, timeout=timeout)
        return st, rh, data

    #  Providers and chat
    st, _, data = h.request("GET", "/v1/chat/providers")
    doc = json.loads(data)
    t.check(st == 200 and "ollama" in json.dumps(doc), "GET /v1/chat/providers lists ollama",
            (st, doc))
    fake.script("llama3", [{"content": "hello from the fake"}])
    st, _, data = post("/v1/chat", {"model": "ollama/llama3",
                                    "messages": [{"role": "user", "content": "hi"}]})
    doc = json.loads(data)
    t.check(st == 200 and doc["content"] == "hello from the fake" and doc["provider"] == "ollama",
            "POST /v1/chat -> the provider's answer", (st, doc))
    sent = fake.requests()[-1]
    t.check(sent["path"] == "/ollama/api/chat" and sent["body"]["model"] == "llama3",
            "the chat reached Ollama's /api/chat with the prefix stripped", sent)
    st, _, data = post("/v1/chat", {"model": "openrouter/x/y",
                                    "messages": [{"role": "user", "content": "hi"}]})
    err = gw.error_body(data)
    t.check(st == 404 and err and err["kind"] == "no_such_provider",
            "a provider without a key -> chatd's 404 no_such_provider", (st, data))
    st, _, data = post("/v1/chat", {"model": "ollama/llama3", "messages": "nope"})
    t.check(st == 400 and gw.error_body(data), "bad messages -> 400", (st, data))

    #  validate: 200 report, 422 in the tagged shape, 400
    st, _, data = post("/v1/validate", {"kind": "fill", "context": CONTEXT, "artifact":
                                        {"fills": [{"candidate_id": "w-1", "name": "Ann Lee"}]}})
    doc = json.loads(data)
    t.check(st == 200 and doc.get("valid") is True, "POST /v1/validate of a real worker -> 200",
            (st, doc))
    st, _, data = post("/v1/validate", {"kind": "fill", "context": CONTEXT, "artifact":
                                        {"fills": [{"candidate_id": "W-404", "name": "Nobody"}]}})
    t.check(st == 422 and json.loads(data) == {"Consistency": {"reason":
            'fills[0].candidate_id "W-404" does not exist in worker roster'}},
            "a phantom worker -> 422 in the original tagged shape, unwrapped", (st, data))
    st, _, data = post("/v1/validate", {"kind": "playbook", "artifact": {"operation": "fill: x"}})
    t.check(st == 422 and json.loads(data) == {"Schema": {"field": "fingerprint", "reason":
            "missing \u2014 required for Phase 25 validity window"}},
            "playbook without fingerprint -> 422 byte-exact (em dash intact)", data)
    st, _, data = post("/v1/validate", {"kind": "poem", "artifact": {}})
    t.check(st == 400 and gw.error_body(data), "unknown kind -> 400", (st, data))

    #  iterate: phantom then corrected, trace id from traceparent
    fake.script("m-phantom", [{"content": fill("W-999", "Ghost")}, {"content": fill("W-2", "Bo Diaz")}])
    st, hdrs, data = post("/v1/iterate", {"kind": "fill", "model": "ollama/m-phantom",
                                          "prompt": "Fill 1 forklift driver in Toledo",
                                          "context": CONTEXT},
                          {"traceparent": TRACEPARENT})
    doc = json.loads(data)
    t.check(st == 200 and doc["iterations"] == 2
            and doc["artifact"]["fills"][0]["candidate_id"] == "W-2"
            and doc["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736",
            "POST /v1/iterate: phantom then corrected, 2 iterations, the traceparent's trace id",
            (st, doc))
    gw.check_trace_headers(t, hdrs, "iterate", "4bf92f3577b34da6a3ce929d0e0e4736")

    #  A provider slower than gateway/timeout_ms (5 s): the route's own
    #  deadline (gateway/chat_timeout_ms) applies
    fake.script("m-slow", [{"content": "slow but fine", "delay_ms": 5600}], repeat=True)
    st, _, data = post("/v1/chat", {"model": "ollama/m-slow",
                                    "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    t.check(st == 200 and json.loads(data)["content"] == "slow but fine",
            "a 5.6 s chat succeeds under the chat route's long deadline", (st, data))
    st, _, data = post("/v1/bus/chatd/chat", {"model": "ollama/m-slow",
                                              "messages": [{"role": "user", "content": "hi"}]},
                       timeout=30)
    t.check(st == 504, "the same through the generic route gets the 5 s default: 504", (st, data))

    #  Provider down -> 502
    fake.set_down(True)
    st, _, data = post("/v1/iterate", {"kind": "fill", "model": "ollama/m-down",
                                       "prompt": "x", "context": CONTEXT})
    t.check(st == 502, "iterate with the provider down -> 502", (st, data))
    fake.set_down(False)
    gw.healthy(t, h, "the chat and validation routes")


if __name__ == "__main__":
    lhtest.run(main, budget=150)
