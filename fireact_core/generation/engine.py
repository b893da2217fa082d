"""The generation engine: many episodes at once, each question its own task.

Model calls share a global concurrency limit and a requests-per-minute pace; an episode that waits for a
search gives its slot to another. Transient model errors are retried with backoff (bounded); output without
a parsable action is answered with feedback and asked again (bounded). Each ended episode is written at once
(trajectory id = stable_id(run, qid)), so a run started again under the same name skips what is done and
duplicates nothing. A cancel flag in the store stops a run from the page or another process.

    name = start_run(store, RunConfig(...))          # background thread (the Generate page)
    summary = run_generation(store, RunConfig(...))  # foreground (the CLI)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import os
import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from .episode import EpisodeContext, make_episode
from ..errors import FireactError
from .models import make_backend
from .models.limits import CallLimits
from .models.pricing import DEFAULT_PRICES, cost_usd, price_table
from .prompts import PromptSpec, make_spec
from ..records import AgentMethod, Run, RunView, Trajectory, stable_id, trajectory_data
from ..redact import remember, url_password
from .tasks import Question, get_task
from .tools import SearchCache, SearchKind, Toolbox, make_search
from .tools.perturb import Perturber, parse_perturb

if TYPE_CHECKING:
    from ..store import Store

SECRET_FIELDS = {"api_key", "serpapi_key"}
_ACTIVE: set[str] = set()  # runs going on in this process


class RunConfig(BaseModel):
    """Everything a run needs. API keys are held as secrets and never written anywhere."""

    model_config = ConfigDict(extra="forbid")

    run: str = Field(description="run name; the same name takes the run up again")
    task: str = "hotpotqa"
    split: str = "dev"
    tasks_dir: str | None = Field(default=None, description="FireAct-layout task folder (default $FIREACT_TASKS_DIR)")
    questions_path: str | None = Field(default=None, description="CSV/JSONL of questions for the custom task")
    start: int = 0
    end: int | None = None
    sample: int | None = None
    seed: int = 0
    method: AgentMethod = "react"
    mode: Literal["fewshot", "finetuned"] = "fewshot"
    finetuned_format: Literal["chat", "alpaca"] = "chat"
    prompt_version: int | None = None
    prompts_dir: str | None = Field(default=None, description="FireAct-layout prompt folder: "
                                    "{method}_{task}[_google].txt, sent exactly as FireAct's generation.py sends it")
    backend: Literal["openai", "local"] = "openai"
    model: str = "gpt-4o-mini"
    base_url: str | None = None
    api_key: SecretStr | None = None
    local_model: str | None = None
    adapter: str | None = None
    batch_size: int = 8
    search: SearchKind = "serpapi"
    corpus: str | None = None
    serpapi_key: SecretStr | None = None
    perturb: str | None = Field(default=None, description="none:P or random:P")
    temperature: float = 0.0
    max_tokens: int = Field(default=1000, ge=1, description="FireAct's 1000")
    top_p: float = Field(default=1.0, ge=0.0, le=1.0, description="FireAct's 1")
    stop: list[str] | None = Field(default=None, description="None: as FireAct per mode (\\nObservation: in text "
                                   "layouts, none in fine-tuned chat); [] sends no stop sequence")
    action_reading: Literal["fireact", "strict"] = Field(
        default="fireact", description="fireact: name[arg] read as FireAct reads it; strict: nested brackets kept")
    concurrency: int | None = Field(default=None, ge=1, description="None: adaptive (rises while answers come back, "
                                    "halves on 429s and timeouts, at most max_concurrency)")
    max_concurrency: int = Field(default=256, ge=1)
    rpm: float | None = None
    max_steps: int | None = Field(default=None, ge=1, description="None: 8 (Studio prompts), 11 rounds (FireAct's)")
    max_retries: int = 4
    backoff_s: float = 1.0
    timeout_s: float = 60.0
    max_reasks: int = 2
    reflect_after: int = 5
    max_reflections: int = 1
    store_prompt: bool = False
    retry_failed: bool = True
    poll_s: float = 1.0
    schedule: Literal["free", "lockstep"] = Field(default="free", description="lockstep: FireAct's rounds (benchmarks)")

    def settings(self) -> dict[str, Any]:
        """What the run table keeps: every setting but the keys."""
        return self.model_dump(mode="json", exclude=SECRET_FIELDS)

    def secrets(self) -> list[str]:
        keys = [self.api_key, self.serpapi_key]
        env = [os.environ.get(k) for k in ("OPENAI_API_KEY", "SERPAPI_API_KEY", "SERPAPI_KEY")]
        # placeholders such as "EMPTY" (vLLM) are not secrets worth masking in error texts
        return [s for s in [k.get_secret_value() if k else None for k in keys] + env if s and len(s) >= 8]


@dataclass
class RunProgress:
    run: str
    total: int
    done: int
    finished: int
    failed: int
    em_sum: float
    tokens: int
    cost_usd: float
    elapsed_s: float
    new: int = 0

    @property
    def em(self) -> float | None:
        return self.em_sum / self.done if self.done else None

    @property
    def eta_s(self) -> float | None:
        left = self.total - self.done
        return self.elapsed_s / self.new * left if self.new and left > 0 else (0.0 if left <= 0 else None)


@dataclass
class Plan:
    store: Store
    config: RunConfig
    questions: list[Question]
    todo: list[Question]


def select_questions(cfg: RunConfig) -> list[Question]:
    task = get_task(cfg.task)
    if task.name == "custom":
        if not cfg.questions_path:
            raise FireactError("the custom task needs a questions file (CSV or JSONL with question and answer)")
        questions = task.load(cfg.tasks_dir or default_tasks_dir(), cfg.split or "custom", path=cfg.questions_path)
    else:
        tasks_dir = cfg.tasks_dir or os.environ.get("FIREACT_TASKS_DIR") or "tasks"
        questions = task.load(tasks_dir, cfg.split)
    if cfg.sample is not None:
        if cfg.sample > len(questions):
            raise FireactError(f"--sample {cfg.sample}: {cfg.task}/{cfg.split} has only {len(questions)} questions")
        picked = sorted(random.Random(cfg.seed).sample(range(len(questions)), cfg.sample))
        return [questions[i] for i in picked]
    chosen = questions[cfg.start:cfg.end]
    if not chosen:
        raise FireactError(f"no questions in {cfg.task}/{cfg.split} from {cfg.start} to {cfg.end} "
                           f"(it has {len(questions)})")
    return chosen


def check_settings(cfg: RunConfig) -> None:
    """What can be refused before anything runs or the store is opened."""
    if not cfg.run.strip():
        raise FireactError("a run needs a name")
    if cfg.backend == "local" and not cfg.local_model:
        raise FireactError("the local backend needs a model folder (--local-model DIR)")
    parse_perturb(cfg.perturb)
    remember(*cfg.secrets(), url_password(cfg.base_url))


def prepare_run(store: Store, cfg: RunConfig, by: str | None = None,
                questions: list[Question] | None = None) -> Plan:
    """Check the settings, pick the questions (unless given) and register (or take up) the run; nothing runs
    yet. `by` (default: the operating-system user) must be allowed to generate and is recorded as who started it."""
    from ..curation.team.roles import actor

    by = actor(store, by, "generate")
    check_settings(cfg)
    questions = select_questions(cfg) if questions is None else questions
    with store.session():
        _check_same_run(store, cfg)
        make_spec(store, cfg.task, cfg.method, cfg.mode, cfg.finetuned_format, cfg.prompt_version, cfg.prompts_dir)
        store.begin_run(cfg.run, task=cfg.task, split=cfg.split, method=cfg.method, model=_model_name(cfg),
                        settings=cfg.settings(), total=len(questions), pid=os.getpid(),
                        source_meta={"temperature": cfg.temperature, "search": cfg.search, "perturb": cfg.perturb,
                                     "mode": cfg.mode})
        store.record_owner("run", cfg.run, by)
        statuses = store.run_statuses(cfg.run)
    todo = [q for q in questions if statuses.get(stable_id(cfg.run, q.qid)) is None
            or (cfg.retry_failed and statuses[stable_id(cfg.run, q.qid)] == "failed")]
    return Plan(store=store, config=cfg, questions=questions, todo=todo)


def _model_name(cfg: RunConfig) -> str:
    if cfg.backend == "local":
        from pathlib import Path

        return cfg.model if cfg.model and cfg.model != RunConfig.model_fields["model"].default else \
            Path(cfg.local_model or "local").name + (f"+{Path(cfg.adapter).name}" if cfg.adapter else "")
    return cfg.model


def _check_same_run(store: Store, cfg: RunConfig) -> None:
    try:
        old = store.get_run(cfg.run)
    except FireactError:
        return
    if cfg.run in _ACTIVE or (old.status == "running" and old.pid != os.getpid()
                              and old.heartbeat and time.time() - old.heartbeat.timestamp() < 30):
        raise FireactError(f"run '{cfg.run}' is running now (process {old.pid}); wait for it, or stop it with "
                           f"`fireact cancel {cfg.run}` before taking it up again")
    for key in ("task", "split", "method"):
        if getattr(old, key) != getattr(cfg, key):
            raise FireactError(f"run '{cfg.run}' already exists with {key} '{getattr(old, key)}'; take it up with the same "
                               f"settings or choose another run name")


def _scrubbed(text: str, secrets: list[str]) -> str:
    for s in secrets:
        text = text.replace(s, "***")
    return text


class _Runner:
    """One run's shared state on its event loop.

    Given `opening` (`launch`: the store is not open yet), the run sends the first requests of its first
    window of questions at once and calls `opening()` (open the store, register the run) in a thread as soon as
    the first request is out; ended episodes wait in `unsaved` meanwhile and searches wait for the search cache.
    Once it is open, episodes of questions the run had already done are dropped and the rest go on as usual.
    With the default prompt version (the newest saved one, which lives in the database) the first window starts
    with the shipped version (`provisional`); once the store is open, if the stored version would send other
    requests, the episodes begun with the shipped one are dropped and started again with it (`restarted`), so
    every trajectory is what the stored version gives and records that version."""

    def __init__(self, plan: Plan, progress: Callable[[RunProgress], None] | None,
                 opening: Callable[[], Plan] | None = None):
        self.plan, self.cfg, self.store, self.progress = plan, plan.config, plan.store, progress
        self.opening = opening
        self.secrets = self.cfg.secrets()
        self.writer: Any = None
        self.saves: list[Future] = []
        self.unsaved: list[Trajectory] = []
        self.searched: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()
        self.cancelled = False
        self.dropped: set[str] = set()  # stable ids of early episodes whose question the run had done before
        self.restarted: set[str] = set()  # stable ids of early episodes begun with a prompt the run does not use
        self.early_ids: list[str] = []  # stable ids of the questions sent before the store is open
        self.started = time.monotonic()
        self.state = RunProgress(self.cfg.run, len(plan.questions), 0, 0, 0, 0.0, 0, 0.0, 0.0)
        self.ready = asyncio.Event()  # the store is open and the run registered
        self.early_spec, self.provisional = _spec_without_store(self.cfg) if opening is not None else (None, False)
        self.ctx = self._context()
        # the early episodes' own context when their prompt may yet change: the run's spec stays the stored one
        self.early_ctx = dataclasses.replace(self.ctx) if self.provisional else self.ctx
        if opening is None:
            self._on_open(self._attach(plan))
        else:
            self.ctx.toolbox.ready = self.ready

    async def _write(self, fn: Callable, *args: Any) -> Any:
        return await self.writer.call(fn, *args)

    def _context(self) -> EpisodeContext:
        """The episodes' context; the spec, prices and search cache from the store are filled in by `_on_open`
        (the spec is right from the start when it needs no store: `early_spec`)."""
        cfg = self.cfg
        options = {"model": cfg.model, "base_url": cfg.base_url, "timeout": cfg.timeout_s, "top_p": cfg.top_p,
                   "api_key": cfg.api_key.get_secret_value() if cfg.api_key else None}
        if cfg.backend == "local":
            options = {"model_dir": cfg.local_model, "adapter": cfg.adapter, "model": _model_name(cfg),
                       "batch_size": cfg.batch_size, "prompt_format": "chat" if cfg.finetuned_format == "chat"
                       and cfg.mode == "finetuned" else "text"}
        search = make_search(cfg.search, corpus=cfg.corpus,
                             api_key=cfg.serpapi_key.get_secret_value() if cfg.serpapi_key else None)
        self.search_backend = getattr(search, "cache_key", cfg.search)
        mode, p = parse_perturb(cfg.perturb)
        return EpisodeContext(
            config=cfg, task=get_task(cfg.task), backend=make_backend(cfg.backend, **options),
            limits=CallLimits(concurrency=cfg.concurrency, rpm=cfg.rpm, max_retries=cfg.max_retries,
                              backoff_s=cfg.backoff_s, max_concurrency=cfg.max_concurrency),
            toolbox=Toolbox(search, self._cache(), Perturber(mode, p, cfg.seed)),
            spec=self.early_spec or PromptSpec(method=cfg.method, task=cfg.task), prices=dict(DEFAULT_PRICES),
            model_name=_model_name(cfg),
        )

    def _cache(self) -> SearchCache:
        """New results wait in `searched` and are written with the next batch of trajectories (one transaction)."""

        def persist(query: str, result: str | None) -> None:
            with self.lock:
                self.searched.append((query, result))

        return SearchCache({}, persist)

    def _attach(self, plan: Plan) -> tuple[Run, PromptSpec, dict, dict]:
        """Take the opened store (any thread): the run's writer, and what the episodes read from the database."""
        from ..store.runs import SessionWriter

        store, cfg = plan.store, self.cfg
        self.plan, self.store = plan, store  # registered: from here a failure marks the run failed
        with store.session():
            run = store.get_run(cfg.run)
            spec = make_spec(store, cfg.task, cfg.method, cfg.mode, cfg.finetuned_format, cfg.prompt_version,
                             cfg.prompts_dir)
            prices, cached = price_table(store), store.cached_searches(self.search_backend)
        self.writer = SessionWriter(store)
        return run, spec, prices, cached

    def _on_open(self, attached: tuple[Run, PromptSpec, dict, dict]) -> None:
        """The store is open (on the event loop's thread, or before it starts): fill in the context, drop what
        the run had done before, hand what ended meanwhile to the writer."""
        run, spec, prices, cached = attached
        ctx = self.ctx
        ctx.spec = spec
        if self.provisional:
            self._settle_prompt(spec)
        ctx.prices.clear()
        ctx.prices.update(prices)
        ctx.toolbox.cache.entries.update(cached)
        todo = {stable_id(self.cfg.run, q.qid) for q in self.plan.todo}
        with self.lock:
            self.dropped = {stable_id(self.cfg.run, q.qid) for q in self.plan.questions} - todo
            self.unsaved = [t for t in self.unsaved if t.id in todo and t.id not in self.restarted]
            for traj in self.unsaved:  # ended before the saved price table was read
                traj.cost_usd = cost_usd(ctx.prices, ctx.model_name, traj.tokens_in or 0, traj.tokens_out or 0) \
                    if self.cfg.backend == "openai" else 0.0
            waiting = bool(self.unsaved)
        self._sync(run)
        self.ready.set()
        if waiting:
            self.saves.append(self.writer.submit(self._flush))

    def _settle_prompt(self, spec: PromptSpec) -> None:
        """The store is open: the early episodes go on when the stored prompt sends what the shipped one sent
        (then they record the stored version), else they are marked to start again with it."""
        early = self.early_ctx.spec
        if _same_requests(early, spec):
            self.early_ctx.spec = spec
            with self.lock:
                for traj in self.unsaved:  # ended meanwhile
                    traj.meta.update(prompt_version=spec.version, prompt_file=spec.source)
            return
        self.restarted = set(self.early_ids) & {stable_id(self.cfg.run, q.qid) for q in self.plan.todo}
        if self.restarted:
            self.saves.append(self.writer.submit(
                self.store.log_run_event, self.cfg.run, "prompt",
                f"prompt version {spec.version}: {len(self.restarted)} questions begun with the shipped version "
                f"{early.version} before the database was open started again with it"))

    async def _open(self, opening: Callable[[], Plan], early: dict[str, asyncio.Task]) -> None:
        """`launch`: once the first request is out (or could not go out), open the store in a thread."""
        sent = asyncio.Event()
        notify = getattr(self.ctx.backend, "notify_sent", None)
        if early and notify is not None:
            notify(sent.set)
            waiter = asyncio.create_task(sent.wait())
            await asyncio.wait([waiter, *early.values()], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
        try:
            plan = await asyncio.get_running_loop().run_in_executor(None, opening)
            attached = await asyncio.get_running_loop().run_in_executor(None, self._attach, plan)
        except BaseException:
            for task in early.values():
                task.cancel()
            await asyncio.gather(*early.values(), return_exceptions=True)
            await self.ctx.backend.aclose()
            raise
        self._on_open(attached)
        for key in early.keys() & (self.dropped | self.restarted):
            early[key].cancel()

    async def run(self) -> str:
        ctx = self.ctx
        # episodes in flight: enough that searches never leave a model slot idle, few enough to finish in order
        slots = self.cfg.concurrency or self.cfg.max_concurrency
        width = slots + max(4, slots // 2)
        tools = ThreadPoolExecutor(max(4, min(32, slots)), thread_name_prefix="fireact-tool")
        asyncio.get_running_loop().set_default_executor(tools)
        early: dict[str, asyncio.Task] = {}
        if self.opening is not None:
            if self.early_spec is not None and self.cfg.schedule == "free":  # sent before the store is open
                first = self.plan.questions[:self.cfg.concurrency or ctx.limits.start]
                self.early_ids = [stable_id(self.cfg.run, q.qid) for q in first]
                early = {key: asyncio.create_task(self._one(self.early_ctx, q)) for key, q in zip(self.early_ids, first)}
            await self._open(self.opening, early)
        self._started()
        pending: asyncio.Queue[Question] = asyncio.Queue()
        for q in self.plan.todo:  # questions started again come first, as they were sent first
            if stable_id(self.cfg.run, q.qid) not in early.keys() - self.restarted:
                pending.put_nowait(q)
        if self.cfg.schedule == "lockstep":
            workers = [asyncio.create_task(self._lockstep(ctx))]
        else:
            workers = [asyncio.create_task(self._work(ctx, pending)) for _ in range(min(pending.qsize(), width))]
        workers += early.values()
        watcher = asyncio.create_task(self._watch(workers))
        try:
            await asyncio.gather(*workers)
        except asyncio.CancelledError:
            if not self.cancelled:
                raise
        finally:
            watcher.cancel()
            await ctx.backend.aclose()
        limits = ctx.limits
        w = limits.window
        mode = f"adaptive from {limits.start}, reached {int(w.limit)}" if w.adaptive else f"fixed at {int(w.limit)}"
        self.writer.submit(self.store.log_run_event, self.cfg.run, "concurrency",
                           f"{limits.stats['calls']} model calls, {limits.stats['retries']} retried; concurrency "
                           f"{mode}, at most {w.peak} in flight, {w.backoffs} back-offs")
        self.saves.append(self.writer.submit(self._flush))  # what is still unsaved: searches of cancelled episodes
        for fut in self.saves:
            await asyncio.wrap_future(fut)
        return "cancelled" if self.cancelled else "finished"

    def _started(self) -> None:
        done_before = len(self.plan.questions) - len(self.plan.todo)
        message = f"{len(self.plan.todo)} questions to run" + (f", {done_before} already done" if done_before else "")
        self.saves.append(self.writer.submit(self.store.log_run_event, self.cfg.run, "start", message))
        # the first save's one-time costs (DuckDB's Arrow path loads pandas), paid once the first requests are out
        asyncio.get_running_loop().call_later(0.1, self.writer.submit, self.store.existing_ids,
                                              [stable_id(self.cfg.run, "")])

    async def _one(self, ctx: EpisodeContext, q: Question) -> None:
        try:
            traj = await make_episode(ctx, q).run()
        except asyncio.CancelledError:
            key = stable_id(self.cfg.run, q.qid)
            if ctx is self.early_ctx and key in self.dropped | self.restarted and not self.cancelled:
                return  # done before this run was taken up again, or started again with the run's prompt
            raise
        if traj.error:
            traj.error = _scrubbed(traj.error, self.secrets)
        with self.lock:
            if traj.id in self.dropped:
                return
            self.unsaved.append(traj)
            first = len(self.unsaved) == 1 and self.ready.is_set()
        if first:  # the writer saves whatever has ended by the time it gets to it
            self.saves.append(self.writer.submit(self._flush))

    async def _work(self, ctx: EpisodeContext, pending: asyncio.Queue) -> None:
        while not pending.empty():
            await self._one(ctx, pending.get_nowait())

    async def _lockstep(self, ctx: EpisodeContext) -> None:
        """FireAct's schedule, kept for comparison: each round of `concurrency` questions waits for its slowest."""
        todo = self.plan.todo
        n = self.cfg.concurrency or len(todo)
        for i in range(0, len(todo), n):
            await asyncio.gather(*(self._one(ctx, q) for q in todo[i:i + n]))

    def _flush(self) -> None:
        from ..io.lint import lint_trajectory

        with self.lock:
            batch, self.unsaved = self.unsaved, []
            searched, self.searched = self.searched, []
        self.store.cache_searches(self.search_backend, searched)
        lints = [x for t in batch for x in lint_trajectory(trajectory_data(t))]
        saved = set(self.store.save_run_trajectories(self.cfg.run, batch, lints))
        for traj in batch:
            if traj.id in saved and traj.status == "failed":
                self.store.log_run_event(self.cfg.run, "failed", f"question {traj.qid}: {traj.error}")
        self.state.new += len(saved)
        self._sync(self.store.get_run(self.cfg.run))
        if self.progress and saved:
            self.progress(self.state)

    def _sync(self, run: Run) -> None:
        s = self.state
        s.done, s.finished, s.failed, s.em_sum = run.attempted, run.finished, run.failed, run.em_sum
        s.tokens, s.cost_usd = run.tokens, run.cost_usd
        s.elapsed_s = time.monotonic() - self.started

    async def _watch(self, workers: list[asyncio.Task]) -> None:
        last_beat = time.monotonic()
        while True:
            await asyncio.sleep(self.cfg.poll_s)
            if await self._write(self.store.cancel_requested, self.cfg.run):
                self.cancelled = True
                for w in workers:
                    w.cancel()
                return
            if time.monotonic() - last_beat > 5:
                last_beat = time.monotonic()
                await self._write(self.store.heartbeat_run, self.cfg.run)


def _spec_without_store(cfg: RunConfig) -> tuple[PromptSpec | None, bool]:
    """(spec, provisional): the run's prompt when it can be read without the database (fine-tuned modes, a FireAct
    prompt folder, the shipped examples); for the default version (the newest saved one) the shipped examples,
    provisional until the store says which version is the newest; None for a saved version named by number."""
    if cfg.mode != "finetuned" and not cfg.prompts_dir and cfg.prompt_version not in (0, None):
        return None, False
    provisional = cfg.mode != "finetuned" and not cfg.prompts_dir and cfg.prompt_version is None
    return make_spec(None, cfg.task, cfg.method, cfg.mode, cfg.finetuned_format, cfg.prompt_version,
                     cfg.prompts_dir), provisional


def _same_requests(a: PromptSpec, b: PromptSpec) -> bool:
    """Whether two prompt specs send the same requests (they may differ in the version they record)."""
    return dataclasses.replace(a, version=None, source=None) == dataclasses.replace(b, version=None, source=None)


def _run_to_end(coro: Any) -> Any:
    """`asyncio.run`, also from a thread whose event loop is already running (a notebook, a sync
    Playwright session): then the run gets a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def execute(plan: Plan, progress: Callable[[RunProgress], None] | None = None,
            opening: Callable[[], Plan] | None = None,
            runner_class: type[_Runner] | None = None) -> Run:
    """Run a prepared plan to its end (or until cancelled); returns the run's row. With `opening` (see
    `launch`), `plan` holds the questions only and the run is registered once `opening()` has opened the store.
    `runner_class`: a runner of other episodes than the plan's questions from scratch (forks)."""
    name = plan.config.run
    runner = None
    if opening is None:
        _ACTIVE.add(name)
    try:
        runner = (_Runner(plan, progress, opening) if runner_class is None
                  else runner_class(plan, progress))
        status = _run_to_end(runner.run())
    except BaseException as exc:
        store = plan.store if runner is None else runner.store
        if store is None:  # the store never opened, or the run was refused: nothing was written
            raise
        message = _scrubbed(f"{type(exc).__name__}: {exc}", plan.config.secrets())
        if runner is not None and runner.writer is not None:
            runner.writer.close()
        interrupted = isinstance(exc, KeyboardInterrupt)
        with store.session():
            store.end_run(name, "interrupted" if interrupted else "failed", None if interrupted else message)
            store.log_run_event(name, "interrupted" if interrupted else "error", message)
        raise
    finally:
        _ACTIVE.discard(name)
    store = runner.store

    def close() -> Run:
        run = store.get_run(name)
        store.end_run(name, status)
        store.log_run_event(name, status, f"{run.attempted}/{run.total} questions done, {run.failed} "
                            f"failed, EM {run.em or 0:.3f}")
        _refresh_model_cards(store, name, _model_name(plan.config))
        return store.get_run(name)

    try:
        return runner.writer.submit(close).result()  # on the writer's open connection, if it still holds one
    finally:
        runner.writer.close()


def _refresh_model_cards(store: Store, name: str, model: str | None) -> None:
    """A run of a registered model adds its scores to that model's card; a card that cannot be written is
    noted in the run's events and leaves the run as it ended."""
    from ..training.model_card import refresh_cards_for_run

    try:
        refresh_cards_for_run(store, model)
    except (OSError, FireactError) as exc:
        store.log_run_event(name, "warning", f"model card not brought up to date: {exc}")


def run_generation(store: Store, cfg: RunConfig, progress: Callable[[RunProgress], None] | None = None,
                   by: str | None = None) -> Run:
    """Prepare and run in the foreground (the CLI)."""
    return execute(prepare_run(store, cfg, by), progress)


def launch(open_store: Callable[[], Any], cfg: RunConfig, progress: Callable[[RunProgress], None] | None = None,
           who: Callable[[Any], str | None] | None = None) -> Run:
    """Run in the foreground with the first requests out before the store is open (the CLI): the settings and
    questions are checked here, then the run's first window of questions is sent while another thread calls
    `open_store()` and registers the run (as `who(store)`). A run refused there (a store that cannot be opened,
    a run live in another process, a user not allowed to generate) raises with nothing written."""
    check_settings(cfg)
    questions = select_questions(cfg)

    def opening() -> Plan:
        store = open_store()
        plan = prepare_run(store, cfg, who(store) if who else None, questions)
        _ACTIVE.add(cfg.run)
        return plan

    # no store yet: `opening` opens it and hands back the whole Plan before anything reads it
    return execute(Plan(store=None, config=cfg, questions=questions, todo=questions),  # type: ignore[arg-type]
                   progress, opening)


def start_run(store: Store, cfg: RunConfig, by: str | None = None) -> str:
    """Prepare in the foreground (bad settings raise here), then run in a background thread; returns the name."""
    plan = prepare_run(store, cfg, by)
    _ACTIVE.add(cfg.run)

    def target() -> None:
        try:
            execute(plan)
        except BaseException:  # noqa: BLE001 - recorded in the run's row and events by execute
            pass

    threading.Thread(target=target, name=f"fireact-run-{cfg.run}", daemon=True).start()
    return cfg.run


def cancel_run(store: Store, name: str, by: str | None = None) -> bool:
    """Ask a running run to stop (the engine polls the flag); what ended stays, the rest can be taken up again.
    Returns False, asking nothing, when the run is not running."""
    from ..curation.team.roles import actor

    actor(store, by, "generate")
    if store.get_run(name).status != "running":
        return False
    store.request_cancel(name)
    return True


def default_tasks_dir() -> str:
    return os.environ.get("FIREACT_TASKS_DIR") or "tasks"


def default_run_name(task: str, split: str, method: str, model: str) -> str:
    """FireAct-like: task_split_method_model_timestamp (path characters in the model name replaced)."""
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime())
    safe = "".join(c if c.isalnum() or c in "-._" else "-" for c in model)[-40:]
    return f"{task}_{split}_{method}_{safe}_{stamp}"


def registered_models(store: Store) -> list[Any]:
    """Models the training jobs registered."""
    return list(store.list_models())


def model_settings(model: Any) -> dict[str, Any]:
    """RunConfig fields that evaluate a registered model: a LoRA adapter on its base, a full model folder, or a
    remote fine-tuned name; always in fine-tuned mode (no few-shot examples)."""
    kind, ref, base = getattr(model, "kind", ""), getattr(model, "path_or_id", ""), getattr(model, "base_model", "")
    if kind == "lora":
        return {"backend": "local", "local_model": base, "adapter": ref, "model": model.name, "mode": "finetuned"}
    if kind == "full":
        return {"backend": "local", "local_model": ref, "adapter": None, "model": model.name, "mode": "finetuned"}
    return {"backend": "openai", "model": ref, "mode": "finetuned"}


def run_view(store: Store, name: str, stale_s: float = 30.0) -> RunView:
    """A run's row plus what a progress display needs: fraction, ETA and whether a "running" run went quiet."""
    run = store.get_run(name)
    total, done = run.total, run.attempted
    now = time.time()
    beat = run.heartbeat.timestamp() if run.heartbeat else now
    started = run.started_at.timestamp() if run.started_at else now
    rate = done / max(1e-6, beat - started) if done else 0.0
    running = run.status == "running"
    return RunView(**dict(run), fraction=min(1.0, done / total) if total else 0.0,
                   stalled=running and now - beat > stale_s,
                   eta_s=(total - done) / rate if rate and running else None)
