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
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Iterable

from .errors import FormatError
from .records import Lint, Trajectory
from .store.trajectories import question_key

LINT_KINDS = [
    "duplicate_question", "eval_contamination", "malformed_action", "unparsed_text", "observation_none",
    "empty_finish", "consecutive_assistant", "duplicated_final_observation", "no_finish", "failed",
]
CROSS_KINDS = {"duplicate_question", "eval_contamination"}


def lint_trajectory(t: Trajectory) -> list[Lint]:
    """The checks that look at one trajectory alone."""
    found: list[Lint] = []

    def add(kind: str, step: int | None, detail: str = "") -> None:
        found.append(Lint(trajectory_id=t.id, kind=kind, step=step, detail=detail))

    for i, step in enumerate(t.steps):
        problem = step.flags.parse_error
        if problem == "text outside Thought/Action/Observation":
            add("unparsed_text", i, (step.raw or "")[:200])
        elif problem:
            add("malformed_action", i, problem)
        if step.observation is not None and step.observation.strip() == "None":
            add("observation_none", i)
        if step.action and (step.action.name or "").lower() == "finish" and not (step.action.arg or "").strip():
            add("empty_finish", i)
        has_turn = step.thought is not None or step.action is not None or step.raw is not None
        if (has_turn and problem != "text outside Thought/Action/Observation" and step.observation is None
                and i + 1 < len(t.steps)):
            add("consecutive_assistant", i)
    observations = [s.observation for s in t.steps if s.observation is not None]
    if len(observations) >= 2 and observations[-1] == observations[-2]:
        add("duplicated_final_observation", len(t.steps) - 1, observations[-1][:200])
    if t.final_answer is None:
        add("no_finish", None)
    if t.reward is False:
        add("failed", None)
    return found


QuestionKey = tuple[str, str, str]  # (trajectory id, source, question key)


def question_keys(trajs: Iterable[Trajectory]) -> list[QuestionKey]:
    return [(t.id, t.source, question_key(t.question)) for t in trajs]


def duplicate_lints(keys: Iterable[QuestionKey], seen: Iterable[tuple[str, str]] = ()) -> list[Lint]:
    """`lint_duplicates` on (id, source, question key) triples, in order."""
    counts: Counter[tuple[str, str]] = Counter(seen)
    found = []
    for traj_id, source, qkey in keys:
        key = (source, qkey)
        if counts[key]:
            found.append(Lint(trajectory_id=traj_id, kind="duplicate_question", detail=f"asked {counts[key]} time(s) before"))
        counts[key] += 1
    return found


def lint_duplicates(trajs: list[Trajectory], seen: Iterable[tuple[str, str]] = ()) -> list[Lint]:
    """Flag each trajectory whose (source, question) came before, in this batch or in `seen`."""
    return duplicate_lints(question_keys(trajs), seen)


def contamination_lints(keys: Iterable[QuestionKey], eval_keys: dict[str, str]) -> list[Lint]:
    """`lint_contamination` on (id, source, question key) triples."""
    return [Lint(trajectory_id=traj_id, kind="eval_contamination", detail=f"question is in {eval_keys[qkey]}")
            for traj_id, _, qkey in keys if qkey in eval_keys]


def lint_contamination(trajs: list[Trajectory], eval_keys: dict[str, str]) -> list[Lint]:
    """Flag trajectories whose question is in an evaluation split (`eval_keys`: question key -> split name)."""
    return contamination_lints(question_keys(trajs), eval_keys)


def load_eval_questions(paths: Iterable[str | Path]) -> dict[str, str]:
    """Question keys of evaluation split files: JSON arrays or JSONL with 'question', CSV with a Question column."""
    from .tasks import get_task

    keys: dict[str, str] = {}
    for path in paths:
        p = Path(path)
        if not p.is_file():
            raise FormatError(path, 1, "evaluation split file not found" if not p.exists() else "is not a file")
        for q in get_task("custom").load(None, "eval", path=p):
            keys.setdefault(question_key(q.question), str(path))
    return keys
