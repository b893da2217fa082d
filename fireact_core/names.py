"""Short display names for runs, sources and models, and which model names are fine-tuned.

FireAct names its evaluation runs `{task}_{split}_{start}_{end}_{model}_{temperature}_{time}` and its models by
backend and path: `llama_models_lora_llama-2-7b-d_1000` is a LoRA adapter on Llama-2-7B, `ft:gpt-3.5-turbo-0613:...`
(written `ft_gpt-3.5-turbo-0613_...` where a file name cannot hold a colon) is an OpenAI fine-tune. Generated runs
are named `{task}_{split}_{method}_{model}_{time}`. Tables show the short name and keep the full one beside it.
"""

from __future__ import annotations

import re

FIREACT_RUN = re.compile(
    r"^(?P<task>[a-z0-9]+)_(?P<split>[a-z0-9]+)_(?P<start>\d+)_(?P<end>\d+)_(?P<model>.+)_"
    r"(?P<temperature>\d+(?:\.\d+)?)_(?P<date>\d{4}-\d\d-\d\d)-\d\d-\d\d-\d\d(?:\.json)?$")
STUDIO_RUN = re.compile(
    r"^(?P<task>[a-z0-9]+)_(?P<split>[a-z0-9]+)_(?P<method>io|cot|react|reflexion)_(?P<model>.+)_"
    r"(?P<date>\d{4}-\d\d-\d\d)-\d\d-\d\d-\d\d$")
OPENAI_FT = re.compile(r"^ft[:_](?P<base>[^:_]+)(?:[:_](?P<rest>.*))?$")
LLAMA_PATH = re.compile(r"^llama_(?P<path>.+)$")
TUNED_WORDS = ("lora", "peft", "adapter", "finetune", "fine-tune", "fine_tune", "sft")
BASE_NAME = re.compile(r"^(?P<base>[a-z][a-z0-9.]*(?:-\d+(?:\.\d+)?)?-\d+(?:\.\d+)?[bm])(?:[-_].*)?$", re.I)
MAX_NAME = 48


def shorten(text: str, limit: int = MAX_NAME) -> str:
    """`text` cut in the middle with an ellipsis when longer than `limit`."""
    if len(text) <= limit:
        return text
    keep = (limit - 1) // 2
    return f"{text[:keep]}…{text[-(limit - 1 - keep):]}"


def _llama_tail(path: str) -> tuple[str, bool]:
    """The model folder of a FireAct `llama_` name (its path with '/' written '_') and whether it is an adapter
    or fine-tuned folder."""
    parts = path.split("_")
    tuned = any(p.lower() in TUNED_WORDS for p in parts)
    for i, part in enumerate(parts):
        if part.lower() in TUNED_WORDS or part.lower() in ("models", "model", "checkpoints", "output", "outputs"):
            continue
        return "_".join(parts[i:]), tuned
    return path, tuned


def finetuned_base(model: str | None) -> str | None:
    """The base model of a fine-tuned model name, or None when the name does not say it is fine-tuned."""
    if not model:
        return None
    m = OPENAI_FT.match(model)
    if m:
        return m["base"]
    m = LLAMA_PATH.match(model)
    if m:
        tail, tuned = _llama_tail(m["path"])
        if tuned:
            base = BASE_NAME.match(tail)
            return base["base"].lower() if base else tail
    return None


def display_model(model: str | None) -> str:
    """A model name as a person reads it: `llama-2-7b-d_1000 (LoRA)`, `gpt-3.5-turbo-0613 (fine-tuned)`."""
    if not model:
        return "—"
    m = OPENAI_FT.match(model)
    if m:
        rest = [p for p in re.split(r"[:_]", m["rest"] or "") if p]
        return f"{m['base']} (fine-tuned{' ' + rest[-1][-8:] if rest else ''})"
    m = LLAMA_PATH.match(model)
    if m:
        tail, tuned = _llama_tail(m["path"])
        kind = " (LoRA)" if "lora" in model.lower() else (" (fine-tuned)" if tuned else "")
        return shorten(tail + kind, 36)
    return shorten(model.rsplit("/", 1)[-1], 36)


def display_name(source: str | None) -> str:
    """A run or source name made short: model · task split range · date for FireAct's and generated runs."""
    if not source:
        return "—"
    m = FIREACT_RUN.match(source)
    if m:
        return f"{display_model(m['model'])} · {m['task']} {m['split']} {m['start']}–{m['end']} · {m['date']}"
    m = STUDIO_RUN.match(source)
    if m:
        return f"{display_model(m['model'])} · {m['task']} {m['split']} {m['method']} · {m['date']}"
    return shorten(source)


def display_names(sources: list[str]) -> dict[str, str]:
    """Display name per source, made distinct: two sources that would read the same keep their full names."""
    short = {s: display_name(s) for s in sources}
    seen: dict[str, int] = {}
    for name in short.values():
        seen[name] = seen.get(name, 0) + 1
    return {s: (name if seen[name] == 1 else shorten(s, 80)) for s, name in short.items()}
