"""Trajectories and steps: bulk saves through Arrow, loads, summaries and counts."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from itertools import accumulate
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import NotFoundError
from ..records import (SEARCH, Action, ActionData, Annotation, FlagsData, Lint, Message, Revision, Source, Stats, Step,
                       StepData, StepFlags, Trajectory, TrajectoryData, trajectory_data)
from ..io.lint import question_key
from .cache import cached_read
from .connection import Connections, naive, utc
from .repository import Repository

TRAJ_COLUMNS = [
    "id", "source", "task", "split", "qid", "question", "qnorm", "gold", "method", "model", "final_answer",
    "reward", "em", "f1", "status", "error", "tokens_in", "tokens_out", "latency_s", "cost_usd", "n_steps",
    "n_search", "prompt", "meta", "revision", "created_at", "updated_at", "updated_by", "schema_version",
]
STEP_COLUMNS = [
    "trajectory_id", "idx", "thought", "action_raw", "action_name", "action_arg", "observation", "raw", "obs_raw",
    "train", "perturbed", "original_observation", "parse_error",
]
SOURCE_COLUMNS = ["name", "kind", "format", "path", "task", "split", "model", "method", "attempted", "created_at", "meta"]


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


PLAIN_TRAJ_COLUMNS = [c for c in TRAJ_COLUMNS if c not in {"qnorm", "n_steps", "n_search", "prompt", "meta",
                                                           "created_at", "updated_at"}]


def _n_search(steps: list[StepData]) -> int:
    return sum(1 for st in steps if (a := st.get("action")) is not None and (a.get("name") or "").lower() == SEARCH)


_NO_ACTION = cast(ActionData, {})  # a step without an action: every action column NULL
_NO_FLAGS: FlagsData = {}


def _dumps_all(values: list[dict[str, Any]]) -> list[str | None]:
    """`_dumps` of each value; values of a file mostly repeat (a reader's meta), so each distinct flat one is
    dumped once."""
    done: dict[tuple, str | None] = {}
    out: list[str | None] = []
    for value in values:
        try:
            key = tuple((k, type(v), v) for k, v in value.items())  # typed: True and 1 are equal keys
            text = done.get(key)
            if text is None:
                text = done[key] = _dumps(value)
        except TypeError:  # a nested (unhashable) value
            text = _dumps(value)
        out.append(text)
    return out


def trajectory_columns(records: list[TrajectoryData]) -> tuple[dict[str, list], dict[str, list]]:
    """Column lists for the trajectories and steps tables (built column by column: this is the bulk path), of
    trajectories as data with every field present (`io.formats.common.trajectory_record`, or
    `records.trajectory_data`); a step's absent keys read as the `Step` defaults."""
    return _trajectory_columns(records), _step_columns(records)


def _trajectory_columns(records: list[TrajectoryData], searches: bool = True) -> dict[str, list]:
    """`searches` False: without n_search (`trajectory_tables` counts them in its steps table)."""
    rows = cast(list[dict[str, Any]], records)  # read by column name below
    t: dict[str, list] = {c: [tr[c] for tr in rows] for c in PLAIN_TRAJ_COLUMNS}
    t["qnorm"] = [question_key(q) for q in t["question"]]
    t["n_steps"] = [len(tr["steps"]) for tr in records]
    if searches:
        t["n_search"] = [_n_search(tr["steps"]) for tr in records]
    t["prompt"] = [_dumps([{"role": m["role"], "content": m["content"]} for m in prompt])
                   if (prompt := tr["prompt"]) is not None else None for tr in records]
    t["meta"] = _dumps_all([tr["meta"] for tr in records])
    t["created_at"] = [naive(tr["created_at"]) for tr in records]
    t["updated_at"] = [naive(tr["updated_at"]) for tr in records]
    return t


def _step_columns(records: list[TrajectoryData]) -> dict[str, list]:
    steps = [st for tr in records for st in tr["steps"]]
    actions = [st.get("action") or _NO_ACTION for st in steps]
    flags = [st.get("flags") or _NO_FLAGS for st in steps]
    s: dict[str, list] = {
        "trajectory_id": [tr["id"] for tr in records for _ in tr["steps"]],
        "idx": [idx for tr in records for idx in range(len(tr["steps"]))],
        "thought": [st.get("thought") for st in steps],
        "action_raw": [a.get("raw") for a in actions], "action_name": [a.get("name") for a in actions],
        "action_arg": [a.get("arg") for a in actions],
        "observation": [st.get("observation") for st in steps], "raw": [st.get("raw") for st in steps],
        "obs_raw": [st.get("obs_raw") for st in steps], "train": [f.get("train", True) for f in flags],
        "perturbed": [f.get("perturbed") for f in flags],
        "original_observation": [f.get("original_observation") for f in flags],
        "parse_error": [f.get("parse_error") for f in flags],
    }
    return s


TRAJ_SCHEMA = pa.schema([
    ("id", pa.string()), ("source", pa.string()), ("task", pa.string()), ("split", pa.string()),
    ("qid", pa.string()), ("question", pa.string()), ("qnorm", pa.string()), ("gold", pa.string()),
    ("method", pa.string()), ("model", pa.string()), ("final_answer", pa.string()), ("reward", pa.bool_()),
    ("em", pa.float64()), ("f1", pa.float64()), ("status", pa.string()), ("error", pa.string()),
    ("tokens_in", pa.int64()), ("tokens_out", pa.int64()), ("latency_s", pa.float64()), ("cost_usd", pa.float64()),
    ("n_steps", pa.int32()), ("n_search", pa.int32()), ("prompt", pa.string()), ("meta", pa.string()),
    ("revision", pa.int32()), ("created_at", pa.timestamp("us")), ("updated_at", pa.timestamp("us")),
    ("updated_by", pa.string()), ("schema_version", pa.int32()),
])
STEP_SCHEMA = pa.schema([
    ("trajectory_id", pa.string()), ("idx", pa.int32()), ("thought", pa.string()), ("action_raw", pa.string()),
    ("action_name", pa.string()), ("action_arg", pa.string()), ("observation", pa.string()), ("raw", pa.string()),
    ("obs_raw", pa.string()), ("train", pa.bool_()), ("perturbed", pa.string()),
    ("original_observation", pa.string()), ("parse_error", pa.string()),
])
LINT_SCHEMA = pa.schema([("trajectory_id", pa.string()), ("kind", pa.string()), ("step", pa.int32()), ("detail", pa.string())])


def register(con: Any, name: str, table: pa.Table) -> None:
    """`con.register`, after finishing any result an earlier `fetchone()` left half-read (DuckDB refuses otherwise)."""
    con.complete()
    con.register(name, table)


def insert_arrow(con: Any, table: str, columns: dict[str, list], schema: pa.Schema) -> None:
    """One INSERT of many rows: the rows travel as an Arrow table, never one statement per row."""
    insert_table(con, table, pa.Table.from_pydict(columns, schema=schema))


def insert_table(con: Any, table: str, data: pa.Table) -> None:
    """`insert_arrow` of a built Arrow table (its column names are the table's)."""
    register(con, "_incoming", data)
    try:
        names = ", ".join(data.schema.names)
        con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM _incoming")
    finally:
        con.unregister("_incoming")


def without_ids(trajs: pa.Table, steps: pa.Table, ids: set[str]) -> tuple[pa.Table, pa.Table]:
    """The trajectories and steps tables without the trajectories whose id is in `ids`."""
    if not ids:
        return trajs, steps
    drop = pa.array(sorted(ids), pa.string())
    return (trajs.filter(pc.invert(pc.is_in(trajs.column("id"), value_set=drop))),
            steps.filter(pc.invert(pc.is_in(steps.column("trajectory_id"), value_set=drop))))


def trajectory_tables(records: list[TrajectoryData]) -> tuple[pa.Table, pa.Table]:
    """`trajectory_columns` as Arrow tables for the trajectories and steps tables (what `insert_tables` and
    `save_record_tables` write; empty tables of the right columns for no trajectories)."""
    steps = _step_table(records)
    columns = _trajectory_columns(records, searches=False)
    columns["n_search"] = _searches(columns["n_steps"], steps.column("action_name").combine_chunks())
    return pa.Table.from_pydict(columns, schema=TRAJ_SCHEMA), steps


def _searches(n_steps: list[int], action_name: pa.Array) -> pa.Array:
    """`_n_search` of each trajectory, from its steps' action names (`n_steps` rows each, in order): a name
    lowers to "search" in Python exactly when its ASCII letters do, as no other letter lowers to one of those."""
    hits = pc.equal(pc.ascii_lower(action_name), SEARCH).fill_null(False).cast(pa.int64())
    before = pc.cumulative_sum(pa.concat_arrays([pa.array([0], pa.int64()), hits]))  # searches before each row
    ends = list(accumulate(n_steps, initial=0))
    return pc.subtract(before.take(pa.array(ends[1:], pa.int64())), before.take(pa.array(ends[:-1], pa.int64())))


# a step as data (`StepData`), as Arrow reads it: absent keys read as nulls
_STEP_STRUCT = pa.struct([
    ("thought", pa.string()),
    ("action", pa.struct([("raw", pa.string()), ("name", pa.string()), ("arg", pa.string())])),
    ("observation", pa.string()), ("raw", pa.string()), ("obs_raw", pa.string()),
    ("flags", pa.struct([("train", pa.bool_()), ("perturbed", pa.string()), ("original_observation", pa.string()),
                         ("parse_error", pa.string())])),
])


def _step_table(records: list[TrajectoryData]) -> pa.Table:
    """The steps table of `_step_columns`, with the steps read by Arrow in one pass rather than a list per
    column (about half the time); a missing `train` flag reads as True."""
    steps = pa.array([st for tr in records for st in tr["steps"]], _STEP_STRUCT)
    thought, action, observation, raw, obs_raw, flags = steps.flatten()
    action_raw, action_name, action_arg = action.flatten()
    train, perturbed, original_observation, parse_error = flags.flatten()
    columns = {
        "trajectory_id": pa.array([tr["id"] for tr in records for _ in tr["steps"]], pa.string()),
        "idx": pa.array([idx for tr in records for idx in range(len(tr["steps"]))], pa.int32()),
        "thought": thought, "action_raw": action_raw, "action_name": action_name, "action_arg": action_arg,
        "observation": observation, "raw": raw, "obs_raw": obs_raw, "train": train.fill_null(True),
        "perturbed": perturbed, "original_observation": original_observation, "parse_error": parse_error,
    }
    return pa.Table.from_pydict(columns, schema=STEP_SCHEMA)


def step_from_row(row: dict[str, Any]) -> Step:
    action = None
    if row["action_raw"] is not None:
        action = Action(raw=row["action_raw"], name=row["action_name"], arg=row["action_arg"])
    return Step(
        thought=row["thought"], action=action, observation=row["observation"], raw=row["raw"], obs_raw=row["obs_raw"],
        flags=StepFlags(
            train=bool(row["train"]), perturbed=row["perturbed"],
            original_observation=row["original_observation"], parse_error=row["parse_error"],
        ),
    )


def trajectory_from_row(row: dict[str, Any], steps: list[Step]) -> Trajectory:
    data = {k: row[k] for k in TRAJ_COLUMNS if k not in {"qnorm", "n_steps", "n_search", "prompt", "meta"}}
    data["created_at"] = utc(row["created_at"])
    data["updated_at"] = utc(row["updated_at"])
    prompt = json.loads(row["prompt"]) if row["prompt"] is not None else None
    data["prompt"] = [Message(**m) for m in prompt] if prompt is not None else None
    data["meta"] = json.loads(row["meta"]) if row["meta"] else {}
    data["steps"] = steps
    return Trajectory.model_validate(data)


def _rows(cursor: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r)) for r in cursor.fetchall()]


# adds revisions and annotations inside the caller's transaction (`history.insert_revisions`, `insert_annotations`)
InsertHistory = Callable[[Any, list[Revision], list[Annotation]], None]


class TrajectoryRepository(Repository):
    """Saving and loading trajectories, their steps, lints and sources. `insert_history` writes the revisions and
    annotations that come with new trajectories (the history's own SQL)."""

    def __init__(self, db: Connections, insert_history: InsertHistory) -> None:
        super().__init__(db)
        self._insert_history = insert_history

    def save_trajectories(self, trajs: list[Trajectory], lints: Iterable[Lint] = (), sources: Iterable[Source] = (),
                          revisions: Iterable[Revision] = (), annotations: Iterable[Annotation] = ()) -> int:
        """Add trajectories whose id is new (existing ids are left alone), with their lints and history,
        in one transaction; returns how many were added."""
        with self.db.transaction() as con:
            existing = self._existing_ids(con, [t.id for t in trajs])
            fresh = [t for t in trajs if t.id not in existing]
            t_cols, s_cols = trajectory_columns([trajectory_data(t) for t in fresh])
            for src in sources:
                self.upsert_source(con, src)
            if fresh:
                insert_arrow(con, "trajectories", t_cols, TRAJ_SCHEMA)
                insert_arrow(con, "steps", s_cols, STEP_SCHEMA)
            self._insert_attached(con, lints, revisions, annotations, existing)
            return len(fresh)

    def _insert_attached(self, con: Any, lints: Iterable[Lint], revisions: Iterable[Revision],
                         annotations: Iterable[Annotation], existing: set[str] | frozenset[str]) -> None:
        self.insert_lints(con, [lint for lint in lints if lint.trajectory_id not in existing])
        self._insert_history(con, [r for r in revisions if r.trajectory_id not in existing],
                             [a for a in annotations if a.trajectory_id not in existing])

    def save_record_tables(self, trajs: pa.Table, steps: pa.Table, lints: Iterable[Lint] = (),
                           revisions: Iterable[Revision] = (), annotations: Iterable[Annotation] = (),
                           existing: set[str] | None = None) -> int:
        """`save_trajectories` for trajectories as data built into Arrow tables (`trajectory_tables`): the import
        path; `existing`: which of their ids are stored already, when the caller has just asked (`existing_ids`)
        in this transaction."""
        with self.db.transaction() as con:
            if existing is None:
                existing = self._existing_ids(con, trajs.column("id").to_pylist())
            trajs, steps = without_ids(trajs, steps, existing)
            if trajs.num_rows:
                self.insert_tables(trajs, steps)
            self.save_attached(lints, revisions, annotations, existing)
            return trajs.num_rows

    def insert_tables(self, trajs: pa.Table, steps: pa.Table) -> None:
        """Append built trajectories and steps tables as they are (the caller has left out stored ids)."""
        with self.db.transaction() as con, self.db.in_row_groups(con):
            insert_table(con, "trajectories", trajs)
            insert_table(con, "steps", steps)

    def save_attached(self, lints: Iterable[Lint] = (), revisions: Iterable[Revision] = (),
                      annotations: Iterable[Annotation] = (),
                      existing: set[str] | frozenset[str] = frozenset()) -> None:
        """The lints, revisions and annotations that came with new trajectories (not those of `existing` ids)."""
        with self.db.transaction() as con:
            self._insert_attached(con, lints, revisions, annotations, existing)

    def existing_ids(self, ids: list[str]) -> set[str]:
        """Which of `ids` are stored already."""
        with self.db.connect() as con:
            return self._existing_ids(con, ids)

    def _existing_ids(self, con: Any, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        register(con, "_ids", pa.table({"id": pa.array(ids, pa.string())}))
        try:
            found = con.execute("SELECT t.id FROM trajectories t JOIN _ids USING (id)").fetchall()
        finally:
            con.unregister("_ids")
        return {r[0] for r in found}

    def insert_lints(self, con: Any, lints: list[Lint]) -> None:
        """Add lint rows inside the caller's transaction."""
        if not lints:
            return
        cols: dict[str, list[Any]] = {
            "trajectory_id": [x.trajectory_id for x in lints], "kind": [x.kind for x in lints],
            "step": [x.step for x in lints], "detail": [x.detail for x in lints],
        }
        insert_arrow(con, "lints", cols, LINT_SCHEMA)

    def upsert_source(self, con: Any, src: Source) -> None:
        """Add or replace a source inside the caller's transaction."""
        con.execute("DELETE FROM sources WHERE name = ?", [src.name])
        con.execute(
            f"INSERT INTO sources ({', '.join(SOURCE_COLUMNS)}) VALUES ({', '.join('?' * len(SOURCE_COLUMNS))})",
            [src.name, src.kind, src.format, src.path, src.task, src.split, src.model, src.method, src.attempted,
             naive(src.created_at), _dumps(src.meta)],
        )

    def save_source(self, src: Source) -> None:
        with self.db.transaction() as con:
            self.upsert_source(con, src)

    def get_source(self, name: str) -> Source | None:
        with self.db.connect() as con:
            rows = _rows(con.execute(f"SELECT {', '.join(SOURCE_COLUMNS)} FROM sources WHERE name = ?", [name]))
        if not rows:
            return None
        row = rows[0]
        row["created_at"] = utc(row["created_at"])
        row["meta"] = json.loads(row["meta"]) if row["meta"] else {}
        return Source.model_validate(row)

    @cached_read
    def list_sources(self) -> list[Source]:
        with self.db.connect() as con:
            names = [r[0] for r in con.execute("SELECT name FROM sources ORDER BY created_at, name").fetchall()]
        return [s for s in (self.get_source(n) for n in names) if s is not None]

    @cached_read
    def get_trajectory(self, traj_id: str) -> Trajectory:
        with self.db.connect() as con:
            rows = _rows(con.execute(f"SELECT {', '.join(TRAJ_COLUMNS)} FROM trajectories WHERE id = ?", [traj_id]))
            if not rows:
                raise NotFoundError(f"no trajectory with id {traj_id}")
            steps = _rows(con.execute(
                f"SELECT {', '.join(STEP_COLUMNS)} FROM steps WHERE trajectory_id = ? ORDER BY idx", [traj_id]
            ))
        return trajectory_from_row(rows[0], [step_from_row(r) for r in steps])

    def iter_trajectories(self, source: str | None = None, ids: list[str] | None = None,
                          batch: int = 2000) -> Iterator[Trajectory]:
        """All trajectories (of one source, or with the given ids) in import order, loaded batch by batch."""
        with self.db.connect() as con:
            where, params = "", list[Any]()
            if source is not None:
                where, params = "WHERE source = ?", [source]
            all_ids = [r[0] for r in con.execute(
                f"SELECT id FROM trajectories {where} ORDER BY rowid", params
            ).fetchall()] if ids is None else list(ids)
            for start in range(0, len(all_ids), batch):
                yield from self._load_batch(con, all_ids[start:start + batch])

    def _load_batch(self, con: Any, ids: list[str]) -> list[Trajectory]:
        register(con, "_ids", pa.table({"id": pa.array(ids, pa.string()), "pos": pa.array(range(len(ids)), pa.int64())}))
        try:
            rows = _rows(con.execute(
                f"SELECT {', '.join('t.' + c for c in TRAJ_COLUMNS)} FROM trajectories t JOIN _ids USING (id) ORDER BY pos"
            ))
            step_rows = _rows(con.execute(
                f"SELECT {', '.join('s.' + c for c in STEP_COLUMNS)} FROM steps s JOIN _ids i ON s.trajectory_id = i.id "
                "ORDER BY i.pos, s.idx"
            ))
        finally:
            con.unregister("_ids")
        by_traj: dict[str, list[Step]] = {}
        for r in step_rows:
            by_traj.setdefault(r["trajectory_id"], []).append(step_from_row(r))
        return [trajectory_from_row(r, by_traj.get(r["id"], [])) for r in rows]

    def count_trajectories(self, source: str | None = None) -> int:
        with self.db.connect() as con:
            if source is None:
                return con.execute("SELECT count(*) FROM trajectories").fetchall()[0][0]
            return con.execute("SELECT count(*) FROM trajectories WHERE source = ?", [source]).fetchall()[0][0]

    @cached_read
    def stats(self) -> Stats:
        with self.db.connect() as con:
            total = con.execute("SELECT count(*) FROM trajectories").fetchall()[0][0]
            out: dict[str, Any] = {"trajectories": total}
            for key, col in (("by_source", "source"), ("by_task", "task"), ("by_method", "method")):
                rows = con.execute(
                    f"SELECT {col}, count(*) FROM trajectories GROUP BY {col} ORDER BY count(*) DESC, {col}"
                ).fetchall()
                out[key] = {str(k): n for k, n in rows}
        return Stats(**out)

    @cached_read
    def lint_counts(self, source: str | None = None) -> dict[str, int]:
        """Trajectories per lint kind (a trajectory with two malformed actions counts once)."""
        where, params = ("JOIN trajectories t ON t.id = l.trajectory_id WHERE t.source = ?", [source]) if source else ("", [])
        with self.db.connect() as con:
            rows = con.execute(
                f"SELECT l.kind, count(DISTINCT l.trajectory_id) FROM lints l {where} GROUP BY l.kind ORDER BY l.kind",
                params,
            ).fetchall()
        return {k: n for k, n in rows}

    @cached_read
    def lints_of(self, traj_id: str) -> list[Lint]:
        with self.db.connect() as con:
            rows = _rows(con.execute(
                "SELECT trajectory_id, kind, step, detail FROM lints WHERE trajectory_id = ? ORDER BY step NULLS FIRST, kind",
                [traj_id],
            ))
        return [Lint.model_validate(r) for r in rows]

    def source_question_keys(self, sources: set[str], exclude_ids: set[str]) -> dict[tuple[str, str], int]:
        """(source, normalised question) -> how many stored trajectories of those sources ask it."""
        if not sources:
            return {}
        with self.db.connect() as con:
            register(con, "_ids", pa.table({"id": pa.array(list(exclude_ids), pa.string())}))
            try:
                rows = con.execute(
                    f"SELECT source, qnorm, count(*) FROM trajectories WHERE source IN ({', '.join('?' * len(sources))}) "
                    "AND id NOT IN (SELECT id FROM _ids) GROUP BY source, qnorm", sorted(sources),
                ).fetchall()
            finally:
                con.unregister("_ids")
        return {(s, q): n for s, q, n in rows}
