#!/usr/bin/python3
"""vectord's HNSW shim under load (tests/bin/lh_vector_harness):

- recall: 20k clustered vectors, d = 128, cosine, default parameters
  (M 16, ef_construction 200, ef 64): recall@10 >= 0.95 against exact search;
- concurrency: one durable index (LMDB + graph), 4 threads searching (with
  and without exclude_ids and filters) while 2 threads add, re-add and
  delete (with compaction) for 5 s: no crash, no error, every answer holds
  at most k known ids, nearest first. Run under ASan by `make asan`.
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402


def main(t):
    path = os.path.join(t.build, "lh_vector_harness")
    if not os.access(path, os.X_OK):
        raise lhtest.Skip("%s is not built" % path)
    out = subprocess.run([path, "--recall", "20000", "128"], capture_output=True,
                         text=True, timeout=240)
    t.note(out.stdout.strip())
    t.check(out.returncode == 0, "recall@10 >= 0.95 at default ef (20k x 128)",
            out.stdout + out.stderr[-2000:])
    out = subprocess.run([path, "--concurrency", "5"], capture_output=True,
                         text=True, timeout=120)
    t.note(out.stdout.strip())
    t.check(out.returncode == 0, "4 searchers + 2 writers for 5 s: no error",
            out.stdout + out.stderr[-3000:])


lhtest.run(main, budget=280)
