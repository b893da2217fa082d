"""Bounds on what a file may hold, checked while it is read, so any input ends in a `FormatError` naming the file
and the line (never a crash, a hang or memory without end), and whatever is imported can be written back out.

- only regular files are opened: a pipe, a device or a folder is refused from `os.stat` alone;
- a line is read at most `limit + 1` bytes at a time, so a longer one is refused without being held whole;
- JSON values: nesting at most `MAX_DEPTH` levels, integers within 64 bits, numbers finite (no NaN, Infinity
  or 1e999), strings valid Unicode (no lone surrogate escape such as "\\ud800");
- a key given twice in one object: the first one counts, as DuckDB's reader (the SQL import path) takes it;
- scores (em, f1) within [0, 1], and chat message weights 0 or 1.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from typing import IO, Any, Iterator

from pydantic_core import from_json

from ...errors import FormatError

MAX_DEPTH = 200  # what the JSONL parser (pydantic-core) reads; the JSON writers write far deeper
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")
# text that may hold a number DuckDB or the writers cannot take: checked value by value when found
_RISKY_NUMBER = re.compile(r"\d{19}|\d[eE]\+?\d{3}")
# the same in a JSONL file's bytes, where a value starts, and nesting deeper than MAX_DEPTH (as many opening
# brackets in a row): lines that send the whole file to the line-by-line reader. One search with RE2 (pyarrow's),
# which reads hundreds of MB a second and lets go of the GIL (Python's bytes `\s` and `\d` spelled out)
_RISKY_NUMBER_BYTES = r"[:\[,][ \t\n\r\x0b\x0c]*-?(?:NaN|Infinity|[0-9]{19}|[0-9]+(?:\.[0-9]+)?[eE]\+?[0-9]{3})"
_DEEP_BYTES = r"(?:[\[{][^\[\]{}]*){%d}" % (MAX_DEPTH + 1)
_RISKY_BYTES = f"{_RISKY_NUMBER_BYTES}|{_DEEP_BYTES}"
# keys the chat readers read: when one may appear twice in a row, the row is parsed again, the first one kept
_CHAT_KEYS = ('"role"', '"content"', '"weight"')


def regular_file(path: str | os.PathLike) -> os.stat_result:
    """`os.stat` of a file that may be opened: a FormatError for a missing path, a folder, a pipe, a device or
    a socket, before anything is opened (opening a pipe waits for a writer forever)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FormatError(path, 1, "no such file: check the path") from None
    except OSError as exc:
        raise FormatError(path, 1, f"cannot be read: {exc.strerror}") from exc
    if stat.S_ISDIR(st.st_mode):
        raise FormatError(path, 1, "is a directory: give the file to import, not its folder")
    if not stat.S_ISREG(st.st_mode):
        raise FormatError(path, 1, "is not a regular file (a pipe, device or socket): save it to a file and import that")
    return st


def bounded_lines(fh: IO[bytes], path: str | os.PathLike, first: int, limit: int) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line) from `first` on, each read at most `limit + 1` bytes at a time: a longer line is a
    FormatError at its number, read no further."""
    number = first
    while True:
        raw = fh.readline(limit + 1)
        if not raw:
            return
        if len(raw) > limit:
            raise FormatError(path, number, f"line is over the {limit / 2**20:g} MB limit per record "
                                            "(set FIREACT_MAX_RECORD_MB to raise it)")
        yield number, raw
        number += 1


def parse_json(path: str, line: int, text: str) -> Any:
    """One JSON value of a JSONL line, within the bounds above."""
    try:  # the keys repeat from line to line: cached; the values seldom do (caching them took a fifth longer)
        value = from_json(text, allow_inf_nan=False, cache_strings="keys")
    except ValueError as exc:
        raise FormatError(path, line, _why(str(exc), text)) from None
    if _may_hold_risky_number(text.encode("utf-8", "surrogatepass")) and _RISKY_NUMBER.search(text):
        check_value(path, line, value)
    if type(value) is dict and (text.count('"messages"') > 1 or _may_repeat_chat_keys(text, value)):
        value = json.loads(text, object_pairs_hook=_first_wins)
    return value


def _may_repeat_chat_keys(text: str, value: Any) -> bool:
    messages = value.get("messages") if type(value) is dict else None
    if type(messages) is not list:
        return False
    return any(text.count(key) > len(messages) for key in _CHAT_KEYS)


def _first_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        out.setdefault(key, value)
    return out


def _why(message: str, text: str) -> str:
    """What is wrong with a line pydantic-core would not read, in words."""
    where = message[message.rfind(" at line "):] if " at line " in message else ""
    column = where.rsplit(" ", 1)[-1] if where else "?"
    if "recursion limit" in message:
        return f"nested deeper than {MAX_DEPTH} levels (at column {column})"
    if "number out of range" in message:
        return f"a number too large to read (at column {column})"
    if "surrogate" in message or "hex escape" in message:
        return f"invalid Unicode escape, a lone surrogate such as \\ud800 (at column {column})"
    try:
        json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        return json_problem(exc)
    except (ValueError, RecursionError) as exc:
        return str(exc) if "NaN" in str(exc) else f"invalid JSON ({message})"
    return f"invalid JSON ({message})"


def json_problem(exc: json.JSONDecodeError) -> str:
    """What the standard JSON reader found wrong, in words, with its column (some of its messages end in "at"
    already: "Invalid control character at")."""
    return f"invalid JSON ({exc.msg.removesuffix(' at')} at column {exc.colno})"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number: write null or a finite number")


def check_value(path: str, line: int, value: Any, depth: int = 0) -> None:
    """Walk a parsed value: nesting, integer size, finite numbers, valid strings (keys included)."""
    if depth > MAX_DEPTH:
        raise FormatError(path, line, f"nested deeper than {MAX_DEPTH} levels")
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            if _SURROGATE.search(key):
                raise FormatError(path, line, "invalid Unicode escape in a key, a lone surrogate such as \\ud800")
            check_value(path, line, item, depth + 1)
    elif kind is list:
        for item in value:
            check_value(path, line, item, depth + 1)
    elif kind is str:
        if _SURROGATE.search(value):
            raise FormatError(path, line, "invalid Unicode escape, a lone surrogate such as \\ud800")
    elif kind is int:
        if not INT_MIN <= value <= INT_MAX:
            raise FormatError(path, line, f"integer {str(value)[:30]}... is larger than 64 bits")
    elif kind is float and not math.isfinite(value):
        raise FormatError(path, line, f"number {value} is not finite: write null or a finite number")


class _Decoder(json.JSONDecoder):
    def __init__(self) -> None:
        super().__init__(parse_constant=_no_constant, object_pairs_hook=_first_wins)


DECODER = _Decoder()


def file_needs_line_checks(path: str | os.PathLike) -> bool:
    """Whether a JSONL file may hold a value DuckDB reads but the bounds refuse (NaN, Infinity, a huge number,
    deep nesting): such a file goes through the line-by-line reader, so both import paths decide alike.

    The file is mapped into memory and searched in place with `_RISKY_BYTES`, in stretches of whole lines (a
    JSONL value never spans two) of about `_SCAN_BYTES`, all of them by one call."""
    import mmap

    import pyarrow as pa
    import pyarrow.compute as pc

    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if not size:
            return False
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            cuts = [0]
            while cuts[-1] < size:
                end = cuts[-1] + _SCAN_BYTES
                if end >= size:
                    end = size
                elif (newline := mapped.rfind(b"\n", cuts[-1], end)) >= 0:
                    end = newline + 1
                else:  # a line longer than a stretch: up to its end
                    end = mapped.find(b"\n", end) + 1 or size
                cuts.append(end)
            data = pa.py_buffer(mapped)
            stretches = pa.Array.from_buffers(pa.large_binary(), len(cuts) - 1,
                                              [None, pa.array(cuts, pa.int64()).buffers()[1], data])
            found = bool(pc.any(pc.match_substring_regex(stretches, _RISKY_BYTES)).as_py())
            del stretches, data  # the map closes only once nothing points into it
            return found


_SCAN_BYTES = 64 * 2**20
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789E", b"000000000e")
_LONG_INT = b"0" * 19


def _may_hold_risky_number(data: bytes) -> bool:
    """Whether `data` holds 19 ASCII digits in a row or a digit and an exponent of 3 digits: what a number needs
    to be out of 64 bits or not finite (a necessary condition for `_RISKY_NUMBER` on JSON numbers, 20 times
    quicker to find)."""
    digits = data.translate(_DIGITS_AS_ZERO)
    return _LONG_INT in digits or b"0e000" in digits or b"0e+000" in digits


def trajectory_problem(data: Any) -> str | None:
    """What makes a trajectory's fields unstorable: a score outside [0, 1], a count the database keeps in 32
    bits out of range (None when nothing does)."""
    if type(data) is not dict:
        return None
    for name in ("em", "f1"):
        value = data.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not 0 <= value <= 1:
            return f"'{name}' is {value}: scores are between 0 and 1"
    return _int32_problem(data, ("revision", "schema_version"))


def native_problem(row: Any) -> str | None:
    """`trajectory_problem` of a native trajectory record, and the numbers of its revisions and annotations."""
    if type(row) is not dict:
        return None
    problem = trajectory_problem(row.get("trajectory"))
    for rev in row.get("revisions") or []:
        problem = problem or _int32_problem(rev, ("rev",))
    for ann in row.get("annotations") or []:
        problem = problem or _int32_problem(ann, ("seq", "rating"))
    return problem


def _int32_problem(data: Any, names: tuple[str, ...]) -> str | None:
    if type(data) is not dict:
        return None
    for name in names:
        value = data.get(name)
        if type(value) is int and not -(2**31) <= value < 2**31:
            return f"'{name}' is {value}: out of range (at most {2**31 - 1})"
    return None


def weight_problem(message: Any) -> str | None:
    """A chat message's `weight` other than absent, 0 or 1."""
    weight = message.get("weight") if type(message) is dict else None
    if weight is None or (type(weight) in (int, float) and weight in (0, 1)):
        return None
    return f"message weight {json.dumps(weight)[:30]}: a weight is 0 or 1"
