"""Reads kept while the database stays the same: a page run, and the runs after it until something is written,
ask the same questions (the filter's choices, a page of summaries, a run's scores); each is answered once per
state of the database (`Connections.version()`), and every caller gets its own copy of the answer."""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from .repository import Repository

F = TypeVar("F", bound=Callable[..., Any])
MAX_ENTRIES = 512  # answers kept for one state of the database; the oldest go first
MAX_KEY = 4096  # arguments longer than this (thousands of ids) are read afresh each time
_CREATE_LOCK = threading.Lock()


class ReadCache:
    """Answers of one repository for one database version; all dropped when the version changes."""

    def __init__(self) -> None:
        self.version: tuple | None = None
        self.entries: dict[tuple, Any] = {}
        self.lock = threading.Lock()

    def get(self, version: tuple, key: tuple) -> tuple[bool, Any]:
        with self.lock:
            if version != self.version or key not in self.entries:
                return False, None
            return True, self.entries[key]

    def put(self, version: tuple, key: tuple, value: Any) -> None:
        with self.lock:
            if version != self.version:
                self.version, self.entries = version, {}
            if len(self.entries) >= MAX_ENTRIES:
                self.entries.pop(next(iter(self.entries)))
            self.entries[key] = value


def _cache_of(repo: Repository) -> ReadCache:
    cache = repo.__dict__.get("_read_cache")
    if cache is None:
        with _CREATE_LOCK:
            cache = repo.__dict__.setdefault("_read_cache", ReadCache())
    return cache


def cached_read(method: F) -> F:
    """Keep `method`'s answer (a read of the store) for as long as the database is unchanged. Arguments are
    told apart by their `repr` (filters, lists and names all have a faithful one). A read inside a write
    transaction of this thread sees that transaction's own rows, and a read in a snapshot (`Connections.snapshot`)
    sees the state the snapshot began with, so neither is answered from the cache nor kept in it."""

    @functools.wraps(method)
    def read(self: Any, *args: Any, **kwargs: Any) -> Any:
        db = self.db
        with db.connect():  # the file is held from here, so no other process writes between version and read
            if getattr(db._local, "in_tx", False):  # a write transaction, or a snapshot of an older state
                return method(self, *args, **kwargs)
            key = (method.__name__, repr(args), repr(sorted(kwargs.items())))
            if len(key[1]) + len(key[2]) > MAX_KEY:
                return method(self, *args, **kwargs)
            version = db.version()
            cache = _cache_of(self)
            found, value = cache.get(version, key)
            if not found:
                value = method(self, *args, **kwargs)
                cache.put(version, key, value)
            return copy.deepcopy(value)

    return read  # type: ignore[return-value]
