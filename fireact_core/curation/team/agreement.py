"""How much annotators agree, and settling where they do not.

The votes are those of the annotators assigned to a trajectory: each one's current decision is their latest
annotation event on it, and an assigned annotator's events carry over only their own earlier labels, so the
decisions stay apart. Reviews by anyone not assigned, and an adjudication's event, are not votes. On accept/reject, the ratings are the statuses of those who accepted or rejected; on a
label, every annotator who annotated the trajectory rates it "has the label" or "has not".

- percent agreement: the share of items two annotators (or, overall, pairs of annotators) rate alike;
- Cohen's kappa per pair: (po - pe) / (1 - pe), pe from each one's own rates;
- Fleiss' kappa overall, in its form for items rated by different numbers of annotators: per item
  P_i = sum_j n_ij (n_ij - 1) / (n_i (n_i - 1)), P = mean P_i, pe = sum_j p_j^2 with p_j the share of all
  ratings in category j. Items rated by fewer than two annotators do not count.
A kappa is null where it is undefined: when chance agreement is 1 (everyone used one same category).
"""

from __future__ import annotations

from collections import Counter
from itertools import combinations
from typing import TYPE_CHECKING, Any, Hashable

from ...errors import FireactError
from ...filters import TrajectoryFilter
from ...records import Annotation, Decision, ReviewStatus
from .roles import require

if TYPE_CHECKING:
    from ...store import Store

REVIEW = "accept/reject"
DIGITS = 4


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, DIGITS)


def ratings(decisions: list[Decision], label: str | None = None) -> dict[str, dict[str, Hashable]]:
    """{trajectory: {annotator: rating}}: their status, or (with `label`) whether they gave the label."""
    out: dict[str, dict[str, Hashable]] = {}
    for d in decisions:
        if label is None and d.status is None:
            continue
        out.setdefault(d.trajectory_id, {})[d.author] = d.status if label is None else label in d.labels
    return out


def cohen(x: list[Hashable], y: list[Hashable]) -> tuple[float | None, float | None]:
    """(percent agreement, Cohen's kappa) of two annotators' ratings of the same items."""
    n = len(x)
    if n == 0:
        return None, None
    po = sum(a == b for a, b in zip(x, y)) / n
    cx, cy = Counter(x), Counter(y)
    pe = sum(cx[c] * cy[c] for c in cx) / (n * n)
    return po, None if pe >= 1 else (po - pe) / (1 - pe)


def fleiss(items: list[list[Hashable]]) -> tuple[int, float | None, float | None]:
    """(items counted, mean agreement P, Fleiss' kappa) over items each rated by any number of annotators."""
    items = [r for r in items if len(r) >= 2]
    if not items:
        return 0, None, None
    totals: Counter = Counter()
    shares = []
    for rated in items:
        counts = Counter(rated)
        totals.update(counts)
        n = len(rated)
        shares.append(sum(c * (c - 1) for c in counts.values()) / (n * (n - 1)))
    p = sum(shares) / len(shares)
    all_ratings = sum(totals.values())
    pe = sum((c / all_ratings) ** 2 for c in totals.values())
    return len(items), p, None if pe >= 1 else (p - pe) / (1 - pe)


def pair_table(rated: dict[str, dict[str, Hashable]]) -> list[dict[str, Any]]:
    """Cohen's kappa and percent agreement for every pair of annotators who rated a common item."""
    names = sorted({a for r in rated.values() for a in r})
    rows = []
    for a, b in combinations(names, 2):
        both = [(r[a], r[b]) for r in rated.values() if a in r and b in r]
        if not both:
            continue
        po, kappa = cohen([x for x, _ in both], [y for _, y in both])
        rows.append({"a": a, "b": b, "n": len(both), "agreement": _round(po), "kappa": _round(kappa)})
    return rows


def _overall(rated: dict[str, dict[str, Hashable]]) -> dict[str, Any]:
    n, p, kappa = fleiss([list(r.values()) for r in rated.values()])
    return {"items": n, "agreement": _round(p), "kappa": _round(kappa)}


def agreement_report(decisions: list[Decision], label: str | None = None) -> dict[str, Any]:
    """{pairs: [{a, b, n, agreement, kappa}], overall: {...}} on accept/reject, or on one label. Overall has the
    Fleiss figures, the annotators counted and (on accept/reject) the same figures for each label."""
    rated = ratings(decisions, label)
    overall = {"on": REVIEW if label is None else f"label {label}",
               "annotators": len({a for r in rated.values() for a in r}), **_overall(rated)}
    if label is None:
        labels = sorted({x for d in decisions for x in d.labels})
        overall["labels"] = {x: _overall(ratings(decisions, x)) for x in labels}
    return {"pairs": pair_table(rated), "overall": overall}


def agreement(store: Store, f: TrajectoryFilter | None = None, label: str | None = None) -> dict[str, Any]:
    return agreement_report(store.decisions(f), label)


def disagreements(store: Store, f: TrajectoryFilter | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Trajectories two or more annotators decided differently on (status, or labels), not yet adjudicated:
    each with the question and every annotator's status and labels."""
    by_traj: dict[str, list[Decision]] = {}
    for d in store.decisions(f):
        by_traj.setdefault(d.trajectory_id, []).append(d)
    split = [tid for tid, ds in by_traj.items() if len(ds) >= 2 and (
        len({d.status for d in ds if d.status is not None}) > 1 or len({tuple(d.labels) for d in ds}) > 1)]
    split = sorted(set(split) - store.adjudicated_ids(split))[:limit]
    questions = {s.id: s.question for s in store.list_summaries(TrajectoryFilter(ids=split), limit=len(split) or 1)} \
        if split else {}
    return [{"trajectory_id": tid, "question": questions.get(tid),
             "votes": {d.author: d.status for d in by_traj[tid]},
             "labels": {d.author: d.labels for d in by_traj[tid]}} for tid in split]


def majority_labels(votes: dict[str, list[str]]) -> list[str]:
    """Labels more than half of the annotators gave."""
    counts = Counter(x for labels in votes.values() for x in set(labels))
    return sorted(x for x, c in counts.items() if c * 2 > len(votes))


def adjudicate(store: Store, who: str, traj_id: str, status: ReviewStatus, labels: list[str] | None = None,
               note: str | None = None) -> Annotation:
    """An admin's final decision on `traj_id`: becomes its review state, recorded as an adjudication; afterwards
    only admins can change it. Labels default to those most annotators gave."""
    require(store, who, "adjudicate")
    if status not in ("accepted", "rejected"):
        raise FireactError(f"an adjudication accepts or rejects, not {status!r}")
    store.get_trajectory(traj_id)
    if labels is None:
        labels = majority_labels({d.author: d.labels for d in store.decisions(TrajectoryFilter(ids=[traj_id]))})
    note = (note or "").strip() or None
    ann = Annotation(trajectory_id=traj_id, author=who, status=status,
                     labels=sorted({x.strip() for x in labels if x.strip()}),
                     comment="adjudicated" + (f": {note}" if note else ""))
    return store.save_adjudication(ann, note)
