"""Hostile files end in exit 2 and `FILE:LINE: what`, the database unchanged: huge lines are refused while read
(memory stays low), pipes and folders at once, and JSON values past the bounds (nesting, integer size, lone
surrogates, NaN/Infinity, scores, weights) wherever they are. Both import paths read duplicated keys alike, and
whatever is imported exports in every format."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fireact_core.cli import main
from fireact_core.errors import FormatError
from fireact_core.io.exporter import export
from fireact_core.io.formats import EXPORT_FORMATS
from fireact_core.io.importer import import_files
from fireact_core.store import Store
from tests.conftest import FINETUNE, ROOT, RUN_FILE

CHAT = (FINETUNE / "gpt_hotpotqa.jsonl").read_text().splitlines()


def _cli(db: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    # VmHWM is this program's own peak: getrusage's ru_maxrss keeps the forking parent's peak across exec.
    code = ("import re, sys; from fireact_core.cli import main; rc = main(sys.argv[1:]); "
            "hwm = re.search(r'VmHWM:\\s*(\\d+)', open('/proc/self/status').read()).group(1); "
            "print('maxrss', hwm, file=sys.stderr); sys.exit(rc)")
    return subprocess.run([sys.executable, "-c", code, "--db", str(db), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_a_3gb_line_is_refused_while_read_with_little_memory(tmp_path):
    big = tmp_path / "big.jsonl"
    with open(big, "wb") as fh:
        fh.write(b'{"messages": "')
        fh.truncate(3 * 2**30)  # sparse: three gigabytes on one line, no disk used
    done = _cli(tmp_path / "db.duckdb", "import", str(big))
    assert done.returncode == 2, done.stderr
    assert f"{big}:1: line is over the 16 MB limit" in done.stderr
    peak_mb = int(done.stderr.split("maxrss ")[1].split()[0]) / 1024
    assert peak_mb < 500, f"peak memory {peak_mb:.0f} MB"


def test_pipes_and_folders_are_refused_before_opening(tmp_path):
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    done = _cli(tmp_path / "db.duckdb", "import", str(fifo), timeout=60)  # opening the pipe would wait forever
    assert done.returncode == 2 and f"{fifo}:1: is not a regular file" in done.stderr
    assert main(["--db", str(tmp_path / "db.duckdb"), "import", str(tmp_path)]) == 2
    assert main(["--db", str(tmp_path / "db.duckdb"), "import", "/dev/zero"]) == 2  # a device never ends


def _chat_row(**extra) -> dict:
    row = json.loads(CHAT[0])
    row.update(extra)
    return row


BAD_LINES = {
    "deep": ('{"messages": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested deeper than 200 levels"),
    "long int": ('{"x": ' + "7" * 5000 + ', "messages": []}', "a number too large to read"),
    "64-bit int": (json.dumps(_chat_row(x=2**64)), "larger than 64 bits"),
    "surrogate": (CHAT[0].replace('"content": "', '"content": "\\ud800', 1), "lone surrogate"),
    "nan": (json.dumps(_chat_row(x=float("nan"))), "NaN is not a JSON number"),
    "infinity": (json.dumps(_chat_row())[:-1] + ', "x": 1e999}', "is not finite"),
}


@pytest.mark.parametrize("staged", [False, True], ids=["direct", "staged"])
@pytest.mark.parametrize("sql", [True, False], ids=["sql", "python"])
@pytest.mark.parametrize("kind", list(BAD_LINES))
def test_bad_values_are_refused_at_their_line(tmp_path, kind, sql, staged, capsys, monkeypatch):
    """Through either reader, straight into the database or staged (where a chat file read by DuckDB is found to
    need the line-by-line reader only once its rows were copied in), the refusal names the line and nothing of
    the file is left: no trajectory, no step, no claim."""
    line, message = BAD_LINES[kind]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(CHAT[:3] + [line] + CHAT[3:5]) + "\n")
    db = tmp_path / "db.duckdb"
    monkeypatch.setenv("FIREACT_IMPORT_SQL", "1" if sql else "0")
    if staged:
        monkeypatch.setenv("FIREACT_IMPORT_STAGE_MB", "0")
    assert main(["--db", str(db), "import", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:4: " in err and message in err, err
    with Store(db).db.connect() as con:
        assert con.execute("SELECT (SELECT count(*) FROM trajectories), (SELECT count(*) FROM steps), "
                           "(SELECT count(*) FROM import_claims), (SELECT count(*) FROM pending_imports)"
                           ).fetchone() == (0, 0, 0, 0)


def test_chat_files_the_search_flags_are_read_again_line_by_line_in_one_more_try(tmp_path, monkeypatch):
    """Two chat files whose search flags them (a thought that reads ': NaN', which the bounds take in a string)
    are read by DuckDB, rolled back together and read line by line in a single second try: the database holds
    what an import by the line-by-line reader gives."""
    from fireact_core.store import chat_import

    from tests.tables import snapshot

    paths = []
    for n, lines in enumerate((CHAT[:6], CHAT[6:12])):
        row = json.loads(lines[2])
        row["messages"][1]["content"] = row["messages"][1]["content"].replace("Thought: ", "Thought: x: NaN ", 1)
        path = tmp_path / f"part{n}.jsonl"
        path.write_text("\n".join(lines[:2] + [json.dumps(row)] + lines[3:]) + "\n")
        paths.append(path)
    monkeypatch.setenv("FIREACT_IMPORT_SQL", "0")
    reference = Store(tmp_path / "reference.duckdb")
    import_files(reference, paths, parallel=False)
    monkeypatch.setenv("FIREACT_IMPORT_SQL", "1")
    staged: list[str] = []
    stage = chat_import.ChatImportRepository.stage_chat

    def counted(self, path, *args):
        staged.append(Path(path).name)
        return stage(self, path, *args)

    monkeypatch.setattr(chat_import.ChatImportRepository, "stage_chat", counted)
    store = Store(tmp_path / "db.duckdb")
    assert [r.added for r in import_files(store, paths, parallel=False)] == [6, 6]
    assert staged == ["part0.jsonl", "part1.jsonl"]  # read by DuckDB once each, then both by the Python reader
    assert snapshot(store) == snapshot(reference)


def _run_file(tmp_path: Path, **changes) -> Path:
    data = json.loads(RUN_FILE.read_text())
    keys = list(data)[:3]
    small = {k: data[k] for k in keys}
    small[keys[1]] = {**small[keys[1]], **changes}
    path = tmp_path / RUN_FILE.name
    path.write_text(json.dumps(small, indent=4))
    return path


@pytest.mark.parametrize("changes, message", [
    ({"em": 1000}, "'em' is 1000.0: scores are between 0 and 1"),
    ({"f1": -0.5}, "'f1' is -0.5: scores are between 0 and 1"),
    ({"pred": json.loads("[" * 900 + "]" * 900)}, "nested deeper than 200 levels"),
], ids=["em", "f1", "deep-pred"])
def test_run_file_values_out_of_bounds(tmp_path, capsys, changes, message):
    path = _run_file(tmp_path, **changes)
    assert main(["--db", str(tmp_path / "db.duckdb"), "import", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:" in err and message in err, err


def test_weights_other_than_0_or_1_are_refused(tmp_path, capsys):
    row = json.loads(CHAT[0])
    row["messages"][2]["weight"] = 0.5
    path = tmp_path / "w.jsonl"
    path.write_text("\n".join([CHAT[1], json.dumps(row)]) + "\n")
    assert main(["--db", str(tmp_path / "db.duckdb"), "import", str(path)]) == 2
    assert f"{path}:2: message weight 0.5: a weight is 0 or 1" in capsys.readouterr().err


def test_both_import_paths_read_duplicated_keys_alike(tmp_path):
    first = CHAT[0].replace('"content": "', '"content": "FIRST ", "content": "', 1)
    twice = first.rstrip()[:-1] + ', "messages": [{"role": "user", "content": "LAST"}]}'
    path = tmp_path / "dup.jsonl"
    path.write_text("\n".join([first, twice] + CHAT[1:4]) + "\n")
    questions = []
    for sql in (True, False):
        store = Store(tmp_path / f"{sql}.duckdb")
        import_files(store, [path], sql=sql, parallel=False)
        questions.append([t.question for t in store.iter_trajectories()])
    assert questions[0] == questions[1]
    assert questions[0][0].startswith("FIRST ") and questions[0][1].startswith("FIRST ")


def test_what_imports_exports_in_every_format(tmp_path):
    path = _run_file(tmp_path, pred=json.loads("[" * 190 + "]" * 190), em=1)
    store = Store(tmp_path / "db.duckdb")
    import_files(store, [path], parallel=False)
    for fmt in EXPORT_FORMATS:
        assert export(store, fmt, tmp_path / f"out.{fmt}") == 3
    again = Store(tmp_path / "again.duckdb")
    import_files(again, [tmp_path / "out.native"], parallel=False)
    assert again.count_trajectories() == 3


@pytest.mark.parametrize("risky", [
    b'{"x": NaN}', b'{"x": [-Infinity]}', b'{"x": 12345678901234567890}', b'{"x": 1.5E+308}', b'{"x": 2e999}',
    b'{"x": ' + b"[" * 201 + b"]" * 201 + b"}",
], ids=["nan", "infinity", "long-int", "exponent", "exponent-plain", "deep"])
def test_the_scan_before_the_sql_path_finds_a_risky_value_in_any_stretch(tmp_path, monkeypatch, risky):
    """`file_needs_line_checks` reads a file in stretches of whole lines and searches a stretch closely only where
    a quick search finds what a risky value needs: a value in any line of any stretch is found, a clean file is not
    sent to the line-by-line reader."""
    from fireact_core.io.formats import limits

    monkeypatch.setattr(limits, "_SCAN_BYTES", 100)
    clean = [json.dumps({"messages": [{"role": "user", "content": f"Question {i}: 1e99 [not a number] 2024"}]}).encode()
             for i in range(40)]
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b"\n".join(clean) + b"\n")
    assert not limits.file_needs_line_checks(path)
    for at in (0, 17, 39, 40):
        rows = [*clean[:at], risky, *clean[at:]]
        path.write_bytes(b"\n".join(rows) + (b"\n" if at != 40 else b""))
        assert limits.file_needs_line_checks(path), at


@pytest.mark.parametrize("name, text", [("bad.jsonl", '{"messages": []}\n{"messages": "a\tb"}\n'),
                                        ("bad.json", '[{"instruction": "a\tb", "output": "x"}]\n')])
def test_a_raw_control_character_is_named_once_with_its_column(tmp_path, name, text):
    """A tab inside a JSON string (JSON wants it escaped) is refused at its line, in plain words: the reader's own
    message ends in "at" already, which was doubled ("Invalid control character at at column 16")."""
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(FormatError) as err:
        import_files(Store(tmp_path / "db.duckdb"), [path], sql=False)
    assert "Invalid control character at column" in str(err.value) and " at at " not in str(err.value)
    assert str(err.value).startswith(f"{path}:{2 if name.endswith('l') else 1}: invalid JSON")
