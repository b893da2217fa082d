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
import os
import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from .episode import EpisodeContext, make_episode
from .errors import FireactError
from .lint import lint_trajectory
from .models import make_backend
from .models.limits import CallLimits
from .models.pricing import price_table
from .prompts import make_spec
from .records import AgentMethod, stable_id
from .redact import remember, url_password
from .store.runs import SessionWriter
from .tasks import Question, get_task
from .team.roles import actor
from .tools import SearchCache, Toolbox, make_search
from .tools.perturb import Perturber, parse_perturb

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
    search: Literal["serpapi", "local", "none"] = "serpapi"
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
    store: Any
    config: RunConfig
    questions: list[Question]
    todo: list[Question]


def select_questions(cfg: RunConfig) -> list[Question]:
    task = get_task(cfg.task)
    if task.name == "custom":
        if not cfg.questions_path:
            raise FireactError("the custom task needs a questions file (CSV or JSONL with question and answer)")
        questions = task.load(None, cfg.split or "custom", path=cfg.questions_path)
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


def prepare_run(store: Any, cfg: RunConfig, by: str | None = None) -> Plan:
    """Check the settings, pick the questions and register (or take up) the run; nothing runs yet.
    `by` (default: the operating-system user) must be allowed to generate and is recorded as who started it."""
    by = actor(store, by, "generate")
    if not cfg.run.strip():
        raise FireactError("a run needs a name")
    if cfg.backend == "local" and not cfg.local_model:
        raise FireactError("the local backend needs a model folder (--local-model DIR)")
    parse_perturb(cfg.perturb)
    remember(*cfg.secrets(), url_password(cfg.base_url))
    questions = select_questions(cfg)
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


def _check_same_run(store: Any, cfg: RunConfig) -> None:
    try:
        old = store.get_run(cfg.run)
    except FireactError:
        return
    if cfg.run in _ACTIVE or (old["status"] == "running" and old["pid"] != os.getpid()
                              and old["heartbeat"] and time.time() - old["heartbeat"].timestamp() < 30):
        raise FireactError(f"run '{cfg.run}' is running now (process {old['pid']}); wait for it, or stop it with "
                           f"`fireact cancel {cfg.run}` before taking it up again")
    for key in ("task", "split", "method"):
        if old[key] != getattr(cfg, key):
            raise FireactError(f"run '{cfg.run}' already exists with {key} '{old[key]}'; take it up with the same "
                               f"settings or choose another run name")


def _scrubbed(text: str, secrets: list[str]) -> str:
    for s in secrets:
        text = text.replace(s, "***")
    return text


class _Runner:
    """One run's shared state on its event loop."""

    def __init__(self, plan: Plan, progress: Callable[[RunProgress], None] | None):
        self.plan, self.cfg, self.store, self.progress = plan, plan.config, plan.store, progress
        self.secrets = self.cfg.secrets()
        self.writer = SessionWriter(self.store)
        self.saves: list[Future] = []
        self.unsaved: list[Any] = []
        self.searched: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()
        self.cancelled = False
        self.started = time.monotonic()
        with self.store.session():
            run = self.store.get_run(self.cfg.run)
            self.ctx = self._context()
        self.state = RunProgress(self.cfg.run, len(plan.questions), 0, 0, 0, 0.0, 0, 0.0, 0.0)
        self._sync(run)

    async def _write(self, fn: Callable, *args: Any) -> Any:
        return await self.writer.call(fn, *args)

    def _context(self) -> EpisodeContext:
        cfg = self.cfg
        options = {"model": cfg.model, "base_url": cfg.base_url, "timeout": cfg.timeout_s, "top_p": cfg.top_p,
                   "api_key": cfg.api_key.get_secret_value() if cfg.api_key else None}
        if cfg.backend == "local":
            options = {"model_dir": cfg.local_model, "adapter": cfg.adapter, "model": _model_name(cfg),
                       "batch_size": cfg.batch_size, "prompt_format": "chat" if cfg.finetuned_format == "chat"
                       and cfg.mode == "finetuned" else "text"}
        search = make_search(cfg.search, corpus=cfg.corpus,
                             api_key=cfg.serpapi_key.get_secret_value() if cfg.serpapi_key else None)
        mode, p = parse_perturb(cfg.perturb)
        return EpisodeContext(
            config=cfg, task=get_task(cfg.task), backend=make_backend(cfg.backend, **options),
            limits=CallLimits(concurrency=cfg.concurrency, rpm=cfg.rpm, max_retries=cfg.max_retries,
                              backoff_s=cfg.backoff_s, max_concurrency=cfg.max_concurrency),
            toolbox=Toolbox(search, self._cache(getattr(search, "cache_key", cfg.search)),
                            Perturber(mode, p, cfg.seed)),
            spec=make_spec(self.store, cfg.task, cfg.method, cfg.mode, cfg.finetuned_format, cfg.prompt_version,
                           cfg.prompts_dir),
            prices=price_table(self.store), model_name=_model_name(cfg),
        )

    def _cache(self, backend: str) -> SearchCache:
        """New results wait in `searched` and are written with the next batch of trajectories (one transaction)."""
        self.search_backend = backend

        def persist(query: str, result: str | None) -> None:
            with self.lock:
                self.searched.append((query, result))

        return SearchCache(self.store.cached_searches(backend), persist)

    async def run(self) -> str:
        ctx = self.ctx
        # episodes in flight: enough that searches never leave a model slot idle, few enough to finish in order
        slots = self.cfg.concurrency or self.cfg.max_concurrency
        width = slots + max(4, slots // 2)
        tools = ThreadPoolExecutor(max(4, min(32, slots)), thread_name_prefix="fireact-tool")
        asyncio.get_running_loop().set_default_executor(tools)
        done_before = len(self.plan.questions) - len(self.plan.todo)
        message = f"{len(self.plan.todo)} questions to run" + (f", {done_before} already done" if done_before else "")
        self.saves.append(self.writer.submit(self.store.log_run_event, self.cfg.run, "start", message))
        # the first save's one-time costs (DuckDB's Arrow path loads pandas), paid once the first requests are out
        asyncio.get_running_loop().call_later(0.1, self.writer.submit, self.store.existing_ids,
                                              [stable_id(self.cfg.run, "")])
        pending: asyncio.Queue[Question] = asyncio.Queue()
        for q in self.plan.todo:
            pending.put_nowait(q)
        if self.cfg.schedule == "lockstep":
            workers = [asyncio.create_task(self._lockstep(ctx))]
        else:
            workers = [asyncio.create_task(self._work(ctx, pending)) for _ in range(min(len(self.plan.todo), width))]
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

    async def _one(self, ctx: EpisodeContext, q: Question) -> None:
        traj = await make_episode(ctx, q).run()
        if traj.error:
            traj.error = _scrubbed(traj.error, self.secrets)
        with self.lock:
            self.unsaved.append(traj)
            first = len(self.unsaved) == 1
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
        with self.lock:
            batch, self.unsaved = self.unsaved, []
            searched, self.searched = self.searched, []
        self.store.cache_searches(self.search_backend, searched)
        saved = set(self.store.save_run_trajectories(self.cfg.run, batch, [x for t in batch for x in lint_trajectory(t)]))
        for traj in batch:
            if traj.id in saved and traj.status == "failed":
                self.store.log_run_event(self.cfg.run, "failed", f"question {traj.qid}: {traj.error}")
        self.state.new += len(saved)
        self._sync(self.store.get_run(self.cfg.run))
        if self.progress and saved:
            self.progress(self.state)

    def _sync(self, run: dict) -> None:
        s = self.state
        s.done, s.finished, s.failed, s.em_sum = run["attempted"], run["finished"], run["failed"], run["em_sum"]
        s.tokens, s.cost_usd = run["tokens_in"] + run["tokens_out"], run["cost_usd"]
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


def _run_to_end(coro: Any) -> Any:
    """`asyncio.run`, also from a thread whose event loop is already running (a notebook, a sync
    Playwright session): then the run gets a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def execute(plan: Plan, progress: Callable[[RunProgress], None] | None = None) -> dict[str, Any]:
    """Run a prepared plan to its end (or until cancelled); returns the run's row."""
    store, name = plan.store, plan.config.run
    runner = None
    _ACTIVE.add(name)
    try:
        runner = _Runner(plan, progress)
        status = _run_to_end(runner.run())
    except BaseException as exc:
        message = _scrubbed(f"{type(exc).__name__}: {exc}", plan.config.secrets())
        if runner is not None:
            runner.writer.close()
        interrupted = isinstance(exc, KeyboardInterrupt)
        with store.session():
            store.end_run(name, "interrupted" if interrupted else "failed", None if interrupted else message)
            store.log_run_event(name, "interrupted" if interrupted else "error", message)
        raise
    finally:
        _ACTIVE.discard(name)
    def close() -> dict[str, Any]:
        run = store.get_run(name)
        store.end_run(name, status)
        store.log_run_event(name, status, f"{run['attempted']}/{run['total']} questions done, {run['failed']} "
                            f"failed, EM {run['em'] or 0:.3f}")
        _refresh_model_cards(store, name, _model_name(plan.config))
        return store.get_run(name)

    try:
        return runner.writer.submit(close).result()  # on the writer's open connection, if it still holds one
    finally:
        runner.writer.close()


def _refresh_model_cards(store: Any, name: str, model: str | None) -> None:
    """A run of a registered model adds its scores to that model's card; a card that cannot be written is
    noted in the run's events and leaves the run as it ended."""
    from .training.model_card import refresh_cards_for_run

    try:
        refresh_cards_for_run(store, model)
    except (OSError, FireactError) as exc:
        store.log_run_event(name, "warning", f"model card not brought up to date: {exc}")


def run_generation(store: Any, cfg: RunConfig, progress: Callable[[RunProgress], None] | None = None,
                   by: str | None = None) -> dict:
    """Prepare and run in the foreground (the CLI)."""
    return execute(prepare_run(store, cfg, by), progress)


def start_run(store: Any, cfg: RunConfig, by: str | None = None) -> str:
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


def cancel_run(store: Any, name: str, by: str | None = None) -> bool:
    """Ask a running run to stop (the engine polls the flag); what ended stays, the rest can be taken up again.
    Returns False, asking nothing, when the run is not running."""
    actor(store, by, "generate")
    if store.get_run(name)["status"] != "running":
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


def registered_models(store: Any) -> list[Any]:
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


def run_view(store: Any, name: str, stale_s: float = 30.0) -> dict[str, Any]:
    """A run's row plus what a progress display needs: fraction, ETA and whether a "running" run went quiet."""
    run = store.get_run(name)
    total, done = run["total"] or 0, run["attempted"] or 0
    now = time.time()
    beat = run["heartbeat"].timestamp() if run["heartbeat"] else now
    started = run["started_at"].timestamp() if run["started_at"] else now
    run["fraction"] = min(1.0, done / total) if total else 0.0
    run["stalled"] = run["status"] == "running" and now - beat > stale_s
    rate = done / max(1e-6, beat - started) if done else 0.0
    run["eta_s"] = (total - done) / rate if rate and run["status"] == "running" else None
    run["tokens"] = (run["tokens_in"] or 0) + (run["tokens_out"] or 0)
    return run
