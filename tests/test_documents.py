"""JSON-document files (Alpaca arrays, FireAct run objects) are read one element at a time: memory holds one batch
however large the file, every trajectory and line number is what reading the whole document gave, and every
problem is `FILE:LINE: what` at the line it is on, the line-length limit enforced while reading."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from fireact_core.errors import FormatError
from fireact_core.io.formats import common, iter_batches, read_file
from tests.conftest import FINETUNE, RUN_FILE

ALPACA = FINETUNE / "alpaca_hotpotqa.json"


def _alpaca_rows() -> list[dict]:
    return json.loads(ALPACA.read_text())


def _big_array(path: Path, copies: int) -> int:
    """FireAct's Alpaca file repeated `copies` times in one indented array; returns how many elements."""
    rows = _alpaca_rows()
    with open(path, "w") as fh:
        fh.write("[\n")
        for i in range(copies):
            body = json.dumps(rows, indent=4)[2:-2]
            fh.write(body + (",\n" if i < copies - 1 else "\n"))
        fh.write("]\n")
    return len(rows) * copies


def _peak_mb(path: Path, fmt: str) -> tuple[int, float]:
    tracemalloc.start()
    try:
        rows = sum(part.rows for part in iter_batches(path, fmt, batch=50))
        return rows, tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def test_a_large_alpaca_array_reads_in_little_memory(shared, tmp_path):
    path = tmp_path / "big.json"
    n = _big_array(path, 10)
    size_mb = path.stat().st_size / 2**20
    assert size_mb > 4
    rows, peak = _peak_mb(path, "alpaca")
    assert rows == n
    assert peak < size_mb / 2, f"peak {peak:.1f} MB reading a {size_mb:.0f} MB array"


def test_a_large_run_object_reads_in_little_memory(shared, tmp_path):
    entries = json.loads(RUN_FILE.read_text())
    path = tmp_path / RUN_FILE.name
    with open(path, "w") as fh:
        fh.write("{\n")
        values = list(entries.values())
        n = 3000
        for i in range(n):
            fh.write(f'    "{i}": ' + json.dumps(values[i % len(values)], indent=4).replace("\n", "\n    ")
                     + (",\n" if i < n - 1 else "\n"))
        fh.write("}\n")
    size_mb = path.stat().st_size / 2**20
    assert size_mb > 8
    rows, peak = _peak_mb(path, "fireact-run")
    assert rows == n
    assert peak < size_mb / 3, f"peak {peak:.1f} MB reading a {size_mb:.0f} MB run"


def test_streamed_reading_gives_what_the_whole_document_gives(shared):
    """Every trajectory of FireAct's files as before: their count, text and the run's source."""
    alpaca = read_file(ALPACA)
    rows = _alpaca_rows()
    assert alpaca.rows == len(rows) == len(alpaca.trajectories)
    assert [t.question for t in alpaca.trajectories[:3]] == [r["instruction"] for r in rows[:3]]
    parts = list(iter_batches(ALPACA, batch=64))
    assert [p.rows for p in parts[:-1]] == [64] * (len(parts) - 1) and sum(p.rows for p in parts) == len(rows)
    assert [t.id for p in parts for t in p.trajectories] == [t.id for t in alpaca.trajectories]

    run = read_file(RUN_FILE)
    data = json.loads(RUN_FILE.read_text())
    assert [t.qid for t in run.trajectories] == list(data)
    assert run.sources[0].attempted == len(data)
    batches = list(iter_batches(RUN_FILE, batch=100))
    assert [s.name for p in batches for s in p.sources] == [run.sources[0].name]  # with the last batch


def _error(path: Path, fmt: str = "auto") -> str:
    with pytest.raises(FormatError) as err:
        for _ in iter_batches(path, fmt):
            pass
    return str(err.value)


def _indented(rows: list) -> list[str]:
    return json.dumps(rows, indent=4).split("\n")


def test_errors_name_the_line_they_are_on(shared, tmp_path):
    rows = _alpaca_rows()[:40]
    lines = _indented(rows)
    bad = tmp_path / "bad.json"

    broken = list(lines)  # a missing comma deep in the file
    at = next(i for i in range(len(broken) - 1, 0, -1) if broken[i].strip() == "},")
    broken[at] = "    }"
    bad.write_text("\n".join(broken))
    assert _error(bad).startswith(f"{bad}:{at + 2}: invalid JSON: expected ',' or ']' after an element")

    broken = list(lines)  # an element that is not an object
    broken.insert(-1, "    ,7")
    bad.write_text("\n".join(broken))
    assert _error(bad) == f"{bad}:{len(broken) - 1}: each element must be an object with 'instruction' and 'output'"

    broken = list(lines)  # invalid JSON inside an element: the line and column
    at = next(i for i, line in enumerate(broken) if i > len(broken) // 2 and '"output"' in line)
    broken[at] = broken[at].replace('"output": "', '"output": x"', 1)
    bad.write_text("\n".join(broken))
    assert _error(bad).startswith(f"{bad}:{at + 1}: invalid JSON (Expecting value at column ")

    data = "\n".join(lines).encode()  # a byte that is not UTF-8
    at = len(lines) // 3
    cut = sum(len(line) + 1 for line in lines[:at]) + 10
    bad.write_bytes(data[:cut] + b"\xff" + data[cut:])
    assert _error(bad).startswith(f"{bad}:{at + 1}: not valid UTF-8")

    bad.write_text("\n".join(lines[: len(lines) // 2]))  # the file ends inside the array
    assert _error(bad, "alpaca").startswith(f"{bad}:")

    bad.write_text("  \n\n")
    assert _error(bad, "alpaca") == f"{bad}:1: the file is empty"
    bad.write_text('\n{"a": 1}')
    assert _error(bad, "alpaca") == f"{bad}:2: expected a JSON array of objects"


def test_the_limits_are_enforced_while_reading(shared, tmp_path, monkeypatch):
    monkeypatch.setattr(common, "MAX_RECORD_BYTES", 64 * 1024)
    rows = _alpaca_rows()[:5]
    long_line = tmp_path / "long.json"  # one line over the limit: refused before it is read whole
    rows[3]["output"] = "x" * 100_000
    long_line.write_text("\n".join(_indented(rows)))
    at = next(i for i, line in enumerate(_indented(rows)) if "x" * 100 in line) + 1
    assert _error(long_line, "alpaca") == (f"{long_line}:{at}: line is over the 0.0625 MB limit per record "
                                           "(set FIREACT_MAX_RECORD_MB to raise it)")
    tall = tmp_path / "tall.json"  # one record over the limit on many short lines
    rows = _alpaca_rows()[:3]
    rows[1] = {**rows[1], "extra": ["y" * 100] * 1000}
    lines = _indented(rows)
    tall.write_text("\n".join(lines))
    start = next(i for i, line in enumerate(lines) if line == "    {" and i > 1) + 1
    message = _error(tall, "alpaca")
    assert message.startswith(f"{tall}:{start}: record is ") and "over the 0.0625 MB limit per record" in message


def test_run_objects_keep_their_rules(shared, tmp_path):
    data = json.loads(RUN_FILE.read_text())
    keys = list(data)[:3]
    text = json.dumps({k: data[k] for k in keys}, indent=4)
    path = tmp_path / RUN_FILE.name
    # the second key given again later: the first counts
    twice = text[:-2] + f',\n    "{keys[1]}": {{"traj": "later"}}\n}}'
    path.write_text(twice)
    run = read_file(path)
    assert [t.qid for t in run.trajectories] == keys
    assert run.trajectories[1].question == read_file(RUN_FILE).trajectories[1].question
    assert _error(path.with_name("x.json")).endswith("no such file: check the path")

    path.write_text(text + "\n[]")
    assert _error(path).startswith(f"{path}:{text.count(chr(10)) + 2}: invalid JSON (extra data after the document)")
    path.write_text(text.replace('"traj"', '"trajectory"', 1))
    assert _error(path, "fireact-run") == f"{path}:2: entry '{keys[0]}' needs a 'traj' field"
    path.write_text("\n[1, 2]")
    assert _error(path, "fireact-run") == f"{path}:2: a FireAct run is a JSON object keyed by question index"
    one_line = tmp_path / ("one_" + RUN_FILE.name)
    one_line.write_text(json.dumps({k: data[k] for k in keys}))
    assert [t.qid for t in read_file(one_line).trajectories] == keys
