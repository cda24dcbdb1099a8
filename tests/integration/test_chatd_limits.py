#!/usr/bin/python3
"""test_chatd_limits - chatd's two limits reached against the fake
provider, over the bus (docs/chatd.md "Retries and timeouts"):

- chatd/response_max (4096 bytes): an answer whose response body is just
  under it comes back whole (content byte for byte); one over it (whole,
  and streamed in chunks) is 502 upstream naming chatd/response_max, after
  exactly one provider request (not retried); the worker then serves the
  next chat normally;
- chatd/retry_after_max_ms (1000): a 429 with Retry-After 1 s (= the
  limit) is waited for and retried (200, 2 requests, >= 1 s); a 429 or 503
  with Retry-After 2 s (> the limit) is 502 at once, naming
  chatd/retry_after_max_ms, after exactly one request and without
  waiting the 2 s.
"""

import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402
import test_chatd_util as u  # noqa: E402
import fake_provider  # noqa: E402

RESPONSE_MAX = 4096
RETRY_AFTER_MAX_MS = 1000


def main(t):
    with fake_provider.start() as fake:
        body(t, fake)


def body(t, fake):
    proc, endpoint = u.harness(t, fake, services="chatd", sets={
        "chatd/response_max": RESPONSE_MAX,
        "chatd/retry_after_max_ms": RETRY_AFTER_MAX_MS,
        "chatd/retries": 2, "chatd/backoff_ms": 20})
    p = u.peer(t, endpoint)

    #  -- response_max ---------------------------------------------------
    fits = "".join(chr(ord("a") + i % 26) for i in range(RESPONSE_MAX - 600))
    fake.reset()
    fake.script("fits", [{"content": fits}])
    st, reply = u.chat(p, "ollama/fits")
    sent = fake.requests()
    t.check(st == 200 and reply["content"] == fits and len(sent) == 1,
            "an answer of %d characters (response under response_max) comes back whole"
            % len(fits), (st, len(reply.get("content", "")) if st == 200 else reply))
    for label, spec in (("whole", {}), ("streamed", {"stream": True, "chunks": 5})):
        fake.reset()
        big = "z" * (RESPONSE_MAX + 100)
        script = dict(spec, content=big)
        fake.script("big", [script, {"content": "a retry must not happen"}])
        started = time.monotonic()
        st, reply = u.chat(p, "ollama/big", stream=bool(spec.get("stream")))
        took = time.monotonic() - started
        t.check(st == 502 and reply["error"]["kind"] == "upstream"
                and "chatd/response_max" in u.reason(reply),
                "an answer over response_max (%s) -> 502 naming chatd/response_max" % label,
                (st, reply))
        t.check(len(fake.requests()) == 1,
                "... after exactly one provider request (%s, %.2f s)" % (label, took),
                len(fake.requests()))
    fake.reset()
    fake.script("after", [{"content": "still fine"}])
    st, reply = u.chat(p, "ollama/after")
    t.check(st == 200 and reply["content"] == "still fine",
            "the next chat is served normally", (st, reply))

    #  -- retry_after_max_ms ----------------------------------------------
    fake.reset()
    fake.script("wait1", [{"status": 429, "retry_after": "1", "error": "slow down"},
                          {"content": "after one second"}])
    started = time.monotonic()
    st, reply = u.chat(p, "ollama/wait1")
    took = time.monotonic() - started
    t.check(st == 200 and reply["content"] == "after one second" and len(fake.requests()) == 2
            and took >= RETRY_AFTER_MAX_MS / 1000.0,
            "429 with Retry-After 1 s (= retry_after_max_ms): waited, retried, 200 (%.2f s)"
            % took, (st, reply, len(fake.requests())))
    for status in (429, 503):
        fake.reset()
        fake.script("wait2", [{"status": status, "retry_after": "2", "error": "come back later"},
                              {"content": "must not be asked"}])
        started = time.monotonic()
        st, reply = u.chat(p, "ollama/wait2")
        took = time.monotonic() - started
        t.check(st == 502 and reply["error"]["kind"] == "upstream"
                and "chatd/retry_after_max_ms" in u.reason(reply),
                "%d with Retry-After 2 s (> retry_after_max_ms) -> 502 naming "
                "chatd/retry_after_max_ms" % status, (st, reply))
        t.check(len(fake.requests()) == 1 and took < 1.5,
                "... at once (%.2f s), after exactly one request" % took, len(fake.requests()))
    st, reply = u.call(p, "chatd", "providers")
    t.check(st == 200, "chatd still answers", (st, reply))


if __name__ == "__main__":
    lhtest.run(main)
