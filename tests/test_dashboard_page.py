"""The Dashboard page under AppTest on seeded databases, and its drill-downs landing in Browse."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from fireact_core.reports import charts as charts, figures as reports
from fireact_core.filters import TrajectoryFilter
from fireact_core.store import Store
from tests.conftest import RUN_FILE
from tests.helpers.pages import click_cell, pick_frames
from tests.helpers.runs import make_run

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "pages" / "8_Dashboard.py")


def open_page(monkeypatch, store) -> AppTest:
    monkeypatch.setenv("FIREACT_DB", str(store.path))
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, at.exception[0].message if at.exception else ""
    return at


def open_in_app(monkeypatch, store) -> AppTest:
    """The dashboard inside the multipage app, so that switching to Browse works as in the browser."""
    monkeypatch.setenv("FIREACT_DB", str(store.path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("pages/8_Dashboard.py").run()
    assert not at.exception, at.exception[0].message if at.exception else ""
    return at


def open_tab(at: AppTest, label: str) -> AppTest:
    """Select a tab: only the open tab's content runs."""
    at.session_state["dash_tab"] = label
    at.run()
    assert not at.exception, at.exception[0].message if at.exception else ""
    return at


def table_with(at: AppTest, column: str, index: bool = False):
    """The first table with `column`, as shown (scores to three places); `index`: indexed by its first column (a
    frame's index, shown as a column)."""
    for df in pick_frames(at).values():
        if column in df.columns:
            return df.set_index(df.columns[0]) if index else df
    raise AssertionError(f"no table with a '{column}' column")


def approx(x: float) -> object:
    return pytest.approx(x, abs=5e-4)  # a score as the table shows it


@pytest.fixture
def runs_store(tmp_path):
    """Clean and perturbed runs of one model, a fine-tuned model and its base, on the same questions."""
    from fireact_core.records import RegisteredModel

    store = Store(tmp_path / "runs.duckdb")
    store.register_model(RegisteredModel(name="llama-ft", kind="lora", path_or_id="/m", base_model="llama"))
    em = [1.0] * 60 + [0.0] * 40
    make_run(store, "gpt-clean", em, model="gpt-4")
    make_run(store, "gpt-none", [1.0] * 35 + [0.0] * 65, model="gpt-4", perturb="none", meta={"perturb": "none:0.5"})
    make_run(store, "llama-base", [1.0] * 20 + [0.0] * 80, model="llama")
    make_run(store, "llama-tuned", [1.0] * 45 + [0.0] * 55, model="llama-ft",
             status=["finished"] * 90 + ["failed"] * 10, attempted=110)
    return store


def test_dashboard_on_the_seeded_database(monkeypatch, seeded_store):
    at = open_page(monkeypatch, seeded_store)
    assert at.title[0].value == "Evaluation dashboard"
    runs = table_with(at, "em_attempted")
    assert list(runs["full name"]) == [RUN_FILE.stem]  # the training sets have no gold answers: hidden
    assert list(runs["run"]) == ["llama-2-7b-d_1000 (LoRA) · hotpotqa dev 0–500 · 2023-09-19"]
    assert list(runs.columns[:3]) == ["run", "em_attempted", "f1_attempted"]
    row = runs.iloc[0]
    assert (row["attempted"], row["finished"], row["failed"]) == (500, 500, 0)
    assert round(row["em_attempted"], 3) == 0.262 and round(row["f1_finished"], 3) == 0.380
    assert [t.label for t in at.tabs] == ["Runs", "Models & methods", "Robustness", "Cost & steps", "Compare runs",
                                         "Lineage", "Team"]
    assert not at.get("plotly_chart")  # the other tabs do not run until opened
    assert "No perturbed run" in open_tab(at, "Robustness").info[0].value
    assert "Two scored runs are needed" in open_tab(at, "Compare runs").info[0].value
    assert "not in the model registry" in open_tab(at, "Lineage").info[0].value  # recognised as fine-tuned
    models = open_tab(at, "Models & methods")
    assert len(models.get("plotly_chart")) == 2  # EM by model and method; prompted versus fine-tuned
    grid = table_with(models, "react", index=True)
    assert list(grid.index) == ["llama-2-7b-d_1000 (LoRA)"] and round(grid.loc["llama-2-7b-d_1000 (LoRA)", "react"], 3) == 0.262
    variants = table_with(models, "variant")
    assert list(zip(variants["base_model"], variants["variant"])) == [("llama-2-7b", "fine-tuned")]
    cost = open_tab(at, "Cost & steps")
    assert "No tokens or cost recorded" in cost.info[0].value and len(cost.get("plotly_chart")) == 1
    open_tab(at, "Runs")

    at.toggle(key="dash_scored").set_value(False).run()
    assert set(table_with(at, "em_attempted")["full name"]) == {RUN_FILE.stem, "gpt_hotpotqa", "alpaca_hotpotqa_multimethod"}


def test_dashboard_with_generated_runs(monkeypatch, runs_store):
    at = open_page(monkeypatch, runs_store)
    runs = table_with(at, "em_attempted").set_index("run")
    assert runs.loc["llama-tuned", "attempted"] == 110 and runs.loc["llama-tuned", "failed"] == 10
    assert runs.loc["llama-tuned", "missing"] == 10
    assert runs.loc["llama-tuned", "em_attempted"] == approx(45 / 110)
    assert runs.loc["llama-tuned", "em_finished"] == approx(45 / 90)
    assert runs.loc["gpt-none", "perturb"] == "none:0.5"

    rob = table_with(open_tab(at, "Robustness"), "em_drop")
    assert list(rob["perturbed_run"]) == ["gpt-none"] and rob.iloc[0]["em_drop"] == approx(0.25)
    assert rob.iloc[0]["ci_low"] > 0 and rob.iloc[0]["p_value"] < 0.05

    variants = table_with(open_tab(at, "Models & methods"), "variant")
    assert set(zip(variants["base_model"], variants["variant"])) == {("llama", "prompted"), ("llama", "fine-tuned")}
    grid = table_with(at, "react", index=True)
    assert set(grid.index) == {"gpt-4", "llama", "llama-ft (fine-tuned)"}
    assert grid.loc["llama-ft (fine-tuned)", "react"] == approx(45 / 110)

    # Compare: the first two scored runs, clean versus perturbed: a real difference
    open_tab(at, "Compare runs")
    assert at.selectbox(key="cmp_a").value == "gpt-clean" and at.selectbox(key="cmp_b").value == "gpt-none"
    assert "a real difference" in at.success[0].value
    at.selectbox(key="cmp_b").set_value("llama-base").run()
    assert "100 shared questions" in (at.success or at.warning)[0].value

    # Lineage: runs of fine-tuned models come first, beside the runs of their base model
    open_tab(at, "Lineage")
    assert at.selectbox(key="lineage_run").value == "llama-tuned"
    lineage = [df for df in pick_frames(at).values() if list(df.columns[:2]) == ["run", "variant"]][0]
    assert list(lineage["run"]) == ["llama-base", "llama-tuned"]
    assert any("no training job recorded" in i.value for i in at.info)


def test_dashboard_of_an_empty_database(monkeypatch, tmp_path):
    at = open_page(monkeypatch, Store(tmp_path / "empty.duckdb"))
    assert "No runs yet" in at.info[0].value


def test_a_runs_table_cell_opens_browse_on_its_trajectories(monkeypatch, runs_store):
    at = open_in_app(monkeypatch, runs_store)
    runs = table_with(at, "em_attempted")
    row = list(runs["full name"]).index("llama-tuned")
    click_cell(at, "runs_table", row, "failed")
    assert not at.exception
    assert at.title[0].value == "Browse"
    assert at.query_params == {"source": "llama-tuned", "status": "failed"}
    assert TrajectoryFilter.from_query(at.query_params) == charts.run_cell_filter("llama-tuned", "failed")
    at.switch_page("pages/8_Dashboard.py").run()  # back: the click is not taken again
    assert at.title[0].value == "Evaluation dashboard" and not at.exception
    at.toggle(key="dash_scored").set_value(False).run()  # nor on a rerun for another reason
    assert at.title[0].value == "Evaluation dashboard"


def test_a_contingency_cell_opens_browse_on_those_questions(monkeypatch, runs_store):
    at = open_tab(open_in_app(monkeypatch, runs_store), "Compare runs")
    click_cell(at, "cmp_table", 0, "B wrong")  # right in A, wrong in B
    assert at.title[0].value == "Browse"
    flt = TrajectoryFilter.from_query(at.query_params)
    expected = reports.compare_runs(runs_store, "gpt-clean", "gpt-none").ids["only_a_right"]
    assert flt.source == ["gpt-clean", "gpt-none"] and sorted(flt.ids) == sorted(expected) and len(expected) == 50


def test_a_group_row_opens_browse_on_its_runs(monkeypatch, runs_store):
    at = open_in_app(monkeypatch, runs_store)
    by_model = pick_frames(at)["by_model"]
    row = list(by_model["model"]).index("gpt-4")
    click_cell(at, "by_model", row, "em")
    assert at.title[0].value == "Browse"
    assert TrajectoryFilter.from_query(at.query_params) == TrajectoryFilter(source=["gpt-clean", "gpt-none"])


def test_dashboard_of_training_sets_only(monkeypatch, tmp_path, shared):
    from fireact_core.io.importer import import_files

    store = Store(tmp_path / "train.duckdb")
    import_files(store, [shared / "finetune" / "gpt_hotpotqa.jsonl"])
    at = open_page(monkeypatch, store)
    assert "untick 'Only scored runs'" in at.info[0].value
    at.toggle(key="dash_scored").set_value(False).run()
    runs = table_with(at, "em_attempted")
    assert list(runs["full name"]) == ["gpt_hotpotqa"]
    assert runs.iloc[0]["em_attempted"] == 1.0 and pd.isna(runs.iloc[0]["f1_attempted"])  # no gold: by reward, no F1
