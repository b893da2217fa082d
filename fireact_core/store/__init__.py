"""The store: one DuckDB file, owned by this package alone (every SQL string lives here)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator

from .chat_import import ChatImportStore
from .connection import Connections, resolve_db_path
from .curation import BrowseStore
from .datasets import DatasetStore
from .history import BulkHistory, HistoryStore
from .jobs import JobStore
from .reports import ReportStore
from .runs import RunStore
from .team import TeamStore
from .trajectories import TrajectoryStore, question_key


class Store(TrajectoryStore, ChatImportStore, HistoryStore, BulkHistory, BrowseStore, RunStore, DatasetStore, JobStore,
            ReportStore, TeamStore):
    """All reads and writes of one database. Safe to share between threads and with other processes."""

    def __init__(self, path: str | os.PathLike | None = None, lock_timeout: float = 60.0):
        self.db = Connections(path, lock_timeout=lock_timeout)
        self.path = self.db.path

    @contextmanager
    def session(self) -> Iterator[Any]:
        """Keep one connection open for several calls in this thread (a page run, a batch of reads)."""
        with self.db.connect() as con:
            yield con


__all__ = ["Store", "resolve_db_path", "question_key"]
