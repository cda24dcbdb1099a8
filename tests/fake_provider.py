"""fake_provider - a fake LLM and embedding provider for the tests.

Speaks the wire formats chatd and embedd use, on any base path:

    POST .../api/chat              Ollama chat (whole, or NDJSON when streamed)
    POST .../chat/completions      OpenAI-compatible chat (whole, or SSE)
    POST .../api/embed             Ollama embeddings  {"model", "input"}
    POST .../embeddings            OpenAI embeddings  {"model", "input"}

Replies are scripted per model name (as received, after chatd stripped its
prefix), falling back to the "*" script, then to the default reply. A
script is a list of reply specs consumed in order; the last spec of a
script marked "repeat" stays. A reply spec is a dict:

    content        text of the answer ("fake reply")
    status         HTTP status (200); non-2xx answers an error body
    error          error message for a non-2xx status
    retry_after    value of a Retry-After header (seconds, str or number)
    delay_ms       wait this long before answering (slow provider)
    stream         true: answer streamed (NDJSON / SSE) in `chunks` pieces
    chunks         pieces of a streamed answer (3)
    finish_reason  "stop" (Ollama done_reason / OpenAI finish_reason)
    usage          [prompt_tokens, completion_tokens] ([7, 5])
    drop           true: close the connection without answering
    dim            embeddings: components per vector (8)
    garbage        embeddings: answer 200 with a body that is not JSON
    short          embeddings: answer one vector fewer than asked

Embedding scripts are keyed "embed:" + model.

Control endpoints (JSON):

    POST /_control/script    {"model": M|"*", "replies": [spec, ...], "repeat": bool}
    POST /_control/default   spec
    POST /_control/reset     forget scripts and recorded requests
    GET  /_control/requests  [{"method","path","headers","body"}] in arrival order
    POST /_control/down      {"down": true}: every provider route answers 503

In a test:

    import fake_provider
    fake = fake_provider.start()            # ephemeral port, daemon thread
    fake.script("llama3", [{"content": "{\"a\": 1}"}])
    url = fake.url + "/ollama"              # base URL for chatd
    ...
    fake.requests()                         # what chatd sent
    fake.stop()

Or as a process: python3 tests/fake_provider.py [--port N] prints
"fake_provider ready on http://127.0.0.1:PORT" and serves until killed.
"""

import hashlib
import json
import math
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_REPLY = {"content": "fake reply"}
EMBED_DIM = 8


class State:
    """Scripts, recorded requests and switches, shared by handler threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.scripts = {}           # model -> [spec, ...]
        self.repeat = {}            # model -> bool
        self.default = dict(DEFAULT_REPLY)
        self.recorded = []
        self.down = False

    def reset(self):
        with self.lock:
            self.scripts.clear()
            self.repeat.clear()
            self.default = dict(DEFAULT_REPLY)
            self.recorded = []
            self.down = False

    def next_reply(self, model):
        with self.lock:
            for key in (model, "*"):
                queue = self.scripts.get(key)
                if queue:
                    if len(queue) == 1 and self.repeat.get(key):
                        return dict(queue[0])
                    return dict(queue.pop(0))
            return dict(self.default)


def _vector(text, dim=EMBED_DIM):
    """A deterministic unit vector for a text."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    while len(digest) < dim * 4:
        digest += hashlib.sha256(digest).digest()
    values = [struct.unpack_from("<i", digest, 4 * i)[0] / 2.0 ** 31
              for i in range(dim)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake_provider/1"

    def log_message(self, format, *args):          # quiet
        pass

    #  ------------------------------------------------------------------
    #  Plumbing

    def _body(self):
        size = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(size) if size else b""
        try:
            return json.loads(raw.decode("utf-8")) if raw else None
        except ValueError:
            return {"_unparsed": raw.decode("utf-8", "replace")}

    def _send(self, status, payload, headers=None, content_type="application/json"):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, str(value))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, lines, content_type):
        """Chunked transfer of lines (bytes each), flushed one by one."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for line in lines:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    @property
    def state(self):
        return self.server.state

    #  ------------------------------------------------------------------
    #  Routes

    def do_GET(self):
        if self.path == "/_control/requests":
            with self.state.lock:
                self._send(200, list(self.state.recorded))
        elif self.path.endswith("/api/tags"):
            self._send(200, {"models": []})
        else:
            self._send(404, {"error": "no route " + self.path})

    def do_POST(self):
        body = self._body()
        path = self.path.split("?", 1)[0]
        if path.startswith("/_control/"):
            return self._control(path, body or {})
        with self.state.lock:
            self.state.recorded.append({
                "method": "POST", "path": path, "body": body,
                "headers": {k.lower(): v for k, v in self.headers.items()}})
            down = self.state.down
        if down:
            return self._send(503, {"error": "provider is down"})
        model = (body or {}).get("model", "") if isinstance(body, dict) else ""
        if path.endswith("/api/chat"):
            return self._chat(False, model, body)
        if path.endswith("/chat/completions"):
            return self._chat(True, model, body)
        if path.endswith("/api/embed"):
            return self._embed(False, model, body)
        if path.endswith("/embeddings"):
            return self._embed(True, model, body)
        self._send(404, {"error": "no route " + path})

    def _control(self, path, body):
        state = self.state
        if path == "/_control/script":
            with state.lock:
                state.scripts[body.get("model", "*")] = list(body.get("replies", []))
                state.repeat[body.get("model", "*")] = bool(body.get("repeat"))
        elif path == "/_control/default":
            with state.lock:
                state.default = dict(body)
        elif path == "/_control/reset":
            state.reset()
        elif path == "/_control/down":
            with state.lock:
                state.down = bool(body.get("down", True))
        else:
            return self._send(404, {"error": "no control " + path})
        self._send(200, {"ok": True})

    def _error(self, openai, spec):
        status = int(spec.get("status", 500))
        message = spec.get("error", "fake error %d" % status)
        headers = {}
        if "retry_after" in spec:
            headers["Retry-After"] = spec["retry_after"]
        payload = ({"error": {"message": message, "type": "fake", "code": status}}
                   if openai else {"error": message})
        self._send(status, payload, headers)

    def _chat(self, openai, model, body):
        spec = self.state.next_reply(model)
        if spec.get("delay_ms"):
            time.sleep(spec["delay_ms"] / 1000.0)
        if spec.get("drop"):
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if int(spec.get("status", 200)) >= 300:
            return self._error(openai, spec)
        content = spec.get("content", "fake reply")
        finish = spec.get("finish_reason", "stop")
        prompt_tokens, completion_tokens = spec.get("usage", [7, 5])
        streamed = spec.get("stream") or bool((body or {}).get("stream"))
        if not streamed:
            if openai:
                payload = {
                    "id": "chatcmpl-fake", "object": "chat.completion", "model": model,
                    "choices": [{"index": 0, "finish_reason": finish,
                                 "message": {"role": "assistant", "content": content}}],
                    "usage": {"prompt_tokens": prompt_tokens,
                              "completion_tokens": completion_tokens,
                              "total_tokens": prompt_tokens + completion_tokens}}
            else:
                payload = {
                    "model": model, "created_at": "2026-01-01T00:00:00Z",
                    "message": {"role": "assistant", "content": content},
                    "done": True, "done_reason": finish,
                    "prompt_eval_count": prompt_tokens, "eval_count": completion_tokens}
            return self._send(200, payload)
        pieces = max(1, int(spec.get("chunks", 3)))
        step = max(1, -(-len(content) // pieces))
        parts = [content[i:i + step] for i in range(0, len(content), step)] or [""]
        if openai:
            lines = [b"data: " + json.dumps({
                "choices": [{"index": 0, "delta": {"content": part}, "finish_reason": None}]
            }).encode() + b"\n\n" for part in parts]
            lines.append(b"data: " + json.dumps({
                "choices": [{"index": 0, "delta": {}, "finish_reason": finish}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
            }).encode() + b"\n\n")
            lines.append(b"data: [DONE]\n\n")
            return self._stream(lines, "text/event-stream")
        lines = [json.dumps({"model": model, "message": {"role": "assistant", "content": part},
                             "done": False}).encode() + b"\n" for part in parts]
        lines.append(json.dumps({"model": model, "message": {"role": "assistant", "content": ""},
                                 "done": True, "done_reason": finish,
                                 "prompt_eval_count": prompt_tokens,
                                 "eval_count": completion_tokens}).encode() + b"\n")
        self._stream(lines, "application/x-ndjson")

    def _drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _embed(self, openai, model, body):
        spec = self.state.next_reply("embed:" + model)
        if spec.get("delay_ms"):
            time.sleep(spec["delay_ms"] / 1000.0)
        if spec.get("drop"):
            return self._drop()
        if int(spec.get("status", 200)) >= 300:
            return self._error(openai, spec)
        if spec.get("garbage"):
            return self._send(200, b"this is not json", content_type="text/plain")
        texts = (body or {}).get("input", [])
        if isinstance(texts, str):
            texts = [texts]
        dim = int(spec.get("dim", EMBED_DIM))
        vectors = [_vector(t, dim) for t in texts]
        if spec.get("short"):
            vectors = vectors[:-1]
        if openai:
            return self._send(200, {
                "object": "list", "model": model,
                "data": [{"object": "embedding", "index": i, "embedding": v}
                         for i, v in enumerate(vectors)],
                "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)}})
        self._send(200, {"model": model, "embeddings": vectors})


class FakeProvider:
    """A running fake provider (server thread) and a small client for its
    control endpoints."""

    def __init__(self, port=0):
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.server.state = State()
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    #  Direct access (same process), no HTTP needed
    @property
    def state(self):
        return self.server.state

    def script(self, model, replies, repeat=False):
        with self.state.lock:
            self.state.scripts[model] = [dict(r) for r in replies]
            self.state.repeat[model] = repeat

    def set_default(self, spec):
        with self.state.lock:
            self.state.default = dict(spec)

    def set_down(self, down=True):
        with self.state.lock:
            self.state.down = down

    def requests(self, path_suffix=None):
        with self.state.lock:
            found = list(self.state.recorded)
        if path_suffix:
            found = [r for r in found if r["path"].endswith(path_suffix)]
        return found

    def reset(self):
        self.state.reset()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


def start(port=0):
    """Start a fake provider on 127.0.0.1 (ephemeral port by default)."""
    return FakeProvider(port)


def main(argv):
    port = 0
    if "--port" in argv:
        port = int(argv[argv.index("--port") + 1])
    fake = start(port)
    print("fake_provider ready on %s" % fake.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
