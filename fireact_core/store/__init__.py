"""The store: one DuckDB file, owned by this package alone (every SQL string lives here)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .chat_import import ChatImportStore
from .connection import Connections, resolve_db_path
from .curation import BrowseStore
from .datasets import DatasetStore
from .forks import ForkStore
from .history import BulkHistory, HistoryStore
from .jobs import JobStore
from .reports import ReportStore
from .runs import RunStore
from .staging import StagedImportStore, scratch_path, share_added, should_stage
from .team import TeamStore
from .trajectories import TrajectoryStore, question_key


class Store(TrajectoryStore, ChatImportStore, HistoryStore, BulkHistory, BrowseStore, RunStore, DatasetStore, JobStore,
            ReportStore, StagedImportStore, TeamStore, ForkStore):
    """All reads and writes of one database. Safe to share between threads and with other processes."""

    def __init__(self, path: str | os.PathLike | None = None, lock_timeout: float = 60.0, linger: float = 0.0):
        """`linger`: seconds the file stays open after the last unit of work (the app's cheap reruns); 0 lets
        go of it at once."""
        self.db = Connections(path, lock_timeout=lock_timeout, linger=linger)
        self.path = self.db.path

    def release(self) -> None:
        """Let go of the database file now, when it lingers idle (see `linger`)."""
        self.db.release()

    @contextmanager
    def session(self) -> Iterator[Any]:
        """Keep one connection open for several calls in this thread (a page run, a batch of reads)."""
        with self.db.connect() as con:
            yield con


class ScratchStore(Store):
    """The scratch database of a staged import (`staging`): its duplicate checks count the main database's rows."""

    def __init__(self, path: str, main: Store):
        super().__init__(path)
        self.main = main

    def get_source(self, name: str):
        """A source named here or in the main database (which file a name holds decides the import's source)."""
        return super().get_source(name) or self.main.get_source(name)

    def count_trajectories(self, source: str | None = None) -> int:
        return super().count_trajectories(source) + self.main.count_trajectories(source)

    def source_question_keys(self, sources: set[str], exclude_ids: set[str]) -> dict[tuple[str, str], int]:
        counts = super().source_question_keys(sources, exclude_ids)
        for key, n in self.main.source_question_keys(sources, exclude_ids).items():
            counts[key] = counts.get(key, 0) + n
        return counts


class StagedImport:
    """Where an import writes (`target`) and what it reported (`reports`, set by the importer)."""

    def __init__(self, target: Store):
        self.target = target
        self.reports: list[Any] = []


@contextmanager
def staged_import(store: Store, inputs: list[str]) -> Iterator[StagedImport]:
    """An import into `store`: large inputs go to a scratch database, copied in when the block ends without
    error (`Store.merge_staged`), each report's `added` then set to what the copy added; small ones straight
    into `store`."""
    if not should_stage(store.path, inputs):
        yield StagedImport(store)
        return
    with scratch_path(store.path) as scratch:
        stage = StagedImport(ScratchStore(scratch, store))
        yield stage
        share_added(stage.reports, store.merge_staged(scratch))


__all__ = ["Store", "question_key", "resolve_db_path", "staged_import"]
