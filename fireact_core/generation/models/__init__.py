"""Model backends, looked up by name: "openai" (any OpenAI-compatible chat endpoint) and "local" (a transformers
model folder with an optional peft adapter). Each backend is imported only when it is made.

A backend answers `await complete(prompt, temperature, max_tokens)` with a `Completion`. Errors worth trying
again (429, 5xx, timeouts, a response that is not JSON) are `TransientError`; anything else is `ModelError`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Protocol

from ...errors import FireactError, NotFoundError
from ..prompts import Prompt

BACKENDS = {"openai": "openai_chat:OpenAIChat", "local": "local:LocalModel"}


@dataclass
class Completion:
    text: str
    tokens_in: int
    tokens_out: int
    latency_s: float


class ModelError(FireactError):
    """The model endpoint refused or failed in a way that trying again will not fix."""


class TransientError(ModelError):
    """A failure worth another try after a pause (rate limit, server error, timeout, garbled response).
    `kind` is "rate_limit", "timeout", "server" or "garbled"; `retry_after` the pause the server asked for."""

    def __init__(self, message: str, kind: str = "server", retry_after: float | None = None):
        super().__init__(message)
        self.kind, self.retry_after = kind, retry_after


class Backend(Protocol):
    name: str
    model: str

    async def complete(self, prompt: Prompt, temperature: float, max_tokens: int) -> Completion: ...

    async def aclose(self) -> None: ...


def make_backend(kind: str, **options: Any) -> Backend:
    """The backend registered as `kind`, built with `options` (model, base_url, api_key, model_dir, adapter...)."""
    if kind not in BACKENDS:
        raise NotFoundError(f"unknown model backend '{kind}'; backends: {', '.join(BACKENDS)}")
    module_name, class_name = BACKENDS[kind].split(":")
    module = importlib.import_module(f"{__name__}.{module_name}")
    return getattr(module, class_name)(**options)


__all__ = ["Backend", "Completion", "ModelError", "TransientError", "make_backend", "BACKENDS"]
