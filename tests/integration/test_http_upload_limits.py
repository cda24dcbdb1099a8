#!/usr/bin/python3
"""test_http_upload_limits - every over-limit upload gets its 413.

PUT /v1/storage/KEY and POST /v1/ingest, over storaged's cap for the key,
over ingest/max_bytes or over gateway/storage_max, declared
(Content-Length) or chunked, of any size. A declared body over a limit is
answered 413 from its headers alone, before a byte of it is sent: the
gateway's own limits, and storaged's cap for the key (for a PUT that will
be a multipart upload the gateway asks storaged at once, by a dry run of
upload_begin with the declared size). A chunked body
is read and dropped once it crosses a limit and answered 413 when it ends,
also when far more than the limit follows (70 MiB here, past the 64 MiB
that used to end in a closed connection and no answer: curl's "Empty reply
from server" for a 330 MB PUT over storaged's 256 MiB cap). Every 413
names the setting that raises it, nothing is stored, no upload is left
open (PUT slots free), and the system serves good uploads after.

Small limits (storaged/cap_default 1 MiB, ingest/max_bytes 2 MiB) keep it
fast; then the defaults, with headers alone: a 340 MB PUT under uploads/
(storaged/cap_default, 256 MiB), a 5 GiB POST /v1/ingest
(ingest/max_bytes, 4 GiB) and a 5 GiB PUT (gateway/storage_max).
"""

import json
import os
import select
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest                    # noqa: E402
import test_gateway_util as gw   # noqa: E402

MIB = 1024 * 1024
PIECE = b"x" * MIB


def response_from(data):
    """(status, error body or None) of the first response in data."""
    head, _, body = data.partition(b"\r\n\r\n")
    return gw.status_of(data), gw.error_body(body)


def read_response(s, deadline):
    """Read one response (headers and Content-Length body) or until close."""
    out = b""
    while time.monotonic() < deadline:
        head, sep, body = out.partition(b"\r\n\r\n")
        if sep:
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if len(body) >= length:
                break
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except (socket.timeout, OSError):
            break
        if not chunk:
            break
        out += chunk
    return out


def headers_only(h, head, wait=10.0):
    """Send the request line and headers, no body; the answer must come
    from them alone. Returns (status, error body)."""
    s = socket.create_connection((h.host, h.port), timeout=wait)
    try:
        s.sendall(head)
        return response_from(read_response(s, time.monotonic() + wait))
    finally:
        s.close()


def send_body(h, head, total, chunked, wait=60.0):
    """Send head, then total bytes of body (chunked or as declared), the
    way a client that does not wait for 100 Continue does; stop sending if
    an answer arrives first or the socket fails. Returns (status, error
    body, bytes of body sent)."""
    s = socket.create_connection((h.host, h.port), timeout=wait)
    deadline = time.monotonic() + wait
    sent = 0
    answered = False
    try:
        s.sendall(head)
        while sent < total and time.monotonic() < deadline:
            readable, _, _ = select.select([s], [], [], 0)
            if readable:
                answered = True
                break
            size = min(MIB, total - sent)
            data = (b"%x\r\n" % size + PIECE[:size] + b"\r\n") if chunked else PIECE[:size]
            s.sendall(data)
            sent += size
        if chunked and not answered:
            s.sendall(b"0\r\n\r\n")
    except OSError:
        pass
    try:
        out = read_response(s, deadline)
    finally:
        s.close()
    st, err = response_from(out)
    return st, err, sent


def put_head(key, length=None):
    framing = (b"Content-Length: %d\r\n" % length) if length is not None \
        else b"Transfer-Encoding: chunked\r\n"
    return (b"PUT /v1/storage/" + key.encode() + b" HTTP/1.1\r\nHost: x\r\n"
            + b"Content-Type: application/octet-stream\r\n" + framing + b"\r\n")


def ingest_head(name, length=None):
    framing = (b"Content-Length: %d\r\n" % length) if length is not None \
        else b"Transfer-Encoding: chunked\r\n"
    return (b"POST /v1/ingest?name=" + name.encode() + b" HTTP/1.1\r\nHost: x\r\n"
            + b"Content-Type: text/csv\r\n" + framing + b"\r\n")


def check_413(t, got, setting, what):
    st, err = got[0], got[1]
    t.check(st == 413 and err and err["kind"] == "too_large" and setting in err["reason"],
            "%s -> 413 naming %s: %s" % (what, setting, err["reason"] if err else None), got)


def keys_under(h, prefix):
    st, _, body = h.request("GET", "/v1/storage?prefix=" + prefix)
    return [k["key"] for k in json.loads(body)["keys"]] if st == 200 else None


def small_limits(t):
    b, h = gw.up(t, "storaged,catalogd,ingestd", sets={
        "storaged/cap_default": MIB, "ingest/max_bytes": 2 * MIB,
        "gateway/part_size": 256 * 1024, "storaged/put_slots": 2})

    #  Declared over storaged's cap: from the headers, before the body
    check_413(t, headers_only(h, put_head("uploads/a.bin", 3 * MIB)), "storaged/cap_default",
              "PUT declared 3 MiB over a 1 MiB cap, headers alone")
    got = send_body(h, put_head("uploads/b.bin", 3 * MIB), 3 * MIB, chunked=False)
    check_413(t, got, "storaged/cap_default", "PUT of 3 MiB sent whole over a 1 MiB cap")
    #  Chunked over the cap, and far past it
    for total in (3 * MIB, 70 * MIB):
        got = send_body(h, put_head("uploads/c%d.bin" % total), total, chunked=True)
        check_413(t, got, "storaged/cap_default",
                  "chunked PUT of %d MiB over a 1 MiB cap (%d MiB sent)" % (total // MIB,
                                                                           got[2] // MIB))
    #  POST /v1/ingest over ingest/max_bytes: declared, then chunked
    check_413(t, headers_only(h, ingest_head("big", 3 * MIB)), "ingest/max_bytes",
              "POST /v1/ingest declared 3 MiB over 2 MiB, headers alone")
    for total in (3 * MIB, 70 * MIB):
        got = send_body(h, ingest_head("big"), total, chunked=True)
        check_413(t, got, "ingest/max_bytes",
                  "chunked POST /v1/ingest of %d MiB over 2 MiB (%d MiB sent)" % (total // MIB,
                                                                                 got[2] // MIB))
    #  The early check holds no PUT slot: three declared PUTs within the cap
    #  waiting for their bodies (more than storaged/put_slots) do not stop
    #  another PUT
    waiting = []
    for index in range(3):
        s = socket.create_connection((h.host, h.port), timeout=10)
        s.sendall(put_head("uploads/wait%d.bin" % index, 768 * 1024))
        waiting.append(s)
    st, _, body = h.request("PUT", "/v1/storage/uploads/during.bin", b"d" * (512 * 1024))
    t.check(st == 200, "3 declared PUTs waiting for their bodies hold no PUT slot (2): "
            "another PUT -> 200", (st, body[:200]))
    for s in waiting:
        s.close()
    h.request("DELETE", "/v1/storage/uploads/during.bin")

    #  Nothing stored, no upload left open: good uploads go through after
    t.check(keys_under(h, "uploads/") == [], "nothing stored under uploads/",
            keys_under(h, "uploads/"))
    for index in range(3):          # more than storaged/put_slots
        data = bytes([index]) * (768 * 1024)
        st, _, body = h.request("PUT", "/v1/storage/uploads/good%d.bin" % index, data)
        t.check(st == 200 and json.loads(body)["size"] == len(data),
                "a good 768 KiB PUT after the 413s -> 200 (PUT slots free)", (st, body[:200]))
    csv = b"id,name\n" + b"".join(b"%d,w%d\n" % (i, i) for i in range(1000))
    st, _, body = h.request("POST", "/v1/ingest?name=small", csv, {"Content-Type": "text/csv"},
                            timeout=60)
    t.check(st == 200 and json.loads(body)["row_count"] == 1000,
            "a good ingest after the 413s -> 200, 1000 rows", (st, body[:200]))
    gw.healthy(t, h, "the over-limit uploads")
    b.proc.term()


def defaults(t):
    b, h = gw.up(t, "storaged,catalogd,ingestd")
    check_413(t, headers_only(h, put_head("uploads/workers.csv", 340 * 1000 * 1000)),
              "storaged/cap_default",
              "default limits: PUT uploads/workers.csv declared 340 MB, headers alone")
    check_413(t, headers_only(h, ingest_head("workers", 5 << 30)), "ingest/max_bytes",
              "default limits: POST /v1/ingest declared 5 GiB, headers alone")
    check_413(t, headers_only(h, put_head("x/big.bin", 5 << 30)), "gateway/storage_max",
              "default limits: PUT declared 5 GiB, headers alone")
    t.check(keys_under(h, "") == [], "nothing stored", keys_under(h, ""))
    gw.healthy(t, h, "the declared over-limit uploads")


def main(t):
    small_limits(t)
    defaults(t)


if __name__ == "__main__":
    lhtest.run(main)
