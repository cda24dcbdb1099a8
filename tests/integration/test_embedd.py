#!/usr/bin/python3
"""embedd over the bus (tests/bin/lh_vector_harness --services embedd)
against tests/fake_provider.py:

- Ollama (/api/embed, batch input) and OpenAI (/v1/embeddings) shapes, the
  model routed by prefix, order kept, the Bearer key sent;
- the cache: a batch sends only its misses (and each distinct text once);
  stats hits / misses / hit_rate / size;
- errors: provider 500 -> 502 with the upstream's message, 429 with
  Retry-After -> 429 + retry_after_ms, a slow reply -> 504 within the
  timeout, a dropped connection / garbage / short answer -> 502, an
  unreachable provider -> 502, empty text -> 400;
- the hash embedder: the same vectors from two separate processes, equal to
  a reference computed here in Python (so any host agrees), near-duplicate
  texts closer than unrelated ones.
"""

import math
import os
import re
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
import lhtest  # noqa: E402
import fake_provider  # noqa: E402
from test_vectord import harness, kind  # noqa: E402


def embed(peer, texts, model=None, timeout=10.0):
    body = {"texts": texts}
    if model is not None:
        body["model"] = model
    rep = peer.call("embedd", "embed", body, timeout=timeout, q=True, dl=int(timeout * 1000))
    if rep is None:
        raise lhtest.Failure("no reply to embedd.embed")
    return rep.st, rep.obj


def stats(peer):
    rep = peer.call("embedd", "stats", {}, timeout=5.0, q=True, dl=5000)
    return rep.obj


def fnv(data):
    h = 14695981039346656037
    for b in data:
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def hash_embed(text, dim):
    """Reference of embedd's hash embedder (see actors/embedd/embedd.c)."""
    raw = text.encode("utf-8")
    joined = bytearray(b" ")
    for b in raw:
        if (48 <= b <= 57) or (65 <= b <= 90) or (97 <= b <= 122) or b >= 0x80:
            joined.append(b + 32 if 65 <= b <= 90 else b)
        elif joined[-1] != 32:
            joined.append(32)
    if joined[-1] != 32:
        joined.append(32)
    v = [0.0] * dim

    def feature(h, w):
        v[h % dim] += -w if h >> 63 else w
    words = [w for w in bytes(joined).split(b" ") if w]
    for i, w in enumerate(words):
        feature(fnv(b"w:" + w), 1.0)
        if i:
            feature(fnv(b"b:" + words[i - 1] + b" " + w), 0.7)
    if len(joined) >= 3:
        for i in range(len(joined) - 2):
            feature(fnv(b"c:" + bytes(joined[i:i + 3])), 0.5)
    else:
        for i in range(len(raw) - 2):
            feature(fnv(b"c:" + raw[i:i + 3]), 0.5)
    norm = math.sqrt(sum(x * x for x in v))
    if norm == 0:
        feature(fnv(b"r:" + raw), 1.0)
        norm = 1.0
    return [x / norm for x in v]


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b))


def main(t):
    with fake_provider.start() as fake:
        body(t, fake)


def body(t, fake):
    sets = {"broker/hb_ivl": 200, "broker/hb_live": lhtest.HB_LIVE, "embedd/ollama_url": fake.url + "/ollama",
            "embedd/openai_url": fake.url + "/openai", "embedd/openai_key_env": "LH_TEST_EMBED_KEY",
            "embedd/timeout_ms": 1500, "embedd/dim": 64, "embedd/cache_entries": 100}
    os.environ["LH_TEST_EMBED_KEY"] = "sk-test-123"
    proc, endpoint = harness(t, "embedd", sets=sets)
    peer = t.client(endpoint)

    #  Ollama shape; order kept; only misses are sent, each once
    st, out = embed(peer, ["one", "two", "one"], model="ollama/nomic")
    t.check(st == 200 and out["model"] == "ollama/nomic" and out["dim"] == 8, "ollama embed", out)
    want = [fake_provider._vector(x) for x in ["one", "two", "one"]]
    t.check(all(abs(a - b) < 1e-6 for va, vb in zip(out["vectors"], want) for a, b in zip(va, vb)),
            "vectors in the order of texts")
    sent = fake.requests("/api/embed")
    t.check(len(sent) == 1 and sent[0]["body"] == {"model": "nomic", "input": ["one", "two"]},
            "one batch with each distinct miss once, prefix stripped", sent)
    st, out = embed(peer, ["two", "three", "one"], model="ollama/nomic")
    sent = fake.requests("/api/embed")
    t.check(st == 200 and len(sent) == 2 and sent[1]["body"]["input"] == ["three"],
            "second batch sends only the miss", sent[-1])
    s = stats(peer)
    t.check(s["hits"] == 2 and s["misses"] == 4 and s["size"] == 3
            and abs(s["hit_rate"] - 2 / 6) < 1e-9, "stats hits/misses/size", s)

    #  OpenAI shape with the Bearer key
    st, out = embed(peer, ["alpha", "beta"], model="openai/text-embedding-3-small")
    t.check(st == 200 and len(out["vectors"]) == 2 and out["dim"] == 8, "openai embed", out)
    sent = fake.requests("/v1/embeddings")
    t.check(sent and sent[-1]["headers"].get("authorization") == "Bearer sk-test-123",
            "Bearer key sent", sent[-1]["headers"] if sent else None)
    t.check(out["vectors"][1] == [f32(x) for x in fake_provider._vector("beta")] or
            all(abs(a - b) < 1e-6 for a, b in zip(out["vectors"][1], fake_provider._vector("beta"))),
            "openai vectors by index")

    #  Errors
    fake.script("embed:bad", [{"status": 500, "error": "model exploded"}])
    st, out = embed(peer, ["x1"], model="ollama/bad")
    t.check(st == 502 and "model exploded" in out["error"]["reason"], "500 -> 502 with message", out)
    fake.script("embed:busy", [{"status": 429, "retry_after": 7, "error": "slow down"}])
    st, out = embed(peer, ["x2"], model="openai/busy")
    t.check(st == 429 and out["error"].get("retry_after_ms") == 7000, "429 + Retry-After", out)
    fake.script("embed:slow", [{"delay_ms": 4000}])
    st, out = embed(peer, ["x3"], model="ollama/slow")
    t.check(st == 504 and kind(out) == "provider_timeout", "slow reply -> 504", out)
    for spec, what in (({"drop": True}, "dropped connection"), ({"garbage": True}, "garbage"),
                       ({"short": True}, "one vector short")):
        fake.script("embed:odd", [spec])
        st, out = embed(peer, ["x4", "x5"], model="ollama/odd")
        t.check(st == 502, "%s -> 502" % what, out)
    st, out = embed(peer, ["ok", ""], model="ollama/nomic")
    t.check(st == 400 and kind(out) == "empty_text", "empty text -> 400", out)
    st, out = embed(peer, ["x"], model="nosuch")
    t.check(st == 404, "unknown model with the hash provider -> 404", out)

    #  Hash embedder: same in two processes and equal to the reference
    texts = ["Senior welder, night shift, Columbus OH",
             "senior welder - night shift - Columbus, Ohio",
             "Quarterly revenue grew in the software segment", "!", "héllo wörld"]
    st, first = embed(peer, texts)
    t.check(st == 200 and first["model"] == "hash" and first["dim"] == 64, "hash embed", first)
    proc2, endpoint2 = harness(t, "embedd", sets=sets)
    peer2 = t.client(endpoint2)
    st, second = embed(peer2, texts)
    t.check(first["vectors"] == second["vectors"], "hash vectors identical across processes")
    ref = [[f32(x) for x in hash_embed(text, 64)] for text in texts]
    worst = max(abs(a - b) for va, vb in zip(first["vectors"], ref) for a, b in zip(va, vb))
    t.check(worst < 1e-5, "hash vectors equal the Python reference (host independent)", worst)
    v = first["vectors"]
    t.check(cosine(v[0], v[1]) > cosine(v[0], v[2]) + 0.3, "near-duplicates rank above unrelated",
            (cosine(v[0], v[1]), cosine(v[0], v[2])))

    #  Unreachable provider
    proc3, endpoint3 = harness(t, "embedd", sets=dict(sets, **{"embedd/ollama_url": "http://127.0.0.1:1"}))
    peer3 = t.client(endpoint3)
    st, out = embed(peer3, ["x"], model="ollama/any")
    t.check(st == 502 and kind(out) == "provider_unreachable", "unreachable -> 502", out)


lhtest.run(main, budget=120)
