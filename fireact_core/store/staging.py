"""Large imports are parsed and written into a scratch database beside the main one, then copied in by one short
transaction, so the main file is held only for that copy (the app and other commands read meanwhile).

The scratch database has the same schema (the same migrations ran). The copy adds the trajectories whose id the
main database does not hold yet (decided inside the copy's transaction, so two imports of one file at once add
one set of rows), with their steps, lints, revisions and annotations, replaces the sources it names, and appends
the rows of any other table the import filled. It is all-or-nothing: a failure anywhere leaves the main database
as it was, and the scratch file is removed either way.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


# tables whose rows belong to one trajectory: copied for the trajectories added
BY_TRAJECTORY = {"trajectories": "id", "steps": "trajectory_id", "lints": "trajectory_id",
                 "revisions": "trajectory_id", "annotations": "trajectory_id"}
NOT_COPIED = {"schema_migrations", "sources", *BY_TRAJECTORY}


def stage_threshold() -> int:
    """Imports of more bytes than this are staged (FIREACT_IMPORT_STAGE_MB)."""
    return int(float(os.environ.get("FIREACT_IMPORT_STAGE_MB", "8")) * 2**20)


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
def scratch_path(main_path: str) -> Iterator[str]:
    """A fresh name for a scratch database beside `main_path`, removed (with its WAL) afterwards."""
    folder = Path(main_path).expanduser().resolve().parent
    fd, name = tempfile.mkstemp(dir=folder, prefix=".fireact-import-", suffix=".duckdb")
    os.close(fd)
    os.unlink(name)  # DuckDB makes the file itself; the random name stays ours
    try:
        yield name
    finally:
        for leftover in (name, name + ".wal"):
            try:
                os.unlink(leftover)
            except FileNotFoundError:
                pass


class StagedImportStore:
    """Mixin of `Store`: the copy of a scratch database's import into this one."""

    def merge_staged(self, scratch: str) -> dict[str, int]:
        """Copy what the import wrote into `scratch` (see the module); returns trajectories added per source."""
        alias = f"_stage_{uuid.uuid4().hex}"  # attached databases are shared by the process's connections
        with self.db.connect() as con:
            con.execute(f"ATTACH '{_quoted(scratch)}' AS {alias} (READ_ONLY)")
            try:
                with self.db.transaction() as con:
                    return _copy(con, alias, _stage_tables(con, alias))
            finally:
                con.execute("DROP TABLE IF EXISTS _fresh")
                con.execute(f"DETACH {alias}")


def _quoted(path: str) -> str:
    return path.replace("'", "''")


def _stage_tables(con: Any, alias: str) -> list[tuple[str, bool]]:
    """(name, whether it has a key) of the scratch database's tables that hold rows."""
    names = [r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND estimated_size > 0", [alias]).fetchall()]
    keyed = {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_constraints() WHERE database_name = ? "
        "AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')", [alias]).fetchall()}
    return [(n, n in keyed) for n in names]


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


def _copy(con: Any, stage: str, tables: list[tuple[str, bool]]) -> dict[str, int]:
    con.execute(f"CREATE OR REPLACE TEMP TABLE _fresh AS SELECT id FROM {stage}.trajectories "
                "ANTI JOIN trajectories USING (id)")
    fresh, staged = con.execute(f"SELECT (SELECT count(*) FROM _fresh), (SELECT count(*) FROM {stage}.trajectories)").fetchone()
    for table, key in BY_TRAJECTORY.items():
        only = "" if fresh == staged else f"WHERE {key} IN (SELECT id FROM _fresh)"  # all new: a plain copy
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {stage}.{table} {only} ORDER BY rowid")
    con.execute(f"DELETE FROM sources WHERE name IN (SELECT name FROM {stage}.sources)")
    con.execute(f"INSERT INTO sources BY NAME SELECT * FROM {stage}.sources")
    for table, keyed in tables:
        if table not in NOT_COPIED:
            conflict = " ON CONFLICT DO NOTHING" if keyed else ""
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {stage}.{table}{conflict}")
    return dict(con.execute(f"SELECT source, count(*) FROM {stage}.trajectories WHERE id IN (SELECT id FROM _fresh) "
                            "GROUP BY source").fetchall())
