"""`browse` streams in short batches (same rows and order as one big page), refuses out-of-range --limit and
--offset with exit 2, and every command's output shows control characters from the data as escapes."""

from __future__ import annotations

import json

import pytest

from fireact_core.cli import main
from fireact_core.cli.terminal import escape
from fireact_core.filters import TrajectoryFilter
from fireact_core.io.importer import import_files
from fireact_core.store import Store
from tests.conftest import FINETUNE, RUN_FILE

HOSTILE = "Who \x1b[2J\x1b]0;pwned\x07 wrote \x9b31m this\r and\u202e that?"


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browse")
    rows = (FINETUNE / "gpt_hotpotqa.jsonl").read_text().splitlines()[:40]
    first = json.loads(rows[0])
    first["messages"][0]["content"] = "Question: " + HOSTILE
    chat = folder / "hostile.jsonl"
    chat.write_text("\n".join([json.dumps(first)] + rows[1:]) + "\n")
    path = folder / "db.duckdb"
    import_files(Store(path), [chat, RUN_FILE], parallel=False)
    return path


@pytest.mark.parametrize("sort, desc", [("imported", False), ("em", True), ("em", False), ("question", False),
                                        ("steps", True), ("answer", False)])
def test_batches_give_the_rows_of_one_page(db, sort, desc):
    store = Store(db)
    f = TrajectoryFilter()
    with store.session():  # one connection for the many small batches
        whole = [s.id for s in store.list_summaries(f, sort, desc, limit=10_000, offset=3)]
        streamed = [s.id for s in store.iter_summaries(f, sort, desc, limit=10_000, offset=3, batch=23)]
        assert len(whole) == store.count_trajectories() - 3
        assert streamed == whole
        assert [s.id for s in store.iter_summaries(f, sort, desc, limit=10, offset=3, batch=4)] == whole[:10]


def test_browse_a_huge_limit_streams_valid_json(db, capsys):
    assert main(["--db", str(db), "browse", "--limit", "10000000", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["total"] == len(out["rows"]) == Store(db).count_trajectories()
    assert HOSTILE in [r["question"] for r in out["rows"]]  # JSON keeps the data exact


@pytest.mark.parametrize("args", [["--offset", "-1"], ["--limit", "-5"], ["--limit", str(2**63)], ["--limit", "ten"]])
def test_out_of_range_offset_or_limit_is_exit_2(db, capsys, args):
    with pytest.raises(SystemExit) as exc:
        main(["--db", str(db), "browse", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and ("out of range" in err or "not a whole number" in err)


def test_control_characters_are_escaped_on_the_terminal(db, capsys):
    assert main(["--db", str(db), "browse", "--q", "pwned"]) == 0
    out = capsys.readouterr().out
    assert "\\u001b[2J" in out and "\\u009b31m" in out and "\\u202e" in out
    assert not any(c in out for c in "\x1b\x07\x9b\r\u202e")
    assert escape("tab\tand\nnewline") == "tab\tand\nnewline"
