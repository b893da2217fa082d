"""StrategyQA: yes/no questions from strategyqa/{dev,test}.json; EM when the prediction starts with the answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fireact_core.generation.tasks import Question, Task, file_splits, read_json_array, record_field, split_file
from fireact_core.generation.tasks.scoring import Score, is_blank, normalize_answer

_META_KEYS = ("term", "description", "facts", "decomposition")
_GOLD = {"yes": "yes", "true": "yes", "no": "no", "false": "no"}


class StrategyQATask(Task):
    """Questions are `[{qid, question, answer: bool, ...}]`; answers are stored as "yes"/"no"."""

    name = "strategyqa"

    def splits(self, tasks_dir: str | Path) -> list[str]:
        return file_splits(Path(tasks_dir) / self.name, ".json")

    def load(self, tasks_dir: str | Path, split: str, path: str | Path | None = None) -> list[Question]:
        file = split_file(tasks_dir, self.name, split, ".json", path)
        return [self._question(file, split, line, item) for line, item in read_json_array(file)]

    def _question(self, file: Path, split: str, line: int, item: Any) -> Question:
        qid = record_field(file, line, item, "qid")
        text = record_field(file, line, item, "question")
        answer = None
        if "answer" in item:
            answer = "yes" if record_field(file, line, item, "answer", (bool,)) else "no"
        meta = {key: item[key] for key in _META_KEYS if key in item}
        return Question(task=self.name, split=split, qid=qid, question=text, answer=answer, meta=meta)

    def score(self, pred: str | None, gold: str | bool | None) -> Score:
        """EM when the lower-cased prediction starts with "yes" for a true answer or "no" for a false one
        (FireAct's rule: nothing is stripped, so " yes" or "(yes)" is wrong and "Not sure" counts as "no")."""
        if pred is None or is_blank(pred) or gold is None:
            return Score.zero()
        expected = _GOLD.get(normalize_answer(str(gold)))
        return Score.from_em(expected is not None and pred.lower().startswith(expected))
