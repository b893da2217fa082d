"""`report`: per-run evaluation figures (the dashboard's runs table)."""

from __future__ import annotations

import argparse

from . import open_store, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="per-run evaluation figures: counts, EM/F1 over attempted and finished, cost")
    p.add_argument("--json", action="store_true", help="print one JSON object per run")
    p.add_argument("--run", nargs="+", metavar="NAME", help="only these runs (default: every source)")
    p.add_argument("--compare", nargs=2, metavar=("RUN_A", "RUN_B"),
                   help="paired comparison of two runs on their shared questions (bootstrap CI, McNemar p)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (with --compare)")
    p.set_defaults(handler=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from ..reports.figures import compare_runs, run_report

    store = open_store(args)
    if args.compare:
        run_a, run_b = args.compare
        cmp = compare_runs(store, run_a, run_b, seed=args.seed)
        print_json(cmp.as_dict()) if args.json else print(cmp.verdict())
        return 0
    rows = run_report(store, args.run)
    if args.json:
        print_json(rows)
        return 0
    print(f"{'run':48} {'att':>5} {'fin':>5} {'fail':>5} {'EM/att':>7} {'EM/fin':>7} {'F1/att':>7} {'steps':>6}")
    for r in rows:
        print(f"{r['run'][:48]:48} {r['attempted']:>5} {r['finished']:>5} {r['failed']:>5} {_num(r['em_attempted'])} "
              f"{_num(r['em_finished'])} {_num(r['f1_attempted'])} {_num(r['mean_steps'], 2, 6)}")
    return 0


def _num(value: float | None, digits: int = 3, width: int = 7) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"
