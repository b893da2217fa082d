"""Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, llama.cpp server...), spoken to
directly over HTTP (`models/http.py`: no openai package to import, little CPU per request).
`OPENAI_BASE_URL` and `OPENAI_API_KEY` are honoured when no base URL or key is given. There are no client
retries: the engine retries with backoff under its concurrency and rate limits."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable

from ..prompts import Prompt
from . import Completion, ModelError, TransientError
from .http import JSONClient, Response

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIChat:
    name = "openai"

    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None, timeout: float = 60.0,
                 top_p: float = 1.0, **_: object):
        self.model, self.top_p = model, top_p
        self._secret = api_key or os.environ.get("OPENAI_API_KEY") or ""
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        auth = {"Authorization": f"Bearer {self._secret or 'not-needed'}"}
        try:
            self.client = JSONClient(self.base_url, auth, timeout)
        except ValueError as exc:
            raise ModelError(f"--base-url: {exc}") from None

    async def complete(self, prompt: Prompt, temperature: float, max_tokens: int) -> Completion:
        # FireAct's request: these keys in this order, "stop" null when there is none
        body = {"model": self.model, "messages": prompt.messages, "temperature": temperature,
                "max_tokens": max_tokens, "top_p": int(self.top_p) if float(self.top_p).is_integer() else self.top_p,
                "stop": prompt.stop[:4] if prompt.stop else None}
        start = time.perf_counter()
        try:
            resp = await self.client.post("/chat/completions", body)
        except asyncio.TimeoutError:
            raise TransientError(f"request timed out after {self.client.timeout:g} s ({self.base_url})",
                                 "timeout") from None
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            raise TransientError(self._scrub(f"connection error ({self.base_url}): {type(exc).__name__}: {exc}"),
                                 "server") from None
        if resp.status != 200:
            self._raise(resp)
        return self._completion(resp, time.perf_counter() - start)

    def notify_sent(self, callback: Callable[[], None]) -> None:
        """Call `callback` once, when the first request has been written to the connection (or failed)."""
        self.client.on_sent = callback

    def _raise(self, resp: Response) -> None:
        detail = resp.body[:300].decode("utf-8", "replace")
        try:
            error = json.loads(resp.body).get("error")
            detail = (error.get("message") if isinstance(error, dict) else str(error)) or detail
        except (ValueError, AttributeError):
            pass
        message = self._scrub(f"HTTP {resp.status} from {self.base_url}: {detail}")[:300]
        retry_after = _retry_after(resp.headers)
        if resp.status in (408, 429):
            raise TransientError(message, "rate_limit" if resp.status == 429 else "timeout", retry_after)
        if resp.status >= 500 or resp.status == 409:
            raise TransientError(message, "server", retry_after)
        raise ModelError(message)

    def _completion(self, resp: Response, latency: float) -> Completion:
        try:
            data = json.loads(resp.body)
        except ValueError as exc:
            raise TransientError(f"unreadable response from the model endpoint: {self._scrub(str(exc))[:200]}",
                                 "garbled") from None
        try:
            text = data["choices"][0]["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise TransientError("the model endpoint answered without a message", "garbled") from None
        usage = data.get("usage") if isinstance(data, dict) else None
        usage = usage if isinstance(usage, dict) else {}
        return Completion(text=str(text), tokens_in=int(usage.get("prompt_tokens") or 0),
                          tokens_out=int(usage.get("completion_tokens") or 0), latency_s=latency)

    def _scrub(self, text: str) -> str:
        """Error texts never carry the key, even when a server echoes it."""
        return text.replace(self._secret, "***") if len(self._secret) >= 8 else text

    async def aclose(self) -> None:
        await self.client.aclose()


def _retry_after(headers: dict[str, str]) -> float | None:
    """The pause a server asks for (Retry-After seconds, or OpenAI's retry-after-ms), if any."""
    for key, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            value = float(headers.get(key) or "") * scale
        except (TypeError, ValueError):
            continue
        if 0 <= value <= 120:
            return value
    return None
