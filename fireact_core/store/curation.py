"""Browse, review and compare: filtered summary queries, paging, sorting, text search, bulk annotation,
review progress, neighbours within a filter and the pairing of two runs by question."""

from __future__ import annotations

import json
import re
import threading
from typing import Any, Iterable

import pyarrow as pa

from ..errors import FireactError
from ..filters import TrajectoryFilter
from ..records import Annotation, Summary, now
from . import schema
from .answers import correct_sql, first_per_question_sql
from .connection import Error as DatabaseError
from .connection import utc
from .trajectories import _rows, register

# The word index behind free-text search: each trajectory's words (letters and digits, lower-cased) with the
# revision they were read from; brought up to date before a search, so imports and edits are always found.
schema.register("curation", ["""
    CREATE TABLE search_docs (trajectory_id VARCHAR NOT NULL, revision INTEGER NOT NULL);
    CREATE TABLE search_terms (word VARCHAR NOT NULL, trajectory_id VARCHAR NOT NULL);
"""])
WORD_SQL = "regexp_replace(lower({}), '[^a-z0-9]+', ' ', 'g')"
MAX_WORD = 40
SYNC_LIMIT = 5000  # trajectories missing from the index that a search waits for; more are indexed in the background
_INDEX_LOCK = threading.Lock()

SORTABLE = {
    "imported": "t.created_at", "question": "t.question", "source": "t.source", "task": "t.task",
    "method": "t.method", "model": "t.model", "em": "t.em", "f1": "t.f1", "steps": "t.n_steps",
    "status": "t.status", "updated": "t.updated_at", "answer": "t.final_answer",
}
LATEST_ANN = """(SELECT trajectory_id, status, labels, rating, comment, author, made_at FROM annotations
    QUALIFY row_number() OVER (PARTITION BY trajectory_id ORDER BY seq DESC) = 1)"""
CORRECT = correct_sql("t")
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
INDEX_SQL = [
    """CREATE OR REPLACE TEMP TABLE _gone AS SELECT d.trajectory_id FROM search_docs d
       ANTI JOIN trajectories t ON t.id = d.trajectory_id AND t.revision = d.revision""",
    """CREATE OR REPLACE TEMP TABLE _stale AS SELECT t.id, t.revision FROM trajectories t
       ANTI JOIN search_docs d ON d.trajectory_id = t.id AND d.revision = t.revision""",
    "DELETE FROM search_terms WHERE trajectory_id IN (SELECT trajectory_id FROM _gone)",
    "DELETE FROM search_docs WHERE trajectory_id IN (SELECT trajectory_id FROM _gone)",
    f"""INSERT INTO search_terms SELECT DISTINCT word, id FROM (
        SELECT s.trajectory_id AS id, unnest(string_split({_STEP_WORDS}, ' ')) AS word
        FROM steps s WHERE s.trajectory_id IN (SELECT id FROM _stale)
        UNION ALL
        SELECT t.id, unnest(string_split({_TRAJ_WORDS}, ' ')) FROM trajectories t WHERE t.id IN (SELECT id FROM _stale)
    ) WHERE word <> '' AND length(word) <= {MAX_WORD} ORDER BY word""",
    "INSERT INTO search_docs SELECT id, revision FROM _stale",
]


class BrowseStore:
    """Mixin of `Store`: what Browse, Review and Compare read, and bulk annotation."""

    def refresh_search_index(self) -> int:
        """Bring the word index up to date with the trajectories (imported, edited, removed since the last
        search); returns how many trajectories were read. Cheap when nothing changed."""
        with self.db.connect() as con:
            sig = self._search_signature(con)
        if sig == getattr(self, "_search_sig", None):
            return 0
        with _INDEX_LOCK, self.db.transaction() as con:
            for sql in INDEX_SQL[:2]:
                con.execute(sql)
            stale = con.execute("SELECT count(*) FROM _stale").fetchone()[0]
            for sql in INDEX_SQL[2:]:
                con.execute(sql)
            con.execute("DROP TABLE _gone; DROP TABLE _stale")
        self._search_sig = sig
        return stale

    def _where(self, f: TrajectoryFilter) -> tuple[str, list[Any]]:
        return filter_sql(f, indexed=bool(query_words(f.q or "")) and self._search_ready())

    def _search_ready(self) -> bool:
        """Whether the word index covers every trajectory. A few missing ones (an edit, a small import) are
        indexed now; many (a large import) in a background thread, and searches scan the text meanwhile."""
        with self.db.connect() as con:
            if self._search_signature(con) == getattr(self, "_search_sig", None):
                return True
            missing = con.execute("SELECT count(*) FROM trajectories t ANTI JOIN search_docs d "
                                  "ON d.trajectory_id = t.id AND d.revision = t.revision").fetchone()[0]
        if missing <= SYNC_LIMIT:
            self.refresh_search_index()
            return True
        worker = getattr(self, "_search_worker", None)
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

    def count_filtered(self, f: TrajectoryFilter) -> int:
        where, params = self._where(f)
        with self.db.connect() as con:
            return con.execute(f"SELECT count(*) FROM trajectories t WHERE {where}", params).fetchone()[0]

    def list_summaries(self, f: TrajectoryFilter, sort: str = "imported", descending: bool = False,
                       limit: int = 50, offset: int = 0) -> list[Summary]:
        """One page of summaries (no steps) matching `f`, in the given order."""
        where, params = self._where(f)
        page_sql = f"SELECT t.rowid FROM trajectories t WHERE {where} ORDER BY {order_sql(sort, descending)} LIMIT ? OFFSET ?"
        with self.db.transaction() as con:
            rowids = [r[0] for r in con.execute(page_sql, [*params, int(limit), int(offset)]).fetchall()]
            if not rowids:
                return []
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
        where, params = self._where(f)
        tail = f" LIMIT {int(limit)}" if limit is not None else ""
        with self.db.connect() as con:
            rows = con.execute(
                f"SELECT t.id FROM trajectories t WHERE {where} ORDER BY {order_sql(sort, descending)}{tail}", params
            ).fetchall()
        return [r[0] for r in rows]

    def neighbours(self, f: TrajectoryFilter, traj_id: str, sort: str = "imported",
                   descending: bool = False) -> dict[str, Any]:
        """Previous and next id around `traj_id` within `f`, its 1-based position and the total."""
        where, params = self._where(f)
        order = order_sql(sort, descending)
        sql = f"""SELECT * FROM (
                SELECT t.id, lag(t.id) OVER w AS prev, lead(t.id) OVER w AS next,
                       row_number() OVER w AS position, count(*) OVER () AS total
                FROM trajectories t WHERE {where} WINDOW w AS (ORDER BY {order})) WHERE id = ?"""
        with self.db.connect() as con:
            rows = _rows(con.execute(sql, [*params, traj_id]))
        if not rows:
            return {"prev": None, "next": None, "position": None, "total": self.count_filtered(f)}
        return {k: rows[0][k] for k in ("prev", "next", "position", "total")}

    def review_progress(self, f: TrajectoryFilter) -> tuple[int, int]:
        """(reviewed, total) within `f`: reviewed means accepted or rejected."""
        where, params = self._where(f)
        sql = (f"SELECT count(a.status), count(*) FROM trajectories t LEFT JOIN {LATEST_ANN} a "
               f"ON a.trajectory_id = t.id WHERE {where}")
        with self.db.connect() as con:
            reviewed, total = con.execute(sql, params).fetchone()
        return int(reviewed), int(total)

    def next_unreviewed(self, f: TrajectoryFilter, exclude: Iterable[str] = (), sort: str = "imported",
                        descending: bool = False) -> str | None:
        """The first trajectory in `f` that nobody accepted or rejected, skipping `exclude`."""
        queue = f.model_copy(update={"review": "unreviewed"})
        where, params = self._where(queue)
        skip = sorted(set(exclude))
        if skip:
            sql, vals = _in("t.id", skip)
            where, params = f"{where} AND NOT {sql}", [*params, *vals]
        with self.db.connect() as con:
            row = con.execute(
                f"SELECT t.id FROM trajectories t WHERE {where} ORDER BY {order_sql(sort, descending)} LIMIT 1", params
            ).fetchone()
        return row[0] if row else None

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

    def bulk_annotate(self, ids: list[str], author: str, status: str | None = None,
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

    def known_labels(self) -> list[str]:
        with self.db.connect() as con:
            rows = con.execute(
                "SELECT DISTINCT unnest(from_json(labels, '[\"VARCHAR\"]')) AS label FROM annotations ORDER BY label"
            ).fetchall()
        return [r[0] for r in rows if r[0]]

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

    def compare_counts(self, source_a: str, source_b: str) -> dict[str, int]:
        """How many questions fall in each cell of the contingency table of two runs."""
        with self.db.connect() as con:
            rows = con.execute(
                f"SELECT cell, count(*) FROM ({_PAIRS}) GROUP BY cell", [source_a, source_b]).fetchall()
        counts = {c: 0 for c in CELLS}
        counts.update({c: n for c, n in rows if c in counts})
        counts["unscored"] = sum(n for c, n in rows if c not in CELLS)
        return counts

    def compare_pairs(self, source_a: str, source_b: str, cell: str | None = None, limit: int = 200,
                      offset: int = 0) -> list[dict[str, Any]]:
        """Questions of two runs paired by normalised question: the two trajectory ids, answers, EM and cell."""
        where, params = ("WHERE cell = ?", [cell]) if cell else ("", [])
        with self.db.transaction() as con:
            pairs = _rows(con.execute(
                f"SELECT * FROM ({_PAIRS}) {where} ORDER BY coalesce(pos_a, pos_b), qnorm LIMIT ? OFFSET ?",
                [source_a, source_b, *params, int(limit), int(offset)]))
            rowids = [p[k] for p in pairs for k in ("rid_a", "rid_b") if p[k] is not None]
            details = {r["rowid"]: r for r in _rows(con.execute(
                "SELECT rowid, id, question, final_answer, gold FROM trajectories WHERE rowid = ANY(?)", [rowids]))}
        out = []
        for p in pairs:
            a, b = details.get(p.pop("rid_a")), details.get(p.pop("rid_b"))
            first = a or b
            out.append({**p, "question": first["question"], "gold": (a or {}).get("gold") or (b or {}).get("gold"),
                        "id_a": a and a["id"], "id_b": b and b["id"], "answer_a": a and a["final_answer"],
                        "answer_b": b and b["final_answer"]})
        return out


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
