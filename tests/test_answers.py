"""One definition of a right answer and of the trajectory that stands for a question in a run: Browse's EM filter,
Compare, every figure of the Dashboard, `fireact report` and the mixer's only-correct filter give one answer on
awkward data (no gold answer, a reward only, questions asked twice in a run, an EM that disagrees with the reward).

Run A is a few-shot run and run B a fine-tuned run of the same model, with perturbed observations, so the
Dashboard's groupings, its prompted-versus-fine-tuned table and its robustness table all hold them."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from fireact_core.cli import main
from fireact_core.filters import TrajectoryFilter
from fireact_core.mixing.versions import MixSpec, plan_mix
from fireact_core.records import Action, Source, Step, Trajectory
from fireact_core.reports.figures import (
    compare_runs,
    counts_stats,
    dashboard_runs,
    em_by_model_method,
    model_method_table,
    prompted_vs_finetuned,
    robustness,
    run_report,
)
from fireact_core.store import Store
from fireact_core.store.answers import is_correct

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
# per run: (question, em, reward, seconds after T0) in the order written; no gold answers
RUNS = {
    "run_a": [("Who built it?", None, True, 0), ("Who built it?", None, False, 5), ("Where is it?", None, False, 1),
              ("Where is it?", None, True, 1), ("When was it?", None, True, 2), ("When was it?", None, False, 9),
              ("Why is it?", 0.0, True, 3), ("What is it?", None, None, 4), ("How old is it?", 1.0, None, 6)],
    "run_b": [("Where is it?", None, True, 1), ("Who built it?", None, True, 0), ("Who built it?", None, False, 0),
              ("When was it?", None, False, 2), ("When was it?", None, True, 3), ("Where is it?", None, False, 7),
              ("Why is it?", 1.0, False, 3), ("What is it?", None, True, 4), ("Which one?", None, True, 4)],
}
CELLS = ("both_right", "only_a", "only_b", "both_wrong")
MODEL = "gpt-3.5-turbo"
SOURCE_META = {"run_a": {"mode": "fewshot"}, "run_b": {"mode": "finetuned", "perturb": "none:0.5"}}


def _trajectory(run: str, n: int, question: str, em, reward, seconds: int) -> Trajectory:
    steps = [Step(thought="I answer.", action=Action(raw="finish[x]", name="finish", arg="x"),
                  observation=f"Episode finished, reward = {reward}")]
    return Trajectory(id=f"{run}-{n}", source=run, task="hotpotqa", question=question, method="cot", steps=steps,
                      final_answer="x", em=em, f1=em, reward=reward, created_at=T0 + timedelta(seconds=seconds))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("answers") / "answers.duckdb")
    for run, rows in RUNS.items():
        store.save_trajectories([_trajectory(run, n, *row) for n, row in enumerate(rows)],
                                sources=[Source(name=run, kind="run", task="hotpotqa", model=MODEL, method="cot",
                                                attempted=len(rows), meta=SOURCE_META[run])])
    return store


def _firsts() -> dict[str, dict[str, tuple[bool | None, float | None]]]:
    """Per run and question, by the definition: the first trajectory asking it (earliest, then first written),
    whether its answer is right (by EM when there is one, else by reward; None: unscored), and its F1."""
    firsts = {}
    for run, rows in RUNS.items():
        chosen: dict[str, tuple] = {}
        for question, em, reward, seconds in rows:
            if question not in chosen or seconds < chosen[question][0]:
                chosen[question] = (seconds, is_correct(em, reward), em)
        firsts[run] = {q: (ok, f1) for q, (_, ok, f1) in chosen.items()}
    return firsts


def _expected() -> dict[str, int]:
    """The cells by the definition; questions unscored or missing on one side are in no cell."""
    firsts = {run: {q: ok for q, (ok, _) in questions.items()} for run, questions in _firsts().items()}
    a, b = firsts["run_a"], firsts["run_b"]
    cells = dict.fromkeys(CELLS, 0)
    for q in set(a) & set(b):
        if a[q] is None or b[q] is None:
            continue
        cells[{(True, True): "both_right", (True, False): "only_a", (False, True): "only_b",
               (False, False): "both_wrong"}[(a[q], b[q])]] += 1
    return cells


def test_one_answer_everywhere(store, capsys):
    expected = _expected()
    assert expected == {"both_right": 1, "only_a": 1, "only_b": 2, "both_wrong": 0}
    compare = store.compare_counts("run_a", "run_b")
    assert {c: compare[c] for c in CELLS} == expected and compare["unscored"] == 1

    dashboard = compare_runs(store, "run_a", "run_b")
    cells = (dashboard.both_right, dashboard.only_a_right, dashboard.only_b_right, dashboard.both_wrong)
    assert dict(zip(CELLS, cells)) == expected
    outside = (compare["unscored"], compare["only_in_a"], compare["only_in_b"])
    assert (dashboard.unscored, dashboard.only_in_a, dashboard.only_in_b) == outside == (1, 1, 1)
    counts = counts_stats(store.report_pair_counts([("run_a", "run_b")]), "run_a", "run_b")
    assert (counts.both_right, counts.only_a_right, counts.only_b_right, counts.both_wrong) == cells
    assert (counts.unscored, counts.only_in_a, counts.only_in_b) == outside

    assert main(["--db", str(store.db.path), "report", "--compare", "run_a", "run_b", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [report[k] for k in ("both_right", "only_a_right", "only_b_right", "both_wrong")] == list(cells)
    assert (report["unscored"], report["only_in_a"], report["only_in_b"]) == outside


def test_right_and_wrong_trajectories_agree_between_browse_and_the_mixer(store):
    right = {f"{run}-{n}" for run, rows in RUNS.items() for n, (_, em, reward, _) in enumerate(rows)
             if is_correct(em, reward)}
    wrong = {f"{run}-{n}" for run, rows in RUNS.items() for n, (_, em, reward, _) in enumerate(rows)
             if is_correct(em, reward) is False}
    assert set(store.filter_ids(TrajectoryFilter(em="right"))) == right
    assert set(store.filter_ids(TrajectoryFilter(em="wrong"))) == wrong
    spec = MixSpec.parse({"sources": list(RUNS), "size": 100, "val_fraction": 0,
                          "filters": {"only_correct": True, "dedupe": False}})
    assert set(plan_mix(store, spec).members["id"]) == right


def test_every_dashboard_figure_counts_the_same_right_answers(store, capsys):
    """Each run's EM (over attempted and finished), F1, and every table built from them: one trajectory per
    question, right as `answers` says; a question asked twice is attempted once."""
    expected = {}
    for run, questions in _firsts().items():
        right = sum(1 for ok, _ in questions.values() if ok)
        f1 = [x for _, x in questions.values() if x is not None]
        expected[run] = {"attempted": len(questions), "finished": len(questions), "em_attempted": right / len(questions),
                         "em_finished": right / len(questions), "f1_attempted": sum(f1) / len(questions)}
    assert {run: e["em_attempted"] for run, e in expected.items()} == {"run_a": 3 / 6, "run_b": 5 / 6}

    board = dashboard_runs(store, scored_only=True)  # the tables the Dashboard page builds, as it builds them
    runs = {r["run"]: r for r in board.runs.to_dict("records")}
    assert set(runs) == set(RUNS)
    for run, figures in expected.items():
        assert {k: runs[run][k] for k in figures} == pytest.approx(figures)
        assert runs[run]["missing"] == 0 and runs[run]["trajectories"] == len(RUNS[run])

    assert main(["--db", str(store.db.path), "report", "--json"]) == 0
    report = {r["run"]: r for r in json.loads(capsys.readouterr().out)}
    for run, figures in expected.items():
        assert {k: report[run][k] for k in figures} == pytest.approx(figures)
    assert {r["run"]: r["em_attempted"] for r in run_report(store)} == pytest.approx(
        {run: e["em_attempted"] for run, e in expected.items()})

    both = (3 + 5) / 12  # both runs grouped: right answers over questions attempted
    assert em_by_model_method(board.runs)["em"].tolist() == pytest.approx([both])
    variants = prompted_vs_finetuned(board.runs, board.registry).set_index("variant")["em"].to_dict()
    assert variants == pytest.approx({"prompted": 3 / 6, "fine-tuned": 5 / 6})
    table, _ = model_method_table(board.runs, board.registry)
    assert sorted(table["cot"].tolist()) == pytest.approx([3 / 6, 5 / 6])

    robust = robustness(store, board.runs).iloc[0]
    assert (robust["clean_run"], robust["perturbed_run"]) == ("run_a", "run_b")
    assert (robust["em_clean"], robust["em_perturbed"]) == pytest.approx((3 / 6, 5 / 6))
    cells = _expected()
    shared = sum(cells.values())
    assert robust["shared"] == shared
    assert robust["diff"] == pytest.approx((cells["only_a"] - cells["only_b"]) / shared)
    assert compare_runs(store, "run_a", "run_b").n == shared


def test_a_generation_runs_own_em_is_the_dashboards(tmp_path):
    """The EM and F1 a generation run shows for itself (`fireact runs`, the Generate page) count one trajectory
    per question, right as `answers` says, over the questions planned: the Dashboard's figures."""
    runs = Store(tmp_path / "runs.duckdb")
    for run, rows in RUNS.items():
        runs.begin_run(run, task="hotpotqa", split=None, method="cot", model=MODEL, settings={}, total=len(rows),
                       source_meta=SOURCE_META[run])
        runs.save_run_trajectories(run, [_trajectory(run, n, *row) for n, row in enumerate(rows)])
    board = {r["run"]: r for r in dashboard_runs(runs).runs.to_dict("records")}
    listed = {r.name: r for r in runs.list_runs()}
    for run, questions in _firsts().items():
        right = sum(1 for ok, _ in questions.values() if ok)
        f1 = sum(x for _, x in questions.values() if x is not None)
        own = runs.get_run(run)
        assert own.em_sum == right and own.attempted == len(RUNS[run])
        assert (own.em, own.f1) == pytest.approx((right / len(questions), f1 / len(questions)))
        assert (own.em, own.f1) == pytest.approx((board[run]["em_attempted"], board[run]["f1_attempted"]))
        assert (listed[run].em, listed[run].f1) == pytest.approx((own.em, own.f1))
