#!/usr/bin/python3
"""The official TypeScript SDK client (@modelcontextprotocol/sdk, pinned in
tests/mcp/package-lock.json) against a live Lakehouse (`lakehouse up`: every
service, chatd on the fake provider, validatord on a roster file), over
stdio (`lakehouse mcp`, a bus client of its own) and over streamable HTTP
(/mcp on the gateway, with a bearer token):

- it connects (initialize, protocol 2025-11-25), lists the tools: all 14,
  each with a description and an input schema;
- it calls each one: ingest_csv, list_datasets, get_manifest, query_sql,
  embed_text, search_vectors (by text: embedded first; by vector),
  matrix_search, playbook_record, validate, iterate (the fake model's fill
  passes), pathway_add, pathway_search, pathway_history (of the uid add
  gave), run_workflow (an inline two-node definition: the SQL count, then
  pathwayd.add of it; the same run by run_id; a run whose node fails is a
  result with status failed); the SDK itself checks each structured result
  against the tool's outputSchema;
- failures are tool results with isError and the reason: bad SQL, an
  unknown dataset (404), an SSN in an SMS (422 Policy), an unknown
  argument;
- resources/list names the dataset ingested, resources/read gives its
  manifest, and notifications/resources/list_changed arrives after the
  ingest (over HTTP on the session's GET stream);
- /mcp without the token is 401, like every route.
"""

import json
import os
import sys
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
import lhtest  # noqa: E402
import lhmcp  # noqa: E402
import test_chatd_util as u  # noqa: E402
import fake_provider  # noqa: E402

TOKEN = "mcp-sdk-test-token-0123456789abcdef"
TOOLS = ["list_datasets", "get_manifest", "query_sql", "ingest_csv", "embed_text",
         "search_vectors", "matrix_search", "playbook_record", "validate", "iterate",
         "pathway_add", "pathway_search", "pathway_history", "run_workflow"]
ROSTER = [
    {"candidate_id": "W-1", "name": "Ann Lee", "city": "Toledo", "state": "OH",
     "role": "forklift", "status": "active"},
    {"candidate_id": "W-2", "name": "Bo Diaz", "city": "Toledo", "state": "OH",
     "role": "forklift", "status": "active"},
    {"candidate_id": "W-3", "name": "Cy Ode", "city": "Louisville", "state": "KY",
     "role": "welder", "status": "active"},
]
SERVICES = ("storaged,catalogd,ingestd,queryd,embedd,vectord,matrixd,chatd,validatord,pathwayd,"
            "workflowd")


def http(url, method="GET", body=None, token=TOKEN):
    """A plain gateway call; returns (status, parsed body)"""
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
            return r.status, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, json.loads(text)
        except ValueError:
            return e.code, text


def calls(dataset, model, vector):
    """The plan's calls: every tool, and the failures"""
    fill = {"target_count": 1, "city": "Toledo", "state": "OH", "role": "forklift"}
    return [
        {"tool": "ingest_csv", "arguments": {"name": dataset, "source": "uploads/roster.csv"}},
        {"tool": "list_datasets"},
        {"tool": "get_manifest", "arguments": {"name": dataset}},
        {"tool": "query_sql", "arguments": {
            "sql": "SELECT count(*) AS n FROM %s WHERE city = ?" % dataset, "params": ["Toledo"]}},
        {"tool": "embed_text", "arguments": {"texts": ["forklift driver in Toledo"]}},
        {"tool": "search_vectors", "label": "search_vectors_text",
         "arguments": {"index": "workers", "text": "forklift driver Toledo", "k": 2}},
        {"tool": "search_vectors", "label": "search_vectors_vector",
         "arguments": {"index": "workers", "vector": vector, "k": 3}},
        {"tool": "matrix_search", "arguments": {"query_text": "forklift Toledo",
                                                "corpora": ["workers"], "k": 2}},
        {"tool": "playbook_record", "arguments": {"query_text": "forklift Toledo", "answer_id": "W-1",
                                                  "answer_corpus": "workers", "score": 1}},
        {"tool": "validate", "arguments": {"kind": "sms", "artifact": {"body": "See you at 9, Ann"}}},
        {"tool": "iterate", "arguments": {"kind": "fill", "model": "ollama/" + model,
                                          "prompt": "Fill 1 forklift driver in Toledo", "context": fill}},
        {"tool": "pathway_add", "arguments": {"content": {"task": "fill", "via": model},
                                              "tags": ["mcp", model]},
         "capture": {"uid": "uid"}},
        {"tool": "pathway_search", "arguments": {"tags": [model]}},
        {"tool": "pathway_history", "arguments": {"uid": "$uid"}},
        {"tool": "run_workflow", "arguments": {"definition": workflow(), "inputs": {"dataset": dataset}},
         "capture": {"run_id": "run_id"}},
        {"tool": "run_workflow", "label": "run_get", "arguments": {"run_id": "$run_id"}},
        {"tool": "run_workflow", "label": "run_failed", "arguments": {
            "definition": "name: broken\nnodes:\n  bad: {call: queryd.sql, input: {sql: SELEC 1}}\n"
                          "  after: {call: pathwayd.add, needs: [bad], input: {content: x}}\n"}},
        #  Failures: results with isError and the reason
        {"tool": "query_sql", "label": "bad_sql", "arguments": {"sql": "SELEC 1"}},
        {"tool": "get_manifest", "label": "no_dataset", "arguments": {"name": "no_such"}},
        {"tool": "validate", "label": "ssn", "arguments": {
            "kind": "sms", "artifact": {"body": "Your SSN is 123-45-6789"}}},
        {"tool": "query_sql", "label": "unknown_argument", "arguments": {"sql": "SELECT 1", "sqll": 1}},
    ]


def workflow():
    """An inline definition: the count of a dataset's Toledo rows, then a
    trace of it (needs the count)"""
    return {"name": "mcp-count", "inputs": ["dataset"], "nodes": {
        "count": {"call": "queryd.sql", "input": {
            "sql": "SELECT count(*) AS n FROM ${inputs.dataset} WHERE city = 'Toledo'"}},
        "note": {"call": "pathwayd.add", "needs": ["count"], "input": {
            "content": {"toledo": "${nodes.count.output.rows.0.0}"}, "tags": ["mcp-workflow"]}}}}


def check_run(t, events, transport, dataset):
    """What every run must show"""
    by = {}
    for event in events:
        by.setdefault(event["event"], []).append(event)
    connected = by["connected"][0]
    t.check(connected["server"]["name"] == "lakehouse"
            and connected["capabilities"]["resources"]["listChanged"] is True
            and "tools" in connected["capabilities"] and "logging" in connected["capabilities"],
            "%s: the SDK client connected (tools, resources with listChanged, logging)" % transport,
            connected)
    tools = {tool["name"]: tool for tool in by["tools"][0]["tools"]}
    t.check(all(name in tools for name in TOOLS)
            and all(len(tools[n]["description"]) > 40 and tools[n]["inputSchema"]["type"] == "object"
                    and tools[n]["outputSchema"] for n in TOOLS),
            "%s: tools/list has all 14 tools, each with a description and input/output schemas"
            % transport, sorted(tools))
    results = {call["label"]: call for call in by["call"]}
    expect_ok = ["ingest_csv", "list_datasets", "get_manifest", "query_sql", "embed_text",
                 "search_vectors_text", "search_vectors_vector", "matrix_search", "playbook_record",
                 "validate", "iterate", "pathway_add", "pathway_search", "pathway_history",
                 "run_workflow", "run_get", "run_failed"]
    failed = [(n, results[n]["text"]) for n in expect_ok if results[n]["isError"]]
    t.check(not failed, "%s: every tool answers a result (no isError)" % transport, failed)
    s = {n: results[n]["structured"] for n in expect_ok}
    t.check(s["ingest_csv"]["row_count"] == 3
            and any(d["name"] == dataset for d in s["list_datasets"]["datasets"])
            and s["get_manifest"]["dataset_id"] == s["ingest_csv"]["dataset_id"]
            and s["query_sql"]["rows"] == [[2]],
            "%s: ingest_csv 3 rows, listed, its manifest, SQL counts 2 in Toledo" % transport,
            (s["ingest_csv"], s["query_sql"]))
    t.check(s["embed_text"]["dim"] == 768 and len(s["embed_text"]["vectors"]) == 1
            and s["search_vectors_text"]["count"] == 2
            and s["search_vectors_vector"]["hits"][0]["id"] == "W-2"
            and s["matrix_search"]["count"] == 2
            and all(h["corpus"] == "workers" for h in s["matrix_search"]["hits"])
            and len(s["playbook_record"]["playbook_id"]) == 64,
            "%s: embed (768-d), search by text and by vector, matrix search, playbook record"
            % transport, (s["search_vectors_text"], s["matrix_search"]))
    t.check(s["validate"]["valid"] is True
            and s["iterate"]["iterations"] == 1
            and s["iterate"]["artifact"]["fills"][0]["candidate_id"] == "W-2",
            "%s: validate valid, iterate accepted the fake model's fill" % transport,
            (s["validate"], s["iterate"]))
    t.check(s["pathway_search"]["count"] == 1
            and s["pathway_history"]["chain"][0]["uid"] == s["pathway_add"]["uid"]
            and s["pathway_history"]["count"] == 1,
            "%s: pathway add, search by tag, history of the uid" % transport,
            (s["pathway_search"], s["pathway_history"]))
    run = s["run_workflow"]
    t.check(run["status"] == "succeeded" and run["name"] == "mcp-count"
            and run["nodes"]["count"]["status"] == "succeeded"
            and run["nodes"]["count"]["output"]["rows"] == [[2]]
            and run["nodes"]["note"]["status"] == "succeeded"
            and s["run_get"]["run_id"] == run["run_id"] and s["run_get"]["status"] == "succeeded",
            "%s: run_workflow ran the inline definition (count 2, then the trace), run_id alone "
            "gives the same run" % transport, (run, s["run_get"]))
    failed_run = s["run_failed"]
    t.check(failed_run["status"] == "failed" and failed_run["nodes"]["bad"]["status"] == "failed"
            and failed_run["nodes"]["after"]["status"] == "skipped",
            "%s: a run whose node fails is a result with status failed (its dependant skipped)"
            % transport, failed_run)
    errors = {n: results[n] for n in ("bad_sql", "no_dataset", "ssn", "unknown_argument")}
    t.check(all(e["isError"] and e["structured"] is None for e in errors.values())
            and "400 bad_sql" in errors["bad_sql"]["text"]
            and "404 no_such_dataset" in errors["no_dataset"]["text"]
            and "422" in errors["ssn"]["text"] and "Policy" in errors["ssn"]["text"]
            and "unknown argument 'sqll'" in errors["unknown_argument"]["text"],
            "%s: failures are isError results with the reason" % transport,
            {n: e["text"] for n, e in errors.items()})
    uris = [r["uri"] for r in by["resources"][0]["resources"]]
    contents = by["read"][0]["contents"][0]
    t.check("lakehouse://datasets/" + dataset in uris
            and contents["mimeType"] == "application/json"
            and json.loads(contents["text"])["name"] == dataset,
            "%s: resources/list names the dataset, resources/read gives its manifest" % transport,
            (uris, contents))
    t.check(by["list_changed"][0]["count"] >= 1,
            "%s: notifications/resources/list_changed after the ingest" % transport,
            by["list_changed"])


def main(t):
    cache = lhmcp.npm(t)
    with fake_provider.start() as fake:
        body(t, cache, fake)


def body(t, cache, fake):
    roster = lhtest.write_jsonl(os.path.join(t.tmp, "roster.jsonl"), ROSTER)
    os.environ["LAKEHOUSE_TOKEN"] = TOKEN
    sets = u.provider_sets(fake)
    sets.update({"validatord/roster": roster, "mcp/timeout_ms": 30000,
                 "validatord/session_log": os.path.join(t.tmp, "sessions.jsonl")})
    up = t.up(actors=SERVICES, workers=2, sets=sets, timeout=30.0)
    url = lhmcp.gateway_url(up.proc)

    #  The data the tools work on: a CSV in storage, a vector index of the
    #  roster (the default hash embedder, 768-d)
    csv = "candidate_id,name,city,role\nW-1,Ann Lee,Toledo,forklift\nW-2,Bo Diaz,Toledo,forklift\n" \
          "W-3,Cy Ode,Louisville,welder\n"
    st, _ = http(url + "/v1/storage/uploads/roster.csv", "PUT", csv.encode())
    t.check(st == 200, "the CSV is in storage", st)
    st, embedded = http(url + "/v1/embed", "POST",
                        {"texts": ["%(name)s %(role)s %(city)s" % w for w in ROSTER]})
    st2, _ = http(url + "/v1/vectors/index", "POST", {"name": "workers", "dim": 768})
    items = [{"id": w["candidate_id"], "vector": v, "metadata": {"city": w["city"]}}
             for w, v in zip(ROSTER, embedded["vectors"])]
    st3, _ = http(url + "/v1/vectors/index/workers/add", "POST", {"name": "workers", "items": items})
    t.check(st == 200 and st2 == 201 and st3 == 200, "the vector index 'workers' holds the roster",
            (st, st2, st3))
    vector = embedded["vectors"][1]                 #  W-2's own vector: W-2 comes first
    st, refused = http(url + "/mcp", "POST", lhmcp.INIT, token=None)
    t.check(st == 401, "/mcp without the bearer token: 401", (st, refused))

    #  stdio: `lakehouse mcp`, started by the SDK's StdioClientTransport
    config = os.path.join(t.tmp, "mcp.cfg")
    with open(config, "w") as f:
        f.write(lhtest.zpl({"log/level": "info"}))
    fill = "```json\n" + json.dumps({"fills": [{"candidate_id": "W-2", "name": "Bo Diaz"}]}) + "\n```"
    fake.script("m-stdio", [{"content": fill}], repeat=True)
    fake.script("m-http", [{"content": fill}], repeat=True)
    stdio = {"transport": "stdio", "command": t.lakehouse,
             "args": ["--config", config, "--set", "bus/endpoint=" + up.endpoint,
                      "--set", "bus/curve=false", "--set", "bus/plain=true", "mcp"],
             "env": {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
             "calls": calls("roster_stdio", "m-stdio", vector),
             "resource": "roster_stdio", "list_changed": True}
    events = lhmcp.sdk(t, cache, stdio, "stdio")
    check_run(t, events, "stdio", "roster_stdio")

    #  Streamable HTTP: /mcp on the gateway, with the token
    remote = {"transport": "http", "url": url + "/mcp", "token": TOKEN,
              "calls": calls("roster_http", "m-http", vector),
              "resource": "roster_http", "list_changed": True}
    events = lhmcp.sdk(t, cache, remote, "http")
    check_run(t, events, "http", "roster_http")
    t.check(events[0]["session"] and len(events[0]["session"]) == 32,
            "http: the session id is 32 hex digits", events[0])


lhtest.run(main, budget=280)
