"""Native JSONL: one record a line, lossless (sources, trajectories with every revision, annotation and lint).

    {"record": "header", "format": "fireact-native", "version": 1}
    {"record": "source", "source": {...}}
    {"record": "trajectory", "trajectory": {...}, "revisions": [...], "annotations": [...], "lints": [...]}
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Iterator, TextIO

from pydantic import ValidationError

from ...records import SCHEMA_VERSION, Annotation, Lint, Revision, Source, Trajectory
from .common import ReadResult, checked_trajectory, expect
from .limits import native_problem

FORMAT = "fireact-native"


def _problem(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else err["msg"]


def native_batches(path: str, rows: Iterable[tuple[int, Any]], source: str | None, batch: int) -> Iterator[ReadResult]:
    """Native records, `batch` trajectories at a time. With `source`,
    every trajectory moves to that source, and the first source record, renamed, is the only one kept."""
    result = ReadResult(path=path, format="native")
    named = [False]
    for line, row in rows:
        expect(isinstance(row, dict) and "record" in row, path, line, "each line must be an object with a 'record' field")
        kind = row["record"]
        try:
            if kind == "header":
                expect(row.get("format") == FORMAT, path, line, f"not a {FORMAT} file")
                expect(int(row.get("version", 1)) <= SCHEMA_VERSION, path, line,
                       f"written by a newer FireAct Studio (version {row.get('version')}): upgrade to read it")
            elif kind == "source":
                _read_source(result, row, source, named)
            elif kind == "trajectory":
                _read_trajectory(result, row, source)
            else:
                expect(False, path, line, f"unknown record kind '{kind}'")
        except ValidationError as exc:
            expect(False, path, line, f"invalid {kind} record: {_problem(exc)}")
        except (KeyError, TypeError, ValueError) as exc:
            expect(False, path, line, f"{kind} record lacks the field {exc}" if isinstance(exc, KeyError)
                   else f"invalid {kind} record: {exc}")
        if result.rows >= batch:
            yield result
            result = ReadResult(path=path, format="native")
    if result.rows or result.sources:
        yield result


def _read_source(result: ReadResult, row: dict[str, Any], source: str | None, named: list[bool]) -> None:
    src = Source.model_validate(row["source"])
    if source is not None:
        if named[0]:
            return
        named[0] = True
        src = src.model_copy(update={"name": source})
    result.sources.append(src)


def _read_trajectory(result: ReadResult, row: dict[str, Any], source: str | None) -> None:
    if native_problem(row):
        raise ValueError(native_problem(row))
    record = checked_trajectory(row["trajectory"])
    if source is not None:
        record["source"] = source
    result.records.append(record)
    result.revisions.extend(Revision.model_validate(r) for r in row.get("revisions") or [])
    result.annotations.extend(Annotation.model_validate(a) for a in row.get("annotations") or [])
    result.lints.extend(Lint.model_validate(x) for x in row.get("lints") or [])
    result.rows += 1


def write_native(items: Iterable[tuple[Trajectory, list[Revision], list[Annotation], list[Lint]]],
                 out: TextIO, sources: Iterable[Source] = ()) -> int:
    out.write(json.dumps({"record": "header", "format": FORMAT, "version": SCHEMA_VERSION}) + "\n")
    for src in sources:
        out.write(json.dumps({"record": "source", "source": src.model_dump(mode="json")}, ensure_ascii=False) + "\n")
    n = 0
    for traj, revisions, notes, lints in items:
        row = {
            "record": "trajectory",
            "trajectory": traj.model_dump(mode="json"),
            "revisions": [r.model_dump(mode="json") for r in revisions],
            "annotations": [a.model_dump(mode="json") for a in notes],
            "lints": [x.model_dump(mode="json") for x in lints],
        }
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        n += 1
    return n
