"""Local fine-tuning with transformers' Trainer, LoRA through peft or full.

Run as `python -m fireact_core.training.local --config RUN/config.json` (or under `accelerate launch`, which
starts one such process per device). Everything a run leaves is in its folder (`config.out`):

    status.json       state (running | succeeded | failed), step, max steps, error; written by rank 0
    metrics.jsonl     one JSON object per log: step, loss, learning_rate, tokens_per_s, eval_loss ...
    data_report.json  how many examples were over max length and what was done with them
    checkpoints/      Trainer checkpoints (resume from the newest with `resume`)
    adapter/ | model/ the trained LoRA adapter, or the full model, with its tokenizer
    ranks/rank-N.json what each process did (steps, tokens, world size)
    tensorboard/ | wandb/ | mlruns/  the curves for the tracker `report_to` names (fireact_core.training.tracking)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from ..errors import FireactError
from ..files import append_line, write_text
from .config import LocalTrainConfig
from .data import LengthReport, TokenCounter, make_collator, prepare_examples, read_examples
from .tracking import open_tracking

STATUS_FILE = "status.json"
METRICS_FILE = "metrics.jsonl"
REPORT_FILE = "data_report.json"


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(data, default=str))


def write_status(run: Path, state: str, **fields: Any) -> None:
    if rank() != 0:
        return
    path = run / STATUS_FILE
    old = json.loads(path.read_text()) if path.exists() else {}
    write_json(path, {**old, "state": state, "pid": os.getpid(), "updated": time.time(), **fields})


def run_name(config: LocalTrainConfig) -> str:
    """The name a tracker shows for the run: the model's name, else the run folder's."""
    return config.model_name or Path(config.out).name


def result_folder(config: LocalTrainConfig) -> Path:
    return Path(config.out) / ("adapter" if config.method == "lora" else "model")


def metrics_callback(run: Path, counter: TokenCounter):
    """A TrainerCallback that appends every log (loss, learning rate, tokens/s, eval loss) to metrics.jsonl."""
    from transformers import TrainerCallback

    class MetricsCallback(TrainerCallback):
        def __init__(self) -> None:
            self.start = self.last_time = time.monotonic()
            self.last_tokens = 0

        def on_train_begin(self, args, state, control, **kwargs):
            self.start = self.last_time = time.monotonic()
            self.last_tokens = state.num_input_tokens_seen
            write_status(run, "running", step=state.global_step, max_steps=state.max_steps)

        def on_step_end(self, args, state, control, **kwargs):
            write_status(run, "running", step=state.global_step, max_steps=state.max_steps)

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = dict(logs or {})
            row: dict[str, Any] = {"step": state.global_step, "epoch": state.epoch,
                                   "time": round(time.monotonic() - self.start, 3), "world_size": world_size()}
            if "loss" in logs:
                now = time.monotonic()  # tokens counted by the Trainer in its loop, summed over all processes
                tokens = state.num_input_tokens_seen - self.last_tokens
                row["tokens_per_s"] = tokens / max(now - self.last_time, 1e-9)
                row["padding_share"] = counter.padding_share
                self.last_time, self.last_tokens = now, state.num_input_tokens_seen
            row.update({k: v for k, v in logs.items() if isinstance(v, (int, float))})
            if state.is_world_process_zero:
                append_line(run / METRICS_FILE, json.dumps(row))

        def on_evaluate(self, args, state, control, **kwargs):
            self.last_time = time.monotonic()  # evaluation time is not training time

        def on_save(self, args, state, control, **kwargs):
            self.last_time = time.monotonic()

        def on_train_end(self, args, state, control, **kwargs):
            write_json(run / "ranks" / f"rank-{rank()}.json",
                       {"rank": rank(), "world_size": world_size(), "steps": state.global_step,
                        "tokens": counter.real, "batches": counter.batches})

    return MetricsCallback()


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def pick_precision(config: LocalTrainConfig) -> str:
    import torch

    if config.precision != "auto":
        return config.precision
    if not config.use_cpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def load_model(config: LocalTrainConfig, precision: str):
    import torch
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if precision == "bf16" and config.method == "lora" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(config.base_model, dtype=dtype, local_files_only=True)
    if config.method == "full":
        return model
    from peft import LoraConfig, get_peft_model

    targets = "all-linear" if config.target_modules == ["all-linear"] else config.target_modules
    lora = LoraConfig(task_type="CAUSAL_LM", r=config.lora_r, lora_alpha=config.lora_alpha,
                      lora_dropout=config.lora_dropout, target_modules=targets)
    try:
        return get_peft_model(model, lora)
    except ValueError as exc:
        raise FireactError(f"LoRA target modules {config.target_modules} do not fit {config.base_model}: {exc}") from exc


def training_arguments(config: LocalTrainConfig, precision: str, has_eval: bool, args_class: Any = None,
                       **extra: Any):
    """The Trainer's arguments for `config` (`args_class` a subclass such as TRL's DPOConfig, with `extra`)."""
    from transformers import TrainingArguments

    args_class = args_class or TrainingArguments
    save = {"save_strategy": "steps", "save_steps": config.save_steps} if config.save_steps else {"save_strategy": "epoch"}
    if not has_eval:
        evaluation: dict[str, Any] = {"eval_strategy": "no"}
    elif config.eval_steps:
        evaluation = {"eval_strategy": "steps", "eval_steps": config.eval_steps}
    else:
        evaluation = {"eval_strategy": "epoch"}
    settings: dict[str, Any] = dict(
        output_dir=str(Path(config.out) / "checkpoints"), per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size, gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate, num_train_epochs=config.epochs, max_steps=config.max_steps or -1,
        lr_scheduler_type=config.lr_scheduler, warmup_steps=config.warmup_steps, weight_decay=config.weight_decay,
        logging_steps=config.logging_steps, save_total_limit=config.save_total_limit, seed=config.seed,
        bf16=precision == "bf16", fp16=precision == "fp16", use_cpu=config.use_cpu,
        activation_checkpointing=config.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if config.gradient_checkpointing else None,
        train_sampling_strategy="group_by_length" if config.batching == "group_by_length" else "random",
        remove_unused_columns=False, report_to=[], run_name=run_name(config), disable_tqdm=True,
        dataloader_num_workers=0,
        include_num_input_tokens_seen="non_padding",
        ddp_find_unused_parameters=False, **save, **evaluation,
    )
    return args_class(**{**settings, **extra})


def load_examples(config: LocalTrainConfig, tokenizer) -> tuple[list, list, LengthReport]:
    train, report = prepare_examples(read_examples(config.train_file), tokenizer, config.max_length, config.overflow)
    if not train:
        raise FireactError(f"no training example left: {report.describe()}; raise max length or choose truncate")
    val: list = []
    if config.val_file and Path(config.val_file).exists():
        val, _ = prepare_examples(read_examples(config.val_file), tokenizer, config.max_length, config.overflow)
    if rank() == 0:
        write_json(Path(config.out) / REPORT_FILE, {**report.to_dict(), "val_examples": len(val)})
    print(f"data: {report.describe()}; {len(val)} validation examples", flush=True)
    return train, val, report


def hide_shadowing_datasets() -> None:
    """A plain folder named `datasets` on sys.path (demo data beside the code) looks to transformers like the
    Hugging Face package, and Trainer then fails on `datasets.Dataset`; make it count as absent."""
    import importlib.util

    mod = sys.modules.get("datasets", False)
    if mod is False:
        spec = importlib.util.find_spec("datasets")
        if spec is not None and spec.origin is None:
            sys.modules["datasets"] = None  # type: ignore[assignment]  # None here makes `import datasets` fail
    elif mod is not None and getattr(mod, "__file__", None) is None:
        sys.modules["datasets"] = None  # type: ignore[assignment]  # as above
    else:
        return
    from transformers.utils import import_utils

    import_utils.is_datasets_available.cache_clear()


def pair_lengths(tokenizer: Any, row: dict[str, Any]) -> tuple[int, int]:
    """Tokens of a DPO row's prompt (with the assistant's turn opened) and of its longer side, prompt included,
    through the chat template."""
    def length(messages: list[dict], opened: bool = False) -> int:
        if getattr(tokenizer, "chat_template", None):
            return len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                                     add_generation_prompt=opened)["input_ids"])
        return len(tokenizer("".join(m["content"] + "\n" for m in messages))["input_ids"])

    prompt = row["prompt"]
    return length(prompt, True), max(length([*prompt, *row["chosen"]]), length([*prompt, *row["rejected"]]))


def load_pairs(config: LocalTrainConfig, tokenizer: Any) -> tuple[list, list, LengthReport]:
    """The DPO rows of the run. Pairs longer than max length are counted, then dropped, or left for TRL to cut to
    their first max-length tokens; a pair whose prompt alone fills max length is dropped either way (nothing of
    its answer would be left to learn from)."""
    report = LengthReport(max_length=config.max_length, overflow=config.overflow)
    train = []
    for row in read_examples(config.train_file):
        report.examples += 1
        prompt, n = pair_lengths(tokenizer, row)
        report.longest = max(report.longest, n)
        if n > config.max_length:
            report.over_max_length += 1
            if config.overflow == "drop":
                report.dropped += 1
                continue
            if prompt >= config.max_length:
                report.no_trained_tokens += 1
                continue
            report.truncated += 1
        report.kept += 1
        report.tokens += min(n, config.max_length)
        report.trained_tokens += min(n, config.max_length) - prompt
        train.append(row)
    if not train:
        raise FireactError(f"no preference pair left: {report.describe()}; raise max length")
    val = read_examples(config.val_file) if config.val_file and Path(config.val_file).exists() else []
    if rank() == 0:
        write_json(Path(config.out) / REPORT_FILE, {**report.to_dict(), "val_examples": len(val), "pairs": True})
    print(f"data: {report.describe()} (pairs); {len(val)} validation pairs", flush=True)
    return train, val, report


def build_dpo_trainer(config: LocalTrainConfig, counter: TokenCounter, callbacks: list | None = None):
    """TRL's DPOTrainer on the run's pairs: a LoRA model's reference is the base model (adapter off); a full
    model's is a frozen copy TRL makes."""
    try:
        from datasets import Dataset  # type: ignore[attr-defined]  # mypy takes the datasets/ folder for this package
        from trl import DPOConfig, DPOTrainer
    except ImportError as exc:
        from ..errors import missing_package

        raise missing_package("trl", "train") from exc
    from transformers import set_seed

    set_seed(config.seed)
    tokenizer = load_tokenizer(config.base_model)
    train, val, report = load_pairs(config, tokenizer)
    precision = pick_precision(config)
    model = load_model(config, precision)
    settings = {"train_sampling_strategy": "random", "remove_unused_columns": True}
    args = training_arguments(config, precision, bool(val), DPOConfig, beta=config.beta,
                              max_length=config.max_length, truncation_mode="keep_start", dataset_num_proc=None,
                              **settings)
    trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(train),
                         eval_dataset=Dataset.from_list(val) if val else None, processing_class=tokenizer,
                         callbacks=[metrics_callback(Path(config.out), counter), *(callbacks or [])])
    return trainer, report


def build_trainer(config: LocalTrainConfig, counter: TokenCounter | None = None, callbacks: list | None = None):
    """The Trainer for `config`, ready to `.train()` (with `callbacks` besides the metrics one, such as a
    tracker's); also used by the bench to time training."""
    if config.objective == "dpo":
        return build_dpo_trainer(config, counter or TokenCounter(), callbacks)
    hide_shadowing_datasets()
    from transformers import Trainer, set_seed

    set_seed(config.seed)
    counter = counter or TokenCounter()
    tokenizer = load_tokenizer(config.base_model)
    train, val, report = load_examples(config, tokenizer)
    precision = pick_precision(config)
    model = load_model(config, precision)
    args = training_arguments(config, precision, bool(val))
    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=val or None,
                      data_collator=make_collator(config.batching, tokenizer.pad_token_id, counter),
                      processing_class=tokenizer,
                      callbacks=[metrics_callback(Path(config.out), counter), *(callbacks or [])])
    return trainer, report


def latest_checkpoint(config: LocalTrainConfig) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    folder = Path(config.out) / "checkpoints"
    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


def train(config: LocalTrainConfig) -> dict[str, Any]:
    """Train to the end and save the adapter (or model); returns the summary written to status.json."""
    run = Path(config.out)
    run.mkdir(parents=True, exist_ok=True)
    write_status(run, "running", step=0, error=None)
    try:
        with open_tracking(config.report_to, run, run_name(config), config.to_dict(), rank() == 0) as callbacks:
            trainer, report = build_trainer(config, callbacks=callbacks)
            resume = latest_checkpoint(config) if config.resume else None
            if config.resume:
                print(f"resuming from {resume}" if resume else "no checkpoint to resume from: starting afresh",
                      flush=True)
            result = trainer.train(resume_from_checkpoint=resume)
            if trainer.eval_dataset is not None:
                trainer.evaluate()
        trainer.save_model(str(result_folder(config)))
        summary = {"step": trainer.state.global_step, "max_steps": trainer.state.max_steps,
                   "train_loss": result.training_loss, "result": str(result_folder(config)),
                   "data": report.to_dict(), "world_size": world_size()}
    except BaseException as exc:
        write_status(run, "failed", error=f"{type(exc).__name__}: {exc}")
        raise
    write_status(run, "succeeded", **summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fireact_core.training.local",
                                     description="Fine-tune a local model from a run config (LocalTrainConfig JSON).")
    parser.add_argument("--config", required=True, help="the run's config.json")
    args = parser.parse_args(argv)
    try:
        summary = train(LocalTrainConfig.load(args.config))
    except FireactError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    except Exception:  # noqa: BLE001 - the training process's last word: the traceback, for the job's log
        traceback.print_exc()
        return 1
    print(f"done: {json.dumps(summary, default=str)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
