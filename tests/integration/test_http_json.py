#!/usr/bin/python3
"""test_http_json - JSON bodies at the edges of the grammar, over HTTP.

NUL in strings and in object keys round-trips JSON -> msgpack -> JSON
through /v1/bus/echo/echo: ["\\u0000"], {"foo\\u0000bar": 42}, and a key
holding NUL in an object of 70 members (past what the quick path takes,
so through the general path, whose parser cannot hold NUL in a key by
itself). A raw NUL byte after the value ("123" + NUL) or any text after
it ("{} x") is a 400 with the SPEC error body. No error reason names the
JSON library's internals (a flag name, "near end of file"), and every
parse error keeps its line and column.

Harness: broker + echo + gateway, in one process.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest                    # noqa: E402
import test_gateway_util as gw   # noqa: E402

JSON = {"Content-Type": "application/json"}
ECHO = "/v1/bus/echo/echo"


def echo(h, body):
    return h.request("POST", ECHO, body, JSON)


def main(t):
    h = gw.harness(t)

    #  The same bytes back, and the same value
    for text in (b'["\\u0000"]', b'{"foo\\u0000bar":42}', b'"a\\u0000b"',
                 b'{"\\u0000":{"k\\u0000":["\\u0000",1]},"x":"\\u0000\\u0000"}'):
        st, _, data = echo(h, text)
        t.check(st == 200 and data == text,
                "echo %s: 200, the same bytes back" % text.decode(), (st, data[:200]))
        t.check(st == 200 and json.loads(data) == json.loads(text),
                "echo %s: the same value (NUL kept)" % text.decode(), data[:200])
    #  As the issue wrote them (a space after the colon): the same value
    st, _, data = echo(h, b'{"foo\\u0000bar": 42}')
    t.check(st == 200 and json.loads(data) == {"foo\u0000bar": 42},
            '{"foo\\u0000bar": 42} -> 200 {"foo\\u0000bar":42}', (st, data))
    #  An object the quick path does not take (70 members): the general
    #  path holds the NUL key too, in order
    doc = {"k%02d" % i: i for i in range(70)}
    doc["nul\u0000key"] = "v\u0000"
    doc["z"] = [{"\u0000": None}]
    text = json.dumps(doc, separators=(",", ":")).encode()
    st, _, data = echo(h, text)
    back = json.loads(data) if st == 200 else None
    t.check(st == 200 and back == doc and list(back) == list(doc),
            "70-member object with NUL in keys and values: 200, same value, same key order",
            (st, data[:200]))
    #  Repeated keys are still refused when they hold NUL
    st, _, data = echo(h, b'{"a\\u0000":1,"a\\u0000":2}')
    err = gw.error_body(data)
    t.check(st == 400 and err and "same key twice" in err["reason"]
            and "\\u0000" in err["reason"],
            "a repeated key holding NUL -> 400 naming it", (st, data))

    #  Bytes after the value
    for body, what, column in ((b"123\x00", "123 + NUL", 4), (b"{} x", "{} x", 4),
                               (b"[1]\x00\x00", "[1] + two NULs", 4),
                               (b'{"a":1}\n{"b":2}', "two values", 1)):
        st, hdrs, data = echo(h, body)
        err = gw.error_body(data)
        t.check(st == 400 and err and err["kind"] == "bad_request"
                and ("column %d" % column) in err["reason"],
                "%s -> 400 with the SPEC error body and column %d" % (what, column), (st, data))
        gw.check_trace_headers(t, hdrs, what)

    #  Errors in our words, with line and column, never the library's
    bad = [b'["\\ud800"]', b'"\\u12"', b'{"a" 1}', b"{1:2}", b"]", b"[1,]", b'"\x01"',
           b"[1, 2", b"18446744073709551615", b"1e999", b'"a\nb"', b"nul",
           b'{"a":1,"a":2}', b'{"a\\u0000":1,}', b"\x00", b" ", b'"\\x"']
    for body in bad:
        st, _, data = echo(h, body)
        err = gw.error_body(data)
        reason = err["reason"] if err else ""
        t.check(st == 400 and "line " in reason and "column " in reason
                and "JSON_" not in reason and "jansson" not in reason.lower()
                and "near end of file" not in reason and "not supported" not in reason,
                "%r -> 400: %s" % (body[:24], reason), (st, data))
    gw.healthy(t, h, "the JSON cases")


if __name__ == "__main__":
    lhtest.run(main)
