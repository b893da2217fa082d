"""A local transformers model folder, with an optional peft adapter, generating in batches.

Episodes ask for completions one at a time; requests that arrive together are gathered into one batched
`generate` call (left-padded), run in a worker thread so the event loop keeps serving other episodes.
torch, transformers and peft are imported only when the model is first used.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from ...errors import PrerequisiteError, missing_package
from ..prompts import Prompt
from . import Completion, ModelError


class LocalModel:
    name = "local"

    def __init__(self, model_dir: str, adapter: str | None = None, model: str | None = None, batch_size: int = 8,
                 prompt_format: str = "text", gather_s: float = 0.02, **_: object):
        for label, folder in (("model", model_dir), ("adapter", adapter)):
            if folder and not Path(folder).is_dir():
                raise PrerequisiteError(f"{label} folder {folder} does not exist; give the folder that holds "
                                        "config.json (or adapter_config.json)")
        self.model_dir, self.adapter = model_dir, adapter
        self.model = model or Path(model_dir).name + (f"+{Path(adapter).name}" if adapter else "")
        self.batch_size, self.prompt_format, self.gather_s = max(1, batch_size), prompt_format, gather_s
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        self._loaded: tuple[Any, Any] | None = None
        self._load_lock = threading.Lock()
        self.batches: list[int] = []

    def load(self) -> tuple[Any, Any]:
        with self._load_lock:
            if self._loaded is None:
                self._loaded = _load(self.model_dir, self.adapter)
        return self._loaded

    async def complete(self, prompt: Prompt, temperature: float, max_tokens: int) -> Completion:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._worker = asyncio.create_task(self._serve())
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((prompt, temperature, max_tokens, future))
        return await future

    async def _serve(self) -> None:
        queue = self._queue
        if queue is None:
            return
        while True:
            batch = [await queue.get()]
            deadline = time.monotonic() + self.gather_s
            while len(batch) < self.batch_size:
                try:
                    batch.append(await asyncio.wait_for(queue.get(), max(0.0, deadline - time.monotonic())))
                except asyncio.TimeoutError:
                    break
            live = [b for b in batch if not b[3].done()]
            if not live:
                continue
            self.batches.append(len(live))
            try:
                results = await asyncio.to_thread(self._generate, live)
            except Exception as exc:  # noqa: BLE001 - every waiting episode learns what went wrong
                for *_, fut in live:
                    if not fut.done():
                        fut.set_exception(ModelError(f"local model {self.model_dir}: {type(exc).__name__}: {exc}"))
                continue
            for (*_, fut), result in zip(live, results):
                if not fut.done():
                    fut.set_result(result)

    def _render(self, tok: Any, prompt: Prompt) -> str:
        if self.prompt_format == "chat" and getattr(tok, "chat_template", None):
            return tok.apply_chat_template(prompt.messages, tokenize=False, add_generation_prompt=True)
        return prompt.text

    def _generate(self, batch: list[tuple]) -> list[Completion]:
        import torch

        model, tok = self.load()
        start = time.perf_counter()
        texts = [self._render(tok, p) for p, *_ in batch]
        temperature, max_new = batch[0][1], max(b[2] for b in batch)
        limit = max(8, (getattr(model.config, "max_position_embeddings", 2048) or 2048) - max_new)
        enc = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=limit)
        kwargs: dict[str, Any] = {"max_new_tokens": max_new, "pad_token_id": tok.pad_token_id}
        kwargs.update({"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False})
        with torch.no_grad():
            out = model.generate(**enc, **kwargs)
        latency = time.perf_counter() - start
        width = enc["input_ids"].shape[1]
        results = []
        for i, (prompt, *_rest) in enumerate(batch):
            new = out[i, width:]
            n_out = int((new != tok.pad_token_id).sum()) if tok.pad_token_id is not None else len(new)
            text = _cut(tok.decode(new, skip_special_tokens=True), prompt.stop or [])
            results.append(Completion(text=text, tokens_in=int(enc["attention_mask"][i].sum()), tokens_out=n_out,
                                      latency_s=latency))
        return results

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()


def _cut(text: str, stops: list[str]) -> str:
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=len(text))
    return text[:cut].strip()


def _load(model_dir: str, adapter: str | None) -> tuple[Any, Any]:
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise missing_package("transformers", "train") from None
    tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model: Any = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
    if adapter:
        try:
            from peft import PeftModel
        except ImportError:
            raise missing_package("peft", "train") from None
        model = PeftModel.from_pretrained(model, adapter)
    model.eval()
    return model, tok
