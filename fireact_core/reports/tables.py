"""Small tables as plain HTML, for the app's pages that show a few rows and select none: drawn at once, with none
of the data grid's or Arrow table's code to load and run in the browser."""

from __future__ import annotations

import html
import math
import numbers
from collections.abc import Iterable, Mapping
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
