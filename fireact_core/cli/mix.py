"""mix, datasets, pairs: dataset versions by task x method ratio, and preference pairs (`export --dataset` lives
with export in data.py)."""

from __future__ import annotations

import argparse

from . import open_store, print_json, user_of
from .curation import _add_filter, _filter


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mix", help="select a dataset by task x method ratio and save it as a named version")
    p.add_argument("--spec", metavar="SPEC.json", help="the mix spec (JSON); see docs or `fireact mix --help`")
    p.add_argument("--from", dest="parent", metavar="VERSION",
                   help="reuse the spec of this version (a --spec given too replaces it); recorded as the parent")
    p.add_argument("--name", required=True, help="name of the new version")
    p.add_argument("--seed", type=int, help="override the spec's seed")
    p.add_argument("--author", help="act as this user (admins only, like fireact --as; default: the user name)")
    p.add_argument("--tokenizer", metavar="DIR", help="local model folder whose tokenizer counts the tokens")
    p.add_argument("--exact-tokens", action="store_true",
                   help="count characters over every member (slower) instead of a sample of each cell")
    p.add_argument("--dry-run", action="store_true", help="print the plan, save nothing")
    p.set_defaults(handler=cmd_mix)

    p = sub.add_parser("pairs", help="preference pairs (DPO or KTO rows) from edits and forks of the trajectories a "
                       "filter matches")
    _add_filter(p)
    p.add_argument("--level", choices=["step", "trajectory"], default="step",
                   help="step: the shared prefix, then the chosen and the rejected step; trajectory: the right and "
                   "the wrong whole trajectory after the question")
    p.add_argument("--format", choices=["dpo", "kto"], default="dpo",
                   help="dpo: prompt, chosen, rejected; kto: prompt, completion, label (TRL's conversational form)")
    p.add_argument("--origin", action="append", choices=["edit", "fork"], default=[],
                   help="only pairs from edits or from forks (repeatable; default both)")
    p.add_argument("--dataset", metavar="VERSION", help="write the pairs of this version of pairs instead (as "
                   "snapshotted; its level); the filter options do not apply")
    p.add_argument("--split", choices=["train", "val"], help="with --dataset: only this split")
    p.add_argument("--out", required=True, metavar="FILE", help="JSONL file to write")
    p.add_argument("--force", action="store_true", help="replace FILE when it exists (its mode is kept)")
    p.set_defaults(handler=cmd_pairs)

    p = sub.add_parser("datasets", help="list saved dataset versions")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_datasets)


def _spec(store, args: argparse.Namespace):
    from ..mixing.versions import MixSpec, MixSpecError, saved_spec

    if args.spec:
        spec = MixSpec.load(args.spec)
    elif args.parent:
        spec = saved_spec(store, args.parent)
    else:
        raise MixSpecError("give --spec SPEC.json or --from VERSION")
    if args.seed is not None:
        spec = spec.model_copy(update={"seed": args.seed})
    return spec


def _print_cells(cells, token_label: str) -> None:
    print(f"{'cell':28} {'asked':>6} {'got':>6} {'short':>6} {'train':>6} {'val':>5} {'tokens':>9}")
    for r in cells.itertuples():
        print(f"{r.cell:28} {r.asked:6d} {r.got:6d} {r.short:6d} {r.train:6d} {r.val:5d} {r.tokens:9d}")
    print(f"{'total':28} {cells['asked'].sum():6d} {cells['got'].sum():6d} {cells['short'].sum():6d} "
          f"{cells['train'].sum():6d} {cells['val'].sum():5d} {cells['tokens'].sum():9d}")
    print(f"tokens: {token_label}")


def cmd_mix(args: argparse.Namespace) -> int:
    from ..mixing.versions import plan_mix, save_mix

    store = open_store(args)
    spec = _spec(store, args)
    plan = plan_mix(store, spec, args.tokenizer, exact_tokens=args.exact_tokens)
    _print_cells(plan.cells, plan.token_label)
    for label, n in plan.funnel.items():
        print(f"  {label}: {n}")
    for msg in plan.messages:
        print(f"short: {msg}")
    if args.dry_run:
        return 0
    version = save_mix(store, spec, args.name, author=user_of(args, store), parent=args.parent, tokenizer_dir=args.tokenizer,
                       exact_tokens=args.exact_tokens)
    print(f"saved '{version.name}': {version.size} trajectories ({version.n_train} train, {version.n_val} val), "
          f"hash {version.content_hash}")
    if version.pairs:
        from ..curation.pairs import describe_pairs

        print(f"pairs: {describe_pairs(store, version.name)}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    versions = open_store(args).list_dataset_versions()
    if args.json:
        print_json([v.summary() for v in versions])
        return 0
    for v in versions:
        parent = f" (from {v.parent})" if v.parent else ""
        print(f"{v.name}{parent}: {v.size} ({v.n_train} train, {v.n_val} val), mask {v.loss_mask}, "
              f"{v.created_at:%Y-%m-%d %H:%M}, hash {v.content_hash[:12]}")
    return 0


def cmd_pairs(args: argparse.Namespace) -> int:
    from collections import Counter

    from ..curation.pairs import build_pairs, dataset_pairs, pair_level, write_pairs

    store = open_store(args)
    level = args.level
    if args.dataset:
        by_split = dataset_pairs(store, args.dataset, args.split)
        pairs = [p for split in ("train", "val") for p in by_split.get(split, [])]
        level = pair_level(store.get_dataset_version(args.dataset))
    else:
        pairs = build_pairs(store, _filter(args), level, args.origin or ("edit", "fork"))
    n = write_pairs(pairs, args.format, args.out, force=args.force)
    origins = Counter(p.origin for p in pairs)
    made = ", ".join(f"{k} {v}" for k, v in sorted(origins.items())) or "none"
    print(f"{len(pairs)} {level}-level pairs (from {made}) written to {args.out} as {n} {args.format} rows")
    return 0
