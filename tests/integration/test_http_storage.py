#!/usr/bin/python3
"""test_http_storage - the storage routes through the real gateway in
`lakehouse up` (storaged, fs backend):

PUT|GET|HEAD|DELETE /v1/storage/KEY and GET /v1/storage?prefix=&start_after=&limit=.
Small objects (one put), bodies larger than gateway/part_size (a multipart
upload, sent with Content-Length and chunked) read back in several ranges,
ETag headers, If-None-Match: * and If-Match (412), key rules (400), the
per-prefix cap (413 mid-upload, nothing visible), gateway/storage_max (413
before the body is read), list paging, delete, and clients that vanish in
the middle of an upload (their uploads are aborted: the PUT slots they held
come back, at the latest after gateway/read_timeout_s).
"""

import hashlib
import json
import os
import random
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest                    # noqa: E402
import test_gateway_util as gw   # noqa: E402

PART = 64 * 1024


def etag_of(data):
    return hashlib.sha256(data).hexdigest()


def expect_error(t, st, body, status, kind, what):
    err = gw.error_body(body)
    t.check(st == status and err is not None and (kind is None or err["kind"] == kind),
            "%s -> %d %s" % (what, status, kind or ""), (st, body[:300]))
    return err


def chunks(data, size):
    for offset in range(0, len(data), size):
        yield data[offset:offset + size]


def main(t):
    sets = {"gateway/part_size": PART,
            "gateway/storage_max": 4 * 1024 * 1024,
            "storaged/caps": "_vectors/=4294967296,small/=200000",
            "storaged/put_slots": 4,
            "storaged/part_max": 1024 * 1024,
            "gateway/read_timeout_s": 3}
    b, h = gw.up(t, "storaged", workers=2, sets=sets)

    #  Small object: one put
    data = b"hello, lakehouse\n"
    st, hdrs, body = h.request("PUT", "/v1/storage/docs/hello.txt", data)
    doc = json.loads(body)
    t.check(st == 200 and doc == {"key": "docs/hello.txt", "etag": etag_of(data), "size": len(data)},
            "PUT small object -> 200 {key, etag, size}", (st, body))
    t.check(hdrs.get("etag") == '"%s"' % etag_of(data), "PUT answers the ETag header", hdrs)
    gw.check_trace_headers(t, hdrs, "PUT")
    st, hdrs, body = h.request("GET", "/v1/storage/docs/hello.txt")
    t.check(st == 200 and body == data and hdrs.get("content-length") == str(len(data))
            and hdrs.get("etag") == '"%s"' % etag_of(data)
            and hdrs.get("content-type") == "application/octet-stream",
            "GET returns the bytes with Content-Length and ETag", (st, hdrs, body))
    st, hdrs, body = h.request("HEAD", "/v1/storage/docs/hello.txt")
    t.check(st == 200 and body == b"" and hdrs.get("content-length") == str(len(data))
            and hdrs.get("etag") == '"%s"' % etag_of(data),
            "HEAD -> 200, Content-Length and ETag, no body", (st, hdrs, body))
    st, hdrs, body = h.request("PUT", "/v1/storage/docs/empty", b"")
    t.check(st == 200 and json.loads(body)["size"] == 0, "PUT of an empty body", body)
    st, hdrs, body = h.request("GET", "/v1/storage/docs/empty")
    t.check(st == 200 and body == b"" and hdrs.get("content-length") == "0",
            "GET of an empty object", (st, hdrs))

    #  Conditional puts
    st, _, body = h.request("PUT", "/v1/storage/docs/hello.txt", b"other",
                            {"If-None-Match": "*"})
    expect_error(t, st, body, 412, "precondition_failed", "If-None-Match: * on an existing key")
    st, _, body = h.request("PUT", "/v1/storage/docs/new.txt", b"new", {"If-None-Match": "*"})
    t.check(st == 200, "If-None-Match: * on a new key -> 200", (st, body))
    st, _, body = h.request("PUT", "/v1/storage/docs/hello.txt", b"other",
                            {"If-Match": '"%s"' % ("0" * 64)})
    expect_error(t, st, body, 412, "precondition_failed", "If-Match with another ETag")
    st, _, body = h.request("PUT", "/v1/storage/docs/hello.txt", b"v2",
                            {"If-Match": '"%s"' % etag_of(data)})
    t.check(st == 200 and json.loads(body)["etag"] == etag_of(b"v2"),
            "If-Match with the current ETag -> 200", (st, body))
    st, _, body = h.request("PUT", "/v1/storage/docs/x", b"x", {"If-None-Match": '"abc"'})
    expect_error(t, st, body, 400, "bad_request", "If-None-Match other than *")

    #  Errors from storaged pass through
    st, _, body = h.request("GET", "/v1/storage/docs/missing")
    expect_error(t, st, body, 404, "no_such_key", "GET of a missing key")
    st, _, body = h.request("HEAD", "/v1/storage/docs/missing")
    t.check(st == 404, "HEAD of a missing key -> 404", st)
    st, _, body = h.request("PUT", "/v1/storage/docs/../etc", b"x")
    expect_error(t, st, body, 400, "bad_key", "a key with a '..' component")
    st, _, body = h.request("PUT", "/v1/storage/docs/a%09b", b"x")
    expect_error(t, st, body, 400, "bad_key", "a key with a TAB")
    st, _, body = h.request("POST", "/v1/storage/docs/x", b"x")
    expect_error(t, st, body, 405, "method_not_allowed", "POST on a key")

    #  Larger than a part: a multipart upload, read back in several ranges
    rng = random.Random(7)
    big = rng.randbytes(5 * PART + 123)
    st, hdrs, body = h.request("PUT", "/v1/storage/big/one.bin", big)
    t.check(st == 200 and json.loads(body)["etag"] == etag_of(big),
            "PUT of 5 parts + 123 bytes (Content-Length) -> the SHA-256 ETag", (st, body))
    conn = h.connection()
    conn.putrequest("PUT", "/v1/storage/big/chunked.bin")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    for piece in chunks(big, 10000):
        conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
    conn.send(b"0\r\n\r\n")
    resp = conn.getresponse()
    body = resp.read()
    t.check(resp.status == 200 and json.loads(body)["etag"] == etag_of(big),
            "PUT of the same bytes chunked -> same ETag", (resp.status, body))
    conn.close()
    st, hdrs, body = h.request("GET", "/v1/storage/big/chunked.bin")
    t.check(st == 200 and body == big and hdrs.get("content-length") == str(len(big)),
            "GET of the multipart object: byte-identical, read in %d ranges"
            % (len(big) // PART + 1), (st, len(body)))
    t.check(h.request("HEAD", "/v1/storage/big/chunked.bin")[1].get("content-length")
            == str(len(big)), "HEAD of the multipart object: its size")

    #  Range: one byte range -> 206 with Content-Range (across part
    #  boundaries too); past the end -> 416; what is not one byte range
    #  (several ranges, other units, nonsense) is ignored -> 200, whole
    n = len(big)
    cases = [
        ("bytes=0-9", 0, 9),
        ("bytes=%d-%d" % (PART - 5, 2 * PART + 4), PART - 5, 2 * PART + 4),
        ("bytes=%d-" % (n - 100), n - 100, n - 1),
        ("bytes=-123", n - 123, n - 1),
        ("bytes=-%d" % (n + 50), 0, n - 1),
        ("bytes=%d-%d" % (n - 3, n + 1000), n - 3, n - 1),
        ("bytes=%d-%d" % (3 * PART, 3 * PART), 3 * PART, 3 * PART),
    ]
    for spec, first, last in cases:
        st, hdrs, body = h.request("GET", "/v1/storage/big/one.bin", headers={"Range": spec})
        t.check(st == 206 and body == big [first:last + 1]
                and hdrs.get("content-range") == "bytes %d-%d/%d" % (first, last, n)
                and hdrs.get("content-length") == str(last - first + 1)
                and hdrs.get("etag") == '"%s"' % etag_of(big),
                "Range %s -> 206, bytes %d-%d/%d" % (spec, first, last, n),
                (st, hdrs.get("content-range"), len(body)))
    for spec in ("bytes=%d-" % n, "bytes=%d-%d" % (n + 10, n + 20)):
        st, hdrs, body = h.request("GET", "/v1/storage/big/one.bin", headers={"Range": spec})
        expect_error(t, st, body, 416, "range_not_satisfiable", "Range %s (past the end)" % spec)
        t.check(hdrs.get("content-range") == "bytes */%d" % n,
                "416 says the size in Content-Range", hdrs.get("content-range"))
    st, _, body = h.request("GET", "/v1/storage/docs/empty", headers={"Range": "bytes=0-"})
    expect_error(t, st, body, 416, "range_not_satisfiable", "Range on an empty object")
    for spec in ("bytes=0-1,5-6", "items=0-1", "bytes=5-2", "bytes=x-", "bytes=-0"):
        st, hdrs, body = h.request("GET", "/v1/storage/big/one.bin", headers={"Range": spec})
        t.check(st == 200 and body == big and hdrs.get("accept-ranges") == "bytes"
                and "content-range" not in hdrs,
                "Range %r is not one byte range: ignored, 200 with the whole object" % spec,
                (st, len(body)))
    st, _, body = h.request("GET", "/v1/storage/docs/missing", headers={"Range": "bytes=0-1"})
    expect_error(t, st, body, 404, "no_such_key", "Range on a missing key")

    #  Caps and limits
    over = rng.randbytes(300000)
    st, _, body = h.request("PUT", "/v1/storage/small/over.bin", over)
    expect_error(t, st, body, 413, "too_large", "PUT over the prefix cap (200000) mid-upload")
    st, _, body = h.request("GET", "/v1/storage/small/over.bin")
    t.check(st == 404, "nothing is visible after the refused upload", st)
    raw = h.raw(b"PUT /v1/storage/docs/huge HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length: 5000000\r\n\r\n" + b"x" * 1000)
    t.check(gw.status_of(raw) == 413 and b"too_large" in raw,
            "Content-Length over gateway/storage_max -> 413 before the body", raw[:200])

    conn = h.connection()
    conn.putrequest("PUT", "/v1/storage/big/too-big.bin")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    piece = b"z" * 65536
    try:
        for _ in range(4 * 16 + 1):
            conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        conn.send(b"0\r\n\r\n")
        resp = conn.getresponse()
        st, body = resp.status, resp.read()
    except OSError as e:
        st, body = None, str(e).encode()
    conn.close()
    expect_error(t, st, body, 413, "too_large", "a chunked PUT past gateway/storage_max (4 MiB)")
    t.check(h.request("GET", "/v1/storage/big/too-big.bin")[0] == 404,
            "and nothing of it is visible")

    #  List with paging
    keys = ["list/k%03d" % index for index in range(25)]
    for key in keys:
        st, _, _ = h.request("PUT", "/v1/storage/" + key, key.encode())
        if st != 200:
            raise lhtest.Failure("PUT %s: %d" % (key, st))
    seen = []
    after = ""
    pages = 0
    while True:
        path = "/v1/storage?prefix=list/&limit=10" + ("&start_after=" + after if after else "")
        st, _, body = h.request("GET", path)
        doc = json.loads(body)
        if st != 200:
            raise lhtest.Failure("list: %d %s" % (st, body))
        pages += 1
        seen += [item["key"] for item in doc["keys"]]
        if not doc["truncated"]:
            break
        after = doc["next"]
    t.check(seen == keys and pages == 3, "list pages 10 + 10 + 5: every key once, in order",
            (pages, seen))
    st, _, body = h.request("GET", "/v1/storage?prefix=list/&limit=x")
    expect_error(t, st, body, 400, "bad_request", "list with a non-integer limit")
    st, _, body = h.request("GET", "/v1/storage?prefix=list/&limit=5000")
    expect_error(t, st, body, 400, None, "list with limit 5000")

    #  Delete
    st, _, body = h.request("DELETE", "/v1/storage/docs/hello.txt")
    t.check(st == 200 and json.loads(body).get("deleted") is True, "DELETE -> 200", body)
    st, _, body = h.request("GET", "/v1/storage/docs/hello.txt")
    t.check(st == 404, "GET after DELETE -> 404", st)
    st, _, body = h.request("DELETE", "/v1/storage/docs/hello.txt")
    expect_error(t, st, body, 404, "no_such_key", "DELETE of a missing key")

    #  Clients that vanish mid-upload: 6 of them (4 PUT slots), then a
    #  multipart upload must still get a slot. (libmicrohttpd does not
    #  always notice a client that closes right after sending; then the
    #  read timeout, 3 s here, cuts the connection and the upload is
    #  aborted.)
    for index in range(6):
        s = socket.create_connection((h.host, h.port))
        s.sendall(b"PUT /v1/storage/gone/%d HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"
                  % index + b"y" * (3 * PART))
        s.close()
    deadline = time.monotonic() + 20
    while True:
        st, _, body = h.request("PUT", "/v1/storage/big/after.bin", big)
        if st == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    t.check(st == 200, "after 6 abandoned uploads a multipart PUT still gets a slot", (st, body))
    st, _, body = h.request("GET", "/v1/storage?prefix=gone/")
    t.check(st == 200 and json.loads(body)["keys"] == [],
            "no abandoned upload became visible", body)
    gw.healthy(t, h, "the storage routes")


if __name__ == "__main__":
    lhtest.run(main)
