"""Keys: every table whose rows have an identity declares it, so a second writer can never add a row twice.

The migration first mends what a database written before it may hold: rows stored twice (two imports of one
file at once) keep their first copy, a source listed twice its latest, and events that got one sequence
number twice (concurrent reviews) are numbered again in the order they were made, so none is lost.
"""

from __future__ import annotations

# table -> its key; the first copy of a row stored twice is kept (sources: the latest, as saving one replaces it)
KEYED = {
    "sources": ("name",),
    "trajectories": ("id",),
    "steps": ("trajectory_id", "idx"),
    "revisions": ("trajectory_id", "rev"),
    "dataset_members": ("dataset", "position"),
    "dataset_snapshot_trajectories": ("id", "revision"),
    "dataset_snapshot_steps": ("trajectory_id", "idx", "revision"),
    "search_docs": ("trajectory_id",),
}
# table -> (group, sequence column, order of making): numbered again 1, 2, ... within each group
NUMBERED = {
    "annotations": ("trajectory_id", "seq", "seq, made_at, rowid"),
    "run_events": ("run", "seq", "seq, logged_at, rowid"),
    "prompt_versions": ("task, method", "version", "version, saved_at, rowid"),
}


def _keep_one(table: str, key: tuple[str, ...]) -> str:
    keep = "max" if table == "sources" else "min"
    return f"DELETE FROM {table} WHERE rowid NOT IN (SELECT {keep}(rowid) FROM {table} GROUP BY {', '.join(key)});\n"


def _renumber(table: str, group: str, column: str, order: str) -> str:
    return (f"UPDATE {table} SET {column} = r.n FROM (SELECT rowid AS rid, row_number() OVER "
            f"(PARTITION BY {group} ORDER BY {order}) AS n FROM {table}) r WHERE {table}.rowid = r.rid;\n")


def mend_script() -> str:
    sql = "".join(_keep_one(table, key) for table, key in KEYED.items())
    sql += "".join(_renumber(table, *spec) for table, spec in NUMBERED.items())
    # lints have no identity of their own (two equal lints say the same): exact copies are dropped
    sql += ("DELETE FROM lints WHERE rowid NOT IN (SELECT min(rowid) FROM lints "
            "GROUP BY trajectory_id, kind, step, detail);\n")
    return sql


def keys_script() -> str:
    sql = "".join(f"ALTER TABLE {table} ADD PRIMARY KEY ({', '.join(key)});\n" for table, key in KEYED.items())
    sql += "".join(f"ALTER TABLE {table} ADD PRIMARY KEY ({group}, {column});\n"
                   for table, (group, column, _) in NUMBERED.items())
    return sql


# two steps: DuckDB builds a key over the rows as they were when its transaction began
KEYS = [mend_script(), keys_script()]
