"""Writing a run in FireAct's own evaluation layout (`trajs/*.json`, as generation.py writes it), so that FireAct's
scripts and `fireact import` read it back: one JSON object keyed by question index, each entry
`{reward, em, f1, gt, pred, prompt, traj[, traj_by_line]}`, indented by 2, ASCII escapes."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Iterable, TextIO

from ..parsing import render_text
from ...records import Source, Trajectory
from .fireact import ALPACA_TEMPLATE, chat_messages

TIME_FORMAT = "%Y-%m-%d-%H-%M-%S"


def is_chat(t: Trajectory) -> bool:
    """Whether the trajectory was made as a conversation (FireAct's chat variant) rather than one text."""
    meta = t.meta
    if meta.get("format") == "fireact-run":
        return "prompt_messages" in meta or not any(k in meta for k in ("run_text", "prompt_text", "fewshot_prompt",
                                                                       "trailing_newline"))
    if meta.get("format") == "alpaca" or meta.get("finetuned_format") == "alpaca" or meta.get("mode") == "fewshot":
        return False
    return True


def _text_traj(t: Trajectory) -> str:
    """The text variant's `traj`: the Alpaca prompt (or the question, in few-shot mode), then the steps."""
    steps = render_text(t.steps, t.meta.get("trailing_newline", True))
    if t.meta.get("run_text") == "fewshot" or (t.meta.get("mode") == "fewshot" and "prompt_text" not in t.meta):
        return t.question + "\n" + steps
    return t.meta.get("prompt_text", ALPACA_TEMPLATE.format(instruction=t.question)) + steps


def run_entry(t: Trajectory) -> dict[str, Any]:
    """One entry of a run file, in generation.py's key order."""
    entry: dict[str, Any] = {"reward": t.reward, "em": t.em, "f1": t.f1, "gt": t.gold,
                             "pred": t.meta.get("pred", t.final_answer)}
    if is_chat(t) and "prompt_messages" in t.meta:  # read from a run: messages before the question are its own
        entry["prompt"], entry["traj"] = t.meta["prompt_messages"], chat_messages(t)
    elif is_chat(t):  # the prompt the model was given comes apart from the conversation, as generation.py keeps it
        entry["prompt"] = [m.model_dump() for m in t.prompt or []]
        entry["traj"] = chat_messages(t.model_copy(update={"prompt": None}))
    else:
        entry["prompt"] = t.meta.get("fewshot_prompt", "")
        entry["traj"] = _text_traj(t)
        entry["traj_by_line"] = entry["traj"].split("\n")
    return entry


def write_fireact_run(trajs: Iterable[Trajectory], out: TextIO, sources: Iterable[Source] = ()) -> int:
    """The trajectories (one run's) as a FireAct run file, keyed by their question index (`qid`; the position
    when a trajectory has none or repeats one)."""
    entries: dict[str, Any] = {}
    for n, t in enumerate(trajs):
        key = t.qid if t.qid is not None and t.qid not in entries else str(n)
        entries[key] = run_entry(t)
    json.dump(entries, out, indent=2)
    return len(entries)


def run_file_name(source: Source) -> str:
    """generation.py's name for a run's file: {task}_{split}_{start}_{end}_{model}_{temperature}_{time}.json."""
    meta = source.meta
    start = int(meta.get("start", 0))
    end = start + int(source.attempted or 0)
    started = meta.get("started") or (source.created_at or datetime.now()).strftime(TIME_FORMAT)
    model = (source.model or "unknown").replace("/", "_")
    temperature = float(meta.get("temperature") or 0.0)
    parts = [source.task or "unknown", source.split or "unknown", str(start), str(end), model, str(temperature), started]
    return "_".join(p.replace("_", "-") if i < 2 else p for i, p in enumerate(parts)) + ".json"
