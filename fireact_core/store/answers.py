"""What counts as a right answer, and which trajectory stands for a question in a run: one definition, used by
every view that says right or wrong (Browse's EM filter, Compare, the Dashboard, `fireact report` and the mixer's
only-correct filter).

- A trajectory's answer is **right** when its EM is 1; when it has no EM (no gold answer to score against), when
  its reward is true. With neither it is **unscored**: neither right nor wrong (SQL NULL, Python None).
- In a run (a source) a question is known by its normalised text (`qnorm`). When a run asks a question more than
  once, the trajectory that **stands for it** is the first: the earliest `created_at`, then the first written.
"""

from __future__ import annotations


def correct_sql(alias: str = "t") -> str:
    """The SQL of "the answer is right" over a trajectories row (NULL when unscored)."""
    p = f"{alias}." if alias else ""
    return f"(CASE WHEN {p}em IS NOT NULL THEN {p}em >= 1 ELSE {p}reward END)"


def is_correct(em: float | None, reward: bool | None) -> bool | None:
    """`correct_sql` in Python."""
    if em is not None:
        return em >= 1
    return reward


FIRST_ORDER = "created_at, rowid"


def first_per_question_sql(columns: str, where: str) -> str:
    """A query of `columns` over `trajectories t` restricted by `where`: one row per (source, question), the
    trajectory that stands for the question in its run. `columns` may use `{correct}` for `correct_sql()`."""
    return (f"SELECT {columns.format(correct=correct_sql())} FROM trajectories t WHERE {where} "
            f"QUALIFY row_number() OVER (PARTITION BY t.source, t.qnorm ORDER BY t.{FIRST_ORDER.replace(', ', ', t.')}) = 1")
