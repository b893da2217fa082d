"""import, export, stats, lint."""

from __future__ import annotations

import argparse

from ..errors import FireactError
from . import LazyChoices, open_store, print_json, user_of


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="read trajectory files into the database")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--format", default="auto", choices=LazyChoices("fireact_core.io.formats", "IMPORT_FORMATS"))
    p.add_argument("--source", help="name for what is imported (default: the file name)")
    p.add_argument("--task", help="task of every trajectory (default: inferred per trajectory)")
    p.add_argument("--method", help="method of every trajectory (default: inferred per trajectory)")
    p.add_argument("--eval-split", nargs="+", default=[], metavar="FILE",
                   help="evaluation split files; questions found there are flagged eval_contamination")
    p.set_defaults(handler=cmd_import)

    p = sub.add_parser("export", help="write trajectories (or a dataset version) to a file")
    p.add_argument("--format", required=True,
                   choices=LazyChoices("fireact_core.io.formats", "EXPORT_FORMATS", ("parquet", "hf", "axolotl", "llamafactory")),
                   help="hf, axolotl and llamafactory write a folder for a dataset version")
    p.add_argument("--out", required=True, help="file to write (with fireact-run, a folder: the file is named as "
                   "FireAct's generation.py names its runs; with hf, axolotl or llamafactory, the folder to write)")
    p.add_argument("--source")
    p.add_argument("--dataset", help="export this saved dataset version instead")
    p.add_argument("--split", choices=["train", "val"], help="with --dataset: only this split")
    p.add_argument("--force", action="store_true", help="replace OUT when it exists (its mode is kept)")
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("stats", help="what is in the database")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_stats)

    p = sub.add_parser("lint", help="how many trajectories each data check flags")
    p.add_argument("--json", action="store_true")
    p.add_argument("--source")
    p.set_defaults(handler=cmd_lint)


def cmd_import(args: argparse.Namespace) -> int:
    from ..io.importer import import_files

    store = open_store(args)
    reports = import_files(store, args.files, args.format, args.source, args.task, args.method, args.eval_split,
                           by=user_of(args, store))
    for r in reports:
        lints = ", ".join(f"{k} {n}" for k, n in r.lints.items()) or "none"
        moved = f" (another file holds '{r.renamed_from}')" if r.renamed_from else ""
        print(f"{r.path}: {r.rows} rows read ({r.format}), {r.added} trajectories added to '{r.source}'{moved}; "
              f"lints: {lints}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..io.exporter import export

    if args.dataset or args.format in ("parquet", "hf", "axolotl", "llamafactory") or args.split:
        from ..mixing.export import export_dataset

        if not args.dataset:
            raise FireactError(f"{args.format} exports a dataset version: add --dataset NAME")
        n = export_dataset(open_store(args), args.dataset, args.format, args.out, split=args.split, force=args.force)
        print(f"{n} trajectories of dataset '{args.dataset}' written to {args.out} ({args.format})")
        return 0
    n = export(open_store(args), args.format, args.out, source=args.source, force=args.force)
    print(f"{n} trajectories written to {args.out} ({args.format})")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    stats = open_store(args).stats()
    if args.json:
        print_json(stats.model_dump())
        return 0
    print(f"{stats.trajectories} trajectories")
    for key, counts in (("source", stats.by_source), ("task", stats.by_task), ("method", stats.by_method)):
        print(f"{key}: " + ", ".join(f"{k} {n}" for k, n in counts.items()))
    return 0


def cmd_lint(args: argparse.Namespace) -> int:
    counts = open_store(args).lint_counts(args.source)
    if args.json:
        print_json(counts)
        return 0
    for kind, n in counts.items():
        print(f"{kind:32} {n}")
    return 0
