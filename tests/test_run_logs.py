"""Run folders' line logs (metrics.jsonl): appends from several processes at once never tear or interleave a line,
a line a crash cut short does not swallow the next, links and special files are refused; readers go one line at a
time, whatever the file holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from fireact_core import files
from fireact_core.errors import FireactError
from fireact_core.reports.lineage import training_curve
from fireact_core.training.jobs import read_metrics

ROOT = Path(__file__).resolve().parents[1]
WRITER = """
import json, sys
from fireact_core.files import append_line
path, who = sys.argv[1], int(sys.argv[2])
for step in range(40):
    append_line(path, json.dumps({"step": step, "who": who, "pad": str(who) * 150_000}))
"""


def test_appends_from_several_processes_keep_every_line_whole(tmp_path):
    path = tmp_path / "metrics.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(who)], env=env) for who in range(4)]
    assert [p.wait(timeout=300) for p in procs] == [0] * 4
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    rows = [json.loads(line) for line in lines[:-1]]  # every line is one whole record
    assert sorted((r["who"], r["step"]) for r in rows) == [(w, s) for w in range(4) for s in range(40)]
    assert all(r["pad"] == str(r["who"]) * 150_000 for r in rows)
    assert len(read_metrics(tmp_path)) == 160


def test_a_line_cut_short_does_not_swallow_the_next(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo')  # a writer died mid-line
    files.append_line(path, json.dumps({"step": 3, "loss": 1.0}))
    assert read_metrics(tmp_path) == [{"step": 1, "loss": 2.0}, {"step": 3, "loss": 1.0}]
    curve = training_curve(str(tmp_path))
    assert curve is not None and curve["step"].tolist() == [1, 3]


@pytest.mark.parametrize("kind", ["symlink", "fifo", "folder"])
def test_links_and_special_files_are_refused_at_once(tmp_path, kind):
    target = tmp_path / "metrics.jsonl"
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("keep\n")
    if kind == "symlink":
        target.symlink_to(elsewhere)
    elif kind == "fifo":
        os.mkfifo(target)  # opening it to write would wait for a reader forever
    else:
        target.mkdir()
    with pytest.raises(FireactError, match="metrics.jsonl"):
        files.append_line(target, "{}")
    assert elsewhere.read_text() == "keep\n"
    assert read_metrics(tmp_path) == []  # a reader is not held up either


def test_readers_go_one_line_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "MAX_LOG_LINE", 1 << 16)
    path = tmp_path / "metrics.jsonl"
    with path.open("w") as fh:
        fh.write('{"step": 1}\n')
        fh.write('{"junk": "' + "x" * (24 << 20) + '"}\n')  # one 24 MB line: skipped, never held whole
        fh.write('{"step": 2}\n')
    tracemalloc.start()
    try:
        rows = read_metrics(tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rows == [{"step": 1}, {"step": 2}]
    assert peak < 4 << 20
