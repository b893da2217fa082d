"""Generation runs: their settings and progress, events, the cancel flag, the search cache, prompt versions
and the model price table. A run's trajectories live in the trajectories table with `source` = run name."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import threading
import time
from concurrent.futures import Future
from datetime import datetime, timezone
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..errors import NotFoundError
from ..records import Lint, PromptVersion, Run, RunEvent, Source, Trajectory
from ..redact import redact_text, redact_trajectory, redact_value
from .answers import first_per_question_sql
from .connection import Connections, naive, utc
from .repository import Repository
from .trajectories import TrajectoryRepository, _rows

if TYPE_CHECKING:
    from . import Store


RUN_FIELDS = ["name", "task", "split", "method", "model", "settings", "status", "total", "attempted", "finished",
              "unfinished", "failed", "em_sum", "f1_sum", "tokens_in", "tokens_out", "cost_usd", "cancel", "error",
              "pid", "started_at", "heartbeat", "ended_at"]
COUNTERS = ["total", "attempted", "finished", "unfinished", "failed", "em_sum", "f1_sum", "tokens_in", "tokens_out",
            "cost_usd"]
# Counts are over every trajectory of the run; right answers and F1 over the trajectory that stands for each
# question, right as `answers` says (the Dashboard's, Compare's and `report`'s definition).
COUNTERS_SQL = f"""
    WITH firsts AS ({first_per_question_sql("{correct} AS ok, t.f1", "t.source = $name")})
    SELECT count(*), count(*) FILTER (status = 'finished'), count(*) FILTER (status = 'unfinished'),
           count(*) FILTER (status = 'failed'), (SELECT count(*) FILTER (WHERE ok) FROM firsts),
           (SELECT coalesce(sum(f1), 0) FROM firsts),
           coalesce(sum(tokens_in), 0), coalesce(sum(tokens_out), 0), coalesce(sum(cost_usd), 0)
    FROM trajectories WHERE source = $name
"""
# A run's row with, from its trajectories, how many questions it asked, how many of them are scored (right or
# wrong) and how many have an F1, one trajectory per question as `answers` says.
RUNS_SQL = f"""
    WITH firsts AS ({first_per_question_sql("t.source, {correct} AS ok, t.f1", "{where}")}),
    asked AS (SELECT source, count(*) AS questions, count(ok) AS scored, count(f1) AS f1_scored
              FROM firsts GROUP BY source)
    SELECT {", ".join("r." + f for f in RUN_FIELDS)}, coalesce(q.questions, 0) AS questions,
           coalesce(q.scored, 0) AS scored, coalesce(q.f1_scored, 0) AS f1_scored
    FROM runs r LEFT JOIN asked q ON q.source = r.name
"""


def _utcnow() -> datetime:
    return naive(datetime.now(timezone.utc))


def process_alive(pid: int | None) -> bool:
    """Whether a process with this id runs on this machine."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # alive, but another user's
        return True
    return True


def _run(row: dict[str, Any]) -> Run:
    """A run's row as every reader sees it: a "running" run whose process is gone is "interrupted" (killed,
    or its machine went down); it resumes with the same run name."""
    if row["status"] == "running" and not process_alive(row["pid"]):
        row["status"] = "interrupted"
    row["settings"] = json.loads(row["settings"]) if row["settings"] else {}
    for key in COUNTERS:
        row[key] = row[key] or 0
    for key in ("started_at", "heartbeat", "ended_at"):
        row[key] = utc(row[key])
    # the questions planned (one asked twice counts once), never fewer than those asked: as the Dashboard counts
    questions = row.pop("questions")
    planned = max((row["total"] or 0) - ((row["attempted"] or 0) - questions), questions)
    scored, f1_scored = row.pop("scored"), row.pop("f1_scored")
    row["em"] = row["em_sum"] / planned if planned and scored else None
    row["f1"] = row["f1_sum"] / planned if planned and f1_scored else None
    return Run.model_validate(row)


def _prompt_payload(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return {"examples": [value.get("text", "")], "layout": value.get("layout", "fireact"),
                "source": value.get("source")}
    return {"examples": value, "layout": "studio", "source": None}


class RunRepository(Repository):
    """Runs, their events and cancel flag, search cache, prompt versions, prices. A run's trajectories are
    saved through `trajectories`."""

    def __init__(self, db: Connections, trajectories: TrajectoryRepository) -> None:
        super().__init__(db)
        self.trajectories = trajectories

    def begin_run(self, name: str, *, task: str, split: str | None, method: str, model: str,
                  settings: dict[str, Any], total: int, pid: int | None = None, source_meta: dict | None = None) -> Run:
        """Create the run, or take it up again under the same name (its counters are recounted from what is
        stored, its cancel flag cleared). The run is also a Source of kind "run"."""
        settings, source_meta = redact_value(settings), redact_value(source_meta)
        with self.db.transaction() as con:
            exists = con.execute("SELECT 1 FROM runs WHERE name = ?", [name]).fetchone()
            if exists:
                con.execute("UPDATE runs SET settings = ?, status = 'running', total = ?, cancel = false, error = NULL, "
                            "pid = ?, heartbeat = ?, ended_at = NULL WHERE name = ?",
                            [json.dumps(settings, sort_keys=True), total, pid, _utcnow(), name])
            else:
                con.execute(f"INSERT INTO runs ({', '.join(RUN_FIELDS)}) VALUES ({', '.join('?' * len(RUN_FIELDS))})",
                            [name, task, split, method, model, json.dumps(settings, sort_keys=True), "running", total,
                             0, 0, 0, 0, 0.0, 0.0, 0, 0, 0.0, False, None, pid, _utcnow(), _utcnow(), None])
            self._recount(con, name)
            source = Source(name=name, kind="run", format="fireact-studio", task=task, split=split, model=model,
                            method=method, attempted=total, meta=source_meta or {})
            self.trajectories.upsert_source(con, source)
        return self.get_run(name)

    def _recount(self, con: Any, name: str) -> None:
        counts = con.execute(COUNTERS_SQL, {"name": name}).fetchone()
        con.execute("UPDATE runs SET attempted = ?, finished = ?, unfinished = ?, failed = ?, em_sum = ?, f1_sum = ?, "
                    "tokens_in = ?, tokens_out = ?, cost_usd = ?, heartbeat = ? WHERE name = ?",
                    [*counts, _utcnow(), name])

    def save_run_trajectories(self, name: str, trajs: list[Trajectory], lints: Iterable[Lint] = ()) -> list[str]:
        """Store ended episodes of a run and update its counters, in one transaction. A trajectory whose id is
        stored already replaces it only when the stored one had failed; returns the ids stored."""
        if not trajs:
            return []
        trajs = [redact_trajectory(t) for t in trajs]
        with self.db.transaction() as con:
            ids = [t.id for t in trajs]
            stored = dict(con.execute(f"SELECT id, status FROM trajectories WHERE id IN ({', '.join('?' * len(ids))})",
                                      ids).fetchall())
            keep = [t for t in trajs if stored.get(t.id, "failed") == "failed"]
            replaced = [t.id for t in keep if t.id in stored]
            for table, key in (("trajectories", "id"), ("steps", "trajectory_id"), ("lints", "trajectory_id")):
                if replaced:
                    con.execute(f"DELETE FROM {table} WHERE {key} IN ({', '.join('?' * len(replaced))})", replaced)
            kept = {t.id for t in keep}
            self.trajectories.save_trajectories(keep, lints=[x for x in lints if x.trajectory_id in kept])
            self._recount(con, name)
        return [t.id for t in keep]

    def run_statuses(self, name: str) -> dict[str, str]:
        """Trajectory id -> status of everything the run has stored."""
        with self.db.connect() as con:
            return dict(con.execute("SELECT id, status FROM trajectories WHERE source = ?", [name]).fetchall())

    def end_run(self, name: str, status: str, error: str | None = None) -> None:
        with self.db.transaction() as con:
            con.execute("UPDATE runs SET status = ?, error = ?, ended_at = ?, heartbeat = ? WHERE name = ?",
                        [status, redact_text(error), _utcnow(), _utcnow(), name])

    def heartbeat_run(self, name: str) -> None:
        with self.db.transaction() as con:
            con.execute("UPDATE runs SET heartbeat = ? WHERE name = ?", [_utcnow(), name])

    def request_cancel(self, name: str) -> None:
        with self.db.transaction() as con:
            if not con.execute("SELECT 1 FROM runs WHERE name = ?", [name]).fetchone():
                raise NotFoundError(f"no run named '{name}': see `fireact runs` for the runs there are")
            con.execute("UPDATE runs SET cancel = true WHERE name = ?", [name])

    def cancel_requested(self, name: str) -> bool:
        with self.db.connect() as con:
            row = con.execute("SELECT cancel FROM runs WHERE name = ?", [name]).fetchone()
        return bool(row and row[0])

    def get_run(self, name: str) -> Run:
        with self.db.connect() as con:
            rows = _rows(con.execute(RUNS_SQL.format(where="t.source = $name") + " WHERE r.name = $name",
                                     {"name": name}))
        if not rows:
            raise NotFoundError(f"no run named '{name}': see `fireact runs` for the runs there are")
        return _run(rows[0])

    def list_runs(self) -> list[Run]:
        with self.db.connect() as con:
            rows = _rows(con.execute(RUNS_SQL.format(where="t.source IN (SELECT name FROM runs)")
                                     + " ORDER BY r.started_at, r.name"))
        return [_run(r) for r in rows]

    def log_run_event(self, name: str, kind: str, message: str) -> None:
        with self.db.transaction() as con:
            seq = con.execute("SELECT coalesce(max(seq), 0) + 1 FROM run_events WHERE run = ?", [name]).fetchone()[0]
            con.execute("INSERT INTO run_events VALUES (?, ?, ?, ?, ?)", [name, seq, _utcnow(), kind, redact_text(message)])

    def run_events(self, name: str, after: int = 0, limit: int = 200) -> list[RunEvent]:
        with self.db.connect() as con:
            rows = _rows(con.execute(
                "SELECT seq, logged_at AS at, kind, message FROM run_events WHERE run = ? AND seq > ? "
                "ORDER BY seq DESC LIMIT ?", [name, after, limit]))
        return [RunEvent(**{**r, "at": utc(r["at"])}) for r in reversed(rows)]

    # search cache -----------------------------------------------------------------------------------------
    def cached_search(self, backend: str, query: str) -> tuple[bool, str | None]:
        """(found, result) for a query searched before with this backend."""
        with self.db.connect() as con:
            row = con.execute("SELECT result FROM search_cache WHERE backend = ? AND query = ?",
                              [backend, query]).fetchone()
        return (True, row[0]) if row else (False, None)

    def cached_searches(self, backend: str) -> dict[str, str | None]:
        """Every cached query of a backend, with its result."""
        with self.db.connect() as con:
            return dict(con.execute("SELECT query, result FROM search_cache WHERE backend = ?", [backend]).fetchall())

    def cache_searches(self, backend: str, entries: list[tuple[str, str | None]]) -> None:
        """Cache many (query, result) pairs of a backend in one transaction."""
        if not entries:
            return
        rows = [[backend, q, redact_text(r), _utcnow()] for q, r in dict(entries).items()]
        with self.db.transaction() as con:
            for i in range(0, len(rows), 500):  # one statement per 500 rows (executemany goes row by row)
                chunk = rows[i:i + 500]
                con.execute("INSERT OR REPLACE INTO search_cache VALUES " + ", ".join(["(?, ?, ?, ?)"] * len(chunk)),
                            [x for row in chunk for x in row])

    # prompt versions --------------------------------------------------------------------------------------
    def save_prompt_version(self, task: str, method: str, examples: list[str], author: str,
                            note: str | None = None, layout: str = "studio", source: str | None = None) -> int:
        """Save the next version. layout "fireact": `examples` is one FireAct prompt file's text (kept with the
        file's name as {"layout", "source", "text"} in the same column)."""
        payload: Any = examples if layout == "studio" else {"layout": layout, "source": source,
                                                             "text": "".join(examples)}
        with self.db.transaction() as con:
            version = con.execute("SELECT coalesce(max(version), 0) + 1 FROM prompt_versions WHERE task = ? AND "
                                  "method = ?", [task, method]).fetchone()[0]
            con.execute("INSERT INTO prompt_versions VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [task, method, version, json.dumps(payload, ensure_ascii=False), author, note, _utcnow()])
        return version

    def prompt_versions(self, task: str, method: str) -> list[PromptVersion]:
        """Saved versions of a task's few-shot examples for a method, newest first, each with its `layout`
        ("studio": a list of examples; "fireact": one FireAct prompt file's text as the only example)."""
        with self.db.connect() as con:
            rows = _rows(con.execute(
                "SELECT version, examples, author, note, saved_at AS at FROM prompt_versions WHERE task = ? AND "
                "method = ? ORDER BY version DESC", [task, method]))
        return [PromptVersion(**{**r, **_prompt_payload(json.loads(r["examples"])), "at": utc(r["at"])}) for r in rows]

    # prices -----------------------------------------------------------------------------------------------
    def model_prices(self) -> dict[str, tuple[float, float]]:
        with self.db.connect() as con:
            rows = con.execute("SELECT model, input_per_1m, output_per_1m FROM model_prices ORDER BY model").fetchall()
        return {m: (i, o) for m, i, o in rows}

    def save_model_prices(self, prices: dict[str, tuple[float, float]]) -> None:
        """Replace the price table (USD per million input and output tokens)."""
        with self.db.transaction() as con:
            con.execute("DELETE FROM model_prices")
            for model, (inp, out) in prices.items():
                con.execute("INSERT INTO model_prices VALUES (?, ?, ?)", [model, float(inp), float(out)])


class SessionWriter:
    """The one thread that touches the database while a run goes on. Opening a DuckDB file is slow and takes
    the file from other processes, so the writer keeps one connection for as long as work keeps coming (at
    most `hold_s`), then lets go for `gap_s` so the app or another command can get in."""

    def __init__(self, store: Store, hold_s: float = 1.0, gap_s: float = 0.2):
        self.store, self.hold_s, self.gap_s = store, hold_s, gap_s
        self.jobs: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name="fireact-writer", daemon=True)
        self.thread.start()

    def submit(self, fn: Callable, *args: Any) -> Future:
        fut: Future = Future()
        self.jobs.put((fn, args, fut))
        return fut

    async def call(self, fn: Callable, *args: Any) -> Any:
        return await asyncio.wrap_future(self.submit(fn, *args))

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join()

    def _loop(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            started = time.monotonic()
            try:
                with self.store.session():
                    while job is not None:
                        self._run(job)
                        if time.monotonic() - started > self.hold_s:
                            break
                        try:
                            job = self.jobs.get(timeout=0.05)
                        except queue.Empty:
                            break
            except Exception as exc:  # noqa: BLE001 - the database could not be opened: the job says so
                if job is not None and not job[2].done():
                    job[2].set_exception(exc)
            if job is None:
                return
            if not self.jobs.empty():
                time.sleep(self.gap_s)

    @staticmethod
    def _run(job: tuple) -> None:
        fn, args, fut = job
        if not fut.set_running_or_notify_cancel():
            return
        try:
            fut.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the job
            fut.set_exception(exc)
