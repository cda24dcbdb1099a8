#!/usr/bin/python3
"""Replay every recorded fixture in tests/replay/ against a freshly started
system (SPEC 7: recorded streams run in CI as regression tests).

Each tests/replay/NAME.lhrec has a NAME.json beside it (written by
tests/replay/record.py): which actors to start and which busreplay options
to use. For each: a fresh broker and node, `busreplay --json NAME.lhrec`,
exit 0 and every case a match.
"""

import glob
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402
import test_bustap_util as tu  # noqa: E402

FIXTURES = os.path.join(HERE, "..", "replay")


def main(t):
    paths = sorted(glob.glob(os.path.join(FIXTURES, "*.lhrec")))
    t.check(paths, "tests/replay holds recordings")
    for path in paths:
        name = os.path.splitext(os.path.basename(path))[0]
        with open(os.path.join(FIXTURES, name + ".json")) as f:
            meta = json.load(f)
        broker, peer = tu.system(t, actors=meta["actors"], workers=meta.get("workers", 1), tap=False)
        code, cases, out, err = tu.busreplay(t, broker.endpoint, os.path.abspath(path),
                                             *meta.get("args", []))
        differ = [c for c in cases if c["verdict"] != "match"]
        t.check(code == 0 and not differ and len(cases) == meta.get("cases", len(cases)),
                "%s: %d case(s) replayed, all match" % (name, len(cases)),
                "exit %s\n%s\n%s" % (code, "\n".join(json.dumps(c) for c in differ) or out, err))
        broker.node.kill9()
        broker.proc.kill9()


if __name__ == "__main__":
    lhtest.run(main)
