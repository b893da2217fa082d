"""Revisions and annotations: nothing is overwritten, every saved state and every review can be read back."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import pyarrow as pa

from ..errors import ConflictError
from ..records import Annotation, Lint, Revision, Trajectory, now, trajectory_data
from .cache import cached_read
from .connection import Connections, naive, utc
from .repository import Repository
from .trajectories import STEP_SCHEMA, TRAJ_SCHEMA, _rows, insert_arrow, register, trajectory_columns

REV_SCHEMA = pa.schema([
    ("trajectory_id", pa.string()), ("rev", pa.int32()), ("author", pa.string()), ("saved_at", pa.timestamp("us")),
    ("reason", pa.string()), ("data", pa.string()),
])
ANN_SCHEMA = pa.schema([
    ("trajectory_id", pa.string()), ("seq", pa.int32()), ("author", pa.string()), ("made_at", pa.timestamp("us")),
    ("status", pa.string()), ("labels", pa.string()), ("rating", pa.int32()), ("comment", pa.string()),
])


# revisions, annotations and lints of many trajectories, each as {trajectory id: [records]}
History = tuple[dict[str, list[Revision]], dict[str, list[Annotation]], dict[str, list[Lint]]]


def insert_revisions(con: Any, revs: list[Revision]) -> None:
    """Add revision rows inside the caller's transaction (an edit, an import)."""
    if not revs:
        return
    insert_arrow(con, "revisions", {
        "trajectory_id": [r.trajectory_id for r in revs], "rev": [r.rev for r in revs],
        "author": [r.author for r in revs], "saved_at": [naive(r.at) for r in revs], "reason": [r.reason for r in revs],
        "data": [json.dumps(r.data, ensure_ascii=False) for r in revs],
    }, REV_SCHEMA)


def insert_annotations(con: Any, anns: list[Annotation]) -> None:
    """Add annotation events inside the caller's transaction (a review, a bulk review, an import)."""
    if not anns:
        return
    insert_arrow(con, "annotations", {
        "trajectory_id": [a.trajectory_id for a in anns], "seq": [a.seq for a in anns],
        "author": [a.author for a in anns], "made_at": [naive(a.at) for a in anns], "status": [a.status for a in anns],
        "labels": [json.dumps(a.labels) for a in anns], "rating": [a.rating for a in anns],
        "comment": [a.comment for a in anns],
    }, ANN_SCHEMA)


def insert_history(con: Any, revs: list[Revision], anns: list[Annotation]) -> None:
    """`insert_revisions` and `insert_annotations` inside the caller's transaction (an import)."""
    insert_revisions(con, revs)
    insert_annotations(con, anns)


def _revision(r: dict[str, Any]) -> Revision:
    return Revision(**{**r, "at": utc(r["at"]), "data": json.loads(r["data"])})


def _annotation(r: dict[str, Any]) -> Annotation:
    return Annotation(**{**r, "at": utc(r["at"]), "labels": json.loads(r["labels"] or "[]")})


class HistoryRepository(Repository):
    """Edits with optimistic locking, revisions, annotations. `load` reads a trajectory as it is now and
    `insert_lints` writes lints inside a transaction (both the trajectories' own SQL)."""

    def __init__(self, db: Connections, load: Callable[[str], Trajectory],
                 insert_lints: Callable[[Any, list[Lint]], None]) -> None:
        super().__init__(db)
        self._load = load
        self._insert_lints = insert_lints

    def save_edit(self, traj: Trajectory, *, base_revision: int, author: str, reason: str | None = None,
                  lints: Iterable[Lint] = ()) -> Trajectory:
        """Store `traj` as the next revision, if nobody saved since `base_revision`; else ConflictError."""
        with self.db.transaction() as con:
            row = con.execute("SELECT revision, updated_by FROM trajectories WHERE id = ?", [traj.id]).fetchall()
            row = row[0] if row else None
            if row is None:
                raise ConflictError(f"trajectory {traj.id} no longer exists")
            current, by = row
            if current != base_revision:
                raise ConflictError(
                    f"{by or 'someone'} saved revision {current} of this trajectory after you opened revision "
                    f"{base_revision}; your edit is still in the form: reload to see theirs, then save again",
                    author=by, revision=current,
                )
            if current == 0 and not self._has_revisions(con, traj.id):
                insert_revisions(con, [self._snapshot(traj.id, author="import")])
            stamp = now()
            saved = traj.model_copy(update={"revision": current + 1, "updated_at": stamp, "updated_by": author})
            insert_revisions(con, [Revision(
                trajectory_id=traj.id, rev=saved.revision, author=author, at=stamp, reason=reason,
                data=saved.content_dict(),
            )])
            self._replace_trajectory(con, saved)
            con.execute("DELETE FROM lints WHERE trajectory_id = ? AND kind NOT IN ('duplicate_question', 'eval_contamination')", [traj.id])
            self._insert_lints(con, list(lints))
        return saved

    def _has_revisions(self, con: Any, traj_id: str) -> bool:
        return con.execute("SELECT count(*) FROM revisions WHERE trajectory_id = ?", [traj_id]).fetchall()[0][0] > 0

    def _snapshot(self, traj_id: str, author: str) -> Revision:
        original = self._load(traj_id)
        return Revision(trajectory_id=traj_id, rev=original.revision, author=original.updated_by or author,
                        at=original.updated_at or original.created_at, reason="as imported", data=original.content_dict())

    def _replace_trajectory(self, con: Any, traj: Trajectory) -> None:
        t_cols, s_cols = trajectory_columns([trajectory_data(traj)])
        con.execute("DELETE FROM trajectories WHERE id = ?", [traj.id])
        con.execute("DELETE FROM steps WHERE trajectory_id = ?", [traj.id])
        insert_arrow(con, "trajectories", t_cols, TRAJ_SCHEMA)
        insert_arrow(con, "steps", s_cols, STEP_SCHEMA)

    @cached_read
    def list_revisions(self, traj_id: str) -> list[Revision]:
        with self.db.connect() as con:
            rows = _rows(con.execute(
                "SELECT trajectory_id, rev, author, saved_at AS at, reason, data FROM revisions WHERE trajectory_id = ? ORDER BY rev",
                [traj_id],
            ))
        return [_revision(r) for r in rows]

    def revision_trajectory(self, traj_id: str, rev: int) -> Trajectory:
        """The trajectory as it was at revision `rev`."""
        current = self._load(traj_id)
        for r in self.list_revisions(traj_id):
            if r.rev == rev:
                return Trajectory.model_validate({**r.data, "id": traj_id, "revision": rev, "created_at": current.created_at})
        if rev == current.revision:
            return current
        raise ConflictError(f"trajectory {traj_id} has no revision {rev}")

    def imported_revisions(self, ids: list[str]) -> dict[str, Trajectory]:
        """Of `ids`, those edited since they came in (current revision above 0): each as it was at revision 0,
        the state it was imported or generated in."""
        if not ids:
            return {}
        with self.db.connect() as con:
            register(con, "_ids", pa.table({"id": pa.array(ids, pa.string())}))
            try:
                rows = _rows(con.execute(
                    "SELECT r.trajectory_id, r.data, t.created_at FROM revisions r JOIN _ids i ON i.id = r.trajectory_id "
                    "JOIN trajectories t ON t.id = r.trajectory_id WHERE r.rev = 0 AND t.revision > 0 "
                    "ORDER BY r.trajectory_id"
                ))
            finally:
                con.unregister("_ids")
        return {r["trajectory_id"]: Trajectory.model_validate(
            {**json.loads(r["data"]), "id": r["trajectory_id"], "revision": 0, "created_at": utc(r["created_at"])})
            for r in rows}

    def annotate(self, ann: Annotation) -> Annotation:
        with self.db.transaction() as con:
            seq = con.execute(
                "SELECT coalesce(max(seq), 0) + 1 FROM annotations WHERE trajectory_id = ?", [ann.trajectory_id]
            ).fetchall()[0][0]
            saved = ann.model_copy(update={"seq": seq})
            insert_annotations(con, [saved])
        return saved

    def list_annotations(self, traj_id: str) -> list[Annotation]:
        with self.db.connect() as con:
            rows = _rows(con.execute(
                "SELECT trajectory_id, seq, author, made_at AS at, status, labels, rating, comment FROM annotations "
                "WHERE trajectory_id = ? ORDER BY seq", [traj_id],
            ))
        return [_annotation(r) for r in rows]

    def history_of(self, ids: list[str]) -> History:
        """Revisions, annotations and lints of `ids`, each as {trajectory id: [records]}."""
        revs: dict[str, list[Revision]] = {}
        anns: dict[str, list[Annotation]] = {}
        lints: dict[str, list[Lint]] = {}
        with self.db.connect() as con:
            register(con, "_ids", pa.table({"id": pa.array(ids, pa.string())}))
            try:
                for r in _rows(con.execute(
                    "SELECT trajectory_id, rev, author, saved_at AS at, reason, data FROM revisions JOIN _ids ON id = trajectory_id "
                    "ORDER BY trajectory_id, rev"
                )):
                    revs.setdefault(r["trajectory_id"], []).append(_revision(r))
                for r in _rows(con.execute(
                    "SELECT trajectory_id, seq, author, made_at AS at, status, labels, rating, comment FROM annotations "
                    "JOIN _ids ON id = trajectory_id ORDER BY trajectory_id, seq"
                )):
                    anns.setdefault(r["trajectory_id"], []).append(_annotation(r))
                for r in _rows(con.execute(
                    "SELECT trajectory_id, kind, step, detail FROM lints JOIN _ids ON id = trajectory_id "
                    "ORDER BY trajectory_id, step NULLS FIRST, kind, detail"
                )):
                    lints.setdefault(r["trajectory_id"], []).append(Lint.model_validate(r))
            finally:
                con.unregister("_ids")
        return revs, anns, lints
