"""Bamboogle: two-hop questions from bamboogle/test.csv (header Question,Answer), scored like HotpotQA."""

from __future__ import annotations

from pathlib import Path

from fireact_core.errors import FormatError
from fireact_core.generation.tasks import Question, Task, column_index, file_splits, read_csv_rows, split_file


class BamboogleTask(Task):
    """One CSV per split with the columns Question and Answer (any case)."""

    name = "bamboogle"

    def splits(self, tasks_dir: str | Path) -> list[str]:
        return file_splits(Path(tasks_dir) / self.name, ".csv")

    def load(self, tasks_dir: str | Path, split: str, path: str | Path | None = None) -> list[Question]:
        file = split_file(tasks_dir, self.name, split, ".csv", path)
        return load_qa_csv(file, self.name, split, answer_required=True)


def load_qa_csv(file: Path, task: str, split: str, answer_required: bool) -> list[Question]:
    """Questions from a CSV whose header names a question and an answer column; other columns go to meta."""
    rows = read_csv_rows(file)
    if not rows:
        raise FormatError(file, 1, "empty file; the first line must be a header such as: question,answer")
    header = rows[0][1]
    q_col = column_index(file, header, "question")
    a_col = column_index(file, header, "answer", required=answer_required)
    names = [cell.strip() for cell in header]
    questions = []
    for index, (line, row) in enumerate(rows[1:]):
        if len(row) != len(header):
            message = f"{len(row)} cells where the header has {len(header)}; quote cells with commas"
            raise FormatError(file, line, message)
        if not row[q_col].strip():
            raise FormatError(file, line, "empty question; fill it in or delete the row")
        answer = row[a_col] if a_col is not None and row[a_col].strip() else None
        meta = {name: cell for i, (name, cell) in enumerate(zip(names, row)) if i not in (q_col, a_col)}
        questions.append(Question(task=task, split=split, qid=str(index), question=row[q_col],
                                  answer=answer, meta=meta))
    return questions
