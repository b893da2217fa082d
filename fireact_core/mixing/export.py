"""Exporting a saved dataset version: its members as they were snapshotted, in the version's order.

Formats: the trajectory writers (openai-jsonl, alpaca, native: trajectories without their later history) plus
`messages` (every turn with a `train` flag from the version's loss mask and the per-step flags) and `parquet` (one row per member with its split and its
flagged messages). The folder formats write a folder for a trainer or the Hub (fireact_core.mixing.folders):
`hf` (Parquet splits and a dataset card), `axolotl` and `llamafactory` (data and the trainer's dataset config).
The same version always exports to the same bytes, whatever is edited afterwards.

`write_version` is the one writer of a version's files: the exports above, the example files a training job
reads (`examples`: one `{"id", "loss_mask", "messages"}` line per member) and the OpenAI job's chat files
(`write_splits`: one file per split).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from collections.abc import Callable, Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any

from ..errors import FireactError
from ..files import written_path
from ..io.formats import WRITERS
from ..io.formats.fireact import alpaca_record
from ..io.masks import flagged_messages
from ..records import DatasetVersion, Trajectory

if TYPE_CHECKING:
    from ..store import Store

DATASET_FORMATS = ["openai-jsonl", "alpaca", "messages", "parquet", "native"]
FOLDER_FORMATS = ["hf", "axolotl", "llamafactory"]
SPLITS = ("train", "val")
EXAMPLES = "examples"  # the training job's files (not offered as an export: a trainer reads `messages`)
SUFFIXES = {"openai-jsonl": ".jsonl", "alpaca": ".json", "messages": ".jsonl", "parquet": ".parquet", "native": ".jsonl"}


Members = Iterable[tuple[str, Trajectory]]  # (split, trajectory as snapshotted), in position order


def _members(store: Store, name: str, split: str | None) -> Iterator[tuple[str, Trajectory]]:
    return store.iter_dataset_trajectories(name, split)


def _json_lines(rows: Iterable[dict[str, Any]], fh: IO[str]) -> int:
    n = 0
    for row in rows:
        fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        n += 1
    return n


def _messages_row(split: str, t: Trajectory, loss_mask: str) -> dict[str, Any]:
    return {"messages": flagged_messages(t, loss_mask), "id": t.id, "split": split, "task": t.task, "method": t.method}


def _messages_lines(members: Members, loss_mask: str, fh: IO[str]) -> int:
    return _json_lines((_messages_row(split, t, loss_mask) for split, t in members), fh)


def _examples_lines(members: Members, loss_mask: str, fh: IO[str]) -> int:
    return _json_lines(({"id": t.id, "loss_mask": loss_mask, "messages": flagged_messages(t, loss_mask)}
                        for _, t in members), fh)


# format -> writer of the members to an open text file (the loss mask given for the formats that flag turns)
TEXT_WRITERS: dict[str, Callable[[Members, str, IO[str]], int]] = {
    "openai-jsonl": lambda members, _, fh: WRITERS["openai-jsonl"]((t for _, t in members), fh),
    "alpaca": lambda members, _, fh: WRITERS["alpaca"]((t for _, t in members), fh),
    "native": lambda members, _, fh: WRITERS["native"](((t, [], [], []) for _, t in members), fh),
    "messages": _messages_lines,
    EXAMPLES: _examples_lines,
}


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


def write_version(store: Store, version: DatasetVersion, fmt: str, out: str | Path, split: str | None = None,
                  force: bool = False) -> int:
    """Write the members of `version` (or of one of its splits) in format `fmt` (a file format of
    `DATASET_FORMATS`, or `EXAMPLES`) to `out`, through a temporary file beside it (`files.written_path`; an
    existing `out` is replaced only with `force`); returns how many members were written."""
    loss_mask = version.loss_mask
    members = _members(store, version.name, split)
    with written_path(Path(out), force=force) as tmp:
        if fmt == "parquet":
            return _write_parquet(members, tmp, loss_mask)
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:  # the exclusive temporary file
            return TEXT_WRITERS[fmt](members, loss_mask, fh)


def write_splits(store: Store, name: str, fmt: str, folder: str | Path) -> dict[str, tuple[Path, int]]:
    """Write each split of version `name` that has members to `folder`/{split}.jsonl (replacing what is there);
    returns {split: (file, members written)}. A version with no training member is an error."""
    version = store.get_dataset_version(name)
    if not version.n_train:
        raise FireactError(f"dataset version '{name}' has no training members: make a mix with some")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for split in SPLITS:
        if {"train": version.n_train, "val": version.n_val}.get(split):
            path = folder / f"{split}.jsonl"
            files[split] = (path, write_version(store, version, fmt, path, split, force=True))
    return files


def export_dataset(store: Store, name: str, fmt: str, out: str | Path, split: str | None = None, force: bool = False) -> int:
    """Write version `name` (or one of its splits) to `out` through a temporary file (`files.written_path`;
    an existing `out` is replaced only with `force`); returns how many trajectories were written. The folder
    formats (`hf`, `axolotl`, `llamafactory`) write a folder `out` with both splits (fireact_core.mixing.folders)."""
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
        from .folders import write_folder

        return write_folder(store, version, fmt, out)
    return write_version(store, version, fmt, out, split, force=force)


def export_dataset_bytes(store: Store, name: str, fmt: str, split: str | None = None) -> tuple[str, bytes]:
    """(file name, content) of an export, for a download button."""
    file_name = f"{name}{'-' + split if split else ''}{SUFFIXES.get(fmt, '')}"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / file_name
        export_dataset(store, name, fmt, path, split)
        return file_name, path.read_bytes()


def messages_rows(store: Store, name: str, split: str | None = None) -> Iterator[dict[str, Any]]:
    """The `messages` export as dicts (what a trainer reads), without writing a file."""
    loss_mask = store.get_dataset_version(name).loss_mask
    for member_split, t in _members(store, name, split):
        yield _messages_row(member_split, t, loss_mask)


