"""A dataset version as a folder ready for the Hugging Face Hub or for a trainer researchers already use.

    hf            data/{train,validation}-00000-of-00001.parquet, README.md (dataset card)
    axolotl       data/{train,validation}.jsonl, axolotl.yaml (its `datasets` / `test_datasets`), README.md
    llamafactory  data/{train,validation}.json, dataset_info.json (its entries for both splits), README.md

Every folder has the dataset card (fireact_core.mixing.hub_cards), whose YAML header declares the configs and splits, so
`datasets.load_dataset(DIR)` and `huggingface-cli upload` take any of them. Rows keep the version's order; each
chat turn carries a `train` flag from the version's loss mask and the per-step switches (LLaMA-Factory has no
per-turn flag: what it would train differently is counted and said in the card).

The folder is built beside `out` and moved into place at the end. An existing `out` is replaced only when it
holds nothing but what an export writes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .hub_cards import dataset_card
from .export import arrow_table, member_row, parquet_schema
from ..errors import FireactError
from ..records import DatasetVersion

if TYPE_CHECKING:
    from ..store import Store

SPLIT_NAMES = {"train": "train", "val": "validation"}
HF_COLUMNS = ["id", "messages", "task", "method", "source", "qid", "question", "gold", "prediction", "em", "f1",
              "reward", "model", "revision"]
JSON_COLUMNS = ["id", "messages", "task", "method", "source", "qid", "em"]
WRITTEN = {"README.md", "data", "axolotl.yaml", "dataset_info.json"}


def _rows_by_split(store: Store, version: DatasetVersion) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {"train": [], "validation": []}
    for split, t in store.iter_dataset_trajectories(version.name):
        rows[SPLIT_NAMES.get(split, split)].append(member_row(split, t, version.loss_mask, text=False))
    return {split: members for split, members in rows.items() if members}


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps({k: row[k] for k in JSON_COLUMNS}, ensure_ascii=False) + "\n")


def _hf(folder: Path, rows: dict[str, list[dict]], version: DatasetVersion) -> dict[str, Any]:
    import pyarrow.parquet as pq

    schema = parquet_schema(HF_COLUMNS)
    files, nbytes = {}, {}
    for split, members in rows.items():
        files[split] = f"data/{split}-00000-of-00001.parquet"
        table = arrow_table(iter(members), schema)
        pq.write_table(table, folder / files[split], compression="zstd")
        nbytes[split] = table.nbytes
    return {"files": files, "schema": schema, "nbytes": nbytes}


def _axolotl(folder: Path, rows: dict[str, list[dict]], version: DatasetVersion) -> dict[str, Any]:
    files = {}
    for split, members in rows.items():
        files[split] = f"data/{split}.jsonl"
        _write_jsonl(folder / files[split], members)
    (folder / "axolotl.yaml").write_text(axolotl_config(version, files), encoding="utf-8")
    return {"files": files}


def axolotl_config(version: DatasetVersion, files: dict[str, str]) -> str:
    """axolotl's dataset settings for the folder's files: `type: chat_template` over `messages`, each turn's
    `train` flag deciding its loss (`message_field_training`), the end-of-turn token trained with its turn."""
    def entry(path: str) -> list[str]:
        return [f"  - path: {json.dumps(path)}", "    ds_type: json", "    split: train", "    type: chat_template",
                "    field_messages: messages", "    message_property_mappings:", "      role: role",
                "      content: content", "    message_field_training: train", "    train_on_eos: turn"]

    lines = [f"# axolotl datasets for FireAct Studio dataset version {version.name} "
             f"(content hash {version.content_hash}).",
             "# Paths are relative to this folder: add base_model, adapter and the training settings, then run",
             "# `axolotl train axolotl.yaml` from here. Each turn's `train` flag says whether it carries loss.",
             "chat_template: tokenizer_default", "datasets:", *entry(files["train"])]
    if "validation" in files:
        lines += ["test_datasets:", *entry(files["validation"])]
    return "\n".join(lines) + "\n"


def llamafactory_messages(messages: list[dict]) -> tuple[list[dict] | None, Counter]:
    """The turns LLaMA-Factory's sharegpt reader accepts (an optional system turn, then user and assistant
    alternating, ending with the assistant), or None when they cannot be put so; and what it would train
    differently from the flags: assistant turns switched off (it trains them) and user turns with loss (it
    cannot train them)."""
    diff: Counter = Counter()
    turns = list(messages)
    while turns and turns[-1]["role"] != "assistant":
        diff["final turns after the last assistant turn left out (it needs the assistant last)"] += 1
        turns.pop()
    body = turns[1:] if turns and turns[0]["role"] == "system" else turns
    if not body or len(body) % 2 or any(m["role"] != ("user", "assistant")[i % 2] for i, m in enumerate(body)):
        return None, diff
    diff["assistant turns without loss it trains"] = sum(m["role"] == "assistant" and not m["train"] for m in body)
    diff["user turns with loss it cannot train"] = sum(m["role"] == "user" and m["train"] for m in body)
    return [{"role": m["role"], "content": m["content"]} for m in turns], diff


def _llamafactory(folder: Path, rows: dict[str, list[dict]], version: DatasetVersion) -> dict[str, Any]:
    files, info, notes, counts = dict[str, Any](), dict[str, Any](), Counter[str](), dict[str, Any]()
    for split, members in rows.items():
        kept = []
        for row in members:
            messages, diff = llamafactory_messages(row["messages"])
            notes.update(diff)
            if messages is None:
                notes["rows left out (turns that do not alternate user / assistant)"] += 1
                continue
            kept.append({**{k: row[k] for k in JSON_COLUMNS}, "messages": messages})
        files[split], counts[split] = f"data/{split}.json", len(kept)
        (folder / files[split]).write_text(json.dumps(kept, ensure_ascii=False, indent=1), encoding="utf-8")
        name = version.name if split == "train" else f"{version.name}_{split}"
        info[name] = llamafactory_entry(files[split])
    (folder / "dataset_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return {"files": files, "notes": {k: v for k, v in notes.items() if v}, "entries": list(info), "kept": counts}


def llamafactory_entry(file_name: str) -> dict[str, Any]:
    """LLaMA-Factory's dataset_info.json entry for a sharegpt file of {role, content} messages."""
    return {"file_name": file_name, "formatting": "sharegpt", "columns": {"messages": "messages"},
            "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
                     "system_tag": "system"}}


WRITERS: dict[str, Callable[[Path, dict, DatasetVersion], dict]] = {"hf": _hf, "axolotl": _axolotl,
                                                          "llamafactory": _llamafactory}


def write_folder(store: Store, version: DatasetVersion, fmt: str, out: Path) -> int:
    """Write the folder `fmt` for a version (both splits) at `out`; returns how many members it holds."""
    rows = _rows_by_split(store, version)
    if "train" not in rows:
        raise FireactError(f"dataset version '{version.name}' has no training members to export")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        tmp.chmod(0o755)
        (tmp / "data").mkdir()
        written = WRITERS[fmt](tmp, rows, version)
        parent = store.get_dataset_version(version.parent) if version.parent else None
        card = dataset_card(version, fmt, rows, written, parent)
        (tmp / "README.md").write_text(card, encoding="utf-8")
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sum(len(members) for members in rows.values())


def _move_into_place(tmp: Path, out: Path) -> None:
    if not os.path.lexists(out):
        os.rename(tmp, out)
        return
    if out.is_symlink() or not out.is_dir():
        raise FireactError(f"{out} exists and is not a folder: choose a new folder to export into")
    others = sorted(p.name for p in out.iterdir() if p.name not in WRITTEN)
    if (out / "data").is_dir():
        others += sorted(f"data/{p.name}" for p in (out / "data").iterdir()
                         if not p.name.startswith(("train", "validation")))
    if others:
        raise FireactError(f"{out} holds {others[0]}, which an export does not write: choose an empty or new folder")
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
    os.rename(out, old / "export")
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
