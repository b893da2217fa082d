"""The mixer: a dataset by task x method ratio, chosen deterministically by seed from summary columns.

    spec = MixSpec.parse({"sources": [...], "task_ratio": {...}, "method_ratio": {...}, "size": 400, ...})
    plan = plan_mix(store, spec)           # per-cell asked vs got, shortfalls, token totals, the members
    version = save_mix(store, spec, "mix-a")

Ratios are normalised to sum to 1, never silently oversampled, and rejected when partly given (both
`task_ratio` and `method_ratio`, or a `cells` grid, or neither for the sources' natural proportions). A cell
with fewer trajectories than asked gives all it has and the mix is smaller (its shares renormalised over
what there is), unless `allow_upsample` repeats them; either way the plan says so. Selection, dedupe and the
train/validation split never load steps: they run over the trajectories' summary columns.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import FireactError
from ..io.lint import LINT_KINDS
from .pool import Pool, add_token_totals, funnel_labels, load_pool
from ..records import DatasetVersion, now
from ..curation.team.roles import actor

if TYPE_CHECKING:
    from ..store import Store

CELL_SEP = "/"
NAME_RE = re.compile(r"^[A-Za-z0-9][\w.\-]{0,99}$")


class MixSpecError(FireactError):
    """A mix spec that cannot be used: says which field and what to change."""


class MixFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    only_correct: bool = Field(False, description="keep trajectories whose answer is right (EM 1, else reward)")
    only_accepted: bool = Field(False, description="keep trajectories whose latest review is 'accepted'")
    exclude_rejected: bool = Field(False, description="drop trajectories whose latest review is 'rejected'")
    dedupe: bool = Field(True, description="one trajectory per question across the chosen sources")
    dedupe_keep: Literal["best", "latest"] = Field("best", description="which to keep: best-scored or latest revision")
    max_steps: int | None = Field(None, ge=1, description="drop trajectories with more steps")
    exclude_lints: list[str] = Field(default_factory=list, description="drop trajectories any of these lints flag; "
                                     "'eval_contamination' drops questions found in evaluation splits")
    keep_irregular: bool = Field(False, description="keep rows imported although they break a conversation's layout "
                                 "(lints role_order, no_question, empty_trajectory, consecutive_observation)")

    @field_validator("exclude_lints")
    @classmethod
    def _known_kinds(cls, kinds: list[str]) -> list[str]:
        unknown = [k for k in kinds if k not in LINT_KINDS]
        if unknown:
            raise ValueError(f"unknown lint kind(s) {', '.join(unknown)}: choose from {', '.join(LINT_KINDS)}")
        return sorted(set(kinds))


def _normalise(ratio: dict[str, float] | None, what: str) -> dict[str, float] | None:
    if ratio is None:
        return None
    for key, value in ratio.items():
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{what} '{key}' is {value}: shares must be finite and at least 0")
    total = sum(ratio.values())
    if total <= 0:
        raise ValueError(f"{what} shares add up to 0: give at least one a positive share")
    return {k.strip().lower(): v / total for k, v in sorted(ratio.items()) if v > 0}


class MixSpec(BaseModel):
    """What to mix; the JSON of `fireact mix --spec` and of every saved version."""

    model_config = ConfigDict(extra="forbid")

    sources: list[str] = Field(default_factory=list, description="source names; empty means every source")
    task_ratio: dict[str, float] | None = Field(None, description="share of each task (normalised)")
    method_ratio: dict[str, float] | None = Field(None, description="share of each method (normalised)")
    cells: dict[str, float] | None = Field(None, description="share of each 'task/method' cell, instead of the ratios")
    size: int = Field(ge=1, description="trajectories wanted in train + validation")
    val_fraction: float = Field(0.1, ge=0, lt=1, description="share of questions held out for validation")
    seed: int = Field(1, description="same spec and seed, same trajectories")
    filters: MixFilters = Field(default_factory=MixFilters)  # type: ignore[arg-type]  # pydantic types Field for its own mypy plugin
    loss_mask: Literal["observations", "none"] = Field(
        "observations", description="'observations': train on thoughts and actions only; 'none': on everything")
    allow_upsample: bool = Field(False, description="repeat a short cell's trajectories to reach its count")
    pairs: Literal["step", "trajectory"] | None = Field(
        None, description="make the version of preference pairs (step or trajectory level) among the chosen "
        "trajectories (their edits and forks) instead of trajectories; a question's trajectories all stay, so "
        "dedupe is off by default")

    @model_validator(mode="before")
    @classmethod
    def _pairs_keep_every_trajectory(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("pairs"):
            filters = data.get("filters")
            if filters is None or (isinstance(filters, dict) and "dedupe" not in filters):
                data = {**data, "filters": {**(filters or {}), "dedupe": False}}
        return data

    @model_validator(mode="after")
    def _check_ratios(self) -> "MixSpec":
        if self.pairs and self.filters.dedupe:
            raise ValueError("a version of pairs needs every trajectory of a question (the corrected one, the "
                             "continuations): set filters.dedupe to false")
        if self.cells is not None and (self.task_ratio is not None or self.method_ratio is not None):
            raise ValueError("give either a 'cells' grid or 'task_ratio' with 'method_ratio', not both")
        if (self.task_ratio is None) != (self.method_ratio is None):
            given, missing = ("task_ratio", "method_ratio") if self.task_ratio is not None else ("method_ratio", "task_ratio")
            raise ValueError(f"'{given}' is given but '{missing}' is not: give both (or a 'cells' grid, or neither "
                             "for the sources' natural proportions)")
        self.task_ratio = _normalise(self.task_ratio, "task_ratio")
        self.method_ratio = _normalise(self.method_ratio, "method_ratio")
        if self.cells is not None:
            bad = [k for k in self.cells if k.count(CELL_SEP) != 1]
            if bad:
                raise ValueError(f"cells keys must read 'task/method', not {', '.join(repr(k) for k in bad)}")
            self.cells = _normalise(self.cells, "cells")
        return self

    @classmethod
    def parse(cls, data: dict[str, Any] | str, where: str = "mix spec") -> "MixSpec":
        """Validate a spec (a dict or JSON text); every problem becomes a MixSpecError naming the field."""
        try:
            if isinstance(data, str):
                data = json.loads(data)
            return cls.model_validate(data)
        except json.JSONDecodeError as exc:
            raise MixSpecError(f"{where}: invalid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from exc
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"])
                problems.append(f"{loc + ': ' if loc else ''}{err['msg'].removeprefix('Value error, ')}")
            raise MixSpecError(f"{where}: " + "; ".join(problems)) from exc

    @classmethod
    def load(cls, path: str | Path) -> "MixSpec":
        p = Path(path)
        if not p.is_file():
            raise MixSpecError(f"{path}: no such spec file")
        return cls.parse(p.read_text(encoding="utf-8"), where=str(path))

    def shares(self, available: dict[str, int]) -> dict[str, float]:
        """Share of each "task/method" cell: the grid, the product of the two ratios, or the natural proportions."""
        if self.cells is not None:
            return dict(self.cells)
        if self.task_ratio is not None and self.method_ratio is not None:
            return {f"{t}{CELL_SEP}{m}": ts * ms for t, ts in self.task_ratio.items() for m, ms in self.method_ratio.items()}
        total = sum(available.values())
        return {c: n / total for c, n in sorted(available.items()) if n} if total else {}


@dataclass
class MixPlan:
    """What a spec gives on the current data: a row per cell (share, asked, available, got, short, train, val,
    tokens, trained_tokens), the members in order, the filter funnel, and messages saying what was short
    and what was done about it."""

    spec: MixSpec
    cells: pd.DataFrame
    members: pd.DataFrame
    funnel: dict[str, int]
    messages: list[str] = field(default_factory=list)
    token_label: str = ""

    @property
    def size(self) -> int:
        return len(self.members)

    def counts(self) -> dict[str, int]:
        return {c: int(n) for c, n in zip(self.cells["cell"], self.cells["got"])}


def apportion(size: int, shares: dict[str, float]) -> dict[str, int]:
    """Whole counts per cell adding up to `size`, each within 1 of size x share (largest remainders)."""
    exact = {c: size * s for c, s in shares.items()}
    counts = {c: math.floor(x) for c, x in exact.items()}
    left = size - sum(counts.values())
    for c in sorted(exact, key=lambda c: (-(exact[c] - counts[c]), c))[:left]:
        counts[c] += 1
    return counts


def select(pool: Pool, asked: dict[str, int], allow_upsample: bool) -> pd.DataFrame:
    """The first `asked[cell]` candidates of each cell in seed order (repeated when upsampling is allowed)."""
    rows: list[np.ndarray] = []
    copies: list[np.ndarray] = []
    for cell, n in asked.items():
        start, stop = pool.offsets.get(cell, (0, 0))
        have = stop - start
        take = np.arange(start, start + min(n, have))
        if allow_upsample and 0 < have < n:
            take = start + np.arange(n) % have
        rows.append(take)
        copies.append(np.arange(len(take)) // max(have, 1))
    index = np.concatenate(rows) if rows else np.array([], dtype=int)
    chosen = pool.frame.iloc[index].reset_index(drop=True)
    return chosen.assign(copy=np.concatenate(copies) if copies else np.array([], dtype=int))


def split_train_val(members: pd.DataFrame, val_fraction: float) -> pd.DataFrame:
    """Hold out whole questions (in the seed's order) until the validation share is reached, so no question is
    in both; members are ordered train first, each split in the seed's order."""
    target = round(val_fraction * len(members))
    codes, questions = pd.factorize(members["vkey"], sort=True)
    counts = np.bincount(codes, minlength=len(questions))
    held = np.zeros(len(questions), dtype=bool)
    if target:
        held[(np.cumsum(counts) - counts) < target] = True
    is_val = held[codes]
    index = np.lexsort((members["copy"].to_numpy(), members["rank"].to_numpy(), is_val))
    out = members.iloc[index].reset_index(drop=True)
    return out.assign(split=np.where(is_val[index], "val", "train"), position=np.arange(len(out)))


def _shortfall_messages(cells: pd.DataFrame, spec: MixSpec, got_total: int) -> list[str]:
    msgs = []
    for row in cells.itertuples():
        if row.available >= row.asked:
            continue
        if not row.available:
            msgs.append(f"{row.cell}: asked {row.asked}, but no trajectory of it passes the filters; the cell stays "
                        f"empty, so the mix has {got_total} instead of {spec.size} and the other cells' shares grow "
                        "in proportion (renormalised)")
        elif spec.allow_upsample:
            msgs.append(f"{row.cell}: asked {row.asked}, only {row.available} available after filters; upsampling is "
                        f"allowed, so its {row.available} trajectories are repeated to give {row.asked}")
        else:
            msgs.append(f"{row.cell}: asked {row.asked}, only {row.available} available after filters; took all "
                        f"{row.available}, so the mix has {got_total} instead of {spec.size} and the other cells' "
                        "shares grow in proportion (renormalised). Allow upsampling to repeat them instead.")
    return msgs


def _cells_table(shares: dict[str, float], asked: dict[str, int], pool: Pool, members: pd.DataFrame) -> pd.DataFrame:
    by_cell = Counter(zip(members["cell"].tolist(), members["split"].tolist()))
    rows = []
    for cell, share in shares.items():
        task, method = cell.split(CELL_SEP, 1)
        train, val = by_cell.get((cell, "train"), 0), by_cell.get((cell, "val"), 0)
        rows.append({"cell": cell, "share": float(share), "task": task, "method": method, "asked": asked[cell],
                     "available": pool.available.get(cell, 0), "train": train, "val": val, "got": train + val,
                     "short": max(asked[cell] - train - val, 0)})
    columns = ["cell", "share", "task", "method", "asked", "available", "train", "val", "got", "short"]
    return pd.DataFrame(rows, columns=columns)


def plan_mix(store: Store, spec: MixSpec, tokenizer_dir: str | Path | None = None, exact_tokens: bool = False) -> MixPlan:
    """Filter, dedupe, apportion and select over summary columns; then count tokens per cell (estimated from
    a sample of each cell, or over every member with `exact_tokens`)."""
    with store.session():
        return _plan(store, spec, tokenizer_dir, exact_tokens)


def _plan(store: Store, spec: MixSpec, tokenizer_dir: str | Path | None, exact_tokens: bool) -> MixPlan:
    pool, known = load_pool(store, spec.sources, spec.filters.model_dump(), spec.seed)
    missing = [s for s in spec.sources if s not in known]
    if missing:
        raise MixSpecError(f"no source named {', '.join(missing)}: choose from {', '.join(known) or '(none imported)'}")
    shares = spec.shares(pool.available)
    asked = apportion(spec.size, shares)
    chosen = select(pool, asked, spec.allow_upsample)
    members = split_train_val(chosen.assign(cell=chosen["task"] + CELL_SEP + chosen["method"]), spec.val_fraction)
    cells = _cells_table(shares, asked, pool, members)
    plan = MixPlan(spec=spec, cells=cells, members=members, funnel=funnel_labels(pool.removed, spec.filters),
                   messages=_shortfall_messages(cells, spec, len(members)))
    add_token_totals(store, plan, pool, tokenizer_dir, exact=exact_tokens)
    return plan


def save_mix(store: Store, spec: MixSpec, name: str, author: str | None = None, parent: str | None = None,
             note: str | None = None, tokenizer_dir: str | Path | None = None, exact_tokens: bool = False) -> DatasetVersion:
    """Plan `spec` and store the result as an immutable version named `name` (with per-cell token totals
    estimated as the preview does, or counted over every member with `exact_tokens`)."""
    author = actor(store, author, "mix")
    name = name.strip()
    if not NAME_RE.match(name):
        raise MixSpecError(f"dataset name {name!r}: use letters, digits, '.', '_' or '-' (at most 100, starting "
                           "with a letter or digit)")
    if parent is not None:
        store.get_dataset_version(parent)
    with store.session():
        plan = _plan(store, spec, tokenizer_dir, exact_tokens)
        return _save(store, plan, name, author, parent, note)


def _save(store: Store, plan: MixPlan, name: str, author: str | None, parent: str | None, note: str | None) -> DatasetVersion:
    spec = plan.spec
    if plan.size == 0:
        raise MixSpecError("the mix is empty: no trajectory passes the filters for the cells asked")
    m = plan.members
    cells = {r.cell: {"asked": int(r.asked), "got": int(r.got), "train": int(r.train), "val": int(r.val),
                      "tokens": int(r.tokens), "trained_tokens": int(r.trained_tokens)} for r in plan.cells.itertuples()}
    version = {"name": name, "spec": spec.model_dump(mode="json"), "seed": spec.seed, "created_at": now(),
               "created_by": author, "size": plan.size, "n_train": int((m["split"] == "train").sum()),
               "n_val": int((m["split"] == "val").sum()), "cells": cells, "parent": parent,
               "loss_mask": spec.loss_mask, "note": note}
    members = {"position": m["position"].tolist(), "trajectory_id": m["id"].tolist(), "rev": m["revision"].tolist(),
               "split": m["split"].tolist(), "task": m["task"].tolist(), "method": m["method"].tolist()}
    return store.save_dataset_version(version, members)


def saved_spec(store: Store, name: str) -> MixSpec:
    """The spec a saved version was made from (to mix again, or to start a child version from)."""
    return MixSpec.model_validate(store.get_dataset_version(name).spec)


def lineage(store: Store, name: str) -> list[str]:
    """The version, its parent, the parent's parent, ... (oldest last)."""
    chain: list[str] = []
    seen: set[str] = set()
    by_name = {v.name: v for v in store.list_dataset_versions()}
    step: str | None = name
    while step is not None and step in by_name and step not in seen:
        chain.append(step)
        seen.add(step)
        step = by_name[step].parent
    return chain
