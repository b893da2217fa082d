"""Tasks: loading questions from FireAct's data layout and scoring answers.

Each task lives in its own module and is looked up by lowercase name:

    task = get_task("hotpotqa")
    questions = task.load(tasks_dir, "dev")
    task.score(pred, questions[0].answer).reward

`tasks_dir` is a folder laid out like FireAct's `data/`: hotpotqa/{dev,test}.json,
strategyqa/{dev,test}.json, bamboogle/test.csv, mmlu/{dev,val}/SUBJECT_{split}.csv.
The "custom" task reads questions from an explicit CSV or JSONL file instead.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import re
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Literal, overload

from pydantic import BaseModel, ConfigDict, Field

from fireact_core.errors import FormatError, NotFoundError
from fireact_core.generation.tasks.scoring import Score, exact_match, f1_score, normalize_answer, score_qa

__all__ = [
    "Question",
    "Score",
    "Task",
    "exact_match",
    "f1_score",
    "get_task",
    "list_tasks",
    "normalize_answer",
]

_REGISTRY: dict[str, str] = {
    "hotpotqa": "hotpotqa:HotpotQATask",
    "strategyqa": "strategyqa:StrategyQATask",
    "bamboogle": "bamboogle:BamboogleTask",
    "mmlu": "mmlu:MMLUTask",
    "custom": "custom:CustomTask",
}


class Question(BaseModel):
    """One question of a task split, with its gold answer when the split has one."""

    model_config = ConfigDict(frozen=True)

    task: str
    split: str
    qid: str = Field(description="index in the file; the qid for strategyqa; subject/index for mmlu")
    question: str
    answer: str | None = Field(default=None, description="gold answer; None where the split has none")
    meta: dict[str, Any] = Field(default_factory=dict)


class Task:
    """A task: where its questions are and how an answer is scored. Subclasses set `name`."""

    name: ClassVar[str] = ""
    needs_path: ClassVar[bool] = False

    def load(self, tasks_dir: str | Path, split: str, path: str | Path | None = None) -> list[Question]:
        raise NotImplementedError

    def splits(self, tasks_dir: str | Path) -> list[str]:
        raise NotImplementedError

    def score(self, pred: str | None, gold: str | None) -> Score:
        """EM and token F1 on normalised answers (HotpotQA's rule); reward = EM."""
        return score_qa(pred, gold)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def list_tasks() -> list[str]:
    """The registered task names."""
    return sorted(_REGISTRY)


def get_task(name: str) -> Task:
    """The task registered under `name` (case-insensitive); NotFoundError for an unknown name."""
    key = name.strip().lower()
    if key not in _REGISTRY:
        raise NotFoundError(f"unknown task '{name}'; known tasks: {', '.join(list_tasks())}")
    return _make_task(key)


@cache
def _make_task(key: str) -> Task:
    module_name, class_name = _REGISTRY[key].split(":")
    module = importlib.import_module(f"{__name__}.{module_name}")
    return getattr(module, class_name)()


def file_splits(folder: Path, suffix: str) -> list[str]:
    """Split names of the files `SPLIT{suffix}` in `folder`; empty when the folder is missing."""
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(suffix)] for p in folder.iterdir() if p.is_file() and p.name.endswith(suffix))


def split_file(tasks_dir: str | Path, task: str, split: str, suffix: str, path: str | Path | None) -> Path:
    """The file holding `split` of `task`: `path` when given, else TASKS_DIR/TASK/SPLIT{suffix}."""
    if path is not None:
        return Path(path)
    folder = Path(tasks_dir) / task
    file = folder / f"{split}{suffix}"
    if not file.is_file():
        present = ", ".join(file_splits(folder, suffix)) or "none"
        raise FormatError(
            file, 1, f"no such file (splits of {task} there: {present}); copy FireAct's data/{task} "
            f"into {folder} or pass the file's path"
        )
    return file


def read_text(path: Path) -> str:
    """The file's text (UTF-8, BOM dropped); FormatError when it is missing or not UTF-8."""
    if not path.is_file():
        raise FormatError(path, 1, "no such file; check the path")
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise FormatError(path, line, "not valid UTF-8 text; save the file as UTF-8") from None


_JSON_SEPARATORS = re.compile(r"[\s,]*")


def read_json_array(path: Path) -> list[tuple[int, Any]]:
    """The items of a JSON array file, each with the line it starts on."""
    text = read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(path, exc.lineno, f"invalid JSON ({exc.msg}); fix the file or export it again") from None
    if not isinstance(data, list):
        raise FormatError(path, 1, "expected a JSON array of objects: [{\"question\": ...}, ...]")
    return list(zip(_item_lines(text, len(data)), data))


def _item_lines(text: str, count: int) -> list[int]:
    decoder = json.JSONDecoder()
    pos, last, line, lines = text.index("[") + 1, 0, 1, []
    for _ in range(count):
        gap = _JSON_SEPARATORS.match(text, pos)  # always matches (maybe empty)
        pos = gap.end() if gap else pos
        line += text.count("\n", last, pos)
        last = pos
        lines.append(line)
        _, pos = decoder.raw_decode(text, pos)
    return lines


def read_jsonl(path: Path) -> list[tuple[int, Any]]:
    """The objects of a JSON Lines file, each with its line number; blank lines are skipped."""
    records = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise FormatError(path, number, f"invalid JSON ({exc.msg}); each line must be one JSON object") from None
    return records


def read_csv_rows(path: Path) -> list[tuple[int, list[str]]]:
    """The rows of a CSV file, each with the line it starts on; empty rows are skipped."""
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    rows, start = [], 1
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append((start, row))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise FormatError(path, reader.line_num or 1, f"bad CSV ({exc}); check the quoting") from None
    return rows


@overload
def column_index(path: Path, header: list[str], name: str, required: Literal[True] = True) -> int: ...
@overload
def column_index(path: Path, header: list[str], name: str, required: bool) -> int | None: ...
def column_index(path: Path, header: list[str], name: str, required: bool = True) -> int | None:
    """The position of column `name` in a CSV header (case-insensitive)."""
    names = [cell.strip().lower() for cell in header]
    if name in names:
        return names.index(name)
    if required:
        found = ", ".join(cell.strip() for cell in header) or "nothing"
        raise FormatError(path, 1, f"missing column '{name}' (the header has: {found}); add it to the first line")
    return None


def record_field(path: Path, line: int, record: Any, key: str, kinds: tuple[type, ...] = (str,)) -> Any:
    """`record[key]` from a JSON object, checked to be one of `kinds`."""
    if not isinstance(record, dict):
        raise FormatError(path, line, f"expected a JSON object with '{key}', got {type(record).__name__}")
    if key not in record:
        raise FormatError(path, line, f"missing field '{key}'; every item needs one")
    value = record[key]
    if not isinstance(value, kinds):
        wanted = " or ".join(kind.__name__ for kind in kinds)
        raise FormatError(path, line, f"field '{key}' should be {wanted}, got {type(value).__name__}")
    return value
