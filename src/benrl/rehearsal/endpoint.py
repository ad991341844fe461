"""A stand-in OpenAI-compatible endpoint for rehearsals: judge and scenario writer, on loopback.

A rehearsal must exercise every request a real run sends (scenario writing, per-criterion
and whole-rubric grading, the generic-helpfulness grader) without a model server. This
server answers `POST /v1/chat/completions` on 127.0.0.1 with replies in exactly the shape
benrl's clients parse:

- a scenario-writer request gets a valid scenario (a user turn of pseudo-random words,
  so no two scenarios are near-duplicates, and a 3-criterion rubric);
- a grading request gets `{"reason", "verdict"}` per criterion (or one entry per
  criterion id), the verdict a hash of the request, so scores vary between completions
  as a real judge's do (GRPO needs reward variance) and repeat for the same input.

Its verdicts mean nothing; it exists to test plumbing. Stdlib only, one daemon thread.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from benrl.data.scenarios_llm import SYSTEM as WRITER_SYSTEM

WORDS = " ".join(
    (
        "river table garden letter window budget doctor engine morning pattern",
        "signal market harbor lesson ticket planet forest county bridge column",
        "kettle meadow rocket summit velvet violin wallet yellow zipper anchor",
        "basket candle desert falcon glacier hammer island jacket ladder magnet",
        "needle orchard parrot quartz saddle tunnel umbrella valley",
    )
).split(" ")
CRITERION_ID = re.compile(r"^\[([^\]\s]+)\] ", re.MULTILINE)


def _rng(text: str) -> random.Random:
    return random.Random(hashlib.sha256(text.encode()).hexdigest())


def scenario_reply(prompt: str) -> str:
    """A valid scenario for the writer's request (deterministic in the request)."""
    rng = _rng(prompt)
    words = " ".join(rng.choice(WORDS) for _ in range(24))
    scenario = {
        "messages": [{"role": "user", "content": f"Please help me with this: {words}?"}],
        "rubric": [
            {"id": "c1", "text": "Answer the user's question directly.", "weight": 1},
            {"id": "c2", "text": "State any uncertainty plainly.", "weight": 1},
            {"id": "c3", "text": "Do not invent facts.", "weight": -1},
        ],
        "reference": {},
    }
    return json.dumps(scenario)


def grading_reply(prompt: str) -> str:
    """A verdict per criterion, as `openai_judge` asks for, hashed from the request."""
    verdict = lambda key: "met" if _rng(key).random() < 0.5 else "not_met"  # noqa: E731
    if "## Criteria\n" in prompt:  # whole_rubric: one entry per criterion id
        section = prompt.split("## Criteria\n", 1)[1]
        ids = CRITERION_ID.findall(section.split("## Your answer", 1)[0])
        return json.dumps(
            {cid: {"reason": "stand-in", "verdict": verdict(prompt + cid)} for cid in ids}
        )
    return json.dumps({"reason": "stand-in", "verdict": verdict(prompt)})


def reply(body: dict) -> str:
    messages = body.get("messages", [])
    system = next((m["content"] for m in messages if m["role"] == "system"), "")
    prompt = "\n".join(m["content"] for m in messages)
    if system == WRITER_SYSTEM:
        return scenario_reply(prompt)
    if "grader" in system:
        return grading_reply(prompt)
    return "stand-in reply"


def _completion(body: dict, text: str) -> dict:
    return {
        "id": "chatcmpl-standin",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", "standin"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if not self.path.endswith("/chat/completions"):
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        self._send(200, _completion(body, reply(body)))

    def do_GET(self) -> None:  # /v1/models: what a reachability check asks
        self._send(200, {"object": "list", "data": [{"id": "standin", "object": "model"}]})

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass  # quiet: the rehearsal prints its own progress


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # bursts of concurrent judge requests


@contextmanager
def standin_endpoint() -> Iterator[str]:
    """Serve the stand-in on 127.0.0.1 (a free port); yields its base URL (ending in /v1)."""
    server = _Server(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1"
    finally:
        server.shutdown()
        server.server_close()
