"""Importing files into the store, all of them in one transaction, so bad input leaves the database exactly
as it was."""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from itertools import chain, islice
from pathlib import Path
from typing import Any, Iterable, Iterator, cast

import pyarrow as pa

from ..background import in_background
from ..errors import FireactError, FormatError
from ..settings import env_number
from .formats import BATCH, STREAMED, LineRange, ReadResult, detect_format, iter_batches, iter_span_batches
from .formats.common import MAX_RECORD_BYTES, first_line, iter_line_ranges, iter_lines, loads, may_have_long_line
from .formats.fireact import openai_indexed_batches
from .formats.limits import file_needs_line_checks
from .lint import (QuestionKey, contamination_lints, duplicate_lints, lint_trajectory, load_eval_questions,
                   question_key_column, question_keys)
from .parsing import infer_method, infer_task
from ..records import METHODS, Lint, Method, Source, TrajectoryData, stable_id
from .sources import claim_source
from ..store import Store, links_in, staged_import, trajectory_tables, without_ids
from ..generation.tasks import get_task, list_tasks
from ..curation.team.roles import actor

POOL_STRETCH = 2500  # lines a pool process reads at a time
HELD_STEPS = 8 * 122_880  # new steps held back to write at once (eight of DuckDB's row groups, about 0.5 GB)


@dataclass
class ImportReport:
    path: str
    format: str
    source: str
    rows: int
    added: int
    lints: dict[str, int] = field(default_factory=dict)
    renamed_from: str | None = None  # the source name asked for, when another file holds it (`sources`)


def _classify(t: TrajectoryData, task: str | None, method: str | None) -> TrajectoryData:
    """Method and task, given or inferred (set in place: the trajectory is fresh from a reader)."""
    if method or t["method"] == "unknown":
        t["method"] = cast(Method, method) or infer_method(t["steps"])
    if task or t["task"] in (None, "unknown"):
        t["task"] = task or infer_task(t["question"], t["final_answer"], t["gold"])
    return t


def _score(t: TrajectoryData, tasks: frozenset[str]) -> TrajectoryData:
    """Score against the gold answer where the file gave one but no score (set in place)."""
    if t["gold"] is None or t["em"] is not None or t["task"] not in tasks:
        return t
    s = get_task(t["task"]).score(t["final_answer"] or "", t["gold"])
    t["em"], t["f1"] = s.em, s.f1
    if t["reward"] is None:
        t["reward"] = s.reward
    return t


def _prepare(records: list[TrajectoryData], fmt: str, task: str | None, method: str | None) -> None:
    """Classify and score (a native file's trajectories are as they were exported: only a given task or method
    changes them)."""
    if fmt != "native":
        tasks = frozenset(list_tasks())
        for t in records:
            _score(_classify(t, task, method), tasks)
    elif task or method:
        for t in records:
            _classify(t, task, method)


def _default_sources(result: ReadResult, name: str, attempted: int, task: str | None, method: str | None) -> list[Source]:
    sources = result.sources or [Source(name=name, format=result.format, path=result.path, attempted=attempted)]
    for src in sources:
        src.task = task or src.task
        src.method = method or src.method
    return sources


def prepare(result: ReadResult, task: str | None = None, method: str | None = None) -> ReadResult:
    """Classify and score what a reader found, and name its source (the file's, unless it brought its own)."""
    _prepare(result.records, result.format, task, method)
    name = result.records[0]["source"] if result.records else Path(result.path).stem
    result.sources = _default_sources(result, name, len(result.records), task, method)
    return result


def import_files(store: Store, paths: Iterable[str | Path], fmt: str = "auto", source: str | None = None,
                 task: str | None = None, method: str | None = None,
                 eval_splits: Iterable[str | Path] = (), batch: int = BATCH,
                 parallel: bool | None = None, sql: bool | None = None, by: str | None = None) -> list[ImportReport]:
    """Read, check and write every file in one transaction: bad input anywhere leaves the database as it was.
    OpenAI chat JSONL is read by DuckDB and its regular rows parsed in SQL (`sql`; None: unless
    FIREACT_IMPORT_SQL=0), the rest by the Python readers. Those stream files through in batches of `batch`
    trajectories, so memory stays flat however large they are. Large JSONL files are read by forked processes
    when `parallel` is True, or when it is None and this process runs one thread only (forking a threaded
    process such as the app's server is not safe)."""
    actor(store, by, "import")
    if task and task not in list_tasks():
        raise FireactError(f"unknown task '{task}': choose one of {', '.join(list_tasks())}")
    if method and method not in METHODS:
        raise FireactError(f"unknown method '{method}': choose one of {', '.join(METHODS)}")
    eval_keys = load_eval_questions(eval_splits)
    names = [str(p) for p in paths]
    if parallel is None:
        parallel = threading.active_count() == 1
    if sql is None:
        sql = os.environ.get("FIREACT_IMPORT_SQL", "1") != "0"
    in_sql = {p for p in names if sql and _is_chat(p, fmt)}
    while True:
        scans: list[tuple[str, Future]] = []
        try:
            with _without_cycle_collector(), _pool_for([p for p in names if p not in in_sql], fmt, parallel) as pool, \
                    staged_import(store, names, before_landing=partial(_check_scans, scans)) as stage, \
                    stage.target.db.transaction():
                stage.reports = [_import_file(stage.target, p, fmt, source, task, method, eval_keys, batch, pool,
                                              p in in_sql, scans) for p in names]
                if not stage.staged:
                    _check_scans(scans)
            return stage.reports
        except _LineChecksNeeded as exc:  # nothing of this try was kept: again, with those files read line by line
            in_sql.difference_update(exc.paths)


class _LineChecksNeeded(Exception):
    """Chat files read by DuckDB may hold a value the bounds refuse (`file_needs_line_checks`), as their search
    found once the rows were written: the import is rolled back and made again, those files read line by line."""

    def __init__(self, paths: list[str]):
        super().__init__(", ".join(paths))
        self.paths = paths


def _check_scans(scans: list[tuple[str, Future]]) -> None:
    """Before anything lands: wait for the searches of the chat files read by DuckDB, and start again (see
    `_LineChecksNeeded`) if one found what only the line-by-line reader checks."""
    flagged = [path for path, risky in scans if risky.result()]  # every search ends before a new try forks readers
    if flagged:
        raise _LineChecksNeeded(flagged)


def _is_chat(path: str, fmt: str) -> bool:
    """Whether the file is OpenAI chat JSONL (given, or told from its first line)."""
    if fmt != "auto":
        return fmt == "openai-jsonl"
    try:
        return os.path.isfile(path) and detect_format(path, first_line(path)) == "openai-jsonl"
    except FireactError:
        return False


def _workers() -> int:
    return min(os.cpu_count() or 1, 4)


def pool_lines() -> int:
    """Files of more lines than this are read by a pool of processes (FIREACT_IMPORT_POOL_LINES)."""
    return int(env_number("FIREACT_IMPORT_POOL_LINES", 20000))


@contextmanager
def _pool_for(paths: list[str], fmt: str, parallel: bool) -> Iterator[Any]:
    """A pool of reader processes when a JSONL file may be large enough to need one (a line is at least 32
    bytes), made before the database is opened; None otherwise, or on a single core."""
    workers = _workers()
    big = any(os.path.isfile(p) and os.path.getsize(p) > 32 * pool_lines() for p in paths)
    if not parallel or workers < 2 or not big or (fmt != "auto" and fmt not in STREAMED) or "fork" not in mp.get_all_start_methods():
        yield None
        return
    pool = mp.get_context("fork").Pool(workers)
    try:
        yield pool
    finally:
        pool.terminate()
        pool.join()


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
    held: list[tuple[Any, Any]] = field(default_factory=list)  # new (trajectories, steps) tables not written yet

    def count(self, lints: Iterable[Lint]) -> None:
        for x in lints:
            self.flagged.setdefault(x.kind, set()).add(x.trajectory_id)


@dataclass
class _Batch:
    """One batch of trajectories ready to write: Arrow tables, and what the file's report and lints need."""

    format: str
    rows: int
    trajs: Any
    steps: Any
    ids: list[str]
    keys: list[QuestionKey]
    lints: list[Lint]
    sources: list[Source]
    revisions: list[Any]
    annotations: list[Any]


def _build_batch(part: ReadResult, task: str | None, method: str | None) -> _Batch:
    """Classify, score and lint what a reader found, and build its Arrow tables."""
    records = part.records
    _prepare(records, part.format, task, method)
    lints = list(part.lints) if part.format == "native" else [x for t in records for x in lint_trajectory(t)]
    trajs, steps = trajectory_tables(records)
    ids, keys = [t["id"] for t in records], question_keys(records)
    return _Batch(part.format, part.rows, trajs, steps, ids, keys, lints, part.sources, part.revisions, part.annotations)


def _import_file(store: Store, path: str, fmt: str, source: str | None, task: str | None, method: str | None,
                 eval_keys: dict[str, str], batch: int, pool: Any, in_sql: bool,
                 scans: list[tuple[str, Future]]) -> ImportReport:
    acc = _FileImport(path=path)
    claim = None
    if (detect_format(path, first_line(path)) if fmt == "auto" else fmt) != "native":
        claim = claim_source(store, path, source or Path(path).stem)
        source = claim.name
    if not (in_sql and _import_chat_in_sql(store, acc, path, source, task, method, batch, scans)):
        for part in _batches(path, fmt, source, task, method, batch, pool):
            _write_batch(store, acc, part)
        _write_held(store, acc)
    if acc.format == "native" and source is not None:
        acc.sources = acc.sources[:1]  # the pool's readers each rename their first source record
    name = acc.keys[0][1] if acc.keys else source or Path(path).stem
    fallback = ReadResult(path=path, format=acc.format, sources=acc.sources)
    sources = _default_sources(fallback, name, acc.rows, task, method)
    if claim is not None:
        sources[0].meta["sha256"] = claim.sha256()
    lints = _cross_lints(store, acc, eval_keys)
    acc.count(lints)
    store.save_trajectories([], [x for x in lints if x.trajectory_id in acc.fresh], sources)
    counts = {kind: len(acc.flagged[kind]) for kind in sorted(acc.flagged)}
    return ImportReport(path=path, format=acc.format, source=", ".join(s.name for s in sources),
                        rows=acc.rows, added=acc.added, lints=counts,
                        renamed_from=claim.asked if claim is not None and claim.renamed else None)


def _import_chat_in_sql(store: Store, acc: _FileImport, path: str, source: str | None, task: str | None,
                        method: str | None, batch: int, scans: list[tuple[str, Future]]) -> bool:
    """Import an OpenAI chat JSONL file through DuckDB (`store.chat_import`): its regular rows are parsed in
    SQL, the rest by the Python reader, and both are written in file order. False, with nothing written,
    when DuckDB could not read every line (the line-by-line reader then says what is wrong).

    Meanwhile the file is searched for what the bounds refuse (`file_needs_line_checks`), on CPU time the import
    leaves idle (`in_background`): it joins `scans`, waited for only before the import lands, and finding
    something there makes the import start again (`_LineChecksNeeded`)."""
    name = source or Path(path).stem
    if may_have_long_line(path):  # the line-by-line reader says which line
        return False
    risky = in_background(file_needs_line_checks, path)
    try:
        try:
            rows, readable = store.stage_chat(path, MAX_RECORD_BYTES)
        except Exception:
            if risky.result():  # the line-by-line reader says which line
                return False
            raise
        if not rows or not readable:
            return False
        with ThreadPoolExecutor(1) as pool:  # the ids are made while DuckDB parses (it lets go of the GIL)
            making_ids = pool.submit(lambda: [stable_id(name, i) for i in range(rows)])
            parsed, rest = store.parse_staged_chat()
            all_ids = making_ids.result()
        index = parsed.column("i").to_pylist()
        ids = [all_ids[i] for i in index]
        built = [_build_batch(part, task, method)
                 for part in openai_indexed_batches(path, _rows_at(path, rest), name, batch)]
        py_ids = [x for b in built for x in b.ids]
        existing = store.existing_ids(ids + py_ids)
        keys = pa.table({"i": parsed.column("i"), "id": pa.array(ids, pa.string()),
                         "fresh": pa.array([i not in existing for i in ids], pa.bool_())})
        empty = trajectory_tables([])
        py_trajs = pa.concat_tables([empty[0], *(b.trajs for b in built)])
        py_trajs = py_trajs.append_column("i", pa.array(rest, pa.int64())).append_column(
            "fresh", pa.array([i not in existing for i in py_ids], pa.bool_()))
        py_steps = pa.concat_tables([empty[1], *(b.steps for b in built)])
        with ThreadPoolExecutor(1) as pool:  # questions keyed and classified while DuckDB writes the steps
            classified = pool.submit(_classify_parsed, parsed, task)
            store.insert_staged_chat_steps(keys, py_trajs, py_steps)
            qnorms, classes = classified.result()
        acc.added += store.insert_staged_chat_trajectories(classes, py_trajs, name, method)
        py_lints = [x for b in built for x in b.lints]
        store.save_attached(py_lints, existing=existing)
        id_of = dict(zip(index, ids))
        for kind, i in store.staged_chat_lints():
            acc.flagged.setdefault(kind, set()).add(id_of[i])
        acc.count(py_lints)
    finally:
        store.drop_chat_stage()
    scans.append((path, risky))
    acc.format = "openai-jsonl"
    acc.rows += rows
    keys_in_order = [(t, name, q) for t, q in zip(ids, qnorms)]
    if rest:  # merge the Python reader's rows back into file order
        keyed = sorted(list(zip(index, keys_in_order)) + list(zip(rest, (k for b in built for k in b.keys))))
        keys_in_order = [k for _, k in keyed]
    acc.keys.extend(keys_in_order)
    acc.fresh.update(i for i in ids + py_ids if i not in existing)
    return True


def _classify_parsed(parsed: pa.Table, task: str | None) -> tuple[list[str], pa.Table]:
    """The question keys of the rows parsed in SQL, and a table of (i, qnorm, task) for them."""
    questions = parsed.column("question").to_pylist()
    qnorms = question_key_column(questions)
    tasks = [task] * len(questions) if task else [
        infer_task(q, a) for q, a in zip(questions, parsed.column("final_answer").to_pylist())]
    return qnorms, pa.table({"i": parsed.column("i"), "qnorm": pa.array(qnorms, pa.string()),
                             "task": pa.array(tasks, pa.string())})


def _rows_at(path: str, indices: list[int]) -> Iterator[tuple[int, int, Any]]:
    """(index, line number, parsed row) of the file's records (non-blank lines) at `indices`, in order."""
    wanted = set(indices)
    if not wanted:
        return
    for index, (line, text) in enumerate(iter_lines(path)):
        if index in wanted:
            yield index, line, loads(path, line, text)
            wanted.discard(index)
            if not wanted:
                return


def _batches(path: str, fmt: str, source: str | None, task: str | None, method: str | None, batch: int,
             pool: Any) -> Iterator[_Batch]:
    """The file's batches in order: read here, or, for a JSONL file of more than `pool_lines()` lines, by the
    pool, stretch by stretch, a few stretches ahead of the writer (so memory stays flat)."""
    spans = _pooled_spans(path, fmt, batch) if pool is not None else None
    if spans is None:
        for part in iter_batches(path, fmt, source, batch):
            yield _build_batch(part, task, method)
        return
    resolved = detect_format(path, first_line(path)) if fmt == "auto" else fmt
    jobs = ((path, resolved, source, span, task, method, batch) for span in spans)
    pending = deque(pool.apply_async(_build_span, (job,)) for job in islice(jobs, _workers() + 1))
    while pending:
        built = pending.popleft().get()
        job = next(jobs, None)
        if job is not None:
            pending.append(pool.apply_async(_build_span, (job,)))
        if isinstance(built, tuple):
            raise FormatError(*built)
        yield from built


def _spans(path: str, fmt: str, batch: int) -> list[LineRange] | None:
    """Stretches of a JSONL file for the pool, or None when it is small (or not JSONL)."""
    spans = _pooled_spans(path, fmt, batch)
    return None if spans is None else list(spans)


def _pooled_spans(path: str, fmt: str, batch: int) -> Iterator[LineRange] | None:
    """`_spans` as they are found: once one begins past the first `pool_lines()` lines the file is the pool's, and
    the pool reads the first ones while the rest are found (finding them all first left both readers idle for
    a quarter of a second of a 100,000-line file)."""
    resolved = detect_format(path, first_line(path)) if fmt == "auto" else fmt
    if resolved not in STREAMED:
        return None
    found = iter_line_ranges(path, max(1, min(batch, POOL_STRETCH)))
    head: list[LineRange] = []
    for span in found:
        head.append(span)
        if span.index >= pool_lines() and len(head) > 1:
            return chain(head, found)
    return None


def _build_span(job: tuple) -> list[_Batch] | tuple[str, int, str]:
    """One stretch's batches (in a pool process); a FormatError comes back as (path, line, message)."""
    path, fmt, source, span, task, method, batch = job
    gc.disable()
    try:
        return [_build_batch(part, task, method) for part in iter_span_batches(path, fmt, source, span, batch)]
    except FormatError as exc:
        return (exc.path, exc.line, exc.message)


def _write_batch(store: Store, acc: _FileImport, part: _Batch) -> None:
    """Check a batch against what is stored and what this file gave already, and hold its new trajectories
    until about HELD_STEPS steps are waiting: DuckDB writes large appends once, compressed and final, while
    small ones are written again at the next checkpoint."""
    acc.format = part.format
    acc.rows += part.rows
    acc.sources.extend(part.sources)
    existing = store.existing_ids(part.ids) | acc.fresh.intersection(part.ids)
    acc.fresh.update(i for i in part.ids if i not in existing)
    acc.keys.extend(part.keys)
    acc.count(part.lints)
    trajs, steps = without_ids(part.trajs, part.steps, existing)
    acc.held.append((trajs, steps))
    acc.added += trajs.num_rows
    store.save_attached(part.lints, part.revisions, part.annotations, existing)
    if sum(s.num_rows for _, s in acc.held) >= HELD_STEPS:
        _write_held(store, acc)


def _write_held(store: Store, acc: _FileImport) -> None:
    if acc.held:
        trajs = pa.concat_tables([t for t, _ in acc.held])
        store.insert_tables(trajs, pa.concat_tables([s for _, s in acc.held]))
        store.add_forks(links_in(trajs))  # continuations keep the link to their parent
        acc.held.clear()


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
