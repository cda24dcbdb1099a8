#!/usr/bin/python3
"""validatord.iterate against the fake provider, over the bus (SPEC 5.8):

- accepted first shot (fenced JSON in prose);
- a phantom worker, then corrected: 2 iterations, grounded_in_roster true,
  the retry prompt carries the error and the failed reply;
- never valid: 422 max_iter_exhausted, only the latest failed attempt in
  each retry prompt;
- no JSON: retried with "your response wasn't valid JSON";
- provider down: 502 infra_error;
- trace id from the body, else the bus tr;
each call writes exactly one session-log row with the right fields; then
8 concurrent iterate calls write 8 intact rows, and the alarm query of
docs/session_log.md (accepted fills not grounded) finds nothing; rows of
every other kind (email, sms, playbook; accepted, exhausted, infra_error)
carry grounded_in_roster as JSON null, present, and a fill that was not
accepted carries false.
"""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402
import test_chatd_util as u  # noqa: E402
import fake_provider  # noqa: E402

ROSTER = [
    {"candidate_id": "W-1", "name": "Ann Lee", "city": "Toledo", "state": "OH",
     "role": "forklift", "status": "active", "blacklisted_clients": ["C-9"]},
    {"candidate_id": "W-2", "name": "Bo Diaz", "city": "Toledo", "state": "OH",
     "role": "forklift", "status": "active"},
    {"candidate_id": "W-3", "name": "Cy Ode", "city": "Louisville", "state": "KY",
     "role": "forklift", "status": "active"},
]
CONTEXT = {"target_count": 1, "city": "Toledo", "state": "OH", "role": "forklift",
           "client_id": "C-1"}
FIELDS = {"schema", "session_id", "timestamp", "daemon", "kind", "model", "provider",
          "prompt", "iterations", "max_iterations", "final_verdict", "attempts",
          "grounded_in_roster", "duration_ms"}


def fill(cid, name):
    return "Here is the fill:\n```json\n" + json.dumps(
        {"fills": [{"candidate_id": cid, "name": name}]}) + "\n```\nDone."


class Log:
    """The session log file: rows appended since the last look."""

    def __init__(self, path):
        self.path = path
        self.seen = 0

    def rows(self):
        if not os.path.exists(self.path):
            return []
        with open(self.path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    def new(self):
        rows = self.rows()
        fresh = rows[self.seen:]
        self.seen = len(rows)
        return fresh


def main(t):
    with fake_provider.start() as fake:
        body(t, fake)


def iterate(p, model, prompt="Fill 1 forklift driver in Toledo", **extra):
    req = {"kind": "fill", "model": model, "prompt": prompt, "context": CONTEXT}
    req.update(extra)
    return u.call(p, "validatord", "iterate", req, timeout=20.0)


def one_row(t, log, what):
    rows = log.new()
    t.check(len(rows) == 1, "%s: exactly one session-log row" % what, rows)
    row = rows[0]
    t.check(FIELDS <= set(row) and row["schema"] == "session.iterate.v1"
            and row["daemon"] == "validatord" and row["kind"] == "fill",
            "%s: row has every field" % what, sorted(row))
    return row


def body(t, fake):
    roster = lhtest.write_jsonl(os.path.join(t.tmp, "roster.jsonl"), ROSTER)
    sessions = os.path.join(t.tmp, "sessions.jsonl")
    proc, endpoint = u.harness(t, fake, workers=8, sets={
        "validatord/roster": roster, "validatord/session_log": sessions,
        "actors/chatd/workers": 4})
    p = u.peer(t, endpoint)
    log = Log(sessions)

    #  Accepted first shot
    fake.script("m-first", [{"content": fill("w-1", "Ann Lee")}])
    st, reply = iterate(p, "ollama/m-first", trace_id="trace-first-1")
    t.check(st == 200 and reply["iterations"] == 1
            and reply["artifact"]["fills"][0]["candidate_id"] == "w-1"
            and reply["validation"]["valid"] is True and reply["trace_id"] == "trace-first-1",
            "accepted first shot: 200, 1 iteration, trace id from the body", (st, reply))
    row = one_row(t, log, "first shot")
    t.check(row["final_verdict"] == "accepted" and row["grounded_in_roster"] is True
            and row["iterations"] == 1 and row["max_iterations"] == 3
            and row["session_id"] == "trace-first-1" and row["provider"] == "ollama"
            and row["model"] == "ollama/m-first"
            and row["attempts"] == [{"iteration": 0, "verdict_kind": "accepted", "span_id": ""}]
            and row["artifact"]["fills"][0]["candidate_id"] == "w-1"
            and row["timestamp"].endswith("Z") and len(row["timestamp"]) == 27,
            "first shot row: accepted, grounded, the artifact", row)
    sent = fake.requests()[-1]["body"]
    t.check(sent["options"].get("temperature") == 0.2 and sent["options"].get("num_predict") == 4096,
            "iterate's defaults reach the provider (temperature 0.2, max_tokens 4096)", sent)

    #  A phantom worker, then corrected
    fake.reset()
    phantom = fill("W-999", "Ghost Worker")
    fake.script("m-phantom", [{"content": phantom}, {"content": fill("W-2", "Bo Diaz")}])
    st, reply = iterate(p, "ollama/m-phantom", system="You staff warehouses.")
    t.check(st == 200 and reply["iterations"] == 2
            and reply["artifact"]["fills"][0]["candidate_id"] == "W-2",
            "phantom then corrected: 200 after 2 iterations", (st, reply))
    t.check(reply["history"][0]["verdict_kind"] == "consistency"
            and "does not exist in worker roster" in reply["history"][0]["error"]["Consistency"]["reason"],
            "history names the phantom", reply["history"])
    second = fake.requests()[1]["body"]["messages"]
    t.check([m["role"] for m in second] == ["system", "user", "assistant", "user"]
            and second[2]["content"] == phantom
            and '\\"W-999\\" does not exist in worker roster' in second[3]["content"],
            "the retry carries the failed reply and the error", second)
    row = one_row(t, log, "phantom")
    t.check(row["final_verdict"] == "accepted" and row["grounded_in_roster"] is True
            and row["iterations"] == 2 and [a["verdict_kind"] for a in row["attempts"]]
            == ["consistency", "accepted"]
            and "W-999" in row["attempts"][0]["error"]
            and row["session_id"] == reply["trace_id"],
            "phantom row: accepted, grounded, 2 attempts", row)

    #  Never valid: max_iter_exhausted, only the latest failure in the prompt
    fake.reset()
    fake.script("m-never", [{"content": fill("W-901", "A")}, {"content": fill("W-902", "B")},
                            {"content": fill("W-903", "C")}])
    st, reply = iterate(p, "ollama/m-never")
    t.check(st == 422 and reply["error"]["kind"] == "max_iter_exhausted"
            and reply["iterations"] == 3 and len(reply["history"]) == 3
            and "W-903" in reply["error"]["last"]["Consistency"]["reason"],
            "never valid: 422 max_iter_exhausted after 3", (st, reply))
    third = fake.requests()[2]["body"]["messages"]
    t.check(len(third) == 3 and "W-902" in third[1]["content"] and "W-901" not in json.dumps(third),
            "the third prompt carries only the latest failed attempt", third)
    row = one_row(t, log, "never valid")
    t.check(row["final_verdict"] == "max_iter_exhausted" and row["iterations"] == 3
            and "artifact" not in row and row["grounded_in_roster"] is False
            and len(row["attempts"]) == 3,
            "never-valid row: max_iter_exhausted, no artifact", row)

    #  Wrong city, then no JSON, then valid
    fake.reset()
    fake.script("m-nojson", [{"content": fill("W-3", "Cy Ode")},
                             {"content": "Sorry, I cannot help with that."},
                             {"content": '{"fills": [{"candidate_id": "W-1", "name": "Ann"}]}'}])
    st, reply = iterate(p, "ollama/m-nojson", max_iterations=3)
    t.check(st == 200 and reply["iterations"] == 3
            and [h["verdict_kind"] for h in reply["history"]] == ["consistency", "no_json", "accepted"]
            and "doesn't match contract city 'Toledo'" in reply["history"][0]["error"]["Consistency"]["reason"],
            "wrong city, then no JSON, then accepted", (st, reply))
    t.check(reply["validation"]["warnings"] and "differs from roster name" in reply["validation"]["warnings"][0],
            "a name differing from the roster is a warning in the report", reply["validation"])
    third = fake.requests()[2]["body"]["messages"]
    t.check("your response wasn't valid JSON" in third[-1]["content"],
            "no JSON: retried with \"your response wasn't valid JSON\"", third[-1])
    row = one_row(t, log, "no json")
    t.check([a["verdict_kind"] for a in row["attempts"]] == ["consistency", "no_json", "accepted"],
            "no-json row: its attempts", row["attempts"])

    #  Provider down: 502 infra_error; the bus trace becomes the session id
    fake.reset()
    fake.set_down(True)
    trace = "0af7651916cd43dd8448eb211c80319c"
    rep = p.call("validatord", "iterate", {"kind": "fill", "model": "ollama/m-down", "prompt": "x",
                                           "context": CONTEXT},
                 timeout=20.0, dl=20000, tr=trace)
    t.check(rep is not None and rep.st == 502 and rep.obj["error"]["kind"] == "infra_error"
            and rep.obj["iterations"] == 1 and rep.obj["trace_id"] == trace,
            "provider down: 502 infra_error, trace id from the bus", rep and (rep.st, rep.obj))
    fake.set_down(False)
    row = one_row(t, log, "provider down")
    t.check(row["final_verdict"] == "infra_error" and row["session_id"] == trace
            and row["attempts"][0]["verdict_kind"] == "infra_error"
            and "503" in row["attempts"][0]["error"] and row["provider"] == "ollama",
            "provider-down row: infra_error", row)
    t.check(row["grounded_in_roster"] is False,
            "a fill that was not accepted (infra_error) is not grounded: false", row)

    #  Bad input: 400, and no row
    st, reply = u.call(p, "validatord", "iterate", {"kind": "invoice", "model": "m", "prompt": "x"})
    t.check(st == 400 and reply["error"]["field"] == "kind", "unknown kind: 400", (st, reply))
    st, reply = u.call(p, "validatord", "iterate", {"kind": "fill", "model": "m", "prompt": "x",
                                                    "max_iterations": 0})
    t.check(st == 400 and reply["error"]["field"] == "max_iterations", "max_iterations 0: 400", (st, reply))
    t.check(log.new() == [], "refused calls write no row")

    #  8 concurrent calls: 8 intact rows
    fake.reset()
    fake.script("*", [{"content": fill("W-2", "Bo Diaz"), "delay_ms": 100}], repeat=True)
    results = [None] * 8
    peers = [u.peer(t, endpoint) for _ in range(8)]

    def worker(index):
        try:
            results[index] = iterate(peers[index], "ollama/m-many-%d" % index,
                                     prompt="concurrent %d " % index + "x" * 5000,
                                     trace_id="many-%d" % index)
        except Exception as e:          # reported by the check below
            results[index] = (None, repr(e))
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    t.check(all(r and r[0] == 200 for r in results), "8 concurrent iterate calls: 200 each",
            [r and r[0] for r in results])
    rows = log.new()
    t.check(len(rows) == 8 and sorted(r["session_id"] for r in rows)
            == sorted("many-%d" % i for i in range(8)),
            "8 concurrent calls: 8 intact rows", [r.get("session_id") for r in rows])
    t.check(all(r["prompt"].startswith("concurrent") and len(r["prompt"]) == 4000 for r in rows),
            "prompts in the rows cut to 4000 characters")

    #  The alarm query finds nothing (the JSONL loaded into sqlite as text)
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE sessions (line TEXT)")
    with open(sessions, encoding="utf-8") as f:
        db.executemany("INSERT INTO sessions VALUES (?)", [(line,) for line in f])
    total, = db.execute("SELECT count(*) FROM sessions").fetchone()
    alarm = db.execute("""SELECT json_extract(line, '$.session_id') FROM sessions
                          WHERE json_extract(line, '$.kind') = 'fill'
                            AND json_extract(line, '$.final_verdict') = 'accepted'
                            AND json_extract(line, '$.grounded_in_roster') = 0""").fetchall()
    t.check(total == 13 and alarm == [], "alarm query: no accepted fill ungrounded (%d rows)" % total,
            alarm)

    #  The same with the sqlite3 CLI and the import recipe of docs/session_log.md
    if shutil.which("sqlite3"):
        script = ("CREATE TABLE IF NOT EXISTS raw (line TEXT);\n.mode ascii\n.separator \"\\t\" \"\\n\"\n"
                  ".import %s raw\n.mode list\n.separator \"|\" \"\\n\"\n"
                  "SELECT count(*), sum(json_valid(line)) FROM raw;\n"
                  "SELECT count(*) FROM raw WHERE json_extract(line, '$.kind') = 'fill'"
                  " AND json_extract(line, '$.final_verdict') = 'accepted'"
                  " AND json_extract(line, '$.grounded_in_roster') = 0;\n" % sessions)
        out = subprocess.run(["sqlite3", os.path.join(t.tmp, "sessions.db")], input=script,
                             capture_output=True, text=True, timeout=30)
        t.check(out.stdout.split() == ["13|13", "0"], "sqlite3 CLI: 13 valid rows, alarm query empty",
                (out.stdout, out.stderr))
    else:
        t.note("sqlite3 CLI not installed: CLI recipe not checked")

    other_kinds(t, p, fake, log)


def other_kinds(t, p, fake, log):
    """grounded_in_roster is for fill only: every other kind's row carries
    it as JSON null (present, not absent, not false), accepted or not
    (SPEC 5.8, docs/session_log.md)."""
    fake.reset()
    log.new()
    email = json.dumps({"subject": "Shift", "body": "Hi Ann, see you Monday."})
    cases = [
        ("email", [{"content": email}], 200, "accepted"),
        ("sms", [{"content": json.dumps({"body": "Ann: shift moved to 7am."})}], 200, "accepted"),
        ("playbook", [{"content": json.dumps({"fingerprint": "f", "operation": "fill: x",
                                              "endorsed_names": ["Ann Lee"]})}], 200, "accepted"),
        ("email", [{"content": json.dumps({"subject": "Shift", "body": ""})}], 422,
         "max_iter_exhausted"),
        ("sms", [{"content": "no JSON at all"}], 422, "max_iter_exhausted"),
    ]
    for index, (kind, script, status, verdict) in enumerate(cases):
        model = "m-%s-%d" % (kind, index)
        fake.script(model, script)
        st, reply = u.call(p, "validatord", "iterate",
                           {"kind": kind, "model": "ollama/" + model, "prompt": "draft it",
                            "max_iterations": 1}, timeout=20.0)
        t.check(st == status, "%s iterate: %d" % (kind, status), (st, reply))
        rows = log.new()
        t.check(len(rows) == 1 and rows[0]["kind"] == kind
                and rows[0]["final_verdict"] == verdict
                and "grounded_in_roster" in rows[0] and rows[0]["grounded_in_roster"] is None,
                "%s row (%s): grounded_in_roster present and null" % (kind, verdict), rows)
    fake.set_down(True)
    st, reply = u.call(p, "validatord", "iterate",
                       {"kind": "playbook", "model": "ollama/m-down-pb", "prompt": "x"},
                       timeout=20.0)
    fake.set_down(False)
    rows = log.new()
    t.check(st == 502 and len(rows) == 1 and rows[0]["final_verdict"] == "infra_error"
            and "grounded_in_roster" in rows[0] and rows[0]["grounded_in_roster"] is None,
            "playbook row (infra_error): grounded_in_roster present and null", (st, rows))
    with open(log.path, encoding="utf-8") as f:
        raw = [line for line in f if line.strip()]
    nulls = [line for line in raw if '"grounded_in_roster":null' in line]
    t.check(len(nulls) == len(cases) + 1,
            "the file holds the literal JSON null in those %d rows" % (len(cases) + 1),
            len(nulls))


if __name__ == "__main__":
    lhtest.run(main)
