"""Training on preferences: TRL's DPOTrainer with a LoRA adapter on the tiny model learns the corrected steps of
FireAct's own run (the DPO loss falls from log 2, the adapter loads), as a background job registered with its
model card; and OpenAI's preference fine-tuning job against the stand-in server."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from fireact_core.curation import edits as cur
from fireact_core.cli import main as cli_main
from fireact_core.store import Store
from tests.conftest import RUN_FILE, copy_database
from tests.helpers.pages import pick_frames

FAST = {"use_cpu": True, "batch_size": 4, "max_length": 1024, "overflow": "truncate", "learning_rate": 5e-3,
        "lr_scheduler": "constant", "target_modules": ["all-linear"], "logging_steps": 1, "report_to": "none"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def pairs_db(tmp_path_factory) -> Path:
    """FireAct's Llama-2 run with eight wrong trajectories corrected at step 2 and in their answer, and a
    version of step pairs 'fixes' over the run."""
    from fireact_core.io.importer import import_files
    from fireact_core.mixing.versions import MixSpec, save_mix

    path = tmp_path_factory.mktemp("dpo-db") / "dpo.duckdb"
    store = Store(path)
    import_files(store, [RUN_FILE])
    wrong = [t for t in store.iter_trajectories() if t.em == 0 and len(t.steps) >= 3 and t.gold][:8]
    for t in wrong:
        fixed = cur.set_final_answer(cur.edit_step(t, 1, cur.StepEdit(thought=f"The answer is {t.gold}.")), t.gold)
        cur.save_trajectory_edit(store, fixed, base_revision=t.revision, author="alice", reason="fix")
    save_mix(store, MixSpec.parse({"sources": [RUN_FILE.stem], "size": 1000, "val_fraction": 0.0, "seed": 1,
                                   "pairs": "step"}), "fixes")
    return path


def _losses(run: Path) -> list[float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


def test_dpo_with_a_lora_adapter_lowers_the_preference_loss_and_the_adapter_loads(pairs_db, tiny_model_dir, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from fireact_core.training import LocalTrainConfig
    from fireact_core.training.data import export_pair_dataset
    from fireact_core.training.local import train

    store = Store(copy_database(pairs_db, tmp_path))
    info = export_pair_dataset(store, "fixes", tmp_path / "data")
    assert info["n_train"] == 8 and info["n_val"] == 0
    config = LocalTrainConfig(dataset="fixes", base_model=str(tiny_model_dir), out=str(tmp_path / "run"),
                              objective="dpo", beta=0.1, max_steps=12, train_file=info["train_file"], **FAST)
    summary = train(config)
    losses = _losses(tmp_path / "run")
    assert summary["step"] == 12 and len(losses) == 12
    assert abs(losses[0] - math.log(2)) < 0.05, losses  # chosen and rejected alike before any step
    assert sum(losses[-3:]) / 3 < losses[0] - 0.1, losses
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("rewards/margins" in r for r in rows)
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert report["examples"] == 8 and report["pairs"] is True
    adapter = tmp_path / "run" / "adapter"
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(adapter))
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ids = torch.tensor([[1, 5, 9, 13, 2]])
    with torch.no_grad():
        assert not torch.allclose(model(ids).logits, base(ids).logits)


def test_dpo_needs_a_version_of_pairs(pairs_db, tiny_model_dir, tmp_path, capsys):
    from fireact_core.mixing.versions import MixSpec, save_mix

    store = Store(copy_database(pairs_db, tmp_path))
    save_mix(store, MixSpec.parse({"sources": [RUN_FILE.stem], "size": 20, "seed": 1}), "plain")
    code = cli_main(["--db", str(store.path), "train", "--dataset", "plain", "--base-model", str(tiny_model_dir),
                     "--method", "dpo", "--max-steps", "1", "--cpu", "--out", str(tmp_path / "run")])
    assert code == 2 and "not preference pairs" in capsys.readouterr().err
    assert store.list_jobs() == []


def test_fireact_train_method_dpo_runs_a_job_and_registers_the_adapter_with_its_card(pairs_db, tiny_model_dir,
                                                                                      tmp_path, capsys):
    store = Store(copy_database(pairs_db, tmp_path))
    code = cli_main(["--db", str(store.path), "train", "--dataset", "fixes", "--base-model", str(tiny_model_dir),
                     "--method", "dpo", "--beta", "0.2", "--max-steps", "3", "--lr", "5e-3", "--batch-size", "4",
                     "--max-length", "1024", "--overflow", "truncate", "--cpu", "--report-to", "none",
                     "--name", "fixes-dpo", "--out", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert code == 0, out
    [job] = store.list_jobs()
    assert job.status == "succeeded" and job.kind == "lora" and job.steps == 3
    assert job.config["objective"] == "dpo" and job.config["beta"] == 0.2
    model = store.model_of_job(job.id)
    assert model.name == "fixes-dpo" and model.dataset == "fixes" and Path(model.path_or_id).name == "adapter"
    card = (Path(model.path_or_id) / "README.md").read_text()
    assert store.get_dataset_version("fixes").content_hash in card and "| objective | dpo |" in card
    assert "| beta | 0.2 |" in card and "fireact pairs --dataset fixes" in card
    rows = [json.loads(line) for line in (tmp_path / "run" / "data" / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all({"prompt", "chosen", "rejected"} <= set(r) for r in rows)
    assert cli_main(["--db", str(store.path), "jobs"]) == 0
    assert f"{job.id}  lora/dpo   succeeded" in capsys.readouterr().out



def test_train_openai_method_dpo_uploads_preference_rows_and_creates_a_dpo_job(pairs_db, tmp_path, api, capsys):
    from fireact_core.curation.pairs import dataset_pairs

    store = Store(copy_database(pairs_db, tmp_path))
    code = cli_main(["--db", str(store.path), "train-openai", "--dataset", "fixes", "--model", "gpt-4o-mini-2024-07-18",
                     "--method", "dpo", "--beta", "0.25", "--epochs", "2", "--name", "fixes-oa-dpo", "--wait",
                     "--poll", "0"])
    out = capsys.readouterr().out
    assert code == 0, out
    [uploaded] = api.files.values()
    rows = [json.loads(line) for line in uploaded["content"].splitlines()]
    pairs = dataset_pairs(store, "fixes")["train"]
    assert len(rows) == len(pairs) == 8
    for row, pair in zip(rows, pairs):
        assert row == {"input": {"messages": pair.prompt}, "preferred_output": pair.chosen,
                       "non_preferred_output": pair.rejected}
    [remote] = api.jobs.values()
    assert remote["method"] == {"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 2, "beta": 0.25}}}
    assert remote["hyperparameters"] == {}
    [job] = store.list_jobs()
    assert job.status == "succeeded" and job.config["method"] == "dpo"
    model = store.model_of_job(job.id)
    assert model.name == "fixes-oa-dpo" and model.dataset == "fixes" and model.kind == "openai"


def test_train_openai_dpo_refuses_trajectory_pairs_and_plain_versions(pairs_db, tmp_path, api, capsys):
    from fireact_core.mixing.versions import MixSpec, save_mix

    store = Store(copy_database(pairs_db, tmp_path))
    save_mix(store, MixSpec.parse({"sources": [RUN_FILE.stem], "size": 1000, "val_fraction": 0.0, "seed": 1,
                                   "pairs": "trajectory"}), "whole")
    save_mix(store, MixSpec.parse({"sources": [RUN_FILE.stem], "size": 20, "seed": 1}), "plain")
    base = ["--db", str(store.path), "train-openai", "--model", "gpt-4o-mini-2024-07-18", "--method", "dpo"]
    assert cli_main([*base, "--dataset", "whole"]) == 2
    assert "one assistant message on each side" in capsys.readouterr().err
    assert cli_main([*base, "--dataset", "plain"]) == 2
    assert "not preference pairs" in capsys.readouterr().err
    assert api.files == {} and store.list_jobs() == []


def _run(store: Store, name: str, em: list[int], model: str) -> None:
    """A generated run of `model`: question i answered right when em[i] is 1."""
    from fireact_core.records import Action, Source, Step, Trajectory

    trajs = [Trajectory(source=name, task="hotpotqa", split="dev", qid=str(i), question=f"Question number {i}?",
                        gold="x", method="react", model=model, em=float(e), f1=float(e), reward=bool(e),
                        final_answer="x" if e else "y",
                        steps=[Step(thought="done", action=Action(raw="finish[x]", name="finish", arg="x"))])
             for i, e in enumerate(em)]
    store.save_trajectories(trajs, sources=[Source(name=name, kind="run", task="hotpotqa", model=model,
                                                   method="react", attempted=len(em))])


def test_lineage_sets_a_model_of_pairs_against_the_model_of_the_parent_version(pairs_db, tmp_path, monkeypatch):
    from fireact_core.reports import lineage as lineage, figures as reports
    from fireact_core.mixing.versions import MixSpec, save_mix
    from fireact_core.records import ForkLink
    from fireact_core.records import RegisteredModel

    store = Store(copy_database(pairs_db, tmp_path))
    save_mix(store, MixSpec.parse({"sources": [RUN_FILE.stem], "size": 40, "seed": 1}), "sft-v")
    save_mix(store, MixSpec.parse({"sources": [RUN_FILE.stem], "size": 1000, "seed": 1, "pairs": "step"}),
             "pairs-v", parent="sft-v")
    for name, dataset in (("llama-sft", "sft-v"), ("llama-dpo", "pairs-v")):
        store.register_model(RegisteredModel(name=name, kind="lora", path_or_id=str(tmp_path / name),
                                             base_model="llama-base", dataset=dataset))
    _run(store, "run-sft", [1, 0, 0, 0, 1, 0], "llama-sft")
    _run(store, "run-dpo", [1, 1, 0, 1, 1, 0, 1], "llama-dpo")
    registry = reports.model_registry(store)
    lin = lineage.run_lineage(store, reports.run_table(store), "run-dpo", registry)
    assert lin.data_kind == "step pairs" and lin.parent_dataset == "sft-v"
    [row] = lin.against_parent.to_dict("records")
    assert (row["parent_model"], row["parent_run"], row["shared"]) == ("llama-sft", "run-sft", 6)
    assert row["em"] == pytest.approx(4 / 6) and row["em_parent"] == pytest.approx(2 / 6)
    assert row["diff"] == pytest.approx(2 / 6) and "6 shared questions" in row["verdict"]
    plain = lineage.run_lineage(store, reports.run_table(store), "run-sft", registry)
    assert plain.data_kind is None and plain.against_parent.empty

    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("FIREACT_DB", str(store.path))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "pages" / "8_Dashboard.py"),
                           default_timeout=120).run()
    at.session_state["dash_tab"] = "Lineage"
    at.run()
    at.selectbox(key="lineage_run").set_value("run-dpo").run()
    assert not at.exception, at.exception
    assert any("Trained on step pairs" in m.value and "sft-v" in m.value for m in at.markdown)
    [shown] = [d for d in pick_frames(at).values() if "parent_run" in d.columns]
    assert shown.iloc[0]["parent_run"] == "run-sft" and shown.iloc[0]["shared"] == 6

    save_mix(store, MixSpec.parse({"sources": [RUN_FILE.stem], "size": 1000, "seed": 1, "pairs": "step"}),
             "orphan-pairs")
    store.register_model(RegisteredModel(name="llama-orphan", kind="lora", path_or_id=str(tmp_path / "o"),
                                         base_model="llama-base", dataset="orphan-pairs"))
    _run(store, "run-orphan", [1, 1], "llama-orphan")
    orphan = lineage.run_lineage(store, reports.run_table(store), "run-orphan", reports.model_registry(store))
    assert any("records no parent version" in n for n in orphan.notes)

    member = store.dataset_members("sft-v")["trajectory_id"][0]
    store.add_forks([ForkLink(child_id=member, parent_id="someone", parent_revision=0, fork_step=1, kind="repair")])
    assert lineage.data_kind(store, store.get_dataset_version("sft-v")) == "repaired"


def test_a_dpo_run_resumes_from_its_newest_checkpoint(pairs_db, tiny_model_dir, tmp_path):
    from fireact_core.training import LocalTrainConfig
    from fireact_core.training.data import export_pair_dataset
    from fireact_core.training.local import train

    store = Store(copy_database(pairs_db, tmp_path))
    info = export_pair_dataset(store, "fixes", tmp_path / "data")
    config = LocalTrainConfig(dataset="fixes", base_model=str(tiny_model_dir), out=str(tmp_path / "run"),
                              objective="dpo", max_steps=2, save_steps=2, train_file=info["train_file"],
                              **{**FAST, "max_length": 256})
    train(config)
    assert (tmp_path / "run" / "checkpoints" / "checkpoint-2").is_dir()
    config.max_steps, config.resume = 4, True
    summary = train(config)
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
    assert summary["step"] == 4 and steps == [1, 2, 3, 4]


def test_pairs_over_max_length_are_counted_and_a_prompt_that_fills_it_is_dropped(pairs_db, tiny_model_dir, tmp_path):
    from fireact_core.errors import FireactError
    from fireact_core.training import LocalTrainConfig
    from fireact_core.training.data import export_pair_dataset
    from fireact_core.training.local import load_pairs, load_tokenizer, pair_lengths

    store = Store(copy_database(pairs_db, tmp_path))
    info = export_pair_dataset(store, "fixes", tmp_path / "data")
    tok = load_tokenizer(str(tiny_model_dir))
    rows = [json.loads(line) for line in Path(info["train_file"]).read_text().splitlines()]
    lengths = sorted(pair_lengths(tok, r) for r in rows)
    limit = lengths[len(lengths) // 2][0] + 1  # about half the prompts fit, with at least one answer token
    base = {**FAST, "max_length": limit}
    for overflow in ("truncate", "drop"):
        config = LocalTrainConfig(dataset="fixes", base_model=str(tiny_model_dir), out=str(tmp_path / overflow),
                                  objective="dpo", max_steps=1, train_file=info["train_file"],
                                  **{**base, "overflow": overflow})
        kept, _, report = load_pairs(config, tok)
        fits = [r for r, (p, n) in zip(rows, (pair_lengths(tok, r) for r in rows))
                if (p < limit if overflow == "truncate" else n <= limit)]
        assert kept == fits and report.examples == 8 and report.over_max_length == sum(n > limit for _, n in lengths)
    config.max_length = 8
    with pytest.raises(FireactError, match="no preference pair left"):
        load_pairs(config, tok)


def test_the_train_page_offers_dpo_locally_and_at_openai(pairs_db, tiny_model_dir, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from fireact_core.mixing.versions import MixSpec, save_mix

    store = Store(copy_database(pairs_db, tmp_path))
    save_mix(store, MixSpec.parse({"sources": [RUN_FILE.stem], "size": 20, "seed": 1}), "plain")
    monkeypatch.setenv("FIREACT_DB", str(store.path))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=120)
    at.switch_page("pages/7_Train.py")
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="local.objective").options == ["sft", "dpo"]
    assert at.selectbox(key="openai.method").options == ["supervised", "dpo"]
    assert any(w.key == "local.beta" for w in at.number_input)
    at.selectbox(key="local.dataset").set_value("plain")
    at.selectbox(key="local.objective").set_value("dpo")
    at.text_input(key="local.base_model").set_value(str(tiny_model_dir))
    at.text_input(key="local.out").set_value(str(tmp_path / "run"))
    at.button[0].click().run()
    assert any("not preference pairs" in e.value for e in at.error), [e.value for e in at.error]
    assert store.list_jobs() == []
