"""The dashboard's plotly charts, their exports (CSV, HTML, PNG) and the drill-down from a chart point or a
table cell to the trajectories behind it.

Every bar or point carries, as customdata, the query string of the `TrajectoryFilter` that lists its
trajectories, so a selection in the browser maps straight to a Browse view.
"""

from __future__ import annotations

from typing import Any, Sequence
from urllib.parse import parse_qsl, urlencode

import pandas as pd
import plotly.graph_objects as go

from ..errors import PrerequisiteError
from ..filters import TrajectoryFilter
from ..records import Status
from .figures import PairedComparison

MAX_TRACES = 8  # more runs than this are drawn as one bar per step count
LAYOUT = dict(height=360, margin=dict(l=40, r=20, t=50, b=40), clickmode="event+select",
              legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0))


def query_string(flt: TrajectoryFilter) -> str:
    return urlencode(flt.to_query())


def _runs_query(sources: Sequence[str], **extra: Any) -> str:
    return query_string(TrajectoryFilter(source=list(sources), **extra))


def _fig(title: str, yaxis: str, **layout: Any) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=title, yaxis_title=yaxis, **{**LAYOUT, **layout})
    return fig


def em_by_model_method(df: pd.DataFrame) -> go.Figure:
    """Grouped bars: EM over attempted per model, one colour per method."""
    fig = _fig("EM by model and method", "EM (over attempted)", barmode="group", yaxis_range=[0, 1])
    for method, part in df.groupby("method", sort=True):
        fig.add_bar(name=str(method), x=part["model"], y=part["em"], text=[f"{v:.3f}" for v in part["em"]],
                    customdata=[[_runs_query(s)] for s in part["sources"]],
                    hovertemplate="%{x}<br>EM %{y:.3f}<extra>" + str(method) + "</extra>")
    return fig


def prompted_vs_finetuned(df: pd.DataFrame) -> go.Figure:
    fig = _fig("Prompted versus fine-tuned, by base model", "EM (over attempted)", barmode="group",
               yaxis_range=[0, 1])
    labels = df.assign(label=df["base_model"] + " · " + df["task"] + " · " + df["method"])
    for variant, part in labels.groupby("variant", sort=True):
        fig.add_bar(name=str(variant), x=part["label"], y=part["em"], text=[f"{v:.3f}" for v in part["em"]],
                    customdata=[[_runs_query(s)] for s in part["sources"]])
    return fig


def robustness(df: pd.DataFrame) -> go.Figure:
    """Clean and perturbed EM side by side for each perturbed run, with the drop written on the bar."""
    fig = _fig("Clean versus perturbed search", "EM (over attempted)", barmode="group", yaxis_range=[0, 1])
    x = [f"{m} · {meth} · {p}" for m, meth, p in zip(df["model"], df["method"], df["perturb"])]
    fig.add_bar(name="clean", x=x, y=df["em_clean"], text=[f"{v:.3f}" for v in df["em_clean"]],
                customdata=[[_runs_query([r])] for r in df["clean_run"]])
    fig.add_bar(name="perturbed", x=x, y=df["em_perturbed"],
                text=[f"{v:.3f} (−{d:.3f})" for v, d in zip(df["em_perturbed"], df["em_drop"])],
                customdata=[[_runs_query([r])] for r in df["perturbed_run"]])
    return fig


def cost_vs_em(runs: pd.DataFrame) -> go.Figure | None:
    """Cost per trajectory (or tokens, where no cost is recorded) against EM; None when neither is known."""
    column, label = "cost_per_trajectory", "cost per trajectory (USD)"
    if runs[column].notna().sum() == 0:
        column, label = "tokens_per_trajectory", "tokens per trajectory"
    known = runs[runs[column].notna() & runs["em_attempted"].notna()]
    if known.empty:
        return None
    fig = _fig("Cost versus EM" if column.startswith("cost") else "Tokens versus EM", "EM (over attempted)",
               xaxis_title=label)
    fig.add_scatter(x=known[column], y=known["em_attempted"], mode="markers+text", text=known["run"],
                    textposition="top center", marker=dict(size=11),
                    customdata=[[_runs_query([r])] for r in known["run"]])
    return fig


def steps_distribution(steps: pd.DataFrame) -> go.Figure:
    """Trajectories per number of steps, stacked by run (all runs together beyond MAX_TRACES); a bar opens
    those trajectories."""
    fig = _fig("Distribution of steps", "trajectories", barmode="stack", xaxis_title="steps", xaxis_dtick=1)
    runs = sorted(set(steps["run"]))
    if len(runs) > MAX_TRACES:
        total = steps.groupby("n_steps", as_index=False)["trajectories"].sum()
        fig.add_bar(name=f"{len(runs)} runs", x=total["n_steps"], y=total["trajectories"],
                    customdata=[[_runs_query(runs, steps_min=int(n), steps_max=int(n))] for n in total["n_steps"]])
        return fig
    for run, part in steps.groupby("run", sort=True):
        fig.add_bar(name=str(run), x=part["n_steps"], y=part["trajectories"],
                    customdata=[[_runs_query([run], steps_min=int(n), steps_max=int(n))] for n in part["n_steps"]])
    return fig


def training_curve(curve: pd.DataFrame) -> go.Figure:
    fig = _fig("Training loss", "loss", xaxis_title="step")
    for column in ("loss", "eval_loss"):
        if column in curve and curve[column].notna().any():
            part = curve[curve[column].notna()]
            fig.add_scatter(x=part["step"], y=part[column], mode="lines+markers", name=column)
    return fig


# ---- exports ------------------------------------------------------------------------------------------------

def csv_bytes(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False).encode("utf-8")


def figure_html(fig: go.Figure) -> bytes:
    """A standalone HTML file with plotly.js inside, so it opens offline."""
    return fig.to_html(include_plotlyjs=True, full_html=True).encode("utf-8")


def figure_png(fig: go.Figure) -> bytes:
    import plotly.io as pio

    try:
        return pio.to_image(fig, format="png", scale=2)
    except (ImportError, RuntimeError, ValueError) as exc:
        raise PrerequisiteError(
            "PNG export of a chart needs the Python package 'kaleido' (pip install 'kaleido>=1') and a Chrome; "
            "meanwhile the camera icon in the chart's toolbar saves a PNG from the browser"
        ) from exc


def png_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("kaleido") is not None


# ---- drill-down ---------------------------------------------------------------------------------------------

CELL_STATUS: dict[str, Status] = {"finished": "finished", "failed": "failed", "missing": "unfinished", "em_finished": "finished",
               "f1_finished": "finished"}
CONTINGENCY_CELLS = {("A right", "B right"): "both_right", ("A right", "B wrong"): "only_a_right",
                     ("A wrong", "B right"): "only_b_right", ("A wrong", "B wrong"): "both_wrong"}


def run_cell_filter(run: str, column: str) -> TrajectoryFilter:
    """The trajectories behind one cell of the runs table: the run, narrowed by the column's meaning
    (finished, failed, unfinished)."""
    return TrajectoryFilter(source=[run], status=CELL_STATUS.get(column))


def contingency_filter(cmp: PairedComparison, row: str, column: str) -> TrajectoryFilter | None:
    """The trajectories of both runs behind one cell of the contingency table; None for an empty cell."""
    ids = cmp.ids.get(CONTINGENCY_CELLS[(row, column)], [])
    return TrajectoryFilter(source=[cmp.run_a, cmp.run_b], ids=ids) if ids else None


def points_filter(points: Sequence[dict[str, Any]]) -> TrajectoryFilter | None:
    """One filter for the chart points a user selected: list fields are joined, step ranges widened,
    and other fields kept where all points agree."""
    filters = []
    for point in points:
        data = point.get("customdata")
        query = data[0] if isinstance(data, (list, tuple)) and data else data
        if isinstance(query, str) and query:
            filters.append(TrajectoryFilter.from_query(dict(parse_qsl(query))))
    if not filters:
        return None
    merged: dict[str, Any] = {}
    for key in TrajectoryFilter.model_fields:
        values = [getattr(f, key) for f in filters]
        if isinstance(values[0], list):
            merged[key] = list(dict.fromkeys(v for vs in values for v in vs))
        elif key in ("steps_min", "steps_max") and all(v is not None for v in values):
            merged[key] = min(values) if key == "steps_min" else max(values)
        elif all(v == values[0] for v in values):
            merged[key] = values[0]
    return TrajectoryFilter.model_validate(merged)
