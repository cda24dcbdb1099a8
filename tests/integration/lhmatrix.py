"""lhmatrix - helpers for the matrixd tests.

    import lhmatrix
    call = lhmatrix.caller(h)                # h: a test_gateway_util Harness
    st, body = call("POST", "/v1/matrix/search", {...})
    e = call("POST", "/v1/embed", {"texts": [q]})[1]["vectors"][0]
    u = lhmatrix.orthogonal([e], 0)
    v = lhmatrix.mix(e, u, 0.30)              # cosine distance 0.30 from e

Vectors are plain lists of floats; the arithmetic is exact enough that
vectord's float32 distances come back within 1e-5 of the chosen ones.
"""

import http.client
import json
import math


def caller(h, timeout=60.0):
    """A function call(method, path, body=None) -> (status, parsed JSON)
    over one keep-alive connection to the harness h (reconnects once if
    the server closed it)."""
    state = {"conn": None}

    def call(method, path, body=None, headers=None):
        data = None if body is None else json.dumps(body).encode()
        hdrs = {"Content-Type": "application/json"} if data is not None else {}
        hdrs.update(headers or {})
        for attempt in range(2):
            if state["conn"] is None:
                state["conn"] = h.connection(timeout)
            try:
                state["conn"].request(method, path, body=data, headers=hdrs)
                resp = state["conn"].getresponse()
                raw = resp.read()
                return resp.status, (json.loads(raw) if raw else None)
            except (http.client.HTTPException, ConnectionError):
                state["conn"].close()
                state["conn"] = None
                if attempt:
                    raise
    return call


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def unit(v):
    n = math.sqrt(dot(v, v))
    return [x / n for x in v]


def orthogonal(others, axis):
    """The basis vector `axis` made orthogonal to the unit vectors in
    others, normalised."""
    v = [0.0] * len(others[0])
    v[axis] = 1.0
    for o in others:
        d = dot(v, o)
        v = [x - d * y for x, y in zip(v, o)]
    return unit(v)


def mix(e, u, distance):
    """The unit vector at cosine distance `distance` from unit e, turned
    towards u (a unit vector orthogonal to e)."""
    c = 1.0 - distance
    s = math.sqrt(max(0.0, 1.0 - c * c))
    return [c * x + s * y for x, y in zip(e, u)]


def order(body):
    """The hits of a matrix search reply as ["id@corpus", ...]."""
    return ["%s@%s" % (hit["id"], hit["corpus"]) for hit in body["hits"]]


def hit(body, ident, corpus):
    """The hit (id, corpus) of a reply and its rank, or (None, None)."""
    for rank, item in enumerate(body["hits"]):
        if item["id"] == ident and item["corpus"] == corpus:
            return item, rank
    return None, None
