#!/usr/bin/python3
"""validatord.validate over the bus (SPEC 5.8): exact statuses and bodies
(the tagged 422 shape, warnings in 200 reports, 400 on an unknown kind),
context merged into artifact._context, case-insensitive roster ids, the
roster reloaded when its file changes, a bad roster refused at start, and
an empty session-log path turning the log off. (Every check of every
validator is table-tested in lh_validate_test; here they cross the bus.)
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lhtest  # noqa: E402
import test_chatd_util as u  # noqa: E402
import fake_provider  # noqa: E402


def main(t):
    with fake_provider.start() as fake:
        body(t, fake)


def body(t, fake):
    roster = os.path.join(t.tmp, "roster.jsonl")
    lhtest.write_jsonl(roster, [
        {"candidate_id": "W-1", "name": "Ann Lee", "city": "Toledo", "state": "OH",
         "role": "forklift", "status": "active", "blacklisted_clients": ["C-7"]},
        {"candidate_id": "W-2", "name": "Bo Diaz", "city": "Toledo", "state": "OH",
         "role": "forklift", "status": "inactive"},
    ])
    proc, endpoint = u.harness(t, fake, sets={"validatord/roster": roster,
                                              "validatord/session_log": ""})
    p = u.peer(t, endpoint)

    def validate(kind, artifact, context=None):
        req = {"kind": kind, "artifact": artifact}
        if context is not None:
            req["context"] = context
        return u.call(p, "validatord", "validate", req)

    cases = [
        ("fill", {"fills": [{"candidate_id": "w-1", "name": "Ann Lee"}]},
         {"target_count": 1, "city": "Toledo"}, 200,
         {"kind": "fill", "valid": True, "warnings": []}),
        ("fill", {"fills": [{"candidate_id": "W-1", "name": "Annie"}]}, None, 200,
         {"kind": "fill", "valid": True,
          "warnings": ['fills[0].name "Annie" differs from roster name "Ann Lee"']}),
        ("fill", {"fills": [{"candidate_id": "W-404", "name": "Ghost"}]}, None, 422,
         {"Consistency": {"reason": 'fills[0].candidate_id "W-404" does not exist in worker roster'}}),
        ("fill", {"fills": [{"candidate_id": "W-2", "name": "Bo Diaz"}]}, None, 422,
         {"Consistency": {"reason": "fills[0].candidate_id \"W-2\" is not active (status 'inactive')"}}),
        ("fill", {"fills": [{"candidate_id": "W-1", "name": "Ann Lee"}]}, {"city": "Louisville"}, 422,
         {"Consistency": {"reason": "city 'Toledo' doesn't match contract city 'Louisville'"}}),
        ("fill", {"fills": [{"candidate_id": "W-1", "name": "Ann Lee"}]}, {"client_id": "C-7"}, 422,
         {"Policy": {"reason": "candidate \"W-1\" is blacklisted by client 'C-7'"}}),
        ("fill", {"fills": []}, {"target_count": 2}, 422,
         {"Completeness": {"reason": "expected 2 fills (target_count), got 0"}}),
        ("fill", {"fills": "W-1"}, None, 422,
         {"Schema": {"field": "fills", "reason": "missing or not an array"}}),
        ("sms", {"body": "x" * 160}, None, 200,
         {"kind": "sms", "valid": True,
          "warnings": ["no _context.candidate_id: the name in the draft was not checked"]}),
        ("sms", {"body": "x" * 161}, None, 422,
         {"Schema": {"field": "body", "reason": "SMS is 161 characters; the limit is 160"}}),
        ("sms", {"body": "Ann, your SSN 123-45-6789"}, {"candidate_id": "W-1"}, 422,
         {"Policy": {"reason": "SSN-shaped sequence"}}),
        ("sms", {"body": "Ann, call 555-123-4567 re 1123-45-67890"}, {"candidate_id": "W-1"}, 200,
         {"kind": "sms", "valid": True, "warnings": []}),
        ("email", {"subject": "Shift", "body": "Hi Bob"}, {"candidate_id": "W-1"}, 422,
         {"Consistency": {"reason": 'draft does not name roster name "Ann Lee" of candidate "W-1"'}}),
        ("playbook", {"operation": "fill: 1 forklift", "endorsed_names": ["a"]}, None, 422,
         {"Schema": {"field": "fingerprint",
                     "reason": "missing \u2014 required for Phase 25 validity window"}}),
        ("playbook", {"fingerprint": "f", "operation": "sms_draft: hello"}, None, 422,
         {"Schema": {"field": "operation",
                     "reason": "expected `fill: ...` prefix, got \"sms_draft: hello\""}}),
        ("playbook", {"fingerprint": "f", "operation": "fill: x", "endorsed_names": []}, None, 422,
         {"Completeness": {"reason": "endorsed_names must be non-empty"}}),
        ("playbook", {"fingerprint": "f", "operation": "fill: x", "endorsed_names": ["a", "b", "c"]},
         {"target_count": 1}, 422,
         {"Completeness": {"reason": "endorsed_names (3) exceeds target_count \u00d7 2 (2)"}}),
        ("invoice", {}, None, 400,
         {"error": {"kind": "bad_request", "field": "kind",
                    "reason": "unknown kind 'invoice': expected fill, email, sms or playbook"}}),
    ]
    for kind, artifact, context, status, expect in cases:
        st, reply = validate(kind, artifact, context)
        t.check(st == status and reply == expect, "%s %s -> %d" % (kind, json.dumps(artifact)[:60], status),
                (st, reply))

    #  Byte-exact playbook reasons on the wire (UTF-8 em dash and times sign)
    rep = p.call("validatord", "validate", {"kind": "playbook", "artifact": {}}, timeout=10, dl=10000)
    raw = bytes(rep.frames[-1])
    t.check("missing \u2014 required".encode("utf-8") in raw and b"\xe2\x80\x94" in raw,
            "em dash travels as UTF-8 bytes e2 80 94", raw)

    #  Bad input
    for bad, field in (({"artifact": {}}, "kind"), ({"kind": "fill"}, "artifact"),
                       ({"kind": "fill", "artifact": {}, "context": [1]}, "context")):
        st, reply = u.call(p, "validatord", "validate", bad)
        t.check(st == 400 and reply["error"]["field"] == field, "400 naming %s" % field, (st, reply))

    #  The roster reloads when the file changes
    lhtest.write_jsonl(roster, [{"candidate_id": "W-404", "name": "Now Real", "status": "active"}])
    st, reply = validate("fill", {"fills": [{"candidate_id": "w-404", "name": "Now Real"}]})
    t.check(st == 200, "a worker added to the roster file is found at once", (st, reply))
    st, reply = validate("fill", {"fills": [{"candidate_id": "W-1", "name": "Ann Lee"}]})
    t.check(st == 422 and "does not exist" in reply["Consistency"]["reason"],
            "a worker removed from the roster file is gone", (st, reply))
    #  A broken roster file keeps the previous roster
    with open(roster, "a") as f:
        f.write("this is not json\n")
    st, reply = validate("fill", {"fills": [{"candidate_id": "W-404", "name": "Now Real"}]})
    t.check(st == 200, "a broken roster file keeps the previous roster", (st, reply))

    #  Session log off: iterate works, no file written
    fake.script("off", [{"content": '{"fingerprint": "f", "operation": "fill: x", "endorsed_names": ["a"]}'}])
    st, reply = u.call(p, "validatord", "iterate", {"kind": "playbook", "model": "off", "prompt": "p"})
    t.check(st == 200 and reply["iterations"] == 1, "iterate with the session log off", (st, reply))
    found = [name for _, _, names in os.walk(t.tmp) for name in names if name.endswith(".jsonl")
             and name != "roster.jsonl"]
    t.check(found == [], "no session log written when its path is empty", found)

    #  A roster that does not load refuses to start, naming the key
    bad = os.path.join(t.tmp, "bad.jsonl")
    with open(bad, "w") as f:
        f.write('{"name": "no id"}\n')
    path = os.path.join(t.build, "lh_chat_harness")
    t.counter += 1
    proc2 = lhtest.Proc([path, "--services", "validatord", "--set", "validatord/roster=" + bad],
                        "badroster", t.tmp)
    t.procs.append(proc2)
    code = proc2.popen.wait(15)
    with open(proc2.log_path, "rb") as f:
        err = f.read().decode("utf-8", "replace")
    t.check(code != 0 and "validatord/roster" in err and "bad.jsonl:1" in err,
            "a bad roster refuses to start, naming the key and line", (code, err[-400:]))


if __name__ == "__main__":
    lhtest.run(main)
