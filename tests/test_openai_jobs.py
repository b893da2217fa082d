"""OpenAI fine-tuning against a stand-in on 127.0.0.1: upload, create, poll to success, register, cancel,
and API errors shown with their message."""

from __future__ import annotations

import json

import pytest

from fireact_core.cli import main as cli_main
from fireact_core.training import OpenAITrainConfig
from fireact_core.training.openai_jobs import (OpenAIJobError, cancel_openai_job, follow_openai_job,
                                               refresh_openai_job, start_openai_job)
from tests.fakes.openai_ft_server import FakeFineTuning


@pytest.fixture(scope="module")
def mixed_store(tmp_path_factory, shared):
    from fireact_core.io.importer import import_files
    from fireact_core.mixing.versions import MixSpec, save_mix
    from fireact_core.store import Store

    store = Store(tmp_path_factory.mktemp("oa-db") / "oa.duckdb")
    import_files(store, [shared / "finetune" / "gpt_hotpotqa.jsonl"])
    save_mix(store, MixSpec.parse({"sources": ["gpt_hotpotqa"], "size": 30, "val_fraction": 0.2, "seed": 1}), "hq30")
    return store



def _config(tmp_path, **extra) -> OpenAITrainConfig:
    return OpenAITrainConfig(dataset="hq30", model="gpt-4o-mini-2024-07-18", epochs=2, out=str(tmp_path / "oa"), **extra)


def test_upload_create_poll_to_success_and_register(tmp_path, mixed_store, api):
    job = start_openai_job(mixed_store, _config(tmp_path, suffix="fireact"))
    assert job.kind == "openai" and job.status == "queued" and job.remote_id in api.jobs
    uploaded = [f for f in api.files.values()]
    assert [f["purpose"] for f in uploaded] == ["fine-tune", "fine-tune"]
    rows = [json.loads(line) for line in uploaded[0]["content"].splitlines()]
    assert len(rows) == 24 and rows[0]["messages"][1]["role"] == "assistant"
    remote = api.jobs[job.remote_id]
    assert remote["hyperparameters"] == {"n_epochs": 2} and remote["validation_file"] == uploaded[1]["id"]

    messages: list[str] = []
    done = follow_openai_job(mixed_store, job.id, on_event=messages.append, poll_s=0)
    assert done.status == "succeeded" and done.steps == 2 and done.loss_first == 2.0 and done.loss_last == 1.0
    assert any("successfully completed" in m for m in messages)
    model = mixed_store.model_of_job(job.id)
    assert model.kind == "openai" and model.path_or_id == remote["fine_tuned_model"] and model.dataset == "hq30"
    assert "sk-test" not in json.dumps(mixed_store.get_job(job.id).config)


def test_models_json_keeps_an_openai_models_facts(tmp_path, mixed_store, api, capsys):
    job = start_openai_job(mixed_store, _config(tmp_path, suffix="facts", model_name="hq30-facts"))
    follow_openai_job(mixed_store, job.id, poll_s=0)
    assert cli_main(["--db", mixed_store.path, "models", "--json"]) == 0
    entry = next(m for m in json.loads(capsys.readouterr().out) if m["name"] == "hq30-facts")
    version = mixed_store.get_dataset_version("hq30")
    assert (entry["dataset"], entry["dataset_hash"], entry["method"]) == ("hq30", version.content_hash, "openai")
    assert entry["base_model"] == "gpt-4o-mini-2024-07-18" and entry["path_or_id"].startswith("ft:gpt-4o-mini")
    assert entry["settings"] == {"model": "gpt-4o-mini-2024-07-18", "epochs": 2, "suffix": "facts", "seed": 0}
    assert (entry["train_loss"], entry["eval_loss"], entry["steps"], entry["scores"]) == (1.0, 1.25, 2, [])


def test_cancel(tmp_path, mixed_store, api):
    job = start_openai_job(mixed_store, _config(tmp_path))
    refresh_openai_job(mixed_store, mixed_store.get_job(job.id))
    cancelled = cancel_openai_job(mixed_store, mixed_store.get_job(job.id))
    assert cancelled.status == "cancelled" and api.jobs[job.remote_id]["status"] == "cancelled"
    assert ("POST", f"/v1/fine_tuning/jobs/{job.remote_id}/cancel") in api.requests


def test_api_errors_are_shown_with_their_message(tmp_path, mixed_store, api):
    before = len(mixed_store.list_jobs())
    api.fail("POST", "/v1/fine_tuning/jobs", 400, "Model gpt-2 is not available for fine-tuning")
    with pytest.raises(OpenAIJobError, match="HTTP 400: Model gpt-2 is not available for fine-tuning"):
        start_openai_job(mixed_store, _config(tmp_path))
    assert len(mixed_store.list_jobs()) == before

    api.fail("POST", "/v1/files", 413, "File too large")
    with pytest.raises(OpenAIJobError, match="files.create.*File too large"):
        start_openai_job(mixed_store, _config(tmp_path))

    job = start_openai_job(mixed_store, _config(tmp_path))
    api.fail("GET", f"/v1/fine_tuning/jobs/{job.remote_id}", 404, "No such fine-tuning job")
    with pytest.raises(OpenAIJobError, match="No such fine-tuning job"):
        refresh_openai_job(mixed_store, job)


def test_a_job_that_fails_remotely_records_the_api_error(tmp_path, mixed_store, monkeypatch):
    server = FakeFineTuning(fail_job_with="Training file has 3 examples with no assistant turn")
    monkeypatch.setenv("OPENAI_BASE_URL", server.start())
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    try:
        job = start_openai_job(mixed_store, _config(tmp_path))
        done = follow_openai_job(mixed_store, job.id, poll_s=0)
    finally:
        server.stop()
    assert done.status == "failed" and "3 examples with no assistant turn" in done.error
    assert mixed_store.model_of_job(job.id) is None


def test_cli_train_openai_waits_and_errors_reach_the_user(tmp_path, mixed_store, api, capsys):
    rc = cli_main(["--db", mixed_store.path, "train-openai", "--dataset", "hq30", "--model", "gpt-4o-mini", "--epochs",
                   "1", "--wait", "--poll", "0"])
    out = capsys.readouterr()
    assert rc == 0 and "succeeded" in out.out and "registered: ft:gpt-4o-mini" in out.out
    api.fail("POST", "/v1/fine_tuning/jobs", 429, "Quota exceeded for fine-tuning")
    api.fail("POST", "/v1/fine_tuning/jobs", 429, "Quota exceeded for fine-tuning")
    api.fail("POST", "/v1/fine_tuning/jobs", 429, "Quota exceeded for fine-tuning")
    rc = cli_main(["--db", mixed_store.path, "train-openai", "--dataset", "hq30", "--model", "gpt-4o-mini"])
    assert rc == 2 and "Quota exceeded for fine-tuning" in capsys.readouterr().err
