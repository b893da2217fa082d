"""An OpenAI-compatible chat-completions server on 127.0.0.1, in a thread, scripted per question.

    server = FakeOpenAI(script={"Who ...?": ["Thought: ...\\nAction: search[...]", "Thought: ...\\nAction: finish[X]"]})
    base_url = server.start()          # http://127.0.0.1:PORT/v1
    ...
    server.stop()

The reply to a request is picked by the question (the first user message) and by how many model turns the
conversation already holds, so a retried request gets the same reply. A reflection request (its last user
message asks to reflect) gets `reflections[question]`. Questions without a script go to `policy`.
Questions in `broken` are always answered 500. With `capacity`, a request that arrives while `capacity` others are
being answered gets 429 with Retry-After 0 (`max_in_flight` is the most answered at once). Faults: with probability `fault_rate` a request is answered
429, 500, with a body that is not JSON ("garbage"), or only after `slow_s` seconds ("slow"); `latency` adds
a random delay to every answer.
"""

from __future__ import annotations

import json
import random
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Callable

from tests.fakes.http import QuietHandler, send_json, serve

Policy = Callable[[str, list[dict], bool], str]
REFLECT_MARK = "reflect on what went wrong"


def default_policy(question: str, messages: list[dict], reflect: bool) -> str:
    """Search once, then answer "unknown"."""
    if reflect:
        return "I should search for the key entity first."
    turns = sum(1 for m in messages if m["role"] == "assistant")
    if turns == 0:
        return f"Thought: I need to search for this.\nAction: search[{question[:40]}]"
    return "Thought: I have what I need.\nAction: finish[unknown]"


def approx_tokens(text: str) -> int:
    return max(1, len(text) // 4)


class FakeOpenAI:
    def __init__(self, script: dict[str, list[str]] | None = None, reflections: dict[str, str] | None = None,
                 policy: Policy = default_policy, fault_rate: float = 0.0,
                 faults: tuple[str, ...] = ("429", "500", "garbage", "slow"), slow_s: float = 2.0,
                 latency: tuple[float, float] = (0.0, 0.0), seed: int = 0, broken: set[str] | None = None,
                 capacity: int | None = None):
        self.broken = set(broken or ())
        self.capacity, self.in_flight, self.max_in_flight, self.refused = capacity, 0, 0, 0
        self.script, self.reflections, self.policy = script or {}, reflections or {}, policy
        self.fault_rate, self.faults, self.slow_s, self.latency = fault_rate, faults, slow_s, latency
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.log: list[tuple[str, dict]] = []  # (path, body) of every request, in arrival order
        self.faults_sent: dict[str, int] = {}
        self.auth: set[str] = set()
        self.server: ThreadingHTTPServer | None = None

    # public -----------------------------------------------------------------------------------------------
    def start(self) -> str:
        fake = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fake.auth.add(self.headers.get("Authorization", ""))
                if not fake.admit():
                    send_json(self, 429, {"error": {"message": "Too many requests at once"}}, {"Retry-After": "0"})
                    return
                try:
                    status, payload, delay = fake.answer(self.path, body)
                    time.sleep(delay)
                finally:
                    with fake.lock:
                        fake.in_flight -= 1
                send_json(self, status, payload)

        self.server = serve(Handler)
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def admit(self) -> bool:
        with self.lock:
            if self.capacity is not None and self.in_flight >= self.capacity:
                self.refused += 1
                return False
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return True

    @property
    def calls(self) -> int:
        return len(self.requests)

    # replies ----------------------------------------------------------------------------------------------
    def reply_text(self, messages: list[dict]) -> str:
        question = next(m["content"] for m in messages if m["role"] == "user")
        reflect = REFLECT_MARK in messages[-1]["content"] and messages[-1]["role"] == "user"
        if reflect and question in self.reflections:
            return self.reflections[question]
        if question in self.script and not reflect:
            turns = [m for m in messages if m["role"] == "assistant" and "let me do a reflection" not in m["content"]]
            replies = self.script[question]
            return replies[min(len(turns), len(replies) - 1)]
        return self.policy(question, messages, reflect)

    def answer(self, path: str, body: bytes) -> tuple[int, bytes, float]:
        with self.lock:
            fault = self.rng.choice(self.faults) if self.rng.random() < self.fault_rate else None
            delay = self.rng.uniform(*self.latency)
            if fault:
                self.faults_sent[fault] = self.faults_sent.get(fault, 0) + 1
        if not path.endswith("/chat/completions"):
            return 404, b'{"error": {"message": "not found"}}', 0.0
        request = json.loads(body)
        with self.lock:
            self.requests.append(request)
            self.log.append((path, request))
        if next(m["content"] for m in request["messages"] if m["role"] == "user") in self.broken:
            fault = "500"
        if fault == "429":
            return 429, b'{"error": {"message": "Rate limit reached", "type": "rate_limit_error"}}', delay
        if fault == "500":
            return 500, b'{"error": {"message": "The server had an error", "type": "server_error"}}', delay
        if fault == "garbage":
            return 200, b"<html>upstream returned garbage \x00\x01", delay
        if fault == "slow":
            delay = self.slow_s
        return 200, self._completion(request), delay

    def _completion(self, request: dict) -> bytes:
        text = self.reply_text(request["messages"])
        for stop in request.get("stop") or []:
            if stop in text:
                text = text[:text.index(stop)]
        prompt = sum(approx_tokens(m["content"]) for m in request["messages"])
        out = {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": request["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": approx_tokens(text),
                      "total_tokens": prompt + approx_tokens(text)},
        }
        return json.dumps(out).encode()

