"""Local fine-tuning on the tiny model: loss falls, LoRA weights move and base weights do not, the adapter
comes back through the local backend, masked tokens carry no loss, two processes train through accelerate,
and a killed job shows as failed with its log."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import pytest

from fireact_core.cli import main as cli_main
from fireact_core.errors import FireactError
from fireact_core.training import LocalTrainConfig
from fireact_core.training.data import IGNORE, PaddingCollator, export_dataset, prepare_examples
from tests.helpers import wait_until

FAST = {"use_cpu": True, "batch_size": 4, "max_length": 160, "overflow": "truncate", "learning_rate": 1e-2,
        "lr_scheduler": "constant", "target_modules": ["all-linear"], "logging_steps": 1}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def mixed_store(tmp_path_factory, shared):
    """A database with gpt_hotpotqa imported and a 40-trajectory dataset version 'hq40' (observations masked)."""
    from fireact_core.io.importer import import_files
    from fireact_core.mixing.versions import MixSpec, save_mix
    from fireact_core.store import Store

    store = Store(tmp_path_factory.mktemp("train-db") / "train.duckdb")
    import_files(store, [shared / "finetune" / "gpt_hotpotqa.jsonl"])
    spec = MixSpec.parse({"sources": ["gpt_hotpotqa"], "size": 40, "val_fraction": 0.1, "seed": 3,
                          "loss_mask": "observations"})
    save_mix(store, spec, "hq40")
    return store


def _config(tmp_path: Path, base: Path, store, **extra) -> LocalTrainConfig:
    info = export_dataset(store, "hq40", tmp_path / "data")
    files = {"train_file": info["train_file"], "val_file": info["val_file"]}
    return LocalTrainConfig(dataset="hq40", base_model=str(base), out=str(tmp_path / "run"),
                            **{**FAST, **files, **extra})


def _losses(run: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()
            if "loss" in json.loads(line)]


def test_lora_training_lowers_loss_moves_only_adapter_weights_and_generates(tmp_path, tiny_model_dir, mixed_store):
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from fireact_core.training.local import train

    config = _config(tmp_path, tiny_model_dir, mixed_store, max_steps=30, eval_steps=15)
    summary = train(config)
    run = Path(config.out)
    losses = _losses(run)
    assert summary["step"] == 30 and len(losses) == 30
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.05, losses
    assert any("eval_loss" in json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines())
    assert all("tokens_per_s" in json.loads(x) and "learning_rate" in json.loads(x)
               for x in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in x)

    adapter = load_file(str(run / "adapter" / "adapter_model.safetensors"))
    assert adapter and all("lora_" in k for k in adapter)
    assert all(v.abs().sum() > 0 for k, v in adapter.items() if "lora_B" in k)  # B starts at zero in peft

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    reference = {k: v.clone() for k, v in base.state_dict().items()}
    tuned = PeftModel.from_pretrained(base, str(run / "adapter"))
    for name, value in tuned.get_base_model().state_dict().items():
        if "lora_" in name:
            continue
        key = name.replace(".base_layer", "")
        assert torch.equal(value, reference[key]), f"base weight {key} changed"

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    enc = tok("Question: who?", return_tensors="pt")
    out = tuned.generate(**enc, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape[1] > enc["input_ids"].shape[1]

    from fireact_core.generation.models import make_backend
    from fireact_core.generation.prompts import Prompt

    backend = make_backend("local", model_dir=str(tiny_model_dir), adapter=str(run / "adapter"))
    completion = asyncio.run(backend.complete(Prompt(text="Question: who?\n", messages=[], stop=[]), 0.0, 6))
    assert completion.tokens_out > 0 and completion.tokens_in > 0


def test_a_registered_adapter_is_evaluated_in_finetuned_mode(tmp_path, tiny_model_dir, mixed_store, shared):
    from fireact_core.generation.engine import run_generation
    from fireact_core.training import RegisteredModel
    from fireact_core.training.evaluate import evaluation_config
    from fireact_core.training.local import train

    config = _config(tmp_path, tiny_model_dir, mixed_store, max_steps=2, val_file="")
    train(config)
    mixed_store.register_model(RegisteredModel(name="hq40-eval", kind="lora", path_or_id=str(Path(config.out) / "adapter"),
                                               base_model=str(tiny_model_dir), dataset="hq40", job="eval-test"))
    cfg = evaluation_config(mixed_store, "hq40-eval", "hotpotqa", "dev", sample=2, tasks_dir=str(shared / "tasks"),
                            max_steps=2, max_tokens=12, concurrency=2)
    assert (cfg.backend, cfg.mode, cfg.adapter, cfg.local_model) == ("local", "finetuned", str(Path(config.out) / "adapter"),
                                                                     str(tiny_model_dir))
    run_generation(mixed_store, cfg)
    trajs = list(mixed_store.iter_trajectories(source=cfg.run))
    assert len(trajs) == 2 and all(t.model == "hq40-eval" for t in trajs)

    from fireact_core.training.model_card import models_with_facts

    facts = next(m for m in models_with_facts(mixed_store) if m["name"] == "hq40-eval")
    assert [(s["run"], s["task"], s["attempted"]) for s in facts["scores"]] == [(cfg.run, "hotpotqa", 2)]
    card = (Path(config.out) / "adapter" / "README.md").read_text()
    assert f"| {cfg.run} | hotpotqa | react | 2 |" in card and "Not evaluated yet" not in card


def test_full_fine_tuning_saves_a_whole_model_that_loads(tmp_path, tiny_model_dir, mixed_store):
    import torch
    from transformers import AutoModelForCausalLM

    from fireact_core.training.local import train

    config = _config(tmp_path, tiny_model_dir, mixed_store, method="full", max_steps=3, learning_rate=1e-3,
                     val_file="")
    assert train(config)["result"].endswith("model")
    tuned = AutoModelForCausalLM.from_pretrained(Path(config.out) / "model")
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    changed = [k for k, v in base.state_dict().items() if not torch.equal(v, tuned.state_dict()[k])]
    assert "model.embed_tokens.weight" in changed and len(changed) > len(base.state_dict()) // 2


def _loss(model, tokenizer, traj, mask: str) -> float:
    import torch

    examples, _ = prepare_examples([traj], tokenizer, 4096, loss_mask=mask)
    with torch.no_grad():
        return float(model(**PaddingCollator(tokenizer.pad_token_id)(examples)).loss)


def test_loss_ignores_masked_observations(tiny_model_dir, mixed_store):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok = AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)
    traj = next(t for _, t in mixed_store.iter_dataset_trajectories("hq40", "train") if t.steps[-1].observation)
    changed = traj.model_copy(deep=True)
    changed.steps[-1].observation = "Something else entirely was observed here, at length."
    changed.steps[-1].obs_raw = None
    assert _loss(model, tok, traj, "observations") == pytest.approx(_loss(model, tok, changed, "observations"), abs=1e-6)
    assert abs(_loss(model, tok, traj, "none") - _loss(model, tok, changed, "none")) > 1e-3

    examples, _ = prepare_examples([traj], tok, 4096, loss_mask="observations")
    trained = tok.decode([i for i, lab in zip(examples[0]["input_ids"], examples[0]["labels"]) if lab != IGNORE])
    assert "Observation" not in trained and "Action:" in trained and traj.question not in trained


def test_long_examples_are_counted_then_dropped_or_truncated(tiny_model_dir, mixed_store):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    trajs = [t for _, t in mixed_store.iter_dataset_trajectories("hq40")]
    lengths = [len(x["input_ids"]) for x in prepare_examples(trajs, tok, 100_000)[0]]
    limit = sorted(lengths)[len(lengths) // 2]
    over = sum(n > limit for n in lengths)
    dropped, report = prepare_examples(trajs, tok, limit, "drop")
    assert report.over_max_length == over == report.dropped and len(dropped) == len(trajs) - over
    kept, report = prepare_examples(trajs, tok, limit, "truncate")
    assert report.truncated == over and len(kept) == len(trajs) and max(len(x["input_ids"]) for x in kept) == limit
    assert f"{over} longer than {limit} tokens" in report.describe()


def test_length_grouping_and_packing_keep_padding_small(tiny_model_dir, mixed_store):
    import torch
    from transformers import AutoTokenizer
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from fireact_core.training.data import PackingCollator, TokenCounter

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    examples, _ = prepare_examples(list(mixed_store.iter_trajectories(source="gpt_hotpotqa")), tok, 100_000)
    shares = {}
    for name, order in (("random", torch.randperm(len(examples), generator=torch.Generator().manual_seed(0)).tolist()),
                        ("grouped", list(LengthGroupedSampler(4, lengths=[len(x["input_ids"]) for x in examples],
                                                              generator=torch.Generator().manual_seed(0))))):
        counter = TokenCounter()
        collate = PaddingCollator(tok.pad_token_id, counter)
        for i in range(0, len(order), 4):
            collate([examples[j] for j in order[i:i + 4]])
        shares[name] = counter.padding_share
    assert shares["grouped"] < shares["random"] and shares["grouped"] < 0.10, shares
    packed = PackingCollator()(examples[:3])
    sizes = [len(x["input_ids"]) for x in examples[:3]]
    assert packed["input_ids"].shape == (1, sum(sizes))
    assert packed["position_ids"][0, sizes[0]].item() == 0 and packed["labels"][0, sizes[0]].item() == IGNORE


def test_resume_continues_from_the_newest_checkpoint(tmp_path, tiny_model_dir, mixed_store):
    from fireact_core.training.local import train

    config = _config(tmp_path, tiny_model_dir, mixed_store, max_steps=4, save_steps=2, val_file="")
    train(config)
    config.max_steps, config.resume = 6, True
    summary = train(config)
    steps = [json.loads(x)["step"] for x in (Path(config.out) / "metrics.jsonl").read_text().splitlines()
             if '"loss"' in x]
    assert summary["step"] == 6 and steps == [1, 2, 3, 4, 5, 6]


def test_config_rejects_bad_settings():
    with pytest.raises(FireactError, match="method"):
        LocalTrainConfig(method="qlora")
    with pytest.raises(FireactError, match="at least 1"):
        LocalTrainConfig(batch_size=0)
    with pytest.raises(FireactError, match="base_model"):
        LocalTrainConfig(dataset="d", base_model="/nonexistent", out="/tmp/x").check_paths()


def test_two_processes_train_through_accelerate(tmp_path, tiny_model_dir, mixed_store):
    from fireact_core.training.jobs import follow_job, start_local_job

    config = LocalTrainConfig(dataset="hq40", base_model=str(tiny_model_dir), out=str(tmp_path / "ddp"),
                              num_processes=2, max_steps=6, **{**FAST, "batch_size": 2})
    job = start_local_job(mixed_store, config)
    assert "accelerate.commands.launch" in (tmp_path / "ddp" / "train.log").read_text().splitlines()[0]
    job = follow_job(mixed_store, job.id, poll_s=0.5)
    assert job.status == "succeeded", job.error
    ranks = [json.loads((tmp_path / "ddp" / "ranks" / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2] and all(r["steps"] == 6 and r["tokens"] > 0 for r in ranks)
    rows = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["world_size"] == 2 for r in rows)
    model = mixed_store.model_of_job(job.id)
    assert model is not None and Path(model.path_or_id, "adapter_config.json").exists()


@pytest.fixture
def job_pids():
    """Process groups of jobs a test starts, stopped at teardown whatever the test's outcome."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def test_killed_job_is_marked_failed_with_its_log(tmp_path, tiny_model_dir, mixed_store, job_pids):
    from fireact_core.training.jobs import cancel_job, process_alive, refresh_jobs, start_local_job

    config = LocalTrainConfig(dataset="hq40", base_model=str(tiny_model_dir), out=str(tmp_path / "killed"),
                              max_steps=100_000, **FAST)
    job = start_local_job(mixed_store, config)
    job_pids.append(job.pid)
    wait_until(lambda: "data:" in (Path(job.out) / "train.log").read_text(), 120, "the examples to be read")
    os.kill(job.pid, signal.SIGKILL)
    wait_until(lambda: not process_alive(job.pid), 120, "the process to end")
    refresh_jobs(mixed_store, remote=False)
    failed = mixed_store.get_job(job.id)
    assert failed.status == "failed" and "ended without finishing" in failed.error
    assert "--- end of" in failed.error and "data:" in failed.error  # the log's tail comes with it

    second = start_local_job(mixed_store, LocalTrainConfig(
        dataset="hq40", base_model=str(tiny_model_dir), out=str(tmp_path / "cancelled"), max_steps=100_000, **FAST))
    job_pids.append(second.pid)
    cancelled = cancel_job(mixed_store, second.id)
    assert cancelled.status == "cancelled" and not process_alive(second.pid)


def test_cli_train_runs_to_the_end_lists_jobs_and_models_and_resumes(tmp_path, tiny_model_dir, mixed_store, capsys):
    db = mixed_store.path
    rc = cli_main(["--db", db, "train", "--dataset", "hq40", "--base-model", str(tiny_model_dir), "--max-steps", "4",
                   "--lr", "0.01", "--max-length", "128", "--overflow", "truncate", "--cpu",
                   "--out", str(tmp_path / "cli")])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "4/4" in out.err and "succeeded" in out.out
    assert json.loads((tmp_path / "cli" / "config.json").read_text())["report_to"] == "tensorboard"
    assert any((tmp_path / "cli" / "tensorboard").glob("events.out.tfevents.*"))
    cli_main(["--db", db, "jobs", "--json"])
    jobs = json.loads(capsys.readouterr().out)
    mine = next(j for j in jobs if j["out"] == str(tmp_path / "cli"))
    assert set(mine) == {"id", "kind", "status", "dataset", "base_model", "out", "steps", "loss_first", "loss_last",
                         "error"}
    assert mine["kind"] == "lora" and mine["status"] == "succeeded" and mine["steps"] == 4 and mine["loss_first"]
    cli_main(["--db", db, "models", "--json"])
    models = json.loads(capsys.readouterr().out)
    entry = next(m for m in models if m["job"] == mine["id"])
    assert set(entry) == {"name", "kind", "path_or_id", "base_model", "dataset", "job", "method", "dataset_hash",
                          "settings", "steps", "train_loss", "eval_loss", "scores"}
    assert entry["dataset"] == "hq40" and Path(entry["path_or_id"]).is_dir()
    version_hash = mixed_store.get_dataset_version("hq40").content_hash
    assert entry["dataset_hash"] == version_hash
    assert json.loads((tmp_path / "cli" / "config.json").read_text())["dataset_hash"] == version_hash
    assert entry["settings"]["max_steps"] == 4 and entry["settings"]["lora_r"] == 16 and entry["steps"] == 4
    metrics = [json.loads(x) for x in (tmp_path / "cli" / "metrics.jsonl").read_text().splitlines()]
    assert entry["train_loss"] == [m["loss"] for m in metrics if "loss" in m][-1]
    assert entry["eval_loss"] == [m["eval_loss"] for m in metrics if "eval_loss" in m][-1]
    card = (Path(entry["path_or_id"]) / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: peft\n") and f"`{tiny_model_dir}`" in card
    assert f"`hq40` (content hash `{version_hash}`)" in card and "PeftModel.from_pretrained" in card
    assert f"final train loss: {entry['train_loss']:.4f}" in card and "Not evaluated yet" in card
    assert json.loads((Path(entry["path_or_id"]) / "fireact_model.json").read_text()) == entry

    run = tmp_path / "cli"  # train further from the last checkpoint: raise max steps, resume
    (run / "config.json").write_text(json.dumps({**json.loads((run / "config.json").read_text()), "max_steps": 6}))
    assert cli_main(["--db", db, "train-resume", mine["id"]]) == 0, capsys.readouterr().err
    job = mixed_store.get_job(mine["id"])
    assert job.status == "succeeded" and job.steps == 6
    assert "resuming from" in (run / "train.log").read_text() and "checkpoint-4" in (run / "train.log").read_text()


def test_a_crashed_run_records_its_error(tmp_path, tiny_model_dir, mixed_store):
    from fireact_core.training import TrainJob
    from fireact_core.training.jobs import refresh_local_job
    from fireact_core.training.local import train

    config = _config(tmp_path, tiny_model_dir, mixed_store, max_steps=2, target_modules=["no_such_proj"])
    with pytest.raises(FireactError, match="no_such_proj"):
        train(config)
    job = mixed_store.save_job(TrainJob(kind="lora", dataset="hq40", base_model=str(tiny_model_dir), out=config.out,
                                        status="running", pid=None))
    failed = refresh_local_job(mixed_store, job)
    assert failed.status == "failed" and "no_such_proj" in failed.error


def test_job_store_keeps_jobs_and_models(store):
    from fireact_core.training import RegisteredModel, TrainJob

    first = store.save_job(TrainJob(kind="full", dataset="d1", base_model="/m", config={"lr": 1e-4}))
    store.update_job(first.id, status="running", steps=7, loss_first=2.5, loss_last=1.5)
    again = store.get_job(first.id)
    assert (again.status, again.steps, again.loss_last, again.config) == ("running", 7, 1.5, {"lr": 1e-4})
    with pytest.raises(FireactError, match="cannot be updated"):
        store.update_job(first.id, kind="lora")
    model = RegisteredModel(name="m1", kind="full", path_or_id="/runs/a/model", base_model="/m", dataset="d1",
                            job=first.id)
    store.register_model(model)
    with pytest.raises(FireactError, match="already registered"):
        store.register_model(model.model_copy(update={"job": "other"}))
    assert [m.summary() for m in store.list_models()] == [model.summary()]
    assert store.model_of_job(first.id).name == "m1" and store.model_of_job("nope") is None


def _tensorboard_series(folder: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    mux = EventMultiplexer().AddRunsFromDirectory(str(folder)).Reload()
    return sorted((e.step, e.value) for run in mux.Runs() if tag in mux.Runs()[run].get("scalars", [])
                  for e in mux.Scalars(run, tag))


def _wandb_series(folder: Path, key: str) -> list[tuple[int, float]]:
    import subprocess
    import sys

    runs = sorted(folder.glob("offline-run-*"))
    assert len(runs) == 1, runs
    out = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(runs[0])],
                         capture_output=True, text=True, check=True, cwd=folder).stdout  # its own log goes to cwd
    items = [json.loads(line)["history"]["item"] for line in out.splitlines() if '"type":"history"' in line]
    return [(int(i["train/global_step"]), i[key]) for i in items if key in i]


def _mlflow_series(folder: Path, key: str) -> list[tuple[int, float]]:
    from mlflow.tracking import MlflowClient

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(folder.resolve().as_uri())
    experiment = client.get_experiment_by_name("fireact")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1, runs
    return sorted((m.step, m.value) for m in client.get_metric_history(runs[0].info.run_id, key))


@pytest.mark.parametrize("report_to, folder, read, loss_key, eval_key", [
    ("tensorboard", "tensorboard", _tensorboard_series, "train/loss", "eval/loss"),
    ("wandb", "wandb", _wandb_series, "train/loss", "eval/loss"),
    ("mlflow", "mlruns", _mlflow_series, "loss", "eval_loss"),
])
def test_each_tracker_keeps_the_loss_curve_in_the_run_folder(tmp_path, tiny_model_dir, mixed_store, monkeypatch,
                                                             report_to, folder, read, loss_key, eval_key):
    from fireact_core.training.local import train

    for remote in ("WANDB_BASE_URL", "MLFLOW_TRACKING_URI"):  # a remote address in the environment is not used
        monkeypatch.setenv(remote, "http://192.0.2.1:9")
    for key in ("WANDB_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.setenv(key, "sk-secret-never-written")
    config = _config(tmp_path, tiny_model_dir, mixed_store, max_steps=4, eval_steps=2, report_to=report_to)
    train(config)
    run = Path(config.out)
    assert not [p for p in run.rglob("*") if p.is_file() and b"sk-secret-never-written" in p.read_bytes()]
    losses = read(run / folder, loss_key)
    assert [step for step, _ in losses] == [1, 2, 3, 4]
    assert [round(v, 5) for _, v in losses] == [round(v, 5) for v in _losses(run)]
    assert [step for step, _ in read(run / folder, eval_key)] == [2, 4, 4]  # every 2 steps, then the final one
    assert not any((run / other).exists() for other in {"tensorboard", "wandb", "mlruns"} - {folder})


def test_no_tracker_writes_only_metrics(tmp_path, tiny_model_dir, mixed_store):
    from fireact_core.training.local import train

    config = _config(tmp_path, tiny_model_dir, mixed_store, max_steps=1, val_file="", report_to="none")
    train(config)
    assert _losses(Path(config.out)) and not any((Path(config.out) / f).exists()
                                                 for f in ("tensorboard", "wandb", "mlruns", "runs"))


def test_assistant_masks_agree_with_trl_assistant_only_loss(tmp_path, tiny_model_dir, mixed_store):
    """TRL's SFTTrainer with `assistant_only_loss` (a chat template with generation markers, as its training
    templates have) trains exactly the tokens this project's masks train: each assistant turn's content and its
    end-of-turn token, never the role header the generation prompt supplies."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from fireact_core.io.masks import flagged_messages, load_tokenizer, tokenize_example
    from tests.fakes.tiny_model import CHAT_TEMPLATE

    training_template = (
        "{% for m in messages %}<s>{{ m['role'] }}\n{% if m['role'] == 'assistant' %}{% generation %}"
        "{{ m['content'] }}</s>\n{% endgeneration %}{% else %}{{ m['content'] }}</s>\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<s>assistant\n{% endif %}")
    tok = load_tokenizer(str(tiny_model_dir))
    trajs = [t for _, t in mixed_store.iter_dataset_trajectories("hq40")][:6]
    rows = [{"messages": [{"role": m["role"], "content": m["content"]} for m in flagged_messages(t)]} for t in trajs]
    ours = [tokenize_example(t, tok, "observations") for t in trajs]
    tok.chat_template = training_template
    try:
        trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model_dir), processing_class=tok,
                             train_dataset=Dataset.from_list(rows),
                             args=SFTConfig(output_dir=str(tmp_path / "trl"), assistant_only_loss=True, max_length=None,
                                            use_cpu=True, report_to=[], dataset_num_proc=None))
        theirs = [trainer.train_dataset[i] for i in range(len(rows))]
    finally:
        tok.chat_template = CHAT_TEMPLATE
    for mine, trl_row in zip(ours, theirs):
        assert mine["input_ids"] == trl_row["input_ids"]
        assert mine["labels"] == trl_row["labels"]  # TRL's labels: -100 outside the assistant masks
        assert 0 < sum(lab != -100 for lab in trl_row["labels"]) < len(trl_row["labels"])


def test_a_full_models_card_says_how_to_load_it_and_remote_models_get_none(tmp_path, mixed_store):
    from fireact_core.training import RegisteredModel
    from fireact_core.training.model_card import write_model_card

    folder = tmp_path / "model"
    folder.mkdir()
    full = RegisteredModel(name="hq40-full-card", kind="full", path_or_id=str(folder), base_model="/models/tiny",
                           dataset="hq40", config={"method": "full", "learning_rate": 1e-4, "lora_r": 16})
    card = write_model_card(mixed_store, full).read_text()
    assert card.startswith("---\nlibrary_name: transformers\n") and "PeftModel" not in card
    assert 'AutoModelForCausalLM.from_pretrained("path/to/this/folder")' in card and "lora_r" not in card
    assert mixed_store.get_dataset_version("hq40").content_hash in card and "| learning_rate | 0.0001 |" in card
    before = (folder / "README.md").stat().st_mtime_ns
    write_model_card(mixed_store, full)  # unchanged facts: the card is left as it is
    assert (folder / "README.md").stat().st_mtime_ns == before
    remote = RegisteredModel(name="ft-card", kind="openai", path_or_id=str(folder), base_model="gpt-4o-mini")
    assert write_model_card(mixed_store, remote) is None


def test_a_tracker_whose_package_is_missing_is_refused_before_the_job_starts(tmp_path, tiny_model_dir, mixed_store,
                                                                             monkeypatch):
    import importlib.util

    from fireact_core.errors import PrerequisiteError
    from fireact_core.training.jobs import start_local_job

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    config = LocalTrainConfig(dataset="hq40", base_model=str(tiny_model_dir), out=str(tmp_path / "run"),
                              report_to="mlflow", **{k: v for k, v in FAST.items()})
    jobs = len(mixed_store.list_jobs())
    with pytest.raises(PrerequisiteError, match=r"mlflow.*fireact-studio\[train\]"):
        start_local_job(mixed_store, config)
    assert len(mixed_store.list_jobs()) == jobs and not (tmp_path / "run").exists()
