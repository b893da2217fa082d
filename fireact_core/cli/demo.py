"""demo: load the demo data set (datasets/) into an empty database."""

from __future__ import annotations

import argparse

from . import open_store, user_of


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="load the demo data (datasets/) when the database holds no trajectories yet")
    p.add_argument("--force", action="store_true", help="load it even when the database holds other trajectories")
    p.set_defaults(handler=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import load_demo

    store = open_store(args)
    reports = load_demo(store, force=args.force, by=user_of(args, store))
    if not reports:
        n = store.count_trajectories()
        print(f"{store.path} already holds {n} trajectories: demo data not loaded (--force loads it anyway)")
        return 0
    for r in reports:
        lints = ", ".join(f"{k} {n}" for k, n in r.lints.items()) or "none"
        print(f"{r.path}: {r.rows} rows read ({r.format}), {r.added} trajectories added to '{r.source}'; "
              f"lints: {lints}")
    added = sum(r.added for r in reports)
    print(f"demo data: {added} trajectories added from {len(reports)} files to {store.path}")
    return 0
