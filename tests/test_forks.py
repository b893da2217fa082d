"""Fork links: the store's table of which trajectory was continued from which parent."""

from __future__ import annotations

from fireact_core.records import ForkLink
from fireact_core.store import Store


def _link(child: str, parent: str = "p1", step: int = 2, kind: str = "continue") -> ForkLink:
    return ForkLink(child_id=child, parent_id=parent, parent_revision=1, fork_step=step, run="r", kind=kind)


def test_links_are_stored_once_and_read_back_typed(store: Store) -> None:
    assert store.add_forks([_link("c1"), _link("c2", step=3, kind="repair"), _link("c1")]) == 2
    assert store.add_forks([_link("c1", parent="other")]) == 0  # a child keeps its first parent
    children = store.fork_children("p1")
    assert [(c.child_id, c.fork_step, c.kind) for c in children] == [("c1", 2, "continue"), ("c2", 3, "repair")]
    parent = store.fork_parent("c2")
    assert parent is not None and parent.parent_id == "p1" and parent.parent_revision == 1
    assert parent.created_at.tzinfo is not None
    assert store.fork_parent("p1") is None
    assert store.fork_children("c1") == []
    assert {x.child_id for x in store.fork_links()} == {"c1", "c2"}
    assert [x.child_id for x in store.fork_links(["c2"])] == ["c2"]
    assert {x.child_id for x in store.fork_links(["p1"])} == {"c1", "c2"}
    assert store.fork_links([]) == []


def test_links_are_kept_with_the_transaction_that_saves_them(store: Store) -> None:
    try:
        with store.db.transaction():
            store.add_forks([_link("c1")])
            raise RuntimeError("the children's save failed")
    except RuntimeError:
        pass
    assert store.fork_links() == []


def test_a_database_without_the_table_gains_it(tmp_path) -> None:
    path = tmp_path / "old.duckdb"
    old = Store(path)
    with old.db.transaction() as con:
        con.execute("DROP TABLE forks")
        con.execute("DELETE FROM schema_migrations WHERE component = 'forks'")
    db = Store(path)
    assert db.add_forks([_link("c1")]) == 1
