"""Large imports are parsed and written into a scratch database of their own, then copied in by short
transactions, so the main file is held only a moment at a time (the app and other commands read in between).

The scratch database is an in-memory DuckDB instance of the import's own (`ScratchStore`): the same tables (the
same migrations ran, but for the one that declares keys: writing it builds no index), stored uncompressed (it is
written once and read once), held in memory up to `connection.spill_limit()` bytes and past that written into a
folder beside the main file (`scratch_folder`), removed afterwards. Nothing of it is committed to a file: a scratch
file's commit wrote every row once more (0.8 s of a 100,000-trajectory import). The steps the Python readers build
stay the Arrow tables they are until the copy, up to a share of that bound (`ScratchStore.insert_tables`). The copy
reads the scratch database as Arrow tables, each read before the main database's transaction that takes it begins.

The copy first claims, in stretches of `CLAIM_STRETCH` trajectories, the ids the main database does not hold and
nobody else has claimed (`import_claims`, so two imports of one file at once add one set of rows). Then it copies
the rows of the claimed trajectories from every other table that belongs to one (steps, lints, revisions,
annotations; when it claimed every staged trajectory, the usual case, each stretch's rows as they are, without
looking up their claims), a stretch of whole row groups (`ROW_GROUP` rows) per transaction, as many as take about
`STRETCH_HOLD_S`, in pieces of one row group each (`_in_row_groups`): DuckDB writes whole row groups straight to
the file, compressed once, so each commit is short; pieces that are not whole make row groups that are not either,
whose rows the commit writes to the log and a checkpoint writes again. For the same reason a stretch that would
leave less than a row group behind takes the rest with it. When a chat file read by DuckDB comes first, the copy
of its steps begins while the import still reads (`EarlyCopy`), and the rest is copied after them. Those rows stay
out of sight meanwhile: every reader reaches them through their trajectory, and no trajectory row points at them
yet. A last short transaction adds the claimed trajectories themselves, replaces the sources the import names and
appends the rows of any other table it filled: from every reader's view the import lands at once, all or nothing.

Its claims are let go after the landing, in transactions of their own. DuckDB deletes keys from an index slowly (about
a second per 40,000 claims), so when no other import holds claims the table is made again, empty, at once; while
another one does, this import's claims go `FORGET_CHUNK` at a time.

An import that fails takes its claimed rows out again, `REMOVE_CHUNK` trajectories' rows per transaction. One that
dies on the way (killed, power lost) leaves them behind with its entry in `pending_imports`; the next staged import
finds that entry stale (its process gone, or no sign of life for `STALE_S`) and removes what it left the same way.
The scratch database and its folder go either way.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..background import on_thread
from ..settings import env_number
from .connection import Connections, naive
from .repository import Repository
from .schema import IMPORT_CLAIMS
from .trajectories import register


# tables whose rows belong to one trajectory: copied for the trajectories added
CHILDREN = {"steps": "trajectory_id", "lints": "trajectory_id", "revisions": "trajectory_id",
            "annotations": "trajectory_id"}
NOT_COPIED = {"schema_migrations", "sources", "trajectories", "pending_imports", "import_claims", *CHILDREN}
SMALL = 2000  # trajectories of an import claimed, copied and landed by one transaction
CLAIM_STRETCH = 250_000  # trajectories claimed per transaction
ROW_GROUP = 122_880  # rows of a DuckDB row group: the unit of a copy's stretch
STRETCH_HOLD_S = 1.2  # a copy's stretch takes as many row groups as are copied in about this long
STRETCH_LINGER_S = 5.0  # the file stays open between stretches unless another process asks for it
STRETCH_GAP_S = 0.5  # the pause between stretches: longer than a waiting process sleeps between tries
STALE_S = 600.0  # an unfinished import that showed no sign of life this long is taken for dead
FORGET_CHUNK = 20_000  # claims let go per transaction while another import holds claims too
REMOVE_CHUNK = 4_000  # trajectories whose copied rows a failed import's cleanup deletes per transaction


def stage_threshold() -> int:
    """Imports of more bytes than this are staged (FIREACT_IMPORT_STAGE_MB)."""
    return int(env_number("FIREACT_IMPORT_STAGE_MB", 8) * 2**20)


def should_stage(path: str, inputs: list[str]) -> bool:
    if path == ":memory:":
        return False
    total = 0
    for p in inputs:
        try:
            total += os.path.getsize(p)
        except OSError:
            continue
    return total > stage_threshold()


@contextmanager
def scratch_folder(main_path: str) -> Iterator[str]:
    """A fresh folder beside `main_path` for what a scratch database spills, removed with its files afterwards."""
    folder = Path(main_path).expanduser().resolve().parent
    name = tempfile.mkdtemp(dir=folder, prefix=".fireact-import-")
    try:
        yield name
    finally:
        shutil.rmtree(name, ignore_errors=True)


class StagingRepository(Repository):
    """The copy of a scratch database's import into this one."""

    def merge_staged(self, scratch: Connections, held_steps: list[pa.Table] | None = None,
                     before_landing: Callable[[], None] | None = None,
                     early: EarlyCopy | None = None) -> dict[str, int]:
        """Copy what the import wrote into the scratch database, and the steps it kept as Arrow tables
        (`ScratchStore.insert_tables`), after the scratch database's own (see the module); returns trajectories
        added per source. `before_landing` is called once every row but the landing's is copied: an error there
        takes them out again. `early`: the copy that began while the import still read (`EarlyCopy`), of the
        first trajectories' steps, which come before every other step."""
        stage = _Scratch(scratch, held_steps or [])
        rowids, staged = stage.trajectory_rowids()
        if early is None and rowids <= SMALL:  # small: claimed, copied and landed by one short transaction
            import_id = uuid.uuid4().hex
            clear_stale_imports(self.db)
            children = {table: stage.rows(table, 0, 2**62, ordered=True) for table in CHILDREN}
            landing = stage.landing()
            if before_landing is not None:
                before_landing()
            with self.db.transaction() as con:
                _register(con, import_id)
                whole = _claim(con, stage.ids(0, rowids), import_id) == staged
                for table, rows in children.items():
                    _copy_stretch(con, import_id, table, rows, whole)
                added = _land(con, import_id, staged, landing)
                _forget(con, import_id, chunk=SMALL)
            return added
        if early is None:
            import_id = uuid.uuid4().hex
            clear_stale_imports(self.db)
            with self.db.transaction() as con:
                _register(con, import_id)
        else:
            import_id = early.import_id
        with self.db.lingering(STRETCH_LINGER_S):  # open once (the early copy's too); let go only when asked
            try:
                read: dict[str, pa.Table] | None = None
                claimed, first = 0, 0
                if early is not None:
                    read = stage.landing()  # read while the early copy runs
                    claimed, first = early.result(), early.trajectories
                claimed += _claim_stretches(self, import_id, stage.ids, first, rowids)
                whole = claimed == staged  # every staged trajectory is this import's: no row to leave out
                for table, count in stage.row_counts().items():
                    _copy_stretches(self, import_id, table, count, whole,
                                    partial(stage.rows, table, ordered=not whole))
                landing = read if read is not None else stage.landing()
                if before_landing is not None:
                    before_landing()
                with self.db.transaction() as con:
                    added = _land(con, import_id, staged, landing)
            except BaseException:
                self._abandon(import_id)
                raise
            # landed; its claims go in transactions of their own, keeping the landing's short (any left behind
            # are cleared by the next staged import)
            with suppress(Exception):
                forget(self.db, import_id)
        return added

    def _pause(self) -> None:
        """Between stretches: a moment for another process that asked for the file to take it."""
        if self.db.someone_waits():
            time.sleep(STRETCH_GAP_S)

    def _abandon(self, import_id: str) -> None:
        """Take out what a failed import claimed and copied (left for the next staged import if this fails too)."""
        with suppress(Exception):  # the import's own error is the one to report
            _remove_claimed(self.db, import_id)


def _claim_stretches(repo: StagingRepository, import_id: str, ids_of: Callable[[int, int], pa.Table],
                     start: int, end: int) -> int:
    """Claim the trajectories of rowids `start` to `end` (`ids_of(start, end)` gives their ids), `CLAIM_STRETCH`
    at a time, each stretch a transaction; returns how many were claimed."""
    claimed = 0
    for first in range(start, end, CLAIM_STRETCH):
        ids = ids_of(first, min(first + CLAIM_STRETCH, end))
        with repo.db.transaction() as con:
            claimed += _claim(con, ids, import_id)
        repo._pause()
    return claimed


def _copy_stretches(repo: StagingRepository, import_id: str, table: str, count: int, whole: bool,
                    rows_of: Callable[[int, int], pa.Table]) -> None:
    """Copy `count` rows of `table` (`rows_of(start, end)` reads them) a stretch of whole row groups per
    transaction, as many as take about `STRETCH_HOLD_S`; the rest, when less than a row group is left after a
    stretch, goes with it (a transaction that appends less than a row group writes it to the log and a checkpoint
    writes it again)."""
    with repo.db.connect() as con:
        threads = max(1, int(con.execute("SELECT current_setting('threads')").fetchone()[0]))
    start, groups = 0, threads
    while start < count:
        end = start + groups * ROW_GROUP
        if count - end < ROW_GROUP:
            end = count
        rows = rows_of(start, end)
        started = time.monotonic()
        with repo.db.transaction() as con:
            _copy_stretch(con, import_id, table, rows, whole)
        del rows
        start = end
        groups = _next_groups(groups, threads, time.monotonic() - started)
        repo._pause()


class EarlyCopy:
    """The steps of a staged import's first trajectories, copied into the main database on a thread of their
    own while the import still reads (its questions classified, its other rows written into the scratch
    database): claimed and copied as `merge_staged` does, which then takes the import on (`result`) and copies
    the rest after them. `abandon` takes them out again when the import fails before that.

    `ids`: the trajectories' ids, the scratch database's first ones in its order; `steps`: their steps, in
    order, in pieces of whole row groups."""

    def __init__(self, repo: StagingRepository, ids: pa.Table, steps: pa.Table):
        self.repo = repo
        self.import_id = uuid.uuid4().hex
        self.trajectories = ids.num_rows
        self._registered = False
        self._done = on_thread(self._copy, ids, steps, name="fireact-early-copy")

    def _copy(self, ids: pa.Table, steps: pa.Table) -> int:
        repo = self.repo
        clear_stale_imports(repo.db)
        with repo.db.transaction() as con:
            _register(con, self.import_id)
        self._registered = True
        with repo.db.lingering(STRETCH_LINGER_S):
            claimed = _claim_stretches(repo, self.import_id, lambda start, end: ids.slice(start, end - start),
                                       0, ids.num_rows)
            whole = claimed == ids.num_rows
            if claimed:  # none claimed (all of them stored or another import's): no step of theirs to copy
                _copy_stretches(repo, self.import_id, "steps", steps.num_rows, whole,
                                lambda start, end: _numbered(steps, start, end, not whole))
        return claimed

    def result(self) -> int:
        """How many of the trajectories were claimed, once their steps are copied (the copy's error, if any)."""
        return self._done.result()

    def abandon(self) -> None:
        """Once the copy has ended: take out what it claimed and copied."""
        with suppress(BaseException):
            self._done.result()
        if self._registered:
            self.repo._abandon(self.import_id)


def _numbered(rows: pa.Table, start: int, end: int, ordered: bool) -> pa.Table:
    """Rows `start` to `end` of `rows` in pieces of whole row groups; `ordered`: with their number as `_r`."""
    part = rows.slice(start, end - start)
    if ordered:
        part = part.add_column(0, "_r", pa.array(range(start, start + part.num_rows), pa.int64()))
    return _in_row_groups(part)


class _Scratch:
    """What the copy reads from a scratch database: Arrow tables, read before the main database's transaction
    that takes them begins (so that it holds the file only while it writes), in pieces of one row group each
    (an insert of them then writes whole row groups)."""

    def __init__(self, db: Connections, held_steps: list[pa.Table]):
        self.db = db
        self.held = pa.concat_tables(held_steps) if held_steps else None  # steps after the table's own
        with self.db.connect() as con:
            self.stored = {table: int(con.execute(f"SELECT coalesce(max(rowid) + 1, 0) FROM {table}").fetchone()[0])
                           for table in CHILDREN}

    def _table(self, sql: str) -> pa.Table:
        with self.db.connect() as con:
            table = con.sql(sql).to_arrow_table(ROW_GROUP)
        return _in_row_groups(table)

    def trajectory_rowids(self) -> tuple[int, int]:
        """How many trajectory rowids and trajectories the scratch database holds."""
        with self.db.connect() as con:
            rowids, count = con.execute("SELECT coalesce(max(rowid) + 1, 0), count(*) FROM trajectories").fetchone()
        return int(rowids), int(count)

    def row_counts(self) -> dict[str, int]:
        """The rowids of each child table that holds rows, the kept steps counted after the table's own."""
        rows = dict(self.stored)
        if self.held is not None:
            rows["steps"] += self.held.num_rows
        return {table: n for table, n in rows.items() if n}

    def ids(self, start: int, end: int) -> pa.Table:
        """The ids of the trajectories of rowids `start` to `end`."""
        return self._table(f"SELECT id FROM trajectories WHERE rowid >= {int(start)} AND rowid < {int(end)}")

    def rows(self, table: str, start: int, end: int, ordered: bool) -> pa.Table:
        """The rows of `table` of rowids `start` to `end` (the kept steps numbered after the table's own), in
        order; `ordered`: with their rowid as `_r`, for a copy that leaves some out to keep that order."""
        rowid = "rowid AS _r, " if ordered else ""
        stored, held = self.stored[table], self.held if table == "steps" else None
        rows = (self._table(f"SELECT {rowid}* FROM {table} WHERE rowid >= {int(start)} AND rowid < {int(end)}")
                if start < stored or held is None else None)  # a stretch wholly past the table's own reads none
        if held is None or end <= stored:
            assert rows is not None
            return rows
        first = max(start, stored)
        kept = held.slice(first - stored, end - first)
        if ordered:
            kept = kept.add_column(0, "_r", pa.array(range(first, first + kept.num_rows), pa.int64()))
        if rows is None or not rows.num_rows:
            return _in_row_groups(kept)
        return _in_row_groups(pa.concat_tables([rows, kept.cast(rows.schema)]))

    def landing(self) -> dict[str, pa.Table]:
        """The trajectories, sources and rows of every other table the import filled, for the last transaction."""
        with self.db.connect() as con:
            names = [r[0] for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
                "AND NOT temporary AND estimated_size > 0").fetchall()]
        tables = {"trajectories": self._table("SELECT rowid AS _r, * FROM trajectories"),
                  "sources": self._table("SELECT * FROM sources")}
        for name in names:
            if name not in NOT_COPIED:
                tables[name] = self._table(f"SELECT * FROM {name}")
        return tables


def _next_groups(groups: int, threads: int, held: float) -> int:
    """How many row groups the next stretch copies so that the file is held about STRETCH_HOLD_S: a multiple of
    the threads that write them (each writes whole groups), at most four times as many as the last stretch."""
    fit = int(groups * STRETCH_HOLD_S / max(held, 1e-3)) // threads * threads
    return max(threads, min(groups * 4, fit))


def _register(con: Any, import_id: str) -> None:
    now = _now()
    con.execute("INSERT INTO pending_imports VALUES (?, ?, ?, ?, ?, false)",
                [import_id, os.getpid(), socket.gethostname(), now, now])


def _now() -> datetime:
    stamp = naive(datetime.now(UTC))
    assert stamp is not None
    return stamp


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process
    return True


def clear_stale_imports(db: Connections) -> int:
    """Remove what dead imports left (see the module) and the claims of landed ones, in short transactions of
    their own; returns how many imports."""
    host, limit = socket.gethostname(), naive(datetime.now(UTC) - timedelta(seconds=STALE_S))
    with db.transaction() as con:
        stale = [(import_id, done) for import_id, pid, their_host, heartbeat, done in con.execute(
            "SELECT import_id, pid, host, heartbeat, done FROM pending_imports").fetchall()
            if done or heartbeat < limit or (their_host == host and not _alive(pid))]
    for import_id, done in stale:
        if done:
            forget(db, import_id)
        else:
            _remove_claimed(db, import_id)
    return len(stale)


def _remove_claimed(db: Connections, import_id: str) -> None:
    """An unfinished import's claims and the rows it copied for them (never rows of a trajectory that is in),
    `REMOVE_CHUNK` trajectories at a time."""
    while True:
        with db.transaction() as con:
            con.execute("CREATE OR REPLACE TEMP TABLE _gone AS SELECT c.id FROM import_claims c ANTI JOIN trajectories t "
                        "ON t.id = c.id WHERE c.import_id = ? LIMIT ?", [import_id, REMOVE_CHUNK])
            gone = con.execute("SELECT count(*) FROM _gone").fetchone()[0]
            for table in CHILDREN:
                con.execute(f"DELETE FROM {table} WHERE trajectory_id IN (SELECT id FROM _gone)")
            con.execute("DELETE FROM import_claims WHERE id IN (SELECT id FROM _gone)")
            con.execute("DROP TABLE _gone")
        if gone < REMOVE_CHUNK:
            break
    forget(db, import_id)


def forget(db: Connections, import_id: str) -> None:
    """Let go of an import's claims and its entry (see the module), in as many short transactions as it takes."""
    while True:
        with db.transaction() as con:
            if _forget(con, import_id):
                return


def _forget(con: Any, import_id: str, chunk: int = FORGET_CHUNK) -> bool:
    """In the transaction of `con`: the import's claims, all of them when no other import holds any (the table is
    made again), else up to `chunk`; its entry too once no claim is left. Returns whether none is left."""
    if not con.execute("SELECT count(*) FROM import_claims WHERE import_id <> ?", [import_id]).fetchone()[0]:
        con.execute("DROP TABLE import_claims")
        con.execute(IMPORT_CLAIMS)
    else:
        con.execute("DELETE FROM import_claims WHERE id IN (SELECT id FROM import_claims WHERE import_id = ? LIMIT ?)",
                    [import_id, chunk])
        if con.execute("SELECT count(*) FROM import_claims WHERE import_id = ?", [import_id]).fetchone()[0]:
            return False
    con.execute("DELETE FROM pending_imports WHERE import_id = ?", [import_id])
    return True


def _in_row_groups(table: pa.Table) -> pa.Table:
    """`table` in pieces of `ROW_GROUP` rows (and a shorter last one). DuckDB's reads end a piece where a row group
    of the scratch database ends, and those need not be whole; an insert of pieces that are not writes row groups
    that are not either, which the next checkpoint writes again."""
    sizes = [b.num_rows for b in table.to_batches()]
    if all(n == ROW_GROUP for n in sizes[:-1]):
        return table
    return pa.Table.from_batches(table.combine_chunks().to_batches(ROW_GROUP), table.schema)


def _claim(con: Any, ids: pa.Table, import_id: str) -> int:
    """Claim the new ids among `ids` (scratch trajectories'); returns how many."""
    register(con, "_stage_ids", ids)
    try:
        claimed = con.execute("""INSERT INTO import_claims SELECT s.id, ? FROM _stage_ids s
                        ANTI JOIN trajectories t ON t.id = s.id ANTI JOIN import_claims c ON c.id = s.id""",
                              [import_id]).fetchone()[0]
    finally:
        con.unregister("_stage_ids")
    con.execute("UPDATE pending_imports SET heartbeat = ? WHERE import_id = ?", [_now(), import_id])
    return int(claimed)


def _copy_stretch(con: Any, import_id: str, table: str, rows: pa.Table, whole: bool = False) -> None:
    """Copy the scratch `table`'s `rows` that belong to trajectories this import claimed, in their order; they
    stay out of sight until `_land`. `whole`: the import claimed every staged trajectory, so every row is copied
    as it is, without looking up its trajectory's claim (every row of a scratch table that belongs to a
    trajectory belongs to one of the scratch's own); else `rows` hold their scratch rowid as `_r` (any copy may)."""
    if not rows.num_rows:
        return
    if whole and "_r" in rows.column_names:
        rows = rows.drop_columns(["_r"])
    register(con, "_stage_rows", rows)
    try:
        if whole:
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _stage_rows")
        else:
            key = CHILDREN[table]
            con.execute(f"INSERT INTO {table} BY NAME SELECT x.* EXCLUDE (_r) FROM _stage_rows x SEMI JOIN "
                        f"import_claims c ON c.id = x.{key} AND c.import_id = ? ORDER BY x._r", [import_id])
    finally:
        con.unregister("_stage_rows")
    con.execute("UPDATE pending_imports SET heartbeat = ? WHERE import_id = ?", [_now(), import_id])


def _keyed(con: Any) -> set[str]:
    """The main database's tables that have a key."""
    return {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_constraints() WHERE database_name = current_database() "
        "AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')").fetchall()}


def _land(con: Any, import_id: str, staged: int, tables: dict[str, pa.Table]) -> dict[str, int]:
    """The import's last transaction: its claimed trajectories, sources and other rows (`tables`, from
    `_Scratch.landing`); returns added per source."""
    names = {table: f"_stage_{table}" for table in tables}
    for table, data in tables.items():
        register(con, names[table], data)
    try:
        landing = ("FROM _stage_trajectories s SEMI JOIN import_claims c ON c.id = s.id AND c.import_id = ? "
                   "ANTI JOIN trajectories t ON t.id = s.id")  # taken meanwhile by an import that claims nothing
        added = dict(con.execute(f"SELECT s.source, count(*) {landing} GROUP BY s.source", [import_id]).fetchall())
        if sum(added.values()) == staged:  # all of them new (the usual case): a plain copy, in file order
            con.execute("INSERT INTO trajectories BY NAME SELECT * EXCLUDE (_r) FROM _stage_trajectories")
        else:
            con.execute(f"INSERT INTO trajectories BY NAME SELECT s.* EXCLUDE (_r) {landing} ORDER BY s._r",
                        [import_id])
        con.execute("DELETE FROM sources WHERE name IN (SELECT name FROM _stage_sources)")
        con.execute("INSERT INTO sources BY NAME SELECT * FROM _stage_sources")
        keyed = _keyed(con)
        for table, name in names.items():
            if table not in NOT_COPIED:
                conflict = " ON CONFLICT DO NOTHING" if table in keyed else ""
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {name}{conflict}")
        con.execute("UPDATE pending_imports SET done = true, heartbeat = ? WHERE import_id = ?", [_now(), import_id])
    finally:
        for name in names.values():
            con.unregister(name)
    return added


def share_added(reports: list[Any], added: dict[str, int]) -> None:
    """Set each import report's `added` to what the copy added for its sources (in file order): fewer than staged
    when another import added some of the same trajectories first."""
    left = dict(added)
    for report in reports:
        names = report.source.split(", ")
        take = min(report.added, sum(left.get(n, 0) for n in names))
        report.added = take
        for name in names:
            used = min(left.get(name, 0), take)
            left[name] = left.get(name, 0) - used
            take -= used
