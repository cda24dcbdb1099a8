#!/usr/bin/python3
"""test_loadmix - the original's workload, small: `loadmix prepare` over
10,000 workers and a 20-second `loadmix run` at concurrency 8 against
`lakehouse up` (the whole data plane, its gateway on an ephemeral port).

The system runs with validatord/roster_dataset = workers (validatord reads
its roster from the dataset prepare ingests), embedd at 128 dimensions and
vectord at ef_construction 64 so that the build takes seconds, not minutes.

- prepare exits 0: the corpus holds the 10,000 workers and validatord's
  roster has them;
- run exits 0 with 0 failures, and the JSON figures show every class ran
  and each one's checks held: no hit of the first search came back after
  exclude_ids, the recorded answer moved up with use_playbook, the SSN
  guard stayed silent on every phone number, five repeats gave the same
  answer, and every kind of validation (email, sms, fill, playbook) passed;
- the markdown report names every class, and RSS was sampled;
- `loadmix run` against a corpus that does not exist exits 1 saying to run
  prepare; a bad command line exits 64.

Under ASan the run lasts 8 s (the build is 10x slower); never skipped.
"""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest    # noqa: E402

WORKERS = 10000
CONCURRENCY = 8
DURATION = 8 if os.environ.get("LH_ASAN") == "1" else 20
CLASSES = ["cold_search_email", "fill_playbook", "profile_swap", "repeat_cache", "sms_phone",
           "playbook_warm"]
READY_GATEWAY = r"lakehouse: gateway ready on (http://\S+)"


def main(t):
    loadmix = os.path.join(t.build, "loadmix")
    if not os.access(loadmix, os.X_OK):
        raise lhtest.Skip("%s is not built" % loadmix)
    actors = "storaged,catalogd,ingestd,queryd,embedd,vectord,matrixd,validatord"
    b = t.up(actors=actors, workers=2, timeout=60,
             sets={"embedd/dim": 128, "vectord/ef_construction": 64,
                   "validatord/roster_dataset": "workers", "actors/matrixd/workers": 8,
                   "gateway/threads": 2})
    import re
    url = b.proc.wait_line(re.compile(READY_GATEWAY), 10).group(1)
    base = [loadmix, "--url", url, "--set", "bus/endpoint=%s" % b.endpoint,
            "--set", "bus/plain=true", "--set", "bus/curve=false",
            "--set", "data/dir=%s" % b.sets["data/dir"]]

    run = subprocess.run(base + ["prepare", "--workers", str(WORKERS), "--seed", "3"],
                         capture_output=True, text=True, timeout=400)
    t.check(run.returncode == 0, "loadmix prepare exits 0", (run.stdout[-600:], run.stderr[-1500:]))
    t.check("%d vectors" % WORKERS in run.stdout and "roster ready" in run.stdout,
            "the corpus holds the %d workers, validatord's roster has them" % WORKERS,
            run.stdout[-600:])

    report = os.path.join(t.tmp, "report.md")
    figures = os.path.join(t.tmp, "figures.json")
    run = subprocess.run(base + ["run", "--concurrency", str(CONCURRENCY), "--duration",
                                 str(DURATION), "--seed", "5", "--out", report, "--json", figures],
                         capture_output=True, text=True, timeout=DURATION + 120)
    t.note(run.stdout.splitlines()[4] if len(run.stdout.splitlines()) > 4 else run.stdout)
    t.check(run.returncode == 0, "loadmix run exits 0", (run.stdout[-3000:], run.stderr[-1000:]))
    with open(figures) as f:
        fig = json.load(f)
    t.check(fig["failed"] == 0 and fig["scenarios"] > 0,
            "%d scenarios, 0 failed" % fig["scenarios"], fig)
    for name in CLASSES:
        c = fig["classes"][name]
        t.check(c["scenarios"] > 0 and c["failed"] == 0 and c["p50_ms"] > 0,
                "class %s ran %d times, none failed" % (name, c["scenarios"]), c)
    ch = fig["checks"]
    t.check(ch["swap_total"] > 0 and ch["swap_clean"] == ch["swap_total"],
            "profile_swap: no overlap after exclude_ids (%d of %d)"
            % (ch["swap_clean"], ch["swap_total"]), ch)
    t.check(ch["warm_total"] > 0 and ch["warm_moved"] == ch["warm_total"],
            "playbook_warm: the recorded answer moved up (%d of %d)"
            % (ch["warm_moved"], ch["warm_total"]), ch)
    t.check(ch["sms_total"] > 0 and ch["sms_silent"] == ch["sms_total"],
            "sms_phone: the SSN guard stayed silent (%d of %d)"
            % (ch["sms_silent"], ch["sms_total"]), ch)
    t.check(ch["repeat_total"] > 0 and ch["repeat_same"] == ch["repeat_total"],
            "repeat_cache: five identical answers (%d of %d)"
            % (ch["repeat_same"], ch["repeat_total"]), ch)
    t.check(all(v > 0 for v in ch["valid_email_sms_fill_playbook"]),
            "email, sms, fill and playbook validations all passed", ch)
    t.check(fig["rss_samples"] > 0 and fig["rss_peak_kib"] > 0, "the up process's RSS was sampled",
            fig)
    t.check(0 < fig["playbook_entries"] <= 16 * 20 + 16 * 20 * 5,
            "the playbook corpus stays within its bounded query sets (%d entries)"
            % fig["playbook_entries"], fig)
    with open(report) as f:
        text = f.read()
    t.check(text == run.stdout and all("| %s |" % name in text for name in CLASSES)
            and "scenarios/s" in text, "the markdown report (stdout and --out) names every class",
            text[:600])
    t.check("scenarios" in run.stderr and "failed" in run.stderr, "a progress line on stderr",
            run.stderr[-300:])

    run = subprocess.run(base + ["--index", "nope", "run", "--duration", "1"],
                         capture_output=True, text=True, timeout=30)
    t.check(run.returncode == 1 and "loadmix prepare" in run.stderr,
            "no corpus: exit 1, saying to run prepare", (run.returncode, run.stderr))
    run = subprocess.run([loadmix, "run", "--concurrency", "0"], capture_output=True, text=True,
                         timeout=30)
    t.check(run.returncode == 64 and "--concurrency" in run.stderr, "a bad command line: exit 64",
            (run.returncode, run.stderr))


if __name__ == "__main__":
    lhtest.run(main, budget=600)
