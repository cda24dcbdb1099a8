#!/usr/bin/python3
"""validatord with its roster held as a catalogued dataset (SPEC 5.8,
docs/validatord.md "The roster"): a roster CSV ingested with ingestd,
validatord (validatord/roster_dataset) reading it through queryd.sql.

- a fill that passes and a phantom worker (exact 422 body), case-insensitive
  ids, inactive, blacklist (a ';'-separated cell) as with the file;
- re-ingesting the dataset with one more worker (same schema): the new worker
  is accepted after the reload, without restarting validatord (the poll is
  set to 10 minutes, so it is catalog.changed that triggers the reload);
- a reload that fails (the catalog points at a table file that does not
  exist) keeps the previous roster;
- a dataset that does not exist yet: roster checks answer 503
  roster_unavailable, then it loads when the dataset is ingested;
- validatord/roster and validatord/roster_dataset both set: refuses to start
  naming both keys.

Processes: tests/bin/lh_data_harness (broker + storaged + catalogd + ingestd
+ queryd) and tests/bin/lh_chat_harness --broker EP --services validatord.

LH_ROSTER_BENCH=N (e.g. 500000) also loads an N-row tools/gen_workers roster
through the dataset path and prints the load time (not part of make check).
"""

import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402
import test_chatd_util as u  # noqa: E402
import test_ingest as ti  # noqa: E402

HEADER = "candidate_id,name,city,state,role,status,blacklisted_clients\n"
ROWS = [
    "W-1,Ann Lee,Toledo,OH,forklift,active,C-7;C-9\n",
    "W-2,Bo Diaz,Toledo,OH,forklift,inactive,\n",
    "W-5,Cy Old,Louisville,KY,picker,active,\n",
]
NEW_ROW = "W-6,Di Ng,Toledo,OH,forklift,active,\n"


def validatord(t, endpoint, sets, name="validatord"):
    """Start validatord alone against the data harness's broker; returns
    the Proc once it says ready (its state, so its first roster load, is
    done by then)."""
    path = os.path.join(t.build, "lh_chat_harness")
    if not os.access(path, os.X_OK):
        raise lhtest.Skip("%s is not built" % path)
    merged = {"validatord/session_log": "",
              "data/dir": os.path.join(t.tmp, "var-%s" % name),
              "validatord/roster_timeout_ms": 20000}
    merged.update(sets)
    args = [path, "--broker", endpoint, "--services", "validatord", "--workers", "2"]
    for key, value in merged.items():
        args += ["--set", "%s=%s" % (key, value)]
    t.counter += 1
    proc = lhtest.Proc(args, "%s%d" % (name, t.counter), t.tmp)
    t.procs.append(proc)
    return proc


def ready(t, proc, timeout=30.0):
    proc.wait_line(u.READY, timeout)


def log_has(proc, text):
    with open(proc.log_path, "rb") as f:
        return text in f.read().decode("utf-8", "replace")


def wait_for(t, what, predicate, timeout=15.0):
    """Poll predicate (returns (ok, detail)) until ok or the deadline."""
    deadline = lhtest.now() + timeout
    ok, detail = predicate()
    while not ok and lhtest.now() < deadline:
        time.sleep(0.05)
        ok, detail = predicate()
    t.check(ok, what, detail)
    return ok


def fill(p, candidate, name, context=None):
    req = {"kind": "fill", "artifact": {"fills": [{"candidate_id": candidate, "name": name}]}}
    if context is not None:
        req["context"] = context
    return u.call(p, "validatord", "validate", req)


def main(t):
    bench = int(os.environ.get("LH_ROSTER_BENCH", "0") or 0)
    sets = {"queryd/refresh_ms": 600000}
    if bench:
        sets.update({"storaged/cap_default": 1 << 30, "ingest/max_bytes": 1 << 30,
                     "broker/hb_ivl": 1000})
    else:
        sets["queryd/reply_max"] = 1024     # pages cut by size: continuations
    proc, endpoint = ti.data_harness(t, sets=sets)
    p = u.peer(t, endpoint)

    st, body = ti.ingest(p, "roster", (HEADER + "".join(ROWS)).encode())
    t.check(st == 200 and body["row_count"] == 3, "roster CSV ingested", (st, body))

    v = validatord(t, endpoint, {"validatord/roster_dataset": "roster",
                                 "validatord/roster_poll_ms": 600000})
    ready(t, v)
    t.check(log_has(v, "roster: 3 workers from dataset 'roster'"),
            "validatord loaded 3 workers from the dataset before saying ready", v.tail(5))

    cases = [
        ("w-1", "Ann Lee", {"target_count": 1, "city": "Toledo", "state": "oh", "role": "Forklift"},
         200, {"kind": "fill", "valid": True, "warnings": []}),
        ("W-1", "Annie", None, 200,
         {"kind": "fill", "valid": True,
          "warnings": ['fills[0].name "Annie" differs from roster name "Ann Lee"']}),
        ("W-404", "Ghost", None, 422,
         {"Consistency": {"reason": 'fills[0].candidate_id "W-404" does not exist in worker roster'}}),
        ("W-2", "Bo Diaz", None, 422,
         {"Consistency": {"reason": "fills[0].candidate_id \"W-2\" is not active (status 'inactive')"}}),
        ("W-5", "Cy Old", {"city": "Toledo"}, 422,
         {"Consistency": {"reason": "city 'Louisville' doesn't match contract city 'Toledo'"}}),
        ("W-1", "Ann Lee", {"client_id": "c-9"}, 422,
         {"Policy": {"reason": "candidate \"W-1\" is blacklisted by client 'c-9'"}}),
        ("W-6", "Di Ng", None, 422,
         {"Consistency": {"reason": 'fills[0].candidate_id "W-6" does not exist in worker roster'}}),
    ]
    for candidate, name, context, status, expect in cases:
        st, reply = fill(p, candidate, name, context)
        t.check(st == status and reply == expect,
                "fill %s %s -> %d" % (candidate, context or "", status), (st, reply))

    #  Re-ingest with one more worker, same schema: catalog.changed reloads
    ti.upload(p, "uploads/roster-v2.csv", (HEADER + "".join(ROWS) + NEW_ROW).encode())
    st, body = ti.ingest(p, "roster", source="uploads/roster-v2.csv")
    t.check(st == 200 and body["row_count"] == 4, "roster re-ingested with W-6 (same schema)",
            (st, body))
    wait_for(t, "W-6 accepted after the reload, validatord not restarted",
             lambda: (lambda r: (r == (200, {"kind": "fill", "valid": True, "warnings": []}), r))(
                 fill(p, "w-6", "Di Ng")))
    t.check(v.alive() and log_has(v, "roster: 4 workers from dataset 'roster'"),
            "the reload came from catalog.changed (poll 10 min), same process", v.tail(5))

    #  A reload that fails keeps the previous roster: point the catalog at
    #  a table file that is not in storage (same fingerprint)
    st, manifest = u.call(p, "catalogd", "get", {"name": "roster"})
    st, reply = u.call(p, "catalogd", "register", {
        "name": "roster", "schema_fingerprint": manifest["schema_fingerprint"],
        "schema": manifest["schema"], "objects": ["datasets/roster/missing/none.sqlite"],
        "row_count": 4})
    t.check(st == 200, "catalog now points at a missing table file", (st, reply))
    wait_for(t, "validatord logged the failed reload",
             lambda: (log_has(v, "failed, keeping the previous one"), v.tail(5)))
    st, reply = fill(p, "W-6", "Di Ng")
    t.check(st == 200, "the previous roster (with W-6) is kept after a failed reload", (st, reply))
    st, reply = fill(p, "W-404", "Ghost")
    t.check(st == 422 and "does not exist" in reply["Consistency"]["reason"],
            "phantoms still refused after the failed reload", (st, reply))

    #  A dataset that does not exist yet: 503 until it is ingested
    v.term()
    late = validatord(t, endpoint, {"validatord/roster_dataset": "late_roster",
                                    "validatord/roster_poll_ms": 600000}, name="late")
    ready(t, late)
    st, reply = fill(p, "W-1", "Ann Lee")
    t.check(st == 503 and reply["error"]["kind"] == "roster_unavailable"
            and reply["error"]["reason"] == "the worker roster (dataset 'late_roster') has not loaded yet",
            "roster not loaded yet: 503 roster_unavailable naming the dataset", (st, reply))
    ti.upload(p, "uploads/late.csv", (HEADER + ROWS[0]).encode())
    st, body = ti.ingest(p, "late_roster", source="uploads/late.csv")
    t.check(st == 200, "late roster ingested", (st, body))
    wait_for(t, "the late roster loads on catalog.changed: W-1 accepted",
             lambda: (lambda r: (r[0] == 200, r))(fill(p, "W-1", "Ann Lee")))
    st, reply = fill(p, "W-5", "Cy Old")
    t.check(st == 422 and "does not exist" in reply["Consistency"]["reason"],
            "the late roster has only its own worker", (st, reply))
    st, reply = u.call(p, "validatord", "validate",
                       {"kind": "playbook", "artifact": {"fingerprint": "f", "operation": "fill: x",
                                                         "endorsed_names": ["a"]}})
    t.check(st == 200, "playbook never needs the roster", (st, reply))
    late.term()

    #  Many pages: 200 rows, ranges of 50 rowids, each cut by queryd's
    #  reply_max (1024 bytes) and continued; the last row repeats the first
    #  id (other case), and the later row wins as in the file
    many = "candidate_id,name,status\n" + "".join(
        "M-%d,Worker %d,active\n" % (n, n) for n in range(1, 200)) + "m-1,Later Name,active\n"
    ti.upload(p, "uploads/many.csv", many.encode())
    st, body = ti.ingest(p, "many", source="uploads/many.csv")
    t.check(st == 200 and body["row_count"] == 200, "200-row roster ingested", (st, body))
    m = validatord(t, endpoint, {"validatord/roster_dataset": "many",
                                 "validatord/roster_page_rows": 50}, name="many")
    ready(t, m)
    with open(m.log_path, "rb") as f:
        found = re.search(r"roster: (\d+) workers from dataset 'many' in \d+ ms \((\d+) pages\)",
                          f.read().decode())
    t.check(found and found.group(1) == "199" and int(found.group(2)) > 5,
            "200 rows in many truncated pages -> 199 workers (one id twice)", m.tail(5))
    st, reply = fill(p, "M-1", "Worker 1")
    t.check(st == 200 and reply["warnings"] == ['fills[0].name "Worker 1" differs from roster name "Later Name"'],
            "the later row of a duplicate id wins", (st, reply))
    st, reply = fill(p, "m-199", "Worker 199")
    t.check((st, reply) == (200, {"kind": "fill", "valid": True, "warnings": []}),
            "the last range's worker is there", (st, reply))
    m.term()

    #  Both roster sources set: refuses to start, naming both keys
    both = validatord(t, endpoint, {"validatord/roster_dataset": "roster",
                                    "validatord/roster": os.path.join(t.tmp, "r.jsonl")},
                      name="both")
    code = both.popen.wait(15)
    with open(both.log_path, "rb") as f:
        err = f.read().decode("utf-8", "replace")
    t.check(code != 0 and "validatord/roster and validatord/roster_dataset are both set" in err,
            "file and dataset both set: refuses to start naming both keys", (code, err[-400:]))

    if bench:
        run_bench(t, p, endpoint, bench)


def run_bench(t, p, endpoint, rows):
    """Ingest an N-row gen_workers roster and time validatord's load of it
    (cold: queryd fetches the table file; warm: cached)."""
    gen = os.path.join(t.build, "gen_workers")
    path = os.path.join(t.tmp, "workers.csv")
    os.system("%s --rows %d --seed 1 --out %s" % (gen, rows, path))
    with open(path, "rb") as f:
        data = f.read()
    st, body = ti.ingest(p, "workers", data, timeout=600)
    t.check(st == 200 and body["row_count"] == rows, "bench: %d rows ingested" % rows, (st, body))
    for attempt in ("cold", "warm"):
        start = lhtest.now()
        v = validatord(t, endpoint, {"validatord/roster_dataset": "workers",
                                     "validatord/roster_timeout_ms": 120000}, name=attempt)
        ready(t, v, 180)
        wall = lhtest.now() - start
        with open(v.log_path, "rb") as f:
            m = re.search(r"roster: (\d+) workers from dataset 'workers' in (\d+) ms \((\d+) pages?\)",
                          f.read().decode())
        t.note("bench %s: %s (process start to ready %.2f s)" % (attempt, m.group(0) if m else "?", wall))
        t.check(m and int(m.group(1)) == rows, "bench %s: %d workers loaded" % (attempt, rows))
        v.term()


if __name__ == "__main__":
    lhtest.run(main, budget=110 if not os.environ.get("LH_ROSTER_BENCH") else 1200)
