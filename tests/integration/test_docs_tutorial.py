#!/usr/bin/python3
"""docs/tutorial.md run as a new user would, on its own fresh system: every
command, output compared where the page shows it (see lhdocs.py)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhdocs  # noqa: E402
import lhtest  # noqa: E402


def main(t):
    lhdocs.main_for(t, ["docs/tutorial.md"])


lhtest.run(main, budget=200)
