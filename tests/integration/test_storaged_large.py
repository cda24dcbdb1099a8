#!/usr/bin/python3
"""A 600 MiB object to _vectors/ (cap 4 GiB) through the bus as a multipart
upload, read back in ranges byte-identical, with storaged's peak RSS below
100 MiB (sampled every 20 ms while it runs).

The gateway's half of this (HTTP PUT streamed into parts, its own RSS) is
the gateway's test; this one proves storaged's memory stays bounded by a
few parts whatever the object size."""

import hashlib
import os
import random
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402
from test_storaged import harness, call  # noqa: E402

MIB = 1024 * 1024
PART = 8 * MIB
TOTAL = 600 * MIB
LIMIT_KIB = 100 * 1024


def part_data(index):
    return random.Random(index).randbytes(PART)


def main(t):
    _, endpoint = harness(t, "none")
    sets = {"storaged/dir": os.path.join(t.tmp, "storage")}
    proc, _ = harness(t, "storaged", broker=endpoint, sets=sets)
    peer = t.client(endpoint)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            rss = proc.rss_kib() or 0
            peak[0] = max(peak[0], rss)
            done.wait(0.02)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()

    st, body = call(peer, "upload_begin", {"key": "_vectors/huge.bin"})
    t.check(st == 200, "upload_begin", body)
    uid = body["upload_id"]
    sha = hashlib.sha256()
    parts = TOTAL // PART + (1 if TOTAL % PART else 0)
    for index in range(parts):
        data = part_data(index)[:min(PART, TOTAL - index * PART)]
        sha.update(data)
        st, body = call(peer, "upload_part", {"upload_id": uid, "part": index + 1,
                                              "data": data}, timeout=30.0)
        if st != 200:
            raise lhtest.Failure("part %d: %d %r" % (index + 1, st, body))
    st, body = call(peer, "upload_commit", {"upload_id": uid}, timeout=60.0)
    t.check(st == 200 and body["size"] == TOTAL, "600 MiB committed", body)
    t.check(body["etag"] == sha.hexdigest(), "ETag is the SHA-256 of the 600 MiB")

    back = hashlib.sha256()
    offset = 0
    while offset < TOTAL:
        st, body = call(peer, "get", {"key": "_vectors/huge.bin", "offset": offset},
                        timeout=30.0)
        if st != 200 or not body["data"]:
            raise lhtest.Failure("get at %d: %d" % (offset, st))
        back.update(body["data"])
        offset += len(body["data"])
    t.check(back.hexdigest() == sha.hexdigest(), "read back in ranges byte-identical")
    done.set()
    sampler.join()
    t.note("storaged peak RSS %.1f MiB" % (peak[0] / 1024.0))
    if os.environ.get("LH_ASAN") == "1":
        #  ASan's quarantine and shadow memory hold freed blocks on purpose
        t.note("RSS bound not checked under ASan")
    else:
        t.check(0 < peak[0] < LIMIT_KIB, "storaged peak RSS below 100 MiB",
                "%d KiB" % peak[0])


if __name__ == "__main__":
    lhtest.run(main, budget=280)
