"""Exporting trajectories from the store to any writer format, streamed batch by batch."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ..errors import FireactError
from ..files import write_file
from .formats import EXPORT_FORMATS, WRITERS, run_file_name
from ..records import Trajectory
from ..store import Store


def _with_history(store: Store, trajs: Iterator[Trajectory], batch: int = 2000):
    chunk: list[Trajectory] = []
    for t in trajs:
        chunk.append(t)
        if len(chunk) >= batch:
            yield from _attach(store, chunk)
            chunk = []
    yield from _attach(store, chunk)


def _attach(store: Store, chunk: list[Trajectory]):
    if not chunk:
        return
    revs, anns, lints = store.history_of([t.id for t in chunk])
    for t in chunk:
        yield t, revs.get(t.id, []), anns.get(t.id, []), lints.get(t.id, [])


def write_trajectories(store: Store, fmt: str, out: str | Path, trajs: Iterator[Trajectory], sources=(),
                       force: bool = False) -> int:
    """Write to `out` through a temporary file (`files.write_file`), so a failed export never leaves half a
    file behind; an existing `out` is replaced only with `force`."""
    if fmt not in WRITERS:
        raise FireactError(f"unknown export format '{fmt}': choose one of {', '.join(EXPORT_FORMATS)}")
    with write_file(out, force=force) as fh:
        if fmt == "native":
            n = WRITERS[fmt](_with_history(store, trajs), fh, sources=sources)
        elif fmt == "fireact-run":
            n = WRITERS[fmt](trajs, fh, sources=sources)
        else:
            n = WRITERS[fmt](trajs, fh)
    return n


def export(store: Store, fmt: str, out: str | Path, source: str | None = None, force: bool = False) -> int:
    """Export every trajectory (or one source's) in import order; returns how many were written."""
    if source is not None and store.get_source(source) is None and not store.count_trajectories(source):
        raise FireactError(f"no source named '{source}': see `fireact stats` for the sources there are")
    sources = [s for s in store.list_sources() if source is None or s.name == source]
    if fmt == "fireact-run":
        out = _run_path(store, out, source, sources)
    return write_trajectories(store, fmt, out, store.iter_trajectories(source=source), sources, force=force)


def _run_path(store: Store, out: str | Path, source: str | None, sources: list) -> Path:
    """Where a run file goes: `out`, or in the folder `out` under generation.py's file name for the run."""
    if source is None:
        names = store.report_run_names()
        if len(names) != 1:
            raise FireactError("a FireAct run file holds one run: say which with --source NAME")
        sources = [s for s in store.list_sources() if s.name == names[0]]
    out = Path(out)
    if not out.is_dir():
        return out
    if not sources:
        raise FireactError(f"'{source}' has no source record to name a run file after: give --out a file name")
    return out / run_file_name(sources[0])
