"""Preference pairs: a better and a worse answer to the same context, for DPO and KTO.

Two trajectories that are related make pairs:

- **edits**: a trajectory as it was imported (revision 0) against its corrected state (its current revision);
- **forks**: a parent, as it stood when forked (its revision at the fork), against each continuation (child), and
  the children of one parent against each other.

Two levels:

- **step**: where two related trajectories part. The prompt is everything they share (system, few-shot turns,
  question, then the steps both took, observations included, as the SFT exports lay them out); chosen and rejected
  are the two different assistant turns that follow. An edit's chosen step is the corrected one; between a parent
  and a child, or two children, the chosen step is the one of the trajectory whose answer is right (and there is a
  pair only when one is right and the other is not).
- **trajectory**: the prompt is the context up to the question; chosen and rejected are the whole rest of two
  related trajectories, one right and one not (`store.answers`: EM 1, else reward; unscored counts as neither).

Rows are written in TRL's conversational form: DPO `{"prompt", "chosen", "rejected"}` (message lists), KTO
`{"prompt", "completion", "label"}` (one row for each side of a pair). Each row also says where it came from
(`level`, `origin`, `chosen_id`, `rejected_id`, `step`); TRL's trainers drop columns they do not read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..errors import FireactError
from ..files import write_file
from ..filters import TrajectoryFilter
from ..io.formats.fireact import chat_messages
from ..records import DatasetVersion, Trajectory
from ..store.answers import is_correct

if TYPE_CHECKING:
    from ..store import Store

Level = Literal["step", "trajectory"]
Origin = Literal["edit", "fork"]
LEVELS: tuple[str, ...] = ("step", "trajectory")
PAIR_FORMATS: tuple[str, ...] = ("dpo", "kto")


@dataclass(frozen=True)
class Side:
    """One trajectory of a pair, at one revision."""

    traj: Trajectory

    @property
    def right(self) -> bool | None:
        return is_correct(self.traj.em, self.traj.reward)

    @property
    def ref(self) -> str:
        return f"{self.traj.id}@{self.traj.revision}"


@dataclass(frozen=True)
class Pair:
    """A chosen and a rejected continuation of the same prompt (message lists)."""

    level: Level
    origin: Origin
    prompt: list[dict[str, str]]
    chosen: list[dict[str, str]]
    rejected: list[dict[str, str]]
    chosen_id: str
    rejected_id: str
    step: int | None = None  # step level: the 1-based step at which chosen and rejected part

    def provenance(self) -> dict[str, Any]:
        return {"level": self.level, "origin": self.origin, "chosen_id": self.chosen_id,
                "rejected_id": self.rejected_id, "step": self.step}

    def dpo_row(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected, **self.provenance()}

    def kto_rows(self) -> list[dict[str, Any]]:
        return [{"prompt": self.prompt, "completion": self.chosen, "label": True, **self.provenance()},
                {"prompt": self.prompt, "completion": self.rejected, "label": False, **self.provenance()}]

    def key(self) -> str:
        return json.dumps([self.level, self.prompt, self.chosen, self.rejected], sort_keys=True)


def _messages(t: Trajectory) -> list[dict[str, str]]:
    return [{"role": m["role"], "content": m["content"]} for m in chat_messages(t)]


def _first_assistant(messages: list[dict[str, str]]) -> int:
    return next((i for i, m in enumerate(messages) if m["role"] == "assistant"), len(messages))


def _step_of(messages: list[dict[str, str]], index: int) -> int:
    """The 1-based step of the assistant turn at `index`."""
    return sum(1 for m in messages[:index + 1] if m["role"] == "assistant")


def step_pair(chosen: Trajectory, rejected: Trajectory, origin: Origin) -> Pair | None:
    """Where the two part: the shared messages as the prompt, the two assistant turns that follow as chosen and
    rejected. None when they share no context, are the same, or part elsewhere than at an assistant turn."""
    a, b = _messages(chosen), _messages(rejected)
    start = _first_assistant(a)
    if start != _first_assistant(b) or a[:start] != b[:start]:
        return None
    k = start
    while k < len(a) and k < len(b) and a[k] == b[k]:
        k += 1
    if k >= len(a) or k >= len(b) or a[k]["role"] != "assistant" or b[k]["role"] != "assistant":
        return None
    return Pair(level="step", origin=origin, prompt=a[:k], chosen=[a[k]], rejected=[b[k]], chosen_id=chosen.id,
                rejected_id=rejected.id, step=_step_of(a, k))


def _by_correctness(one: Trajectory, other: Trajectory) -> tuple[Trajectory, Trajectory] | None:
    """(right, wrong) when one answer is right and the other wrong; None otherwise (unscored is neither)."""
    a, b = is_correct(one.em, one.reward), is_correct(other.em, other.reward)
    if a is True and b is False:
        return one, other
    if b is True and a is False:
        return other, one
    return None


def trajectory_pair(one: Trajectory, other: Trajectory, origin: Origin) -> Pair | None:
    """The right one as chosen, the wrong one as rejected, from the question on; None unless one is right and the
    other wrong and they answer the same prompt."""
    ordered = _by_correctness(one, other)
    if ordered is None:
        return None
    chosen, rejected = ordered
    a, b = _messages(chosen), _messages(rejected)
    start = _first_assistant(a)
    if start != _first_assistant(b) or a[:start] != b[:start] or a[start:] == b[start:]:
        return None
    return Pair(level="trajectory", origin=origin, prompt=a[:start], chosen=a[start:], rejected=b[start:],
                chosen_id=chosen.id, rejected_id=rejected.id)


def edit_pairs(imported: Trajectory, corrected: Trajectory, level: Level) -> list[Pair]:
    """The imported revision against the corrected one: at step level the correction is chosen."""
    if level == "step":
        pair = step_pair(corrected, imported, "edit")
    else:
        pair = trajectory_pair(corrected, imported, "edit")
    return [pair] if pair else []


def fork_pairs(parent: Trajectory, children: list[Trajectory], level: Level) -> list[Pair]:
    """A parent (as forked) and its children, every two of them: the right one chosen over one that is not."""
    out = []
    for one, other in combinations([parent, *children], 2):
        if level == "trajectory":
            pair = trajectory_pair(one, other, "fork")
        else:
            ordered = _by_correctness(one, other)
            pair = step_pair(*ordered, "fork") if ordered else None
        if pair:
            out.append(pair)
    return out


def pairs_among(store: Store, trajs: dict[str, Trajectory], level: Level, origins: Iterable[str] = ("edit", "fork"),
                imported: dict[str, Trajectory] | None = None) -> list[Pair]:
    """The pairs of `level` among `trajs` (id: the trajectory at the revision to use): each edited one against its
    imported revision, and every fork group whose children are in `trajs` (the parent as it stood when forked, from
    the history, which never changes). The same pair found twice is kept once."""
    if level not in LEVELS:
        raise FireactError(f"unknown pair level '{level}': choose step or trajectory")
    origins = set(origins)
    pairs: list[Pair] = []
    if "edit" in origins:
        if imported is None:
            imported = store.imported_revisions(sorted(i for i, t in trajs.items() if t.revision > 0))
        for traj_id in sorted(imported):
            if traj_id in trajs and trajs[traj_id].revision > 0:
                pairs += edit_pairs(imported[traj_id], trajs[traj_id], level)
    if "fork" in origins and trajs:
        groups: dict[tuple[str, int], list[str]] = {}
        for link in store.fork_links(sorted(trajs)):
            if link.child_id in trajs:
                groups.setdefault((link.parent_id, link.parent_revision), []).append(link.child_id)
        for (parent_id, revision), children in sorted(groups.items()):
            try:
                parent = store.revision_trajectory(parent_id, revision)
            except FireactError:
                continue
            pairs += fork_pairs(parent, [trajs[c] for c in children], level)
    seen: set[str] = set()
    unique = []
    for p in pairs:
        if p.key() not in seen:
            seen.add(p.key())
            unique.append(p)
    return unique


def build_pairs(store: Store, f: TrajectoryFilter | None = None, level: Level = "step",
                origins: Iterable[str] = ("edit", "fork")) -> list[Pair]:
    """Every pair of `level` among the trajectories the filter matches, as they are now: their edits, and the
    fork groups they are part of (as parent or child)."""
    if level not in LEVELS:
        raise FireactError(f"unknown pair level '{level}': choose step or trajectory")
    origins = set(origins)
    ids = store.filter_ids(f or TrajectoryFilter())
    if not ids:
        return []
    imported = store.imported_revisions(ids) if "edit" in origins else {}
    children: set[str] = set()
    parents = sorted({link.parent_id for link in store.fork_links(ids)}) if "fork" in origins else []
    if parents:  # every child of each parent the filter touches (as the parent, or through one of its children)
        children = {link.child_id for link in store.fork_links(parents) if link.parent_id in parents}
    wanted = sorted(set(imported) | children)
    trajs = {t.id: t for t in store.iter_trajectories(ids=wanted)} if wanted else {}
    return pairs_among(store, trajs, level, origins, imported)


def pair_level(version: DatasetVersion) -> Level:
    """The pair level of a dataset version made as pairs; a version of trajectories is refused."""
    level = version.pairs
    if level not in LEVELS:
        raise FireactError(f"dataset version '{version.name}' holds trajectories, not preference pairs: make a "
                           "version with pairs (step or trajectory) in the mix spec (the Mix page's Pairs choice)")
    return level  # type: ignore[return-value]


def dataset_pairs(store: Store, dataset: str, split: str | None = None) -> dict[str, list[Pair]]:
    """The pairs of a dataset version made as pairs, per split: built among each split's members as they were
    snapshotted (a question's trajectories are all in one split), so the version's pairs never change."""
    level = pair_level(store.get_dataset_version(dataset))
    members: dict[str, dict[str, Trajectory]] = {}
    for s, t in store.iter_dataset_trajectories(dataset, split):
        members.setdefault(s, {})[t.id] = t
    return {s: pairs_among(store, trajs, level) for s, trajs in members.items()}


def describe_pairs(store: Store, dataset: str) -> str:
    """How many pairs each split of a version of pairs holds, in words."""
    counts = {s: len(p) for s, p in dataset_pairs(store, dataset).items()}
    level = pair_level(store.get_dataset_version(dataset))
    return f"{sum(counts.values())} {level}-level pairs ({counts.get('train', 0)} train, {counts.get('val', 0)} val)"


def pair_rows(pairs: Iterable[Pair], fmt: str) -> Iterator[dict[str, Any]]:
    """DPO rows (one per pair) or KTO rows (two per pair: chosen labelled true, rejected false)."""
    if fmt not in PAIR_FORMATS:
        raise FireactError(f"unknown pair format '{fmt}': choose dpo or kto")
    for p in pairs:
        if fmt == "dpo":
            yield p.dpo_row()
        else:
            yield from p.kto_rows()


def write_pairs(pairs: Iterable[Pair], fmt: str, out: str | Path, force: bool = False) -> int:
    """Write the rows as JSONL through the project's safe writes; returns how many rows."""
    n = 0
    rows = list(pair_rows(pairs, fmt))
    with write_file(out, force=force) as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n
