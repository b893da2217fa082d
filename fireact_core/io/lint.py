"""Data checks. Each finding is a `Lint` (kind, step, detail) stored with its trajectory and counted per kind.

Kinds:
    duplicate_question     the question was asked before in the same source (the first occurrence is not flagged)
    eval_contamination     the question is in an evaluation split given at import
    malformed_action       missing ']', unknown tool, not name[arg], several actions in one turn
    unparsed_text          text outside Thought/Action/Observation, kept verbatim on its step
    observation_none       an observation that reads "None" (a search that found nothing)
    empty_finish           finish[] with nothing inside
    consecutive_assistant  two model turns with no observation between them
    duplicated_final_observation  the last observation repeats the one before it
    no_finish              the trajectory never calls finish
    failed                 the trajectory's reward is false
    role_order             the model's turn comes first, no user turn holds the question, or a non-user observation
    no_question            the question is empty
    empty_trajectory       no steps at all
    consecutive_observation  an observation with no model turn before it (two in a row, or right after the question)
    options_in_output      answer options at the head of an Alpaca output (FireAct's MMLU rows), read into the question
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from itertools import filterfalse
from pathlib import Path
from typing import Any, Iterable

from ..errors import FormatError
from ..generation.tasks.scoring import ARTICLE_WORDS, PUNCTUATION_BYTES, normalize_answer
from .parsing import QUESTION_PREFIX, UNPARSED
from ..records import FINISH, Lint, TrajectoryData

LINT_KINDS = [
    "duplicate_question", "eval_contamination", "malformed_action", "unparsed_text", "observation_none",
    "empty_finish", "consecutive_assistant", "duplicated_final_observation", "no_finish", "failed",
    "role_order", "no_question", "empty_trajectory", "consecutive_observation", "options_in_output",
]
# Rows that break the layout of a conversation: imported as they are, left out of mixes unless asked for.
IRREGULAR_KINDS = ("role_order", "no_question", "empty_trajectory", "consecutive_observation")


# What the checks compare against, named once: the SQL import path (`store.chat_import`) builds its checks from them.
NONE_OBSERVATION = "None"  # an observation that reads this, spaces around it aside, is `observation_none`
DETAIL_CHARS = 200  # a lint's detail quotes at most this much of the text it is about


def lint_trajectory(t: TrajectoryData) -> list[Lint]:
    """The checks that look at one trajectory alone (a step's absent keys read as the `Step` defaults; a
    `Trajectory` is checked as `records.trajectory_data(t)`)."""
    found: list[Lint] = []
    traj_id, steps = t["id"], t["steps"]

    def add(kind: str, step: int | None, detail: str = "") -> None:
        found.append(Lint(trajectory_id=traj_id, kind=kind, step=step, detail=detail))

    last = len(steps) - 1
    for i, step in enumerate(steps):
        problem = (step.get("flags") or {}).get("parse_error")
        action, observation = step.get("action"), step.get("observation")
        if problem == UNPARSED:
            add("unparsed_text", i, (step.get("raw") or "")[:DETAIL_CHARS])
        elif problem:
            add("malformed_action", i, problem)
        if observation is not None and observation.strip() == NONE_OBSERVATION:
            add("observation_none", i)
        if action and (action.get("name") or "").lower() == FINISH and not (action.get("arg") or "").strip():
            add("empty_finish", i)
        has_turn = step.get("thought") is not None or action is not None or step.get("raw") is not None
        if has_turn and problem != UNPARSED and observation is None and i < last:
            add("consecutive_assistant", i)
        if not has_turn and observation is not None:
            add("consecutive_observation", i)
    observations = [o for s in steps if (o := s.get("observation")) is not None]
    if len(observations) >= 2 and observations[-1] == observations[-2]:
        add("duplicated_final_observation", last, observations[-1][:DETAIL_CHARS])
    if t.get("final_answer") is None:
        add("no_finish", None)
    if t.get("reward") is False:
        add("failed", None)
    _add_layout_lints(t, add)
    return found


def _add_layout_lints(t: TrajectoryData, add: Any) -> None:
    """The conventions of a row's layout that a reader keeps as they are (see docs/formats.md)."""
    meta = t.get("meta") or {}
    role = meta.get("question_role")
    if role == "assistant" or (role == "none" and (t["steps"] or t.get("prompt"))):
        add("role_order", None, "the question is the model's turn" if role == "assistant" else "no user turn before the model's turns")
    for step, other in (meta.get("observation_roles") or {}).items():
        add("role_order", int(step), f"an observation in a '{other}' turn")
    if not t["question"].strip():
        add("no_question", None)
    if not t["steps"]:
        add("empty_trajectory", None)
    if meta.get("options_in_output"):
        add("options_in_output", None, "answer options read from the output into the question")


QuestionKey = tuple[str, str, str]  # (trajectory id, source, question key)


@lru_cache(maxsize=1 << 16)
def question_key(question: str) -> str:
    """The form under which two questions count as the same (duplicates, contamination; the store's `qnorm`)."""
    return normalize_answer(question.removeprefix(QUESTION_PREFIX))


# what `question_key_column` leaves to `question_key`: control characters (its separator among them, and \x1c-\x1f,
# which `str.split` takes for white space)
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f]")


def question_key_column(questions: list[str]) -> list[str]:
    """`question_key` of each question, the same strings, the ASCII ones in bulk: their text joined into one,
    lower-cased and its punctuation dropped at once (`normalize_answer`'s steps, in its order), then each split,
    its articles left out and joined again. For 100,000 questions: 0.27 s against 0.53 s one call each."""
    texts = [q.removeprefix(QUESTION_PREFIX) for q in questions]
    in_bulk = [t.isascii() and not _CONTROL.search(t) for t in texts]
    joined = "\x00".join(t for t, bulk in zip(texts, in_bulk) if bulk).encode("ascii")
    parts = iter(joined.lower().translate(None, PUNCTUATION_BYTES).decode("ascii").split("\x00"))
    return [" ".join(filterfalse(ARTICLE_WORDS.__contains__, next(parts).split())) if bulk else normalize_answer(t)
            for t, bulk in zip(texts, in_bulk)]


def question_keys(trajs: Iterable[TrajectoryData]) -> list[QuestionKey]:
    return [(t["id"], t["source"], question_key(t["question"])) for t in trajs]


def duplicate_lints(keys: Iterable[QuestionKey], seen: Iterable[tuple[str, str]] = ()) -> list[Lint]:
    """`lint_duplicates` on (id, source, question key) triples, in order."""
    counts: Counter[tuple[str, str]] = Counter(seen)
    found = []
    for traj_id, source, qkey in keys:
        if not qkey:  # no question (linted as such) repeats nothing
            continue
        key = (source, qkey)
        if counts[key]:
            found.append(Lint(trajectory_id=traj_id, kind="duplicate_question", detail=f"asked {counts[key]} time(s) before"))
        counts[key] += 1
    return found


def lint_duplicates(trajs: list[TrajectoryData], seen: Iterable[tuple[str, str]] = ()) -> list[Lint]:
    """Flag each trajectory whose (source, question) came before, in this batch or in `seen`."""
    return duplicate_lints(question_keys(trajs), seen)


def contamination_lints(keys: Iterable[QuestionKey], eval_keys: dict[str, str]) -> list[Lint]:
    """Flag each trajectory (of (id, source, question key) triples) whose question is in an evaluation split
    (`eval_keys`: question key -> split name)."""
    return [Lint(trajectory_id=traj_id, kind="eval_contamination", detail=f"question is in {eval_keys[qkey]}")
            for traj_id, _, qkey in keys if qkey in eval_keys]


def load_eval_questions(paths: Iterable[str | Path]) -> dict[str, str]:
    """Question keys of evaluation split files: JSON arrays or JSONL with 'question', CSV with a Question column."""
    from ..generation.tasks import get_task

    keys: dict[str, str] = {}
    for path in paths:
        p = Path(path)
        if not p.is_file():
            raise FormatError(path, 1, "evaluation split file not found" if not p.exists() else "is not a file")
        for q in get_task("custom").load(p.parent, "eval", path=p):
            keys.setdefault(question_key(q.question), str(path))
    return keys
