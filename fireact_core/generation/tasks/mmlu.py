"""MMLU: multiple choice from mmlu/SPLIT/SUBJECT_SPLIT.csv (no header: question,A,B,C,D,letter). A split
named SUBJECT_SPLIT (e.g. abstract_algebra_dev) is that one subject's file, as in FireAct.

The question text is rendered as in FireAct's trajectories: "Question: ..." then one line per choice
("A. ...", "B. ...", ...), and the gold answer is the letter. A prediction is right when it starts with
that letter (case-insensitive).
"""

from __future__ import annotations

from pathlib import Path

from fireact_core.errors import FormatError
from fireact_core.generation.tasks import Question, Task, read_csv_rows
from fireact_core.generation.tasks.scoring import Score, is_blank

LETTERS = ("A", "B", "C", "D")


def render_question(question: str, choices: list[str]) -> str:
    """FireAct's MMLU question text: the question, then the lettered choices, one per line."""
    lines = [f"Question: {question}"] + [f"{letter}. {choice}" for letter, choice in zip(LETTERS, choices)]
    return "\n".join(lines)


class MMLUTask(Task):
    """One CSV per subject in each split folder; qid is "subject/index"."""

    name = "mmlu"

    def splits(self, tasks_dir: str | Path) -> list[str]:
        folder = Path(tasks_dir) / self.name
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and any(p.glob(f"*_{p.name}.csv")))

    def load(self, tasks_dir: str | Path, split: str, path: str | Path | None = None) -> list[Question]:
        questions = []
        for file in self._files(tasks_dir, split, path):
            questions += self._load_subject(file, split)
        return questions

    def score(self, pred: str | None, gold: str | None) -> Score:
        """EM when the lower-cased prediction starts with the gold letter (FireAct's rule: nothing stripped)."""
        if pred is None or gold is None or is_blank(pred) or is_blank(gold):
            return Score.zero()
        return Score.from_em(pred.lower().startswith(gold.strip().lower()))

    def _files(self, tasks_dir: str | Path, split: str, path: str | Path | None) -> list[Path]:
        target = Path(path) if path is not None else Path(tasks_dir) / self.name / split
        folder = Path(tasks_dir) / self.name / split.rsplit("_", 1)[-1] if path is None else None
        if folder is not None and not target.exists() and (folder / f"{split}.csv").is_file():
            return [folder / f"{split}.csv"]  # FireAct's one-subject split, e.g. abstract_algebra_dev
        if target.is_file():
            return [target]
        if not target.is_dir():
            present = ", ".join(self.splits(tasks_dir)) or "none"
            raise FormatError(target, 1, f"no such folder (mmlu splits there: {present}); copy FireAct's "
                              "data/mmlu there or pass a subject CSV or folder")
        files = sorted(target.glob("*.csv"))
        if not files:
            raise FormatError(target, 1, f"no SUBJECT_{split}.csv files in this folder; copy FireAct's data/mmlu")
        return files

    def _load_subject(self, file: Path, split: str) -> list[Question]:
        subject = file.stem.removesuffix(f"_{split.rsplit('_', 1)[-1]}")
        questions = []
        for index, (line, row) in enumerate(read_csv_rows(file)):
            if len(row) != 6:
                raise FormatError(file, line, f"{len(row)} cells; each row must be question,A,B,C,D,letter")
            letter = row[5].strip().upper()
            if letter not in LETTERS:
                raise FormatError(file, line, f"answer '{row[5]}' is not one of A, B, C, D")
            questions.append(Question(
                task=self.name, split=split, qid=f"{subject}/{index}",
                question=render_question(row[0], row[1:5]), answer=letter,
                meta={"subject": subject, "choices": dict(zip(LETTERS, row[1:5]))},
            ))
        return questions
