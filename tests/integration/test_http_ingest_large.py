#!/usr/bin/python3
"""test_http_ingest_large - the pipeline's own data on default settings.

A 500,000-worker roster from build/gen_workers (about 340 MB, 18 columns)
is sent to POST /v1/ingest of `lakehouse up` (storaged, catalogd,
ingestd, the gateway) with no size setting changed: one setting,
ingest/max_bytes (4 GiB), admits it at the gateway, in storaged (the cap
of uploads/ingest/) and in ingestd. The answer is 200 with row_count
500000. The whole system is one process; its RSS is sampled every 100 ms
during the request and the samples are printed, with the peak (VmHWM):
memory stays bounded whatever the size. The CSV is generated into the
test's temp dir and deleted afterwards. The table built from it (about
390 MB) is over storaged/cap_default too: datasets/ is capped at 4 times
ingest/max_bytes.
"""

import http.client
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest                    # noqa: E402
import test_gateway_util as gw   # noqa: E402

ROWS = 500000
MIB = 1024 * 1024


class Sampler(threading.Thread):
    """RSS (KiB) of one process every interval seconds until stopped."""

    def __init__(self, pid, interval=0.1):
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.samples = []
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            rss = lhtest.rss_kib(self.pid)
            if rss:
                self.samples.append((time.monotonic(), rss))
            self.done.wait(self.interval)


def main(t):
    gen = os.path.join(t.build, "gen_workers")
    if not os.access(gen, os.X_OK):
        raise lhtest.Skip("%s is not built" % gen)
    csv_path = os.path.join(t.tmp, "workers.csv")
    try:
        start = time.monotonic()
        subprocess.run([gen, "--rows", str(ROWS), "--seed", "1", "--out", csv_path],
                       check=True, timeout=120)
        size = os.path.getsize(csv_path)
        t.note("roster: %d rows, %d bytes (%.0f MiB), generated in %.1f s"
               % (ROWS, size, size / MIB, time.monotonic() - start))
        t.check(size >= 340 * 1000 * 1000, "the roster is at least 340 MB", size)

        b, h = gw.up(t, "storaged,catalogd,ingestd")
        sampler = Sampler(b.proc.pid)
        sampler.start()
        start = time.monotonic()
        conn = http.client.HTTPConnection(h.host, h.port, timeout=240, blocksize=MIB)
        with open(csv_path, "rb") as body:
            conn.request("POST", "/v1/ingest?name=workers", body=body,
                         headers={"Content-Type": "text/csv", "Content-Length": str(size)})
            resp = conn.getresponse()
            data = resp.read()
        elapsed = time.monotonic() - start
        conn.close()
        sampler.done.set()
        sampler.join()
        peak = gw.vm_hwm_kib(b.proc.pid)

        doc = json.loads(data) if resp.status == 200 else None
        t.check(resp.status == 200 and doc["row_count"] == ROWS,
                "POST /v1/ingest of %d bytes on default settings -> 200, row_count %d"
                % (size, ROWS), (resp.status, data[:400]))
        t.note("ingested in %.1f s (%.0f MB/s end to end)" % (elapsed, size / 1e6 / elapsed))
        samples = sampler.samples
        if samples:
            t0 = samples[0][0]
            step = max(1, len(samples) // 20)
            t.note("whole-system RSS during the request (s: MiB): %s"
                   % ", ".join("%.1f: %.0f" % (at - t0, rss / 1024.0)
                               for at, rss in samples[::step]))
            t.note("RSS: %d samples, max %.0f MiB; peak (VmHWM) %.0f MiB"
                   % (len(samples), max(r for _, r in samples) / 1024.0, (peak or 0) / 1024.0))
        if os.environ.get("LH_ASAN") == "1":
            t.note("ASan build: its quarantine holds freed memory, RSS not checked")
        else:
            t.check(peak is not None and peak < 256 * 1024,
                    "peak RSS of the whole system under 256 MiB for a %.0f MiB file"
                    % (size / MIB), peak)
        #  Its table is larger than storaged/cap_default (256 MiB): datasets/
        #  is capped at 4 x ingest/max_bytes
        st, _, body = h.request("GET", "/v1/storage?prefix=datasets/")
        tables = json.loads(body)["keys"] if st == 200 else []
        t.note("table file: %s" % ", ".join("%d bytes (%.2fx the CSV)"
                                            % (k["size"], k["size"] / size)
                                            for k in tables))
        #  The source upload was removed; the dataset answers
        st, _, body = h.request("GET", "/v1/storage?prefix=uploads/ingest/")
        t.check(st == 200 and json.loads(body)["keys"] == [],
                "the uploaded source was removed", body[:300])
        st, _, body = h.request("GET", "/v1/catalog/manifest/workers")
        t.check(st == 200 and json.loads(body).get("row_count") == ROWS,
                "the catalog holds workers with %d rows" % ROWS, body[:300])
    finally:
        if os.path.exists(csv_path):
            os.unlink(csv_path)


if __name__ == "__main__":
    lhtest.run(main, budget=280)
