"""Dataset versions: the mixer's pool query, immutable snapshots of the chosen trajectories, and listing.

A saved version keeps, per member, the trajectory's revision number and a copy of its row and steps as they
were at that revision (stored once per trajectory revision, shared by every version that holds it), so
editing a trajectory afterwards never changes the version or its exports.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..errors import ConflictError, NotFoundError
from ..records import DatasetVersion, Trajectory
from .answers import correct_sql
from .cache import cached_read
from .connection import naive, utc
from .repository import Repository
from .trajectories import STEP_COLUMNS, TRAJ_COLUMNS, _rows, insert_arrow, register, step_from_row, trajectory_from_row

if TYPE_CHECKING:
    import pandas as pd


_POOL_BASE = """
WITH b AS (
    SELECT t.id, t.task, t.method, t.qnorm, t.em, t.f1, t.n_steps, t.revision,
           coalesce(t.updated_at, t.created_at) AS changed_at, r.review,
           CASE r.review WHEN 'accepted' THEN 2 WHEN 'rejected' THEN 0 ELSE 1 END AS review_order,
           coalesce({correct}, false) AS correct,
           md5_number_upper(t.id || ':' || ?) AS rank, md5_number_upper(coalesce(t.qnorm, t.id) || ':val:' || ?) AS vkey,
           t.id IN (SELECT trajectory_id FROM lints WHERE kind IN ({kinds})) AS linted,
           t.id IN (SELECT trajectory_id FROM lints WHERE kind IN ({irregular})) AS irregular
    FROM trajectories t
    LEFT JOIN (SELECT trajectory_id, arg_max(status, seq) AS review FROM annotations
               WHERE status IS NOT NULL GROUP BY trajectory_id) r ON r.trajectory_id = t.id
    {where}
)
"""


def _filter_conditions(filters: dict[str, Any]) -> list[tuple[str, str, list]]:
    """(name, SQL condition a kept trajectory meets, parameters) of each active filter, in funnel order."""
    conds: list[tuple[str, str, list[Any]]] = []
    if filters.get("only_correct"):
        conds.append(("only_correct", "correct", []))
    if filters.get("only_accepted"):
        conds.append(("only_accepted", "review_order = 2", []))
    if filters.get("exclude_rejected"):
        conds.append(("exclude_rejected", "review_order > 0", []))
    if filters.get("max_steps") is not None:
        conds.append(("max_steps", "n_steps <= ?", [int(filters["max_steps"])]))
    if filters.get("exclude_lints"):
        conds.append(("exclude_lints", "NOT linted", []))
    if not filters.get("keep_irregular"):
        conds.append(("keep_irregular", "NOT irregular", []))
    return conds


_COPY_STEPS = f"""
INSERT INTO dataset_snapshot_steps ({', '.join(STEP_COLUMNS)}, revision)
SELECT {', '.join('s.' + c for c in STEP_COLUMNS)}, t.revision FROM steps s JOIN trajectories t ON t.id = s.trajectory_id
WHERE t.id IN (SELECT trajectory_id FROM dataset_members WHERE dataset = ?)
  AND NOT EXISTS (SELECT 1 FROM dataset_snapshot_trajectories x WHERE x.id = t.id AND x.revision = t.revision)
"""
_SNAPSHOT_STEPS = f"""
INSERT INTO dataset_snapshot_steps ({', '.join(STEP_COLUMNS)}, revision)
SELECT {', '.join('s.' + c for c in STEP_COLUMNS)}, t.revision FROM steps s JOIN trajectories t ON t.id = s.trajectory_id
SEMI JOIN _stretch m ON m.trajectory_id = t.id AND m.rev = t.revision
ANTI JOIN dataset_snapshot_trajectories x ON x.id = t.id AND x.revision = t.revision
"""
_SNAPSHOT_TRAJECTORIES = f"""
INSERT INTO dataset_snapshot_trajectories ({', '.join(TRAJ_COLUMNS)})
SELECT {', '.join('t.' + c for c in TRAJ_COLUMNS)} FROM trajectories t
SEMI JOIN _stretch m ON m.trajectory_id = t.id AND m.rev = t.revision
ANTI JOIN dataset_snapshot_trajectories x ON x.id = t.id AND x.revision = t.revision
"""
SNAPSHOT_STRETCH = 2000  # members copied by the first stretch of a save; then as many as take about SNAPSHOT_HOLD_S
SNAPSHOT_HOLD_S = 1.0
SNAPSHOT_GAP_S = 0.5  # the pause between stretches: longer than a waiting process sleeps between tries


def _copy_snapshots(con: Any, stretch: pa.Table) -> None:
    """Copy the rows and steps of the members in `stretch` (trajectory_id, rev) that are still at that revision
    and not copied yet (steps first: the trajectory's copy marks the pair as done)."""
    register(con, "_stretch", stretch)
    try:
        con.execute(_SNAPSHOT_STEPS)
        con.execute(_SNAPSHOT_TRAJECTORIES)
    finally:
        con.unregister("_stretch")


_COPY_TRAJECTORIES = f"""
INSERT INTO dataset_snapshot_trajectories ({', '.join(TRAJ_COLUMNS)})
SELECT {', '.join('t.' + c for c in TRAJ_COLUMNS)} FROM trajectories t
WHERE t.id IN (SELECT trajectory_id FROM dataset_members WHERE dataset = ?)
  AND NOT EXISTS (SELECT 1 FROM dataset_snapshot_trajectories x WHERE x.id = t.id AND x.revision = t.revision)
"""

MEMBER_SCHEMA = pa.schema([
    ("dataset", pa.string()), ("position", pa.int32()), ("trajectory_id", pa.string()), ("rev", pa.int32()),
    ("split", pa.string()),
    ("task", pa.string()), ("method", pa.string()),
])
VERSION_COLUMNS = ["name", "spec", "seed", "created_at", "created_by", "content_hash", "size", "n_train", "n_val",
                   "cells", "parent", "loss_mask", "note"]

def _hash_kind(version: dict[str, Any]) -> str:
    """What the content hash covers besides the members: the loss mask, and the pair level of a version of pairs."""
    kind = version.get("loss_mask") or "observations"
    pairs = (version.get("spec") or {}).get("pairs")
    return f"{kind};pairs:{pairs}" if pairs else kind


def _version_of(row: dict[str, Any]) -> DatasetVersion:
    return DatasetVersion(**{**row, "created_at": utc(row["created_at"]), "spec": json.loads(row["spec"]),
                             "cells": json.loads(row["cells"] or "{}")})


class DatasetRepository(Repository):
    """The mixer's pool and dataset versions."""

    @cached_read
    def mix_stamp(self) -> tuple[Any, ...]:
        """A cheap fingerprint of what the mixer reads (it changes when trajectories, reviews or lints do),
        ending with the sorted list of source names."""
        with self.db.connect() as con:
            return tuple(con.execute("""
                SELECT (SELECT count(*) FROM trajectories), (SELECT sum(revision) FROM trajectories),
                       (SELECT max(coalesce(updated_at, created_at)) FROM trajectories),
                       (SELECT count(*) FROM annotations), (SELECT count(*) FROM lints),
                       (SELECT coalesce(list(name ORDER BY name), []) FROM
                            (SELECT name FROM sources UNION SELECT DISTINCT source FROM trajectories))
            """).fetchall()[0])

    def mix_pool(self, sources: list[str], filters: dict[str, Any], seed: int) -> tuple[dict[str, int], Any]:
        """The mixer's candidates, computed in the database over summary columns (never steps).

        `filters` holds MixFilters' fields. Returns (removed, pool): how many trajectories each active filter
        removed, in order (plus "in sources" and "dedupe"), and the trajectories left as a DataFrame (id, task,
        method, revision, rank, vkey) sorted by task, method and `rank`: the seed's order, the upper 64 bits of
        the md5 of id and seed. `vkey` is the same for every trajectory of a question (the md5 of the normalised
        question and seed): it groups questions and orders the validation split.
        """
        from ..io.lint import IRREGULAR_KINDS  # here: lint reads the store's question keys

        conds = _filter_conditions(filters)
        params: list[Any] = [str(seed), str(seed), *(filters.get("exclude_lints") or [""]), *sources]
        base = _POOL_BASE.format(correct=correct_sql("t"), irregular=", ".join(f"'{k}'" for k in IRREGULAR_KINDS), kinds=", ".join("?" * len(filters.get("exclude_lints") or [""])),
                                 where=f"WHERE t.source IN ({', '.join('?' * len(sources))})" if sources else "")
        keep = " AND ".join(c for _, c, _ in conds) or "TRUE"
        counts = ["count(*)"] + [
            f"count(*) FILTER (WHERE {' AND '.join([c for _, c, _ in conds[:i]] + [f'NOT ({cond})'])})"
            for i, (_, cond, _) in enumerate(conds)
        ]
        cond_params = [p for _, _, ps in conds for p in ps]
        funnel_params = [p for i in range(len(conds)) for _, _, ps in conds[: i + 1] for p in ps]
        dedupe = ""
        if filters.get("dedupe"):
            order = ("changed_at DESC, revision DESC, rank, id" if filters.get("dedupe_keep") == "latest" else
                     "correct DESC, em DESC NULLS LAST, f1 DESC NULLS LAST, review_order DESC, revision DESC, rank, id")
            dedupe = f"QUALIFY row_number() OVER (PARTITION BY qnorm ORDER BY {order}) = 1"
        with self.db.connect() as con:
            row = con.execute(f"{base} SELECT {', '.join(counts)} FROM b", [*params, *funnel_params]).fetchall()[0]
            pool = con.execute(
                f"{base} SELECT id, task, method, revision, rank, vkey FROM b WHERE {keep} {dedupe} "
                "ORDER BY task, method, rank, id", [*params, *cond_params],
            ).df()
        removed = {"in sources": row[0], **{name: n for (name, _, _), n in zip(conds, row[1:])}}
        if filters.get("dedupe"):
            removed["dedupe"] = row[0] - sum(row[1:]) - len(pool)
        return removed, pool

    @cached_read
    def source_names(self) -> list[str]:
        """Names of the sources that hold trajectories or are recorded, sorted."""
        with self.db.connect() as con:
            rows = con.execute("SELECT name FROM sources UNION SELECT DISTINCT source FROM trajectories ORDER BY 1").fetchall()
        return [r[0] for r in rows]

    @cached_read
    def task_method_counts(self, sources: list[str]) -> dict[str, int]:
        """Trajectories per "task/method" cell of `sources` (all when empty)."""
        where = f"WHERE source IN ({', '.join('?' * len(sources))})" if sources else ""
        with self.db.connect() as con:
            rows = con.execute(f"SELECT task, method, count(*) FROM trajectories {where} GROUP BY ALL ORDER BY ALL",
                               list(sources)).fetchall()
        return {f"{t}/{m}": n for t, m, n in rows}

    def text_chars(self, ids: list[str]) -> pd.DataFrame:
        """Characters per trajectory of `ids`, computed in the database (a DataFrame: id, question_chars,
        model_chars, model_trained_chars, obs_chars, obs_trained_chars; "trained" counts steps whose
        flags.train is set)."""
        with self.db.connect() as con:
            register(con, "_ids", pa.table({"id": pa.array(ids, pa.string())}))
            try:
                return con.execute("""
                    WITH s AS (
                        SELECT s.trajectory_id AS id, s.train,
                               coalesce(length(s.raw), coalesce(length(s.thought) + 9, 0)
                                        + coalesce(length(s.action_raw) + 8, 0)) AS model,
                               coalesce(length(s.obs_raw), length(s.observation) + 13, 0) AS obs
                        FROM steps s JOIN _ids ON _ids.id = s.trajectory_id
                    ), per AS (
                        SELECT id, sum(model) AS model_chars, sum(CASE WHEN train THEN model ELSE 0 END) AS model_trained_chars,
                               sum(obs) AS obs_chars, sum(CASE WHEN train THEN obs ELSE 0 END) AS obs_trained_chars
                        FROM s GROUP BY id
                    )
                    SELECT t.id, length(t.question) AS question_chars, coalesce(model_chars, 0) AS model_chars,
                           coalesce(model_trained_chars, 0) AS model_trained_chars, coalesce(obs_chars, 0) AS obs_chars,
                           coalesce(obs_trained_chars, 0) AS obs_trained_chars
                    FROM trajectories t JOIN _ids USING (id) LEFT JOIN per USING (id)
                """).df()
            finally:
                con.unregister("_ids")

    def save_dataset_version(self, version: dict[str, Any], members: dict[str, list]) -> DatasetVersion:
        """Store a version (DatasetVersion's fields but the content hash) and its members (columns position, trajectory_id, rev, split, task, method), copying
        each member's row and steps at that revision; returns the version with its content hash (over the loss
        mask, the pair level of a version of pairs, and each member's position, split, id and revision, which
        covers its per-step train flags). A member edited since `rev` was read makes it a ConflictError (no
        version is written).

        The copies are made first, in stretches of about a second each (the file let go between them): a copy is
        keyed by trajectory and revision and no reader reaches it before a version names it. The version and its
        members are then written by one short transaction, which copies whatever is still missing."""
        name = version["name"]
        self._refuse_taken_name(name)
        ids, revs = members["trajectory_id"], members["rev"]
        start, stretch = 0, SNAPSHOT_STRETCH
        while start < len(ids):
            started = time.monotonic()
            with self.db.transaction() as con:
                _copy_snapshots(con, pa.table({"trajectory_id": pa.array(ids[start:start + stretch], pa.string()),
                                               "rev": pa.array(revs[start:start + stretch], pa.int32())}))
            took = time.monotonic() - started
            start += stretch
            stretch = max(SNAPSHOT_STRETCH // 4, min(stretch * 4, int(stretch * SNAPSHOT_HOLD_S / max(took, 1e-3))))
            if start < len(ids):
                time.sleep(SNAPSHOT_GAP_S)
        with self.db.transaction() as con:
            self._refuse_taken_name(name)
            cols = {"dataset": [name] * len(ids), **members}
            insert_arrow(con, "dataset_members", cols, MEMBER_SCHEMA)
            changed = con.execute("SELECT count(*) FROM dataset_members m ANTI JOIN trajectories t "
                                  "ON t.id = m.trajectory_id AND t.revision = m.rev WHERE m.dataset = ?",
                                  [name]).fetchall()[0][0]
            if changed:
                raise ConflictError(f"{changed} chosen trajectories were edited or deleted since the preview: "
                                    "preview the mix again, then save")
            con.execute(_COPY_STEPS, [name])
            con.execute(_COPY_TRAJECTORIES, [name])
            digest = con.execute("""SELECT md5('loss_mask:' || ? || ';' || string_agg(position || ':' || split || ':'
                                                          || trajectory_id || ':' || rev, ',' ORDER BY position))
                                    FROM dataset_members WHERE dataset = ?""",
                                 [_hash_kind(version), name]).fetchall()[0][0]
            saved = DatasetVersion(**version, content_hash=digest)
            row = {**saved.model_dump(), "spec": json.dumps(saved.spec, sort_keys=True), "cells": json.dumps(saved.cells),
                   "created_at": naive(saved.created_at)}
            con.execute(f"INSERT INTO dataset_versions ({', '.join(VERSION_COLUMNS)}) VALUES ({', '.join('?' * len(VERSION_COLUMNS))})",
                        [row[c] for c in VERSION_COLUMNS])
        return saved

    def _refuse_taken_name(self, name: str) -> None:
        with self.db.connect() as con:
            if con.execute("SELECT 1 FROM dataset_versions WHERE name = ?", [name]).fetchall():
                raise ConflictError(f"a dataset version named '{name}' exists already: versions never change, so "
                                    "choose another name")

    def get_dataset_version(self, name: str) -> DatasetVersion:
        with self.db.connect() as con:
            rows = _rows(con.execute(f"SELECT {', '.join(VERSION_COLUMNS)} FROM dataset_versions WHERE name = ?", [name]))
        if not rows:
            raise NotFoundError(f"no dataset version named '{name}': see `fireact datasets` for those there are")
        return _version_of(rows[0])

    @cached_read
    def list_dataset_versions(self) -> list[DatasetVersion]:
        with self.db.connect() as con:
            rows = _rows(con.execute(f"SELECT {', '.join(VERSION_COLUMNS)} FROM dataset_versions ORDER BY created_at, name"))
        return [_version_of(r) for r in rows]

    def dataset_members(self, name: str, split: str | None = None) -> pd.DataFrame:
        """Members of a version in position order (DataFrame: position, trajectory_id, rev, split, task, method)."""
        where, params = ("AND split = ?", [name, split]) if split else ("", [name])
        with self.db.connect() as con:
            return con.execute(
                "SELECT position, trajectory_id, rev, split, task, method FROM dataset_members "
                f"WHERE dataset = ? {where} ORDER BY position", params,
            ).df()

    def iter_dataset_trajectories(self, name: str, split: str | None = None,
                                  batch: int = 2000) -> Iterator[tuple[str, Trajectory]]:
        """(split, trajectory as it was when the version was saved) of each member, in position order."""
        with self.db.connect() as con:
            total = con.execute("SELECT count(*) FROM dataset_members WHERE dataset = ?", [name]).fetchall()[0][0]
        for start in range(0, total, batch):
            yield from self._dataset_batch(name, split, start, start + batch)

    def _dataset_batch(self, name: str, split: str | None, start: int, stop: int) -> Iterator[tuple[str, Trajectory]]:
        where, params = ("AND split = ?", [split]) if split else ("", [])
        members = f"SELECT trajectory_id, rev, split, position FROM dataset_members WHERE dataset = ? AND position >= ? " \
                  f"AND position < ? {where}"
        args = [name, start, stop, *params]
        with self.db.connect() as con:
            rows = _rows(con.execute(
                f"SELECT m.split AS member_split, {', '.join('t.' + c for c in TRAJ_COLUMNS)} FROM ({members}) m "
                "JOIN dataset_snapshot_trajectories t ON t.id = m.trajectory_id AND t.revision = m.rev ORDER BY m.position",
                args,
            ))
            steps = _rows(con.execute(
                f"SELECT {', '.join('s.' + c for c in STEP_COLUMNS)} FROM dataset_snapshot_steps s "
                f"SEMI JOIN ({members}) m ON s.trajectory_id = m.trajectory_id AND s.revision = m.rev "
                "ORDER BY s.trajectory_id, s.idx", args,
            ))
        by_traj: dict[str, list] = {}
        for r in steps:
            by_traj.setdefault(r["trajectory_id"], []).append(step_from_row(r))
        for r in rows:
            yield r.pop("member_split"), trajectory_from_row(r, by_traj.get(r["id"], []))
