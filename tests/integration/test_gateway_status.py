#!/usr/bin/python3
"""test_gateway_status - every status path of SPEC section 4 through the
real gateway to the echo service, with the SPEC error body; Retry-After on
429/503; the deadline header; trace ids in and out.

Harness: broker + echo (1 worker, queue_max 1) + gateway, in one process.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest                    # noqa: E402
import test_gateway_util as gw   # noqa: E402

JSON = {"Content-Type": "application/json"}


def expect(t, h, method, path, body, status, what, kind=None, headers=None):
    """One request: check status, the error body shape (non-2xx), the
    error kind if given, and the trace headers. Returns (hdrs, body)."""
    hdrs_in = dict(JSON)
    hdrs_in.update(headers or {})
    st, hdrs, data = h.request(method, path, body, hdrs_in)
    t.check(st == status, "%s -> %d" % (what, status), (st, data[:300]))
    if status >= 300:
        err = gw.error_body(data)
        t.check(err is not None, "%s: SPEC error body" % what, data[:300])
        if kind:
            t.check(err["kind"] == kind, "%s: kind %s" % (what, kind), err)
    t.check(hdrs.get("content-type", "").startswith("application/json"),
            "%s: JSON content type" % what, hdrs)
    gw.check_trace_headers(t, hdrs, what)
    return hdrs, data


def main(t):
    h = gw.harness(t, {"actors/echo/workers": 1, "actors/echo/credit": 1,
                       "broker/queue_max": 1,
                       "broker/retry_after_ms": 1500,
                       "gateway/timeout_max_ms": 3000,
                       "gateway/body_max": 65536})

    #  200: JSON in, same JSON out; integers stay integers, floats floats
    doc = {"i": 9007199254740993, "neg": -5, "f": 1.5, "s": "h\u00e9llo",
           "l": [None, True, False], "m": {"k": {"$base64": "AAEC"}}}
    hdrs, data = expect(t, h, "POST", "/v1/bus/echo/echo",
                        json.dumps(doc).encode(), 200, "echo")
    back = json.loads(data)
    t.check(back == doc and isinstance(back["i"], int) and isinstance(back["f"], float),
            "echo round-trips ints (64-bit), floats, strings, binary", back)
    expect(t, h, "POST", "/v1/bus/echo/echo", b"", 200, "echo without a body")
    #  Empty strings and keys, as bodies and inside them, both ways (the
    #  reply's "" was once a 502, and an empty key was dropped); the same
    #  bytes back, through the quick path and through jansson (\u0041)
    for text in (b'""', b'["","x"]', b'{"":1}', b'{"a":"","":[""]}',
                 b'{"":"\u0041"}', b'[1.5,-0.0,1e300,"\\\\\\\"\\n"]'):
        _, data = expect(t, h, "POST", "/v1/bus/echo/echo", text, 200,
                         "echo %s" % text.decode())
        t.check(json.loads(data) == json.loads(text), "echo %s: the same value back" % text.decode(),
                data[:200])
    expect(t, h, "POST", "/v1/bus/broker/ping", b"", 200, "broker.ping through the gateway")

    #  400s: the gateway's own and the service's
    hdrs, data = expect(t, h, "POST", "/v1/bus/echo/echo", b'{"a":\n [1,}', 400,
                        "malformed JSON", "bad_request")
    reason = json.loads(data)["error"]["reason"]
    t.check("line 2" in reason and "column" in reason,
            "malformed JSON: the reason has the line and column", reason)
    expect(t, h, "POST", "/v1/bus/echo/echo", b'"\xff\xfe"', 400,
           "invalid UTF-8 in JSON", "bad_request")
    expect(t, h, "POST", "/v1/bus/echo/echo", b"[" * 100 + b"]" * 100, 400,
           "nesting deeper than gateway/json_depth", "bad_request")
    expect(t, h, "POST", "/v1/bus/echo/echo", b'{"a":1,"a":2}', 400,
           "duplicate keys", "bad_request")
    expect(t, h, "POST", "/v1/bus/echo/echo", b"{}", 400,
           "bad X-Lakehouse-Timeout-Ms", "bad_request",
           {"X-Lakehouse-Timeout-Ms": "soon"})
    expect(t, h, "POST", "/v1/bus/ec%20ho/echo", b"{}", 400,
           "invalid service name", "bad_request")
    expect(t, h, "POST", "/v1/bus/echo/fail", b'{"status":400,"reason":"nope"}', 400,
           "echo.fail 400")
    expect(t, h, "POST", "/v1/bus/echo/fail", b'{"status":422,"kind":"invalid","reason":"no"}',
           422, "echo.fail 422 keeps the upstream kind", "invalid")

    #  404s: route, service, op
    expect(t, h, "GET", "/v2/nothing", None, 404, "unknown route", "no_such_route")
    expect(t, h, "POST", "/v1/bus/nosuch/op", b"{}", 404, "unknown service", "no_such_service")
    expect(t, h, "POST", "/v1/bus/echo/nosuchop", b"{}", 404, "unknown op")
    hdrs, data = expect(t, h, "PUT", "/v1/bus/echo/echo", b"{}", 405,
                        "wrong method", "method_not_allowed")
    t.check(hdrs.get("allow") == "POST", "405 carries Allow: POST", hdrs)

    #  413: declared and undeclared (chunked) bodies over the route limit
    big = b'"' + b"x" * 70000 + b'"'
    expect(t, h, "POST", "/v1/bus/echo/echo", big, 413, "declared body over the limit",
           "too_large")

    def chunks():
        for _ in range(40):
            yield b"x" * 4096
    #  (http.client chunk-encodes an iterable body of unknown length)
    expect(t, h, "POST", "/v1/bus/echo/echo", chunks(), 413,
           "chunked body over the limit", "too_large")

    #  500 / 502 / 503 / 429 from the service, with the upstream's reason
    for status in (500, 502, 503, 429):
        body = json.dumps({"status": status, "reason": "upstream says %d" % status})
        hdrs, data = expect(t, h, "POST", "/v1/bus/echo/fail", body.encode(), status,
                            "echo.fail %d" % status)
        t.check(json.loads(data)["error"]["reason"] == "upstream says %d" % status,
                "echo.fail %d: the upstream's reason is passed on" % status, data)
        if status in (429, 503):
            t.check(hdrs.get("retry-after") == "1",
                    "echo.fail %d: Retry-After 1 (none advised)" % status, hdrs)

    #  504: the deadline header becomes the bus deadline
    hdrs, data = expect(t, h, "POST", "/v1/bus/echo/sleep", b'{"ms":2000}', 504,
                        "echo.sleep past X-Lakehouse-Timeout-Ms", "deadline",
                        {"X-Lakehouse-Timeout-Ms": "150"})
    st, _, data = h.request("POST", "/v1/bus/echo/sleep", b'{"ms":50}', dict(JSON))
    t.check(st == 200, "echo.sleep within the default deadline -> 200", (st, data))
    #  A deadline over gateway/timeout_max_ms is capped (3 s here): 504
    expect(t, h, "POST", "/v1/bus/echo/sleep", b'{"ms":3400}', 504,
           "a deadline header over the maximum is capped", "deadline",
           {"X-Lakehouse-Timeout-Ms": "60000"})

    #  Trace ids: traceparent in, same trace out; X-Lakehouse-Trace-Id in;
    #  invalid ones replaced; none minted
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    incoming = "00-%s-00f067aa0ba902b7-01" % trace
    hdrs, _ = expect(t, h, "GET", "/health", None, 200, "health with traceparent",
                     headers={"traceparent": incoming})
    gw.check_trace_headers(t, hdrs, "traceparent round trip", trace)
    m = gw.TRACEPARENT.match(hdrs["traceparent"])
    t.check(m.group(2) != "00f067aa0ba902b7" and m.group(3) == "01",
            "returned traceparent has the gateway's span id and the caller's flags",
            hdrs["traceparent"])
    hdrs, _ = expect(t, h, "POST", "/v1/bus/echo/echo", b"{}", 200,
                     "echo with traceparent", headers={"traceparent": incoming})
    gw.check_trace_headers(t, hdrs, "traceparent through the bus", trace)
    other = "0af7651916cd43dd8448eb211c80319c"
    hdrs, _ = expect(t, h, "POST", "/v1/bus/echo/echo", b"{}", 200,
                     "echo with X-Lakehouse-Trace-Id",
                     headers={"X-Lakehouse-Trace-Id": other})
    gw.check_trace_headers(t, hdrs, "X-Lakehouse-Trace-Id round trip", other)
    for bad in ("ff-%s-00f067aa0ba902b7-01" % trace,
                "00-%s-00f067aa0ba902b7-01" % ("0" * 32),
                "00-%s-0000000000000000-01" % trace,
                "00-%s-00f067aa0ba902b7-01" % trace.upper()):
        hdrs, _ = expect(t, h, "GET", "/health", None, 200, "health with a bad traceparent",
                         headers={"traceparent": bad})
        t.check(hdrs["x-lakehouse-trace-id"] != trace
                and hdrs["x-lakehouse-trace-id"] != trace.lower(),
                "invalid traceparent %s is replaced by a new trace" % bad[:8], hdrs)
    seen = set()
    for _ in range(3):
        hdrs, _ = expect(t, h, "POST", "/v1/bus/echo/echo", b"{}", 200, "echo, no trace")
        seen.add(hdrs["x-lakehouse-trace-id"])
    t.check(len(seen) == 3, "a new trace id is minted per request without one", seen)
    log = h.wait_log("%s POST /v1/bus/echo/echo 200" % trace)
    t.check(("%s POST /v1/bus/echo/echo 200" % trace) in log,
            "the request log line carries the trace id, method, path, status", log[-500:])

    #  429 from the broker: one worker busy, queue of one full
    answer = h.command("fill 2 1500")
    t.check(answer == "ok", "echo's worker busy and its queue full", answer)
    hdrs, data = expect(t, h, "POST", "/v1/bus/echo/echo", b"{}", 429,
                        "queue full", "queue_full")
    t.check(hdrs.get("retry-after") == "2",
            "429 Retry-After = ceil(retry_after_ms 1500 / 1000) = 2", hdrs)

    #  503 from the broker: echo offered, no worker left
    answer = h.command("stop echo")
    t.check(answer == "ok", "echo's worker stopped", answer)
    hdrs, data = expect(t, h, "POST", "/v1/bus/echo/echo", b"{}", 503,
                        "no worker", "no_worker")
    t.check(hdrs.get("retry-after") == "2", "503 Retry-After from retry_after_ms", hdrs)
    gw.healthy(t, h, "the status paths")


if __name__ == "__main__":
    lhtest.run(main)
