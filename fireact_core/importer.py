"""Importing files into the store: read and check everything first, then write in one transaction,
so bad input leaves the database exactly as it was."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .errors import FireactError
from .formats import ReadResult, read_file
from .lint import lint_contamination, lint_duplicates, lint_trajectory, load_eval_questions
from .parsing import infer_method, infer_task
from .records import Source, Trajectory
from .store import Store
from .tasks import get_task, list_tasks

METHODS = ("react", "cot", "io", "reflexion")


@dataclass
class ImportReport:
    path: str
    format: str
    source: str
    rows: int
    added: int
    lints: dict[str, int] = field(default_factory=dict)


def _classify(t: Trajectory, task: str | None, method: str | None) -> Trajectory:
    update: dict = {}
    if method or t.method == "unknown":
        update["method"] = method or infer_method(t.steps)
    if task or t.task in (None, "unknown"):
        update["task"] = task or infer_task(t.question, t.final_answer, t.gold)
    return t.model_copy(update=update) if update else t


def _score(t: Trajectory) -> Trajectory:
    """Score against the gold answer where the file gave one but no score."""
    if t.gold is None or t.em is not None or t.task not in list_tasks():
        return t
    s = get_task(t.task).score(t.final_answer or "", t.gold)
    return t.model_copy(update={"em": s.em, "f1": s.f1, "reward": t.reward if t.reward is not None else s.reward})


def prepare(result: ReadResult, task: str | None = None, method: str | None = None) -> ReadResult:
    if result.format != "native":
        result.trajectories = [_score(_classify(t, task, method)) for t in result.trajectories]
    elif task or method:
        result.trajectories = [_classify(t, task, method) for t in result.trajectories]
    if not result.sources:
        first = result.trajectories[0] if result.trajectories else None
        name = first.source if first else Path(result.path).stem
        result.sources = [Source(name=name, format=result.format, path=result.path, attempted=len(result.trajectories))]
    for src in result.sources:
        src.task = task or src.task
        src.method = method or src.method
    return result


def import_files(store: Store, paths: Iterable[str | Path], fmt: str = "auto", source: str | None = None,
                 task: str | None = None, method: str | None = None,
                 eval_splits: Iterable[str | Path] = ()) -> list[ImportReport]:
    """Read every file, lint, then write all of them in one transaction."""
    if task and task not in list_tasks():
        raise FireactError(f"unknown task '{task}': choose one of {', '.join(list_tasks())}")
    if method and method not in METHODS:
        raise FireactError(f"unknown method '{method}': choose one of {', '.join(METHODS)}")
    eval_keys = load_eval_questions(eval_splits)
    results = [prepare(read_file(p, fmt, source), task, method) for p in paths]
    reports = []
    with store.db.transaction():
        for result in results:
            reports.append(_write(store, result, eval_keys))
    return reports


def _write(store: Store, result: ReadResult, eval_keys: dict[str, str]) -> ImportReport:
    trajs = result.trajectories
    lints = list(result.lints) if result.format == "native" else []
    if result.format != "native":
        existing = store.source_question_keys({t.source for t in trajs}, exclude_ids={t.id for t in trajs})
        seen = [k for k, n in existing.items() for _ in range(n)]
        for t in trajs:
            lints.extend(lint_trajectory(t))
        lints.extend(lint_duplicates(trajs, seen))
    if eval_keys:
        flagged = {x.trajectory_id for x in lints if x.kind == "eval_contamination"}
        lints.extend(x for x in lint_contamination(trajs, eval_keys) if x.trajectory_id not in flagged)
    added = store.save_trajectories(trajs, lints, result.sources, result.revisions, result.annotations)
    counts: dict[str, int] = {}
    for kind in sorted({x.kind for x in lints}):
        counts[kind] = len({x.trajectory_id for x in lints if x.kind == kind})
    return ImportReport(path=result.path, format=result.format, source=", ".join(s.name for s in result.sources),
                        rows=result.rows, added=added, lints=counts)
