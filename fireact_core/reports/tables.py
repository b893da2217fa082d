"""Tables for the app's pages without the data grid: small ones nobody selects in as plain HTML, and the cells of
the picking table (ui_table.py) that lists rows to select or open. Both are drawn at once, with none of the data
grid's or Arrow table's code to load and run in the browser."""

from __future__ import annotations

import hashlib
import html
import json
import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

CSS = """<style>
.fa-table{border-collapse:collapse;font-size:.875rem;line-height:1.4;margin:.1rem 0 .6rem}
.fa-table th,.fa-table td{border:1px solid rgba(49,51,63,.12);padding:.25rem .5rem;text-align:left;vertical-align:top}
.fa-table th{font-weight:400;color:rgba(49,51,63,.65);background:#fafafa}
.fa-table td.fa-num{text-align:right;font-variant-numeric:tabular-nums}
.fa-table td{word-break:break-word}
</style>"""


def cell_text(value: Any) -> str:
    """What a cell shows: numbers as the Arrow table showed them (floats to 4 significant digits), nothing for a
    missing value, times to the second."""
    if value is None or value is pd.NaT or (isinstance(value, numbers.Real) and math.isnan(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(value).lower()
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return f"{float(value):.4g}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _numeric(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def table_html(rows: pd.DataFrame | Iterable[Mapping[str, Any]], test_id: str = "fa-table") -> str:
    """`rows` (a frame, or dicts sharing their keys) as an HTML table, every text escaped; numbers right-aligned."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for record in frame.itertuples(index=False, name=None):
        cells = [f'<td{" class=fa-num" if _numeric(v) else ""}>{html.escape(cell_text(v))}</td>' for v in record]
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (f'{CSS}<table class="fa-table" data-testid="{html.escape(test_id)}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


FLEX_MIN_PX = 240  # the least a picking table's column without a width gets: past that, the table scrolls sideways


@dataclass(frozen=True)
class Column:
    """How a picking table shows one column: its width in pixels (None: a share of what is left, at least
    FLEX_MIN_PX), numbers right-aligned, `fmt` ("%.2f", or a function of the value) for its cells, `help` on its
    heading."""

    width: int | None = None
    right: bool = False
    fmt: str | Callable[[Any], str] | None = None
    help: str | None = None


def _formatted(value: Any, fmt: str | Callable[[Any], str] | None) -> str:
    if value is None or value is pd.NA or (isinstance(value, numbers.Real) and math.isnan(value)):
        return ""
    if fmt is None or not (callable(fmt) or _numeric(value)):
        return cell_text(value)
    return fmt(value) if callable(fmt) else fmt % value


def pick_payload(rows: list[Mapping[str, Any]], columns: Mapping[str, Column] | None = None,
                 titles: Mapping[str, list[str]] | None = None) -> dict[str, Any]:
    """What the app's picking table (ui_table.py) draws: the columns (name, width, alignment, help), every cell as
    the text it shows, and the text a pointer resting on it shows when that differs (`titles`: per column, one
    per row; otherwise a cell's own text, for cells cut short). `sig` names the rows shown, so that a selection
    made among other rows is not taken for one among these."""
    columns = columns or {}
    names = list(rows[0]) if rows else list(columns)
    specs = [columns.get(n, Column()) for n in names]
    cells = [[_formatted(r.get(n), spec.fmt) for n, spec in zip(names, specs)] for r in rows]
    heads = [{"name": n, "width": s.width, "right": s.right or any(_numeric(r.get(n)) for r in rows),
              "help": s.help} for n, s in zip(names, specs)]
    hover = {str(names.index(n)): [str(t) for t in ts] for n, ts in (titles or {}).items() if n in names}
    sig = hashlib.blake2b(json.dumps([names, cells], ensure_ascii=False).encode(), digest_size=8).hexdigest()
    least = sum(s.width or FLEX_MIN_PX for s in specs)
    return {"columns": heads, "rows": cells, "titles": hover, "sig": sig, "minWidth": least}
