"""Dataset versions as folders for the Hub and for trainers, on FireAct's multi-task chat file: Hugging Face
`datasets` loads the `hf` folder with its splits and card; axolotl's and LLaMA-Factory's configs parse and point
at the data with the fields those trainers read."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from fireact_core.cli import main
from fireact_core.mixing.export import export_dataset, messages_rows
from fireact_core.errors import FireactError
from fireact_core.mixing.versions import MixSpec, save_mix
from fireact_core.store import Store

SPEC = {"sources": ["gpt_multitask"], "task_ratio": {"hotpotqa": 0.5, "strategyqa": 0.25, "mmlu": 0.25},
        "method_ratio": {"react": 0.7, "cot": 0.3}, "size": 60, "val_fraction": 0.2, "seed": 5,
        "filters": {"only_correct": True, "max_steps": 8, "exclude_lints": ["eval_contamination"]}}

# Dataset settings of axolotl's `SFTDataset` (axolotl/utils/schemas/datasets.py; docs/dataset-formats/conversation.qmd)
AXOLOTL_DATASET_FIELDS = {"path", "split", "type", "ds_type", "data_files", "name", "chat_template", "field_messages",
                          "message_property_mappings", "message_field_training", "message_field_training_detail",
                          "roles_to_train", "train_on_eos", "train_on_eot", "drop_system_message"}
# Keys of a LLaMA-Factory dataset_info.json entry (data/README.md; llamafactory/data/parser.py `DatasetAttr`)
LLAMAFACTORY_KEYS = {"file_name", "formatting", "ranking", "subset", "split", "folder", "num_samples", "columns",
                     "tags"}
LLAMAFACTORY_COLUMNS = {"prompt", "query", "response", "history", "messages", "system", "tools", "images", "videos",
                        "audios", "chosen", "rejected", "kto_tag"}
LLAMAFACTORY_TAGS = {"role_tag", "content_tag", "user_tag", "assistant_tag", "observation_tag", "function_tag",
                     "system_tag"}


@pytest.fixture(scope="module")
def store(tmp_path_factory, shared):
    """gpt_multitask imported; version 'mt' (one member's first step switched off) and 'mt-open' from it."""
    from fireact_core.io.importer import import_files

    store = Store(tmp_path_factory.mktemp("folders") / "f.duckdb")
    import_files(store, [shared / "finetune" / "gpt_multitask.jsonl"],
                 eval_splits=[shared / "tasks" / "strategyqa" / "dev.json"])
    save_mix(store, MixSpec.parse(SPEC), "probe")
    first = store.get_trajectory(store.dataset_members("probe")["trajectory_id"][0])
    steps = [first.steps[0].model_copy(update={"flags": first.steps[0].flags.model_copy(update={"train": False})}),
             *first.steps[1:]]
    store.save_edit(first.model_copy(update={"steps": steps}), base_revision=first.revision, author="ann")
    save_mix(store, MixSpec.parse(SPEC), "mt", author="ann")
    save_mix(store, MixSpec.parse({**SPEC, "loss_mask": "none"}), "mt-open", parent="mt")
    return store


def _card(folder: Path) -> tuple[dict, str]:
    text = (folder / "README.md").read_text(encoding="utf-8")
    _, header, body = text.split("---\n", 2)
    return yaml.safe_load(header), body


def _flags(store, name: str) -> dict[str, list[tuple[str, bool]]]:
    return {r["id"]: [(m["role"], m["train"]) for m in r["messages"]] for r in messages_rows(store, name)}


def test_hf_folder_loads_with_its_splits_flags_and_columns(store, tmp_path):
    import datasets

    version = store.get_dataset_version("mt")
    assert export_dataset(store, "mt", "hf", tmp_path / "mt") == version.size
    ds = datasets.load_dataset(str(tmp_path / "mt"))
    assert set(ds) == {"train", "validation"}
    assert (ds["train"].num_rows, ds["validation"].num_rows) == (version.n_train, version.n_val)
    assert {"messages", "task", "method", "source", "qid", "em", "question", "gold"} <= set(ds["train"].column_names)
    members = store.dataset_members("mt")
    assert list(ds["train"]["id"]) + list(ds["validation"]["id"]) == \
        list(members[members.split == "train"].trajectory_id) + list(members[members.split == "val"].trajectory_id)
    flags = _flags(store, "mt")
    loaded = {r["id"]: [(m["role"], m["train"]) for m in r["messages"]] for s in ds for r in ds[s]}
    assert loaded == flags
    switched = [i for i, turns in flags.items() if ("assistant", False) in turns]
    assert len(switched) == 1  # the step switched off in the editor stays off
    row = ds["train"][0]
    assert row["source"] == "gpt_multitask" and row["task"] in {"hotpotqa", "strategyqa", "mmlu"}


def test_dataset_card_declares_configs_and_splits_and_says_what_the_mix_was(store, tmp_path):
    export_dataset(store, "mt-open", "hf", tmp_path / "open")
    header, body = _card(tmp_path / "open")
    version, parent = store.get_dataset_version("mt-open"), store.get_dataset_version("mt")
    files = {f["split"]: f["path"] for f in header["configs"][0]["data_files"]}
    assert set(files) == {"train", "validation"} and all((tmp_path / "open" / p).is_file() for p in files.values())
    splits = {s["name"]: s["num_examples"] for s in header["dataset_info"]["splits"]}
    assert splits == {"train": version.n_train, "validation": version.n_val}
    assert set(header["license"]) == {"cc-by-sa-4.0", "mit"} and header["pretty_name"] == "mt-open"

    assert json.loads(body.split("```json\n")[1].split("```")[0]) == version.spec
    counts = Counter((m.task, m.method) for m in store.dataset_members("mt-open").itertuples())
    for (task, method), n in counts.items():
        row = body.split(f"| {task} | {method} |")[1].split("\n")[0]
        assert row.endswith(f" {n} |")
    assert "only trajectories whose answer is right" in body and "more than 8 steps left out" in body
    assert "left out: `eval_contamination`" in body
    assert version.content_hash in body and "`mt` (content hash `" + parent.content_hash + "`)" in body
    assert "loss mask `none`" in body and "HotpotQA" in body and "cc-by-sa-4.0" in body
    assert "@article{chen2023fireact" in body and "arXiv:2310.05915" in body


def test_export_replaces_its_own_folder_and_never_a_foreign_one(store, tmp_path, capsys):
    out = tmp_path / "again"
    assert main(["--db", store.path, "export", "--dataset", "mt", "--format", "hf", "--out", str(out)]) == 0
    first = (out / "README.md").read_bytes()
    assert main(["--db", store.path, "export", "--dataset", "mt", "--format", "hf", "--out", str(out)]) == 0
    assert (out / "README.md").read_bytes() == first  # same version, same bytes
    (out / "notes.txt").write_text("mine")
    assert main(["--db", store.path, "export", "--dataset", "mt", "--format", "axolotl", "--out", str(out)]) == 2
    assert "notes.txt" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine" and not (out / "axolotl.yaml").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again"]  # no temporary folder left behind
    assert main(["--db", store.path, "export", "--format", "hf", "--out", str(tmp_path / "x")]) == 2
    with pytest.raises(FireactError, match="both splits"):
        export_dataset(store, "mt", "hf", tmp_path / "y", split="train")


def test_axolotl_config_points_at_the_data_with_its_training_field(store, tmp_path):
    out = tmp_path / "ax"
    export_dataset(store, "mt", "axolotl", out)
    config = yaml.safe_load((out / "axolotl.yaml").read_text())
    assert config["chat_template"] == "tokenizer_default"
    flags = _flags(store, "mt")
    seen = {}
    for key, split in (("datasets", "train"), ("test_datasets", "validation")):
        (entry,) = config[key]
        assert set(entry) <= AXOLOTL_DATASET_FIELDS
        assert (entry["type"], entry["ds_type"], entry["split"]) == ("chat_template", "json", "train")
        assert entry["message_field_training"] == "train" and entry["field_messages"] == "messages"
        assert entry["message_property_mappings"] == {"role": "role", "content": "content"}
        rows = [json.loads(line) for line in (out / entry["path"]).read_text().splitlines()]
        assert rows and entry["path"].endswith(f"{split}.jsonl")
        for row in rows:
            turns = row[entry["field_messages"]]
            seen[row["id"]] = [(t[entry["message_property_mappings"]["role"]], t[entry["message_field_training"]])
                               for t in turns]
    assert seen == flags


def _llamafactory_accepts(messages: list[dict], tags: dict) -> bool:
    """LLaMA-Factory's sharegpt rule: an optional system turn, then user/assistant alternating, an even count."""
    if messages and messages[0][tags["role_tag"]] == tags["system_tag"]:
        messages = messages[1:]
    order = (tags["user_tag"], tags["assistant_tag"])
    return bool(messages) and len(messages) % 2 == 0 and all(
        m[tags["role_tag"]] == order[i % 2] and isinstance(m[tags["content_tag"]], str) for i, m in enumerate(messages))


def test_llamafactory_entry_maps_roles_and_columns_and_says_what_it_trains_differently(store, tmp_path):
    out = tmp_path / "lf"
    export_dataset(store, "mt", "llamafactory", out)
    info = json.loads((out / "dataset_info.json").read_text())
    assert set(info) == {"mt", "mt_validation"}
    flags, version = _flags(store, "mt"), store.get_dataset_version("mt")
    for name, entry in info.items():
        assert set(entry) <= LLAMAFACTORY_KEYS and set(entry["columns"]) <= LLAMAFACTORY_COLUMNS
        assert set(entry["tags"]) <= LLAMAFACTORY_TAGS and entry["formatting"] == "sharegpt"
        rows = json.loads((out / entry["file_name"]).read_text())
        assert len(rows) == (version.n_train if name == "mt" else version.n_val)
        for row in rows:
            messages = row[entry["columns"]["messages"]]
            assert _llamafactory_accepts(messages, entry["tags"])
            assert [m["role"] for m in messages] == [r for r, _ in flags[row["id"]]][: len(messages)]
    header, body = _card(out)
    assert {f["split"] for f in header["configs"][0]["data_files"]} == {"train", "validation"}
    assert "assistant turns without loss it trains: 1" in body  # the switched-off step
    assert f"`data/train.json` {version.n_train}, `data/validation.json` {version.n_val}" in body
