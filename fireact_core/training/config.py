"""Training configurations: dataclasses with help text per field, validated when built.

Every field carries `metadata` (help, group, choices, bounds) so that the Train page builds its form from
the class itself and the CLI and the page can never disagree about what a setting means.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, get_type_hints

from ..errors import FireactError
from ..files import write_text
from ..redact import redact_value

if TYPE_CHECKING:
    from ..store import Store


def default_run_folder(store: Store, job_id: str) -> Path:
    """`runs/JOB` beside the database file (or in the working directory for an in-memory database)."""
    base = Path.cwd() if store.path == ":memory:" else Path(store.path).expanduser().resolve().parent
    return base / "runs" / job_id


class ConfigError(FireactError):
    """A training setting is out of range or inconsistent."""


def setting(default: Any, help: str, group: str = "Training", **extra: Any) -> Any:
    """A dataclass field with help text and form hints (choices, min, max, step, hidden)."""
    meta = {"help": help, "group": group, **extra}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


class ConfigMixin:
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]  # every config is a dataclass

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown settings {unknown}; known: {sorted(known)}")
        return cls(**data)

    @classmethod
    def from_options(cls, **options: Any):
        """The config from command-line options: text converted to each field's type (flags as True); a value
        that does not convert is a ConfigError naming the field."""
        hints = get_type_hints(cls)
        data = {}
        for name, value in options.items():
            kind = hints.get(name)
            if isinstance(value, str) and kind in (int, float):
                try:
                    value = kind(value)
                except ValueError:
                    raise ConfigError(f"{cls.__name__}.{name} = {value!r}: not a number") from None
            data[name] = value
        return cls.from_dict(data)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(redact_value(self.to_dict()), indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path):
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the training config: {exc}") from exc

    def _check(self, ok: bool, name: str, message: str) -> None:
        if not ok:
            raise ConfigError(f"{type(self).__name__}.{name} = {getattr(self, name)!r}: {message}")


@dataclass
class LocalTrainConfig(ConfigMixin):
    """Fine-tune a local causal LM on a dataset version with transformers' Trainer (LoRA through peft, or full)."""

    dataset: str = setting("", "Dataset version to train on (its train split; its val split is used for eval loss).",
                           "Data")
    base_model: str = setting("", "Folder of the base model (anything `AutoModelForCausalLM.from_pretrained` loads).",
                              "Model")
    out: str = setting("", "Run folder: config, logs, metrics.jsonl, checkpoints and the trained adapter/model.",
                       "Model")
    method: str = setting("lora", "LoRA trains small adapter matrices; full updates every weight.", "Model",
                          choices=["lora", "full"])
    model_name: str = setting("", "Name under which the result is registered (default: derived from the job).",
                              "Model")
    objective: str = setting("sft", "sft learns the dataset's trajectories; dpo learns to prefer the chosen side of "
                             "each preference pair over the rejected one (TRL's DPOTrainer; needs a version of "
                             "pairs, made on the Mix page).", "Model", choices=["sft", "dpo"])
    beta: float = setting(0.1, "DPO: how far the model may move from the base model (higher keeps it closer).",
                          "DPO", min=0.0, max=10.0, step=0.01)
    lora_r: int = setting(16, "LoRA rank (size of the adapter matrices).", "LoRA", min=1, max=1024)
    lora_alpha: int = setting(32, "LoRA scaling numerator (the update is scaled by alpha / r).", "LoRA", min=1)
    lora_dropout: float = setting(0.05, "Dropout on the LoRA input.", "LoRA", min=0.0, max=0.9, step=0.01)
    target_modules: list[str] = setting(["q_proj", "k_proj", "v_proj", "o_proj"],
                                        "Linear layers that get adapters ('all-linear' for every linear layer).",
                                        "LoRA")
    learning_rate: float = setting(2e-4, "Peak learning rate.", "Training", min=1e-8, max=1.0, format="%.2e")
    epochs: float = setting(3.0, "Passes over the training data (ignored when max steps is set).", "Training",
                            min=0.01, max=1000.0)
    max_steps: int = setting(0, "Stop after this many optimiser steps (0: run for `epochs`).", "Training", min=0)
    batch_size: int = setting(4, "Examples per device per forward pass.", "Training", min=1, max=4096)
    grad_accum: int = setting(1, "Forward passes accumulated per optimiser step.", "Training", min=1, max=1024)
    lr_scheduler: str = setting("cosine", "Learning-rate schedule after warm-up.", "Training",
                                choices=["cosine", "linear", "constant", "constant_with_warmup"])
    warmup_steps: int = setting(0, "Steps of linear warm-up.", "Training", min=0)
    weight_decay: float = setting(0.0, "AdamW weight decay.", "Training", min=0.0, max=1.0)
    max_length: int = setting(1024, "Longest example in tokens; longer ones are dropped or truncated (reported).",
                              "Data", min=8, max=1_000_000)
    overflow: str = setting("drop", "What to do with examples longer than max length: drop them, or keep their "
                            "first max-length tokens.", "Data", choices=["drop", "truncate"])
    batching: str = setting("group_by_length", "How examples are batched: group similar lengths (little padding), "
                            "pack several per row with no padding, or in random order.", "Data",
                            choices=["group_by_length", "packing", "random"])
    precision: str = setting("auto", "Numeric precision: auto picks bf16 on a GPU that has it, else fp32.",
                             "Hardware", choices=["auto", "fp32", "bf16", "fp16"])
    gradient_checkpointing: bool = setting(False, "Recompute activations in the backward pass to save memory.",
                                           "Hardware")
    use_cpu: bool = setting(False, "Train on the CPU even when a GPU is present.", "Hardware")
    num_processes: int = setting(1, "Processes (usually one per GPU); more than one runs through `accelerate "
                                 "launch`.", "Hardware", min=1, max=1024)
    accelerate_config: str = setting("", "An `accelerate config` YAML (several machines, DeepSpeed, FSDP); when set "
                                     "the job runs through `accelerate launch --config_file`.", "Hardware")
    seed: int = setting(42, "Seed for data order, dropout and adapter initialisation.", "Training", min=0)
    logging_steps: int = setting(1, "Log loss, learning rate and tokens/s every this many steps.", "Checkpoints",
                                 min=1)
    eval_steps: int = setting(0, "Compute eval loss on the val split every this many steps (0: at the end of "
                              "each epoch).", "Checkpoints", min=0)
    save_steps: int = setting(0, "Save a checkpoint every this many steps (0: once per epoch).", "Checkpoints",
                              min=0)
    save_total_limit: int = setting(2, "Checkpoints kept on disk (oldest removed first).", "Checkpoints", min=1)
    resume: bool = setting(False, "Continue from the newest checkpoint in the run folder.", "Checkpoints")
    report_to: str = setting("tensorboard", "Where the curves go besides metrics.jsonl, written locally into the run "
                             "folder: TensorBoard event files, an offline W&B run or an MLflow file store.",
                             "Tracking", choices=["tensorboard", "wandb", "mlflow", "none"])
    dataset_hash: str = setting("", "Content hash of the dataset version, recorded when the job starts.", "Data",
                                hidden=True)
    train_file: str = setting("", "Training examples (chat messages with per-turn train flags, JSONL); written by "
                              "the job runner from the dataset version.", "Data", hidden=True)
    val_file: str = setting("", "Validation examples in the same form (may be empty).", "Data", hidden=True)

    def __post_init__(self) -> None:
        if isinstance(self.target_modules, str):
            self.target_modules = [m.strip() for m in self.target_modules.split(",") if m.strip()]
        for f in dataclasses.fields(self):
            meta, value = f.metadata, getattr(self, f.name)
            if "choices" in meta:
                self._check(value in meta["choices"], f.name, f"choose one of {meta['choices']}")
            if "min" in meta:
                self._check(value >= meta["min"], f.name, f"must be at least {meta['min']}")
            if "max" in meta:
                self._check(value <= meta["max"], f.name, f"must be at most {meta['max']}")
        self._check(self.method != "lora" or bool(self.target_modules), "target_modules",
                    "LoRA needs at least one target module (e.g. q_proj, v_proj, or all-linear)")
        self._check(self.max_steps > 0 or self.epochs > 0, "epochs", "give epochs or max steps")

    def check_paths(self) -> None:
        """What a run needs on disk; called before a job starts (not on every form edit)."""
        self._check(bool(self.dataset) or bool(self.train_file), "dataset", "choose a dataset version")
        base = Path(self.base_model).expanduser()
        self._check(bool(self.base_model) and base.is_dir(), "base_model",
                    "give the folder of a local model (with config.json); nothing is downloaded")
        self._check((base / "config.json").exists(), "base_model", f"no config.json in {base}: not a model folder")
        self._check(bool(self.out), "out", "give a run folder")
        if self.accelerate_config:
            self._check(Path(self.accelerate_config).is_file(), "accelerate_config", "no such file")
        from .tracking import check_tracker

        check_tracker(self.report_to)

    @property
    def distributed(self) -> bool:
        return self.num_processes > 1 or bool(self.accelerate_config)


@dataclass
class OpenAITrainConfig(ConfigMixin):
    """Fine-tune a model through the OpenAI fine-tuning API (or any server that speaks it)."""

    dataset: str = setting("", "Dataset version to upload (its train split; its val split as validation file).",
                           "Data")
    model: str = setting("gpt-4o-mini-2024-07-18", "Base model to fine-tune, as the API names it.", "Model")
    method: str = setting("supervised", "supervised learns the dataset's trajectories; dpo uploads preference pairs "
                          "for the API's preference fine-tuning (needs a version of pairs).", "Model",
                          choices=["supervised", "dpo"])
    beta: float = setting(0.0, "DPO: how far the model may move from the base model (0: let the API choose).",
                          "Training", min=0.0, max=10.0, step=0.01)
    epochs: int = setting(0, "Passes over the data (0: let the API choose).", "Training", min=0, max=50)
    suffix: str = setting("", "Up to 64 characters added to the fine-tuned model's name.", "Model")
    base_url: str = setting("", "API base URL (empty: $OPENAI_BASE_URL, else api.openai.com).", "Model")
    model_name: str = setting("", "Name under which the result is registered (default: the fine-tuned model id).",
                              "Model")
    seed: int = setting(0, "Seed for the remote job (0: none).", "Training", min=0)
    out: str = setting("", "Folder for the uploaded files and the job's events (default: runs/JOB).", "Data",
                       hidden=True)
    dataset_hash: str = setting("", "Content hash of the dataset version, recorded when the job starts.", "Data",
                                hidden=True)

    def __post_init__(self) -> None:
        self._check(self.method in ("supervised", "dpo"), "method", "choose supervised or dpo")
        self._check(0.0 <= self.beta <= 10.0, "beta", "between 0 (API default) and 10")
        self._check(len(self.suffix) <= 64, "suffix", "at most 64 characters")
        self._check(0 <= self.epochs <= 50, "epochs", "between 0 (API default) and 50")
        self._check(self.base_url == "" or self.base_url.startswith(("http://", "https://")), "base_url",
                    "an http:// or https:// URL")

    def check_paths(self) -> None:
        self._check(bool(self.dataset), "dataset", "choose a dataset version")
        self._check(bool(self.model), "model", "name the base model")


def form_fields(cls: type) -> list[dict[str, Any]]:
    """One entry per visible field: name, type name, default, help, group, choices, min, max, step."""
    hints = get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if f.metadata.get("hidden"):
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        kind = getattr(hints[f.name], "__name__", str(hints[f.name]))
        out.append({"name": f.name, "type": "list" if kind == "list" else kind, "default": default,
                    "label": f.name.replace("_", " ").capitalize(), **dict(f.metadata)})
    return out
