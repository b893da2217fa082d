"""train, train-openai, jobs, models."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from . import open_store, print_json, user_of


# Flag -> field of the training config. A flag not given leaves the config's own default; types, ranges and
# choices are the config's too (a value it refuses exits with status 2), so the CLI and the Train page agree.
LOCAL_FLAGS = {"method": "method", "max_steps": "max_steps", "epochs": "epochs", "lr": "learning_rate",
               "max_length": "max_length", "overflow": "overflow", "batch_size": "batch_size",
               "grad_accum": "grad_accum", "lora_r": "lora_r", "num_processes": "num_processes",
               "accelerate_config": "accelerate_config", "cpu": "use_cpu", "name": "model_name",
               "report_to": "report_to", "beta": "beta"}
OPENAI_FLAGS = {"method": "method", "beta": "beta", "epochs": "epochs", "suffix": "suffix", "base_url": "base_url",
                "name": "model_name"}
UNSET = argparse.SUPPRESS  # a flag left out is absent from the parsed arguments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="fine-tune a local model on a dataset version (runs to the end); settings "
                       "left out take LocalTrainConfig's defaults (docs/training.md)")
    p.add_argument("--dataset", required=True, help="dataset version name")
    p.add_argument("--base-model", required=True, metavar="DIR", help="folder of the base model")
    p.add_argument("--method", default=UNSET, metavar="lora|full|dpo",
                   help="lora or full: supervised fine-tuning; dpo: preference training of a LoRA adapter on a "
                   "version of pairs (TRL's DPOTrainer)")
    p.add_argument("--full", action="store_true", default=UNSET,
                   help="with --method dpo: update every weight instead of an adapter")
    p.add_argument("--beta", default=UNSET, metavar="B", help="with --method dpo: how close the model stays to the base")
    steps = p.add_mutually_exclusive_group()
    steps.add_argument("--max-steps", default=UNSET, metavar="N")
    steps.add_argument("--epochs", default=UNSET, metavar="N")
    p.add_argument("--lr", default=UNSET, metavar="LR", help="learning rate")
    p.add_argument("--max-length", default=UNSET, metavar="N")
    p.add_argument("--overflow", default=UNSET, metavar="drop|truncate",
                   help="what to do with examples longer than --max-length")
    p.add_argument("--batch-size", default=UNSET, metavar="N")
    p.add_argument("--grad-accum", default=UNSET, metavar="N")
    p.add_argument("--lora-r", default=UNSET, metavar="N", help="LoRA rank (alpha follows as twice the rank)")
    p.add_argument("--num-processes", default=UNSET, metavar="N", help="more than one runs through accelerate launch")
    p.add_argument("--accelerate-config", default=UNSET, metavar="YAML")
    p.add_argument("--cpu", action="store_true", default=UNSET, help="train on the CPU even when a GPU is present")
    p.add_argument("--name", default=UNSET, help="name of the registered model")
    p.add_argument("--report-to", default=UNSET, metavar="tensorboard|wandb|mlflow|none",
                   help="tracker that gets the curves, written into the run folder (W&B offline, MLflow file store)")
    p.add_argument("--out", required=True, metavar="DIR", help="run folder")
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("train-resume", help="start a failed or cancelled local job again from its newest checkpoint")
    p.add_argument("job")
    p.set_defaults(handler=cmd_train_resume)

    p = sub.add_parser("train-cancel", help="stop a training job (every process of it, or the remote job)")
    p.add_argument("job")
    p.set_defaults(handler=cmd_train_cancel)

    p = sub.add_parser("train-openai", help="fine-tune through the OpenAI fine-tuning API")
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", required=True, help="base model, as the API names it")
    p.add_argument("--method", default=UNSET, metavar="supervised|dpo",
                   help="dpo: the API's preference fine-tuning on a version of pairs")
    p.add_argument("--beta", default=UNSET, metavar="B", help="with --method dpo (0: the API chooses)")
    p.add_argument("--epochs", default=UNSET, metavar="N", help="0: the API chooses")
    p.add_argument("--suffix", default=UNSET)
    p.add_argument("--base-url", default=UNSET, help="default: $OPENAI_BASE_URL, else api.openai.com")
    p.add_argument("--name", default=UNSET, help="name of the registered model")
    p.add_argument("--wait", action="store_true", help="poll until the job ends")
    p.add_argument("--poll", type=float, default=10.0, metavar="SECONDS", help="time between looks with --wait")
    p.set_defaults(handler=cmd_train_openai)

    p = sub.add_parser("jobs", help="training jobs and their state")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_jobs)

    p = sub.add_parser("models", help="models that training produced, with their dataset version, settings, losses "
                       "and scores (local models' cards brought up to date)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_models)


def _given(args: argparse.Namespace, flags: dict[str, str]) -> dict[str, Any]:
    """{config field: value} of the flags given on the command line."""
    return {field: getattr(args, dest) for dest, field in flags.items() if hasattr(args, dest)}


def progress_bar(job, status: dict) -> None:
    step, total = status.get("step", job.steps) or 0, status.get("max_steps") or 0
    width = 30
    done = int(width * step / total) if total else 0
    loss = f" loss {job.loss_last:.4f}" if job.loss_last is not None else ""
    print(f"\r[{'#' * done}{'.' * (width - done)}] {step}/{total or '?'}{loss} {job.status}   ",
          end="", file=sys.stderr, flush=True)


def cmd_train(args: argparse.Namespace) -> int:
    from ..training import LocalTrainConfig
    from ..training.jobs import start_local_job

    store = open_store(args)
    given = _given(args, LOCAL_FLAGS)
    if given.get("method") == "dpo":  # preference training: the objective, of an adapter or (--full) every weight
        given["objective"] = "dpo"
        given["method"] = "full" if getattr(args, "full", False) else "lora"
    elif getattr(args, "full", False):
        given["method"] = "full"
    if "lora_r" in given:
        given["lora_alpha"] = str(2 * int(given["lora_r"])) if given["lora_r"].isdigit() else given["lora_r"]
    config = LocalTrainConfig.from_options(dataset=args.dataset, base_model=args.base_model, out=args.out, **given)
    job = start_local_job(store, config, by=user_of(args, store))
    print(f"job {job.id} started: run folder {job.out}, log {job.out}/train.log", file=sys.stderr)
    return _follow(store, job)


def _follow(store, job) -> int:
    from ..training.jobs import cancel_job, follow_job, read_data_report

    try:
        job = follow_job(store, job.id, progress_bar)
    except KeyboardInterrupt:
        cancel_job(store, job.id)
        raise
    print(file=sys.stderr)
    report = read_data_report(job.out)
    if report:
        print(f"data: {report['examples']} examples, {report['over_max_length']} longer than {report['max_length']} "
              f"tokens ({report['dropped']} dropped, {report['truncated']} truncated)")
    print(f"job {job.id} {job.status}: {job.steps} steps, loss {job.loss_first} -> {job.loss_last}")
    if job.status != "succeeded":
        print(job.error or "", file=sys.stderr)
        return 1
    model = store.model_of_job(job.id)
    print(f"model '{model.name}' registered: {model.path_or_id}")
    return 0


def cmd_train_resume(args: argparse.Namespace) -> int:
    from ..training.jobs import resume_job

    store = open_store(args)
    job = resume_job(store, args.job, by=user_of(args, store))
    print(f"job {job.id} resumed from its newest checkpoint in {job.out}", file=sys.stderr)
    return _follow(store, job)


def cmd_train_cancel(args: argparse.Namespace) -> int:
    from ..training.jobs import cancel_job

    store = open_store(args)
    job = cancel_job(store, args.job, by=user_of(args, store))
    print(f"job {job.id} {job.status}")
    return 0


def cmd_train_openai(args: argparse.Namespace) -> int:
    from ..training import OpenAITrainConfig
    from ..training.openai_jobs import follow_openai_job, start_openai_job

    store = open_store(args)
    config = OpenAITrainConfig.from_options(dataset=args.dataset, model=args.model, **_given(args, OPENAI_FLAGS))
    job = start_openai_job(store, config, by=user_of(args, store))
    print(f"job {job.id} created at the API as {job.remote_id} ({job.status})")
    if not args.wait:
        return 0
    job = follow_openai_job(store, job.id, on_event=lambda e: print(f"  {e}", file=sys.stderr), poll_s=args.poll)
    print(f"job {job.id} {job.status}" + (f": {job.error}" if job.error else ""))
    if job.status != "succeeded":
        return 1
    print(f"model '{store.model_of_job(job.id).name}' registered: {store.model_of_job(job.id).path_or_id}")
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    from ..training.jobs import refresh_jobs

    store = open_store(args)
    for problem in refresh_jobs(store):
        print(f"fireact: warning: {problem}", file=sys.stderr)
    jobs = store.list_jobs()
    if args.json:
        print_json([j.summary() for j in jobs])
        return 0
    for j in jobs:
        loss = f"loss {j.loss_first:.4f} -> {j.loss_last:.4f}" if j.loss_first is not None else ""
        kind = f"{j.kind}/dpo" if "dpo" in (j.config.get("objective"), j.config.get("method")) else j.kind
        print(f"{j.id}  {kind:10} {j.status:9} {j.dataset:20} {j.steps:6} steps  {loss}  {j.out or j.remote_id}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from ..training.model_card import models_with_facts

    models = models_with_facts(open_store(args))
    if args.json:
        print_json(models)
        return 0
    for m in models:
        print(f"{m['name']:30} {m['kind']:6} {m['dataset'] or '':20} {(m['dataset_hash'] or '')[:12]:12} "
              f"{m['path_or_id']}")
    return 0
