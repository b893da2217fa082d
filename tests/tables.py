"""What an import leaves in the database, in a form two databases can be compared by."""

from __future__ import annotations

from fireact_core.store import Store

TABLES = {
    "trajectories": "SELECT * EXCLUDE (created_at) FROM trajectories ORDER BY rowid",
    "steps": "SELECT * FROM steps ORDER BY trajectory_id, idx",
    "lints": "SELECT * FROM lints ORDER BY trajectory_id, kind, step, detail",
    "sources": "SELECT * EXCLUDE (created_at) FROM sources ORDER BY name",
}


def snapshot(store: Store) -> dict[str, list[tuple]]:
    """Every imported row, trajectories in their stored order (exports follow it), the rest sorted."""
    with store.db.connect() as con:
        return {name: con.execute(sql).fetchall() for name, sql in TABLES.items()}
