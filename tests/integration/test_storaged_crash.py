#!/usr/bin/python3
"""kill -9 of storaged in the middle of a large put (fs backend): the key
holds the old object or the whole new one, never a partial one; nothing
half-written shows in a listing; abandoned uploads are swept at start."""

import hashlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402
from test_storaged import harness, call  # noqa: E402

PART = 4 * 1024 * 1024
PARTS = 6
OLD = b"the old object\n" * 10


def main(t):
    sets_broker = {"broker/hb_ivl": 200, "broker/hb_live": lhtest.HB_LIVE}
    _, endpoint = harness(t, "none", sets=sets_broker)
    storage = os.path.join(t.tmp, "storage")
    #  The default upload TTL (an hour): a restarted fs storaged sweeps
    #  every upload left on disk at start, whatever its age (it alone
    #  serves the store), which the last check below shows
    sets = {"storaged/dir": storage}
    peer = t.client(endpoint)
    proc, _ = harness(t, "storaged", broker=endpoint, sets=sets)
    st, _ = call(peer, "put", {"key": "big/obj", "data": OLD})
    t.check(st == 200, "old object stored")
    new = b"".join(bytes([48 + i]) * PART for i in range(PARTS))
    new_sha = hashlib.sha256(new).hexdigest()
    old_sha = hashlib.sha256(OLD).hexdigest()

    #  Parts go one at a time (they must arrive in order). Kill while part
    #  k is in flight; k = PARTS + 1 kills right after the commit is sent.
    outcomes = set()
    for k in (1, 3, PARTS, PARTS + 1, 0):
        if k == 0:
            #  A whole put (the temp file + rename path) killed in flight
            peer.request("storaged", "put", {"key": "big/obj", "data": new[:PART]},
                         q=True, dl=10000)
        else:
            st, body = call(peer, "upload_begin", {"key": "big/obj"})
            t.check(st == 200, "upload_begin (kill during step %d)" % k, body)
            uid = body["upload_id"]
            for i in range(min(k, PARTS)):
                body = {"upload_id": uid, "part": i + 1,
                        "data": new[i * PART:(i + 1) * PART]}
                if i + 1 == k:
                    peer.request("storaged", "upload_part", body, q=True, dl=20000)
                else:
                    st, _ = call(peer, "upload_part", body)
                    if st != 200:
                        raise lhtest.Failure("part %d: %d" % (i + 1, st))
            if k > PARTS:
                peer.request("storaged", "upload_commit", {"upload_id": uid},
                             q=True, dl=20000)
        proc.kill9()
        peer.pending.clear()
        t.note("storaged killed (k=%d)" % k)
        proc, _ = harness(t, "storaged", broker=endpoint, sets=sets)
        #  The dead workers may still be listed until the broker's liveness
        #  window passes: retry the read until a live worker answers
        deadline = lhtest.now() + 10
        while True:
            st, body = call(peer, "get", {"key": "big/obj", "length": 1})
            if st == 200 or lhtest.now() > deadline:
                break
        t.check(st == 200, "key readable after restart", (st, body))
        sha = hashlib.sha256()
        offset = 0
        size = body["size"]
        while offset < size:
            st, body = call(peer, "get", {"key": "big/obj", "offset": offset,
                                          "length": 8 * 1024 * 1024})
            t.check(st == 200, "read at %d" % offset, body) if st != 200 else None
            sha.update(body["data"])
            offset += len(body["data"])
        digest = sha.hexdigest()
        state = "old" if digest == old_sha else "new" if digest == new_sha else "TORN"
        if k == 0 and state != "old":
            state = "new-put" if digest == hashlib.sha256(new[:PART]).hexdigest() else "TORN"
        t.check(state != "TORN", "after kill (k=%d) the key holds the %s object, "
                "never a partial one" % (k, state), digest)
        t.check(body.get("etag") == digest or size == 0,
                "its ETag matches its content")
        outcomes.add(state)
        if state != "old":
            call(peer, "put", {"key": "big/obj", "data": OLD})
        st, page = call(peer, "list", {"prefix": "big/"})
        t.check([item["key"] for item in page["keys"]] == ["big/obj"],
                "listing shows only the one object", page)
    uploads = os.listdir(os.path.join(storage, "uploads"))
    t.check(uploads == [], "abandoned uploads swept at start", uploads)
    t.note("outcomes seen: %s" % sorted(outcomes))


if __name__ == "__main__":
    lhtest.run(main, budget=200)
