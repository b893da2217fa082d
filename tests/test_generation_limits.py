"""The limits around model calls against stand-in endpoints on 127.0.0.1: a 429's Retry-After is the pause
taken before the next try, a timeout halves adaptive concurrency like a 429, and `--rpm` paces an adaptive run."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from fireact_core.generation.engine import RunConfig, run_generation
from fireact_core.generation.models import ModelError
from fireact_core.generation.models.limits import CallLimits
from fireact_core.generation.models.openai_chat import OpenAIChat
from fireact_core.generation.prompts import Prompt
from tests.fakes.http import QuietHandler, send_json, serve
from tests.fakes.openai_server import FakeOpenAI

ROOT = Path(__file__).resolve().parents[1]
TASKS = ROOT.parent / "shared" / "fireact" / "tasks"
PROMPT = Prompt(text="Question: x\n", messages=[{"role": "user", "content": "Question: x"}], stop=None)
COMPLETION = {"choices": [{"message": {"role": "assistant", "content": "Thought: ok\nAction: finish[x]"}}],
              "usage": {"prompt_tokens": 3, "completion_tokens": 5}}


class Refusing:
    """Answers the first `refusals` requests 429 with the given headers, the rest with a completion."""

    def __init__(self, refusals: int, headers: dict[str, str]):
        self.refusals, self.headers, self.seen = refusals, headers, 0
        self.lock = threading.Lock()
        fake = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with fake.lock:
                    fake.seen += 1
                    refuse = fake.seen <= fake.refusals
                if refuse:
                    send_json(self, 429, {"error": {"message": "slow down"}}, fake.headers)
                else:
                    send_json(self, 200, COMPLETION)

        self.server = serve(Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def pauses(monkeypatch) -> list[float]:
    """The pauses the limits take between tries (taken as no pause at all, so nothing here waits on a clock)."""
    import fireact_core.generation.models.limits as limits

    taken: list[float] = []
    real_sleep = asyncio.sleep

    async def pause(delay: float, *args: Any) -> None:
        taken.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(limits.asyncio, "sleep", pause)
    return taken


def complete_once(backend: OpenAIChat, limits: CallLimits) -> str:
    async def go() -> str:
        try:
            return (await limits.call(lambda: backend.complete(PROMPT, 0.0, 50))).text
        finally:
            await backend.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("headers,asked", [({"Retry-After": "7"}, 7.0), ({"retry-after-ms": "250"}, 0.25),
                                            ({}, None)])
def test_a_429_waits_what_the_server_asks_and_halves_concurrency(pauses, headers, asked):
    server = Refusing(2, headers)
    try:
        limits = CallLimits(max_retries=4, backoff_s=1.0)
        assert complete_once(OpenAIChat("m", base_url=server.url, api_key="k"), limits) == \
            "Thought: ok\nAction: finish[x]"
    finally:
        server.stop()
    assert server.seen == 3 and limits.stats == {"calls": 3, "retries": 2}
    if asked is not None:
        assert pauses == [asked, asked]
    else:  # exponential backoff with jitter: half to all of 1 s, then of 2 s
        assert 0.5 <= pauses[0] <= 1.0 and 1.0 <= pauses[1] <= 2.0
    # the second 429 answered a call started after the first cut: two back-offs, 32 -> 16 -> 8, then the answer
    # adds one per round trip (1/8)
    assert (limits.window.backoffs, limits.window.limit) == (2, 8.125)


def test_a_timeout_backs_off_like_a_429_and_ends_in_an_error_after_the_retries(pauses):
    server = FakeOpenAI(latency=(5.0, 5.0))
    url = server.start()
    try:
        limits = CallLimits(max_retries=1, backoff_s=0.0)
        with pytest.raises(ModelError, match=r"gave up after 2 tries: request timed out after 0.2 s"):
            complete_once(OpenAIChat("m", base_url=url, api_key="k", timeout=0.2), limits)
    finally:
        server.stop()
    assert (limits.window.backoffs, limits.window.limit, limits.window.in_flight) == (2, 8.0, 0)


class Stamping(FakeOpenAI):
    """Notes when each request arrives (the monotonic clock is shared with the test's process)."""

    def __init__(self, **kw: Any):
        super().__init__(**kw)
        self.arrivals: list[float] = []

    def answer(self, path: str, body: bytes) -> tuple[int, bytes, float]:
        with self.lock:
            self.arrivals.append(time.monotonic())
        return super().answer(path, body)


def test_requests_per_minute_pace_an_adaptive_run(store, llm):
    server = llm(Stamping())
    cfg = RunConfig(run="paced", task="hotpotqa", split="dev", tasks_dir=str(TASKS), end=4, search="none", rpm=300,
                    poll_s=0.1)
    began = time.monotonic()
    run = run_generation(store, cfg)
    assert (run.status, run.attempted, run.failed) == ("finished", 4, 0)
    assert server.calls == 8  # a search, then an answer, for each question
    # request starts 0.2 s apart at least: the eighth cannot arrive before 7 x 0.2 s after the run began
    assert max(server.arrivals) - began >= 1.4
    [event] = [e.message for e in store.run_events("paced") if e.kind == "concurrency"]
    assert "adaptive from 32" in event and "0 back-offs" in event
    assert run.settings["rpm"] == 300
