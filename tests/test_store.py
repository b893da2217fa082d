"""The DuckDB store on real files in tmp_path: where the database is, migrations, saving and loading, and two
processes sharing one database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fireact_core.cli import main
from fireact_core.errors import StoreError
from fireact_core.io.formats import read_file
from fireact_core.io.importer import import_files
from fireact_core.store import Store, resolve_db_path
from fireact_core.store.schema import MIGRATIONS
from tests.conftest import FINETUNE, ROOT


@pytest.fixture
def small_file(tmp_path) -> Path:
    path = tmp_path / "small.jsonl"
    path.write_text("\n".join((FINETUNE / "gpt_hotpotqa.jsonl").read_text().splitlines()[:12]) + "\n")
    return path


def test_resolve_db_path(monkeypatch, tmp_path):
    monkeypatch.delenv("FIREACT_DB", raising=False)
    assert resolve_db_path() == "fireact.duckdb"
    monkeypatch.setenv("FIREACT_DB", str(tmp_path / "env.duckdb"))
    assert resolve_db_path() == str(tmp_path / "env.duckdb")
    assert resolve_db_path(tmp_path / "flag.duckdb") == str(tmp_path / "flag.duckdb")


def test_cli_database_location(monkeypatch, tmp_path, small_file, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FIREACT_DB", raising=False)
    assert main(["import", str(small_file)]) == 0
    assert (tmp_path / "fireact.duckdb").is_file()
    monkeypatch.setenv("FIREACT_DB", str(tmp_path / "env.duckdb"))
    assert main(["import", str(small_file), "--source", "via-env"]) == 0
    assert main(["--db", str(tmp_path / "flag.duckdb"), "import", str(small_file), "--source", "via-flag"]) == 0
    capsys.readouterr()
    assert Store(tmp_path / "fireact.duckdb").stats().by_source == {"small": 12}
    assert Store(tmp_path / "env.duckdb").stats().by_source == {"via-env": 12}
    assert Store(tmp_path / "flag.duckdb").stats().by_source == {"via-flag": 12}


def test_missing_folder_is_a_store_error(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        Store(tmp_path / "no" / "such" / "folder.duckdb")


def _migrations(store: Store) -> list[tuple]:
    with store.db.connect() as con:
        return con.execute("SELECT component, version, applied_at FROM schema_migrations ORDER BY ALL").fetchall()


def test_migrations_recorded_and_run_once(tmp_path, monkeypatch):
    path = tmp_path / "m.duckdb"
    first = _migrations(Store(path))
    assert ("core", 1) in [(c, v) for c, v, _ in first]
    assert _migrations(Store(path)) == first
    monkeypatch.setitem(MIGRATIONS, "extra", ["CREATE TABLE extra_things (name VARCHAR)"])
    added = _migrations(Store(path))
    assert [(c, v) for c, v, _ in added if c == "extra"] == [("extra", 1)]
    # a second script is all that runs next time: running the first again would fail (the table exists)
    monkeypatch.setitem(MIGRATIONS, "extra", ["CREATE TABLE extra_things (name VARCHAR)",
                                              "ALTER TABLE extra_things ADD COLUMN size INTEGER"])
    store = Store(path)
    assert [(c, v) for c, v, _ in _migrations(store) if c == "extra"] == [("extra", 1), ("extra", 2)]
    with store.db.connect() as con:
        con.execute("INSERT INTO extra_things VALUES ('a', 1)")
    assert set(first) <= set(_migrations(Store(path)))


def test_failed_migration_is_a_store_error(tmp_path, monkeypatch):
    monkeypatch.setitem(MIGRATIONS, "broken", ["CREATE TABLE oops ("])
    with pytest.raises(StoreError, match="migration broken 1 failed"):
        Store(tmp_path / "b.duckdb")


def test_trajectories_load_back_as_saved(shared, tmp_path):
    result = read_file(FINETUNE / "gpt_multitask.jsonl")
    store = Store(tmp_path / "s.duckdb")
    import_files(store, [FINETUNE / "gpt_multitask.jsonl"])
    loaded = {t.id: t for t in store.iter_trajectories()}
    assert len(loaded) == 1344
    for t in result.trajectories[:200]:
        back = loaded[t.id]
        assert back.steps == t.steps
        assert (back.question, back.prompt, back.meta, back.final_answer) == (t.question, t.prompt, t.meta, t.final_answer)
    one = store.get_trajectory(result.trajectories[0].id)
    assert one == loaded[one.id]


def test_save_trajectories_skips_existing_ids(tmp_path, small_file):
    store = Store(tmp_path / "s.duckdb")
    trajs = read_file(small_file).trajectories
    assert store.save_trajectories(trajs[:5]) == 5
    assert store.save_trajectories(trajs) == 7
    assert store.count_trajectories() == 12
    assert store.existing_ids([t.id for t in trajs[:3]] + ["nope"]) == {t.id for t in trajs[:3]}


def test_one_session_does_many_calls(tmp_path, small_file):
    """A count (a single-row result) then reads and writes that register Arrow tables on the same connection."""
    store = Store(tmp_path / "s.duckdb")
    import_files(store, [small_file])
    with store.session():
        assert store.count_trajectories() == 12
        ids = [t.id for t in store.iter_trajectories()]
        assert store.count_trajectories("small") == 12
        assert store.existing_ids(ids) == set(ids)
        revisions, annotations, _ = store.history_of(ids)
        assert revisions == {} and annotations == {}
        assert store.stats().trajectories == 12


CHILD = """
import sys, time
from fireact_core.io.importer import import_files
from fireact_core.store import Store
print("opening", flush=True)
store = Store(sys.argv[1])
reports = import_files(store, [sys.argv[2]], source="child")
print(f"{time.time()} {reports[0].added}", flush=True)
"""


def test_two_processes_share_one_database(tmp_path, small_file):
    db = tmp_path / "shared.duckdb"
    store = Store(db)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(db), str(small_file)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    try:
        with store.session():  # holds the file lock: the child waits for it, retrying
            assert child.stdout.readline().strip() == "opening"
            import_files(store, [small_file], source="parent")
            assert child.poll() is None
            released = time.time()
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, err
    finished, added = out.split()
    assert float(finished) >= released and int(added) == 12  # the child's import ended after the lock was let go
    assert store.stats().by_source == {"child": 12, "parent": 12}


def test_lock_timeout_says_so(tmp_path):
    db = tmp_path / "locked.duckdb"
    Store(db)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
         "time.sleep(30)", str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreError, match="cannot open the database"):
            Store(db, lock_timeout=0.5)
    finally:
        holder.kill()
        holder.wait()


def test_stats_and_lint_counts_on_an_empty_database(tmp_path):
    store = Store(tmp_path / "e.duckdb")
    assert store.stats().model_dump() == {"trajectories": 0, "by_source": {}, "by_task": {}, "by_method": {}}
    assert store.lint_counts() == {}
    assert json.loads(json.dumps(store.stats().model_dump())) == store.stats().model_dump()


def test_step_tables_are_the_step_columns_on_every_shape_of_step():
    """The bulk path reads steps into Arrow in one pass; it gives exactly the column lists that the one-row saves
    use, for steps without an action or flags, with a partial action or partial flags, and trajectories without
    steps; a step whose flags say nothing of `train` is trained on. Searches are counted as the one-row saves count
    them, in any case."""
    import pyarrow as pa

    from fireact_core.io.formats.common import trajectory_record
    from fireact_core.store.trajectories import STEP_SCHEMA, TRAJ_SCHEMA, trajectory_columns, trajectory_tables

    steps = [
        {},
        {"thought": "t", "action": None, "observation": None},
        {"thought": "t", "action": {"raw": "search[x]", "name": "search", "arg": "x"}, "observation": "o",
         "flags": {"train": False, "perturbed": "swap", "original_observation": "before", "parse_error": None}},
        {"action": {"raw": "finish[]"}, "flags": {}},
        {"raw": "unparsed text", "obs_raw": "Obs", "flags": {"parse_error": "no action"}},
        {"thought": "", "action": {"raw": "", "name": None, "arg": None}, "flags": {"train": True}},
        {"action": {"raw": "Search[x]", "name": "Search", "arg": "x"}},
        {"action": {"raw": "\u017fearch[x]", "name": "\u017fearch", "arg": "x"}},  # a long s lowers to itself
        {"action": {"raw": "SEARCH[y]", "name": "SEARCH", "arg": "y"}},
    ]
    records = [trajectory_record({"id": f"t{i}", "source": "s", "question": f"q{i}?", "steps": steps[:i]})
               for i in range(len(steps) + 1)] + [trajectory_record({"id": "none", "source": "s", "question": "q", "steps": []})]
    t_cols, s_cols = trajectory_columns(records)
    trajs, table = trajectory_tables(records)
    assert trajs.equals(pa.Table.from_pydict(t_cols, schema=TRAJ_SCHEMA))
    assert table.equals(pa.Table.from_pydict(s_cols, schema=STEP_SCHEMA))
    assert table.num_rows == sum(range(len(steps) + 1))
    assert table.column("train").to_pylist()[-9:] == [True, True, False, True, True, True, True, True, True]
    assert trajs.column("n_search").to_pylist() == [0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 0]
