"""No secret is stored: a run and an OpenAI fine-tuning job given credentials in their base URLs and keys that
need percent-encoding leave none of them, in any form, in the database file, its tables, the run folders, the
command's output or any export."""

from __future__ import annotations

import json
from pathlib import Path

from fireact_core.cli import main
from fireact_core.mixing.export import DATASET_FORMATS
from fireact_core.io.formats import EXPORT_FORMATS
from fireact_core.redact import forms, redact_text, strip_url
from fireact_core.store import Store
from tests.conftest import free_port
from tests.fakes.openai_ft_server import FakeFineTuning
from tests.fakes.openai_server import FakeOpenAI

ROOT = Path(__file__).resolve().parents[1]
TASKS = ROOT.parent / "shared" / "fireact" / "tasks"
SERP_KEY = "a/b+c=serp-SECRET"
OPENAI_KEY = "sk-env-SECRET-1234"
PASSWORD = "PW-url-SECRET-77"


def test_forms_and_urls():
    assert "a%2Fb%2Bc%3Dserp-SECRET" in forms(SERP_KEY) and "a%2fb%2bc%3dserp-SECRET" in forms(SERP_KEY)
    assert strip_url(f"http://user:{PASSWORD}@127.0.0.1:9/v1") == "http://127.0.0.1:9/v1"
    text = f"GET http://me:{PASSWORD}@host/search?q=x&api_key=zzz failed"
    assert redact_text(text) == "GET http://host/search?q=x&api_key=*** failed"
    assert redact_text(f"wrong password {PASSWORD}") == "wrong password ***"  # remembered from the URL


def _all_rows(store: Store) -> str:
    with store.db.connect() as con:
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        return json.dumps({t: con.execute(f"SELECT * FROM {t}").fetchall() for t in tables}, default=str)


def test_no_secret_reaches_database_run_folders_output_or_exports(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SERPAPI_API_KEY", SERP_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("FIREACT_SERPAPI_URL", f"http://127.0.0.1:{free_port()}")  # nobody there: errors name the URL
    monkeypatch.chdir(tmp_path)
    llm, ft = FakeOpenAI(), FakeFineTuning()
    db = tmp_path / "db.duckdb"
    try:
        url = llm.start().replace("http://", f"http://user:{PASSWORD}@")
        assert main(["--db", str(db), "generate", "--task", "hotpotqa", "--run", "r1", "--tasks-dir", str(TASKS),
                     "--end", "2", "--base-url", url, "--timeout", "3", "--quiet"]) == 0
        spec = tmp_path / "spec.json"
        spec.write_text(json.dumps({"sources": ["r1"], "size": 2, "val_fraction": 0.0, "seed": 1,
                                    "allow_upsample": True}))
        assert main(["--db", str(db), "mix", "--spec", str(spec), "--name", "v1"]) == 0
        ft_url = ft.start().replace("http://", f"http://user:{PASSWORD}@")
        assert main(["--db", str(db), "train-openai", "--dataset", "v1", "--model", "gpt-4o-mini", "--base-url",
                     ft_url, "--wait", "--poll", "0"]) == 0
    finally:
        llm.stop()
        ft.stop()
    store = Store(db)
    observations = [s.observation or "" for t in store.iter_trajectories(source="r1") for s in t.steps]
    assert any("api_key=***" in o for o in observations), observations  # the search failed, naming its URL
    for fmt in EXPORT_FORMATS:
        assert main(["--db", str(db), "export", "--format", fmt, "--out", str(tmp_path / f"all.{fmt}")]) == 0
    for fmt in DATASET_FORMATS:
        assert main(["--db", str(db), "export", "--dataset", "v1", "--format", fmt,
                     "--out", str(tmp_path / f"v1.{fmt}")]) == 0
    assert main(["--db", str(db), "runs", "--json"]) == 0 and main(["--db", str(db), "jobs", "--json"]) == 0
    printed = capsys.readouterr()
    blobs = {"output": (printed.out + printed.err).encode(), "tables": _all_rows(store).encode()}
    for path in tmp_path.rglob("*"):
        if path.is_file():
            blobs[str(path.relative_to(tmp_path))] = path.read_bytes()
    assert any("events.jsonl" in name for name in blobs) and any(name.endswith(".wal") or name == "db.duckdb"
                                                                 for name in blobs)
    for secret in (SERP_KEY, OPENAI_KEY, PASSWORD):
        for form in forms(secret):
            leaks = [name for name, data in blobs.items() if form.encode() in data]
            assert not leaks, f"{form} found in {leaks}"
