"""Splitting review work among annotators: each trajectory of a filter gets K of them, balanced, and each
annotator's review queue serves their own assignment first."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, Iterable

from ...errors import FireactError
from ...filters import TrajectoryFilter
from .roles import allowed, require

if TYPE_CHECKING:
    from ...store import Store


def parse_names(text: str | Iterable[str]) -> list[str]:
    """Names from "a,b,c" (or a list of such), stripped, without repeats, in order."""
    parts = text.split(",") if isinstance(text, str) else [p for t in text for p in str(t).split(",")]
    return list(dict.fromkeys(p.strip() for p in parts if p.strip()))


def plan_assignment(ids: list[str], annotators: list[str], overlap: int, existing: dict[str, list[str]],
                    load: dict[str, int]) -> list[tuple[str, str]]:
    """(trajectory, annotator) pairs so that each of `ids` has `overlap` of `annotators`: those it already has
    count, and each missing place goes to the annotator with the fewest assignments so far (ties in the order
    given). Pure: the caller reads `existing` and `load` from the store."""
    load = {a: load.get(a, 0) for a in annotators}
    rank = {a: i for i, a in enumerate(annotators)}
    pairs: list[tuple[str, str]] = []
    for tid in ids:
        have = {a for a in existing.get(tid, []) if a in load}
        free = sorted((a for a in annotators if a not in have), key=lambda a: (load[a], rank[a]))
        for name in free[:max(0, overlap - len(have))]:
            pairs.append((tid, name))
            load[name] += 1
    return pairs


def assign(store: Store, who: str, ids: list[str], annotators: list[str], overlap: int = 1) -> dict[str, Any]:
    """Assign each of `ids` to `overlap` of `annotators` (admins only); returns what was added."""
    require(store, who, "assign")
    annotators = parse_names(annotators)
    if not annotators:
        raise FireactError("name at least one annotator to assign to (--to a,b,c)")
    if not 1 <= overlap <= len(annotators):
        raise FireactError(f"overlap {overlap} must be between 1 and the number of annotators ({len(annotators)})")
    cannot = [a for a in annotators if not allowed(store, a, "annotate")]
    if cannot:
        raise FireactError(f"cannot review, so cannot be assigned: {', '.join(cannot)} (register them as annotators: "
                           f"fireact users add NAME --role annotator)")
    if not ids:
        return {"trajectories": 0, "added": 0, "per_annotator": {a: 0 for a in annotators}}
    pairs = plan_assignment(ids, annotators, overlap, store.assignments_of(ids), store.assignment_load())
    added = store.add_assignments(pairs, who)
    per = Counter(a for _, a in pairs)
    return {"trajectories": len(ids), "added": added, "per_annotator": {a: per.get(a, 0) for a in annotators}}


def unassign(store: Store, who: str, ids: list[str], annotators: list[str] | None = None) -> int:
    """Take `ids` off `annotators`' queues (everyone's when None); admins only."""
    require(store, who, "assign")
    return store.remove_assignments(ids, parse_names(annotators) if annotators else None)


def next_in_queue(store: Store, who: str, f: TrajectoryFilter, exclude: Iterable[str] = (), sort: str = "imported",
                  descending: bool = False) -> tuple[str | None, bool]:
    """The next trajectory for `who` to review in `f`, and whether it is assigned to them: their own assignment
    first (what they have not yet decided on), then unreviewed trajectories nobody is assigned."""
    tid = store.next_assigned(f, who, exclude, sort, descending)
    if tid is not None:
        return tid, True
    return store.next_unassigned(f, exclude, sort, descending), False


def progress(store: Store, f: TrajectoryFilter | None = None) -> list[dict[str, Any]]:
    """Per annotator within `f`: assigned, done (of the assigned), reviewed (in all) and the share done."""
    return [{**r.model_dump(), "share_done": r.share_done} for r in store.assignment_progress(f)]
