"""browse and review: the Browse page's filter and bulk review on the command line."""

from __future__ import annotations

import argparse
import json

from typing import TYPE_CHECKING

from . import LazyChoices, open_store, print_json, user_of

if TYPE_CHECKING:
    from ..records import ReviewStatus
    from ..filters import TrajectoryFilter


def _add_filter(p: argparse.ArgumentParser) -> None:
    for name in ("source", "model", "task", "method", "lint", "label"):
        p.add_argument(f"--{name}", action="append", default=[], help=f"keep this {name} (repeatable)")
    p.add_argument("--em", choices=["right", "wrong"])
    p.add_argument("--review", choices=["accepted", "rejected", "unreviewed"])
    p.add_argument("--status", choices=["finished", "unfinished", "failed"])
    p.add_argument("--steps-min", type=int)
    p.add_argument("--steps-max", type=int)
    p.add_argument("--q", help="words that must start words of the question, thoughts, actions or observations")


def _filter(args: argparse.Namespace, ids: list[str] | None = None) -> TrajectoryFilter:
    from ..filters import TrajectoryFilter

    return TrajectoryFilter(source=args.source, model=args.model, task=args.task, method=args.method, lint=args.lint,
                            label=args.label, em=args.em, review=args.review, status=args.status,
                            steps_min=args.steps_min, steps_max=args.steps_max, q=args.q, ids=ids or [])


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("browse", help="list trajectories matching a filter (the Browse page's filter)")
    _add_filter(p)
    p.add_argument("--sort", default="imported", choices=LazyChoices("fireact_core.store.curation", "SORTABLE"))
    p.add_argument("--desc", action="store_true")
    p.add_argument("--limit", type=_count, default=20, help="at most this many rows")
    p.add_argument("--offset", type=_count, default=0, help="skip this many rows first")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_browse)

    p = sub.add_parser("review", help="accept, reject or label trajectories (given ids, or all matching a filter)")
    p.add_argument("ids", nargs="*", metavar="ID")
    _add_filter(p)
    action = p.add_mutually_exclusive_group()
    action.add_argument("--accept", action="store_true")
    action.add_argument("--reject", action="store_true")
    p.add_argument("--add-label", action="append", default=[], metavar="LABEL")
    p.add_argument("--author", help="act as this annotator (admins only, like fireact --as; default: the user name)")
    p.add_argument("--json", action="store_true", help="print review progress of the filter as JSON")
    p.set_defaults(handler=cmd_review)


MAX_COUNT = 2**62


def _count(text: str) -> int:
    """A row count or offset: a whole number from 0 to 2^62."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if not 0 <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"{value} is out of range: give a number from 0 to {MAX_COUNT}")
    return value


def cmd_browse(args: argparse.Namespace) -> int:
    """Rows are printed as they are read, a batch at a time, so memory stays flat for any --limit."""
    store = open_store(args)
    f = _filter(args)
    if f.q:
        store.refresh_search_index()
    total = store.count_filtered(f)
    rows = store.iter_summaries(f, args.sort, args.desc, args.limit, args.offset)
    if args.json:
        print(f'{{"total": {total}, "filter": {json.dumps(f.to_query(), ensure_ascii=False)}, "rows": [', end="")
        for i, r in enumerate(rows):
            print(("," if i else "") + "\n  " + json.dumps(r.model_dump(), ensure_ascii=False, default=str), end="")
        print("\n]}")
        return 0
    print(f"{total} trajectories match")
    for r in rows:
        em = "-" if r.em is None else f"{r.em:g}"
        print(f"{r.id}  em={em:>3}  steps={r.n_steps:<3} {r.source:24.24}  {r.question[:70]}")
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    store = open_store(args)
    f = _filter(args, args.ids)
    from ..curation.team import bulk_review

    status: ReviewStatus | None = "accepted" if args.accept else "rejected" if args.reject else None
    n = 0
    if status or args.add_label:
        if f.is_empty():
            print("fireact: give trajectory ids or a filter to review")
            return 2
        n = bulk_review(store, user_of(args, store), store.filter_ids(f), whole_filter=not args.ids, status=status,
                        add_labels=args.add_label)
    reviewed, total = store.review_progress(f)
    if args.json:
        print_json({"annotated": n, "reviewed": reviewed, "total": total})
    else:
        print(f"{n} trajectories annotated; {reviewed} of {total} in this filter reviewed")
    return 0
