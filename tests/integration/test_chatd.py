#!/usr/bin/python3
"""chatd against the fake provider, over the bus (SPEC 5.7):

- routing table: every prefix / suffix form reaches the right fake endpoint
  with the prefix stripped, with the provider's bearer key (none for local
  Ollama); Ollama requests carry think:false and options.num_ctx;
- a provider without a key answers 404 naming the provider;
- temperature absent when unset, sent when set (both wire formats);
- format "json" and JSON schemas passed through; streamed answers joined;
  done_reason / finish_reason normalised; usage returned; model tiers;
- 429 with Retry-After then success (the wait honoured);
- persistent 500 -> 502 with the upstream message and no key in the body
  or in the logs; a provider that cannot be reached -> 502;
- the caller's deadline passing during a slow provider -> 504.
"""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402
import test_chatd_util as u  # noqa: E402
import fake_provider  # noqa: E402

KEYS = {
    "OLLAMA_API_KEY": "olk-cloud-SECRET-1111",
    "OPENROUTER_API_KEY": "sk-or-SECRET-2222",
    "OPENCODE_API_KEY": "oc-SECRET-3333",
}

#  model as asked, path hit, model sent, key expected (None = no header)
ROUTES = [
    ("llama3.2:1b", "/ollama/api/chat", "llama3.2:1b", None),
    ("ollama/qwen2.5:7b", "/ollama/api/chat", "qwen2.5:7b", None),
    ("ollama_cloud/gpt-oss:120b", "/cloud/api/chat", "gpt-oss:120b", "OLLAMA_API_KEY"),
    ("deepseek-v3.1:671b:cloud", "/cloud/api/chat", "deepseek-v3.1:671b", "OLLAMA_API_KEY"),
    ("openrouter/anthropic/claude-sonnet-4", "/openrouter/api/v1/chat/completions",
     "anthropic/claude-sonnet-4", "OPENROUTER_API_KEY"),
    ("opencode/grok-code", "/opencode/v1/chat/completions", "grok-code", "OPENCODE_API_KEY"),
]


def main(t):
    with fake_provider.start() as fake:
        body(t, fake)


def body(t, fake):
    sets = {"models/local_fast": "ollama/tiny:1b", "chatd/num_ctx": 4096}
    proc, endpoint = u.harness(t, fake, sets=sets, keys=KEYS)
    p = u.peer(t, endpoint)

    #  Routing table
    for index, (model, path, sent, key) in enumerate(ROUTES):
        fake.reset()
        fake.script(sent, [{"content": "answer %d" % index}])
        st, reply = u.chat(p, model)
        t.check(st == 200 and reply["content"] == "answer %d" % index,
                "%s answers through the fake" % model, (st, reply))
        hits = fake.requests()
        t.check(len(hits) == 1 and hits[0]["path"] == path,
                "%s reaches %s" % (model, path), [h["path"] for h in hits])
        sent_body = hits[0]["body"]
        t.check(sent_body["model"] == sent, "%s is sent as %s" % (model, sent), sent_body)
        auth = hits[0]["headers"].get("authorization")
        expect = "Bearer " + KEYS[key] if key else None
        t.check(auth == expect, "%s carries %s" % (model, key or "no key"), auth)
        t.check("temperature" not in sent_body
                and "temperature" not in sent_body.get("options", {}),
                "%s: temperature absent when unset" % model, sent_body)
        if path.endswith("/api/chat"):
            t.check(sent_body.get("think") is False
                    and sent_body.get("options", {}).get("num_ctx") == 4096,
                    "%s: think false and num_ctx sent" % model, sent_body)
            t.check(reply["provider"] in ("ollama", "ollama_cloud"), "provider named", reply)
        t.check(reply["usage"] == {"prompt_tokens": 7, "completion_tokens": 5,
                                   "total_tokens": 12}, "%s: usage returned" % model, reply)

    #  A provider without a key is not registered: 404 naming it
    fake.reset()
    st, reply = u.chat(p, "kimi/kimi-k2")
    t.check(st == 404 and reply["error"]["kind"] == "no_such_provider"
            and "kimi" in u.reason(reply) and "KIMI_API_KEY" in u.reason(reply),
            "kimi without a key: 404 naming the provider", (st, reply))
    t.check(fake.requests() == [], "nothing sent for an unregistered provider")
    st, reply = u.call(p, "chatd", "providers")
    t.check(st == 200 and [x["name"] for x in reply["providers"]]
            == ["ollama", "ollama_cloud", "openrouter", "opencode"]
            and reply["unconfigured"] == ["kimi"], "providers lists the configured ones", reply)
    t.check(reply["tiers"]["local_fast"] == "ollama/tiny:1b", "tiers from config", reply)
    t.check(not any(k in str(reply) for k in KEYS.values()), "providers shows no key")

    #  Temperature, max_tokens and formats when set
    fake.reset()
    st, reply = u.chat(p, "ollama/m", temperature=0.3, max_tokens=50, format="json")
    sent_body = fake.requests()[0]["body"]
    t.check(st == 200 and sent_body["options"].get("temperature") == 0.3
            and sent_body["options"].get("num_predict") == 50 and sent_body.get("format") == "json",
            "ollama: temperature, num_predict and format json sent", sent_body)
    fake.reset()
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    st, reply = u.chat(p, "openrouter/x/y", temperature=0, max_tokens=9, json_schema=schema)
    sent_body = fake.requests()[0]["body"]
    t.check(st == 200 and sent_body.get("temperature") == 0 and sent_body.get("max_tokens") == 9
            and sent_body["response_format"]["type"] == "json_schema"
            and sent_body["response_format"]["json_schema"]["schema"] == schema,
            "openai: temperature 0, max_tokens and json_schema sent", sent_body)
    fake.reset()
    st, reply = u.chat(p, "ollama/m", format=schema)
    t.check(fake.requests()[0]["body"].get("format") == schema, "ollama: schema as format")
    fake.reset()
    st, reply = u.chat(p, "opencode/m", format="json")
    t.check(fake.requests()[0]["body"].get("response_format") == {"type": "json_object"},
            "openai: format json as response_format json_object")

    #  Tiers
    fake.reset()
    st, reply = u.chat(p, "local_fast")
    hits = fake.requests()
    t.check(st == 200 and hits[0]["path"] == "/ollama/api/chat" and hits[0]["body"]["model"] == "tiny:1b",
            "a tier name routes to the tier's model", (st, hits))

    #  Streamed answers joined; finish reasons normalised
    fake.reset()
    fake.script("s1", [{"content": "streamed ollama answer", "stream": True, "finish_reason": "length"}])
    st, reply = u.chat(p, "ollama/s1")
    t.check(st == 200 and reply["content"] == "streamed ollama answer"
            and reply["finish_reason"] == "length", "ollama NDJSON stream joined, done_reason length", reply)
    fake.script("s2", [{"content": "streamed openai answer", "stream": True, "finish_reason": "max_tokens"}])
    st, reply = u.chat(p, "opencode/s2")
    t.check(st == 200 and reply["content"] == "streamed openai answer"
            and reply["finish_reason"] == "length", "openai SSE stream joined, finish_reason normalised", reply)

    #  429 with Retry-After, then success: the wait is honoured
    fake.reset()
    fake.script("v/r1", [{"status": 429, "retry_after": "0.4", "error": "slow down"},
                       {"content": "after the wait"}])
    start = time.monotonic()
    st, reply = u.chat(p, "openrouter/v/r1")
    took = time.monotonic() - start
    t.check(st == 200 and reply["content"] == "after the wait", "429 then success: 200", (st, reply))
    t.check(len(fake.requests()) == 2 and took >= 0.4,
            "retried once after Retry-After (%.2f s)" % took, len(fake.requests()))

    #  A connection dropped without an answer is retried like a 5xx
    fake.reset()
    fake.script("d1", [{"drop": True}, {"content": "second try"}])
    st, reply = u.chat(p, "ollama/d1")
    t.check(st == 200 and reply["content"] == "second try" and len(fake.requests()) == 2,
            "dropped connection: retried, then 200", (st, reply))

    #  Persistent 500: 502 with the upstream message, no key anywhere
    fake.reset()
    secret = KEYS["OPENROUTER_API_KEY"]
    fake.script("v/e1", [{"status": 500, "error": "internal failure, your key %s is fine" % secret}],
                repeat=True)
    st, reply = u.chat(p, "openrouter/v/e1")
    t.check(st == 502 and reply["error"]["kind"] == "upstream", "persistent 500: 502", (st, reply))
    t.check("internal failure" in u.reason(reply) and "500" in u.reason(reply),
            "502 carries the upstream message", u.reason(reply))
    t.check(secret not in str(reply) and "[redacted]" in u.reason(reply),
            "502 body has the key redacted", u.reason(reply))
    t.check(len(fake.requests()) == 3, "500 retried: 3 attempts in all", len(fake.requests()))
    with open(proc.log_path, "rb") as f:
        log = f.read().decode("utf-8", "replace")
    t.check(not any(k in log for k in KEYS.values()), "no key in the logs")

    #  A 400 from the provider is not retried
    fake.reset()
    fake.script("e2", [{"status": 400, "error": "model e2 does not exist"}], repeat=True)
    st, reply = u.chat(p, "ollama/e2")
    t.check(st == 502 and "does not exist" in u.reason(reply) and len(fake.requests()) == 1,
            "provider 400: 502 at once, not retried", (st, reply, len(fake.requests())))

    #  Bad input: 400 naming the field
    for bad, field in (({"messages": [{"role": "user", "content": "x"}]}, "model"),
                       ({"model": "m", "messages": []}, "messages"),
                       ({"model": "m", "messages": [{"role": "x", "content": "y"}]}, "messages"),
                       ({"model": "m", "messages": [{"role": "user", "content": "y"}],
                         "temperature": "hot"}, "temperature"),
                       ({"model": "openrouter/noslash", "messages": [{"role": "user", "content": "y"}]},
                        "model")):
        st, reply = u.call(p, "chatd", "chat", bad)
        t.check(st == 400 and reply["error"].get("field") == field, "400 naming %s" % field, (st, reply))

    #  The caller's deadline passes during a slow answer: 504
    fake.reset()
    fake.script("slow", [{"content": "late", "delay_ms": 2500}])
    rep = p.call("chatd", "chat", {"model": "slow", "messages": [{"role": "user", "content": "x"}]},
                 timeout=10.0, dl=800)
    t.check(rep is not None and rep.st == 504, "deadline during a slow provider: 504",
            rep and (rep.st, rep.obj))

    #  A provider that cannot be reached: 502 after the retries
    closed = lhtest.free_port()
    proc2, endpoint2 = u.harness(t, fake, sets={"chatd/ollama_url": "http://127.0.0.1:%d" % closed})
    p2 = u.peer(t, endpoint2)
    st, reply = u.chat(p2, "m")
    t.check(st == 502 and reply["error"]["kind"] == "upstream" and "3 attempts" in u.reason(reply),
            "unreachable provider: 502 after 3 attempts", (st, reply))

    #  Keys from a 0600 env file: kimi becomes routable
    env_file = os.path.join(t.tmp, "keys.env")
    with open(env_file, "w") as f:
        f.write("# provider keys\nexport KIMI_API_KEY='kimi-SECRET-4444'\n")
    os.chmod(env_file, 0o600)
    proc3, endpoint3 = u.harness(t, fake, sets={"chatd/env_file": env_file})
    p3 = u.peer(t, endpoint3)
    fake.reset()
    st, reply = u.chat(p3, "kimi/kimi-k2-0905")
    hits = fake.requests()
    t.check(st == 200 and hits[0]["path"] == "/kimi/v1/chat/completions"
            and hits[0]["body"]["model"] == "kimi-k2-0905"
            and hits[0]["headers"].get("authorization") == "Bearer kimi-SECRET-4444",
            "kimi/M with its key from the 0600 env file", (st, hits))
    #  ... and an env file readable by others refuses to start
    os.chmod(env_file, 0o644)
    t.counter += 1
    bad = lhtest.Proc([os.path.join(t.build, "lh_chat_harness"), "--services", "chatd",
                       "--set", "chatd/env_file=" + env_file], "badenv", t.tmp)
    t.procs.append(bad)
    code = bad.popen.wait(15)
    with open(bad.log_path, "rb") as f:
        err = f.read().decode("utf-8", "replace")
    t.check(code != 0 and "chatd/env_file" in err and "0600" in err and "kimi-SECRET" not in err,
            "an env file of mode 0644 refuses to start, naming the key", (code, err[-300:]))


if __name__ == "__main__":
    lhtest.run(main)
