"""Reading input files safely: every problem becomes a FormatError naming the file and the line."""

from __future__ import annotations

import mmap
import os
import re
from codecs import BOM_UTF8
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from collections.abc import Mapping
from typing import Any, Iterator, cast

from pydantic import TypeAdapter, ValidationError

from ...errors import FormatError
from ...records import (SCHEMA_VERSION, Annotation, Lint, Revision, Source, Trajectory, TrajectoryData, new_id, now,
                        trajectory_of)
from .limits import bounded_lines, parse_json, regular_file

MAX_RECORD_BYTES = int(float(os.environ.get("FIREACT_MAX_RECORD_MB", "16")) * 1024 * 1024)


@dataclass
class ReadResult:
    """What a reader found in one file. Its trajectories are data (`records`, checked as the model checks them):
    the import writes them as they are; `trajectories` gives them as `Trajectory` models."""

    path: str
    format: str
    rows: int = 0
    records: list[TrajectoryData] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    revisions: list[Revision] = field(default_factory=list)
    annotations: list[Annotation] = field(default_factory=list)
    lints: list[Lint] = field(default_factory=list)

    @cached_property
    def trajectories(self) -> list[Trajectory]:
        """`records` as models, built on first use (after the importer's `prepare`, which changes the records)."""
        return [trajectory_of(r) for r in self.records]


TRAJECTORY_DEFAULTS: dict[str, Any] = {
    "schema_version": SCHEMA_VERSION, "task": "unknown", "split": None, "qid": None, "gold": None, "method": "unknown",
    "model": None, "final_answer": None, "reward": None, "em": None, "f1": None, "status": "finished", "error": None,
    "tokens_in": None, "tokens_out": None, "latency_s": None, "cost_usd": None, "prompt": None, "revision": 0,
    "updated_at": None, "updated_by": None,
}


def trajectory_record(data: Mapping[str, Any]) -> TrajectoryData:
    """A trajectory as data with every field `Trajectory` would default filled in (the caller has checked the
    types). Steps stay as the parser gives them: absent keys read as the `Step` defaults."""
    record = {**TRAJECTORY_DEFAULTS, **data}
    if "meta" not in data:
        record["meta"] = {}
    if "created_at" not in data:
        record["created_at"] = now()
    return cast(TrajectoryData, record)


_TRAJECTORY = TypeAdapter(TrajectoryData)


def checked_trajectory(data: Any) -> TrajectoryData:
    """A trajectory found in a file as data (`trajectory_record`), checked as `Trajectory.model_validate` checks
    it but without making models; what the quick check refuses goes through the model, whose ValidationError
    says what is wrong."""
    version = data.get("schema_version", SCHEMA_VERSION) if isinstance(data, dict) else None
    if type(version) is int and version <= SCHEMA_VERSION:
        try:
            record = _TRAJECTORY.validate_python(data)
        except ValidationError:
            pass
        else:
            if "id" not in record:
                record["id"] = new_id()
            record.setdefault("steps", [])
            return trajectory_record(dict(record))
    return cast(TrajectoryData, Trajectory.model_validate(data).model_dump())


def check_file(path: str | Path) -> Path:
    """The path, when it names a file; else a FormatError (missing, a directory)."""
    regular_file(path)
    return Path(path)


def read_text(path: str | Path) -> str:
    """The whole file as text, or a FormatError: missing, a directory, empty, not UTF-8."""
    p = check_file(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise FormatError(path, 1, f"cannot be read: {exc.strerror}") from exc
    if not data.strip():
        raise FormatError(path, 1, "the file is empty")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise FormatError(path, line, f"not valid UTF-8 (byte {exc.start}): save the file as UTF-8") from exc


def _check_size(path: str, line: int, size: int) -> None:
    if size > MAX_RECORD_BYTES:
        raise FormatError(
            path, line,
            f"record is {size / 2**20:.1f} MB, over the {MAX_RECORD_BYTES / 2**20:g} MB limit per record "
            "(set FIREACT_MAX_RECORD_MB to raise it)",
        )


def loads(path: str, line: int, text: str) -> Any:
    """One JSON value (pydantic-core's parser, the standard one for the message when it fails), within the
    bounds of `limits`."""
    return parse_json(path, line, text)


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of each non-blank line, read one line at a time; FormatError when the file is
    missing, a directory, empty or not UTF-8, or a line is over the size limit."""
    p = check_file(path)
    blank = True
    for number, line in _range_lines(p, path, LineRange()):
        blank = False
        yield number, line
    if blank:
        raise FormatError(path, 1, "the file is empty")


@dataclass(frozen=True)
class LineRange:
    """A stretch of a file, whole lines: bytes [start, end) (None: to the end), whose first line has number
    `line` and whose first non-blank line is the file's `index`-th (from 0)."""

    start: int = 0
    end: int | None = None
    line: int = 1
    index: int = 0


def _range_lines(p: Path, path: str | Path, span: LineRange) -> Iterator[tuple[int, str]]:
    offset = span.start
    try:
        with open(p, "rb") as fh:
            fh.seek(span.start)
            for number, raw in bounded_lines(fh, path, span.line, MAX_RECORD_BYTES):
                if offset == 0 and raw.startswith(BOM_UTF8):
                    raw, offset = raw[3:], 3
                _check_size(str(path), number, len(raw))
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise FormatError(path, number, f"not valid UTF-8 (byte {offset + exc.start}): save the file as UTF-8") from exc
                offset += len(raw)
                if line.strip():
                    yield number, line
                if span.end is not None and offset >= span.end:
                    return
    except OSError as exc:
        raise FormatError(path, 1, f"cannot be read: {exc.strerror}") from exc


def iter_jsonl_range(path: str | Path, span: LineRange) -> Iterator[tuple[int, Any]]:
    """`iter_jsonl_file` over one stretch of the file (see `line_ranges`)."""
    for number, line in _range_lines(Path(path), path, span):
        yield number, loads(str(path), number, line)


def line_ranges(path: str | Path, rows: int) -> list[LineRange]:
    """The file cut into stretches of `rows` non-blank lines each (`iter_line_ranges`, all of them)."""
    return list(iter_line_ranges(path, rows))


def iter_line_ranges(path: str | Path, rows: int) -> Iterator[LineRange]:
    """The file's stretches of `rows` non-blank lines each, each as soon as the next one begins (one quick pass over
    its bytes, mapped into memory: a line is found by its newline and told blank by its first byte that is not
    ASCII white space, decoded only when that byte is not ASCII), so the first ones can be read while the rest
    are found. Line lengths are left to the readers of the stretches, which refuse a line over the limit at its
    number."""
    count = 0
    p = check_file(path)
    if not os.path.getsize(p):
        yield LineRange()
        return
    current: LineRange | None = None
    with open(p, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        size = len(data)
        offset = 3 if data[:3] == BOM_UTF8 else 0
        number = 1
        while offset < size:
            newline = data.find(b"\n", offset)
            end = size if newline < 0 else newline + 1
            filled = _filled(data, offset, end)
            if filled and count % rows == 0:
                if current is not None:
                    yield LineRange(current.start, offset, current.line, current.index)
                current = LineRange(0 if current is None else offset, None, 1 if current is None else number, count)
            count += filled
            offset = end
            number += 1
    yield current or LineRange()


_NOT_SPACE = re.compile(rb"[^ \t\n\r\x0b\x0c]")  # what `bytes.strip` leaves


def _filled(data: Any, start: int, end: int) -> bool:
    """Whether the line at `data[start:end]` is not blank, as `str.strip` sees it (which also strips Unicode
    spaces): told by its first byte that `bytes.strip` would keep, the line decoded only when that byte is not
    ASCII."""
    first = _NOT_SPACE.search(data, start, end)
    return first is not None and (data[first.start()] < 0x80 or bool(data[start:end].decode("utf-8", "replace").strip()))


def may_have_long_line(path: str | Path, limit: int = MAX_RECORD_BYTES) -> bool:
    """Whether a line of the file may be over `limit` bytes, found without reading it all: a longer line holds
    a whole stretch of limit/2 bytes with no newline, and each stretch is searched only up to its first one."""
    size = os.path.getsize(path)
    if size <= limit:
        return False
    step = max(1, limit // 2)
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        return any(mm.find(b"\n", start, min(start + step, size)) < 0 for start in range(0, size, step))


def iter_jsonl_file(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed object) for each non-blank line, one line in memory at a time."""
    for number, line in iter_lines(path):
        yield number, loads(str(path), number, line)


def first_line(path: str | Path) -> str:
    """The first non-blank line (to tell the format), or a FormatError as `iter_lines` gives."""
    for _, line in iter_lines(path):
        return line
    raise FormatError(path, 1, "the file is empty")


def expect(cond: bool, path: str, line: int, message: str) -> None:
    if not cond:
        raise FormatError(path, line, message)
