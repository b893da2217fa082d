"""Large JSONL files are read by a pool of processes: the database must come out exactly as the serial read
leaves it, and a bad line anywhere still fails the whole import with its FILE:LINE."""

from __future__ import annotations

import pytest

from fireact_core.errors import FormatError
from fireact_core.io.exporter import export
from fireact_core.io.importer import _spans, import_files
from fireact_core.store import Store

from .tables import snapshot


@pytest.fixture
def chat_file(shared, tmp_path):
    """FireAct's multitask chat file behind a byte-order mark, with blank lines among the rows (one of Unicode
    spaces): they shift line numbers, not ids."""
    lines = (shared / "finetune" / "gpt_multitask.jsonl").read_text().splitlines()
    lines.insert(700, "\u00a0\u2003")
    out = tmp_path / "multitask.jsonl"
    body = "\n".join(line + ("\n" if i % 97 == 5 else "") for i, line in enumerate(lines))
    out.write_text("\ufeff" + body + "\n", encoding="utf-8")
    return out


def import_both(monkeypatch, tmp_path, path, name, **kwargs):
    monkeypatch.setenv("FIREACT_IMPORT_POOL_LINES", "10000000")
    serial = Store(tmp_path / f"{name}_serial.duckdb")
    serial_reports = import_files(serial, [path], batch=150, parallel=False, sql=False, **kwargs)
    monkeypatch.setenv("FIREACT_IMPORT_POOL_LINES", "300")
    pooled = Store(tmp_path / f"{name}_pooled.duckdb")
    pooled_reports = import_files(pooled, [path], batch=150, parallel=True, sql=False, **kwargs)
    return serial, serial_reports, pooled, pooled_reports


def test_pool_gives_the_serial_database(monkeypatch, tmp_path, chat_file):
    serial, serial_reports, pooled, pooled_reports = import_both(monkeypatch, tmp_path, chat_file, "chat")
    assert len(_spans(str(chat_file), "auto", 150)) == 9  # the pool did read it, 150 rows at a time
    assert pooled_reports == serial_reports
    assert serial_reports[0].rows == 1344
    assert snapshot(pooled) == snapshot(serial)
    native = tmp_path / "native.jsonl"
    export(serial, "native", native)
    n_serial, n_reports, n_pooled, n_pooled_reports = import_both(monkeypatch, tmp_path, native, "native", source="again")
    assert n_pooled_reports == n_reports
    assert n_reports[0].added == 1344
    assert snapshot(n_pooled) == snapshot(n_serial)
    assert [s.name for s in n_pooled.list_sources()] == ["again"]


def test_pool_with_task_and_method_given(monkeypatch, tmp_path, chat_file):
    serial, serial_reports, pooled, pooled_reports = import_both(
        monkeypatch, tmp_path, chat_file, "given", task="hotpotqa", method="react")
    assert pooled_reports == serial_reports
    assert snapshot(pooled) == snapshot(serial)


def test_pool_bad_late_line_fails_with_its_line_and_changes_nothing(monkeypatch, tmp_path, chat_file):
    lines = chat_file.read_text().split("\n")
    lines[1200] = '{"messages": "not a list"}'
    lines[1300] = "{not json"
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines))
    store = Store(tmp_path / "bad.duckdb")
    import_files(store, [chat_file], source="earlier")
    before = snapshot(store)
    monkeypatch.setenv("FIREACT_IMPORT_POOL_LINES", "300")
    with pytest.raises(FormatError) as err:
        import_files(store, [bad], batch=150, parallel=True, sql=False)
    assert (err.value.path, err.value.line) == (str(bad), 1201)
    assert "'messages' list" in str(err.value)
    assert snapshot(store) == before


def test_stretches_cut_at_every_so_many_rows_whatever_the_blank_lines(tmp_path):
    """`line_ranges` finds each line by its newline in the mapped file: its stretches hold `rows` non-blank
    lines each, as the lines read one by one count them (blank as `str.strip` sees it: ASCII white space,
    Unicode spaces, a byte-order mark before the first line; \\r\\n endings; a last line without a newline)."""
    import random
    import re

    from fireact_core.io.formats import LineRange, line_ranges

    def reference(data: bytes, rows: int) -> list[LineRange]:
        spans: list[LineRange] = []
        offset = count = 0
        for number, raw in enumerate(re.findall(rb"[^\n]*\n|[^\n]+$", data), start=1):
            text = (raw[3:] if number == 1 and raw.startswith(b"\xef\xbb\xbf") else raw).decode("utf-8", "replace")
            filled = bool(text.strip())
            if filled and count % rows == 0:
                if spans:
                    spans[-1] = LineRange(spans[-1].start, offset, spans[-1].line, spans[-1].index)
                spans.append(LineRange(0 if not spans else offset, None, 1 if not spans else number, count))
            offset += len(raw)
            count += filled
        return spans or [LineRange()]

    rng = random.Random(5)
    kinds = ['{"a": 1}', '{"b": "\u00e9t\u00e9"}', "", "  \t", "\u00a0\u2003", "\u3000x", "\r", " {}\r"]
    for case in range(60):
        lines = [rng.choice(kinds) for _ in range(rng.randint(0, 40))]
        data = ("\ufeff" if case % 3 == 0 else "") + "\n".join(lines) + ("\n" if case % 2 else "")
        path = tmp_path / f"{case}.jsonl"
        path.write_bytes(data.encode())
        for rows in (1, 2, 7):
            assert line_ranges(path, rows) == reference(data.encode(), rows), (lines, rows)


def test_pool_long_late_line_fails_with_its_line(monkeypatch, tmp_path, chat_file):
    """A line over the size limit is refused at its number by the reader of its stretch."""
    monkeypatch.setattr("fireact_core.io.formats.common.MAX_RECORD_BYTES", 1 << 16)
    lines = chat_file.read_text().split("\n")
    lines[1250] = '{"messages": [{"role": "user", "content": "' + "x" * (1 << 17) + '"}]}'
    long = tmp_path / "long.jsonl"
    long.write_text("\n".join(lines))
    monkeypatch.setenv("FIREACT_IMPORT_POOL_LINES", "300")
    store = Store(tmp_path / "long.duckdb")
    with pytest.raises(FormatError) as err:
        import_files(store, [long], batch=150, parallel=True, sql=False)
    assert (err.value.path, err.value.line) == (str(long), 1251)
    assert "limit" in str(err.value)
    assert store.count_trajectories() == 0


def test_the_pool_starts_on_the_first_stretches_before_the_file_is_cut_whole(monkeypatch, tmp_path, chat_file):
    """The reader processes get their first stretches as soon as the file is known to be the pool's (past
    FIREACT_IMPORT_POOL_LINES lines), while the rest of it is still being cut; the batches are those of the
    serial read, in order."""
    from fireact_core.io import importer
    from fireact_core.io.formats import line_ranges

    monkeypatch.setenv("FIREACT_IMPORT_POOL_LINES", "300")
    found: list[int] = []
    cut = importer.iter_line_ranges

    def counted(path, rows):
        for span in cut(path, rows):
            found.append(span.index)
            yield span

    monkeypatch.setattr(importer, "iter_line_ranges", counted)
    seen_at_start: list[int] = []

    class Done:
        def __init__(self, value):
            self.value = value

        def get(self):
            return self.value

    class InLine:  # a pool that runs each job at once, noting how much of the file was cut by then
        def apply_async(self, fn, args):
            seen_at_start.append(len(found))
            return Done(fn(*args))

    pooled = [b.ids for b in importer._batches(str(chat_file), "auto", None, None, None, 150, InLine())]
    serial = [b.ids for b in importer._batches(str(chat_file), "auto", None, None, None, 150, None)]
    assert [i for ids in pooled for i in ids] == [i for ids in serial for i in ids]
    total = len(line_ranges(chat_file, 150))
    assert total == 9 and seen_at_start[0] == 3 < total  # 300 lines in: the pool's, its first job sent at once
    assert seen_at_start == sorted(seen_at_start) and len(seen_at_start) == total
