"""Browse, review and compare: filtered summary queries, paging, sorting, text search, bulk annotation,
review progress, neighbours within a filter and the pairing of two runs by question."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import FireactError
from ..filters import TrajectoryFilter
from ..records import Annotation, ComparePair, Neighbours, Position, ReviewStatus, Summary, now
from .answers import correct_sql, first_per_question_sql
from .cache import cached_read
from .connection import Connections, utc
from .connection import Error as DatabaseError
from .repository import Repository
from .trajectories import _rows, register

WORD_SQL = "regexp_replace(lower({}), '[^a-z0-9]+', ' ', 'g')"
MAX_WORD = 40
SYNC_LIMIT = 5000  # trajectories missing from the index that a search waits for; more are indexed in the background
_INDEX_LOCK = threading.Lock()
INDEX_CHUNK = 2000  # trajectories indexed per transaction at first; then as many as take about INDEX_HOLD_S
INDEX_HOLD_S = 0.75
INDEX_GAP_S = 0.5  # the pause between chunks when another process waits: longer than it sleeps between tries
INDEX_YIELD_S = 0.05  # ... and when none does: time for this process's other threads to take their turn
INDEX_LINGER_S = 5.0  # the file stays open between chunks unless another process asks for it
DROP_CHUNK = 20_000  # trajectories whose outdated words are deleted per transaction


def _after_row(column: str, descending: bool, value: Any, traj_id: str) -> tuple[str, list[Any]]:
    """The condition for rows after (value, id) in `order_sql`'s order (NULLs last, then by id)."""
    if value is None:
        return f" AND {column} IS NULL AND t.id > ?", [traj_id]
    beyond = "<" if descending else ">"
    return (f" AND ({column} {beyond} ? OR ({column} = ? AND t.id > ?) OR {column} IS NULL)",
            [value, value, traj_id])


def _before_row(column: str, descending: bool, value: Any, traj_id: str) -> tuple[str, list[Any]]:
    """The condition for rows before (value, id) in `order_sql`'s order (NULLs last, then by id)."""
    if value is None:
        return f" AND ({column} IS NOT NULL OR t.id < ?)", [traj_id]
    ahead = ">" if descending else "<"
    return f" AND ({column} {ahead} ? OR ({column} = ? AND t.id < ?))", [value, value, traj_id]


SORTABLE = {
    "imported": "t.created_at", "question": "t.question", "source": "t.source", "task": "t.task",
    "method": "t.method", "model": "t.model", "em": "t.em", "f1": "t.f1", "steps": "t.n_steps",
    "status": "t.status", "updated": "t.updated_at", "answer": "t.final_answer",
}
LATEST_ANN = """(SELECT trajectory_id, status, labels, rating, comment, author, made_at FROM annotations
    QUALIFY row_number() OVER (PARTITION BY trajectory_id ORDER BY seq DESC) = 1)"""
CORRECT = correct_sql("t")
SUMMARY_COLUMNS = "t.id, t.source, t.task, t.method, t.model, t.question, t.gold, t.final_answer, t.em, t.f1, " \
                  "t.n_steps, t.status"
TEXT_COLUMNS = ("s.thought", "s.action_raw", "s.observation", "s.raw", "s.obs_raw")
CELLS = ("both_right", "only_a", "only_b", "both_wrong", "only_in_a", "only_in_b")


def _in(column: str, values: list[str]) -> tuple[str, list[Any]]:
    return f"{column} IN ({', '.join('?' * len(values))})", list(values)


def query_words(text: str) -> list[str]:
    """The words of a search, split exactly as the index splits text."""
    return list(dict.fromkeys(w for w in re.sub(r"[^a-z0-9]+", " ", text.lower()).split() if len(w) <= MAX_WORD))


def _after(prefix: str) -> str:
    """The least string greater than every string that starts with `prefix` (a word of a-z and 0-9)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def filter_sql(f: TrajectoryFilter, indexed: bool = True) -> tuple[str, list[Any]]:
    """A WHERE clause over `trajectories t` (always non-empty) and its parameters. Free text goes through the
    word index when `indexed` (each word must start a word of the trajectory), else through a scan of the text."""
    clauses: list[str] = ["TRUE"]
    params: list[Any] = []

    def add(sql: str, values: Iterable[Any] = ()) -> None:
        clauses.append(sql)
        params.extend(values)

    for name in ("source", "model", "task", "method", "ids"):
        values = getattr(f, name)
        if values:
            add(*_in("t." + ("id" if name == "ids" else name), values))
    if f.lint:
        sql, vals = _in("kind", f.lint)
        add(f"t.id IN (SELECT trajectory_id FROM lints WHERE {sql})", vals)
    if f.label:
        add(f"t.id IN (SELECT trajectory_id FROM {LATEST_ANN} WHERE list_has_any(from_json(labels, '[\"VARCHAR\"]'), ?))",
            [list(f.label)])
    if f.em == "right":
        add(f"{CORRECT}")
    elif f.em == "wrong":
        add(f"NOT {CORRECT}")
    if f.review == "unreviewed":
        add(f"t.id NOT IN (SELECT trajectory_id FROM {LATEST_ANN} WHERE status IS NOT NULL)")
    elif f.review:
        add(f"t.id IN (SELECT trajectory_id FROM {LATEST_ANN} WHERE status = ?)", [f.review])
    if f.status:
        add("t.status = ?", [f.status])
    if f.steps_min is not None:
        add("t.n_steps >= ?", [f.steps_min])
    if f.steps_max is not None:
        add("t.n_steps <= ?", [f.steps_max])
    words = query_words(f.q or "") if indexed else []
    for word in words:
        add("t.id IN (SELECT trajectory_id FROM search_terms WHERE word >= ? AND word < ?)", [word, _after(word)])
    if f.q and f.q.strip() and not words:
        pattern = _like(f.q.strip())
        step_match = " OR ".join(f"{c} ILIKE ? ESCAPE '\\'" for c in TEXT_COLUMNS)
        add(f"(t.question ILIKE ? ESCAPE '\\' OR t.final_answer ILIKE ? ESCAPE '\\' OR t.id IN "
            f"(SELECT s.trajectory_id FROM steps s WHERE {step_match}))", [pattern] * (2 + len(TEXT_COLUMNS)))
    return " AND ".join(clauses), params


def order_sql(sort: str = "imported", descending: bool = False) -> str:
    column = SORTABLE.get(sort, SORTABLE["imported"])
    direction = "DESC" if descending else "ASC"
    return f"{column} {direction} NULLS LAST, t.id"


_STEP_WORDS = WORD_SQL.format("concat_ws(' ', s.thought, s.action_raw, s.observation, s.raw, s.obs_raw)")
_TRAJ_WORDS = WORD_SQL.format("concat_ws(' ', t.question, t.final_answer)")
# The plan, read once: the documents that no longer match their trajectory (removed or edited since), and the
# trajectories to index with the span of rowids their steps take (both tables are written in import order, so a
# chunk of trajectories in rowid order reads a short stretch of steps, not the whole table).
INDEX_PLAN_SQL = [
    """SELECT d.trajectory_id FROM search_docs d
       ANTI JOIN trajectories t ON t.id = d.trajectory_id AND t.revision = d.revision""",
    """SELECT x.id, x.revision, x.r, min(s.rowid) AS lo, max(s.rowid) AS hi
       FROM (SELECT t.rowid AS r, t.id, t.revision FROM trajectories t
             ANTI JOIN search_docs d ON d.trajectory_id = t.id AND d.revision = t.revision) x
       LEFT JOIN steps s ON s.trajectory_id = x.id GROUP BY ALL ORDER BY x.r""",
]
DROP_SQL = [
    "DELETE FROM search_terms WHERE trajectory_id IN (SELECT id FROM _drop_ids)",
    "DELETE FROM search_docs WHERE trajectory_id IN (SELECT id FROM _drop_ids)",
]
# one chunk, in its transaction: those of the planned trajectories still at the planned revision and not indexed
# meanwhile (`_chunk` holds id and revision; the rowid bounds are the chunk's spans)
INDEX_CHUNK_SQL = [
    """CREATE OR REPLACE TEMP TABLE _now AS SELECT c.id, c.revision FROM _chunk c
       SEMI JOIN (SELECT id, revision FROM trajectories WHERE rowid BETWEEN {r_lo} AND {r_hi}) t
           ON t.id = c.id AND t.revision = c.revision
       ANTI JOIN search_docs d ON d.trajectory_id = c.id""",
    f"""INSERT INTO search_terms SELECT DISTINCT word, id FROM (
        SELECT s.trajectory_id AS id, unnest(string_split({_STEP_WORDS}, ' ')) AS word
        FROM (SELECT * FROM steps WHERE rowid BETWEEN {{s_lo}} AND {{s_hi}}) s SEMI JOIN _now n ON n.id = s.trajectory_id
        UNION ALL
        SELECT t.id, unnest(string_split({_TRAJ_WORDS}, ' '))
        FROM (SELECT * FROM trajectories WHERE rowid BETWEEN {{r_lo}} AND {{r_hi}}) t SEMI JOIN _now n ON n.id = t.id
    ) WHERE word <> '' AND length(word) <= {MAX_WORD} ORDER BY word""",
    "INSERT INTO search_docs SELECT id, revision FROM _now",
    "DROP TABLE _now",
]


def _index_chunk(con: Any, part: pa.Table) -> int:
    """Index the planned trajectories of `part` (id, revision, r, lo, hi) that are still as planned; returns how
    many were."""
    def span(low: str, high: str) -> tuple[int, int]:
        lo, hi = pc.min(part.column(low)).as_py(), pc.max(part.column(high)).as_py()
        return (-1, -1) if lo is None else (lo, hi)  # no steps at all: a span that holds no row

    (r_lo, r_hi), (s_lo, s_hi) = span("r", "r"), span("lo", "hi")
    bounds = {"r_lo": r_lo, "r_hi": r_hi, "s_lo": s_lo, "s_hi": s_hi}
    register(con, "_chunk", part.select(["id", "revision"]))
    try:
        con.execute(INDEX_CHUNK_SQL[0].format(**bounds))
        done = con.execute("SELECT count(*) FROM _now").fetchone()[0]
        for sql in INDEX_CHUNK_SQL[1:]:
            con.execute(sql.format(**bounds))
    finally:
        con.unregister("_chunk")
    return done


# adds annotation events inside the caller's transaction (`history.insert_annotations`)
InsertAnnotations = Callable[[Any, list[Annotation]], None]


class BrowseRepository(Repository):
    """What Browse, Review and Compare read (filters over the word index), and bulk annotation.
    `insert_annotations` writes annotation events (the history's own SQL)."""

    def __init__(self, db: Connections, insert_annotations: InsertAnnotations) -> None:
        super().__init__(db)
        self._insert_annotations = insert_annotations
        self._search_sig: tuple | None = None
        self._search_worker: threading.Thread | None = None

    def refresh_search_index(self) -> int:
        """Bring the word index up to date with the trajectories (imported, edited, removed since the last
        search); returns how many trajectories were indexed. Cheap when nothing changed. What to do is read once
        (`INDEX_PLAN_SQL`); then outdated words go `DROP_CHUNK` trajectories per transaction, and trajectories are
        indexed `INDEX_CHUNK` at a time at first, then as many as take about INDEX_HOLD_S, each chunk its own
        short transaction. A trajectory edited or removed after the plan was read is left for the next refresh."""
        with self.db.connect() as con:
            sig = self._search_signature(con)
        if sig == self._search_sig:
            return 0
        total = 0
        with _INDEX_LOCK, self.db.lingering(INDEX_LINGER_S):  # opened once; let go between chunks when asked
            with self.db.connect() as con:
                drop = [r[0] for r in con.execute(INDEX_PLAN_SQL[0]).fetchall()]
                plan = con.sql(INDEX_PLAN_SQL[1]).to_arrow_table()
            for start in range(0, len(drop), DROP_CHUNK):
                with self.db.transaction() as con:
                    register(con, "_drop_ids", pa.table({"id": pa.array(drop[start:start + DROP_CHUNK], pa.string())}))
                    try:
                        for sql in DROP_SQL:
                            con.execute(sql)
                    finally:
                        con.unregister("_drop_ids")
                self._index_pause()
            start, chunk = 0, INDEX_CHUNK
            while start < plan.num_rows:
                part = plan.slice(start, chunk)
                started = time.monotonic()
                with self.db.transaction() as con:
                    total += _index_chunk(con, part)
                start += part.num_rows
                if start < plan.num_rows:
                    took = time.monotonic() - started
                    chunk = max(min(200, INDEX_CHUNK), min(chunk * 4, int(chunk * INDEX_HOLD_S / max(took, 1e-3))))
                    self._index_pause()
        self._search_sig = sig
        return total

    def _index_pause(self) -> None:
        """Between two chunks of indexing: a moment for whoever waits for the file."""
        time.sleep(INDEX_GAP_S if self.db.someone_waits() else INDEX_YIELD_S)

    def where(self, f: TrajectoryFilter) -> tuple[str, list[Any]]:
        """`filter_sql` of `f`, through the word index when it is ready."""
        return filter_sql(f, indexed=bool(query_words(f.q or "")) and self.search_ready())

    def search_ready(self) -> bool:
        """Whether the word index covers every trajectory. A few missing ones (an edit, a small import) are
        indexed now; many (a large import) in a background thread, and searches scan the text meanwhile."""
        with self.db.connect() as con:
            if self._search_signature(con) == self._search_sig:
                return True
            missing = con.execute("SELECT count(*) FROM trajectories t ANTI JOIN search_docs d "
                                  "ON d.trajectory_id = t.id AND d.revision = t.revision").fetchone()[0]
        if missing <= SYNC_LIMIT:
            self.refresh_search_index()
            return True
        worker = self._search_worker
        if worker is None or not worker.is_alive():
            self._search_worker = threading.Thread(target=self._refresh_quietly, name="fireact-search-index", daemon=True)
            self._search_worker.start()
        return False

    def _refresh_quietly(self) -> None:
        try:
            self.refresh_search_index()
        except (FireactError, DatabaseError):
            return  # the database was busy or closed: the next search tries again

    @staticmethod
    def _search_signature(con: Any) -> tuple:
        return con.execute("SELECT count(*), sum(revision), max(created_at), max(updated_at) FROM trajectories").fetchone()

    @cached_read
    def count_filtered(self, f: TrajectoryFilter) -> int:
        where, params = self.where(f)
        with self.db.connect() as con:
            return con.execute(f"SELECT count(*) FROM trajectories t WHERE {where}", params).fetchone()[0]

    @cached_read
    def list_summaries(self, f: TrajectoryFilter, sort: str = "imported", descending: bool = False,
                       limit: int = 50, offset: int = 0) -> list[Summary]:
        """One page of summaries (no steps) matching `f`, in the given order."""
        where, params = self.where(f)
        with self.db.snapshot() as con:
            rows = _rows(con.execute(f"SELECT {SUMMARY_COLUMNS} FROM trajectories t WHERE {where} "
                                     f"ORDER BY {order_sql(sort, descending)} LIMIT ? OFFSET ?",
                                     [*params, int(limit), int(offset)]))
            ids = [r["id"] for r in rows]
            kinds = dict(con.execute("SELECT trajectory_id, list(DISTINCT kind ORDER BY kind) FROM lints "
                                     "WHERE trajectory_id = ANY(?) GROUP BY trajectory_id", [ids]).fetchall()) if ids else {}
            reviews = dict(con.execute(
                "SELECT trajectory_id, status FROM annotations WHERE trajectory_id = ANY(?) "
                "QUALIFY row_number() OVER (PARTITION BY trajectory_id ORDER BY seq DESC) = 1", [ids]).fetchall()) if ids else {}
        return [Summary.model_validate({**r, "task": r["task"] or "unknown", "method": r["method"] or "unknown",
                                        "lints": kinds.get(r["id"], []), "review": reviews.get(r["id"])}) for r in rows]

    def iter_summaries(self, f: TrajectoryFilter, sort: str = "imported", descending: bool = False,
                       limit: int | None = None, offset: int = 0, batch: int = 1000) -> Iterator[Summary]:
        """Summaries matching `f` in the given order, `batch` at a time: each batch is one short read that
        starts after the last row of the one before (by sort value and id), so memory and locks stay small
        however many rows there are."""
        where, params = self.where(f)
        column = SORTABLE.get(sort, SORTABLE["imported"])
        order = order_sql(sort, descending)
        after: tuple | None = None
        left = limit
        while left is None or left > 0:
            size = batch if left is None else min(batch, left)
            more, more_params = "", list[Any]()
            if after is not None:
                more, more_params = _after_row(column, descending, *after)
            sql = (f"SELECT t.rowid, {column}, t.id FROM trajectories t WHERE {where}{more} ORDER BY {order} "
                   f"LIMIT ? OFFSET ?")
            with self.db.snapshot() as con:
                rows = con.execute(sql, [*params, *more_params, size, offset if after is None else 0]).fetchall()
                page = self._summaries_at([r[0] for r in rows])
            if not rows:
                return
            yield from page
            after = rows[-1][1:]
            left = None if left is None else left - len(rows)
            if len(rows) < size:
                return

    def _summaries_at(self, rowids: list[int]) -> list[Summary]:
        """Summaries of the trajectories at `rowids`, in that order."""
        if not rowids:
            return []
        with self.db.snapshot() as con:
            found = {r["rowid"]: r for r in _rows(con.execute(
                "SELECT rowid, id, source, task, method, model, question, gold, final_answer, em, f1, n_steps, status "
                "FROM trajectories WHERE rowid = ANY(?)", [rowids]))}
            rows = [found[i] for i in rowids if i in found]
            ids = [r["id"] for r in rows]
            kinds = self._lint_kinds(con, ids)
        reviews = self.review_states(ids)
        return [Summary.model_validate({
            **{k: v for k, v in r.items() if k != "rowid"}, "task": r["task"] or "unknown", "method": r["method"] or "unknown", "lints": kinds.get(r["id"], []),
            "review": reviews[r["id"]].status if r["id"] in reviews else None}) for r in rows]

    def _lint_kinds(self, con: Any, ids: list[str]) -> dict[str, list[str]]:
        if not ids:
            return {}
        register(con, "_page_ids", pa.table({"id": pa.array(ids, pa.string())}))
        try:
            rows = con.execute("SELECT trajectory_id, list(DISTINCT kind ORDER BY kind) FROM lints "
                               "WHERE trajectory_id IN (SELECT id FROM _page_ids) GROUP BY trajectory_id").fetchall()
        finally:
            con.unregister("_page_ids")
        return dict(rows)

    def filter_ids(self, f: TrajectoryFilter, sort: str = "imported", descending: bool = False,
                   limit: int | None = None) -> list[str]:
        where, params = self.where(f)
        tail = f" LIMIT {int(limit)}" if limit is not None else ""
        with self.db.connect() as con:
            rows = con.execute(
                f"SELECT t.id FROM trajectories t WHERE {where} ORDER BY {order_sql(sort, descending)}{tail}", params
            ).fetchall()
        return [r[0] for r in rows]

    @cached_read
    def neighbours(self, f: TrajectoryFilter, traj_id: str, sort: str = "imported",
                   descending: bool = False) -> Neighbours:
        """Previous and next id around `traj_id` within `f`, its 1-based position and the total. Four short reads
        (the row's sort value, a count, the nearest row on each side), none of which sorts the whole filter."""
        where, params = self.where(f)
        column = SORTABLE.get(sort, SORTABLE["imported"])
        with self.db.snapshot() as con:
            found = self._sort_value(con, where, params, column, traj_id)
            if found is None:
                return Neighbours(total=self.count_filtered(f))
            total, ahead = self._counts(con, where, params, column, descending, found[0], traj_id)
            prev = self._nearest(con, where, params, column, sort, descending, found[0], traj_id, -1)
            nxt = self._nearest(con, where, params, column, sort, descending, found[0], traj_id, 1)
        return Neighbours(prev=prev, next=nxt, position=ahead + 1, total=total)

    @cached_read
    def position(self, f: TrajectoryFilter, traj_id: str, sort: str = "imported",
                 descending: bool = False) -> Position:
        """`traj_id`'s 1-based position within `f` (None outside it) and the total: what `neighbours` tells
        without finding the rows on each side (two reads: the row's sort value and one count)."""
        where, params = self.where(f)
        column = SORTABLE.get(sort, SORTABLE["imported"])
        with self.db.snapshot() as con:
            found = self._sort_value(con, where, params, column, traj_id)
            if found is None:
                total = con.execute(f"SELECT count(*) FROM trajectories t WHERE {where}", params).fetchone()[0]
                return Position(total=int(total))
            total, ahead = self._counts(con, where, params, column, descending, found[0], traj_id)
        return Position(position=ahead + 1, total=total)

    def neighbour(self, f: TrajectoryFilter, traj_id: str, sort: str = "imported", descending: bool = False,
                  step: int = 1) -> str | None:
        """The id next to `traj_id` within `f` in the filter's order: after it (`step` 1) or before it (-1); None
        at either end or when `traj_id` is outside `f`."""
        where, params = self.where(f)
        column = SORTABLE.get(sort, SORTABLE["imported"])
        with self.db.snapshot() as con:
            found = self._sort_value(con, where, params, column, traj_id)
            if found is None:
                return None
            return self._nearest(con, where, params, column, sort, descending, found[0], traj_id, step)

    @staticmethod
    def _sort_value(con: Any, where: str, params: list[Any], column: str, traj_id: str) -> tuple[Any] | None:
        """(the row's value of the sort column,), or None when `traj_id` is not within the filter."""
        found = con.execute(f"SELECT {column} FROM trajectories t WHERE t.id = ? AND {where}",
                            [traj_id, *params]).fetchall()
        return (found[0][0],) if found else None

    @staticmethod
    def _counts(con: Any, where: str, params: list[Any], column: str, descending: bool, value: Any,
                traj_id: str) -> tuple[int, int]:
        """(rows in the filter, rows before (value, id) in its order), in one count."""
        before, before_params = _before_row(column, descending, value, traj_id)
        total, ahead = con.execute(f"SELECT count(*), count(*) FILTER (WHERE TRUE{before}) FROM trajectories t "
                                   f"WHERE {where}", [*before_params, *params]).fetchone()
        return int(total), int(ahead)

    @staticmethod
    def _nearest(con: Any, where: str, params: list[Any], column: str, sort: str, descending: bool, value: Any,
                 traj_id: str, step: int) -> str | None:
        """The nearest row after (`step` 1) or before (-1) the row (value, id) in the filter's order."""
        if step < 0:
            cond, cond_params = _before_row(column, descending, value, traj_id)
            order = f"{column} {'ASC' if descending else 'DESC'} NULLS FIRST, t.id DESC"
        else:
            cond, cond_params = _after_row(column, descending, value, traj_id)
            order = order_sql(sort, descending)
        row = con.execute(f"SELECT t.id FROM trajectories t WHERE {where}{cond} ORDER BY {order} LIMIT 1",
                          [*params, *cond_params]).fetchall()
        return row[0][0] if row else None

    @cached_read
    def review_progress(self, f: TrajectoryFilter) -> tuple[int, int]:
        """(reviewed, total) within `f`: reviewed means accepted or rejected."""
        where, params = self.where(f)
        sql = (f"SELECT count(a.status), count(*) FROM trajectories t LEFT JOIN {LATEST_ANN} a "
               f"ON a.trajectory_id = t.id WHERE {where}")
        with self.db.connect() as con:
            reviewed, total = con.execute(sql, params).fetchone()
        return int(reviewed), int(total)

    def next_unreviewed(self, f: TrajectoryFilter, exclude: Iterable[str] = (), sort: str = "imported",
                        descending: bool = False) -> str | None:
        """The first trajectory in `f` that nobody accepted or rejected, skipping `exclude`."""
        queue = f.model_copy(update={"review": "unreviewed"})
        where, params = self.where(queue)
        skip = sorted(set(exclude))
        if skip:
            sql, vals = _in("t.id", skip)
            where, params = f"{where} AND NOT {sql}", [*params, *vals]
        with self.db.connect() as con:
            row = con.execute(
                f"SELECT t.id FROM trajectories t WHERE {where} ORDER BY {order_sql(sort, descending)} LIMIT 1", params
            ).fetchone()
        return row[0] if row else None

    @cached_read
    def review_states(self, ids: list[str]) -> dict[str, Annotation]:
        """The latest annotation of each of `ids` that has one."""
        if not ids:
            return {}
        with self.db.connect() as con:
            register(con, "_review_ids", pa.table({"id": pa.array(list(ids), pa.string())}))
            try:
                rows = _rows(con.execute(
                    "SELECT trajectory_id, seq, author, made_at AS at, status, labels, rating, comment FROM annotations "
                    "WHERE trajectory_id IN (SELECT id FROM _review_ids) "
                    "QUALIFY row_number() OVER (PARTITION BY trajectory_id ORDER BY seq DESC) = 1"))
            finally:
                con.unregister("_review_ids")
        return {r["trajectory_id"]: Annotation(**{**r, "at": utc(r["at"]), "labels": json.loads(r["labels"] or "[]")})
                for r in rows}

    def review_state(self, traj_id: str) -> Annotation | None:
        return self.review_states([traj_id]).get(traj_id)

    def bulk_annotate(self, ids: list[str], author: str, status: ReviewStatus | None = None,
                      add_labels: Iterable[str] = (), remove_labels: Iterable[str] = (),
                      clear_status: bool = False) -> int:
        """Append one annotation event per trajectory, carrying over its current state; returns how many."""
        ids = list(dict.fromkeys(ids))
        if not ids:
            return 0
        add, remove = list(add_labels), set(remove_labels)
        with self.db.transaction() as con:
            current = self.review_states(ids)
            events = []
            for tid in ids:
                old = current.get(tid)
                labels = [x for x in (old.labels if old else []) if x not in remove]
                labels += [x for x in add if x not in labels]
                events.append(Annotation(
                    trajectory_id=tid, seq=old.seq + 1 if old else 1, author=author, at=now(),
                    status=None if clear_status else (status or (old.status if old else None)), labels=labels,
                    rating=old.rating if old else None, comment=old.comment if old else None,
                ))
            self._insert_annotations(con, events)
        return len(events)

    @cached_read
    def known_labels(self) -> list[str]:
        with self.db.connect() as con:
            rows = con.execute(
                "SELECT DISTINCT unnest(from_json(labels, '[\"VARCHAR\"]')) AS label FROM annotations ORDER BY label"
            ).fetchall()
        return [r[0] for r in rows if r[0]]

    @cached_read
    def facet_values(self) -> dict[str, list]:
        """The values each list filter can take, for the filter widgets."""
        out: dict[str, list] = {}
        with self.db.connect() as con:
            for name in ("source", "model", "task", "method", "status"):
                rows = con.execute(
                    f"SELECT DISTINCT {name} FROM trajectories WHERE {name} IS NOT NULL ORDER BY {name}").fetchall()
                out[name] = [r[0] for r in rows]
            out["lint"] = [r[0] for r in con.execute("SELECT DISTINCT kind FROM lints ORDER BY kind").fetchall()]
            out["max_steps"] = con.execute("SELECT coalesce(max(n_steps), 0) FROM trajectories").fetchone()[0]
        out["label"] = self.known_labels()
        return out

    @cached_read
    def compare_counts(self, source_a: str, source_b: str) -> dict[str, int]:
        """How many questions fall in each cell of the contingency table of two runs."""
        with self.db.connect() as con:
            rows = con.execute(
                f"SELECT cell, count(*) FROM ({_PAIRS}) GROUP BY cell", [source_a, source_b]).fetchall()
        counts = {c: 0 for c in CELLS}
        counts.update({c: n for c, n in rows if c in counts})
        counts["unscored"] = sum(n for c, n in rows if c not in CELLS)
        return counts

    @cached_read
    def compare_pairs(self, source_a: str, source_b: str, cell: str | None = None, limit: int = 200,
                      offset: int = 0) -> list[ComparePair]:
        """Questions of two runs paired by normalised question: the two trajectory ids, answers, EM and cell."""
        where, params = ("WHERE cell = ?", [cell]) if cell else ("", [])
        with self.db.snapshot() as con:
            pairs = _rows(con.execute(
                f"SELECT * FROM ({_PAIRS}) {where} ORDER BY coalesce(pos_a, pos_b), qnorm LIMIT ? OFFSET ?",
                [source_a, source_b, *params, int(limit), int(offset)]))
            rowids = [p[k] for p in pairs for k in ("rid_a", "rid_b") if p[k] is not None]
            details = {r["rowid"]: r for r in _rows(con.execute(
                "SELECT rowid, id, question, final_answer, gold FROM trajectories WHERE rowid = ANY(?)", [rowids]))}
        return [_compare_pair(p, details.get(p.pop("rid_a")), details.get(p.pop("rid_b"))) for p in pairs]


def _compare_pair(pair: dict[str, Any], a: dict[str, Any] | None, b: dict[str, Any] | None) -> ComparePair:
    """A pair's row with the two trajectories' details (either may be missing, never both)."""
    first = a or b or {}
    return ComparePair(**pair, question=first.get("question", ""), gold=(a or {}).get("gold") or (b or {}).get("gold"),
                       id_a=a["id"] if a else None, id_b=b["id"] if b else None,
                       answer_a=a["final_answer"] if a else None, answer_b=b["final_answer"] if b else None)


_ONE = first_per_question_sql(
    "t.rowid AS rid, t.qnorm, {correct} AS ok, row_number() OVER (ORDER BY t.created_at, t.rowid) AS pos", "t.source = ?")
_PAIRS = f"""
    SELECT coalesce(a.qnorm, b.qnorm) AS qnorm, a.rid AS rid_a, b.rid AS rid_b, a.ok AS ok_a, b.ok AS ok_b,
           a.pos AS pos_a, b.pos AS pos_b,
           CASE WHEN b.rid IS NULL THEN 'only_in_a' WHEN a.rid IS NULL THEN 'only_in_b'
                WHEN a.ok IS NULL OR b.ok IS NULL THEN 'unscored'
                WHEN a.ok AND b.ok THEN 'both_right' WHEN a.ok THEN 'only_a' WHEN b.ok THEN 'only_b'
                ELSE 'both_wrong' END AS cell
    FROM ({_ONE}) a FULL OUTER JOIN ({_ONE}) b ON a.qnorm = b.qnorm"""
