"""The store: one DuckDB file, owned by this package alone (every SQL string lives here)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..filters import TrajectoryFilter
from ..records import (Adjudication, Annotation, AssignmentProgress, ComparePair, DatasetVersion, Decision, ForkLink,
                       Lint, Neighbours, Position, PromptVersion, RegisteredModel, ReviewStatus, Revision, Run,
                       RunEvent, Source, Stats, Summary, TrainJob, Trajectory, User)

from . import connection
from .chat_import import ChatImportRepository, fresh_ids
from .connection import Connections, resolve_db_path
from .curation import BrowseRepository
from .datasets import DatasetRepository
from .forks import ForkRepository
from .history import History, HistoryRepository, insert_annotations, insert_history
from .jobs import JobRepository
from .reports import ReportRepository
from .runs import RunRepository
from . import staging
from .staging import StagingRepository, scratch_folder, share_added, should_stage
from .team import TeamRepository
from .forks import links_in
from .trajectories import TrajectoryRepository, trajectory_tables, without_ids

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


class Store:
    """All reads and writes of one database. Safe to share between threads and with other processes.

    Composed of one repository per feature over one `Connections` (`trajectories`, `history`, `browse`, `runs`,
    `jobs`, `datasets`, `team`, `forks`, `reports`, and the import path's `chat_import` and `staging`).
    Callers use the methods below, each one line handing the call to its repository (see docs/architecture.md,
    "The store")."""

    def __init__(self, path: str | os.PathLike | None = None, lock_timeout: float = 60.0, linger: float = 0.0,
                 compress: bool = True, keyed: bool = True, spill: str | None = None):
        """`linger`: seconds the file stays open after the last unit of work (the app's cheap reruns); 0 lets
        go of it at once. `compress`, `keyed`, `spill`: see `Connections`."""
        self.db = Connections(path, lock_timeout=lock_timeout, linger=linger, compress=compress, keyed=keyed,
                              spill=spill)
        self.path = self.db.path
        self.trajectories = TrajectoryRepository(self.db, insert_history=insert_history)
        self.history = HistoryRepository(self.db, load=self.trajectories.get_trajectory,
                                         insert_lints=self.trajectories.insert_lints)
        self.browse = BrowseRepository(self.db, insert_annotations=insert_annotations)
        self.runs = RunRepository(self.db, trajectories=self.trajectories)
        self.jobs = JobRepository(self.db)
        self.datasets = DatasetRepository(self.db)
        self.team = TeamRepository(self.db, history=self.history, where=self.browse.where)
        self.forks = ForkRepository(self.db)
        self.reports = ReportRepository(self.db)
        self.chat_import = ChatImportRepository(self.db)
        self.staging = StagingRepository(self.db)

    def release(self) -> None:
        """Let go of the database file now, when it lingers idle (see `linger`)."""
        self.db.release()

    @contextmanager
    def session(self) -> Iterator[Any]:
        """Keep one connection open for several calls in this thread (a page run, a batch of reads)."""
        with self.db.connect() as con:
            yield con

    # trajectories

    def save_trajectories(self, trajs: list[Trajectory], lints: Iterable[Lint] = (), sources: Iterable[Source] = (),
                          revisions: Iterable[Revision] = (), annotations: Iterable[Annotation] = ()) -> int:
        return self.trajectories.save_trajectories(trajs, lints, sources, revisions, annotations)

    def save_record_tables(self, trajs: pa.Table, steps: pa.Table, lints: Iterable[Lint] = (),
                           revisions: Iterable[Revision] = (), annotations: Iterable[Annotation] = (),
                           existing: set[str] | None = None) -> int:
        return self.trajectories.save_record_tables(trajs, steps, lints, revisions, annotations, existing)

    def insert_tables(self, trajs: pa.Table, steps: pa.Table) -> None:
        return self.trajectories.insert_tables(trajs, steps)

    def save_attached(self, lints: Iterable[Lint] = (), revisions: Iterable[Revision] = (),
                      annotations: Iterable[Annotation] = (),
                      existing: set[str] | frozenset[str] = frozenset()) -> None:
        return self.trajectories.save_attached(lints, revisions, annotations, existing)

    def existing_ids(self, ids: list[str]) -> set[str]:
        return self.trajectories.existing_ids(ids)

    def save_source(self, src: Source) -> None:
        return self.trajectories.save_source(src)

    def get_source(self, name: str) -> Source | None:
        return self.trajectories.get_source(name)

    def list_sources(self) -> list[Source]:
        return self.trajectories.list_sources()

    def get_trajectory(self, traj_id: str) -> Trajectory:
        return self.trajectories.get_trajectory(traj_id)

    def iter_trajectories(self, source: str | None = None, ids: list[str] | None = None,
                          batch: int = 2000) -> Iterator[Trajectory]:
        return self.trajectories.iter_trajectories(source, ids, batch)

    def count_trajectories(self, source: str | None = None) -> int:
        return self.trajectories.count_trajectories(source)

    def stats(self) -> Stats:
        return self.trajectories.stats()

    def lint_counts(self, source: str | None = None) -> dict[str, int]:
        return self.trajectories.lint_counts(source)

    def lints_of(self, traj_id: str) -> list[Lint]:
        return self.trajectories.lints_of(traj_id)

    def source_question_keys(self, sources: set[str], exclude_ids: set[str]) -> dict[tuple[str, str], int]:
        return self.trajectories.source_question_keys(sources, exclude_ids)


    # browse

    def refresh_search_index(self) -> int:
        return self.browse.refresh_search_index()

    def count_filtered(self, f: TrajectoryFilter) -> int:
        return self.browse.count_filtered(f)

    def list_summaries(self, f: TrajectoryFilter, sort: str = "imported", descending: bool = False,
                       limit: int = 50, offset: int = 0) -> list[Summary]:
        return self.browse.list_summaries(f, sort, descending, limit, offset)

    def iter_summaries(self, f: TrajectoryFilter, sort: str = "imported", descending: bool = False,
                       limit: int | None = None, offset: int = 0, batch: int = 1000) -> Iterator[Summary]:
        return self.browse.iter_summaries(f, sort, descending, limit, offset, batch)

    def filter_ids(self, f: TrajectoryFilter, sort: str = "imported", descending: bool = False,
                   limit: int | None = None) -> list[str]:
        return self.browse.filter_ids(f, sort, descending, limit)

    def neighbours(self, f: TrajectoryFilter, traj_id: str, sort: str = "imported",
                   descending: bool = False) -> Neighbours:
        return self.browse.neighbours(f, traj_id, sort, descending)

    def position(self, f: TrajectoryFilter, traj_id: str, sort: str = "imported",
                 descending: bool = False) -> Position:
        return self.browse.position(f, traj_id, sort, descending)

    def neighbour(self, f: TrajectoryFilter, traj_id: str, sort: str = "imported", descending: bool = False,
                  step: int = 1) -> str | None:
        return self.browse.neighbour(f, traj_id, sort, descending, step)

    def review_progress(self, f: TrajectoryFilter) -> tuple[int, int]:
        return self.browse.review_progress(f)

    def next_unreviewed(self, f: TrajectoryFilter, exclude: Iterable[str] = (), sort: str = "imported",
                        descending: bool = False) -> str | None:
        return self.browse.next_unreviewed(f, exclude, sort, descending)

    def review_states(self, ids: list[str]) -> dict[str, Annotation]:
        return self.browse.review_states(ids)

    def review_state(self, traj_id: str) -> Annotation | None:
        return self.browse.review_state(traj_id)

    def bulk_annotate(self, ids: list[str], author: str, status: ReviewStatus | None = None,
                      add_labels: Iterable[str] = (), remove_labels: Iterable[str] = (),
                      clear_status: bool = False) -> int:
        return self.browse.bulk_annotate(ids, author, status, add_labels, remove_labels, clear_status)

    def known_labels(self) -> list[str]:
        return self.browse.known_labels()

    def facet_values(self) -> dict[str, list]:
        return self.browse.facet_values()

    def compare_counts(self, source_a: str, source_b: str) -> dict[str, int]:
        return self.browse.compare_counts(source_a, source_b)

    def compare_pairs(self, source_a: str, source_b: str, cell: str | None = None, limit: int = 200,
                      offset: int = 0) -> list[ComparePair]:
        return self.browse.compare_pairs(source_a, source_b, cell, limit, offset)


    # runs

    def begin_run(self, name: str, *, task: str, split: str | None, method: str, model: str,
                  settings: dict[str, Any], total: int, pid: int | None = None, source_meta: dict | None = None) -> Run:
        return self.runs.begin_run(name, task=task, split=split, method=method, model=model, settings=settings,
                                   total=total, pid=pid, source_meta=source_meta)

    def save_run_trajectories(self, name: str, trajs: list[Trajectory], lints: Iterable[Lint] = ()) -> list[str]:
        return self.runs.save_run_trajectories(name, trajs, lints)

    def run_statuses(self, name: str) -> dict[str, str]:
        return self.runs.run_statuses(name)

    def end_run(self, name: str, status: str, error: str | None = None) -> None:
        return self.runs.end_run(name, status, error)

    def heartbeat_run(self, name: str) -> None:
        return self.runs.heartbeat_run(name)

    def request_cancel(self, name: str) -> None:
        return self.runs.request_cancel(name)

    def cancel_requested(self, name: str) -> bool:
        return self.runs.cancel_requested(name)

    def get_run(self, name: str) -> Run:
        return self.runs.get_run(name)

    def list_runs(self) -> list[Run]:
        return self.runs.list_runs()

    def log_run_event(self, name: str, kind: str, message: str) -> None:
        return self.runs.log_run_event(name, kind, message)

    def run_events(self, name: str, after: int = 0, limit: int = 200) -> list[RunEvent]:
        return self.runs.run_events(name, after, limit)

    def cached_search(self, backend: str, query: str) -> tuple[bool, str | None]:
        return self.runs.cached_search(backend, query)

    def cached_searches(self, backend: str) -> dict[str, str | None]:
        return self.runs.cached_searches(backend)

    def cache_searches(self, backend: str, entries: list[tuple[str, str | None]]) -> None:
        return self.runs.cache_searches(backend, entries)

    def save_prompt_version(self, task: str, method: str, examples: list[str], author: str,
                            note: str | None = None, layout: str = "studio", source: str | None = None) -> int:
        return self.runs.save_prompt_version(task, method, examples, author, note, layout, source)

    def prompt_versions(self, task: str, method: str) -> list[PromptVersion]:
        return self.runs.prompt_versions(task, method)

    def model_prices(self) -> dict[str, tuple[float, float]]:
        return self.runs.model_prices()

    def save_model_prices(self, prices: dict[str, tuple[float, float]]) -> None:
        return self.runs.save_model_prices(prices)

    # history

    def save_edit(self, traj: Trajectory, *, base_revision: int, author: str, reason: str | None = None,
                  lints: Iterable[Lint] = ()) -> Trajectory:
        return self.history.save_edit(traj, base_revision=base_revision, author=author, reason=reason, lints=lints)

    def list_revisions(self, traj_id: str) -> list[Revision]:
        return self.history.list_revisions(traj_id)

    def revision_trajectory(self, traj_id: str, rev: int) -> Trajectory:
        return self.history.revision_trajectory(traj_id, rev)

    def imported_revisions(self, ids: list[str]) -> dict[str, Trajectory]:
        return self.history.imported_revisions(ids)

    def annotate(self, ann: Annotation) -> Annotation:
        return self.history.annotate(ann)

    def list_annotations(self, traj_id: str) -> list[Annotation]:
        return self.history.list_annotations(traj_id)

    def history_of(self, ids: list[str]) -> History:
        return self.history.history_of(ids)

    # jobs

    def save_job(self, job: TrainJob) -> TrainJob:
        return self.jobs.save_job(job)

    def update_job(self, job_id: str, **fields: Any) -> TrainJob:
        return self.jobs.update_job(job_id, **fields)

    def get_job(self, job_id: str) -> TrainJob:
        return self.jobs.get_job(job_id)

    def list_jobs(self, status: str | None = None) -> list[TrainJob]:
        return self.jobs.list_jobs(status)

    def register_model(self, model: RegisteredModel) -> RegisteredModel:
        return self.jobs.register_model(model)

    def get_model(self, name: str) -> RegisteredModel:
        return self.jobs.get_model(name)

    def list_models(self) -> list[RegisteredModel]:
        return self.jobs.list_models()

    def model_of_job(self, job_id: str) -> RegisteredModel | None:
        return self.jobs.model_of_job(job_id)

    # datasets

    def mix_stamp(self) -> tuple[Any, ...]:
        return self.datasets.mix_stamp()

    def mix_pool(self, sources: list[str], filters: dict[str, Any], seed: int) -> tuple[dict[str, int], Any]:
        return self.datasets.mix_pool(sources, filters, seed)

    def source_names(self) -> list[str]:
        return self.datasets.source_names()

    def task_method_counts(self, sources: list[str]) -> dict[str, int]:
        return self.datasets.task_method_counts(sources)

    def text_chars(self, ids: list[str]) -> pd.DataFrame:
        return self.datasets.text_chars(ids)

    def save_dataset_version(self, version: dict[str, Any], members: dict[str, list]) -> DatasetVersion:
        return self.datasets.save_dataset_version(version, members)

    def get_dataset_version(self, name: str) -> DatasetVersion:
        return self.datasets.get_dataset_version(name)

    def list_dataset_versions(self) -> list[DatasetVersion]:
        return self.datasets.list_dataset_versions()

    def dataset_members(self, name: str, split: str | None = None) -> pd.DataFrame:
        return self.datasets.dataset_members(name, split)

    def iter_dataset_trajectories(self, name: str, split: str | None = None,
                                  batch: int = 2000) -> Iterator[tuple[str, Trajectory]]:
        return self.datasets.iter_dataset_trajectories(name, split, batch)

    # team

    def save_user(self, name: str, role: str, by: str) -> None:
        return self.team.save_user(name, role, by)

    def remove_user(self, name: str) -> bool:
        return self.team.remove_user(name)

    def list_users(self) -> list[User]:
        return self.team.list_users()

    def user_role(self, name: str) -> str | None:
        return self.team.user_role(name)

    def user_standing(self, name: str) -> tuple[str | None, int]:
        return self.team.user_standing(name)

    def count_users(self, role: str | None = None) -> int:
        return self.team.count_users(role)

    def assignments_of(self, ids: list[str]) -> dict[str, list[str]]:
        return self.team.assignments_of(ids)

    def assignment_load(self) -> dict[str, int]:
        return self.team.assignment_load()

    def add_assignments(self, pairs: Iterable[tuple[str, str]], by: str) -> int:
        return self.team.add_assignments(pairs, by)

    def remove_assignments(self, ids: list[str], annotators: list[str] | None = None) -> int:
        return self.team.remove_assignments(ids, annotators)

    def is_assigned(self, traj_id: str, annotator: str) -> bool:
        return self.team.is_assigned(traj_id, annotator)

    def next_assigned(self, f: TrajectoryFilter, annotator: str, exclude: Iterable[str] = (), sort: str = "imported",
                      descending: bool = False) -> str | None:
        return self.team.next_assigned(f, annotator, exclude, sort, descending)

    def next_unassigned(self, f: TrajectoryFilter, exclude: Iterable[str] = (), sort: str = "imported",
                        descending: bool = False) -> str | None:
        return self.team.next_unassigned(f, exclude, sort, descending)

    def assignment_progress(self, f: TrajectoryFilter | None = None) -> list[AssignmentProgress]:
        return self.team.assignment_progress(f)

    def decisions(self, f: TrajectoryFilter | None = None) -> list[Decision]:
        return self.team.decisions(f)

    def own_review_state(self, traj_id: str, author: str) -> Annotation | None:
        return self.team.own_review_state(traj_id, author)

    def save_adjudication(self, ann: Annotation, note: str | None = None) -> Annotation:
        return self.team.save_adjudication(ann, note)

    def adjudication(self, traj_id: str) -> Adjudication | None:
        return self.team.adjudication(traj_id)

    def adjudicated_ids(self, ids: list[str]) -> set[str]:
        return self.team.adjudicated_ids(ids)

    def record_owner(self, kind: str, key: str, by: str) -> None:
        return self.team.record_owner(kind, key, by)

    def owners_of(self, kind: str) -> dict[str, str]:
        return self.team.owners_of(kind)

    # forks

    def add_forks(self, rows: Iterable[ForkLink]) -> int:
        return self.forks.add_forks(rows)

    def fork_children(self, parent_id: str) -> list[ForkLink]:
        return self.forks.fork_children(parent_id)

    def fork_parent(self, child_id: str) -> ForkLink | None:
        return self.forks.fork_parent(child_id)

    def fork_links(self, ids: list[str] | None = None) -> list[ForkLink]:
        return self.forks.fork_links(ids)

    # reports

    def report_runs(self, runs: Sequence[str] | None = None, scored_only: bool = False) -> pd.DataFrame:
        return self.reports.report_runs(runs, scored_only)

    def report_steps(self, runs: Sequence[str] | None = None) -> pd.DataFrame:
        return self.reports.report_steps(runs)

    def report_pairs(self, run_a: str, run_b: str) -> pd.DataFrame:
        return self.reports.report_pairs(run_a, run_b)

    def report_pair_counts(self, pairs: Sequence[tuple[str, str]]) -> pd.DataFrame:
        return self.reports.report_pair_counts(pairs)

    def report_run_names(self) -> list[str]:
        return self.reports.report_run_names()

    # ---- the import path: a chat file parsed in SQL (inside one connection), a staged import's copy
    def stage_chat(self, path: str, max_bytes: int) -> tuple[int, bool]:
        return self.chat_import.stage_chat(path, max_bytes)

    def parse_staged_chat(self) -> tuple[pa.Table, list[int]]:
        return self.chat_import.parse_staged_chat()

    def staged_chat_lints(self) -> list[tuple[str, int]]:
        return self.chat_import.staged_chat_lints()

    def insert_staged_chat_steps(self, keys: pa.Table, py_trajs: pa.Table, py_steps: pa.Table) -> None:
        self.chat_import.insert_staged_chat_steps(keys, py_trajs, py_steps)

    def insert_staged_chat_trajectories(self, classes: pa.Table, py_trajs: pa.Table, source: str,
                                        method: str | None) -> int:
        return self.chat_import.insert_staged_chat_trajectories(classes, py_trajs, source, method)

    def drop_chat_stage(self) -> None:
        self.chat_import.drop_chat_stage()

    def merge_staged(self, scratch: Connections, held_steps: list[pa.Table] | None = None,
                     before_landing: Callable[[], None] | None = None,
                     early: staging.EarlyCopy | None = None) -> dict[str, int]:
        return self.staging.merge_staged(scratch, held_steps, before_landing, early)


HELD_SHARE = 0.5  # of a scratch database's memory bound, for the steps it keeps as Arrow tables


class ScratchStore(Store):
    """The scratch database of a staged import (`staging`): its duplicate checks count the main database's rows.
    Written once and read once, it is held in memory (beyond a bound, in files of the `spill` folder),
    uncompressed and without keys."""

    def __init__(self, spill: str, main: Store):
        super().__init__(":memory:", compress=False, keyed=False, spill=spill)
        self.main = main
        self.held_steps: list[pa.Table] = []  # steps tables kept as they came (`insert_tables`), in order
        self._held_bytes = 0
        self.early: staging.EarlyCopy | None = None  # the copy of the first steps, begun while the import reads

    def insert_tables(self, trajs: pa.Table, steps: pa.Table) -> None:
        """The trajectories into the scratch database; their steps, which nothing reads before the copy, are kept
        as the Arrow tables they are (writing them into DuckDB and reading them back cost a tenth of a native
        import), for the copy to take after the scratch database's own steps. Past half the memory bound they
        go into the scratch database, those kept so far first, so that it can spill them."""
        if self._held_bytes + steps.nbytes > connection.spill_limit() * HELD_SHARE:
            self._write_held_steps()
            super().insert_tables(trajs, steps)
            return
        super().insert_tables(trajs, steps.slice(0, 0))
        self.held_steps.append(steps)
        self._held_bytes += steps.nbytes

    def insert_staged_chat_steps(self, keys: pa.Table, py_trajs: pa.Table, py_steps: pa.Table) -> None:
        """Kept as an Arrow table too, after those kept before, when the steps fit in what is left of the share
        (writing them into the scratch database and reading them back took 1.5 s of CPU in a 100,000-row chat
        import), whether every row was parsed in SQL or the Python reader built some; else written there, the
        kept steps first, so that the copy keeps the order they came in."""
        size = self.chat_import.parsed_steps_bytes(py_steps)
        if self._held_bytes + size <= connection.spill_limit() * HELD_SHARE:
            steps = self.chat_import.parsed_steps(keys, py_trajs, py_steps, staging.ROW_GROUP)
            fresh = fresh_ids(keys, py_trajs)
            if (self.early is None and fresh.num_rows > staging.SMALL and not self.held_steps
                    and not self.trajectories.count_trajectories()):
                # the import's first steps, of more trajectories than one short transaction takes: copied into
                # the main database from now on (`staging.EarlyCopy`)
                self.early = staging.EarlyCopy(self.main.staging, fresh, steps)
                return
            self.held_steps.append(steps)
            self._held_bytes += steps.nbytes
            return
        self._write_held_steps()
        super().insert_staged_chat_steps(keys, py_trajs, py_steps)

    def _write_held_steps(self) -> None:
        if self.held_steps:
            trajs = trajectory_tables([])[0]
            for steps in self.held_steps:
                super().insert_tables(trajs, steps)
            self.held_steps.clear()
            self._held_bytes = 0

    def get_source(self, name: str) -> Source | None:
        """A source named here or in the main database (which file a name holds decides the import's source)."""
        return super().get_source(name) or self.main.get_source(name)

    def count_trajectories(self, source: str | None = None) -> int:
        return super().count_trajectories(source) + self.main.count_trajectories(source)

    def source_question_keys(self, sources: set[str], exclude_ids: set[str]) -> dict[tuple[str, str], int]:
        counts = super().source_question_keys(sources, exclude_ids)
        for key, n in self.main.source_question_keys(sources, exclude_ids).items():
            counts[key] = counts.get(key, 0) + n
        return counts


class StagedImport:
    """Where an import writes (`target`), whether that is a scratch database (`staged`), and what it reported
    (`reports`, set by the importer)."""

    def __init__(self, target: Store, staged: bool = False):
        self.target = target
        self.staged = staged
        self.reports: list[Any] = []


@contextmanager
def staged_import(store: Store, inputs: list[str],
                  before_landing: Callable[[], None] | None = None) -> Iterator[StagedImport]:
    """An import into `store`: large inputs go to a scratch database, copied in when the block ends without
    error (`Store.merge_staged`, which calls `before_landing` first: an error there leaves the database as it
    was), each report's `added` then set to what the copy added; small ones straight into `store`."""
    if not should_stage(store.path, inputs):
        yield StagedImport(store)
        return
    with scratch_folder(store.path) as spill:
        scratch = ScratchStore(spill, store)
        stage = StagedImport(scratch, staged=True)
        try:
            yield stage
            share_added(stage.reports, store.merge_staged(scratch.db, scratch.held_steps, before_landing,
                                                          scratch.early))
        except BaseException:
            if scratch.early is not None:  # what it copied goes (merge_staged's own failure took it out already)
                scratch.early.abandon()
            raise
        finally:
            stage.target.db.close()


__all__ = ["Store", "links_in", "resolve_db_path", "staged_import", "trajectory_tables", "without_ids"]
