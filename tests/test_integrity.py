"""Integrity under concurrent use: keys, serialised writers, conflicts, migrations of older databases and the
refusal of newer ones. Races run as threads on one `Store`, as the app's sessions do."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from fireact_core.cli import main
from fireact_core.errors import ConflictError, FormatError, StoreError
from fireact_core.io.importer import import_files
from fireact_core.records import Annotation, now
from fireact_core.store import Store
from fireact_core.store.schema import MIGRATIONS
from tests.conftest import FINETUNE


@pytest.fixture(scope="module")
def chat_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("integrity") / "chat.jsonl"
    path.write_text("\n".join((FINETUNE / "gpt_hotpotqa.jsonl").read_text().splitlines()[:60]) + "\n")
    return path


def _race(n: int, work) -> list:
    """Run `work(i)` in n threads started together; the result or the exception of each."""
    barrier = threading.Barrier(n)
    out: list = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            out[i] = work(i)
        except Exception as exc:  # noqa: BLE001 - the test looks at what each thread got
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def _count(store: Store, sql: str) -> int:
    with store.db.connect() as con:
        return con.execute(sql).fetchone()[0]


def test_two_sessions_importing_one_file_store_one_set(tmp_path, chat_file):
    store = Store(tmp_path / "db.duckdb")
    results = _race(2, lambda i: import_files(store, [chat_file], parallel=False)[0].added)
    assert sorted(results) == [0, 60]
    assert _count(store, "SELECT count(*) FROM trajectories") == 60
    assert _count(store, "SELECT count(DISTINCT id) FROM trajectories") == 60
    assert _count(store, "SELECT count(*) FROM sources") == 1
    assert _count(store, "SELECT count(*) FROM (SELECT trajectory_id, idx FROM steps GROUP BY ALL HAVING count(*) > 1)") == 0


def test_concurrent_reviews_all_survive(tmp_path, chat_file):
    store = Store(tmp_path / "db.duckdb")
    import_files(store, [chat_file], parallel=False)
    tid = store.iter_trajectories().__next__().id
    saved = _race(6, lambda i: store.annotate(Annotation(trajectory_id=tid, seq=0, author=f"u{i}", at=now(),
                                                          labels=[f"l{i}"])))
    assert all(isinstance(a, Annotation) for a in saved)
    events = store.list_annotations(tid)
    assert [a.seq for a in events] == [1, 2, 3, 4, 5, 6]
    assert sorted(a.author for a in events) == [f"u{i}" for i in range(6)]


def test_concurrent_edits_one_winner_the_rest_conflict(tmp_path, chat_file):
    store = Store(tmp_path / "db.duckdb")
    import_files(store, [chat_file], parallel=False)
    traj = store.iter_trajectories().__next__()

    def edit(i: int):
        changed = traj.model_copy(update={"final_answer": f"answer {i}"})
        return store.save_edit(changed, base_revision=traj.revision, author=f"u{i}")

    results = _race(8, edit)
    winners = [r for r in results if not isinstance(r, Exception)]
    assert len(winners) == 1
    assert all(isinstance(r, ConflictError) and "saved revision 1" in str(r) for r in results if r not in winners)
    assert store.get_trajectory(traj.id).final_answer == winners[0].final_answer
    assert [r.rev for r in store.list_revisions(traj.id)] == [0, 1]


def test_a_key_clash_is_a_conflict_error_and_nothing_is_kept(tmp_path):
    store = Store(tmp_path / "db.duckdb")
    with pytest.raises(ConflictError, match="another session changed the same rows"):
        with store.db.transaction() as con:
            con.execute("INSERT INTO trajectories (id, source) VALUES ('y', 's')")
            con.execute("INSERT INTO trajectories (id, source) VALUES ('x', 's'), ('x', 's')")
    assert _count(store, "SELECT count(*) FROM trajectories") == 0


def test_older_database_gets_keys_without_losing_events(tmp_path, monkeypatch):
    path = tmp_path / "old.duckdb"
    every = dict(MIGRATIONS)
    MIGRATIONS.pop("keys")
    try:
        old = Store(path)
        with old.db.transaction() as con:
            for _ in range(2):
                con.execute("INSERT INTO trajectories (id, source, question, revision) VALUES ('t1', 's', 'q', 0)")
                con.execute("INSERT INTO steps (trajectory_id, idx, thought) VALUES ('t1', 0, 'x')")
                con.execute("INSERT INTO sources (name, kind) VALUES ('s', 'file')")
            for author in ("a", "b", "c"):
                con.execute("INSERT INTO annotations (trajectory_id, seq, author, made_at, status) "
                            "VALUES ('t1', 1, ?, now()::TIMESTAMP, 'accepted')", [author])
    finally:
        MIGRATIONS.clear()
        MIGRATIONS.update(every)  # in their order: a later test reads the components in the order they run
    new = Store(path)
    assert _count(new, "SELECT count(*) FROM trajectories") == 1
    assert _count(new, "SELECT count(*) FROM steps") == 1
    assert _count(new, "SELECT count(*) FROM sources") == 1
    assert [a.seq for a in new.list_annotations("t1")] == [1, 2, 3]
    with pytest.raises(ConflictError):
        with new.db.transaction() as con:
            con.execute("INSERT INTO trajectories (id, source) VALUES ('t1', 's')")


def test_newer_database_is_refused(tmp_path, capsys):
    path = tmp_path / "newer.duckdb"
    store = Store(path)
    with store.db.transaction() as con:
        con.execute("INSERT INTO schema_migrations VALUES ('core', ?, now()::TIMESTAMP)", [len(MIGRATIONS["core"]) + 1])
    before = path.read_bytes()
    with pytest.raises(StoreError, match="newer FireAct Studio"):
        Store(path)
    assert main(["--db", str(path), "stats"]) == 2
    assert "newer FireAct Studio" in capsys.readouterr().err
    assert path.read_bytes() == before


def test_staged_import_is_all_or_nothing_and_leaves_no_scratch(tmp_path, chat_file, monkeypatch):
    monkeypatch.setenv("FIREACT_IMPORT_STAGE_MB", "0")
    store = Store(tmp_path / "db.duckdb")
    assert import_files(store, [chat_file], parallel=False)[0].added == 60
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(chat_file.read_text().splitlines()[:30] + ['{"messages": [}']) + "\n")
    before = _count(store, "SELECT count(*) FROM trajectories")
    with pytest.raises(FormatError, match=r"bad.jsonl:31: invalid JSON"):
        import_files(store, [bad], parallel=False)
    assert _count(store, "SELECT count(*) FROM trajectories") == before
    assert _count(store, "SELECT count(*) FROM sources") == 1
    again = import_files(store, [chat_file], parallel=False)[0]
    assert (again.rows, again.added) == (60, 0)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".fireact-import-")) == []


def test_word_index_leaves_a_trajectory_edited_while_it_runs_for_the_next_refresh(tmp_path, chat_file, monkeypatch):
    """The plan is read once; a chunk indexes only what is still as planned, so an edit made meanwhile is indexed
    by the next refresh, from its new text, with no word left of the old one and no word twice."""
    from fireact_core.curation import edits as cur
    from fireact_core.filters import TrajectoryFilter
    from fireact_core.store import curation

    store = Store(tmp_path / "db.duckdb")
    import_files(store, [chat_file], parallel=False)
    monkeypatch.setattr(curation, "INDEX_CHUNK", 7)
    monkeypatch.setattr(curation, "INDEX_HOLD_S", 0.0)
    monkeypatch.setattr(curation, "INDEX_YIELD_S", 0.0)
    last = list(store.iter_trajectories())[-1]
    old_word = last.steps[0].thought.split()[-1].strip(".,").lower()
    chunks = []
    original = curation._index_chunk

    def edit_during_the_first_chunk(con, part):
        if not chunks:  # the last trajectory is planned for a later chunk: edit it before that chunk runs
            cur.save_trajectory_edit(store, cur.edit_step(last, 0, cur.StepEdit(thought="Zyzzogeton thought")),
                                     base_revision=0, author="tester")
        chunks.append(part.num_rows)
        return original(con, part)

    monkeypatch.setattr(curation, "_index_chunk", edit_during_the_first_chunk)
    assert store.refresh_search_index() == 59 and len(chunks) == 9  # the edited one was left out
    assert store.refresh_search_index() == 1  # ... for the next refresh

    def found(q: str, indexed: bool) -> set[str]:
        with store.db.connect() as con:
            where, params = curation.filter_sql(TrajectoryFilter(q=q), indexed=indexed)
            return {r[0] for r in con.execute(f"SELECT t.id FROM trajectories t WHERE {where}", params).fetchall()}

    assert found("zyzzogeton", indexed=True) == {last.id}
    assert found(old_word, indexed=True) == found(old_word, indexed=False)  # the words of the old text are gone
    with store.db.connect() as con:
        assert con.execute("SELECT count(*) - count(DISTINCT (word, trajectory_id)) FROM search_terms").fetchone()[0] == 0
        assert con.execute("SELECT count(*), count(DISTINCT trajectory_id) FROM search_docs").fetchone() == (60, 60)


def test_word_index_is_built_in_short_chunks(tmp_path, chat_file, monkeypatch):
    from fireact_core.filters import TrajectoryFilter
    from fireact_core.store import curation

    store = Store(tmp_path / "db.duckdb")
    import_files(store, [chat_file], parallel=False)
    monkeypatch.setattr(curation, "INDEX_CHUNK", 7)
    monkeypatch.setattr(curation, "INDEX_HOLD_S", 0.0)  # chunks stay at their smallest
    monkeypatch.setattr(curation, "INDEX_GAP_S", 0.0)
    transactions = []
    original = store.db.transaction
    monkeypatch.setattr(store.db, "transaction", lambda: (transactions.append(1), original())[1])
    assert store.refresh_search_index() == 60
    assert len(transactions) >= 60 // 7
    word = next(store.iter_trajectories()).question.split()[1]
    f = TrajectoryFilter(q=word)
    assert store.browse.search_ready()
    indexed = [s.id for s in store.list_summaries(f, limit=1000)]
    with store.db.connect() as con:
        where, params = curation.filter_sql(f, indexed=False)
        scanned = [r[0] for r in con.execute(f"SELECT t.id FROM trajectories t WHERE {where} ORDER BY t.created_at, t.id",
                                             params).fetchall()]
    assert indexed and sorted(indexed) == sorted(scanned)
