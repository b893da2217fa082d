"""Fork links: which trajectory was continued from which parent, at which step of which revision (SQL lives
here; the table is in schema.py)."""

from __future__ import annotations

import json
from collections.abc import Iterable

import pyarrow as pa

from ..records import ForkLink
from .connection import naive, utc
from .repository import Repository
from .trajectories import insert_table, register


FORK_COLUMNS = ["child_id", "parent_id", "parent_revision", "fork_step", "run", "kind", "created_at"]
FORK_SCHEMA = pa.schema([
    ("child_id", pa.string()), ("parent_id", pa.string()), ("parent_revision", pa.int32()),
    ("fork_step", pa.int32()), ("run", pa.string()), ("kind", pa.string()), ("created_at", pa.timestamp("us")),
])


def fork_table(links: list[ForkLink]) -> pa.Table:
    """The forks table's rows of `links`, as one Arrow table (the bulk path)."""
    return pa.Table.from_pydict({
        "child_id": [x.child_id for x in links], "parent_id": [x.parent_id for x in links],
        "parent_revision": [x.parent_revision for x in links], "fork_step": [x.fork_step for x in links],
        "run": [x.run for x in links], "kind": [x.kind for x in links],
        "created_at": [naive(x.created_at) for x in links],
    }, schema=FORK_SCHEMA)


def links_in(trajs: pa.Table) -> list[ForkLink]:
    """The fork links that trajectories being imported carry in their meta (`meta.fork`, as continuations are
    stored and exported), so a native export imported elsewhere keeps its links."""
    out = []
    for traj_id, source, meta in zip(*(trajs.column(c).to_pylist() for c in ("id", "source", "meta")), strict=True):
        if not meta or '"fork"' not in meta:
            continue
        fork = json.loads(meta).get("fork")
        if isinstance(fork, dict) and fork.get("parent_id") and fork.get("kind") in ("continue", "repair"):
            out.append(ForkLink(child_id=traj_id, parent_id=fork["parent_id"], run=source, kind=fork["kind"],
                                parent_revision=int(fork.get("parent_revision") or 0),
                                fork_step=int(fork.get("fork_step") or 0)))
    return out


def _link(row: tuple) -> ForkLink:
    data = dict(zip(FORK_COLUMNS, row, strict=True))
    data["created_at"] = utc(data["created_at"])
    return ForkLink.model_validate(data)


class ForkRepository(Repository):
    """Links from continued trajectories to their parents."""

    def add_forks(self, rows: Iterable[ForkLink]) -> int:
        """Add links whose child is not linked yet (a child has one parent; a link saved twice is kept once),
        in one transaction: called inside the transaction that saves the children, both are kept or neither.
        Returns how many were added."""
        first: dict[str, ForkLink] = {}
        for link in rows:
            first.setdefault(link.child_id, link)
        links = list(first.values())
        if not links:
            return 0
        with self.db.transaction() as con:
            register(con, "_ids", pa.table({"id": pa.array([x.child_id for x in links], pa.string())}))
            try:
                taken = {r[0] for r in con.execute(
                    "SELECT f.child_id FROM forks f JOIN _ids i ON f.child_id = i.id").fetchall()}
            finally:
                con.unregister("_ids")
            fresh = [x for x in links if x.child_id not in taken]
            if fresh:
                insert_table(con, "forks", fork_table(fresh))
        return len(fresh)

    def fork_children(self, parent_id: str) -> list[ForkLink]:
        """The links of the trajectories continued from `parent_id`, oldest first."""
        with self.db.connect() as con:
            rows = con.execute(f"SELECT {', '.join(FORK_COLUMNS)} FROM forks WHERE parent_id = ? "
                               "ORDER BY created_at, child_id", [parent_id]).fetchall()
        return [_link(r) for r in rows]

    def fork_parent(self, child_id: str) -> ForkLink | None:
        """The link of a continued trajectory to its parent; None for a trajectory that was not forked."""
        with self.db.connect() as con:
            row = con.execute(f"SELECT {', '.join(FORK_COLUMNS)} FROM forks WHERE child_id = ?", [child_id]).fetchone()
        return _link(row) if row else None

    def fork_links(self, ids: list[str] | None = None) -> list[ForkLink]:
        """Every link, or those whose child or parent is one of `ids`; by parent, then oldest first."""
        with self.db.connect() as con:
            if ids is None:
                rows = con.execute(f"SELECT {', '.join(FORK_COLUMNS)} FROM forks "
                                   "ORDER BY parent_id, created_at, child_id").fetchall()
                return [_link(r) for r in rows]
            register(con, "_ids", pa.table({"id": pa.array(list(ids), pa.string())}))
            try:
                rows = con.execute(
                    f"SELECT {', '.join(FORK_COLUMNS)} FROM forks WHERE child_id IN (SELECT id FROM _ids) "
                    "OR parent_id IN (SELECT id FROM _ids) ORDER BY parent_id, created_at, child_id").fetchall()
            finally:
                con.unregister("_ids")
        return [_link(r) for r in rows]
