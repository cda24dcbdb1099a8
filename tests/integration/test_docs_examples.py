#!/usr/bin/python3
"""Every copyable command of README.md and docs/*.md (docs/tutorial.md
aside: test_docs_tutorial.py) run against a live system, page by page, each
on its own fresh `lakehouse up`; output compared where the doc shows it.
The convention for doc authors: docs/testing.md, "Docs examples".
LH_DOCS=FILE[,FILE] runs only those pages."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhdocs  # noqa: E402
import lhtest  # noqa: E402


def main(t):
    root = os.environ.get("LH_ROOT", os.getcwd())
    chosen = [p for p in lhdocs.pages(root) if p != "docs/tutorial.md"]
    if os.environ.get("LH_DOCS"):
        chosen = os.environ["LH_DOCS"].split(",")
    lhdocs.main_for(t, chosen)


lhtest.run(main, budget=280)
