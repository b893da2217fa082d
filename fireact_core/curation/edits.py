"""Curation: editing a trajectory's steps, saving with re-scoring and lints, history as diffs, restore, review.

Edits are pure functions: each takes a trajectory and returns a new one, leaving the input untouched.
Editing a field of a step clears that step's verbatim copy (`raw` for the model's part, `obs_raw` for the
observation), because the verbatim text no longer says what the fields say. Saving goes through
`save_trajectory_edit`, which re-scores, re-lints and records a revision (or raises ConflictError).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import FireactError, NotFoundError
from ..filters import TrajectoryFilter
from ..io.lint import lint_trajectory
from ..io.parsing import action_problem, parse_action, render_text
from ..records import (Action, Annotation, ReviewStatus, Revision, Step, StepFlags, Trajectory, final_answer_of,
                       trajectory_data)
from ..store import Store
from ..store.curation import SORTABLE
from .team.roles import check_review, require
from ..generation.tasks import get_task, list_tasks

FORM_FIELDS = ("thought", "action", "observation", "train")
SORT_KEYS: tuple[str, ...] = tuple(SORTABLE)  # what Browse can sort by, "imported" first


@dataclass
class StepEdit:
    """What the editor shows for one step; None leaves a field as it is."""

    thought: str | None = None
    action: str | None = None
    observation: str | None = None
    train: bool | None = None


def _check_index(traj: Trajectory, idx: int, allow_end: bool = False) -> None:
    top = len(traj.steps) if allow_end else len(traj.steps) - 1
    if not 0 <= idx <= top:
        raise FireactError(f"trajectory {traj.id} has no step {idx + 1} (it has {len(traj.steps)} steps)")


def _with_steps(traj: Trajectory, steps: list[Step]) -> Trajectory:
    return traj.model_copy(update={"steps": steps, "final_answer": _final_answer(steps)})


def _final_answer(steps: list[Step]) -> str | None:
    return final_answer_of([(s.action.name, s.action.arg) for s in steps if s.action is not None])


def make_action(text: str) -> Action:
    return Action.model_validate(parse_action(text.strip()))


def edit_step(traj: Trajectory, idx: int, edit: StepEdit) -> Trajectory:
    """Change the fields of step `idx` that differ from `edit`; returns the new trajectory."""
    _check_index(traj, idx)
    step = traj.steps[idx]
    update: dict = {}
    if edit.thought is not None and edit.thought != (step.thought or ""):
        update["thought"] = edit.thought or None
    if edit.action is not None and edit.action != (step.action.raw if step.action else ""):
        update["action"] = make_action(edit.action) if edit.action.strip() else None
    flags = step.flags
    if update:
        update["raw"] = None
        action = update.get("action", step.action)
        flags = flags.model_copy(update={"parse_error": action_problem(action.raw, action.name) if action else None})
    if edit.observation is not None and edit.observation != (step.observation or ""):
        update["observation"] = edit.observation or None
        update["obs_raw"] = None
    if edit.train is not None and edit.train != flags.train:
        flags = flags.model_copy(update={"train": edit.train})
    if not update and flags == step.flags:
        return traj
    steps = list(traj.steps)
    steps[idx] = step.model_copy(update={**update, "flags": flags})
    return _with_steps(traj, steps)


def apply_step_edits(traj: Trajectory, edits: list[StepEdit]) -> Trajectory:
    for idx, edit in enumerate(edits[:len(traj.steps)]):
        traj = edit_step(traj, idx, edit)
    return traj


def apply_form(traj: Trajectory, steps: list[dict], final: str | None = None, question: str | None = None) -> Trajectory:
    """The editor's fields applied to `traj`: per step a dict of thought / action / observation / train (a
    missing or None value leaves the field as it is), then the final answer field when it was changed, and the
    question field (shown for a trajectory imported without a question) when it holds one."""
    edited = apply_step_edits(traj, [StepEdit(**{k: v for k, v in d.items() if k in FORM_FIELDS}) for d in steps])
    if final is not None and final != (traj.final_answer or "") and final != (edited.final_answer or ""):
        edited = set_final_answer(edited, final)
    if question and question != edited.question:
        edited = set_question(edited, question)
    return edited


def set_question(traj: Trajectory, question: str) -> Trajectory:
    """The trajectory asking `question`, as a user turn (fixes a row imported without one, `no_question`)."""
    meta = {k: v for k, v in traj.meta.items() if k != "question_role"}
    return traj.model_copy(update={"question": question, "meta": meta})


def insert_step(traj: Trajectory, idx: int, step: Step | None = None) -> Trajectory:
    """Insert `step` (default: an empty thought with a search action) before position `idx`."""
    _check_index(traj, idx, allow_end=True)
    new = step or Step(thought="", action=Action(raw="search[]", name="search", arg=""), observation="")
    steps = list(traj.steps)
    steps.insert(idx, new)
    return _with_steps(traj, steps)


def delete_step(traj: Trajectory, idx: int) -> Trajectory:
    _check_index(traj, idx)
    return _with_steps(traj, traj.steps[:idx] + traj.steps[idx + 1:])


def move_step(traj: Trajectory, idx: int, to: int) -> Trajectory:
    """Move step `idx` so that it ends at position `to` (clamped to the ends)."""
    _check_index(traj, idx)
    to = max(0, min(to, len(traj.steps) - 1))
    steps = list(traj.steps)
    steps.insert(to, steps.pop(idx))
    return _with_steps(traj, steps)


def set_train(traj: Trajectory, idx: int, train: bool) -> Trajectory:
    return edit_step(traj, idx, StepEdit(train=train))


def set_final_answer(traj: Trajectory, answer: str) -> Trajectory:
    """Change the argument of the last finish action (a finish step is appended when there is none)."""
    steps = list(traj.steps)
    for idx in range(len(steps) - 1, -1, -1):
        step = steps[idx]
        if step.action and (step.action.name or "").lower() == "finish":
            if step.action.arg == answer:
                return traj
            action = Action(raw=f"{step.action.name}[{answer}]", name=step.action.name, arg=answer)
            flags = step.flags.model_copy(update={"parse_error": action_problem(action.raw, action.name)})
            steps[idx] = step.model_copy(update={"action": action, "raw": None, "flags": flags})
            return _with_steps(traj, steps)
    steps.append(Step(thought=None, action=Action(raw=f"finish[{answer}]", name="finish", arg=answer),
                      flags=StepFlags()))
    return _with_steps(traj, steps)


def rescore(traj: Trajectory) -> Trajectory:
    """Final answer from the steps; EM/F1/reward from the task's scorer when the task and gold are known."""
    final = _final_answer(traj.steps)
    update: dict = {"final_answer": final}
    if traj.gold is not None and traj.task in list_tasks():
        score = get_task(traj.task).score(final or "", traj.gold)
        update.update(em=score.em, f1=score.f1, reward=score.reward)
    if final is not None and traj.status == "unfinished":
        update["status"] = "finished"
    return traj.model_copy(update=update)


def save_trajectory_edit(store: Store, traj: Trajectory, *, base_revision: int, author: str,
                         reason: str | None = None) -> Trajectory:
    """Re-score, re-lint and store `traj` as a new revision; ConflictError names who saved in between."""
    require(store, author, "edit")
    scored = rescore(traj)
    return store.save_edit(scored, base_revision=base_revision, author=author or "anonymous",
                           reason=(reason or "").strip() or None, lints=lint_trajectory(trajectory_data(scored)))


def restore_revision(store: Store, traj_id: str, rev: int, author: str, base_revision: int | None = None) -> Trajectory:
    """Save the content of revision `rev` as a new revision (history keeps everything in between)."""
    current = store.get_trajectory(traj_id)
    old = store.revision_trajectory(traj_id, rev)
    restored = Trajectory.model_validate({**old.content_dict(), "id": traj_id, "revision": current.revision,
                                          "created_at": current.created_at})
    base = current.revision if base_revision is None else base_revision
    return save_trajectory_edit(store, restored, base_revision=base, author=author, reason=f"restored revision {rev}")


def render_for_diff(data: dict | Trajectory) -> str:
    """The text a revision diff compares: answer, score and every step as FireAct renders it."""
    traj = data if isinstance(data, Trajectory) else Trajectory.model_validate({**data, "id": "diff"})
    head = [f"Final answer: {traj.final_answer}", f"EM: {traj.em}  F1: {traj.f1}"]
    off = [str(i + 1) for i, s in enumerate(traj.steps) if not s.flags.train]
    if off:
        head.append("Not trained on steps: " + ", ".join(off))
    return "\n".join(head) + "\n\n" + render_text(traj.steps)


def revision_diffs(store: Store, traj_id: str) -> list[tuple[Revision, str]]:
    """Each revision, newest first, with a unified diff against the one before it."""
    revisions = store.list_revisions(traj_id)
    out: list[tuple[Revision, str]] = []
    before = ""
    for rev in revisions:
        text = render_for_diff(rev.data)
        diff = difflib.unified_diff(before.splitlines(), text.splitlines(), f"revision {rev.rev - 1}",
                                    f"revision {rev.rev}", lineterm="", n=1)
        out.append((rev, "\n".join(diff) if before else text))
        before = text
    return out[::-1]


def annotation_event(store: Store, traj_id: str, author: str, *, status: ReviewStatus | None = None,
                     labels: list[str] | None = None, rating: int | None = None, comment: str | None = None) -> Annotation:
    """Record the full review state of one trajectory as a new event."""
    if rating is not None and not 1 <= rating <= 5:
        raise FireactError(f"rating {rating} is outside 1-5")
    check_review(store, author, [traj_id])
    return store.annotate(Annotation(trajectory_id=traj_id, author=author or "anonymous", status=status,
                                     labels=sorted({x.strip() for x in labels or [] if x.strip()}),
                                     rating=rating, comment=(comment or "").strip() or None))


def review_decision(store: Store, traj_id: str, author: str, status: ReviewStatus | None,
                    labels: Sequence[str] = (),
                    comment: str | None = None, rating: int | None = None) -> Annotation:
    """Accept or reject (None: only label / comment / rating), keeping the labels, rating and comment already
    given where no new one is (an assigned annotator keeps their own, so that each one's decision stays theirs
    for agreement)."""
    old = store.own_review_state(traj_id, author) if store.is_assigned(traj_id, author) else store.review_state(traj_id)
    return annotation_event(store, traj_id, author, status=status or (old.status if old else None),
                            labels=[*(old.labels if old else []), *labels],
                            rating=rating if rating is not None else (old.rating if old else None),
                            comment=(comment or "").strip() or (old.comment if old else None))


MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$&])")


def md_escape(text: object) -> str:
    """Text to put inside markdown (captions, messages) so that it shows literally: every markdown, HTML and
    directive character is backslash-escaped, so links, images, tags and colour directives stay characters."""
    return MD_SPECIAL.sub(r"\\\1", str(text))


def describe_filter(f: TrajectoryFilter) -> str:
    """The filter in words, for page headers ("everything" when it is empty)."""
    parts = []
    for key, value in f.to_query().items():
        if key == "ids":
            value = f"{len(f.ids)} chosen"
        parts.append(f"{key.replace('_', ' ')}: {value}")
    return "; ".join(parts) or "everything"


def open_trajectory(store: Store, traj_id: str | None) -> Trajectory:
    if not traj_id:
        raise NotFoundError("no trajectory chosen: open one from Browse (the address needs ?id=...)")
    return store.get_trajectory(traj_id)


def split_query(params: dict) -> tuple[TrajectoryFilter, str, bool]:
    """Filter, sort column and direction from a page's query parameters."""
    f = TrajectoryFilter.from_query(params)
    return f, str(params.get("sort") or "imported"), str(params.get("desc", "")).lower() in ("1", "true", "yes")


def browse_query(f: TrajectoryFilter, sort: str = "imported", descending: bool = False, **extra: str) -> dict[str, str]:
    """Query parameters that carry a filter (and its order) from page to page."""
    out = f.to_query()
    if sort != "imported":
        out["sort"] = sort
    if descending:
        out["desc"] = "1"
    out.update({k: str(v) for k, v in extra.items() if v not in (None, "")})
    return out
