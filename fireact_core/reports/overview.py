"""What the home page shows: a summary of the database, what each data check means, and importing uploads."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..io import lint as lint
from ..errors import FormatError
from ..files import write_file
from ..io.importer import ImportReport, import_files
from ..names import display_names
from ..store import Store

Upload = tuple[str, bytes]  # (file name as the user named it, content)


@dataclass
class Overview:
    trajectories: int
    sources: list[dict] = field(default_factory=list)  # name, kind, format, model, task, trajectories
    by_task: dict[str, int] = field(default_factory=dict)
    by_method: dict[str, int] = field(default_factory=dict)
    lints: list[dict] = field(default_factory=list)  # kind, trajectories, meaning

    @property
    def empty(self) -> bool:
        return self.trajectories == 0


def lint_docs() -> dict[str, str]:
    """Each lint kind with its one-line meaning, as fireact_core.io.lint documents it."""
    docs: dict[str, str] = {}
    for line in (lint.__doc__ or "").splitlines():
        kind, _, meaning = line.strip().partition(" ")
        if kind in lint.LINT_KINDS:
            docs[kind] = " ".join(meaning.split())
    return {kind: docs.get(kind, "") for kind in lint.LINT_KINDS}


def summary(store: Store) -> Overview:
    """Counts by source, task and method, and trajectories flagged per lint kind (in the order lint.py lists them)."""
    stats = store.stats()
    described = {s.name: s for s in store.list_sources()}
    sources = []
    short = display_names(list(stats.by_source))
    for name, n in stats.by_source.items():
        src = described.get(name)
        sources.append({
            "source": short[name], "trajectories": n, "kind": src.kind if src else None,
            "format": src.format if src else None, "model": src.model if src else None,
            "task": src.task if src else None, "full name": name,
        })
    counts = store.lint_counts()
    docs = lint_docs()
    order = list(docs) + sorted(set(counts) - set(docs))
    lints = [{"lint": k, "trajectories": counts[k], "meaning": docs.get(k, "")} for k in order if counts.get(k)]
    return Overview(trajectories=stats.trajectories, sources=sources, by_task=stats.by_task,
                    by_method=stats.by_method, lints=lints)


def _safe_name(name: str, taken: set[str]) -> str:
    base = Path(name.replace("\\", "/")).name.strip() or "upload.json"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{Path(base).stem}-{n}{Path(base).suffix}"
    taken.add(candidate)
    return candidate


def import_uploads(store: Store, uploads: Iterable[Upload], source: str | None = None, task: str | None = None,
                   method: str | None = None, eval_splits: Iterable[Upload] = (), by: str | None = None) -> list[ImportReport]:
    """Import uploaded files through the same reader as `fireact import`.

    Each upload is written under its own name to a temporary folder (so FireAct's run file names still tell
    task, split and model), then all are imported in one transaction: a bad file raises FormatError naming
    the uploaded file and line, and nothing is written.
    """
    folder = Path(tempfile.mkdtemp(prefix="fireact-upload-"))
    names: dict[str, str] = {}
    try:
        paths, split_paths, taken = list[Any](), list[Any](), set[Any]()
        for group, target in ((uploads, paths), (eval_splits, split_paths)):
            for name, data in group:
                path = folder / _safe_name(name, taken)
                with write_file(path, binary=True) as fh:
                    fh.write(data)
                names[str(path)] = name
                target.append(path)
        try:
            reports = import_files(store, paths, source=source or None, task=task or None, method=method or None,
                                   eval_splits=split_paths, by=by)
        except FormatError as exc:
            raise FormatError(names.get(exc.path, exc.path), exc.line, exc.message) from exc
        for r in reports:
            r.path = names.get(r.path, r.path)
        return reports
    finally:
        shutil.rmtree(folder, ignore_errors=True)
