"""Forks: a trajectory continued from one of its steps, and failed trajectories repaired that way.

A fork keeps steps 1..K of a trajectory exactly as they stand (a saved revision, or the editor's draft) and
lets the model go on, with the tools and the prompt layout the trajectory was made with (the settings of the
run that made it, else what its own meta and source record), N samples at a time. Each continuation is a new
trajectory of a run of its own, scored and linted like any generated one, and linked to its parent (parent
id, revision, K) in the same transaction that stores it.

Repair continues each failed or wrong trajectory of a filter from the step before its first wrong step (its
first lint with a step, or the first of a chosen rule; a wrong answer without one: the step before the
finish) and keeps only the continuations that score right (`store.answers.is_correct`), labelled `repaired`.

    continue_trajectory(store, traj, k, n=3, overrides={"model": ...})   # foreground (the CLI)
    start_fork_run(store, jobs, cfg)                                      # background thread (the pages)
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .engine import _ACTIVE, Plan, RunConfig, RunProgress, _model_name, _Runner, _scrubbed, execute
from .episode import EpisodeContext, make_episode
from ..errors import FireactError, NotFoundError
from ..filters import TrajectoryFilter
from ..io.lint import lint_trajectory
from .prompts import METHODS, PromptSpec, make_spec
from ..records import Annotation, ForkLink, Run, Step, Trajectory, now, stable_id, trajectory_data
from ..store.answers import is_correct
from .tasks import Question, get_task, list_tasks
from ..curation.team.roles import actor

if TYPE_CHECKING:
    from ..store import Store

Kind = Literal["continue", "repair"]
REPAIRED = "repaired"
# RunConfig fields that belong to the run that made a trajectory, not to how it was made
NOT_INHERITED = {"run", "tasks_dir", "questions_path", "start", "end", "sample", "retry_failed", "api_key",
                 "serpapi_key", "concurrency", "poll_s"}
FINETUNE_FORMATS = {"openai-jsonl": "chat", "chat": "chat", "alpaca": "alpaca"}


@dataclass
class ForkJob:
    """One continuation to make: the parent as it stands (`parent`, a draft or a saved revision), the kept
    steps, and the settings and prompt it is continued with."""

    child_id: str
    parent: Trajectory
    from_step: int
    sample: int
    kind: Kind
    question: Question
    config: RunConfig
    spec: PromptSpec
    from_draft: bool = False

    @property
    def qid(self) -> str:
        return self.question.qid

    @property
    def prefix(self) -> list[Step]:
        return self.parent.steps[:self.from_step]


def recorded_settings(store: Store, traj: Trajectory) -> dict[str, Any]:
    """The RunConfig fields a trajectory was made with: its run's settings (a Studio run), else what its meta and
    source say (an imported file: fine-tuning rows in FireAct's fine-tuned layout, a FireAct run few-shot when it
    kept its prompt)."""
    settings: dict[str, Any] = {}
    try:
        settings.update(store.get_run(traj.source).settings)
    except NotFoundError:
        pass
    meta = traj.meta or {}
    for key in ("temperature", "search", "perturb", "mode", "backend", "max_steps", "finetuned_format"):
        if meta.get(key) is not None:
            settings[key] = meta[key]
    if "mode" not in settings:
        fmt = FINETUNE_FORMATS.get(str(meta.get("format")))
        if fmt is not None or (meta.get("format") == "fireact-run" and not traj.prompt):
            settings.update(mode="finetuned", finetuned_format=fmt or "alpaca")
    settings["task"] = traj.task if traj.task in list_tasks() else "custom"
    settings["split"] = traj.split or settings.get("split") or "dev"
    settings["method"] = traj.method if traj.method in METHODS else "react"
    if traj.model and "model" not in settings:
        settings["model"] = traj.model
    return {k: v for k, v in settings.items() if k in RunConfig.model_fields and k not in NOT_INHERITED}


def recorded_spec(store: Store, traj: Trajectory, cfg: RunConfig) -> PromptSpec:
    """The prompt a trajectory was made with: FireAct's layout with the few-shot text it kept, else the prompt
    its settings name (a saved version of the examples, a FireAct prompt folder, the fine-tuned layout)."""
    kept = traj.prompt[0].content if traj.prompt and traj.prompt[0].role == "user" else None
    if cfg.mode == "fewshot" and kept and (traj.meta or {}).get("prompt_layout", "fireact") == "fireact":
        meta = traj.meta or {}
        return PromptSpec(method=cfg.method, task=cfg.task, layout="fireact", fewshot=kept,
                          version=meta.get("prompt_version"), source=meta.get("prompt_file"))
    return make_spec(store, cfg.task, cfg.method, cfg.mode, cfg.finetuned_format, cfg.prompt_version, cfg.prompts_dir)


def check_fork(traj: Trajectory, k: int) -> None:
    """A FireactError unless steps 1..k of `traj` can be continued (0: from the question alone)."""
    if not 0 <= k <= len(traj.steps):
        raise FireactError(f"trajectory {traj.id}: --from-step {k} is out of range: it has {len(traj.steps)} steps "
                           f"(keep 0 to {len(traj.steps)})")
    last = traj.steps[k - 1] if k else None
    if last is not None and last.action is not None and "finish" in (last.action.name or "").lower():
        raise FireactError(f"trajectory {traj.id}: step {k} finishes the episode; continue from an earlier step")


def fork_config(store: Store, traj: Trajectory, run: str, overrides: dict[str, Any]) -> RunConfig:
    """The settings to continue `traj` with: as recorded, then `overrides` (None values left out)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if given.get("local_model"):
        given.setdefault("backend", "local")
    elif given.get("base_url") or given.get("model"):
        given.setdefault("backend", "openai")
    try:
        return RunConfig(**{**recorded_settings(store, traj), **given, "run": run})
    except ValueError as exc:
        raise FireactError(f"trajectory {traj.id}: cannot continue it with these settings: {exc}") from None


def make_jobs(store: Store, parents: list[tuple[Trajectory, int]], n: int, run: str, overrides: dict[str, Any],
              kind: Kind = "continue", drafts: frozenset[str] | set[str] = frozenset()) -> list[ForkJob]:
    """N continuations of each (parent, K); a parent in `drafts` is continued as given (the editor's draft)."""
    if n < 1:
        raise FireactError(f"--n {n}: make at least one continuation")
    jobs = []
    specs: dict[tuple, tuple[RunConfig, PromptSpec]] = {}  # parents made alike share their settings and prompt
    for traj, k in parents:
        check_fork(traj, k)
        same = (traj.source, traj.task, traj.split, traj.method, traj.model, json.dumps(traj.meta, sort_keys=True,
                default=str), json.dumps([m.model_dump() for m in traj.prompt or []]))
        if same not in specs:
            cfg = fork_config(store, traj, run, overrides)
            specs[same] = (cfg, recorded_spec(store, traj, cfg))
        cfg, spec = specs[same]
        q = Question(task=cfg.task, split=cfg.split, qid=traj.qid or traj.id, question=traj.question, answer=traj.gold)
        draft = traj.id in drafts
        for i in range(n):
            child = stable_id(run, traj.id, traj.revision, k, "draft" if draft else "", i)
            jobs.append(ForkJob(child, traj, k, i, kind, q, cfg, spec, draft))
    return jobs


def fork_run_name(kind: Kind, traj_id: str | None = None) -> str:
    stamp = now().strftime("%Y-%m-%d-%H-%M-%S")
    return f"{kind}_{traj_id}_{stamp}" if traj_id else f"{kind}_{stamp}"


def prepare_forks(store: Store, jobs: list[ForkJob], by: str | None = None) -> Plan:
    """Register (or take up) the run of `jobs`; nothing runs yet. A run taken up again skips the continuations
    it has stored."""
    if not jobs:
        raise FireactError("nothing to continue")
    by = actor(store, by, "generate")
    cfg = jobs[0].config
    if cfg.backend == "local" and not cfg.local_model:
        raise FireactError("the local backend needs a model folder (--local-model DIR)")
    if cfg.run in _ACTIVE:
        raise FireactError(f"run '{cfg.run}' is running now; wait for it or choose another --run")
    with store.session():
        kinds = sorted({j.kind for j in jobs})
        store.begin_run(cfg.run, task=cfg.task, split=cfg.split, method=cfg.method, model=_model_name(cfg),
                        settings={**cfg.settings(), "fork": kinds[0]}, total=len(jobs), pid=os.getpid(),
                        source_meta={"temperature": cfg.temperature, "search": cfg.search, "mode": cfg.mode,
                                     "fork": kinds[0]})
        store.record_owner("run", cfg.run, by)
        statuses = store.run_statuses(cfg.run)
    todo = [j for j in jobs if statuses.get(j.child_id) in (None, "failed")]
    plan = Plan(store=store, config=cfg, questions=jobs, todo=todo)  # type: ignore[arg-type]
    plan.by = by  # type: ignore[attr-defined]
    return plan


class ForkRunner(_Runner):
    """The engine's runner, for continuations: each job its own prompt and settings, its kept steps first;
    children saved with their fork links in one transaction, repairs only when right."""

    def __init__(self, plan: Plan, progress: Callable[[RunProgress], None] | None):
        self.by: str = getattr(plan, "by", None) or actor(plan.store, None, "generate")
        self.links: dict[str, ForkLink] = {}
        self.tried = self.kept = 0
        super().__init__(plan, progress)

    async def _one(self, ctx: EpisodeContext, q: Any) -> None:
        job: ForkJob = q
        own = dataclasses.replace(ctx, config=job.config, spec=job.spec, task=get_task(job.config.task))
        traj = await make_episode(own, job.question, job.prefix).run()
        traj = child_trajectory(traj, job)
        if traj.error:
            traj.error = _scrubbed(traj.error, self.secrets)
        with self.lock:
            self.tried += 1
            if job.kind == "repair" and is_correct(traj.em, traj.reward) is not True:
                return
            self.kept += 1
            self.links[traj.id] = ForkLink(child_id=traj.id, parent_id=job.parent.id,
                                           parent_revision=job.parent.revision, fork_step=job.from_step,
                                           run=self.cfg.run, kind=job.kind)
            self.unsaved.append(traj)
            first = len(self.unsaved) == 1
        if first:
            self.saves.append(self.writer.submit(self._flush))

    def _flush(self) -> None:
        with self.lock:
            batch, self.unsaved = self.unsaved, []
            searched, self.searched = self.searched, []
            links = [self.links[t.id] for t in batch]
        with self.store.db.transaction():
            self.store.cache_searches(self.search_backend, searched)
            saved = set(self.store.save_run_trajectories(self.cfg.run, batch,
                                                         [x for t in batch for x in lint_trajectory(trajectory_data(t))]))
            self.store.add_forks([x for x in links if x.child_id in saved])
            for link in links:
                if link.kind == "repair" and link.child_id in saved:
                    self.store.annotate(Annotation(trajectory_id=link.child_id, author=self.by, labels=[REPAIRED]))
        self.state.new += len(saved)
        self._sync(self.store.get_run(self.cfg.run))
        if self.progress and saved:
            self.progress(self.state)

    def _sync(self, run: Run) -> None:
        super()._sync(run)
        self.state.done = max(self.state.done, self.tried)  # rejected repairs are tried, never stored

    async def run(self) -> str:
        status = await super().run()
        if any(j.kind == "repair" for j in self.plan.questions):  # type: ignore[attr-defined]
            note = f"{self.tried} continuations tried, {self.kept} kept (scored right)"
            self.writer.submit(record_repair, self.store, self.cfg.run, self.tried, self.kept, note).result()
        return status


def record_repair(store: Store, run: str, tried: int, kept: int, note: str) -> None:
    """A repair run's tally, in its events and its source's meta (added to what an earlier go recorded)."""
    with store.db.transaction():
        source = store.get_source(run)
        if source is not None:
            before = source.meta.get("repair") or {"tried": 0, "kept": 0}
            source.meta["repair"] = {"tried": before["tried"] + tried, "kept": before["kept"] + kept}
            store.save_source(source)
        store.log_run_event(run, "repair", note)


def child_trajectory(traj: Trajectory, job: ForkJob) -> Trajectory:
    """A continuation as stored: its own id, the parent's question fields, and where it was forked from."""
    fork = {"parent_id": job.parent.id, "parent_revision": job.parent.revision, "fork_step": job.from_step,
            "sample": job.sample, "kind": job.kind}
    if job.from_draft:
        fork["from_draft"] = True
    return traj.model_copy(update={"id": job.child_id, "task": job.parent.task, "split": job.parent.split,
                                   "qid": job.parent.qid, "meta": {**traj.meta, "fork": fork}})


def run_forks(store: Store, jobs: list[ForkJob], progress: Callable[[RunProgress], None] | None = None,
              by: str | None = None) -> Run:
    """Prepare and run in the foreground (the CLI); returns the run's row."""
    return execute(prepare_forks(store, jobs, by), progress, runner_class=ForkRunner)


def start_forks(store: Store, jobs: list[ForkJob], by: str | None = None) -> str:
    """Prepare in the foreground (bad settings raise here), then run in a background thread; returns the run."""
    plan = prepare_forks(store, jobs, by)
    _ACTIVE.add(plan.config.run)

    def target() -> None:
        try:
            execute(plan, runner_class=ForkRunner)
        except BaseException:  # noqa: BLE001 - recorded in the run's row and events by execute
            pass

    threading.Thread(target=target, name=f"fireact-fork-{plan.config.run}", daemon=True).start()
    return plan.config.run


def first_wrong_step(store: Store, traj: Trajectory, rule: str | None = None) -> int | None:
    """The index (0-based) of the first wrong step: its first lint with a step (of kind `rule` when given);
    without one, a wrong or unfinished answer's last step. None: nothing to repair from."""
    lints = [x for x in store.lints_of(traj.id) if x.step is not None and (rule is None or x.kind == rule)]
    if lints:
        return min(x.step for x in lints if x.step is not None)
    if rule is None and traj.steps and is_correct(traj.em, traj.reward) is not True:
        return len(traj.steps) - 1
    return None


def repair_targets(store: Store, f: TrajectoryFilter, rule: str | None = None,
                   limit: int | None = None) -> list[tuple[Trajectory, int]]:
    """(trajectory, K) of the failed or wrong trajectories of a filter that have a first wrong step: K is the
    number of steps kept, those before it."""
    out = []
    for traj in store.iter_trajectories(ids=store.filter_ids(f, limit=limit)):
        failed = traj.status != "finished" or is_correct(traj.em, traj.reward) is False
        if not failed:
            continue
        step = first_wrong_step(store, traj, rule)
        if step is not None:
            out.append((traj, step))
    return out


def continue_trajectory(store: Store, traj_id: str, from_step: int, n: int = 1, run: str | None = None,
                        overrides: dict[str, Any] | None = None, by: str | None = None,
                        progress: Callable[[RunProgress], None] | None = None) -> Run:
    """`fireact continue`: N continuations of a stored trajectory after its step `from_step`."""
    with store.session():
        traj = store.get_trajectory(traj_id)
        jobs = make_jobs(store, [(traj, from_step)], n, run or fork_run_name("continue", traj_id), overrides or {})
    return run_forks(store, jobs, progress, by)


def repair(store: Store, f: TrajectoryFilter, n: int = 1, rule: str | None = None, run: str | None = None,
           overrides: dict[str, Any] | None = None, by: str | None = None, limit: int | None = None,
           progress: Callable[[RunProgress], None] | None = None, background: bool = False) -> Run | str:
    """`fireact repair`: continue each failed or wrong trajectory of `f` from before its first wrong step;
    keep what scores right. Returns the run's row (or, in the background, its name)."""
    with store.session():
        targets = repair_targets(store, f, rule, limit)
        if not targets:
            what = f"a lint '{rule}' on a step" if rule else "a step to repair from"
            raise FireactError(f"no failed or wrong trajectory with {what} in this filter: nothing to repair")
        jobs = make_jobs(store, targets, n, run or fork_run_name("repair"), overrides or {}, kind="repair")
    if background:
        return start_forks(store, jobs, by)
    return run_forks(store, jobs, progress, by)


def family(store: Store, traj_id: str) -> tuple[Trajectory, list[tuple[ForkLink, Trajectory]]]:
    """A parent and its continuations (oldest first), for Compare; given a child, its parent's family."""
    link = store.fork_parent(traj_id)
    parent_id = link.parent_id if link is not None else traj_id
    parent = store.get_trajectory(parent_id)
    links = store.fork_children(parent_id)
    children = {t.id: t for t in store.iter_trajectories(ids=[x.child_id for x in links])}
    return parent, [(x, children[x.child_id]) for x in links if x.child_id in children]
