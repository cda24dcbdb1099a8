#!/usr/bin/python3
"""Hostile input to the MCP server, over HTTP (/mcp on the gateway) and over
stdio (`lakehouse mcp`):

- 200+ messages over HTTP, each on a live session (or without one, or with
  bad headers): wrong types for every field, huge ids, missing fields,
  batches, unknown methods, bad tool calls, bad cursors and URIs, text
  that is not JSON, invalid UTF-8, deep nesting, bodies over mcp/body_max,
  bad MCP-Protocol-Version / Mcp-Session-Id / Origin / Content-Type /
  Accept headers. Each gets an HTTP 4xx or a JSON-RPC error (a bad tool
  argument: a tool result with isError; a valid notification or response:
  202); never a 5xx, never a dropped connection;
- the whole set five times: the gateway's RSS (VmRSS) sampled after each
  round stays flat (printed; checked except under ASan), and the session
  still answers ping;
- over stdio, the single-line ones and a line over mcp/body_max: one JSON
  line back for each (an error), then the last ping is answered and the
  process exits 0 at the end of its input.
"""

import json
import os
import random
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402
import lhmcp  # noqa: E402

BODY_MAX = 65536
ROUNDS = 5


def message(**fields):
    m = {"jsonrpc": "2.0"}
    m.update(fields)
    return m


def call(name, arguments, **kw):
    params = {"name": name}
    if arguments is not Ellipsis:
        params["arguments"] = arguments
    return message(id=kw.get("id", 7), method="tools/call", params=params)


def hostile():
    """(name, body, headers, expect): expect 'error' (4xx or a JSON-RPC
    error), 'tool' (that, or a tool result with isError), 'accepted' (202)"""
    cases = []

    def add(name, body, expect="error", headers=None):
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body, allow_nan=True)
        cases.append((name, body, headers or {}, expect))

    #  Wrong types for every field
    for value in [None, 1.5, True, False, [], {}, [1], {"a": 1}, -0.0, 1e300]:
        add("id %r" % (value,), message(id=value, method="ping"))
    for value in [None, 1, 2.5, True, [], {}, ["ping"], {"m": "ping"}]:
        add("method %r" % (value,), message(id=1, method=value))
    for value in [[], "x", 1, True, None, [1, 2], 0.5, ""]:
        add("params %r" % (value,), message(id=1, method="tools/list", params=value))
    for value in [None, "1.0", "2", 2.0, 2, "", "2.0 ", ["2.0"]]:
        add("jsonrpc %r" % (value,), {"jsonrpc": value, "id": 1, "method": "ping"})
    add("no jsonrpc", {"id": 1, "method": "ping"})
    #  Huge ids
    for text in ["1" + "0" * 30, "-" + "9" * 40, "1e400", "-1e400", "18446744073709551616",
                 "9223372036854775808", "1" * 5000]:
        add("huge id %s..." % text[:12], '{"jsonrpc":"2.0","id":%s,"method":"ping"}' % text)
    add("id of 300 characters", message(id="i" * 300, method="ping"))
    add("id of 60000 characters", message(id="i" * 60000, method="ping"))
    #  Missing fields
    for body in [{}, {"jsonrpc": "2.0"}, {"id": 1}, {"method": "ping"}, {"jsonrpc": "2.0", "id": 1},
                 {"jsonrpc": "2.0", "params": {}}, {"jsonrpc": "2.0", "id": 1, "params": {}},
                 {"jsonrpc": "2.0", "id": 1, "result": {}, "error": {}}]:
        add("missing fields %s" % json.dumps(body), body)
    add("initialize without params", message(id=1, method="initialize"))
    add("initialize, protocolVersion 5", message(id=1, method="initialize", params={"protocolVersion": 5}))
    add("initialize on a live session", lhmcp.INIT)
    add("tools/call without params", message(id=1, method="tools/call"))
    add("resources/read without uri", message(id=1, method="resources/read", params={}))
    #  Batches
    ping = message(id=1, method="ping")
    for body in [[], [ping], [ping, ping], [[ping]], [1, 2, 3], [{}], [None], [message(method="x")]]:
        add("batch %s" % json.dumps(body)[:40], body)
    #  Unknown methods
    for name in ["", "foo", "rpc.discover", "tools/delete", "prompts/list", "prompts/get",
                 "completion/complete", "sampling/createMessage", "../../etc/passwd",
                 "tools/list/../call", "TOOLS/LIST", "ping ", " ping", "m" * 4000, "\u0000",
                 "tools/call\u0000x", "notifications/initialized", "resources/subscribe/x",
                 "logging/setlevel", "tasks/list"]:
        add("method %r" % name[:30], message(id=1, method=name))
    #  Tool calls: protocol errors (bad name, bad arguments type) ...
    for params in [{"name": 5}, {"name": None}, {"name": ""}, {"name": "nope"}, {"name": "x" * 300},
                   {"name": "query_sql", "arguments": []}, {"name": "query_sql", "arguments": "SELECT 1"},
                   {"name": "query_sql", "arguments": 5}, {"arguments": {}}]:
        add("tools/call %s" % json.dumps(params)[:40], message(id=1, method="tools/call", params=params))
    #  ... and arguments that fail the tool's schema: isError results
    for name, args in [("query_sql", {}), ("query_sql", {"sql": 5}), ("query_sql", {"sql": ""}),
                       ("query_sql", {"sql": "SELECT 1", "limit": 0}),
                       ("query_sql", {"sql": "SELECT 1", "limit": "9"}),
                       ("query_sql", {"sql": "SELECT 1", "params": "x"}),
                       ("get_manifest", {"name": ["a"]}), ("get_manifest", {"nme": "a"}),
                       ("search_vectors", {"index": "w"}), ("search_vectors", {"index": "w", "k": -1}),
                       ("search_vectors", {"index": "w", "vector": ["a"]}),
                       ("search_vectors", {"index": "w", "vector": [1], "text": "x"}),
                       ("embed_text", {"texts": []}), ("embed_text", {"texts": "x"}),
                       ("matrix_search", {"corpora": []}), ("playbook_record", {"score": 2}),
                       ("validate", {"kind": "invoice", "artifact": {}}),
                       ("iterate", {"kind": "fill"}), ("pathway_history", {"uid": 5}),
                       ("pathway_search", {"limit": 0}), ("ingest_csv", {"name": "x"}),
                       ("list_datasets", {"extra": 1}), ("run_workflow", {}),
                       ("run_workflow", {"definition": 3}), ("run_workflow", {"name": ""}),
                       ("run_workflow", {"name": "x", "definition": {}}),
                       ("run_workflow", {"run_id": "x", "wait": True}),
                       ("run_workflow", {"name": "x", "inputs": []})]:
        add("%s %s" % (name, json.dumps(args)[:30]), call(name, args), expect="tool")
    #  Resources, logging, cancellation
    for cursor in ["", "x", "!!!!", "YWZ0ZXI6", "YWZ0ZXI6eHl6", "a" * 200, "\u00e9", "=="]:
        add("cursor %r" % cursor[:20], message(id=1, method="resources/list", params={"cursor": cursor}))
    add("cursor 5", message(id=1, method="resources/list", params={"cursor": 5}))
    for uri in [5, None, "", "x" * 3000, "file:///etc/passwd", "lakehouse://datasets/",
                "lakehouse://datasets/%zz", "lakehouse://datasets/a%00b", "lakehouse://datasets/a/b",
                "lakehouse://datasets/no_such"]:
        add("resources/read %r" % (uri if not isinstance(uri, str) else uri[:30]),
            message(id=1, method="resources/read", params={"uri": uri}))
    for uri in [5, "", "x" * 3000]:
        add("resources/subscribe %r" % (uri if not isinstance(uri, str) else uri[:20]),
            message(id=1, method="resources/subscribe", params={"uri": uri}))
    for level in ["loud", "", 5, None, "DEBUG", "warn"]:
        add("setLevel %r" % (level,), message(id=1, method="logging/setLevel", params={"level": level}))
    #  Valid notifications and responses: accepted (202), nothing else
    for body in [message(method="notifications/cancelled", params={"requestId": 999}),
                 message(method="notifications/cancelled", params={"requestId": [1]}),
                 message(method="notifications/unknown"), message(method="x", params={}),
                 message(id=5, result={}), message(id="r", error={"code": 1, "message": "m"})]:
        add("notification/response %s" % json.dumps(body)[:40], body, expect="accepted")
    #  Not JSON
    for text in ["", " ", "\n", "{", "}", "[", "\"", "tru", "nulll", '{"a":}', "{'a':1}",
                 '{"jsonrpc":"2.0","id":1,"method":"ping"} garbage', '{"jsonrpc":"2.0","id":1,"method":"ping"}{}',
                 "// comment\n{}", "\ufeff{}", "NaN", "Infinity", "-", "0x10", "1 2",
                 '{"jsonrpc":"2.0","id":1,"method":"ping","method":"ping"}',
                 '{"jsonrpc":"2.0","id":1,"method":"ping"', "null", "true", "42", '"ping"']:
        add("not JSON-RPC %r" % text[:24], text)
    #  Invalid UTF-8, NUL
    for raw in [b"\xff", b'{"jsonrpc":"2.0","id":"\xff","method":"ping"}', b'{"a":"\xc0\xaf"}',
                b'{"a":"\xed\xa0\x80"}', b'{"a":"\xe2\x82"}', b'{"jsonrpc":"2.0","id":1,"method":"pi\x00ng"}',
                b"\x00", b'{"a":"\\ud800"}', b'{"jsonrpc":"2.0","id":1,"method":"\xf8\x88\x80\x80\x80"}',
                b"\xef\xbb\xbf" + b'{"jsonrpc":"2.0","id":1,"method":"ping"}']:
        add("bytes %r" % raw[:20], raw)
    #  Deep nesting
    add("10000 [", "[" * 10000 + "]" * 10000)
    add("20000 [ unclosed", "[" * 20000)
    deep = 1
    for _ in range(100):
        deep = {"a": deep}
    add("params 100 deep", message(id=1, method="tools/call", params={"name": "pathway_add",
                                                                      "arguments": {"content": deep}}))
    deep = [1]
    for _ in range(40):
        deep = [deep]
    add("params 40 deep", message(id=1, method="ping", params={"x": deep}))
    #  Over mcp/body_max
    add("body of 70 KB", message(id=1, method="ping", params={"pad": "x" * 70000}))
    add("body of 2 MB", b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"' + b"x" * 2000000 + b'"}}')
    #  Bad headers
    for version in ["1999-01-01", "2024-11-05", "x" * 200, "", "2025-11-25, 2025-06-18"]:
        add("MCP-Protocol-Version %r" % version[:20], ping, headers={"MCP-Protocol-Version": version})
    for session in ["", "x", "0" * 32, "g" * 32, "A" * 200, "../../"]:
        add("Mcp-Session-Id %r" % session[:20], ping, headers={"Mcp-Session-Id": session})
    add("no Mcp-Session-Id", ping, headers={"Mcp-Session-Id": None})
    for origin in ["http://evil.example.com", "null", "http://localhost.evil.com", "file://"]:
        add("Origin %r" % origin, ping, headers={"Origin": origin})
    for ctype in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]:
        add("Content-Type %r" % ctype, ping, headers={"Content-Type": ctype})
    for accept in ["text/html", "image/png", "application/json;q=0, text/event-stream;q=0"]:
        add("Accept %r" % accept, ping, headers={"Accept": accept})
    return cases


def check_answer(status, hdrs, body, expect):
    """Is this answer what a hostile message should get? Returns a reason
    when it is not, else None."""
    if status >= 500:
        return "a %d" % status
    if expect == "accepted":
        return None if status == 202 else "expected 202, got %d" % status
    if 400 <= status < 500:
        return None
    if status != 200:
        return "status %d" % status
    try:
        text = body.decode()
        if hdrs.get("content-type", "").startswith("text/event-stream"):
            text = re.search(r"^data: (.*)$", text, re.M).group(1)
        answer = json.loads(text)
    except (ValueError, AttributeError):
        return "200 without a JSON-RPC answer: %r" % body[:100]
    if isinstance(answer.get("error"), dict) and isinstance(answer["error"].get("code"), int):
        return None
    if expect == "tool" and answer.get("result", {}).get("isError") is True:
        return None
    return "200 and no error: %s" % text[:200]


def main(t):
    os.environ.pop("LAKEHOUSE_TOKEN", None)
    os.environ.pop("LAKEHOUSE_TOKENS", None)
    up = t.up(actors="storaged,catalogd,pathwayd", workers=1,
              sets={"mcp/body_max": BODY_MAX, "gateway/idle_timeout_s": 60})
    url = lhmcp.gateway_url(up.proc)
    cases = hostile()
    t.check(len(cases) >= 200, "%d hostile messages" % len(cases))

    m = lhmcp.Http(url)
    m.initialize()
    samples = [up.proc.rss_kib()]
    for round_ in range(ROUNDS):
        wrong = []
        for name, body, headers, expect in cases:
            try:
                if len(body) > BODY_MAX:
                    raw = body if isinstance(body, bytes) else body.encode()
                    status, hdrs, answer = m.raw_post(raw, headers=headers)
                else:
                    status, hdrs, answer = m.post(body, headers=headers)
            except Exception as e:          # noqa: BLE001 - a dropped connection is a finding
                wrong.append((name, "no answer: %s" % e))
                continue
            reason = check_answer(status, hdrs, answer, expect)
            if reason:
                wrong.append((name, reason))
        t.check(not wrong and up.proc.alive(),
                "round %d: every hostile message got a 4xx or a JSON-RPC error; the process lives"
                % (round_ + 1), wrong[:10])
        samples.append(up.proc.rss_kib())
    print("# gateway process VmRSS (KiB) at the start and after each round of %d: %s"
          % (len(cases), samples), flush=True)
    st, _, answer = m.post(message(id=99, method="ping"))
    t.check(st == 200 and json.loads(answer)["result"] == {},
            "the session still answers ping", (st, answer))
    if os.environ.get("LH_ASAN") == "1":
        t.note("RSS not checked under ASan (its quarantine holds freed memory)")
    else:
        grew = samples[-1] - samples[1]
        t.check(grew < 8 * 1024, "RSS flat after the first round: +%d KiB over %d more rounds"
                % (grew, ROUNDS - 1), samples)

    #  stdio: the single-line messages and a line over the limit
    lines = [body if isinstance(body, bytes) else body.encode("utf-8", "surrogateescape")
             for name, body, headers, expect in cases if not headers]
    lines = [line for line in lines if b"\n" not in line and len(line) <= BODY_MAX and line.strip()]
    lines.append(b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"' + b"x" * 100000 + b'"}}')
    quiet = sum(1 for name, body, headers, expect in cases
                if not headers and expect == "accepted")
    config = os.path.join(t.tmp, "mcp.cfg")
    with open(config, "w") as f:
        f.write(lhtest.zpl({"log/level": "warn"}))
    args = [t.lakehouse, "--config", config, "--set", "bus/endpoint=" + up.endpoint,
            "--set", "bus/curve=false", "--set", "bus/plain=true",
            "--set", "mcp/body_max=%d" % BODY_MAX, "mcp"]
    stdin = b"\n".join([json.dumps(lhmcp.INIT).encode()] + lines
                       + [b'{"jsonrpc":"2.0","id":"last","method":"ping"}']) + b"\n"
    p = subprocess.run(args, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    answers = [json.loads(line) for line in p.stdout.decode().splitlines()]
    errors = [a for a in answers if "error" in a or a.get("result", {}).get("isError")]
    last = [a for a in answers if a.get("id") == "last"]
    t.check(p.returncode == 0 and answers[0]["id"] == 0
            and last == [{"jsonrpc": "2.0", "id": "last", "result": {}}],
            "stdio: initialized, then the last ping answered (calls in flight answered too), exit 0",
            (p.returncode, last, p.stderr[-500:]))
    t.check(len(answers) == len(lines) + 2 - quiet and len(errors) == len(lines) - quiet,
            "stdio: %d hostile lines, one error line back for each (%d valid notifications "
            "and responses: none)" % (len(lines), quiet),
            (len(answers), len(errors), len(lines)))
    t.check(any("mcp/body_max" in a.get("error", {}).get("message", "") for a in errors),
            "stdio: the line over mcp/body_max is refused by name")


lhtest.run(main, budget=280)
