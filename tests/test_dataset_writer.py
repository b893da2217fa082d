"""One writer for dataset versions: the export of a version (every format, whole or by split), the training
job's example files and the OpenAI job's chat files all come out of it, byte for byte as before it was one."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from fireact_core.mixing.export import DATASET_FORMATS, export_dataset
from fireact_core.mixing.versions import MixSpec, save_mix
from fireact_core.store import Store
from fireact_core.training.data import export_dataset as training_files
from fireact_core.training.openai_jobs import export_chat_files

# sha256 (first 16 hex digits) of each file of version "v" below, as the three writers of dataset versions wrote
# them before they became one; native lines are read without their import times (`created_at`, `updated_at`)
PINNED = {
    "openai-jsonl/None": "30c004c6c8505831", "openai-jsonl/train": "b419c6d2a04479ef",
    "openai-jsonl/val": "38e2cecdfa75062d",
    "alpaca/None": "f09a73449c27c44f", "alpaca/train": "a3848bb8edfeb92f", "alpaca/val": "418d598265440885",
    "messages/None": "4ccbbf462c83ae6d", "messages/train": "3a51c746fae2f829", "messages/val": "d730279e4444ddd1",
    "parquet/None": "170b0245cf20fc3b", "parquet/train": "e00499c9f028ddf0", "parquet/val": "18b0d93cf855cc7f",
    "native/None": "ade48c69d935f736", "native/train": "9c07d9ba7d9ff8cb", "native/val": "8097ec1cb36dee71",
    "examples/train": "8e3bf9d91217814c", "examples/val": "08b9c3624b4fee38",
    "openai-files/train": "b419c6d2a04479ef", "openai-files/val": "38e2cecdfa75062d",
}


def _without_times(value):
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items() if k not in ("created_at", "updated_at")}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


def digest(path: Path, native: bool = False) -> str:
    data = path.read_bytes()
    if native:
        data = "".join(json.dumps(_without_times(json.loads(line)), ensure_ascii=False) + "\n"
                       for line in data.decode("utf-8").splitlines()).encode("utf-8")
    return hashlib.sha256(data).hexdigest()[:16]


@pytest.fixture(scope="module")
def version_store(tmp_path_factory, shared) -> Store:
    from fireact_core.io.importer import import_files

    store = Store(tmp_path_factory.mktemp("writer") / "d.duckdb")
    import_files(store, [shared / "finetune" / "gpt_hotpotqa.jsonl",
                         shared / "finetune" / "alpaca_hotpotqa_multimethod.json"])
    save_mix(store, MixSpec.parse({"size": 40, "val_fraction": 0.25, "seed": 3, "loss_mask": "observations"}), "v",
             author="ann")
    return store


def test_every_export_of_a_version_keeps_its_bytes(version_store, tmp_path):
    got = {}
    for fmt in DATASET_FORMATS:
        for split in (None, "train", "val"):
            path = tmp_path / f"{fmt}-{split}"
            export_dataset(version_store, "v", fmt, path, split=split)
            got[f"{fmt}/{split}"] = digest(path, native=fmt == "native")
    info = training_files(version_store, "v", tmp_path / "examples")
    assert (info["n_train"], info["n_val"]) == (30, 10)
    files = export_chat_files(version_store, "v", tmp_path / "openai")
    for split in ("train", "val"):
        got[f"examples/{split}"] = digest(tmp_path / "examples" / f"{split}.jsonl")
        got[f"openai-files/{split}"] = digest(files[split])
    assert got == PINNED
