#!/usr/bin/python3
"""test_playbook_lift - `lakehouse playbook-lift` against a running system.

`lakehouse up` with storaged, embedd, vectord and matrixd; the command runs
from the shell with a small roster (600 workers, 50 base queries). It
prints the markdown report with the four sets; the training queries lift
(recall@1 warm above cold, as the exact query's entry injects or boosts the
right worker); its exit code is 0 or 1 (the gate's verdict), never a crash
or a usage error; a second run with the same seed prints the same table
(the generator is seeded and the run replaces its own indexes). A bad
option is exit 2.
"""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest    # noqa: E402

ROW = re.compile(r"^\| (training|reframed|paraphrases|unrelated) \| (\d+) \| ([0-9.]+) \| ([0-9.]+) "
                 r"\| ([0-9.]+) \| ([0-9.]+) \| ([0-9.]+) \| ([0-9.]+) \|$", re.M)


def main(t):
    b = t.up(actors="storaged,embedd,vectord,matrixd", workers=2, sets={"embedd/dim": 256})
    base = [t.lakehouse, "--set", "bus/endpoint=%s" % b.endpoint,
            "--set", "bus/plain=true", "--set", "bus/curve=false",
            "--set", "data/dir=%s" % os.path.join(t.tmp, "cli-var")]
    args = base + ["playbook-lift", "--seed", "3", "--workers", "600", "--queries", "50"]
    run = subprocess.run(args, capture_output=True, text=True, timeout=120)
    t.check(run.returncode in (0, 1), "playbook-lift exits 0 or 1 (the gate)",
            (run.returncode, run.stderr[-400:]))
    rows = {m.group(1): [float(x) for x in m.groups()[1:]] for m in ROW.finditer(run.stdout)}
    t.check(sorted(rows) == ["paraphrases", "reframed", "training", "unrelated"]
            and all(r[0] == 25 for r in rows.values()),
            "the report has the four sets of 25 queries", run.stdout)
    training = rows["training"]
    t.check(training[2] > training[1] and training[6] > training[5],
            "the training queries lift: recall@1 %.3f -> %.3f, MRR %.3f -> %.3f"
            % (training[1], training[2], training[5], training[6]), run.stdout)
    verdict = "unrelated queries not worse (MRR warm >= cold): yes" in run.stdout
    t.check((run.returncode == 0) == verdict, "the exit code follows the verdict", run.stdout[-300:])
    again = subprocess.run(args, capture_output=True, text=True, timeout=120)
    t.check(again.returncode == run.returncode and again.stdout == run.stdout,
            "the same seed gives the same report")
    bad = subprocess.run(base + ["playbook-lift", "--queries", "3"], capture_output=True,
                         text=True, timeout=30)
    t.check(bad.returncode == 2 and "--queries" in bad.stderr, "--queries 3 is a usage error (2)",
            (bad.returncode, bad.stderr))


if __name__ == "__main__":
    lhtest.run(main, budget=280)
