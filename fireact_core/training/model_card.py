"""What is known about a trained model, in one place: `models --json` prints it for every model, and a local
model's folder (LoRA adapter or full model) carries it as README.md (a Hugging Face model card, in place of
peft's blank one) and `fireact_model.json`.

The facts: base model, method, dataset version and its content hash, settings, final train and eval loss, and
the scores of every evaluation run of the model so far. The card is written when the job's model is registered
and brought up to date (only when something changed) whenever models are listed, so scores appear once the
model has been evaluated.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..mixing.hub_cards import CITATION_SECTION
from ..errors import NotFoundError
from ..files import write_text
from ..records import RegisteredModel

if TYPE_CHECKING:
    from ..store import Store

CARD_FILE = "README.md"
FACTS_FILE = "fireact_model.json"
LOCAL_SETTINGS = ["method", "learning_rate", "lr_scheduler", "warmup_steps", "weight_decay", "epochs", "max_steps",
                  "batch_size", "grad_accum", "max_length", "overflow", "batching", "precision", "seed",
                  "num_processes"]
LORA_SETTINGS = ["lora_r", "lora_alpha", "lora_dropout", "target_modules"]
OPENAI_SETTINGS = ["model", "epochs", "suffix", "seed"]
PREFERENCE_SETTINGS = ["objective", "method", "beta"]  # shown for a model trained on preference pairs
VALIDATION_RE = re.compile(r"(?:validation|valid) loss=([0-9.eE+-]+)")


def _job(store: Store, model: RegisteredModel):
    try:
        return store.get_job(model.job) if model.job else None
    except NotFoundError:
        return None


def _losses(job: Any, kind: str) -> tuple[float | None, float | None]:
    """(final train loss, final eval loss) from the job's run folder."""
    if job is None or not job.out:
        return None, None
    from .jobs import read_metrics

    rows = read_metrics(job.out)
    train = next((r["loss"] for r in reversed(rows) if "loss" in r), job.loss_last)
    evals = [r["eval_loss"] for r in rows if "eval_loss" in r]
    if kind == "openai":
        from .openai_jobs import read_events

        evals = [v for v in map(_validation_loss, read_events(job.out)) if v is not None]
    return train, evals[-1] if evals else None


def _validation_loss(event: dict[str, Any]) -> float | None:
    """The validation loss an OpenAI job event reports (a metrics event's data, or its message), if any."""
    data = event.get("data") or {}
    for key in ("full_valid_loss", "valid_loss"):
        if isinstance(data.get(key), (int, float)):
            return float(data[key])
    m = VALIDATION_RE.search(event.get("message") or "")
    return float(m.group(1)) if m else None


def _scores(model: RegisteredModel, report: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """EM and F1 of each generation run whose model is this one (by name, or by the remote id)."""
    names = {model.name, model.path_or_id}
    return [{k: row[k] for k in ("run", "task", "method", "attempted", "em_attempted", "f1_attempted",
                                 "em_finished")}
            for row in report if row["model"] in names]


def model_facts(store: Store, model: RegisteredModel, report: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Everything `models --json` prints about a model (the card says the same); `report` is `run_report(store)`
    when the caller has it already."""
    from ..reports.figures import run_report

    config, job = model.config or {}, _job(store, model)
    keys = OPENAI_SETTINGS if model.kind == "openai" else LOCAL_SETTINGS + (LORA_SETTINGS if model.kind == "lora"
                                                                            else [])
    if config.get("objective") == "dpo" or config.get("method") == "dpo":
        keys = keys + [k for k in PREFERENCE_SETTINGS if k in config and k not in keys]
    dataset_hash = config.get("dataset_hash") or None
    if not dataset_hash and model.dataset:
        try:
            dataset_hash = store.get_dataset_version(model.dataset).content_hash
        except NotFoundError:
            dataset_hash = None
    train_loss, eval_loss = _losses(job, model.kind)
    return {**model.summary(), "method": model.kind, "dataset_hash": dataset_hash,
            "settings": {k: config[k] for k in keys if k in config},
            "steps": job.steps if job else None, "train_loss": train_loss, "eval_loss": eval_loss,
            "scores": _scores(model, run_report(store) if report is None else report)}


def _fmt(value: Any) -> str:
    if value is None:
        return "not recorded"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def model_card(facts: dict[str, Any]) -> str:
    """README.md of a local model's folder."""
    lora = facts["kind"] == "lora"
    dpo = facts["settings"].get("objective") == "dpo"
    library = "peft" if lora else "transformers"
    header = ["---", f"library_name: {library}", "pipeline_tag: text-generation", "tags:", "- fireact", "- agents",
              "- react", f"- {'lora' if lora else 'full-fine-tuning'}", *(["- dpo"] if dpo else []), "---", ""]
    settings = [f"| {k} | {', '.join(v) if isinstance(v, list) else v} |" for k, v in facts["settings"].items()]
    scores = [f"| {s['run']} | {s['task']} | {s['method']} | {s['attempted']} | {_fmt(s['em_attempted'])} | "
              f"{_fmt(s['f1_attempted'])} |" for s in facts["scores"]]
    how = "LoRA (peft) adapter" if lora else "fully fine-tuned model"
    body = [
        f"# {facts['name']}",
        "",
        f"A {how} trained by FireAct Studio (after FireAct, Chen et al., 2023) for ReAct-style agent turns "
        "(Thought / Action / Observation).",
        "",
        f"- base model: `{facts['base_model']}`",
        f"- method: {facts['method']}",
        f"- dataset version: `{facts['dataset']}` (content hash `{facts['dataset_hash']}`); " + (
            f"preference pairs (DPO, beta {facts['settings'].get('beta')}): `fireact pairs --dataset "
            f"{facts['dataset']} --out FILE` writes them" if dpo else
            f"`fireact export --dataset {facts['dataset']} --format hf --out DIR` writes it with its dataset card"),
        f"- training job: `{facts['job']}`, {facts['steps']} steps",
        f"- final train loss: {_fmt(facts['train_loss'])}; final eval loss: {_fmt(facts['eval_loss'])}",
        "",
        "## Settings",
        "",
        "| setting | value |",
        "| --- | --- |",
        *settings,
        "",
        "## Evaluation",
        "",
        *(["| run | task | method | questions | EM | F1 |", "| --- | --- | --- | --- | --- | --- |", *scores,
           "", "EM and F1 over the questions attempted (one that did not finish counts as wrong)."]
          if scores else ["Not evaluated yet: Evaluate now on the Train page's Models tab runs it on a task "
                          "split; this section then lists the runs."]),
        "",
        "## How to load",
        "",
        "```python",
        *(["from peft import PeftModel", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
           f'base = AutoModelForCausalLM.from_pretrained("{facts["base_model"]}")',
           'model = PeftModel.from_pretrained(base, "path/to/this/folder")',
           'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")']
          if lora else
          ["from transformers import AutoModelForCausalLM, AutoTokenizer", "",
           'model = AutoModelForCausalLM.from_pretrained("path/to/this/folder")',
           'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")']),
        "```",
        "",
        *CITATION_SECTION,
    ]
    return "\n".join(header + body)


def _write_if_changed(path: Path, text: str) -> bool:
    """Replace `path` with `text` (`files.write_text`: absent or a regular file, its mode kept), unless it
    holds `text` already."""
    try:
        if not path.is_symlink() and path.read_text(encoding="utf-8") == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    write_text(path, text)
    return True


def write_model_card(store: Store, model: RegisteredModel, facts: dict[str, Any] | None = None) -> Path | None:
    """Write (or bring up to date) README.md and fireact_model.json in a local model's folder; returns the
    card's path, or None for a remote model or a folder that is gone."""
    folder = Path(model.path_or_id)
    if model.kind == "openai" or not folder.is_dir():
        return None
    facts = facts or model_facts(store, model)
    _write_if_changed(folder / FACTS_FILE, json.dumps(facts, indent=2, default=str) + "\n")
    _write_if_changed(folder / CARD_FILE, model_card(facts))
    return folder / CARD_FILE


def models_with_facts(store: Store) -> list[dict[str, Any]]:
    """The facts of every registered model (read only: cards are written when a model is registered and when
    a run of it ends, `refresh_cards_for_run`)."""
    from ..reports.figures import run_report

    report = run_report(store)
    return [model_facts(store, model, report) for model in store.list_models()]


def refresh_cards_for_run(store: Store, run_model: str | None) -> None:
    """Bring the cards of the registered models a finished run evaluated up to date (its scores join them)."""
    if not run_model:
        return
    for model in store.list_models():
        if run_model in (model.name, model.path_or_id):
            write_model_card(store, model)
