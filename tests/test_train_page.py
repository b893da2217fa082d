"""The Train page under AppTest: forms built from the config classes, jobs with live status, a killed job
shown as failed with its log, OpenAI jobs created from the form, models linked to Generate."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from fireact_core.training import TrainJob
from fireact_core.records import RegisteredModel
from tests.fakes.openai_ft_server import FakeFineTuning
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def db(tmp_path_factory, shared):
    from fireact_core.io.importer import import_files
    from fireact_core.mixing.versions import MixSpec, save_mix
    from fireact_core.store import Store

    path = tmp_path_factory.mktemp("train-page") / "page.duckdb"
    store = Store(path)
    import_files(store, [shared / "finetune" / "gpt_hotpotqa.jsonl"])
    save_mix(store, MixSpec.parse({"sources": ["gpt_hotpotqa"], "size": 20, "val_fraction": 0.1, "seed": 2}), "hq20")
    return path


def _run(monkeypatch, db_path) -> AppTest:
    monkeypatch.setenv("FIREACT_DB", str(db_path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("pages/7_Train.py")
    at.run()
    assert not at.exception, at.exception
    return at


def test_empty_database_says_what_is_missing(tmp_path, monkeypatch):
    at = _run(monkeypatch, tmp_path / "empty.duckdb")
    infos = " ".join(i.value for i in at.info)
    assert "No dataset version yet" in infos and "No training job yet" in infos and "No model yet" in infos


def test_form_comes_from_the_config_metadata_and_reports_bad_settings(db, monkeypatch):
    at = _run(monkeypatch, db)
    labels = {w.label for w in at.number_input} | {w.label for w in at.text_input} | {w.label for w in at.selectbox}
    assert {"LoRA rank (r)", "Learning rate", "Max length (tokens)", "Base model folder", "Longer examples", "Batching"} <= labels
    assert "Epochs" in labels and "Max steps" not in labels and not any("Resume" in c.label for c in at.checkbox)
    tracker = at.selectbox(key="local.report_to")
    assert tracker.value == "tensorboard" and tracker.options == ["tensorboard", "wandb", "mlflow", "none"]
    help_text = next(w for w in at.number_input if w.key == "local.max_length").help
    assert "dropped or truncated" in help_text
    at.text_input(key="local.base_model").set_value("/no/such/model")
    at.button[0].click().run()  # the Local form's submit
    assert any("base_model" in e.value.replace("\\", "") and "folder of a local model" in e.value for e in at.error)


def test_killed_job_shows_failed_with_its_log(db, monkeypatch, tmp_path):
    from fireact_core.store import Store
    from fireact_core.training import jobs as runner

    store = Store(db)
    run = tmp_path / "run"
    run.mkdir()
    proc = runner._spawn([sys.executable, "-c", "print('data: 18 examples; step 1 of 9', flush=True); "
                          "import time; time.sleep(120)"], run)
    job = store.save_job(TrainJob(kind="lora", dataset="hq20", base_model="tiny", out=str(run), status="running",
                                  pid=proc.pid))
    try:
        wait_until(lambda: "step 1 of 9" in (run / "train.log").read_text(), 30, "the job's first progress line")
    finally:
        proc.kill()
        proc.wait()
    at = _run(monkeypatch, db)
    assert any(f"Job {job.id} failed" in e.value for e in at.error)
    shown = " ".join(c.value for c in at.code)
    assert "ended without finishing" in shown and "step 1 of 9" in shown
    assert store.get_job(job.id).status == "failed"


def test_openai_job_from_the_form_and_model_link(db, monkeypatch):
    server = FakeFineTuning()
    monkeypatch.setenv("OPENAI_BASE_URL", server.start())
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    try:
        at = _run(monkeypatch, db)
        at.selectbox(key="openai.dataset").set_value("hq20")
        at.number_input(key="openai.epochs").set_value(3)
        next(b for b in at.button if b.label == "Create fine-tuning job").click().run()
        assert not at.exception and any("started" in s.value for s in at.success), [e.value for e in at.error]
        assert [j["hyperparameters"] for j in server.jobs.values()] == [{"n_epochs": 3}]
    finally:
        server.stop()
    from fireact_core.store import Store

    Store(db).register_model(RegisteredModel(name="hq20-lora", kind="lora", path_or_id="/runs/x/adapter",
                                             base_model="/models/tiny", dataset="hq20", job="x"))
    at = _run(monkeypatch, db)
    listed = at.dataframe[-1].value
    assert list(listed["dataset"]) == ["hq20"] and list(listed["dataset_hash"]) == [Store(db).get_dataset_version(
        "hq20").content_hash]
    link = next(p.proto for p in at.get("page_link") if "Evaluate hq20-lora" in p.proto.label)
    assert link.page.endswith("5_Generate.py") or "Generate" in link.page
    assert "model=hq20-lora" in link.query_string and "mode=finetuned" in link.query_string
    next(b for b in at.button if b.label == "Evaluate now").click().run()  # its adapter folder is not there
    assert not at.exception and at.error and not at.success, [e.value for e in at.error]
