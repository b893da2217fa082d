"""The Dashboard's tables and charts: formatted columns, CSV / HTML / PNG downloads made when clicked, and a click
on a cell, bar or point that opens Browse on the trajectories behind it."""

from __future__ import annotations

import streamlit as st
from streamlit.errors import StreamlitAPIException

from fireact_core.reports import charts as charts, figures as reports
from fireact_core.reports.tables import Column
from ui_table import pick_table

BROWSE = "pages/1_Browse.py"
SCORES = ("em_attempted", "em_finished", "f1_attempted", "f1_finished", "em", "f1", "em_clean", "em_perturbed",
          "em_drop", "diff", "ci_low", "ci_high")
SCORE = "%.3f"
COLUMNS = {c: Column(fmt=SCORE, width=90) for c in SCORES}
COLUMNS["perturbed_share"] = Column(fmt=lambda v: f"{v:.0%}", width=90)
COLUMNS.update({c: Column(fmt=SCORE, width=100) for c in ("em_attempted", "f1_attempted", "em_finished", "f1_finished")})
COLUMNS.update({c: Column(fmt=SCORE, width=80) for c in reports.METHOD_ORDER})
COLUMNS.update({"run": Column(width=300, help="short name; the full one shows when the pointer rests on it, and is "
                              "the last column"),
                "model": Column(width=180), "task": Column(width=90), "method": Column(width=80),
                "full name": Column(width=420)})
DEFAULT_WIDTH = 90  # a column the table names no width for (counts, a share, a status)
TEXT_WIDTH = 160  # ... that holds text


def open_browse(flt) -> None:
    """Leave for Browse filtered to `flt` (the filter also stays readable here if Browse is not in this app)."""
    if flt is None or flt.is_empty():
        return
    try:
        st.switch_page(BROWSE, query_params=flt.to_query())
    except StreamlitAPIException:
        st.info(f"Browse is not part of this app; the trajectories are at `Browse?{charts.query_string(flt)}`")


def table(df, name: str, key: str, drill=None, hide_index: bool = True) -> None:
    """A table with CSV export (made on click); with `drill(row, column)`, clicking a cell opens its trajectories
    (the cells of the index, shown as the first column when `hide_index` is False, open nothing)."""
    shown = df if hide_index else df.reset_index()
    if not hide_index and shown.columns[0] == "index":
        shown = shown.rename(columns={"index": ""})
    rows = shown.to_dict("records")
    columns = {c: COLUMNS.get(c) or Column(width=TEXT_WIDTH if shown[c].dtype == object else DEFAULT_WIDTH)
               for c in shown.columns}
    titles = {"run": list(shown["full name"])} if {"run", "full name"} <= set(shown.columns) else None
    picked = pick_table(rows, key, columns=columns, titles=titles, select="cell" if drill else None,
                        fixed=0 if hide_index else 1, max_height=None)
    st.download_button("CSV", lambda: charts.csv_bytes(df if hide_index else df.reset_index()),
                       f"{name}.csv", "text/csv", key=f"{key}_csv", on_click="ignore", icon=":material/download:")
    if drill and picked.cell:
        row, column = picked.cell
        open_browse(drill(row, column))


def chart(fig, name: str, key: str) -> None:
    """A chart whose selected bars or points open their trajectories, with HTML (and PNG) export."""
    if fig is None:
        return
    event = st.plotly_chart(fig, key=key, on_select="rerun", selection_mode=("points", "box"),
                            config={"toImageButtonOptions": {"format": "png", "filename": name, "scale": 2}})
    left, right = st.columns([1, 5])
    left.download_button("HTML", lambda: charts.figure_html(fig), f"{name}.html", "text/html",
                         key=f"{key}_html", on_click="ignore", icon=":material/download:")
    if charts.png_available():
        right.download_button("PNG", lambda: charts.figure_png(fig), f"{name}.png", "image/png",
                              key=f"{key}_png", on_click="ignore", icon=":material/download:")
    else:
        right.caption("Click or box-select to open the trajectories in Browse. PNG: the camera icon in the chart's "
                      "toolbar (or `pip install kaleido` for a download button).")
    if event and event.selection.points:
        open_browse(charts.points_filter(event.selection.points))
