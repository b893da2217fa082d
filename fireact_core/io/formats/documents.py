"""Whole-JSON-document files (an Alpaca array, a FireAct run object) walked one element at a time.

The file is read a line at a time through the line-length limit (`limits.bounded_lines`), decoded and checked as
every other reader does, into a buffer that holds the element being read and the line it ends on: memory stays
that of one record however large the file. Each element is decoded with `json.JSONDecoder.raw_decode` (the bounds
of `limits`); one that does not yet decode for want of the lines after it is tried again with more of them. Every
error names the file and the line it is on, as reading the whole document did.
"""

from __future__ import annotations

import json
import re
from codecs import BOM_UTF8
from typing import Any, Iterator

from ...errors import FormatError
from . import common
from .limits import DECODER, MAX_DEPTH, bounded_lines, check_value, json_problem, regular_file

_WS = re.compile(r"[ \t\n\r]*")
_MIN_MORE = 1 << 16  # an element that does not decode yet is tried again once this many more characters are read


class _Document:
    """A buffer over the file's text: `buf` starts at the beginning of line `line`; `pos` is the reading place."""

    def __init__(self, path: str):
        self.path = path
        self.buf = ""
        self.pos = 0
        self.line = 1
        self._lines = self._read()
        self.eof = False

    def _read(self) -> Iterator[str]:
        regular_file(self.path)
        offset = 0
        try:
            with open(self.path, "rb") as fh:
                for number, raw in bounded_lines(fh, self.path, 1, common.MAX_RECORD_BYTES):
                    if offset == 0 and raw.startswith(BOM_UTF8):
                        raw, offset = raw[3:], 3
                    try:
                        text = raw.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        raise FormatError(self.path, number, f"not valid UTF-8 (byte {offset + exc.start}): save the "
                                                             "file as UTF-8") from exc
                    offset += len(raw)
                    yield text
        except OSError as exc:
            raise FormatError(self.path, 1, f"cannot be read: {exc.strerror}") from exc

    def more(self, chars: int = 1) -> bool:
        """Read at least `chars` more characters (whole lines); False at the end of the file."""
        got: list[str] = []
        size = 0
        for text in self._lines:
            got.append(text)
            size += len(text)
            if size >= chars:
                break
        else:
            self.eof = True
        if got:
            self.buf += "".join(got)
        return bool(got)

    def skip(self) -> bool:
        """Skip whitespace; False when the file ends first."""
        while True:
            space = _WS.match(self.buf, self.pos)  # always matches (maybe empty)
            self.pos = space.end() if space else self.pos
            if self.pos < len(self.buf):
                return True
            if not self.more():
                return False

    def line_at(self, pos: int) -> int:
        return self.line + self.buf.count("\n", 0, pos)

    def drop_read(self) -> None:
        """Let go of the lines before the reading place (the buffer still starts at a line's beginning)."""
        cut = self.buf.rfind("\n", 0, self.pos) + 1
        if cut:
            self.line += self.buf.count("\n", 0, cut)
            self.buf, self.pos = self.buf[cut:], self.pos - cut

    def error(self, message: str, pos: int | None = None) -> FormatError:
        return FormatError(self.path, self.line_at(self.pos if pos is None else pos), message)

    def value(self, depth: int) -> tuple[int, Any]:
        """(line, value) of the JSON value at the reading place, within the bounds of `limits`."""
        self.drop_read()
        start = self.pos
        line = self.line_at(start)
        while True:
            try:
                value, end = DECODER.raw_decode(self.buf, start)
            except json.JSONDecodeError as exc:
                if self._may_go_on(exc.pos, start):
                    continue
                raise FormatError(self.path, self.line + exc.lineno - 1, json_problem(exc)) from exc
            except RecursionError:
                raise FormatError(self.path, line, f"nested deeper than {MAX_DEPTH} levels") from None
            except ValueError as exc:
                raise FormatError(self.path, line, f"invalid JSON: {exc}") from None
            if end == len(self.buf) and self._may_go_on(end, start):
                continue  # a number or a literal at the end of what was read may go on
            common._check_size(self.path, line, end - start)
            check_value(self.path, line, value, depth)
            self.pos = end
            return line, value

    def _may_go_on(self, failed_at: int, start: int) -> bool:
        """Whether a value that failed to decode at `failed_at` only lacked what follows: then read more."""
        if self.eof or self.buf[failed_at:].strip():
            return False
        common._check_size(self.path, self.line_at(start), len(self.buf) - start)
        self.more(max(_MIN_MORE, len(self.buf) - start))
        return True


def iter_json_array(path: str) -> Iterator[tuple[int, Any]]:
    """(line number, element) for each element of the file's top-level JSON array, one in memory at a time."""
    doc = _Document(path)
    if not doc.skip():
        raise FormatError(path, 1, "the file is empty")
    if doc.buf[doc.pos] != "[":
        raise doc.error("expected a JSON array of objects")
    doc.pos += 1
    if doc.skip() and doc.buf[doc.pos] == "]":
        return
    while True:
        if not doc.skip():
            raise doc.error("invalid JSON (Expecting value: the file ends inside the array)")
        yield doc.value(0)
        if not doc.skip() or doc.buf[doc.pos] not in ",]":
            raise doc.error("invalid JSON: expected ',' or ']' after an element")
        if doc.buf[doc.pos] == "]":
            return
        doc.pos += 1


def iter_json_object(path: str, not_object: str) -> Iterator[tuple[int, str, Any]]:
    """(line number, key, value) for each member of the file's top-level JSON object, one in memory at a time; a
    key given twice: the first counts (as `limits` reads any object). `not_object`: the error when the document
    is another JSON value."""
    doc = _Document(path)
    if not doc.skip():
        raise FormatError(path, 1, "the file is empty")
    if doc.buf[doc.pos] != "{":
        if doc.buf[doc.pos] in '["-0123456789tfn':
            raise doc.error(not_object)
        raise doc.error(f"invalid JSON (Expecting value at column {doc.pos + 1})")
    doc.pos += 1
    seen: set[str] = set()
    if doc.skip() and doc.buf[doc.pos] == "}":
        _end(doc)
        return
    while True:
        if not doc.skip() or doc.buf[doc.pos] != '"':
            raise doc.error("invalid JSON (Expecting property name enclosed in double quotes)")
        line, key = doc.value(1)
        if not doc.skip() or doc.buf[doc.pos] != ":":
            raise doc.error("invalid JSON (Expecting ':' delimiter)")
        doc.pos += 1
        if not doc.skip():
            raise doc.error("invalid JSON (Expecting value: the file ends inside the object)")
        _, value = doc.value(1)
        if key not in seen:
            seen.add(key)
            yield line, key, value
        if not doc.skip() or doc.buf[doc.pos] not in ",}":
            raise doc.error("invalid JSON (Expecting ',' delimiter)")
        if doc.buf[doc.pos] == "}":
            _end(doc)
            return
        doc.pos += 1


def _end(doc: _Document) -> None:
    doc.pos += 1
    if doc.skip():
        raise doc.error("invalid JSON (extra data after the document)")

