"""Exporting a saved dataset version: its members as they were snapshotted, in the version's order.

Formats: the trajectory writers (openai-jsonl, alpaca, native: trajectories without their later history) plus
`messages` (every turn with a `train` flag from the version's loss mask and the per-step flags) and `parquet` (one row per member with its split and its
flagged messages). The same version always exports to the same bytes, whatever is edited afterwards.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import FireactError
from .files import written_path
from .formats import WRITERS
from .formats.fireact import alpaca_record
from .masks import flagged_messages
from .records import Trajectory

DATASET_FORMATS = ["openai-jsonl", "alpaca", "messages", "parquet", "native"]
SPLITS = ("train", "val")
SUFFIXES = {"openai-jsonl": ".jsonl", "alpaca": ".json", "messages": ".jsonl", "parquet": ".parquet", "native": ".jsonl"}


def _members(store, name: str, split: str | None) -> Iterator[tuple[str, Trajectory]]:
    return store.iter_dataset_trajectories(name, split)


def _write_parquet(rows: Iterator[tuple[str, Trajectory]], out: Path, loss_mask: str) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    message = pa.struct([("role", pa.string()), ("content", pa.string()), ("train", pa.bool_())])
    schema = pa.schema([
        ("id", pa.string()), ("split", pa.string()), ("source", pa.string()), ("task", pa.string()),
        ("method", pa.string()), ("revision", pa.int32()), ("question", pa.string()), ("gold", pa.string()),
        ("em", pa.float64()), ("f1", pa.float64()), ("messages", pa.list_(message)), ("text", pa.string()),
    ])
    cols: dict[str, list] = {f.name: [] for f in schema}
    for split, t in rows:
        values = {"id": t.id, "split": split, "source": t.source, "task": t.task, "method": t.method,
                  "revision": t.revision, "question": t.question, "gold": t.gold, "em": t.em, "f1": t.f1,
                  "messages": flagged_messages(t, loss_mask), "text": alpaca_record(t)["output"]}
        for key, value in values.items():
            cols[key].append(value)
    pq.write_table(pa.Table.from_pydict(cols, schema=schema), out, compression="zstd")
    return len(cols["id"])


def _write(store, version: dict, fmt: str, tmp: Path, split: str | None) -> int:
    rows = _members(store, version["name"], split)
    if fmt == "parquet":
        return _write_parquet(rows, tmp, version["loss_mask"])
    trajs = (t for _, t in rows)
    with open(tmp, "w", encoding="utf-8", newline="\n") as fh:  # the caller's exclusive temporary file
        if fmt == "messages":
            n = 0
            for row in messages_rows(store, version["name"], split):
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
            return n
        if fmt == "native":
            return WRITERS["native"](((t, [], [], []) for t in trajs), fh)
        return WRITERS[fmt](trajs, fh)


def export_dataset(store, name: str, fmt: str, out: str | Path, split: str | None = None, force: bool = False) -> int:
    """Write version `name` (or one of its splits) to `out` through a temporary file (`files.written_path`;
    an existing `out` is replaced only with `force`); returns how many trajectories were written."""
    if fmt not in DATASET_FORMATS:
        raise FireactError(f"unknown dataset export format '{fmt}': choose one of {', '.join(DATASET_FORMATS)}")
    if split is not None and split not in SPLITS:
        raise FireactError(f"unknown split '{split}': choose train or val")
    version = store.get_dataset_version(name)
    with written_path(out, force=force) as tmp:
        return _write(store, version, fmt, tmp, split)


def export_dataset_bytes(store, name: str, fmt: str, split: str | None = None) -> tuple[str, bytes]:
    """(file name, content) of an export, for a download button."""
    file_name = f"{name}{'-' + split if split else ''}{SUFFIXES.get(fmt, '')}"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / file_name
        export_dataset(store, name, fmt, path, split)
        return file_name, path.read_bytes()


def messages_rows(store, name: str, split: str | None = None) -> Iterator[dict]:
    """The `messages` export as dicts (what a trainer reads), without writing a file."""
    version = store.get_dataset_version(name)
    for member_split, t in _members(store, name, split):
        yield {"messages": flagged_messages(t, version["loss_mask"]), "id": t.id, "split": member_split,
               "task": t.task, "method": t.method}


