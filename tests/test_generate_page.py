"""The Generate page under AppTest: the form, a background run against the fake model server, progress, cancel,
the few-shot examples editor, and prefilling from the Train page's link."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
from streamlit.testing.v1 import AppTest

from fireact_core.cli import main
from fireact_core.generation.engine import RunConfig, run_generation
from fireact_core.records import Run
from fireact_core.store import Store
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.serpapi_server import FakeSerpAPI
from tests.helpers import wait_for_run_thread, wait_until
from tests.helpers.pages import plain_tables

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "pages" / "5_Generate.py")
TASKS = ROOT.parent / "shared" / "fireact" / "tasks"


@pytest.fixture
def env(monkeypatch, tmp_path):
    llm, serp = FakeOpenAI(latency=(0.05, 0.1)), FakeSerpAPI()
    monkeypatch.setenv("OPENAI_BASE_URL", llm.start())
    monkeypatch.setenv("OPENAI_API_KEY", "sk-page-env-key")
    monkeypatch.setenv("FIREACT_SERPAPI_URL", serp.start())
    monkeypatch.setenv("FIREACT_TASKS_DIR", str(TASKS))
    db = tmp_path / "page.duckdb"
    monkeypatch.setenv("FIREACT_DB", str(db))
    yield llm, db
    llm.stop()
    serp.stop()


def page(*panels: str, **params) -> AppTest:
    """The page, with the panels named (the keys of panels drawn on demand) opened."""
    at = AppTest.from_file(PAGE, default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    for key in panels:
        at.session_state[key] = True
    return at.run()


def widget(items, label):
    return next(w for w in items if w.label == label)


def wait_status(db: Path, name: str, done: Callable[[Run], bool], timeout: float = 60.0) -> Run:
    store = Store(db)
    run = wait_until(lambda: (lambda run: run if done(run) else None)(store.get_run(name)), timeout, f"run {name}")
    if run.status != "running":
        wait_for_run_thread(name, timeout)
    return run


def start(at: AppTest, name: str, end: int, concurrency: int = 4) -> AppTest:
    at.session_state["gen_more_open"] = True  # "More settings", where concurrency is
    at.run()
    widget(at.text_input, "Run name (empty: made from the settings)").input(name)
    widget(at.number_input, "End (0: to the end) / seed").set_value(end)
    widget(at.number_input, "Concurrency").set_value(concurrency)
    widget(at.text_input, "API key (empty: $OPENAI_API_KEY; never stored)").input("sk-typed-into-the-page")
    return widget(at.button, "Start").click().run()


def test_form_renders_and_says_there_are_no_runs(env):
    at = page()
    assert not at.exception, at.exception
    assert at.title[0].value == "Generate"
    assert widget(at.selectbox, "Task").value == "hotpotqa"
    assert widget(at.selectbox, "Method").value == "react"
    assert any("No runs yet" in i.value for i in at.info)


def test_start_runs_in_the_background_and_shows_progress(env):
    llm, db = env
    at = start(page(), "page-run", end=3)
    assert not at.exception, at.exception
    assert any("Started run 'page-run'" in s.value for s in at.success)
    run = wait_status(db, "page-run", lambda r: r.status != "running")
    assert run.status == "finished" and run.attempted == 3 and llm.calls >= 6
    at = page()
    assert widget(at.selectbox, "Run").value == "page-run"
    assert "3/3 questions" in at.get("progress")[0].proto.text
    assert {m.label for m in at.metric} >= {"EM so far", "Tokens", "Cost", "ETA"}
    assert b"sk-typed-into-the-page" not in db.read_bytes()


def test_missing_prerequisites_are_named_before_any_run_starts(env, monkeypatch):
    _, db = env
    monkeypatch.delenv("FIREACT_SERPAPI_URL")
    monkeypatch.delenv("OPENAI_API_KEY")
    for name in ("SERPAPI_API_KEY", "SERPAPI_KEY"):
        monkeypatch.delenv(name, raising=False)
    at = page()
    widget(at.text_input, "Run name (empty: made from the settings)").input("no-keys")
    widget(at.button, "Start").click().run()
    errors = " ".join(e.value for e in at.error)
    assert "Search 'serpapi' needs a SerpAPI key" in errors and "choose Search 'local'" in errors
    assert "needs an API key" in errors and "--" not in errors
    assert not at.success and Store(db).list_runs() == []
    widget(at.selectbox, "Search").set_value("none")
    widget(at.text_input, "API key (empty: $OPENAI_API_KEY; never stored)").input("sk-typed-into-the-page")
    widget(at.number_input, "Start / sample size").set_value(9000)
    widget(at.button, "Start").click().run()
    assert any("from 9000" in e.value for e in at.error) and Store(db).list_runs() == []


def test_more_settings_apply_while_their_panel_is_closed(env):
    _, db = env
    at = page()
    assert not any(w.label == "Temperature" for w in at.number_input)  # drawn when the panel opens
    at.session_state["gen_more_open"] = True
    at.run()
    widget(at.number_input, "Temperature").set_value(0.7)
    widget(at.number_input, "Concurrency").set_value(2).run()
    at.session_state["gen_more_open"] = False
    at.run()
    assert not any(w.label == "Temperature" for w in at.number_input)
    assert any("Temperature 0.7 · concurrency 2" in c.value for c in at.caption), [c.value for c in at.caption]
    widget(at.text_input, "Run name (empty: made from the settings)").input("closed-panel")
    widget(at.number_input, "End (0: to the end) / seed").set_value(1)
    widget(at.button, "Start").click().run()
    assert any("Started run 'closed-panel'" in s.value for s in at.success), [e.value for e in at.error]
    run = wait_status(db, "closed-panel", lambda r: r.status != "running")
    assert run.settings["temperature"] == 0.7 and run.settings["concurrency"] == 2


def test_a_new_run_is_followed_at_once(env):
    llm, db = env
    at = start(page(), "first-run", end=1)
    wait_status(db, "first-run", lambda r: r.status != "running")
    at.run()
    assert widget(at.selectbox, "Run").value == "first-run"
    start(at, "second-run", end=1)
    assert widget(at.selectbox, "Run").value == "second-run"
    assert any("second-run" in s.value for s in at.success)
    wait_status(db, "second-run", lambda r: r.status != "running")


def test_cancel_stops_the_run(env):
    llm, db = env
    llm.latency = (0.3, 0.4)
    at = start(page(), "to-cancel", end=200, concurrency=1)
    wait_status(db, "to-cancel", lambda r: r.attempted >= 1)
    at = page()
    widget(at.button, "Cancel run").click().run()
    assert not at.exception, at.exception
    run = wait_status(db, "to-cancel", lambda r: r.status != "running")
    assert run.status == "cancelled" and run.attempted < 200


def test_examples_editor_saves_a_version(env):
    _, db = env
    assert not any(t.label == "Examples" for t in page().text_area)  # drawn when its panel opens
    at = page("gen_examples_open")
    area = next(t for t in at.text_area if t.label == "Examples")
    area.input("Question: a?\nThought: b\nAction: search[c]\nObservation: d\nThought: e\nAction: finish[f]").run()
    widget(at.button, "Save as a new version").click().run()
    assert any("Saved version 1" in s.value for s in at.success)
    assert Store(db).prompt_versions("bamboogle", "io")[0].examples[0].startswith("Question: a?")


def test_price_table_reads_as_a_table_and_edits_when_asked(env):
    _, db = env
    def price_tables(at):
        return [t for t in plain_tables(at) if list(t.columns) == ["model", "input", "output"]]

    assert not price_tables(page())  # the first render draws no price table
    at = page("gen_prices_open")
    [prices] = price_tables(at)
    assert len(prices) > 0 and not any(b.label == "Save prices" for b in at.button)
    at.toggle(key="prices_edit").set_value(True).run()
    widget(at.button, "Save prices").click().run()
    assert any("Prices saved" in s.value for s in at.success)
    assert set(Store(db).model_prices()) == set(prices["model"])


def test_a_fireact_prompt_file_loads_as_a_version(env):
    _, db = env
    prompts = ROOT.parent / "shared" / "fireact" / "reference" / "prompts"
    at = page("gen_examples_open")
    at.selectbox(key="ex_method").set_value("react").run()
    widget(at.text_input, "FireAct prompt folder ({method}_{task}[_google].txt files)").input(str(prompts)).run()
    widget(at.button, "Load as a new version").click().run()
    assert not at.exception and any("Saved version 1" in s.value for s in at.success)
    [row] = Store(db).prompt_versions("bamboogle", "react")
    assert row.layout == "fireact" and row.source == "react_hotpotqa_google.txt"
    assert row.examples == [(prompts / "react_hotpotqa_google.txt").read_text(encoding="utf-8")]
    assert any("FireAct's layout" in c.value for c in at.run().caption)  # the next run shows it


def test_prefilled_from_query_params(env):
    at = page(model="ft:gpt-4o-mini:org::abc", mode="finetuned", task="strategyqa")
    assert widget(at.text_input, "Model name").value == "ft:gpt-4o-mini:org::abc"
    assert widget(at.selectbox, "Prompt").value == "fine-tuned (chat)"
    assert widget(at.selectbox, "Task").value == "strategyqa"


def test_registered_model_from_the_train_page(env):
    from fireact_core.generation.engine import model_settings
    from fireact_core.records import RegisteredModel

    _, db = env
    lora = RegisteredModel(name="llama-lora-1", kind="lora", path_or_id="/models/adapter1", base_model="/models/base")
    Store(db).register_model(lora)
    assert model_settings(lora) == {"backend": "local", "local_model": "/models/base", "adapter": "/models/adapter1",
                                    "model": "llama-lora-1", "mode": "finetuned"}
    remote = RegisteredModel(name="ft", kind="openai", path_or_id="ft:gpt-4o-mini:o::x", base_model="gpt-4o-mini")
    assert model_settings(remote) == {"backend": "openai", "model": "ft:gpt-4o-mini:o::x", "mode": "finetuned"}
    at = page(model="llama-lora-1", mode="finetuned")
    assert not at.exception, at.exception
    assert widget(at.selectbox, "Backend").value == "registered model"
    assert widget(at.selectbox, "Registered model").value == "llama-lora-1"
    assert widget(at.text_input, "Local model folder").value == "/models/base"
    assert widget(at.text_input, "Adapter folder (optional)").value == "/models/adapter1"


def test_an_interrupted_run_reads_the_same_on_the_page_and_in_runs(env, capsys):
    """A run marked running whose process is gone: the page, `fireact runs` and `runs --json` all say interrupted,
    with the same done/total, and the page offers no Cancel."""
    _, db = env
    store = Store(db)
    run_generation(store, RunConfig(run="gone", task="hotpotqa", split="dev", end=2, concurrency=2, poll_s=0.1))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()
    store.begin_run("gone", task="hotpotqa", split="dev", method="react", model="gpt-4o-mini", settings={}, total=5,
                    pid=int(dead))  # taken up for 5 questions by a process that has since ended
    at = page()
    assert not at.exception, at.exception
    assert at.get("progress")[0].proto.text == "2/5 questions · interrupted"
    assert not [b for b in at.button if b.label == "Cancel run"]
    capsys.readouterr()
    assert main(["--db", str(db), "runs", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["done"], row["total"], row["status"]) == (2, 5, "interrupted")
    assert main(["--db", str(db), "runs"]) == 0
    line = capsys.readouterr().out.rstrip()
    assert "    2/5 " in line and line.endswith("interrupted")
