"""Loss masks: which tokens of a trajectory carry loss when fine-tuning on it.

A dataset has one policy, combined with the per-step `flags.train` set in the editor:

    "observations"  train on thoughts and actions only (observation turns masked) - what FireAct meant to do
    "none"          train on everything the agent saw after the question (FireAct's own runs)

The prompt (few-shot messages and the question) never carries loss, nor does the role header the chat
template puts before an assistant turn (the generation prompt, which the model never writes). A step whose
`flags.train` is false carries none either (nor does its observation).

`tokenize_example` turns a trajectory (or chat messages) into `input_ids` and `labels` with -100 wherever no
loss is taken; the Trainer's data collator only needs to pad them. `preview_spans` gives the same split as
(text, trained) pieces for a coloured preview, and `spans_html` renders them as safe HTML.
"""

from __future__ import annotations

import html
from bisect import bisect_right
from functools import lru_cache
from itertools import accumulate
from pathlib import Path
from typing import Any, Literal

from ..errors import FireactError, PrerequisiteError, missing_package
from .formats.fireact import ALPACA_TEMPLATE, chat_messages
from ..records import Trajectory

LossMask = Literal["observations", "none"]
LOSS_MASKS: dict[str, str] = {
    "observations": "train on thoughts and actions only (observations masked)",
    "none": "train on everything after the question (observations too)",
}
IGNORE = -100


def _check(loss_mask: str) -> None:
    if loss_mask not in LOSS_MASKS:
        raise FireactError(f"unknown loss mask '{loss_mask}': choose one of {', '.join(LOSS_MASKS)}")


def flagged_messages(example: Trajectory | list[dict] | dict, loss_mask: str = "observations") -> list[dict]:
    """Chat messages, each with a `train` flag: the policy and the per-step flags applied.

    Takes a Trajectory, a list of {role, content[, train | weight]} messages, or a row with a "messages" list
    (as the `messages` and OpenAI exports write them). Messages up to the first assistant turn are the prompt.
    """
    _check(loss_mask)
    if isinstance(example, Trajectory):
        return [{**m, "train": bool(m.get("train", False))}
                for m in chat_messages(example, train_flags=True, mask_observations=loss_mask == "observations")]
    messages = example.get("messages") if isinstance(example, dict) else example
    if not isinstance(messages, list) or not all(isinstance(m, dict) and "role" in m and "content" in m for m in messages):
        raise FireactError("an example must be a Trajectory or a list of {role, content} messages")
    first = next((i for i, m in enumerate(messages) if m["role"] == "assistant"), len(messages))
    out = []
    for i, m in enumerate(messages):
        if i < first:
            train = False
        elif m["role"] == "assistant":
            train = bool(m.get("train", m.get("weight", 1) != 0))
        else:
            train = loss_mask == "none" and bool(m.get("train", True))
        out.append({"role": m["role"], "content": m["content"], "train": train})
    return out


def _template_pieces(tokenizer: Any, messages: list[dict]) -> list[tuple[str, str]] | None:
    """Each message's text as the chat template renders it, split as (role header, rest): the header is the
    generation prompt the template adds before an assistant turn (`<|assistant|>\n`), empty for other turns.
    None when the template does not render a conversation as a growing prefix."""
    plain = [{"role": m["role"], "content": m["content"]} for m in messages]
    pieces, done = [], ""
    for i in range(1, len(plain) + 1):
        text = tokenizer.apply_chat_template(plain[:i], tokenize=False)
        if not text.startswith(done):
            return None
        piece, header = text[len(done):], ""
        if plain[i - 1]["role"] == "assistant" and i > 1:
            opened = tokenizer.apply_chat_template(plain[: i - 1], tokenize=False, add_generation_prompt=True)
            header = opened[len(done):] if opened.startswith(done) else ""
            header = header if piece.startswith(header) else ""
        pieces.append((header, piece[len(header):]))
        done = text
    return pieces


def segments(messages: list[dict], tokenizer: Any = None) -> list[tuple[str, bool]]:
    """(text, trained) per message: through the tokenizer's chat template when it has one, else FireAct's
    Alpaca text layout (the prompt with the question, then each turn on its own line). An assistant turn's role
    header never carries loss: at inference the template's generation prompt supplies it, so the model never
    writes it (as TRL's assistant-only loss and OpenAI's fine-tuning treat it); its end-of-turn token does."""
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        pieces = _template_pieces(tokenizer, messages)
        if pieces is not None:
            out = []
            for (header, rest), m in zip(pieces, messages):
                out += [(header, False)] if header else []
                out.append((rest, m["train"]))
            return out
    first = next((i for i, m in enumerate(messages) if m["role"] == "assistant"), len(messages))
    prompt = messages[:first]
    question = prompt[-1]["content"] if prompt else ""
    context = "".join(m["content"] + "\n\n" for m in prompt[:-1])
    out = [(context + ALPACA_TEMPLATE.format(instruction=question), False)]
    out.extend((m["content"] + "\n", m["train"]) for m in messages[first:])
    return out


def _token_pieces(tokenizer: Any, text: str) -> list[tuple[int, str]]:
    """(token id, the text it covers) for `text`, without special tokens added."""
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return [(i, text[a:b]) for i, (a, b) in zip(enc["input_ids"], enc["offset_mapping"])]
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return [(i, tokenizer.decode([i])) for i in ids]


def _joint_tokens(tokenizer: Any, segs: list[tuple[str, bool]]) -> list[tuple[int, str, bool]]:
    """The segments' text tokenized in one piece (as the whole conversation tokenizes), each token trained as
    the segment holding its last character is."""
    text = "".join(t for t, _ in segs)
    ends = list(accumulate(len(t) for t, _ in segs))
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    out = []
    for i, (a, b) in zip(enc["input_ids"], enc["offset_mapping"]):
        seg = min(bisect_right(ends, max(a, b - 1)), len(segs) - 1)
        out.append((i, text[a:b], segs[seg][1]))
    return out


def _tokens(example: Any, tokenizer: Any, loss_mask: str) -> list[tuple[int, str, bool]]:
    messages = flagged_messages(example, loss_mask)
    templated = bool(getattr(tokenizer, "chat_template", None))
    out: list[tuple[int, str, bool]] = []
    if not templated and getattr(tokenizer, "bos_token_id", None) is not None:
        out.append((tokenizer.bos_token_id, tokenizer.bos_token, False))
    segs = [(text, trained) for text, trained in segments(messages, tokenizer) if text]
    if getattr(tokenizer, "is_fast", False) and segs:
        out.extend(_joint_tokens(tokenizer, segs))
    else:
        for text, trained in segs:
            out.extend((i, piece, trained) for i, piece in _token_pieces(tokenizer, text))
    if not templated and getattr(tokenizer, "eos_token_id", None) is not None:
        out.append((tokenizer.eos_token_id, tokenizer.eos_token, any(m["train"] for m in messages)))
    return out


def tokenize_example(trajectory_or_messages: Trajectory | list[dict] | dict, tokenizer: Any,
                     loss_mask: str = "observations", max_length: int | None = None) -> dict[str, Any]:
    """Tokens and labels of one training example.

    Args:
        trajectory_or_messages: a Trajectory, a list of chat messages, or an exported row with "messages".
        tokenizer: a Hugging Face tokenizer; its chat template is used when it has one.
        loss_mask: "observations" (observation turns carry no loss) or "none" (they do).
        max_length: keep only the first `max_length` tokens (then `truncated` is true).

    Returns:
        {"input_ids": [...], "labels": [...] (-100 on the prompt and on every masked token),
         "attention_mask": [1, ...], "n_tokens": len(input_ids), "truncated": bool}
    """
    tokens = _tokens(trajectory_or_messages, tokenizer, loss_mask)
    truncated = max_length is not None and len(tokens) > max_length
    if truncated:
        tokens = tokens[:max_length]
    ids = [t[0] for t in tokens]
    return {"input_ids": ids, "labels": [i if trained else IGNORE for i, _, trained in tokens],
            "attention_mask": [1] * len(ids), "n_tokens": len(ids), "truncated": truncated}


def preview_spans(trajectory_or_messages: Trajectory | list[dict] | dict, loss_mask: str = "observations",
                  tokenizer: Any = None) -> list[tuple[str, bool]]:
    """(text, trained) pieces: one per token with a tokenizer, one per message without."""
    if tokenizer is None:
        return segments(flagged_messages(trajectory_or_messages, loss_mask))
    return [(text, trained) for _, text, trained in _tokens(trajectory_or_messages, tokenizer, loss_mask)]


def spans_html(spans: list[tuple[str, bool]]) -> str:
    """The pieces as HTML: trained text on green, masked text grey; every piece escaped."""
    styles = {True: "background:#d3f9d8;color:#1b4332;", False: "background:#f1f3f5;color:#868e96;"}
    parts = [f'<span class="{"trained" if trained else "masked"}" style="{styles[trained]}'
             f'border-right:1px solid #fff">{html.escape(text)}</span>' for text, trained in spans]
    return ('<div class="token-preview" style="white-space:pre-wrap;font-family:monospace;font-size:0.85em;'
            'line-height:1.5">' + "".join(parts) + "</div>")


@lru_cache(maxsize=4)
def load_tokenizer(path: str) -> Any:
    """The tokenizer saved in a local model folder (nothing is downloaded)."""
    folder = Path(path).expanduser()
    if not (folder / "tokenizer_config.json").is_file() and not (folder / "tokenizer.json").is_file():
        raise PrerequisiteError(f"{path}: no tokenizer there (expected tokenizer.json or tokenizer_config.json)")
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:
        raise missing_package("transformers", "train") from exc
    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise PrerequisiteError(f"{path}: the tokenizer there cannot be loaded: {exc}") from exc
