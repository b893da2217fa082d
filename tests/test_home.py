"""The home page (app.py): what is in the database, loading the demo, importing uploads; one browser journey."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from fireact_core.demo import load_demo
from fireact_core.errors import FormatError
from fireact_core.io.importer import import_files
from fireact_core.io.lint import LINT_KINDS
from fireact_core.reports.overview import import_uploads, lint_docs, summary
from fireact_core.store import Store
from tests.conftest import FINETUNE, ROOT, screenshot, wait_for_app
from tests.helpers.pages import plain_tables

GPT_HOTPOTQA = FINETUNE / "gpt_hotpotqa.jsonl"


def run_home(monkeypatch, db: Path, script: Path = ROOT / "app.py") -> AppTest:
    monkeypatch.setenv("FIREACT_DB", str(db))
    at = AppTest.from_file(str(script), default_timeout=60).run()
    assert not at.exception, at.exception
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: str(m.value) for m in at.metric}


def table(at: AppTest, column: str):
    """The first table on the page whose first column is `column`."""
    return next(t for t in plain_tables(at) if t.columns[0] == column)


def stored(db: Path) -> tuple[dict, dict]:
    store = Store(db)
    return store.stats(), store.lint_counts()


def test_empty_database_shows_how_to_start(monkeypatch, tmp_path):
    at = run_home(monkeypatch, tmp_path / "empty.duckdb")
    assert "holds no trajectories yet" in at.info[0].value
    assert [b.label for b in at.button] == ["Load demo data", "Import"]
    assert not at.metric


def test_seeded_database_shows_counts_and_lints(monkeypatch, tmp_path, shared):
    db = tmp_path / "seeded.duckdb"
    import_files(Store(db), [GPT_HOTPOTQA], eval_splits=[shared / "tasks" / "hotpotqa" / "dev.json"])
    at = run_home(monkeypatch, db)
    assert metrics(at)["Trajectories"] == "500"
    assert metrics(at)["Sources"] == "1"
    sources = table(at, "source")
    assert list(sources["source"]) == ["gpt_hotpotqa"] and list(sources["trajectories"]) == [500]
    stats, counts = stored(db)
    assert dict(zip(table(at, "task")["task"], table(at, "task")["trajectories"])) == stats.by_task
    assert dict(zip(table(at, "method")["method"], table(at, "method")["trajectories"])) == stats.by_method
    assert table(at, "task")["trajectories"].sum() == table(at, "method")["trajectories"].sum() == 500
    lints = table(at, "lint")
    assert counts, "the FireAct file gives the lints something to count"
    assert dict(zip(lints["lint"], lints["trajectories"])) == counts
    assert all(lints["meaning"].str.len() > 10)


def test_load_demo_button_loads_the_demo(monkeypatch, tmp_path):
    db = tmp_path / "demo.duckdb"
    at = run_home(monkeypatch, db)
    at.button(key="home_demo").click().run()
    assert not at.exception
    stats, counts = stored(db)
    assert stats.trajectories > 20
    assert metrics(at)["Trajectories"] == str(stats.trajectories)
    assert "Demo data loaded" in at.success[0].value
    assert dict(zip(table(at, "lint")["lint"], table(at, "lint")["trajectories"])) == counts
    assert not any(b.label == "Load demo data" for b in at.button)


def test_upload_imports_through_the_same_reader(monkeypatch, tmp_path):
    db = tmp_path / "upload.duckdb"
    run_file = sorted((ROOT / "datasets" / "trajs").glob("hotpotqa_*gpt-4*.json"))[0]
    at = run_home(monkeypatch, db)
    at.file_uploader(key="home_files").set_value((run_file.name, run_file.read_bytes(), "application/json"))
    at.button(key="home_import").click().run()
    assert not at.exception and not at.error
    assert "Imported: 6 trajectories added" in at.success[0].value
    report = table(at, "file").to_dict("records")[0]
    assert report["file"] == run_file.name and report["rows read"] == 6 and report["format"] == "fireact-run"
    assert metrics(at)["Trajectories"] == "6"
    sources = table(at, "source").to_dict("records")
    assert sources[0]["full name"] == run_file.stem and sources[0]["source"] == "gpt-4 · hotpotqa dev 0–6 · 2026-11-02"
    assert sources[0]["model"] == "gpt-4" and sources[0]["task"] == "hotpotqa"


def test_bad_upload_shows_the_error_and_writes_nothing(monkeypatch, tmp_path):
    db = tmp_path / "bad.duckdb"
    load_demo(Store(db))
    before = stored(db)
    good = GPT_HOTPOTQA.read_bytes()
    lines = good.decode().splitlines()
    lines[6] = lines[6][: len(lines[6]) // 2]
    broken = ("\n".join(lines[:10]) + "\n").encode()
    at = run_home(monkeypatch, db)
    at.file_uploader(key="home_files").set_value([
        ("good.jsonl", good, "application/json"), ("broken.jsonl", broken, "application/json"),
    ])
    at.button(key="home_import").click().run()
    assert not at.exception
    assert at.error and at.error[0].value.startswith("broken.jsonl:7: invalid JSON")
    assert stored(db) == before


def test_import_without_files_asks_for_one(monkeypatch, tmp_path):
    at = run_home(monkeypatch, tmp_path / "none.duckdb")
    at.button(key="home_import").click().run()
    assert "choose one or more" in at.error[0].value


def test_import_uploads_names_the_uploaded_file_and_cleans_up(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", None)
    store = Store(tmp_path / "core.duckdb")
    with pytest.raises(FormatError) as err:
        import_uploads(store, [("../../etc/empty.json", b"  \n")])
    assert str(err.value) == "../../etc/empty.json:1: the file is empty"
    split = json.dumps([{"question": "Who discovered the largest moon of Saturn?", "answer": "x"}]).encode()
    finetune = ROOT / "datasets" / "finetune" / "alpaca_demo_multimethod.json"
    reports = import_uploads(store, [(finetune.name, finetune.read_bytes())], source="mine", method="react",
                             eval_splits=[("split.json", split)])
    assert reports[0].path == finetune.name and reports[0].source == "mine"
    assert reports[0].lints["eval_contamination"] == 1
    assert store.stats().by_method == {"react": reports[0].added}
    assert list((tmp_path / "tmp").iterdir()) == []


def test_summary_and_lint_docs(tmp_path):
    store = Store(tmp_path / "s.duckdb")
    assert summary(store).empty
    docs = lint_docs()
    assert list(docs) == LINT_KINDS and all(docs.values())
    load_demo(store)
    ov = summary(store)
    assert ov.trajectories == sum(s["trajectories"] for s in ov.sources)
    assert {s["kind"] for s in ov.sources} == {"run", "import"}
    assert [row["lint"] for row in ov.lints] == [k for k in LINT_KINDS if store.lint_counts().get(k)]


def test_links_only_to_pages_that_exist(monkeypatch, tmp_path):
    app_dir = tmp_path / "app"
    (app_dir / "pages").mkdir(parents=True)
    shutil.copy(ROOT / "app.py", app_dir / "app.py")
    shutil.copy(ROOT / "ui.py", app_dir / "ui.py")
    (app_dir / "pages" / "4_Compare.py").write_text("import streamlit as st\nst.write('compare')\n")
    at = run_home(monkeypatch, tmp_path / "links.duckdb", app_dir / "app.py")
    links = at.get("page_link")
    assert len(links) == 1 and "Compare" in links[0].proto.label


def test_browser_journey_demo_then_upload(streamlit_app, page, tmp_path, monkeypatch):
    """Real Chromium: an empty database, load the demo, open the import form, upload FireAct's gpt_hotpotqa.jsonl,
    see the counts."""
    monkeypatch.setenv("STREAMLIT_SERVER_FILE_WATCHER_TYPE", "none")  # the server needs no reload on save
    page.set_default_timeout(90000)  # the app shares a small machine with the rest of the suite
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(streamlit_app(tmp_path / "journey.duckdb"))
    wait_for_app(page, timeout=90000)
    page.get_by_text("holds no trajectories yet").wait_for()
    page.get_by_role("button", name="Load demo data").click()
    page.get_by_text("Demo data loaded").wait_for()
    demo = Store(tmp_path / "journey.duckdb").count_trajectories()
    wait_for_app(page, timeout=90000)
    page.get_by_role("button", name="Import files").click()  # with data in it, the form opens from a button
    uploader = page.locator('[data-testid="stFileUploader"]').first
    uploader.locator('input[type="file"]').set_input_files(str(GPT_HOTPOTQA))
    page.locator('[data-testid="stFileChip"]').filter(has_text="gpt_hotpotqa.jsonl").wait_for()
    page.locator('[data-testid="stFileChipIconSpinner"]').wait_for(state="detached")  # the upload has finished
    wait_for_app(page, timeout=90000)
    page.get_by_role("button", name="Import", exact=True).click()
    try:
        page.get_by_text("Imported: 500 trajectories added").wait_for()
    except Exception:
        screenshot(page, "home-failed")  # what the page showed instead
        raise
    wait_for_app(page, timeout=90000)
    total = page.locator('[data-testid="stMetric"]').filter(has_text="Trajectories")
    assert total.locator('[data-testid="stMetricValue"]').inner_text() == str(demo + 500)
    assert dialogs == []
    page.set_viewport_size({"width": 1400, "height": 1500})
    page.evaluate("document.querySelectorAll('*').forEach(e => { if (e.scrollTop) e.scrollTop = 0; })")
    wait_for_app(page, timeout=90000)
    screenshot(page, "home")


def test_plain_tables_show_text_as_text_and_numbers_right_aligned():
    from datetime import datetime

    import pandas as pd

    from fireact_core.reports.tables import table_html

    body = table_html(pd.DataFrame({"name": ["<script>alert(1)</script>", "a & b"], "n": [3, 4],
                                    "em": [0.333333, None], "at": [datetime(2026, 1, 2, 3, 4, 5)] * 2}))
    assert "<script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "a &amp; b" in body
    assert "<td class=fa-num>3</td>" in body and "<td class=fa-num>0.3333</td>" in body
    assert "<td>2026-01-02 03:04:05</td>" in body and "nan" not in body.lower().replace("fa-num", "")
    assert table_html([{"x": True}]).count("<td>true</td>") == 1


def test_a_picking_table_sends_cells_as_text_with_their_widths_titles_and_a_signature():
    from fireact_core.reports.tables import FLEX_MIN_PX, Column, pick_payload

    rows = [{"EM": None, "F1": 0.5, "question": "<b>Who?</b>", "source": "short", "steps": 3},
            {"EM": 1.0, "F1": float("nan"), "question": "a & b", "source": "other", "steps": 6}]
    columns = {"EM": Column(width=44, fmt="%.0f", help="exact match"), "F1": Column(width=48, fmt="%.2f"),
               "steps": Column(width=50, fmt=lambda n: f"{n} steps")}
    drawn = pick_payload(rows, columns, titles={"source": ["a-long-run-name", "another-run"], "absent": ["x"]})
    assert [c["name"] for c in drawn["columns"]] == ["EM", "F1", "question", "source", "steps"]
    assert drawn["rows"] == [["", "0.50", "<b>Who?</b>", "short", "3 steps"], ["1", "", "a & b", "other", "6 steps"]]
    assert [c["right"] for c in drawn["columns"]] == [True, True, False, False, True]  # a missing first value too
    assert drawn["columns"][0]["help"] == "exact match" and drawn["columns"][2]["width"] is None
    assert drawn["titles"] == {"3": ["a-long-run-name", "another-run"]}
    assert drawn["minWidth"] == 44 + 48 + 2 * FLEX_MIN_PX + 50
    # the signature names the rows shown: a selection made among other rows is not carried over
    assert pick_payload(rows, columns)["sig"] == drawn["sig"]
    assert pick_payload(rows[::-1], columns)["sig"] != drawn["sig"]
    assert pick_payload([], columns)["rows"] == []
