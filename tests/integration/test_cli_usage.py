#!/usr/bin/python3
"""Every tool answers -h with its usage on stdout and exit 0, and
`lakehouse --help` names every subcommand its dispatch accepts (read from
tools/lakehouse.c, so a new subcommand without a usage line fails here)."""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest  # noqa: E402

TOOLS = ("lakehouse", "buscall", "bustap", "busreplay", "loadmix", "gen_workers")


def main(t):
    root = os.environ.get("LH_ROOT", os.getcwd())
    for tool in TOOLS:
        p = subprocess.run([os.path.join(t.build, tool), "-h"], capture_output=True,
                           text=True, timeout=10, cwd=t.tmp)
        t.check(p.returncode == 0 and p.stdout.startswith("usage: " + tool),
                "%s -h: usage on stdout, exit 0" % tool,
                "exit %d, stdout %r, stderr %r" % (p.returncode, p.stdout[:200], p.stderr[:200]))
    source = open(os.path.join(root, "tools", "lakehouse.c")).read()
    commands = sorted(set(re.findall(r'streq \(args\.command, "([a-z-]+)"\)', source)))
    t.check(len(commands) >= 10, "the dispatch names %d subcommands" % len(commands), commands)
    usage = subprocess.run([t.lakehouse, "--help"], capture_output=True, text=True,
                           timeout=10, cwd=t.tmp).stdout
    synopsis = "\n".join(l for l in usage.split("\n") if "lakehouse [options]" in l)
    for command in commands:
        t.check(re.search(r"(\[options\]|\|) %s\b" % re.escape(command), synopsis) is not None,
                "lakehouse --help lists `%s`" % command, synopsis)


lhtest.run(main)
