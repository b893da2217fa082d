"""The demo data set (datasets/) and `fireact demo`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict

import pytest

from fireact_core.cli import main
from fireact_core.demo import DEMO_DIR, demo_files, load_demo
from fireact_core.errors import PrerequisiteError
from fireact_core.io.formats import read_file
from fireact_core.io.lint import question_key
from fireact_core.store import Store
from fireact_core.generation.tasks import get_task
from tests.conftest import ROOT

PLANTED = {"observation_none", "malformed_action", "duplicate_question", "eval_contamination", "failed",
           "no_finish", "empty_finish", "duplicated_final_observation"}


@pytest.fixture
def demo_store(tmp_path):
    store = Store(tmp_path / "demo.duckdb")
    load_demo(store)
    return store


def runs_of(store: Store) -> dict[str, list]:
    runs = defaultdict(list)
    for src in store.list_sources():
        if src.kind == "run":
            runs[src.task].append(list(store.iter_trajectories(source=src.name)))
    return runs


def test_files_are_what_the_generator_writes(tmp_path):
    subprocess.run([sys.executable, str(DEMO_DIR / "make_demo.py"), "--out", str(tmp_path)], check=True,
                   capture_output=True)
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.json"))
    committed = sorted(p.relative_to(DEMO_DIR) for p in DEMO_DIR.rglob("*.json"))
    assert written == committed
    for rel in written:
        assert (tmp_path / rel).read_bytes() == (DEMO_DIR / rel).read_bytes(), rel
    assert sum(p.stat().st_size for p in DEMO_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts) < 200_000


def test_two_runs_per_task_over_the_same_questions_text_and_chat(demo_store):
    runs = runs_of(demo_store)
    assert set(runs) == {"hotpotqa", "strategyqa"}
    for pair in runs.values():
        assert len(pair) == 2
        questions = [sorted(question_key(t.question) for t in run) for run in pair]
        assert questions[0] == questions[1] and len(questions[0]) >= 3
        models = {t.model for run in pair for t in run}
        assert models == {"gpt-4", "llama-2-7b-lora"}
    variants = {}
    for path in sorted((DEMO_DIR / "trajs").glob("*.json")):
        entry = next(iter(json.loads(path.read_text()).values()))
        variants[path.name] = "chat" if isinstance(entry["traj"], list) else "text"
        if variants[path.name] == "text":
            assert entry["traj"].startswith("Below is an instruction that describes a task.")
            assert entry["traj_by_line"] == entry["traj"].split("\n")
        else:
            assert isinstance(entry["prompt"], list) and entry["traj"][0]["role"] == "user"
    assert set(variants.values()) == {"chat", "text"}


def test_scores_agree_with_task_scoring_and_include_right_and_wrong(demo_store):
    trajs = [t for pair in runs_of(demo_store).values() for run in pair for t in run]
    for t in trajs:
        score = get_task(t.task).score(t.final_answer or "", t.gold)
        assert (t.em, t.f1, t.reward) == (score.em, score.f1, score.reward), t.question
    assert {t.em for t in trajs} == {0.0, 1.0}
    assert any(0 < t.f1 < 1 for t in trajs), "a partly right answer shows what F1 adds to EM"
    for path in (DEMO_DIR / "trajs").glob("*.json"):
        for entry in json.loads(path.read_text()).values():
            last = entry["traj"] if isinstance(entry["traj"], str) else entry["traj"][-1]["content"]
            if entry["pred"]:
                assert f"reward = {entry['reward']}" in last


def test_planted_lints_methods_and_tasks(demo_store):
    counts = demo_store.lint_counts()
    assert PLANTED <= set(counts)
    stats = demo_store.stats()
    assert {"react", "cot", "reflexion"} <= set(stats.by_method)
    assert set(stats.by_task) == {"hotpotqa", "strategyqa", "mmlu"}
    finetune = list(demo_store.iter_trajectories(source="alpaca_demo_multimethod"))
    assert {t.method for t in finetune} == {"react", "cot", "reflexion"}
    flagged = {x.kind for t in finetune for x in demo_store.lints_of(t.id)}
    assert {"duplicate_question", "eval_contamination"} <= flagged


def test_unsafe_observation_is_kept_verbatim(demo_store):
    """The demo carries markup in an observation, so the pages' escaping can be seen; the store keeps it as is."""
    observations = [s.observation or "" for t in demo_store.iter_trajectories() for s in t.steps]
    unsafe = [o for o in observations if "<script>alert(1)</script>" in o]
    assert unsafe and "![Eiffel Tower at night](https://example.invalid/eiffel.png)" in unsafe[0]


def test_loading_twice_adds_nothing(demo_store):
    before = (demo_store.stats(), demo_store.lint_counts())
    assert load_demo(demo_store) == []
    reports = load_demo(demo_store, force=True)
    assert len(reports) == len(demo_files()) and all(r.added == 0 for r in reports)
    assert (demo_store.stats(), demo_store.lint_counts()) == before


def test_every_demo_file_reads_with_auto_detection():
    formats = {p.name: read_file(p).format for p in demo_files()}
    assert set(formats.values()) == {"fireact-run", "alpaca"}


def test_missing_demo_folder_says_what_to_do(tmp_path):
    with pytest.raises(PrerequisiteError, match="no demo data"):
        load_demo(Store(tmp_path / "x.duckdb"), folder=tmp_path / "nothing")


def test_demo_cli(tmp_path, capsys):
    db = str(tmp_path / "cli.duckdb")
    assert main(["--db", db, "demo"]) == 0
    out = capsys.readouterr().out
    total = Store(db).count_trajectories()
    assert f"demo data: {total} trajectories added from {len(demo_files())} files" in out
    assert "alpaca_demo_multimethod" in out and "eval_contamination 1" in out
    assert main(["--db", db, "demo"]) == 0
    assert f"already holds {total} trajectories" in capsys.readouterr().out
    assert main(["--db", db, "demo", "--force"]) == 0
    assert "demo data: 0 trajectories added" in capsys.readouterr().out
    assert Store(db).count_trajectories() == total


def test_demo_cli_via_fireact_script_respects_env(tmp_path):
    db = tmp_path / "env.duckdb"
    script = ROOT / ".venv" / "bin" / "fireact"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "fireact_core.cli"]
    done = subprocess.run([*cmd, "demo"], env={"FIREACT_DB": str(db), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert db.exists() and Store(db).count_trajectories() > 0
