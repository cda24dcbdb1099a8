#!/usr/bin/python3
"""test_console - the web console in headless Chromium against a live
system (docs/console.md).

`lakehouse up` with every actor, the broker's tap on and an admin token;
seeded through the HTTP API with a dataset (crew), a vector index of three
embedded texts (crewvec), a workflow run, two iterate calls (the model is
unreachable, so each writes an infra_error row to the session log) and
the catalog's event. Then tests/console/console_test.js drives Debian's
chromium through npm's playwright-core (scripts/playwright-install puts it
in the project's npm cache): every view loads with no console error, the
services table updates after requests, a SQL query typed into the box
shows its rows, the tap view shows a request made while it is open.

LH_CONSOLE_SHOTS=DIR also saves a screenshot of each view there (that is
how docs/console/*.png are made).
"""

import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest                    # noqa: E402
import test_gateway_util as gw   # noqa: E402

ADMIN = "console-admin-0123456789abcdef"
CHROMIUM = "/usr/bin/chromium"


def call(t, h, method, path, body, expect, what, headers=None):
    """One request as the admin; checks its status, returns the JSON."""
    hdrs = {"Authorization": "Bearer " + ADMIN}
    hdrs.update(headers or {})
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    st, _, reply = h.request(method, path, data, hdrs, timeout=30)
    t.check(st == expect, what, (st, reply[:300]))
    return json.loads(reply) if reply else None


def main(t):
    node = shutil.which("node")
    if not node or not os.access(CHROMIUM, os.X_OK):
        raise lhtest.Skip("node or %s is missing (scripts/install-deps --test)" % CHROMIUM)
    root = os.environ.get("LH_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    install = subprocess.run([os.path.join(root, "scripts", "playwright-install")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=320)
    if install.returncode != 0:
        raise lhtest.Skip("playwright-core could not be installed: %s"
                          % install.stderr.decode(errors="replace").strip()[-300:])
    module = install.stdout.decode().strip().splitlines()[-1]

    tokens = os.path.join(t.tmp, "tokens")
    with open(tokens, "w") as f:
        f.write("%s role=admin name=console\n" % ADMIN)
    os.chmod(tokens, 0o600)
    b, h = gw.up(t, "*", sets={
        "bus/tap": "tcp://127.0.0.1:*", "gateway/token_file": tokens,
        "chatd/ollama_url": "http://127.0.0.1:%d" % lhtest.free_port()}, timeout=40)

    #  Something for every view to show
    csv = b"name,city,role\nAnn Lee,Toledo,forklift\nBo Diaz,Toledo,welder\nCy Park,Columbus,cook\n"
    call(t, h, "POST", "/v1/ingest?name=crew", csv, 200, "the dataset crew is ingested",
         {"Content-Type": "text/csv"})
    texts = ["forklift driver in Toledo", "welder in Toledo", "line cook in Columbus"]
    vectors = call(t, h, "POST", "/v1/embed", {"texts": texts}, 200, "three texts embedded")["vectors"]
    call(t, h, "POST", "/v1/vectors/index", {"name": "crewvec", "dim": len(vectors[0]), "metric": "cosine"},
         201, "the index crewvec is created")
    call(t, h, "POST", "/v1/vectors/index/crewvec/add",
         {"items": [{"id": "w%d" % n, "vector": v, "metadata": {"text": texts[n]}}
                    for n, v in enumerate(vectors)]}, 200, "three vectors added")
    call(t, h, "POST", "/v1/workflows/put", {"definition": {"name": "count-crew", "nodes": {
        "count": {"call": "queryd.sql", "input": {"sql": "SELECT count(*) AS n FROM crew"}}}}},
         201, "a workflow is defined")
    run = call(t, h, "POST", "/v1/workflows/run", {"name": "count-crew", "wait": True}, 200,
               "the workflow runs")
    t.check(run["status"] == "succeeded", "its run succeeded", run)
    for n in range(2):
        call(t, h, "POST", "/v1/iterate", {"kind": "sms", "model": "local_fast", "prompt": "hi %d" % n},
             502, "iterate %d writes a session row (the model is unreachable: 502)" % n)

    #  The browser
    shots = os.environ.get("LH_CONSOLE_SHOTS")
    if shots:
        os.makedirs(shots, exist_ok=True)
    env = dict(os.environ, LH_PLAYWRIGHT=module, LH_CHROMIUM=CHROMIUM, HOME=t.tmp)
    args = [node, os.path.join(root, "tests", "console", "console_test.js"), h.url, ADMIN]
    if shots:
        args.append(os.path.abspath(shots))
    try:
        result = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                timeout=150)
    except subprocess.TimeoutExpired as e:
        raise lhtest.Failure("the browser test did not finish in 150 s:\n%s"
                             % (e.stdout or b"").decode(errors="replace"))
    output = result.stdout.decode(errors="replace")
    for line in output.splitlines():
        print("  | " + line, flush=True)
    t.check(result.returncode == 0 and "checks passed" in output,
            "headless Chromium: every view, the services update, SQL, the tap", output[-2000:])


if __name__ == "__main__":
    lhtest.run(main, budget=280)
