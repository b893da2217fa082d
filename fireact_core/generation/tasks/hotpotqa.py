"""HotpotQA: multi-hop questions from hotpotqa/{dev,test}.json, scored by EM and token F1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fireact_core.generation.tasks import Question, Task, file_splits, read_json_array, record_field, split_file


class HotpotQATask(Task):
    """Questions are `[{question, answer, type}]`; the test split has no answers."""

    name = "hotpotqa"

    def splits(self, tasks_dir: str | Path) -> list[str]:
        return file_splits(Path(tasks_dir) / self.name, ".json")

    def load(self, tasks_dir: str | Path, split: str, path: str | Path | None = None) -> list[Question]:
        file = split_file(tasks_dir, self.name, split, ".json", path)
        return [self._question(file, split, index, line, item)
                for index, (line, item) in enumerate(read_json_array(file))]

    def _question(self, file: Path, split: str, index: int, line: int, item: Any) -> Question:
        text = record_field(file, line, item, "question")
        answer = record_field(file, line, item, "answer") if "answer" in item else None
        meta = {"type": item["type"]} if "type" in item else {}
        return Question(task=self.name, split=split, qid=str(index), question=text, answer=answer, meta=meta)
