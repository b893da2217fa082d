"""The Dashboard's tables and charts: formatted columns, CSV / HTML / PNG downloads made when clicked, and a click
on a cell, bar or point that opens Browse on the trajectories behind it."""

from __future__ import annotations

import streamlit as st
from streamlit.errors import StreamlitAPIException

from fireact_core.reports import charts as charts, figures as reports

BROWSE = "pages/1_Browse.py"
SCORES = ("em_attempted", "em_finished", "f1_attempted", "f1_finished", "em", "f1", "em_clean", "em_perturbed",
          "em_drop", "diff", "ci_low", "ci_high")
FORMATS = {c: st.column_config.NumberColumn(format="%.3f") for c in SCORES}
FORMATS["perturbed_share"] = st.column_config.NumberColumn(format="percent")
FORMATS.update({c: st.column_config.NumberColumn(format="%.3f", width=100) for c in ("em_attempted", "f1_attempted",
                                                                                   "em_finished", "f1_finished")})
FORMATS.update({c: st.column_config.NumberColumn(format="%.3f", width=70) for c in reports.METHOD_ORDER})
FORMATS.update({"run": st.column_config.TextColumn(width=300, help="short name; the full one is the last column"),
                "model": st.column_config.TextColumn(width=180), "task": st.column_config.TextColumn(width=80),
                "method": st.column_config.TextColumn(width=70), "full name": st.column_config.TextColumn(width="large")})


def open_browse(flt) -> None:
    """Leave for Browse filtered to `flt` (the filter also stays readable here if Browse is not in this app)."""
    if flt is None or flt.is_empty():
        return
    try:
        st.switch_page(BROWSE, query_params=flt.to_query())
    except StreamlitAPIException:
        st.info(f"Browse is not part of this app; the trajectories are at `Browse?{charts.query_string(flt)}`")


def table(df, name: str, key: str, drill=None, hide_index: bool = True) -> None:
    """A table with CSV export (made on click); with `drill(row, column)`, clicking a cell opens its trajectories."""
    event = st.dataframe(df, key=key, hide_index=hide_index, column_config=FORMATS,
                         on_select="rerun" if drill else "ignore", selection_mode="single-cell")
    st.download_button("CSV", lambda: charts.csv_bytes(df if hide_index else df.reset_index()),
                       f"{name}.csv", "text/csv", key=f"{key}_csv", on_click="ignore", icon=":material/download:")
    if drill and event and event.selection.cells:
        row, column = event.selection.cells[0]
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
