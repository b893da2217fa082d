"""Custom questions from an explicit CSV (question, answer columns) or JSONL ({"question", "answer"}) file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fireact_core.errors import FormatError, PrerequisiteError
from fireact_core.generation.tasks import Question, Task, read_json_array, read_jsonl, record_field
from fireact_core.generation.tasks.bamboogle import load_qa_csv

_READERS = {".jsonl": read_jsonl, ".json": read_json_array}


class CustomTask(Task):
    """Questions from a file you name; scored like HotpotQA. The answer column or field is optional."""

    name = "custom"
    needs_path = True

    def splits(self, tasks_dir: str | Path) -> list[str]:
        return []

    def load(self, tasks_dir: str | Path, split: str, path: str | Path | None = None) -> list[Question]:
        if path is None:
            raise PrerequisiteError("the custom task reads questions from a file: pass the path of a .csv or .jsonl")
        file = Path(path)
        suffix = file.suffix.lower()
        if suffix == ".csv":
            return load_qa_csv(file, self.name, split, answer_required=False)
        if suffix not in _READERS:
            raise FormatError(file, 1, "unknown file type; use .csv (question,answer) or .jsonl")
        return [self._question(file, split, index, line, item)
                for index, (line, item) in enumerate(_READERS[suffix](file))]

    def _question(self, file: Path, split: str, index: int, line: int, item: Any) -> Question:
        text = record_field(file, line, item, "question")
        answer = None
        if item.get("answer") is not None:
            answer = str(record_field(file, line, item, "answer", (str, int, float)))
        meta = {key: value for key, value in item.items() if key not in ("question", "answer")}
        return Question(task=self.name, split=split, qid=str(index), question=text, answer=answer, meta=meta)
