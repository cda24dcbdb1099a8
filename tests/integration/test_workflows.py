#!/usr/bin/python3
"""test_workflows - the workflow runner over the real services, through
`lakehouse up` and its gateway (docs/workflows.md, docs/observerd.md):

- a 7-node workflow: ingest a CSV that was put into storaged (ingestd) ->
  SQL count (queryd); embed (embedd) -> vectord add -> vectord search;
  validate (validatord, playbook) after count and search; pathway add
  (pathwayd) last. Saved with POST /v1/workflows/put, run by name with
  inputs: it succeeds, ingest and embed run in parallel (their node
  intervals overlap), the SQL count and the pathway content are right,
  and the audit rows match the nodes (one each, status, end, output
  SHA-256 = the SHA-256 of the node's output as msgpack);
- the same workflow with a failing middle node (vectord add into an
  index that does not exist): add fails, search, validate and pathway
  are skipped, ingest and count (the other branch) succeed, the run fails;
- a cycle, a missing dependency and an unknown service are each refused
  at load with 400, the kind, and the name in the reason;
- `lakehouse workflow run FILE --input ...` (YAML) shows every node and
  exits 0; a failing file exits 1;
- a workflow with on: catalog.changed is started by registering a dataset
  (POST /v1/ingest): its run appears in GET /v1/workflows/runs with the
  event as inputs.event;
- observerd keeps the events (catalog.changed, workflow.run/node) and
  serves /v1/observer/{events,stats,inbox} with the inbox rules.
"""

import hashlib
import json
import os
import subprocess
import sys
import time

import msgpack

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest  # noqa: E402
from lhtest import now  # noqa: E402
from test_gateway_util import up  # noqa: E402

ROWS = 20000
ACTORS = "storaged,catalogd,ingestd,queryd,embedd,vectord,validatord,pathwayd,observerd,workflowd"

SEVEN = {
    "name": "seven",
    "inputs": ["dataset", "key", "texts", "index"],
    "nodes": {
        "ingest": {"call": "ingestd.ingest", "timeout_ms": 120000,
                   "input": {"name": "${inputs.dataset}", "source": "${inputs.key}"}},
        "count": {"call": "queryd.sql", "needs": ["ingest"],
                  "input": {"sql": "SELECT count(*) AS n FROM \"${inputs.dataset}\""}},
        "embed": {"call": "embedd.embed", "input": {"texts": "${inputs.texts}"}},
        "add": {"call": "vectord.add", "needs": ["embed"],
                "input": {"name": "${inputs.index}", "items": [
                    {"id": "w1", "vector": "${nodes.embed.output.vectors.0}",
                     "metadata": {"text": "${inputs.texts.0}"}},
                    {"id": "w2", "vector": "${nodes.embed.output.vectors.1}"}]}},
        "search": {"call": "vectord.search", "needs": ["add", "embed"],
                   "input": {"name": "${inputs.index}", "vector": "${nodes.embed.output.vectors.0}",
                             "k": 2}},
        "validate": {"call": "validatord.validate", "needs": ["count", "search"],
                     "input": {"kind": "playbook", "context": {"target_count": 1},
                               "artifact": {"fingerprint": "fp-1",
                                            "operation": "fill: ${nodes.count.output.rows.0.0} workers near "
                                                         "${nodes.search.output.0.id}",
                                            "endorsed_names": ["Ann"]}}},
        "pathway": {"call": "pathwayd.add", "needs": ["validate", "count", "search"],
                    "input": {"content": {"rows": "${nodes.count.output.rows.0.0}",
                                          "nearest": "${nodes.search.output.0.id}",
                                          "valid": "${nodes.validate.output.valid}"},
                              "tags": ["workflow"]}},
    },
}

YAML = """\
name: cli-run
inputs: [dataset]
nodes:
  tables:
    call: catalogd.get
    input: {name: "${inputs.dataset}"}
  count:
    call: queryd.sql
    needs: [tables]
    input:
      sql: SELECT count(*) AS n FROM "${inputs.dataset}"
  note:
    call: pathwayd.add
    needs: [count]
    input:
      content: "${nodes.tables.output.name} has ${nodes.count.output.rows.0.0} rows"
      tags: [cli]
"""


def call(h, conn, method, path, body=None, timeout=None):
    payload = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if payload else {}
    if timeout:
        headers["X-Lakehouse-Timeout-Ms"] = str(timeout)
    st, _, out = h.request(method, path, body=payload, conn=conn, headers=headers)
    return st, (json.loads(out) if out else None)


def check_audit(t, run, what):
    rows = run["audit"]
    nodes = run["nodes"]
    t.check(sorted(r["node"] for r in rows) == sorted(nodes) and
            [r["seq"] for r in rows] == list(range(1, len(nodes) + 1)),
            "%s: one audit row per node (%d), in the order they ended" % (what, len(rows)))
    for r in rows:
        n = nodes[r["node"]]
        same = (r["status"] == n["status"] and r["ended_ms"] == n["ended_ms"]
                and r.get("started_ms") == n.get("started_ms") and r["call"] == n["call"]
                and r.get("output_sha256") == n.get("output_sha256")
                and r.get("error") == n.get("error"))
        t.check(same, "%s: audit row of %s matches its node (%s)" % (what, r["node"], r["status"]), (r, n))
    #  The digest is the SHA-256 of the output as msgpack (outputs without
    #  floats pack the same in Python as in C)
    for name in ("count", "pathway"):
        n = nodes.get(name, {})
        if n.get("status") == "succeeded":
            digest = hashlib.sha256(msgpack.packb(n["output"], use_bin_type=True)).hexdigest()
            t.check(digest == n["output_sha256"], "%s: %s's output_sha256 is the SHA-256 of its output"
                    % (what, name), (digest, n["output_sha256"]))


def seven_nodes(t, h, conn):
    #  The CSV goes into storaged first, the index is made
    lines = ["id,name,city,role"] + ["%d,Worker %d,%s,%s" % (i, i, ["Toledo", "Dayton", "Akron"][i % 3],
                                                                ["driver", "nurse"][i % 2])
                                      for i in range(ROWS)]
    st, _, out = h.request("PUT", "/v1/storage/uploads/workers.csv", body="\n".join(lines).encode() + b"\n",
                           conn=conn)
    t.check(st == 200, "PUT the CSV into storaged", (st, out))
    st, body = call(h, conn, "POST", "/v1/vectors/index", {"name": "wfidx", "dim": 16, "metric": "cosine"})
    t.check(st == 201, "vector index made", (st, body))

    st, body = call(h, conn, "POST", "/v1/workflows/put", {"definition": SEVEN})
    t.check(st == 201 and body["nodes"] == sorted(SEVEN["nodes"]) and body["version"] == 1,
            "POST /v1/workflows/put: 201, the 7 nodes", (st, body))
    st, body = call(h, conn, "GET", "/v1/workflows/list")
    t.check(st == 200 and [w["name"] for w in body["workflows"]] == ["seven"]
            and body["workflows"][0]["nodes"] == 7, "GET /v1/workflows/list", body)
    st, body = call(h, conn, "GET", "/v1/workflows/get/seven")
    t.check(st == 200 and body["definition"] == SEVEN, "GET /v1/workflows/get/seven: the definition", body)

    inputs = {"dataset": "wfworkers", "key": "uploads/workers.csv", "index": "wfidx",
              "texts": ["forklift driver in Toledo", "night nurse in Dayton"]}
    started = now()
    st, run = call(h, conn, "POST", "/v1/workflows/run", {"name": "seven", "inputs": inputs}, timeout=120000)
    took = now() - started
    t.check(st == 200 and run["status"] == "succeeded", "the 7-node run succeeded (%.2f s)" % took,
            (st, run and {k: (v["status"], v.get("error")) for k, v in run.get("nodes", {}).items()}))
    nodes = run["nodes"]
    for name in sorted(nodes):
        n = nodes[name]
        t.note("%-9s %-10s %s .. %s (%d ms)" % (name, n["status"], n["started_ms"], n["ended_ms"],
                                                 n["ended_ms"] - n["started_ms"]))
    t.check(all(n["status"] == "succeeded" for n in nodes.values()) and len(nodes) == 7,
            "all 7 nodes succeeded")
    a, b = nodes["ingest"], nodes["embed"]
    t.check(a["started_ms"] <= b["ended_ms"] and b["started_ms"] < a["ended_ms"],
            "ingest and embed ran in parallel: embed [%d, %d] overlaps ingest [%d, %d]"
            % (b["started_ms"], b["ended_ms"], a["started_ms"], a["ended_ms"]))
    t.check(nodes["add"]["started_ms"] < nodes["ingest"]["ended_ms"],
            "add started before ingest ended (it needs only embed)")
    t.check(nodes["count"]["started_ms"] >= a["ended_ms"] and nodes["search"]["started_ms"] >= nodes["add"]["ended_ms"]
            and nodes["pathway"]["started_ms"] >= nodes["validate"]["ended_ms"],
            "every node started after the nodes it needs ended")
    t.check(nodes["count"]["output"]["rows"] == [[ROWS]], "SQL count = %d" % ROWS, nodes["count"]["output"])
    t.check(nodes["search"]["output"][0]["id"] == "w1", "search finds w1 first", nodes["search"]["output"])
    t.check(nodes["validate"]["output"]["valid"] is True, "validate: valid", nodes["validate"]["output"])
    content = nodes["pathway"]["output"]["content"]
    t.check(content == {"rows": ROWS, "nearest": "w1", "valid": True},
            "the pathway trace holds the count, the nearest id and the verdict", content)
    check_audit(t, run, "7-node run")
    st, again = call(h, conn, "GET", "/v1/workflows/runs/%s" % run["run_id"])
    t.check(st == 200 and again == run, "GET /v1/workflows/runs/RUN_ID: the same run, from the store")
    st, trace = call(h, conn, "POST", "/v1/pathway/search", {"tags": ["workflow"]})
    t.check(st == 200 and trace["count"] == 1, "the trace is in pathwayd", trace)

    #  A failing middle node: add into an index that does not exist
    broken = json.loads(json.dumps(SEVEN))
    broken["name"] = "seven-broken"
    broken["nodes"]["add"]["input"]["name"] = "no-such-index"
    st, run = call(h, conn, "POST", "/v1/workflows/run", {"definition": broken, "inputs": inputs},
                   timeout=120000)
    states = {k: v["status"] for k, v in run["nodes"].items()}
    t.note("failing run: %s" % states)
    t.check(st == 200 and run["status"] == "failed", "the run with a failing middle node failed", (st, states))
    t.check(states == {"ingest": "succeeded", "count": "succeeded", "embed": "succeeded", "add": "failed",
                       "search": "skipped", "validate": "skipped", "pathway": "skipped"},
            "add failed; search, validate and pathway skipped; ingest and count (the other branch) finished")
    t.check("vectord.add answered 404" in run["nodes"]["add"]["error"]
            and "not run: it needs 'add', which failed" in run["nodes"]["search"]["error"],
            "the errors say why", {k: v.get("error") for k, v in run["nodes"].items()})
    check_audit(t, run, "failing run")

    #  Refused at load, with the name in the reason
    refusals = [
        ("cycle", {"name": "c", "nodes": {"x": {"call": "queryd.sql", "needs": ["z"]},
                                          "y": {"call": "queryd.sql", "needs": ["x"]},
                                          "z": {"call": "queryd.sql", "needs": ["y"]}}}, "x -> z -> y -> x"),
        ("missing_dependency", {"name": "m", "nodes": {"count": {"call": "queryd.sql", "needs": ["ingestt"]}}},
         "'ingestt'"),
        ("unknown_service", {"name": "u", "nodes": {"a": {"call": "embedder.embed"}}}, "'embedder'"),
    ]
    for kind, definition, name in refusals:
        for path, body in (("/v1/workflows/put", {"definition": definition}),
                           ("/v1/workflows/run", {"definition": definition})):
            st, out = call(h, conn, "POST", path, body)
            error = (out or {}).get("error", {})
            t.check(st == 400 and error.get("kind") == kind and error.get("field") == "definition"
                    and name in error.get("reason", ""),
                    "%s refuses a %s with 400 naming %s" % (path, kind, name), (st, out))
    st, body = call(h, conn, "GET", "/v1/workflows/list")
    t.check([w["name"] for w in body["workflows"]] == ["seven"], "nothing refused was saved", body)
    return inputs


def cli(t, b, h, conn):
    path = os.path.join(t.tmp, "cli.yaml")
    with open(path, "w") as f:
        f.write(YAML)
    cfg = os.path.join(t.tmp, "cli.cfg")
    with open(cfg, "w") as f:
        f.write(lhtest.zpl({"log/level": "warn"}))
    base = [os.path.join(t.build, "lakehouse"), "--config", cfg, "--set", "bus/endpoint=%s" % b.endpoint,
            "--set", "bus/curve=false", "--set", "bus/plain=true",
            "--set", "data/dir=%s" % os.path.join(t.tmp, "cli-var"), "workflow", "run", path]
    out = subprocess.run(base + ["--input", "dataset=wfworkers"], cwd=t.tmp, capture_output=True,
                         timeout=60, text=True)
    t.note("lakehouse workflow run:\n" + out.stdout + out.stderr)
    t.check(out.returncode == 0 and "succeeded in" in out.stdout and ": 3 succeeded, 0 failed" in out.stdout,
            "`lakehouse workflow run FILE --input` exits 0", (out.returncode, out.stdout, out.stderr))
    for node in ("tables", "count", "note"):
        t.check(any(line.split()[1:3] == [node, "succeeded"] for line in out.stdout.splitlines()
                    if line.startswith("+")), "the progress view shows %s succeeded" % node)
    out = subprocess.run(base + ["--input", "dataset=nosuchdataset"], cwd=t.tmp, capture_output=True,
                         timeout=60, text=True)
    t.check(out.returncode == 1 and "failed in" in out.stdout and "catalogd.get answered 404" in out.stdout,
            "a failing run exits 1 and says why", (out.returncode, out.stdout))
    out = subprocess.run(base, cwd=t.tmp, capture_output=True, timeout=60, text=True)
    t.check(out.returncode == 1 and "missing_input" in out.stderr and "inputs.dataset" in out.stderr,
            "a missing input exits 1 naming it", (out.returncode, out.stderr))


def trigger(t, h, conn):
    definition = {"name": "on-catalog", "on": "catalog.changed",
                  "nodes": {"manifest": {"call": "catalogd.get",
                                         "input": {"name": "${inputs.event.body.name}"}},
                            "rows": {"call": "queryd.sql", "needs": ["manifest"],
                                     "input": {"sql": "SELECT count(*) FROM \"${nodes.manifest.output.name}\""}}}}
    st, body = call(h, conn, "POST", "/v1/workflows/put", {"definition": definition})
    t.check(st == 201 and body["on"] == "catalog.changed" and body["inputs"] == ["event"],
            "a workflow with on: catalog.changed is saved", (st, body))
    #  The runner subscribes on its own thread: wait until it says it has
    deadline = now() + 10
    while now() < deadline:
        st, stats = call(h, conn, "GET", "/v1/workflows/stats")
        if stats["subscribed"] >= 1:
            break
        time.sleep(0.02)
    t.check(stats["subscribed"] == 1 and stats["triggers"] == 1, "the runner subscribed to catalog.changed",
            stats)
    csv = b"sku,qty\nA1,3\nB2,5\nC3,7\n"
    st, _, out = h.request("POST", "/v1/ingest?name=evstock", body=csv, conn=conn,
                           headers={"Content-Type": "text/csv"})
    t.check(st == 200, "POST /v1/ingest registers evstock", (st, out))
    deadline = now() + 20
    runs = []
    while now() < deadline:
        st, body = call(h, conn, "GET", "/v1/workflows/runs?name=on-catalog")
        runs = body["runs"]
        if runs and runs[0]["status"] != "running":
            break
        time.sleep(0.02)
    t.check(runs and runs[0]["trigger"] == "event" and runs[0]["status"] == "succeeded",
            "the catalog.changed event started a run, listed by GET /v1/workflows/runs", runs)
    st, run = call(h, conn, "GET", "/v1/workflows/runs/%s" % runs[-1]["run_id"])
    event = run["inputs"]["event"]
    t.check(event["topic"] == "catalog.changed" and event["body"]["op"] == "register"
            and event["body"]["name"] == "evstock" and event["source"].startswith("catalogd"),
            "the run's inputs.event is the event", event)
    t.check(run["nodes"]["rows"]["output"]["rows"] == [[3]], "the run counted the new dataset",
            run["nodes"]["rows"])


def observer(t, h, conn):
    st, stats = call(h, conn, "GET", "/v1/observer/stats")
    t.check(st == 200 and stats["topics"].get("catalog.changed", 0) >= 2
            and stats["topics"].get("workflow.run", 0) >= 4 and stats["topics"].get("workflow.node", 0) >= 14,
            "observerd counted catalog.changed and the workflow events", stats["topics"])
    st, body = call(h, conn, "GET", "/v1/observer/events?type=catalog.&limit=1")
    t.check(st == 200 and body["count"] == 1 and body["truncated"] is True
            and body["events"][0]["topic"] == "catalog.changed", "GET /v1/observer/events?type=catalog.", body)
    first = body["events"][0]
    st, body = call(h, conn, "GET", "/v1/observer/events?type=catalog.&since=%d" % body["next"])
    t.check(st == 200 and body["count"] >= 1 and all(e["seq"] > first["seq"] for e in body["events"]),
            "the next page starts after it", body)
    st, body = call(h, conn, "GET", "/v1/observer/events?since=%s&limit=5" % first["time"])
    t.check(st == 200 and body["events"][0]["seq"] == first["seq"], "since an RFC 3339 time", body)
    st, event = call(h, conn, "POST", "/v1/observer/inbox",
                     {"subject": "disk\u0007 full", "sender": "ops", "priority": "", "body": "line\r\n2"})
    t.check(st == 201 and event["topic"] == "inbox.medium" and event["body"]["subject"] == "disk full"
            and event["body"]["body"] == "line\n2" and event["source"] == "gateway",
            "POST /v1/observer/inbox: 201, medium, control characters dropped", (st, event))
    st, body = call(h, conn, "POST", "/v1/observer/inbox", {"subject": "s", "sender": "x", "priority": "p1"})
    t.check(st == 400 and body["error"]["field"] == "priority", "an unknown priority is 400", body)
    st, body = call(h, conn, "POST", "/v1/observer/inbox", {"subject": "s", "sender": "x", "body": "b" * 8193})
    t.check(st == 413 and body["error"]["field"] == "body", "a body over 8 KiB is 413", body)
    st, after = call(h, conn, "GET", "/v1/observer/stats")
    t.check(after["topics"].get("inbox.medium") == 1, "refused inbox messages are not kept", after["topics"])


def main(t):
    sets = {"embedd/dim": 16, "gateway/workflow_timeout_ms": 120000}
    b, h = up(t, ACTORS, workers=2, sets=sets, timeout=60.0)
    conn = h.connection(timeout=130.0)
    seven_nodes(t, h, conn)
    cli(t, b, h, conn)
    trigger(t, h, conn)
    observer(t, h, conn)


lhtest.run(main, budget=240)
