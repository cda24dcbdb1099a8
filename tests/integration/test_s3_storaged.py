#!/usr/bin/python3
"""storaged's s3 backend against a real S3-compatible server (npm s3rver on
loopback, started by scripts/s3rver-start): the whole backend-neutral
storaged suite of test_storaged.py (key rules, caps, slots, conditional
puts, ranges, multipart, list paging over 2,500 keys, delete), then what is
particular to S3: the objects really are in the bucket with their SHA-256
in x-amz-meta-sha256 (also after a multipart upload of several S3 parts),
virtual-host addressing, 64 MiB through with storaged's RSS bounded, an unknown access key refused as 403 with S3's
code and no credentials in the reason, a group-readable credentials file
refused at start, and an unreachable endpoint answered 502 with curl's
message.

s3rver checks that the access key id exists but not the SigV4 signature;
test_s3_sigv4.py proves the signer against botocore. Skips (77) when npm
cannot install s3rver."""

import hashlib
import os
import re
import sys
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402
from test_storaged import SUITE_SETS, call, harness, reason, suite  # noqa: E402

ROOT = os.environ.get("LH_ROOT") or os.path.abspath(os.path.join(HERE, "..", ".."))
BUCKET = "lakehouse"
LISTENING = re.compile(r"S3rver listening on ([0-9.]+):(\d+)")


def start_s3rver(t):
    """scripts/s3rver-start on an ephemeral port; returns the port."""
    script = os.path.join(ROOT, "scripts", "s3rver-start")
    data = os.path.join(t.tmp, "s3rver")
    proc = lhtest.Proc([script, data, BUCKET, "0", "--service-endpoint", "localhost"],
                       "s3rver", t.tmp, dict(os.environ))
    t.procs.append(proc)
    try:
        m = proc.wait_line(LISTENING, 300.0)
    except lhtest.Failure:
        proc.popen.wait(5)
        if proc.popen.returncode == 77:
            raise lhtest.Skip("npm could not install s3rver:\n" + proc.tail())
        raise
    t.note("s3rver pid %d on 127.0.0.1:%s (data %s)" % (proc.pid, m.group(2), data))
    return int(m.group(2))


def s3_sets(port, **more):
    sets = dict(SUITE_SETS)
    sets.update({
        "storaged/backend": "s3",
        "storaged/s3_endpoint": "http://127.0.0.1:%d" % port,
        "storaged/s3_bucket": BUCKET,
        "storaged/s3_style": "path",
        #  Small S3 parts, so the suite's 1,500-byte parts make real
        #  multipart uploads of several S3 parts
        "storaged/s3_part_min": 1000,
        "storaged/s3_timeout_ms": 10000,
    })
    sets.update(more)
    return sets


def raw_get(port, key):
    """GET straight from s3rver (it serves unsigned requests): (body, headers)."""
    url = "http://127.0.0.1:%d/%s/%s" % (port, BUCKET, urllib.request.quote(key))
    with urllib.request.urlopen(url, timeout=10) as rep:
        return rep.read(), {k.lower(): v for k, v in rep.headers.items()}


def set_env(access_key, secret):
    for name in ("LAKEHOUSE_S3_ACCESS_KEY_ID", "LAKEHOUSE_S3_SECRET_ACCESS_KEY",
                 "LAKEHOUSE_S3_SESSION_TOKEN", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    os.environ["AWS_ACCESS_KEY_ID"] = access_key
    os.environ["AWS_SECRET_ACCESS_KEY"] = secret


def s3_specific(t, peer, port):
    """What the suite cannot see: the bytes and metadata in the bucket."""
    body, headers = raw_get(port, "docs/hello.txt")
    t.check(body == b"v2" and headers.get("x-amz-meta-sha256") == hashlib.sha256(b"v2").hexdigest(),
            "the object is in the bucket with its SHA-256 in x-amz-meta-sha256", headers)
    whole = b"".join(bytes([65 + i]) * 1500 for i in range(3))
    body, headers = raw_get(port, "_vectors/multi")
    t.check(body == whole and headers.get("x-amz-meta-sha256") == hashlib.sha256(whole).hexdigest(),
            "a multipart object (3 S3 parts) is whole in the bucket, with its SHA-256", headers)
    st, body = call(peer, "list", {"prefix": "_vectors/multi"})
    t.check(st == 200 and body["keys"][0]["etag"] == hashlib.sha256(whole).hexdigest()
            and body["keys"][0]["size"] == 4500,
            "list reports the SHA-256 ETag and size", body)

    #  A larger upload: parts of 2,000 bytes, S3 parts of >= 1,000
    data = os.urandom(4900)
    st, body = call(peer, "upload_begin", {"key": "_vectors/rand.bin"})
    uid = body["upload_id"]
    for i in range(3):
        st, body = call(peer, "upload_part", {"upload_id": uid, "part": i + 1,
                                              "data": data[i * 2000:(i + 1) * 2000]})
    st, body = call(peer, "upload_commit", {"upload_id": uid, "if_none_match": "*"})
    t.check(st == 200 and body["etag"] == hashlib.sha256(data).hexdigest(),
            "conditional multipart commit of random bytes", (st, body))
    got = b""
    while len(got) < len(data):
        st, body = call(peer, "get", {"key": "_vectors/rand.bin", "offset": len(got), "length": 1700})
        if st != 200 or not body["data"]:
            break
        got += body["data"]
    t.check(got == data, "read back in ranges, byte-identical", len(got))
    st, body = call(peer, "get", {"key": "_vectors/rand.bin", "offset": 4900})
    t.check(st == 200 and body["data"] == b"" and body["size"] == 4900,
            "get at the end: empty data", (st, body))
    st, body = call(peer, "get", {"key": "_vectors/rand.bin", "offset": 4901})
    t.check(st == 400 and body["error"]["kind"] == "bad_range", "get past the end: 400", (st, body))

    #  A multipart upload committed under another key: S3 completes it
    #  under the begun key, copies it and deletes the begun object
    st, body = call(peer, "upload_begin", {"key": "_vectors/staged.bin"})
    uid = body["upload_id"]
    for i in range(3):
        call(peer, "upload_part", {"upload_id": uid, "part": i + 1,
                                   "data": data[i * 2000:(i + 1) * 2000]})
    st, body = call(peer, "upload_commit", {"upload_id": uid, "key": "_vectors/named.bin",
                                            "if_none_match": "*"})
    t.check(st == 200 and body["key"] == "_vectors/named.bin"
            and body["etag"] == hashlib.sha256(data).hexdigest(),
            "multipart commit under another key", (st, body))
    st, body = call(peer, "head", {"key": "_vectors/named.bin"})
    t.check(st == 200 and body["etag"] == hashlib.sha256(data).hexdigest()
            and body["size"] == 4900, "... the named object has the bytes' SHA-256", (st, body))
    st, body = call(peer, "head", {"key": "_vectors/staged.bin"})
    t.check(st == 404, "... and the begun key holds nothing", (st, body))
    #  A small one (one PutObject) straight to the named key
    st, body = call(peer, "upload_begin", {"key": "_vectors/staged-small.bin"})
    uid = body["upload_id"]
    call(peer, "upload_part", {"upload_id": uid, "part": 1, "data": b"small"})
    st, body = call(peer, "upload_commit", {"upload_id": uid, "key": "_vectors/named-small.bin"})
    t.check(st == 200 and body["etag"] == hashlib.sha256(b"small").hexdigest(),
            "small commit under another key", (st, body))
    st, body = call(peer, "head", {"key": "_vectors/staged-small.bin"})
    t.check(st == 404, "... and its begun key holds nothing", (st, body))

    #  A commit whose condition fails ends the upload, changes nothing
    st, body = call(peer, "upload_begin", {"key": "_vectors/rand.bin"})
    uid = body["upload_id"]
    call(peer, "upload_part", {"upload_id": uid, "part": 1, "data": b"x" * 1500})
    call(peer, "upload_part", {"upload_id": uid, "part": 2, "data": b"y" * 10})
    st, body = call(peer, "upload_commit", {"upload_id": uid, "if_none_match": "*"})
    t.check(st == 412, "commit with if_none_match on an existing key: 412", (st, body))
    st, body = call(peer, "upload_part", {"upload_id": uid, "part": 3, "data": b"z"})
    t.check(st == 404, "... and the upload is gone", (st, body))
    st, body = call(peer, "head", {"key": "_vectors/rand.bin"})
    t.check(st == 200 and body["etag"] == hashlib.sha256(data).hexdigest(),
            "... and the object is unchanged", body)

    #  Empty objects, and keys that need encoding
    st, body = call(peer, "put", {"key": "docs/empty", "data": b""})
    st, body = call(peer, "get", {"key": "docs/empty"})
    t.check(st == 200 and body["data"] == b"" and body["size"] == 0
            and body["etag"] == hashlib.sha256(b"").hexdigest(), "an empty object", (st, body))
    odd = "odd/with space+plus/caf\u00e9 \u20ac~.txt"
    st, body = call(peer, "put", {"key": odd, "data": b"odd"})
    t.check(st == 200, "put of a key with spaces, '+' and unicode", (st, body))
    st, body = call(peer, "get", {"key": odd})
    t.check(st == 200 and body["data"] == b"odd", "... get", (st, body))
    st, body = call(peer, "list", {"prefix": "odd/"})
    t.check(st == 200 and [k["key"] for k in body["keys"]] == [odd], "... list", body)
    st, body = call(peer, "delete", {"key": odd})
    st, body = call(peer, "head", {"key": odd})
    t.check(st == 404, "... delete", (st, body))


def large(t, port):
    """64 MiB in 8 MiB parts with the default part sizes (S3 parts of at
    least 5 MiB): byte-identical back, storaged's peak RSS bounded."""
    import random
    import threading
    mib = 1024 * 1024
    _, endpoint = harness(t, "none")
    sets = {key: value for key, value in s3_sets(port).items()
            if key.startswith("storaged/s3_") or key == "storaged/backend"}
    del sets["storaged/s3_part_min"]
    proc, _ = harness(t, "storaged", broker=endpoint, sets=sets)
    peer = t.client(endpoint)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], proc.rss_kib() or 0)
            done.wait(0.02)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    st, body = call(peer, "upload_begin", {"key": "_vectors/large.bin"})
    uid = body["upload_id"]
    sha = hashlib.sha256()
    for index in range(8):
        data = random.Random(index).randbytes(8 * mib)
        sha.update(data)
        st, body = call(peer, "upload_part", {"upload_id": uid, "part": index + 1, "data": data},
                        timeout=30.0)
        if st != 200:
            raise lhtest.Failure("part %d: %d %r" % (index + 1, st, body))
    st, body = call(peer, "upload_commit", {"upload_id": uid}, timeout=60.0)
    t.check(st == 200 and body["size"] == 64 * mib and body["etag"] == sha.hexdigest(),
            "64 MiB multipart upload to S3: size and SHA-256 ETag", (st, body))
    back = hashlib.sha256()
    offset = 0
    while offset < 64 * mib:
        st, body = call(peer, "get", {"key": "_vectors/large.bin", "offset": offset}, timeout=30.0)
        if st != 200 or not body["data"]:
            raise lhtest.Failure("get at %d: %d" % (offset, st))
        back.update(body["data"])
        offset += len(body["data"])
    done.set()
    sampler.join()
    t.check(back.hexdigest() == sha.hexdigest(), "... read back in 8 MiB ranges, byte-identical")
    t.note("storaged peak RSS %.1f MiB" % (peak[0] / 1024.0))
    if os.environ.get("LH_ASAN") == "1":
        t.note("ASan build: its quarantine holds freed memory, RSS not checked")
    else:
        t.check(0 < peak[0] < 100 * 1024, "... storaged peak RSS below 100 MiB",
                "%d KiB" % peak[0])
    st, _ = call(peer, "delete", {"key": "_vectors/large.bin"})


def main(t):
    port = start_s3rver(t)
    set_env("S3RVER", "S3RVER")
    _, endpoint = harness(t, "storaged", sets=s3_sets(port))
    peer = t.client(endpoint)
    suite(t, peer)
    s3_specific(t, peer, port)

    #  upload_read: S3 cannot show an upload's parts before its commit, so
    #  a follower (ingestd) is told readable false and waits for the commit
    st, body = call(peer, "upload_begin", {"key": "docs/follow.csv"})
    uid = body["upload_id"]
    for part in (1, 2):
        st, body = call(peer, "upload_part", {"upload_id": uid, "part": part,
                                              "data": b"1,2\n" * 75})
        t.check(st == 200, "s3: part %d of a followed upload" % part, (st, body))
    st, body = call(peer, "upload_read", {"upload_id": uid, "offset": 0})
    t.check(st == 200 and body["readable"] is False and body["data"] == b""
            and body["key"] == "docs/follow.csv",
            "s3: upload_read of an upload in progress -> readable false, no bytes", (st, body))
    st, body = call(peer, "upload_commit", {"upload_id": uid})
    t.check(st == 200 and body["size"] == 600, "... committed", (st, body))
    st, body = call(peer, "upload_read", {"upload_id": uid})
    t.check(st == 404, "... upload_read 404 once committed", (st, body))

    #  Virtual-host addressing: BUCKET.s3.localhost (s3rver runs with
    #  --service-endpoint localhost; *.localhost is loopback for libcurl)
    _, endpoint = harness(t, "storaged", sets=s3_sets(
        port, **{"storaged/s3_endpoint": "http://s3.localhost:%d" % port,
                 "storaged/s3_style": "virtual"}))
    vpeer = t.client(endpoint)
    st, body = call(vpeer, "put", {"key": "vhost/a.txt", "data": b"virtual"})
    t.check(st == 200, "virtual-host style: put", (st, body))
    data, _ = raw_get(port, "vhost/a.txt")
    t.check(data == b"virtual", "... the object is in bucket %s" % BUCKET, data)
    st, body = call(vpeer, "list", {"prefix": "vhost/"})
    t.check(st == 200 and [k["key"] for k in body["keys"]] == ["vhost/a.txt"],
            "... list", (st, body))
    st, body = call(vpeer, "get", {"key": "docs/hello.txt"})
    t.check(st == 200 and body["data"] == b"v2", "... get of an object put path-style", (st, body))

    large(t, port)

    #  An unknown access key (from a 0600 credentials file): 403, S3's
    #  code in the reason, neither the key id nor the secret
    creds = os.path.join(t.tmp, "s3.creds")
    with open(creds, "w") as f:
        f.write("access_key_id=LHUNKNOWNKEY\nsecret_access_key=LHSECRETVALUE\n")
    os.chmod(creds, 0o600)
    _, endpoint = harness(t, "storaged", sets=s3_sets(
        port, **{"storaged/s3_credentials_file": creds}))
    bad = t.client(endpoint)
    for op, body in (("put", {"key": "docs/denied", "data": b"x"}),
                     ("get", {"key": "docs/hello.txt"}),
                     ("head", {"key": "docs/hello.txt"}),
                     ("list", {"prefix": "docs/"}),
                     ("delete", {"key": "docs/hello.txt"})):
        st, rep = call(bad, op, body)
        why = reason(rep)
        t.check(st == 403 and "InvalidAccessKeyId" in why
                and "LHUNKNOWNKEY" not in why and "LHSECRETVALUE" not in why,
                "unknown access key: %s refused 403 with a clean reason" % op, (st, rep))
    t.note("reason: %s" % why)

    #  A credentials file others may read is refused at start
    os.chmod(creds, 0o644)
    path = os.path.join(t.build, "lh_storage_harness")
    args = [path, "--services", "storaged"]
    for key, value in s3_sets(port, **{"storaged/s3_credentials_file": creds}).items():
        args += ["--set", "%s=%s" % (key, value)]
    proc = lhtest.Proc(args, "badcreds", t.tmp, dict(os.environ))
    t.procs.append(proc)
    proc.popen.wait(15)
    with open(proc.log_path, "rb") as f:
        err = f.read().decode("utf-8", "replace")
    t.check(proc.popen.returncode not in (0, None) and "chmod 600" in err
            and "group or others" in err and "LHSECRETVALUE" not in err,
            "a group/other-readable credentials file: storaged refuses to start", err[-400:])

    #  Nobody listening: 502 with curl's message
    _, endpoint = harness(t, "storaged", sets=s3_sets(
        lhtest.free_port(), **{"storaged/s3_connect_timeout_ms": 2000}))
    down = t.client(endpoint)
    st, rep = call(down, "put", {"key": "docs/x", "data": b"x"})
    t.check(st == 502 and "connect" in reason(rep).lower() and "S3RVER" not in reason(rep),
            "an unreachable endpoint: 502 with curl's message", (st, rep))
    t.note("reason: %s" % reason(rep))


if __name__ == "__main__":
    lhtest.run(main, budget=280)
