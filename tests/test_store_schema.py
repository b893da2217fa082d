"""Every migration lives in store/schema.py, in the order and under the identity existing databases recorded."""

from __future__ import annotations

import hashlib
import importlib
import pkgutil

import fireact_core.store
from fireact_core.store import Store
from fireact_core.store.schema import MIGRATIONS

# (component, sha256 of each script, first 16 hex digits): a database records (component, version), so each list
# may only grow at its end and a component never changes its name, its place or a script that has run somewhere
RECORDED = [
    ("core", ["60ce207e58165c49"]), ("curation", ["f74b143506641409"]), ("datasets", ["1d0af176a08721c9"]),
    ("forks", ["fa886e1fbc09dc6d"]), ("training", ["1ed05a996ed7f496"]), ("runs", ["a5cd5aab4461bc55"]),
    ("team", ["9c5aa79dc751288b"]), ("keys", ["43f8edb1994806f2", "00a39e4771633c8e"]),
    ("staging", ["621a558a6f9a242a"]),
]


def test_migrations_keep_their_order_names_and_scripts():
    got = [(component, [hashlib.sha256(s.encode()).hexdigest()[:16] for s in scripts])
           for component, scripts in MIGRATIONS.items()]
    assert [c for c, _ in got][: len(RECORDED)] == [c for c, _ in RECORDED]
    for (component, digests), (_, recorded) in zip(got, RECORDED):
        assert digests[: len(recorded)] == recorded, component


def test_importing_store_modules_adds_no_migration():
    before = {c: list(s) for c, s in MIGRATIONS.items()}
    for info in pkgutil.iter_modules(fireact_core.store.__path__):
        importlib.import_module(f"fireact_core.store.{info.name}")
    assert MIGRATIONS == before


def test_a_new_database_runs_every_script_once(tmp_path):
    store = Store(tmp_path / "new.duckdb")
    with store.db.connect() as con:
        done = con.execute("SELECT component, version FROM schema_migrations ORDER BY rowid").fetchall()
    assert done == [(c, v) for c, scripts in MIGRATIONS.items() for v in range(1, len(scripts) + 1)]
