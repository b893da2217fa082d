"""Dashboard figures: run metrics over attempted and finished questions, groupings, robustness, paired
comparisons, lineage, drill-down filters and `fireact report`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fireact_core.reports import charts as charts, lineage as lineage, figures as reports
from fireact_core.cli import main
from fireact_core.errors import NotFoundError, PrerequisiteError
from fireact_core.filters import TrajectoryFilter
from fireact_core.io.importer import import_files
from fireact_core.records import Source
from tests.conftest import RUN_FILE
from tests.helpers.runs import make_run

RUN_NAME = RUN_FILE.stem


def by_run(table, name):
    rows = table[table["run"] == name]
    assert len(rows) == 1, f"{name} not in {list(table['run'])}"
    return rows.iloc[0]


# ---- the FireAct evaluation run -----------------------------------------------------------------------------

def test_fireact_run_file_report(store, shared):
    import_files(store, [RUN_FILE])
    row = by_run(reports.run_table(store), RUN_NAME)
    assert (row["attempted"], row["finished"], row["failed"], row["missing"]) == (500, 500, 0, 0)
    assert round(row["em_attempted"], 3) == 0.262 and round(row["em_finished"], 3) == 0.262
    assert round(row["f1_attempted"], 3) == 0.380 and round(row["f1_finished"], 3) == 0.380
    assert row["method"] == "react" and row["task"] == "hotpotqa" and row["perturb"] == "clean"
    assert row["search_calls"] == 1252  # FireAct's reading counts `search[what is Bob Marley known for?` (no ']')


def test_cli_report_json(tmp_path, shared, capsys):
    db = str(tmp_path / "cli.duckdb")
    assert main(["--db", db, "import", str(RUN_FILE), str(shared / "finetune" / "gpt_hotpotqa.jsonl")]) == 0
    capsys.readouterr()
    assert main(["--db", db, "report", "--json", "--run", RUN_NAME]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1 and list(rows[0]) == reports.REPORT_KEYS
    r = rows[0]
    assert (r["run"], r["attempted"], r["finished"], r["failed"]) == (RUN_NAME, 500, 500, 0)
    assert (round(r["em_attempted"], 3), round(r["f1_attempted"], 3)) == (0.262, 0.380)
    assert r["model"] == "llama_models_lora_llama-2-7b-d_1000" and r["method"] == "react"
    assert r["tokens_in"] is None and r["cost_usd"] is None and r["latency_s"] is None

    assert main(["--db", db, "report", "--json"]) == 0
    everything = {r["run"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(everything) == {RUN_NAME, "gpt_hotpotqa"}
    training = everything["gpt_hotpotqa"]  # no gold answers: right by the reward each trajectory ends with
    assert training["em_attempted"] == 1.0 and training["f1_attempted"] is None  # and no F1 to report

    assert main(["--db", db, "report", "--json", "--run", "no-such-run"]) == 2
    assert "no run named no-such-run" in capsys.readouterr().err


# ---- generated runs: unfinished, failed and missing questions -----------------------------------------------

def test_both_denominators_with_unfinished_failed_and_missing(store):
    em = [1, 1, 1, 0, 0, 0, 0, None, 0, 0]
    status = ["finished"] * 6 + ["unfinished", "unfinished", "failed", "failed"]
    make_run(store, "gen", em, status=status, attempted=12)
    row = by_run(reports.run_table(store), "gen")
    assert (row["attempted"], row["finished"], row["failed"], row["unfinished"], row["missing"]) == (12, 6, 2, 2, 4)
    assert row["em_attempted"] == pytest.approx(3 / 12)
    assert row["em_finished"] == pytest.approx(3 / 6)
    assert row["f1_finished"] == pytest.approx((3 * 1.0 + 3 * 0.25) / 6)
    assert row["f1_attempted"] == pytest.approx((3 * 1.0 + 3 * 0.25 + 0.25 + 2 * 0.25) / 12)  # unscored one adds 0
    assert row["tokens_in"] == 10_000 and row["tokens_out"] == 1_000
    assert row["cost_usd"] == pytest.approx(0.10) and row["latency_s"] == pytest.approx(2.0)
    assert row["tokens_per_trajectory"] == pytest.approx(1100)

    out = {r["run"]: r for r in reports.run_report(store)}["gen"]
    assert (out["attempted"], out["finished"], out["failed"]) == (12, 6, 2)
    assert out["em_attempted"] == pytest.approx(0.25) and out["em_finished"] == pytest.approx(0.5)
    assert out["cost_usd"] == pytest.approx(0.10) and out["tokens_in"] == 10_000


def test_attempted_falls_back_to_the_trajectory_count(store):
    make_run(store, "r", [1, 0, 0, 1])
    with store.db.transaction() as con:
        con.execute("UPDATE sources SET attempted = NULL WHERE name = 'r'")
    row = by_run(reports.run_table(store), "r")
    assert row["attempted"] == 4 and row["em_attempted"] == pytest.approx(0.5)


def test_scored_only_hides_training_sets(store, shared):
    import_files(store, [shared / "finetune" / "gpt_hotpotqa.jsonl"])
    make_run(store, "scored", [1, 0])
    assert list(reports.run_table(store, scored_only=True)["run"]) == ["scored"]
    assert set(reports.run_table(store)["run"]) == {"scored", "gpt_hotpotqa"}
    assert set(reports.run_table(store, ["gpt_hotpotqa"])["run"]) == {"gpt_hotpotqa"}


# ---- groupings ----------------------------------------------------------------------------------------------

def test_em_by_model_and_method_weights_by_attempted(store):
    make_run(store, "a", [1, 1, 0, 0], model="gpt-4", method="react")
    make_run(store, "b", [1, 0], model="gpt-4", method="react", attempted=4)
    make_run(store, "c", [1, 1, 1, 0], model="gpt-4", method="cot")
    make_run(store, "d", [0, 0, 0, 1], model="llama", method="react")
    g = reports.em_by_model_method(reports.run_table(store))
    cell = g[(g["model"] == "gpt-4") & (g["method"] == "react")].iloc[0]
    assert cell["attempted"] == 8 and cell["em"] == pytest.approx(3 / 8) and cell["sources"] == ["a", "b"]
    assert g[(g["model"] == "gpt-4") & (g["method"] == "cot")].iloc[0]["em"] == pytest.approx(0.75)
    fig = charts.em_by_model_method(g)
    assert {t.name for t in fig.data} == {"react", "cot"}
    react = next(t for t in fig.data if t.name == "react")
    flt = charts.points_filter([{"customdata": list(react.customdata[list(react.x).index("gpt-4")])}])
    assert flt == TrajectoryFilter(source=["a", "b"])


def test_prompted_versus_fine_tuned_from_the_registry_and_ft_names(store):
    from fireact_core.records import RegisteredModel

    store.register_model(RegisteredModel(name="llama-fireact", kind="lora", path_or_id="/models/a",
                                         base_model="llama-base", dataset="mix-v1", job=None))
    make_run(store, "base", [1, 0, 0, 0], model="llama-base")
    make_run(store, "tuned", [1, 1, 0, 0], model="llama-fireact")
    make_run(store, "gpt", [1, 1, 1, 0], model="gpt-3.5-turbo")
    make_run(store, "gpt-ft", [1, 1, 1, 1], model="ft:gpt-3.5-turbo:lab::x1")
    make_run(store, "other", [1, 0, 1, 0], model="claude")
    table = reports.run_table(store)
    registry = reports.model_registry(store)
    pf = reports.prompted_vs_finetuned(table, registry)
    got = {(r["base_model"], r["variant"]): r["em"] for _, r in pf.iterrows()}
    assert got == {("llama-base", "prompted"): 0.25, ("llama-base", "fine-tuned"): 0.5,
                   ("gpt-3.5-turbo", "prompted"): 0.75, ("gpt-3.5-turbo", "fine-tuned"): 1.0}
    assert reports.lineage_choices(table, registry)[:2] == ["tuned", "gpt-ft"]


# ---- robustness and paired comparison -----------------------------------------------------------------------

def _clean_and_perturbed(store, n=200, seed=3):
    rng = np.random.default_rng(seed)
    clean = (rng.random(n) < 0.5).astype(float)
    noisy = clean * (rng.random(n) < 0.6)  # perturbation only ever turns right answers wrong
    make_run(store, "clean", list(clean), model="gpt-4")
    make_run(store, "noisy-none", list(noisy), model="gpt-4", perturb="none", meta={"perturb": "none:0.5"})
    make_run(store, "noisy-random", list(noisy), model="gpt-4", perturb="random")  # recorded on steps only
    return clean, noisy


def test_clean_versus_perturbed_shows_the_drop_with_an_interval(store):
    clean, noisy = _clean_and_perturbed(store)
    table = reports.run_table(store)
    assert by_run(table, "clean")["perturb"] == "clean"
    assert by_run(table, "noisy-none")["perturb"] == "none:0.5"
    assert by_run(table, "noisy-random")["perturb"] == "random"
    rob = reports.robustness(store, table, seed=0)
    assert set(rob["perturbed_run"]) == {"noisy-none", "noisy-random"}
    row = rob[rob["perturbed_run"] == "noisy-none"].iloc[0]
    drop = clean.mean() - noisy.mean()
    assert row["clean_run"] == "clean" and row["em_drop"] == pytest.approx(drop) and drop > 0.1
    assert row["shared"] == 200 and row["diff"] == pytest.approx(drop)
    assert 0 < row["ci_low"] < drop < row["ci_high"]
    assert row["p_value"] < 0.001
    assert row["perturbed_share"] == pytest.approx(0.5)  # every other search observation was replaced
    fig = charts.robustness(rob)
    assert [t.name for t in fig.data] == ["clean", "perturbed"]


def test_paired_comparison_is_seeded_and_matches_the_robustness_row(store):
    _clean_and_perturbed(store)
    a = reports.compare_runs(store, "clean", "noisy-none", seed=7)
    b = reports.compare_runs(store, "clean", "noisy-none", seed=7)
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high)
    assert a.only_b_right == 0 and a.only_a_right > 0 and a.n == a.both_right + a.only_a_right + a.both_wrong
    assert a.significant and "a real difference" in a.verdict()
    ids = a.ids["only_a_right"]
    assert len(ids) == 2 * a.only_a_right
    flt = charts.contingency_filter(a, "A right", "B wrong")
    assert flt.source == ["clean", "noisy-none"] and set(flt.ids) == set(ids)
    assert charts.contingency_filter(a, "A wrong", "B right") is None  # an empty cell opens nothing


def test_two_points_on_500_questions_is_not_progress(store):
    # 30 questions only A gets right, 20 only B: A is 2 EM points ahead.
    a = [1.0] * 150 + [1.0] * 30 + [0.0] * 20 + [0.0] * 300
    b = [1.0] * 150 + [0.0] * 30 + [1.0] * 20 + [0.0] * 300
    make_run(store, "A", a)
    make_run(store, "B", b)
    cmp = reports.compare_runs(store, "A", "B", seed=0)
    assert cmp.n == 500 and cmp.diff == pytest.approx(0.02)
    assert cmp.ci_low < 0 < cmp.ci_high
    assert cmp.p_value == pytest.approx(reference_mcnemar(30, 20))
    assert not cmp.significant and "not distinguishable from noise" in cmp.verdict()


def test_comparison_of_runs_with_different_questions(store):
    make_run(store, "A", [1, 0, 1], questions=["q1", "q2", "q3"])
    make_run(store, "B", [1, 1, 0, 0], questions=["q2", "q3", "q4", "Q1!"])
    cmp = reports.compare_runs(store, "A", "B")
    assert cmp.n == 3  # q1 matches Q1! once normalised
    assert (cmp.only_in_a, cmp.only_in_b) == (0, 1)
    with pytest.raises(NotFoundError):
        reports.compare_runs(store, "A", "nope")


def reference_mcnemar(b, c):
    n = b + c
    return min(1.0, 2 * sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2 ** n)


@pytest.mark.parametrize("b,c", [(0, 0), (0, 6), (5, 5), (12, 3), (1, 30), (400, 330), (3000, 2900)])
def test_mcnemar_exact_matches_the_binomial_sum(b, c):
    assert reports.mcnemar_exact(b, c) == pytest.approx(reference_mcnemar(b, c), rel=1e-9)


def test_bootstrap_by_counts_matches_resampling_questions():
    rng = np.random.default_rng(0)
    diffs = rng.choice([-1.0, 0.0, 1.0], size=400, p=[0.1, 0.75, 0.15])
    lo, hi = reports.paired_bootstrap(diffs, n_boot=4000, seed=1)
    idx = rng.integers(0, diffs.size, size=(4000, diffs.size))
    naive = np.quantile(diffs[idx].mean(axis=1), [0.025, 0.975])
    assert lo == pytest.approx(naive[0], abs=0.006) and hi == pytest.approx(naive[1], abs=0.006)
    se = diffs.std() / math.sqrt(diffs.size)
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.1)


# ---- steps, drill-down and exports --------------------------------------------------------------------------

def test_steps_distribution_and_its_drill_down(store):
    make_run(store, "r", [1, 0, 1], status=["finished", "finished", "failed"])
    steps = reports.steps_distribution(store, ["r"])
    assert dict(zip(steps["n_steps"], steps["trajectories"])) == {0: 1, 2: 2}
    fig = charts.steps_distribution(steps)
    bar = fig.data[0]
    point = {"customdata": list(bar.customdata[list(bar.x).index(2)])}
    assert charts.points_filter([point]) == TrajectoryFilter(source=["r"], steps_min=2, steps_max=2)


def test_points_filter_merges_a_box_selection():
    pts = [{"customdata": [charts.query_string(TrajectoryFilter(source=["a"], steps_min=2, steps_max=2))]},
           {"customdata": [charts.query_string(TrajectoryFilter(source=["b"], steps_min=4, steps_max=4))]},
           {"x": 1}]
    assert charts.points_filter(pts) == TrajectoryFilter(source=["a", "b"], steps_min=2, steps_max=4)
    assert charts.points_filter([{"x": 1}]) is None


@pytest.mark.parametrize("column,status", [("finished", "finished"), ("failed", "failed"), ("missing", "unfinished"),
                                            ("em_finished", "finished"), ("em_attempted", None), ("run", None)])
def test_run_cell_filter(column, status):
    flt = charts.run_cell_filter("run-a", column)
    assert flt.source == ["run-a"] and flt.status == status
    assert TrajectoryFilter.from_query(flt.to_query()) == flt


def test_exports(store):
    make_run(store, "r", [1, 0])
    table = reports.run_table(store)
    csv = charts.csv_bytes(table[reports.TABLE_COLUMNS]).decode()
    assert csv.splitlines()[0].startswith("run,task,method,model,perturb,attempted")
    fig = charts.cost_vs_em(table)
    html = charts.figure_html(fig).decode()
    assert "<html>" in html and "plotly" in html.lower() and '"r"' in html
    if charts.png_available():
        assert charts.figure_png(fig)[:4] == b"\x89PNG"
    else:
        with pytest.raises(PrerequisiteError, match="kaleido"):
            charts.figure_png(fig)


def test_cost_chart_falls_back_to_tokens_and_to_nothing(store):
    make_run(store, "no-cost", [1, 0], tokens=False)
    assert charts.cost_vs_em(reports.run_table(store)) is None
    make_run(store, "cost", [1, 1])
    fig = charts.cost_vs_em(reports.run_table(store))
    assert fig.layout.xaxis.title.text == "cost per trajectory (USD)" and list(fig.data[0].text) == ["cost"]


# ---- lineage ------------------------------------------------------------------------------------------------

def test_lineage_of_a_fine_tuned_run(store, tmp_path, shared):
    from fireact_core.mixing.versions import MixSpec, save_mix
    from fireact_core.records import RegisteredModel, TrainJob

    import_files(store, [shared / "finetune" / "gpt_hotpotqa.jsonl"])
    save_mix(store, MixSpec(sources=["gpt_hotpotqa"], size=20, seed=1), "mix-v1")
    out = tmp_path / "job"
    out.mkdir()
    (out / "metrics.jsonl").write_text("\n".join(json.dumps({"step": s, "loss": 2.0 / s}) for s in range(1, 6))
                                       + "\nnot json\n")
    job = store.save_job(TrainJob(kind="lora", status="succeeded", dataset="mix-v1", base_model="llama-base",
                                  out=str(out)))
    store.register_model(RegisteredModel(name="llama-fireact", kind="lora", path_or_id=str(out),
                                         base_model="llama-base", dataset="mix-v1", job=job.id))
    make_run(store, "base", [1, 0, 0, 0], model="llama-base")
    make_run(store, "tuned", [1, 1, 0, 0], model="llama-fireact")
    make_run(store, "other-task", [1, 1], model="llama-base", task="strategyqa")
    table = reports.run_table(store)
    lin = lineage.run_lineage(store, table, "tuned", reports.model_registry(store))
    assert (lin.variant, lin.base_model) == ("fine-tuned", "llama-base")
    assert lin.job.id == job.id and lin.model_record["dataset"] == "mix-v1"
    assert list(lin.curve["loss"]) == pytest.approx([2.0, 1.0, 2 / 3, 0.5, 0.4])
    assert lin.dataset.name == "mix-v1" and lin.dataset.size == 20 and lin.notes == []
    assert list(lin.side_by_side["run"]) == ["base", "tuned"]
    assert list(lin.side_by_side["variant"]) == ["prompted", "fine-tuned"]
    assert charts.training_curve(lin.curve).data[0].name == "loss"

    plain = lineage.run_lineage(store, table, "base", reports.model_registry(store))
    assert plain.job is None and any("no lineage recorded" in n for n in plain.notes)

    store.register_model(RegisteredModel(name="llama-other", kind="lora", path_or_id="/m", base_model="llama-base",
                                         dataset="gone", job="gone"))
    make_run(store, "other", [0, 1], model="llama-other")
    bare = lineage.run_lineage(store, reports.run_table(store), "other", reports.model_registry(store))
    assert bare.dataset is None and bare.job is None and bare.curve is None
    assert bare.notes == ["no dataset version recorded for this model", "no training job recorded for this model"]


def test_cli_report_compare_and_table(tmp_path, capsys):
    db = tmp_path / "cmp.duckdb"
    from fireact_core.store import Store

    store = Store(db)
    make_run(store, "A", [1.0] * 30 + [0.0] * 70)
    make_run(store, "B", [1.0] * 10 + [0.0] * 90)
    del store
    assert main(["--db", str(db), "report", "--compare", "A", "B", "--json", "--seed", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["run_a"], out["run_b"], out["n"], out["only_a_right"], out["only_b_right"]) == ("A", "B", 100, 20, 0)
    assert out["diff"] == pytest.approx(0.2) and 0 < out["ci_low"] < 0.2 < out["ci_high"] and out["p_value"] < 1e-5
    assert main(["--db", str(db), "report", "--compare", "A", "B"]) == 0
    assert "A − B = +20.0 EM points on 100 shared questions" in capsys.readouterr().out
    assert main(["--db", str(db), "report"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["run", "att", "fin", "fail"]
    assert lines[1].split()[:5] == ["A", "100", "100", "0", "0.300"]


def test_a_run_just_started_shows_with_nothing_finished(store):
    store.save_source(Source(name="starting", kind="run", task="hotpotqa", split="dev", model="gpt-4",
                             method="react", attempted=50, meta={"perturb": None, "search": "local"}))
    row = by_run(reports.run_table(store, scored_only=True), "starting")
    assert (row["attempted"], row["trajectories"], row["finished"], row["missing"]) == (50, 0, 0, 50)
    assert math.isnan(row["em_attempted"]) and row["perturb"] == "clean"
    out = reports.run_report(store, ["starting"])[0]
    assert out["em_attempted"] is None and out["mean_steps"] is None and out["attempted"] == 50
    data = reports.dashboard_runs(store)
    assert reports.em_by_model_method(data.runs).empty and reports.robustness(store, data.runs).empty
    assert reports.steps_distribution(store, list(data.runs["run"])).empty and charts.cost_vs_em(data.runs) is None


def test_fine_tuned_mode_of_a_generated_run_comes_from_its_settings(store):
    store.begin_run("ft-run", task="hotpotqa", split="dev", method="react", model="my-llama",
                    settings={"mode": "finetuned"}, total=2)
    make_run(store, "ft-run", [1, 0], model="my-llama")
    store.begin_run("fewshot-run", task="hotpotqa", split="dev", method="react", model="my-llama",
                    settings={"mode": "fewshot"}, total=2)
    make_run(store, "fewshot-run", [0, 0], model="my-llama")
    table = reports.run_table(store)
    assert by_run(table, "ft-run")["mode"] == "finetuned"
    variants = dict(zip(table["run"], reports.model_variants(table, {})["variant"]))
    assert variants == {"ft-run": "fine-tuned", "fewshot-run": "prompted"}
