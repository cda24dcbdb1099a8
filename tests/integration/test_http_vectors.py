#!/usr/bin/python3
"""test_http_vectors - the /v1/vectors and /v1/embed routes through the gateway.

`lakehouse up` with storaged, vectord and embedd and the gateway on an
ephemeral port. Creates an index over HTTP (201), lists and describes it,
adds texts embedded by POST /v1/embed (the built-in hash embedder), searches
with the embedding of a near-duplicate (it must rank first), deletes by id,
drops the index; and the errors of SPEC 5.5 come back as HTTP statuses with
the SPEC error body: duplicate create 409, dim mismatch 400, missing index
404. /v1/embed/stats counts the cache hits of a repeated text.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lhtest    # noqa: E402
from test_gateway_util import up    # noqa: E402

TEXTS = {
    "w1": "forklift operator with OSHA certification, night shift, Toledo",
    "w2": "registered nurse, ICU experience, weekends, Louisville",
    "w3": "CNC machinist, five axis, first shift, Dayton",
}


def main(t):
    _, h = up(t, "storaged,vectord,embedd")

    def call(method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        st, _, raw = h.request(method, path, body=data,
                               headers={"Content-Type": "application/json"} if data else None)
        return st, (json.loads(raw) if raw else None)

    st, body = call("POST", "/v1/embed", {"texts": list(TEXTS.values())})
    t.check(st == 200 and body["dim"] == 768 and len(body["vectors"]) == 3,
            "POST /v1/embed embeds 3 texts at dim 768", (st, body and body.get("dim")))
    vectors = dict(zip(TEXTS, body["vectors"]))

    st, body = call("POST", "/v1/vectors/index", {"name": "people", "dim": 768, "metric": "cosine"})
    t.check(st == 201 and body["name"] == "people", "POST /v1/vectors/index creates (201)", (st, body))
    st, body = call("POST", "/v1/vectors/index", {"name": "people", "dim": 768, "metric": "cosine"})
    t.check(st == 409 and "error" in body, "a duplicate create is 409 with an error body", (st, body))
    st, body = call("GET", "/v1/vectors/index")
    t.check(st == 200 and [i["name"] for i in body["indexes"]] == ["people"],
            "GET /v1/vectors/index lists it", (st, body))

    items = [{"id": k, "vector": v, "metadata": {"text": TEXTS[k]}} for k, v in vectors.items()]
    st, body = call("POST", "/v1/vectors/index/people/add", {"items": items})
    t.check(st == 200 and body["count"] == 3, "add 3 vectors", (st, body))
    st, body = call("POST", "/v1/vectors/index/people/add",
                    {"items": [{"id": "bad", "vector": [1.0, 2.0]}]})
    t.check(st == 400 and "error" in body, "a dim mismatch is 400", (st, body))

    st, body = call("POST", "/v1/embed", {"texts": ["forklift operator, OSHA certified, night shift in Toledo"]})
    query = body["vectors"][0]
    st, body = call("POST", "/v1/vectors/index/people/search", {"vector": query, "k": 3})
    t.check(st == 200 and len(body) == 3 and body[0]["id"] == "w1",
            "the near-duplicate ranks first", (st, body and [x["id"] for x in body]))
    t.check(body[0]["metadata"]["text"] == TEXTS["w1"], "metadata comes back with the hit")

    st, body = call("POST", "/v1/vectors/index/people/delete", {"ids": ["w1"]})
    t.check(st == 200 and body["count"] == 2, "delete by id", (st, body))
    st, body = call("POST", "/v1/vectors/index/people/search", {"vector": query, "k": 3})
    t.check(st == 200 and "w1" not in [x["id"] for x in body], "a deleted id is not found", body)

    st, body = call("GET", "/v1/vectors/index/people")
    t.check(st == 200 and body["count"] == 2 and body["dim"] == 768, "GET info", (st, body))
    st, body = call("DELETE", "/v1/vectors/index/people")
    t.check(st == 200, "DELETE drops the index", (st, body))
    st, body = call("GET", "/v1/vectors/index/people")
    t.check(st == 404 and body["error"]["kind"], "a dropped index is 404", (st, body))
    st, body = call("POST", "/v1/vectors/index/nosuch/search", {"vector": query, "k": 1})
    t.check(st == 404, "search of a missing index is 404", (st, body))

    st, before = call("GET", "/v1/embed/stats")
    call("POST", "/v1/embed", {"texts": [TEXTS["w2"]]})
    st, after = call("GET", "/v1/embed/stats")
    t.check(st == 200 and after["hits"] == before["hits"] + 1,
            "GET /v1/embed/stats counts a cache hit", (before, after))
    st, body = call("POST", "/v1/embed", {"texts": [""]})
    t.check(st == 400, "an empty text is 400", (st, body))


if __name__ == "__main__":
    lhtest.run(main)
