"""otlp_collector - an OpenTelemetry collector double for the tests.

Accepts what an OTLP/HTTP JSON exporter sends and records it:

    POST /v1/traces     ExportTraceServiceRequest as JSON -> 200 {}
                        (anything else, or a body that is not such JSON,
                        is recorded as a bad request and answered 400)

In a test:

    import otlp_collector
    col = otlp_collector.start()              # ephemeral port, daemon thread
    endpoint = col.url                        # trace/otlp_endpoint
    spans = col.spans()                       # every span received, flattened
    col.wait(lambda spans: ..., timeout=10)   # until a predicate holds
    col.posts()                               # [{"headers", "body"}] as received
    col.stop()

Each flattened span is the OTLP span dict plus "service" (its resource's
service.name) and "attrs" (attributes as a plain dict: stringValue as str,
intValue as int).

Or as a process: python3 tests/otlp_collector.py [--port N] prints
"otlp_collector ready on http://127.0.0.1:PORT" and the spans it receives,
one JSON line each.
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _value(value):
    """An OTLP AnyValue as a Python value."""
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "boolValue" in value:
        return value["boolValue"]
    if "doubleValue" in value:
        return value["doubleValue"]
    return value


def flatten(request):
    """The spans of an ExportTraceServiceRequest, each with service and attrs."""
    out = []
    for resource_spans in request["resourceSpans"]:
        attrs = {a["key"]: _value(a["value"])
                 for a in resource_spans.get("resource", {}).get("attributes", [])}
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                flat = dict(span)
                flat["service"] = attrs.get("service.name")
                flat["resource"] = attrs
                flat["attrs"] = {a["key"]: _value(a["value"])
                                 for a in span.get("attributes", [])}
                out.append(flat)
    return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):          # quiet
        pass

    def _answer(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        size = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(size) if size else b""
        collector = self.server.collector
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            if self.path != "/v1/traces":
                raise ValueError("no such path %s" % self.path)
            if not headers.get("content-type", "").startswith("application/json"):
                raise ValueError("not JSON: %s" % headers.get("content-type"))
            request = json.loads(body)
            spans = flatten(request)
        except (ValueError, KeyError, TypeError) as error:
            with collector.cond:
                collector.bad.append({"path": self.path, "error": str(error), "body": body[:200]})
                collector.cond.notify_all()
            self._answer(400, {"error": str(error)})
            return
        with collector.cond:
            collector.received.append({"headers": headers, "body": request})
            collector.flat.extend(spans)
            collector.cond.notify_all()
        if collector.echo:
            for span in spans:
                print(json.dumps(span), flush=True)
        self._answer(200, {})


class Collector:
    """A running collector double."""

    def __init__(self, port=0, echo=False):
        self.cond = threading.Condition()
        self.received = []
        self.flat = []
        self.bad = []
        self.echo = echo
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.server.collector = self
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def spans(self):
        with self.cond:
            return list(self.flat)

    def posts(self):
        with self.cond:
            return list(self.received)

    def bad_requests(self):
        with self.cond:
            return list(self.bad)

    def wait(self, predicate, timeout=10.0):
        """Wait until predicate(spans) is true; returns the spans then, or
        None after timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                spans = list(self.flat)
                if predicate(spans):
                    return spans
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def reset(self):
        with self.cond:
            self.received = []
            self.flat = []
            self.bad = []

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def start(port=0):
    return Collector(port)


def main(argv):
    port = 0
    if len(argv) >= 3 and argv[1] == "--port":
        port = int(argv[2])
    collector = Collector(port, echo=True)
    print("otlp_collector ready on %s" % collector.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        collector.stop()


if __name__ == "__main__":
    main(sys.argv)
