"""Every file the project writes goes through one exclusive temporary file beside the target: devices, pipes,
folders and symbolic links are refused, an existing file is replaced only with --force (its mode kept), and a
failure leaves nothing behind."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest

from fireact_core import files
from fireact_core.cli import main
from fireact_core.io.importer import import_files
from fireact_core.store import Store
from tests.conftest import FINETUNE


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("safe")
    path = folder / "db.duckdb"
    small = folder / "small.jsonl"
    small.write_text("\n".join((FINETUNE / "gpt_hotpotqa.jsonl").read_text().splitlines()[:5]) + "\n")
    import_files(Store(path), [small], parallel=False)
    return path


def _export(db: Path, out: Path, *extra: str) -> int:
    return main(["--db", str(db), "export", "--format", "native", "--out", str(out), *extra])


def test_existing_file_needs_force_and_keeps_its_mode(db, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    out.write_text("mine\n")
    os.chmod(out, 0o600)
    assert _export(db, out) == 2
    assert "exists already; add --force" in capsys.readouterr().err
    assert out.read_text() == "mine\n"
    assert _export(db, out, "--force") == 0
    assert out.read_text().startswith('{"record": "header"')
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


def test_new_file_gets_the_usual_mode(db, tmp_path):
    out = tmp_path / "new.jsonl"
    assert _export(db, out) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~files._UMASK


@pytest.mark.parametrize("kind", ["fifo", "folder", "symlink", "dangling"])
def test_not_a_regular_file_is_refused_and_left_alone(db, tmp_path, capsys, kind):
    target = tmp_path / "victim.txt"
    target.write_text("keep me\n")
    out = tmp_path / "out.jsonl"
    if kind == "fifo":
        os.mkfifo(out)
    elif kind == "folder":
        out.mkdir()
    elif kind == "symlink":
        out.symlink_to(target)
    else:
        out.symlink_to(tmp_path / "nowhere")
    assert _export(db, out, "--force") == 2
    err = capsys.readouterr().err
    assert {"fifo": "not a regular file", "folder": "is a folder", "symlink": "symbolic link",
            "dangling": "symbolic link"}[kind] in err
    assert "Traceback" not in err
    assert target.read_text() == "keep me\n"
    assert not (tmp_path / "nowhere").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "victim.txt"]


def test_a_planted_part_file_is_never_followed(db, tmp_path):
    target = tmp_path / "victim.txt"
    target.write_text("keep me\n")
    (tmp_path / "out.jsonl.part").symlink_to(target)
    assert _export(db, tmp_path / "out.jsonl") == 0
    assert target.read_text() == "keep me\n"


def test_dataset_and_parquet_exports_take_the_same_rules(db, tmp_path, capsys):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"task_ratio": {"hotpotqa": 1.0}, "method_ratio": {"react": 1.0}, "size": 3,
                                "val_fraction": 0.0, "seed": 1, "allow_upsample": False}))
    assert main(["--db", str(db), "mix", "--spec", str(spec), "--name", "v1"]) == 0
    out = tmp_path / "v1.parquet"
    out.write_bytes(b"old")
    assert main(["--db", str(db), "export", "--dataset", "v1", "--format", "parquet", "--out", str(out)]) == 2
    assert out.read_bytes() == b"old"
    assert main(["--db", str(db), "export", "--dataset", "v1", "--format", "parquet", "--out", str(out), "--force"]) == 0
    assert out.read_bytes()[:4] == b"PAR1"


def test_disk_full_is_a_plain_message_and_leaves_nothing(db, tmp_path, capsys, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fsync", full)
    out = tmp_path / "out.jsonl"
    assert _export(db, out) == 2
    err = capsys.readouterr().err
    assert "the disk is full; nothing was written" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_run_folder_files_are_written_through_the_same_helper(tmp_path):
    from fireact_core.training.local import write_json

    status = tmp_path / "run" / "status.json"
    write_json(status, {"state": "running"})
    write_json(status, {"state": "succeeded"})
    assert status.read_text() == '{"state": "succeeded"}'
    os.remove(status)
    os.mkfifo(status)
    with pytest.raises(files.FireactError, match="not a regular file"):
        write_json(status, {"state": "x"})
    assert sorted(p.name for p in status.parent.iterdir()) == ["status.json"]
