"""continue and repair: fork a trajectory at a step and let the model go on; repair failed ones that way."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from . import LazyChoices, open_store, user_of
from .curation import _add_filter, _filter
from .generate import progress_line

if TYPE_CHECKING:
    from ..records import Run
    from ..store import Store


def _add_model(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=int, default=1, help="continuations per trajectory (samples)")
    p.add_argument("--model", help="model name (default: the one the trajectory was made with)")
    p.add_argument("--base-url", help="OpenAI-compatible endpoint (default $OPENAI_BASE_URL); key from $OPENAI_API_KEY")
    p.add_argument("--local-model", help="a transformers model folder (instead of an endpoint)")
    p.add_argument("--adapter", help="a peft adapter folder for --local-model")
    p.add_argument("--search", choices=LazyChoices("fireact_core.generation.tools", "SEARCH_KINDS"), help="default: as the trajectory was made")
    p.add_argument("--corpus", help="JSONL of {title, text} passages for --search local")
    p.add_argument("--temperature", type=float, help="default: as the trajectory was made")
    p.add_argument("--concurrency", type=int, help="model calls at a time (default: adaptive)")
    p.add_argument("--timeout", type=float, help="seconds per model request")
    p.add_argument("--run", help="run name for the continuations (default: continue_ID_TIME / repair_TIME)")
    p.add_argument("--quiet", action="store_true")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("continue", help="keep steps 1..K of a trajectory and let the model go on (N samples)")
    p.add_argument("id", metavar="ID", help="the trajectory to continue")
    p.add_argument("--from-step", type=int, required=True, metavar="K", help="keep steps 1..K (0: none)")
    _add_model(p)
    p.set_defaults(handler=cmd_continue)

    p = sub.add_parser("repair", help="continue failed or wrong trajectories from before their first wrong step; "
                       "keep the continuations that score right, labelled 'repaired'", conflict_handler="resolve")
    _add_filter(p)  # its --model (a filter) gives way to the model to continue with; --made-by filters instead
    p.add_argument("--made-by", action="append", default=[], metavar="MODEL",
                   help="keep trajectories made by this model (repeatable)")
    p.add_argument("--rule", help="the first lint of this kind marks the wrong step (default: the first lint)")
    p.add_argument("--limit", type=int, help="at most this many trajectories of the filter")
    _add_model(p)
    p.set_defaults(handler=cmd_repair)


def _overrides(args: argparse.Namespace) -> dict:
    return {"model": args.model, "base_url": args.base_url, "local_model": args.local_model, "adapter": args.adapter,
            "search": args.search, "corpus": args.corpus, "temperature": args.temperature,
            "concurrency": args.concurrency, "timeout_s": args.timeout}


def _show(args: argparse.Namespace):
    tty = sys.stdout.isatty()

    def show(p) -> None:
        if not args.quiet:
            line = progress_line(p)
            print("\r" + line if tty else line, end="" if tty else "\n", flush=True)

    return show


def _report(store: Store, run: Run, quiet: bool) -> int:
    if sys.stdout.isatty() and not quiet:
        print()
    with store.session():
        links = [x for x in store.fork_links() if x.run == run.name]
        children = {t.id: t for t in store.iter_trajectories(ids=[x.child_id for x in links])}
        source = store.get_source(run.name)
    for link in links:
        t = children[link.child_id]
        print(f"{t.id}  from {link.parent_id} step {link.fork_step}  {t.status}  answer {t.final_answer!r}  EM {t.em}")
    tally = (source.meta.get("repair") if source else None) or {}
    kept = f"; {tally['tried']} tried, {tally['kept']} kept" if tally else ""
    print(f"run '{run.name}': {len(links)} continuations stored, {run.failed} failed{kept}; {run.status}")
    return 0 if run.status == "finished" and not run.failed else 3


def cmd_continue(args: argparse.Namespace) -> int:
    from ..generation.forking import continue_trajectory

    store = open_store(args)
    run = continue_trajectory(store, args.id, args.from_step, n=args.n, run=args.run, overrides=_overrides(args),
                              by=user_of(args, store), progress=_show(args))
    return _report(store, run, args.quiet)


def cmd_repair(args: argparse.Namespace) -> int:
    from ..generation.forking import repair

    store = open_store(args)
    f = _filter(argparse.Namespace(**{**vars(args), "model": args.made_by}))
    run = repair(store, f, n=args.n, rule=args.rule, run=args.run, overrides=_overrides(args),
                 by=user_of(args, store), limit=args.limit, progress=_show(args))
    assert not isinstance(run, str)  # in the foreground: the run, not its name
    return _report(store, run, args.quiet)
