"""The one place that opens DuckDB.

A DuckDB file takes one writing process at a time, and the app and a CLI job must share one database.
So a connection is opened for a unit of work and closed after it; a process that finds the file locked
waits and tries again (with backoff) until `lock_timeout` runs out. Within a thread, nested units of work
reuse the open connection, and `Store.session()` keeps one open across several calls (a page run).

Opening the file costs about a tenth of a second (and its first reads find no page in memory), so a process that
serves people (the app) keeps it open for `linger` seconds after its last unit of work: the calls of a page run,
and the runs a person's clicks start one after another, take cursors of that one open database (`cursor()`, a
fraction of a millisecond). It lets go of the file after `linger` idle seconds, or as soon as no unit of work
runs once another process of this package waits for it (a waiting process touches `DB.waiting` next to the
file): a CLI import or a training job gets its turn as before. `version()` tells when anything may have changed,
for caches of reads.
"""

from __future__ import annotations

import os
import random
import threading
import time
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, overload

import duckdb

from ..errors import ConflictError, FireactError, StoreError
from ..files import write_text
from ..settings import env_number
from .schema import BOOKKEEPING, MIGRATIONS

DEFAULT_DB = "fireact.duckdb"
Error = duckdb.Error
# DuckDB shares one database instance between the connections of a process; opening or closing connections
# from several threads at once can hand out an instance before its Arrow scan is registered. One lock fixes it.
_OPEN_LOCK = threading.Lock()
# Transactions of one process on one file take turns: DuckDB lets two threads' transactions run at once and
# fails the later one on any row both touched (or lets both read `max(seq)` and write the same number).
# Other processes are kept out by the file lock itself.
_WRITERS: dict[str, threading.RLock] = {}
WATCH_S = 0.05  # how often a lingering database looks whether another process waits for the file
_WRITERS_LOCK = threading.Lock()


def _writer_lock(path: str) -> threading.RLock:
    key = path if path == ":memory:" else os.path.realpath(os.path.expanduser(path))
    with _WRITERS_LOCK:
        return _WRITERS.setdefault(key, threading.RLock())


def resolve_db_path(path: str | os.PathLike | None = None) -> str:
    """`--db PATH`, else `$FIREACT_DB`, else `fireact.duckdb` in the working directory."""
    return str(path or os.environ.get("FIREACT_DB") or DEFAULT_DB)


@overload
def utc(ts: datetime) -> datetime: ...
@overload
def utc(ts: None) -> None: ...
def utc(ts: datetime | None) -> datetime | None:
    """DuckDB TIMESTAMP columns hold naive UTC; records hold aware datetimes."""
    if ts is None:
        return None
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts


@overload
def naive(ts: datetime) -> datetime: ...
@overload
def naive(ts: None) -> None: ...
def naive(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    return ts.astimezone(timezone.utc).replace(tzinfo=None) if ts.tzinfo else ts


class Connection:
    """A DuckDB connection that finishes any half-read result (a `fetchone()`) before registering or
    unregistering an Arrow table, which DuckDB otherwise refuses, and lets a failed statement's error through
    the `unregister` of its cleanup. Everything else is passed through."""

    __slots__ = ("_con",)

    def __init__(self, con: Any):
        self._con = con

    def register(self, name: str, obj: Any) -> Any:
        self._con.complete()
        return self._con.register(name, obj)

    def unregister(self, name: str) -> Any:
        """Let go of a registered table. After a failed statement DuckDB takes no other one until the rollback:
        the table then stays registered (a later `register` of the name replaces it), and the failed statement's
        own error is the one the caller sees, not this refusal."""
        self._con.complete()
        try:
            return self._con.unregister(name)
        except duckdb.TransactionException:
            return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


class Connections:
    def __init__(self, path: str | os.PathLike | None = None, lock_timeout: float = 60.0, linger: float = 0.0,
                 compress: bool = True, keyed: bool = True, spill: str | None = None):
        """`compress`: False for a database written once and read once (a staged import's scratch database):
        its columns are stored as they are, which writes and reads them faster than compressing them would.
        `keyed`: False for such a database too: its tables get no key (the main database's keys decide what is
        copied in), so writing them builds no index. `spill`: for an in-memory database (":memory:"), the folder
        its rows go to beyond `spill_limit()` bytes, so a large import's memory stays bounded."""
        self.path = resolve_db_path(path)
        self.compress = compress
        self.lock_timeout = lock_timeout
        self.linger = linger
        self._local = threading.local()
        self._held: Any = None  # the open database while units of work run or linger
        self._held_since = 0
        self._idle_since = 0.0
        self._users = 0
        self._held_lock = threading.Lock()
        self._held_cursors: set[int] = set()  # ids of the cursors handed out from `_held`, in use now
        self._linger_blocks = 0  # `lingering` blocks under way, in any thread
        self._waiting = self.path + ".waiting"
        self._commits = 0
        self._memory = _memory_database(compress, spill) if self.path == ":memory:" else None
        self._writer = threading.RLock() if self._memory is not None else _writer_lock(self.path)
        if self.path != ":memory:":
            parent = Path(self.path).expanduser().resolve().parent
            if not parent.is_dir():
                raise StoreError(f"{self.path}: folder {parent} does not exist")
        with self._writer, self.connect() as con:
            migrate(con, self.path, keyed=keyed)

    def _open(self) -> Any:
        if self._memory is not None:
            return self._memory.cursor()
        with self._held_lock:
            if self._held is None and self.linger <= 0:
                held = None
            else:
                if self._held is None:
                    self._held = self._open_file()
                    self._held_since = time.time_ns()
                    threading.Thread(target=self._watch, name="fireact-db-linger", daemon=True).start()
                with _OPEN_LOCK:
                    held = self._held.cursor()
                self._users += 1
                self._held_cursors.add(id(held))
        return held if held is not None else self._open_file()

    def _close(self, con: Any) -> None:
        """Close a unit of work's connection. One handed out by the lingering database is counted back whatever
        `linger` says now (a `lingering` block of another thread may have ended meanwhile), so the database is
        let go only when no cursor of it is in use."""
        with self._held_lock:
            lingered = id(con) in self._held_cursors
        if not lingered:
            with _OPEN_LOCK:
                con.close()
            return
        with self._held_lock:
            self._held_cursors.discard(id(con))
            with _OPEN_LOCK:
                con.close()
            self._users -= 1
            if not self._users:
                self._idle_since = time.monotonic()
                if self.linger <= 0 or self._someone_waits():
                    self._let_go()

    def _watch(self) -> None:
        """While the database lingers: let it go after `linger` idle seconds, or at once when another process
        asks for it (see `_ask_for_turn`)."""
        while True:
            time.sleep(WATCH_S)
            with self._held_lock:
                if self._held is None:
                    return
                if self._users:
                    continue
                if time.monotonic() - self._idle_since >= self.linger or self._someone_waits():
                    self._let_go()
                    return

    def _someone_waits(self) -> bool:
        try:
            return os.stat(self._waiting).st_mtime_ns >= self._held_since
        except OSError:
            return False

    def _ask_for_turn(self) -> None:
        """Tell a process that holds the file only because it lingers that this one waits for it."""
        try:
            write_text(self._waiting, f"{os.getpid()}\n")
        except (FireactError, OSError):
            pass  # a read-only folder: the holder lets go after its `linger` anyway

    def _let_go(self) -> None:
        """Close the lingering database (the caller holds `_held_lock` and no unit of work runs)."""
        held, self._held = self._held, None
        if held is not None:
            with _OPEN_LOCK:
                held.close()

    @contextmanager
    def lingering(self, seconds: float) -> Iterator[None]:
        """Keep the file open between this block's units of work (as the app does; see `linger`): a long series
        of short transactions, e.g. a staged import's stretches, pays for opening the file once, and still lets
        go as soon as another process asks for it. A database that lingers already is left as it is."""
        if self._memory is not None:
            yield
            return
        with self._held_lock:
            owned = self._linger_blocks > 0 or self.linger <= 0  # the app's store lingers for good: left as it is
            if owned:
                self._linger_blocks += 1
                self.linger = max(self.linger, seconds)
        if not owned:
            yield
            return
        try:
            yield
        finally:
            with self._held_lock:
                self._linger_blocks -= 1
                last = not self._linger_blocks
                if last:
                    self.linger = 0.0
            if last:
                self.release()

    def someone_waits(self) -> bool:
        """Another process of this package asked for the file since this one opened it."""
        return self._someone_waits()

    def release(self) -> None:
        """Let go of a lingering database now, when no unit of work is running."""
        with self._held_lock:
            if not self._users:
                self._let_go()

    def close(self) -> None:
        """Free an in-memory database (a staged import's scratch one) once nothing will read it again; a file
        is let go as `release` does."""
        if self._memory is not None:
            self._memory.close()
        else:
            self.release()

    def version(self) -> tuple:
        """Changes whenever the database may have changed: a transaction of this process committed, or the
        file (or its write-ahead log) was written, by this process or another one."""
        stamp: list[Any] = [self._commits]
        if self._memory is None:
            for name in (self.path, self.path + ".wal"):
                try:
                    st = os.stat(name)
                    stamp += [st.st_mtime_ns, st.st_size]
                except OSError:
                    stamp += [None, None]
        return tuple(stamp)

    def _open_file(self) -> Any:
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.02
        while True:
            try:
                with _OPEN_LOCK:
                    con = duckdb.connect(self.path)
                if not self.compress:
                    con.execute("SET force_compression = 'uncompressed'")
                return con
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise StoreError(f"{self.path}: cannot open the database: {exc}") from exc
            except duckdb.Error as exc:
                raise StoreError(f"{self.path}: not a FireAct Studio database or damaged: {exc}") from exc
            self._ask_for_turn()
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 1.6, 0.2)  # short pauses: a writer lets go for INDEX_GAP_S and more

    @contextmanager
    def connect(self) -> Iterator[Any]:
        con = getattr(self._local, "con", None)
        if con is not None:
            yield con
            return
        con = Connection(self._open())
        self._local.con = con
        try:
            yield con
        finally:
            self._local.con = None
            if self._memory is None:
                self._close(con._con)
            else:
                con.close()

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """One write transaction; the process's other threads wait for it (see `_WRITERS`). A clash with a
        concurrent writer is a ConflictError, any other database failure (a full disk) a StoreError; either
        way nothing of the transaction is kept."""
        with self.connect() as con:
            if getattr(self._local, "in_tx", False) == "read":
                raise RuntimeError("a write inside a read-only snapshot would be rolled back")
            if getattr(self._local, "in_tx", False):
                yield con
                return
            with self._writer:
                con.execute("BEGIN TRANSACTION")
                self._local.in_tx = True
                try:
                    yield con
                    con.execute("COMMIT")
                except BaseException as exc:
                    self._commits += 1  # a failed COMMIT may have written part of the log: caches start again
                    _rollback(con)
                    if isinstance(exc, duckdb.Error):
                        raise database_error(self.path, exc) from exc
                    raise
                else:
                    self._commits += 1
                finally:
                    self._local.in_tx = False

    @contextmanager
    def in_row_groups(self, con: Any) -> Iterator[None]:
        """For a database written once and read once (not `compress`): the block's statements run on one
        thread, which appends rows in their order into whole row groups, however the Arrow tables they come
        from are cut (see `TrajectoryRepository.insert_tables`). The scratch database is the import's own: no
        other work shares its threads. After a failed statement DuckDB takes no other one until the transaction
        is rolled back: the threads are then left as they are, and the statement's own error is the one raised
        (the failed import's scratch database is dropped with it)."""
        if self.compress:
            yield
            return
        threads = int(con.execute("SELECT current_setting('threads')").fetchone()[0])
        con.execute("SET threads = 1")
        try:
            yield
        finally:
            with suppress(duckdb.Error):
                con.execute(f"SET threads = {threads}")

    @contextmanager
    def snapshot(self) -> Iterator[Any]:
        """A read-only transaction: several reads that see one state of the database, without waiting for
        this process's writers."""
        with self.connect() as con:
            if getattr(self._local, "in_tx", False):
                yield con
                return
            con.execute("BEGIN TRANSACTION")
            self._local.in_tx = "read"
            try:
                yield con
            finally:
                self._local.in_tx = False
                _rollback(con)


SPILL_FLOOR_MB = 256  # DuckDB reads a JSONL file with buffers of twice the longest line allowed (16 MB), per thread


def spill_limit() -> int:
    """Bytes an in-memory scratch database keeps in memory before it writes rows to its spill folder
    (FIREACT_IMPORT_MEMORY_MB, 1024 by default, at least SPILL_FLOOR_MB)."""
    return int(max(env_number("FIREACT_IMPORT_MEMORY_MB", 1024), SPILL_FLOOR_MB) * 2**20)


def _memory_database(compress: bool, spill: str | None) -> Any:
    """A DuckDB instance of its own in memory; with `spill`, bounded (see `Connections`)."""
    config: dict[str, str | bool | int | float | list[str]] = (
        {"temp_directory": spill, "memory_limit": f"{spill_limit() // 2**20}MiB"} if spill else {})
    con = duckdb.connect(":memory:", config=config)
    if not compress:
        con.execute("SET force_compression = 'uncompressed'")
    return con


def _rollback(con: Any) -> None:
    """Roll back what is left of a transaction (a failed COMMIT has ended it already)."""
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass


def database_error(path: str, exc: Exception) -> Exception:
    """The error to show for a DuckDB failure inside a unit of work."""
    text = str(exc)
    clash = isinstance(exc, duckdb.ConstraintException) and ("Duplicate key" in text or "PRIMARY KEY" in text.upper())
    if isinstance(exc, duckdb.TransactionException) or clash:
        return ConflictError(f"{path}: another session changed the same rows at the same time; nothing of this "
                             "change was saved: reload and try again")
    if "No space left" in text or "disk is full" in text.lower():
        return StoreError(f"{path}: the disk is full; nothing of this change was saved: free some space and try again")
    if isinstance(exc, duckdb.IOException):
        return StoreError(f"{path}: cannot write the database: {text.splitlines()[0] if text else exc}")
    return exc


def migrate(con: Any, path: str = "", keyed: bool = True) -> None:
    """Run the scripts this database has not run yet; `keyed` False: all but the one that declares the keys."""
    con.execute(BOOKKEEPING)
    done = dict(con.execute("SELECT component, max(version) FROM schema_migrations GROUP BY component").fetchall())
    refuse_newer(path, done)
    for component, scripts in MIGRATIONS.items():
        if component == "keys" and not keyed:
            continue
        for version, script in enumerate(scripts, start=1):
            if version <= done.get(component, 0):
                continue
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(script)
                con.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                    [component, version, naive(datetime.now(timezone.utc))],
                )
                con.execute("COMMIT")
            except duckdb.Error as exc:
                _rollback(con)
                raise StoreError(f"migration {component} {version} failed: {exc}") from exc


def refuse_newer(path: str, done: dict[str, int]) -> None:
    """A StoreError when the database was written by a newer FireAct Studio (a migration this one does not
    know has run): reading or writing it could lose what the newer version keeps."""
    for component, version in sorted(done.items()):
        known = len(MIGRATIONS.get(component, ()))
        if component in MIGRATIONS and version > known:
            raise StoreError(f"{path}: written by a newer FireAct Studio (schema '{component}' version {version}, this "
                             f"one knows up to {known}); open it with that version, or upgrade this one")
