"""From a dataset version to tokenised training examples.

A trajectory becomes chat messages whose turns say whether they carry loss (`fireact_core.io.masks`):
assistant turns (thought + action) follow the step's `flags.train`; observation turns carry loss only when
the dataset's loss mask is "none"; the prompt and the question never do. Tokens without loss get label -100.
Examples longer than `max_length` are counted and dropped or truncated as asked, never silently.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..errors import FireactError, NotFoundError
from ..mixing.export import EXAMPLES, TEXT_WRITERS, write_splits
from ..files import write_file
from ..io.masks import IGNORE, tokenize_example
from ..records import Trajectory

if TYPE_CHECKING:
    from ..store import Store


@dataclass
class LengthReport:
    """How many examples fit in `max_length`, and what happened to those that did not."""

    max_length: int
    overflow: str
    examples: int = 0
    kept: int = 0
    over_max_length: int = 0
    dropped: int = 0
    truncated: int = 0
    no_trained_tokens: int = 0
    longest: int = 0
    tokens: int = 0
    trained_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        action = f"{self.dropped} dropped" if self.overflow == "drop" else f"{self.truncated} truncated"
        text = (f"{self.examples} examples, {self.over_max_length} longer than {self.max_length} tokens ({action}; "
                f"longest {self.longest}); {self.kept} kept, {self.tokens} tokens, {self.trained_tokens} with loss")
        if self.no_trained_tokens:
            text += f"; {self.no_trained_tokens} dropped with no token left to train on"
        return text


def write_examples(trajs: Iterable[Trajectory], path: str | Path, loss_mask: str) -> int:
    """Write one `{"id", "loss_mask", "messages"}` line per trajectory (messages with per-turn `train` flags,
    the dataset's policy and the per-step flags applied): the file a training process reads."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with write_file(path, force=True) as out:
        return TEXT_WRITERS[EXAMPLES]((("train", t) for t in trajs), loss_mask, out)


def read_examples(path: str | Path) -> list[dict[str, Any]]:
    """The rows `write_examples` wrote."""
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"{path}: no training examples there (the job runner writes them from the dataset)")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def prepare_examples(rows: Iterable[dict[str, Any] | Trajectory], tokenizer: Any, max_length: int,
                     overflow: str = "drop", loss_mask: str = "observations") -> tuple[list[dict], LengthReport]:
    """Tokenise every example (a Trajectory, or a row `write_examples` wrote, whose own loss mask wins); count,
    then drop or truncate the ones over `max_length`."""
    if overflow not in ("drop", "truncate"):
        raise FireactError(f"overflow '{overflow}': choose drop or truncate")
    report = LengthReport(max_length=max_length, overflow=overflow)
    examples = []
    for row in rows:
        report.examples += 1
        mask = row.get("loss_mask", loss_mask) if isinstance(row, dict) else loss_mask
        ex = tokenize_example(row, tokenizer, mask)
        report.longest = max(report.longest, ex["n_tokens"])
        if ex["n_tokens"] > max_length:
            report.over_max_length += 1
            if overflow == "drop":
                report.dropped += 1
                continue
            report.truncated += 1
            ex = {k: ex[k][:max_length] for k in ("input_ids", "labels", "attention_mask")}
        if all(label == IGNORE for label in ex["labels"]):
            report.no_trained_tokens += 1
            continue
        report.kept += 1
        report.tokens += len(ex["input_ids"])
        report.trained_tokens += sum(label != IGNORE for label in ex["labels"])
        examples.append({k: ex[k] for k in ("input_ids", "labels", "attention_mask")})
    return examples, report


@dataclass
class TokenCounter:
    """Real and padded token positions seen by a collator (for tokens/s and the share of padding)."""

    real: int = 0
    padded: int = 0
    batches: int = 0
    sizes: list[int] = field(default_factory=list)

    @property
    def padding_share(self) -> float:
        return self.padded / (self.real + self.padded) if self.real + self.padded else 0.0


class PaddingCollator:
    """Right-pads a batch to its longest example (labels with -100) and counts real vs padded positions."""

    def __init__(self, pad_id: int, counter: TokenCounter | None = None, multiple_of: int | None = None):
        self.pad_id = pad_id
        self.counter = counter or TokenCounter()
        self.multiple_of = multiple_of

    def __call__(self, batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(ex["input_ids"]) for ex in batch)
        if self.multiple_of:
            width = -(-width // self.multiple_of) * self.multiple_of
        out: dict[str, list[Any]] = {"input_ids": [], "labels": [], "attention_mask": []}
        for ex in batch:
            pad = width - len(ex["input_ids"])
            out["input_ids"].append(ex["input_ids"] + [self.pad_id] * pad)
            out["labels"].append(ex["labels"] + [IGNORE] * pad)
            out["attention_mask"].append([1] * len(ex["input_ids"]) + [0] * pad)
            self.counter.real += len(ex["input_ids"])
            self.counter.padded += pad
        self.counter.batches += 1
        return {k: torch.tensor(v, dtype=torch.long) for k, v in out.items()}


class PackingCollator:
    """Packs a batch into one row with no padding (transformers' DataCollatorWithFlattening): position ids
    restart at every example, so attention stays within each example."""

    def __init__(self, counter: TokenCounter | None = None):
        from transformers import DataCollatorWithFlattening

        self.inner = DataCollatorWithFlattening(return_position_ids=True, separator_id=IGNORE)
        self.counter = counter or TokenCounter()

    def __call__(self, batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        out = self.inner([{"input_ids": ex["input_ids"], "labels": ex["labels"]} for ex in batch])
        self.counter.real += sum(len(ex["input_ids"]) for ex in batch)
        self.counter.batches += 1
        return out


def make_collator(batching: str, pad_id: int, counter: TokenCounter | None = None):
    return PackingCollator(counter) if batching == "packing" else PaddingCollator(pad_id, counter)


def export_dataset(store: Store, dataset: str, folder: str | Path) -> dict[str, Any]:
    """Write a dataset version's train and val members (as snapshotted) to `folder`/train.jsonl and val.jsonl,
    with its loss mask applied; returns the file names, counts and the mask. A training process reads only these
    files, so it never holds the database."""
    version = store.get_dataset_version(dataset)
    files = write_splits(store, dataset, EXAMPLES, folder)
    info: dict[str, Any] = {"dataset": dataset, "loss_mask": version.loss_mask,
                            "hash": version.content_hash}
    for split in ("train", "val"):
        path, n = files.get(split, ("", 0))
        info[f"n_{split}"], info[f"{split}_file"] = n, str(path)
    return info


def export_pair_dataset(store: Store, dataset: str, folder: str | Path) -> dict[str, Any]:
    """Write a version of pairs' train and val pairs (built among its snapshotted members) to `folder` as DPO rows
    (TRL's conversational prompt, chosen, rejected); returns the same facts as `export_dataset`."""
    from ..curation.pairs import dataset_pairs, pair_rows

    version = store.get_dataset_version(dataset)
    by_split = dataset_pairs(store, dataset)
    if not by_split.get("train"):
        raise FireactError(f"dataset version '{dataset}' gives no preference pair in its train split: its members "
                           "need edits or continuations with one right and one wrong answer")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {"dataset": dataset, "loss_mask": version.loss_mask,
                            "hash": version.content_hash, "val_file": "", "n_val": 0}
    for split in ("train", "val"):
        rows = list(pair_rows(by_split.get(split, []), "dpo"))
        if not rows:
            continue
        with write_file(folder / f"{split}.jsonl", force=True) as out:
            for row in rows:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        info[f"{split}_file"], info[f"n_{split}"] = str(folder / f"{split}.jsonl"), len(rows)
    return info
