"""Readers and writers, looked up by name; `detect_format` tells a file's format from its content."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterator

from ...errors import FireactError, FormatError
from .common import LineRange, ReadResult, first_line, iter_jsonl_file, iter_jsonl_range, line_ranges
from .fireact import alpaca_batches, fireact_run_batches, openai_batches, write_alpaca, write_messages, write_openai
from .native import native_batches, write_native
from .runs import run_file_name, write_fireact_run

# one JSON document per file, walked an element at a time: (path, source, batch) -> batches
DOCUMENTS: dict[str, Callable[[str, str, int], Iterator[ReadResult]]] = {
    "fireact-run": fireact_run_batches,
    "alpaca": alpaca_batches,
}
# format -> writer of trajectories to an open text file (each takes its own items and options)
WRITERS: dict[str, Callable[..., int]] = {
    "openai-jsonl": write_openai, "alpaca": write_alpaca, "messages": write_messages, "native": write_native,
    "fireact-run": write_fireact_run,
}
# JSON lines, a line at a time: (path, rows, source, batch) -> batches
STREAMED: dict[str, Callable[..., Iterator[ReadResult]]] = {"openai-jsonl": openai_batches, "native": native_batches}
READERS: dict[str, Callable[..., Iterator[ReadResult]]] = {**DOCUMENTS, **STREAMED}
IMPORT_FORMATS = ["auto", *READERS]
BATCH = 5000
EXPORT_FORMATS = list(WRITERS)


def detect_format(path: str, text: str) -> str:
    """alpaca (a JSON array), fireact-run (an object of entries with 'traj'), openai-jsonl or native (JSONL)."""
    head = text.lstrip()
    if head.startswith("["):
        return "alpaca"
    if not head.startswith("{"):
        raise FormatError(path, 1, "not JSON or JSONL: expected '[' or '{' (use --format to say what it is)")
    first_line = head.split("\n", 1)[0]
    try:
        first = json.loads(first_line)
    except json.JSONDecodeError:
        first = None
    if isinstance(first, dict):
        if "record" in first:
            return "native"
        if "messages" in first:
            return "openai-jsonl"
    if first is None or not isinstance(first, dict):
        return "fireact-run"
    if any(isinstance(v, dict) and "traj" in v for v in first.values()):
        return "fireact-run"  # a run written on one line
    raise FormatError(path, 1, "unrecognised JSON lines: expected 'messages' (OpenAI chat) or 'record' (native)")


def iter_batches(path: str | Path, fmt: str = "auto", source: str | None = None,
                 batch: int = BATCH) -> Iterator[ReadResult]:
    """Read one file a batch of trajectories at a time (JSONL formats line by line, a JSON document element by
    element: memory holds one batch however large the file). Nothing is written anywhere. Sources are given with
    the batch they are found in; trajectories as data (`ReadResult.records`)."""
    path = str(path)
    if fmt == "auto":
        fmt = detect_format(path, first_line(path))
    if fmt not in READERS:
        raise FireactError(f"unknown format '{fmt}': choose one of {', '.join(IMPORT_FORMATS)}")
    if fmt in STREAMED:
        name = source if fmt == "native" else source or Path(path).stem
        yield from STREAMED[fmt](path, iter_jsonl_file(path), name, batch)
        return
    yield from DOCUMENTS[fmt](path, source or Path(path).stem, batch)


def iter_span_batches(path: str, fmt: str, source: str | None, span: LineRange, batch: int = BATCH) -> Iterator[ReadResult]:
    """`iter_batches` over one stretch of a streamed (JSONL) file, cut by `line_ranges`;
    `fmt` is resolved already. Line numbers, ids and errors are those the whole file would give."""
    rows = iter_jsonl_range(path, span)
    if fmt == "openai-jsonl":
        yield from openai_batches(path, rows, source or Path(path).stem, batch, start=span.index)
    else:
        yield from STREAMED[fmt](path, rows, source, batch)


def read_file(path: str | Path, fmt: str = "auto", source: str | None = None) -> ReadResult:
    """Read one file into trajectories (nothing is written anywhere)."""
    result: ReadResult | None = None
    for part in iter_batches(path, fmt, source, batch=2**62):
        result = part  # one batch
    if result is None:
        resolved = detect_format(str(path), first_line(path)) if fmt == "auto" else fmt
        result = ReadResult(path=str(path), format=resolved)
    return result


__all__ = ["run_file_name", "ReadResult", "LineRange", "line_ranges", "iter_span_batches", "STREAMED", "read_file", "iter_batches", "BATCH", "detect_format", "READERS", "WRITERS", "IMPORT_FORMATS", "EXPORT_FORMATS"]
