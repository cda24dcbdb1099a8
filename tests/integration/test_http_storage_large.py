#!/usr/bin/python3
"""test_http_storage_large - a 600 MiB object to _vectors/ (cap 4 GiB)
uploaded through the gateway with one HTTP PUT and read back with one GET,
byte-identical, while the whole system (`lakehouse up`: broker, storaged,
gateway in one process) keeps its peak RSS (VmHWM) below 100 MiB: the
gateway streams the body into storaged parts and the object back out in
ranges, never holding it whole.
"""

import hashlib
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest                    # noqa: E402
import test_gateway_util as gw   # noqa: E402

MIB = 1024 * 1024
TOTAL = 600 * MIB
LIMIT_KIB = 100 * 1024


def blocks():
    """600 MiB of deterministic bytes, 1 MiB at a time (a few blocks
    repeated with a counter, so generating them costs little)."""
    base = [random.Random(seed).randbytes(MIB) for seed in range(4)]
    for index in range(TOTAL // MIB):
        block = bytearray(base[index % 4])
        block[:8] = index.to_bytes(8, "little")
        yield bytes(block)


def main(t):
    if os.environ.get("LH_ASAN") == "1":
        raise lhtest.Skip("RSS figures mean nothing under ASan", ci_ok=True)
    b, h = gw.up(t, "storaged", workers=2,
                 sets={"storaged/dir": os.path.join(t.tmp, "storage")})
    t.note("lakehouse up pid %d, VmHWM at start %s KiB" % (h.pid, gw.vm_hwm_kib(h.pid)))

    sha = hashlib.sha256()

    def body():
        for block in blocks():
            sha.update(block)
            yield block
    started = time.monotonic()
    conn = h.connection(timeout=300)
    conn.request("PUT", "/v1/storage/_vectors/huge.bin", body=body(),
                 headers={"Content-Length": str(TOTAL),
                          "Content-Type": "application/octet-stream"})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    took = time.monotonic() - started
    t.check(resp.status == 200, "600 MiB PUT through the gateway -> 200", (resp.status, data))
    doc = json.loads(data)
    t.check(doc["size"] == TOTAL and doc["etag"] == sha.hexdigest(),
            "its ETag is the SHA-256 of the 600 MiB (%.1f s, %.0f MB/s)"
            % (took, TOTAL / took / 1e6), doc)

    started = time.monotonic()
    conn = h.connection(timeout=300)
    conn.request("GET", "/v1/storage/_vectors/huge.bin")
    resp = conn.getresponse()
    back = hashlib.sha256()
    size = 0
    while True:
        chunk = resp.read(MIB)
        if not chunk:
            break
        back.update(chunk)
        size += len(chunk)
    conn.close()
    took = time.monotonic() - started
    t.check(resp.status == 200 and resp.getheader("Content-Length") == str(TOTAL)
            and resp.getheader("ETag") == '"%s"' % sha.hexdigest(),
            "GET -> 200 with Content-Length and ETag", resp.getheaders())
    t.check(size == TOTAL and back.hexdigest() == sha.hexdigest(),
            "read back byte-identical (%.1f s, %.0f MB/s)" % (took, TOTAL / took / 1e6),
            size)

    peak = gw.vm_hwm_kib(h.pid)
    t.note("lakehouse up (broker + storaged + gateway) peak RSS (VmHWM) %.1f MiB"
           % (peak / 1024.0))
    t.check(peak is not None and peak < LIMIT_KIB,
            "whole process peak RSS below 100 MiB", "%s KiB" % peak)
    gw.healthy(t, h, "600 MiB in and out")


if __name__ == "__main__":
    lhtest.run(main, budget=300)
