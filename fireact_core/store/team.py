"""Team curation: users and their roles, who is assigned which trajectory, adjudications (an admin's final
decision on a disputed trajectory) and who started each background job. Every table has a key, so a second
writer can never duplicate a row."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import pyarrow as pa

from ..filters import TrajectoryFilter
from ..records import Adjudication, Annotation, AssignmentProgress, Decision, User, now
from .connection import Connections, naive, utc
from .curation import order_sql
from .history import HistoryRepository
from .repository import Repository
from .trajectories import _rows, register


FilterSql = Callable[[TrajectoryFilter], tuple[str, list[Any]]]
# Each author's latest annotation event per trajectory, leaving out the events an adjudication wrote.
DECISIONS = """
    SELECT a.trajectory_id, a.author, a.status, a.labels, a.made_at FROM annotations a
    ANTI JOIN adjudications j ON j.trajectory_id = a.trajectory_id AND j.seq = a.seq
    QUALIFY row_number() OVER (PARTITION BY a.trajectory_id, a.author ORDER BY a.seq DESC) = 1"""


class TeamRepository(Repository):
    """Users, assignments, adjudications and owners. The rules (who may do what) live in fireact_core.curation.team; this
    class only reads and writes. `where` is the browse filter's SQL (a filter's condition on `trajectories t`);
    an adjudication is an annotation event of `history`."""

    def __init__(self, db: Connections, history: HistoryRepository, where: FilterSql) -> None:
        super().__init__(db)
        self.history = history
        self._where = where

    # users

    def save_user(self, name: str, role: str, by: str) -> None:
        """Add a user or change the role of one (created_at and created_by stay as first written)."""
        at = naive(now())
        with self.db.transaction() as con:
            con.execute("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                        "role = excluded.role, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                        [name, role, at, by, at, by])

    def remove_user(self, name: str) -> bool:
        with self.db.transaction() as con:
            found = con.execute("SELECT count(*) FROM users WHERE name = ?", [name]).fetchone()[0]
            con.execute("DELETE FROM users WHERE name = ?", [name])
        return bool(found)

    def list_users(self) -> list[User]:
        with self.db.connect() as con:
            rows = _rows(con.execute("SELECT name, role, created_at, created_by FROM users ORDER BY name"))
        return [User(**{**r, "created_at": utc(r["created_at"])}) for r in rows]

    def user_role(self, name: str) -> str | None:
        with self.db.connect() as con:
            row = con.execute("SELECT role FROM users WHERE name = ?", [name]).fetchone()
        return row[0] if row else None

    def user_standing(self, name: str) -> tuple[str | None, int]:
        """(the role of `name` or None, how many users there are) in one query."""
        with self.db.connect() as con:
            return con.execute("SELECT (SELECT role FROM users WHERE name = ?), (SELECT count(*) FROM users)",
                               [name]).fetchone()

    def count_users(self, role: str | None = None) -> int:
        sql, params = ("SELECT count(*) FROM users WHERE role = ?", [role]) if role else ("SELECT count(*) FROM users", [])
        with self.db.connect() as con:
            return con.execute(sql, params).fetchone()[0]

    # assignments

    def assignments_of(self, ids: list[str]) -> dict[str, list[str]]:
        """{trajectory id: its annotators} for those of `ids` that have any."""
        if not ids:
            return {}
        with self.db.connect() as con:
            rows = con.execute("SELECT trajectory_id, list(annotator ORDER BY annotator) FROM assignments "
                               "WHERE trajectory_id = ANY(?) GROUP BY trajectory_id", [list(ids)]).fetchall()
        return dict(rows)

    def assignment_load(self) -> dict[str, int]:
        """How many trajectories each annotator is assigned, over the whole database."""
        with self.db.connect() as con:
            return dict(con.execute("SELECT annotator, count(*) FROM assignments GROUP BY annotator").fetchall())

    def add_assignments(self, pairs: Iterable[tuple[str, str]], by: str) -> int:
        """Insert (trajectory id, annotator) pairs; pairs already there are left alone. Returns how many were new."""
        pairs = list(dict.fromkeys(pairs))
        if not pairs:
            return 0
        data = pa.table({"trajectory_id": pa.array([p[0] for p in pairs], pa.string()),
                         "annotator": pa.array([p[1] for p in pairs], pa.string())})
        with self.db.transaction() as con:
            before = con.execute("SELECT count(*) FROM assignments").fetchone()[0]
            register(con, "_new_assign", data)
            try:
                con.execute("INSERT INTO assignments SELECT trajectory_id, annotator, ?, ? FROM _new_assign "
                            "ON CONFLICT DO NOTHING", [naive(now()), by])
            finally:
                con.unregister("_new_assign")
            after = con.execute("SELECT count(*) FROM assignments").fetchone()[0]
        return after - before

    def remove_assignments(self, ids: list[str], annotators: list[str] | None = None) -> int:
        if not ids:
            return 0
        who = "" if annotators is None else f" AND annotator IN ({', '.join('?' * len(annotators))})"
        params = [list(ids), *(annotators or [])]
        with self.db.transaction() as con:
            n = con.execute(f"SELECT count(*) FROM assignments WHERE trajectory_id = ANY(?){who}", params).fetchone()[0]
            con.execute(f"DELETE FROM assignments WHERE trajectory_id = ANY(?){who}", params)
        return n

    def is_assigned(self, traj_id: str, annotator: str) -> bool:
        with self.db.connect() as con:
            return con.execute("SELECT count(*) FROM assignments WHERE trajectory_id = ? AND annotator = ?",
                               [traj_id, annotator]).fetchone()[0] > 0

    def next_assigned(self, f: TrajectoryFilter, annotator: str, exclude: Iterable[str] = (), sort: str = "imported",
                      descending: bool = False) -> str | None:
        """The first trajectory in `f` assigned to `annotator` that they have not accepted or rejected yet."""
        where, params = self._where(f)
        skip = sorted(set(exclude))
        if skip:
            where += f" AND t.id NOT IN ({', '.join('?' * len(skip))})"
            params = [*params, *skip]
        sql = f"""SELECT t.id FROM trajectories t JOIN assignments s ON s.trajectory_id = t.id AND s.annotator = ?
            WHERE {where} AND t.id NOT IN (SELECT trajectory_id FROM ({DECISIONS}) WHERE author = ? AND status IS NOT NULL)
            ORDER BY {order_sql(sort, descending)} LIMIT 1"""
        with self.db.connect() as con:
            row = con.execute(sql, [annotator, *params, annotator]).fetchone()
        return row[0] if row else None

    def next_unassigned(self, f: TrajectoryFilter, exclude: Iterable[str] = (), sort: str = "imported",
                        descending: bool = False) -> str | None:
        """The first unreviewed trajectory in `f` that nobody is assigned."""
        where, params = self._where(f.model_copy(update={"review": "unreviewed"}))
        skip = sorted(set(exclude))
        if skip:
            where += f" AND t.id NOT IN ({', '.join('?' * len(skip))})"
            params = [*params, *skip]
        sql = (f"SELECT t.id FROM trajectories t WHERE {where} AND t.id NOT IN (SELECT trajectory_id FROM assignments) "
               f"ORDER BY {order_sql(sort, descending)} LIMIT 1")
        with self.db.connect() as con:
            row = con.execute(sql, params).fetchone()
        return row[0] if row else None

    def assignment_progress(self, f: TrajectoryFilter | None = None) -> list[AssignmentProgress]:
        """Per annotator, within `f`: trajectories assigned, how many of those they accepted or rejected, and
        how many they reviewed in all (assigned or not)."""
        where, params = self._where(f or TrajectoryFilter())
        sql = f"""
            WITH t AS (SELECT t.id FROM trajectories t WHERE {where}),
            d AS (SELECT * FROM ({DECISIONS}) WHERE status IS NOT NULL AND trajectory_id IN (SELECT id FROM t)),
            s AS (SELECT * FROM assignments WHERE trajectory_id IN (SELECT id FROM t)),
            names AS (SELECT annotator AS name FROM s UNION SELECT author FROM d)
            SELECT n.name AS annotator,
                   (SELECT count(*) FROM s WHERE s.annotator = n.name) AS assigned,
                   (SELECT count(*) FROM s JOIN d ON d.trajectory_id = s.trajectory_id AND d.author = s.annotator
                    WHERE s.annotator = n.name) AS done,
                   (SELECT count(*) FROM d WHERE d.author = n.name) AS reviewed
            FROM names n ORDER BY n.name"""
        with self.db.connect() as con:
            rows = _rows(con.execute(sql, params))
        return [AssignmentProgress(**r) for r in rows]

    # decisions and adjudications

    def decisions(self, f: TrajectoryFilter | None = None) -> list[Decision]:
        """Each assigned annotator's current decision on each trajectory in `f`: status and labels of their
        latest event there (adjudications left out), for agreement."""
        where, params = self._where(f or TrajectoryFilter())
        sql = (f"SELECT d.trajectory_id, d.author, d.status, d.labels FROM ({DECISIONS}) d JOIN assignments s "
               f"ON s.trajectory_id = d.trajectory_id AND s.annotator = d.author WHERE d.trajectory_id IN (SELECT t.id FROM trajectories t WHERE {where}) ORDER BY d.trajectory_id, d.author")
        with self.db.connect() as con:
            rows = _rows(con.execute(sql, params))
        return [Decision(**{**r, "labels": json.loads(r["labels"] or "[]")}) for r in rows]

    def own_review_state(self, traj_id: str, author: str) -> Annotation | None:
        """The latest annotation event `author` made on `traj_id`."""
        with self.db.connect() as con:
            rows = _rows(con.execute(
                "SELECT trajectory_id, seq, author, made_at AS at, status, labels, rating, comment FROM annotations "
                "WHERE trajectory_id = ? AND author = ? ORDER BY seq DESC LIMIT 1", [traj_id, author]))
        return Annotation(**{**rows[0], "at": utc(rows[0]["at"]), "labels": json.loads(rows[0]["labels"] or "[]")}) \
            if rows else None

    def save_adjudication(self, ann: Annotation, note: str | None = None) -> Annotation:
        """Record an admin's final decision: an annotation event, and the adjudication that points at it."""
        with self.db.transaction() as con:
            saved = self.history.annotate(ann)
            con.execute("INSERT INTO adjudications VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (trajectory_id) DO UPDATE "
                        "SET status = excluded.status, labels = excluded.labels, decided_by = excluded.decided_by, "
                        "decided_at = excluded.decided_at, seq = excluded.seq, note = excluded.note",
                        [saved.trajectory_id, saved.status, json.dumps(saved.labels), saved.author, naive(saved.at),
                         saved.seq, note])
        return saved

    def adjudication(self, traj_id: str) -> Adjudication | None:
        with self.db.connect() as con:
            rows = _rows(con.execute("SELECT trajectory_id, status, labels, decided_by, decided_at, seq, note "
                                     "FROM adjudications WHERE trajectory_id = ?", [traj_id]))
        if not rows:
            return None
        return Adjudication(**{**rows[0], "labels": json.loads(rows[0]["labels"] or "[]"),
                                "decided_at": utc(rows[0]["decided_at"])})

    def adjudicated_ids(self, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        with self.db.connect() as con:
            rows = con.execute("SELECT trajectory_id FROM adjudications WHERE trajectory_id = ANY(?)", [list(ids)]).fetchall()
        return {r[0] for r in rows}

    # owners of background work

    def record_owner(self, kind: str, key: str, by: str) -> None:
        """Who started a job or a run (the first writer wins: a resume keeps the one who started it)."""
        with self.db.transaction() as con:
            con.execute("INSERT INTO owners VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", [kind, key, by, naive(now())])

    def owners_of(self, kind: str) -> dict[str, str]:
        with self.db.connect() as con:
            return dict(con.execute("SELECT id, created_by FROM owners WHERE kind = ?", [kind]).fetchall())
