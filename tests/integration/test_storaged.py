#!/usr/bin/python3
"""storaged over the bus (fs backend): key rules, caps, PUT slots,
conditional puts, ranges, multipart, list paging over 2,500 keys.

The suite (suite()) takes a peer and is backend-neutral, so the s3 backend
can run it again once it exists. The harness helpers below are shared by
the other test_storaged_* / test_catalogd* scripts.
"""

import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402

READY = re.compile(r"harness ready on (tcp://\S+) pid (\d+)")


def harness(t, services="storaged", broker=None, sets=None, workers=0):
    """Start tests/bin/lh_storage_harness; returns (proc, endpoint)."""
    path = os.path.join(t.build, "lh_storage_harness")
    if not os.access(path, os.X_OK):
        raise lhtest.Skip("%s is not built" % path)
    args = [path, "--services", services]
    if broker:
        args += ["--broker", broker]
    if workers:
        args += ["--workers", str(workers)]
    for key, value in (sets or {}).items():
        args += ["--set", "%s=%s" % (key, value)]
    t.counter += 1
    proc = lhtest.Proc(args, "harness%d" % t.counter, t.tmp, dict(os.environ))
    t.procs.append(proc)
    m = proc.wait_line(READY, 15.0)
    t.note("harness pid %d (%s) on %s" % (proc.pid, services, m.group(1)))
    return proc, m.group(1)


def call(peer, op, body=None, svc="storaged", timeout=10.0):
    """Call svc.op; returns (status, decoded body)."""
    rep = peer.call(svc, op, body, timeout=timeout, q=True, dl=int(timeout * 1000))
    if rep is None:
        raise lhtest.Failure("no reply to %s.%s within %.1f s" % (svc, op, timeout))
    return rep.st, rep.obj


def reason(body):
    try:
        return body["error"]["reason"]
    except Exception:
        return ""


def suite(t, peer, big_prefix="_vectors/"):
    """The storaged behaviour every backend must show. The service must run
    with cap_default 1000, caps BIG_PREFIX=5000, put_slots 4, part_max 2000,
    get_max 100000."""
    #  Key rules: each refused with 400 and a reason naming the rule
    rules = [
        ("", "empty"),
        ("k" * 1025, "longer than 1024"),
        ("a\0b", "NUL"),
        (b"bad\xff", "UTF-8"),
        ("/leading", "starts with '/'"),
        ("a/../b", "'..'"),
        ("..", "'..'"),
        ("a\rb", "CR"),
        ("a\nb", "LF"),
        ("a\tb", "TAB"),
    ]
    for key, rule in rules:
        #  invalid UTF-8 cannot be a Python str: send it as a raw str object
        if isinstance(key, bytes):
            import msgpack
            raw = (b"\x82" + msgpack.packb("key") + bytes([0xa0 | len(key)]) + key
                   + msgpack.packb("data") + msgpack.packb(b"x"))
            rep = peer.call("storaged", "put", raw=raw, timeout=5.0)
            st, body = rep.st, rep.obj
        else:
            st, body = call(peer, "put", {"key": key, "data": b"x"})
        t.check(st == 400 and rule in reason(body),
                "key %r refused with 400 naming rule %r" % (key[:20], rule),
                (st, body))
    longest = "/".join(["k" * 200] * 5) + "/" + "k" * 19
    assert len(longest) == 1024
    st, body = call(peer, "put", {"key": longest, "data": b"x"})
    t.check(st == 200, "a 1024-byte key is accepted", (st, body))

    #  put / get / range / head
    st, body = call(peer, "put", {"key": "docs/hello.txt", "data": b"hello world"})
    t.check(st == 200 and len(body["etag"]) == 64, "put answers 200 + etag", body)
    import hashlib
    t.check(body["etag"] == hashlib.sha256(b"hello world").hexdigest(),
            "ETag is the SHA-256 of the content")
    etag = body["etag"]
    st, body = call(peer, "get", {"key": "docs/hello.txt", "offset": 6, "length": 5})
    t.check(st == 200 and body["data"] == b"world" and body["size"] == 11,
            "get with a byte range", body)
    st, body = call(peer, "head", {"key": "docs/hello.txt"})
    t.check(st == 200 and body["etag"] == etag and body["size"] == 11, "head", body)
    st, body = call(peer, "get", {"key": "docs/missing"})
    t.check(st == 404, "get of a missing key is 404", (st, body))

    #  Conditional puts both ways
    st, _ = call(peer, "put", {"key": "docs/hello.txt", "data": b"x", "if_none_match": "*"})
    t.check(st == 412, "if_none_match * on an existing key: 412")
    st, _ = call(peer, "put", {"key": "docs/new.txt", "data": b"n", "if_none_match": "*"})
    t.check(st == 200, "if_none_match * on a new key: 200")
    st, _ = call(peer, "put", {"key": "docs/hello.txt", "data": b"v2", "if_match": "0" * 64})
    t.check(st == 412, "if_match with a stale ETag: 412")
    st, body = call(peer, "put", {"key": "docs/hello.txt", "data": b"v2", "if_match": etag})
    t.check(st == 200, "if_match with the current ETag: 200")
    st, body = call(peer, "get", {"key": "docs/hello.txt"})
    t.check(body["data"] == b"v2", "the conditional put replaced the object")

    #  Caps -> 413, the longest prefix wins
    st, body = call(peer, "put", {"key": "docs/big", "data": b"z" * 1001})
    t.check(st == 413 and "cap" in reason(body), "over the default cap: 413", (st, body))
    st, _ = call(peer, "put", {"key": big_prefix + "ok", "data": b"z" * 1500})
    t.check(st == 200, "under the %s cap: 200" % big_prefix)

    #  Multipart: in order, the last part may be resent, commit is atomic
    st, body = call(peer, "upload_begin", {"key": big_prefix + "multi"})
    t.check(st == 200, "upload_begin", body)
    uid = body["upload_id"]
    chunks = [bytes([65 + i]) * 1500 for i in range(3)]
    for i, chunk in enumerate(chunks):
        st, body = call(peer, "upload_part", {"upload_id": uid, "part": i + 1, "data": chunk})
        t.check(st == 200, "upload_part %d" % (i + 1), body)
    st, body = call(peer, "upload_part", {"upload_id": uid, "part": 3, "data": chunks[2]})
    t.check(st == 200 and body["size"] == 4500, "resending the last part is safe", body)
    st, body = call(peer, "upload_part", {"upload_id": uid, "part": 5, "data": b"x"})
    t.check(st == 400, "a part out of order is 400", (st, body))
    st, _ = call(peer, "head", {"key": big_prefix + "multi"})
    t.check(st == 404, "nothing visible before commit")
    st, body = call(peer, "upload_commit", {"upload_id": uid})
    whole = b"".join(chunks)
    t.check(st == 200 and body["size"] == 4500
            and body["etag"] == hashlib.sha256(whole).hexdigest(),
            "upload_commit: size and SHA-256 ETag of the whole", body)
    st, body = call(peer, "get", {"key": big_prefix + "multi", "offset": 1499, "length": 2})
    t.check(body["data"] == b"AB", "range across a part boundary", body)

    #  Commit under another key (a name known once the bytes are, as
    #  ingestd names a table by its SHA-256): the new key's cap and
    #  condition apply, a refused commit keeps the upload, and the begun
    #  key is never written
    st, body = call(peer, "upload_begin", {"key": big_prefix + "staged"})
    uid = body["upload_id"]
    named = b"n" * 1200
    call(peer, "upload_part", {"upload_id": uid, "part": 1, "data": named})
    st, body = call(peer, "upload_commit", {"upload_id": uid, "key": 7})
    t.check(st == 400 and body["error"]["kind"] == "bad_key", "commit under a key not a string: 400",
            (st, body))
    st, body = call(peer, "upload_commit", {"upload_id": uid, "key": "../x"})
    t.check(st == 400 and body["error"]["kind"] == "bad_key", "commit under a bad key: 400",
            (st, body))
    st, body = call(peer, "upload_commit", {"upload_id": uid, "key": "docs/named"})
    t.check(st == 413 and "cap" in reason(body), "commit under a key whose cap is smaller: 413",
            (st, body))
    st, body = call(peer, "upload_commit", {"upload_id": uid, "key": big_prefix + "multi",
                                            "if_none_match": "*"})
    t.check(st == 412, "commit under an existing key with if_none_match: 412", (st, body))
    st, body = call(peer, "get", {"key": big_prefix + "multi", "offset": 0, "length": 2})
    t.check(st == 200 and body["data"] == b"AA", "... which is unchanged", (st, body))
    st, body = call(peer, "upload_begin", {"key": big_prefix + "staged"})
    uid = body["upload_id"]
    call(peer, "upload_part", {"upload_id": uid, "part": 1, "data": named})
    st, body = call(peer, "upload_commit", {"upload_id": uid, "key": 7})
    st, body = call(peer, "upload_commit", {"upload_id": uid, "key": "docs/named"})
    st, body = call(peer, "upload_commit", {"upload_id": uid, "key": big_prefix + "named"})
    t.check(st == 200 and body["key"] == big_prefix + "named" and body["size"] == 1200
            and body["etag"] == hashlib.sha256(named).hexdigest(),
            "after two refusals the same upload commits under another key", (st, body))
    st, body = call(peer, "get", {"key": big_prefix + "named"})
    t.check(st == 200 and body["data"] == named, "... which holds the bytes", (st, body))
    for key in (big_prefix + "staged", "docs/named"):
        st, body = call(peer, "head", {"key": key})
        t.check(st == 404, "... and %s was never written" % key, (st, body))
    st, body = call(peer, "upload_begin", {"key": "docs/over"})
    uid = body["upload_id"]
    call(peer, "upload_part", {"upload_id": uid, "part": 1, "data": b"o" * 800})
    st, body = call(peer, "upload_part", {"upload_id": uid, "part": 2, "data": b"o" * 800})
    t.check(st == 413, "a multipart upload crossing the cap: 413", (st, body))
    st, body = call(peer, "upload_part", {"upload_id": uid, "part": 3, "data": b"o"})
    t.check(st == 404, "... and the upload is gone", (st, body))
    st, body = call(peer, "put", {"key": "docs/x", "data": b"p" * 2001})
    t.check(st == 413, "a put over part_max: 413", (st, body))

    #  PUT slots: 4 open uploads hold all 4; the 5th PUT gets 503
    uploads = []
    for i in range(4):
        st, body = call(peer, "upload_begin", {"key": "slots/%d" % i})
        t.check(st == 200, "upload_begin %d takes a PUT slot" % (i + 1))
        uploads.append(body["upload_id"])
    st, body = call(peer, "put", {"key": "slots/5", "data": b"5"})
    retry = body.get("error", {}).get("retry_after_ms") if isinstance(body, dict) else None
    t.check(st == 503 and retry and retry > 0,
            "the 5th concurrent PUT: 503 + retry_after_ms", (st, body))
    for uid in uploads:
        st, _ = call(peer, "upload_abort", {"upload_id": uid})
        t.check(st == 200, "upload_abort frees its slot")
    st, _ = call(peer, "put", {"key": "slots/5", "data": b"5"})
    t.check(st == 200, "after the aborts the PUT succeeds")

    #  List paging over 2,500 keys: each key exactly once, in order
    keys = ["many/%d/%04d" % (i % 7, i) for i in range(2500)]
    window = 64
    pending = {}
    for key in keys:
        rid = peer.request("storaged", "put", {"key": key, "data": key.encode()},
                           q=True, dl=20000)
        pending[rid] = key
        if len(pending) >= window:
            drain(t, peer, pending, window // 2)
    drain(t, peer, pending, 0)
    t.check(True, "2,500 keys stored")
    for limit, how in ((1000, "continuation"), (333, "start_after")):
        seen = []
        token = None
        pages = 0
        while True:
            body = {"prefix": "many/", "limit": limit}
            if token:
                body[how] = token
            st, page = call(peer, "list", body)
            if st != 200:
                raise lhtest.Failure("list: %r %r" % (st, page))
            pages += 1
            seen += [item["key"] for item in page["keys"]]
            if not page["truncated"]:
                break
            token = page["next"] if how == "continuation" else page["keys"][-1]["key"]
        t.check(seen == sorted(keys) and len(set(seen)) == 2500,
                "list by %d with %s: 2,500 keys once each, in order (%d pages)"
                % (limit, how, pages), (len(seen), len(set(seen))))
    st, body = call(peer, "list", {"limit": 1001})
    t.check(st == 400, "list limit > 1000: 400", (st, body))

    #  delete
    st, _ = call(peer, "delete", {"key": "docs/new.txt"})
    t.check(st == 200, "delete")
    st, _ = call(peer, "delete", {"key": "docs/new.txt"})
    t.check(st == 404, "delete again: 404")


def drain(t, peer, pending, keep):
    """Collect replies until at most keep requests are in flight."""
    while len(pending) > keep:
        rid = next(iter(pending))
        rep = peer.wait_reply(rid, 20.0)
        if rep is None or rep.st != 200:
            raise lhtest.Failure("put %s: %r" % (pending[rid], rep and rep.obj))
        del pending[rid]


SUITE_SETS = {
    "storaged/cap_default": 1000,
    "storaged/caps": "_vectors/=5000",
    "storaged/put_slots": 4,
    "storaged/part_max": 2000,
    "storaged/get_max": 100000,
}


def main(t):
    sets = dict(SUITE_SETS)
    sets["storaged/dir"] = os.path.join(t.tmp, "storage")
    _, endpoint = harness(t, "storaged", sets=sets)
    peer = t.client(endpoint)
    suite(t, peer)


if __name__ == "__main__":
    lhtest.run(main, budget=200)
