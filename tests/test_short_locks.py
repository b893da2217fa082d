"""Short write locks. Staged imports land in short transactions: the copy runs in stretches that readers never see,
the trajectories arrive in one last step, a failed import takes its rows out again and a dead one's rows are cleared
by the next. Saving a dataset version copies its snapshots in stretches before one short last step."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from fireact_core.errors import ConflictError, StoreError
from fireact_core.filters import TrajectoryFilter
from fireact_core.io.importer import import_files
from fireact_core.records import now, stable_id
from fireact_core.store import Store, datasets, staging
from tests.conftest import FINETUNE

ROWS = 60


@pytest.fixture(scope="module")
def chat_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("staged") / "chat.jsonl"
    path.write_text("\n".join((FINETUNE / "gpt_hotpotqa.jsonl").read_text().splitlines()[:ROWS]) + "\n")
    return path


@pytest.fixture
def small_stretches(monkeypatch):
    """Every import staged, claimed 8 trajectories at a time, its rows copied a few row groups of 16 rows at a
    time, without pauses."""
    monkeypatch.setenv("FIREACT_IMPORT_STAGE_MB", "0")
    monkeypatch.setattr(staging, "SMALL", 8)
    monkeypatch.setattr(staging, "CLAIM_STRETCH", 8)
    monkeypatch.setattr(staging, "ROW_GROUP", 16)
    monkeypatch.setattr(staging, "STRETCH_HOLD_S", 0.0)
    monkeypatch.setattr(staging, "STRETCH_GAP_S", 0.0)


def _counts(path: Path) -> tuple[int, ...]:
    """What another session reads: trajectories, steps and lints of trajectories, claims and pending imports."""
    other = Store(path)
    with other.db.connect() as con:
        return con.execute("""SELECT (SELECT count(*) FROM trajectories),
            (SELECT count(*) FROM steps s SEMI JOIN trajectories t ON t.id = s.trajectory_id),
            (SELECT count(*) FROM steps), (SELECT count(*) FROM import_claims),
            (SELECT count(*) FROM pending_imports)""").fetchone()


def test_stretches_stay_out_of_sight_until_the_import_lands(tmp_path, chat_file, small_stretches, monkeypatch):
    db = tmp_path / "db.duckdb"
    store = Store(db)
    seen: dict[str, Any] = {}
    claims, copies = [], []
    claim, copy, land = staging._claim, staging._copy_stretch, staging._land

    def claimed(con: Any, ids: Any, import_id: str) -> int:
        claims.append(ids.num_rows)
        return claim(con, ids, import_id)

    def copied(con: Any, import_id: str, table: str, rows: Any, whole: bool = False) -> None:
        copies.append((table, [b.num_rows for b in rows.to_batches()], whole))
        copy(con, import_id, table, rows, whole)

    def look_then_land(*args: Any) -> dict[str, int]:
        reader = Store(db)
        seen["counts"] = _counts(db)
        seen["stats"] = reader.stats().trajectories
        seen["page"] = reader.count_filtered(TrajectoryFilter())
        return land(*args)

    monkeypatch.setattr(staging, "_claim", claimed)
    monkeypatch.setattr(staging, "_copy_stretch", copied)
    monkeypatch.setattr(staging, "_land", look_then_land)
    report = import_files(store, [chat_file], parallel=False)[0]
    assert report.added == ROWS
    assert claims == [8] * (ROWS // 8) + [ROWS % 8]
    with store.db.connect() as con:
        steps, threads = con.execute("SELECT count(*), current_setting('threads') FROM steps").fetchone()
    assert all(whole for *_, whole in copies)  # every staged trajectory claimed: rows copied as they are
    step_copies = [pieces for table, pieces, _ in copies if table == "steps"]
    # whole row groups, one for each thread that writes them, each a piece of its own; the last stretch takes
    # the rest with it when less than a row group is left after it (a stretch of less than one is logged)
    assert all(pieces == [16] * threads for pieces in step_copies[:-1])
    last = sum(step_copies[-1])
    assert sum(map(sum, step_copies)) == steps and (steps - last) % (16 * threads) == 0
    assert 16 <= last < 16 * threads + 16 and len(step_copies) > 2
    assert set(step_copies[-1][:-1]) <= {16} and 0 < step_copies[-1][-1] <= 16
    trajectories, visible_steps, all_steps, claims, pending = seen["counts"]
    assert (trajectories, visible_steps, seen["stats"], seen["page"]) == (0, 0, 0, 0)
    assert all_steps > 0 and claims == ROWS and pending == 1  # copied, waiting for the last step
    after = _counts(db)
    assert after[0] == ROWS and after[1] == after[2] > 0 and after[3:] == (0, 0)
    with store.db.connect() as con:
        assert con.execute("SELECT count(*) FROM (SELECT trajectory_id, idx FROM steps GROUP BY ALL "
                           "HAVING count(*) > 1)").fetchone()[0] == 0


def _holding_other_rows(tmp_path: Path) -> tuple[Path, Store, tuple[int, ...]]:
    """A database that already holds 20 rows of another file, with its counts before the import under test."""
    db = tmp_path / "db.duckdb"
    store = Store(db)
    other = tmp_path / "other.jsonl"
    other.write_text("\n".join((FINETUNE / "gpt_hotpotqa.jsonl").read_text().splitlines()[ROWS:ROWS + 20]) + "\n")
    import_files(store, [other], parallel=False)
    return db, store, _counts(db)


def test_a_failed_landing_takes_every_copied_row_out(tmp_path, chat_file, small_stretches, monkeypatch):
    db, store, before = _holding_other_rows(tmp_path)

    def fail(*args: Any) -> dict[str, int]:
        raise StoreError("the disk is full")

    monkeypatch.setattr(staging, "_land", fail)
    with pytest.raises(StoreError, match="disk is full"):
        import_files(store, [chat_file], parallel=False)
    assert _counts(db) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".fireact-import-")]


def test_a_chat_file_the_search_flags_is_copied_then_imported_again_line_by_line(tmp_path, chat_file,
                                                                                small_stretches, monkeypatch):
    """A chat file read by DuckDB is searched for what the bounds refuse beside the import, and the search is
    waited for only before the landing. A file it flags (here a thought that reads ': NaN', which the bounds take
    in a string) has its copied rows taken out and is imported again by the line-by-line reader: the database then
    holds what an import by that reader from the start gives, and nothing the first try copied."""
    import json

    from fireact_core.io import importer
    from fireact_core.store import chat_import

    from tests.tables import snapshot

    lines = chat_file.read_text().splitlines()
    row = json.loads(lines[7])
    row["messages"][1]["content"] = row["messages"][1]["content"].replace("Thought: ", "Thought: ratio: NaN, ", 1)
    flagged = tmp_path / "flagged.jsonl"
    flagged.write_text("\n".join(lines[:7] + [json.dumps(row)] + lines[8:]) + "\n")
    monkeypatch.setenv("FIREACT_IMPORT_SQL", "0")
    reference = Store(tmp_path / "reference.duckdb")
    import_files(reference, [flagged], parallel=False)
    monkeypatch.setenv("FIREACT_IMPORT_SQL", "1")

    events: list[str] = []
    stage, copy, remove = (chat_import.ChatImportRepository.stage_chat, staging._copy_stretch,
                           staging._remove_claimed)

    def staged(self: Any, *args: Any) -> Any:
        events.append("read by DuckDB")
        return stage(self, *args)

    def copied(con: Any, import_id: str, table: str, rows: Any, whole: bool = False) -> None:
        events.append(f"copied {table}")
        copy(con, import_id, table, rows, whole)

    def removed(db: Any, import_id: str) -> None:
        events.append("taken out")
        remove(db, import_id)

    monkeypatch.setattr(chat_import.ChatImportRepository, "stage_chat", staged)
    monkeypatch.setattr(staging, "_copy_stretch", copied)
    monkeypatch.setattr(staging, "_remove_claimed", removed)
    store = Store(tmp_path / "db.duckdb")
    report = importer.import_files(store, [flagged], parallel=False)[0]
    assert report.added == ROWS and report.format == "openai-jsonl"
    assert events[0] == "read by DuckDB" and "copied steps" in events
    assert events[events.index("taken out") - 1].startswith("copied ")  # the first try got as far as its landing
    assert events.count("read by DuckDB") == 1  # the second try read the file line by line
    assert snapshot(store) == snapshot(reference)
    assert _counts(tmp_path / "db.duckdb")[3:] == (0, 0)  # no claim nor pending import left


def test_an_import_that_fails_after_its_early_copy_began_leaves_nothing(tmp_path, chat_file, small_stretches,
                                                                      monkeypatch):
    """The steps of a chat file that comes first are copied while the import reads on (`EarlyCopy`); when a later
    file is refused, what that copy claimed and copied goes again, and the database is as it was."""
    from fireact_core.errors import FormatError

    db, store, before = _holding_other_rows(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(chat_file.read_text().splitlines()[0] + "\n{not json\n")
    copies: list[str] = []
    copy = staging._copy_stretch

    def copied(con: Any, import_id: str, table: str, rows: Any, whole: bool = False) -> None:
        copies.append(table)
        copy(con, import_id, table, rows, whole)

    early: list[Any] = []
    start = staging.EarlyCopy.__init__

    def started(self: Any, *args: Any) -> None:
        early.append(self)
        start(self, *args)

    monkeypatch.setattr(staging, "_copy_stretch", copied)
    monkeypatch.setattr(staging.EarlyCopy, "__init__", started)
    with pytest.raises(FormatError, match="bad.jsonl:2"):
        import_files(store, [chat_file, bad], parallel=False)
    assert len(early) == 1 and early[0].result() == ROWS  # it claimed and copied the first file's rows
    assert "steps" in copies
    assert _counts(db) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".fireact-import-")]


def test_what_a_dead_import_left_is_cleared_by_the_next(tmp_path, chat_file, small_stretches, monkeypatch):
    db = tmp_path / "db.duckdb"
    store = Store(db)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # a process that has ended

    def killed(*args: Any) -> dict[str, int]:
        raise KeyboardInterrupt  # the process dies before the last step: nothing cleans up after it

    monkeypatch.setattr(staging, "_land", killed)
    monkeypatch.setattr(staging.StagingRepository, "_abandon", lambda self, import_id: None)
    with pytest.raises(KeyboardInterrupt):
        import_files(store, [chat_file], parallel=False)
    with store.db.transaction() as con:
        con.execute("UPDATE pending_imports SET pid = ?", [dead_pid])
    trajectories, visible, steps, claims, pending = _counts(db)
    assert (trajectories, visible, claims, pending) == (0, 0, ROWS, 1) and steps > 0
    monkeypatch.undo()
    monkeypatch.setenv("FIREACT_IMPORT_STAGE_MB", "0")
    monkeypatch.setattr(staging, "REMOVE_CHUNK", 7)  # the dead import's rows go in several transactions
    report = import_files(store, [chat_file], parallel=False)[0]
    assert report.added == ROWS
    trajectories, visible, steps, claims, pending = _counts(db)
    assert (trajectories, claims, pending) == (ROWS, 0, 0) and visible == steps


def _with_live_import(db: Path) -> Store:
    """A store in which another live import (this process) holds the claim of id 'x'."""
    store = Store(db)
    with store.db.transaction() as con:
        con.execute("INSERT INTO pending_imports VALUES ('other', ?, ?, now(), now(), false)",
                    [os.getpid(), socket.gethostname()])
        con.execute("INSERT INTO import_claims VALUES ('x', 'other')")
    return store


def test_a_live_import_is_left_alone(tmp_path, chat_file, small_stretches, monkeypatch):
    db = tmp_path / "db.duckdb"
    store = _with_live_import(db)
    assert staging.clear_stale_imports(store.db) == 0
    assert _counts(db)[3:] == (1, 1)


def test_claims_are_let_go_in_chunks_beside_another_imports(tmp_path, chat_file, small_stretches, monkeypatch):
    """With another import's claims in the table, this one's go a chunk per transaction and the other's stay; alone,
    the table is made again empty, keeping its key."""
    db = tmp_path / "db.duckdb"
    store = _with_live_import(db)
    monkeypatch.setattr(staging, "FORGET_CHUNK", 7)
    rounds = []
    forget_one = staging._forget
    monkeypatch.setattr(staging, "_forget", lambda con, import_id, chunk=7: rounds.append(import_id)
                        or forget_one(con, import_id, chunk))
    assert import_files(store, [chat_file], parallel=False)[0].added == ROWS
    assert len(rounds) == -(-ROWS // 7)  # one transaction per chunk of this import's claims
    with store.db.connect() as con:
        assert con.execute("SELECT id, import_id FROM import_claims").fetchall() == [("x", "other")]
        assert con.execute("SELECT import_id FROM pending_imports").fetchall() == [("other",)]
        con.execute("UPDATE pending_imports SET done = true")
    assert staging.clear_stale_imports(store.db) == 1
    trajectories, visible, steps, claims, pending = _counts(db)
    assert (trajectories, claims, pending) == (ROWS, 0, 0) and visible == steps
    with store.db.transaction() as con, pytest.raises(Exception, match="[Cc]onstraint"):
        con.execute("INSERT INTO import_claims VALUES ('y', 'a'), ('y', 'b')")


def test_trajectories_claimed_by_another_import_leave_their_rows_behind(tmp_path, chat_file, small_stretches,
                                                                       monkeypatch):
    """Another live import holds the claims of 10 of the staged trajectories: this one copies only the rows of
    the trajectories it claimed (looking each one's claim up), and adds those alone."""
    db = tmp_path / "db.duckdb"
    store = _with_live_import(db)
    claim, copy = staging._claim, staging._copy_stretch
    taken: list[str] = []
    copies: list[bool] = []

    def claimed_by_both(con: Any, ids: Any, import_id: str) -> int:
        if not taken:  # the file's last ten trajectories (ids as the chat reader makes them)
            taken.extend(stable_id(chat_file.stem, i) for i in range(ROWS - 10, ROWS))
            con.execute("INSERT INTO import_claims SELECT unnest(?), 'other'", [taken])
        return claim(con, ids, import_id)

    def copied(con: Any, import_id: str, table: str, rows: Any, whole: bool = False) -> None:
        copies.append(whole)
        copy(con, import_id, table, rows, whole)

    monkeypatch.setattr(staging, "_claim", claimed_by_both)
    monkeypatch.setattr(staging, "_copy_stretch", copied)
    assert import_files(store, [chat_file], parallel=False)[0].added == ROWS - 10
    assert copies and not any(copies)
    trajectories, visible, steps, claims, pending = _counts(db)
    assert (trajectories, claims, pending) == (ROWS - 10, 11, 1) and visible == steps > 0
    with store.db.connect() as con:
        assert not con.execute("SELECT count(*) FROM trajectories WHERE id IN (SELECT unnest(?))",
                               [taken]).fetchone()[0]


def test_two_staged_imports_of_one_file_at_once_store_one_set(tmp_path, chat_file, small_stretches):
    store = Store(tmp_path / "db.duckdb")
    barrier = threading.Barrier(2)
    added: list[int] = []

    def work() -> None:
        barrier.wait()
        added.append(import_files(store, [chat_file], parallel=False)[0].added)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(added) == ROWS
    trajectories, visible, steps, claims, pending = _counts(tmp_path / "db.duckdb")
    assert (trajectories, claims, pending) == (ROWS, 0, 0) and visible == steps


def _version(store: Store, name: str) -> tuple[dict[str, Any], dict[str, list]]:
    trajectories = list(store.iter_trajectories())
    ids, revs = [t.id for t in trajectories], [t.revision for t in trajectories]
    version = {"name": name, "spec": {}, "seed": 1, "created_at": now(), "created_by": None, "size": len(ids),
               "n_train": len(ids), "n_val": 0, "cells": {}, "parent": None, "loss_mask": "observations", "note": None}
    members = {"position": list(range(len(ids))), "trajectory_id": ids, "rev": revs, "split": ["train"] * len(ids),
               "task": ["hotpotqa"] * len(ids), "method": ["react"] * len(ids)}
    return version, members


@pytest.fixture
def snapshot_stretches(monkeypatch):
    monkeypatch.setattr(datasets, "SNAPSHOT_STRETCH", 8)
    monkeypatch.setattr(datasets, "SNAPSHOT_HOLD_S", 0.0)
    monkeypatch.setattr(datasets, "SNAPSHOT_GAP_S", 0.0)


def test_saving_a_version_copies_in_stretches_then_lands_at_once(tmp_path, chat_file, snapshot_stretches, monkeypatch):
    store = Store(tmp_path / "db.duckdb")
    import_files(store, [chat_file], parallel=False)
    version, members = _version(store, "v1")
    transactions = []
    original = store.db.transaction
    monkeypatch.setattr(store.db, "transaction", lambda: (transactions.append(1), original())[1])
    saved = store.save_dataset_version(version, members)
    assert len(transactions) >= ROWS // 8 + 1
    assert saved.size == ROWS and saved.content_hash
    kept = list(store.iter_dataset_trajectories("v1"))
    assert [t.id for _, t in kept] == members["trajectory_id"]
    assert all(t.steps for _, t in kept)
    with store.db.connect() as con:
        assert con.execute("SELECT count(*) FROM dataset_snapshot_trajectories").fetchone()[0] == ROWS


def test_a_member_edited_while_a_version_is_saved_is_a_conflict(tmp_path, chat_file, snapshot_stretches,
                                                                monkeypatch):
    store = Store(tmp_path / "db.duckdb")
    import_files(store, [chat_file], parallel=False)
    version, members = _version(store, "v1")
    last = store.get_trajectory(members["trajectory_id"][-1])
    copy = datasets._copy_snapshots
    calls = []

    def edit_meanwhile(con: Any, stretch: Any) -> None:
        copy(con, stretch)
        calls.append(1)
        if len(calls) == 1:  # an edit saved right after the first stretch (before the stretch of its trajectory)
            store.save_edit(last.model_copy(update={"final_answer": "changed"}), base_revision=last.revision,
                            author="x")

    monkeypatch.setattr(datasets, "_copy_snapshots", edit_meanwhile)
    with pytest.raises(ConflictError, match="since the preview"):
        store.save_dataset_version(version, members)
    assert store.list_dataset_versions() == [] and store.dataset_members("v1").empty


def test_a_scratch_database_is_written_in_whole_row_groups(tmp_path):
    """Rows written into a database written once and read once (not compressed, as a scratch one is) fill
    DuckDB's row groups one after another, however the Arrow table they come in is cut (here in pieces of 30,000
    rows), so the copy reads them back in pieces of whole row groups without cutting them again; the database has
    as many threads afterwards as before."""
    import pyarrow as pa

    from fireact_core.store import trajectory_tables

    rows = 300_000
    ids = pa.array([f"t{i // 6:06d}" for i in range(rows)], pa.string())
    empty_trajs, empty_steps = trajectory_tables([])
    steps = pa.table({name: ids if name == "trajectory_id" else
                      pa.array([i % 6 for i in range(rows)], pa.int32()) if name == "idx" else
                      pa.nulls(rows, field.type) for name, field in zip(empty_steps.schema.names, empty_steps.schema)})
    steps = pa.Table.from_batches(steps.to_batches(max_chunksize=30_000))
    scratch = Store(tmp_path / "scratch.duckdb", compress=False, keyed=False)
    with scratch.db.connect() as con:
        threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
        scratch.insert_tables(empty_trajs, steps)
        assert con.execute("SELECT current_setting('threads')").fetchone()[0] == threads
        sizes = [r[0] for r in con.execute(
            "SELECT max(start + count) - min(start) FROM pragma_storage_info('steps') WHERE column_name = 'idx' "
            "GROUP BY row_group_id ORDER BY row_group_id").fetchall()]
        assert con.execute("SELECT list(idx ORDER BY rowid) FROM steps").fetchone()[0] == [i % 6 for i in range(rows)]
    assert sizes == [staging.ROW_GROUP, staging.ROW_GROUP, rows - 2 * staging.ROW_GROUP]


def test_a_failed_bulk_write_reports_its_own_error(tmp_path):
    """A failed write leaves DuckDB's transaction aborted until the rollback: the error raised is the write's own,
    not DuckDB's refusal of the cleanup after it (letting go of the Arrow table, setting a scratch database's
    threads back), which read as a clash with another session. Into the main database and a scratch one."""
    import pyarrow as pa

    from fireact_core.store import ScratchStore, trajectory_tables

    main = Store(tmp_path / "main.duckdb")
    for store in (main, ScratchStore(str(tmp_path), main)):
        with pytest.raises(Exception, match="no_such_column") as err:
            store.insert_tables(trajectory_tables([])[0], pa.table({"no_such_column": [1]}))
        assert not isinstance(err.value, ConflictError)
        assert store.count_trajectories() == 0


def test_a_scratch_database_past_its_memory_bound_spills_to_its_folder(tmp_path, monkeypatch):
    """A staged import's scratch database is held in memory up to a bound (FIREACT_IMPORT_MEMORY_MB); past it,
    DuckDB writes rows into the import's folder beside the database, and the import stores the same as one that
    fits. The folder is gone afterwards. (Here the bound is 16 MB, for a file of 21 MB read by the Python reader:
    DuckDB's own JSON reader needs buffers of 32 MB a thread.)"""
    import random

    from fireact_core.store import connection

    rng = random.Random(7)
    path = tmp_path / "big.jsonl"
    with open(path, "w") as f:
        for i in range(3000):
            words = " ".join(rng.choice(["alpha", "beta", "gamma", "delta", "kappa"]) for _ in range(400))
            messages = [{"role": "user", "content": f"Question {i}?"}]
            for k in range(3):
                messages += [{"role": "assistant", "content": f"Thought: step {k} {words[:200]}\nAction: search[q{i} {k}]"},
                             {"role": "user", "content": f"Observation: {words}"}]
            f.write(__import__("json").dumps({"messages": messages}) + "\n")
    monkeypatch.setenv("FIREACT_IMPORT_STAGE_MB", "0")
    spilled: list[str] = []
    land = staging._land

    def look_then_land(*args: Any) -> dict[str, int]:
        spilled.extend(p.name for folder in tmp_path.glob(".fireact-import-*") for p in folder.rglob("*"))
        return land(*args)

    monkeypatch.setattr(staging, "_land", look_then_land)
    stores = []
    for limit in (2**31, 16 * 2**20):
        monkeypatch.setattr(connection, "spill_limit", lambda limit=limit: limit)
        store = Store(tmp_path / f"db{limit}.duckdb")
        assert import_files(store, [path], parallel=False, sql=False)[0].added == 3000
        stores.append(store)
        if limit == 2**31:
            assert spilled == []
    assert spilled  # the bounded scratch wrote rows to its folder
    assert not list(tmp_path.glob(".fireact-import-*"))
    dumps = []
    for store in stores:
        with store.db.connect() as con:
            dumps.append(con.execute("SELECT list((trajectory_id, idx, thought, action_raw, observation) ORDER BY "
                                     "trajectory_id, idx) FROM steps").fetchone()[0])
    assert len(dumps[0]) == 9000 and dumps[0] == dumps[1]


def test_pieces_read_from_a_scratch_database_are_cut_into_whole_row_groups(monkeypatch):
    """A table read back in pieces that end where a scratch row group ends (and not every group there is whole) is
    cut again into pieces of one whole row group each and a shorter last one, its rows as they were: an insert of
    such pieces writes whole row groups into the main database. Pieces that are whole already are left as they are."""
    import pyarrow as pa

    monkeypatch.setattr(staging, "ROW_GROUP", 16)
    table = pa.Table.from_batches(pa.table({"x": list(range(100))}).to_batches(max_chunksize=30))
    cut = staging._in_row_groups(table)
    assert [b.num_rows for b in cut.to_batches()] == [16] * 6 + [4]
    assert cut.column("x").to_pylist() == list(range(100))
    whole = pa.Table.from_batches(pa.table({"x": list(range(40))}).to_batches(max_chunksize=16))
    assert staging._in_row_groups(whole) is whole


@pytest.mark.parametrize("irregular", [False, True])
def test_steps_kept_as_arrow_tables_land_as_those_written_through_the_scratch_database(tmp_path, chat_file,
                                                                                       monkeypatch, irregular):
    """The steps the Python readers build, and those of a chat file read by DuckDB, stay Arrow tables until the
    copy (`ScratchStore.insert_tables`, `insert_staged_chat_steps`), which takes them after the scratch database's
    own, in stretches that may straddle both; the steps of a chat file that comes first are copied while the rest
    is read (`EarlyCopy`). One import of a chat file and a native file stores what it stores
    when every step goes through the scratch database (its share of the memory bound 0), and so does the other
    order, steps in the order of the files. Stretches of 16 rows. `irregular`: two of the chat file's rows are
    left to the Python reader (an action without its closing bracket), their steps among those parsed in SQL."""
    import fireact_core.store as store_module
    from fireact_core.io.exporter import export

    from tests.tables import snapshot

    monkeypatch.setenv("FIREACT_IMPORT_STAGE_MB", "0")
    monkeypatch.setattr(staging, "ROW_GROUP", 16)
    monkeypatch.setattr(staging, "SMALL", 8)
    first = Store(tmp_path / "first.duckdb")
    import_files(first, [chat_file], parallel=False)
    native = tmp_path / "native.jsonl"
    export(first, "native", native)
    chat = tmp_path / "more.jsonl"
    lines = (FINETUNE / "gpt_hotpotqa.jsonl").read_text().splitlines()[ROWS:ROWS + 40]
    if irregular:
        for n in (3, 30):
            lines[n] = lines[n].replace("]\"}", "\"}", 1)
    chat.write_text("\n".join(lines) + "\n")
    kept: list[int] = []
    merge = store_module.Store.merge_staged

    def counted(self: Any, scratch: Any, held_steps: Any = None, before_landing: Any = None,
                early: Any = None) -> dict[str, int]:
        kept.append((len(held_steps or []), early is not None))
        return merge(self, scratch, held_steps, before_landing, early)

    monkeypatch.setattr(store_module.Store, "merge_staged", counted)
    for files in ([chat, native], [native, chat]):
        kept.clear()
        stores, orders = [], []
        for share in (0.5, 0.0):
            monkeypatch.setattr(store_module, "HELD_SHARE", share)
            store = Store(tmp_path / f"db{share}-{files[0].stem}.duckdb")
            reports = import_files(store, files, parallel=False)
            assert [r.added for r in reports] == ([40, ROWS] if files[0] == chat else [ROWS, 40])
            chat_lints = reports[files.index(chat)].lints
            assert chat_lints.get("malformed_action", 0) == (2 if irregular else 0)
            stores.append(snapshot(store))
            with store.db.connect() as con:
                orders.append(con.execute("SELECT list(trajectory_id ORDER BY rowid) FROM steps").fetchone()[0])
        # kept to the copy unless the share is 0; the chat file's, when it comes first, copied from the start
        # (`EarlyCopy`); its steps are kept after the native file's when it comes second
        assert kept == ([(1, True), (0, False)] if files[0] == chat else [(2, False), (0, False)])
        assert stores[0] == stores[1]
        assert orders[0] == orders[1]
        first_ids = {t for t, *_ in stores[0]["trajectories"][:ROWS if files[0] == native else 40]}
        assert set(orders[0][:sum(1 for t in orders[0] if t in first_ids)]) == first_ids
