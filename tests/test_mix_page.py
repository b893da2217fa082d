"""The Mix page under AppTest: sliders steer the live preview, shortfalls are explained, the example shows
which tokens carry loss, versions save, list with their lineage, reload their spec and export."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from fireact_core.mixing.versions import saved_spec
from fireact_core.store import Store
from tests.helpers.pages import plain_tables

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def page_db(tmp_path_factory, shared):
    from fireact_core.io.importer import import_files

    path = tmp_path_factory.mktemp("mix-page") / "page.duckdb"
    import_files(Store(path), [shared / "finetune" / "gpt_multitask.jsonl"],
                 eval_splits=[shared / "tasks" / "strategyqa" / "dev.json"])
    return path


def _run(monkeypatch, db_path) -> AppTest:
    monkeypatch.setenv("FIREACT_DB", str(db_path))
    at = AppTest.from_file(str(ROOT / "pages" / "6_Mix.py"), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def _preview(at: AppTest):
    return next(t for t in plain_tables(at) if "asked" in t.columns).set_index("cell")


def _composition(at: AppTest) -> str:
    return next(h.proto.body for h in at.get("html") if 'data-testid="mix-composition"' in h.proto.body)


def test_composition_bars_follow_the_preview(page_db, monkeypatch):
    at = _run(monkeypatch, page_db)
    preview, bars = _preview(at), _composition(at)
    for cell in ("hotpotqa/react", "strategyqa/react", "mmlu/cot"):
        assert f">{cell}<" in bars and f"{preview.loc[cell, 'got']} of {preview.loc[cell, 'asked']}" in bars
    at.slider(key="mix_task_hotpotqa").set_value(0).run()
    assert "hotpotqa/" not in _composition(at)


def test_empty_database_says_what_is_missing(tmp_path, monkeypatch):
    at = _run(monkeypatch, tmp_path / "empty.duckdb")
    assert "No trajectories yet" in at.info[0].value


def test_sliders_steer_the_preview(page_db, monkeypatch):
    at = _run(monkeypatch, page_db)
    before = _preview(at)
    assert {"hotpotqa/react", "strategyqa/react", "mmlu/cot", "total"} <= set(before.index)
    assert before.loc["total", "asked"] == 400
    at.slider(key="mix_task_hotpotqa").set_value(0).run()
    after = _preview(at)
    assert not at.exception
    assert not any(c.startswith("hotpotqa/") for c in after.index)
    assert after.loc["total", "asked"] == 400 and after.loc["strategyqa/react", "asked"] > before.loc["strategyqa/react", "asked"]
    at.number_input(key="mix_size").set_value(3000).run()
    assert any("only" in w.value and "renormalised" in w.value for w in at.warning)
    at.session_state["mix_training_open"] = True  # the Training panel
    at.run()
    at.checkbox(key="mix_upsample").check().run()
    assert any("upsampling is allowed" in w.value for w in at.warning)
    assert _preview(at).loc["total", "got"] == 3000


def test_grid_mode_previews_the_sources_proportions(page_db, monkeypatch):
    at = _run(monkeypatch, page_db)
    at.radio(key="mix_mode").set_value("grid").run()
    assert not at.exception and not at.error
    preview = _preview(at)
    assert preview.loc["total", "asked"] == 400
    assert preview.loc["hotpotqa/react", "asked"] > preview.loc["mmlu/react", "asked"] > 0


def test_bad_shares_show_an_error(page_db, monkeypatch):
    at = _run(monkeypatch, page_db)
    for m in ("react", "cot"):
        at.slider(key=f"mix_method_{m}").set_value(0)
    at.run()
    assert any("add up to 0" in e.value for e in at.error)


def test_example_shows_tokens_that_carry_loss(page_db, monkeypatch, tiny_model_dir):
    at = _run(monkeypatch, page_db)
    def examples():  # the example's HTML, not the bars' or the tables'
        return [e for e in at.get("html") if "mix-composition" not in e.proto.body and "fa-table" not in e.proto.body]

    assert examples() == []  # drawn when its panel is opened
    at.session_state["mix_example_open"] = True
    at.run()
    html_blocks = examples()  # the example, not the bars
    assert html_blocks and 'class="masked"' in html_blocks[0].proto.body and 'class="trained"' in html_blocks[0].proto.body
    at.session_state["mix_training_open"] = True
    at.run()
    at.text_input(key="mix_tokenizer").input(str(tiny_model_dir)).run()
    assert not at.exception
    body = examples()[0].proto.body
    assert body.count("<span") > 50  # one span per token now
    assert any("tokens carry loss" in c.value for c in at.caption)


def test_save_list_reload_and_export(page_db, tmp_path, monkeypatch):
    import shutil

    db = tmp_path / "copy.duckdb"
    shutil.copy(page_db, db)
    at = _run(monkeypatch, db)
    at.number_input(key="mix_size").set_value(120).run()
    got = _preview(at).loc["total", "got"]
    at.text_input(key="mix_name").input("page-v1")
    next(b for b in at.button if b.label == "Save version").click().run()
    assert any("Saved 'page-v1'" in s.value for s in at.success), [e.value for e in at.error]
    version, saved = Store(db).get_dataset_version("page-v1"), saved_spec(Store(db), "page-v1")
    assert version.size == got and saved.size == 120 and saved.filters.exclude_lints == ["eval_contamination"]
    assert next(t for t in plain_tables(at) if "lineage" in t.columns)["name"].tolist() == ["page-v1"]

    at.button(key="mix_load").click().run()
    assert at.number_input(key="mix_size").value == 120
    at.session_state["mix_split_open"] = True  # the "Split and output" panel
    at.run()
    at.number_input(key="mix_seed").set_value(5).run()
    at.text_input(key="mix_name").input("page-v2")
    next(b for b in at.button if b.label == "Save version").click().run()
    child = Store(db).get_dataset_version("page-v2")
    assert child.parent == "page-v1" and child.seed == 5
    lineage = next(t for t in plain_tables(at) if "lineage" in t.columns)
    assert "page-v2 ← page-v1" in lineage["lineage"].tolist()
    assert at.selectbox(key="mix_version").value == "page-v2", "the version just saved is the one offered"

    at.text_input(key="mix_name").input("page-v1")
    next(b for b in at.button if b.label == "Save version").click().run()
    assert any("exists already" in e.value for e in at.error)

    at.selectbox(key="mix_version").set_value("page-v1")
    at.selectbox(key="mix_format").set_value("messages")
    at.selectbox(key="mix_split").set_value("val").run()
    at.button(key="mix_prepare").click().run()
    name, data = at.session_state["mix_download"]
    assert name == "page-v1-val.jsonl" and len(data.decode().splitlines()) == version.n_val
    assert at.get("download_button")
    at.selectbox(key="mix_version").set_value("page-v2").run()
    assert not at.get("download_button"), "a download prepared for another version is not offered"
