#!/usr/bin/python3
"""test_distilld - distilld's stages over a synthetic knowledge base
(tests/kb), through `lakehouse distill` and the /v1/distill routes of one
`lakehouse up` (SPEC 5.9, docs/distilld.md):

- materialize twice over the same root: the evidence tree is the same
  bytes and the second receipt is all deduped; a fresh root (a second
  process) over the same input with the same --recorded-at gives the same
  bytes; row 0 of every source carries line_offset 0; the row without a
  timestamp is skipped and counted; long stages show progress on stderr;
- a wrong schema_version is refused (409, exit 1) with a message naming
  the file and line, and nothing is written (tree, runs, reports as they
  were);
- the firewall: the evaluation-set task planted in three sources reaches
  no export, each receipt counts what it held back; without the
  evaluation set the same task does reach the exports (the check can
  fail);
- drift over crafted runs (one day each): +30 points warn, -50 alert,
  +5 ok;
- runs and a run's summary over HTTP; a malformed-body table per route
  (4xx naming the field, nothing written).
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest                    # noqa: E402
import test_gateway_util as gw   # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
KB = os.path.join(HERE, "..", "kb")
SOURCES = ["distilled_facts", "distilled_procedures", "distilled_config_hints", "audit_facts",
           "contract_analyses", "mode_experiments", "scrum_reviews", "observer_escalations",
           "auto_apply", "observer_reviews", "audits", "outcomes"]
RECORDED = "2026-02-01T00:00:00Z"


def copy_kb(t, name):
    root = os.path.join(t.tmp, name)
    shutil.copytree(KB, root)
    return root


def listing(root):
    """Every file under root with its size and digest, sorted."""
    out = []
    for base, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(base, name)
            with open(path, "rb") as f:
                data = f.read()
            out.append((os.path.relpath(path, root), len(data), hashlib.sha256(data).hexdigest()))
    return out


def evidence(root):
    """The evidence tree's files and bytes."""
    return listing(os.path.join(root, "evidence"))


def records(root):
    """Every evidence record, parsed, with its raw line."""
    out = []
    for base, dirs, files in os.walk(os.path.join(root, "evidence")):
        for name in files:
            with open(os.path.join(base, name), encoding="utf-8") as f:
                for line in f:
                    out.append((json.loads(line), line))
    return out


class Cli:
    """`lakehouse distill` against one broker."""

    def __init__(self, t, broker):
        self.t = t
        self.base = [t.lakehouse, "--set", "bus/endpoint=%s" % broker.endpoint,
                     "--set", "bus/plain=true", "--set", "bus/curve=false",
                     "--set", "data/dir=%s" % os.path.join(t.tmp, "cli-var"), "distill"]

    def run(self, *args, timeout=60):
        """(exit code, reply as JSON or None, stderr)"""
        done = subprocess.run(self.base + list(args), capture_output=True, text=True,
                              timeout=timeout)
        reply = None
        lines = done.stdout.strip().splitlines()
        if done.returncode == 0 and lines:
            reply = json.loads(lines[-1])
        return done.returncode, reply, done.stderr


def exported(root, text):
    """Which export files hold text (any case)."""
    found = []
    for name in ("exports/rag/playbooks.jsonl", "exports/sft/accepted.jsonl",
                 "exports/preference/pairs.jsonl"):
        with open(os.path.join(root, name), encoding="utf-8") as f:
            if text.lower() in f.read().lower():
                found.append(name)
    return found


def post(h, path, body):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    st, _, raw = h.request("POST", path, data, {"Content-Type": "application/json"}, timeout=60.0)
    try:
        doc = json.loads(raw) if raw else None
    except ValueError:
        doc = raw
    return st, doc


def main(t):
    kb1 = copy_kb(t, "kb1")
    b1, h1 = gw.up(t, "distilld", workers=2, sets={"distilld/root": kb1, "distilld/batch_rows": 5})
    cli = Cli(t, b1)

    #  materialize: counts, progress, provenance
    rc, first, err = cli.run("materialize", "--recorded-at", RECORDED)
    t.check(rc == 0 and first["read"] == 28 and first["written"] == 27 and first["skipped"] == 1
            and first["deduped"] == 0,
            "materialize: 28 rows read, 27 written, 1 skipped, 0 deduped", (rc, first, err[-400:]))
    t.check(first["sources"]["outcomes"]["skipped_reasons"]["no_timestamp"] == 1
            and first["skipped_reasons"]["no_timestamp"] == 1,
            "the outcomes row without a timestamp is skipped and counted (no_timestamp 1)",
            first["sources"]["outcomes"])
    t.check(all(first["sources"][s]["present"] for s in SOURCES), "all twelve sources were read")
    t.check("materialize write:" in err and "written" in err,
            "progress lines on stderr while it runs", err[-300:])
    tree = evidence(kb1)
    t.check(len(tree) > 0, "evidence files written (%d)" % len(tree))
    recs = records(kb1)
    t.check(all(r["provenance"]["recorded_at"] == RECORDED for r, _ in recs),
            "provenance.recorded_at is the --recorded-at given")
    for source in SOURCES:
        row0 = [line for r, line in recs
                if r["provenance"]["source_file"] == "data/_kb/%s.jsonl" % source
                and r["provenance"]["line_offset"] == 0]
        t.check(len(row0) == 1 and '"line_offset":0,' in row0[0],
                "row 0 of %s carries line_offset 0 (written out)" % source, row0)
    days = sorted(set(r["day"] for r, _ in recs))
    t.check(all(os.path.exists(os.path.join(kb1, "evidence", d[:4], d[5:7], d[8:], "%s.jsonl" % r["source"]))
                for r, _ in recs for d in [r["day"]]),
            "each record lies under evidence/YYYY/MM/DD of its own day (%s)" % ", ".join(days))
    t.check(any(r["event_time"] == "2026-01-05T08:00:00Z" and r["provenance"]["line_offset"] == 0
                and r["source"] == "distilled_procedures" for r, _ in recs),
            "a +01:00 offset is normalised to UTC (2026-01-05T09:00:00+01:00 -> 08:00:00Z)")

    #  Again over the same root: the same bytes, all deduped
    rc, second, err = cli.run("materialize", "--recorded-at", RECORDED)
    t.check(rc == 0 and second["written"] == 0 and second["deduped"] == 27
            and second["skipped"] == 1 and second["read"] == 28,
            "second materialize: written 0, deduped 27 (every row), skipped 1", (rc, second))
    t.check(evidence(kb1) == tree, "the evidence tree is byte-identical after the second run")

    #  A fresh root in another process: byte-identical output
    kb2 = copy_kb(t, "kb2")
    b2, h2 = gw.up(t, "distilld", workers=1, sets={"distilld/root": kb2})
    cli2 = Cli(t, b2)
    rc, twin, err = cli2.run("materialize", "--recorded-at", RECORDED)
    t.check(rc == 0 and twin["written"] == 27, "materialize on a fresh root", (rc, twin, err[-300:]))
    t.check(evidence(kb2) == tree, "two fresh runs over the same input give the same bytes",
            (len(evidence(kb2)), len(tree)))

    #  A wrong schema_version: refused, nothing written
    audits = os.path.join(kb1, "data", "_kb", "audits.jsonl")
    with open(audits, encoding="utf-8") as f:
        kept = f.read()
    with open(audits, "a", encoding="utf-8") as f:
        f.write(json.dumps({"title": "From the future", "passed": True, "ts": "2026-01-09T00:00:00Z",
                            "schema_version": 2}) + "\n")
    before = listing(kb1)
    rc, reply, err = cli.run("materialize")
    t.check(rc == 1 and "409" in err and "schema_version" in err
            and "audits.jsonl line 3" in err and "nothing was written" in err,
            "a schema_version 2 row: exit 1, 409, naming the file and line", (rc, err[-400:]))
    t.check(listing(kb1) == before, "nothing was written (every file under the root as it was)")
    st, doc = post(h1, "/v1/distill/materialize", {})
    t.check(st == 409 and doc["error"]["kind"] == "schema_version_mismatch",
            "POST /v1/distill/materialize: 409 schema_version_mismatch", (st, doc))
    t.check(listing(kb1) == before, "still nothing written")
    with open(audits, "w", encoding="utf-8") as f:
        f.write(kept)

    #  score over HTTP, export from the shell: the firewall
    st, score = post(h1, "/v1/distill/score", {})
    t.check(st == 200 and score["records"] == 27 and score["scored"] == 19
            and score["unscored"] == 8,
            "POST /v1/distill/score: 27 records, 19 scored, 8 knowledge records unscored", (st, score))
    cats = score["categories"]
    t.check(cats["accepted"]["count"] == 8 and cats["partially_accepted"]["count"] == 4
            and cats["rejected"]["count"] == 7,
            "categories: 8 accepted, 4 partially_accepted, 7 rejected", cats)
    run_id = score["run_id"]
    scored = [json.loads(line) for line in open(os.path.join(
        kb1, "reports", "distillation", run_id, "scored.jsonl"), encoding="utf-8")]
    by_run = {s["run"]: s for s in scored}
    t.check(by_run["me-1"]["anchor_grounding"] == 1 and by_run["me-1"]["category"] == "accepted"
            and by_run["or-1"]["anchor_grounding"] == 0 and by_run["or-1"]["category"] == "partially_accepted",
            "anchor_grounding: grounded anchors keep an acceptance, ungrounded ones demote it",
            (by_run["me-1"], by_run["or-1"]))
    rc, export, err = cli.run("export")
    t.check(rc == 0 and export["run_id"] == run_id, "distill export of the latest scored run",
            (rc, export, err[-300:]))
    t.check(export["rag"]["held_back"] == 3 and export["sft"]["held_back"] == 2
            and export["preference"]["held_back"] == 3 and export["held_back"] == 8
            and export["eval_set"]["tasks"] == 2,
            "each export's receipt counts what the firewall held back (3 RAG, 2 SFT, 3 preference)",
            export)
    t.check(export["rag"]["written"] == 16 and export["sft"]["written"] == 6
            and export["preference"]["written"] == 4, "16 RAG, 6 SFT, 4 preference pairs written", export)
    for text in ("EVAL-LEAK", "quarterly incident"):
        t.check(exported(kb1, text) == [], "'%s' appears in no export" % text, exported(kb1, text))
    t.check(exported(kb1, "nightly export") != [], "other tasks do reach the exports")
    with open(os.path.join(kb1, "exports", "sft", "accepted.jsonl"), encoding="utf-8") as f:
        sft = [json.loads(line) for line in f]
    t.check(all(by_run.get(s["run"], {}).get("category") == "accepted" for s in sft),
            "SFT holds accepted records only")
    with open(os.path.join(kb1, "exports", "preference", "pairs.jsonl"), encoding="utf-8") as f:
        pairs = [json.loads(line) for line in f]
    t.check(all(p["chosen"] != p["rejected"] and p["chosen_run"] != p["rejected_run"] for p in pairs),
            "preference pairs: chosen != rejected, from different runs", pairs)
    #  The same task without the evaluation set goes through
    os.unlink(os.path.join(kb2, "eval", "tasks.jsonl"))
    rc, whole, err = cli2.run("run")
    t.check(rc == 0 and whole["export"]["held_back"] == 0
            and whole["export"]["eval_set"]["present"] is False,
            "without an evaluation set nothing is held back", (rc, whole and whole["export"], err[-300:]))
    t.check(len(exported(kb2, "EVAL-LEAK")) == 3,
            "and the planted task reaches all three exports (the firewall check can fail)",
            exported(kb2, "EVAL-LEAK"))

    #  drift over crafted runs, one day each
    outcomes = os.path.join(kb1, "data", "_kb", "outcomes.jsonl")
    plan = [("2026-03-01", 5, 5, None), ("2026-03-02", 8, 2, "warn"),
            ("2026-03-03", 3, 7, "alert"), ("2026-03-04", 7, 13, "ok")]
    with open(outcomes, "a", encoding="utf-8") as f:
        for day, good, bad, _ in plan:
            for n in range(good + bad):
                f.write(json.dumps({"ts": "%sT00:%02d:00Z" % (day, n), "task": "drift task %d" % n,
                                    "verdict": "accepted" if n < good else "rejected"}) + "\n")
    rc, more, err = cli.run("materialize")
    t.check(rc == 0 and more["written"] == 50 and more["deduped"] == 27,
            "materialize picks up only the 50 new rows", (rc, more))
    for day, good, bad, want in plan:
        rc, day_score, err = cli.run("score", "--since", day, "--until", day)
        t.check(rc == 0 and day_score["scored"] == good + bad, "score of %s alone" % day, (rc, day_score))
        rc, drift, err = cli.run("drift")
        shares = {k: v["share_pct"] for k, v in drift["categories"].items()}
        if want:
            swing = drift["categories"]["accepted"]["swing_pct"]
            t.check(rc == 0 and drift["status"] == want
                    and drift["categories"]["accepted"]["status"] == want,
                    "drift of %s: accepted swings %+.0f points -> %s" % (day, swing, want),
                    (rc, drift))
        else:
            t.note("drift of %s against the whole-range run: %s %s" % (day, drift["status"], shares))
        with open(os.path.join(kb1, "reports", "distillation", drift["run_id"], "drift.json")) as f:
            t.check(json.load(f)["status"] == drift["status"], "drift.json written for the run")

    #  runs and summaries over HTTP
    st, _, raw = h1.request("GET", "/v1/distill/runs")
    runs = json.loads(raw)
    t.check(st == 200 and runs["count"] == len(runs["runs"]) and runs["count"] >= 8,
            "GET /v1/distill/runs lists the runs, oldest first", (st, runs))
    st, _, raw = h1.request("GET", "/v1/distill/runs/%s" % run_id)
    summary = json.loads(raw)
    t.check(st == 200 and set(summary["stages"]) == {"score", "export"},
            "GET /v1/distill/runs/RUN_ID: the summary of the stages run under it (score, export)", (st, sorted(summary)))
    st, _, raw = h1.request("GET", "/v1/distill/runs/nosuch")
    t.check(st == 404 and json.loads(raw)["error"]["kind"] == "no_such_run", "an unknown run: 404")

    #  A malformed-body table per route: 4xx naming the field, nothing written
    before = listing(kb1)
    table = [
        ("/v1/distill/materialize", {"recorded_at": "soon"}, 400, "recorded_at"),
        ("/v1/distill/materialize", {"run_id": "../escape"}, 400, "run_id"),
        ("/v1/distill/materialize", {"progres": True}, 400, "progres"),
        ("/v1/distill/materialize", [1, 2], 400, None),
        ("/v1/distill/score", {"since": "2026-02-30"}, 400, "since"),
        ("/v1/distill/score", {"since": "2026-03-02", "until": "2026-03-01"}, 400, "until"),
        ("/v1/distill/score", {"until": 20260301}, 400, "until"),
        ("/v1/distill/export", {"run_id": "nosuch"}, 404, None),
        ("/v1/distill/export", {"since": "2026-01-01"}, 400, "since"),
        ("/v1/distill/drift", {"run_id": 7}, 400, "run_id"),
        ("/v1/distill/run", {"recorded_at": "2026-01-01"}, 400, "recorded_at"),
        ("/v1/distill/run", {"since": "x", "recorded_at": RECORDED}, 400, "since"),
        ("/v1/distill/replay", {}, 400, "task"),
        ("/v1/distill/replay", {"task": ""}, 400, "task"),
        ("/v1/distill/replay", {"task": "x" * 9000}, 413, "task"),
        ("/v1/distill/replay", {"task": "x", "dry_run": "yes"}, 400, "dry_run"),
        ("/v1/distill/replay", {"task": "x", "tier": "big"}, 400, "tier"),
        ("/v1/distill/replay", "{not json", 400, None),
    ]
    for path, body, want, field in table:
        st, doc = post(h1, path, body)
        err = doc.get("error", {}) if isinstance(doc, dict) else {}
        t.check(st == want and (field is None or err.get("field") == field),
                "%s %s -> %d%s" % (path, json.dumps(body)[:50], want,
                                   " naming '%s'" % field if field else ""), (st, doc))
    t.check(listing(kb1) == before, "the refused requests wrote nothing")

    rc, _, err = cli.run("bogus")
    t.check(rc == 2 and "unknown stage 'bogus'" in err, "an unknown stage is a usage error (exit 2)",
            (rc, err[-200:]))
    rc, _, err = cli.run("drift", "--since", "2026-01-01")
    t.check(rc == 2 and "does not take --since" in err, "an option a stage does not take: exit 2",
            (rc, err[-200:]))


if __name__ == "__main__":
    lhtest.run(main, budget=200)
