"""Readers and writers, looked up by name; `detect_format` tells a file's format from its content."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from ..errors import FireactError, FormatError
from .common import ReadResult, read_text
from .fireact import read_alpaca, read_fireact_run, read_openai, write_alpaca, write_messages, write_openai
from .native import read_native, write_native

READERS: dict[str, Callable[[str, str, str], ReadResult]] = {
    "fireact-run": read_fireact_run,
    "alpaca": read_alpaca,
    "openai-jsonl": read_openai,
    "native": read_native,
}
WRITERS = {"openai-jsonl": write_openai, "alpaca": write_alpaca, "messages": write_messages, "native": write_native}
IMPORT_FORMATS = ["auto", *READERS]
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
    raise FormatError(path, 1, "unrecognised JSON lines: expected 'messages' (OpenAI chat) or 'record' (native)")


def read_file(path: str | Path, fmt: str = "auto", source: str | None = None) -> ReadResult:
    """Read one file into trajectories (nothing is written anywhere)."""
    path = str(path)
    text = read_text(path)
    if fmt == "auto":
        fmt = detect_format(path, text)
    if fmt not in READERS:
        raise FireactError(f"unknown format '{fmt}': choose one of {', '.join(IMPORT_FORMATS)}")
    if fmt == "native":
        return read_native(path, text, source)
    return READERS[fmt](path, text, source or Path(path).stem)


__all__ = ["ReadResult", "read_file", "detect_format", "READERS", "WRITERS", "IMPORT_FORMATS", "EXPORT_FORMATS"]
