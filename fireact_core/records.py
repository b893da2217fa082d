"""Typed records: a trajectory is an ordered list of steps, plus its score, its provenance and its history.

Every record carries a `schema_version`; `migrate` brings an older dict up to date before validation, so
native files written by earlier versions still load.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, cast, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator
from typing_extensions import Required, TypedDict

SCHEMA_VERSION = 1

AgentMethod = Literal["io", "cot", "react", "reflexion"]
METHODS: tuple[AgentMethod, ...] = get_args(AgentMethod)  # the agent methods, simplest first: every list of them
Method = Literal[AgentMethod, "unknown"]  # a stored trajectory's method ("unknown" when nothing tells it)
Status = Literal["finished", "unfinished", "failed"]
ReviewStatus = Literal["accepted", "rejected"]
SEARCH, FINISH = "search", "finish"  # the tools every task has
KNOWN_TOOLS = (SEARCH, FINISH)


def now() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    return uuid.uuid4().hex[:16]


def stable_id(*parts: object) -> str:
    """An id derived from content, so importing the same file twice finds the same trajectories."""
    digest = hashlib.blake2b("\x1f".join(str(p) for p in parts).encode(), digest_size=8)
    return digest.hexdigest()


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False)


class Action(Record):
    """`name[arg]` as the model wrote it. `raw` is the text after `Action: `; name/arg are None when it did not parse."""

    raw: str
    name: str | None = None
    arg: str | None = None


class StepFlags(Record):
    train: bool = True
    perturbed: str | None = None  # "none" or "random" when the observation was replaced
    original_observation: str | None = None
    parse_error: str | None = None


class Step(Record):
    """One Thought / Action / Observation step.

    `raw` holds the model turn verbatim when the fields would not render back to it (or did not parse);
    `obs_raw` does the same for the observation turn. Editing a field clears the verbatim copy.
    """

    thought: str | None = None
    action: Action | None = None
    observation: str | None = None
    raw: str | None = None
    obs_raw: str | None = None
    flags: StepFlags = Field(default_factory=StepFlags)


class Message(Record):
    role: str
    content: str


class Trajectory(Record):
    schema_version: int = SCHEMA_VERSION
    id: str = Field(default_factory=new_id)
    source: str
    task: str = "unknown"
    split: str | None = None
    qid: str | None = None
    question: str
    gold: str | None = None
    method: Method = "unknown"
    model: str | None = None
    steps: list[Step] = Field(default_factory=list)
    final_answer: str | None = None
    reward: bool | None = None
    em: float | None = None
    f1: float | None = None
    status: Status = "finished"
    error: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    latency_s: float | None = None
    cost_usd: float | None = None
    prompt: list[Message] | None = None
    meta: dict[str, Any] = Field(default_factory=dict)
    revision: int = 0
    created_at: datetime = Field(default_factory=now)
    updated_at: datetime | None = None
    updated_by: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _migrate(cls, data: Any) -> Any:
        return migrate(data) if isinstance(data, dict) else data

    def content_dict(self) -> dict[str, Any]:
        """What an edit can change: everything but identity and bookkeeping."""
        skip = {"id", "revision", "created_at", "updated_at", "updated_by", "schema_version"}
        return self.model_dump(mode="json", exclude=skip)


# ---- a trajectory as plain data: what readers yield, lints check and the store writes (speed needs dicts there).
# The same fields as the models, checked the same way by pydantic (`io.formats.common.checked_trajectory`) without
# making model instances. `trajectory_of` and `trajectory_data` are the one place either becomes the other.

FORBID = ConfigDict(extra="forbid")


class ActionData(TypedDict, total=False):
    __pydantic_config__ = FORBID  # type: ignore[misc]
    raw: Required[str]
    name: str | None
    arg: str | None


class FlagsData(TypedDict, total=False):
    __pydantic_config__ = FORBID  # type: ignore[misc]
    train: bool
    perturbed: str | None
    original_observation: str | None
    parse_error: str | None


class StepData(TypedDict, total=False):
    """A step as data; an absent key reads as the `Step` default."""

    __pydantic_config__ = FORBID  # type: ignore[misc]
    thought: str | None
    action: ActionData | None
    observation: str | None
    raw: str | None
    obs_raw: str | None
    flags: FlagsData


class MessageData(TypedDict):
    __pydantic_config__ = FORBID  # type: ignore[misc]
    role: str
    content: str


class TrajectoryData(TypedDict, total=False):
    """`Trajectory`'s fields as data. Readers give every field (`io.formats.common.trajectory_record`)."""

    __pydantic_config__ = FORBID  # type: ignore[misc]
    schema_version: int
    id: str
    source: Required[str]
    task: str
    split: str | None
    qid: str | None
    question: Required[str]
    gold: str | None
    method: Method
    model: str | None
    steps: list[StepData]
    final_answer: str | None
    reward: bool | None
    em: float | None
    f1: float | None
    status: Status
    error: str | None
    tokens_in: int | None
    tokens_out: int | None
    latency_s: float | None
    cost_usd: float | None
    prompt: list[MessageData] | None
    meta: dict[str, Any]
    revision: int
    created_at: datetime
    updated_at: datetime | None
    updated_by: str | None


def trajectory_of(data: TrajectoryData) -> Trajectory:
    """A trajectory read as data, as a `Trajectory`."""
    return Trajectory.model_validate(data)


def trajectory_data(t: Trajectory) -> TrajectoryData:
    """A `Trajectory` as data (every field and every step key present), for the code that works on data."""
    return cast(TrajectoryData, t.model_dump())


class Summary(Record):
    """What list views load: no steps."""

    id: str
    source: str
    task: str
    method: str
    model: str | None
    question: str
    gold: str | None
    final_answer: str | None
    em: float | None
    f1: float | None
    n_steps: int
    status: str
    review: str | None = None
    lints: list[str] = Field(default_factory=list)


class Position(Record):
    """Where a trajectory stands in a filter's order: its 1-based position (None when the filter leaves it out)
    and how many trajectories the filter holds."""

    position: int | None = None
    total: int = 0


class Neighbours(Position):
    """A trajectory's `Position` and the ids before and after it in the filter's order."""

    prev: str | None = None
    next: str | None = None


class ComparePair(Record):
    """One question of two runs, paired by normalised question: each run's trajectory (None when the run did not
    ask it), answer and rightness (None when unscored), and the cell of the contingency table it falls in."""

    qnorm: str
    cell: str
    question: str
    gold: str | None = None
    id_a: str | None = None
    id_b: str | None = None
    answer_a: str | None = None
    answer_b: str | None = None
    ok_a: bool | None = None
    ok_b: bool | None = None
    pos_a: int | None = None
    pos_b: int | None = None


class Revision(Record):
    """A saved state of a trajectory. Revision 0 is the state it was imported or generated in."""

    trajectory_id: str
    rev: int
    author: str
    at: datetime = Field(default_factory=now)
    reason: str | None = None
    data: dict[str, Any]


class Annotation(Record):
    """One annotation event; the latest per trajectory is its current review state."""

    trajectory_id: str
    seq: int = 0
    author: str
    at: datetime = Field(default_factory=now)
    status: ReviewStatus | None = None
    labels: list[str] = Field(default_factory=list)
    rating: int | None = Field(default=None, ge=1, le=5)
    comment: str | None = None


class User(Record):
    """Someone who may act on a shared database, with a role (`viewer`, `annotator`, `admin`)."""

    name: str
    role: str
    created_at: datetime
    created_by: str | None = None


class Adjudication(Record):
    """An admin's final decision on a trajectory annotators disagreed on (`seq`: the annotation event it wrote)."""

    trajectory_id: str
    status: ReviewStatus | None = None
    labels: list[str] = Field(default_factory=list)
    decided_by: str
    decided_at: datetime
    seq: int
    note: str | None = None


class Decision(Record):
    """An assigned annotator's current decision on a trajectory: the status and labels of their latest review event
    there (what agreement is measured on)."""

    trajectory_id: str
    author: str
    status: ReviewStatus | None = None
    labels: list[str] = Field(default_factory=list)


class AssignmentProgress(Record):
    """One annotator's work within a filter: trajectories assigned to them, how many of those they decided
    (accepted or rejected), and how many they reviewed in all (assigned or not)."""

    annotator: str
    assigned: int
    done: int
    reviewed: int

    @property
    def share_done(self) -> float | None:
        """The share of their assignment they decided; None when nothing is assigned to them."""
        return round(self.done / self.assigned, 4) if self.assigned else None


class Lint(Record):
    trajectory_id: str
    kind: str
    step: int | None = None
    detail: str = ""


class Stats(Record):
    """What the database holds: trajectories in all, and per source, task and method (largest first)."""

    trajectories: int = 0
    by_source: dict[str, int] = Field(default_factory=dict)
    by_task: dict[str, int] = Field(default_factory=dict)
    by_method: dict[str, int] = Field(default_factory=dict)


class Source(Record):
    """A named collection of trajectories: an imported file or a generation run."""

    name: str
    kind: Literal["import", "run"] = "import"
    format: str | None = None
    path: str | None = None
    task: str | None = None
    split: str | None = None
    model: str | None = None
    method: str | None = None
    attempted: int | None = None
    created_at: datetime = Field(default_factory=now)
    meta: dict[str, Any] = Field(default_factory=dict)


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Bring a trajectory dict of any earlier schema version to the current one."""
    version = data.get("schema_version", SCHEMA_VERSION)
    if version > SCHEMA_VERSION:
        raise ValueError(f"schema_version {version} is newer than this FireAct Studio understands ({SCHEMA_VERSION})")
    return data


def final_answer_of(actions: list[tuple[str | None, str | None]]) -> str | None:
    """The argument of the last `finish` action, of the steps' (name, argument) pairs in order (of models or of
    data alike)."""
    for name, arg in reversed(actions):
        if name == FINISH:
            return arg
    return None


class Run(Record):
    """A generation run: its settings, its state (`running`, `finished`, `cancelled`, `failed`, or `interrupted`:
    its process is gone) and its counters, recounted from its stored trajectories. `em` and `f1` are over the
    questions it planned (None while none is scored); `attempted` counts trajectories, `total` questions."""

    name: str
    task: str
    split: str | None = None
    method: str
    model: str
    settings: dict[str, Any] = Field(default_factory=dict)
    status: str
    total: int = 0
    attempted: int = 0
    finished: int = 0
    unfinished: int = 0
    failed: int = 0
    em_sum: float = 0.0
    f1_sum: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    cancel: bool = False
    error: str | None = None
    pid: int | None = None
    started_at: datetime | None = None
    heartbeat: datetime | None = None
    ended_at: datetime | None = None
    em: float | None = None
    f1: float | None = None

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out


class RunView(Run):
    """A run as a progress display shows it: how far it is, whether a "running" run went quiet, when it ends."""

    fraction: float = 0.0
    stalled: bool = False
    eta_s: float | None = None


class RunEvent(Record):
    """One line of a run's log (its start, a failed question, a change of concurrency, its end)."""

    seq: int
    at: datetime
    kind: str
    message: str


class PromptVersion(Record):
    """A task's few-shot examples for a method, as a run uses them: version 0 is the shipped set, the others were
    saved by someone. layout "studio": a list of examples; "fireact": one FireAct prompt file's text (from
    `source`) as the only example, sent exactly as it is."""

    version: int
    examples: list[str]
    layout: Literal["studio", "fireact"] = "studio"
    source: str | None = None
    author: str | None = None
    note: str | None = None
    at: datetime | None = None


class ForkLink(Record):
    """A trajectory made by continuing another one: steps 1..`fork_step` of the parent's revision
    `parent_revision` were kept, the rest was generated (`continue`) or generated and kept because it scored
    right (`repair`)."""

    child_id: str
    parent_id: str
    parent_revision: int
    fork_step: int
    run: str | None = None
    kind: Literal["continue", "repair"] = "continue"
    created_at: datetime = Field(default_factory=now)


# ---- mixing: a saved dataset version

class DatasetVersion(Record):
    """A saved mix: immutable; its members are snapshots of the trajectories as they were when it was saved.
    `spec` is the mix spec as saved (the JSON of `mixing.versions.MixSpec`), `cells` per "task/method" cell the
    counts asked and got, train and validation, and the token totals; `content_hash` covers the loss mask, the
    pair level of a version of pairs, and each member's position, split, id and revision."""

    name: str
    spec: dict[str, Any]
    seed: int
    created_at: datetime
    created_by: str | None = None
    content_hash: str
    size: int
    n_train: int
    n_val: int
    cells: dict[str, dict[str, Any]]
    parent: str | None = None
    loss_mask: str
    note: str | None = None

    @property
    def pairs(self) -> str | None:
        """The pair level ("step" or "trajectory") of a version of preference pairs; None for trajectories."""
        return self.spec.get("pairs")

    def summary(self) -> dict[str, Any]:
        """The row `fireact datasets --json` prints."""
        return {"name": self.name, "size": self.size, "train": self.n_train, "val": self.n_val,
                "cells": {c: v["got"] for c, v in self.cells.items()}, "hash": self.content_hash,
                "created_at": self.created_at.isoformat()}


# ---- training: a job and the model it produced

JobKind = Literal["lora", "full", "openai"]
JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINAL_STATUSES = ("succeeded", "failed", "cancelled")


class TrainJob(BaseModel):
    """One training run: local (LoRA or full, a process on this machine) or remote (an OpenAI job)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=new_id)
    kind: JobKind
    status: JobStatus = "queued"
    dataset: str
    base_model: str
    out: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    steps: int = 0
    loss_first: float | None = None
    loss_last: float | None = None
    error: str | None = None
    pid: int | None = None
    remote_id: str | None = None
    created_at: datetime = Field(default_factory=now)
    updated_at: datetime = Field(default_factory=now)

    @property
    def finished(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def folder(self) -> Path:
        """The job's run folder (`out`), which every started job has."""
        if self.out is None:
            raise ValueError(f"job {self.id} has no run folder: it was never started")
        return Path(self.out)

    def summary(self) -> dict[str, Any]:
        """What `fireact jobs --json` prints."""
        return self.model_dump(mode="json", include={"id", "kind", "status", "dataset", "base_model", "out", "steps",
                                                      "loss_first", "loss_last", "error"})


class RegisteredModel(BaseModel):
    """A model a job produced: a LoRA adapter folder, a full model folder, or a remote fine-tuned model name."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: JobKind
    path_or_id: str
    base_model: str
    dataset: str | None = None
    job: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=now)

    def summary(self) -> dict[str, Any]:
        """What `fireact models --json` prints."""
        return self.model_dump(mode="json", include={"name", "kind", "path_or_id", "base_model", "dataset", "job"})
