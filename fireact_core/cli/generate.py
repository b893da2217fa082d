"""generate, runs, cancel."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from . import LazyChoices, open_store, print_json, user_of

if TYPE_CHECKING:
    from ..records import Run


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="run an agent over a task's questions and store the trajectories")
    p.add_argument("--task", required=True, choices=LazyChoices("fireact_core.generation.tasks", "list_tasks"))
    p.add_argument("--split", default="dev")
    p.add_argument("--tasks-dir", help="folder laid out like FireAct's data/ (default $FIREACT_TASKS_DIR)")
    p.add_argument("--questions", help="CSV or JSONL of questions (the custom task)")
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--end", type=int)
    p.add_argument("--sample", type=int, help="a random sample of N questions instead of a range")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--method", default="react", choices=LazyChoices("fireact_core.records", "METHODS"))
    p.add_argument("--finetuned", choices=LazyChoices("fireact_core.generation.engine", "RunConfig.finetuned_format"), help="no few-shot examples: FireAct's fine-tuned layout")
    p.add_argument("--prompt-version", type=int, help="saved version of the few-shot examples (0: shipped)")
    p.add_argument("--prompts-dir", help="a folder of FireAct prompt files ({method}_{task}[_google].txt, such as "
                   "FireAct's prompts/): requests exactly as FireAct's generation.py sends them")
    p.add_argument("--model", default="gpt-4o-mini")
    p.add_argument("--base-url", help="OpenAI-compatible endpoint (default $OPENAI_BASE_URL); key from $OPENAI_API_KEY")
    p.add_argument("--local-model", help="a transformers model folder (instead of an endpoint)")
    p.add_argument("--adapter", help="a peft adapter folder for --local-model")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--search", default="serpapi", choices=LazyChoices("fireact_core.generation.tools", "SEARCH_KINDS"))
    p.add_argument("--corpus", help="JSONL of {title, text} passages for --search local")
    p.add_argument("--perturb", help="none:P or random:P, e.g. none:0.5")
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--max-tokens", type=int, default=1000, help="FireAct's 1000")
    p.add_argument("--top-p", type=float, default=1.0, help="FireAct's 1")
    p.add_argument("--stop", action="append", help="a stop sequence (repeatable); default as FireAct per mode: "
                   "\\nObservation: in text layouts, none in fine-tuned chat")
    p.add_argument("--no-stop", action="store_true", help="send no stop sequence")
    p.add_argument("--action-reading", default="fireact", choices=LazyChoices("fireact_core.generation.engine", "RunConfig.action_reading"),
                   help="fireact: name and argument as FireAct reads them (split at '[', last character dropped); "
                   "strict: the whole name[argument], nested brackets kept")
    p.add_argument("--concurrency", type=int, help="model calls at a time (default: adaptive, rising while answers "
                   "come back and halving on 429s and timeouts, at most --max-concurrency)")
    p.add_argument("--max-concurrency", type=int, default=256, help="the most adaptive concurrency reaches")
    p.add_argument("--rpm", type=float, help="at most this many model requests per minute")
    p.add_argument("--max-steps", type=int, help="default 8 (Studio prompts), 11 rounds (FireAct's layout)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per model request")
    p.add_argument("--run", required=True, help="run name; the same name takes a run up again")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=cmd_generate)

    p = sub.add_parser("runs", help="generation runs and their scores")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_runs)

    p = sub.add_parser("cancel", help="stop a generation run (what ended stays stored)")
    p.add_argument("run")
    p.set_defaults(handler=cmd_cancel)


def config_from_args(args: argparse.Namespace):
    from ..generation.engine import RunConfig

    return RunConfig(
        run=args.run, task=args.task, split=args.split, tasks_dir=args.tasks_dir, questions_path=args.questions,
        start=args.start, end=args.end, sample=args.sample, seed=args.seed, method=args.method,
        mode="finetuned" if args.finetuned else "fewshot", finetuned_format=args.finetuned or "chat",
        prompt_version=args.prompt_version, prompts_dir=args.prompts_dir, backend="local" if args.local_model else "openai", model=args.model,
        base_url=args.base_url, local_model=args.local_model, adapter=args.adapter, batch_size=args.batch_size,
        search=args.search, corpus=args.corpus, perturb=args.perturb, temperature=args.temperature,
        max_tokens=args.max_tokens, top_p=args.top_p, stop=[] if args.no_stop else args.stop,
        action_reading=args.action_reading, concurrency=args.concurrency, max_concurrency=args.max_concurrency, rpm=args.rpm, max_steps=args.max_steps,
        timeout_s=args.timeout,
    )


def progress_line(p) -> str:
    width = 30
    filled = int(width * p.done / p.total) if p.total else width
    eta = p.eta_s
    eta_text = f"{int(eta // 60)}:{int(eta % 60):02d}" if eta is not None else "?"
    em = f"{p.em:.3f}" if p.em is not None else "-"
    return (f"[{'#' * filled}{'.' * (width - filled)}] {p.done}/{p.total} EM {em} failed {p.failed} "
            f"tokens {p.tokens:,} ${p.cost_usd:.4f} ETA {eta_text}")


def cmd_generate(args: argparse.Namespace) -> int:
    from ..generation.engine import launch

    tty = sys.stdout.isatty()

    def show(p) -> None:
        if args.quiet:
            return
        line = progress_line(p)
        print("\r" + line if tty else line, end="" if tty else "\n", flush=True)

    # the first requests go out while the store is imported and opened (see engine.launch)
    run = launch(lambda: open_store(args), config_from_args(args), progress=show, who=lambda store: user_of(args, store))
    if tty and not args.quiet:
        print()
    em = f"{run.em:.3f}" if run.em is not None else "-"
    print(f"run '{run.name}': {run.attempted}/{run.total} questions, {run.finished} finished, "
          f"{run.failed} failed, EM {em}; {run.status}; see `fireact runs`")
    return exit_status(run)


def exit_status(run: Run) -> int:
    """0: every question ended (finished or not); 3: some failed after their retries, or the run stopped before
    every question ended (cancelled); bad input never gets here (2)."""
    ended = run.status == "finished" and run.attempted >= run.total
    return 0 if ended and not run.failed else 3


def run_rows(store) -> list[dict]:
    """One row per run, read once: `runs` prints these and `runs --json` writes them. attempted: the questions
    planned (EM and F1 are over them); done: those ended so far; status: running, finished, cancelled, failed, or
    interrupted (its process is gone; take it up with the same --run)."""
    rows = []
    for r in store.list_runs():
        rows.append({"run": r.name, "task": r.task, "split": r.split, "method": r.method,
                     "model": r.model, "attempted": max(r.total, r.attempted), "finished": r.finished,
                     "failed": r.failed, "em": r.em, "f1": r.f1, "done": r.attempted,
                     "total": r.total, "status": r.status})
    return rows


def cmd_runs(args: argparse.Namespace) -> int:
    rows = run_rows(open_store(args))
    if args.json:
        print_json(rows)
        return 0
    for r in rows:
        em = f"{r['em']:.3f}" if r["em"] is not None else "-"
        print(f"{r['run']:40} {r['task']:10} {r['method']:9} {r['model'] or '':24} {r['done']:>5}/{r['total']:<5} "
              f"EM {em} failed {r['failed']} {r['status']}")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from ..generation.engine import cancel_run

    store = open_store(args)
    if not cancel_run(store, args.run, by=user_of(args, store)):
        print(f"run '{args.run}' is not running (it is {store.get_run(args.run).status}): nothing to stop")
        return 0
    print(f"asked run '{args.run}' to stop")
    return 0
