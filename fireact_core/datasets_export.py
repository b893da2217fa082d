"""Exporting a saved dataset version: its members as they were snapshotted, in the version's order.

Formats: the trajectory writers (openai-jsonl, alpaca, native: trajectories without their later history) plus
`messages` (every turn with a `train` flag from the version's loss mask and the per-step flags) and `parquet` (one row per member with its split and its
flagged messages). The folder formats write a folder for a trainer or the Hub (fireact_core.export_folders):
`hf` (Parquet splits and a dataset card), `axolotl` and `llamafactory` (data and the trainer's dataset config).
The same version always exports to the same bytes, whatever is edited afterwards.
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
FOLDER_FORMATS = ["hf", "axolotl", "llamafactory"]
SPLITS = ("train", "val")
SUFFIXES = {"openai-jsonl": ".jsonl", "alpaca": ".json", "messages": ".jsonl", "parquet": ".parquet", "native": ".jsonl"}


def _members(store, name: str, split: str | None) -> Iterator[tuple[str, Trajectory]]:
    return store.iter_dataset_trajectories(name, split)


def member_row(split: str, t: Trajectory, loss_mask: str, text: bool = True) -> dict:
    """Every column a table export can hold for one member (each export keeps the ones its schema names);
    `text`: with the Alpaca text too."""
    row = {"id": t.id, "split": split, "source": t.source, "task": t.task, "method": t.method,
           "revision": t.revision, "qid": t.qid, "question": t.question, "gold": t.gold,
           "prediction": t.final_answer, "em": t.em, "f1": t.f1, "reward": t.reward, "model": t.model,
           "messages": flagged_messages(t, loss_mask)}
    if text:
        row["text"] = alpaca_record(t)["output"]
    return row


def arrow_table(rows: Iterator[dict], schema):
    """An Arrow table of `schema`'s columns, taken from `member_row` dicts."""
    import pyarrow as pa

    cols: dict[str, list] = {f.name: [] for f in schema}
    for row in rows:
        for key, values in cols.items():
            values.append(row[key])
    return pa.Table.from_pydict(cols, schema=schema)


def parquet_schema(names: list[str]):
    import pyarrow as pa

    message = pa.struct([("role", pa.string()), ("content", pa.string()), ("train", pa.bool_())])
    types = {"revision": pa.int32(), "em": pa.float64(), "f1": pa.float64(), "reward": pa.bool_(),
             "messages": pa.list_(message)}
    return pa.schema([(name, types.get(name, pa.string())) for name in names])


PARQUET_COLUMNS = ["id", "split", "source", "task", "method", "revision", "question", "gold", "em", "f1", "messages",
                   "text"]


def _write_parquet(rows: Iterator[tuple[str, Trajectory]], out: Path, loss_mask: str) -> int:
    import pyarrow.parquet as pq

    table = arrow_table((member_row(split, t, loss_mask) for split, t in rows), parquet_schema(PARQUET_COLUMNS))
    pq.write_table(table, out, compression="zstd")
    return table.num_rows


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
    an existing `out` is replaced only with `force`); returns how many trajectories were written. The folder
    formats (`hf`, `axolotl`, `llamafactory`) write a folder `out` with both splits (fireact_core.export_folders)."""
    if fmt not in DATASET_FORMATS and fmt not in FOLDER_FORMATS:
        raise FireactError(f"unknown dataset export format '{fmt}': choose one of "
                           f"{', '.join(DATASET_FORMATS + FOLDER_FORMATS)}")
    if split is not None and split not in SPLITS:
        raise FireactError(f"unknown split '{split}': choose train or val")
    version = store.get_dataset_version(name)
    out = Path(out)
    if fmt in FOLDER_FORMATS:
        if not out.parent.is_dir():
            raise FireactError(f"{out}: folder {out.parent} does not exist")
        if split is not None:
            raise FireactError(f"--format {fmt} writes a folder holding both splits: leave out --split")
        from .export_folders import write_folder

        return write_folder(store, version, fmt, out)
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


