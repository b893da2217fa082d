"""The `fireact` command line on the real FireAct files: import, stats, lint, export, overrides, and bad input
(exit 2, `FILE:LINE:` on stderr, the database exactly as it was)."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from contextlib import redirect_stdout
from pathlib import Path
from statistics import mean

import pytest

from fireact_core.cli import main
from fireact_core.io.lint import LINT_KINDS
from fireact_core.io.lint import question_key
from fireact_core.store import Store
from tests.conftest import FINETUNE, ROOT, RUN_FILE, SHARED

ALL_FILES = [FINETUNE / "alpaca_hotpotqa.json", FINETUNE / "alpaca_hotpotqa_multimethod.json",
             FINETUNE / "gpt_hotpotqa.jsonl", FINETUNE / "gpt_multitask.jsonl", RUN_FILE]
STRATEGYQA_DEV = SHARED / "tasks" / "strategyqa" / "dev.json"
RUN_SOURCE = RUN_FILE.stem


def run(*argv: object) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main([str(a) for a in argv])
    return code, out.getvalue()


def json_of(*argv: object):
    code, out = run(*argv)
    assert code == 0
    return json.loads(out)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> tuple[Path, str]:
    """Every FireAct file imported once by `fireact import`, with StrategyQA dev as the evaluation split."""
    assert SHARED.is_dir(), f"FireAct reference data not found at {SHARED}"
    db = tmp_path_factory.mktemp("cli") / "all.duckdb"
    code, out = run("--db", db, "import", *ALL_FILES, "--eval-split", STRATEGYQA_DEV)
    assert code == 0
    return db, out


def test_import_reports_each_file(loaded):
    _, out = loaded
    lines = out.strip().splitlines()
    assert len(lines) == len(ALL_FILES)
    for line, path, rows in zip(lines, ALL_FILES, [500, 734, 500, 1344, 500]):
        assert line.startswith(f"{path}: {rows} rows read")
        assert f"{rows} trajectories added" in line
        assert "lints:" in line
    assert "eval_contamination 37" in lines[3]


def test_stats_json_shape_and_counts(loaded):
    db, _ = loaded
    stats = json_of("--db", db, "stats", "--json")
    assert list(stats) == ["trajectories", "by_source", "by_task", "by_method"]
    assert stats["trajectories"] == 3578
    assert stats["by_source"] == {"gpt_multitask": 1344, "alpaca_hotpotqa_multimethod": 734, "alpaca_hotpotqa": 500,
                                  "gpt_hotpotqa": 500, RUN_SOURCE: 500}
    assert sum(stats["by_task"].values()) == sum(stats["by_method"].values()) == 3578
    code, text = run("--db", db, "stats")
    assert code == 0 and text.startswith("3578 trajectories")


def test_run_file_source_and_scores(loaded):
    db, _ = loaded
    store = Store(db)
    src = store.get_source(RUN_SOURCE)
    assert (src.kind, src.task, src.split, src.model, src.attempted) == (
        "run", "hotpotqa", "dev", "llama_models_lora_llama-2-7b-d_1000", 500)
    trajs = list(store.iter_trajectories(source=RUN_SOURCE))
    assert len(trajs) == 500
    assert round(mean(t.em for t in trajs), 3) == 0.262
    assert round(mean(t.f1 for t in trajs), 3) == 0.380


def _within(counts: Counter, expected: dict[str, int], slack: int) -> None:
    for key, n in expected.items():
        assert abs(counts[key] - n) <= slack, f"{key}: {counts[key]}, expected {n} +- {slack} ({dict(counts)})"


def test_methods_and_tasks_inferred(loaded):
    db, _ = loaded
    store = Store(db)
    methods = Counter(t.method for t in store.iter_trajectories(source="alpaca_hotpotqa_multimethod"))
    _within(methods, {"react": 499, "cot": 187, "reflexion": 47}, 2)
    tasks = Counter(t.task for t in store.iter_trajectories(source="gpt_multitask"))
    _within(tasks, {"hotpotqa": 500, "mmlu": 456, "strategyqa": 388}, 5)


def test_lint_counts_on_real_files(loaded):
    db, _ = loaded
    everything = json_of("--db", db, "lint", "--json")
    assert all(isinstance(n, int) and kind in LINT_KINDS for kind, n in everything.items())
    multi = json_of("--db", db, "lint", "--json", "--source", "alpaca_hotpotqa_multimethod")
    assert multi["duplicate_question"] == 11
    assert multi["observation_none"] == 13
    store = Store(db)
    trajs = list(store.iter_trajectories(source="alpaca_hotpotqa_multimethod"))
    _, _, lints = store.history_of([t.id for t in trajs])
    dups = [t for t in trajs if any(x.kind == "duplicate_question" for x in lints.get(t.id, []))]
    questions = {question_key(t.question) for t in dups}
    assert len(dups) == 11
    assert len(questions) == 10
    multitask = json_of("--db", db, "lint", "--json", "--source", "gpt_multitask")
    assert multitask["eval_contamination"] == 37
    assert "eval_contamination" not in json_of("--db", db, "lint", "--json", "--source", "gpt_hotpotqa")
    code, text = run("--db", db, "lint", "--source", "gpt_multitask")
    assert code == 0 and re.search(r"eval_contamination\s+37", text)


def test_importing_the_same_file_again_adds_nothing(loaded, tmp_path):
    db = tmp_path / "again.duckdb"
    shutil.copy(loaded[0], db)
    before = json_of("--db", db, "stats", "--json")
    code, out = run("--db", db, "import", FINETUNE / "gpt_hotpotqa.jsonl")
    assert code == 0
    assert "500 rows read" in out and "0 trajectories added" in out
    assert json_of("--db", db, "stats", "--json") == before


def test_task_and_method_override(shared, tmp_path):
    db = tmp_path / "override.duckdb"
    code, out = run("--db", db, "import", FINETUNE / "gpt_hotpotqa.jsonl", "--task", "strategyqa", "--method", "cot",
                    "--source", "forced")
    assert code == 0 and "500 trajectories added to 'forced'" in out
    stats = json_of("--db", db, "stats", "--json")
    assert stats["by_task"] == {"strategyqa": 500}
    assert stats["by_method"] == {"cot": 500}
    assert stats["by_source"] == {"forced": 500}
    src = Store(db).get_source("forced")
    assert (src.task, src.method, src.attempted) == ("strategyqa", "cot", 500)


def test_unknown_task_or_method_is_refused(tmp_path, capsys):
    db = tmp_path / "x.duckdb"
    assert main(["--db", str(db), "import", str(FINETUNE / "gpt_hotpotqa.jsonl"), "--task", "nosuchtask"]) == 2
    assert "unknown task 'nosuchtask'" in capsys.readouterr().err
    assert main(["--db", str(db), "import", str(FINETUNE / "gpt_hotpotqa.jsonl"), "--method", "magic"]) == 2
    assert "unknown method 'magic'" in capsys.readouterr().err


def test_export_formats_from_the_cli(loaded, tmp_path):
    db, _ = loaded
    out = tmp_path / "a.json"
    code, text = run("--db", db, "export", "--format", "alpaca", "--out", out, "--source", "alpaca_hotpotqa")
    assert code == 0 and text.startswith("500 trajectories written")
    assert out.read_bytes() == (FINETUNE / "alpaca_hotpotqa.json").read_bytes()
    msgs = tmp_path / "m.jsonl"
    assert run("--db", db, "export", "--format", "messages", "--out", msgs, "--source", RUN_SOURCE)[0] == 0
    rows = [json.loads(line) for line in msgs.read_text().splitlines()]
    assert len(rows) == 500 and all(isinstance(m["train"], bool) for r in rows for m in r["messages"] if m["role"] == "assistant")


def test_export_of_unknown_source_fails(loaded, tmp_path, capsys):
    db, _ = loaded
    assert main(["--db", str(db), "export", "--format", "native", "--out", str(tmp_path / "x"), "--source", "nope"]) == 2
    assert "no source named 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


# --- bad input ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_db(tmp_path_factory) -> Path:
    """A database that already holds a file (the first 40 rows of gpt_hotpotqa)."""
    folder = tmp_path_factory.mktemp("base")
    first = folder / "gpt_hotpotqa_40.jsonl"
    first.write_text("\n".join(_gpt_lines(40)) + "\n")
    db = folder / "base.duckdb"
    assert run("--db", db, "import", first)[0] == 0
    return db


def snapshot(db: Path, folder: Path) -> tuple[dict, bytes]:
    out = folder / f"snap-{len(list(folder.glob('snap-*')))}.jsonl"
    assert run("--db", db, "export", "--format", "native", "--out", out)[0] == 0
    return json_of("--db", db, "stats", "--json"), out.read_bytes()


def _gpt_lines(n: int) -> list[str]:
    return (FINETUNE / "gpt_hotpotqa.jsonl").read_text().splitlines()[:n]


def bad_empty(d: Path) -> tuple[Path, int, str]:
    p = d / "empty.jsonl"
    p.write_text("")
    return p, 1, "empty"


def bad_blank(d: Path) -> tuple[Path, int, str]:
    p = d / "blank.json"
    p.write_text("\n  \n")
    return p, 1, "empty"


def bad_truncated(d: Path) -> tuple[Path, int, str]:
    text = (FINETUNE / "alpaca_hotpotqa.json").read_text()
    p = d / "truncated.json"
    p.write_text(text[: len(text) // 2])
    return p, text[: len(text) // 2].count("\n") + 1, "invalid JSON"


def bad_line_7(d: Path) -> tuple[Path, int, str]:
    lines = _gpt_lines(9)
    lines[6] = lines[6][:-40]
    p = d / "line7.jsonl"
    p.write_text("\n".join(lines) + "\n")
    return p, 7, "invalid JSON"


def bad_shape_jsonl(d: Path) -> tuple[Path, int, str]:
    lines = _gpt_lines(4)
    lines[2] = json.dumps({"messages": "Who wrote Dune?"})
    p = d / "shape.jsonl"
    p.write_text("\n".join(lines) + "\n")
    return p, 3, "'messages' list"


def bad_shape_alpaca(d: Path) -> tuple[Path, int, str]:
    p = d / "shape.json"
    p.write_text(json.dumps([{"instruction": "q1", "input": "", "output": "Thought: a\nAction: finish[b]"},
                             {"instruction": "q2", "input": ""}], indent=4))
    return p, 7, "'output'"


def bad_message(d: Path) -> tuple[Path, int, str]:
    lines = _gpt_lines(3)
    lines[1] = json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": 4}]})
    p = d / "message.jsonl"
    p.write_text("\n".join(lines) + "\n")
    return p, 2, "string 'content'"


def bad_utf8(d: Path) -> tuple[Path, int, str]:
    lines = [line.encode() for line in _gpt_lines(5)]
    lines[3] = lines[3].replace(b"Thought", b"Th\xff\xfeought", 1)
    p = d / "latin.jsonl"
    p.write_bytes(b"\n".join(lines) + b"\n")
    return p, 4, "UTF-8"


def bad_huge_line(d: Path) -> tuple[Path, int, str]:
    p = d / "huge.jsonl"
    with open(p, "w") as fh:
        fh.write(_gpt_lines(1)[0] + "\n")
        fh.write('{"messages": [{"role": "user", "content": "' + "x" * (50 * 2**20) + '"}]}\n')
    return p, 2, "MB limit"


def bad_directory(d: Path) -> tuple[Path, int, str]:
    p = d / "folder"
    p.mkdir()
    return p, 1, "directory"


def bad_missing(d: Path) -> tuple[Path, int, str]:
    return d / "no-such-file.jsonl", 1, "no such file"


def bad_run_entry(d: Path) -> tuple[Path, int, str]:
    p = d / "hotpotqa_dev_0_2_m_0.0_2023-01-01-00-00-00.json"
    p.write_text('{\n    "1": {\n        "traj": "Thought: a\\nAction: finish[b]"\n    },\n    "2": {\n        "em": 1\n    }\n}')
    return p, 5, "'traj'"


BAD = [bad_empty, bad_blank, bad_truncated, bad_line_7, bad_shape_jsonl, bad_shape_alpaca, bad_message, bad_utf8,
       bad_huge_line, bad_directory, bad_missing, bad_run_entry]


@pytest.mark.parametrize("make", BAD, ids=[f.__name__ for f in BAD])
def test_bad_input_exits_2_names_file_and_line_and_changes_nothing(base_db, tmp_path, capsys, make):
    db = tmp_path / "db.duckdb"
    shutil.copy(base_db, db)
    before = snapshot(db, tmp_path)
    path, line, what = make(tmp_path)
    capsys.readouterr()
    assert main(["--db", str(db), "import", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:{line}: " in err, err[:500]
    assert what in err
    assert snapshot(db, tmp_path) == before


def test_second_bad_file_leaves_nothing_of_the_first(base_db, tmp_path, capsys):
    db = tmp_path / "db.duckdb"
    shutil.copy(base_db, db)
    before = snapshot(db, tmp_path)
    bad, line, _ = bad_line_7(tmp_path)
    assert main(["--db", str(db), "import", str(FINETUNE / "alpaca_hotpotqa.json"), str(bad)]) == 2
    assert f"{bad}:7: " in capsys.readouterr().err
    after = snapshot(db, tmp_path)
    assert after == before and "alpaca_hotpotqa" not in after[0]["by_source"]


def test_bad_input_through_a_real_process(base_db, tmp_path):
    db = tmp_path / "db.duckdb"
    shutil.copy(base_db, db)
    before = snapshot(db, tmp_path)
    bad, _, _ = bad_line_7(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "fireact_core.cli", "--db", str(db), "import", str(bad)],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert proc.returncode == 2
    assert f"{bad}:7: invalid JSON" in proc.stderr
    assert proc.stdout == ""
    assert snapshot(db, tmp_path) == before


def test_import_and_stats_through_a_real_process(shared, tmp_path):
    db = tmp_path / "proc.duckdb"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "fireact_core.cli", "--db", str(db)]
    proc = subprocess.run([*cmd, "import", str(FINETUNE / "alpaca_hotpotqa.json")], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "500 rows read (alpaca), 500 trajectories added to 'alpaca_hotpotqa'" in proc.stdout
    stats = subprocess.run([*cmd, "stats", "--json"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert stats.returncode == 0
    assert json.loads(stats.stdout)["by_source"] == {"alpaca_hotpotqa": 500}


def test_train_settings_left_out_are_the_configs_and_given_ones_are_checked_by_it(tmp_path, capsys, monkeypatch):
    from fireact_core.training import LocalTrainConfig, jobs

    started = []
    monkeypatch.setattr(jobs, "start_local_job", lambda store, config, by=None: started.append(config) or 1 / 0)
    db, common = str(tmp_path / "t.duckdb"), ["--dataset", "d", "--base-model", "b", "--out", str(tmp_path / "o")]
    with pytest.raises(ZeroDivisionError):
        main(["--db", db, "train", *common, "--lr", "1e-3", "--lora-r", "8", "--cpu"])
    expected = LocalTrainConfig(dataset="d", base_model="b", out=str(tmp_path / "o"), learning_rate=1e-3, lora_r=8,
                                lora_alpha=16, use_cpu=True)
    assert started == [expected]
    assert main(["--db", db, "train", *common, "--method", "qlora"]) == 2
    assert "choose one of ['lora', 'full']" in capsys.readouterr().err
    assert main(["--db", db, "train", *common, "--max-length", "long"]) == 2
    assert "max_length = 'long': not a number" in capsys.readouterr().err


@pytest.mark.parametrize("setting", ["FIREACT_IMPORT_STAGE_MB", "FIREACT_IMPORT_MEMORY_MB", "FIREACT_IMPORT_POOL_LINES"])
def test_an_import_setting_that_is_not_a_number_is_named_and_nothing_is_written(tmp_path, monkeypatch, capsys,
                                                                                 setting):
    """Each FIREACT_* number an import reads (staging, the scratch database's bound, the reader pool) is named
    with what it holds when it is not a number: exit 2, nothing written, no scratch folder left."""
    monkeypatch.setenv("FIREACT_IMPORT_STAGE_MB", "0")  # staged: the scratch database's bound is read
    monkeypatch.setenv("FIREACT_IMPORT_SQL", "0")  # read by Python: whether the pool reads it is asked
    monkeypatch.setenv(setting, "lots")
    db = tmp_path / "db.duckdb"
    code = main(["--db", str(db), "import", str(FINETUNE / "gpt_hotpotqa.jsonl")])
    assert code == 2
    assert f"{setting}='lots' is not a number" in capsys.readouterr().err
    assert Store(db).count_trajectories() == 0
    assert not list(tmp_path.glob(".fireact-import-*"))
