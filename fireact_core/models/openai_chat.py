"""Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, llama.cpp server...) through the
`openai` package. `OPENAI_BASE_URL` and `OPENAI_API_KEY` are honoured when no base URL or key is given.
The client's own retries are off: the engine retries with backoff under its concurrency and rate limits."""

from __future__ import annotations

import json
import os
import time

from ..errors import missing_package
from ..prompts import Prompt
from . import Completion, ModelError, TransientError


class OpenAIChat:
    name = "openai"

    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None, timeout: float = 60.0,
                 top_p: float = 1.0, **_: object):
        try:
            from openai import AsyncOpenAI
        except ImportError:
            raise missing_package("openai") from None
        self.model, self.top_p = model, top_p
        self._secret = api_key or os.environ.get("OPENAI_API_KEY") or ""
        self.client = AsyncOpenAI(base_url=base_url or os.environ.get("OPENAI_BASE_URL") or None,
                                  api_key=self._secret or "not-needed", timeout=timeout, max_retries=0)

    async def complete(self, prompt: Prompt, temperature: float, max_tokens: int) -> Completion:
        import openai

        from openai.types.chat import ChatCompletion

        # FireAct's request: these keys in this order, "stop" null when there is none
        body = {"model": self.model, "messages": prompt.messages, "temperature": temperature,
                "max_tokens": max_tokens, "top_p": int(self.top_p) if float(self.top_p).is_integer() else self.top_p,
                "stop": prompt.stop[:4] if prompt.stop else None}
        start = time.perf_counter()
        try:
            # The client's generic `post` (its documented way to send a request as is) rather than
            # `chat.completions.create`, whose type-directed walk over the messages costs ~30 ms of CPU a call.
            resp = await self.client.post("/chat/completions", cast_to=ChatCompletion, body=body)
        except (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError,
                openai.APIConnectionError) as exc:
            raise TransientError(self._describe(exc)) from None
        except openai.APIStatusError as exc:
            if exc.status_code >= 500 or exc.status_code in (408, 409, 429):
                raise TransientError(self._describe(exc)) from None
            raise ModelError(self._describe(exc)) from None
        except (openai.APIResponseValidationError, json.JSONDecodeError, ValueError) as exc:
            raise TransientError(f"unreadable response from the model endpoint: {self._scrub(str(exc))[:200]}") from None
        return self._completion(resp, time.perf_counter() - start)

    def _completion(self, resp: object, latency: float) -> Completion:
        try:
            text = resp.choices[0].message.content or ""
        except (AttributeError, IndexError, TypeError):
            raise TransientError("the model endpoint answered without a message") from None
        usage = getattr(resp, "usage", None)
        tokens_in = getattr(usage, "prompt_tokens", None) or 0
        tokens_out = getattr(usage, "completion_tokens", None) or 0
        return Completion(text=text, tokens_in=int(tokens_in), tokens_out=int(tokens_out), latency_s=latency)

    def _describe(self, exc: Exception) -> str:
        status = getattr(exc, "status_code", None)
        head = f"HTTP {status}" if status else type(exc).__name__
        return self._scrub(f"{head} from {self.client.base_url}: {exc}")[:300]

    def _scrub(self, text: str) -> str:
        """Error texts never carry the key, even when a server echoes it."""
        return text.replace(self._secret, "***") if len(self._secret) >= 8 else text

    async def aclose(self) -> None:
        await self.client.close()
