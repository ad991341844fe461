"""A real OpenAI-compatible HTTP server for tests: POST /v1/chat/completions on 127.0.0.1.

The test programs what it answers, either as a queue of replies (consumed in order) or
as a function of the request body (used once the queue is empty). A reply is a text
answer, an HTTP error, or a slow answer. The server records every request it received
(lower-cased headers and JSON body), so tests can check what the client really sent.
Stdlib only: `http.server` in a daemon thread; nothing in the client is patched.

A test module gets a fresh server per test with a fixture around `running_stub()`.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    """What the server does with one request: wait `delay` s, then answer `text` or `status`."""

    text: str = ""
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # sent as the whole body (with a JSON content type) instead


def raw(body: bytes) -> Reply:
    return Reply(raw=body)


def ok(text: str) -> Reply:
    return Reply(text=text)


def error(status: int, retry_after: float | None = None) -> Reply:
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    return Reply(status=status, headers=headers)


def slow(delay: float, text: str = "{}") -> Reply:
    return Reply(text=text, delay=delay)


@dataclass
class Received:
    headers: dict[str, str]
    body: dict

    @property
    def prompt(self) -> str:
        """Every message content of the request, joined (what the model was shown)."""
        return "\n".join(m["content"] for m in self.body["messages"])


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default 5 drops bursts of concurrent connections


class StubServer:
    """The programmable server. `url` is the base URL a client should use (ends in /v1)."""

    def __init__(self) -> None:
        self.queue: deque[Reply] = deque()
        self.respond: Callable[[dict], Reply] = lambda body: ok("{}")
        self.received: list[Received] = []
        self.in_flight = 0  # requests received and not yet answered
        self.max_in_flight = 0  # the most requests it held at once
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._http = _HTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._http.server_port}/v1"

    def script(self, *replies: Reply) -> None:
        self.queue.extend(replies)

    @property
    def count(self) -> int:
        return len(self.received)

    def _next(self, headers: dict[str, str], body: dict) -> Reply:
        with self._lock:
            self.received.append(Received(headers, body))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return self.queue.popleft() if self.queue else self.respond(body)

    def _done(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                reply = stub._next({k.lower(): v for k, v in self.headers.items()}, body)
                stopping = stub._stopping.wait(reply.delay)
                # counted as answered BEFORE the answer leaves: the client may send its
                # next request as soon as it reads this one, and that is not an overlap
                stub._done()
                if stopping:
                    return
                if reply.status != 200:
                    msg = {"error": {"message": f"stub error {reply.status}", "type": "stub"}}
                    self._send(reply.status, msg, reply.headers)
                    return
                if reply.raw is not None:
                    self._send(200, reply.raw, reply.headers)
                    return
                self._send(200, _chat_response(body, reply.text), reply.headers)

            def _send(
                self, status: int, payload: dict | bytes, headers: dict | None = None
            ) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): expected in tests

            def log_message(self, *args: object) -> None:
                pass  # keep test output clean

        return Handler

    def start(self) -> None:
        threading.Thread(target=self._http.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()  # release slow replies still sleeping
        self._http.shutdown()
        self._http.server_close()


def _chat_response(body: dict, text: str) -> dict:
    prompt_words = sum(len(m["content"].split()) for m in body.get("messages", []))
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", "stub"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_words,
            "completion_tokens": len(text.split()),
            "total_tokens": prompt_words + len(text.split()),
        },
    }


@contextmanager
def running_stub() -> Iterator[StubServer]:
    server = StubServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
