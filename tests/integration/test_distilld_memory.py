#!/usr/bin/python3
"""test_distilld_memory - materialize streams: 100,000 source rows (about
100 MB over the twelve sources, rows of about 1 KB spread over 40 days,
every source's days interleaved so that evidence files are opened and
closed all the time) go through `lakehouse distill materialize` against
one `lakehouse up` running the broker and distilld, with progress on
stderr. The process's peak resident set (VmHWM, the kernel's high-water
mark) is reported in the test log and must stay far below the input
size: the rows are never held together. A second materialize dedupes
every row. Batches are 50,000 rows (distilld/batch_rows), each longer
than the broker's liveness window here (hb_ivl x hb_live, 1 s): the
worker must heartbeat from inside a batch or it is declared dead and the
call answered 503 (which it was, before the line reader heartbeat).

Under ASan (LH_ASAN=1) the run is the same but the RSS bound is not
checked (RSS figures mean nothing there); the figure is still printed.
"""

import json
import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest                    # noqa: E402
import test_gateway_util as gw   # noqa: E402

ROWS = 100000
SOURCES = ["distilled_facts", "distilled_procedures", "distilled_config_hints", "audit_facts",
           "contract_analyses", "mode_experiments", "scrum_reviews", "observer_escalations",
           "auto_apply", "observer_reviews", "audits", "outcomes"]
LIMIT_KIB = 32 * 1024
DAY0 = 1767225600               # 2026-01-01T00:00:00Z


def generate(root):
    """ROWS rows over the sources; returns the input size in bytes."""
    rng = random.Random(20)
    words = ("export batch index latency cache build key rotate vault pool search nightly "
             "pipeline deploy revert verify check ensure statement lockfile budget").split()
    base = os.path.join(root, "data", "_kb")
    os.makedirs(base)
    files = {s: open(os.path.join(base, s + ".jsonl"), "w", encoding="utf-8") for s in SOURCES}
    size = 0
    for n in range(ROWS):
        source = SOURCES[n % len(SOURCES)]
        text = " ".join(rng.choice(words) for _ in range(140))
        row = {"ts": DAY0 + rng.randrange(40 * 86400), "task": "task %d %s" % (n % 5000, text[:60]),
               "verdict": rng.choice(["accepted", "partial", "rejected"]), "run_id": "r%d" % n,
               "answer": text, "n": n}
        line = json.dumps(row) + "\n"
        files[source].write(line)
        size += len(line)
    for f in files.values():
        f.close()
    return size


def main(t):
    asan = os.environ.get("LH_ASAN") == "1"
    root = os.path.join(t.tmp, "kb")
    size = generate(root)
    t.check(size > 90 * 1000 * 1000, "%d source rows, %.0f MB of JSONL" % (ROWS, size / 1e6))
    b = t.up(actors="distilld", workers=1, sets={"distilld/root": root, "gateway/listen": "",
                                                  "distilld/batch_rows": 50000})
    t.note("liveness window %d ms (hb_ivl %d x hb_live %d)" % (t.hb_ivl * t.hb_live, t.hb_ivl, t.hb_live))
    start_hwm = gw.vm_hwm_kib(b.proc.pid)
    t.note("lakehouse up (broker, distilld) pid %d, VmHWM at start %.1f MiB"
           % (b.proc.pid, start_hwm / 1024.0))
    base = [t.lakehouse, "--set", "bus/endpoint=%s" % b.endpoint, "--set", "bus/plain=true",
            "--set", "bus/curve=false", "--set", "data/dir=%s" % os.path.join(t.tmp, "cli"),
            "distill", "materialize", "--recorded-at", "2026-02-01T00:00:00Z"]
    started = time.monotonic()
    done = subprocess.run(base, capture_output=True, text=True, timeout=600)
    took = time.monotonic() - started
    receipt = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else {}
    t.check(done.returncode == 0 and receipt.get("read") == ROWS and receipt.get("written") == ROWS,
            "materialize: %d rows read and written in %.1f s (%.0f rows/s)"
            % (ROWS, took, ROWS / took), (done.returncode, done.stderr[-500:]))
    progress = [line for line in done.stderr.splitlines() if line.startswith("materialize ")]
    t.check(len(progress) == 4, "%d progress lines on stderr (checked and written, every "
            "50,000 rows)" % len(progress), done.stderr[-500:])
    peak = gw.vm_hwm_kib(b.proc.pid)
    t.note("lakehouse up (broker, distilld) peak RSS (VmHWM) %.1f MiB after materializing "
           "%d rows (%.0f MB)" % (peak / 1024.0, ROWS, size / 1e6))
    files = sum(len(f) for _, _, f in os.walk(os.path.join(root, "evidence")))
    t.note("%d evidence files written" % files)
    if asan:
        t.note("ASan build: the RSS bound is not checked (RSS figures mean nothing there)")
    else:
        t.check(peak < LIMIT_KIB,
                "the process's peak RSS stays below %d MiB, far below the %.0f MB read"
                % (LIMIT_KIB // 1024, size / 1e6), "%s KiB" % peak)

    started = time.monotonic()
    done = subprocess.run(base, capture_output=True, text=True, timeout=600)
    again = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else {}
    t.check(done.returncode == 0 and again.get("written") == 0 and again.get("deduped") == ROWS,
            "a second materialize dedupes all %d rows (%.1f s)" % (ROWS, time.monotonic() - started),
            (done.returncode, done.stderr[-300:]))
    peak = gw.vm_hwm_kib(b.proc.pid)
    t.note("peak RSS (VmHWM) after the second run %.1f MiB" % (peak / 1024.0))
    if not asan:
        t.check(peak < LIMIT_KIB, "still below %d MiB" % (LIMIT_KIB // 1024), "%s KiB" % peak)


if __name__ == "__main__":
    lhtest.run(main, budget=280)
