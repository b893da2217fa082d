"""Importing files into the store, all of them in one transaction, so bad input leaves the database exactly
as it was."""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from .errors import FireactError
from .formats import BATCH, ReadResult, iter_batches
from .lint import QuestionKey, contamination_lints, duplicate_lints, lint_trajectory, load_eval_questions, question_keys
from .parsing import infer_method, infer_task
from .records import Lint, Source, Trajectory
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
    """Method and task, given or inferred (set in place: the trajectory is fresh from a reader)."""
    if method or t.method == "unknown":
        t.method = method or infer_method(t.steps)
    if task or t.task in (None, "unknown"):
        t.task = task or infer_task(t.question, t.final_answer, t.gold)
    return t


def _score(t: Trajectory, tasks: frozenset[str] = frozenset()) -> Trajectory:
    """Score against the gold answer where the file gave one but no score (set in place)."""
    if t.gold is None or t.em is not None or t.task not in (tasks or list_tasks()):
        return t
    s = get_task(t.task).score(t.final_answer or "", t.gold)
    t.em, t.f1 = s.em, s.f1
    if t.reward is None:
        t.reward = s.reward
    return t


def _prepare_trajectories(result: ReadResult, task: str | None, method: str | None) -> None:
    if result.format != "native":
        tasks = frozenset(list_tasks())
        result.trajectories = [_score(_classify(t, task, method), tasks) for t in result.trajectories]
    elif task or method:
        result.trajectories = [_classify(t, task, method) for t in result.trajectories]


def _default_sources(result: ReadResult, name: str, attempted: int, task: str | None, method: str | None) -> list[Source]:
    sources = result.sources or [Source(name=name, format=result.format, path=result.path, attempted=attempted)]
    for src in sources:
        src.task = task or src.task
        src.method = method or src.method
    return sources


def prepare(result: ReadResult, task: str | None = None, method: str | None = None) -> ReadResult:
    """Classify and score what a reader found, and name its source (the file's, unless it brought its own)."""
    _prepare_trajectories(result, task, method)
    first = result.trajectories[0] if result.trajectories else None
    name = first.source if first else Path(result.path).stem
    result.sources = _default_sources(result, name, len(result.trajectories), task, method)
    return result


def import_files(store: Store, paths: Iterable[str | Path], fmt: str = "auto", source: str | None = None,
                 task: str | None = None, method: str | None = None,
                 eval_splits: Iterable[str | Path] = (), batch: int = BATCH) -> list[ImportReport]:
    """Read, check and write every file in one transaction: bad input anywhere leaves the database as it was.
    Files stream through in batches of `batch` trajectories, so memory stays flat however large they are."""
    if task and task not in list_tasks():
        raise FireactError(f"unknown task '{task}': choose one of {', '.join(list_tasks())}")
    if method and method not in METHODS:
        raise FireactError(f"unknown method '{method}': choose one of {', '.join(METHODS)}")
    eval_keys = load_eval_questions(eval_splits)
    paths = [str(p) for p in paths]
    with _without_cycle_collector(), store.db.transaction():
        return [_import_file(store, p, fmt, source, task, method, eval_keys, batch) for p in paths]


@contextmanager
def _without_cycle_collector() -> Iterator[None]:
    """Records hold no reference cycles; pausing the cyclic collector while millions of them are made saves
    a fifth of the import time. Reference counting still frees every batch as soon as it is written."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass
class _FileImport:
    """What one file's batches have added so far; cross-trajectory lints are found once the file is read."""

    path: str
    format: str = ""
    rows: int = 0
    added: int = 0
    keys: list[QuestionKey] = field(default_factory=list)
    fresh: set[str] = field(default_factory=set)
    sources: list[Source] = field(default_factory=list)
    flagged: dict[str, set[str]] = field(default_factory=dict)

    def count(self, lints: Iterable[Lint]) -> None:
        for x in lints:
            self.flagged.setdefault(x.kind, set()).add(x.trajectory_id)


def _import_file(store: Store, path: str, fmt: str, source: str | None, task: str | None, method: str | None,
                 eval_keys: dict[str, str], batch: int) -> ImportReport:
    acc = _FileImport(path=path)
    for part in iter_batches(path, fmt, source, batch):
        _prepare_trajectories(part, task, method)
        _write_batch(store, acc, part)
    name = acc.keys[0][1] if acc.keys else source or Path(path).stem
    fallback = ReadResult(path=path, format=acc.format, sources=acc.sources)
    sources = _default_sources(fallback, name, acc.rows, task, method)
    lints = _cross_lints(store, acc, eval_keys)
    acc.count(lints)
    store.save_trajectories([], [x for x in lints if x.trajectory_id in acc.fresh], sources)
    counts = {kind: len(acc.flagged[kind]) for kind in sorted(acc.flagged)}
    return ImportReport(path=path, format=acc.format, source=", ".join(s.name for s in sources),
                        rows=acc.rows, added=acc.added, lints=counts)


def _write_batch(store: Store, acc: _FileImport, part: ReadResult) -> None:
    trajs = part.trajectories
    acc.format = part.format
    acc.rows += part.rows
    acc.sources.extend(part.sources)
    lints = list(part.lints) if part.format == "native" else [x for t in trajs for x in lint_trajectory(t)]
    existing = store.existing_ids([t.id for t in trajs])
    acc.fresh.update(t.id for t in trajs if t.id not in existing)
    acc.keys.extend(question_keys(trajs))
    acc.count(lints)
    acc.added += store.save_trajectories(trajs, lints, (), part.revisions, part.annotations)


def _cross_lints(store: Store, acc: _FileImport, eval_keys: dict[str, str]) -> list[Lint]:
    """Duplicate questions (against this file's earlier rows and the stored ones of its sources) and questions
    found in an evaluation split. A native file brings its own lints: only new contamination is added."""
    lints: list[Lint] = []
    if acc.format != "native":
        ids = {k[0] for k in acc.keys}
        existing = store.source_question_keys({k[1] for k in acc.keys}, exclude_ids=ids)
        seen = [k for k, n in existing.items() for _ in range(n)]
        lints.extend(duplicate_lints(acc.keys, seen))
    if eval_keys:
        flagged = acc.flagged.get("eval_contamination", set())
        lints.extend(x for x in contamination_lints(acc.keys, eval_keys) if x.trajectory_id not in flagged)
    return lints
